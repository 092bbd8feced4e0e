"""Three label layers (subset < class < superclass) and the maps between them.

A hierarchy file (``data/hierarchies/NAME.json``, or any path with the same schema) names the
classes in the dataset's label order and groups them into superclasses::

    {"name": "cifar10", "classes": ["airplane", ...],
     "superclasses": {"vehicle": ["automobile", "truck"], ...},
     "default_forget": ["automobile"], "default_target": "vehicle"}

The subset layer is not in the file: ``with_subsets(K)`` splits every class into K subsets
named ``<class>/<j>`` (K = 0: two layers). Which sample falls in which subset is decided by the
dataset (native subsets, or a seeded clustering; see ``datasets.subset_labels``).
Indices: class ``c`` is its position in ``classes``; subset ``j`` of class ``c`` is ``c*K + j``.
Torch-free.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from .errors import DamagedFile, InvalidSpec, UnknownName

MAX_SUBSETS = 64


def check_subsets(k: object) -> int:
    """The subsets rule, once (specs, hierarchies, the builder): K = 0 (two layers, no subset
    level) or 2..64 subsets per class. Returns K; ``InvalidSpec`` (one line) otherwise."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 0 or k == 1 or k > MAX_SUBSETS:
        raise InvalidSpec(f"subsets must be 0 (two layers) or 2..{MAX_SUBSETS}, got {k!r}")
    return k

LEVELS: tuple[str, ...] = ("subset", "class", "superclass")  # finest first
RANK = {name: i for i, name in enumerate(LEVELS)}


def check_level(level: str) -> str:
    if level not in RANK:
        raise UnknownName("label level", level, LEVELS)
    return level


def finer(a: str, b: str) -> bool:
    """True when level ``a`` is strictly finer than ``b``."""
    return RANK[check_level(a)] < RANK[check_level(b)]


@dataclass(frozen=True)
class Hierarchy:
    name: str
    classes: tuple[str, ...]
    superclasses: tuple[str, ...]
    class_to_super: tuple[int, ...]  # superclass index of each class
    subsets: int = 0  # K subsets per class; 0 = two layers
    default_forget: tuple[str, ...] = ()
    default_target: str = ""
    description: str = ""
    _index: dict = field(default_factory=dict, compare=False, repr=False, hash=False)

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict, source: str = "<dict>") -> "Hierarchy":
        try:
            classes = d["classes"]
            groups = d["superclasses"]
            if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
                raise ValueError("'classes' must be a list of non-empty names")
            if not isinstance(groups, dict) or not groups:
                raise ValueError("'superclasses' must map superclass names to lists of classes")
            if len(set(classes)) != len(classes):
                dup = sorted({c for c in classes if classes.count(c) > 1})
                raise ValueError(f"class names repeat: {', '.join(dup)}")
            pos = {c: i for i, c in enumerate(classes)}
            c2s = [-1] * len(classes)
            for s, (sname, members) in enumerate(groups.items()):
                if sname in pos:
                    raise ValueError(f"superclass {sname!r} has the name of a class")
                for m in members:
                    if m not in pos:
                        raise ValueError(f"superclass {sname!r} lists unknown class {m!r}")
                    if c2s[pos[m]] != -1:
                        raise ValueError(f"class {m!r} is in two superclasses")
                    c2s[pos[m]] = s
            missing = [c for c, s in zip(classes, c2s) if s < 0]
            if missing:
                raise ValueError(f"classes without a superclass: {', '.join(missing)}")
            h = cls(
                name=str(d.get("name") or Path(source).stem),
                classes=tuple(classes),
                superclasses=tuple(groups),
                class_to_super=tuple(c2s),
                default_forget=tuple(d.get("default_forget", ()) or (classes[0],)),
                default_target=str(d.get("default_target") or groups and list(groups)[c2s[0]]),
                description=str(d.get("description", "")),
            )
        except (KeyError, TypeError, ValueError) as e:
            what = f"missing key {e}" if isinstance(e, KeyError) else str(e)
            raise DamagedFile(f"malformed hierarchy {source}: {what}") from None
        for f in h.default_forget:
            h.index("class", f)
        h.index("superclass", h.default_target)
        return h

    def with_subsets(self, k: int) -> "Hierarchy":
        return replace(self, subsets=check_subsets(k), _index={})

    def to_dict(self) -> dict:
        groups = {s: [c for c, p in zip(self.classes, self.class_to_super) if p == i]
                  for i, s in enumerate(self.superclasses)}
        return {"name": self.name, "description": self.description, "classes": list(self.classes),
                "superclasses": groups, "default_forget": list(self.default_forget),
                "default_target": self.default_target}

    # ---- queries ---------------------------------------------------------------------------
    @property
    def layers(self) -> int:
        return 3 if self.subsets else 2

    def levels(self) -> tuple[str, ...]:
        return LEVELS if self.subsets else LEVELS[1:]

    def names(self, level: str) -> tuple[str, ...]:
        check_level(level)
        if level == "class":
            return self.classes
        if level == "superclass":
            return self.superclasses
        if not self.subsets:
            raise InvalidSpec(
                f"hierarchy {self.name!r} has no subset layer (subsets=0); use --subsets K (K>=2)")
        return tuple(f"{c}/{j}" for c in self.classes for j in range(self.subsets))

    def size(self, level: str) -> int:
        return len(self.names(level))

    def index(self, level: str, name: str) -> int:
        key = level
        if key not in self._index:
            self._index[key] = {n: i for i, n in enumerate(self.names(level))}
        try:
            return self._index[key][name]
        except KeyError:
            raise UnknownName(f"{level} in hierarchy {self.name!r}", name, self.names(level)) from None

    def ancestor(self, level: str, idx: int, up: str) -> int:
        """Index at level ``up`` (same or coarser) of node ``idx`` at ``level``."""
        if RANK[up] < RANK[level]:
            raise ValueError(f"{up} is finer than {level}")
        if level == "subset":
            if up == "subset":
                return idx
            idx, level = idx // self.subsets, "class"
        if level == "class" and up == "superclass":
            return self.class_to_super[idx]
        return idx

    def contains(self, upper_level: str, upper: str, lower_level: str, lower: str) -> bool:
        """Whether node ``lower`` (at a level finer than or equal to ``upper_level``) lies inside
        node ``upper``."""
        if RANK[lower_level] > RANK[upper_level]:
            return False
        li = self.index(lower_level, lower)
        return self.ancestor(lower_level, li, upper_level) == self.index(upper_level, upper)

    def descendants(self, level: str, name: str, down: str) -> tuple[str, ...]:
        """Names at level ``down`` (finer or equal) inside node ``name`` at ``level``."""
        ui = self.index(level, name)
        return tuple(n for i, n in enumerate(self.names(down))
                     if self.ancestor(down, i, level) == ui)

    def parent_map(self, fine: str, coarse: str) -> list[int]:
        """For every node at ``fine``, its ancestor index at ``coarse``."""
        return [self.ancestor(fine, i, coarse) for i in range(self.size(fine))]


def _builtin_dir() -> Path | None:
    try:
        p = resources.files("tarf_data") / "hierarchies"
        if p.is_dir():
            return Path(str(p))
    except ModuleNotFoundError:
        pass
    local = Path(__file__).resolve().parent.parent / "data" / "hierarchies"
    return local if local.is_dir() else None


def builtin_names() -> list[str]:
    d = _builtin_dir()
    return sorted(p.stem for p in d.glob("*.json")) if d else []


def load_hierarchy(name_or_path: str, subsets: int = 0) -> Hierarchy:
    """A built-in hierarchy by name (``cifar10``, ``cifar100``, ``synthetic``) or a JSON file."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise UnknownName("hierarchy file", str(path), builtin_names())
        source = str(path)
    else:
        d = _builtin_dir()
        if d is None or not (d / f"{name_or_path}.json").is_file():
            raise UnknownName("hierarchy", name_or_path, builtin_names() + ["<path>.json"])
        path, source = d / f"{name_or_path}.json", name_or_path
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedFile(f"malformed hierarchy {source}: {e}") from None
    if not isinstance(data, dict):
        raise DamagedFile(f"malformed hierarchy {source}: top level must be an object")
    return Hierarchy.from_dict(data, source).with_subsets(subsets)
