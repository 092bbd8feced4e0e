"""``tarf-tui methods``: the defaults shown are the ones that run for the chosen dataset and case
(issue 11 #7: it printed the generic defaults while the embedded dataset ran others), names are
case-insensitive, and the help points to nothing outside the project."""

from __future__ import annotations

import json
from dataclasses import asdict

from typer.testing import CliRunner

from engine.cases import get_case
from engine.methods.params import CATALOG, param_fields, resolve_params
from tarf_tui.cli import app


def _json(*args):
    r = CliRunner().invoke(app, ["methods", "--json", *args])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_defaults_are_the_resolved_ones_for_the_dataset_and_case():
    for dataset, case in (("synthetic", 11), ("cifar10", 12), ("cifar100", 10)):
        rows = _json("--dataset", dataset, "--case", str(case))
        assert [r["name"] for r in rows] == list(CATALOG.names())
        cat = get_case(case).category
        for r in rows:
            want = asdict(resolve_params(r["name"], {}, dataset, None, None, cat))
            assert {p["name"]: p["default"] for p in r["params"]} == want, (dataset, r["name"])
            assert {p["name"]: p["base_default"] for p in r["params"]} == \
                {f["name"]: f["default"] for f in param_fields(r["name"])}


def test_at_least_one_dataset_default_differs_and_is_marked():
    """The embedded dataset runs tuned values for some method: the text marks them."""
    rows = _json()
    changed = [(r["name"], p["name"]) for r in rows for p in r["params"] if p["default"] != p["base_default"]]
    assert changed, "expected dataset-specific defaults on the embedded dataset"
    text = CliRunner().invoke(app, ["methods"]).stdout
    assert "defaults for dataset synthetic, case 11" in text
    assert text.count(" *\n") == len(changed)


def test_one_method_any_case_and_bad_names():
    (row,) = _json("--method", "Tarf")
    assert row["name"] == "tarf" and row["title"] == "TARF"
    r = CliRunner().invoke(app, ["methods", "--method", "nope"])
    assert r.exit_code == 2 and "unknown method 'nope'" in r.stderr
    r = CliRunner().invoke(app, ["methods", "--dataset", "mnist"])
    assert r.exit_code == 2 and "unknown dataset 'mnist'" in r.stderr


def test_help_is_self_contained():
    for args in (["methods", "--help"], ["headless", "--help"], ["runs", "compare", "--help"]):
        out = CliRunner().invoke(app, args).stdout
        assert "methods.md" not in out and "../shared" not in out
