"""Live per-epoch charts (textual-plotext). Update with ``plt.clear_data()``, re-plot, then
``refresh()`` on the plot widget itself (STYLE.md); the owning screen throttles and pauses."""

from __future__ import annotations

from textual_plotext import PlotextPlot

ACC_SERIES = (("ua", "UA", "red"), ("ra", "RA", "green"), ("ta", "TA", "cyan"),
              ("acc_f", "acc D_f", "orange"), ("acc_uf", "acc D_uf", "magenta"))


def phase_spans(epochs: list[dict]) -> list[tuple[str, int, int]]:
    """Consecutive runs of the same ``phase``: [(phase, first epoch, last epoch)]."""
    spans: list[tuple[str, int, int]] = []
    for e in epochs:
        ph = e.get("phase") or ""
        if spans and spans[-1][0] == ph:
            spans[-1] = (ph, spans[-1][1], e["epoch"])
        else:
            spans.append((ph, e["epoch"], e["epoch"]))
    return spans


MAX_POINTS = 300


class EpochChart(PlotextPlot):
    """One chart over epochs: ``kind`` is "acc" (UA, RA, TA, acc D_f, acc D_uf) or "loss"."""

    def __init__(self, kind: str, **kw):
        super().__init__(**kw)
        self.kind = kind
        self.epochs: list[dict] = []
        self.plotted = 0  # epochs drawn so far (tests read it)

    def on_mount(self) -> None:
        super().on_mount()
        self.draw()

    def set_epochs(self, epochs: list[dict]) -> None:
        self.epochs = epochs
        self.draw()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if self.kind == "acc":
            plt.title("accuracy per epoch (%)")
        else:
            plt.title("loss per epoch")
        plt.xlabel("epoch")
        eps = self.epochs
        if len(eps) > MAX_POINTS:  # thin long runs: plotext's cost grows with the points
            step = -(-len(eps) // MAX_POINTS)
            eps = eps[::step] + ([eps[-1]] if (len(eps) - 1) % step else [])
        if eps:
            xs = [e["epoch"] for e in eps]
            series = (ACC_SERIES if self.kind == "acc"
                      else (("loss", "loss", "yellow"),))
            lo, hi = None, None
            for key, label, colour in series:
                pts = [(x, e[key]) for x, e in zip(xs, eps) if e.get(key) is not None]
                if pts:
                    plt.plot([p[0] for p in pts], [p[1] for p in pts], label=label,
                             color=colour, marker="braille")
                    vals = [p[1] for p in pts]
                    lo = min(vals) if lo is None else min(lo, min(vals))
                    hi = max(vals) if hi is None else max(hi, max(vals))
            spans = phase_spans(eps)
            if len(spans) > 1 and lo is not None:
                for ph, first, _ in spans[1:]:  # a vertical line where each new phase begins
                    plt.vline(first - 0.5, color="gray")
                for ph, first, last in spans:
                    plt.text(ph, (first + last) / 2, hi, color="gray", alignment="center")
            if len(xs) <= 12:
                plt.xticks(xs)
            if len(xs) == 1:
                plt.xlim(xs[0] - 1, xs[0] + 1)
        self.plotted = len(self.epochs)
        self.refresh()
