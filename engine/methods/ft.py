"""FT: fine-tune on D_un with cross entropy (methods.md section 4)."""

from __future__ import annotations

from .base import EpochResult, Method, register


@register("ft")
class FT(Method):
    def setup(self) -> None:
        self.opt = self.ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)

    def epoch(self, e: int) -> EpochResult:
        return EpochResult(self.ctx.ce_pass(self.ctx.d_un, self.opt, clip=self.p.clip_grad))
