"""Compare: the runs of one experiment (same dataset, case, target, forgetting data; seeds
aggregated) in the paper's Table 1 layout (``tarf_tui.compare``), the best Gap marked, a bar
chart of Gap per method, and export to Markdown, CSV, LaTeX and JSON in the workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, OptionList, Static
from textual.widgets.option_list import Option
from textual_plotext import PlotextPlot

from engine.cases import CASES
from engine.store import Store

from ..widgets.common import CATEGORY_STYLE

EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "json": "json"}
COMPARE_POLL_S = 2.0

EXPERIMENTS_SQL = """
SELECT experiment, dataset, case_no, target, forget, arch, count(*) AS n,
       sum(status = 'finished') AS done, sum(status IN ('queued', 'running')) AS active,
       max(id) AS newest
FROM runs GROUP BY experiment ORDER BY newest DESC
"""


def read_experiments(store: Store) -> list[dict]:
    return store._rows(EXPERIMENTS_SQL)


def experiment_label(e: dict) -> Text:
    cat = CASES[e["case_no"] - 1].category if e.get("case_no") else ""
    t = Text.assemble((f"{e['dataset']} ", "bold"), (f"case {e['case_no']} ", CATEGORY_STYLE.get(cat, "")),
                      f"{e.get('target') or '?'} / {e.get('forget') or '?'}\n",
                      (f"  {e['done']}/{e['n']} finished"
                       + (f", {e['active']} active" if e["active"] else "") + f" · {e['arch']}",
                       "dim"))
    return t


def table1(block) -> Table:
    from ..compare import HEADERS, METRICS, row_cells

    t = Table(title=block.title, title_justify="left", expand=True, header_style="bold")
    t.add_column("Method")
    for m in METRICS:
        t.add_column(HEADERS[m] + (" ↓" if m == "gap" else ""), justify="right")
    t.add_column("Seeds", justify="right")
    for r in block.rows:
        cells: list[Any] = row_cells(r)
        if r.best:
            i = METRICS.index("gap")
            cells[i] = Text(f"★ {cells[i]}", style="bold green")
        other = {k: v for k, v in r.statuses.items() if k != "finished"}
        note = str(r.n) + (" (" + ", ".join(f"{v} {k}" for k, v in sorted(other.items())) + ")"
                           if other else "")
        t.add_row(Text(r.title, style="dim" if r.method == "retrained" else ""), *cells, note)
    return t


class CompareScreen(Screen):
    BINDINGS = [
        Binding("x", "export_all", "Export md/csv/tex/json"),
        Binding("enter", "focus_table", "Show", show=False),
    ]

    def __init__(self):
        super().__init__()
        self.experiments: list[dict] = []
        self.selected: str | None = None
        self.blocks: list = []
        self._want: str | None = None
        self._busy = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare"):
            with Vertical(id="exp-col", classes="panel"):
                yield Static("[b]Experiments[/b]", classes="section")
                yield OptionList(id="experiments", compact=True)
            with Vertical(id="table-col"):
                yield Static("", id="table1", classes="panel")
                yield PlotextPlot(id="gap-chart")
                yield Static("", id="export-note")
        yield Static("No experiments yet. Launch runs from the builder (F2); finished runs of the "
                     "same experiment are compared here.", id="compare-empty")
        yield Footer()

    def on_mount(self) -> None:
        self.timer = self.set_interval(COMPARE_POLL_S, self.poll, name="compare-poll")
        self.poll()

    def on_screen_suspend(self) -> None:
        self.timer.pause()

    def on_screen_resume(self) -> None:
        self.timer.resume()
        self.poll()

    def select_experiment(self, key: str) -> None:
        self._want = key
        self.selected = key
        self.poll()

    # ---- reads ---------------------------------------------------------------------------
    def poll(self) -> None:
        if self._busy:
            return
        self._busy = True
        store, want = self.app.store, self._want or self.selected

        def read():
            try:
                from ..compare import build
                exps = read_experiments(store)
                key = want if any(e["experiment"] == want for e in exps) else (
                    exps[0]["experiment"] if exps else None)
                blocks = build(store.list_runs(experiment=key)) if key else []
                return exps, key, blocks
            finally:
                self.app.call_from_thread(setattr, self, "_busy", False)

        self.app.bg(read, done=self.apply, group="compare-read")

    def apply(self, result) -> None:
        exps, key, blocks = result
        self._want = None
        ol = self.query_one(OptionList)
        if [e["experiment"] for e in exps] != [e["experiment"] for e in self.experiments] or \
                [(e["n"], e["done"], e["active"]) for e in exps] != \
                [(e["n"], e["done"], e["active"]) for e in self.experiments]:
            ol.clear_options()
            ol.add_options([Option(experiment_label(e), id=e["experiment"]) for e in exps])
        self.experiments = exps
        self.selected = key
        if key is not None:
            idx = next(i for i, e in enumerate(exps) if e["experiment"] == key)
            if ol.highlighted != idx:
                ol.highlighted = idx
        self.blocks = blocks
        empty = not exps
        self.query_one("#compare-empty").display = empty
        self.query_one("#compare").display = not empty
        self.render_block()

    def render_block(self) -> None:
        w = self.query_one("#table1", Static)
        plot = self.query_one("#gap-chart", PlotextPlot)
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        if not self.blocks:
            w.update("select an experiment")
            plot.refresh()
            return
        block = self.blocks[0]
        w.update(table1(block))
        from ..compare import _scale

        rows = [r for r in block.rows if r.stats["gap"].mean is not None and r.method != "retrained"]
        plt.title("Gap to Retrained (lower is better)")
        if rows:
            plt.bar([r.title[:12] for r in rows], [_scale("gap", r.stats["gap"].mean) for r in rows],
                    color=["green" if r.best else "orange" for r in rows], width=0.5)
            plt.ylim(0, max(_scale("gap", r.stats["gap"].mean) for r in rows) * 1.15 or 1)
        plot.refresh()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        key = event.option.id
        if key and key != self.selected:
            self.selected = key
            self.poll()

    def action_focus_table(self) -> None:
        self.query_one(OptionList).focus()

    # ---- export --------------------------------------------------------------------------
    def action_export_all(self) -> None:
        self.export(tuple(EXTENSIONS))

    def export(self, formats: tuple[str, ...]) -> None:
        if not self.blocks:
            self.notify("nothing to export: select an experiment with runs", severity="warning")
            return
        blocks, key = self.blocks, self.selected
        folder = self.app.workspace.path / "exports"

        def write():
            from ..compare import render
            folder.mkdir(parents=True, exist_ok=True)
            out = []
            for fmt in formats:
                p = folder / f"compare-{key}.{EXTENSIONS[fmt]}"
                p.write_text(render(blocks, fmt))
                out.append(p)
            return out

        def done(paths: list[Path]) -> None:
            self.query_one("#export-note", Static).update(
                "[green]exported[/green] " + ", ".join(p.name for p in paths) + f" → {folder}")
            self.notify(f"exported {len(paths)} file(s) to {folder}")

        self.app.bg(write, done=done, group="export")
