"""engine.store: schema, migrations, WAL visibility, NaN handling, damaged files, concurrency."""

from __future__ import annotations

import math
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlite_utils

from engine.errors import DamagedFile, TarfError
from engine.spec import RunSpec
from engine.store import MIGRATIONS, Store, Workspace, default_workspace, parse_time

FAKE = str(Path(__file__).with_name("fake_engine.py"))


def raw(path) -> sqlite3.Connection:
    """A plain second connection, as sqlite3 / Datasette would open it."""
    return sqlite3.connect(str(path), timeout=30)


# ---- workspace -----------------------------------------------------------------------------
def test_workspace_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("TARF_HOME", str(tmp_path / "home"))
    assert default_workspace() == tmp_path / "home"
    ws = Workspace()
    assert not (tmp_path / "home").exists()  # created on demand only
    assert ws.db_path == tmp_path / "home" / "tarf.db"
    assert ws.cache_dir.is_dir() and ws.logs_dir.is_dir()
    monkeypatch.delenv("TARF_HOME")
    assert default_workspace() == Path("tarf-runs")


# ---- schema --------------------------------------------------------------------------------
def test_schema_tables_view_indexes_wal(store):
    db = sqlite_utils.Database(raw(store.path))
    assert {"runs", "epochs", "checkpoints"} <= set(db.table_names())
    assert "run_summary" in db.view_names()
    cols = set(db["runs"].columns_dict)
    for c in ("status", "case_no", "forget", "spec", "spec_hash", "experiment", "pid", "host",
              "heartbeat_at", "error", "torch_version", "ua", "gap", "rte_s", "ref_mia", "extras"):
        assert c in cols
    assert db["epochs"].pks == ["run_id", "epoch"]
    assert db["checkpoints"].pks == ["key"]
    indexed = {tuple(i.columns) for i in db["runs"].indexes}
    assert {("status",), ("experiment",), ("spec_hash",)} <= indexed
    assert db.journal_mode == "wal"
    assert store.db.execute("PRAGMA busy_timeout").fetchone()[0] >= 30000


def test_open_twice_is_idempotent(tmp_path):
    p = tmp_path / "tarf.db"
    a = Store(p)
    rid = a.create_run(RunSpec())
    b = Store(p)
    assert a.schema_version() == b.schema_version() == [m.name for m in MIGRATIONS._migrations]
    n = raw(p).execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0]
    assert n == len(MIGRATIONS._migrations)
    assert b.get_run(rid)["status"] == "queued"


def test_v1_database_upgrades(tmp_path):
    p = tmp_path / "tarf.db"
    db = sqlite_utils.Database(p)
    MIGRATIONS.apply(db, stop_before="m002_indexes")  # a file written by schema v1
    db.execute("INSERT INTO runs (status, spec, spec_hash, created_at, method) "
               "VALUES ('finished', '{}', 'abc', '2026-01-01T00:00:00.000+00:00', 'ga')")
    db.close()
    assert "run_summary" not in sqlite_utils.Database(p).view_names()

    s = Store(p)
    assert s.schema_version() == ["m001_tables", "m002_indexes", "m003_run_summary",
                                  "m004_executor"]
    assert [r["method"] for r in s.summary()] == ["ga"]
    assert s.find_finished("abc")["id"] == 1


# ---- writes and reads ----------------------------------------------------------------------
def test_run_lifecycle_and_filters(store):
    spec = RunSpec(method="ga", case=3, seed=2, forget=("a", "b"), label="x")
    rid = store.create_run(spec)
    run = store.get_run(rid)
    assert run["status"] == "queued" and run["forget"] == "a,b" and run["case_no"] == 3
    assert RunSpec.from_dict(run["spec"]) == spec
    assert run["spec_hash"] == spec.hash() and run["experiment"] == spec.experiment_key()

    assert store.mark_running(rid, 4242, "cpu", {"torch": "2.3", "python_version": "3.11",
                                                 "cuda": "12"})
    run = store.get_run(rid)
    assert (run["status"], run["pid"], run["device"]) == ("running", 4242, "cpu")
    assert run["torch_version"] == "2.3" and run["python_version"] == "3.11"
    assert run["extras"] == {"versions": {"cuda": "12"}}
    assert parse_time(run["started_at"]) is not None

    other = store.create_run(RunSpec(method="tarf", case=3, forget=("a", "b"), seed=9))
    assert [r["id"] for r in store.list_runs()] == [other, rid]  # newest first
    assert [r["id"] for r in store.list_runs(method="ga")] == [rid]
    assert [r["id"] for r in store.list_runs(status="queued", case_no=3)] == [other]
    assert len(store.list_runs(status=["queued", "running"])) == 2
    assert store.list_runs(dataset="cifar10") == []
    assert len(store.list_runs(limit=1)) == 1
    assert len(store.list_runs(experiment=spec.experiment_key())) == 2  # differ by method only

    store.mark(rid, "killed", error="stopped\nby hand")
    run = store.get_run(rid)
    assert run["status"] == "killed" and run["finished_at"] and run["error"] == "stopped by hand"
    assert not store.mark(rid, "failed", expect=("running",))
    assert store.get_run(rid)["status"] == "killed"
    # a cancelled run refuses a late engine
    assert not store.mark_running(rid, 1, "cpu")
    with pytest.raises(TarfError):
        store.mark(rid, "exploded")


def test_nan_is_stored_as_null(store):
    rid = store.create_run(RunSpec())
    store.add_epoch(rid, 0, loss=float("nan"), ua=0.5, extras={"x": float("nan"),
                                                               "y": float("inf")})
    store.finish(rid, {"ua": 0.1, "gap": float("nan"), "mia": None, "kl": 2.0})
    con = raw(store.path)
    assert con.execute("SELECT typeof(loss), ua FROM epochs").fetchone() == ("null", 0.5)
    assert con.execute("SELECT typeof(gap), typeof(mia), ua FROM runs").fetchone() == (
        "null", "null", 0.1)
    # JSON columns stay valid JSON (no NaN tokens)
    assert con.execute("SELECT json_valid(extras) FROM epochs").fetchone() == (1,)
    assert store.epochs(rid)[0]["extras"] == {"x": None, "y": None}
    run = store.get_run(rid)
    assert run["status"] == "finished" and run["extras"] == {"kl": 2.0}
    assert not any(isinstance(v, float) and math.isnan(v) for v in run.values())


def test_epochs_visible_to_another_connection_while_writer_open(store):
    rid = store.create_run(RunSpec())
    reader = raw(store.path)
    for e in range(3):
        store.add_epoch(rid, e, ua=1.0 - e / 10, phase="unlearn", seconds=0.1)
        # the writer keeps its connection open; the reader sees each row at once
        assert reader.execute("SELECT count(*) FROM epochs WHERE run_id = ?",
                              [rid]).fetchone()[0] == e + 1
    store.add_epoch(rid, 2, ua=0.0)  # same epoch again replaces
    rows = store.epochs(rid)
    assert [r["epoch"] for r in rows] == [0, 1, 2] and rows[-1]["ua"] == 0.0
    summary = store.summary()[0]
    assert summary["epochs_done"] == 3 and summary["last_epoch"] == 2
    # add_epoch is a heartbeat
    assert store.get_run(rid)["heartbeat_at"] == rows[-1]["at"]


def test_keep_alive_beats_in_the_background(store):
    rid = store.create_run(RunSpec())
    with store.keep_alive(rid, every=0.05):
        first = store.get_run(rid)["heartbeat_at"]
        time.sleep(0.3)
        assert store.get_run(rid)["heartbeat_at"] > first
    assert store.query("SELECT count(*) AS n FROM runs WHERE id = ?", [rid]) == [{"n": 1}]


def test_delete_run_removes_epochs(store):
    a, b = store.create_run(RunSpec()), store.create_run(RunSpec(seed=1))
    store.add_epoch(a, 0, ua=1.0)
    store.add_epoch(b, 0, ua=1.0)
    store.delete_run(a)
    assert store.get_run(a) is None and store.epochs(a) == []
    assert len(store.epochs(b)) == 1


def test_find_finished(store):
    spec = RunSpec(method="ga", seed=3)
    failed = store.create_run(spec)
    store.mark(failed, "failed", error="boom")
    assert store.find_finished(spec.hash()) is None
    done = store.create_run(spec)
    store.finish(done, {"ua": 0.2})
    assert store.find_finished(spec.hash())["id"] == done
    # device and label do not change the identity; seed does
    assert store.find_finished(spec.replace(device="cpu", label="y").hash())["id"] == done
    assert store.find_finished(spec.replace(seed=4).hash()) is None


def test_checkpoints(store):
    assert store.get_checkpoint("k") is None
    store.record_checkpoint("k", "original", "/c/k.pt", sha256="ab", bytes=10, meta={"ep": 8})
    c = store.get_checkpoint("k")
    assert (c["kind"], c["path"], c["bytes"], c["meta"]) == ("original", "/c/k.pt", 10, {"ep": 8})
    store.record_checkpoint("k", "original", "/c/k2.pt")
    assert store.get_checkpoint("k")["path"] == "/c/k2.pt"
    store.delete_checkpoint("k")
    assert store.get_checkpoint("k") is None


# ---- files that are not ours ---------------------------------------------------------------
@pytest.mark.parametrize("content", [
    b"this is a CSV file, not a database\n" * 50,
    b"SQLite format 3\x00" + b"\x99" * 4000,  # right header, garbage after
])
def test_damaged_file_is_refused_and_left_alone(tmp_path, content):
    p = tmp_path / "tarf.db"
    p.write_bytes(content)
    with pytest.raises(DamagedFile, match="is not a tarf-tui database"):
        Store(p)
    assert p.read_bytes() == content
    assert sorted(x.name for x in tmp_path.iterdir()) == ["tarf.db"]  # no -wal/-shm created


def test_truncated_database_is_refused(tmp_path):
    p = tmp_path / "tarf.db"
    s = Store(p)
    for i in range(200):
        s.create_run(RunSpec(seed=i, label="x" * 200))
    s.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    data = p.read_bytes()
    p.write_bytes(data[:4096] + b"\0" * 100)
    before = p.read_bytes()
    with pytest.raises(DamagedFile):
        Store(p).list_runs()
    assert p.read_bytes() == before


def test_other_sqlite_database_is_refused(tmp_path):
    p = tmp_path / "other.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE songs (title TEXT)")
    con.commit()
    con.close()
    before = p.read_bytes()
    with pytest.raises(DamagedFile, match="other tables: songs"):
        Store(p)
    assert p.read_bytes() == before


# ---- several writers -----------------------------------------------------------------------
def test_three_engines_and_a_reader_share_one_file(tmp_path):
    p = tmp_path / "tarf.db"
    s = Store(p)
    ids = [s.create_run(RunSpec(seed=i)) for i in range(3)]
    stop, seen, errors = threading.Event(), [], []

    def read():
        r = Store(p)
        while not stop.is_set():
            try:
                seen.append(sum(x["epochs_done"] for x in r.summary()))
            except Exception as e:  # pragma: no cover - the assertion below reports it
                errors.append(e)
        r.close()

    t = threading.Thread(target=read)
    t.start()
    procs = [subprocess.Popen([sys.executable, FAKE, "run", "--db", str(p), "--run-id", str(i),
                               "--epochs", "60"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for i in ids]
    outs = [pr.communicate(timeout=60)[0].decode() for pr in procs]
    stop.set()
    t.join()
    assert [pr.returncode for pr in procs] == [0, 0, 0], outs
    assert not any("locked" in o for o in outs) and not errors
    for i in ids:
        assert s.get_run(i)["status"] == "finished"
        assert [e["epoch"] for e in s.epochs(i)] == list(range(60))
    assert seen and max(seen) <= 180 and seen == sorted(seen)
    assert s.integrity_check() == "ok"


def test_several_processes_create_the_same_new_file_at_once(tmp_path):
    p = tmp_path / "new.db"
    code = ("import sys; from engine.store import Store; from engine.spec import RunSpec; "
            "s = Store(sys.argv[1]); s.create_run(RunSpec()); print(s.schema_version())")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(p)], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, cwd=Path(FAKE).parent.parent)
             for _ in range(4)]
    outs = [pr.communicate(timeout=60)[0].decode() for pr in procs]
    assert [pr.returncode for pr in procs] == [0] * 4, outs
    con = raw(p)
    assert con.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == len(
        MIGRATIONS._migrations)
    assert con.execute("SELECT count(*) FROM runs").fetchone()[0] == 4


def test_claim_start_lets_one_launcher_start_a_queued_run(store):
    from engine.spec import RunSpec

    rid = store.create_run(RunSpec())
    assert store.claim_start(rid, "a") and store.claim_start(rid, "a")  # its own claim again
    assert not store.claim_start(rid, "b")  # another launcher: refused
    with store.db.conn:  # the claim of a launcher that died a minute ago
        store.db.conn.execute("UPDATE runs SET extras = json_set(extras, '$.start_claim.at', "
                              "'2000-01-01T00:00:00.000+00:00') WHERE id = ?", [rid])
    assert store.claim_start(rid, "b")  # a claim older than the ttl is void
    assert store.mark_launched(rid, 123)
    assert "start_claim" not in store.get_run(rid)["extras"]  # cleared once launched
    assert not store.claim_start(rid, "c")  # no longer queued
    done = store.create_run(RunSpec(), status="finished")
    assert not store.claim_start(done, "a")
