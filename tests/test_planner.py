"""tarf_tui.planner: the plan (reuse, join, dependency order, dry run) and the Scheduler (worker
limit, dependency order, cancel, resume, release) with a recording executor and the fake
engine."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine.errors import TarfError
from engine.store import Store, parse_time
from tarf_tui.launcher import Launcher, LocalExecutor
from tarf_tui.planner import Scheduler, make_plan, plan_specs

ROOT = Path(__file__).resolve().parent.parent
FAKE = [sys.executable, str(ROOT / "tests" / "fake_engine.py")]


class Handle:
    def __init__(self, rid: int):
        self.run_id, self.pid, self.log_path = rid, 10_000 + rid, None


class ManualExecutor:
    """Engines that run until the test ends them: ``finish(rid)`` writes the row like an engine
    would. ``alive`` is the row's status; records the start order."""

    def __init__(self, store: Store):
        self.store = store
        self.started: list[int] = []

    def start(self, run_id: int) -> Any:
        self.started.append(run_id)
        return Handle(run_id)

    def alive(self, handle: Any) -> bool:
        return (self.store.get_run(handle.run_id) or {}).get("status") == "running"

    def terminate(self, handle: Any) -> None:
        self.store.mark(handle.run_id, "killed", error="terminated", expect=("running",))

    def kill(self, handle: Any) -> None:
        self.terminate(handle)

    def adopt(self, run: dict) -> Any:
        return Handle(run["id"]) if run.get("pid") else None

    def finish(self, rid: int) -> None:
        self.store.finish(rid, {"ua": 1.0, "ra": 2.0, "ta": 3.0, "mia": 4.0, "gap": 5.0, "rte_s": 1.0})


def sched(store, workers=1):
    ex = ManualExecutor(store)
    return Scheduler(Launcher(store, ex, stale_after=1e9), workers), ex


def test_plan_orders_reference_first_and_writes_nothing(store):
    plan = make_plan({"method": "ft,ga", "seed": "0-1"}, store=store)
    assert [(s.spec.method, s.spec.seed) for s in plan.steps] == [
        ("retrained", 0), ("retrained", 1), ("ft", 0), ("ga", 0), ("ft", 1), ("ga", 1)]
    assert {s.action for s in plan.steps} == {"start"}
    by = {(s.spec.method, s.spec.seed): s for s in plan.steps}
    # each method waits for its own seed's Retrained; the second method of a seed also for the
    # first one (one engine trains the shared original model, the others wait for the cache)
    assert by["ft", 0].after == (0,) and by["ga", 0].after == (0, 2)
    assert by["ft", 1].after == (1,) and by["ga", 1].after == (1, 4)
    assert by["retrained", 0].after == () and by["retrained", 1].after == ()
    assert store.list_runs() == []
    text = plan.render()
    assert "6 runs: 6 to run" in text and "#3   start" in text and "after #1" in text


def test_reuse_and_join(store):
    s, ex = sched(store)
    plan = make_plan({"method": "ft"}, store=store)
    ids = s.submit(plan)
    assert ex.started == [ids[0]]  # the reference first, FT waits for it
    again = make_plan({"method": "ft"}, store=store)
    assert [st.action for st in again.steps] == ["join", "join"]  # queued / running: no new rows
    assert [st.run_id for st in again.steps] == ids
    assert s.submit(again) == ids and len(store.list_runs()) == 2
    for rid in ids:
        ex.finish(rid) if store.get_run(rid)["status"] == "running" else None
        s.tick()
    ex.finish(ids[1])
    s.tick()
    done = make_plan({"method": "ft,ga"}, store=store)
    assert [st.action for st in done.steps] == ["reuse", "reuse", "start"]
    assert "3 runs: 1 to run, 2 reused" in done.summary()
    assert [st.action for st in make_plan({"method": "ft"}, store=store, rerun=True).steps] == ["start", "start"]


def test_worker_limit_and_dependency_order(store):
    s, ex = sched(store, workers=2)
    ids = s.submit(make_plan({"method": "ft,ga", "seed": "0,1"}, store=store))
    ref0, ref1, ft0, ga0, ft1, ga1 = ids
    assert ex.started == [ref0, ref1]  # two references, side by side; methods wait
    s.tick()
    assert ex.started == [ref0, ref1]
    ex.finish(ref0)
    s.tick()
    assert ex.started == [ref0, ref1, ft0]  # ga0 waits for ft0 (the shared original)
    ex.finish(ft0)
    s.tick()
    assert ex.started[-1] == ga0
    assert s.running == 2 and s.pending == 2
    for rid in (ref1, ga0):
        ex.finish(rid)
    s.tick()
    ex.finish(ft1)
    s.tick()
    ex.finish(ga1)
    t = s.tick()
    assert s.is_done() and set(ex.started) == set(ids) and ga1 in t.ended


def test_cancel_and_cancel_all(store):
    s, ex = sched(store)
    ids = s.submit(make_plan({"method": "ft,ga"}, store=store))
    final = s.cancel([ids[1]], timeout=1)
    assert final == {ids[1]: "killed"} and s.pending == 1
    out = s.cancel_all(timeout=1)
    assert set(out.values()) == {"killed"}
    assert {r["status"] for r in store.list_runs()} == {"killed"}
    assert s.is_done()


def test_release_then_resume_in_a_new_scheduler(store):
    s, ex = sched(store)
    ids = s.submit(make_plan({"method": "ft,ga"}, store=store))
    assert s.release() == ids[1:]  # "leave running & quit": queued runs stay queued
    assert store.statuses(ids[1:]) == {i: "queued" for i in ids[1:]}
    # a later session: the reference is still running, the queued runs wait for it again
    s2, ex2 = sched(store)
    assert s2.resume() == ids[1:]
    assert ex2.started == []
    ex.finish(ids[0])
    s2.tick()
    assert ex2.started == [ids[1]]
    ex2.finish(ids[1])
    s2.tick()
    assert ex2.started == [ids[1], ids[2]]
    with pytest.raises(TarfError, match=f"cannot resume: run {ids[1]} is finished"):
        s2.resume([ids[1]])


def test_plan_specs_drops_repeats(store):
    plan = make_plan({"method": "ft"})
    twice = plan_specs(plan.specs + plan.specs, store)
    assert len(twice.steps) == 2


def test_scheduler_runs_the_fake_engine(store):
    s = Scheduler(Launcher(store, LocalExecutor(store.path, engine_cmd=FAKE)), workers=1)
    ids = s.submit(make_plan({"method": "ft"}, store=store))
    deadline = time.monotonic() + 60
    while not s.is_done() and time.monotonic() < deadline:
        s.tick()
        time.sleep(0.05)
    rs = {r["id"]: r for r in store.list_runs()}
    assert [rs[i]["status"] for i in ids] == ["finished", "finished"]
    assert parse_time(rs[ids[1]]["started_at"]) >= parse_time(rs[ids[0]]["finished_at"])


def test_submit_takes_over_queued_rows_nobody_runs(store):
    """A headless killed mid-grid (SIGKILL) leaves its waiting runs queued: planning the same
    grid again joins them, and the new scheduler must start them, not wait forever."""
    s1, ex1 = sched(store)
    ids = s1.submit(make_plan({"method": "ft"}, store=store))
    ex1.finish(ids[0])  # the reference ended; the driver died before starting FT
    del s1
    s2, ex2 = sched(store)
    plan = make_plan({"method": "ft"}, store=store)
    assert [st.action for st in plan.steps] == ["reuse", "join"]
    assert s2.submit(plan) == ids
    assert ex2.started == [ids[1]]
