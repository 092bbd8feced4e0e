"""tarf_tui.experiment: grid expansion, the Retrained reference, validation, run order."""

from __future__ import annotations

import pytest

from engine.errors import DataMissing, InvalidSpec, TarfError, UnknownName
from engine.methods.params import CATALOG
from engine.spec import RunSpec
from tarf_tui.experiment import (arch_names, expand, load_grid, original_key, plan,
                                 reference_of)


def methods(specs):
    return [s.method for s in specs]


def test_default_is_readme_main_job():
    e = expand({})
    assert methods(e.specs) == ["retrained", "ft", "ga", "tarf"]
    assert {s.case for s in e.specs} == {11} and {s.dataset for s in e.specs} == {"synthetic"}
    # defaults made explicit, one experiment
    assert all(s.target == "vehicle" and s.forget and s.hierarchy for s in e.specs)
    assert len({s.experiment_key() for s in e.specs}) == 1
    assert len(e.notes) == 1 and "case 11" in e.notes[0]


def test_explicit_defaults_hash_like_implicit_ones():
    a = expand({})
    b = expand({"target": "vehicle", "hierarchy": "synthetic", "case": "11"})
    assert [s.hash() for s in a.specs] == [s.hash() for s in b.specs]


def test_comma_lists_make_a_grid_with_one_reference_per_experiment_and_seed():
    e = expand({"method": "ft,ga", "seed": "0,1", "case": "10,11", "epochs": "2"})
    assert len(e.specs) == 2 * (2 + 4)  # per case: 2 references + 2 methods x 2 seeds
    for case in (10, 11):
        block = [s for s in e.specs if s.case == case]
        assert methods(block)[:2] == ["retrained", "retrained"]  # references first
        assert sorted(s.seed for s in block if s.method == "retrained") == [0, 1]
    refs = [s for s in e.specs if s.method == "retrained"]
    # the reference carries the recipe's settings, not the unlearning ones
    from dataclasses import asdict

    from engine.methods.params import RetrainedParams

    assert all(s.epochs is None and s.lr is None and dict(s.params) == asdict(RetrainedParams())
               for s in refs)
    assert all(s.epochs == 2 for s in e.specs if s.method != "retrained")


def test_method_all_and_dedup():
    e = expand({"method": "all,ft"})
    assert methods(e.specs)[0] == "retrained"
    assert methods(e.specs).count("ft") == 1
    assert set(methods(e.specs)) == set(CATALOG.names())


def test_set_params_go_to_their_method_only():
    e = expand({"method": "ft,tarf"}, sets=["tarf.k=0.04", "retrained.epochs=2"])
    by = {s.method: s for s in e.specs}
    from dataclasses import asdict

    from engine.methods.params import FTParams

    # the user's values go to their method; every other param is written out at its default
    from engine.methods.params import resolve_params

    t0 = resolve_params("tarf", {}, "synthetic", None, None, "target-mismatch").t0
    assert by["tarf"].params["k"] == 0.04 and by["tarf"].params["t0"] == t0
    assert dict(by["ft"].params) == asdict(FTParams())
    assert by["retrained"].params["epochs"] == 2


def test_set_for_a_method_not_run_is_refused():
    # issue 11 #9: it used to warn and run FT anyway
    with pytest.raises(InvalidSpec, match=r"--set ga\.\*: method 'ga' is not among the methods run \(ft\)"):
        expand({"method": "ft"}, sets=["ga.lr=0.1"])


def test_method_names_are_case_insensitive():
    e = expand({"method": "Tarf,FT"}, sets=["TARF.k=0.04"])
    assert [s.method for s in e.specs] == ["retrained", "tarf", "ft"]
    assert next(s for s in e.specs if s.method == "tarf").params["k"] == 0.04
    assert {s.method for s in expand({"method": "ALL"}).specs} >= {"tarf", "tarf-i", "scrub"}


def test_seed_ranges():
    e = expand({"method": "ft", "seed": "0-2"})
    assert sorted({s.seed for s in e.specs}) == [0, 1, 2]
    assert sorted({s.seed for s in expand({"method": "ft", "seed": "0-1,5"}).specs}) == [0, 1, 5]
    with pytest.raises(InvalidSpec, match="--seed: range '2-0' is empty"):
        expand({"seed": "2-0"})


def test_recipe_epochs_is_a_spec_field_shared_by_the_reference():
    e = expand({"method": "ft", "recipe_epochs": "3"})
    assert {s.recipe.epochs for s in e.specs} == {3}
    assert len({s.experiment_key() for s in e.specs}) == 1
    assert e.specs[0].experiment_key() != expand({"method": "ft"}).specs[0].experiment_key()
    with pytest.raises(InvalidSpec, match="--recipe-epochs: expected an integer >= 1, got 0"):
        expand({"recipe_epochs": "0"})


def test_forget_plus_joins_one_request():
    e = expand({"case": "13", "forget": "car+truck,car", "method": "ft"})
    forgets = sorted({s.forget for s in e.specs})
    assert forgets == [("car",), ("car", "truck")]


def test_toml_grid(tmp_path):
    p = tmp_path / "g.toml"
    p.write_text('method = ["ft", "ga"]\nseed = [0, 1]\nepochs = 1\n'
                 '[set]\n"ga.lr" = [0.001, 0.01]\n')
    g = load_grid(p)
    e = expand({}, g)
    ga = [s for s in e.specs if s.method == "ga"]
    assert len(ga) == 4 and {s.params["lr"] for s in ga} == {0.001, 0.01}
    assert len([s for s in e.specs if s.method == "ft"]) == 2
    # command-line options win over the grid's
    e2 = expand({"seed": "5"}, g)
    assert {s.seed for s in e2.specs} == {5}


def test_toml_grid_errors(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("methd = ['ft']\n")
    with pytest.raises(UnknownName, match="grid key 'methd'.*method"):
        load_grid(p)
    p.write_text("method = [\n")
    with pytest.raises(InvalidSpec, match="not valid TOML"):
        load_grid(p)
    with pytest.raises(InvalidSpec, match="no such file"):
        load_grid(tmp_path / "missing.toml")


@pytest.mark.parametrize("opts, match", [
    ({"method": "nope"}, r"unknown method 'nope'; valid choices: retrained, ft, rl, ga"),
    ({"case": "14"}, r"case 14 is impractical.*--allow-impractical"),
    ({"case": "99"}, r"unknown case 99"),
    ({"dataset": "mnist"}, r"unknown dataset 'mnist'; valid choices: synthetic"),
    ({"arch": "resnet99"}, r"unknown architecture 'resnet99'; valid choices: smallcnn"),
    ({"seed": "one"}, r"--seed: expected an integer, got 'one'"),
    ({"lr": "fast"}, r"--lr: expected a number"),
    ({"target": "spaceship"}, r"'spaceship'; valid choices: vehicle"),
    ({"forget": "unicorn"}, r"'unicorn'; valid choices"),
    ({"device": "tpu"}, r"device must be"),
    ({"epochs": "0"}, r"epochs must be >= 1"),
])
def test_bad_values_name_value_and_choices(opts, match):
    with pytest.raises(TarfError, match=match):
        expand(opts)


def test_bad_set():
    with pytest.raises(UnknownName, match="unknown method 'tarff'"):
        expand({}, sets=["tarff.k=1"])
    with pytest.raises(InvalidSpec, match="unknown parameter 'kk' for method 'tarf'"):
        expand({}, sets=["tarf.kk=1"])
    with pytest.raises(InvalidSpec, match="method.param=value"):
        expand({}, sets=["novalue"])


def test_missing_cifar_says_where(tmp_path):
    with pytest.raises(DataMissing, match=str(tmp_path / "cifar-10-batches-py")):
        expand({"dataset": "cifar10", "data_root": str(tmp_path)})


def test_case_14_allowed():
    e = expand({"case": "14", "allow_impractical": True, "method": "ft"})
    assert all(s.allow_impractical for s in e.specs)


def test_arch_names_torch_free():
    assert "smallcnn" in arch_names() and "resnet18" in arch_names()


def test_reference_of():
    s = RunSpec(method="tarf", params={"k": 0.1}, epochs=3, lr=0.5, batch_size=64, seed=4)
    r = reference_of(s)
    assert (r.method, dict(r.params), r.epochs, r.lr, r.batch_size, r.seed) == \
        ("retrained", {}, None, None, 128, 4)
    assert r.experiment_key() == s.experiment_key()


def test_plan_default_is_a_chain_start():
    specs = expand({}).specs
    deps = plan(specs)
    assert deps[0] == set()  # Retrained first, alone
    assert deps[1] == {0}  # FT waits for the reference
    assert deps[2] == {0, 1} and deps[3] == {0, 1}  # first method run trains the original


def test_plan_lets_independent_seeds_run_side_by_side():
    specs = expand({"method": "ft,ga", "seed": "0,1"}).specs
    deps = plan(specs)
    idx = {(s.method, s.seed): i for i, s in enumerate(specs)}
    # the two references (different seeds, so different originals) do not wait for each other
    assert deps[idx["retrained", 0]] == set() and deps[idx["retrained", 1]] == set()
    # every method run waits for the reference of its own seed
    for m in ("ft", "ga"):
        for seed in (0, 1):
            assert idx["retrained", seed] in deps[idx[m, seed]]
    # ga waits for ft of the same seed (same uncached original), not of the other seed
    assert idx["ft", 0] in deps[idx["ga", 0]] and idx["ft", 1] not in deps[idx["ga", 0]]


def test_original_key_groups_by_model_level():
    a, b, c = RunSpec(case=10), RunSpec(case=11, method="ft"), RunSpec(case=12)
    assert original_key(a) == original_key(b)  # both output classes
    assert original_key(a) != original_key(c)  # case 12 outputs superclasses


def test_changed_default_changes_the_spec_hash(monkeypatch):
    """Params are written out at submission, so a finished run of an old default is not
    reused (skip-if-finished) once the default changes."""
    from engine.methods import params as P

    before = {s.method: s.hash() for s in expand({"method": "tarf"}).specs}
    info = P.CATALOG.get("tarf")
    monkeypatch.setitem(info.dataset_defaults, "synthetic", {"k": 123.0, "t1": 2})
    after = {s.method: s.hash() for s in expand({"method": "tarf"}).specs}
    assert before["tarf"] != after["tarf"] and before["retrained"] == after["retrained"]


def test_describe_is_short_and_names_only_what_differs():
    from tarf_tui.experiment import describe

    specs = {s.method: s for s in expand({"method": "tarf"}, sets=["tarf.k=0.04"]).specs}
    assert describe(specs["retrained"]) == "Retrained case 11 synthetic seed 0"
    assert describe(specs["tarf"]) == "TARF case 11 synthetic seed 0 k=0.04"
    (ft,) = [s for s in expand({"method": "ft", "epochs": "3", "recipe_epochs": "2"}).specs
             if s.method == "ft"]
    assert describe(ft) == "FT case 11 synthetic seed 0 epochs 3 recipe-epochs 2"
