"""Small pieces several methods share (torch). Nothing here knows a dataset or an architecture."""

from __future__ import annotations

import math
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn


def json_floats(t: torch.Tensor | Iterable[float]) -> list[float | None]:
    """A 1-D tensor as a JSON-able list; NaN / inf become None."""
    vals = t.detach().cpu().tolist() if isinstance(t, torch.Tensor) else list(t)
    return [None if (v is None or not math.isfinite(v)) else float(v) for v in vals]


def per_sample_ce(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross entropy of each sample from softmax probabilities (eval-mode ``ctx.probs``)."""
    return -probs.gather(1, y[:, None]).squeeze(1).clamp_min(1e-12).log()


def kl_teacher_student(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temp: float) -> torch.Tensor:
    """KL(teacher || student) at temperature ``temp``, batch mean, times temp^2 (SCRUB's DistillKL)."""
    log_s = F.log_softmax(student_logits / temp, dim=1)
    p_t = F.softmax(teacher_logits / temp, dim=1)
    return F.kl_div(log_s, p_t, reduction="sum") * (temp ** 2) / student_logits.shape[0]


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def flat(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def hooked_step(loss: torch.Tensor, opt: torch.optim.Optimizer, model: nn.Module, clip: float = 0.0,
                grad_hook=None, limit: float = 1e6) -> float:
    """``train.backward_step`` with a hook between backward and the optimiser step (e.g. a
    gradient mask). NaN / inf / |loss| > limit raises ``Diverged`` before the weights move."""
    from ..train import Diverged

    val = float(loss.detach())
    if not math.isfinite(val) or abs(val) > limit:
        raise Diverged(f"loss became {val}")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_hook is not None:
        grad_hook()
    if clip and clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    return val
