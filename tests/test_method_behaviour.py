"""What each method is for, checked on the embedded dataset (case 11: forget class ``car``,
target superclass ``vehicle``, hidden units truck + bus; the model outputs classes).

One original model (a narrow smallcnn, trained briefly) is shared by the module; every test
runs a method for a couple of epochs on it and checks the property the method exists for."""

from __future__ import annotations

import time

import pytest
import torch

from engine.methods import impl  # noqa: F401
from engine.methods.base import METHODS
from engine.methods.common import kl_teacher_student, per_sample_ce
from engine.methods.params import resolve_params
from engine.train import accuracy, predict

from method_fixtures import train_original


@pytest.fixture(scope="module")
def orig():
    t = time.perf_counter()
    tr = train_original(case=11, per_class=100, epochs=8, width=16, batch_size=32, lr=0.05)
    tr.seconds = time.perf_counter() - t
    return tr


def _run(tr, name, epochs, total=None, **over):
    """Run ``epochs`` epochs of a method whose schedule spans ``total`` (default: epochs)."""
    ctx = tr.context(seed=0, batch_size=64)
    m = METHODS.get(name)(ctx, resolve_params(name, over, epochs=total or epochs))
    m.setup()
    rows = [m.epoch(e) for e in range(epochs)]
    return ctx, m, rows


def _idx(a):
    return torch.as_tensor(a, dtype=torch.long)


def _ce(model, data, idx):
    return float(per_sample_ce(predict(model, data, "train", idx), data.y_train[idx]).mean())


def test_original_model_is_usable(orig):
    p = orig.task.partition
    m = orig.model()
    # car is its superclass's middle class, confusable with both siblings (engine/datasets.py
    # SynConfig): far above chance (8 %) on it, as on the classes of D_r
    assert accuracy(m, orig.data, "train", _idx(p.d_f)) > 50
    assert accuracy(m, orig.data, "train", _idx(p.d_r)) > 70


def test_ga_raises_loss_on_forget_data(orig):
    p = orig.task.partition
    before = _ce(orig.model(), orig.data, _idx(p.d_f))
    ctx, _, rows = _run(orig, "ga", 5, lr=1e-3)
    after = _ce(ctx.model, ctx.data, _idx(p.d_f))
    assert after > before + 0.3, (before, after)
    assert rows[-1].loss < 0  # the objective is -CE


def test_ft_keeps_retain_accuracy(orig):
    p = orig.task.partition
    ra0 = accuracy(orig.model(), orig.data, "train", _idx(p.d_r))
    ctx, _, _ = _run(orig, "ft", 2)
    assert accuracy(ctx.model, ctx.data, "train", _idx(p.d_r)) >= ra0 - 3.0


@pytest.mark.parametrize("name", ["rl", "salun"])
def test_random_labels_change_forget_predictions(orig, name):
    p = orig.task.partition
    d_f = _idx(p.d_f)
    pred0 = predict(orig.model(), orig.data, "train", d_f).argmax(1)
    ctx, _, _ = _run(orig, name, 3, lr=0.03)
    pred1 = predict(ctx.model, ctx.data, "train", d_f).argmax(1)
    changed = float((pred0 != pred1).float().mean())
    assert changed > 0.2, changed


def test_salun_leaves_masked_out_weights_at_original_values(orig):
    ctx, m, _ = _run(orig, "salun", 1)
    moved_in = 0
    n_out = 0
    for name, q in ctx.model.named_parameters():
        mask = m.mask[name]
        o = orig.state[name]
        assert torch.equal(q.detach()[~mask], o[~mask]), name
        n_out += int((~mask).sum())
        moved_in += int((q.detach()[mask] != o[mask]).sum())
    assert n_out > 0 and moved_in > 0
    total = sum(int(v.numel()) for v in m.mask.values())
    assert abs(n_out / total - 0.5) < 0.01


def test_scrub_student_departs_from_teacher_on_forget_data_more(orig):
    p = orig.task.partition
    ctx, m, _ = _run(orig, "scrub", 2, lr=0.03)
    teacher = ctx.original()

    def kl(idx):
        x = ctx.data.images(_idx(idx))
        ctx.model.eval()
        with torch.no_grad():
            return float(kl_teacher_student(ctx.model(x), teacher(x), 1.0))

    k_f, k_un = kl(p.d_f), kl(p.d_un)
    assert k_f > 2 * k_un, (k_f, k_un)


def test_tarf_identification_ranks_by_accuracy_drop(orig):
    """The rule itself, on a scripted accuracy signal: the n units whose accuracy dropped most
    are excluded, absent units are not ranked, tau is 0 exactly on their D_un samples."""
    p = orig.task.partition
    ctx = orig.context()
    m = METHODS.get("tarf")(ctx, resolve_params("tarf"))
    m.setup()
    drop = torch.tensor([0.0, 0.1, 0.9, 0.0, 0.3, 0.0, 0.0, 0.8, 0.0, 0.0, 0.0, 0.2])
    m.acc0 = torch.ones(12)
    m.acc0[0] = float("nan")  # car: all in D_f
    ctx.unit_accuracy = lambda idx, model=None: m.acc0 - drop
    ex = m.identify()
    assert ex["excluded_units"] == [2, 7]  # n = 2 hidden units in case 11
    assert abs(ex["id_margin"] - 0.5) < 1e-6
    units = torch.as_tensor(p.units_train)[_idx(p.d_un)]
    tau = m.tau[_idx(p.d_un)]
    assert torch.equal(tau == 0, (units == 2) | (units == 7))


def test_tarf_rank_change_also_finds_a_unit_whose_accuracy_rose(orig):
    """``rank="change"``: a class that absorbs the forgetting data gains accuracy in Phase I;
    ranking by |accuracy change| finds it where ranking by drop cannot."""
    p = orig.task.partition
    ctx = orig.context()
    drop = torch.tensor([0.0, -0.6, 0.9, 0.0, 0.3, 0.0, 0.0, 0.1, 0.0, 0.0, 0.0, 0.2])
    picked = {}
    for rank in ("drop", "change"):
        m = METHODS.get("tarf")(ctx, resolve_params("tarf", {"rank": rank}))
        m.setup()
        m.acc0 = torch.full((12,), 0.5)
        m.acc0[0] = float("nan")
        ctx.unit_accuracy = lambda idx, model=None, m=m: m.acc0 - drop
        picked[rank] = m.identify()
    assert picked["drop"]["excluded_units"] == [2, 4]
    assert picked["change"]["excluded_units"] == [1, 2]  # truck rose by 0.6: |change| ranks it 2nd
    assert abs(picked["change"]["id_margin"] - 0.3) < 1e-6
    units = torch.as_tensor(p.units_train)[_idx(p.d_un)]
    assert torch.equal(m.tau[_idx(p.d_un)] == 0, (units == 1) | (units == 2))


@pytest.fixture(scope="module")
def orig13():
    return train_original(case=13, per_class=100, epochs=8, width=16, batch_size=32, lr=0.05)


def test_tarf_identifies_hidden_units_in_data_mismatch(orig13):
    """Case 13 (forget class car, target and model at superclass level): annealed GA on car
    takes truck and bus (the rest of 'vehicle') down with it, so they rank first.

    (tests/test_identification.py checks both tasks with the product's defaults.)"""
    p = orig13.task.partition
    assert p.hidden_units == ("truck", "bus")
    hidden = sorted(p.unit_names.index(u) for u in p.hidden_units)
    # k is far above the paper's CIFAR value: this model is so confident on car that the CE
    # gradient nearly vanishes until the ascent tips over (docs/results.md, TARF tuning)
    ctx, m, rows = _run(orig13, "tarf", 3, total=10, k=30.0, t1=2)
    assert [r.phase for r in rows] == ["I", "I", "II"]
    ex = rows[2].extras
    assert ex["excluded_units"] == hidden, ex["acc_drop"]
    assert ex["id_margin"] > 0.05  # a decision, not a tie
    assert ex["kept"] == len(p.d_un) - len(p.d_uf)
    assert torch.equal(m.tau[_idx(p.d_uf)], torch.zeros(len(p.d_uf)))


def test_tarf_i_excludes_mostly_hidden_samples(orig13):
    p = orig13.task.partition
    ctx, m, rows = _run(orig13, "tarf-i", 3, total=10, k=30.0, t1=2)
    ex = rows[2].extras
    assert ex["exclude_count"] == len(p.d_uf)  # 2 hidden units of the 11 present, equal sizes
    assert ex["beta"] is not None and ex["beta"] > 0
    hidden = [p.unit_names.index(u) for u in p.hidden_units]
    hit = sum(ex["excluded_per_unit"][u] for u in hidden) / ex["exclude_count"]
    assert hit > 0.6, ex["excluded_per_unit"]
