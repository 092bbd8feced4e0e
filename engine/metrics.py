"""UA, RA, TA, MIA and Gap (``shared/reference/methods.md`` section 2), all in percent.

One inference pass over the training set and one over the test set serve every accuracy: the
per-sample "correct" vector is indexed with the partition's index tensors, which live on the
device once (``DevicePartition``). MIA reuses the same softmax outputs when asked in the same
call (``evaluate(..., mia_seed=...)``).

- ua: accuracy on D_t (labels at L_M); ra: on D_r; ta: on test_r;
- acc_f: on D_f; acc_uf: on D_uf (NaN when empty); acc_test_t: on test_t;
- mia: MIA-efficacy, confidence based, as in the baselines' ``SVC_MIA``: feature = softmax
  probability of the true label (eval mode, no augmentation); an RBF ``SVC(C=3, gamma="auto")``
  fit on members = the first |test_r| samples of D_r (label 1) and non-members = test_r
  (label 0); MIA = percent of D_t predicted non-member.
- gap: mean |metric - reference| over ua, ra, ta, mia, from unrounded values.
- mia_variants (final evaluation only): the other SVC attacks of the baselines' ``SVC_MIA``
  on the same members / non-members / targets, each with its own feature: ``correctness``
  (1 if the prediction is right), ``confidence`` (the one above, = ``mia``), ``entropy`` of the
  softmax, ``m_entropy`` (Song & Mittal's modified entropy, which uses the label) and ``prob``
  (the whole softmax vector). The baselines' ``m_entropy`` indexes ``p[:, labels]`` (columns of
  every row) and takes ``log p`` where ``log(1 - p)`` is meant; we compute the published
  formula -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import torch
from torch import nn

from .cases import Partition
from .store import MIA_VARIANTS  # the attacks' names, torch-free (the exports read them too)
from .train import DeviceData, predict

ACC_KEYS = ("ua", "ra", "ta", "acc_f", "acc_uf", "acc_test_t")
GAP_KEYS = ("ua", "ra", "ta", "mia")
GAP3_KEYS = ("ua", "ra", "ta")  # Gap3: the Gap without MIA (bench tables, tuning score)

# which index set (and split) each accuracy is measured on
_SETS = {"ua": ("train", "d_t"), "ra": ("train", "d_r"), "ta": ("test", "test_r"),
         "acc_f": ("train", "d_f"), "acc_uf": ("train", "d_uf"), "acc_test_t": ("test", "test_t")}


@dataclass(frozen=True, eq=False)
class DevicePartition:
    """A ``Partition``'s index sets as long tensors on the device (built once per run)."""

    d_t: torch.Tensor
    d_f: torch.Tensor
    d_un: torch.Tensor
    d_uf: torch.Tensor
    d_r: torch.Tensor
    test_t: torch.Tensor
    test_r: torch.Tensor
    units: torch.Tensor  # unit id of every training sample
    n_units: int
    n_hidden_units: int

    @classmethod
    def from_partition(cls, part: Partition, device: torch.device | str) -> "DevicePartition":
        def t(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, dtype=np.int64), device=device)

        return cls(t(part.d_t), t(part.d_f), t(part.d_un), t(part.d_uf), t(part.d_r),
                   t(part.test_t), t(part.test_r), t(part.units_train), len(part.unit_names),
                   int(part.n_hidden_units))

    @property
    def mia_members(self) -> torch.Tensor:
        """The first |test_r| samples of D_r (the shadow members of the MIA)."""
        return self.d_r[: len(self.test_r)]


def as_device_partition(part: Partition | DevicePartition, device: torch.device) -> DevicePartition:
    return part if isinstance(part, DevicePartition) else DevicePartition.from_partition(part, device)


def accuracies(p_train: torch.Tensor, p_test: torch.Tensor, data: DeviceData,
               part: DevicePartition) -> dict[str, float]:
    """The six accuracies from softmax outputs of the whole training and test sets."""
    correct = {"train": (p_train.argmax(1) == data.y_train).float(),
               "test": (p_test.argmax(1) == data.y_test).float()}
    nan = torch.tensor(float("nan"), device=data.device)
    vals = []
    for key in ACC_KEYS:
        split, name = _SETS[key]
        idx = getattr(part, name)
        vals.append(correct[split][idx].mean() * 100.0 if len(idx) else nan)
    return dict(zip(ACC_KEYS, torch.stack(vals).tolist()))  # one device -> host copy


def true_label_conf(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return p.gather(1, y[:, None])[:, 0]


_LOG_EPS = 1e-30  # as the baselines' code: log of a zero probability is log(1e-30)


def _safe_log(p: torch.Tensor) -> torch.Tensor:
    return torch.log(p.clamp(min=_LOG_EPS))


def mia_features(p: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample attack features of the baselines' ``SVC_MIA``, each [n, d] float64."""
    p = p.double()
    conf = true_label_conf(p, y)
    onehot = torch.nn.functional.one_hot(y, p.shape[1]).bool()
    m_ent = -((1 - conf) * _safe_log(conf)
              + torch.where(onehot, torch.zeros_like(p), p * _safe_log(1 - p)).sum(1))
    return {"correctness": (p.argmax(1) == y).double()[:, None], "confidence": conf[:, None],
            "entropy": -(p * _safe_log(p)).sum(1, keepdim=True), "m_entropy": m_ent[:, None],
            "prob": p}


def mia_variants(p_train: torch.Tensor, p_test: torch.Tensor, data: DeviceData,
                 part: DevicePartition, seed: int = 0) -> dict[str, float]:
    """Every SVC attack of ``MIA_VARIANTS`` (percent of D_t predicted non-member)."""
    members, non_members, targets = part.mia_members, part.test_r, part.d_t
    if len(members) == 0 or len(non_members) == 0 or len(targets) == 0:
        return {k: float("nan") for k in MIA_VARIANTS}
    f_tr = mia_features(p_train, data.y_train)
    f_te = mia_features(p_test, data.y_test)
    return {k: svc_mia(f_tr[k][members].cpu().numpy(), f_te[k][non_members].cpu().numpy(),
                       f_tr[k][targets].cpu().numpy(), seed) for k in MIA_VARIANTS}


def mia_from_probs(p_train: torch.Tensor, p_test: torch.Tensor, data: DeviceData,
                   part: DevicePartition, seed: int = 0) -> float:
    """MIA-efficacy (percent of D_t predicted non-member) from precomputed softmax outputs."""
    members, non_members, targets = part.mia_members, part.test_r, part.d_t
    if len(members) == 0 or len(non_members) == 0 or len(targets) == 0:
        return float("nan")
    conf_tr = true_label_conf(p_train, data.y_train)
    conf_te = true_label_conf(p_test, data.y_test)
    x_in = conf_tr[members].double().cpu().numpy()
    x_out = conf_te[non_members].double().cpu().numpy()
    x_t = conf_tr[targets].double().cpu().numpy()
    return svc_mia(x_in, x_out, x_t, seed)


def svc_mia(members: np.ndarray, non_members: np.ndarray, targets: np.ndarray, seed: int = 0) -> float:
    """Fit SVC(C=3, gamma="auto") on features ([n] or [n, d]) of members (1) and non-members
    (0); return the percent of ``targets`` predicted non-member. The SVC itself is deterministic
    (``seed`` only feeds ``random_state``, which it uses for probability estimates we do not ask
    for)."""
    from sklearn.svm import SVC  # lazily: the import costs about a second

    members, non_members = np.asarray(members), np.asarray(non_members)
    d = 1 if members.ndim == 1 else members.shape[1]
    x = np.concatenate([members, non_members]).reshape(-1, d)
    y = np.concatenate([np.ones(len(members)), np.zeros(len(non_members))])
    if len(np.unique(y)) < 2:
        return float("nan")
    clf = SVC(C=3, gamma="auto", kernel="rbf", random_state=seed)
    clf.fit(x, y)
    pred = clf.predict(np.asarray(targets, dtype=np.float64).reshape(-1, d))
    return float(100.0 * (1.0 - pred.mean()))


def evaluate(model: nn.Module, data: DeviceData, part: Partition | DevicePartition,
             mia_seed: int | None = None, variants: bool = False) -> dict[str, float]:
    """ua, ra, ta, acc_f, acc_uf, acc_test_t (percent) from one pass over each split; with
    ``mia_seed`` also ``mia`` from the same outputs, and with ``variants`` also
    ``mia_variants`` (a dict, ``confidence`` equal to ``mia``)."""
    part = as_device_partition(part, data.device)
    p_train = predict(model, data, "train")
    p_test = predict(model, data, "test")
    out = accuracies(p_train, p_test, data, part)
    if mia_seed is not None and variants:
        out["mia_variants"] = mia_variants(p_train, p_test, data, part, mia_seed)
        out["mia"] = out["mia_variants"]["confidence"]
    elif mia_seed is not None:
        out["mia"] = mia_from_probs(p_train, p_test, data, part, mia_seed)
    return out


def mia(model: nn.Module, data: DeviceData, part: Partition | DevicePartition, seed: int = 0) -> float:
    """MIA-efficacy of ``model`` (percent of D_t predicted non-member)."""
    part = as_device_partition(part, data.device)
    if len(part.mia_members) == 0 or len(part.test_r) == 0 or len(part.d_t) == 0:
        return float("nan")
    idx_tr = torch.cat([part.mia_members, part.d_t])
    p_tr_sub = predict(model, data, "train", idx_tr)
    p_te_sub = predict(model, data, "test", part.test_r)
    # scatter the subset outputs into full-length holders so indices stay the partition's
    p_train = torch.zeros(len(data.y_train), p_tr_sub.shape[1], device=data.device)
    p_train[idx_tr] = p_tr_sub
    p_test = torch.zeros(len(data.y_test), p_te_sub.shape[1], device=data.device)
    p_test[part.test_r] = p_te_sub
    return mia_from_probs(p_train, p_test, data, part, seed)


def gap(m: Mapping[str, float], ref: Mapping[str, float], keys: tuple[str, ...] = GAP_KEYS) -> float:
    """Mean |m[k] - ref[k]| over ``keys`` (default ua, ra, ta, mia), unrounded. Keys missing or
    NaN on either side are left out (e.g. MIA switched off); NaN when none is left."""
    diffs = []
    for k in keys:
        a, b = m.get(k), ref.get(k)
        if a is None or b is None:
            continue
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            continue
        diffs.append(abs(a - b))
    return sum(diffs) / len(diffs) if diffs else float("nan")


def gap3(m: Mapping[str, float], ref: Mapping[str, float]) -> float:
    """The Gap over UA, RA and TA only (``GAP3_KEYS``); NaN when none is known on both sides."""
    return gap(m, ref, GAP3_KEYS)


# ---- from per-sample correctness (cached training histories) ---------------------------------
def correct_bits(model: nn.Module, data: DeviceData, train: bool = True) -> tuple[np.ndarray | None, np.ndarray]:
    """Per-sample correctness of the whole training (None unless ``train``) and test sets, as
    bool arrays (one pass each)."""
    ct = (predict(model, data, "train").argmax(1) == data.y_train).cpu().numpy() if train else None
    cte = (predict(model, data, "test").argmax(1) == data.y_test).cpu().numpy()
    return ct, cte


def accuracies_np(correct_train: np.ndarray, correct_test: np.ndarray, part: Partition) -> dict[str, float]:
    """The six accuracies from per-sample correctness arrays and a (numpy) ``Partition``; lets
    a cached model's stored per-epoch correctness be re-read for any partition."""
    correct = {"train": np.asarray(correct_train, dtype=bool), "test": np.asarray(correct_test, dtype=bool)}
    out = {}
    for key in ACC_KEYS:
        split, name = _SETS[key]
        idx = getattr(part, name)
        out[key] = float(100.0 * correct[split][idx].mean()) if len(idx) else float("nan")
    return out
