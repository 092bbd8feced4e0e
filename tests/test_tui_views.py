"""Pilot tests of issue 11's TUI fixes: builder (global epochs shown in every form, the launch bar
always on screen, recipe epochs, a repeated launch adds nothing), detail charts (colours, axes,
legends outside the plot, clipped loss, epochs 1..N, readable events), the target identification
view, the overlay, compare's Table 1 across tasks / sort / only-changed / exports, the key
reference, labels, 80x24 and 200x55 layouts, the too-small warning."""

from __future__ import annotations

import itertools
import json
import math
import sqlite3

import pytest

from engine.methods.params import resolve_params
from engine.store import Store, Workspace
from tarf_tui import compare as cmp
from tarf_tui.app import MIN_SIZE, TarfApp
from tarf_tui.screens.builder import BuilderScreen
from tarf_tui.screens.detail import DetailScreen, eta_seconds, format_event
from tarf_tui.screens.help import HelpScreen, key_reference
from tarf_tui.screens.overlay import OverlayScreen
from tarf_tui.screens.runs import RunsScreen, row_cells
from tarf_tui.widgets.charts import (ACC_SERIES, EpochChart, IdentificationChart, OverlayChart,
                                     acc_ticks, epoch_ticks, identification, loss_axis)
from tarf_tui.widgets.common import epoch_progress, fmt_run_time, planned_epochs
from tarf_tui.widgets.run_table import RunTable
from tests.tui_support import (HIDDEN, ROOT, SIZE, RecordingLauncher, fixed_clock,
                                    ident_extras, populate, sync, wait_for)

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "ws")


def recording_app(ws: Workspace, **kw) -> tuple[TarfApp, RecordingLauncher]:
    launcher = RecordingLauncher(Store(ws.db_path))
    return TarfApp(ws, launcher=launcher, clock=fixed_clock, poll_s=0.2, **kw), launcher


def notes(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def inside(region, size) -> bool:
    return region.height > 0 and region.y >= 0 and region.bottom <= size[1] and region.x >= 0 \
        and region.right <= size[0]


# ---- pure rules --------------------------------------------------------------------------------
def test_series_colours_are_far_apart():
    cols = [rgb for _, _, rgb in ACC_SERIES]
    assert len(set(cols)) == len(cols)
    for a, b in itertools.combinations(cols, 2):
        assert math.dist(a, b) > 120, (a, b)  # UA and acc D_uf never look alike


def test_accuracy_axis_is_fixed_with_whole_ticks():
    (lo, hi), ticks, labels = acc_ticks()
    assert (lo, hi) == (0.0, 100.0)
    assert labels == [str(t) for t in ticks] and all(float(t).is_integer() for t in ticks)


def test_loss_axis_clips_an_ascent_outlier():
    losses = [0.9, -3.0, -16766.0, 0.8, 0.6, 0.5, 0.45, 0.4, 0.38, 0.35]
    ax = loss_axis(losses)
    assert 2 in ax.clipped and "min -16766" in ax.note  # Tukey's far fences: named, not drawn
    bulk = [v for i, v in enumerate(losses) if i not in ax.clipped]
    assert len(bulk) >= 8
    assert ax.lo <= min(bulk) and ax.hi >= max(bulk)
    assert (max(bulk) - min(bulk)) / (ax.hi - ax.lo) > 0.8  # the rest fills the axis
    plain = loss_axis([1.0, 0.8, 0.7, 0.6])
    assert plain.clipped == [] and plain.note == ""


def test_epoch_axis_counts_from_one():
    (lo, hi), ticks = epoch_ticks(5)
    assert ticks[0] == 1 and ticks[-1] == 5 and (lo, hi) == (1.0, 5.0)
    (lo, hi), ticks = epoch_ticks(3, total=40)
    assert ticks[0] == 1 and ticks[-1] == 40 and hi == 40.0
    assert epoch_ticks(1)[0] == (0.5, 1.5)


def test_epoch_label_and_run_time_label():
    assert epoch_progress(3, 40) == "epoch 3/40" and epoch_progress(3, None) == "epoch 3"
    assert fmt_run_time({"rte_s": 12.5}) == "RTE 12.5s"
    row = {"started_at": "2026-05-09T08:59:00.000+00:00"}
    assert fmt_run_time(row, fixed_clock()) == "wall 1m00s"
    assert planned_epochs({"method": "ft", "spec": {"params": {"epochs": 7}}}) == 7
    assert planned_epochs({"method": "retrained", "spec": {"recipe": {"epochs": 3}}}) == 3


def test_eta_from_the_epochs_done():
    eps = [{"epoch": 0, "seconds": 2.0}, {"epoch": 1, "seconds": 4.0}]
    assert eta_seconds(eps, 10) == 8 * 3.0
    assert eta_seconds(eps, None) is None and eta_seconds([], 10) is None
    assert eta_seconds(eps, 2) == 0


def test_engine_events_read_as_sentences():
    assert format_event('{"event": "epoch", "run_id": 3, "epoch": 0, "phase": "II", "loss": 0.5,'
                        ' "ua": 12.0, "ra": 95.0, "ta": 94.5, "seconds": 2.0}') == \
        "epoch 1 · phase II · loss 0.5000 · UA 12.0 RA 95.0 TA 94.5 · 2.0s"
    assert format_event('{"event": "pretrain", "kind": "original", "epoch": 3, "epochs": 10, '
                        '"loss": 1.2}') == "original model training epoch 4/10 · loss 1.2000"
    assert format_event('{"event": "finished", "ua": 1, "ra": 2, "ta": 3, "mia": 4, "gap": 5, '
                        '"rte_s": 6}') == "finished · UA 1.00 RA 2.00 TA 3.00 MIA 4.00 GAP 5.00 · RTE 6.0s"
    assert format_event("# started python -m engine") == "# started python -m engine"
    assert format_event("Traceback (most recent call last):") == "Traceback (most recent call last):"


def test_identification_from_epoch_extras():
    eps = [{"epoch": 0, "extras": {"k_t": 0.1}},
           {"epoch": 2, "extras": ident_extras(1)}, {"epoch": 3, "extras": ident_extras(1)}]
    ident = identification(eps)
    assert ident.epoch == 3 and ident.truth and ident.margin == 3.0
    kinds = {u.name: u.kind for u in ident.units}
    assert kinds["truck"] == "hit" and kinds["dog"] == "wrong" and kinds["bus"] == "missed"
    assert (ident.hits, ident.n) == (1, 2)  # counted while running
    # the engine's final numbers win once the run finished
    ident = identification(eps, {"identification": {"hits": 2, "n": 2, "hidden": HIDDEN}})
    assert (ident.hits, ident.n) == (2, 2)
    # before LEAD's truth keys: excluded units only, no hits
    old = {"excluded_units": [4], "acc_change": [0.0, -1.0, 0.5, None, -20.0], "id_margin": 2.0}
    ident = identification([{"epoch": 1, "extras": old}])
    assert not ident.truth and ident.hits is None and [u.name for u in ident.excluded] == ["4"]
    assert identification([{"epoch": 0, "extras": {}}]) is None


def test_key_reference_covers_every_binding_and_the_readme():
    from tarf_tui.screens.builder import BuilderScreen as B
    from tarf_tui.screens.compare import CompareScreen
    from tarf_tui.screens.detail import DetailScreen as D

    ref = {what for _, rows in key_reference() for _, what in rows}
    for cls in (TarfApp, B, RunsScreen, D, OverlayScreen, CompareScreen):
        for b in cls.BINDINGS:
            assert (b.tooltip or b.description) in ref, (cls.__name__, b.key)
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Keys"):]
    for title, rows in key_reference():
        assert title.split(" (")[0] in section, title
        for keys, _ in rows:
            assert f"`{keys}`" in section, (title, keys)


# ---- builder -----------------------------------------------------------------------------------
@sync
async def test_global_epochs_show_in_every_params_form(ws):
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        b: BuilderScreen = app.screen
        b.query_one("#epochs").value = "4"
        b.query_one("#params").collapsed = False
        await wait_for(pilot, lambda: b.query("#p-tarf-epochs") and b.query_one("#p-tarf-epochs").disabled,
                       what="the form's epochs locked")
        inp = b.query_one("#p-tarf-epochs")
        assert inp.placeholder.startswith("4")
        assert "global" in str(b.query_one("#e-tarf-epochs").render())
        assert b.query_one("#form-tarf").effective()["epochs"] == 4
        assert "4 epochs each (global)" in str(b.query_one("#launch-summary").render())
        b.query_one("#epochs").value = ""
        await wait_for(pilot, lambda: not inp.disabled, what="unlocked")
        default = resolve_params("tarf", {}, "synthetic", None, None, "target-mismatch").epochs
        assert not inp.disabled and inp.placeholder == str(default)
        assert b.query_one("#form-tarf").effective()["epochs"] == default


@sync
async def test_launch_bar_stays_on_screen_with_parameters_open(ws):
    for size in (SIZE, MIN_SIZE):
        app, _ = recording_app(ws)
        async with app.run_test(size=size) as pilot:
            b: BuilderScreen = app.screen
            b.query_one("#params").collapsed = False
            await wait_for(pilot, lambda: b.query("#form-tarf"), what="forms")
            await pilot.pause(0.2)
            b.query_one("#builder").scroll_end(animate=False)
            await pilot.pause(0.2)
            bar = b.query_one("#launch-bar")
            assert inside(bar.region, size), (size, bar.region)
            assert "runs" in str(b.query_one("#launch-summary").render())


@sync
async def test_recipe_epochs_reach_every_spec_and_a_repeat_launch_adds_nothing(ws):
    app, launcher = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        b: BuilderScreen = app.screen
        ml = b.query_one("#methods")
        ml.deselect_all()
        ml.select("ft")
        b.query_one("#recipe-epochs").value = "3"
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: len(launcher.submitted) == 2, what="2 submits")
        assert {s.method for s in launcher.submitted} == {"retrained", "ft"}
        assert all(s.recipe.epochs == 3 for s in launcher.submitted)
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))
        await wait_for(pilot, lambda: any("2 started, 0 reused" in n for n in notes(app)))
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, BuilderScreen))
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: any("0 started" in n for n in notes(app)), what="no new run")
        assert len(launcher.submitted) == 2
    with Store(ws.db_path) as s:
        assert len(s.list_runs()) == 2


@sync
async def test_run_on_slurm_goes_through_the_executor_and_a_refusal_starts_nothing(ws):
    from engine.errors import TarfError

    app, launcher = recording_app(ws)
    asked = []

    def use(name):
        asked.append(name)
        if name == "slurm":
            raise TarfError("slurm: sbatch not found (Slurm is not installed here)")

    launcher.executor.use = use
    async with app.run_test(size=SIZE) as pilot:
        b: BuilderScreen = app.screen
        b.query_one("#executor").value = "slurm"
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: any("sbatch not found" in n for n in notes(app)), what="refusal")
        assert asked == ["slurm"] and launcher.submitted == []
        b.query_one("#executor").value = "local"
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: len(launcher.submitted) == 4, what="local launch")
        assert asked == ["slurm", "local"]


@sync
async def test_runs_list_shows_where_slurm_runs_are(ws):
    """A workspace with Slurm runs gets a "where" column (job id, node once the engine reported
    in); a local-only workspace and an 80-column terminal do without it."""
    ids = populate(ws, seeds=(0,))
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.runs.rows) == 4)
        assert "where" in app.runs.query_one(RunTable).hidden  # nothing on Slurm yet
    with Store(ws.db_path) as s:
        s.set_job(ids[-1], "slurm", "46_3")
    con = sqlite3.connect(ws.db_path)
    with con:
        con.execute("UPDATE runs SET host = 'gpu07' WHERE id = ?", [ids[-1]])
    con.close()
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.runs.rows) == 4)
        table = app.runs.query_one(RunTable)
        assert "where" not in table.hidden
        where = [str(c[-1]) for c in table.cells]
        assert where[0] == "slurm 46_3 @gpu07" and set(where[1:]) == {""}
        app.runs.query_one("#runs-filter").value = "46_3"
        await wait_for(pilot, lambda: app.runs.shown == [ids[-1]], what="filter by job id")
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: "where" in table.hidden, what="narrow layout")


# ---- detail ------------------------------------------------------------------------------------
@sync
async def test_detail_charts_legends_axes_and_identification(ws):
    populate(ws, seeds=(0, 1))
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.runs.rows) == 8)
        app.open_detail(8)  # TARF seed 1: excludes dog and truck, misses bus
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.updates)
        d: DetailScreen = app.screen
        acc = d.query_one("#chart-acc", EpochChart)
        # legends live outside the plots: the plot's own text carries no series label
        legend = str(d.query_one("#legend-acc").render())
        for _, label, _ in ACC_SERIES:
            assert label in legend
        acc.plt.plotsize(80, 20)
        drawn = acc.plt.uncolorize(acc.plt.build())
        assert "acc D_uf" not in drawn and "UA" not in drawn
        assert "1" in drawn.splitlines()[-1] and "5" in drawn.splitlines()[-1]  # epochs 1..5
        head = str(d.query_one("#detail-head").render())
        assert "epoch 5/5" in head and "RTE" in head and "TARF" in head and "identified 1/2" in head
        await pilot.press("i")
        await wait_for(pilot, lambda: d.query_one("#chart-ident", IdentificationChart).bars)
        bars = {u.name: u.kind for u in d.query_one("#chart-ident", IdentificationChart).bars}
        assert bars["truck"] == "hit" and bars["dog"] == "wrong" and bars["bus"] == "missed"
        assert "car" not in bars  # not in D_un
        summary = str(d.query_one("#ident-summary").render())
        assert "identified 1/2" in summary and "margin 3.00" in summary
        table = str(d.query_one("#ident-table").render())
        assert table.index("truck") < table.index("dog") < table.index("bus")  # ranked by change
        await pilot.press("i")
        assert d.query_one("#detail-views").current == "view-epochs"
        # an FT run has no identification: a warning, the view stays
        await pilot.press("escape")
        app.open_detail(6)
        await wait_for(pilot, lambda: d.run.get("id") == 6)
        await pilot.press("i")
        assert d.query_one("#detail-views").current == "view-epochs"
        assert any("TARF and TARF-I identify" in n for n in notes(app))


@sync
async def test_detail_loss_chart_clips_ascent_and_events_are_readable(ws):
    from engine.spec import RunSpec

    log = ws.path / "run.log"
    with Store(ws.db_path) as s:
        rid = s.create_run(RunSpec(method="ga", epochs=6))
        s.mark_running(rid, 1, "cpu")
        for e, loss in enumerate([-0.7, -16766.0, 0.9, 0.6, 0.5, 0.4]):
            s.add_epoch(rid, e, phase="unlearn", loss=loss, ua=50.0, ra=99.7, ta=99.9,
                        acc_f=50.0, acc_uf=90.0)
        log.write_text("# started the engine\n" + "\n".join(json.dumps(x) for x in (
            {"event": "running", "run_id": rid, "pid": 1},
            {"event": "epoch", "run_id": rid, "epoch": 0, "loss": -0.7, "ua": 50.0})) + "\n")
        s.set_log_path(rid, log)
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        app.open_detail(rid)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.updates)
        d = app.screen
        loss = d.query_one("#chart-loss", EpochChart)
        assert loss.axis.clipped == [1] and loss.axis.lo > -10
        assert "off scale" in str(d.query_one("#legend-loss").render())
        await wait_for(pilot, lambda: d.query_one("#log").line_count >= 3, what="log lines")
        lines = [str(x) for x in d.query_one("#log").lines]
        assert "engine started (pid 1)" in lines and "epoch 1 · loss -0.7000 · UA 50.0" in lines
        assert not any(x.lstrip().startswith("{") for x in lines)


@sync
async def test_detail_says_the_original_model_is_training_before_the_first_epoch(ws):
    from engine.spec import RunSpec

    log = ws.path / "pre.log"
    with Store(ws.db_path) as s:
        rid = s.create_run(RunSpec(method="ft", epochs=4))
        s.mark_running(rid, 1, "cpu")
        log.write_text(json.dumps({"event": "pretrain", "run_id": rid, "kind": "original",
                                   "epoch": 3, "epochs": 10, "loss": 1.0}) + "\n")
        s.set_log_path(rid, log)
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        app.open_detail(rid)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.run)
        await wait_for(pilot, lambda: "original model epoch 4/10" in str(
            app.screen.query_one("#detail-head").render()), what="pretrain head")
        assert "epoch 0/4" in str(app.screen.query_one("#detail-head").render())


# ---- runs, overlay ----------------------------------------------------------------------------
def test_runs_cells_use_paper_names_epoch_and_time_labels():
    row = {"id": 3, "status": "running", "dataset": "synthetic", "case_no": 11, "method": "tarf-i",
           "seed": 0, "epochs": None, "total_epochs": 40, "last_epoch": 2, "rte_s": None,
           "started_at": "2026-05-09T08:58:00.000+00:00"}
    cells = row_cells(row, fixed_clock(), marked=True)
    assert str(cells[0]) == "●" and str(cells[2]) == "running 3/40" and cells[5] == "TARF-I"
    assert cells[12] == "wall 2m00s"


@sync
async def test_overlay_of_marked_runs_and_metric_cycle(ws):
    populate(ws, seeds=(0, 1))
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        runs: RunsScreen = app.screen
        await wait_for(pilot, lambda: len(runs.rows) == 8)
        runs.query_one(RunTable).focus()
        for _ in range(3):  # newest first: TARF, GA, FT of seed 1
            await pilot.press("space")
        assert runs.marked == {8, 7, 6}
        assert "3 marked" in str(runs.query_one("#runs-count").render())
        await pilot.press("o")
        await wait_for(pilot, lambda: isinstance(app.screen, OverlayScreen) and app.screen.loaded)
        ov: OverlayScreen = app.screen
        chart = ov.query_one(OverlayChart)
        assert [s.label for s in chart.series] == ["TARF s1 #8", "GA s1 #7", "FT s1 #6"]
        assert all(s.xs == [1, 2, 3, 4, 5] for s in chart.series)
        assert chart.series[0].ys != chart.series[2].ys  # UA of each run
        legend = str(ov.query_one("#overlay-legend").render())
        assert "TARF s1 #8" in legend and "FT s1 #6" in legend
        await pilot.press("n")
        assert ov.metric == "ra" and chart.metric == "ra"
        await pilot.press("N", "N")
        assert ov.metric == "loss" and chart.axis is not None
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs)
        await pilot.press("space")  # unmark the run under the cursor... and o with none marked
        runs.marked.clear()
        await pilot.press("o")  # the run under the cursor alone
        await wait_for(pilot, lambda: isinstance(app.screen, OverlayScreen))


@sync
async def test_delete_a_queued_run(ws):
    from engine.spec import RunSpec

    with Store(ws.db_path) as s:
        rid = s.create_run(RunSpec(method="ft"))
    app, _ = recording_app(ws, start_screen="runs")
    async with app.run_test(size=SIZE) as pilot:
        runs = app.runs
        await wait_for(pilot, lambda: rid in runs.by_id)
        runs.query_one(RunTable).focus()
        await pilot.press("d")
        await wait_for(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen")
        await pilot.press("y")
        await wait_for(pilot, lambda: rid not in runs.by_id, what="deleted")


# ---- compare -----------------------------------------------------------------------------------
@sync
async def test_compare_table1_sort_only_changed_identified_and_export(ws):
    for case in (10, 11, 12, 13):
        populate(ws, seeds=(0, 1), case=case)
    app, _ = recording_app(ws, start_screen="compare")
    async with app.run_test(size=SIZE) as pilot:
        c = app.compare
        await wait_for(pilot, lambda: c.grids, what="grids")
        g = c.grids[0]
        tarf = next(r for r in g.rows if r.method == "tarf")
        assert tarf.cells["identified"] == "3/4"  # seed 0: 2/2, seed 1: 1/2
        await pilot.press("t")
        await wait_for(pilot, lambda: c.view.kind == "tasks" and c.grids
                       and len({col.group for col in c.grids[0].columns} - {""}) == 4,
                       what="Table 1 over four tasks")
        g = c.grids[0]
        assert [r.method for r in g.rows] == ["retrained", "ft", "ga", "tarf"]
        assert cmp.grids_json(c.grids) == cmp.grids_json(cmp.grids(c.blocks, cmp.View("tasks")))
        # sort: s walks the columns (Method first), S reverses
        await pilot.press("s")
        assert c.view.sort == "title"
        gap13 = next(col.key for col in g.columns if col.metric == "gap" and col.group.startswith("case 13"))
        c.view.sort = gap13
        c.render_view()
        order = [r.method for r in c.grids[0].rows]
        assert order[0] == "retrained" and order[1] == "tarf"  # lowest Gap on case 13 first
        await pilot.press("S")
        assert c.view.sort == f"-{gap13}" and [r.method for r in c.grids[0].rows][1] == "ga"
        # only changed: UA is equal in every row (2.50 ± 0.71) and disappears
        n_before = len(c.grids[0].columns)
        await pilot.press("o")
        shown = c.grids[0].columns
        assert c.view.only_changed and len(shown) < n_before
        assert not any(col.metric == "ua" for col in shown)
        assert "only changed on" in str(c.query_one("#view-bar").render())
        # exports follow the view
        await pilot.press("x")
        folder = ws.path / "exports"
        md = folder / "table1-synthetic-smallcnn.md"
        await wait_for(pilot, lambda: md.is_file(), what="export")
        assert md.read_text() == cmp.render(c.blocks, "md", view=cmp.View(
            "tasks", f"-{gap13}", True))
        assert "| case 13" in md.read_text()


# ---- help, sizes -------------------------------------------------------------------------------
@sync
async def test_question_mark_opens_the_key_reference(ws):
    populate(ws, seeds=(0,))
    app, _ = recording_app(ws)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.runs.rows) == 4)
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen))
        import io

        from rich.console import Console

        con = Console(width=200, file=io.StringIO(), record=True)
        con.print(app.screen.table)
        text = con.export_text()
        for b in RunsScreen.BINDINGS:
            assert (b.tooltip or b.description) in text
        assert app.screen.current == "Runs"
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))


@pytest.mark.parametrize("size", [MIN_SIZE, (200, 55)])
@sync
async def test_every_screen_is_usable_at(ws, size):
    populate(ws, seeds=(0, 1))
    app, _ = recording_app(ws)
    async with app.run_test(size=size) as pilot:
        runs = app.runs
        await wait_for(pilot, lambda: len(runs.rows) == 8)
        await pilot.pause(0.2)
        table = runs.query_one(RunTable)
        visible = [k for k, _, _ in table.columns if k not in table.hidden]
        assert {"id", "status", "method", "seed", "ua", "gap"} <= set(visible)
        assert sum(w + table.gap for k, _, w in table.columns if k in visible) <= size[0]
        line = "".join(seg.text for seg in table.render_line(1))
        assert "TARF" in line and "…" not in line  # cells are readable, not ellipses
        app.open_detail(8)
        await wait_for(pilot, lambda: isinstance(app.screen, DetailScreen) and app.screen.updates)
        await pilot.pause(0.2)
        d = app.screen
        for sel in ("#chart-acc", "#chart-loss"):
            assert d.query_one(sel).region.height >= 8, sel  # more than one row of chart
        assert inside(d.query_one("#metrics-col").region, size)
        await pilot.press("escape", "f2")
        await wait_for(pilot, lambda: isinstance(app.screen, BuilderScreen))
        await pilot.pause(0.2)
        b = app.screen
        assert b.query_one("#tree-col").region.width > 40
        picker = b.query_one("#cases")
        assert picker.virtual_size.width <= picker.region.width  # all 27 cases, no side-scroll
        assert inside(b.query_one("#launch-bar").region, size)
        await pilot.press("f4")
        await wait_for(pilot, lambda: app.compare.grids)
        import io

        from rich.console import Console

        w = app.compare.query_one("#table1")
        con = Console(width=int(w.styles.width.value), file=io.StringIO(), record=True)
        con.print(app.compare.shown_table)
        text = con.export_text()
        assert "TARF" in text and "3/4" in text and "…" not in text  # no cell cut
    assert not any("minimum" in n for n in notes(app))


@sync
async def test_too_small_terminal_warns_with_the_minimum(ws):
    app, _ = recording_app(ws)
    async with app.run_test(size=(70, 20)) as pilot:
        await pilot.pause(0.2)
        assert any("below the 80x24 minimum" in n for n in notes(app))
