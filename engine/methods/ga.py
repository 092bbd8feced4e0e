"""GA: gradient ascent, loss = -CE on D_f, global gradient-norm clip. A NaN / exploding loss
raises ``train.Diverged``, which the runner records as a ``diverged`` run."""

from __future__ import annotations

from .base import EpochResult, Method, register


@register("ga")
class GA(Method):
    def setup(self) -> None:
        self.opt = self.ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)

    def epoch(self, e: int) -> EpochResult:
        ce = self.ctx.ce_pass(self.ctx.d_f, self.opt, sign=-1.0, clip=self.p.clip_grad)
        return EpochResult(-ce, extras={"ce_f": ce})  # loss = the objective, -CE on D_f
