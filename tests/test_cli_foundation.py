"""`tarf-tui cases` / `datasets` / `methods` and their bad input, through typer's CliRunner."""

import json

from typer.testing import CliRunner

from engine.methods.params import CATALOG
from tarf_tui.cli import app

runner = CliRunner()


def test_cases_json_contract():
    r = runner.invoke(app, ["cases", "--json"])
    assert r.exit_code == 0
    rows = json.loads(r.stdout)
    assert len(rows) == 27
    for row in rows:
        assert {"no", "forget_level", "model_level", "target_level", "category", "practical"} <= set(row)
        assert row["forget_level"] in ("subset", "class", "superclass")
    assert rows[10] | {} == rows[10] and rows[10]["no"] == 11 and rows[10]["category"] == "target-mismatch"
    assert [r["no"] for r in rows if not r["practical"]] == [14, 17, 18, 20, 22, 23, 24, 26, 27]
    two = json.loads(runner.invoke(app, ["cases", "--json", "--layers", "2"]).stdout)
    assert [r["no"] for r in two] == [10, 11, 12, 13, 19, 20, 21, 22]


def test_cases_table_flags_impractical():
    r = runner.invoke(app, ["cases"])
    assert r.exit_code == 0
    assert r.stdout.count("IMPRACTICAL") == 9 and "target-mismatch" in r.stdout


def test_cases_bad_layers():
    r = runner.invoke(app, ["cases", "--layers", "4"])
    assert r.exit_code == 2 and "layers must be 2 or 3" in r.stderr


def test_datasets_json(tmp_path):
    r = runner.invoke(app, ["datasets", "--json", "--data-root", str(tmp_path)])
    assert r.exit_code == 0
    rows = {d["name"]: d for d in json.loads(r.stdout)}
    assert rows["synthetic"]["available"] is True
    assert rows["cifar10"]["available"] is False and str(tmp_path) in rows["cifar10"]["where"]
    assert set(rows) == {"synthetic", "cifar10", "cifar100", "npz"}


def test_methods_json():
    r = runner.invoke(app, ["methods", "--json"])
    rows = {m["name"]: m for m in json.loads(r.stdout)}
    assert list(rows) == CATALOG.names()  # every method, catalogue order
    k = next(p for p in rows["tarf"]["params"] if p["name"] == "k")
    assert k["type"] == "float" and k["help"]
    assert all(p["help"] for m in rows.values() for p in m["params"])


def test_every_command_has_help():
    for cmd in ([], ["cases"], ["datasets"], ["methods"]):
        r = runner.invoke(app, cmd + ["--help"])
        assert r.exit_code == 0 and "Usage" in r.stdout
