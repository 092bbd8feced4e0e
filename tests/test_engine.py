"""The engine end to end: real ``python -m engine run`` subprocesses on the embedded dataset
(cut to 60 images per class), their rows read by a second connection while they run, SIGTERM,
bad specs, divergence; and the runner in-process for the generic method loop."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.spec import RunSpec
from engine.store import Store, Workspace

ROOT = Path(__file__).resolve().parent.parent
SMALL = {"per_class": 60, "recipe": {"epochs": 4}}


def engine(args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "engine", "run", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def count_rows(db: Path, run_id: int) -> int:
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT count(*) FROM epochs WHERE run_id = ?", [run_id]).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_retrained_run_streams_epochs_then_replays_from_cache(tmp_path):
    db = tmp_path / "tarf.db"
    spec = RunSpec.from_dict({**SMALL, "method": "retrained"})
    with Store(db) as s:
        rid = s.create_run(spec)
    p = engine(["--db", str(db), "--run-id", str(rid)])
    lines, seen = [], {}
    for line in p.stdout:  # each epoch's event comes after its row is committed: streamed
        lines.append(line)
        ev = json.loads(line)
        if ev["event"] == "epoch":
            seen[ev["epoch"]] = count_rows(db, rid)
    err = p.stderr.read()
    assert p.wait(timeout=120) == 0, err
    assert all(seen[e] >= e + 1 for e in range(4)), seen  # readable by others as it goes
    events = [json.loads(line) for line in lines]
    assert [e["epoch"] for e in events if e["event"] == "epoch"] == [0, 1, 2, 3]
    assert events[-1]["event"] == "finished"
    with Store(db) as s:
        run = s.get_run(rid)
        rows = s.epochs(rid)
    assert run["status"] == "finished" and run["device"] == "cpu"
    assert run["spec"]["hierarchy"] == "synthetic" and run["spec"]["target"] == "vehicle"  # resolved
    assert run["torch_version"] and run["code_version"]
    assert run["gap"] == 0.0 and run["ua"] == run["ref_ua"] and run["mia"] is not None
    assert run["rte_s"] > 0 and not run["extras"]["reference_cached"]
    assert len(rows) == 4 and rows[-1]["ua"] == pytest.approx(run["ua"])
    assert all(r["phase"] == "retrain" and r["loss"] > 0 and r["lr"] > 0 for r in rows)
    assert list((tmp_path / "cache" / "models").glob("retrained-*.pt"))

    # the same spec again: the reference is cached, its history becomes the run's rows
    with Store(db) as s:
        rid2 = s.create_run(spec)
    p = engine(["--db", str(db), "--run-id", str(rid2)])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    with Store(db) as s:
        run2, rows2 = s.get_run(rid2), s.epochs(rid2)
    assert [r["extras"].get("cached") for r in rows2] == [True] * 4
    for a, b in zip(rows, rows2):
        assert (a["loss"], a["ua"], a["ra"], a["ta"], a["acc_f"]) == pytest.approx(
            (b["loss"], b["ua"], b["ra"], b["ta"], b["acc_f"]))
    assert run2["ua"] == pytest.approx(run["ua"]) and run2["mia"] == pytest.approx(run["mia"])
    assert run2["extras"]["reference_cached"]


def test_sigterm_marks_the_run_killed(tmp_path):
    db = tmp_path / "tarf.db"
    spec = RunSpec.from_dict({"per_class": 60, "method": "retrained", "recipe": {"epochs": 200}})
    with Store(db) as s:
        rid = s.create_run(spec)
    p = engine(["--db", str(db), "--run-id", str(rid)])
    deadline = time.monotonic() + 120
    while count_rows(db, rid) < 1 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()[1]
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "Traceback" not in err
    with Store(db) as s:
        run = s.get_run(rid)
        assert run["status"] == "killed" and "signal" in run["error"]
        assert len(s.epochs(rid)) >= 1  # rows written so far are kept
    assert not list((tmp_path / "cache" / "models").glob("*.pt"))  # nothing half-trained cached


@pytest.mark.parametrize("text,needle", [
    ('{"case": 11, "methd": "ft"}', "unknown spec keys: methd"),
    ('{"case": 99}', "case must be 1..27"),
    ("{not json", "not valid JSON"),
])
def test_bad_spec_exits_2_with_one_line(tmp_path, text, needle):
    f = tmp_path / "spec.json"
    f.write_text(text)
    p = engine(["--db", str(tmp_path / "tarf.db"), "--spec", str(f)])
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2
    assert len(err.strip().splitlines()) == 1 and needle in err and "Traceback" not in err
    with Store(tmp_path / "tarf.db") as s:
        assert s.list_runs() == []


def test_bad_request_in_a_queued_run_marks_it_failed(tmp_path):
    db = tmp_path / "tarf.db"
    with Store(db) as s:
        rid = s.create_run(RunSpec(per_class=60, target="spaceship"))
    p = engine(["--db", str(db), "--run-id", str(rid)])
    out, err = p.communicate(timeout=120)
    assert p.returncode == 2 and len(err.strip().splitlines()) == 1 and "spaceship" in err
    assert "Traceback" not in err
    with Store(db) as s:
        run = s.get_run(rid)
    assert run["status"] == "failed" and "spaceship" in run["error"]
    p = engine(["--db", str(db), "--run-id", "999"])
    assert p.wait(60) == 2 and "no run with id 999" in p.stderr.read()


NAN_ENGINE = """
import sys
sys.path.insert(0, {root!r})
from engine.runner import load_methods
load_methods()
from engine.methods.base import METHODS, EpochResult, Method

class NanAfterOne(Method):  # FT whose second epoch reports a NaN objective
    info = METHODS.get("ft").info
    def setup(self):
        self.opt = self.ctx.sgd(self.p.lr)
    def epoch(self, e):
        loss = self.ctx.ce_pass(self.ctx.d_un, self.opt)
        return EpochResult(loss if e == 0 else float("nan"))

METHODS._entries["ft"] = NanAfterOne  # test-only substitution
from engine.__main__ import main
sys.exit(main(sys.argv[1:]))
"""


def test_nan_loss_ends_diverged(tmp_path):
    script = tmp_path / "nan_engine.py"
    script.write_text(NAN_ENGINE.format(root=str(ROOT)))
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"per_class": 30, "recipe": {"epochs": 1}, "method": "ft", "epochs": 3}))
    db = tmp_path / "tarf.db"
    p = subprocess.run([sys.executable, str(script), "run", "--db", str(db), "--spec", str(spec)],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    with Store(db) as s:
        run = s.list_runs()[0]
        assert run["status"] == "diverged" and "nan" in run["error"].lower()
        assert [r["epoch"] for r in s.epochs(run["id"])] == [0]  # the good epoch is kept


# ---- in-process: the generic method loop ----------------------------------------------------
def test_runner_generic_loop_and_divergence(tmp_path):
    from engine.runner import run

    ws = Workspace(tmp_path)
    store = ws.store()
    # the reference run first, so the FT run's reference must equal it
    ref_id = store.create_run(RunSpec.from_dict({**SMALL, "method": "retrained"}))
    assert run(RunSpec.from_dict({**SMALL, "method": "retrained"}), store, ref_id, ws) == "finished"
    spec = RunSpec.from_dict({**SMALL, "method": "ft", "epochs": 2, "label": "ft"})
    rid = store.create_run(spec)
    beats = []
    assert run(spec, store, rid, ws, stop=lambda: beats.append(1) and False) == "finished"
    r, ref = store.get_run(rid), store.get_run(ref_id)
    rows = store.epochs(rid)
    assert [x["epoch"] for x in rows] == [0, 1] and all(x["phase"] == "unlearn" for x in rows)
    assert all(x["lr"] == pytest.approx(0.01) and x["extras"]["step_s"] > 0 for x in rows)
    for k in ("ua", "ra", "ta", "mia"):
        assert r[f"ref_{k}"] == pytest.approx(ref[k])
    from engine.metrics import gap
    assert r["gap"] == pytest.approx(gap(r, {k: r[f"ref_{k}"] for k in ("ua", "ra", "ta", "mia")}))
    assert 0 < r["rte_s"] < r["extras"]["wall_s"]
    assert r["extras"]["reference_cached"] and not r["extras"]["original_cached"]  # bools come back as 1 / 0
    assert r["extras"]["original"]["ua"] > r["ua"] - 100  # recorded
    assert beats  # the stop flag is polled during training
    # a recipe that explodes: the run ends diverged, not failed
    bad = RunSpec.from_dict({"per_class": 60, "method": "ft", "recipe": {"epochs": 2, "lr": 1e4}})
    bid = store.create_run(bad)
    assert run(bad, store, bid, ws) == "diverged"
    assert store.get_run(bid)["status"] == "diverged"
    # stop already set: killed
    kid = store.create_run(spec.replace(seed=1))
    assert run(spec.replace(seed=1), store, kid, ws, stop=lambda: True) == "killed"
    assert store.get_run(kid)["status"] == "killed"
    store.close()
