"""The run store: one SQLite file per workspace, the source of truth for everything that ran.

Torch-free; built on sqlite-utils (>= 4). This module is the single owner of the schema:
nothing else creates tables or writes SQL against the file. Readers (the TUI, ``tarf-tui
runs``, ``sqlite3``, Datasette) may query it freely.

Never open ``tarf.db`` with plain ``open()`` in a process that also holds a ``Store`` on it
(closing that descriptor drops SQLite's locks; see ``_check_path``).

Read-only: ``Store(path, read_only=True)`` opens the file with SQLite's ``mode=ro`` URI (and
``immutable=1`` when the folder cannot hold WAL's shared-memory file), runs no migration and
refuses every write with ``ReadOnlyWorkspace``; SQLite itself enforces it, also for root.
``Workspace.open(write=...)`` picks the mode: a workspace that cannot be written (permissions, a
read-only file system, no write bit set by its owner, or a path that is the database file
itself) opens read-only for reading and refuses writes.

Concurrency: the file is opened in WAL mode with a 60 s busy timeout. Every write is one short
``BEGIN IMMEDIATE`` transaction, retried on ``database is locked``, so several engines and a
reader can share the file. A write is visible to every other connection once the call returns.

Timestamps are ISO-8601 UTC text with milliseconds, e.g. ``2026-05-09T07:35:25.123+00:00``
(sortable as text; ``parse_time`` turns one into an aware ``datetime``). Metrics that are
NaN are stored as NULL; accuracies, MIA and gap are in percent (as ``engine/metrics.py``
computes them), ``rte_s`` and ``seconds`` in seconds. JSON columns never hold NaN or
Infinity (they become ``null``).

Schema (migration set ``tarf``, recorded in sqlite-utils' ``_sqlite_migrations`` table)
------------------------------------------------------------------------------------------

``runs`` -- one row per run (a spec handed to one engine process)

==================  =======  ====================================================================
column              type     meaning
==================  =======  ====================================================================
id                  INTEGER  primary key
status              TEXT     queued | running | finished | failed | killed | diverged
label               TEXT     free text from the spec, shown in lists
dataset             TEXT     dataset registry name (synthetic, cifar10, ...)
hierarchy           TEXT     hierarchy name or path; NULL = dataset default
subsets             INTEGER  K subsets per class (0 = two layers)
case_no             INTEGER  Table 4 case number (1..27)
target              TEXT     target concept at L_T; NULL = paper default
forget              TEXT     forgetting nodes at L_D, comma-joined; '' = paper default
method              TEXT     unlearning method registry name
arch                TEXT     model registry name
seed                INTEGER  seed of model init, batches and method randomness
epochs              INTEGER  unlearning epochs asked for; NULL = method default
experiment          TEXT     ``RunSpec.experiment_key()``: groups runs differing only in method,
                             its settings or seed (Compare groups by it)
spec_hash           TEXT     ``RunSpec.hash()`` of the submitted spec (skip-if-finished)
spec                TEXT     the spec as JSON (the resolved one once the engine has started)
pid                 INTEGER  engine process id (set at launch, confirmed by the engine)
host                TEXT     host name the engine runs on
device              TEXT     torch device the engine uses (cpu, cuda:0, ...)
log_path            TEXT     file receiving the engine's stdout and stderr
created_at          TEXT     when the row was created (queued)
started_at          TEXT     when the engine was launched
finished_at         TEXT     when the run reached a terminal status
heartbeat_at        TEXT     last sign of life from the engine (set by heartbeat and add_epoch)
error               TEXT     one-line reason for failed / killed / diverged
code_version        TEXT     tarf-tui version (and git commit when known)
torch_version       TEXT     torch.__version__ of the engine
python_version      TEXT     platform.python_version() of the engine
ua, ra, ta          REAL     final unlearning / remaining / test accuracy
mia                 REAL     final membership-inference efficacy
acc_f               REAL     final accuracy on the forgetting set D_f
acc_uf              REAL     final accuracy on D_uf
acc_test_t          REAL     final accuracy on the test part of the target
gap                 REAL     average gap to the Retrained reference
rte_s               REAL     run-time efficiency: seconds spent unlearning
ref_ua .. ref_mia   REAL     the Retrained reference's ua, ra, ta, mia
extras              TEXT     JSON object: anything else (unknown metric keys, version details)
executor            TEXT     where the engine runs: NULL / 'local' (a subprocess), 'slurm'
job_id              TEXT     the executor's job id (Slurm: ``<array job>_<task>``), NULL locally
attempt             INTEGER  restart count of a cluster task whose events are in the rows (a
                             requeued task restarts: its earlier epoch rows are dropped)
==================  =======  ====================================================================

``epochs`` -- one row per evaluated unlearning epoch; primary key (run_id, epoch)

    run_id (-> runs.id), epoch (INTEGER, 0 = before the first step), phase (TEXT, e.g.
    "unlearn"), loss, ua, ra, ta, acc_f, acc_uf, acc_test_t, mia (NULL unless computed per
    epoch), lr, seconds (REAL, wall time of the epoch), at (TEXT, when the row was written),
    extras (TEXT, JSON object).

``checkpoints`` -- the content-addressed model cache; primary key ``key``

    key (TEXT), kind (TEXT: original | retrained | ...), path (TEXT), sha256 (TEXT),
    bytes (INTEGER), created_at (TEXT), meta (TEXT, JSON object).

``run_summary`` -- a view, one row per run

    id, status, label, dataset, case_no, target, forget, method, seed, ua, ra, ta, mia, gap,
    rte_s, epochs_done (count of epochs rows), last_epoch (highest epoch number),
    last_epoch_s (seconds of that epoch), last_epoch_at (when it was written), started_at,
    finished_at.

Indexes: runs(status), runs(experiment), runs(spec_hash), epochs(run_id) via the primary key.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import socket
import sqlite3
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import sqlite_utils
from sqlite_utils.migrations import Migrations

from .errors import DamagedFile, TarfError
from .jsonsafe import jsonable
from .spec import RunSpec

STATUSES = ("queued", "running", "finished", "failed", "killed", "diverged")
ACTIVE = ("queued", "running")
TERMINAL = ("finished", "failed", "killed", "diverged")

BUSY_TIMEOUT_S = 60.0  # how long SQLite itself waits for a lock before reporting "locked"
_RETRIES = 8  # extra attempts after that, for the cases SQLite does not wait (WAL snapshots)

RUN_METRICS = ("ua", "ra", "ta", "mia", "acc_f", "acc_uf", "acc_test_t", "gap", "rte_s",
               "ref_ua", "ref_ra", "ref_ta", "ref_mia")
EPOCH_VALUES = ("phase", "loss", "ua", "ra", "ta", "acc_f", "acc_uf", "acc_test_t", "mia", "lr",
                "seconds")
VERSION_KEYS = ("code_version", "torch_version", "python_version")
# the SVC attacks of engine.metrics (``mia_variants``): the keys of a run's extras.mia_variants,
# named here, torch-free, so the front ends' exports read the same list
MIA_VARIANTS = ("correctness", "confidence", "entropy", "m_entropy", "prob")


# ---- time ----------------------------------------------------------------------------------
def utcnow() -> str:
    """Now as ISO-8601 UTC text with milliseconds (the format of every timestamp column)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def parse_time(text: str | None) -> _dt.datetime | None:
    """A timestamp column's text -> aware ``datetime`` (None stays None)."""
    if not text:
        return None
    t = _dt.datetime.fromisoformat(text)
    return t if t.tzinfo else t.replace(tzinfo=_dt.timezone.utc)


def age_s(text: str | None) -> float | None:
    """Seconds elapsed since a timestamp column's value (None when it is NULL)."""
    t = parse_time(text)
    return None if t is None else (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()


# ---- workspace -----------------------------------------------------------------------------
def default_workspace() -> Path:
    """``$TARF_HOME`` when set, else ``./tarf-runs``."""
    return Path(os.environ.get("TARF_HOME") or "tarf-runs")


class ReadOnlyWorkspace(TarfError):
    """A write asked of a workspace (or store) that can only be read."""


def _no_write_bit(p: Path) -> bool:
    """The owner took every write bit away (``chmod a-w``): honoured even where the process
    could write anyway (root), as ``rm`` honours it."""
    try:
        return not (p.stat().st_mode & 0o222)
    except OSError:
        return False


def writable(p: Path) -> bool:
    """Whether this process may, and should, write ``p`` (a file or folder that exists)."""
    return os.access(p, os.W_OK) and not _no_write_bit(p)


class Workspace:
    """A folder holding ``tarf.db``, ``cache/`` (checkpoints) and ``logs/`` (engine output).
    Folders are created when first asked for. ``open`` checks first whether the workspace can
    be written and opens read-only (``notice`` says why) when it cannot."""

    def __init__(self, path: "str | os.PathLike | Workspace | None" = None):
        if isinstance(path, Workspace):
            path = path.path
        self.path = Path(path if path is not None else default_workspace()).absolute()
        self.notice: str | None = None  # why the last ``open`` is read-only

    def read_only_reason(self) -> str | None:
        """None when the workspace can be written (or created); else one line saying why not."""
        p = self.path
        if p.is_file():
            return f"workspace {p} is a file, not a folder"
        if p.is_dir():
            if not writable(p):
                return f"workspace {p} is read-only"
            db = p / "tarf.db"
            if db.exists() and not writable(db):
                return f"workspace database {db} is read-only"
            return None
        parent = next((a for a in p.parents if a.exists()), None)
        if parent is not None and parent.is_dir() and not writable(parent):
            return f"workspace {p} does not exist and {parent} is read-only"
        return None

    def open(self, write: bool = True) -> "Store":
        """The workspace's store. ``write``: refuse (``ReadOnlyWorkspace``, one line) when the
        workspace cannot be written. Without it a read-only workspace opens read-only, with
        the reason in ``self.notice``; a path that is a file is read as the database itself."""
        why = self.read_only_reason()
        self.notice = None
        if why is None:
            return Store(self.db_path)
        if write:
            raise ReadOnlyWorkspace(f"{why}: cannot write to it (runs can only be read)")
        db = self.path if self.path.is_file() else self.path / "tarf.db"
        if not db.exists():
            raise ReadOnlyWorkspace(f"{why} and holds no tarf.db: no runs to read")
        self.notice = f"{why}: opened read-only"
        return Store(db, read_only=True)

    def _dir(self, p: Path) -> Path:
        p.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def db_path(self) -> Path:
        return self._dir(self.path) / "tarf.db"

    @property
    def cache_dir(self) -> Path:
        return self._dir(self.path / "cache")

    @property
    def logs_dir(self) -> Path:
        return self._dir(self.path / "logs")

    def store(self) -> "Store":
        """The store, created when absent (no read-only check: see ``open``)."""
        return Store(self.db_path)

    def __repr__(self) -> str:
        return f"Workspace({str(self.path)!r})"


# ---- schema --------------------------------------------------------------------------------
MIGRATIONS = Migrations("tarf")


@MIGRATIONS(name="m001_tables")
def _m001_tables(db: sqlite_utils.Database) -> None:
    real = float
    db["runs"].create(
        {
            "id": int, "status": str, "label": str,
            "dataset": str, "hierarchy": str, "subsets": int, "case_no": int, "target": str,
            "forget": str, "method": str, "arch": str, "seed": int, "epochs": int,
            "experiment": str, "spec_hash": str, "spec": str,
            "pid": int, "host": str, "device": str, "log_path": str,
            "created_at": str, "started_at": str, "finished_at": str, "heartbeat_at": str,
            "error": str, "code_version": str, "torch_version": str, "python_version": str,
            **{m: real for m in RUN_METRICS},
            "extras": str,
        },
        pk="id",
        not_null=["status", "spec", "spec_hash", "created_at"],
        defaults={"status": "queued", "label": ""},
    )
    db["epochs"].create(
        {
            "run_id": int, "epoch": int, "phase": str, "loss": real,
            "ua": real, "ra": real, "ta": real, "acc_f": real, "acc_uf": real,
            "acc_test_t": real, "mia": real, "lr": real, "seconds": real, "at": str,
            "extras": str,
        },
        pk=("run_id", "epoch"),
        foreign_keys=[("run_id", "runs", "id")],
    )
    db["checkpoints"].create(
        {"key": str, "kind": str, "path": str, "sha256": str, "bytes": int,
         "created_at": str, "meta": str},
        pk="key",
    )


@MIGRATIONS(name="m002_indexes")
def _m002_indexes(db: sqlite_utils.Database) -> None:
    for col in ("status", "experiment", "spec_hash"):
        db["runs"].create_index([col], if_not_exists=True)


@MIGRATIONS(name="m003_run_summary")
def _m003_run_summary(db: sqlite_utils.Database) -> None:
    # Later changes to the view go in new migrations (drop + create).
    db.create_view("run_summary", """
SELECT r.id, r.status, r.label, r.dataset, r.case_no, r.target, r.forget, r.method, r.seed,
       r.ua, r.ra, r.ta, r.mia, r.gap, r.rte_s,
       (SELECT count(*) FROM epochs e WHERE e.run_id = r.id) AS epochs_done,
       last.epoch AS last_epoch, last.seconds AS last_epoch_s, last.at AS last_epoch_at,
       r.started_at, r.finished_at
FROM runs r
LEFT JOIN epochs last ON last.run_id = r.id
 AND last.epoch = (SELECT max(epoch) FROM epochs e2 WHERE e2.run_id = r.id)""".strip())


@MIGRATIONS(name="m004_executor")
def _m004_executor(db: sqlite_utils.Database) -> None:
    # cluster runs (tarf_tui/slurm.py): where the engine runs, its job id and attempt
    cols = db["runs"].columns_dict
    for name, typ in (("executor", str), ("job_id", str), ("attempt", int)):
        if name not in cols:
            db["runs"].add_column(name, typ)


# ---- value cleaning ------------------------------------------------------------------------
def _spec_columns(spec: RunSpec) -> dict[str, Any]:
    """The runs columns that copy a spec (set at creation, refreshed with the resolved spec)."""
    return {"spec": spec.to_json(), "hierarchy": spec.hierarchy, "target": spec.target,
            "forget": ",".join(spec.forget), "epochs": spec.epochs, "subsets": spec.subsets,
            "experiment": spec.experiment_key()}


def _split(values: Mapping[str, Any], known: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``values`` -> (the ``known`` columns as SQL scalars, everything else for ``extras``,
    merged over an ``extras`` dict given in ``values``)."""
    cols: dict[str, Any] = {}
    extras = dict(values.get("extras") or {})
    for k, v in values.items():
        if k == "extras":
            continue
        if k in known:
            cols[k] = _scalar(v)
        else:
            extras[k] = v
    return cols, extras


def _scalar(v: Any) -> Any:
    """A value for a column: numpy / torch scalars -> Python, NaN -> None."""
    if v is None or isinstance(v, (str, bytes, bool, int)):
        return int(v) if isinstance(v, bool) else v
    if isinstance(v, float):
        return None if math.isnan(v) else v
    if hasattr(v, "item"):  # numpy / torch scalar
        return _scalar(v.item())
    if hasattr(v, "__index__"):
        return int(v)
    if hasattr(v, "__float__"):
        return _scalar(float(v))
    return v


def _dumps(d: Mapping[str, Any] | None) -> str | None:
    return None if not d else json.dumps(jsonable(d), sort_keys=True)


def _loads(text: str | None) -> Any:
    if not text:
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return {"_unparsed": text}


def _is_locked(e: BaseException) -> bool:
    msg = str(e).lower()
    return isinstance(e, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg)


def _is_damage(e: BaseException) -> bool:
    msg = str(e).lower()
    return isinstance(e, sqlite3.DatabaseError) and (
        "not a database" in msg or "malformed" in msg or "encrypted" in msg)


# ---- the store -----------------------------------------------------------------------------
class Store:
    """One connection to a workspace's SQLite file. Rows come back as plain dicts.

    Safe to share between threads of one process (calls are serialised by a lock); each
    process opens its own ``Store``. ``read_only``: see the module docstring."""

    def __init__(self, path: str | os.PathLike, read_only: bool = False):
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.RLock()
        _check_path(self.path)
        if read_only:
            conn = _connect_read_only(self.path)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_S, check_same_thread=False)
        try:
            self.db = sqlite_utils.Database(conn)
            self._retry(lambda: self.db.execute(
                f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}"))
            self._retry(lambda: self.db.conn.execute("SELECT count(*) FROM sqlite_master").fetchone())
            self._check_ours()
            if read_only:
                if "runs" not in self.db.table_names():
                    raise DamagedFile(f"{self.path} is not a tarf-tui database (no runs table)")
            else:
                self._retry(self.db.enable_wal)
                self._migrate()
        except sqlite3.DatabaseError as e:
            conn.close()
            if _is_damage(e):
                raise DamagedFile(f"{self.path} is not a tarf-tui database ({e})") from None
            raise
        except BaseException:
            conn.close()
            raise

    # ---- plumbing ----------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def _retry(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn``; on ``database is locked`` roll back and try again with backoff."""
        delay = 0.05
        for attempt in range(_RETRIES + 1):
            try:
                return fn()
            except sqlite3.DatabaseError as e:
                if self.db.conn.in_transaction:
                    self.db.conn.rollback()
                if _is_damage(e):
                    raise DamagedFile(f"{self.path} is not a tarf-tui database ({e})") from None
                if not _is_locked(e) or attempt == _RETRIES:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _write(self, fn: Callable[[sqlite_utils.Database], Any]) -> Any:
        """Run ``fn(db)`` in one short BEGIN IMMEDIATE transaction (retried when locked)."""
        if self.read_only:
            raise ReadOnlyWorkspace(f"{self.path} is open read-only: cannot write to it")

        def tx():
            conn = self.db.conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self.db)
                conn.execute("COMMIT")
                return out
            except BaseException:
                if conn.in_transaction:
                    conn.rollback()
                raise

        with self._lock:
            return self._retry(tx)

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        with self._lock:
            return self._retry(lambda: list(self.db.query(sql, list(params))))

    def _check_ours(self) -> None:
        """A database that already holds tables but no record of our migrations belongs to
        something else: refuse it rather than add tables to it."""
        tables = set(self.db.table_names())
        if tables and not any(m.name for m in MIGRATIONS.applied(self.db)):
            shown = ", ".join(sorted(tables)[:5])
            raise DamagedFile(f"{self.path} is not a tarf-tui database "
                              f"(it holds other tables: {shown})")

    def _migrate(self) -> None:
        with self._lock:
            if not MIGRATIONS.pending(self.db):
                return

            def tx():
                # One writer migrates at a time; the others wait here, then find nothing to do.
                self.db.conn.execute("BEGIN IMMEDIATE")
                try:
                    MIGRATIONS.apply(self.db)  # nested: each migration is a savepoint
                    self.db.conn.execute("COMMIT")
                except BaseException:
                    if self.db.conn.in_transaction:
                        self.db.conn.rollback()
                    raise

            self._retry(tx)

    def schema_version(self) -> list[str]:
        """Names of the applied migrations, oldest first."""
        with self._lock:
            return [m.name for m in MIGRATIONS.applied(self.db)]

    # ---- runs: writes ------------------------------------------------------------------
    # Plain INSERT / UPDATE here rather than sqlite-utils' table.insert: every write runs inside
    # _write's BEGIN IMMEDIATE transaction, and sqlite-utils' insert commits on its own (it wraps
    # itself in ``with conn:``), which would end that transaction half-way.
    def create_run(self, spec: RunSpec, status: str = "queued") -> int:
        _check_status(status)
        row = {"status": status, "label": spec.label, "dataset": spec.dataset, "method": spec.method,
               "arch": spec.arch, "seed": spec.seed, "case_no": spec.case, **_spec_columns(spec),
               "spec_hash": spec.hash(), "created_at": utcnow()}
        if status in TERMINAL:
            row["finished_at"] = row["created_at"]
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        return self._write(lambda db: db.execute(
            f"INSERT INTO runs ({cols}) VALUES ({marks})", list(row.values())).lastrowid)

    def claim_start(self, run_id: int, by: str, ttl_s: float = 60.0) -> bool:
        """Launcher side, before spawning an engine: a compare-and-set on a queued row, so two
        launchers (a TUI and a headless on one workspace) never start the same run twice.
        True when the row is queued and unclaimed, claimed by ``by`` already, or claimed more
        than ``ttl_s`` seconds ago (a launcher that died between claim and launch). The claim
        lives in ``extras["start_claim"]`` until ``mark_launched`` clears it."""
        now = _dt.datetime.now(_dt.timezone.utc)
        stale = (now - _dt.timedelta(seconds=ttl_s)).isoformat(timespec="milliseconds")
        claim = json.dumps({"by": by, "at": now.isoformat(timespec="milliseconds")})

        def tx(db):
            return db.execute(
                "UPDATE runs SET extras = json_set(coalesce(extras, '{}'), '$.start_claim', json(?)) "
                "WHERE id = ? AND status = 'queued' AND (json_extract(extras, '$.start_claim') IS NULL "
                "OR json_extract(extras, '$.start_claim.by') = ? "
                "OR json_extract(extras, '$.start_claim.at') < ?)",
                [claim, run_id, by, stale]).rowcount > 0

        return self._write(tx)

    def mark_launched(self, run_id: int, pid: int, host: str | None = None,
                      log_path: str | None = None) -> bool:
        """Launcher side: a queued run's engine process exists. False if it is no longer queued
        (the engine already reported in, or the run was cancelled)."""
        now = utcnow()
        values = {"status": "running", "pid": pid, "host": host or socket.gethostname(),
                  "started_at": now, "heartbeat_at": now,
                  **({"log_path": str(log_path)} if log_path else {})}

        def tx(db):
            if _set(db, run_id, values, ("queued",)) == 0:
                return False
            db.execute("UPDATE runs SET extras = nullif(json_remove(extras, '$.start_claim'), '{}') "
                       "WHERE id = ? AND extras IS NOT NULL", [run_id])
            return True

        return self._write(tx)

    def mark_running(self, run_id: int, pid: int, device: str | None,
                     versions: Mapping[str, Any] | None = None,
                     spec: RunSpec | None = None, host: str | None = None) -> bool:
        """Engine side: it is alive and computing on ``device``. ``versions`` may hold
        code/torch/python (with or without the ``_version`` suffix); other keys go to
        ``extras["versions"]``. ``spec``: the resolved spec, stored in place of the submitted
        one (``spec_hash`` keeps the submitted identity). Returns False (and changes nothing)
        when the run is no longer queued or running, e.g. it was cancelled: the engine
        should then exit. ``host``: the engine's machine when it is not this one (a cluster
        run ingested by the driver)."""
        values: dict[str, Any] = {"status": "running", "pid": pid, "device": device,
                                  "host": host or socket.gethostname(), "heartbeat_at": utcnow()}
        other = {}
        for k, v in (versions or {}).items():
            key = k if k.endswith("_version") else f"{k}_version"
            if key in VERSION_KEYS:
                values[key] = None if v is None else str(v)
            else:
                other[k] = v
        if spec is not None:
            values.update(_spec_columns(spec))

        def tx(db):
            cur = db.execute(
                "UPDATE runs SET started_at = coalesce(started_at, ?) "
                "WHERE id = ? AND status IN ('queued', 'running')", [values["heartbeat_at"], run_id])
            if cur.rowcount == 0:
                return False
            if other:
                _merge_extras(db, run_id, {"versions": other})
            _set(db, run_id, values)
            return True

        return self._write(tx)

    def heartbeat(self, run_id: int) -> None:
        self._write(lambda db: db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?",
                                          [utcnow(), run_id]))

    @contextlib.contextmanager
    def keep_alive(self, run_id: int, every: float = 15.0) -> Iterator[None]:
        """Heartbeat from a background thread while the block runs (for long phases with no
        epoch rows, e.g. pretraining the original model). Launchers declare a run failed
        after 120 s without a heartbeat."""
        stop = threading.Event()

        def beat():
            while not stop.wait(every):
                try:
                    self.heartbeat(run_id)
                except Exception:  # a missed beat is not worth killing the run for
                    pass

        t = threading.Thread(target=beat, name=f"tarf-heartbeat-{run_id}", daemon=True)
        self.heartbeat(run_id)
        t.start()
        try:
            yield
        finally:
            stop.set()
            t.join(timeout=every + 1)

    def add_epoch(self, run_id: int, epoch: int, **values: Any) -> None:
        """One epoch's evaluation (replaces an existing row for the same epoch). Known keys:
        ``EPOCH_VALUES``; ``extras=dict``; any other key is kept in ``extras`` too. Also
        counts as a heartbeat."""
        known, extras = _split(values, EPOCH_VALUES)
        row: dict[str, Any] = {"run_id": int(run_id), "epoch": int(epoch), **known}
        now = utcnow()
        row["at"] = now
        row["extras"] = _dumps(extras)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)

        def tx(db):
            db.execute(f"INSERT OR REPLACE INTO epochs ({cols}) VALUES ({marks})",
                       list(row.values()))
            db.execute("UPDATE runs SET heartbeat_at = ? WHERE id = ?", [now, run_id])

        self._write(tx)

    def finish(self, run_id: int, metrics: Mapping[str, Any], status: str = "finished",
               error: str | None = None) -> None:
        """Final metrics (``RUN_METRICS`` keys; ``extras=dict`` and unknown keys are kept in
        ``extras``) and a terminal status."""
        _check_status(status)
        values, extras = _split(metrics, RUN_METRICS)
        now = utcnow()
        values.update(status=status, heartbeat_at=now)
        if status in TERMINAL:
            values["finished_at"] = now
        if error is not None:
            values["error"] = _one_line(error)

        def tx(db):
            if extras:
                _merge_extras(db, run_id, extras)
            _set(db, run_id, values)

        self._write(tx)

    def mark(self, run_id: int, status: str, error: str | None = None, *,
             expect: Iterable[str] | None = None) -> bool:
        """Set ``status`` (terminal ones also set ``finished_at``). With ``expect``, only when
        the current status is one of those. Returns whether the row changed."""
        _check_status(status)
        values: dict[str, Any] = {"status": status}
        if status in TERMINAL:
            values["finished_at"] = utcnow()
        if error is not None:
            values["error"] = _one_line(error)
        return self._update(run_id, values, expect=expect)

    def set_log_path(self, run_id: int, path: str | os.PathLike) -> None:
        self._update(run_id, {"log_path": str(path)})

    def delete_run(self, run_id: int) -> None:
        def tx(db):
            db.execute("DELETE FROM epochs WHERE run_id = ?", [run_id])
            db.execute("DELETE FROM runs WHERE id = ?", [run_id])

        self._write(tx)

    def _update(self, run_id: int, values: Mapping[str, Any],
                expect: Iterable[str] | None = None) -> bool:
        def tx(db):
            return _set(db, run_id, values, expect) > 0

        return self._write(tx)

    # ---- runs: reads -------------------------------------------------------------------
    def query(self, sql: str, params: Iterable[Any] = ()) -> list[dict]:
        """Rows of a read-only SQL query (retried when locked), for views the API lacks."""
        return self._rows(sql, params)

    def has_runs(self) -> bool:
        """Whether any run row exists."""
        return bool(self._rows("SELECT 1 FROM runs LIMIT 1"))

    def find_active(self, spec_hash: str) -> dict | None:
        """The oldest queued or running run with this ``RunSpec.hash()``, or None."""
        rows = self._rows("SELECT * FROM runs WHERE spec_hash = ? AND status IN "
                          "('queued', 'running') ORDER BY id LIMIT 1", [spec_hash])
        return _run_row(rows[0]) if rows else None

    def set_job(self, run_id: int, executor: str, job_id: str | None,
                log_path: str | os.PathLike | None = None) -> None:
        """Where a run's engine was handed: ``executor`` ('slurm', ...) and its job id. A job
        id is a cluster run's launch: it clears the row's ``start_claim`` as ``mark_launched``
        does (the row stays queued until the engine reports in)."""
        values: dict[str, Any] = {"executor": executor, "job_id": job_id}
        if log_path is not None:
            values["log_path"] = str(log_path)

        def tx(db):
            _set(db, run_id, values)
            if job_id is not None:
                db.execute("UPDATE runs SET extras = nullif(json_remove(extras, '$.start_claim'), '{}') "
                           "WHERE id = ? AND extras IS NOT NULL", [run_id])

        self._write(tx)

    def restart_run(self, run_id: int, attempt: int) -> bool:
        """A cluster task of an active run started again (requeued or preempted): drop the
        earlier attempt's epoch rows, final metrics and error, set ``queued`` and ``attempt``.
        Only when the stored attempt is older; returns whether the row changed."""
        cleared = {k: None for k in (*RUN_METRICS, "error", "finished_at", "device", "pid")}

        def tx(db):
            cur = db.execute("UPDATE runs SET attempt = ? WHERE id = ? AND coalesce(attempt, 0) < ?",
                             [int(attempt), run_id, int(attempt)])
            if cur.rowcount == 0:
                return False
            db.execute("DELETE FROM epochs WHERE run_id = ?", [run_id])
            _set(db, run_id, {**cleared, "status": "queued"})
            return True

        return self._write(tx)

    def get_run(self, run_id: int) -> dict | None:
        rows = self._rows("SELECT * FROM runs WHERE id = ?", [run_id])
        return _run_row(rows[0]) if rows else None

    def list_runs(self, status: str | Iterable[str] | None = None, method: str | None = None,
                  case_no: int | None = None, dataset: str | None = None,
                  experiment: str | None = None, limit: int | None = None) -> list[dict]:
        """Runs matching every filter given, newest first. ``status`` may be a list."""
        where, params = [], []
        if status is not None:
            ss = [status] if isinstance(status, str) else list(status)
            where.append(f"status IN ({', '.join('?' for _ in ss)})")
            params += ss
        for col, v in (("method", method), ("case_no", case_no), ("dataset", dataset),
                       ("experiment", experiment)):
            if v is not None:
                where.append(f"{col} = ?")
                params.append(v)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [_run_row(r) for r in self._rows(sql, params)]

    def statuses(self, run_ids: Iterable[int]) -> dict[int, str]:
        """{run_id: status} for the ids that exist (one query)."""
        ids = [int(i) for i in run_ids]
        if not ids:
            return {}
        rows = self._rows(f"SELECT id, status FROM runs WHERE id IN ({', '.join('?' for _ in ids)})", ids)
        return {r["id"]: r["status"] for r in rows}

    def summary(self, limit: int | None = None) -> list[dict]:
        """Rows of the ``run_summary`` view, newest first."""
        sql = "SELECT * FROM run_summary ORDER BY id DESC"
        return self._rows(sql + (" LIMIT ?" if limit is not None else ""),
                          [int(limit)] if limit is not None else [])

    def epochs(self, run_id: int) -> list[dict]:
        rows = self._rows("SELECT * FROM epochs WHERE run_id = ? ORDER BY epoch", [run_id])
        for r in rows:
            r["extras"] = _loads(r["extras"])
        return rows

    def find_finished(self, spec_hash: str) -> dict | None:
        """The newest finished run with this ``RunSpec.hash()``, or None."""
        rows = self._rows("SELECT * FROM runs WHERE spec_hash = ? AND status = 'finished' "
                          "ORDER BY id DESC LIMIT 1", [spec_hash])
        return _run_row(rows[0]) if rows else None

    # ---- checkpoints -------------------------------------------------------------------
    def record_checkpoint(self, key: str, kind: str, path: str | os.PathLike,
                          sha256: str | None = None, bytes: int | None = None,
                          meta: Mapping[str, Any] | None = None) -> None:
        """Insert or replace the cache entry ``key``."""
        row = [key, kind, str(path), sha256, bytes, utcnow(), _dumps(meta)]
        self._write(lambda db: db.execute(
            "INSERT OR REPLACE INTO checkpoints (key, kind, path, sha256, bytes, created_at, meta)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", row))

    def get_checkpoint(self, key: str) -> dict | None:
        rows = self._rows("SELECT * FROM checkpoints WHERE key = ?", [key])
        if not rows:
            return None
        rows[0]["meta"] = _loads(rows[0]["meta"])
        return rows[0]

    def delete_checkpoint(self, key: str) -> None:
        self._write(lambda db: db.execute("DELETE FROM checkpoints WHERE key = ?", [key]))

    # ---- maintenance -------------------------------------------------------------------
    def integrity_check(self) -> str:
        """``PRAGMA integrity_check``'s first line: ``"ok"`` when the file is sound."""
        rows = self._rows("PRAGMA integrity_check")
        return next(iter(rows[0].values())) if rows else "ok"


# ---- helpers -------------------------------------------------------------------------------
def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise TarfError(f"unknown run status {status!r}; valid: {', '.join(STATUSES)}")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:2000]


def _set(db: sqlite_utils.Database, run_id: int, values: Mapping[str, Any],
         expect: Iterable[str] | None = None) -> int:
    assigns = ", ".join(f"{k} = ?" for k in values)
    params = [_scalar(v) for v in values.values()] + [run_id]
    sql = f"UPDATE runs SET {assigns} WHERE id = ?"
    if expect is not None:
        ex = list(expect)
        sql += f" AND status IN ({', '.join('?' for _ in ex)})"
        params += ex
    return db.execute(sql, params).rowcount


def _merge_extras(db: sqlite_utils.Database, run_id: int, more: Mapping[str, Any]) -> None:
    row = db.execute("SELECT extras FROM runs WHERE id = ?", [run_id]).fetchone()
    if row is None:
        return
    merged = _loads(row[0])
    merged.update(jsonable(more))
    db.execute("UPDATE runs SET extras = ? WHERE id = ?", [_dumps(merged), run_id])


def _run_row(r: dict) -> dict:
    r["spec"] = _loads(r["spec"])
    r["extras"] = _loads(r["extras"])
    return r


def _check_path(path: Path) -> None:
    """Refuse a directory. Nothing here may open the file itself: closing any descriptor of
    the database file drops every POSIX lock this process holds on it, including those of
    other open connections, which lets another process checkpoint under them and corrupts
    the file (sqlite.org/howtocorrupt.html, 2.2). SQLite itself reports a non-database file
    (SQLITE_NOTADB) on the first read, without writing to it."""
    if path.is_dir():
        raise DamagedFile(f"{path} is not a tarf-tui database (it is a directory)")


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """``mode=ro``; where WAL's ``-shm`` file cannot be created (a read-only folder) SQLite
    cannot open a WAL database that way, so ``immutable=1`` (nobody writes a folder that
    cannot be written)."""
    if not path.exists():
        raise ReadOnlyWorkspace(f"{path} does not exist")
    base = "file:" + urllib.parse.quote(str(path.absolute()))
    last: Exception | None = None
    for query in ("?mode=ro", "?mode=ro&immutable=1"):
        conn = sqlite3.connect(base + query, uri=True, timeout=BUSY_TIMEOUT_S,
                               check_same_thread=False)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError as e:
            conn.close()
            last = e
        except sqlite3.DatabaseError as e:
            conn.close()
            if _is_damage(e):
                raise DamagedFile(f"{path} is not a tarf-tui database ({e})") from None
            raise
    raise ReadOnlyWorkspace(f"cannot open {path} read-only ({last})")


@contextlib.contextmanager
def open_store(path: str | os.PathLike) -> Iterator[Store]:
    """``with open_store(path) as store:`` -- closes the connection afterwards."""
    s = Store(path)
    try:
        yield s
    finally:
        s.close()
