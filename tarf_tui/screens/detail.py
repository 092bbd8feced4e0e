"""Run detail: live charts of UA, RA, TA, acc on D_f and D_uf (0..100 %) and of the loss per
epoch 1..N (TARF's phases marked, ascent outliers clipped), final metrics with Gap against
Retrained, TARF's unit decisions, the spec and the engine's events as readable lines. For TARF
and TARF-I, ``i`` switches to the target identification view: each unit's accuracy change at
t1 with the excluded units and the truly hidden target units marked, and the ranking margin.
Polls while visible only; charts redraw at most once per poll."""

from __future__ import annotations

import json
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import ContentSwitcher, Header, Log, Static

from engine.cases import CASES
from engine.store import ACTIVE

from .base import StableFooter, TarfScreen
from .. import logs
from ..slurm import where as slurm_where
from ..widgets.charts import (EpochChart, IdentificationChart, ident_legend, ident_summary,
                              ident_table, identification, phase_spans)
from ..widgets.common import (CATEGORY_SHORT, CATEGORY_STYLE, epoch_progress, fmt_num, fmt_secs, fmt_time,
                              method_title, planned_epochs, run_time, status_text)

DETAIL_POLL_S = 0.5  # charts update at most this often (and only when an epoch landed)
IDENT_METHODS = ("tarf", "tarf-i")  # methods that identify the target at t1


def _num(v: Any, digits: int = 2) -> str:
    return fmt_num(v, digits) if isinstance(v, (int, float)) else "–"


def format_event(line: str) -> str:
    """One engine log line as a person reads it: JSON events become short sentences, the
    launcher's ``#`` headers and free text pass through."""
    s = line.strip()
    if not s.startswith("{"):
        return line.rstrip()
    try:
        ev = json.loads(s)
    except ValueError:
        return line.rstrip()
    if not isinstance(ev, dict) or "event" not in ev:
        return line.rstrip()
    kind = ev.get("event")
    if kind == "epoch":
        parts = [f"epoch {int(ev.get('epoch', 0)) + 1}"]
        if ev.get("phase") and ev["phase"] not in ("unlearn",):
            parts.append(f"phase {ev['phase']}")
        parts.append(f"loss {_num(ev.get('loss'), 4)}")
        parts.append(" ".join(f"{k.upper()} {_num(ev.get(k), 1)}" for k in ("ua", "ra", "ta")
                              if ev.get(k) is not None))
        if ev.get("seconds") is not None:
            parts.append(f"{_num(ev['seconds'], 1)}s")
        if ev.get("cached"):
            parts.append("(cached)")
        return " · ".join(p for p in parts if p)
    if kind == "pretrain":  # epoch counted from 0 in the event, shown 1..N (logs.pretrain_state)
        total = ev.get("epochs")
        what = "original model" if ev.get("kind", "original") == "original" else "Retrained reference"
        done = ev["epoch"] + 1 if isinstance(ev.get("epoch"), int) else "?"
        return (f"{what} training epoch {done}" + (f"/{total}" if total else "")
                + f" · loss {_num(ev.get('loss'), 4)}")
    if kind == "running":
        return f"engine started (pid {ev.get('pid')})"
    if kind == "task":
        sizes = ev.get("sizes") or {}
        txt = f"task ready on {ev.get('device', '?')}"
        if sizes:
            txt += " · " + " ".join(f"{k} {v}" for k, v in list(sizes.items())[:6])
        if ev.get("note"):
            txt += f" · {ev['note']}"
        return txt
    if kind in ("original", "reference"):
        what = "original model" if kind == "original" else "Retrained reference"
        how = "from the cache" if ev.get("cached") else "trained"
        accs = " ".join(f"{k.upper()} {_num(ev.get(k), 1)}" for k in ("ua", "ra", "ta")
                        if ev.get(k) is not None)
        test = f"test acc {_num(ev.get('test_acc'), 1)}" if ev.get("test_acc") is not None else ""
        return " · ".join(p for p in (f"{what} {how}", accs, test) if p)
    if kind == "finished":
        return ("finished · " + " ".join(f"{k.upper()} {_num(ev.get(k), 2)}"
                                         for k in ("ua", "ra", "ta", "mia", "gap")
                                         if ev.get(k) is not None)
                + (f" · RTE {_num(ev.get('rte_s'), 1)}s" if ev.get("rte_s") is not None else ""))
    if kind in ("failed", "diverged"):
        return f"{kind}: {ev.get('error', '')}"
    if kind == "killed":
        return "killed (cancelled)"
    if kind == "not-run":
        return f"not run: the run is {ev.get('status')}"
    rest = ", ".join(f"{k}={v}" for k, v in ev.items() if k not in ("event", "run_id"))
    return f"{kind}" + (f": {rest}" if rest else "")


def eta_seconds(epochs: list[dict], total: int | None) -> float | None:
    """Seconds left: the epochs still to run times the mean seconds of those done (None while
    unknown)."""
    secs = [e["seconds"] for e in epochs if isinstance(e.get("seconds"), (int, float))]
    if not total or not secs:
        return None
    return max(total - len(epochs), 0) * sum(secs) / len(secs)


def metrics_table(run: dict, epochs: list[dict], now=None) -> Table:
    t = Table(box=None, padding=(0, 1), show_header=True, header_style="bold")
    t.add_column("")
    t.add_column("run", justify="right")
    t.add_column("Retrained", justify="right")
    last = epochs[-1] if epochs else {}
    for key, label in (("ua", "UA"), ("ra", "RA"), ("ta", "TA"), ("mia", "MIA")):
        v = run.get(key) if run.get(key) is not None else last.get(key)
        t.add_row(label, fmt_num(v, 2), fmt_num(run.get(f"ref_{key}"), 2))
    t.add_row(Text("Gap", style="bold"), Text(fmt_num(run.get("gap"), 2), style="bold yellow"), "")
    label, secs = run_time(run, now)
    t.add_row(label, fmt_secs(secs), "")
    for key, label in (("acc_f", "acc D_f"), ("acc_uf", "acc D_uf"), ("acc_test_t", "acc test_t")):
        v = run.get(key) if run.get(key) is not None else last.get(key)
        t.add_row(label, fmt_num(v, 2), "")
    wall = (run.get("extras") or {}).get("wall_s") if run.get("rte_s") is not None else None
    if wall is not None:
        t.add_row("wall", fmt_secs(wall), "")
    return t


def tarf_text(epochs: list[dict]) -> str:
    """TARF's phases and its unit decisions (k_t, kept / excluded units) from epoch extras."""
    lines = []
    spans = phase_spans(epochs)
    if spans and any(s[0] for s in spans):
        lines.append("phases: " + " → ".join(f"{p or '?'} {a + 1}–{b + 1}" for p, a, b in spans))
    keys = ("k_t", "kept", "excluded", "excluded_units")
    last_with = next((e for e in reversed(epochs)
                      if any(k in (e.get("extras") or {}) for k in keys)), None)
    if last_with:
        x = last_with["extras"]
        if "k_t" in x:
            lines.append(f"k_t = {fmt_num(x['k_t'], 4)} (epoch {last_with['epoch'] + 1})")
        names = x.get("unit_names") or []
        if "excluded" in x or "excluded_units" in x:
            v = x.get("excluded_units", x.get("excluded"))  # the engine's key first
            if isinstance(v, (list, tuple)):
                v = ", ".join(names[u] if isinstance(u, int) and u < len(names) else str(u)
                              for u in v)
            lines.append(f"excluded: {v}")
        if "kept" in x:
            v = x["kept"]
            v = ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else f"{v} D_un samples"
            lines.append(f"kept: {v}")
    return "\n".join(lines)


class DetailScreen(TarfScreen):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", tooltip="Back (Backspace has no Esc "
                "delay: terminals make a lone Esc wait for a possible escape sequence)"),
        Binding("i", "identification", "Identification", tooltip="TARF / TARF-I: target identification view (again: the epoch charts)"),
        Binding("c", "cancel", "Cancel run"),
        Binding("b", "rebuild", "Re-open in builder"),
        Binding("m", "compare", "Compare", tooltip="Compare the run's experiment (Table 1)"),
    ]

    def __init__(self, run_id: int):
        super().__init__()
        self._busy = False
        self.updates = 0  # chart updates applied (tests read it)
        self._reset(run_id)

    def _reset(self, run_id: int) -> None:
        self.run_id = run_id
        self.run: dict[str, Any] = {}
        self.epochs: list[dict] = []
        self._stamp: Any = None
        self._log_off = -1  # bytes of the log already shown
        self.ident = None  # the run's Identification, once its t1 epoch is stored
        self._status: str | None = None

    def show_run(self, run_id: int) -> None:
        """Show another run in this (installed, reused) screen: one screen object serves every
        run's detail, so opening one costs no widget construction."""
        if run_id == self.run_id and self.run:
            self.poll()
            return
        self._reset(run_id)
        self.query_one("#detail-head", Static).update(f"run {run_id} · loading…")
        self.query_one(ContentSwitcher).current = "view-epochs"
        for c in self.query(EpochChart):
            c.set_epochs([], None)
        self.query_one("#chart-ident", IdentificationChart).set_identification(None)
        self.query_one(Log).clear()
        for sel in ("#metrics", "#tarf", "#spec", "#ident-summary", "#ident-table"):
            self.query_one(sel, Static).update("")
        self.timer.resume()
        self.poll()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"run {self.run_id} · loading…", id="detail-head")
        with ContentSwitcher(initial="view-epochs", id="detail-views"):
            with Horizontal(id="view-epochs"):
                with Vertical(id="acc-col"):
                    yield Static("", id="legend-acc", classes="legend")
                    yield EpochChart("acc", id="chart-acc")
                with Vertical(id="loss-col"):
                    yield Static("", id="legend-loss", classes="legend")
                    yield EpochChart("loss", id="chart-loss")
            with Horizontal(id="view-ident"):
                with Vertical(id="ident-col"):
                    yield Static("", id="ident-summary", classes="legend")
                    yield Static(ident_legend(), id="legend-ident", classes="legend")
                    yield IdentificationChart(id="chart-ident")
                with VerticalScroll(id="ident-table-col", classes="panel"):
                    yield Static("", id="ident-table")
        with Horizontal(id="detail-bottom"):
            with VerticalScroll(id="metrics-col", classes="panel") as col:
                col.border_title = "Final metrics"
                yield Static("", id="metrics")
                yield Static("", id="tarf")
            with VerticalScroll(id="spec-col", classes="panel") as col:
                col.border_title = "Spec"
                yield Static("", id="spec")
            with Vertical(id="log-col", classes="panel") as col:
                col.border_title = "Events"
                yield Log(id="log", highlight=False, auto_scroll=True)
        yield StableFooter()

    def on_mount(self) -> None:
        self.timer = self.set_interval(DETAIL_POLL_S, self.poll, name="detail-poll")
        for c in self.query(EpochChart):
            self.query_one(f"#legend-{c.kind}", Static).update(c.legend())
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
            import os

            try:
                s = store.query("SELECT status, finished_at, log_path, "
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
                    new = store.query("SELECT * FROM epochs WHERE run_id = ? AND epoch > ? "
                                      "ORDER BY epoch", [rid, last_epoch])
                    for e in new:
                        e["extras"] = json.loads(e["extras"]) if e["extras"] else {}
                log = None
                if size >= 0 and size != log_off:
                    log = logs.read_from(run.get("log_path"), log_off, size)
                # before its first epoch row a run trains the original model / Retrained
                run["_phase"] = (logs.phase_text(run) if run.get("status") == "running"
                                 and not s["n"] else None)
                return stamp, run, new, log
            finally:
                self.app.call_from_thread(setattr, self, "_busy", False)

        self.app.bg(read, done=lambda r: self.apply(r, rid), group="detail-read")

    def apply(self, result, rid: int | None = None) -> None:
        if rid is not None and rid != self.run_id:
            return  # read for the run shown before
        if result is None:
            self.query_one("#detail-head", Static).update(f"run {self.run_id} no longer exists")
            self.timer.pause()
            return
        stamp, run, new, log = result
        self._stamp = stamp
        if run is None:
            return
        self.run = run
        total = planned_epochs(run)
        if new is not None:
            if new and self.epochs and new[0]["epoch"] <= self.epochs[-1]["epoch"]:
                self.epochs = [e for e in self.epochs if e["epoch"] < new[0]["epoch"]]
            self.epochs = self.epochs + new
            for c in self.query(EpochChart):
                c.set_epochs(self.epochs, total)
                self.query_one(f"#legend-{c.kind}", Static).update(c.legend())
            self.updates += 1
        if new is not None or run.get("status") != self._status:
            self._status = run.get("status")  # the final extras (hits / n) come with the end
            self.render_ident()
        if log is not None:
            start, offset, lines = log
            w = self.query_one(Log)
            if start != self._log_off:
                w.clear()
            self._log_off = offset
            if lines:
                w.write_lines([format_event(x) for x in lines])
            self.query_one("#log-col").border_subtitle = str(run.get("log_path") or "no log yet")
        self.render_info()

    def render_ident(self) -> None:
        ident = identification(self.epochs, self.run.get("extras"))
        self.ident = ident
        self.query_one("#chart-ident", IdentificationChart).set_identification(ident)
        self.query_one("#legend-ident", Static).update(ident_legend(ident, self.size.width < 120))
        if ident is None:
            method = self.run.get("method")
            why = ("waiting for epoch t1, where TARF ranks the units" if method in IDENT_METHODS
                   else f"{method_title(method)} does not identify a target (TARF and TARF-I do)")
            self.query_one("#ident-summary", Static).update(Text(why, style="dim"))
            self.query_one("#ident-table", Static).update("")
            return
        self.query_one("#ident-summary", Static).update(ident_summary(ident))
        self.query_one("#ident-table", Static).update(ident_table(ident))

    def render_info(self) -> None:
        run = self.run
        case = CASES[run["case_no"] - 1] if run.get("case_no") else None
        cat = case.category if case else ""
        style = CATEGORY_STYLE.get(cat, "")
        label, secs = run_time(run, self.app.clock())
        wide = self.size.width >= 120
        head = Text.assemble(
            (f"run {run['id']} ", "bold"), status_text(run["status"]),
            f"  {method_title(run.get('method'))} · {run.get('dataset')} · case {run.get('case_no')} ",
            (f"({cat})" if wide else f"({CATEGORY_SHORT.get(cat, cat)})", style),
            f" · target {run.get('target') or 'default'} · forget "
            f"{run.get('forget') or 'default'} · seed {run.get('seed')} · "
            f"{epoch_progress(len(self.epochs), planned_epochs(run))} · {label} {fmt_secs(secs)}"
            + (f" · started {fmt_time(run.get('started_at'))}" if wide else ""))
        if run.get("_phase"):  # before the first epoch row: what the engine is doing
            head.append(f" · {run['_phase']}", style="cyan")
        eta = eta_seconds(self.epochs, planned_epochs(run)) if run.get("status") == "running" else None
        if eta is not None:
            head.append(f" · ETA {fmt_secs(eta)}")
        where = slurm_where(run)
        if where:
            head.append(f" · {where}")
        if self.ident is not None and self.ident.hits is not None:
            head.append(f" · identified {self.ident.hits}/{self.ident.n}", style="bold")
            head.append(" (i: view)", style="dim")
        if run.get("error"):
            head.append(f"\n{run['error']}", style="red")
        self.query_one("#detail-head", Static).update(head)
        self.query_one("#metrics", Static).update(metrics_table(run, self.epochs, self.app.clock()))
        self.query_one("#tarf", Static).update(tarf_text(self.epochs))
        spec = run.get("spec") or {}
        self.query_one("#spec", Static).update(json.dumps(spec, indent=1, sort_keys=True))

    # ---- actions -------------------------------------------------------------------------
    def action_back(self) -> None:
        self.app.pop_screen()

    def action_identification(self) -> None:
        sw = self.query_one(ContentSwitcher)
        if sw.current == "view-ident":
            sw.current = "view-epochs"
            return
        if self.ident is None and self.run.get("method") not in IDENT_METHODS:
            self.notify(f"run {self.run_id} ({method_title(self.run.get('method'))}) has no target "
                        "identification: TARF and TARF-I identify the target at t1",
                        severity="warning")
            return
        sw.current = "view-ident"
        self.render_ident()

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
