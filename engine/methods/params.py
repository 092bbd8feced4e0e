"""The method catalogue's torch-free half: every method's name, description and ``Params``.

Why here and not at the top of each method file: the TUI builds its params forms from these
dataclasses and must never import torch; the method implementations (``engine/methods/<name>.py``,
torch) import their ``Params`` from this module. Defaults are the reference's
(``shared/reference/methods.md`` section 4); each field's comment gives meaning and unit.
Every method has ``epochs`` and ``lr``; a spec's top-level ``epochs`` / ``lr`` override them.

A field's constraints are its metadata, written with ``param(default, choices=..., min=...)``:
``resolve_params`` checks them, ``param_fields`` hands them to the forms and ``tarf-tui
methods``, and the conformance tests try a bad value for each. A subclass that only changes a
default (``epochs: int = 5``) keeps the constraint its base declared (``field_meta``).

Adding a method: a ``Params`` dataclass here under ``@_info(name, ...)``, and one implementation
file ``engine/methods/<name>.py`` (dashes as underscores) with ``@register(name)``.
``engine.methods.impl`` finds it from the catalogue; nothing else to edit (README "Adding a
method").
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, fields
from typing import Any, Mapping

from ..errors import InvalidSpec
from ..registry import Registry


@dataclass(frozen=True)
class MethodInfo:
    name: str
    title: str  # as in the paper's tables
    description: str  # one line
    params: type  # frozen dataclass
    ascent: bool = False  # uses gradient ascent (diverges if pushed; clipped, NaN -> diverged)
    dataset_defaults: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    code: tuple[str, ...] = ()  # implementation files (relative to engine/methods): its version
    module: str = ""  # the implementation module engine.methods.impl imports (dotted name)

# files every method's behaviour depends on besides its own (engine/versions.py fingerprints them)
SHARED_CODE = ("base.py", "common.py", "../train.py")


# the method that is every run's reference (Gap, RTE, the TUI's reference column); torch-free
REFERENCE = "retrained"

CATALOG: Registry[MethodInfo] = Registry("method")


def _info(name, title, description, ascent=False, dataset_defaults=None, code=None, module=None):
    """Register a method's catalogue entry. ``code``: its implementation files, default
    ``<name>.py`` (dashes as underscores; a path outside engine/methods may be absolute); the
    shared files are added. ``module``: the implementation module, default the first code
    file's module in this package."""
    def deco(cls):
        own = tuple(code or (f"{name.replace('-', '_')}.py",))
        mod = module or f"{__package__}.{own[0].removesuffix('.py')}"
        CATALOG.add(name, MethodInfo(name, title, description, cls, ascent, dataset_defaults or {},
                                     own + SHARED_CODE, mod))
        return cls
    return deco


def param(default: Any, *, choices: tuple | None = None, min: float | None = None) -> Any:  # noqa: A002
    """A ``Params`` field with constraints (dataclass field metadata): ``choices`` = the only
    valid values, ``min`` = the smallest valid number."""
    meta: dict[str, Any] = {}
    if choices is not None:
        meta["choices"] = tuple(choices)
    if min is not None:
        meta["min"] = min
    return dataclasses.field(default=default, metadata=meta)


def field_meta(cls: type, name: str) -> Mapping[str, Any]:
    """A field's constraints: its own metadata, else that of the nearest base class declaring
    the field with metadata (so an override of a default keeps the base's rule)."""
    for klass in cls.__mro__:
        f = getattr(klass, "__dataclass_fields__", {}).get(name)
        if f is not None and f.metadata:
            return f.metadata
    return {}


MODES = ("sequential", "mixed")  # RL / SalUn: order of the forget and retain passes
RANKS = ("drop", "change")  # TARF / TARF-I: how units (samples) are ranked at t1


# Appendix F.1: k per dataset, and per dataset + task category ("<dataset>/<category>"). The
# embedded dataset takes CIFAR-10's values: bench/synthetic_design.py measured them there
# (docs/results.md section 2).
TARF_K = {"cifar10": {"k": 0.02}, "cifar10/model-mismatch": {"k": 0.04},
          "cifar100": {"k": 0.05}, "cifar100/model-mismatch": {"k": 0.5},
          "synthetic": {"k": 0.02}, "synthetic/model-mismatch": {"k": 0.04},
          # data mismatch on the embedded data: the superclass model is ~99 % sure of "vehicle"
          # on car (CE ~1e-2), so ascent at k <= 0.5 moves nothing in one epoch; at k 1 for
          # t1 = 2 epochs (Appendix E's t1 for data mismatch) truck and bus fall to ~0 % first
          # (bench.synthetic_design; the k x t1 scan is in docs/results.md section 2)
          "synthetic/data-mismatch": {"k": 1.0, "t1": 2}}


@dataclass(frozen=True)
class Common:
    epochs: int = param(10, min=1)  # passes over the method's data
    lr: float = param(0.01, min=0)  # SGD learning rate
    momentum: float = param(0.9, min=0)  # SGD momentum
    weight_decay: float = param(5e-4, min=0)  # SGD weight decay
    clip_grad: float = param(0.0, min=0)  # max global gradient norm (0 = no clipping)


@_info(REFERENCE, "Retrained", "oracle: train from scratch on D_r (the true retaining data) with the original recipe")
@dataclass(frozen=True)
class RetrainedParams:
    epochs: int = param(0, min=0)  # 0 = the original model's recipe epochs
    lr: float = param(0.1, min=0)  # peak one-cycle learning rate (the recipe's)
    momentum: float = param(0.9, min=0)  # SGD momentum
    weight_decay: float = param(5e-4, min=0)  # SGD weight decay
    clip_grad: float = param(0.0, min=0)  # max global gradient norm (0 = none)


@_info("ft", "FT", "fine-tune on D_un with cross entropy")
@dataclass(frozen=True)
class FTParams(Common):
    pass


@_info("rl", "RL", "random labels on D_f (re-drawn each epoch), then a pass on D_un")
@dataclass(frozen=True)
class RLParams(Common):
    mode: str = param("sequential", choices=MODES)  # sequential: D_f pass then D_un pass (CIFAR-10 code); mixed: one shuffled pass over both


@_info("ga", "GA", "gradient ascent: maximise cross entropy on D_f", ascent=True,
       dataset_defaults={"synthetic": {"lr": 1e-3}})  # tuned: docs/results.md "Tuning"
@dataclass(frozen=True)
class GAParams(Common):
    epochs: int = 5  # passes over D_f
    lr: float = 1e-4  # baselines' README value; the embedded dataset's tuned 1e-3 is a dataset default
    clip_grad: float = 5.0  # max global gradient norm: ascent has no natural bound


@_info("iu", "IU", "influence unlearning (WoodFisher): one Newton-like step theta += alpha * F^-1 (g_f - g_r)",
       dataset_defaults={"synthetic": {"alpha": 3.0}})  # retuned on generator 3: docs/results.md "Tuning"
@dataclass(frozen=True)
class IUParams:
    epochs: int = param(1, min=1)  # one-shot method: one step, one evaluation row
    lr: float = param(0.0, min=0)  # unused (no optimiser); kept for the common interface
    alpha: float = 10.0  # step size of the influence update (the embedded dataset's tuned 3 is a dataset default)
    n_fisher: int = 1000  # retain samples whose per-sample gradients build the Fisher
    damping: float = 1000.0  # Woodbury damping N: F = I + (1/N) sum_i g_i g_i^T, as in the code
    fisher_mem_mb: int = 2048  # memory for per-sample gradients; beyond it G G^T is built block-wise (exact, slower)
    clip_grad: float = param(0.0, min=0)  # unused


@_info("bs", "BS", "boundary shrink: FGSM neighbour label from the original model, fit clean D_f to it")
@dataclass(frozen=True)
class BSParams(Common):
    lr: float = 1e-5  # original code
    weight_decay: float = 0.0  # original code
    bound: float = 0.1  # FGSM step in [0, 1] pixel space


@_info("l1-sparse", "L1-sparse", "fine-tune on D_un with an L1 penalty alpha_t * ||theta||_1, alpha_t decaying to 0")
@dataclass(frozen=True)
class L1SparseParams(Common):
    alpha: float = 5e-5  # L1 weight at epoch 0, decays linearly to 0; tuned on the embedded dataset (docs/results.md)


@_info("salun", "SalUn", "random labels restricted to the 50% most salient weights for D_f")
@dataclass(frozen=True)
class SalUnParams(Common):
    sparsity: float = 0.5  # fraction of weights kept trainable (top |grad of CE on D_f|)
    mode: str = param("sequential", choices=MODES)  # as RL: forget pass then retain pass each epoch


@_info("scrub", "SCRUB", "teacher-student: max KL on D_f for msteps epochs, min CE + KL on D_un", ascent=True)
@dataclass(frozen=True)
class SCRUBParams(Common):
    epochs: int = 3  # official CIFAR-10 notebook
    lr: float = 5e-4  # official CIFAR-10 notebook
    msteps: int = 2  # epochs with a max (forget) pass
    gamma: float = 0.99  # weight of CE in the min pass
    alpha: float = 0.001  # weight of KL in the min pass
    kd_t: float = 4.0  # distillation temperature
    forget_batch_size: int = 32  # batch size of the max pass
    lr_decay_epochs: str = "3,5,9"  # epochs at which lr is multiplied by 0.1
    clip_grad: float = 5.0  # ascent guard


@_info("tarf", "TARF", "target-aware forgetting: annealed GA on D_f, then retain only on D_un units judged outside the target",
       ascent=True,
       dataset_defaults=TARF_K)
@dataclass(frozen=True)
class TARFParams(Common):
    k: float = 0.02  # forgetting weight k of k(t) = max(0, k (T - t - t0) / T); CIFAR-10 0.02 (0.04 model mismatch), CIFAR-100 0.05 (0.5)
    t0: int = 2  # GA stops at epoch T - t0
    t1: int = 1  # end of Phase I (pure GA); identification happens here
    ga_lr_scale: float = 1.0  # multiply the D_f term's k by this (kept 1 as in the paper)
    n_exclude: int = -1  # units to exclude; -1 = the task's count of hidden target units
    rank: str = param("change", choices=RANKS)  # how units are ranked at t1: "change" (|accuracy change|, Algorithm 1's "rank of class accuracy difference") or "drop" (signed accuracy drop, a variant)
    clip_grad: float = 5.0  # ascent guard


@_info("tarf-i", "TARF-I", "TARF with per-instance identification: exclude D_un samples whose loss moved most in Phase I",
       ascent=True, dataset_defaults=TARF_K, code=("tarf_i.py", "tarf.py"))
@dataclass(frozen=True)
class TARFIParams(TARFParams):
    quantile: float = -1.0  # fraction of D_un to exclude; -1 = estimate from the task (|hidden units| share)
    rank: str = "change"  # how samples are ranked at t1: "change" (I_con = |CE change|, Algorithm 2) or "drop" (CE increase only)


# --------------------------------------------------------------------------------------------
def method_names() -> list[str]:
    return CATALOG.names()


def param_fields(method: str) -> list[dict]:
    """Fields of a method's Params with type, default, the comment and the constraints
    (``choices``: tuple or None, ``min``: number or None) for forms and --help."""
    cls = CATALOG.get(method).params
    comments = _field_comments(cls)
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        meta = field_meta(cls, f.name)
        out.append({"name": f.name, "type": getattr(hints[f.name], "__name__", str(hints[f.name])),
                    "default": f.default, "help": comments.get(f.name, ""),
                    "choices": meta.get("choices"), "min": meta.get("min")})
    return out


def _field_comments(cls) -> dict[str, str]:
    import inspect

    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        for line in src.splitlines():
            s = line.strip()
            if ":" in s and "#" in s and not s.startswith(("#", "@", "class")):
                name = s.split(":", 1)[0].strip()
                out[name] = s.split("#", 1)[1].strip()
    return out


def coerce(tp: Any, value: Any, where: str) -> Any:
    """Check (and gently convert int->float, str->number) a param value against its type."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and tp in (int, float):
        try:
            return tp(value)
        except ValueError:
            pass
    ok = (tp is bool and isinstance(value, bool)) or (tp is int and isinstance(value, int) and not isinstance(value, bool)) \
        or (tp is float and isinstance(value, float)) or (tp is str and isinstance(value, str))
    if not ok:
        raise InvalidSpec(f"{where} must be {tp.__name__}, got {value!r}")
    return value


def resolve_params(method: str, overrides: Mapping[str, Any] | None = None, dataset: str | None = None,
                   epochs: int | None = None, lr: float | None = None, category: str | None = None):
    """The method's Params with the dataset's (and dataset/category's) defaults, then the
    user's overrides, applied."""
    info = CATALOG.get(method)
    cls = info.params
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = dict(info.dataset_defaults.get(dataset or "", {}))
    values.update(info.dataset_defaults.get(f"{dataset}/{category}", {}))
    values.update(overrides or {})
    if epochs is not None:
        values["epochs"] = epochs
    if lr is not None:
        values["lr"] = lr
    valid = [f.name for f in fields(cls)]
    for k in list(values):
        if k not in valid:
            raise InvalidSpec(f"unknown parameter {k!r} for method {method!r}; valid: {', '.join(valid)}")
        values[k] = coerce(hints[k], values[k], f"{method}.{k}")
    p = cls(**values)
    for f in fields(p):
        check_value(method, f.name, getattr(p, f.name), field_meta(cls, f.name))
    return p


def check_value(method: str, name: str, v: Any, meta: Mapping[str, Any]) -> None:
    """``InvalidSpec`` (one line) when ``v`` breaks the field's ``choices`` / ``min``."""
    choices = meta.get("choices")
    if choices is not None and v not in choices:
        raise InvalidSpec(f"{method}.{name} must be one of {', '.join(map(str, choices))}, got {v!r}")
    lo = meta.get("min")
    if lo is not None and isinstance(v, (int, float)) and not isinstance(v, bool) and v < lo:
        raise InvalidSpec(f"{method}.{name} must be >= {lo}, got {v}")
