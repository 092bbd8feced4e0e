"""TARF (target-aware forgetting; Eq. 5-7 and Algorithm 1 of the paper).

  L = k(t) * ( -mean CE over D_f ) + mean over D_un of CE * tau(x, t),
  k(t) = max(0, k (T - t - t0) / T)   (t = epoch from 0, T = epochs),
  tau = 0 before t1; from t1 on 1 for the D_un samples judged outside the target, else 0.

As Algorithm 1 each epoch is one shuffled pass of mini-batches over D = D_f + D_un; a batch's
loss is -k(t) x (mean CE of its D_f samples) + (sum of CE x tau of its D_un samples) / (number
of its D_un samples), so the whole batch goes through the model (BatchNorm sees representative
statistics) while excluded samples carry weight 0. Phases: I (t < t1): GA on D_f only; II
(t >= t1 and k(t) > 0): GA on D_f plus CE on the selected D_un; III (k(t) = 0): CE on the
selected D_un only.

Identification (at the start of epoch t1): per-unit accuracy on D_un (eval mode, no
augmentation) at the original model versus after Phase I; units ranked by the size of their
accuracy change |acc_t1 - acc_0| (Algorithm 1's "rank of class accuracy difference"; a unit that
absorbs the forgetting data's predictions *gains* accuracy), or by signed drop with
``rank="drop"``; the top
n (n = the task's number of hidden target units, or ``n_exclude`` when >= 0) get tau = 0. Units
absent from D_un are not ranked. TARF-I (``tarf_i.py``) overrides ``identify``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import EpochResult, Method, register
from .common import json_floats


def k_of(k: float, t: int, T: int, t0: int) -> float:
    return max(0.0, k * (T - t - t0) / T)


@register("tarf")
class TARF(Method):
    def setup(self) -> None:
        ctx = self.ctx
        self.opt = ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)
        self.all_idx = torch.cat([ctx.d_f, ctx.d_un])
        n = len(ctx.data.y_train)
        self.is_f = torch.zeros(n, dtype=torch.bool, device=ctx.device)
        self.is_f[ctx.d_f] = True
        self.tau = torch.zeros(n, device=ctx.device)  # 0 everywhere until identification
        self.identified: dict = {}
        self.record_original()

    # ---- identification --------------------------------------------------------------------
    def record_original(self) -> None:
        self.acc0 = self.ctx.unit_accuracy(self.ctx.d_un)  # the weights are still the original's

    def n_to_exclude(self) -> int:
        return int(self.ctx.n_hidden_units if self.p.n_exclude < 0 else self.p.n_exclude)

    def identify(self) -> dict:
        """Set ``self.tau`` on D_un; return the per-epoch extras describing the choice."""
        ctx = self.ctx
        acc1 = ctx.unit_accuracy(ctx.d_un)
        drop = self.acc0 - acc1
        # "drop": the units that lost most; "change": the units that moved most either way (a
        # class that absorbs the forgetting data gains accuracy; see docs/results.md section 4)
        score = drop if self.p.rank == "drop" else drop.abs()
        present = torch.nonzero(~torch.isnan(drop)).flatten()
        # ties (e.g. no unit moved at all) are broken by a seeded random order, never by unit id:
        # an id order would "identify" the units listed first by accident
        g = torch.Generator().manual_seed(self.ctx.seed + 1)
        present = present[torch.randperm(len(present), generator=g).to(present.device)]
        order = present[torch.argsort(-score[present], stable=True)]
        n_ex = min(self.n_to_exclude(), len(order))
        excluded = order[:n_ex]
        margin = float(score[order[n_ex - 1]] - score[order[n_ex]]) if 0 < n_ex < len(order) else None
        keep_unit = torch.ones(ctx.n_units, dtype=torch.bool, device=ctx.device)
        keep_unit[excluded] = False
        self.tau[ctx.d_un] = keep_unit[ctx.units[ctx.d_un]].float()
        return {"excluded_units": sorted(int(u) for u in excluded.tolist()), "id_margin": margin,
                "acc_change": json_floats(-100.0 * drop), "unit_acc_t1": json_floats(acc1)}

    # ---- the loop ------------------------------------------------------------------------------
    def phase(self, e: int, k_t: float) -> str:
        return "I" if e < self.p.t1 else ("II" if k_t > 0 else "III")

    def epoch(self, e: int) -> EpochResult:
        ctx, p = self.ctx, self.p
        T = self.epochs()
        k_t = k_of(p.k, e, T, p.t0)
        ph = self.phase(e, k_t)
        if e == p.t1 or (e > p.t1 and not self.identified):
            self.identified = self.identify()
        retain = e >= p.t1
        w_f = k_t * p.ga_lr_scale
        ctx.model.train()
        tot, n_b = 0.0, 0
        ce_f_sum, n_f = 0.0, 0
        ce_u_sum, n_u = 0.0, 0
        for x, y, b in ctx.batches(self.all_idx):
            fm = self.is_f[b]
            if not retain and (w_f == 0 or not fm.any()):
                continue  # nothing in this batch carries weight (Phase I, no D_f samples)
            per = F.cross_entropy(ctx.forward(x), y, reduction="none")
            loss = per.new_zeros(())
            if fm.any():
                ce_f = per[fm].mean()
                loss = loss - w_f * ce_f
                ce_f_sum += float(ce_f.detach()) * int(fm.sum())
                n_f += int(fm.sum())
            um = ~fm
            if retain and um.any():
                tau = self.tau[b][um]
                loss = loss + (per[um] * tau).sum() / int(um.sum())
                if tau.sum() > 0:
                    ce_u_sum += float((per[um] * tau).detach().sum())
                    n_u += int(tau.sum())
            if not loss.requires_grad:
                continue
            tot += ctx.step(loss, self.opt, p.clip_grad)
            n_b += 1
        extras = {"k_t": k_t, "phase": ph, "kept": int(self.tau[ctx.d_un].sum()) if retain else 0,
                  "ce_f": ce_f_sum / max(1, n_f), "ce_retain": ce_u_sum / max(1, n_u)}
        extras.update(self.identified if retain else {})
        return EpochResult(tot / max(1, n_b), phase=ph, extras=extras)
