"""Overlay: one metric of several runs on shared axes (W&B LEET's overlay), e.g. UA of FT, GA and
TARF over epochs. Runs are marked with space in the runs table, ``o`` opens this; ``n`` / ``N``
cycle the metric (UA, RA, TA, acc D_f, acc D_uf, loss). Live runs keep growing: polls while
visible, re-reads only when a run has new epochs."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Header, Static

from .base import StableFooter, TarfScreen
from ..widgets.charts import OVERLAY_METRICS, OverlayChart, overlay_series
from ..widgets.common import method_title

OVERLAY_POLL_S = 1.0


def run_label(run: dict) -> str:
    """``TARF s0 #12``: method as the paper prints it, seed, run id."""
    return f"{method_title(run.get('method'))} s{run.get('seed')} #{run['id']}"


class OverlayScreen(TarfScreen):
    BINDINGS = [
        Binding("escape,backspace", "back", "Back", tooltip="Back (Backspace has no Esc "
                "delay: terminals make a lone Esc wait for a possible escape sequence)"),
        Binding("n", "metric(1)", "Next metric", tooltip="Next metric: UA, RA, TA, acc D_f, acc D_uf, loss"),
        Binding("N", "metric(-1)", "Previous metric"),
    ]

    def __init__(self, run_ids: list[int], metric: str = "ua"):
        super().__init__()
        self.run_ids = list(run_ids)
        self.metric = metric
        self.runs: dict[int, dict] = {}
        self.epochs: dict[int, list[dict]] = {}
        self._stamp: Any = None
        self._busy = False
        self.loaded = 0  # reads applied (tests wait on it)

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="overlay-head")
        yield Static("", id="overlay-legend", classes="legend")
        yield OverlayChart(id="overlay-chart")
        yield StableFooter()

    def on_mount(self) -> None:
        self.timer = self.set_interval(OVERLAY_POLL_S, self.poll, name="overlay-poll")
        self.poll()

    def on_screen_suspend(self) -> None:
        self.timer.pause()

    def on_screen_resume(self) -> None:
        self.timer.resume()

    def poll(self) -> None:
        if self._busy:
            return
        self._busy = True
        store, ids, old = self.app.store, self.run_ids, self._stamp
        marks = ", ".join("?" for _ in ids)

        def read():
            try:
                stamp = store.query(
                    f"SELECT run_id, count(*) AS n, max(at) AS last FROM epochs WHERE run_id IN "
                    f"({marks}) GROUP BY run_id ORDER BY run_id", ids)
                stamp = tuple((r["run_id"], r["n"], r["last"]) for r in stamp)
                if stamp == old:
                    return stamp, None, None
                runs = store.query(f"SELECT id, method, seed, status, case_no FROM runs "
                                   f"WHERE id IN ({marks})", ids)
                eps = store.query(f"SELECT run_id, epoch, phase, loss, ua, ra, ta, acc_f, acc_uf "
                                  f"FROM epochs WHERE run_id IN ({marks}) ORDER BY run_id, epoch",
                                  ids)
                return stamp, runs, eps
            finally:
                self.app.call_from_thread(setattr, self, "_busy", False)

        self.app.bg(read, done=self.apply, group="overlay-read")

    def apply(self, result) -> None:
        stamp, runs, eps = result
        self._stamp = stamp
        if runs is not None:
            self.runs = {r["id"]: r for r in runs}
            self.epochs = {i: [] for i in self.run_ids}
            for e in eps:
                self.epochs[e["run_id"]].append(e)
            self.draw()
        self.loaded += 1

    def draw(self) -> None:
        present = [i for i in self.run_ids if i in self.runs]
        series = overlay_series([(run_label(self.runs[i]), self.epochs.get(i, [])) for i in present],
                                self.metric)
        chart = self.query_one(OverlayChart)
        chart.set_series(self.metric, series)
        self.query_one("#overlay-legend", Static).update(chart.legend())
        label = next(lab for k, lab, _ in OVERLAY_METRICS if k == self.metric)
        missing = [i for i in self.run_ids if i not in self.runs]
        head = Text.assemble(("Overlay ", "bold"), f"{label} of {len(present)} run(s) · ",
                             ("n", "bold"), "/", ("N", "bold"), " next / previous metric: ",
                             " ".join(f"[{lab}]" if k == self.metric else lab
                                      for k, lab, _ in OVERLAY_METRICS))
        if missing:
            head.append(f" · runs {', '.join(map(str, missing))} no longer exist", style="red")
        if not series and present:
            head.append(f" · no {label} values yet", style="dim")
        self.query_one("#overlay-head", Static).update(head)

    def action_metric(self, step: int) -> None:
        keys = [k for k, _, _ in OVERLAY_METRICS]
        self.metric = keys[(keys.index(self.metric) + step) % len(keys)]
        self.draw()

    def action_back(self) -> None:
        self.app.pop_screen()

