"""The paper's 27 task cases (Table 4; Table 2 for two layers) and the data partitions they imply.

A case fixes L_D (level the forgetting request names), L_M (level the model outputs) and L_T
(level of the target concept). Given a target node t at L_T and forgetting nodes F at L_D:
  D_t = samples of t;  D_f = samples of F;  D_un = D minus D_f;  D_uf = D_t minus D_f;
  D_r = D minus D_t; and on the test set test_t / test_r.
Labels are at L_M everywhere. Torch-free (numpy only), so the TUI can show partition sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InvalidSpec, TarfError, UnknownName
from .hierarchy import RANK, Hierarchy

S, C, SC = "subset", "class", "superclass"

CATEGORIES = ("all-matched", "target-mismatch", "model-mismatch", "data-mismatch",
              "similar-to-all-matched", "different", "impractical")

# Table 4, row by row: (No., forgetting data L_D, model output L_M, target concept L_T, category)
_TABLE4 = (
    (1, S, S, S, "all-matched"),
    (2, S, S, C, "target-mismatch"),
    (3, S, C, S, "model-mismatch"),
    (4, S, C, C, "data-mismatch"),
    (5, S, S, SC, "different"),
    (6, S, SC, S, "different"),
    (7, S, SC, SC, "different"),
    (8, S, C, SC, "different"),
    (9, S, SC, C, "different"),
    (10, C, C, C, "all-matched"),
    (11, C, C, SC, "target-mismatch"),
    (12, C, SC, C, "model-mismatch"),
    (13, C, SC, SC, "data-mismatch"),
    (14, C, S, S, "impractical"),
    (15, C, S, C, "similar-to-all-matched"),
    (16, C, S, SC, "different"),
    (17, C, C, S, "impractical"),
    (18, C, SC, S, "impractical"),
    (19, SC, SC, SC, "all-matched"),
    (20, SC, C, C, "impractical"),
    (21, SC, C, SC, "similar-to-all-matched"),
    (22, SC, SC, C, "impractical"),
    (23, SC, S, S, "impractical"),
    (24, SC, S, C, "impractical"),
    (25, SC, S, SC, "similar-to-all-matched"),
    (26, SC, C, S, "impractical"),
    (27, SC, SC, S, "impractical"),
)
# Table 2 (two layers) row -> Table 4 number.
TABLE2_TO_4 = {1: 10, 2: 11, 3: 12, 4: 13, 5: 20, 6: 21, 7: 22, 8: 19}
MAIN_CASES = (10, 11, 12, 13)  # the paper's four tasks (Table 1)


@dataclass(frozen=True)
class Case:
    no: int
    forget_level: str
    model_level: str
    target_level: str
    category: str

    @property
    def practical(self) -> bool:
        return RANK[self.forget_level] <= RANK[self.target_level]

    @property
    def main(self) -> bool:
        return self.no in MAIN_CASES

    @property
    def layers_needed(self) -> int:
        return 3 if S in (self.forget_level, self.model_level, self.target_level) else 2

    @property
    def two_layer_no(self) -> int | None:
        return {v: k for k, v in TABLE2_TO_4.items()}.get(self.no)

    @property
    def comment(self) -> str:
        if not self.practical:
            return "Impractical since L_D > L_T"
        return self.category.replace("-", " ").capitalize()

    def to_dict(self) -> dict:
        return {"no": self.no, "forget_level": self.forget_level, "model_level": self.model_level,
                "target_level": self.target_level, "category": self.category,
                "practical": self.practical, "main": self.main,
                "layers_needed": self.layers_needed, "two_layer_no": self.two_layer_no}


CASES: tuple[Case, ...] = tuple(Case(*row) for row in _TABLE4)


def get_case(no: int) -> Case:
    if not isinstance(no, int) or isinstance(no, bool) or not 1 <= no <= 27:
        raise UnknownName("case", no, range(1, 28))
    return CASES[no - 1]


def cases_for(layers: int) -> tuple[Case, ...]:
    """The cases a hierarchy with ``layers`` label layers can express (2: Table 2's eight)."""
    if layers not in (2, 3):
        raise InvalidSpec(f"layers must be 2 or 3, got {layers}")
    return tuple(c for c in CASES if c.layers_needed <= layers)


def check_case(case: Case, hier: Hierarchy, allow_impractical: bool = False) -> None:
    if case.layers_needed > hier.layers:
        raise InvalidSpec(
            f"case {case.no} uses the subset level but hierarchy {hier.name!r} has two layers "
            f"(subsets=0); pass --subsets K with K>=2")
    if not case.practical and not allow_impractical:
        raise InvalidSpec(
            f"case {case.no} is impractical (forgetting data at {case.forget_level} is coarser "
            f"than the target at {case.target_level}); pass --allow-impractical to run it anyway")


# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Labels:
    """Per-sample labels of one split: class index, and global subset index when K > 0."""

    cls: np.ndarray
    sub: np.ndarray | None = None

    def at(self, level: str, hier: Hierarchy) -> np.ndarray:
        if level == C:
            return self.cls
        if level == SC:
            return np.asarray(hier.class_to_super, dtype=np.int64)[self.cls]
        if self.sub is None:
            raise InvalidSpec("no subset labels: the hierarchy has two layers (subsets=0)")
        return self.sub


def default_request(hier: Hierarchy, case: Case) -> tuple[str, tuple[str, ...], str]:
    """The paper's default target and forgetting nodes for this case, and a note saying which
    were chosen. CIFAR-10: forget automobile, target vehicle; CIFAR-100: boy+girl in people."""
    classes = list(hier.default_forget)
    lt, ld = case.target_level, case.forget_level
    if lt == SC:
        target = hier.default_target
    elif lt == C:
        target = classes[0]
    else:
        target = f"{classes[0]}/0"
    if not case.practical:  # forgetting data is coarser: the node that contains the target
        fl = ld
        idx = hier.ancestor(lt, hier.index(lt, target), fl)
        forget = (hier.names(fl)[idx],)
    elif ld == lt:
        forget = (target,)
    elif ld == C:  # target is a superclass: the default classes inside it
        inside = [c for c in classes if hier.contains(SC, target, C, c)]
        forget = tuple(inside or hier.descendants(SC, target, C)[:1])
    else:  # subsets inside a class or superclass: subset 0 of the default classes inside it
        inside = [c for c in classes if hier.contains(lt, target, C, c)] if lt == SC else [target]
        forget = tuple(f"{c}/0" for c in inside)
    note = f"case {case.no}: target {lt} {target!r}, forgetting {ld} {', '.join(map(repr, forget))}"
    return target, forget, note


@dataclass(frozen=True)
class Partition:
    """Index sets of one task on one dataset. All index arrays are sorted int64."""

    case: Case
    target: str
    forget: tuple[str, ...]
    num_outputs: int  # classes the model outputs (nodes at L_M)
    output_names: tuple[str, ...]
    y_train: np.ndarray  # labels at L_M, every training sample
    y_test: np.ndarray
    d_t: np.ndarray
    d_f: np.ndarray
    d_un: np.ndarray
    d_uf: np.ndarray
    d_r: np.ndarray
    test_t: np.ndarray
    test_r: np.ndarray
    unit_level: str  # the level TARF ranks ("units"): L_D, i.e. class labels in the paper
    unit_names: tuple[str, ...]
    units_train: np.ndarray  # unit id of every training sample
    n_hidden_units: int  # units of the target hidden in D_un (the count TARF is given)
    hidden_units: tuple[str, ...]  # their names: ground truth for reports; methods never read it

    def sizes(self) -> dict[str, int]:
        return {k: int(len(getattr(self, k))) for k in
                ("d_t", "d_f", "d_un", "d_uf", "d_r", "test_t", "test_r")}


def _mask_of(labels: np.ndarray, ids: list[int]) -> np.ndarray:
    return np.isin(labels, np.asarray(ids, dtype=np.int64))


def build_partition(hier: Hierarchy, case: Case, target: str, forget: tuple[str, ...] | list[str],
                    train: Labels, test: Labels, allow_impractical: bool = False) -> Partition:
    check_case(case, hier, allow_impractical)
    forget = tuple(dict.fromkeys(forget))
    if not forget:
        raise InvalidSpec("no forgetting data named")
    lt, ld, lm = case.target_level, case.forget_level, case.model_level
    t_idx = hier.index(lt, target)
    f_idx = [hier.index(ld, f) for f in forget]
    if case.practical:
        outside = [f for f in forget if not hier.contains(lt, target, ld, f)]
        if outside:
            inside = hier.descendants(lt, target, ld)
            raise InvalidSpec(
                f"forgetting {ld} {', '.join(outside)} not inside target {lt} {target!r}; "
                f"choices inside it: {', '.join(inside)}")
    else:
        if not any(hier.contains(ld, f, lt, target) for f in forget):
            raise InvalidSpec(f"impractical case {case.no}: the forgetting {ld} must contain "
                              f"the target {lt} {target!r}")

    def part(labels: Labels):
        t_mask = labels.at(lt, hier) == t_idx
        f_mask = _mask_of(labels.at(ld, hier), f_idx)
        return t_mask, f_mask

    t_tr, f_tr = part(train)
    t_te, _ = part(test)
    where = lambda m: np.flatnonzero(m).astype(np.int64)  # noqa: E731
    unit_level = ld if RANK[ld] <= RANK[lt] else lt
    unit_names = hier.names(unit_level)
    target_units = hier.descendants(lt, target, unit_level)
    hidden = tuple(u for u in target_units if u not in forget) if case.practical else ()
    d_f = where(f_tr)
    if len(d_f) == 0:
        raise TarfError(f"the forgetting data {', '.join(forget)} has no training samples")
    return Partition(
        case=case, target=target, forget=forget,
        num_outputs=hier.size(lm), output_names=hier.names(lm),
        y_train=train.at(lm, hier).astype(np.int64), y_test=test.at(lm, hier).astype(np.int64),
        d_t=where(t_tr), d_f=d_f, d_un=where(~f_tr), d_uf=where(t_tr & ~f_tr),
        d_r=where(~t_tr), test_t=where(t_te), test_r=where(~t_te),
        unit_level=unit_level, unit_names=unit_names,
        units_train=train.at(unit_level, hier).astype(np.int64),
        n_hidden_units=len(hidden), hidden_units=hidden,
    )
