"""From a RunSpec to everything a run needs before torch: the dataset arrays, the hierarchy with
its subset layer, the case, the default or named target / forgetting nodes, the Partition and
the method's resolved Params. Torch-free: the TUI and headless call ``check`` to reject bad input
before any engine starts, and ``partition_sizes`` to show |D_f|, |D_uf|, |D_r| live.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .cases import Case, Labels, Partition, build_partition, check_case, default_request, get_case
from .datasets import DATASETS, ArrayData, load_dataset, subset_labels
from .errors import InvalidSpec
from .hierarchy import Hierarchy, load_hierarchy
from .methods.params import resolve_params
from .spec import RunSpec
from .versions import versions_for


@dataclass(frozen=True, eq=False)
class Task:
    spec: RunSpec  # resolved: hierarchy, target, forget and params filled in
    data: ArrayData
    hierarchy: Hierarchy
    case: Case
    partition: Partition
    params: Any  # the method's Params instance
    note: str  # which defaults were chosen


def hierarchy_for(spec: RunSpec) -> Hierarchy:
    info = DATASETS.get(spec.dataset)
    name = spec.hierarchy or info.default_hierarchy
    if not name and info.detect_hierarchy is not None:
        name = info.detect_hierarchy(spec.data_root)
    if not name:
        raise InvalidSpec(f"dataset {spec.dataset!r} has no default hierarchy; pass --hierarchy FILE.json")
    return load_hierarchy(name, spec.subsets)


def resolve_request(spec: RunSpec, hier: Hierarchy) -> tuple[Case, str, tuple[str, ...], str]:
    """Check the case against the hierarchy and fill in the default target / forget nodes."""
    case = get_case(spec.case)
    check_case(case, hier, spec.allow_impractical)
    target, forget, note = default_request(hier, case)
    if spec.target is not None:
        hier.index(case.target_level, spec.target)
        target = spec.target
        if not spec.forget:  # keep the user's target; derive the forget nodes inside it
            tmp = dataclasses.replace(hier, default_target=target if case.target_level == "superclass" else hier.default_target,
                                      default_forget=_classes_inside(hier, case.target_level, target)[:1] or hier.default_forget)
            _, forget, _ = default_request(tmp, case)
    if spec.forget:
        forget = spec.forget
    for f in forget:
        hier.index(case.forget_level, f)
    note = (f"case {case.no} ({case.category}): target {case.target_level} {target!r}, "
            f"forgetting {case.forget_level} {', '.join(forget)}; model outputs {case.model_level}"
            + ("" if spec.target or spec.forget else " (paper defaults)"))
    return case, target, tuple(forget), note


def _classes_inside(hier: Hierarchy, level: str, node: str) -> tuple[str, ...]:
    if level == "superclass":
        return hier.descendants(level, node, "class")
    if level == "class":
        return (node,)
    return (node.rsplit("/", 1)[0],)


@lru_cache(maxsize=4)
def _cached_data(dataset: str, data_root: str | None, per_class: int | None, data_seed: int,
                 download: bool) -> ArrayData:
    return load_dataset(dataset, data_root, per_class, data_seed, download)


def normalise(spec: RunSpec, hier: Hierarchy | None = None) -> RunSpec:
    """The spec with everything its identity depends on spelled out: the defaulted hierarchy,
    target and forgetting nodes, the method's resolved params and the data / method versions
    (engine/versions.py). Two requests for the same run normalise to the same spec hash; a
    changed default, generator or method implementation gives a new one. Torch-free."""
    hier = hier or hierarchy_for(spec)
    case, target, forget, _ = resolve_request(spec, hier)
    params = resolve_params(spec.method, spec.params, spec.dataset, spec.epochs, spec.lr, case.category)
    return spec.replace(hierarchy=spec.hierarchy or hier.name, target=target, forget=tuple(forget),
                        params=dataclasses.asdict(params),
                        versions=versions_for(spec.dataset, spec.data_root, spec.method))


def resolve(spec: RunSpec, cache_dir: str | Path | None = None, download: bool = False) -> Task:
    hier = hierarchy_for(spec)
    case, target, forget, note = resolve_request(spec, hier)
    params = resolve_params(spec.method, spec.params, spec.dataset, spec.epochs, spec.lr, case.category)
    data = _cached_data(spec.dataset, spec.data_root, spec.per_class, spec.data_seed, download)
    if len(data.class_names) != len(hier.classes):
        raise InvalidSpec(f"hierarchy {hier.name!r} has {len(hier.classes)} classes but dataset "
                          f"{spec.dataset!r} has {len(data.class_names)}")
    if data.class_names != hier.classes and spec.hierarchy is None:
        raise InvalidSpec(f"class names of {spec.dataset!r} do not match hierarchy {hier.name!r}")
    sub_tr, sub_te = subset_labels(data, hier.subsets, spec.data_seed, cache_dir)
    part = build_partition(hier, case, target, forget, Labels(data.y_train, sub_tr),
                           Labels(data.y_test, sub_te), spec.allow_impractical)
    resolved = spec.replace(hierarchy=spec.hierarchy or hier.name, target=target, forget=forget,
                            params=dataclasses.asdict(params),
                            versions=versions_for(spec.dataset, spec.data_root, spec.method))
    return Task(resolved, data, hier, case, part, params, note)


def check(spec: RunSpec) -> str:
    """Validate everything that can be validated without loading images; returns the note.
    Raises TarfError (exit 2) on bad input. Dataset availability is checked too."""
    info = DATASETS.get(spec.dataset)
    ok, where = info.locate(spec.data_root)
    if not ok:
        from .errors import DataMissing
        raise DataMissing(where)
    hier = hierarchy_for(spec)
    case, target, forget, note = resolve_request(spec, hier)
    resolve_params(spec.method, spec.params, spec.dataset, spec.epochs, spec.lr, case.category)
    # membership check without data: forgetting nodes inside the target
    if case.practical:
        bad = [f for f in forget if not hier.contains(case.target_level, target, case.forget_level, f)]
        if bad:
            raise InvalidSpec(f"forgetting {case.forget_level} {', '.join(bad)} not inside target "
                              f"{case.target_level} {target!r}; choices inside it: "
                              f"{', '.join(hier.descendants(case.target_level, target, case.forget_level))}")
    elif not any(hier.contains(case.forget_level, f, case.target_level, target) for f in forget):
        raise InvalidSpec(f"impractical case {case.no}: the forgetting {case.forget_level} must contain the target")
    return note


def partition_sizes(spec: RunSpec, cache_dir: str | Path | None = None) -> dict[str, int]:
    return resolve(spec, cache_dir).partition.sizes()
