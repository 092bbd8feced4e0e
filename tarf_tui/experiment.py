"""From options (comma lists on the command line, or a TOML grid) to the ordered, validated list
of run specs that ``tarf-tui headless`` submits. Torch-free; no terminal needed.

Grid rules
----------
- Every option takes a comma list; the runs are the Cartesian product of all lists.
  ``--forget`` names *one request* per comma item; join several nodes of one request with
  ``+`` (``--forget boy+girl,baby`` is two requests: {boy, girl} and {baby}).
- ``--method all`` means every catalogued method except ``retrained``; method names are
  case-insensitive (``Tarf`` is ``tarf``).
- ``--seed`` items may be ranges: ``0-2`` is ``0,1,2`` (``options.parse_seeds``).
- ``--recipe-epochs N`` sets ``RunSpec.recipe.epochs``: the epochs of the original model and of
  the Retrained reference (default: the dataset's recipe). It is part of the experiment.
- ``--set method.param=value`` (repeatable) is *not* split on commas (``scrub.lr_decay_epochs=3,5,9``
  is one value); a ``--set`` for a method that is not run is refused (nothing would use it). In a TOML grid, ``set`` is either a list of such strings or a table
  ``{"tarf.k" = [0.01, 0.02]}`` whose lists expand like every other key.
- The Retrained reference of every experiment (one per seed) is added automatically and ordered
  first: the same spec with method ``retrained``, no method params (``--set retrained.*`` still
  applies), and the recipe's own epochs / lr / batch size.
- Every spec passes ``engine.task.check`` before anything starts; the first bad one raises a
  ``TarfError`` naming the value and the valid choices.
- Specs are stored with their defaults made explicit (hierarchy, target, forgetting nodes), so a
  queued run already carries the experiment key its finished self will have, and the same
  experiment asked for with or without the defaults spelled out is the same spec (same hash).

``plan`` gives each run the runs it waits for (see its docstring).
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from engine.cases import get_case
from engine.errors import InvalidSpec, TarfError, UnknownName
from engine.methods.params import CATALOG, resolve_params
from engine.spec import ARCHS, Recipe, RunSpec, parse_set
from engine.task import check, normalise

from .options import DEFAULT_METHODS, REFERENCE, method_name, seed_values


def _int(name: str) -> Callable[[Any], int]:
    def conv(v: Any) -> int:
        if isinstance(v, bool):
            raise InvalidSpec(f"--{name}: expected an integer, got {v!r}")
        if isinstance(v, int):
            return v
        try:
            return int(str(v).strip())
        except ValueError:
            raise InvalidSpec(f"--{name}: expected an integer, got {v!r}") from None
    return conv


def _float(name: str) -> Callable[[Any], float]:
    def conv(v: Any) -> float:
        if isinstance(v, bool):
            raise InvalidSpec(f"--{name}: expected a number, got {v!r}")
        try:
            return float(str(v).strip()) if not isinstance(v, (int, float)) else float(v)
        except ValueError:
            raise InvalidSpec(f"--{name}: expected a number, got {v!r}") from None
    return conv


def _str(v: Any) -> str:
    if not isinstance(v, str) or not v.strip():
        raise InvalidSpec(f"expected a non-empty name, got {v!r}")
    return v.strip()


def _bool(name: str) -> Callable[[Any], bool]:
    def conv(v: Any) -> bool:
        if isinstance(v, bool):
            return v
        s = str(v).strip().lower()
        if s in ("1", "true", "yes", "on"):
            return True
        if s in ("0", "false", "no", "off"):
            return False
        raise InvalidSpec(f"--{name}: expected true or false, got {v!r}")
    return conv


def _forget(v: Any) -> tuple[str, ...]:
    items = v if isinstance(v, (list, tuple)) else str(v).split("+")
    out = tuple(str(x).strip() for x in items if str(x).strip())
    if not out:
        raise InvalidSpec(f"--forget: expected node names, got {v!r}")
    return out


# Grid key -> (RunSpec field, converter of one value). Keys spelt with '-' are accepted too.
KEYS: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "dataset": ("dataset", _str),
    "data_root": ("data_root", _str),
    "hierarchy": ("hierarchy", _str),
    "subsets": ("subsets", _int("subsets")),
    "case": ("case", _int("case")),
    "target": ("target", _str),
    "forget": ("forget", _forget),
    "method": ("method", _str),
    "arch": ("arch", _str),
    "epochs": ("epochs", _int("epochs")),
    "lr": ("lr", _float("lr")),
    "batch_size": ("batch_size", _int("batch-size")),
    "seed": ("seed", _int("seed")),
    "recipe_epochs": ("recipe", _int("recipe-epochs")),
    "device": ("device", _str),
    "per_class": ("per_class", _int("per-class")),
    "allow_impractical": ("allow_impractical", _bool("allow-impractical")),
}
GRID_KEYS = tuple(KEYS) + ("set",)


def arch_names() -> list[str]:
    """Model names (``engine.spec.ARCHS``: torch-free, kept equal to the model registry)."""
    return list(ARCHS)


def load_grid(path: str | Path) -> dict[str, Any]:
    """A TOML grid file -> {key: value or list}. Unknown keys are rejected."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise InvalidSpec(f"--grid: no such file {str(p)!r}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidSpec(f"--grid: cannot read {str(p)!r}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise InvalidSpec(f"--grid: {str(p)!r} is not valid TOML: {e}") from None
    out = {}
    for k, v in data.items():
        key = k.replace("-", "_")
        if key == "slurm" and isinstance(v, dict):
            continue  # executor settings, read by tarf_tui/slurm.py
        if key not in GRID_KEYS:
            raise UnknownName("grid key", k, GRID_KEYS)
        out[key] = v
    return out


def _values(key: str, raw: Any) -> list[Any]:
    """One option's raw value (a CLI string with commas, a TOML scalar or list) -> the list of
    converted values it stands for."""
    conv = KEYS[key][1]
    if isinstance(raw, str):
        items = [x for x in (s.strip() for s in raw.split(",")) if x]
        if not items:
            raise InvalidSpec(f"--{key.replace('_', '-')}: empty value")
    elif isinstance(raw, (list, tuple)):
        items = list(raw)
        if not items:
            raise InvalidSpec(f"--{key.replace('_', '-')}: empty list")
    else:
        items = [raw]
    if key == "seed":  # ranges: 0-2 = 0,1,2
        items = [s for x in items for s in seed_values(x)]
    if key == "recipe_epochs":
        items = [Recipe(epochs=_positive("recipe-epochs", conv(x))) for x in items]
        conv = _same
    if key == "method":
        conv = _method
    try:
        vals = [conv(x) for x in items]
    except InvalidSpec as e:
        msg = str(e)
        if not msg.startswith("--"):
            msg = f"--{key.replace('_', '-')}: {msg}"
        raise InvalidSpec(msg) from None
    out = []
    for v in vals:  # keep order, drop repeats
        if v not in out:
            out.append(v)
    return out


def _same(v: Any) -> Any:
    return v


def _positive(name: str, v: int) -> int:
    if v < 1:
        raise InvalidSpec(f"--{name}: expected an integer >= 1, got {v}")
    return v


def _method(v: Any) -> str:
    name = _str(v)
    return "all" if name.lower() == "all" else method_name(name)


def _methods(values: list[str]) -> list[str]:
    out: list[str] = []
    for m in values:
        names = [n for n in CATALOG.names() if n != REFERENCE] if m == "all" else [method_name(m)]
        for n in names:
            if n not in out:
                out.append(n)
    return out


def _set_grid(grid_set: Any, cli_set: Iterable[str]) -> list[list[str]]:
    """Every combination of ``--set`` items: the CLI items always, the TOML ``set`` entries as
    a list (all applied) or a table (lists expand)."""
    base = list(cli_set)
    if grid_set is None:
        return [base]
    if isinstance(grid_set, list):
        if not all(isinstance(x, str) for x in grid_set):
            raise InvalidSpec("grid key 'set' must be a list of 'method.param=value' strings or a table")
        return [list(grid_set) + base]
    if isinstance(grid_set, dict):
        keys, choices = [], []
        for k, v in grid_set.items():
            keys.append(k)
            vs = v if isinstance(v, list) else [v]
            choices.append(vs)
        combos = []
        for combo in itertools.product(*choices):
            combos.append([f"{k}={_toml_value(v)}" for k, v in zip(keys, combo)] + base)
        return combos
    raise InvalidSpec("grid key 'set' must be a list of 'method.param=value' strings or a table")


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


@dataclass
class Expansion:
    specs: list[RunSpec]  # ordered: per experiment, its Retrained references first
    notes: list[str] = field(default_factory=list)  # one line per experiment
    warnings: list[str] = field(default_factory=list)


def expand(options: Mapping[str, Any], grid: Mapping[str, Any] | None = None,
           sets: Iterable[str] = (), methods_default: Iterable[str] = DEFAULT_METHODS,
           validate: Callable[[RunSpec], str] = check) -> Expansion:
    """Options and a grid -> the validated, ordered specs.

    ``options``: grid keys -> raw value (None = not given); they win over ``grid``'s.
    ``sets``: the repeated ``--set`` items. Raises ``TarfError`` on any bad value, before
    anything is started."""
    merged: dict[str, Any] = {k: v for k, v in (grid or {}).items() if k != "set"}
    for k, v in options.items():
        key = k.replace("-", "_")
        if key not in KEYS:
            raise UnknownName("option", k, KEYS)
        if v is not None:
            merged[key] = v
    grid_set = (grid or {}).get("set")

    axes: dict[str, list[Any]] = {k: _values(k, v) for k, v in merged.items()}
    methods = _methods(axes.pop("method", list(methods_default)))
    user_methods = [m for m in methods if m != REFERENCE]
    if not user_methods and REFERENCE not in methods:
        raise InvalidSpec("no methods to run")
    if "arch" in axes:
        known = arch_names()
        for a in axes["arch"]:
            if known and a not in known:
                raise UnknownName("architecture", a, known)
    for c in axes.get("case", []):
        get_case(c)

    set_combos = _set_grid(grid_set, sets)
    parsed_sets = []
    warnings: list[str] = []
    single = user_methods[0] if len(user_methods) == 1 else None
    for combo in set_combos:
        ps: dict[str, dict[str, Any]] = {}
        for m, kv in parse_set(combo, single).items():
            ps.setdefault(method_name(m), {}).update(kv)  # unknown: lists the methods
        for m in ps:
            if m != REFERENCE and m not in user_methods:
                raise InvalidSpec(f"--set {m}.*: method {m!r} is not among the methods run "
                                  f"({', '.join(user_methods) or REFERENCE}); add it to "
                                  "--method or drop the --set")
        parsed_sets.append(ps)

    keys = list(axes)
    experiments: dict[str, dict[str, list[RunSpec]]] = {}  # key -> {"ref": [...], "runs": [...]}
    seen: set[str] = set()
    refs: dict[str, RunSpec] = {}  # raw reference hash -> normalised reference
    notes: dict[str, str] = {}
    for combo in itertools.product(*(axes[k] for k in keys)):
        base_kw = {KEYS[k][0]: v for k, v in zip(keys, combo)}
        for ps in parsed_sets:
            for m in user_methods or [REFERENCE]:
                try:
                    spec = RunSpec(**base_kw, method=m, params=ps.get(m, {}))
                except TypeError as e:  # should not happen: KEYS maps to RunSpec fields
                    raise InvalidSpec(str(e)) from None
                spec, note = _normalise(spec, validate)
                ek = spec.experiment_key()
                exp = experiments.setdefault(ek, {"ref": [], "runs": []})
                notes.setdefault(ek, note)
                raw = reference_of(spec, ps.get(REFERENCE, {}))
                ref = refs.get(raw.hash())
                if ref is None:  # every method of a seed shares it: validate it once
                    ref = refs[raw.hash()] = _normalise(raw, validate)[0]
                if ref.hash() not in seen:
                    seen.add(ref.hash())
                    exp["ref"].append(ref)
                if m != REFERENCE and spec.hash() not in seen:
                    seen.add(spec.hash())
                    exp["runs"].append(spec)
    specs = [s for e in experiments.values() for s in (*e["ref"], *e["runs"])]
    return Expansion(specs, list(notes.values()), list(dict.fromkeys(warnings)))


def reference_of(spec: RunSpec, params: Mapping[str, Any] | None = None) -> RunSpec:
    """The Retrained reference of ``spec``'s experiment for its seed: method ``retrained``, no
    method params but ``params`` (the ``--set retrained.*`` ones), the recipe's epochs, lr
    and batch size."""
    default_bs = next(f.default for f in fields(RunSpec) if f.name == "batch_size")
    return spec.replace(method=REFERENCE, params=dict(params or {}), epochs=None, lr=None,
                        batch_size=default_bs)


def _normalise(spec: RunSpec, validate: Callable[[RunSpec], str]) -> tuple[RunSpec, str]:
    """Validate, then spell out everything the run's identity depends on (``task.normalise``:
    defaulted nodes, resolved params, data and method versions): when a default, the generator
    or a method's code changes, a finished run of the old one is no longer reused."""
    note = validate(spec)
    return normalise(spec), note


# ---- run order -----------------------------------------------------------------------------
def original_key(spec: RunSpec) -> tuple:
    """What the original model of a run depends on: data, hierarchy, the model's output level,
    architecture, recipe and seed. Runs sharing it share the engine's cached original."""
    case = get_case(spec.case)
    d = spec.to_dict()
    return (d["dataset"], d["data_root"], d["per_class"], d["data_seed"], d["hierarchy"],
            d["subsets"], case.model_level, d["arch"], tuple(sorted(d["recipe"].items())),
            d["seed"])


def dependencies(specs: list[RunSpec]) -> dict[int, set[int]]:
    """For each index of ``specs``, the indices it must wait for (until they are terminal);
    ``planner.Scheduler`` applies it:

    - a method run waits for the Retrained reference of its experiment and seed: it reads the
      reference's metrics for its Gap (and the engine's reference cache is warm);
    - among runs sharing an original model (``original_key``) the first one runs alone, and so
      does the first non-Retrained one, so two engines never train the same uncached original
      at once (the engines share it through the content-addressed model cache). The Retrained
      reference does not use the original model and the original does not need Retrained:
      they are independent, and a method needs both.
    Runs of other experiments and seeds run side by side."""
    deps: dict[int, set[int]] = {i: set() for i in range(len(specs))}
    ref_of: dict[tuple[str, int], int] = {}
    for i, s in enumerate(specs):
        if s.method == REFERENCE:
            ref_of.setdefault((s.experiment_key(), s.seed), i)
    first: dict[tuple, int] = {}
    first_method: dict[tuple, int] = {}
    for i, s in enumerate(specs):
        ok = original_key(s)
        if ok in first and first[ok] != i:
            deps[i].add(first[ok])
        first.setdefault(ok, i)
        if s.method != REFERENCE:
            r = ref_of.get((s.experiment_key(), s.seed))
            if r is not None:
                deps[i].add(r)
            if ok in first_method:
                deps[i].add(first_method[ok])
            else:
                first_method[ok] = i
    return deps


plan = dependencies  # the older name


def describe(spec: RunSpec) -> str:
    """One line for progress and plan lines: the method's title, case, dataset, seed, the
    unlearning epochs when given, the recipe epochs when given, and only the method params
    that differ from that method's defaults for this dataset and case (specs carry every
    param written out, see ``_normalise``)."""
    title = CATALOG.get(spec.method).title if spec.method in CATALOG else spec.method
    try:
        base = asdict(resolve_params(spec.method, {}, spec.dataset, spec.epochs, spec.lr,
                                     get_case(spec.case).category))
    except TarfError:
        base = {}
    extra = "".join(f" {k}={v}" for k, v in sorted(spec.params.items()) if base.get(k) != v)
    return (f"{title} case {spec.case} {spec.dataset} seed {spec.seed}"
            + (f" epochs {spec.epochs}" if spec.epochs else "")
            + (f" recipe-epochs {spec.recipe.epochs}" if spec.recipe.epochs else "") + extra)


__all__ = ["DEFAULT_METHODS", "Expansion", "GRID_KEYS", "KEYS", "REFERENCE", "TarfError",
           "arch_names", "dependencies", "describe", "expand", "load_grid", "original_key", "plan",
           "reference_of"]
