"""SalUn: a weight-saliency mask, then RL restricted to it.

Mask: accumulate the gradient of CE over D_f (eval mode, no augmentation) at the original
model; rank |grad| of every parameter entry in one global ranking; the top ``sparsity`` fraction
is trainable. During RL the gradients are multiplied by the mask, and after every step the
masked-out entries are put back to their original values and their momentum zeroed (weight decay
would otherwise move them)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import EpochResult, Method, register
from .rl import rl_epoch


def saliency_mask(ctx, sparsity: float) -> dict[str, torch.Tensor]:
    model = ctx.model
    params = dict(model.named_parameters())
    acc = {n: torch.zeros_like(p) for n, p in params.items()}
    was = model.training
    model.eval()
    try:
        for x, y, _ in ctx.batches(ctx.d_f, shuffle=False, augment=False):
            model.zero_grad(set_to_none=True)
            F.cross_entropy(ctx.forward(x), y, reduction="sum").backward()
            for n, p in params.items():
                if p.grad is not None:
                    acc[n] += p.grad.detach()
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was)
    scores = torch.cat([a.abs().reshape(-1) for a in acc.values()])
    k = int(round(sparsity * scores.numel()))
    keep = torch.zeros(scores.numel(), dtype=torch.bool, device=scores.device)
    if k > 0:
        keep[torch.topk(scores, k, sorted=False).indices] = True
    out, at = {}, 0
    for n, a in acc.items():
        out[n] = keep[at:at + a.numel()].view_as(a)
        at += a.numel()
    return out


@register("salun")
class SalUn(Method):
    def setup(self) -> None:
        if not 0.0 <= self.p.sparsity <= 1.0:
            raise ValueError(f"salun.sparsity must be in [0, 1], got {self.p.sparsity}")
        ctx = self.ctx
        self.mask = saliency_mask(ctx, self.p.sparsity)
        self.named = [(n, p) for n, p in ctx.model.named_parameters()]
        self.orig = {n: p.detach().clone() for n, p in self.named}
        self.opt = ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)

    def _mask_grads(self) -> None:
        for n, p in self.named:
            if p.grad is not None:
                p.grad.mul_(self.mask[n])

    @torch.no_grad()
    def _reset(self) -> None:
        for n, p in self.named:
            m = self.mask[n]
            p.copy_(torch.where(m, p, self.orig[n]))
            buf = self.opt.state.get(p, {}).get("momentum_buffer")
            if buf is not None:
                buf.masked_fill_(~m, 0.0)

    def epoch(self, e: int) -> EpochResult:
        r = rl_epoch(self.ctx, self.opt, self.p.mode, self.p.clip_grad,
                     grad_hook=self._mask_grads, after_step=self._reset)
        total = sum(int(m.numel()) for m in self.mask.values())
        r.extras["trainable_fraction"] = sum(int(m.sum()) for m in self.mask.values()) / max(1, total)
        return r
