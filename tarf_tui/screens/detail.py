"""Run detail: live charts of UA, RA, TA, acc on D_f and D_uf and of the loss per epoch (TARF's
phases marked), final metrics with Gap against Retrained, TARF's unit decisions, the spec and the
engine's log tail. Polls while visible only; charts redraw at most once per poll."""

from __future__ import annotations

import json
import os
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Log, Static

from engine.cases import CASES
from engine.store import ACTIVE

from ..widgets.charts import EpochChart, phase_spans
from ..widgets.common import CATEGORY_STYLE, fmt_num, fmt_secs, fmt_time, run_seconds, status_text

DETAIL_POLL_S = 0.5  # charts update at most this often (and only when an epoch landed)
LOG_TAIL_BYTES = 8192


def read_log_tail(path: str | None, nbytes: int = LOG_TAIL_BYTES) -> tuple[int, list[str]]:  # noqa: D103
    if not path:
        return -1, []
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            f.seek(max(size - nbytes, 0))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return -1, []
    return size, lines[-200:]


def read_log_from(path: str | None, offset: int, size: int) -> tuple[int, int, list[str]] | None:
    """Whole lines appended to the log since byte ``offset``; from the last ``LOG_TAIL_BYTES``
    when starting, when the file shrank or when too much is new. Returns (start, new offset,
    lines): a start other than ``offset`` means "replace what is shown"."""
    if not path:
        return None
    fresh = offset < 0 or offset > size or size - offset > LOG_TAIL_BYTES
    start = max(size - LOG_TAIL_BYTES, 0) if fresh else offset
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return None
    if fresh and start > 0:  # drop the partial first line
        k = data.find(b"\n") + 1
        data, start = data[k:], start + k
    cut = data.rfind(b"\n") + 1  # a partial last line comes next time
    return start, start + cut, data[:cut].decode(errors="replace").splitlines()


def metrics_table(run: dict, epochs: list[dict]) -> Table:
    t = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    t.add_column("")
    t.add_column("run", justify="right")
    t.add_column("Retrained", justify="right")
    last = epochs[-1] if epochs else {}
    for key, label in (("ua", "UA"), ("ra", "RA"), ("ta", "TA"), ("mia", "MIA")):
        v = run.get(key) if run.get(key) is not None else last.get(key)
        t.add_row(label, fmt_num(v, 2), fmt_num(run.get(f"ref_{key}"), 2))
    for key, label in (("acc_f", "acc D_f"), ("acc_uf", "acc D_uf"), ("acc_test_t", "acc test_t")):
        v = run.get(key) if run.get(key) is not None else last.get(key)
        t.add_row(label, fmt_num(v, 2), "")
    t.add_row(Text("Gap", style="bold"), Text(fmt_num(run.get("gap"), 2), style="bold yellow"), "")
    t.add_row("run time", fmt_secs(run.get("rte_s")), "")
    return t


def tarf_text(epochs: list[dict]) -> str:
    """TARF's phases and its unit decisions (k_t, kept / excluded units) from epoch extras."""
    lines = []
    spans = phase_spans(epochs)
    if spans and any(s[0] for s in spans):
        lines.append("phases: " + " → ".join(f"{p or '?'} {a}–{b}" for p, a, b in spans))
    last_with = next((e for e in reversed(epochs)
                      if any(k in (e.get("extras") or {}) for k in ("k_t", "kept", "excluded"))), None)
    if last_with:
        x = last_with["extras"]
        if "k_t" in x:
            lines.append(f"k_t = {fmt_num(x['k_t'], 4)} (epoch {last_with['epoch']})")
        for k in ("excluded", "kept"):
            if k in x:
                v = x[k]
                v = ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)
                lines.append(f"{k}: {v}")
    return "\n".join(lines)


class DetailScreen(Screen):
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("c", "cancel", "Cancel run"),
        Binding("b", "rebuild", "Re-open in builder"),
        Binding("m", "compare", "Compare"),
    ]

    def __init__(self, run_id: int):
        super().__init__()
        self.run_id = run_id
        self.run: dict[str, Any] = {}
        self.epochs: list[dict] = []
        self._stamp: Any = None
        self._busy = False
        self._log_off = -1  # bytes of the log already shown
        self.updates = 0  # chart updates applied (tests read it)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"run {self.run_id} · loading…", id="detail-head")
        with Horizontal(id="charts"):
            yield EpochChart("acc", id="chart-acc")
            yield EpochChart("loss", id="chart-loss")
        with Horizontal(id="detail-bottom"):
            with Vertical(id="metrics-col", classes="panel"):
                yield Static("[b]Final metrics[/b]", classes="section")
                yield Static("", id="metrics")
                yield Static("", id="tarf")
            with VerticalScroll(id="spec-col", classes="panel"):
                yield Static("[b]Spec[/b]", classes="section")
                yield Static("", id="spec")
            with Vertical(id="log-col", classes="panel"):
                yield Static("[b]Log[/b]", classes="section", id="log-title")
                yield Log(id="log", highlight=False, auto_scroll=True)
        yield Footer()

    def on_mount(self) -> None:
        self.timer = self.set_interval(DETAIL_POLL_S, self.poll, name="detail-poll")
        self.poll()

    def on_screen_suspend(self) -> None:
        self.timer.pause()

    def on_screen_resume(self) -> None:
        self.timer.resume()

    # ---- polling -------------------------------------------------------------------------
    def poll(self) -> None:
        """Read what is new since the last poll: the run row when anything changed, epochs
        after the last one seen, log bytes after the last offset."""
        if self._busy:
            return
        self._busy = True
        store, rid, old = self.app.store, self.run_id, self._stamp
        last_epoch = self.epochs[-1]["epoch"] if self.epochs else -1
        log_off = self._log_off

        def read():
            try:
                s = store._rows("SELECT status, finished_at, log_path, "
                                "(SELECT count(*) FROM epochs WHERE run_id = ?) AS n, "
                                "(SELECT max(at) FROM epochs WHERE run_id = ?) AS last "
                                "FROM runs WHERE id = ?", [rid, rid, rid])
                if not s:
                    return None
                s = s[0]
                try:
                    size = os.path.getsize(s["log_path"]) if s["log_path"] else -1
                except OSError:
                    size = -1
                stamp = (s["status"], s["finished_at"], s["n"], s["last"], size)
                if stamp == old:
                    return stamp, None, None, None
                run = store.get_run(rid)
                new = None
                if old is None or stamp[2:4] != old[2:4]:
                    new = store._rows("SELECT * FROM epochs WHERE run_id = ? AND epoch > ? "
                                      "ORDER BY epoch", [rid, last_epoch])
                    for e in new:
                        e["extras"] = json.loads(e["extras"]) if e["extras"] else {}
                log = None
                if size >= 0 and size != log_off:
                    log = read_log_from(run.get("log_path"), log_off, size)
                return stamp, run, new, log
            finally:
                self.app.call_from_thread(setattr, self, "_busy", False)

        self.app.bg(read, done=self.apply, group="detail-read")

    def apply(self, result) -> None:
        if result is None:
            self.query_one("#detail-head", Static).update(f"run {self.run_id} no longer exists")
            self.timer.pause()
            return
        stamp, run, new, log = result
        self._stamp = stamp
        if run is None:
            return
        self.run = run
        if new is not None:
            if new and self.epochs and new[0]["epoch"] <= self.epochs[-1]["epoch"]:
                self.epochs = [e for e in self.epochs if e["epoch"] < new[0]["epoch"]]
            self.epochs = self.epochs + new
            self.query_one("#chart-acc", EpochChart).set_epochs(self.epochs)
            self.query_one("#chart-loss", EpochChart).set_epochs(self.epochs)
            self.updates += 1
        if log is not None:
            start, offset, lines = log
            w = self.query_one(Log)
            if start != self._log_off:
                w.clear()
            self._log_off = offset
            if lines:
                w.write_lines(lines)
            self.query_one("#log-title", Static).update(
                f"[b]Log[/b] [dim]{run.get('log_path') or 'no log yet'}[/dim]")
        self.render_info()

    def render_info(self) -> None:
        run = self.run
        case = CASES[run["case_no"] - 1] if run.get("case_no") else None
        cat = case.category if case else ""
        style = CATEGORY_STYLE.get(cat, "")
        n = len(self.epochs)
        total = run.get("epochs")
        head = Text.assemble(
            (f"run {run['id']} ", "bold"), status_text(run["status"]),
            f"  {run.get('method')} · {run.get('dataset')} · case {run.get('case_no')} ",
            (f"({cat})", style), f" · target {run.get('target') or 'default'} · forget "
            f"{run.get('forget') or 'default'} · seed {run.get('seed')} · epochs {n}"
            + (f"/{total}" if total else "")
            + f" · {fmt_secs(run_seconds(run, self.app.clock()))} · started "
              f"{fmt_time(run.get('started_at'))}")
        if run.get("error"):
            head.append(f"\n{run['error']}", style="red")
        self.query_one("#detail-head", Static).update(head)
        self.query_one("#metrics", Static).update(metrics_table(run, self.epochs))
        self.query_one("#tarf", Static).update(tarf_text(self.epochs))
        spec = run.get("spec") or {}
        self.query_one("#spec", Static).update(json.dumps(spec, indent=1, sort_keys=True))

    # ---- actions -------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_cancel(self) -> None:
        from .dialogs import ConfirmScreen

        if self.run.get("status") not in ACTIVE:
            self.notify(f"run {self.run_id} is {self.run.get('status')}: nothing to cancel",
                        severity="warning")
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.app.cancel_runs([self.run_id], done=lambda st: self.notify(
                    f"run {self.run_id}: {st.get(self.run_id, 'gone')}"))

        self.app.push_screen(ConfirmScreen(f"Cancel run {self.run_id}?", yes="Cancel run"), answer)

    def action_rebuild(self) -> None:
        if self.run.get("spec"):
            self.app.open_builder_from(self.run["spec"])

    def action_compare(self) -> None:
        self.app.open_compare(self.run.get("experiment"))
