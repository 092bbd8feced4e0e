"""BS (Boundary Shrink): for each D_f batch, FGSM on the frozen original model (one signed step
of size ``bound`` in [0, 1] pixel space, clamped), neighbour label = the original's argmax on the
perturbed image; the model is trained with CE of the *clean* image to that neighbour label."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..train import autocast
from .base import EpochResult, Method, register


def fgsm_neighbour(orig, x: torch.Tensor, y: torch.Tensor, bound: float) -> torch.Tensor:
    """The original model's label for x moved one FGSM step (size ``bound``) up its loss."""
    x_adv = x.detach().clone().requires_grad_(True)
    with torch.enable_grad(), autocast(x.device):
        loss = F.cross_entropy(orig(x_adv).float(), y)
    (g,) = torch.autograd.grad(loss, x_adv)
    x_adv = (x.detach() + bound * g.sign()).clamp_(0.0, 1.0)
    with torch.no_grad(), autocast(x.device):
        return orig(x_adv).float().argmax(1)


@register("bs")
class BS(Method):
    def setup(self) -> None:
        self.orig = self.ctx.original()
        self.opt = self.ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)

    def epoch(self, e: int) -> EpochResult:
        ctx = self.ctx
        ctx.model.train()
        tot, n, moved = 0.0, 0, 0
        for x, y, _ in ctx.batches(ctx.d_f):
            nb = fgsm_neighbour(self.orig, x, y, self.p.bound)
            loss = F.cross_entropy(ctx.forward(x), nb)
            tot += ctx.step(loss, self.opt, self.p.clip_grad) * len(y)
            n += len(y)
            moved += int((nb != y).sum())
        return EpochResult(tot / max(1, n), extras={"neighbour_differs": moved / max(1, n)})
