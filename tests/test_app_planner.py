"""The TUI on the planner (Pilot, fake engine): "leave running & quit" then reopen -> the queued
runs start; launching a finished experiment again starts nothing; a queued run can be deleted;
a read-only workspace opens for reading with a notice and refuses writes."""

from __future__ import annotations

import stat

import pytest

from engine.store import Store, Workspace
from tarf_tui.app import TarfApp
from tarf_tui.launcher import Launcher, LocalExecutor
from tarf_tui.planner import make_plan
from tests.tui_support import FAKE_CMD, SIZE, sync, wait_for

pytestmark = pytest.mark.timeout(120)


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def fake_app(ws: Workspace, delay: float = 0.0, epochs: int = 2, **kw) -> TarfApp:
    store = Store(ws.db_path)
    ex = LocalExecutor(store.path, engine_cmd=FAKE_CMD,
                       env={"TARF_FAKE_DELAY": str(delay), "TARF_FAKE_EPOCHS": str(epochs)})
    return TarfApp(ws, launcher=Launcher(store, ex), poll_s=0.2, **kw)


def statuses(ws: Workspace) -> dict[int, str]:
    with Store(ws.path / "tarf.db") as s:
        return {r["id"]: r["status"] for r in s.list_runs()}


def engine_starts(ws: Workspace) -> int:
    logs = ws.path / "logs"
    return sum(p.read_text().count(" start: ") for p in logs.glob("run-*.log")) if logs.exists() else 0


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


@sync
async def test_leave_running_then_reopen_starts_the_queued_runs(ws):
    app = fake_app(ws, delay=0.5, epochs=4, workers=1, start_screen="runs")
    async with app.run_test(size=SIZE) as pilot:
        plans = []
        app.launch({"method": "ft,ga"}, done=plans.append)
        await wait_for(pilot, lambda: plans, timeout=30, what="the plan")
        await wait_for(pilot, lambda: "running" in statuses(ws).values(), timeout=30, what="the reference running")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "QuitScreen", timeout=30, what="quit dialog")
        await pilot.press("l")  # leave running & quit
        await wait_for(pilot, lambda: not app.is_running, timeout=30, what="exit")
    st = statuses(ws)
    ref, ft, ga = sorted(st)
    assert st[ft] == st[ga] == "queued"  # left queued, not cancelled
    # reopen: the queued runs resume (after the reference, still running or finished)
    app2 = fake_app(ws, workers=1, start_screen="runs")
    async with app2.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: set(statuses(ws).values()) == {"finished"}, timeout=60,
                       what="every run finished")
        assert any("resumed 2 queued run(s)" in n for n in notes(app2))
    with Store(ws.path / "tarf.db") as s:
        rows = {r["id"]: r for r in s.list_runs()}
    assert rows[ft]["started_at"] >= rows[ref]["finished_at"]


@sync
async def test_launching_a_finished_experiment_again_starts_nothing(ws):
    app = fake_app(ws, workers=2, start_screen="runs")
    async with app.run_test(size=SIZE) as pilot:
        plans = []
        app.launch({"method": "ft"}, done=plans.append)
        await wait_for(pilot, lambda: len(statuses(ws)) == 2 and set(statuses(ws).values()) == {"finished"},
                       timeout=30, what="finished")
        starts = engine_starts(ws)
        assert starts == 2
        again = []
        app.launch({"method": "ft"}, done=again.append)
        await wait_for(pilot, lambda: again, timeout=30, what="second plan")
        assert [st.action for st in again[0].steps] == ["reuse", "reuse"]
        ids = []
        app.submit(again[0].specs, done=ids.append)  # the builder's path
        await wait_for(pilot, lambda: ids, timeout=30, what="submit")
        assert ids[0] == sorted(statuses(ws))
        await pilot.pause(1.0)  # a few scheduler ticks
        assert len(statuses(ws)) == 2 and engine_starts(ws) == starts


class NullExecutor:
    """Starts nothing (the run stays queued, as with an engine that has not reported in)."""

    def start(self, run_id):
        return type("H", (), {"pid": None, "log_path": None})()

    def alive(self, handle):
        return False

    def terminate(self, handle):
        pass

    def kill(self, handle):
        pass

    def adopt(self, run):
        return None


@sync
async def test_a_queued_run_can_be_deleted(ws):
    """Issue 11 #2: ``d`` refused a queued run ("cancel it first")."""
    store = Store(ws.db_path)
    rid = store.create_run(make_plan({"method": "ft"}).specs[1])
    app = TarfApp(ws, launcher=Launcher(store, NullExecutor(), stale_after=1e9), poll_s=0.2,
                  start_screen="runs")
    async with app.run_test(size=SIZE) as pilot:
        gone = []
        app.delete_run(rid, done=gone.append)
        await wait_for(pilot, lambda: gone, timeout=30, what="deleted")
        assert rid not in statuses(ws)


@sync
async def test_read_only_workspace_opens_for_reading_and_refuses_writes(ws):
    with Store(ws.db_path) as s:
        rid = s.create_run(make_plan({"method": "ft"}).specs[0])  # queued
    for p in [ws.path, *ws.path.rglob("*")]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    before = (ws.path / "tarf.db").read_bytes()
    try:
        app = TarfApp(Workspace(ws.path), poll_s=0.2)
        async with app.run_test(size=SIZE) as pilot:
            assert app.store.read_only
            await wait_for(pilot, lambda: any("is read-only" in n for n in notes(app)),
                           timeout=30, what="the read-only notice")
            assert "read-only" in app.sub_title
            await wait_for(pilot, lambda: app.runs.rows if hasattr(app, "runs") else None,
                           timeout=30, what="rows shown")
            app.cancel_runs([rid])
            await wait_for(pilot, lambda: any("cannot write to it" in n for n in notes(app)),
                           timeout=30, what="a refused write")
            app.launch({"method": "ft"})
            await wait_for(pilot, lambda: sum("cannot write to it" in n for n in notes(app)) >= 2,
                           timeout=30, what="a refused launch")
        assert (ws.path / "tarf.db").read_bytes() == before
        assert statuses(ws) == {rid: "queued"}
    finally:
        for p in [ws.path, *ws.path.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)
