"""Conformance over the whole method registry (timm / scikit-learn habit): every catalogue name
has an implementation and vice versa, defaults construct, Params round-trip through JSON, every
constrained field refuses a bad value, and one CPU epoch on a small synthetic task gives a finite
loss and finite metrics. Nothing here names a method: a new one (its Params entry + one file) is
covered as it lands (tests/test_method_plugin.py proves it with a throwaway method)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from engine.errors import InvalidSpec
from engine.methods.base import EpochResult
from engine.methods.impl import METHODS
from engine.methods.params import CATALOG, REFERENCE, field_meta, param_fields, resolve_params
from engine.train import accuracy

from method_fixtures import train_original

NAMES = METHODS.names()
# a few fields set small so one epoch stays quick on CPU (an unknown method runs its defaults)
FAST = {"iu": {"n_fisher": 64}, REFERENCE: {"epochs": 1}}


def test_catalogue_and_implementations_match():
    assert sorted(CATALOG.names()) == sorted(METHODS.names())
    assert REFERENCE in NAMES


@pytest.mark.parametrize("name", NAMES)
def test_every_method_has_epochs_and_lr(name):
    got = {f["name"]: f for f in param_fields(name)}
    assert "epochs" in got and "lr" in got
    assert got["lr"]["min"] == 0 and got["epochs"]["min"] == (0 if name == REFERENCE else 1)


@pytest.mark.parametrize("name", NAMES)
def test_defaults_construct_and_round_trip(name):
    cls = CATALOG.get(name).params
    p = cls()
    d = json.loads(json.dumps(dataclasses.asdict(p)))
    assert cls(**d) == p
    assert resolve_params(name) == p  # no dataset: exactly the dataclass defaults
    assert METHODS.get(name).info.name == name


@pytest.mark.parametrize("name", NAMES)
def test_dataset_defaults_resolve(name):
    """Each dataset (and dataset/category) default lands in the resolved Params, on top of the
    dataclass defaults; user overrides win over it."""
    info = CATALOG.get(name)
    base = dataclasses.asdict(info.params())
    for key, values in info.dataset_defaults.items():
        dataset, _, category = key.partition("/")
        want = {**base, **info.dataset_defaults.get(dataset, {}), **values}
        got = resolve_params(name, dataset=dataset, category=category or None)
        assert dataclasses.asdict(got) == want, key
        field, v = next(iter(values.items()))
        other = v * 2 if isinstance(v, (int, float)) and not isinstance(v, bool) else v
        assert getattr(resolve_params(name, {field: other}, dataset=dataset, category=category or None),
                       field) == other


CONSTRAINED = [(n, f.name) for n in NAMES for f in dataclasses.fields(CATALOG.get(n).params)
               if field_meta(CATALOG.get(n).params, f.name)]


@pytest.mark.parametrize("method,field", CONSTRAINED, ids=[f"{m}-{f}" for m, f in CONSTRAINED])
def test_constrained_fields_refuse_bad_values(method, field):
    """Every field with choices / a minimum (its metadata): each valid edge is accepted, a value
    just outside is refused with a one-line InvalidSpec naming the field."""
    cls = CATALOG.get(method).params
    meta = field_meta(cls, field)
    kind = type(getattr(cls(), field))
    if "choices" in meta:
        for ok in meta["choices"]:
            assert getattr(resolve_params(method, {field: ok}), field) == ok
        bad = "not-one-of-them" if kind is str else max(meta["choices"]) + 1
        with pytest.raises(InvalidSpec, match=f"{method}.{field} must be one of"):
            resolve_params(method, {field: bad})
    if "min" in meta:
        lo = meta["min"]
        assert getattr(resolve_params(method, {field: kind(lo)}), field) == lo
        bad = kind(lo - 1) if kind is int else lo - 0.5
        with pytest.raises(InvalidSpec, match=f"{method}.{field} must be >= "):
            resolve_params(method, {field: bad})


@pytest.fixture(scope="module")
def trained():
    return train_original(case=11, per_class=60, epochs=3, width=16)


def _finite_extras(v) -> bool:
    if isinstance(v, float):
        return math.isfinite(v)
    if isinstance(v, (list, tuple)):
        return all(x is None or _finite_extras(x) for x in v)
    if isinstance(v, dict):
        return all(_finite_extras(x) for x in v.values())
    return True


@pytest.mark.parametrize("name", NAMES)
def test_one_epoch_is_finite(name, trained):
    ctx = trained.context(seed=0, retrained=(name == REFERENCE))
    params = resolve_params(name, FAST.get(name, {}))
    method = METHODS.get(name)(ctx, params)
    method.setup()
    res = method.epoch(0)
    assert isinstance(res, EpochResult)
    assert math.isfinite(res.loss)
    json.dumps(res.extras)  # JSON-able
    assert _finite_extras(res.extras)
    p = trained.task.partition
    for idx in (p.d_f, p.d_r):
        a = accuracy(ctx.model, ctx.data, "train", torch.as_tensor(idx))
        assert 0.0 <= a <= 100.0
    assert all(torch.isfinite(q).all() for q in ctx.model.parameters())
    assert method.epochs() >= 1
