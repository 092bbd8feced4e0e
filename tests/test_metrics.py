"""Metrics on hand-built models whose predictions are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from engine.metrics import (MIA_VARIANTS, DevicePartition, accuracies_np, evaluate, gap, mia,
                            mia_features, svc_mia)
from engine.train import DeviceData

C = 4  # classes


class PixelModel(nn.Module):
    """Predicts the class written in pixel (0, 0) of channel 0; the logit of that class is the
    value written in channel 1 (so the softmax confidence is controlled per image)."""

    def forward(self, x):
        cls = (x[:, 0, 0, 0] * 255).round().long()
        strength = x[:, 1, 0, 0] * 255 / 10.0
        return nn.functional.one_hot(cls, C).float() * strength[:, None]


def images(pred: list[int], strength: list[int] | None = None) -> np.ndarray:
    x = np.zeros((len(pred), 2, 2, 3), dtype=np.uint8)
    x[:, 0, 0, 0] = pred
    x[:, 0, 0, 1] = strength if strength is not None else 100
    return x


def t(a):
    return torch.as_tensor(a, dtype=torch.long)


def make_part(**sets) -> DevicePartition:
    names = ("d_t", "d_f", "d_un", "d_uf", "d_r", "test_t", "test_r")
    return DevicePartition(*(t(sets.get(n, [])) for n in names), units=t(sets.get("units", [])),
                           n_units=0, n_hidden_units=0)


def test_evaluate_gives_exact_accuracies():
    # training set of 10: labels and predictions
    y_tr = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
    p_tr = [0, 1, 0, 0, 1, 2, 2, 2, 3, 0]
    y_te = [0, 1, 2, 3, 3]
    p_te = [0, 0, 2, 3, 1]
    data = DeviceData(images(p_tr), np.array(y_tr), images(p_te), np.array(y_te), torch.device("cpu"))
    # target = class 0 (D_t = 0..3), forget = {0, 1} (D_f), D_uf = {2, 3}; D_r = 4..9
    part = make_part(d_t=[0, 1, 2, 3], d_f=[0, 1], d_un=list(range(2, 10)), d_uf=[2, 3],
                     d_r=list(range(4, 10)), test_t=[0], test_r=[1, 2, 3, 4])
    m = evaluate(PixelModel(), data, part)
    assert m["ua"] == pytest.approx(75.0)  # 3 of 4 target samples right
    assert m["acc_f"] == pytest.approx(50.0)
    assert m["acc_uf"] == pytest.approx(100.0)
    assert m["ra"] == pytest.approx(400 / 6)  # 4 of 6
    assert m["ta"] == pytest.approx(50.0)  # test 1..4: wrong, right, right, wrong
    assert m["acc_test_t"] == pytest.approx(100.0)
    assert "mia" not in m
    # the numpy path on per-sample correctness agrees
    from types import SimpleNamespace
    npart = SimpleNamespace(**{k: getattr(part, k).numpy() for k in
                               ("d_t", "d_f", "d_un", "d_uf", "d_r", "test_t", "test_r")})
    ct = np.array(p_tr) == np.array(y_tr)
    cte = np.array(p_te) == np.array(y_te)
    assert accuracies_np(ct, cte, npart) == pytest.approx(m)


def test_empty_uf_is_nan():
    data = DeviceData(images([0, 1]), np.array([0, 1]), images([0]), np.array([0]), torch.device("cpu"))
    part = make_part(d_t=[0], d_f=[0], d_un=[1], d_r=[1], test_r=[0])
    m = evaluate(PixelModel(), data, part)
    assert math.isnan(m["acc_uf"]) and math.isnan(m["acc_test_t"])
    assert m["ua"] == 100.0 and m["ra"] == 100.0


def _mia_case(target_strengths: list[int]):
    """Members (first |test_r| of D_r) are confident (strength 100 -> p ~ 1), non-members are
    not (strength 0 -> p = 1/C); extra D_r samples beyond |test_r| are unconfident and must be
    ignored; D_t gets the given strengths. Labels all 0, predictions all 0."""
    n_te = 20
    members = [100] * n_te + [0] * 10  # the last 10 are not among the first |test_r|
    tr_strength = members + target_strengths
    n_tr = len(tr_strength)
    data = DeviceData(images([0] * n_tr, tr_strength), np.zeros(n_tr, dtype=np.int64),
                      images([0] * n_te, [0] * n_te), np.zeros(n_te, dtype=np.int64),
                      torch.device("cpu"))
    d_r = list(range(len(members)))
    d_t = list(range(len(members), n_tr))
    part = make_part(d_t=d_t, d_f=d_t, d_r=d_r, test_r=list(range(n_te)))
    return data, part


def test_mia_counts_targets_predicted_non_member():
    data, part = _mia_case([100] * 6 + [0] * 2)  # 6 confident (member-like), 2 not
    assert mia(PixelModel(), data, part) == pytest.approx(25.0)
    assert evaluate(PixelModel(), data, part, mia_seed=0)["mia"] == pytest.approx(25.0)
    data, part = _mia_case([0] * 5)
    assert mia(PixelModel(), data, part) == pytest.approx(100.0)
    data, part = _mia_case([100] * 5)
    assert mia(PixelModel(), data, part) == pytest.approx(0.0)


def test_mia_variants_on_the_constructed_case():
    """Confident members against p = 1/C non-members: every attack whose feature sees the
    confidence gives the confidence attack's 25 %. Correctness carries no signal here (every
    prediction is right), so its SVC answers one constant for all targets: 0 or 100."""
    data, part = _mia_case([100] * 6 + [0] * 2)
    m = evaluate(PixelModel(), data, part, mia_seed=0, variants=True)
    v = m["mia_variants"]
    assert set(v) == set(MIA_VARIANTS)
    assert v["confidence"] == m["mia"] == pytest.approx(25.0)
    for k in ("entropy", "m_entropy", "prob"):
        assert v[k] == pytest.approx(25.0), k
    assert v["correctness"] in (0.0, 100.0)


def test_mia_features_formulas():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    y = torch.tensor([0, 0])
    f = mia_features(p, y)
    assert f["correctness"][:, 0].tolist() == [1.0, 0.0]
    assert f["confidence"][:, 0].tolist() == pytest.approx([0.7, 0.1])
    ent = -(p * p.log()).sum(1)
    assert f["entropy"][:, 0].tolist() == pytest.approx(ent.tolist())
    # Song & Mittal: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i)
    want = [-(0.3 * math.log(0.7) + 0.2 * math.log(0.8) + 0.1 * math.log(0.9)),
            -(0.9 * math.log(0.1) + 0.1 * math.log(0.9) + 0.8 * math.log(0.2))]
    assert f["m_entropy"][:, 0].tolist() == pytest.approx(want)
    assert f["prob"].shape == (2, 3)


def test_svc_mia_separable_features():
    rng = np.random.default_rng(0)
    members = rng.uniform(0.9, 1.0, 200)
    non = rng.uniform(0.0, 0.4, 200)
    targets = np.concatenate([rng.uniform(0.0, 0.3, 30), rng.uniform(0.95, 1.0, 10)])
    assert svc_mia(members, non, targets) == pytest.approx(75.0)


def test_mia_nan_without_non_members():
    data, part = _mia_case([0] * 3)
    empty = DevicePartition(part.d_t, part.d_f, part.d_un, part.d_uf, part.d_r, part.test_t,
                            t([]), part.units, 0, 0)
    assert math.isnan(mia(PixelModel(), data, empty))


def test_gap_arithmetic():
    m = {"ua": 10.0, "ra": 90.0, "ta": 80.0, "mia": 50.0, "acc_f": 3.0}
    ref = {"ua": 0.0, "ra": 100.0, "ta": 90.5, "mia": 100.0, "acc_f": 99.0}
    assert gap(m, ref) == pytest.approx((10 + 10 + 10.5 + 50) / 4)
    assert gap(m, m) == 0.0
    # MIA switched off on one side: the gap is over the three accuracies
    assert gap({**m, "mia": float("nan")}, ref) == pytest.approx((10 + 10 + 10.5) / 3)
    assert gap({k: v for k, v in m.items() if k != "mia"}, ref) == pytest.approx(30.5 / 3)
    assert math.isnan(gap({}, ref))
    # unrounded: 1/3 differences are not rounded away
    assert gap({"ua": 1 / 3, "ra": 0, "ta": 0, "mia": 0}, {"ua": 0, "ra": 0, "ta": 0, "mia": 0}) == pytest.approx(1 / 12)
