"""engine/sink.py: a run folder written by an engine (FolderSink) and ingested by the driver
into the workspace database, idempotently. Torch-free and Slurm-free: runs everywhere."""

from __future__ import annotations

import json
import os

import pytest

from engine.errors import TarfError
from engine.sink import (EVENTS_FILE, HEARTBEAT_FILE, FolderSink, Ingestor, ingest, read_lines,
                         run_folders, write_run_file)
from engine.spec import RunSpec
from engine.store import Store


def new_run(store, tmp_path, **spec) -> tuple[int, object]:
    rid = store.create_run(RunSpec(**spec))
    folder = tmp_path / "runs" / str(rid)
    write_run_file(folder, store.get_run(rid))
    return rid, folder


def engine_writes(folder, rid, epochs=3, finish=True, attempt=0, first=0):
    """What the runner does to its store, against a FolderSink."""
    sink = FolderSink(folder, attempt=attempt)
    assert sink.mark_running(rid, 4242, None, {"code": "x", "torch": "t", "python": "3"})
    with sink.keep_alive(rid):
        assert sink.mark_running(rid, 4242, "cpu", {"code": "x"})
        for e in range(first, epochs):
            sink.add_epoch(rid, e, phase="unlearn", loss=1.0 / (e + 1), ua=90.0 - e, ra=99.0,
                           ta=98.0, lr=0.01, seconds=0.5, extras={"step_s": 0.1, "units": [1, 2]})
        sink.record_checkpoint("original-abc", "original", "/ws/cache/models/original-abc.pt",
                               "f" * 64, 123, {"kind": "original"})
        if finish:
            sink.finish(rid, {"ua": 1.5, "ra": 99.5, "ta": 98.5, "gap": 2.0, "mia": float("nan"),
                              "extras": {"wall_s": 3.0}})
    return sink


def epoch_keys(store, rid):
    return [(r["epoch"], r["ua"]) for r in store.epochs(rid)]


def test_a_finished_run_is_ingested_like_a_local_one(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    engine_writes(folder, rid)
    res = ingest(folder, store)
    assert res.run_id == rid and res.status == "finished" and res.damaged == 0
    row = store.get_run(rid)
    assert row["status"] == "finished" and row["ua"] == 1.5 and row["mia"] is None
    assert row["device"] == "cpu" and row["code_version"] == "x" and row["pid"] == 4242
    assert row["extras"]["wall_s"] == 3.0
    assert epoch_keys(store, rid) == [(0, 90.0), (1, 89.0), (2, 88.0)]
    assert store.epochs(rid)[0]["extras"] == {"step_s": 0.1, "units": [1, 2]}
    assert store.get_checkpoint("original-abc")["sha256"] == "f" * 64
    assert (folder / HEARTBEAT_FILE).exists()


def test_ingesting_twice_changes_nothing(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    engine_writes(folder, rid)
    ingest(folder, store)
    before = (store.get_run(rid), store.epochs(rid))
    res = ingest(folder, store)  # a fresh Ingestor: a full re-read
    assert res.events == 0
    ing = Ingestor(store)
    ing.ingest(folder)
    assert ing.ingest(folder).events == 0
    assert (store.get_run(rid), store.epochs(rid)) == before
    assert store.integrity_check() == "ok"


def test_incremental_ingest_follows_a_live_run(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    ing = Ingestor(store)
    assert ing.ingest(folder).status == "queued"  # nothing written yet
    sink = FolderSink(folder)
    sink.mark_running(rid, 7, "cpu")
    assert ing.ingest(folder).status == "running"
    sink.add_epoch(rid, 0, loss=1.0, ua=50.0)
    assert ing.ingest(folder).events == 1
    sink.add_epoch(rid, 1, loss=0.5, ua=40.0)
    sink.finish(rid, {"ua": 40.0})
    res = ing.ingest(folder)
    assert res.events == 2 and res.status == "finished"
    assert epoch_keys(store, rid) == [(0, 50.0), (1, 40.0)]


def test_a_half_written_last_line_waits_for_its_end(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    sink = FolderSink(folder)
    sink.mark_running(rid, 7, "cpu")
    sink.add_epoch(rid, 0, loss=1.0, ua=50.0)
    line = json.dumps({"t": "2026-01-01T00:00:00+00:00", "a": 0, "event": "epoch", "epoch": 1,
                       "values": {"loss": 0.5, "ua": 40.0}}) + "\n"
    with open(folder / EVENTS_FILE, "a") as f:
        f.write(line[:25])  # the engine is in the middle of this line
    ing = Ingestor(store)
    ing.ingest(folder)
    assert epoch_keys(store, rid) == [(0, 50.0)]
    with open(folder / EVENTS_FILE, "a") as f:
        f.write(line[25:])
    ing.ingest(folder)
    assert epoch_keys(store, rid) == [(0, 50.0), (1, 40.0)]


def test_a_damaged_line_is_skipped_and_counted(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    sink = FolderSink(folder)
    sink.mark_running(rid, 7, "cpu")
    with open(folder / EVENTS_FILE, "ab") as f:
        f.write(b'{"event": "epoch", "epoch": \x00garbage\n[1, 2]\n')
    sink.add_epoch(rid, 0, loss=1.0, ua=50.0)
    res = ingest(folder, store)
    assert res.damaged == 2
    assert epoch_keys(store, rid) == [(0, 50.0)]


def test_epochs_out_of_order_end_in_epoch_order(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    sink = FolderSink(folder)
    sink.mark_running(rid, 7, "cpu")
    for e, ua in ((2, 30.0), (0, 50.0), (1, 40.0), (1, 41.0)):  # epoch 1 written twice
        sink.add_epoch(rid, e, ua=ua)
    ing = Ingestor(store)
    ing.ingest(folder)
    ingest(folder, store)
    assert epoch_keys(store, rid) == [(0, 50.0), (1, 41.0), (2, 30.0)]


def test_a_requeued_attempt_replaces_the_stale_rows(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    ing = Ingestor(store)
    engine_writes(folder, rid, epochs=3, finish=False, attempt=0)  # node failed after 3 epochs
    ing.ingest(folder)
    assert len(store.epochs(rid)) == 3 and store.get_run(rid)["status"] == "running"
    sink = FolderSink(folder, attempt=1)  # Slurm started the task again
    sink.mark_running(rid, 99, "cpu")
    sink.add_epoch(rid, 0, ua=70.0)
    res = ing.ingest(folder)
    assert res.attempt == 1 and res.status == "running"
    assert epoch_keys(store, rid) == [(0, 70.0)]  # attempt 0's epochs 1, 2 are gone
    assert store.get_run(rid)["pid"] == 99 and store.get_run(rid)["attempt"] == 1
    sink.finish(rid, {"ua": 5.0})
    ing.ingest(folder)
    # a fresh driver replays only the newest attempt, and nothing changes
    before = (store.get_run(rid), store.epochs(rid))
    assert ingest(folder, store).events == 0
    assert (store.get_run(rid), store.epochs(rid)) == before
    assert before[0]["status"] == "finished" and before[0]["ua"] == 5.0


def test_a_new_attempt_revives_a_run_the_driver_ended(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    engine_writes(folder, rid, epochs=1, finish=False)
    ingest(folder, store)
    store.mark(rid, "failed", error="Slurm: NODE_FAIL", expect=("running",))
    sink = FolderSink(folder, attempt=1)
    sink.mark_running(rid, 5, "cpu")
    assert ingest(folder, store).status == "running"
    assert store.get_run(rid)["error"] is None


def test_a_terminal_row_ignores_late_events_of_its_attempt(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    sink = FolderSink(folder)
    sink.mark_running(rid, 5, "cpu")
    ingest(folder, store)
    store.mark(rid, "killed", error="cancelled", expect=("running",))
    sink.finish(rid, {"ua": 1.0})
    assert ingest(folder, store).status == "killed"
    assert store.get_run(rid)["ua"] is None


def test_an_engine_that_is_killed_writes_killed(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    sink = FolderSink(folder)
    sink.mark_running(rid, 5, "cpu")
    assert sink.mark(rid, "killed", error="stopped by signal", expect=("queued", "running"))
    assert not sink.mark(rid, "failed", expect=("queued", "running"))
    assert not sink.mark_running(rid, 5, "cpu")  # the runner's "should I exit" answer
    res = ingest(folder, store)
    assert res.status == "killed" and store.get_run(rid)["error"] == "stopped by signal"


def test_a_folder_of_another_database_is_not_ingested(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    engine_writes(folder, rid)
    other = Store(tmp_path / "other.db")  # a new database: ids start at 1 again
    try:
        oid = other.create_run(RunSpec(seed=5))
        assert oid == rid
        res = ingest(folder, other)
        assert res.skipped and "earlier run" in res.skipped
        assert other.epochs(oid) == [] and other.get_run(oid)["status"] == "queued"
        # submitting the new row moves the old events aside instead of mixing them in
        write_run_file(folder, other.get_run(oid))
        assert not (folder / EVENTS_FILE).exists()
        assert any(p.name.startswith(EVENTS_FILE + ".stale-") for p in folder.iterdir())
    finally:
        other.close()


def test_sink_refuses_a_folder_without_run_file_and_a_foreign_run(store, tmp_path):
    with pytest.raises(TarfError, match="not a run folder"):
        FolderSink(tmp_path / "nowhere")
    rid, folder = new_run(store, tmp_path)
    sink = FolderSink(folder)
    with pytest.raises(TarfError, match="belongs to run"):
        sink.add_epoch(rid + 1, 0)
    assert sink.get_run(rid)["spec"] == store.get_run(rid)["spec"]


def test_read_lines_offsets(tmp_path):
    p = tmp_path / "e.jsonl"
    p.write_bytes(b'{"event": "a"}\n{"event": "b"}\n{"event": "c"')
    evs, off, bad = read_lines(p)
    assert [e["event"] for e in evs] == ["a", "b"] and bad == 0
    assert off == len(b'{"event": "a"}\n{"event": "b"}\n')
    assert read_lines(p, off)[0] == []
    assert read_lines(tmp_path / "missing")[0] == []


def test_run_folders_lists_numbered_folders(tmp_path):
    for name in ("3", "10", "x", ".stale"):
        (tmp_path / name).mkdir()
    assert [p.name for p in run_folders(tmp_path)] == ["3", "10"]
    assert run_folders(tmp_path / "absent") == []


def test_heartbeat_age_is_tracked(store, tmp_path):
    rid, folder = new_run(store, tmp_path)
    sink = FolderSink(folder, heartbeat_every=0.0)
    sink.mark_running(rid, 5, "cpu")
    ing = Ingestor(store)
    assert ing.ingest(folder).heartbeat["pid"] == os.getpid()
    age = ing.beat_age(folder)
    assert age is not None and age < 60


def test_a_job_id_clears_the_start_claim(store):
    rid = store.create_run(RunSpec())
    assert store.claim_start(rid, "driver-a")
    assert not store.claim_start(rid, "driver-b")
    store.set_job(rid, "slurm", None)  # claimed for Slurm, not submitted: the claim stays
    assert not store.claim_start(rid, "driver-b")
    store.set_job(rid, "slurm", "12_0", log_path="/x/engine.log")
    row = store.get_run(rid)
    assert "start_claim" not in (row["extras"] or {})
    assert (row["executor"], row["job_id"], row["log_path"]) == ("slurm", "12_0", "/x/engine.log")
