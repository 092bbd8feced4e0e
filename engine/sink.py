"""Run folders: how an engine that cannot reach the workspace database reports a run, and how
the driver brings that report into the database. Torch-free; the one owner of the folder
format (writer and reader).

SQLite is never written over a network filesystem (its locking and WAL do not work there), so
an engine on a cluster node writes its run folder on the shared filesystem instead:

``<workspace>/runs/<run id>/``

==================  ========================================================================
file                written by / meaning
==================  ========================================================================
``run.json``        the driver, before the job is submitted: ``{"run_id", "spec",
                    "spec_hash", "created_at"}`` (the row's identity: a folder left by a
                    deleted database is never ingested into a new row with the same id)
``events.jsonl``    the engine, appended, one JSON object per line, fsync'ed per line:
                    ``{"t": ISO time, "a": attempt, "event": ..., ...}``; events ``start``,
                    ``running``, ``epoch``, ``finish``, ``mark``, ``checkpoint``
``heartbeat``       the engine, replaced atomically at most every ``HEARTBEAT_EVERY_S``:
                    ``{"t", "a", "pid", "host"}``
``engine.log``      the engine's stdout and stderr (the batch script redirects them)
==================  ========================================================================

``attempt`` (``a``) is the scheduler's restart count of the task (``SLURM_RESTART_COUNT``, 0
for the first try; ``TARF_ATTEMPT`` overrides): a requeued or preempted task starts a new
attempt in the same folder, and only the newest attempt's events describe the run.

``FolderSink`` has the methods of ``engine.store.Store`` that the engine calls (the runner,
``engine.checkpoints.ModelCache`` and ``python -m engine``), so the runner has one code path:
it writes to a ``Store`` on a local run and to a ``FolderSink`` on a cluster node.

``ingest(folder, store)`` replays a folder into the store. It is idempotent: epoch rows are
keyed by their epoch number (re-ingesting replaces a row with the same values, never adds
one), a last line without its newline is left for the next call, a damaged line is skipped
with a count, and a run already terminal in the store is left alone unless a newer attempt
appears. ``Ingestor`` keeps a byte offset per folder so a timer reads only what is new.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from .errors import TarfError
from .jsonsafe import jsonable
from .fsio import atomic_write

RUN_FILE, EVENTS_FILE, HEARTBEAT_FILE, LOG_FILE = "run.json", "events.jsonl", "heartbeat", "engine.log"
HEARTBEAT_EVERY_S = 5.0  # a heartbeat file write at most this often (a network filesystem)
FRESH_BEAT_S = 60.0  # a heartbeat this recent, seen first by a (re)started driver, counts as one
ACTIVE = ("queued", "running")
TERMINAL = ("finished", "failed", "killed", "diverged")


def utcnow() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def current_attempt() -> int:
    """The restart count of this task: ``TARF_ATTEMPT``, else ``SLURM_RESTART_COUNT``, else 0."""
    for var in ("TARF_ATTEMPT", "SLURM_RESTART_COUNT"):
        raw = os.environ.get(var, "").strip()
        if raw.isdigit():
            return int(raw)
    return 0


# ---- the driver writes the folder's identity -----------------------------------------------
def write_run_file(folder: str | os.PathLike, run: Mapping[str, Any]) -> Path:
    """Create ``folder`` and its ``run.json`` from a store row (``id``, ``spec``,
    ``spec_hash``, ``created_at``). Events of an earlier row with the same id (a deleted
    database) are moved aside to ``events.jsonl.stale-<time>``, never mixed in."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        ident = {"run_id": int(run["id"]), "spec": run["spec"], "spec_hash": run["spec_hash"],
                 "created_at": run["created_at"]}
        old = read_run_file(folder)
        if old is not None and _identity(old) != _identity(ident):
            stamp = time.strftime("%Y%m%d-%H%M%S")
            for name in (EVENTS_FILE, HEARTBEAT_FILE):
                p = folder / name
                if p.exists():
                    os.replace(p, folder / f"{name}.stale-{stamp}")
        atomic_write(folder / RUN_FILE, json.dumps(jsonable(ident), sort_keys=True, default=str).encode())
    except OSError as e:
        raise TarfError(f"cannot write the run folder {folder}: {e.strerror or e}") from None
    return folder / RUN_FILE


def read_run_file(folder: str | os.PathLike) -> dict | None:
    try:
        d = json.loads((Path(folder) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and "run_id" in d else None


def _identity(d: Mapping[str, Any]) -> tuple:
    return int(d.get("run_id", -1)), d.get("spec_hash"), d.get("created_at")


# ---- the engine side -------------------------------------------------------------------------
class FolderSink:
    """Store-compatible writer of one run folder (see the module docstring). Thread-safe: the
    runner's background heartbeat thread and its main loop share it."""

    def __init__(self, folder: str | os.PathLike, attempt: int | None = None,
                 heartbeat_every: float = HEARTBEAT_EVERY_S):
        self.folder = Path(folder)
        ident = read_run_file(self.folder)
        if ident is None:
            raise TarfError(f"{self.folder} is not a run folder (no readable {RUN_FILE})")
        self.run_id = int(ident["run_id"])
        self.spec = dict(ident.get("spec") or {})
        self.ident = ident
        self.attempt = current_attempt() if attempt is None else int(attempt)
        self.heartbeat_every = heartbeat_every
        self.status = "queued"  # this attempt's own view; the driver's row may differ
        self.path = self.folder  # what Store.path is used for (messages)
        self.host = socket.gethostname()
        self._lock = threading.RLock()
        self._last_beat = 0.0
        self._started = False

    # ---- plumbing ----------------------------------------------------------------------
    def _check(self, run_id: int) -> None:
        if int(run_id) != self.run_id:
            raise TarfError(f"run folder {self.folder} belongs to run {self.run_id}, not {run_id}")

    def _append(self, event: str, **values: Any) -> None:
        line = json.dumps({"t": utcnow(), "a": self.attempt, "event": event, **jsonable(values)}, default=str,
                          sort_keys=True, allow_nan=False) + "\n"
        with self._lock:
            if not self._started and event != "start":
                self._started = True
                self._append("start", pid=os.getpid(), host=self.host)
            self._started = True
            fd = os.open(self.folder / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())  # one write per line
                os.fsync(fd)
            finally:
                os.close(fd)
        self.heartbeat(self.run_id, force=True)

    def close(self) -> None:
        pass

    def __enter__(self) -> "FolderSink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FolderSink({str(self.folder)!r})"

    # ---- what the engine calls (the Store methods of the same names) -------------------
    def get_run(self, run_id: int) -> dict | None:
        if int(run_id) != self.run_id:
            return None
        return {"id": self.run_id, "status": self.status, "spec": self.spec,
                "spec_hash": self.ident.get("spec_hash"), "created_at": self.ident.get("created_at")}

    def mark_running(self, run_id: int, pid: int, device: str | None,
                     versions: Mapping[str, Any] | None = None, spec: Any = None) -> bool:
        self._check(run_id)
        with self._lock:
            if self.status not in ACTIVE:
                return False
            self.status = "running"
            values: dict[str, Any] = {"pid": pid, "device": device, "host": self.host,
                                      "versions": dict(versions or {})}
            if spec is not None:
                values["spec"] = spec.to_dict() if hasattr(spec, "to_dict") else dict(spec)
            self._append("running", **values)
            return True

    def heartbeat(self, run_id: int, force: bool = False) -> None:
        self._check(run_id)
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last_beat < self.heartbeat_every:
                return
            self._last_beat = now
        beat = {"t": utcnow(), "a": self.attempt, "pid": os.getpid(), "host": self.host}
        with contextlib.suppress(OSError):  # a missed beat is not worth killing the run for
            atomic_write(self.folder / HEARTBEAT_FILE, json.dumps(beat).encode(), fsync=False)

    @contextlib.contextmanager
    def keep_alive(self, run_id: int, every: float = 15.0) -> Iterator[None]:
        self._check(run_id)
        stop = threading.Event()

        def beat():
            while not stop.wait(min(every, self.heartbeat_every)):
                with contextlib.suppress(Exception):
                    self.heartbeat(run_id, force=True)

        t = threading.Thread(target=beat, name=f"tarf-sink-heartbeat-{run_id}", daemon=True)
        self.heartbeat(run_id, force=True)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(timeout=every + 1)

    def add_epoch(self, run_id: int, epoch: int, **values: Any) -> None:
        self._check(run_id)
        self._append("epoch", epoch=int(epoch), values=values)

    def finish(self, run_id: int, metrics: Mapping[str, Any], status: str = "finished",
               error: str | None = None) -> None:
        self._check(run_id)
        with self._lock:
            self.status = status
            self._append("finish", metrics=dict(metrics), status=status, error=error)

    def mark(self, run_id: int, status: str, error: str | None = None, *,
             expect: Iterable[str] | None = None) -> bool:
        self._check(run_id)
        with self._lock:
            if expect is not None and self.status not in tuple(expect):
                return False
            self.status = status
            self._append("mark", status=status, error=error)
            return True

    def record_checkpoint(self, key: str, kind: str, path: str | os.PathLike,
                          sha256: str | None = None, bytes: int | None = None,
                          meta: Mapping[str, Any] | None = None) -> None:
        self._append("checkpoint", key=key, kind=kind, path=str(path), sha256=sha256,
                     bytes=bytes, meta=dict(meta or {}))

    def get_checkpoint(self, key: str) -> dict | None:
        return None  # the cache's sidecar file is the record on a node


# ---- the driver side -------------------------------------------------------------------------
def read_lines(path: str | os.PathLike, offset: int = 0) -> tuple[list[dict], int, int]:
    """(events, new offset, damaged lines) of the complete lines from byte ``offset`` on. A
    last line without its newline (the engine is writing it) is not consumed; a complete line
    that is not a JSON object is counted as damaged and skipped."""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return [], offset, 0
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset, 0
    events, damaged = [], 0
    for raw in data[:end].split(b"\n"):
        if not raw.strip():
            continue
        try:
            ev = json.loads(raw)
        except ValueError:
            damaged += 1
            continue
        if isinstance(ev, dict) and isinstance(ev.get("event"), str):
            events.append(ev)
        else:
            damaged += 1
    return events, offset + end + 1, damaged


def read_heartbeat(folder: str | os.PathLike) -> dict | None:
    try:
        d = json.loads((Path(folder) / HEARTBEAT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("t") else None


@dataclass
class FolderState:
    """What an ``Ingestor`` remembers about one folder between calls."""

    identity: tuple | None = None
    offset: int = 0
    attempt: int = -1  # the attempt whose events are being applied
    beat: str | None = None  # last heartbeat time seen
    beat_seen: float = 0.0  # time.monotonic() when it last changed
    damaged: int = 0
    deferred: tuple[str, str | None] | None = None  # a final status held back (``defer``)


@dataclass
class IngestResult:
    run_id: int | None
    events: int = 0  # events applied by this call
    damaged: int = 0  # damaged lines skipped by this call
    status: str | None = None  # the row's status afterwards
    attempt: int | None = None  # the newest attempt seen
    heartbeat: dict | None = None  # the folder's heartbeat (engine time), if any
    skipped: str | None = None  # why nothing was read (no run.json, stale folder, no row)


def _age_s(iso: str) -> float | None:
    try:
        t = _dt.datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()


def _row_attempt(row: Mapping[str, Any]) -> int:
    a = row.get("attempt")
    return int(a) if isinstance(a, int) else 0


class Ingestor:
    """Idempotent replay of run folders into a store, with a byte offset per folder."""

    def __init__(self, store, defer: Iterable[str] = ()):
        """``defer``: terminal statuses the engine writes that are not applied but kept in
        ``deferred(folder)`` for the caller to judge (a Slurm task's engine writes ``killed``
        on SIGTERM both when cancelled and when preempted or requeued; only Slurm knows
        which)."""
        self.store = store
        self.defer = tuple(defer)
        self.folders: dict[Path, FolderState] = {}

    def deferred(self, folder: str | os.PathLike) -> tuple[str, str | None] | None:
        """(status, error) of the deferred final event of the folder's current attempt."""
        st = self.folders.get(Path(folder))
        return None if st is None else st.deferred

    def ingest(self, folder: str | os.PathLike) -> IngestResult:
        folder = Path(folder)
        ident = read_run_file(folder)
        if ident is None:
            return IngestResult(None, skipped=f"no readable {RUN_FILE}")
        rid = int(ident["run_id"])
        row = self.store.get_run(rid)
        if row is None:
            return IngestResult(rid, skipped=f"no run {rid} in the database")
        if (row.get("spec_hash"), row.get("created_at")) != (ident.get("spec_hash"), ident.get("created_at")):
            return IngestResult(rid, skipped=f"folder belongs to an earlier run {rid} (another database)")
        st = self.folders.get(folder)
        if st is None or st.identity != _identity(ident):
            st = self.folders[folder] = FolderState(identity=_identity(ident))
        res = IngestResult(rid, status=row["status"])
        events, end, damaged = read_lines(folder / EVENTS_FILE, st.offset)
        res.damaged, st.damaged = damaged, st.damaged + damaged
        stored_attempt = _row_attempt(row)
        newest = max([st.attempt, stored_attempt, *(int(e.get("a") or 0) for e in events)])
        res.attempt = newest
        status = row["status"]
        if st.offset == 0 or newest > st.attempt:
            # a first read (or a new attempt): only the newest attempt describes the run
            events = [e for e in events if int(e.get("a") or 0) == newest]
            if newest > stored_attempt and events:
                # a requeued / preempted task started again: its earlier rows are stale
                self.store.restart_run(rid, newest)
                status = "queued"
            elif status in TERMINAL:
                events = []  # already ingested (or ended by the driver): nothing to redo
            st.attempt = newest
            st.deferred = None
        for ev in events:
            if int(ev.get("a") or 0) != st.attempt:
                continue
            final = ev.get("status") if ev["event"] in ("finish", "mark") else None
            if final in self.defer:
                st.deferred = (str(final), ev.get("error"))
                res.events += 1
                continue
            status = self._apply(rid, ev, status)
            res.events += 1
        st.offset = end
        beat = read_heartbeat(folder)
        if beat is not None and int(beat.get("a") or 0) >= st.attempt:
            res.heartbeat = beat
            if beat["t"] != st.beat:
                if st.beat is None:  # first sight: trust the node's clock for its age, once
                    age = max(0.0, _age_s(beat["t"]) or 0.0)
                    st.beat_seen = time.monotonic() - age
                    if status == "running" and age < FRESH_BEAT_S:
                        self.store.heartbeat(rid)  # a driver that was away sees it alive
                else:
                    st.beat_seen = time.monotonic()
                    if status == "running":
                        self.store.heartbeat(rid)
                st.beat = beat["t"]
        res.status = status
        return res

    def beat_age(self, folder: str | os.PathLike) -> float | None:
        """Seconds since this folder's heartbeat last changed, on this process's clock (the
        first sight of a heartbeat is dated by the node's clock); None before any."""
        st = self.folders.get(Path(folder))
        if st is None or st.beat is None:
            return None
        return time.monotonic() - st.beat_seen

    def _apply(self, rid: int, ev: Mapping[str, Any], status: str) -> str:
        kind = ev["event"]
        s = self.store
        if kind == "running":
            if status in ACTIVE:
                spec = None
                if isinstance(ev.get("spec"), Mapping):
                    from .spec import RunSpec  # torch-free
                    try:
                        spec = RunSpec.from_dict(ev["spec"])
                    except TarfError:
                        spec = None  # a spec this version cannot read: keep the submitted one
                if s.mark_running(rid, int(ev.get("pid") or 0), ev.get("device"),
                                  ev.get("versions") or {}, spec=spec, host=ev.get("host")):
                    status = "running"
        elif kind == "epoch":
            values = dict(ev.get("values") or {})
            s.add_epoch(rid, int(ev["epoch"]), **values)
        elif kind == "finish":
            if status in ACTIVE:
                new = str(ev.get("status") or "finished")
                s.finish(rid, dict(ev.get("metrics") or {}), status=new, error=ev.get("error"))
                status = new
        elif kind == "mark":
            new = str(ev.get("status"))
            if status in ACTIVE and s.mark(rid, new, error=ev.get("error"), expect=ACTIVE):
                status = new
        elif kind == "checkpoint":
            s.record_checkpoint(ev["key"], ev.get("kind") or "", ev.get("path") or "",
                                ev.get("sha256"), ev.get("bytes"), ev.get("meta") or {})
        return status


def ingest(folder: str | os.PathLike, store) -> IngestResult:
    """Replay one run folder into ``store`` (idempotent; see ``Ingestor`` for repeated calls)."""
    return Ingestor(store).ingest(folder)


def run_folders(root: str | os.PathLike) -> list[Path]:
    """The run folders under ``root`` (``<workspace>/runs``), by run id."""
    root = Path(root)
    try:
        items = [p for p in root.iterdir() if p.is_dir() and p.name.isdigit()]
    except OSError:
        return []
    return sorted(items, key=lambda p: int(p.name))
