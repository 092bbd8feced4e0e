"""``tarf-tui headless``: end to end with the fake engine (CliRunner and real subprocesses),
skip-if-finished / --rerun, workers, Ctrl-C, bad input; and the real engine on the embedded
dataset (one quick run with a per-class cut, and the true no-option default, marked slow)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.store import Store, parse_time
from tarf_tui.cli import app
from tarf_tui.headless import run_headless
from tarf_tui.launcher import pid_runs_engine

ROOT = Path(__file__).resolve().parent.parent
FAKE_CMD = f"{sys.executable} {ROOT / 'tests' / 'fake_engine.py'}"


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setenv("TARF_ENGINE_CMD", FAKE_CMD)
    monkeypatch.setenv("TARF_FAKE_EPOCHS", "2")
    monkeypatch.delenv("TARF_FAKE_DELAY", raising=False)
    monkeypatch.delenv("TARF_FAKE_FAIL", raising=False)
    monkeypatch.delenv("TARF_HOME", raising=False)


def invoke(ws, *args, env=None):
    return CliRunner().invoke(app, ["headless", "-w", str(ws), *args], env=env)


def runs(ws):
    with Store(Path(ws) / "tarf.db") as s:
        return sorted(s.list_runs(), key=lambda r: r["id"])


# ---- fake engine ---------------------------------------------------------------------------
def test_default_plan_json_on_stdout_progress_on_stderr(fake, tmp_path):
    r = invoke(tmp_path, "--format", "json")
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)  # stdout is the table only
    (block,) = data
    assert [row["method"] for row in block["rows"]] == ["retrained", "ft", "ga", "tarf"]
    assert block["case_no"] == 11 and block["dataset"] == "synthetic"
    assert "run 1 started: Retrained" in r.stderr and "done: 4 finished" in r.stderr
    rs = runs(tmp_path)
    assert [x["method"] for x in rs] == ["retrained", "ft", "ga", "tarf"]
    assert all(x["status"] == "finished" for x in rs)
    # the reference finished before any other run started; runs went one at a time
    for a, b in zip(rs, rs[1:]):
        assert parse_time(b["started_at"]) >= parse_time(a["finished_at"])


def test_skip_if_finished_then_rerun(fake, tmp_path):
    r1 = invoke(tmp_path, "--method", "ft", "--format", "csv")
    assert r1.exit_code == 0, r1.output
    ids1 = [x["id"] for x in runs(tmp_path)]
    assert len(ids1) == 2  # retrained + ft
    r2 = invoke(tmp_path, "--method", "ft", "--format", "csv")
    assert r2.exit_code == 0 and "0 to run, 2 reused" in r2.stderr
    assert [x["id"] for x in runs(tmp_path)] == ids1  # nothing new
    assert r2.stdout == r1.stdout
    # a wider request reuses what it can
    r3 = invoke(tmp_path, "--method", "ft,ga", "--format", "csv")
    assert "1 to run, 2 reused" in r3.stderr and len(runs(tmp_path)) == 3
    r4 = invoke(tmp_path, "--method", "ft", "--rerun", "--format", "csv")
    assert r4.exit_code == 0 and "2 to run" in r4.stderr
    assert len(runs(tmp_path)) == 5


def _max_concurrency(rs):
    events = []
    for x in rs:
        events += [(parse_time(x["started_at"]), 1), (parse_time(x["finished_at"]), -1)]
    live = peak = 0
    for _, d in sorted(events, key=lambda e: (e[0], e[1])):
        live += d
        peak = max(peak, live)
    return peak


def test_grid_2x2_with_two_workers(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_DELAY", "0.4")
    r = invoke(tmp_path, "--method", "ft,ga", "--seed", "0,1", "--workers", "2",
               "--format", "json")
    assert r.exit_code == 0, r.output
    rs = runs(tmp_path)
    assert sorted((x["method"], x["seed"]) for x in rs) == sorted(
        [("retrained", 0), ("retrained", 1), ("ft", 0), ("ft", 1), ("ga", 0), ("ga", 1)])
    assert all(x["status"] == "finished" for x in rs)
    assert _max_concurrency(rs) == 2  # two engines at once, never three
    by = {(x["method"], x["seed"]): x for x in rs}
    for seed in (0, 1):  # each method run started after its reference finished
        for m in ("ft", "ga"):
            assert parse_time(by[m, seed]["started_at"]) >= parse_time(by["retrained", seed]["finished_at"])
    (block,) = json.loads(r.stdout)
    ft = next(row for row in block["rows"] if row["method"] == "ft")
    assert ft["n"] == 2 and ft["seeds"] == [0, 1]


def test_failed_run_exits_1_and_still_prints_the_table(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_FAIL", "1")
    r = invoke(tmp_path, "--method", "ft", "--format", "md")
    assert r.exit_code == 1
    assert "| FT |" in r.stdout and "1 failed" in r.stdout
    assert "fake engine failure" in r.stderr


def test_progress_shows_the_original_model_being_trained(fake, tmp_path, monkeypatch):
    """Before a run's first epoch row the engine trains the shared original model; headless
    reads the engine log's ``pretrain`` events so stderr says so instead of staying silent."""
    monkeypatch.setenv("TARF_FAKE_PRETRAIN", "3")
    monkeypatch.setenv("TARF_FAKE_DELAY", "0.6")
    r = invoke(tmp_path, "--method", "ft")
    assert r.exit_code == 0, r.output
    first = r.stderr.find("run 1 training the original model: epoch ")
    assert first >= 0, r.stderr
    assert "/3" in r.stderr[first:first + 60]
    assert first < r.stderr.index("run 1 epoch 1")


def test_pretrain_state_reads_the_last_event_and_tolerates_junk(tmp_path):
    from tarf_tui.headless import pretrain_state

    log = tmp_path / "run-1.log"
    assert pretrain_state({"log_path": str(log)}) is None  # no file yet
    assert pretrain_state({}) is None and pretrain_state(None) is None
    log.write_text('{"event": "running"}\nnot json "pretrain"\n'
                   '{"event": "pretrain", "kind": "original", "epoch": 2, "epochs": 10}\n'
                   '{"event": "pretrain", "kind": "original", "epoch": 3, "epochs": 10}\n'
                   '{"event": "pretrain", "kind": "orig\n')  # a line cut mid-write
    # the engine counts epochs from 0 (engine/train.py): event epoch 3 = 4 epochs done; the
    # last event of a 10-epoch recipe (epoch 9) reads 10/10 (issue 11 #4: it showed 9/10)
    assert pretrain_state({"log_path": str(log)}) == ("original", 4, 10)


def test_run_headless_as_a_library(fake, tmp_path):
    import io

    out, err = io.StringIO(), io.StringIO()
    res = run_headless({"method": "ga", "epochs": "1"}, workspace=tmp_path, fmt="csv",
                       out=out, err=err, handle_sigterm=False)
    assert res.exit_code == 0 and len(res.new_ids) == 2
    assert res.statuses == {i: "finished" for i in res.run_ids}
    assert out.getvalue() == res.output and out.getvalue().startswith("experiment,")


def test_rich_progress_bars(fake, tmp_path):
    import io

    out, err = io.StringIO(), io.StringIO()
    res = run_headless({"method": "ft"}, workspace=tmp_path, fmt="md", out=out, err=err,
                       rich_progress=True, handle_sigterm=False)
    assert res.exit_code == 0
    text = err.getvalue()
    assert "runs" in text and "2/2" in text and "run 2 finished: FT" in text
    assert "| FT |" in out.getvalue() and "runs" not in out.getvalue()


def test_grid_file(fake, tmp_path):
    g = tmp_path / "grid.toml"
    g.write_text('method = ["ft"]\ncase = [10, 11]\n')
    r = invoke(tmp_path / "ws", "--grid", str(g), "--format", "json")
    assert r.exit_code == 0, r.output
    assert sorted(b["case_no"] for b in json.loads(r.stdout)) == [10, 11]


# ---- bad input: exit 2, one line, nothing started ------------------------------------------
@pytest.mark.parametrize("args, needle", [
    (["--method", "nope"], "unknown method 'nope'; valid choices: retrained, ft"),
    (["--case", "14"], "case 14 is impractical"),
    (["--case", "14"], "--allow-impractical"),
    (["--dataset", "cifar10", "--data-root", "/nonexistent/data"], "/nonexistent/data/cifar-10-batches-py"),
    (["--format", "xls"], "unknown format 'xls'; valid choices: table, md, csv, json, latex"),
    (["--workers", "0"], "--workers must be an integer >= 1, got 0"),
    (["--seed", "x"], "--seed: expected an integer, got 'x'"),
    (["--set", "tarf.nope=1"], "unknown parameter 'nope' for method 'tarf'"),
    (["--target", "spaceship"], "'spaceship'; valid choices:"),
    (["--arch", "resnet99"], "unknown architecture 'resnet99'"),
    (["--grid", "/nonexistent.toml"], "no such file"),
])
def test_bad_input(fake, tmp_path, args, needle):
    r = invoke(tmp_path, *args)
    assert r.exit_code == 2, r.output
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert not (tmp_path / "tarf.db").exists() or runs(tmp_path) == []


def test_damaged_database_is_not_touched(fake, tmp_path):
    db = tmp_path / "tarf.db"
    junk = b"this is not sqlite\n" * 300
    db.write_bytes(junk)
    r = invoke(tmp_path, "--method", "ft")
    assert r.exit_code == 2
    assert "not a tarf-tui database" in r.stderr and "Traceback" not in r.output
    assert len(r.stderr.strip().splitlines()) == 1
    assert db.read_bytes() == junk


# ---- real subprocesses ---------------------------------------------------------------------
def _cli(*args):
    return [sys.executable, "-m", "tarf_tui", *args]


def _env(**extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TARF_ENGINE_CMD": FAKE_CMD, **extra}
    env.pop("TARF_HOME", None)
    return env


def test_subprocess_stdout_is_data_only(tmp_path):
    p = subprocess.run(_cli("headless", "-w", str(tmp_path), "--method", "ft", "--format", "csv"),
                       capture_output=True, text=True, env=_env(TARF_FAKE_EPOCHS="1"),
                       timeout=120, cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[0].startswith("experiment,dataset,case_no")
    assert len(p.stdout.splitlines()) == 3  # header + Retrained + FT
    assert "[" in p.stderr and "run 1 started" in p.stderr  # plain progress lines (not a tty)


def test_ctrl_c_kills_the_engines_and_exits_130(tmp_path):
    env = _env(TARF_FAKE_EPOCHS="1000", TARF_FAKE_DELAY="0.5")
    # a shell's background job (``cmd &``, as a CI harness may start the suite) inherits SIGINT
    # ignored, and Python then installs no KeyboardInterrupt handler: give the child the default
    # disposition, as a terminal's foreground process has
    p = subprocess.Popen(_cli("headless", "-w", str(tmp_path), "--method", "ft,ga",
                              "--seed", "0,1", "--workers", "2"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                         cwd=tmp_path,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # both references running
            if (tmp_path / "tarf.db").exists():
                rs = runs(tmp_path)
                if sum(x["status"] == "running" and x["heartbeat_at"] != x["started_at"]
                       for x in rs) >= 2:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("engines never started")
        pids = [x["pid"] for x in runs(tmp_path) if x["status"] == "running"]
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert took < 10
    assert out == "" and "interrupted" in err
    rs = runs(tmp_path)
    assert len(rs) == 6 and {x["status"] for x in rs} == {"killed"}
    for pid in pids:  # the engines are gone (or zombies)
        assert not pid_runs_engine(pid)


# ---- the real engine -----------------------------------------------------------------------
def _real_env():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    for k in ("TARF_ENGINE_CMD", "TARF_HOME"):
        env.pop(k, None)
    return env


@pytest.mark.timeout(900)
def test_real_engine_quick(tmp_path):
    """The real engine end to end on a per-class cut of the embedded dataset."""
    p = subprocess.run(_cli("headless", "-w", str(tmp_path), "--per-class", "12",
                            "--method", "ft,tarf", "--epochs", "1", "--device", "cpu",
                            "--format", "json"),
                       capture_output=True, text=True, env=_real_env(), timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    (block,) = json.loads(p.stdout)
    rows = {r["method"]: r for r in block["rows"]}
    assert list(rows) == ["retrained", "ft", "tarf"]
    assert all(r["n"] == 1 for r in rows.values())
    assert rows["retrained"]["gap"]["mean"] == pytest.approx(0.0, abs=1e-6)
    for r in rows.values():
        for m in ("ua", "ra", "ta", "mia"):
            assert 0.0 <= r[m]["mean"] <= 100.0
    assert sum(r["best_gap"] for r in rows.values()) >= 1


@pytest.mark.slow  # ~10 min on a 2-core CPU: the original and the reference train 10 epochs each
@pytest.mark.timeout(3600)
def test_real_engine_true_default(tmp_path):
    """``tarf-tui headless`` with no options at all: the README's main job."""
    p = subprocess.run(_cli("headless"), capture_output=True, text=True,
                       env={**_real_env(), "TARF_HOME": str(tmp_path)}, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    for name in ("Retrained", "FT", "GA", "TARF", "Gap", "case 11"):
        assert name in p.stdout
    rs = runs(tmp_path)
    assert [x["method"] for x in rs] == ["retrained", "ft", "ga", "tarf"]
    assert all(x["status"] == "finished" and x["gap"] is not None for x in rs)


# ---- issue 11 fixes ------------------------------------------------------------------------
def test_dry_run_lists_the_plan_and_starts_nothing(fake, tmp_path):
    ws = tmp_path / "ws"
    r = invoke(ws, "--dry-run", "--case", "10,11", "--method", "all", "--seed", "0-2")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    # 2 cases x 3 seeds x (Retrained + 10 methods)
    assert "66 runs: 66 to run" in r.stdout
    assert sum(1 for x in lines if x.startswith("#")) == 66
    assert any("TARF-I case 11 synthetic seed 2" in x for x in lines)
    assert not ws.exists()  # nothing written, not even the workspace folder
    # after a real (fake-engine) run, the plan says what is reused
    assert invoke(ws, "--method", "ft", "--format", "csv").exit_code == 0
    r = invoke(ws, "--dry-run", "--method", "ft,ga")
    assert r.exit_code == 0 and "3 runs: 1 to run, 2 reused" in r.stdout
    assert "reuse run 1" in r.stdout and "reuse run 2" in r.stdout
    assert len(runs(ws)) == 2


def test_seed_range_is_accepted(fake, tmp_path):
    r = invoke(tmp_path, "--method", "ft", "--seed", "0-1", "--format", "csv")
    assert r.exit_code == 0, r.output
    assert sorted((x["method"], x["seed"]) for x in runs(tmp_path)) == [
        ("ft", 0), ("ft", 1), ("retrained", 0), ("retrained", 1)]


def test_set_for_a_method_not_run_exits_2_and_starts_nothing(fake, tmp_path):
    r = invoke(tmp_path, "--set", "ga.lr=0.01", "--method", "ft")
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not among the methods run (ft)" in lines[0]
    assert not (tmp_path / "tarf.db").exists()


def test_method_names_are_case_insensitive(fake, tmp_path):
    r = invoke(tmp_path, "--dry-run", "--method", "Tarf")
    assert r.exit_code == 0, r.output
    assert "TARF case 11 synthetic seed 0" in r.stdout


def test_recipe_epochs_reach_the_spec_of_both_runs(fake, tmp_path):
    r = invoke(tmp_path, "--method", "ft", "--recipe-epochs", "2", "--format", "csv")
    assert r.exit_code == 0, r.output
    rs = runs(tmp_path)
    assert [x["spec"]["recipe"]["epochs"] for x in rs] == [2, 2]
    # another recipe is another experiment: nothing reused
    r = invoke(tmp_path, "--method", "ft", "--recipe-epochs", "3", "--dry-run")
    assert "2 runs: 2 to run" in r.stdout


def test_progress_shows_totals_and_an_eta(fake, tmp_path, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_PRETRAIN", "3")
    monkeypatch.setenv("TARF_FAKE_DELAY", "0.3")
    r = invoke(tmp_path, "--method", "ft")
    assert r.exit_code == 0, r.output
    # the last original-model epoch reads 3/3 (the engine counts from 0: it used to end at 2/3)
    assert "run 1 training the original model: epoch 3/3" in r.stderr
    assert "epoch 4/3" not in r.stderr
    assert "(1/2): Retrained" in r.stderr and "; eta " in r.stderr  # an overall ETA


class _Rec:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        return lambda *a: self.calls.append((name, *a))


def test_progress_of_one_run_has_totals_and_no_silent_stretch(tmp_path):
    """What ``drive`` shows for a running run: epochs with their total (Retrained's from the
    engine's ``task`` event), and before the first epoch row what the engine is doing."""
    from engine.spec import RunSpec
    from tarf_tui.headless import _show

    log = tmp_path / "run-1.log"
    with Store(tmp_path / "tarf.db") as st:
        rid = st.create_run(RunSpec(method="retrained"))
        st.mark_launched(rid, 1, log_path=str(log))
        log.write_text('{"event": "task", "recipe_epochs": 10}\n')
        rec = _Rec()
        _show(rec, st, rid, {rid: None})
        assert rec.calls == [("phase", rid, "data loaded, preparing the models")]
        with log.open("a") as f:
            f.write('{"event": "pretrain", "kind": "original", "epoch": 9, "epochs": 10}\n')
        _show(rec, st, rid, {rid: None})
        assert rec.calls[-1] == ("pretrain", rid, "original", 10, 10)  # 10/10, not 9/10
        with log.open("a") as f:
            f.write('{"event": "original", "cached": false}\n')
        _show(rec, st, rid, {rid: None})
        assert rec.calls[-1] == ("phase", rid, "original model ready, Retrained reference next")
        with log.open("a") as f:
            f.write('{"event": "reference", "cached": true}\n')
        _show(rec, st, rid, {rid: None})
        assert rec.calls[-1] == ("phase", rid, "Retrained reference loaded from the cache, unlearning starts")
        for e in range(3):
            st.add_epoch(rid, e, phase="retrain", ua=1.0)
        _show(rec, st, rid, {rid: None})
        assert rec.calls[-1] == ("epoch", rid, 3, 10)  # the total from the task event


def test_a_grid_left_queued_by_a_killed_driver_runs_when_asked_again(fake, tmp_path):
    """Rows a SIGKILLed headless left queued are joined by the same command and run."""
    from tarf_tui.planner import make_plan

    with Store(tmp_path / "tarf.db") as s:
        for st in make_plan({"method": "ft"}).steps:
            s.create_run(st.spec)
    r = invoke(tmp_path, "--method", "ft", "--format", "csv")
    assert r.exit_code == 0, r.output
    assert "2 already queued or running (waited for)" in r.stderr
    assert "run 1 started" in r.stderr and "run 2 started" in r.stderr
    assert [x["status"] for x in runs(tmp_path)] == ["finished", "finished"]
