"""Device-resident data, batched augmentation and the shared fit loop.

The whole dataset lives on the device as one uint8 NCHW tensor; a batch is an index tensor
gathered from it, converted to float in [0, 1] and augmented there as a whole (per-sample random
crop with zero padding via one ``gather``, per-sample horizontal flip via ``where``). No
DataLoader, no per-sample Python: on a 2-core CPU this is several times faster than a
torchvision DataLoader + transforms loop (bench/bench_pipeline.py), and on a GPU it keeps the
device busy. On CUDA: bf16 autocast and channels_last; on CPU: float32.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class Cancelled(Exception):
    """The run was asked to stop (SIGTERM / SIGINT); raised at the next batch."""


class Diverged(Exception):
    """The training objective became NaN / inf or exploded."""


# ---- device ------------------------------------------------------------------------------------
def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        from .errors import InvalidSpec
        raise InvalidSpec(f"device {name!r} asked for but CUDA is not available here; use --device cpu or auto")
    return torch.device(name)


def configure_cpu_threads() -> None:
    """Use every core the process may run on (a container's quota may be below os.cpu_count),
    unless ``TARF_THREADS`` or ``OMP_NUM_THREADS`` says how many: a launcher running several
    engines at once must split the cores, as oversubscribed OpenMP threads spin against each
    other (measured on 2 cores under load: 57 images/s with 2 threads vs 2,600 with 1)."""
    for var in ("TARF_THREADS", "OMP_NUM_THREADS"):
        v = os.environ.get(var, "")
        if v.isdigit() and int(v) > 0:
            torch.set_num_threads(int(v))
            return
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    torch.set_num_threads(max(1, n))


def autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# ---- data ----------------------------------------------------------------------------------------
class DeviceData:
    """Training and test images as uint8 NCHW tensors on the device, with model-level labels."""

    def __init__(self, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray,
                 y_test: np.ndarray, device: torch.device):
        self.device = device
        self.x_train = torch.from_numpy(np.ascontiguousarray(x_train.transpose(0, 3, 1, 2))).to(device)
        self.x_test = torch.from_numpy(np.ascontiguousarray(x_test.transpose(0, 3, 1, 2))).to(device)
        self.y_train = torch.as_tensor(y_train, dtype=torch.long, device=device)
        self.y_test = torch.as_tensor(y_test, dtype=torch.long, device=device)
        self.side = int(self.x_train.shape[-1])
        self.pad = max(1, self.side // 8)  # 4 pixels on 32x32 as in the CIFAR recipe

    def index(self, idx: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(np.asarray(idx), dtype=torch.long, device=self.device) \
            if not isinstance(idx, torch.Tensor) else idx.to(self.device)

    def images(self, idx: torch.Tensor, split: str = "train", augment: bool = False,
               generator: torch.Generator | None = None) -> torch.Tensor:
        x = (self.x_train if split == "train" else self.x_test)[idx].float().div_(255.0)
        if augment:
            x = augment_batch(x, self.pad, generator)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def augment_batch(x: torch.Tensor, pad: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-sample random crop (zero padding ``pad``) and horizontal flip of a whole batch."""
    n, c, h, w = x.shape
    dev = x.device
    g = generator
    xp = F.pad(x, (pad, pad, pad, pad))
    ox = torch.randint(0, 2 * pad + 1, (n,), device="cpu", generator=g).to(dev)
    oy = torch.randint(0, 2 * pad + 1, (n,), device="cpu", generator=g).to(dev)
    flip = (torch.rand(n, device="cpu", generator=g) < 0.5).to(dev)
    ar_w = torch.arange(w, device=dev)
    cols = ox[:, None] + torch.where(flip[:, None], w - 1 - ar_w, ar_w)  # [n, w]
    rows = oy[:, None] + torch.arange(h, device=dev)  # [n, h]
    xp = xp.gather(2, rows[:, None, :, None].expand(n, c, h, w + 2 * pad))
    return xp.gather(3, cols[:, None, None, :].expand(n, c, h, w))


def batches(data: DeviceData, idx: torch.Tensor, batch_size: int, *, shuffle: bool = True,
            augment: bool = True, generator: torch.Generator | None = None,
            labels: torch.Tensor | None = None, stop: Callable[[], bool] | None = None,
            drop_last: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Yield (images, labels, indices) over ``idx``. ``labels`` overrides the stored labels
    (a full-length tensor indexed like the training set, e.g. random labels for RL).
    ``stop()`` is checked before every batch and raises ``Cancelled``."""
    if len(idx) == 0:
        return
    order = idx[torch.randperm(len(idx), generator=generator).to(idx.device)] if shuffle else idx
    lab = data.y_train if labels is None else labels
    n = len(order)
    end = n - (n % batch_size) if (drop_last and n >= batch_size) else n
    for s in range(0, end, batch_size):
        if stop is not None and stop():
            raise Cancelled()
        b = order[s:s + batch_size]
        yield data.images(b, "train", augment, generator), lab[b], b


@torch.inference_mode()
def predict(model: nn.Module, data: DeviceData, split: str = "train",
            idx: torch.Tensor | None = None, batch_size: int = 1024) -> torch.Tensor:
    """Softmax probabilities (float32, on the device) for ``idx`` (default: the whole split),
    model in eval mode, no augmentation. The caller's train/eval mode is restored."""
    was = model.training
    model.eval()
    x_all = data.x_train if split == "train" else data.x_test
    if idx is None:
        idx = torch.arange(len(x_all), device=data.device)
    out = []
    try:
        for s in range(0, len(idx), batch_size):
            b = idx[s:s + batch_size]
            with autocast(data.device):
                logits = model(data.images(b, split))
            out.append(torch.softmax(logits.float(), dim=1))
    finally:
        model.train(was)
    if not out:
        return torch.zeros(0, 1, device=data.device)
    return torch.cat(out)


def sgd(model: nn.Module, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay,
                           nesterov=False)


def backward_step(loss: torch.Tensor, opt: torch.optim.Optimizer, model: nn.Module,
                  clip: float = 0.0, limit: float = 1e6,
                  grad_hook: Callable[[], None] | None = None) -> float:
    """zero_grad, backward, ``grad_hook`` (e.g. a gradient mask), optional global-norm clip,
    step. NaN/inf or |loss| > ``limit`` raises ``Diverged`` before the weights are touched."""
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


# ---- the recipe: original model and Retrained ---------------------------------------------------
def one_cycle(opt: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """The recipe's one-cycle schedule, stepped once per batch: linear warm-up over the first
    25% of ``total_steps`` to the optimiser's lr, then linear decay to 0."""
    total = max(1, total_steps)
    warm = max(1, int(0.25 * total))
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else max(0.0, (total - s) / max(1, total - warm)))


@dataclass
class FitResult:
    seconds: float
    history: list[dict]  # per epoch: epoch, loss, lr, seconds, train_acc


def fit(model: nn.Module, data: DeviceData, idx: torch.Tensor, *, epochs: int, lr: float,
        batch_size: int = 256, momentum: float = 0.9, weight_decay: float = 5e-4,
        label_smoothing: float = 0.0, augment: bool = True, seed: int = 0,
        stop: Callable[[], bool] | None = None,
        on_epoch: Callable[[dict], None] | None = None) -> FitResult:
    """Train ``model`` on training samples ``idx`` with SGD and a one-cycle schedule (linear
    warm-up over the first 25% of steps to ``lr``, then linear decay to 0; reaches the step
    schedule's accuracy in a fraction of its epochs). ``on_epoch`` receives each epoch's row."""
    gen = torch.Generator().manual_seed(seed)
    opt = sgd(model, lr, momentum, weight_decay)
    sched = one_cycle(opt, epochs * max(1, math.ceil(len(idx) / batch_size)))
    crit = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    history = []
    t_all = time.perf_counter()
    model.train()
    for e in range(epochs):
        t0 = time.perf_counter()
        tot, correct, n = 0.0, 0, 0
        lr_now = opt.param_groups[0]["lr"]
        for x, y, _ in batches(data, idx, batch_size, augment=augment, generator=gen, stop=stop):
            with autocast(data.device):
                out = model(x)
                loss = crit(out.float(), y)
            backward_step(loss, opt, model)
            sched.step()
            tot += float(loss.detach()) * len(y)
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
        row = {"epoch": e, "loss": tot / max(1, n), "lr": lr_now,
               "seconds": time.perf_counter() - t0, "train_acc": 100.0 * correct / max(1, n)}
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
    return FitResult(time.perf_counter() - t_all, history)


@torch.inference_mode()
def accuracy(model: nn.Module, data: DeviceData, split: str = "test", idx: torch.Tensor | None = None) -> float:
    p = predict(model, data, split, idx)
    y = (data.y_train if split == "train" else data.y_test)
    y = y if idx is None else y[idx]
    return 100.0 * float((p.argmax(1) == y).float().mean()) if len(y) else float("nan")
