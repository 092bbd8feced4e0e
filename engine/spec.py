"""RunSpec: the one thing handed to an engine. Frozen, validated, JSON round trip, stable hash.

Unknown keys and wrong types are rejected (nanoGPT's habit). ``None`` fields mean "the
default": the dataset's hierarchy, the paper's target / forgetting nodes, the method's own
epochs and learning rate. ``task.resolve`` fills them in; the store keeps the resolved spec.
Torch-free.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import types
import typing
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .errors import InvalidSpec
from .hierarchy import check_subsets

ParamValue = typing.Union[int, float, str, bool, None]

# The model catalogue's names, torch-free (engine/models.py registers exactly these; a test
# checks), so front ends can list and validate architectures without importing torch.
ARCHS: tuple[str, ...] = ("smallcnn", "resnet18", "vgg19", "wrn16-4", "wrn28-10")


@dataclass(frozen=True)
class Recipe:
    """How the original model (and the Retrained reference) is trained."""

    epochs: int | None = None  # None = the dataset's default (synthetic 10, CIFAR 30)
    lr: float = 0.1  # peak learning rate of the one-cycle schedule
    batch_size: int = 128  # images per step
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 5e-4  # SGD weight decay
    label_smoothing: float = 0.0  # cross-entropy label smoothing
    augment: bool = True  # random crop (pad 1/8 of the side) + horizontal flip


@dataclass(frozen=True)
class RunSpec:
    dataset: str = "synthetic"  # registry name: synthetic, cifar10, cifar100, npz
    data_root: str | None = None  # folder (cifar*) or file (npz); None = dataset default
    per_class: int | None = None  # cut training set to N per class (test in proportion)
    data_seed: int = 0  # seed of the synthetic generator and of the per-class cut
    hierarchy: str | None = None  # built-in name or JSON path; None = dataset default
    subsets: int = 3  # K subsets per class (0 = two layers)
    case: int = 11  # Table 4 number
    target: str | None = None  # target concept at L_T; None = paper default
    forget: tuple[str, ...] = ()  # forgetting nodes at L_D; empty = paper default
    allow_impractical: bool = False  # run a case with L_D coarser than L_T
    method: str = "tarf"  # registry name
    params: Mapping[str, ParamValue] = field(default_factory=dict)  # method Params overrides
    arch: str = "smallcnn"  # model registry name
    epochs: int | None = None  # None = method default
    lr: float | None = None  # None = method default
    batch_size: int = 128  # unlearning batch size
    seed: int = 0  # seed of model init, batches and method randomness
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    recipe: Recipe = field(default_factory=Recipe)
    mia: bool = True  # compute MIA at the end (an SVC fit)
    mia_every_epoch: bool = False  # also per epoch (costly)
    label: str = ""  # free text shown in lists
    versions: Mapping[str, str] = field(default_factory=dict)  # {"data", "method"}: engine/versions.py; filled by task.normalise

    def __post_init__(self):
        # freeze the mapping and the tuple so the dataclass is hashable and immutable
        object.__setattr__(self, "params", types.MappingProxyType(dict(self.params)))
        object.__setattr__(self, "versions", types.MappingProxyType(dict(self.versions)))
        object.__setattr__(self, "forget", tuple(self.forget))
        _validate(self)

    # ---- serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["params"] = dict(sorted(self.params.items()))
        d["versions"] = dict(sorted(self.versions.items()))
        d["forget"] = list(self.forget)
        d["recipe"] = dataclasses.asdict(self.recipe)
        return d

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunSpec":
        if not isinstance(d, Mapping):
            raise InvalidSpec("a run spec must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InvalidSpec(f"unknown spec keys: {', '.join(unknown)}; valid keys: "
                              f"{', '.join(sorted(known))}")
        kw = dict(d)
        if "recipe" in kw and not isinstance(kw["recipe"], Recipe):
            r = kw["recipe"]
            if not isinstance(r, Mapping):
                raise InvalidSpec("recipe must be an object")
            rk = {f.name for f in fields(Recipe)}
            bad = sorted(set(r) - rk)
            if bad:
                raise InvalidSpec(f"unknown recipe keys: {', '.join(bad)}; valid: {', '.join(sorted(rk))}")
            _check_types(Recipe, r)
            kw["recipe"] = Recipe(**r)
        if "forget" in kw and isinstance(kw["forget"], str):
            kw["forget"] = tuple(x for x in kw["forget"].split(",") if x)
        return cls(**kw)

    @classmethod
    def from_json(cls, text: str) -> "RunSpec":
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidSpec(f"run spec is not valid JSON: {e}") from None
        return cls.from_dict(d)

    def __hash__(self) -> int:
        return hash(self.to_json())

    def experiment_key(self) -> str:
        """Runs that answer the same question (same data, task, model and original recipe) and
        differ only in method, its settings or the seed share this key; Compare groups by it."""
        d = self.to_dict()
        for k in ("device", "data_root", "label", "method", "params", "epochs", "lr",
                  "batch_size", "seed", "mia", "mia_every_epoch"):
            d.pop(k)
        d["versions"].pop("method", None)  # the data version stays: other data, other question
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]

    def replace(self, **changes) -> "RunSpec":
        return dataclasses.replace(self, **changes)

    def hash(self) -> str:
        """Stable identity of the experiment: everything except where it runs and the label."""
        d = self.to_dict()
        for k in ("device", "data_root", "label"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------
_NAME = re.compile(r"^[A-Za-z0-9_.:/+\- ]+$")


def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if tp is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (tuple, list):
        return isinstance(value, (tuple, list)) and all(isinstance(v, str) for v in value)
    if origin is Mapping or tp is Mapping:
        return isinstance(value, Mapping)
    if isinstance(tp, type):
        return isinstance(value, tp)
    return True


def _check_types(cls, values: Mapping[str, Any]) -> None:
    hints = typing.get_type_hints(cls)
    for k, v in values.items():
        if k in hints and not _type_ok(v, hints[k]):
            raise InvalidSpec(f"spec field {k!r} has the wrong type: {v!r} "
                              f"(expected {getattr(hints[k], '__name__', hints[k])})")


def _validate(s: RunSpec) -> None:
    _check_types(RunSpec, {f.name: getattr(s, f.name) for f in fields(s)})
    for k, v in s.params.items():
        if not isinstance(k, str) or not _type_ok(v, ParamValue):
            raise InvalidSpec(f"method param {k!r} must be a number, string or bool, got {v!r}")
    for k, v in s.versions.items():
        if k not in ("data", "method") or not isinstance(v, str):
            raise InvalidSpec(f"versions must map 'data' / 'method' to strings, got {k!r}: {v!r}")
    if not 1 <= s.case <= 27:
        raise InvalidSpec(f"case must be 1..27, got {s.case}")
    check_subsets(s.subsets)
    for name, v in (("epochs", s.epochs), ("per_class", s.per_class), ("batch_size", s.batch_size)):
        if v is not None and v < 1:
            raise InvalidSpec(f"{name} must be >= 1, got {v}")
    if s.lr is not None and not s.lr > 0:
        raise InvalidSpec(f"lr must be > 0, got {s.lr}")
    if s.recipe.epochs is not None and s.recipe.epochs < 1:
        raise InvalidSpec(f"recipe.epochs must be >= 1, got {s.recipe.epochs}")
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", s.device):
        raise InvalidSpec(f"device must be auto, cpu, cuda or cuda:N, got {s.device!r}")
    for name in (s.dataset, s.method, s.arch):
        if not _NAME.match(name):
            raise InvalidSpec(f"invalid name {name!r}")
    if s.arch not in ARCHS:
        from .errors import UnknownName
        raise UnknownName("architecture", s.arch, ARCHS)


def parse_set(items: list[str] | tuple[str, ...], method: str | None = None) -> dict[str, dict[str, ParamValue]]:
    """``--set method.param=value`` items -> {method: {param: value}}. Values are parsed as
    JSON when they can be (numbers, true/false, null), else kept as strings."""
    out: dict[str, dict[str, ParamValue]] = {}
    for item in items:
        if "=" not in item:
            raise InvalidSpec(f"--set expects method.param=value, got {item!r}")
        key, raw = item.split("=", 1)
        if "." in key:
            m, p = key.split(".", 1)
        elif method:
            m, p = method, key
        else:
            raise InvalidSpec(f"--set expects method.param=value, got {item!r}")
        try:
            val = json.loads(raw)
            if isinstance(val, (list, dict)):
                val = raw
        except json.JSONDecodeError:
            val = raw
        out.setdefault(m.strip(), {})[p.strip()] = val
    return out
