"""SCRUB: teacher = frozen original, student = the model. d = KL(teacher || student) at
temperature T, times T^2. Epoch e (0-based): if e < msteps, one max pass over D_f (loss -d,
forget batch size); then one min pass over D_un (loss gamma * CE + alpha * d). lr x 0.1 for every
decay epoch passed (the official ``sgda_adjust_learning_rate`` with 1-based epochs)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..train import autocast
from .base import EpochResult, Method, register
from .common import kl_teacher_student


@register("scrub")
class SCRUB(Method):
    def setup(self) -> None:
        self.teacher = self.ctx.original()
        self.opt = self.ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)
        self.decay = [int(s) for s in str(self.p.lr_decay_epochs).replace(" ", "").split(",") if s]

    def _teacher(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), autocast(self.ctx.device):
            return self.teacher(x).float()

    def epoch(self, e: int) -> EpochResult:
        ctx, p = self.ctx, self.p
        lr = p.lr * (0.1 ** sum(1 for d in self.decay if e + 1 > d))
        for g in self.opt.param_groups:
            g["lr"] = lr
        ctx.last_lr = lr
        ctx.model.train()
        kl_max, n_max = 0.0, 0
        if e < p.msteps:
            for x, _, _ in ctx.batches(ctx.d_f, p.forget_batch_size):
                d = kl_teacher_student(ctx.forward(x), self._teacher(x), p.kd_t)
                kl_max += -ctx.step(-d, self.opt, p.clip_grad) * len(x)
                n_max += len(x)
        tot, n = 0.0, 0
        for x, y, _ in ctx.batches(ctx.d_un):
            out = ctx.forward(x)
            loss = p.gamma * F.cross_entropy(out, y) + p.alpha * kl_teacher_student(out, self._teacher(x), p.kd_t)
            tot += ctx.step(loss, self.opt, p.clip_grad) * len(y)
            n += len(y)
        ex = {"min_loss": tot / max(1, n)}
        if n_max:
            ex["kl_forget"] = kl_max / n_max
        return EpochResult(tot / max(1, n), phase="max+min" if n_max else "min", extras=ex, lr=lr)
