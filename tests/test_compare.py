"""tarf_tui.compare: Table 1 blocks from store rows, every format parsed back or checked."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from engine.errors import UnknownName
from engine.spec import RunSpec
from tarf_tui import compare


def _finished(store, spec, **m):
    rid = store.create_run(spec)
    store.finish(rid, {"ua": m.get("ua", 10.0), "ra": m.get("ra", 90.0), "ta": m.get("ta", 85.0),
                       "mia": m.get("mia", 50.0), "gap": m.get("gap", 5.0),
                       "rte_s": m.get("rte_s", 2.0)})
    return rid


@pytest.fixture
def rows(store):
    """Two experiments (case 11 and 10). Case 11: Retrained, GA, FT, TARF over seeds 0 and 1,
    plus one failed FT run (seed 2); case 10: FT only."""
    base = RunSpec(case=11, target="vehicle", forget=("car",), hierarchy="synthetic")
    gaps = {"retrained": (0.0, 0.0), "ft": (20.0, 30.0), "ga": (10.0, 14.0), "tarf": (2.0, 4.0)}
    for seed in (0, 1):
        for method in ("retrained", "ga", "ft", "tarf"):  # not catalogue order on purpose
            _finished(store, base.replace(method=method, seed=seed), gap=gaps[method][seed],
                      ua=50.0 + seed * 10.0, rte_s=10 + seed)
    bad = store.create_run(base.replace(method="ft", seed=2))
    store.mark(bad, "failed", error="boom")
    _finished(store, RunSpec(case=10, method="ft"), gap=30.0)
    return store.list_runs()


def test_blocks_rows_and_stats(rows):
    blocks = compare.build(rows)
    assert len(blocks) == 2
    b11 = next(b for b in blocks if b.case_no == 11)
    assert [r.method for r in b11.rows] == ["retrained", "ft", "ga", "tarf"]  # catalogue order
    tarf = b11.rows[3]
    assert tarf.n == 2 and tarf.seeds == [0, 1]
    assert tarf.stats["gap"].mean == pytest.approx(3.0)
    assert tarf.stats["gap"].std == pytest.approx(math.sqrt(2))  # sample std
    assert tarf.stats["ua"].mean == pytest.approx(55.0)
    assert tarf.stats["rte_s"].mean == pytest.approx(10.5)
    assert tarf.best and not any(r.best for r in b11.rows if r.method != "tarf")
    ft = b11.rows[1]
    assert ft.n == 2 and ft.statuses == {"finished": 2, "failed": 1}  # failure kept visible
    b10 = next(b for b in blocks if b.case_no == 10)
    assert [r.method for r in b10.rows] == ["ft"] and b10.rows[0].best


def test_rerun_counts_newest_only(store):
    spec = RunSpec(method="ga")
    _finished(store, spec, gap=5.0)
    _finished(store, spec, gap=1.0)
    (b,) = compare.build(store.list_runs())
    (row,) = b.rows
    assert row.n == 1 and row.stats["gap"].mean == pytest.approx(1.0)
    assert row.statuses == {"finished": 2}


def test_variants_get_their_own_rows(store):
    for k in (0.01, 0.05):
        _finished(store, RunSpec(method="tarf", params={"k": k}))
    (b,) = compare.build(store.list_runs())
    assert sorted(r.title for r in b.rows) == ["TARF (k=0.01)", "TARF (k=0.05)"]


def test_csv_parses_back(rows):
    text = compare.render(compare.build(rows), "csv")
    recs = list(csv.DictReader(io.StringIO(text)))
    assert len(recs) == 5
    tarf = next(r for r in recs if r["method"] == "tarf")
    assert float(tarf["gap_mean"]) == pytest.approx(3.0)  # percent, as stored
    assert float(tarf["gap_std"]) == pytest.approx(math.sqrt(2))
    assert float(tarf["rte_s_mean"]) == pytest.approx(10.5)  # seconds
    assert tarf["best_gap"] == "True" and tarf["n"] == "2"
    assert next(r for r in recs if r["case_no"] == "10")["gap_std"] == ""  # one seed: no std


def test_json_parses_back(rows):
    data = json.loads(compare.render(compare.build(rows), "json"))
    assert [len(b["rows"]) for b in data] == [4, 1]
    tarf = data[0]["rows"][3]
    assert tarf["method"] == "tarf" and tarf["best_gap"] is True
    assert tarf["gap"]["mean"] == pytest.approx(3.0) and tarf["seeds"] == [0, 1]
    assert data[0]["units"]["rte_s"] == "s"


def test_markdown(rows):
    md = compare.render(compare.build(rows), "md")
    assert "| Method | UA | RA | TA | MIA | Gap ↓ | RTE (s) | Seeds |" in md
    assert "| TARF | 55.00 ± 7.07 |" in md and "**3.00 ± 1.41**" in md
    assert "| FT |" in md and "2 (1 failed)" in md
    ref = next(ln for ln in md.splitlines() if ln.startswith("| Retrained |"))
    assert ref.split(" | ")[5] == "-"  # the reference's Gap, as in the paper's Table 1


def test_reference_gap_is_a_dash_in_text_but_kept_in_json(rows):
    blocks = compare.build(rows)
    ref = next(r for r in blocks[0].rows if r.method == "retrained")
    assert compare.row_cells(ref)[compare.METRICS.index("gap")] == "-"
    data = json.loads(compare.render(blocks, "json"))
    assert data[0]["rows"][0]["gap"]["mean"] is not None


def test_latex_is_a_booktabs_tabular_with_the_rows(rows):
    tex = compare.render(compare.build(rows), "latex")
    assert tex.count(r"\begin{tabular}{lrrrrrr}") == 1 and r"\end{tabular}" in tex
    assert tex.index(r"\toprule") < tex.index(r"\midrule") < tex.index(r"\bottomrule")
    body = [ln for ln in tex.splitlines() if ln.endswith(r"\\") and "&" in ln]
    assert body[0].startswith("Method & UA & RA & TA & MIA & Gap$\\downarrow$ & RTE (s)")
    names = [ln.split(" & ")[0] for ln in body[1:]]
    assert names == ["Retrained", "FT", "GA", "TARF", "FT"]
    assert all(ln.count("&") == 6 for ln in body)
    assert r"\textbf{3.00 $\pm$ 1.41}" in tex
    assert r"\multicolumn{7}{l}" in tex and "case 11" in tex


def test_table_text(rows):
    text = compare.render(compare.build(rows), "table")
    assert "TARF" in text and "3.00 ± 1.41 *" in text and "case 10" in text


def test_empty_and_bad_format():
    assert "no runs" in compare.render([], "table")
    assert json.loads(compare.render([], "json")) == []
    with pytest.raises(UnknownName, match="unknown format 'xls'; valid choices: table, md"):
        compare.render([], "xls")


def test_latex_escapes():
    assert compare._tex("a_b & 50%") == r"a\_b \& 50\%"


def test_queued_and_resolved_specs_of_one_setting_are_one_row():
    """A queued run stores only the user's overrides, a started one the resolved params: they
    must still count as the same method setting (and a setting missing a key must not crash)."""
    from engine.spec import RunSpec
    from engine.task import resolve
    from tarf_tui.compare import build

    # as submitted by experiment.expand: the request's defaults written, the params not
    raw = RunSpec(method="tarf", case=11, seed=0, hierarchy="synthetic", target="vehicle",
                  forget=("car",))
    full = resolve(raw.replace(seed=1)).spec
    runs = []
    for i, (spec, status) in enumerate([(raw, "queued"), (full, "finished"),
                                        (raw.replace(params={"k": 9.0}), "finished")]):
        runs.append({"id": i + 1, "status": status, "method": "tarf", "case_no": 11,
                     "dataset": "synthetic", "experiment": raw.experiment_key(),
                     "spec_hash": spec.hash(), "spec": spec.to_dict(), "seed": spec.seed,
                     "ua": 1.0, "ra": 2.0, "ta": 3.0, "mia": 4.0, "gap": 5.0, "rte_s": 6.0})
    (block,) = build(runs)
    from engine.methods.params import resolve_params

    k = resolve_params("tarf", {}, "synthetic", None, None, "target-mismatch").k  # the default
    assert k != 9.0
    assert [r.title for r in block.rows] == [f"TARF (k={k})", "TARF (k=9.0)"]
    assert block.rows[0].run_ids == [1, 2]


def test_mia_attacks_are_averaged_and_exported(store):
    base = RunSpec(case=11, target="vehicle", forget=("car",), hierarchy="synthetic", method="ft")
    for seed, conf in ((0, 40.0), (1, 60.0)):
        rid = store.create_run(base.replace(seed=seed))
        store.finish(rid, {"ua": 1.0, "gap": 2.0, "extras": {
            "mia_variants": {"confidence": conf, "entropy": 10.0}}})
    blocks = compare.build(store.list_runs())
    row = blocks[0].rows[0]
    assert row.mia_attacks["confidence"].mean == pytest.approx(50.0)
    assert row.mia_attacks["entropy"].std == pytest.approx(0.0) and "prob" not in row.mia_attacks
    data = json.loads(compare.to_json(blocks))
    assert data[0]["rows"][0]["mia_attacks"]["confidence"]["mean"] == pytest.approx(50.0)
    rec = next(csv.DictReader(io.StringIO(compare.to_csv(blocks))))
    assert float(rec["mia_confidence_mean"]) == pytest.approx(50.0) and rec["mia_prob_mean"] == ""
