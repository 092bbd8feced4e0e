"""Compare: finished runs in the paper's Table 1 layout, drawn from ``tarf_tui.compare`` (the one
implementation the CLI's ``runs compare`` renders too). Two views (``t``): one experiment (same
dataset, case, target, forgetting data; seeds aggregated) with a Gap bar chart, or Table 1
across the tasks of the selected experiment's dataset and model (rows methods, one column
group per task case). ``s`` / ``S`` sort by any column, ``o`` hides the columns equal in every
row (DVC's ``--only-changed``), ``x`` exports Markdown, CSV, LaTeX and JSON of what is shown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich import box
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.widgets import Header, OptionList, Static
from textual.widgets.option_list import Option

from engine.cases import CASES
from engine.store import Store

from .base import StableFooter, TarfScreen
from .. import compare as cmp
from ..options import REFERENCE
from ..widgets.charts import CachedPlot
from ..widgets.common import CATEGORY_SHORT, CATEGORY_STYLE

EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "json": "json"}
COMPARE_POLL_S = 2.0
VIEW_TITLES = {"blocks": "one experiment", "tasks": "Table 1 across tasks"}

EXPERIMENTS_SQL = """
SELECT experiment, dataset, case_no, target, forget, arch, count(*) AS n,
       sum(status = 'finished') AS done, sum(status IN ('queued', 'running')) AS active,
       max(id) AS newest
FROM runs GROUP BY experiment ORDER BY newest DESC
"""


def read_experiments(store: Store) -> list[dict]:
    return store.query(EXPERIMENTS_SQL)


def experiment_label(e: dict) -> Text:
    cat = CASES[e["case_no"] - 1].category if e.get("case_no") else ""
    t = Text.assemble((f"{e['dataset']} ", "bold"), (f"case {e['case_no']} ", CATEGORY_STYLE.get(cat, "")),
                      f"{e.get('target') or '?'} / {e.get('forget') or '?'}\n",
                      (f"  {e['done']}/{e['n']} finished"
                       + (f", {e['active']} active" if e["active"] else "") + f" · {e['arch']}",
                       "dim"))
    return t


def view_runs(store: Store, exps: list[dict], key: str, kind: str) -> list[dict]:
    """The runs a view needs: the experiment's (blocks), or every experiment's of the same
    dataset and model (tasks)."""
    if kind == "blocks":
        return store.list_runs(experiment=key)
    sel = next(e for e in exps if e["experiment"] == key)
    out: list[dict] = []
    for e in exps:
        if (e["dataset"], e["arch"]) == (sel["dataset"], sel["arch"]):
            out += store.list_runs(experiment=e["experiment"])
    return out


class CompareScreen(TarfScreen):
    BINDINGS = [
        Binding("t", "toggle_view", "Table 1 / experiment", tooltip="Switch between one experiment and Table 1 across the tasks of its dataset and model"),
        Binding("s", "sort(1)", "Sort", tooltip="Sort by the next column (Method, then each metric column)"),
        Binding("S", "sort(-1)", "Reverse sort", show=False, tooltip="Reverse the sort"),
        Binding("o", "only_changed", "Only changed", tooltip="Hide the columns equal in every row (DVC's --only-changed)"),
        Binding("x", "export_all", "Export md/csv/tex/json", tooltip="Export what is shown (view, sort, columns) as md, csv, tex and json to <workspace>/exports"),
        Binding("enter", "focus_table", "Show", show=False, tooltip="Focus the experiment list"),
    ]

    def __init__(self):
        super().__init__()
        self.experiments: list[dict] = []
        self.selected: str | None = None
        self.blocks: list = []  # the view's blocks (tarf_tui.compare.build)
        self.view = cmp.View()
        self.grids: list = []  # what is shown (tarf_tui.compare.grids of blocks and view)
        self._want: str | None = None
        self._busy = False
        self._again = False  # a read was asked while one ran
        self._shown: Any = None  # what the table shows now (skip identical redraws)
        self._data: Any = None  # what the blocks were built from (skip identical rebuilds)
        self.shown_table: Any = None  # the renderable in #table1 (tests render it)

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="compare"):
            with Vertical(id="exp-col", classes="panel"):
                yield Static("[b]Experiments[/b]", classes="section")
                yield OptionList(id="experiments", compact=True)
            with Vertical(id="table-col"):
                yield Static("", id="view-bar")
                with ScrollableContainer(id="table-scroll", classes="panel"):
                    yield Static("", id="table1")
                yield CachedPlot(id="gap-chart")
                yield Static("", id="export-note")
        yield Static("No experiments yet. Launch runs from the builder (F2); finished runs of the "
                     "same experiment are compared here.", id="compare-empty")
        yield StableFooter()

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
            self._again = True
            return
        self._busy = True
        store, want, kind, old = self.app.store, self._want or self.selected, self.view.kind, self._data

        def read():
            try:
                exps = read_experiments(store)
                key = want if any(e["experiment"] == want for e in exps) else (
                    exps[0]["experiment"] if exps else None)
                stamp = (key, kind, tuple(tuple(e.values()) for e in exps))
                if stamp == old:  # nothing was added, finished or deleted: no rebuild
                    return exps, key, kind, None, stamp
                blocks = cmp.build(view_runs(store, exps, key, kind)) if key else []
                return exps, key, kind, blocks, stamp
            finally:
                self.app.call_from_thread(self._read_done)

        self.app.bg(read, done=self.apply, group="compare-read")

    def _read_done(self) -> None:
        self._busy = False
        if self._again:
            self._again = False
            self.poll()

    def apply(self, result) -> None:
        exps, key, kind, blocks, stamp = result
        self._want = None
        ol = self.query_one(OptionList)
        if [(e["experiment"], e["n"], e["done"], e["active"]) for e in exps] != \
                [(e["experiment"], e["n"], e["done"], e["active"]) for e in self.experiments]:
            ol.clear_options()
            ol.add_options([Option(experiment_label(e), id=e["experiment"]) for e in exps])
        self.experiments = exps
        self.selected = key
        if key is not None:
            idx = next(i for i, e in enumerate(exps) if e["experiment"] == key)
            if ol.highlighted != idx:
                ol.highlighted = idx
        empty = not exps
        self.query_one("#compare-empty").display = empty
        self.query_one("#compare").display = not empty
        if kind != self.view.kind:
            return  # the view changed while reading: a new read is on its way
        if blocks is None:
            return
        self._data = stamp
        self.blocks = blocks
        self.render_view()

    # ---- the table -----------------------------------------------------------------------
    def render_view(self) -> None:
        try:
            self.grids = cmp.grids(self.blocks, self.view)
        except Exception as e:  # an unknown sort column after a view change: unsorted
            self.notify(str(e), severity="warning")
            self.view.sort = None
            self.grids = cmp.grids(self.blocks, self.view)
        self.render_bar()
        shown = (cmp.grids_json(self.grids), self.view.kind)
        if shown == self._shown:
            return
        self._shown = shown
        w = self.query_one("#table1", Static)
        plot = self.query_one("#gap-chart", CachedPlot)
        if not self.grids:
            w.update("select an experiment")
            plot.display = False
            return
        from rich.console import Group

        tables = []
        for g in self.grids:
            t = cmp.rich_table(g, header_style="bold", box=box.SIMPLE_HEAD)
            for col in t.columns:  # the table scrolls sideways; cells never wrap or ellipsise
                col.no_wrap = True
            # a task's group label once, over its first column (the paper's spanning header),
            # on two short lines ("case 11" / "target-mm") so it is no wider than the cells
            for prev, col, gcol in zip([None] + g.columns[:-1], t.columns, g.columns):
                if not gcol.group:
                    continue
                if prev is not None and prev.group == gcol.group:
                    col.header = "\n\n" + gcol.header
                else:
                    case, _, cat = gcol.group.partition(" ")[2].partition(" ")
                    col.header = f"case {case}\n{CATEGORY_SHORT.get(cat, cat)}\n{gcol.header}"
            tables.append(t)
        from rich.measure import Measurement

        con = self.app.console
        width = max(Measurement.get(con, con.options.update(max_width=10_000), t).maximum
                    for t in tables)
        w.styles.width = width  # the natural width: wider tables scroll sideways
        self.shown_table = Group(*tables, Text(cmp.footnote(self.grids), style="dim"))
        w.update(self.shown_table)
        plot.display = self.view.kind == "blocks"
        self.set_class(self.view.kind == "tasks", "-tasks")
        if plot.display:
            self.render_chart(plot)

    def render_chart(self, plot: CachedPlot) -> None:
        plt = plot.plt
        plt.clear_data()
        plt.clear_figure()
        block = self.blocks[0]
        rows = [r for r in block.rows if r.stats["gap"].mean is not None and r.method != REFERENCE]
        plt.title("Gap to Retrained (lower is better)")
        if rows:
            for i, r in enumerate(rows):  # one call per bar: plotext colours a list per segment
                plt.bar([i + 1], [r.stats["gap"].mean], color="green" if r.best else "orange",
                        width=0.5)
            plt.xticks(list(range(1, len(rows) + 1)), [r.title[:12] for r in rows])
            plt.ylim(0, max(r.stats["gap"].mean for r in rows) * 1.15 or 1)
        plot.replot()

    def sort_columns(self) -> list:
        """The columns ``s`` cycles through: Method, then every metric column of the view."""
        g = self.grids[0] if self.grids else None
        if g is None:
            return []
        full = cmp.grids(self.blocks, cmp.View(self.view.kind))[0]
        return [c for c in full.columns if c.key != "seeds"]

    def sort_label(self) -> str:
        if not self.view.sort:
            return "catalogue order"
        key = self.view.sort.lstrip("-")
        col = next((c for c in self.sort_columns() if c.key == key), None)
        name = (f"{col.group} {col.header}".strip() if col else key).replace(" ↓", "")
        return f"{name} {'↓' if self.view.sort.startswith('-') else '↑'}"

    def render_bar(self) -> None:
        v = self.view
        bar = Text.assemble(("view ", "dim"), (VIEW_TITLES[v.kind], "bold"), (" (t)", "dim"),
                            ("  sort ", "dim"), self.sort_label(), (" (s/S)", "dim"),
                            ("  only changed ", "dim"), ("on" if v.only_changed else "off", "bold"),
                            (" (o)", "dim"), ("  export x", "dim"))
        self.query_one("#view-bar", Static).update(bar)

    # ---- actions -------------------------------------------------------------------------
    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        key = event.option.id
        if key and key != self.selected:
            self.selected = key
            self.poll()

    def action_focus_table(self) -> None:
        self.query_one(OptionList).focus()

    def action_toggle_view(self) -> None:
        self.view = cmp.View("tasks" if self.view.kind == "blocks" else "blocks",
                             None, self.view.only_changed)
        self.render_bar()
        self.poll()

    def action_sort(self, step: int) -> None:
        """``s``: the next column, ascending; ``S``: the same column, the other way."""
        cols = [c.key for c in self.sort_columns()]
        if not cols:
            return
        cur = (self.view.sort or "").lstrip("-")
        if step < 0:
            if not cur:
                return
            self.view.sort = cur if self.view.sort.startswith("-") else f"-{cur}"
        else:
            i = cols.index(cur) + 1 if cur in cols else 0
            self.view.sort = None if i >= len(cols) else cols[i]
        self.render_view()

    def action_only_changed(self) -> None:
        self.view.only_changed = not self.view.only_changed
        self.render_view()

    # ---- export --------------------------------------------------------------------------
    def export_stem(self) -> str:
        if self.view.kind == "tasks" and self.blocks:
            b = self.blocks[0]
            return f"table1-{b.dataset}-{b.arch}"
        return f"compare-{self.selected}"

    def action_export_all(self) -> None:
        self.export(tuple(EXTENSIONS))

    def export(self, formats: tuple[str, ...]) -> None:
        """Write ``formats`` of what is shown (view, sort, only-changed) to
        ``<workspace>/exports``."""
        if not self.blocks:
            self.notify("nothing to export: select an experiment with runs", severity="warning")
            return
        blocks, stem = self.blocks, self.export_stem()
        view = cmp.View(self.view.kind, self.view.sort, self.view.only_changed)
        folder = self.app.workspace.path / "exports"

        def write():
            folder.mkdir(parents=True, exist_ok=True)
            out = []
            for fmt in formats:
                p = folder / f"{stem}.{EXTENSIONS[fmt]}"
                p.write_text(cmp.render(blocks, fmt, view=view))
                out.append(p)
            return out

        def done(paths: list[Path]) -> None:
            self.query_one("#export-note", Static).update(
                "[green]exported[/green] " + ", ".join(p.name for p in paths) + f" → {folder}")
            self.notify(f"exported {len(paths)} file(s) to {folder}")

        self.app.bg(write, done=done, group="export")
