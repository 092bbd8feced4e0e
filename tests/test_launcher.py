"""tarf_tui.launcher with the fake engine: start, cancel, reap, pool limits."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.spec import RunSpec
from engine.store import Store
import tarf_tui.launcher as launcher_module
from tarf_tui.launcher import (ENGINE_PATH, Launcher, LocalExecutor, Pool, pid_runs_engine,
                               proc_is_ours)

FAKE = str(Path(__file__).with_name("fake_engine.py"))


@pytest.fixture
def launcher(store):
    lau = Launcher(store, LocalExecutor(store.path, engine_cmd=[sys.executable, FAKE]))
    yield lau
    for h in lau._handles.values():  # leave no engine behind a failed test
        lau.executor.kill(h)


def wait_for(cond, timeout=10.0, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {cond}")


def status(store, rid):
    return store.get_run(rid)["status"]


def test_start_runs_to_finished(launcher, store, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_EPOCHS", "4")
    rid = launcher.submit(RunSpec(method="ga"))
    assert status(store, rid) == "queued"
    h = launcher.start(rid)
    wait_for(lambda: launcher.get_run(rid)["status"] == "finished")
    run = store.get_run(rid)
    assert run["pid"] == h.pid and run["host"] == socket.gethostname()
    assert run["ua"] == 2.0 and run["finished_at"] and run["error"] is None
    assert [e["epoch"] for e in store.epochs(rid)] == [0, 1, 2, 3]
    log = Path(run["log_path"])
    assert log == store.path.parent / "logs" / f"run-{rid}.log"
    assert '"event": "finished"' in log.read_text()
    wait_for(lambda: not launcher.executor.alive(h))
    assert h.returncode == 0
    assert launcher.reap() == [] and status(store, rid) == "finished"
    with pytest.raises(Exception, match="not queued"):
        launcher.start(rid)


def test_engine_package_found_from_another_cwd(store, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    probe = [sys.executable, "-c", "import engine, sys; print('ENGINE', engine.__file__, sys.argv[1:])"]
    ex = LocalExecutor(store.path, engine_cmd=probe)
    h = ex.start(7)
    assert h.popen.wait(10) == 0
    text = h.log_path.read_text()
    assert f"ENGINE {ENGINE_PATH}" in text
    assert f"'--db', '{store.path.absolute()}', '--run-id', '7'" in text
    assert ex.command(7)[:3] == [probe[0], "-c", probe[2]]
    assert LocalExecutor(store.path).command(1)[:3] == [sys.executable, "-m", "engine"]


def test_engine_failure_keeps_its_error(launcher, store, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_FAIL", "1")
    rid = launcher.submit(RunSpec())
    h = launcher.start(rid)
    wait_for(lambda: not launcher.executor.alive(h))
    assert launcher.reap() == []
    run = store.get_run(rid)
    assert run["status"] == "failed" and "TARF_FAKE_FAIL" in run["error"]


def test_engine_crash_at_start_is_reaped_with_its_last_log_line(store):
    crash = [sys.executable, "-c", "import sys; sys.exit('ImportError: no torch here')"]
    lau = Launcher(store, LocalExecutor(store.path, engine_cmd=crash))
    rid = lau.submit(RunSpec())
    lau.start(rid)
    wait_for(lambda: lau.reap() == [rid])
    err = store.get_run(rid)["error"]
    assert "died without finishing (exit code 1)" in err
    assert err.endswith("log: ImportError: no torch here")


def test_cancel_running_engine(launcher, store, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_EPOCHS", "100")
    monkeypatch.setenv("TARF_FAKE_DELAY", "0.2")
    rid = launcher.submit(RunSpec())
    h = launcher.start(rid)
    wait_for(lambda: store.epochs(rid))
    assert launcher.cancel(rid, timeout=5) == "killed"
    assert not launcher.executor.alive(h) and h.returncode == 143
    run = store.get_run(rid)
    assert run["error"] == "terminated by SIGTERM"  # the engine marked itself
    assert run["finished_at"] and len(store.epochs(rid)) < 100


def test_cancel_engine_ignoring_sigterm_is_killed(store):
    stubborn = [sys.executable, "-c",
                "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('stub' + ' ready', flush=True); time.sleep(60)"]
    lau = Launcher(store, LocalExecutor(store.path, engine_cmd=stubborn))
    rid = lau.submit(RunSpec())
    h = lau.start(rid)
    assert status(store, rid) == "running"  # the launcher marks it at spawn
    wait_for(lambda: "stub ready" in h.log_path.read_text())  # SIGTERM now ignored
    t = time.monotonic()
    assert lau.cancel(rid, timeout=0.5) == "killed"
    assert time.monotonic() - t < 8  # 0.5 s grace, then SIGKILL
    assert h.returncode == -signal.SIGKILL
    assert "SIGKILL" in store.get_run(rid)["error"]


def test_cancel_queued(launcher, store):
    rid = launcher.submit(RunSpec())
    assert launcher.cancel(rid) == "killed"
    assert store.get_run(rid)["error"] == "cancelled before start"


@pytest.mark.parametrize("same_launcher", [True, False])
def test_kill_9_is_reaped(launcher, store, monkeypatch, same_launcher):
    monkeypatch.setenv("TARF_FAKE_EPOCHS", "100")
    monkeypatch.setenv("TARF_FAKE_DELAY", "0.1")
    rid = launcher.submit(RunSpec())
    h = launcher.start(rid)
    wait_for(lambda: len(store.epochs(rid)) >= 2)
    assert launcher.reap() == []  # alive and beating: left alone
    os.kill(h.pid, signal.SIGKILL)
    before = store.epochs(rid)
    # the other launcher never saw the Popen: it judges by pid and /proc (a zombie = dead)
    reaper = launcher if same_launcher else Launcher(Store(store.path),
                                                     LocalExecutor(store.path))
    wait_for(lambda: reaper.reap() == [rid], timeout=5)
    run = store.get_run(rid)
    assert run["status"] == "failed"
    assert f"engine (pid {h.pid}) died without finishing" in run["error"]
    assert "last heartbeat 20" in run["error"]
    assert store.epochs(rid) == before and len(before) >= 2
    assert store.integrity_check() == "ok"
    assert reaper.reap() == []


def test_stale_heartbeat_elsewhere_is_failed(launcher, store):
    rid = launcher.submit(RunSpec())
    store.db.execute("UPDATE runs SET status = 'running', pid = 1, host = 'another-host', "
                     "heartbeat_at = '2020-01-01T00:00:00.000+00:00' WHERE id = ?", [rid])
    fresh = launcher.submit(RunSpec(seed=1))
    store.mark_launched(fresh, 1, host="another-host")  # heartbeat now: left alone
    assert launcher.reap() == [rid]
    run = store.get_run(rid)
    assert run["status"] == "failed" and "silent" in run["error"]
    assert status(store, fresh) == "running"
    assert [r["id"] for r in launcher.list_runs(status="failed")] == [rid]


def test_silent_local_engine_is_failed_and_stopped(launcher, store, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_HANG", "1")
    rid = launcher.submit(RunSpec())
    h = launcher.start(rid)
    wait_for(lambda: store.get_run(rid)["device"] == "cpu")  # the engine reported in
    assert launcher.reap(stale_after=30) == []
    time.sleep(0.3)
    assert launcher.reap(stale_after=0.2) == [rid]
    assert "silent" in store.get_run(rid)["error"]
    wait_for(lambda: not launcher.executor.alive(h), timeout=5)


@pytest.mark.skipif(not proc_is_ours(), reason="/proc shows another pid namespace here")
def test_pid_check_survives_pid_reuse(tmp_path):
    other = subprocess.Popen(["sleep", "30"])
    try:
        assert not pid_runs_engine(other.pid)  # alive, but not an engine
    finally:
        other.kill()
        other.wait()
    assert not pid_runs_engine(other.pid)
    # straight after Popen, /proc/<pid>/cmdline can still read empty (1 in 12 to 1 in 150 starts,
    # measured): 100 fresh starts catch most runs of a check that trusts the first read
    for _ in range(100):
        fake = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "engine",
                                 "run", "--run-id", "5"])
        try:
            assert pid_runs_engine(fake.pid) and pid_runs_engine(fake.pid, 5)
            assert not pid_runs_engine(fake.pid, 6)
        finally:
            fake.kill()
            fake.wait()


def test_pid_check_without_own_proc_trusts_only_kill(monkeypatch):
    """In a sandbox whose /proc is another namespace's, /proc/<pid> says nothing about our
    children: a live pid counts as running, a reaped one does not."""
    monkeypatch.setattr(launcher_module, "proc_is_ours", lambda: False)
    other = subprocess.Popen(["sleep", "30"])
    try:
        assert launcher_module.pid_runs_engine(other.pid)
    finally:
        other.kill()
        other.wait()
    assert not launcher_module.pid_runs_engine(other.pid)


def test_pool_respects_worker_limit(launcher, store, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_EPOCHS", "3")
    monkeypatch.setenv("TARF_FAKE_DELAY", "0.1")
    pool = Pool(launcher, workers=2)
    ids = [pool.submit(RunSpec(seed=i)) for i in range(5)]
    assert not pool.done
    most, started = 0, []
    end = time.monotonic() + 20
    while not pool.done and time.monotonic() < end:
        st = pool.tick()
        started += st.started
        live = len(launcher.running_handles())
        in_db = len(store.list_runs(status="running"))
        assert st.running <= 2 and live <= 2 and in_db <= 2
        most = max(most, st.running, live)
        time.sleep(0.03)
    assert pool.done and most == 2
    assert sorted(started) == ids
    assert pool.status.finished == 5
    assert all(status(store, i) == "finished" for i in ids)


def test_pool_cancel_all(launcher, store, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_EPOCHS", "100")
    monkeypatch.setenv("TARF_FAKE_DELAY", "0.1")
    pool = Pool(launcher, workers=1)
    ids = [pool.submit(RunSpec(seed=i)) for i in range(3)]
    assert pool.tick().started == [ids[0]]
    wait_for(lambda: store.epochs(ids[0]))
    pool.cancel_all(timeout=5)
    assert pool.done and pool.status.killed == 3
    assert [status(store, i) for i in ids] == ["killed"] * 3
    assert pool.tick().started == []


def test_launcher_is_torch_free():
    code = ("import sys, tarf_tui.launcher; "
            "bad = [m for m in ('torch', 'textual') if m in sys.modules]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env={**os.environ, "PYTHONPATH": ENGINE_PATH})
    assert r.returncode == 0, r.stderr


def test_pool_splits_cpu_threads_between_engines(tmp_path, monkeypatch):
    from tarf_tui.launcher import Launcher, LocalExecutor, Pool, threads_per_engine

    monkeypatch.delenv("TARF_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert threads_per_engine(1) == 4 and threads_per_engine(2) == 2 and threads_per_engine(8) == 1
    from engine.store import Store

    store = Store(tmp_path / "tarf.db")
    ex = LocalExecutor(tmp_path / "tarf.db")
    Pool(Launcher(store, ex), workers=2)
    assert ex.env["TARF_THREADS"] == "2"
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's setting wins
    ex2 = LocalExecutor(tmp_path / "tarf.db")
    Pool(Launcher(store, ex2), workers=2)
    assert "TARF_THREADS" not in ex2.env
    store.close()


def test_two_launchers_never_start_one_run_twice(store):
    """A TUI and a headless on one workspace: only the first launcher to claim a queued run
    starts its engine."""
    from engine.errors import TarfError

    class Rec:
        def __init__(self):
            self.started = []

        def start(self, rid):
            self.started.append(rid)
            return type("H", (), {"pid": None, "log_path": None})()  # the row stays queued

        alive = lambda self, h: False  # noqa: E731
        terminate = kill = lambda self, h: None  # noqa: E731
        adopt = lambda self, run: None  # noqa: E731

    a, b = Rec(), Rec()
    la, lb = Launcher(store, a), Launcher(store, b)
    rid = la.submit(RunSpec(method="ft"))
    la.start(rid)
    with pytest.raises(TarfError, match="being started by another launcher"):
        lb.start(rid)
    assert lb.start_many([rid]) == [] and (a.started, b.started) == ([rid], [])
