"""Builds a method ``Context`` from a task without the runner: tests of methods need an original
model and the index sets, nothing else. Shared by test_methods.py and test_method_behaviour.py."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from engine.methods.base import Context
from engine.models import build_model
from engine.spec import Recipe, RunSpec
from engine.task import Task, resolve
from engine.train import DeviceData, fit


@dataclass
class Trained:
    task: Task
    data: DeviceData
    arch: str
    width: int | None
    state: dict  # the original model's weights
    recipe: Recipe

    def model(self) -> torch.nn.Module:
        n = self.task.partition.num_outputs
        m = build_model(self.arch, n) if self.width is None else _smallcnn(n, self.width)
        m.load_state_dict(self.state)
        return m

    def context(self, seed: int = 0, batch_size: int = 64, retrained: bool = False) -> Context:
        return Context.of(self.model(), self.data, self.task.partition, batch_size=batch_size,
                          seed=seed, retrained=retrained, recipe=self.recipe,
                          original_state=copy.deepcopy(self.state))


def _smallcnn(n: int, width: int):
    from engine.models import smallcnn

    return smallcnn(n, width=width)


def train_original(case: int = 11, per_class: int = 60, epochs: int = 4, width: int | None = 16,
                   seed: int = 0, batch_size: int = 64, lr: float = 0.1) -> Trained:
    torch.manual_seed(seed)
    task = resolve(RunSpec(case=case, per_class=per_class))
    p = task.partition
    data = DeviceData(task.data.x_train, p.y_train, task.data.x_test, p.y_test, torch.device("cpu"))
    m = build_model("smallcnn", p.num_outputs) if width is None else _smallcnn(p.num_outputs, width)
    fit(m, data, torch.arange(len(p.y_train)), epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    state = {k: v.detach().clone() for k, v in m.state_dict().items()}
    return Trained(task, data, "smallcnn", width, state, Recipe(epochs=2, lr=lr, batch_size=batch_size))


def accuracy_on(model: torch.nn.Module, data: DeviceData, idx) -> float:
    from engine.train import accuracy

    return accuracy(model, data, "train", torch.as_tensor(idx, dtype=torch.long))
