"""Retrained: the oracle. A freshly re-initialised model trained on D_r (the true retaining data)
with the original model's recipe: SGD, one-cycle learning rate (linear warm-up over the first 25%
of steps, linear decay to 0: ``train.one_cycle``, as in ``train.fit``) spread over the method's epochs, one
scheduler step per batch; the runner evaluates after each epoch."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..errors import InvalidSpec
from ..train import one_cycle
from .base import EpochResult, Method, register
from .params import REFERENCE


@register(REFERENCE)
class Retrained(Method):
    def _recipe(self):
        r = self.ctx.recipe
        if r is None:
            raise InvalidSpec("retrained needs the run's recipe (Context.recipe)")
        return r

    def epochs(self) -> int:
        if self.p.epochs > 0:
            return int(self.p.epochs)
        e = getattr(self._recipe(), "epochs", None)
        if not e:
            raise InvalidSpec("retrained: the recipe's epochs must be resolved (the dataset default) "
                              "before the run, or set retrained.epochs > 0")
        return int(e)

    def setup(self) -> None:
        ctx, r = self.ctx, self._recipe()
        if ctx.d_r is None:
            raise InvalidSpec("retrained needs D_r (Context.d_r)")
        with torch.random.fork_rng(devices=[ctx.device] if ctx.device.type == "cuda" else []):
            torch.manual_seed(ctx.seed)
            for m in ctx.model.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
        self.bs = int(getattr(r, "batch_size", ctx.batch_size))
        self.augment = bool(getattr(r, "augment", True))
        self.smooth = float(getattr(r, "label_smoothing", 0.0))
        self.opt = ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)
        self.sched = one_cycle(self.opt, max(1, math.ceil(len(ctx.d_r) / self.bs)) * self.epochs())

    def epoch(self, e: int) -> EpochResult:
        ctx = self.ctx
        ctx.model.train()
        lr0 = self.opt.param_groups[0]["lr"]
        tot, n = 0.0, 0
        for x, y, _ in ctx.batches(ctx.d_r, self.bs, augment=self.augment):
            loss = F.cross_entropy(ctx.forward(x), y, label_smoothing=self.smooth)
            tot += ctx.step(loss, self.opt, self.p.clip_grad) * len(y)
            n += len(y)
            self.sched.step()
        ctx.last_lr = lr0
        return EpochResult(tot / max(1, n), lr=lr0)
