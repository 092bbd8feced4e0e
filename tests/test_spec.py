import json

import pytest

from engine.errors import InvalidSpec, UnknownName
from engine.spec import Recipe, RunSpec, parse_set
from engine.task import check, resolve


def test_round_trip_and_hash():
    s = RunSpec(case=13, method="ga", params={"lr": 0.001}, forget=("car",), seed=3,
                recipe=Recipe(epochs=4))
    t = RunSpec.from_json(s.to_json())
    assert t == s and t.hash() == s.hash() and hash(t) == hash(s)
    assert isinstance(t.recipe, Recipe) and t.forget == ("car",)
    assert s.replace(device="cpu").hash() == s.hash()  # where it runs is not identity
    assert s.replace(seed=4).hash() != s.hash()
    assert s.replace(seed=4, method="ft").experiment_key() == s.experiment_key()
    assert s.replace(case=11).experiment_key() != s.experiment_key()
    with pytest.raises(TypeError):
        s.params["lr"] = 1  # frozen


@pytest.mark.parametrize("bad,msg", [
    ({"methd": "ft"}, "unknown spec keys: methd"),
    ({"case": "11"}, "wrong type"),
    ({"case": 28}, "1..27"),
    ({"subsets": 1}, "subsets"),
    ({"epochs": 0}, "epochs"),
    ({"lr": -1.0}, "lr"),
    ({"seed": 1.5}, "wrong type"),
    ({"device": "tpu"}, "device"),
    ({"recipe": {"epochz": 3}}, "unknown recipe keys"),
    ({"params": {"k": [1, 2]}}, "number, string or bool"),
    ({"allow_impractical": "yes"}, "wrong type"),
])
def test_rejects_bad_specs(bad, msg):
    with pytest.raises(InvalidSpec, match=msg):
        RunSpec.from_dict(bad)


def test_not_json():
    with pytest.raises(InvalidSpec, match="not valid JSON"):
        RunSpec.from_json("{")
    with pytest.raises(InvalidSpec, match="JSON object"):
        RunSpec.from_dict([1])


def test_parse_set():
    assert parse_set(["tarf.k=0.05", "ga.lr=1e-3", "rl.mode=mixed", "ft.clip_grad=true"]) == {
        "tarf": {"k": 0.05}, "ga": {"lr": 0.001}, "rl": {"mode": "mixed"}, "ft": {"clip_grad": True}}
    with pytest.raises(InvalidSpec):
        parse_set(["tarf.k"])


def test_resolve_fills_defaults_and_params():
    t = resolve(RunSpec(method="tarf", params={"k": 0.05}))
    assert t.spec.target == "vehicle" and t.spec.forget == ("car",)
    from engine.methods.params import TARF_K, TARFParams

    # the user's k wins; the rest are the embedded dataset's tuned defaults, else the Params'
    assert t.spec.params["k"] == 0.05
    assert t.spec.params["t1"] == TARF_K.get("synthetic", {}).get("t1", TARFParams.t1)
    assert t.spec.params["t0"] == TARFParams.t0
    assert json.loads(t.spec.to_json())["hierarchy"] == "synthetic"
    assert resolve(RunSpec(method="tarf")).params.k == TARF_K["synthetic"]["k"]
    assert resolve(RunSpec(method="tarf", case=12)).params.k == TARF_K["synthetic/model-mismatch"]["k"]


def test_param_validation():
    with pytest.raises(InvalidSpec, match="unknown parameter 'kk'.*valid: epochs"):
        check(RunSpec(method="tarf", params={"kk": 1}))
    with pytest.raises(InvalidSpec, match="tarf.k must be float"):
        check(RunSpec(method="tarf", params={"k": "x"}))
    with pytest.raises(UnknownName, match="unknown method 'tarff'.*tarf-i"):
        check(RunSpec(method="tarff"))
    # CIFAR defaults per dataset and category (Appendix F.1)
    from engine.methods.params import resolve_params
    assert resolve_params("tarf", dataset="cifar10", category="model-mismatch").k == 0.04
    assert resolve_params("tarf", dataset="cifar100", category="target-mismatch").k == 0.05
    assert resolve_params("tarf", dataset="cifar100", category="model-mismatch").k == 0.5
