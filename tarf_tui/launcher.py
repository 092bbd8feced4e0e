"""Engine process control, shared by the TUI and ``tarf-tui headless``. Torch-free.

- ``Executor``: where engines run. ``LocalExecutor`` starts one subprocess per run
  (``python -m engine run --db DB --run-id ID``), in its own session, output appended to
  ``<workspace>/logs/run-<id>.log``. A cluster executor would implement the same five methods.
- ``Launcher``: submit / start / cancel runs and ``reap`` dead ones. Every front-end read of
  the run list goes through ``Launcher.list_runs``, which reaps first, so a run whose engine
  died never shows as "running".
- ``Pool``: a non-blocking queue that keeps at most N engines running; call ``tick()`` from a
  timer (TUI) or a sleep loop (headless).

Status protocol with the engine: the launcher marks a run ``running`` with the child's pid as
soon as it is spawned; the engine confirms with ``Store.mark_running`` and writes epochs,
heartbeats and the final status itself. On SIGTERM the engine marks itself ``killed`` and
exits; the launcher marks ``killed`` only when it had to SIGKILL, and ``failed`` when it finds
the engine gone (or silent for ``stale_after`` seconds) with the run still ``running``.
"""

from __future__ import annotations

import functools
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Protocol, runtime_checkable

import engine
from engine.errors import TarfError
from engine.spec import RunSpec
from engine.store import ACTIVE, Store, age_s

from .logs import last_line

ENGINE_PATH = str(Path(engine.__file__).resolve().parent.parent)  # folder holding `engine`
STALE_AFTER_S = 120.0  # a running engine silent for this long is declared failed
ENGINE_CMD_ENV = "TARF_ENGINE_CMD"  # tests and demos: a fake engine command line


def engine_cmd_from_env() -> list[str] | None:
    """``$TARF_ENGINE_CMD`` split as a shell would (None when unset): the one place it is read.
    ``LocalExecutor`` uses it when given no command, e.g.
    ``TARF_ENGINE_CMD="python tests/fake_engine.py"``."""
    raw = os.environ.get(ENGINE_CMD_ENV, "").strip()
    return shlex.split(raw) if raw else None


# ---- executors -----------------------------------------------------------------------------
@runtime_checkable
class Executor(Protocol):
    def start(self, run_id: int) -> Any:
        """Launch the engine for ``run_id``; return an opaque handle. Its ``pid`` (and
        optional ``host``, ``log_path``) are written to the row; a handle with ``pid`` None
        leaves the row queued until the engine reports in. An executor may set a
        ``stale_after`` attribute (seconds, or None: trust ``alive`` and never declare a
        silent engine dead) in place of the launcher's heartbeat limit."""

    def alive(self, handle: Any) -> bool:
        """Whether the engine behind ``handle`` is still running."""

    def terminate(self, handle: Any) -> None:
        """Ask the engine to stop (it marks the run killed and exits)."""

    def kill(self, handle: Any) -> None:
        """Stop the engine now."""

    def adopt(self, run: dict) -> Any | None:
        """A handle for a run started elsewhere (another process, an earlier session), from
        its row; None when this executor cannot reach it."""

    # Optional (looked up with getattr, not part of the protocol):
    #   start_many(run_ids) -> list[handle]: start several runs in one call (a job array);
    #     ``Pool.tick`` hands it every run it may start at once.
    #   sync(store) -> list[int]: bring the store up to date with engines that do not write it
    #     themselves; called at the start of every ``Launcher.reap``.
    #   stale_after: see ``start``.
    #   claim(run_ids): called by ``Launcher.submit`` with each new row (mark it as this
    #     executor's before it starts).


@dataclass
class LocalHandle:
    run_id: int
    pid: int
    popen: subprocess.Popen | None = None  # None when adopted from a row
    log_path: Path | None = None

    @property
    def returncode(self) -> int | None:
        return None if self.popen is None else self.popen.poll()


def _proc_state(pid: int) -> str | None:
    """The one-letter state from /proc/<pid>/stat, None without /proc or process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else None


@functools.cache
def proc_is_ours() -> bool:
    """Whether /proc shows this process's pid namespace (``/proc/self`` names our pid).

    A container or sandbox may mount another namespace's /proc, where ``/proc/<pid>`` is
    someone else's process or nobody's; then only ``os.kill`` can be trusted."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def _cmdline(pid: int, tries: int = 50) -> list[bytes] | None:
    """``/proc/<pid>/cmdline`` split at NULs; None when the process is gone.

    A process that has just been started reads empty for a moment: the kernel lets a vfork
    parent (``subprocess.Popen``) go on before the new program's arguments are in place, and we
    measured an empty read in 25 of 300 reads straight after ``Popen``. So an empty read is
    retried for up to ``tries`` x 2 ms; one that stays empty (a kernel thread) is returned."""
    raw = b""
    for _ in range(tries):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if raw:
            break
        time.sleep(0.002)
    return raw.split(b"\0")


def pid_runs_engine(pid: int, run_id: int | None = None) -> bool:
    """Whether ``pid`` is a live (non-zombie) engine process, for ``run_id`` when given.

    ``os.kill(pid, 0)`` says the pid exists; where /proc shows our pid namespace its command
    line must also mention ``engine`` (and ``--run-id <id>``), so a recycled pid is not
    mistaken for it. Without such a /proc the pid's existence is all there is to go on."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    if not proc_is_ours():
        return True
    if _proc_state(pid) in ("Z", "X"):
        return False
    args = _cmdline(pid)
    if args is None:
        return False
    args = [a.decode(errors="replace") for a in args if a]
    if not any("engine" in a for a in args):
        return False
    if run_id is not None and "--run-id" in args:
        i = args.index("--run-id")
        return i + 1 < len(args) and args[i + 1] == str(run_id)
    return True


class LocalExecutor:
    """Engines as local subprocesses, each in its own session (so signals reach its children
    too), stdin closed, stdout and stderr appended to ``<db folder>/logs/run-<id>.log``.
    ``engine_cmd`` None: ``$TARF_ENGINE_CMD`` when set, else ``python -m engine``."""

    def __init__(self, db_path: str | os.PathLike, engine_cmd: list[str] | None = None,
                 env: dict[str, str] | None = None):
        self.db_path = Path(db_path).absolute()
        engine_cmd = engine_cmd or engine_cmd_from_env()
        self.engine_cmd = list(engine_cmd) if engine_cmd else [sys.executable, "-m", "engine"]
        self.env = dict(env or {})
        self.host = socket.gethostname()

    @property
    def logs_dir(self) -> Path:
        d = self.db_path.parent / "logs"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def command(self, run_id: int) -> list[str]:
        return [*self.engine_cmd, "run", "--db", str(self.db_path), "--run-id", str(run_id)]

    def start(self, run_id: int) -> LocalHandle:
        cmd = self.command(run_id)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (ENGINE_PATH, env.get("PYTHONPATH", "")) if p)
        log_path = self.logs_dir / f"run-{run_id}.log"
        with open(log_path, "ab") as log:
            log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} start: {shlex.join(cmd)}\n"
                      .encode())
            log.flush()
            p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True, env=env,
                                 close_fds=True)
        return LocalHandle(run_id, p.pid, p, log_path)

    def alive(self, handle: LocalHandle) -> bool:
        if handle.popen is not None:
            return handle.popen.poll() is None  # also reaps our zombie
        return pid_runs_engine(handle.pid, handle.run_id)

    def _signal(self, handle: LocalHandle, sig: int) -> None:
        if not self.alive(handle):
            return
        try:
            if handle.popen is not None or os.getpgid(handle.pid) == handle.pid:
                os.killpg(handle.pid, sig)  # the engine leads its own session
            else:
                os.kill(handle.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self, handle: LocalHandle) -> None:
        self._signal(handle, signal.SIGTERM)

    def kill(self, handle: LocalHandle) -> None:
        self._signal(handle, signal.SIGKILL)

    def adopt(self, run: dict) -> LocalHandle | None:
        if not run.get("pid") or (run.get("host") or self.host) != self.host:
            return None
        log = run.get("log_path")
        return LocalHandle(run["id"], int(run["pid"]), None, Path(log) if log else None)


# ---- launcher ------------------------------------------------------------------------------
_last_log_line = last_line  # the older name (tarf_tui.logs.last_line is the public one)


class Launcher:
    """Submit, start, cancel and reap runs of one store through one executor."""

    def __init__(self, store: Store, executor: Executor | None = None,
                 stale_after: float = STALE_AFTER_S):
        self.store = store
        self.executor = executor if executor is not None else LocalExecutor(store.path)
        self.stale_after = stale_after
        self._handles: dict[int, Any] = {}
        self._cancelling: set[int] = set()
        self._token = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"  # for claim_start

    # ---- submit / start ----------------------------------------------------------------
    def submit(self, spec: RunSpec) -> int:
        """A queued row for ``spec``; returns its id. An executor with ``claim`` marks the row
        as its own at once (a Slurm launch's waiting runs stay Slurm's on resume)."""
        rid = self.store.create_run(spec, status="queued")
        claim = getattr(self.executor, "claim", None)
        if claim is not None:
            claim([rid])
        return rid

    def start(self, run_id: int) -> Any:
        """Spawn the engine of a queued run; returns the executor's handle."""
        self._check_queued(run_id)
        try:
            handle = self.executor.start(run_id)
        except OSError as e:
            self.store.mark(run_id, "failed", error=f"could not start the engine: {e}",
                            expect=("queued",))
            raise TarfError(f"could not start the engine for run {run_id}: {e}") from None
        return self._started(run_id, handle)

    def start_many(self, run_ids: Iterable[int]) -> list[int]:
        """Start several queued runs: in one call when the executor has ``start_many``, else
        one by one. Returns the ids started (a run that could not start is marked failed)."""
        ids = []
        for rid in run_ids:
            try:
                self._check_queued(rid)
            except TarfError:
                continue
            ids.append(int(rid))
        many = getattr(self.executor, "start_many", None)
        if many is None or not ids:
            started = []
            for rid in ids:
                try:
                    self.start(rid)
                except TarfError:
                    continue
                started.append(rid)
            return started
        try:
            handles = list(many(ids))
        except OSError as e:
            for rid in ids:
                self.store.mark(rid, "failed", error=f"could not start the engine: {e}",
                                expect=("queued",))
            return []
        for rid, h in zip(ids, handles):
            self._started(rid, h)
        return ids[:len(handles)]

    def _check_queued(self, run_id: int) -> None:
        """The run is queued and now claimed by this launcher (``Store.claim_start``): another
        launcher on the same workspace will not start it too."""
        run = self.store.get_run(run_id)
        if run is None:
            raise TarfError(f"no run {run_id}")
        if run["status"] != "queued":
            raise TarfError(f"run {run_id} is {run['status']}, not queued")
        if not self.store.claim_start(run_id, self._token):
            raise TarfError(f"run {run_id} is being started by another launcher")

    def _started(self, run_id: int, handle: Any) -> Any:
        self._handles[run_id] = handle
        log_path = getattr(handle, "log_path", None)
        pid = getattr(handle, "pid", None)
        # The engine may have reported in (or even finished) already: then only the log path.
        launched = pid is not None and self.store.mark_launched(
            run_id, pid, host=getattr(handle, "host", None), log_path=log_path)
        if not launched and log_path is not None:
            self.store.set_log_path(run_id, log_path)
        return handle

    def running_handles(self) -> dict[int, Any]:
        """Handles of engines started by this launcher that are still alive."""
        return {i: h for i, h in self._handles.items() if self.executor.alive(h)}

    # ---- cancel ------------------------------------------------------------------------
    def cancel(self, run_id: int, timeout: float = 10.0) -> str | None:
        """Stop a run; returns its final status. See ``cancel_many``."""
        return self.cancel_many([run_id], timeout).get(run_id)

    def cancel_many(self, run_ids: Iterable[int], timeout: float = 10.0) -> dict[int, str]:
        """Queued runs are marked ``killed``. Running ones get SIGTERM (the engine marks
        itself killed and exits); those still alive after ``timeout`` seconds get SIGKILL and
        are marked ``killed`` here. Runs already finished are left alone."""
        run_ids = [int(i) for i in run_ids]
        live: dict[int, Any] = {}
        unreachable: list[str] = []
        self._cancelling.update(run_ids)
        try:
            for rid in run_ids:
                run = self.store.get_run(rid)
                if run is None or run["status"] not in ACTIVE:
                    continue
                handle = self._handles.get(rid) or self.executor.adopt(run)
                if handle is None:
                    if run["status"] == "queued":
                        self.store.mark(rid, "killed", error="cancelled before start",
                                        expect=("queued",))
                        continue
                    unreachable.append(f"run {rid} (on {run.get('host')})")
                    continue
                self.executor.terminate(handle)
                live[rid] = handle
            deadline = time.monotonic() + timeout
            while live and time.monotonic() < deadline:
                live = {r: h for r, h in live.items() if self.executor.alive(h)}
                if live:
                    time.sleep(0.05)
            for rid, h in live.items():
                self.executor.kill(h)
            end = time.monotonic() + 5.0
            while time.monotonic() < end and any(self.executor.alive(h) for h in live.values()):
                time.sleep(0.02)
            for rid in run_ids:
                if any(u.startswith(f"run {rid} ") for u in unreachable):
                    continue
                why = (f"killed (SIGKILL) after ignoring SIGTERM for {timeout:g} s"
                       if rid in live else "cancelled")
                self.store.mark(rid, "killed", error=why, expect=ACTIVE)
                self._handles.pop(rid, None)
            if unreachable:
                raise TarfError(f"cannot cancel from this machine: {', '.join(unreachable)}")
            return self.store.statuses(run_ids)
        finally:
            self._cancelling.difference_update(run_ids)

    # ---- reap --------------------------------------------------------------------------
    def reap(self, stale_after: float | None = None) -> list[int]:
        """Mark ``failed`` every ``running`` run whose engine is gone (its pid is dead on this
        host) or silent (no heartbeat for ``stale_after`` seconds; a silent engine that is
        still alive is killed). Returns the ids marked."""
        if self.store.read_only:  # nothing can be marked; readers show the rows as they are
            return []
        self.sync()
        if stale_after is None:
            stale_after = getattr(self.executor, "stale_after", self.stale_after)
        # Poll our own children first: this reaps their zombies.
        exited = {rid: getattr(h, "returncode", None)
                  for rid, h in self._handles.items() if not self.executor.alive(h)}
        reaped = []
        for run in self.store.list_runs(status="running"):
            rid = run["id"]
            if rid in self._cancelling:
                continue
            handle = self._handles.get(rid) or self.executor.adopt(run)
            alive = None if handle is None else self.executor.alive(handle)
            beat = age_s(run.get("heartbeat_at"))
            last = run.get("heartbeat_at") or "never"
            pid = run.get("pid")
            if alive is False:
                code = exited.get(rid)
                reason = (f"engine (pid {pid}) died without finishing"
                          + (f" (exit code {code})" if code is not None else "")
                          + f"; last heartbeat {last}")
            elif stale_after is not None and (beat is None or beat > stale_after):
                reason = (f"engine (pid {pid}) silent for "
                          + (f"{beat:.0f} s" if beat is not None else "ever")
                          + f" (more than {stale_after:g} s); last heartbeat {last}")
                if alive:
                    self.executor.kill(handle)
            else:
                continue
            tail = last_line(run.get("log_path"))
            if tail:
                reason += f"; log: {tail}"
            if self.store.mark(rid, "failed", error=reason, expect=("running",)):
                reaped.append(rid)
        for rid in exited:
            self._handles.pop(rid, None)
        return reaped

    def sync(self) -> list[int]:
        """The executor's ``sync(store)`` when it has one (see ``Executor``)."""
        fn = getattr(self.executor, "sync", None)
        return list(fn(self.store) or []) if fn is not None and not self.store.read_only else []

    def list_runs(self, **filters) -> list[dict]:
        """``Store.list_runs`` after a ``reap``: what front ends show."""
        self.reap()
        return self.store.list_runs(**filters)

    def get_run(self, run_id: int) -> dict | None:
        self.reap()
        return self.store.get_run(run_id)


# ---- pool ----------------------------------------------------------------------------------
@dataclass
class PoolStatus:
    queued: int = 0  # waiting in the pool
    running: int = 0  # status running, or its process not yet exited
    finished: int = 0
    failed: int = 0  # failed or diverged
    killed: int = 0
    started: list[int] = field(default_factory=list)  # ids started by this tick
    reaped: list[int] = field(default_factory=list)  # ids this tick's reap marked failed

    @property
    def done(self) -> bool:
        return self.queued == 0 and self.running == 0


def threads_per_engine(workers: int) -> int:
    """CPU threads each of ``workers`` concurrent engines should use: the cores split between
    them. Oversubscribed OpenMP threads spin against each other (2 cores, 2 engines x 2 threads
    measured 57 images/s against 2,600 with 1 thread each)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


class Pool:
    """Keeps at most ``workers`` of its runs running. Non-blocking: call ``tick()`` often.
    Engines it starts get ``TARF_THREADS`` = cores / workers unless the environment (or the
    executor) already sets ``TARF_THREADS`` or ``OMP_NUM_THREADS``."""

    def __init__(self, launcher: Launcher, workers: int, run_ids: Iterable[int] = ()):
        if workers < 1:
            raise TarfError(f"workers must be >= 1, got {workers}")
        self.launcher = launcher
        self.workers = workers
        env = getattr(launcher.executor, "env", None)
        if isinstance(env, dict) and not any(
                k in env or k in os.environ for k in ("TARF_THREADS", "OMP_NUM_THREADS")):
            env["TARF_THREADS"] = str(threads_per_engine(workers))
        self.run_ids: list[int] = []  # every run in the pool, in order
        self._queue: list[int] = []  # not yet started
        self.status = PoolStatus()
        self.add(*run_ids)

    def add(self, *run_ids: int) -> None:
        for rid in run_ids:
            if rid not in self.run_ids:
                self.run_ids.append(int(rid))
                self._queue.append(int(rid))
        self.status.queued = len(self._queue)

    def submit(self, spec: RunSpec) -> int:
        rid = self.launcher.submit(spec)
        self.add(rid)
        return rid

    def tick(self) -> PoolStatus:
        reaped = self.launcher.reap()
        statuses = self.launcher.store.statuses(self.run_ids)
        # Runs that left "queued" without us (cancelled, deleted) leave the queue.
        self._queue = [r for r in self._queue if statuses.get(r) == "queued"]
        # A slot is taken while the run is "running" or its process has not exited yet (an
        # engine that has written "finished" may still be releasing the GPU).
        alive = self.launcher.running_handles()
        running = sum(1 for r in self.run_ids if statuses.get(r) == "running" or r in alive)
        free = max(0, self.workers - running)
        ready, self._queue = self._queue[:free], self._queue[free:]
        # runs that could not start are marked failed (or were no longer queued): counted below
        started = self.launcher.start_many(ready) if ready else []
        statuses = self.launcher.store.statuses(self.run_ids)
        alive = self.launcher.running_handles()
        st = PoolStatus(queued=len(self._queue), started=started, reaped=reaped)
        for r in self.run_ids:
            s = statuses.get(r)
            if s == "running" or r in alive or (s == "queued" and r not in self._queue):
                st.running += 1
            elif s == "finished":
                st.finished += 1
            elif s in ("failed", "diverged"):
                st.failed += 1
            elif s == "killed":
                st.killed += 1
        self.status = st
        return st

    @property
    def pending(self) -> list[int]:
        """Runs in the pool not started yet, in start order."""
        return list(self._queue)

    def clear_queue(self) -> list[int]:
        """Drop the runs not started yet (they stay queued in the store); returns them."""
        out, self._queue = self._queue, []
        self.status.queued = 0
        return out

    def cancel_all(self, timeout: float = 10.0) -> dict[int, str]:
        """Drop the queue (those runs become ``killed``) and cancel the running ones."""
        self._queue.clear()
        out = self.launcher.cancel_many(self.run_ids, timeout)
        self.tick()
        return out

    @property
    def done(self) -> bool:
        return self.status.done and not self._queue
