"""The method interface. A method is a registered class with a frozen ``Params`` (from
``params.py``) and a per-epoch step; the runner owns the loop, evaluation, timing and storing.

    @register("ft")
    class FT(Method):
        def setup(self): self.opt = self.ctx.sgd(self.p.lr)
        def epoch(self, e):
            loss = self.ctx.ce_pass(self.ctx.d_un, self.opt)
            return EpochResult(loss)

What a method sees (``Context``): the model to unlearn (original weights loaded; fresh for
Retrained), a frozen copy of the original on demand, the device data, and the index sets it is
*handed*: D_f and D_un (Retrained: D_r). Plus the unit id of every training sample and the
number of hidden target units (TARF's given count). Never the target, D_t or D_uf.
Methods never branch on dataset or architecture.
"""

from __future__ import annotations

import abc
import copy
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from ..metrics import as_device_partition
from ..registry import Registry
from ..train import DeviceData, autocast, backward_step, batches, predict, sgd
from .params import CATALOG, MethodInfo


@dataclass
class EpochResult:
    loss: float  # the method's training objective, mean over the epoch's batches
    phase: str = ""  # e.g. TARF "I" / "II" / "III"
    extras: dict[str, Any] = field(default_factory=dict)  # per-epoch method values (JSON-able)
    lr: float | None = None  # learning rate used this epoch (None: read from ctx.last_lr)


@dataclass
class Context:
    model: nn.Module
    data: DeviceData
    d_f: torch.Tensor  # identified forgetting data (training indices, on device)
    d_un: torch.Tensor  # everything else the method is handed
    units: torch.Tensor  # unit id of every training sample (labels the server knows)
    n_units: int
    n_hidden_units: int  # units of the target hidden in D_un (given to TARF)
    batch_size: int
    seed: int
    d_r: torch.Tensor | None = None  # only Retrained gets the true retaining data
    recipe: Any = None  # spec.Recipe, for Retrained
    stop: Callable[[], bool] = lambda: False  # True once SIGTERM/SIGINT arrived
    on_step: Callable[[], None] = lambda: None  # heartbeat hook, called every batch
    original_state: dict[str, torch.Tensor] | None = None
    generator: torch.Generator = field(default_factory=torch.Generator)
    last_lr: float = 0.0

    def __post_init__(self):
        self.generator.manual_seed(self.seed)
        self._original: nn.Module | None = None

    @classmethod
    def of(cls, model: nn.Module, data: DeviceData, part: Any, *, batch_size: int, seed: int,
           retrained: bool = False, **more: Any) -> "Context":
        """The context a method is handed for a task: ``part`` is the task's ``Partition`` or
        its ``metrics.DevicePartition``; D_r only when ``retrained``. ``more``: recipe, stop,
        on_step, original_state. The runner, the tests' fixtures and bench scripts build it here."""
        dp = as_device_partition(part, data.device)
        return cls(model=model, data=data, d_f=dp.d_f, d_un=dp.d_un, units=dp.units,
                   n_units=dp.n_units, n_hidden_units=dp.n_hidden_units, batch_size=batch_size,
                   seed=seed, d_r=dp.d_r if retrained else None, **more)

    @property
    def device(self) -> torch.device:
        return self.data.device

    @property
    def num_classes(self) -> int:
        return int(self.model.head.out_features)

    def original(self) -> nn.Module:
        """A frozen eval-mode copy of the original model (teacher, FGSM reference...)."""
        if self._original is None:
            m = copy.deepcopy(self.model)
            if self.original_state is not None:
                m.load_state_dict(self.original_state)
            m.eval()
            for p in m.parameters():
                p.requires_grad_(False)
            self._original = m
        return self._original

    # ---- helpers every method may use ------------------------------------------------------
    def sgd(self, lr: float, momentum: float = 0.9, weight_decay: float = 5e-4) -> torch.optim.SGD:
        self.last_lr = lr
        return sgd(self.model, lr, momentum, weight_decay)

    def batches(self, idx: torch.Tensor, batch_size: int | None = None, *, shuffle: bool = True,
                augment: bool = True, labels: torch.Tensor | None = None):
        for b in batches(self.data, idx, batch_size or self.batch_size, shuffle=shuffle,
                         augment=augment, generator=self.generator, labels=labels, stop=self.stop):
            self.on_step()
            yield b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(self.device):
            return self.model(x).float()

    def step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, clip: float = 0.0) -> float:
        return backward_step(loss, opt, self.model, clip)

    def ce_pass(self, idx: torch.Tensor, opt: torch.optim.Optimizer, *, sign: float = 1.0,
                clip: float = 0.0, labels: torch.Tensor | None = None,
                batch_size: int | None = None) -> float:
        """One pass of (sign x cross entropy) over ``idx``; returns the mean CE (unsigned)."""
        self.model.train()
        tot, n = 0.0, 0
        for x, y, _ in self.batches(idx, batch_size, labels=labels):
            ce = F.cross_entropy(self.forward(x), y)
            self.step(sign * ce, opt, clip)
            tot += float(ce.detach()) * len(y)
            n += len(y)
        return tot / max(1, n)

    def probs(self, idx: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        return predict(model or self.model, self.data, "train", idx)

    def unit_accuracy(self, idx: torch.Tensor, model: nn.Module | None = None) -> torch.Tensor:
        """Accuracy (0..1) of the model on ``idx`` grouped by unit; NaN for absent units."""
        p = self.probs(idx, model)
        correct = (p.argmax(1) == self.data.y_train[idx]).float()
        u = self.units[idx]
        hits = torch.zeros(self.n_units, device=self.device).index_add_(0, u, correct)
        cnt = torch.zeros(self.n_units, device=self.device).index_add_(0, u, torch.ones_like(correct))
        return torch.where(cnt > 0, hits / cnt.clamp(min=1), torch.full_like(cnt, float("nan")))

    def random_labels(self, idx: torch.Tensor) -> torch.Tensor:
        """A full-length label tensor whose entries at ``idx`` are uniformly random wrong-or-right
        classes (drawn with the run's generator), the rest the true labels."""
        lab = self.data.y_train.clone()
        r = torch.randint(0, self.num_classes, (len(idx),), generator=self.generator).to(self.device)
        lab[idx] = r
        return lab


class Method(abc.ABC):
    info: ClassVar[MethodInfo]

    def __init__(self, ctx: Context, params: Any):
        self.ctx = ctx
        self.p = params

    def setup(self) -> None:
        """Before epoch 0 (build optimiser, masks, teacher...)."""

    @abc.abstractmethod
    def epoch(self, e: int) -> EpochResult:
        """One epoch of the method's update; the runner evaluates and stores after it."""

    def epochs(self) -> int:
        return int(self.p.epochs)


METHODS: Registry[type[Method]] = Registry("method")


def register(name: str):
    """Register an implementation under a catalogue name (its Params live in params.py)."""
    def deco(cls: type[Method]) -> type[Method]:
        cls.info = CATALOG.get(name)
        return METHODS.register(name)(cls)
    return deco
