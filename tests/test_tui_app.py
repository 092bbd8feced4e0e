"""Pilot tests of the TUI: builder (case matrix, refusals, tree, sizes, params, launch), runs
table fed by another process, cancel, delete, re-open in builder, detail charts growing, compare
export, quitting with runs in flight. The fake engine keeps them fast."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from engine.store import Store, Workspace
from tarf_tui.app import TarfApp
from tarf_tui.launcher import Launcher, LocalExecutor
from tarf_tui.screens.builder import BuilderScreen
from tarf_tui.screens.detail import DetailScreen
from tarf_tui.screens.dialogs import ConfirmScreen, QuitScreen
from tarf_tui.screens.runs import RunsScreen
from tarf_tui.widgets.case_picker import CasePicker
from tarf_tui.widgets.charts import EpochChart
from tarf_tui.widgets.hierarchy_tree import HierarchyTree, NodeRef
from tests.tui_support import (FAKE_CMD, ROOT, SIZE, RecordingLauncher, fixed_clock,
                                    populate, sync, wait_for)

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


def recording_app(ws: Workspace, **kw) -> tuple[TarfApp, RecordingLauncher]:
    launcher = RecordingLauncher(Store(ws.db_path))
    return TarfApp(ws, launcher=launcher, clock=fixed_clock, poll_s=0.2, **kw), launcher


def fake_app(ws: Workspace, delay: float = 0.0, epochs: int = 3, **kw) -> TarfApp:
    store = Store(ws.db_path)
    ex = LocalExecutor(store.path, engine_cmd=FAKE_CMD,
                       env={"TARF_FAKE_DELAY": str(delay), "TARF_FAKE_EPOCHS": str(epochs)})
    return TarfApp(ws, launcher=Launcher(store, ex), poll_s=0.2, **kw)


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def pick(pilot, no: int) -> None:
    picker = pilot.app.screen.query_one(CasePicker)
    picker.focus()
    picker.move_to(no)
    await pilot.pause()
    await pilot.press("enter")
    await pilot.pause()


# ---- builder ---------------------------------------------------------------------------------
@sync
async def test_empty_workspace_opens_builder_with_all_cases(ws):
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, BuilderScreen)
        picker = app.screen.query_one(CasePicker)
        text = " ".join(str(picker.get_cell_at((r, c)).plain)
                        for r in range(9) for c in range(2, 5))
        for no in range(1, 28):
            assert f" {no} " in f" {text} ".replace("★", " ").replace("⚠", " ").replace("▶", " ")
        for cat in ("all-matched", "target-mismatch", "model-mismatch", "data-mismatch",
                    "≈ all-matched", "different", "impractical"):  # ≈: similar-to-all-matched
            assert cat in text
        assert "★ 10" in text and "★ 13" in text  # main cases marked


@sync
async def test_pick_a_case_and_impractical_refused_unless_allowed(ws):
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        b: BuilderScreen = app.screen
        await pick(pilot, 12)
        assert b.case_no == 12
        assert b.target == "car" and b.forget == ("car",)  # model mismatch: target a class
        await pick(pilot, 14)  # impractical
        assert b.case_no == 12
        assert any("impractical" in n for n in notes(app))
        await pilot.click("#allow-impractical")
        await pick(pilot, 14)
        assert b.case_no == 14
        # and the main-case button brings case 10 back
        await pilot.click("#main-10")
        await pilot.pause()
        assert b.case_no == 10


@sync
async def test_subset_cases_unavailable_with_two_layers(ws):
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        b: BuilderScreen = app.screen
        b.query_one("#subsets").value = "0"
        await wait_for(pilot, lambda: b.subsets == 0, what="K=0")
        assert "n/a" in b.query_one(CasePicker).get_cell_at((0, 2)).plain
        await pick(pilot, 1)
        assert b.case_no == 11
        assert any("subset" in n for n in notes(app))


@sync
async def test_tree_allows_only_valid_nodes_and_sizes_follow(ws):
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        b: BuilderScreen = app.screen
        tree = b.query_one(HierarchyTree)
        await wait_for(pilot, lambda: b.sizes, what="partition sizes")
        assert (b.sizes["d_f"], b.sizes["d_uf"], b.sizes["d_r"]) == (300, 600, 2700)
        assert not tree.pick(NodeRef("class", "cat"))  # outside the target 'vehicle'
        await pilot.pause()
        assert b.forget == ("car",)
        assert any("not inside the target" in n for n in notes(app))
        assert not tree.pick(NodeRef("subset", "car/0"))  # wrong level for case 11
        assert tree.pick(NodeRef("class", "truck"))
        await wait_for(pilot, lambda: b.forget == ("car", "truck"))
        await wait_for(pilot, lambda: b.sizes and b.sizes["d_f"] == 600, what="sizes update")
        assert b.sizes["d_uf"] == 300
        # a new target: forgetting data defaults inside it
        assert tree.pick(NodeRef("superclass", "animal"))
        await wait_for(pilot, lambda: b.target == "animal" and b.forget == ("cat",))
        # keyboard: enter on a dimmed node is refused
        tree.focus()
        tree.move_cursor(tree.root.children[1].children[0].children[0]
                         if tree.root.children[1].children[0].children else tree.root.children[0])
        await pilot.pause()


@sync
async def test_params_form_validates_inline_and_blocks_launch(ws):
    app, launcher = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        b: BuilderScreen = app.screen
        b.query_one("#params").collapsed = False
        await pilot.pause()
        inp = b.query_one("#p-tarf-k")
        inp.value = "abc"
        await pilot.pause()
        form = b.query_one("#form-tarf")
        assert "k" in form.errors
        await pilot.press("ctrl+l")
        await pilot.pause(0.3)
        assert launcher.submitted == []
        assert any("tarf.k" in n for n in notes(app))
        inp.value = "0.05"
        await pilot.pause()
        assert form.errors == {} and form.values() == {"k": 0.05}


@sync
async def test_launch_calls_launcher_with_the_right_specs(ws):
    app, launcher = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        b: BuilderScreen = app.screen
        ml = b.query_one("#methods")
        ml.deselect_all()
        ml.select("tarf")
        b.query_one("#seeds").value = "0,1"
        b.query_one("#epochs").value = "4"
        b.query_one("#workers").value = "3"
        b.query_one("#params").collapsed = False
        await pilot.pause()
        b.query_one("#p-tarf-k").value = "0.03"
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: len(launcher.submitted) == 4, what="4 submits")
        specs = launcher.submitted
        assert sorted((s.method, s.seed) for s in specs) == [
            ("retrained", 0), ("retrained", 1), ("tarf", 0), ("tarf", 1)]
        for s in specs:
            assert (s.dataset, s.case, s.target, s.forget) == ("synthetic", 11, "vehicle", ("car",))
        tarf = [s for s in specs if s.method == "tarf"]
        assert all(s.epochs == 4 and s.params["k"] == 0.03 and s.params["epochs"] == 4
                   for s in tarf)
        assert specs[0].method == "retrained"  # references first
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="runs screen")
        assert app.queue.workers == 3
        await wait_for(pilot, lambda: len(app.runs.rows) == 4, what="rows")


# ---- runs ------------------------------------------------------------------------------------
@sync
async def test_runs_table_updates_from_another_process(ws):
    populate(ws, seeds=(0,), methods=("retrained",))
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, RunsScreen)
        runs: RunsScreen = app.screen
        await wait_for(pilot, lambda: len(runs.rows) == 1)
        # another process queues a run and runs the fake engine on it
        code = ("import sys; sys.path.insert(0, %r)\n"
                "from engine.store import Store; from engine.spec import RunSpec\n"
                "s = Store(%r); print(s.create_run(RunSpec(method='ga', case=12)))") % (
            str(ROOT), str(ws.db_path))
        rid = int(subprocess.check_output([sys.executable, "-c", code], text=True).strip())
        await wait_for(pilot, lambda: rid in runs.by_id, what="new row")
        eng = subprocess.Popen([*FAKE_CMD, "run", "--db", str(ws.db_path), "--run-id", str(rid),
                                "--epochs", "3", "--delay", "0.2"])
        try:
            await wait_for(pilot, lambda: runs.by_id.get(rid, {}).get("status") == "running",
                           what="running row")
            await wait_for(pilot, lambda: runs.by_id[rid]["status"] == "finished", what="finished")
        finally:
            eng.wait(10)
        assert runs.by_id[rid]["gap"] is not None
        table = runs.query_one("#runs-table")
        assert table.row_count == 2
        # filter and sort
        runs.query_one("#runs-filter").value = "method=ga"
        await pilot.pause()
        assert runs.shown == [rid]
        runs.query_one("#runs-filter").value = ""
        await pilot.pause()
        runs.query_one("#runs-table").focus()
        await pilot.press("s")
        assert runs.sort_key == "status"


@sync
async def test_cancel_a_running_run(ws):
    app = fake_app(ws, delay=5.0, epochs=100, start_screen="builder")
    async with app.run_test(size=SIZE) as pilot:
        b: BuilderScreen = app.screen
        ml = b.query_one("#methods")
        ml.deselect_all()
        ml.select("retrained")
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen), what="runs")
        runs: RunsScreen = app.screen
        await wait_for(pilot, lambda: any(r["status"] == "running" for r in runs.rows),
                       timeout=15, what="running")
        runs.query_one("#runs-table").focus()
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: runs.rows and runs.rows[0]["status"] == "killed",
                       timeout=15, what="killed")


@sync
async def test_delete_and_reopen_in_builder(ws):
    ids = populate(ws, seeds=(0,), methods=("retrained", "tarf"), case=13)
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        runs: RunsScreen = app.screen
        await wait_for(pilot, lambda: len(runs.rows) == 2)
        runs.query_one("#runs-table").focus()
        await pilot.press("b")  # newest first: the tarf run
        await wait_for(pilot, lambda: isinstance(app.screen, BuilderScreen), what="builder")
        b: BuilderScreen = app.screen
        await pilot.pause(0.2)
        assert b.case_no == 13 and set(b.selected_methods()) == {"retrained", "tarf"}
        await pilot.press("f3")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        runs.query_one("#runs-table").focus()
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: set(runs.by_id) == {ids[0]}, what="deleted")


# ---- detail ----------------------------------------------------------------------------------
@sync
async def test_detail_charts_receive_new_epochs(ws):
    from engine.spec import RunSpec

    with Store(ws.db_path) as s:
        rid = s.create_run(RunSpec(method="tarf"))
        s.mark_running(rid, os.getpid(), "cpu")
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.open_detail(rid)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen))
        d: DetailScreen = app.screen
        await wait_for(pilot, lambda: d.updates >= 1, what="first read")
        chart = d.query_one("#chart-acc", EpochChart)
        assert chart.plotted == 0
        with Store(ws.db_path) as other:  # the engine's connection
            for e in range(3):
                other.add_epoch(rid, e, phase="ga" if e < 2 else "retain", loss=1.0 / (e + 1),
                                ua=80.0 - 30 * e, ra=95.0, ta=90.0, acc_f=80.0 - 30 * e,
                                acc_uf=85.0, extras={"k_t": 0.01, "excluded": ["truck"]})
                await wait_for(pilot, lambda: chart.plotted == e + 1, what=f"epoch {e}")
        assert d.query_one("#chart-loss", EpochChart).plotted == 3
        assert "excluded: truck" in str(d.query_one("#tarf").render())
        # hidden screens stop polling: detail closed, runs hidden behind the builder
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        assert not d.timer._active.is_set()  # the (reused) detail screen stopped polling
        assert app.runs.timer._active.is_set()
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, BuilderScreen))
        assert not app.runs.timer._active.is_set()


# ---- compare and quit ------------------------------------------------------------------------
@sync
async def test_compare_shows_table1_and_exports(ws):
    populate(ws, seeds=(0, 1))
    app, _ = recording_app(ws, start_screen="compare")
    async with app.run_test(size=SIZE) as pilot:
        c = app.compare
        await wait_for(pilot, lambda: c.blocks, what="blocks")
        rows = c.blocks[0].rows
        assert [r.method for r in rows][:1] == ["retrained"]
        assert [r.method for r in rows if r.best] == ["tarf"]
        assert all(r.n == 2 for r in rows)
        await pilot.press("x")
        folder = ws.path / "exports"
        await wait_for(pilot, lambda: folder.is_dir() and len(list(folder.iterdir())) == 4,
                       what="exports")
        assert sorted(p.suffix for p in folder.iterdir()) == [".csv", ".json", ".md", ".tex"]


@sync
async def test_quit_with_runs_in_flight_asks(ws):
    populate(ws, seeds=(0,), methods=("retrained", "tarf"), running=True)
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen), what="quit dialog")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, QuitScreen))
        assert app.is_running
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("l")  # leave running
        await wait_for(pilot, lambda: not app.is_running, what="exit")
    with Store(ws.db_path) as s:
        assert [r["status"] for r in s.list_runs()][0] == "running"


@sync
async def test_palette_has_screen_commands(ws):
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for t in ("New experiment", "Runs", "Compare", "Export comparison as latex"):
            assert t in titles
