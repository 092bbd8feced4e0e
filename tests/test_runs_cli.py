"""``tarf-tui runs list|show|compare|export|cancel|rm`` over a workspace database."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from engine.spec import RunSpec
from engine.store import Store
from tarf_tui.cli import app
from tarf_tui.launcher import Launcher, LocalExecutor

ROOT = Path(__file__).resolve().parent.parent
FAKE = [sys.executable, str(ROOT / "tests" / "fake_engine.py")]


@pytest.fixture
def ws(tmp_path, monkeypatch):
    monkeypatch.delenv("TARF_HOME", raising=False)
    return tmp_path


@pytest.fixture
def filled(ws):
    """Case 11: Retrained/FT/TARF over seeds 0, 1 (finished, with epochs); one failed GA;
    case 10: one FT."""
    with Store(ws / "tarf.db") as s:
        base = RunSpec(case=11, target="vehicle", forget=("car",), hierarchy="synthetic")
        gaps = {"retrained": 0.0, "ft": 20.0, "tarf": 2.0}
        for seed in (0, 1):
            for m in ("retrained", "ft", "tarf"):
                rid = s.create_run(base.replace(method=m, seed=seed))
                s.mark_launched(rid, 1234)
                s.mark_running(rid, 1234, "cpu", {"code": "0.1.0", "torch": "2.x", "python": "3.11"})
                for e in range(3):
                    s.add_epoch(rid, e, phase="unlearn", loss=1.0 / (e + 1), ua=90.0 - 30 * e,
                                ra=95.0, ta=90.0, seconds=0.5)
                s.finish(rid, {"ua": 10.0 + seed, "ra": 95.0, "ta": 90.0, "mia": 50.0,
                               "gap": gaps[m] + seed, "rte_s": 3.0})
        bad = s.create_run(base.replace(method="ga"))
        s.mark(bad, "failed", error="boom")
        s.finish(s.create_run(RunSpec(case=10, method="ft")), {"ua": 1.0, "gap": 4.0})
    return ws


def run(ws, *args):
    return CliRunner().invoke(app, ["runs", *args, "-w", str(ws)])


def test_every_command_has_help():
    for cmd in ("list", "show", "compare", "export", "cancel", "rm", "resume"):
        r = CliRunner().invoke(app, ["runs", cmd, "--help"])
        assert r.exit_code == 0 and len(r.stdout) > 100, cmd


def test_list_json_and_filters(filled):
    r = run(filled, "list", "--json")
    assert r.exit_code == 0, r.output
    rows = json.loads(r.stdout)
    assert len(rows) == 8 and rows[0]["id"] > rows[-1]["id"]  # newest first
    for k in ("id", "status", "dataset", "case_no", "method", "seed", "pid", "ua", "ra", "ta",
              "mia", "gap", "rte_s"):
        assert k in rows[0]
    tarf0 = next(x for x in rows if x["method"] == "tarf" and x["seed"] == 0)
    assert tarf0["gap"] == 2.0 and tarf0["epochs_done"] == 3 and tarf0["pid"] == 1234
    assert {x["method"] for x in json.loads(run(filled, "list", "--json", "--method", "ft").stdout)} == {"ft"}
    assert len(json.loads(run(filled, "list", "--json", "--case", "10").stdout)) == 1
    assert len(json.loads(run(filled, "list", "--json", "--status", "failed").stdout)) == 1
    assert json.loads(run(filled, "list", "--json", "--dataset", "cifar10").stdout) == []
    r = run(filled, "list", "--status", "sleeping")
    assert r.exit_code == 2 and "unknown status 'sleeping'; valid choices: queued" in r.stderr
    r = run(filled, "list")
    assert r.exit_code == 0 and "tarf" in r.stdout and "failed" in r.stdout


def test_show(filled):
    r = run(filled, "show", "1", "--json")
    assert r.exit_code == 0
    d = json.loads(r.stdout)
    assert d["id"] == 1 and d["spec"]["method"] == "retrained" and d["ua"] == 10.0
    assert [e["epoch"] for e in d["epochs"]] == [0, 1, 2] and d["torch_version"] == "2.x"
    text = run(filled, "show", "1").stdout
    assert "retrained" in text and "epoch" in text and "ua=10.00%" in text
    r = run(filled, "show", "999")
    assert r.exit_code == 2 and "no run 999" in r.stderr


def test_show_names_versions_attacks_and_identification(ws):
    from engine.task import normalise

    spec = normalise(RunSpec(case=11, method="tarf"))
    with Store(ws / "tarf.db") as s:
        rid = s.create_run(spec)
        s.mark_running(rid, 1, "cpu", {}, spec=spec)
        s.finish(rid, {"ua": 5.0, "gap": 3.0, "extras": {
            "mia_variants": {"confidence": 90.0, "entropy": 80.0},
            "ref_mia_variants": {"confidence": 100.0, "entropy": 70.0},
            "identification": {"hits": 1, "n": 2, "excluded": [1, 5], "hidden": [1, 2],
                               "unit_names": ["car", "truck", "bus", "cat", "dog", "horse"]}}})
    text = run(ws, "show", str(rid)).stdout
    assert f"data={spec.versions['data']} method={spec.versions['method']}" in text
    assert "confidence=90.00% (Retrained 100.00%)" in text and "entropy=80.00%" in text
    assert "identified      1/2: excluded truck, horse; hidden truck, bus" in text


def test_compare_every_format(filled):
    r = run(filled, "compare", "--format", "json")
    assert r.exit_code == 0, r.output
    blocks = json.loads(r.stdout)
    b11 = next(b for b in blocks if b["case_no"] == 11)
    assert [x["method"] for x in b11["rows"]] == ["retrained", "ft", "ga", "tarf"]
    tarf = b11["rows"][3]
    assert tarf["gap"]["mean"] == pytest.approx(2.5) and tarf["best_gap"]
    assert b11["rows"][2]["n"] == 0 and b11["rows"][2]["statuses"] == {"failed": 1}

    recs = list(csv.DictReader(io.StringIO(run(filled, "compare", "--format", "csv").stdout)))
    assert len(recs) == 5
    assert float(next(x for x in recs if x["method"] == "ft" and x["case_no"] == "11")["gap_mean"]) == 20.5

    md = run(filled, "compare", "--format", "md").stdout
    assert "| TARF | 10.50 ± 0.71 |" in md

    tex = run(filled, "compare", "--format", "latex").stdout
    assert r"\begin{tabular}" in tex and r"\toprule" in tex and r"\bottomrule" in tex
    assert [ln.split(" & ")[0] for ln in tex.splitlines() if ln.endswith(r"\\") and " & " in ln] == \
        ["Method", "Retrained", "FT", "GA", "TARF", "FT"]

    assert "TARF" in run(filled, "compare").stdout
    one = json.loads(run(filled, "compare", "--format", "json", "--case", "10").stdout)
    assert [b["case_no"] for b in one] == [10]
    r = run(filled, "compare", "--format", "xls")
    assert r.exit_code == 2 and "valid choices: table, md, csv, json, latex" in r.stderr


def test_export(filled, tmp_path):
    r = run(filled, "export", "--format", "json")
    recs = json.loads(r.stdout)
    assert len(recs) == 8 and recs[0]["id"] == 1
    assert recs[0]["spec"]["method"] == "retrained" and len(recs[0]["epochs"]) == 3
    assert recs[0]["duration_s"] is not None and recs[0]["python_version"] == "3.11"
    out = tmp_path / "runs.csv"
    r = run(filled, "export", "-o", str(out))
    assert r.exit_code == 0 and r.stdout == ""
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 8
    for col in ("id", "status", "spec.method", "spec.case", "spec.seed", "started_at",
                "duration_s", "code_version", "torch_version", "epochs_done"):
        assert col in rows[0], col
    assert rows[0]["spec.method"] == "retrained" and rows[0]["epochs_done"] == "3"
    assert run(filled, "export", "--format", "xml").exit_code == 2


def test_reads_reap_dead_engines(ws):
    with Store(ws / "tarf.db") as s:
        rid = s.create_run(RunSpec())
        p = subprocess.Popen([sys.executable, "-c", "pass"])
        p.wait()
        s.mark_launched(rid, p.pid)  # "running" with a pid that is gone
    rows = json.loads(run(ws, "list", "--json").stdout)
    assert rows[0]["status"] == "failed" and "died" in rows[0]["error"]


def _start_hanging(ws, monkeypatch):
    monkeypatch.setenv("TARF_FAKE_HANG", "1")
    s = Store(ws / "tarf.db")
    la = Launcher(s, LocalExecutor(s.path, engine_cmd=FAKE))
    rid = la.submit(RunSpec(method="ft"))
    h = la.start(rid)
    end = time.monotonic() + 20
    while time.monotonic() < end and not (s.get_run(rid)["device"] == "cpu"):
        time.sleep(0.05)  # the engine reported in
    return s, rid, h


def test_cancel(ws, monkeypatch):
    s, rid, h = _start_hanging(ws, monkeypatch)
    try:
        r = run(ws, "cancel", str(rid), "--timeout", "3")
        assert r.exit_code == 0, r.output
        assert f"run {rid}: killed" in r.stdout
        assert s.get_run(rid)["status"] == "killed"
        h.popen.wait(timeout=10)
        r = run(ws, "cancel", str(rid))
        assert r.exit_code == 0 and "nothing to cancel" in r.stdout
        assert run(ws, "cancel", "999").exit_code == 2
    finally:
        if h.popen.poll() is None:
            h.popen.kill()
        s.close()


def test_rm_refuses_running_unless_forced(ws, monkeypatch):
    s, rid, h = _start_hanging(ws, monkeypatch)
    try:
        r = run(ws, "rm", str(rid))
        assert r.exit_code == 2 and "is running" in r.stderr and "--force" in r.stderr
        assert s.get_run(rid) is not None
        r = run(ws, "rm", str(rid), "--force")
        assert r.exit_code == 0, r.output
        assert s.get_run(rid) is None
        h.popen.wait(timeout=15)  # the engine was cancelled first
        done = s.create_run(RunSpec(), status="finished")
        assert run(ws, "rm", str(done)).exit_code == 0 and s.get_run(done) is None
    finally:
        if h.popen.poll() is None:
            h.popen.kill()
        s.close()


def test_damaged_database(ws):
    db = ws / "tarf.db"
    db.write_bytes(b"garbage" * 500)
    for args in (["list"], ["show", "1"], ["compare"], ["export"], ["cancel", "1"], ["rm", "1"]):
        r = run(ws, *args)
        assert r.exit_code == 2 and "not a tarf-tui database" in r.stderr, args
        assert "Traceback" not in r.output
    assert db.read_bytes() == b"garbage" * 500


def test_workspace_from_env_and_root_option(filled, monkeypatch):
    monkeypatch.setenv("TARF_HOME", str(filled))
    r = CliRunner().invoke(app, ["runs", "list", "--json"], env={"TARF_HOME": str(filled)})
    assert len(json.loads(r.stdout)) == 8
    r = CliRunner().invoke(app, ["-w", str(filled), "runs", "list", "--json"], env={"TARF_HOME": ""})
    assert len(json.loads(r.stdout)) == 8


# ---- issue 11: resume, compare views, labels -------------------------------------------------
def test_resume_runs_left_queued_in_dependency_order(ws, monkeypatch):
    from engine.store import parse_time
    from tarf_tui.planner import make_plan

    monkeypatch.setenv("TARF_ENGINE_CMD", " ".join(FAKE))
    monkeypatch.setenv("TARF_FAKE_EPOCHS", "2")
    with Store(ws / "tarf.db") as s:  # as a TUI left them ("leave running & quit")
        ids = [s.create_run(st.spec) for st in make_plan({"method": "ft,ga"}).steps]
    r = run(ws, "resume", "--format", "csv")
    assert r.exit_code == 0, r.output
    assert "3 queued runs resumed" in r.stderr
    with Store(ws / "tarf.db") as s:
        rows = {x["id"]: x for x in s.list_runs()}
    assert [rows[i]["status"] for i in ids] == ["finished"] * 3
    ref = rows[ids[0]]
    assert all(parse_time(rows[i]["started_at"]) >= parse_time(ref["finished_at"]) for i in ids[1:])
    assert r.stdout.startswith("experiment,") and len(r.stdout.splitlines()) == 4
    r = run(ws, "resume", str(ids[0]))
    assert r.exit_code == 2 and f"run {ids[0]} is finished" in r.stderr


def test_rm_deletes_a_queued_run(ws):
    with Store(ws / "tarf.db") as s:
        rid = s.create_run(RunSpec(method="ft"))
    r = run(ws, "rm", str(rid))
    assert r.exit_code == 0, r.output
    with Store(ws / "tarf.db") as s:
        assert s.get_run(rid) is None


def test_compare_table1_over_the_tasks(filled):
    r = run(filled, "compare", "--view", "tasks", "--status", "finished", "--format", "json")
    assert r.exit_code == 0, r.output
    (grid,) = json.loads(r.stdout)  # one dataset and model
    groups = [c["group"] for c in grid["columns"] if c["group"]]
    assert groups[0].startswith("case 10") and groups[-1].startswith("case 11")
    assert [row["method"] for row in grid["rows"]] == ["retrained", "ft", "tarf"]
    ft = next(row for row in grid["rows"] if row["method"] == "ft")
    assert ft["cells"]["10.gap"] == "4.00" and ft["cells"]["11.gap"] == "20.50 ± 0.71"
    tarf = next(row for row in grid["rows"] if row["method"] == "tarf")
    assert tarf["cells"]["10.gap"] == "-"  # not run on that task
    md = run(filled, "compare", "--view", "tasks", "--format", "md").stdout
    assert "case 10 all-matched Gap" in md and "case 11 target-mismatch Gap" in md


def test_compare_sort_and_only_changed(filled):
    r = run(filled, "compare", "--case", "11", "--status", "finished", "--sort", "-gap", "--format", "json")
    assert r.exit_code == 0, r.output
    (g,) = json.loads(r.stdout)
    assert [row["method"] for row in g["rows"]] == ["retrained", "ft", "tarf"]  # reference first
    r = run(filled, "compare", "--case", "11", "--status", "finished", "--sort", "gap", "--format", "json")
    assert [row["method"] for row in json.loads(r.stdout)[0]["rows"]] == ["retrained", "tarf", "ft"]
    md = run(filled, "compare", "--case", "11", "--status", "finished", "--only-changed", "--format", "md").stdout
    head = next(x for x in md.splitlines() if x.startswith("| Method"))
    assert "Gap" in head and "RA" not in head and "MIA" not in head  # equal in every row
    r = run(filled, "compare", "--sort", "nope")
    assert r.exit_code == 2 and "unknown sort column 'nope'" in r.stderr
    out = tmp = filled / "t.csv"
    r = run(filled, "compare", "--only-changed", "--status", "finished", "--case", "11", "--format", "csv", "-o", str(out))
    assert r.exit_code == 0 and "RA" not in tmp.read_text().splitlines()[0].split(",")


def test_compare_identified_column(ws):
    with Store(ws / "tarf.db") as s:
        base = RunSpec(case=11, target="vehicle", forget=("car",), hierarchy="synthetic")
        for seed, hits in ((0, 2), (1, 1)):
            rid = s.create_run(base.replace(method="tarf", seed=seed))
            s.finish(rid, {"ua": 1.0, "gap": 3.0, "rte_s": 2.0,
                           "extras": {"identification": {"hits": hits, "n": 2, "excluded": [], "hidden": []}}})
    r = run(ws, "compare", "--format", "md")
    assert r.exit_code == 0, r.output
    assert "identified" in r.stdout and "| 3/4 |" in r.stdout


def test_compare_labels_name_the_setting_once(ws):
    from tarf_tui.experiment import expand

    with Store(ws / "tarf.db") as s:
        for spec in expand({"method": "ft", "epochs": "3,5"}).specs:
            s.finish(s.create_run(spec), {"ua": 1.0, "gap": 3.0, "rte_s": 2.0})
    text = run(ws, "compare", "--format", "md").stdout
    assert "| FT (epochs=3) |" in text and "| FT (epochs=5) |" in text
    assert "None" not in text
    assert "RTE = seconds spent unlearning" in run(ws, "compare").stdout


def test_method_filter_is_case_insensitive(filled):
    rows = json.loads(run(filled, "list", "--json", "--method", "TARF").stdout)
    assert rows and {x["method"] for x in rows} == {"tarf"}
    r = run(filled, "list", "--method", "nope")
    assert r.exit_code == 2 and "unknown method 'nope'" in r.stderr
