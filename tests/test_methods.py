"""Conformance over the whole method registry (timm / scikit-learn habit): every catalogue name
has an implementation and vice versa, defaults construct, Params round-trip through JSON, and one
CPU epoch on a small synthetic task gives a finite loss and finite metrics."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from engine.methods import impl  # noqa: F401  (registers every implementation)
from engine.methods.base import METHODS, EpochResult
from engine.methods.params import CATALOG, resolve_params
from engine.train import accuracy

from method_fixtures import train_original

NAMES = METHODS.names()


def test_catalogue_and_implementations_match():
    assert sorted(CATALOG.names()) == sorted(METHODS.names())
    assert len(NAMES) == 11


@pytest.mark.parametrize("name", NAMES)
def test_defaults_construct_and_round_trip(name):
    cls = CATALOG.get(name).params
    p = cls()
    d = json.loads(json.dumps(dataclasses.asdict(p)))
    assert cls(**d) == p
    assert resolve_params(name) == p or CATALOG.get(name).dataset_defaults  # defaults resolve
    assert METHODS.get(name).info.name == name


@pytest.mark.parametrize("method,field,bad", [("tarf", "rank", "most"), ("tarf-i", "rank", "up"),
                                              ("rl", "mode", "random"), ("salun", "mode", "")])
def test_string_params_with_fixed_values_are_checked(method, field, bad):
    from engine.errors import InvalidSpec
    from engine.methods.params import CHOICES

    for ok in CHOICES[field]:
        assert getattr(resolve_params(method, {field: ok}), field) == ok
    with pytest.raises(InvalidSpec, match=f"{method}.{field} must be one of"):
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
    ctx = trained.context(seed=0, retrained=(name == "retrained"))
    overrides = {"n_fisher": 64} if name == "iu" else {}
    if name == "retrained":
        overrides = {"epochs": 1}
    params = resolve_params(name, overrides)
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
