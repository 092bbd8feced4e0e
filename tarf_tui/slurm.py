"""Runs on a Slurm cluster: ``SlurmExecutor`` behind ``launcher.Executor``. Torch-free.

Slurm is the scheduler: the runs a tick may start are submitted as one job array
(``sbatch --array=0-N%M``), each task running the same ``python -m engine run`` a local run
uses, with ``--sink`` pointing at its run folder ``<workspace>/runs/<id>`` on the shared
filesystem (``engine/sink.py``: events, heartbeat, final metrics; SQLite is never written from
a node). ``sync(store)``, called by the launcher before every reap (every TUI / headless tick,
every ``tarf-tui runs ...``), ingests the folders and ends runs with Slurm's own reason.

Only Slurm's commands are used (``sbatch``, ``squeue``, ``scontrol``, ``scancel``); ``sacct``
is not, since it needs the accounting daemon, which many small clusters lack.

States, as the store shows them:

- ``queued`` with ``job_id`` set: submitted, Slurm's queue holds it (PENDING);
- ``running``: from the engine's first report in its folder, ``host`` = the node;
- ``finished`` / ``failed`` / ``diverged`` / ``killed``: as the engine wrote them; when the job
  ended without the engine's final word, ``failed`` (or ``killed`` for CANCELLED) with Slurm's
  state and reason (TIMEOUT, OUT_OF_MEMORY, NODE_FAIL, ...), exit code and node;
- lost: Slurm still says RUNNING but the heartbeat is older than ``stale_after``: the task is
  cancelled and the run marked failed with that reason, never left running;
- requeued / preempted (Slurm restarts the task, ``Restarts`` grows): the row goes back to
  ``queued`` with the stale epoch rows dropped; the new attempt fills it again.

Configuration (``SlurmConfig``): ``<workspace>/slurm.toml`` (keys at top level or in a
``[slurm]`` table), then a ``[slurm]`` table in the grid file, then command-line options.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from engine.errors import InvalidSpec, TarfError, UnknownName
from engine.sink import LOG_FILE, Ingestor, write_run_file
from engine.store import ACTIVE, TERMINAL, Store

CONFIG_FILE = "slurm.toml"
STALE_AFTER_S = 300.0  # heartbeat silence (s) while Slurm says RUNNING before a run is lost
QUERY_TTL_S = 2.0  # squeue answers are reused this long (front ends tick every 0.2-0.5 s)
ALIVE_STATES = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
                "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED",
                "RESV_DEL_HOLD", "SPECIAL_EXIT")
# Slurm's end states -> (status, wording)
END_STATES = {
    "COMPLETED": ("failed", "the job completed but the engine wrote no final status"),
    "FAILED": ("failed", "the job failed"),
    "CANCELLED": ("killed", "cancelled in Slurm (scancel)"),
    "TIMEOUT": ("failed", "the job reached its time limit"),
    "OUT_OF_MEMORY": ("failed", "the job ran out of memory"),
    "NODE_FAIL": ("failed", "its node failed"),
    "BOOT_FAIL": ("failed", "its node failed to boot"),
    "DEADLINE": ("failed", "the job reached its deadline"),
    "PREEMPTED": ("failed", "the job was preempted and not requeued"),
}


class SlurmError(TarfError):
    pass


class SubmitError(OSError):
    """sbatch refused a submission (``Launcher.start_many`` marks the runs failed with it)."""


# ---- configuration -------------------------------------------------------------------------
@dataclass(frozen=True)
class SlurmConfig:
    partition: str | None = None  # sbatch --partition; None = the cluster's default
    gpus: int = 0  # GPUs per run (--gres=gpu:N)
    cpus: int = 1  # CPU cores per run (--cpus-per-task; the engine uses that many threads)
    mem: str | None = None  # memory per run, Slurm syntax (--mem, e.g. 8G); None = default
    time: str | None = None  # time limit per run (--time, e.g. 2:00:00); None = partition's
    max_running: int | None = None  # runs of one array at once (--array=...%M); None = no cap
    sbatch_args: tuple[str, ...] = ()  # more sbatch arguments, e.g. ("--account=lab", "--qos=short")
    setup: str = ""  # shell lines run in each task before the engine (module load, venv)
    python: str | None = None  # the Python on the nodes (default: the one running tarf-tui)
    job_name: str = "tarf"  # sbatch --job-name
    stale_after: float = STALE_AFTER_S  # heartbeat silence (s) before a RUNNING task is lost

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def merged(self, values: Mapping[str, Any], where: str) -> "SlurmConfig":
        """A copy with ``values`` (None = keep) checked and applied; ``where`` names the source
        in errors."""
        out: dict[str, Any] = {}
        for k, v in values.items():
            key = k.replace("-", "_")
            if key not in self.keys():
                raise UnknownName(f"Slurm setting ({where})", k, self.keys())
            if v is None:
                continue
            out[key] = _convert(key, v, where)
        return replace(self, **out)


def _convert(key: str, v: Any, where: str) -> Any:
    def bad(what: str) -> InvalidSpec:
        return InvalidSpec(f"Slurm setting {key} ({where}): {what}, got {v!r}")

    if key in ("gpus", "cpus", "max_running"):
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "gpus" else 1):
            raise bad("an integer >= " + ("0" if key == "gpus" else "1"))
        return v
    if key == "stale_after":
        try:
            x = float(v)
        except (TypeError, ValueError):
            raise bad("a number of seconds") from None
        if not x > 0:
            raise bad("a number of seconds > 0")
        return x
    if key == "sbatch_args":
        if isinstance(v, str):
            return tuple(shlex.split(v))
        if isinstance(v, (list, tuple)) and all(isinstance(a, str) for a in v):
            return tuple(a for item in v for a in shlex.split(item))
        raise bad("a list of strings")
    if not isinstance(v, str):
        raise bad("a string")
    v = v.strip()
    if key == "mem" and not re.fullmatch(r"\d+[KMGT]?", v, re.I):
        raise bad("a size like 4000M or 8G")
    if key == "time" and not re.fullmatch(r"(\d+-)?\d+(:\d+){0,2}", v):
        raise bad("a Slurm time like 30, 2:00:00 or 1-00:00:00")
    if key in ("partition", "job_name") and not re.fullmatch(r"[\w.,-]+", v):
        raise bad("a name")
    return v


def _read_toml(path: Path, table: str | None) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidSpec(f"cannot read {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidSpec(f"{path} is not valid TOML: {e}") from None
    if table is not None:
        sub = data.get(table, {})
        if not isinstance(sub, dict):
            raise InvalidSpec(f"{path}: [{table}] must be a table")
        return sub
    return data.get("slurm", data) if isinstance(data.get("slurm"), dict) else data


def load_config(workspace: str | os.PathLike, grid_file: str | os.PathLike | None = None,
                overrides: Mapping[str, Any] | None = None) -> SlurmConfig:
    """``<workspace>/slurm.toml``, then the grid file's ``[slurm]`` table, then ``overrides``
    (command-line options; None values are skipped)."""
    cfg = SlurmConfig()
    ws_file = Path(workspace) / CONFIG_FILE
    cfg = cfg.merged(_read_toml(ws_file, None), str(ws_file))
    if grid_file is not None:
        cfg = cfg.merged(_read_toml(Path(grid_file), "slurm"), f"{grid_file} [slurm]")
    return cfg.merged(dict(overrides or {}), "command line")


# ---- talking to Slurm ----------------------------------------------------------------------
def slurm_available() -> str | None:
    """None when ``sbatch`` and ``squeue`` are found and the controller answers, else why not."""
    for cmd in ("sbatch", "squeue", "scontrol", "scancel"):
        if shutil.which(cmd) is None:
            return f"{cmd} not found (not a Slurm login node?)"
    try:
        r = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"squeue failed: {e}"
    if r.returncode != 0:
        return f"the Slurm controller does not answer: {_one_line(r.stderr or r.stdout)}"
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


def _run(cmd: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise SlurmError(f"{cmd[0]} not found (not a Slurm login node?)") from None
    except subprocess.TimeoutExpired:
        raise SlurmError(f"{cmd[0]} did not answer within {timeout:g} s") from None


def scontrol_job(job_id: str) -> dict[str, str] | None:
    """``scontrol show job -o`` as a dict (JobState, Reason, ExitCode, NodeList, Restarts,
    TimeLimit, ...); None when Slurm no longer knows the job."""
    r = _run(["scontrol", "show", "job", "-o", str(job_id)])
    if r.returncode != 0 or not r.stdout.strip():
        return None
    out: dict[str, str] = {}
    for tok in r.stdout.strip().splitlines()[0].split():
        k, sep, v = tok.partition("=")
        if sep:
            out.setdefault(k, v)
    return out


@dataclass
class SlurmHandle:
    run_id: int
    job_id: str  # "<array job>_<task>"
    folder: Path
    log_path: Path
    pid: None = None  # the row stays queued until the engine reports in
    host: str | None = None


# ---- the executor --------------------------------------------------------------------------
class SlurmExecutor:
    """Engines as Slurm array tasks (see the module docstring). ``store``: the workspace's
    store (run rows are read to write each run folder's ``run.json``)."""

    name = "slurm"
    stale_after = None  # the launcher trusts alive(); lost runs are found in sync()

    def __init__(self, store: Store, config: SlurmConfig | None = None,
                 engine_cmd: list[str] | None = None, env: Mapping[str, str] | None = None,
                 check: bool = True):
        self.store = store
        self.config = config or SlurmConfig()
        self.workspace = Path(store.path).absolute().parent
        from .launcher import engine_cmd_from_env

        python = self.config.python or sys.executable
        engine_cmd = engine_cmd or engine_cmd_from_env()
        self.engine_cmd = list(engine_cmd) if engine_cmd else [python, "-m", "engine"]
        self.env = dict(env or {})
        if "TARF_THREADS" not in self.env and "TARF_THREADS" not in os.environ:
            self.env["TARF_THREADS"] = str(self.config.cpus)  # the task's cores, not the driver's
        # the engine's "killed" (SIGTERM) waits for Slurm's word: cancelled, or requeued
        self.ingestor = Ingestor(store, defer=("killed",))
        self._states: dict[str, tuple[str, str, str]] = {}  # job id -> (state, reason, node)
        self._states_at = 0.0
        if check:
            why = slurm_available()
            if why is not None:
                raise SlurmError(f"--executor slurm: {why}")
            if self.config.partition:
                self._check_partition(self.config.partition)

    @staticmethod
    def _check_partition(name: str) -> None:
        r = _run(["sinfo", "-h", "-o", "%R"])
        if r.returncode == 0:
            parts = sorted({p.strip().rstrip("*") for p in r.stdout.split() if p.strip()})
            if parts and name not in parts:
                raise UnknownName("Slurm partition", name, parts)

    @property
    def runs_dir(self) -> Path:
        return self.workspace / "runs"

    @property
    def scripts_dir(self) -> Path:
        d = self.workspace / "slurm"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def folder(self, run_id: int) -> Path:
        return self.runs_dir / str(int(run_id))

    # ---- submit ------------------------------------------------------------------------
    def batch_script(self, run_ids: list[int]) -> str:
        c = self.config
        n = len(run_ids)
        array = f"0-{n - 1}" + (f"%{c.max_running}" if c.max_running else "")
        lines = ["#!/bin/bash", f"#SBATCH --job-name={c.job_name}", f"#SBATCH --array={array}",
                 f"#SBATCH --output={self.scripts_dir}/%A_%a.out", "#SBATCH --open-mode=append",
                 "#SBATCH --ntasks=1", f"#SBATCH --cpus-per-task={c.cpus}", "#SBATCH --requeue"]
        if c.partition:
            lines.append(f"#SBATCH --partition={c.partition}")
        if c.gpus:
            lines.append(f"#SBATCH --gres=gpu:{c.gpus}")
        if c.mem:
            lines.append(f"#SBATCH --mem={c.mem}")
        if c.time:
            lines.append(f"#SBATCH --time={c.time}")
        from .launcher import ENGINE_PATH

        env = {"PYTHONUNBUFFERED": "1", **self.env}
        lines += [
            "# written by tarf-tui (tarf_tui/slurm.py): one array task = one run",
            "set -u",
            f"RUNS=({' '.join(str(int(r)) for r in run_ids)})",
            'RID="${RUNS[$SLURM_ARRAY_TASK_ID]}"',
            f"DIR={shlex.quote(str(self.runs_dir))}/$RID",
            f"export PYTHONPATH={shlex.quote(ENGINE_PATH)}${{PYTHONPATH:+:$PYTHONPATH}}",
            *(f"export {k}={shlex.quote(str(v))}" for k, v in sorted(env.items())),
        ]
        if c.setup.strip():
            lines += ["# setup (slurm.toml)", c.setup.rstrip()]
        cmd = " ".join(shlex.quote(a) for a in self.engine_cmd)
        lines += [
            'echo "# $(date "+%Y-%m-%d %H:%M:%S") start: node $(hostname) job '
            '${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} attempt ${SLURM_RESTART_COUNT:-0}" '
            f'>> "$DIR/{LOG_FILE}"',
            f'exec {cmd} run --sink "$DIR" --run-id "$RID" '
            f'--workspace {shlex.quote(str(self.workspace))} >> "$DIR/{LOG_FILE}" 2>&1',
        ]
        return "\n".join(lines) + "\n"

    def start(self, run_id: int) -> SlurmHandle:
        return self.start_many([run_id])[0]

    def start_many(self, run_ids: Iterable[int]) -> list[SlurmHandle]:
        """Write each run folder, submit one job array; the rows stay queued, with job ids."""
        ids = [int(r) for r in run_ids]
        rows = {}
        for rid in ids:
            row = self.store.get_run(rid)
            if row is None:
                raise SubmitError(f"no run {rid}")
            rows[rid] = row
        # a row submitted earlier (another driver, before a restart) whose task Slurm still
        # holds is adopted, never submitted twice
        held = {rid: h for rid, h in ((rid, self.adopt(row)) for rid, row in rows.items())
                if h is not None}
        if held:
            alive = self.states([h.job_id for h in held.values()], fresh=True)
            held = {rid: h for rid, h in held.items()
                    if alive.get(h.job_id, ("",))[0] in ALIVE_STATES}
        new = [rid for rid in ids if rid not in held]
        handles = {**held, **dict(zip(new, self._submit(new, rows)))}
        return [handles[rid] for rid in ids]

    def _submit(self, ids: list[int], rows: Mapping[int, Mapping[str, Any]]) -> list[SlurmHandle]:
        if not ids:
            return []
        for rid in ids:
            try:
                write_run_file(self.folder(rid), rows[rid])
            except TarfError as e:
                raise SubmitError(str(e)) from None
        stamp = time.strftime("%Y%m%d-%H%M%S")
        script = self.scripts_dir / f"array-{stamp}-{ids[0]}.sh"
        script.write_text(self.batch_script(ids))
        cmd = ["sbatch", "--parsable", *self.config.sbatch_args, str(script)]
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120,
                               cwd=self.workspace)
        except (OSError, subprocess.SubprocessError) as e:
            raise SubmitError(f"sbatch failed: {e}") from None
        if r.returncode != 0:
            raise SubmitError(f"sbatch refused the job array: {_one_line(r.stderr or r.stdout)}")
        job = r.stdout.strip().split(";")[0]
        if not job.isdigit():
            raise SubmitError(f"sbatch answered {r.stdout.strip()!r}, not a job id")
        handles = []
        for i, rid in enumerate(ids):
            h = SlurmHandle(rid, f"{job}_{i}", self.folder(rid), self.folder(rid) / LOG_FILE)
            self.store.set_job(rid, self.name, h.job_id, log_path=h.log_path)
            handles.append(h)
        self._states_at = 0.0
        return handles

    # ---- state -------------------------------------------------------------------------
    def states(self, job_ids: Iterable[str], fresh: bool = False) -> dict[str, tuple[str, str, str]]:
        """{job id: (state, reason, node)} from one ``squeue`` call (cached ``QUERY_TTL_S``);
        jobs Slurm no longer lists are absent."""
        ids = sorted({str(j) for j in job_ids if j})
        want = [j for j in ids if j not in self._states]
        if fresh or want or time.monotonic() - self._states_at > QUERY_TTL_S:
            arrays = sorted({j.split("_")[0] for j in ids} | {j.split("_")[0] for j in self._states})
            self._states = {}
            if arrays:
                r = _run(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T|%r|%N",
                          "-j", ",".join(arrays)])
                if r.returncode != 0 and "Invalid job id" not in r.stderr:
                    raise SlurmError(f"squeue failed: {_one_line(r.stderr)}")
                for line in r.stdout.splitlines():
                    parts = line.strip().split("|")
                    if len(parts) == 4:
                        self._states[parts[0]] = (parts[1], parts[2], parts[3])
            self._states_at = time.monotonic()
        return {j: self._states[j] for j in ids if j in self._states}

    def alive(self, handle: SlurmHandle) -> bool:
        """Whether Slurm still holds the task. When it does not and the run is still active,
        the run is ended here first, with Slurm's reason (as ``sync`` would), so a caller's
        own "engine died" verdict never replaces it."""
        st = self.states([handle.job_id]).get(handle.job_id)
        ok = st is not None and st[0] in ALIVE_STATES
        if not ok:
            row = self.store.get_run(handle.run_id)
            if row is not None and row["status"] in ACTIVE and row.get("job_id") == handle.job_id:
                if self.ingestor.ingest(handle.folder).status in ACTIVE:
                    self._end(self.store, self.store.get_run(handle.run_id), st, handle.folder)
        return ok

    def terminate(self, handle: SlurmHandle) -> None:
        """``scancel``: a pending task leaves the queue; a running one gets SIGTERM (the
        engine writes ``killed`` and exits), SIGKILL after the cluster's KillWait."""
        _run(["scancel", handle.job_id])
        self._states_at = 0.0

    def kill(self, handle: SlurmHandle) -> None:
        _run(["scancel", "--signal=KILL", "--full", handle.job_id])
        _run(["scancel", handle.job_id])
        self._states_at = 0.0

    def adopt(self, run: Mapping[str, Any]) -> SlurmHandle | None:
        if run.get("executor") != self.name or not run.get("job_id"):
            return None
        folder = self.folder(run["id"])
        return SlurmHandle(int(run["id"]), str(run["job_id"]), folder, folder / LOG_FILE,
                           host=run.get("host"))

    # ---- sync --------------------------------------------------------------------------
    def sync(self, store: Store | None = None, force: bool = False) -> list[int]:
        """Ingest the run folder of every active Slurm run, then end those whose job is over
        (with Slurm's reason), mark lost the silent ones, and reset requeued ones. Returns the
        ids whose status changed. Slurm is asked at most every ``QUERY_TTL_S`` (``alive``
        reads the same answer, so the launcher and this agree), unless ``force``."""
        store = store or self.store
        rows = [r for r in store.list_runs(status=ACTIVE)
                if r.get("executor") == self.name and r.get("job_id")]
        if not rows:
            return []
        # Slurm first, the folders second: a job that ends in between has written its last
        # lines before Slurm reports it over.
        states = self.states([r["job_id"] for r in rows], fresh=force)
        changed = []
        for row in rows:
            rid, job = int(row["id"]), str(row["job_id"])
            folder = self.folder(rid)
            res = self.ingestor.ingest(folder)
            status = res.status or row["status"]
            if status in TERMINAL:
                changed.append(rid)
                continue
            st = states.get(job)
            if st is None or st[0] not in ALIVE_STATES:
                if self._end(store, row, st, folder):
                    changed.append(rid)
                continue
            state, reason, node = st
            if state == "RUNNING" and status == "running":
                age = self.ingestor.beat_age(folder)
                if age is not None and age > self.config.stale_after:
                    self.kill(SlurmHandle(rid, job, folder, folder / LOG_FILE))
                    if store.mark(rid, "failed", expect=ACTIVE, error=(
                            f"lost: no heartbeat for {age:.0f} s (more than "
                            f"{self.config.stale_after:g} s) while Slurm reports job {job} "
                            f"RUNNING on {node or '?'}; the task was cancelled")):
                        changed.append(rid)
            elif state in ("PENDING", "REQUEUED", "REQUEUE_HOLD") and status == "running":
                info = scontrol_job(job) or {}
                restarts = int(info.get("Restarts", "0") or 0)
                if restarts > int(row.get("attempt") or 0) and store.restart_run(rid, restarts):
                    changed.append(rid)
        return changed

    def _stepd_note(self, job: str) -> str:
        """The most telling slurmstepd line of the task's Slurm output file, or ''."""
        lines = _stepd_lines(self.scripts_dir / f"{job}.out")
        for key in ("memory limit", "TIME LIMIT", "CANCELLED", "PREEMPT"):
            for line in lines:
                if key in line:
                    return line[:300]
        return lines[-1][:300] if lines else ""

    def _end(self, store: Store, row: Mapping[str, Any], st: tuple | None, folder: Path) -> bool:
        """The job is over (or forgotten) and the engine wrote no final status."""
        rid, job = int(row["id"]), str(row["job_id"])
        info = scontrol_job(job) if st is not None else None
        state = (info or {}).get("JobState") or (st[0] if st else None)
        if state is None:
            status, why = "failed", f"Slurm no longer knows job {job}"
        else:
            status, what = END_STATES.get(state, ("failed", f"the job ended {state}"))
            why = f"Slurm: {state}: {what}"
        details = []
        if info:
            if info.get("Reason") not in (None, "None"):
                details.append(f"reason {info['Reason']}")
            if info.get("ExitCode") not in (None, "0:0"):
                code, _, sig = info["ExitCode"].partition(":")
                details.append(f"exit code {code}" + (f", signal {sig}" if sig not in ("", "0") else ""))
            if state == "TIMEOUT" and info.get("TimeLimit"):
                details.append(f"time limit {info['TimeLimit']}")
            if info.get("NodeList") not in (None, "(null)", ""):
                details.append(f"node {info['NodeList']}")
        elif st is not None and st[2]:
            details.append(f"node {st[2]}")
        note = self._stepd_note(job)
        if note and "memory limit" in note and state != "OUT_OF_MEMORY":
            # Slurm without cgroup memory tracking kills the step itself and says so in the
            # job's output file, reporting the job FAILED / signal 9
            why = f"Slurm: {state}: the job exceeded its memory limit"
        elif note and "TIME LIMIT" in note and state != "TIMEOUT":
            why = f"Slurm: {state}: the job reached its time limit"
        held = self.ingestor.deferred(folder)
        if held is not None and state in (None, "CANCELLED", "PREEMPTED"):
            status = held[0]
            why = f"{held[1] or 'stopped by signal'}; {why}"
        tail = _last_line(folder / LOG_FILE)
        text = f"{why} (job {job}" + (f"; {'; '.join(details)}" if details else "") + ")"
        if note:
            text += f"; slurmstepd: {note}"
        if tail:
            text += f"; log: {tail}"
        return store.mark(rid, status, error=text, expect=ACTIVE)


def _stepd_lines(path: Path, tail: int = 8192) -> list[str]:
    """slurmstepd's error lines in a job's output file (memory, time limit, cancel notes)."""
    from .logs import tail_lines

    out = []
    for line in tail_lines(path, tail):
        if line.startswith("slurmstepd") and "error:" in line:
            out.append(line.split("error:", 1)[1].strip())
    return out


def _last_line(path: Path) -> str:
    from .logs import last_line

    return last_line(path)


# ---- the workspace-wide sync (tarf-tui runs sync) -----------------------------------------
@dataclass
class SyncReport:
    folders: int = 0  # run folders looked at
    events: int = 0  # events applied
    damaged: int = 0  # damaged lines skipped
    changed: list[int] = field(default_factory=list)  # runs whose status changed
    skipped: list[str] = field(default_factory=list)  # "folder: why"

    def summary(self) -> str:
        s = (f"{self.folders} run folders: {self.events} events applied, "
             f"{len(self.changed)} runs changed status")
        if self.damaged:
            s += f", {self.damaged} damaged lines skipped"
        if self.skipped:
            s += f", {len(self.skipped)} folders skipped"
        return s


def sync_workspace(store: Store, executor: "WorkspaceExecutor | SlurmExecutor | None" = None) -> SyncReport:
    """``tarf-tui runs sync``: ingest every run folder of the workspace (``<workspace>/runs/*``)
    and, where Slurm answers, end the runs whose job is over (``SlurmExecutor.sync``).
    Idempotent: a second call changes nothing."""
    from engine.sink import run_folders

    if executor is None:
        executor = WorkspaceExecutor(store, SlurmExecutor(store, load_config(
            Path(store.path).absolute().parent), check=False))
    slurm = executor.slurm if isinstance(executor, WorkspaceExecutor) else executor
    rep = SyncReport()
    ws = Path(store.path).absolute().parent
    before = {r["id"]: r["status"] for r in store.list_runs()}
    for folder in run_folders(ws / "runs"):
        rep.folders += 1
        res = slurm.ingestor.ingest(folder)
        rep.events += res.events
        rep.damaged += res.damaged
        if res.skipped:
            rep.skipped.append(f"{folder.name}: {res.skipped}")
    executor.sync(store, force=True)
    after = {r["id"]: r["status"] for r in store.list_runs()}
    rep.changed = sorted(r for r, s in after.items() if before.get(r) != s)
    return rep


class WorkspaceExecutor:
    """The executor front ends use: new runs go to ``primary`` (local or Slurm); a row is
    adopted, watched and cancelled by the executor that started it (its ``executor``
    column), so ``tarf-tui runs`` and the TUI handle a workspace with local and Slurm runs
    alike. ``sync`` ingests the Slurm runs' folders; when Slurm cannot be reached it still
    ingests them and leaves the job states alone."""

    def __init__(self, store: Store, primary, slurm: SlurmExecutor | None = None):
        self.store = store
        self.primary = primary
        self._slurm = slurm if slurm is not None else (
            primary if isinstance(primary, SlurmExecutor) else None)

    def use(self, name: str, options: Mapping[str, Any] | None = None,
            grid_file: str | os.PathLike | None = None) -> None:
        """Send the runs started from now on to ``name`` (``local`` or ``slurm``, configured
        like ``executor_for``); rows already claimed or started keep their executor. Raises
        ``TarfError`` (one line) when Slurm is not there or a setting is bad."""
        if name == getattr(self.primary, "name", "local") and not options and grid_file is None:
            return
        engine_cmd = getattr(self.primary, "engine_cmd", None)
        new = executor_for(name, self.store, engine_cmd=engine_cmd, grid_file=grid_file,
                           options=options)
        if isinstance(new, SlurmExecutor) and self._slurm is not None:
            new.ingestor = self._slurm.ingestor  # keep the folders' offsets
        self.primary = new
        if isinstance(new, SlurmExecutor):
            self._slurm = new

    @property
    def name(self) -> str:
        return getattr(self.primary, "name", "local")

    def __getattr__(self, name: str):  # env, stale_after, command, ...: the primary's
        if name in ("primary", "_slurm", "store"):
            raise AttributeError(name)
        return getattr(self.primary, name)

    @property
    def slurm(self) -> SlurmExecutor:
        if self._slurm is None:
            self._slurm = SlurmExecutor(self.store, load_config(self.workspace), check=False)
        return self._slurm

    @property
    def workspace(self) -> Path:
        return Path(self.store.path).absolute().parent

    def _for(self, handle: Any):
        return self.slurm if isinstance(handle, SlurmHandle) else self.primary

    def start(self, run_id: int) -> Any:
        return self.start_many([run_id])[0]

    def claim(self, run_ids: Iterable[int]) -> None:
        """New rows of a Slurm launch are marked ``executor='slurm'`` (no job yet), so the
        runs still waiting when the driver stops are submitted to Slurm by whoever resumes
        them (``tarf-tui runs resume``, a restarted headless, the TUI)."""
        if isinstance(self.primary, SlurmExecutor):
            for rid in run_ids:
                row = self.store.get_run(int(rid))
                if row is not None and not row.get("executor"):  # submitted ones keep their job
                    self.store.set_job(int(rid), SlurmExecutor.name, None)

    def start_many(self, run_ids: Iterable[int]) -> list[Any]:
        """Rows marked for Slurm go to Slurm (one array), the others to the primary."""
        ids = [int(r) for r in run_ids]
        rows = {r["id"]: r for r in (self.store.get_run(i) for i in ids) if r}
        to_slurm = [i for i in ids if on_slurm(rows.get(i) or {})
                    or isinstance(self.primary, SlurmExecutor)]
        others = [i for i in ids if i not in to_slurm]
        handles = dict(zip(to_slurm, self.slurm.start_many(to_slurm))) if to_slurm else {}
        many = getattr(self.primary, "start_many", None)
        if others:
            got = many(others) if many is not None else [self.primary.start(r) for r in others]
            handles.update(zip(others, got))
        return [handles[i] for i in ids]

    def has_slurm_runs(self, statuses: Iterable[str] = ACTIVE) -> bool:
        ss = list(statuses)
        return bool(self.store.query(
            f"SELECT 1 AS x FROM runs WHERE executor = ? AND status IN ({', '.join('?' for _ in ss)}) "
            "LIMIT 1", [SlurmExecutor.name, *ss]))

    def alive(self, handle: Any) -> bool:
        try:
            return self._for(handle).alive(handle)
        except SlurmError:
            return True  # Slurm unreachable: unknown, never declared dead on that

    def terminate(self, handle: Any) -> None:
        self._for(handle).terminate(handle)

    def kill(self, handle: Any) -> None:
        self._for(handle).kill(handle)

    def adopt(self, run: Mapping[str, Any]) -> Any | None:
        if on_slurm(run):
            return self.slurm.adopt(run)
        if isinstance(self.primary, SlurmExecutor):
            from .launcher import LocalExecutor

            return LocalExecutor(self.store.path).adopt(run)
        return self.primary.adopt(run)

    def sync(self, store: Store | None = None, force: bool = False) -> list[int]:
        store = store or self.store
        if self._slurm is None and not self.has_slurm_runs():
            return []
        try:
            return self.slurm.sync(store, force=force)
        except SlurmError:
            changed = []
            for row in store.list_runs(status=ACTIVE):
                if on_slurm(row):
                    res = self.slurm.ingestor.ingest(self.slurm.folder(row["id"]))
                    if res.status != row["status"]:
                        changed.append(int(row["id"]))
            return changed


def workspace_executor(store: Store, name: str = "local", *, engine_cmd: list[str] | None = None,
                       grid_file: str | os.PathLike | None = None,
                       options: Mapping[str, Any] | None = None) -> WorkspaceExecutor:
    """``WorkspaceExecutor`` whose new runs go to ``name`` (see ``executor_for``)."""
    return WorkspaceExecutor(store, executor_for(name, store, engine_cmd=engine_cmd,
                                                 grid_file=grid_file, options=options))


def executor_for(name: str, store: Store, *, engine_cmd: list[str] | None = None,
                 grid_file: str | os.PathLike | None = None,
                 options: Mapping[str, Any] | None = None):
    """The executor a front end asked for: ``local`` (``LocalExecutor``) or ``slurm``
    (``SlurmExecutor`` configured from ``slurm.toml``, the grid's ``[slurm]`` table and
    ``options``). Raises ``TarfError`` on an unknown name, bad settings or no Slurm."""
    from .launcher import LocalExecutor

    if name == "local":
        return LocalExecutor(store.path, engine_cmd)
    if name == "slurm":
        cfg = load_config(Path(store.path).absolute().parent, grid_file, options)
        return SlurmExecutor(store, cfg, engine_cmd)
    raise UnknownName("executor", name, EXECUTORS)


EXECUTORS = ("local", "slurm")


def on_slurm(run: Mapping[str, Any]) -> bool:
    """Whether the run was handed to Slurm (its ``executor`` column)."""
    return run.get("executor") == SlurmExecutor.name


def where(run: Mapping[str, Any]) -> str:
    """Where a run's engine is, for lists and headers: ``slurm 46_0 @gpu07`` (a Slurm task,
    with its node once it reported in), ``slurm (not submitted)``, or the host of a local
    run ('' before it started)."""
    if on_slurm(run):
        if not run.get("job_id"):
            return "slurm (not submitted)"
        node = run.get("host") if run.get("status") != "queued" or run.get("pid") else None
        return f"slurm {run['job_id']}" + (f" @{node}" if node else "")
    return str(run.get("host") or "")


def check_executor(name: str, workspace: str | os.PathLike,
                   grid_file: str | os.PathLike | None = None,
                   options: Mapping[str, Any] | None = None) -> None:
    """The checks ``executor_for`` makes, before anything is written: an unknown name, bad
    Slurm settings, no Slurm, an unknown partition -> ``TarfError``."""
    if name not in EXECUTORS:
        raise UnknownName("executor", name, EXECUTORS)
    if name == "slurm":
        cfg = load_config(workspace, grid_file, options)
        why = slurm_available()
        if why is not None:
            raise SlurmError(f"--executor slurm: {why}")
        if cfg.partition:
            SlurmExecutor._check_partition(cfg.partition)
