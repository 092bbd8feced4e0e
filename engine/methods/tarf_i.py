"""TARF-I (Algorithm 2): TARF with per-instance identification.

I_con(x) = |CE at theta_t1 - CE at the original| for every D_un sample (eval mode, no
augmentation; ``rank="drop"`` ranks by the CE increase instead). The ``count`` samples of largest I_con get tau = 0 (beta, the threshold of Eq. 7,
is the I_con of the last excluded sample). count = round(quantile x |D_un|) when quantile >= 0;
otherwise it is *estimated from the task*: |D_un| x (hidden target units) / (units present in
D_un), i.e. the hidden units' share assuming units of equal size -- the instance-level reading
of the same prior TARF is given."""

from __future__ import annotations

import torch

from .base import register
from .common import json_floats, per_sample_ce
from .tarf import TARF


@register("tarf-i")
class TARFI(TARF):
    def record_original(self) -> None:
        ctx = self.ctx
        self.ce0 = per_sample_ce(ctx.probs(ctx.d_un), ctx.data.y_train[ctx.d_un])
        self.acc0 = ctx.unit_accuracy(ctx.d_un)  # for the report's per-unit accuracy change

    def exclude_count(self) -> tuple[int, str]:
        ctx, n_un = self.ctx, len(self.ctx.d_un)
        if self.p.quantile >= 0:
            return int(round(min(1.0, self.p.quantile) * n_un)), "quantile"
        present = int(torch.unique(ctx.units[ctx.d_un]).numel())
        return int(round(n_un * ctx.n_hidden_units / max(1, present))), "task estimate"

    def identify(self) -> dict:
        ctx = self.ctx
        ce1 = per_sample_ce(ctx.probs(ctx.d_un), ctx.data.y_train[ctx.d_un])
        icon = (ce1 - self.ce0).abs() if self.p.rank == "change" else ce1 - self.ce0
        count, how = self.exclude_count()
        g = torch.Generator().manual_seed(ctx.seed + 1)  # random tie order, as in TARF
        perm = torch.randperm(len(icon), generator=g).to(icon.device)
        order = perm[torch.argsort(-icon[perm], stable=True)]
        tau = torch.ones(len(ctx.d_un), device=ctx.device)
        tau[order[:count]] = 0.0
        self.tau[ctx.d_un] = tau
        beta = float(icon[order[count - 1]]) if count > 0 else float("inf")
        units_un = ctx.units[ctx.d_un]
        per_unit = torch.bincount(units_un[order[:count]], minlength=ctx.n_units)
        size = torch.bincount(units_un, minlength=ctx.n_units)
        frac = torch.where(size > 0, per_unit / size.clamp(min=1), torch.full_like(per_unit, float("nan"), dtype=torch.float))
        # a unit counts as excluded when most of its D_un samples are (for reports; the method
        # itself excludes samples)
        excluded = torch.nonzero(frac > 0.5).flatten()
        acc1 = ctx.unit_accuracy(ctx.d_un)
        return {"exclude_count": count, "count_from": how,
                "beta": beta if beta != float("inf") else None,
                "excluded_per_unit": [int(c) for c in per_unit.tolist()],
                "excluded_frac": json_floats(frac), "excluded_units": [int(u) for u in excluded.tolist()],
                "acc_change": json_floats(100.0 * (acc1 - self.acc0))}
