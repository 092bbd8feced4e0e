"""Runs: every run in the workspace, updating while engines (of this or any other process) write
the database. Sortable (s / click a header), filterable (/), cancel (c), delete (d; a queued run
is taken off the queue), open (enter), compare its experiment (m), re-open the builder from its
settings (b), mark runs (space) and overlay one metric of the marked runs (o)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Header, Input, Static

from engine.cases import CASES
from engine.store import ACTIVE

from .base import StableFooter, TarfScreen
from ..widgets.common import (CATEGORY_SHORT, CATEGORY_STYLE, data_stamp, fmt_num, fmt_run_time, fmt_time,
                              method_title, planned_epochs, read_run_rows, run_seconds,
                              status_text)
from ..slurm import on_slurm, where as slurm_where
from ..widgets.run_table import RunTable

COLUMNS = (("mark", "✓", 1), ("id", "id", 5), ("status", "status", 13), ("dataset", "dataset", 9),
           ("case", "case", 14), ("method", "method", 9), ("seed", "seed", 4),
           ("ua", "UA", 6), ("ra", "RA", 6), ("ta", "TA", 6), ("mia", "MIA", 6),
           ("gap", "Gap", 6), ("time", "run time", 11), ("started", "started", 14),
           ("where", "where", 18))
# left out below 120 columns (80x24 keeps id, status, case, method, seed, UA..Gap)
NARROW_HIDDEN = ("dataset", "mia", "time", "started", "where")
# "where" (Slurm job id and node) is shown once a run of the workspace went to Slurm
SORT_KEYS = [c[0] for c in COLUMNS if c[0] != "mark"]
SHORT = CATEGORY_SHORT


def where_cell(row: dict) -> str:
    """The "where" column: a Slurm run's array task and node, empty for a local run."""
    return slurm_where(row) if on_slurm(row) else ""


def sort_value(row: dict, key: str, now) -> Any:
    if key == "case":
        return row["case_no"] or 0
    if key == "time":
        return run_seconds(row, now) or 0.0
    if key == "started":
        return row.get("started_at") or ""
    if key == "where":
        return where_cell(row)
    v = row.get(key)
    if v is None:
        return (1, 0) if key in ("ua", "ra", "ta", "mia", "gap") else ""
    return (0, v) if key in ("ua", "ra", "ta", "mia", "gap") else v


def matches(row: dict, query: str) -> bool:
    """Every whitespace-separated term must match: ``key=value`` compares one column
    (``case=11``, ``method=tarf``, ``status=running``), a bare word is a substring of the row."""
    if not query.strip():
        return True
    hay = " ".join(str(row.get(k) or "") for k in
                   ("id", "status", "dataset", "case_no", "method", "seed", "label", "target",
                    "forget", "executor", "job_id", "host")).lower()
    cat = CASES[row["case_no"] - 1].category if row.get("case_no") else ""
    hay += " " + cat
    for term in query.lower().split():
        if "=" in term:
            k, v = term.split("=", 1)
            k = {"case": "case_no"}.get(k, k)
            if str(row.get(k, "")).lower() != v:
                return False
        elif term not in hay:
            return False
    return True


def row_cells(row: dict, now, marked: bool = False) -> tuple:
    status = row["status"]
    extra = ""
    if status == "running" and row.get("last_epoch") is not None:
        done = row["last_epoch"] + 1
        total = planned_epochs(row)
        extra = f"{done}/{total}" if total else str(done)
    cat = CASES[row["case_no"] - 1].category if row.get("case_no") else ""
    live = status in ACTIVE
    metric = lambda k: Text(fmt_num(row.get(k), 1), style="italic grey62" if live else "")  # noqa: E731
    return (Text("●", style="bold yellow") if marked else "",
            str(row["id"]), status_text(status, extra), row.get("dataset") or "",
            Text(f"{row['case_no']:>2} {SHORT.get(cat, cat)}", style=CATEGORY_STYLE.get(cat, "")),
            method_title(row.get("method")), str(row.get("seed", "")),
            metric("ua"), metric("ra"), metric("ta"), metric("mia"),
            Text(fmt_num(row.get("gap"), 2), style="bold" if row.get("gap") is not None else ""),
            fmt_run_time(row, now), fmt_time(row.get("started_at") or row.get("created_at")),
            where_cell(row))


class RunsScreen(TarfScreen):
    AUTO_FOCUS = "#runs-table"
    BINDINGS = [
        Binding("c", "cancel", "Cancel run"),
        Binding("d", "delete", "Delete", tooltip="Delete the run (a queued one leaves the queue; a running one: cancel first)"),
        Binding("b", "rebuild", "Re-open in builder"),
        Binding("m", "compare", "Compare", tooltip="Compare the run's experiment (Table 1)"),
        Binding("space", "mark", "Mark", tooltip="Mark / unmark the run for the overlay"),
        Binding("o", "overlay", "Overlay marked", tooltip="Overlay one metric of the marked runs (or the run under the cursor)"),
        Binding("slash", "filter", "Filter", tooltip="Filter: words or key=value (case=11 method=tarf status=running)"),
        Binding("s", "sort", "Sort", tooltip="Sort by the next column (or click a header)"),
        Binding("S", "reverse", "Reverse", show=False, tooltip="Reverse the sort"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []  # newest first, as read
        self.by_id: dict[int, dict] = {}
        self.shown: list[int] = []  # ids in table order
        self.cells: dict[int, tuple] = {}
        self.sort_key = "id"
        self.sort_reverse = True
        self.query_text = ""
        self.marked: set[int] = set()  # runs marked for the overlay (space)
        self._stamp: Any = None
        self._busy = False
        self.loaded = 0  # reads applied (tests wait on it)
        self.narrow = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="runs-bar"):
            yield Input(placeholder="filter: words or key=value (case=11 method=tarf status=running)",
                        id="runs-filter")
            yield Static("", id="runs-count")
        yield RunTable(list(COLUMNS), id="runs-table")
        yield Static("No runs yet. Press [b]F2[/b] to build an experiment: pick a case, a target "
                     "and methods, then launch.", id="runs-empty")
        yield StableFooter()

    def on_mount(self) -> None:
        self.timer = self.set_interval(self.app.poll_s, self.poll, name="runs-poll")
        self.poll(force=True)

    def on_resize(self, event) -> None:
        self.narrow = event.size.width < 120
        self._set_columns()

    def _set_columns(self) -> None:
        hidden = set(NARROW_HIDDEN if self.narrow else ())
        if not any(on_slurm(r) for r in self.rows):
            hidden.add("where")
        self.query_one(RunTable).set_hidden(hidden, gap=1 if self.narrow else 2)

    # ---- polling (paused while hidden) ---------------------------------------------------
    def on_screen_suspend(self) -> None:
        self.timer.pause()

    def on_screen_resume(self) -> None:
        self.timer.resume()
        self.poll()

    def poll(self, force: bool = False) -> None:
        """Read in full when runs were added or deleted, else only the active runs."""
        if self._busy:
            return
        self._busy = True
        store, old = self.app.store, self._stamp
        active = [r["id"] for r in self.rows if r["status"] in ACTIVE]

        def read():
            try:
                stamp = data_stamp(store)
                if force or stamp != old:
                    return stamp, read_run_rows(store), True
                return stamp, (read_run_rows(store, active) if active else []), False
            finally:
                self.app.call_from_thread(setattr, self, "_busy", False)

        self.app.bg(read, done=self.apply, group="runs-read")

    def refresh_now(self) -> None:
        self._stamp = None
        self.poll(force=True)

    # ---- table ---------------------------------------------------------------------------
    def apply(self, result) -> None:
        stamp, rows, full = result
        self._stamp = stamp
        now = self.app.clock()
        if full:
            self.rows = rows
            self.by_id = {r["id"]: r for r in rows}
            self.marked &= set(self.by_id)
            self.cells = {r["id"]: row_cells(r, now, r["id"] in self.marked) for r in rows}
            self._set_columns()
            self.render_table()
        else:
            changed = [r for r in rows if self.by_id.get(r["id"]) != r]
            for r in changed:
                if r["id"] in self.by_id:
                    old = self.by_id[r["id"]]
                    old.clear()
                    old.update(r)  # self.rows holds the same dict
            for r in self.rows:  # running rows: their run time advances
                if r["status"] == "running" or r in changed:
                    self.cells[r["id"]] = row_cells(r, now, r["id"] in self.marked)
            order = self.visible_ids()
            if order != self.shown:
                self.render_table(order)
            else:
                t = self.query_one(RunTable)
                for rid in self.shown:
                    if self.by_id[rid]["status"] == "running" or self.by_id[rid] in changed:
                        t.update_row(rid, self.cells[rid])
                self.render_count()
        self.loaded += 1

    def visible_ids(self) -> list[int]:
        now = self.app.clock()
        rows = [r for r in self.rows if matches(r, self.query_text)]
        if self.sort_key != "id":
            rows.sort(key=lambda r: r["id"], reverse=True)
            rows.sort(key=lambda r: sort_value(r, self.sort_key, now), reverse=self.sort_reverse)
        elif not self.sort_reverse:
            rows = rows[::-1]
        return [r["id"] for r in rows]

    def render_table(self, ids: list[int] | None = None) -> None:
        t = self.query_one(RunTable)
        ids = self.visible_ids() if ids is None else ids
        self.shown = ids
        t.set_rows(ids, [self.cells[i] for i in ids])
        self.render_count()
        self.query_one("#runs-empty").display = not self.rows
        t.display = bool(self.rows)

    def render_count(self) -> None:
        n_live = sum(1 for r in self.rows if r["status"] in ACTIVE)
        self.query_one("#runs-count", Static).update(
            f"{len(self.shown)}/{len(self.rows)} runs · {n_live} active · sort {self.sort_key}"
            f"{' ↓' if self.sort_reverse else ' ↑'}"
            + (f" · {len(self.marked)} marked (o: overlay)" if self.marked else ""))

    # ---- actions -------------------------------------------------------------------------
    def selected(self) -> dict | None:
        key = self.query_one(RunTable).cursor_key
        if key is None:
            self.notify("no run selected", severity="warning")
            return None
        return self.by_id.get(key)

    def on_run_table_row_chosen(self, event: RunTable.RowChosen) -> None:
        event.stop()
        self.app.open_detail(event.key)

    def on_run_table_header_clicked(self, event: RunTable.HeaderClicked) -> None:
        event.stop()
        key = event.column
        if key == self.sort_key:
            self.sort_reverse = not self.sort_reverse
        else:
            self.sort_key, self.sort_reverse = key, key in ("id", "started", "time")
        self.render_table()

    def action_open(self) -> None:
        row = self.selected()
        if row:
            self.app.open_detail(row["id"])

    def action_sort(self) -> None:
        i = (SORT_KEYS.index(self.sort_key) + 1) % len(SORT_KEYS)
        self.sort_key = SORT_KEYS[i]
        self.sort_reverse = self.sort_key in ("id", "started", "time")
        self.render_table()

    def action_reverse(self) -> None:
        self.sort_reverse = not self.sort_reverse
        self.render_table()

    def action_filter(self) -> None:
        self.query_one("#runs-filter", Input).focus()

    def action_clear_filter(self) -> None:
        f = self.query_one("#runs-filter", Input)
        f.value = ""
        self.query_one(RunTable).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "runs-filter":
            self.query_text = event.value
            self.render_table()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "runs-filter":
            self.query_one(RunTable).focus()

    def action_cancel(self) -> None:
        from .dialogs import ConfirmScreen

        row = self.selected()
        if not row:
            return
        if row["status"] not in ACTIVE:
            self.notify(f"run {row['id']} is {row['status']}: nothing to cancel", severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.notify(f"cancelling run {row['id']}…")
                self.app.cancel_runs([row["id"]], done=lambda st: (
                    self.notify(f"run {row['id']}: {st.get(row['id'], 'gone')}"), self.refresh_now()))

        self.app.push_screen(ConfirmScreen(f"Cancel run {row['id']} ({row['method']}, case "
                                           f"{row['case_no']}, seed {row['seed']})?",
                                           yes="Cancel run"), answer)

    def action_delete(self) -> None:
        from .dialogs import ConfirmScreen

        row = self.selected()
        if not row:
            return
        if row["status"] == "running":
            self.notify(f"run {row['id']} is running: cancel it first (c)", severity="warning")
            return
        if self.app.store.read_only:
            self.notify("read-only workspace: runs cannot be deleted", severity="error")
            return
        what = " (queued: it is taken off the queue)" if row["status"] == "queued" else ""

        def answer(yes: bool | None) -> None:
            if yes:
                self.app.delete_run(row["id"], done=lambda _: (
                    self.notify(f"run {row['id']} deleted"), self.refresh_now()))

        self.app.push_screen(ConfirmScreen(f"Delete run {row['id']} and its epochs?{what}",
                                           yes="Delete"), answer)

    def action_rebuild(self) -> None:
        row = self.selected()
        if not row:
            return
        self.app.bg(self.app.store.get_run, row["id"],
                    done=lambda r: r and self.app.open_builder_from(r["spec"]))

    def action_mark(self) -> None:
        """Mark / unmark the run under the cursor for the overlay, then move down."""
        t = self.query_one(RunTable)
        rid = t.cursor_key
        if rid is None:
            return
        self.marked ^= {rid}
        self.cells[rid] = row_cells(self.by_id[rid], self.app.clock(), rid in self.marked)
        t.update_row(rid, self.cells[rid])
        t.action_move(1)
        self.render_count()

    def action_overlay(self) -> None:
        """One metric of the marked runs (or of the run under the cursor) on shared axes."""
        ids = [i for i in self.shown if i in self.marked] or [
            i for i in (self.query_one(RunTable).cursor_key,) if i is not None]
        if not ids:
            self.notify("mark runs with space first", severity="warning")
            return
        self.app.open_overlay(ids)

    def action_compare(self) -> None:
        row = self.selected()
        if row:
            self.app.open_compare(row.get("experiment"))
