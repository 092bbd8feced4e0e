"""L1-sparse: fine-tune on D_un with CE + alpha_t * ||theta||_1 over all parameters,
alpha_t = alpha * (1 - e / E) decaying linearly (Unlearn-Sparse's FT_prune)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import EpochResult, Method, register


@register("l1-sparse")
class L1Sparse(Method):
    def setup(self) -> None:
        self.opt = self.ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)

    def epoch(self, e: int) -> EpochResult:
        ctx = self.ctx
        alpha_t = self.p.alpha * (1.0 - e / self.epochs())
        ctx.model.train()
        tot, n = 0.0, 0
        for x, y, _ in ctx.batches(ctx.d_un):
            l1 = torch.stack([p.abs().sum() for p in ctx.model.parameters()]).sum()
            loss = F.cross_entropy(ctx.forward(x), y) + alpha_t * l1
            tot += ctx.step(loss, self.opt, self.p.clip_grad) * len(y)
            n += len(y)
        with torch.no_grad():
            l1_now = float(sum(p.abs().sum() for p in ctx.model.parameters()))
        return EpochResult(tot / max(1, n), extras={"alpha_t": alpha_t, "l1": l1_now})
