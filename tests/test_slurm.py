"""tarf_tui/slurm.py against a real Slurm (``scripts/slurm-local start``; ``.ci/run`` starts
it). Skipped, with the reason, where no Slurm controller answers. Engines are the fake engine
(tests/fake_engine.py) unless the real one is the point. Every wait polls with a deadline."""

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

from engine.spec import RunSpec
from engine.store import TERMINAL, Store
from tarf_tui.cli import app
from tarf_tui.launcher import Launcher
from tarf_tui.slurm import (ALIVE_STATES, SlurmConfig, SlurmError, SlurmExecutor, load_config,
                            slurm_available, sync_workspace)

ROOT = Path(__file__).resolve().parent.parent
FAKE = [sys.executable, str(ROOT / "tests" / "fake_engine.py")]
WHY = slurm_available()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"no Slurm here: {WHY}")


def wait_for(cond, timeout=90.0, every=0.2, what="condition"):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@pytest.fixture
def ws(tmp_path):
    s = Store(tmp_path / "tarf.db")
    yield s
    # leave nothing behind in the queue
    for r in s.list_runs():
        if r.get("job_id"):
            subprocess.run(["scancel", r["job_id"]], capture_output=True)
    s.close()


def launcher(store, env=None, engine=FAKE, **cfg) -> Launcher:
    """A launcher on the Slurm executor; ``engine`` None = the real ``python -m engine``."""
    ex = SlurmExecutor(store, SlurmConfig(**cfg), engine_cmd=engine or [sys.executable, "-m", "engine"],
                       env=env or {})
    return Launcher(store, ex)


def squeue_alive(job: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T", "-j", job.split("_")[0]],
                         capture_output=True, text=True).stdout
    return any(line.split("|")[0] == job and line.split("|")[1] in ALIVE_STATES
               for line in out.splitlines())


def settle(launch: Launcher, ids, timeout=120.0) -> dict[int, str]:
    def done():
        launch.reap()
        st = launch.store.statuses(ids)
        return st if all(s in TERMINAL for s in st.values()) else None

    return wait_for(done, timeout, what=f"runs {ids} to end")


def test_a_grid_is_one_job_array_and_every_run_finishes(ws):
    launch = launcher(ws, env={"TARF_FAKE_EPOCHS": "3"}, max_running=2)
    ids = [launch.submit(RunSpec(seed=i)) for i in range(3)]
    assert launch.start_many(ids) == ids
    rows = [ws.get_run(i) for i in ids]
    jobs = {r["job_id"].split("_")[0] for r in rows}
    assert len(jobs) == 1  # one array
    assert sorted(r["job_id"].split("_")[1] for r in rows) == ["0", "1", "2"]
    assert all(r["executor"] == "slurm" for r in rows)
    assert settle(launch, ids) == {i: "finished" for i in ids}
    for i in ids:
        r = ws.get_run(i)
        assert r["host"] and r["ua"] == 2.0 and len(ws.epochs(i)) == 3
        assert Path(r["log_path"]).read_text().count('"event": "finished"') == 1


def test_pending_shows_queued_with_its_job_id_then_running(ws):
    launch = launcher(ws, env={"TARF_FAKE_EPOCHS": "40", "TARF_FAKE_DELAY": "0.25"}, max_running=1)
    a, b = (launch.submit(RunSpec(seed=i)) for i in range(2))
    launch.start_many([a, b])
    wait_for(lambda: launch.reap() is not None and ws.get_run(a)["status"] == "running",
             what="run a running")
    rb = ws.get_run(b)
    assert rb["status"] == "queued" and rb["job_id"].endswith("_1")  # %1: still in the queue
    assert squeue_alive(rb["job_id"])
    # `tarf-tui runs cancel N`, from another process's point of view (a fresh launcher)
    ws_dir = str(ws.path.parent)
    r = CliRunner().invoke(app, ["runs", "cancel", str(b), "-w", ws_dir])
    assert r.exit_code == 0 and "killed" in r.output, r.output
    assert not squeue_alive(rb["job_id"])
    r = CliRunner().invoke(app, ["runs", "cancel", str(a), "--timeout", "30", "-w", ws_dir])
    assert r.exit_code == 0 and "killed" in r.output, r.output
    assert not squeue_alive(ws.get_run(a)["job_id"])
    launch.reap()
    assert ws.statuses([a, b]) == {a: "killed", b: "killed"}


def test_kill_9_of_the_engine_ends_the_run_failed_with_slurms_word(ws):
    launch = launcher(ws, env={"TARF_FAKE_EPOCHS": "200", "TARF_FAKE_DELAY": "0.2"},
                      stale_after=60)
    rid = launch.submit(RunSpec())
    launch.start_many([rid])
    pid = wait_for(lambda: launch.reap() is not None and ws.get_run(rid)["pid"],
                   what="the engine's pid")
    os.kill(pid, signal.SIGKILL)
    # well within the heartbeat timeout: Slurm reports the task over
    assert settle(launch, [rid], timeout=60) == {rid: "failed"}
    err = ws.get_run(rid)["error"]
    assert "Slurm: FAILED" in err and "signal 9" in err, err


def test_a_silent_engine_is_lost_not_left_running(ws):
    launch = launcher(ws, env={"TARF_FAKE_HANG": "1"}, stale_after=2)
    rid = launch.submit(RunSpec())
    launch.start_many([rid])
    assert settle(launch, [rid], timeout=60) == {rid: "failed"}
    run = ws.get_run(rid)
    assert run["error"].startswith("lost: no heartbeat") and "RUNNING" in run["error"]
    wait_for(lambda: not squeue_alive(run["job_id"]), 30, what="the lost task cancelled")


def test_a_requeued_task_restarts_without_stale_rows(ws):
    launch = launcher(ws, env={"TARF_FAKE_EPOCHS": "6", "TARF_FAKE_DELAY": "0.4"})
    rid = launch.submit(RunSpec())
    launch.start_many([rid])
    wait_for(lambda: launch.reap() is not None and len(ws.epochs(rid)) >= 2, what="2 epochs")
    job = ws.get_run(rid)["job_id"]
    subprocess.run(["scontrol", "requeue", job], check=True, capture_output=True)
    # Slurm holds a requeued job back a while (BeginTime, 2 min); let it start now
    state = lambda: subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"],
                                   capture_output=True, text=True).stdout.strip()
    wait_for(lambda: state() == "PENDING", 60, what="the task back in the queue")
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True,
                   capture_output=True)
    assert settle(launch, [rid]) == {rid: "finished"}
    run = ws.get_run(rid)
    assert run["attempt"] == 1 and run["error"] is None
    assert [e["epoch"] for e in ws.epochs(rid)] == list(range(6))


def test_runs_sync_twice_duplicates_nothing(ws):
    launch = launcher(ws, env={"TARF_FAKE_EPOCHS": "4"})
    ids = [launch.submit(RunSpec(seed=i)) for i in range(2)]
    launch.start_many(ids)
    settle(launch, ids)
    snap = lambda: ([ws.get_run(i) for i in ids], [ws.epochs(i) for i in ids],
                    ws.query("SELECT count(*) AS n FROM epochs")[0]["n"])
    before = snap()
    for _ in range(2):
        rep = sync_workspace(ws, launch.executor)
        assert rep.folders == 2 and rep.changed == [] and rep.damaged == 0
        r = CliRunner().invoke(app, ["runs", "sync", "-w", str(ws.path.parent)])
        assert r.exit_code == 0 and "0 runs changed status" in r.output, r.output
    assert snap() == before and before[2] == 8
    assert ws.integrity_check() == "ok"


def test_bad_partition_and_settings_are_one_line_errors(ws, tmp_path):
    with pytest.raises(Exception) as e:
        SlurmExecutor(ws, SlurmConfig(partition="nosuchpart"))
    assert "nosuchpart" in str(e.value) and "\n" not in str(e.value)
    (tmp_path / "slurm.toml").write_text('partition = "x"\ncpus = "many"\n')
    with pytest.raises(Exception, match="cpus"):
        load_config(tmp_path)
    (tmp_path / "slurm.toml").write_text('[slurm]\nqueue = "x"\n')
    with pytest.raises(Exception, match="queue"):
        load_config(tmp_path)


def test_sbatch_refusal_marks_the_runs_failed(ws):
    launch = launcher(ws, sbatch_args=("--mem=999999999G",))
    rid = launch.submit(RunSpec())
    assert launch.start_many([rid]) == []
    run = ws.get_run(rid)
    assert run["status"] == "failed" and "sbatch refused" in run["error"]


def test_no_slurm_is_a_clear_error(ws, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(SlurmError, match="sbatch not found"):
        SlurmExecutor(ws, SlurmConfig())


def _headless(ws_dir, *extra, env=None):
    e = {**os.environ, "TARF_ENGINE_CMD": " ".join(FAKE), "PYTHONPATH": str(ROOT),
         **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "tarf_tui", "headless", "-w", str(ws_dir),
                             "--executor", "slurm", "--method", "ft,tarf", "--seed", "0,1",
                             "--format", "json", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e,
                            cwd=ROOT)


def test_a_driver_killed_mid_grid_and_restarted_completes_without_rerunning(tmp_path):
    env = {"TARF_FAKE_EPOCHS": "4", "TARF_FAKE_DELAY": "0.5"}
    p = _headless(tmp_path, env=env)
    store = Store(tmp_path / "tarf.db")
    try:
        # kill -9 the driver once the first runs (the Retrained references) are finished and
        # the others wait: submitted to Slurm or still queued behind them
        wait_for(lambda: p.poll() is None and len(store.list_runs(status="finished")) >= 1
                 and len(store.list_runs()) == 6, 120, what="a finished reference")
        p.kill()
        p.wait(30)
        before = {r["id"]: r["status"] for r in store.list_runs()}
        assert "queued" in before.values() or "running" in before.values()
        done_before = {i for i, s in before.items() if s == "finished"}
        q = _headless(tmp_path, env=env)
        out, err = q.communicate(timeout=300)
        assert q.returncode == 0, err[-2000:]
        rows = store.list_runs()
        assert len(rows) == 6 and all(r["status"] == "finished" for r in rows), err[-2000:]
        for r in rows:  # one engine start per run: nothing ran twice
            events = (tmp_path / "runs" / str(r["id"]) / "events.jsonl").read_text()
            assert events.count('"event": "start"') == 1, (r["id"], events)
        assert done_before <= {r["id"] for r in rows}
        assert "reused" in err
    finally:
        if p.poll() is None:
            p.kill()
        store.close()


@pytest.mark.slow
def test_real_engine_on_slurm_equals_a_local_run(tmp_path):
    """The real engine as a Slurm task (through its run folder) gives the metrics a local run
    of the same specs gives. CPU float32 with one thread is deterministic here, so equality
    is exact to the stored digits (docs/cluster.md: other thread counts may differ in the
    last digits)."""
    args = ["--method", "ft", "--per-class", "12", "--epochs", "2", "--format", "json"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TARF_THREADS": "1"}
    env.pop("TARF_ENGINE_CMD", None)
    out = {}
    for name, extra in (("slurm", ["--executor", "slurm"]), ("local", [])):
        p = subprocess.run([sys.executable, "-m", "tarf_tui", "headless", "-w",
                            str(tmp_path / name), *args, *extra], capture_output=True,
                           text=True, env=env, cwd=ROOT, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        with Store(tmp_path / name / "tarf.db") as s:
            out[name] = {r["method"]: {k: r[k] for k in ("ua", "ra", "ta", "mia", "gap")}
                         for r in s.list_runs()}
            if name == "slurm":
                assert all(r["executor"] == "slurm" and r["job_id"] for r in s.list_runs())
                assert s.integrity_check() == "ok"
    assert set(out["slurm"]) == {"retrained", "ft"}
    assert out["slurm"] == out["local"]


def test_a_task_over_its_memory_limit_fails_with_that_reason(ws):
    hog = [sys.executable, "-c", "x = bytearray(400 * 2**20); x[::4096] = b'1' * len(x[::4096]);"
           " import time; time.sleep(120)"]
    launch = launcher(ws, engine=hog, mem="100M")
    rid = launch.submit(RunSpec())
    launch.start_many([rid])
    assert settle(launch, [rid], timeout=120) == {rid: "failed"}
    err = ws.get_run(rid)["error"]
    assert "memory limit" in err and err.startswith("Slurm: "), err


@pytest.mark.slow
def test_a_task_over_its_time_limit_fails_with_timeout(ws):
    launch = launcher(ws, env={"TARF_FAKE_EPOCHS": "100000", "TARF_FAKE_DELAY": "0.5"},
                      time="1", stale_after=600)
    rid = launch.submit(RunSpec())
    launch.start_many([rid])
    assert settle(launch, [rid], timeout=240) == {rid: "failed"}
    err = ws.get_run(rid)["error"]
    assert "time limit" in err, err


@pytest.mark.slow
def test_two_tasks_needing_one_model_train_it_once(ws):
    """The model cache lives in the workspace (the shared filesystem): two array tasks that
    need the same uncached original model and Retrained reference, started together, train
    each once; the other task waits on the lock and loads it."""
    env = {"TARF_THREADS": "1"}
    launch = launcher(ws, env=env, engine=None)
    a = launch.submit(RunSpec(method="ft", per_class=12, epochs=2, seed=0))
    b = launch.submit(RunSpec(method="ga", per_class=12, epochs=2, seed=0))
    assert launch.start_many([a, b]) == [a, b]
    assert settle(launch, [a, b], timeout=600) == {a: "finished", b: "finished"}
    built = []
    for rid in (a, b):
        text = (ws.path.parent / "runs" / str(rid) / "events.jsonl").read_text()
        built += [line for line in text.splitlines() if '"event": "checkpoint"' in line]
    kinds = sorted(json.loads(line)["kind"] for line in built)
    assert kinds == ["original", "retrained"], kinds  # each built once, by one of the two
    assert {c["kind"] for c in (ws.get_checkpoint(json.loads(line)["key"]) for line in built)} \
        == {"original", "retrained"}


def test_the_tui_follows_slurm_runs_it_did_not_start(tmp_path):
    """A run submitted to Slurm by another driver (a headless that has exited): the TUI opened
    on the workspace syncs it on its timer: running (on its node) -> finished."""
    import asyncio

    from tarf_tui.app import TarfApp

    store = Store(tmp_path / "tarf.db")
    launch = launcher(store, env={"TARF_FAKE_EPOCHS": "12", "TARF_FAKE_DELAY": "0.5"})
    rid = launch.submit(RunSpec())
    launch.start_many([rid])
    # running before the TUI opens: nothing for the TUI to resume, only to follow
    wait_for(lambda: launch.reap() is not None and store.get_run(rid)["status"] == "running",
             what="the run running")
    store.close()
    seen = []

    async def main():
        app = TarfApp(tmp_path, engine_cmd=FAKE, poll_s=0.2, start_screen="runs")
        async with app.run_test(size=(150, 48)) as pilot:
            end = time.monotonic() + 120
            while time.monotonic() < end:
                row = app.store.get_run(rid)
                if not seen or seen[-1][0] != row["status"]:
                    seen.append((row["status"], row["host"], row["job_id"]))
                if row["status"] in TERMINAL:
                    break
                await pilot.pause(0.1)

    asyncio.run(main())
    assert seen[-1][0] == "finished", seen
    assert any(s == "running" and host for s, host, _ in seen), seen
    assert all(job and job.endswith("_0") for _, _, job in seen)
