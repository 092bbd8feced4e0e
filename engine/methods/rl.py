"""RL: random labels. Each epoch D_f gets uniformly random labels (re-drawn), then
- sequential (baselines' CIFAR-10 code): one pass over relabelled D_f, then one pass over D_un;
- mixed (their CIFAR-100 code): one shuffled pass over relabelled D_f together with D_un.
SalUn reuses ``rl_epoch`` with a gradient mask and a weight reset."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .base import Context, EpochResult, Method, register
from ..train import backward_step
from .params import MODES  # checked again in rl_epoch for callers that build Params directly


def rl_epoch(ctx: Context, opt: torch.optim.Optimizer, mode: str, clip: float,
             grad_hook: Callable[[], None] | None = None,
             after_step: Callable[[], None] | None = None) -> EpochResult:
    """One RL epoch. ``grad_hook`` runs between backward and the optimiser step, ``after_step``
    after it. Loss: mean CE over every sample seen (random labels on D_f)."""
    if mode not in MODES:
        raise ValueError(f"unknown RL mode {mode!r}; valid: {', '.join(MODES)}")
    labels = ctx.random_labels(ctx.d_f)
    plan = [(ctx.d_f, labels), (ctx.d_un, None)] if mode == "sequential" \
        else [(torch.cat([ctx.d_f, ctx.d_un]), labels)]
    ctx.model.train()
    tot, n = 0.0, 0
    for idx, lab in plan:
        for x, y, _ in ctx.batches(idx, labels=lab):
            loss = F.cross_entropy(ctx.forward(x), y)
            tot += backward_step(loss, opt, ctx.model, clip, grad_hook=grad_hook) * len(y)
            n += len(y)
            if after_step is not None:
                after_step()
    return EpochResult(tot / max(1, n))


@register("rl")
class RL(Method):
    def setup(self) -> None:
        self.opt = self.ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)

    def epoch(self, e: int) -> EpochResult:
        return rl_epoch(self.ctx, self.opt, self.p.mode, self.p.clip_grad)
