"""Small pieces several methods share (torch). Nothing here knows a dataset or an architecture."""

from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from ..jsonsafe import jsonable


def json_floats(t: torch.Tensor | Iterable[float]) -> list[float | None]:
    """A 1-D tensor (or sequence) as a JSON-able list of floats; NaN / inf become None."""
    vals = jsonable(t.detach().cpu() if isinstance(t, torch.Tensor) else list(t))
    return [None if v is None else float(v) for v in vals]


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
