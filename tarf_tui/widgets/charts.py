"""Charts (textual-plotext): a run's per-epoch accuracies and loss, an overlay of one metric over
several runs, and TARF's target identification (each unit's accuracy change at t1).

Update with ``plt.clear_data()``, re-plot, then ``refresh()`` on the plot widget itself
(STYLE.md); the owning screen throttles and pauses. The axis and legend rules are plain
functions (``acc_ticks``, ``loss_axis``, ``epoch_ticks``, ``legend``, ``identification``) so
tests check them without a terminal. Legends are never drawn inside a plot (plotext puts them
over the data): each chart has a one-line legend next to it (``legend``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from rich.text import Text
from textual_plotext import PlotextPlot

RGB = tuple[int, int, int]

# One colour per accuracy series, far apart in hue (UA and acc D_uf must never look alike).
ACC_SERIES: tuple[tuple[str, str, RGB], ...] = (
    ("ua", "UA", (235, 64, 52)),  # red
    ("ra", "RA", (46, 204, 64)),  # green
    ("ta", "TA", (0, 150, 255)),  # blue
    ("acc_f", "acc D_f", (255, 190, 0)),  # amber
    ("acc_uf", "acc D_uf", (200, 80, 255)),  # violet
)
LOSS_COLOUR: RGB = (230, 230, 230)
CLIPPED_COLOUR: RGB = (255, 80, 80)
PHASE_COLOUR = "gray"
# overlay runs: a qualitative palette (Okabe-Ito, colour-blind safe), cycled
OVERLAY_COLOURS: tuple[RGB, ...] = ((230, 159, 0), (86, 180, 233), (0, 158, 115),
                                    (240, 228, 66), (0, 114, 178), (213, 94, 0),
                                    (204, 121, 167), (255, 255, 255))
# identification bars: hit (excluded and truly hidden), wrong (excluded, not hidden), missed
# (hidden, not excluded), kept (neither)
IDENT_STYLE: dict[str, tuple[str, RGB]] = {
    "hit": ("excluded, hidden (hit)", (46, 204, 64)),
    "wrong": ("excluded, not hidden", (255, 150, 0)),
    "missed": ("hidden, not excluded (miss)", (235, 64, 52)),
    "kept": ("kept", (130, 130, 130)),
}
# metrics the overlay can draw, in cycling order: (epoch key, label, y is a percentage)
OVERLAY_METRICS: tuple[tuple[str, str, bool], ...] = (
    ("ua", "UA", True), ("ra", "RA", True), ("ta", "TA", True), ("acc_f", "acc D_f", True),
    ("acc_uf", "acc D_uf", True), ("loss", "loss", False))
MAX_POINTS = 300


def rich_colour(rgb: RGB) -> str:
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def legend(items: Iterable[tuple[str, RGB]], mark: str = "━━") -> Text:
    """A one-line legend: a coloured mark and the label of each series."""
    t = Text(no_wrap=True, overflow="ellipsis")
    for i, (label, rgb) in enumerate(items):
        if i:
            t.append("  ")
        t.append(mark, style=f"bold {rich_colour(rgb)}")
        t.append(f" {label}")
    return t


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


# ---- axes ----------------------------------------------------------------------------------
ACC_TICKS = (0, 25, 50, 75, 100)


def acc_ticks() -> tuple[tuple[float, float], list[int], list[str]]:
    """Accuracies (%) always on 0..100 with five whole-number ticks: a run at 99.7-100 reads as
    "at the top", never as a three-decimal zoom."""
    return (0.0, 100.0), list(ACC_TICKS), [str(t) for t in ACC_TICKS]


def epoch_ticks(last: int, total: int | None = None, most: int = 10) -> tuple[tuple[float, float], list[int]]:
    """The x axis counts epochs 1..N, as the progress does (epoch rows are stored from 0).
    ``total``: the run's planned epochs (the axis spans them from the start)."""
    n = max(int(total or 0), int(last), 1)
    step = max(1, math.ceil(n / most))
    ticks = list(range(1, n + 1, step))
    if ticks[-1] != n and n - ticks[-1] >= step / 2:
        ticks.append(n)
    lo, hi = (0.5, 1.5) if n == 1 else (1.0, float(n))
    return (lo, hi), ticks


def _quantile(xs: Sequence[float], q: float) -> float:
    s = sorted(xs)
    pos = (len(s) - 1) * q
    i = int(pos)
    frac = pos - i
    return s[i] if i + 1 >= len(s) else s[i] * (1 - frac) + s[i + 1] * frac


@dataclass
class LossAxis:
    lo: float
    hi: float
    clipped: list[int] = field(default_factory=list)  # indices of the values outside [lo, hi]
    note: str = ""  # e.g. "2 epochs off scale (min -16766)"

    def clamp(self, v: float) -> float:
        return min(max(v, self.lo), self.hi)


def loss_axis(values: Sequence[float]) -> LossAxis:
    """A y range that keeps the bulk of the losses readable: values beyond Tukey's far fences
    (3 x IQR past the quartiles; gradient ascent can reach -16766 while the rest sit near 1)
    are drawn clamped at the edge and named in the note instead of flattening the others."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not xs:
        return LossAxis(0.0, 1.0)
    lo, hi = min(xs), max(xs)
    clipped: list[int] = []
    if len(xs) >= 4:
        q1, q3 = _quantile(xs, 0.25), _quantile(xs, 0.75)
        iqr = max(q3 - q1, 1e-9 * max(abs(q1), abs(q3), 1.0))
        f_lo, f_hi = q1 - 3 * iqr, q3 + 3 * iqr
        inside = [x for x in xs if f_lo <= x <= f_hi]
        if len(inside) < len(xs) and inside:
            lo, hi = min(inside), max(inside)
            clipped = [i for i, v in enumerate(values) if v is not None
                       and math.isfinite(float(v)) and not lo <= float(v) <= hi]
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    pad = (hi - lo) * 0.05
    ax = LossAxis(lo - pad, hi + pad, clipped)
    if clipped:
        out = [float(values[i]) for i in clipped]
        ext = min(out) if abs(min(out)) >= abs(max(out)) else max(out)
        ax.note = (f"{len(clipped)} epoch{'s' if len(clipped) > 1 else ''} off scale "
                   f"({'min' if ext < 0 else 'max'} {fmt_short(ext)})")
    return ax


def nice_ticks(lo: float, hi: float, most: int = 6) -> list[float]:
    """Round tick positions (1, 2 or 5 x 10^k apart) covering [lo, hi]."""
    span = max(hi - lo, 1e-9)
    raw = span / max(most - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    out, v = [], first
    while v <= hi + 1e-9 * step:
        out.append(round(v, 10))
        v += step
    return out


def fmt_short(v: float) -> str:
    a = abs(v)
    if a >= 1e7:
        return f"{v:.3g}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.2f}".rstrip("0").rstrip(".")
    return f"{v:.3g}"


def thin(eps: list[dict], most: int = MAX_POINTS) -> list[dict]:
    """At most ``most`` points (plotext's cost grows with them); the last one always kept."""
    if len(eps) <= most:
        return eps
    step = -(-len(eps) // most)
    return eps[::step] + ([eps[-1]] if (len(eps) - 1) % step else [])


class CachedPlot(PlotextPlot):
    """A plot that builds its text only when its data, size or theme changed (``replot()``
    after drawing): a screen switch repaints every widget, and plotext's build costs 30-50 ms
    a chart."""

    _version = 0
    _cache: tuple | None = None

    def replot(self) -> None:
        self._version += 1
        self.refresh()

    def render(self):
        key = (self._version, self.size.width, self.size.height, self.app.theme)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, super().render())
        return self._cache[1]


# ---- per-run epoch charts ----------------------------------------------------------------------
class EpochChart(CachedPlot):
    """One chart over epochs: ``kind`` is "acc" (UA, RA, TA, acc D_f, acc D_uf, 0..100 %) or
    "loss" (outliers clipped, see ``loss_axis``). x = epoch number 1..N."""

    def __init__(self, kind: str, **kw):
        super().__init__(**kw)
        self.kind = kind
        self.epochs: list[dict] = []
        self.total: int | None = None
        self.plotted = 0  # epochs drawn so far (tests read it)
        self.axis: LossAxis | None = None  # the last loss axis (tests read it)

    def on_mount(self) -> None:
        super().on_mount()
        self.draw()

    def set_epochs(self, epochs: list[dict], total: int | None = None) -> None:
        self.epochs = epochs
        self.total = total
        self.draw()

    def legend(self) -> Text:
        if self.kind == "acc":
            return legend((label, rgb) for _, label, rgb in ACC_SERIES)
        t = legend([("loss", LOSS_COLOUR)])
        if self.axis is not None and self.axis.clipped:
            t.append("  ")
            t.append("×", style=f"bold {rich_colour(CLIPPED_COLOUR)}")
            t.append(f" {self.axis.note}")
        return t

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        eps = thin(self.epochs)
        xs = [e["epoch"] + 1 for e in eps]
        (x0, x1), ticks = epoch_ticks(max(xs, default=1), self.total)
        plt.xlim(x0, x1)
        plt.xticks(ticks)
        if self.kind == "acc":
            plt.title("accuracy (%) per epoch")
            (y0, y1), yt, yl = acc_ticks()
            plt.ylim(y0, y1)
            plt.yticks(yt, yl)
            for key, _, rgb in ACC_SERIES:
                pts = [(x, e[key]) for x, e in zip(xs, eps) if e.get(key) is not None]
                if pts:
                    plt.plot([p[0] for p in pts], [p[1] for p in pts], color=rgb, marker="braille")
            top = 100.0
        else:
            plt.title("loss per epoch")
            vals = [e.get("loss") for e in eps]
            self.axis = ax = loss_axis(vals)
            plt.ylim(ax.lo, ax.hi)
            yt = nice_ticks(ax.lo, ax.hi)
            plt.yticks(yt, [fmt_short(t) for t in yt])
            pts = [(x, float(v)) for x, v in zip(xs, vals) if v is not None and math.isfinite(float(v))]
            if pts:
                plt.plot([p[0] for p in pts], [ax.clamp(p[1]) for p in pts], color=LOSS_COLOUR,
                         marker="braille")
            if ax.clipped:
                plt.scatter([xs[i] for i in ax.clipped], [ax.clamp(float(vals[i])) for i in ax.clipped],
                            color=CLIPPED_COLOUR, marker="x")
            top = ax.hi
        spans = phase_spans(eps)
        if len(spans) > 1 and eps:
            for _, first, _ in spans[1:]:  # a vertical line where each new phase begins
                plt.vline(first + 0.5, color=PHASE_COLOUR)
            for ph, first, last in spans:
                plt.text(ph, (first + last) / 2 + 1, top, color=PHASE_COLOUR, alignment="center")
        self.plotted = len(self.epochs)
        self.replot()


# ---- overlay ----------------------------------------------------------------------------------
@dataclass
class Series:
    label: str
    xs: list[float]
    ys: list[float]
    colour: RGB


def overlay_series(runs: list[tuple[str, list[dict]]], metric: str) -> list[Series]:
    """One series per run (label, its epoch rows) of ``metric`` against epoch 1..N; runs
    without a value of that metric are left out."""
    out = []
    for i, (label, eps) in enumerate(runs):
        eps = thin(eps)
        pts = [(e["epoch"] + 1, float(e[metric])) for e in eps
               if e.get(metric) is not None and math.isfinite(float(e[metric]))]
        if pts:
            out.append(Series(label, [p[0] for p in pts], [p[1] for p in pts],
                              OVERLAY_COLOURS[i % len(OVERLAY_COLOURS)]))
    return out


class OverlayChart(CachedPlot):
    """One metric of several runs on shared axes (W&B LEET's overlay)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.series: list[Series] = []
        self.metric = "ua"
        self.axis: LossAxis | None = None

    def on_mount(self) -> None:
        super().on_mount()
        self.draw()

    def set_series(self, metric: str, series: list[Series]) -> None:
        self.metric, self.series = metric, series
        self.draw()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        label, percent = next(((lab, p) for k, lab, p in OVERLAY_METRICS if k == self.metric),
                              (self.metric, False))
        plt.title(f"{label}" + (" (%)" if percent else "") + " per epoch")
        last = max((max(s.xs) for s in self.series if s.xs), default=1)
        (x0, x1), ticks = epoch_ticks(int(last))
        plt.xlim(x0, x1)
        plt.xticks(ticks)
        if percent:
            (y0, y1), yt, yl = acc_ticks()
            plt.ylim(y0, y1)
            plt.yticks(yt, yl)
            clamp = lambda v: v  # noqa: E731
            self.axis = None
        else:
            self.axis = ax = loss_axis([y for s in self.series for y in s.ys])
            plt.ylim(ax.lo, ax.hi)
            yt = nice_ticks(ax.lo, ax.hi)
            plt.yticks(yt, [fmt_short(t) for t in yt])
            clamp = ax.clamp
        for s in self.series:
            plt.plot(s.xs, [clamp(y) for y in s.ys], color=s.colour, marker="braille")
        self.replot()

    def legend(self) -> Text:
        t = legend((s.label, s.colour) for s in self.series)
        if self.axis is not None and self.axis.clipped:
            t.append(f"  · {self.axis.note.replace('epoch', 'point')}")
        return t


# ---- target identification --------------------------------------------------------------------
@dataclass
class Unit:
    id: int
    name: str
    change: float | None  # accuracy change at t1 (acc_t1 - acc_0, %); None: not in D_un
    excluded: bool
    hidden: bool
    frac: float | None = None  # TARF-I: fraction of its D_un samples excluded

    @property
    def kind(self) -> str:
        if self.excluded:
            return "hit" if self.hidden else "wrong"
        return "missed" if self.hidden else "kept"


@dataclass
class Identification:
    epoch: int  # 1-based epoch of the identification (t1)
    units: list[Unit]
    margin: float | None  # ranking margin: score of the last excluded unit minus the next one
    truth: bool  # whether the truly hidden units are recorded
    hits: int | None
    n: int | None

    @property
    def excluded(self) -> list[Unit]:
        return [u for u in self.units if u.excluded]


def identification(epochs: list[dict], run_extras: dict | None = None) -> Identification | None:
    """TARF / TARF-I's target identification from the first epoch whose extras carry it
    (``acc_change`` and ``excluded_units``, from t1 on), the truth (``hidden_units``,
    ``unit_names``) and the run's final ``identification`` {hits, n} when finished. hits / n
    come from the engine (the one definition); while a run is still going they are counted
    from the same epoch extras (excluded units that are truly hidden / hidden units)."""
    src = next((e for e in epochs if isinstance(e.get("extras"), dict)
                and "excluded_units" in e["extras"] and "acc_change" in e["extras"]), None)
    if src is None:
        return None
    x = src["extras"]
    final = (run_extras or {}).get("identification") or {}
    change = list(x.get("acc_change") or [])
    names = list(x.get("unit_names") or final.get("unit_names") or [])
    hidden_ids = x.get("hidden_units", final.get("hidden"))
    truth = hidden_ids is not None
    hidden = {int(u) for u in hidden_ids or ()}
    excluded = {int(u) for u in x.get("excluded_units") or ()}
    frac = list(x.get("excluded_frac") or [])
    n_units = max(len(change), len(names), max(excluded | hidden, default=-1) + 1)
    units = [Unit(i, names[i] if i < len(names) else str(i),
                  change[i] if i < len(change) else None, i in excluded, i in hidden,
                  frac[i] if i < len(frac) else None) for i in range(n_units)]
    if "hits" in final and "n" in final:
        hits, n = int(final["hits"]), int(final["n"])
    elif truth:
        hits, n = len(excluded & hidden), len(hidden)
    else:
        hits = n = None
    margin = x.get("id_margin")
    return Identification(int(src["epoch"]) + 1, units, margin, truth, hits, n)


IDENT_SHORT = {"hit": "hit", "wrong": "wrong", "missed": "missed", "kept": "kept"}


def ident_legend(ident: Identification | None = None, compact: bool = False) -> Text:
    """The bar colours; ``compact`` (80 columns): one word each (the table's columns say the
    rest)."""
    truth = ident is None or ident.truth
    kinds = ("hit", "wrong", "missed", "kept") if truth else ("wrong", "kept")
    items = []
    for k in kinds:
        label = (IDENT_SHORT[k] if compact else IDENT_STYLE[k][0]) if truth else (
            "excluded" if k == "wrong" else "kept")
        items.append((label, IDENT_STYLE[k][1]))
    return legend(items, mark="██")


IDENT_MAX_BARS = 24


def shown_units(ident: Identification, most: int = IDENT_MAX_BARS) -> list[Unit]:
    """The units to draw: all when few; else every excluded or hidden unit and then the largest
    |change|, in unit order."""
    present = [u for u in ident.units if u.change is not None]
    if len(present) <= most:
        return present
    must = [u for u in present if u.excluded or u.hidden]
    rest = sorted((u for u in present if not (u.excluded or u.hidden)),
                  key=lambda u: -abs(u.change))
    keep = {u.id for u in must + rest[:max(0, most - len(must))]}
    return [u for u in present if u.id in keep]


class IdentificationChart(CachedPlot):
    """A bar per unit: its accuracy change at t1 (%), coloured by excluded / truly hidden."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.ident: Identification | None = None
        self.bars: list[Unit] = []  # what is drawn (tests read it)

    def on_mount(self) -> None:
        super().on_mount()
        self.draw()

    def set_identification(self, ident: Identification | None) -> None:
        self.ident = ident
        self.draw()

    def draw(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        ident = self.ident
        if ident is None:
            plt.title("no identification yet (TARF decides at t1)")
            self.bars = []
            self.replot()
            return
        units = self.bars = shown_units(ident)
        total = sum(1 for u in ident.units if u.change is not None)
        title = f"accuracy change at t1 = epoch {ident.epoch} (%)"
        if len(units) < total:
            title += f" · {len(units)} of {total} units"
        plt.title(title)
        horizontal = len(units) > 12 and self.size.width < 6 * len(units)
        for i, u in enumerate(units):
            plt.bar([i + 1], [u.change], color=IDENT_STYLE[u.kind][1], width=0.6,
                    orientation="h" if horizontal else "v")
        labels = [u.name[:10] for u in units]
        if horizontal:
            plt.yticks(list(range(1, len(units) + 1)), labels)
            plt.vline(0, PHASE_COLOUR)
        else:
            plt.xticks(list(range(1, len(units) + 1)), labels)
            plt.hline(0, PHASE_COLOUR)
        vals = [u.change for u in units] + [0.0]
        lo, hi = min(vals), max(vals)
        pad = max(hi - lo, 1.0) * 0.08
        (plt.xlim if horizontal else plt.ylim)(lo - pad, hi + pad)
        ticks = nice_ticks(lo - pad, hi + pad)
        (plt.xticks if horizontal else plt.yticks)(ticks, [fmt_short(t) for t in ticks])
        self.replot()


def ident_summary(ident: Identification) -> Text:
    """One line: identified hits / n, the excluded units and the ranking margin."""
    t = Text()
    if ident.hits is not None:
        ok = ident.hits == ident.n
        t.append(f"identified {ident.hits}/{ident.n}", style="bold green" if ok else "bold red")
    else:
        t.append("identified ?/? (truth not recorded)", style="dim")
    ex = ", ".join(u.name for u in ident.excluded) or "none"
    t.append(f" · excluded {ex}")
    if ident.truth:
        t.append(" · hidden " + (", ".join(u.name for u in ident.units if u.hidden) or "none"))
    t.append(" · margin " + ("–" if ident.margin is None else f"{ident.margin:.2f}"))
    return t


def ident_table(ident: Identification, rows: int = 30) -> Text:
    """The units ranked by accuracy change (most negative first, what TARF's "drop" ranks),
    with the marks: ✗ excluded, ● truly hidden."""
    t = Text(no_wrap=True, overflow="ellipsis")
    t.append(f"{'unit':<10}{'Δacc':>7} ex hid\n", style="bold")
    ranked = sorted((u for u in ident.units if u.change is not None), key=lambda u: u.change)
    for u in ranked[:rows]:
        colour = rich_colour(IDENT_STYLE[u.kind][1])
        t.append(f"{u.name[:9]:<10}", style=colour)
        t.append(f"{u.change:>+7.1f} ")
        t.append(" ✗ " if u.excluded else " · ", style="bold" if u.excluded else "dim")
        t.append(" ● " if u.hidden else (" · " if ident.truth else " ? "),
                 style="bold" if u.hidden else "dim")
        if u.frac is not None:
            t.append(f" {100 * u.frac:.0f}%", style="dim")
        t.append("\n")
    if len(ranked) > rows:
        t.append(f"… {len(ranked) - rows} more\n", style="dim")
    t.append("ex excluded at t1 · hid hidden", style="dim")
    return t
