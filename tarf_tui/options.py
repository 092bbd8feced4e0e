"""Rules the CLI, headless and the TUI share, each defined once. Torch-free, no Textual.

- ``parse_seeds``: ``0,1,2``, ``0-4`` or a mix (headless ``--seed``, the builder's seeds field);
- ``DEFAULT_METHODS``: the default experiment's methods (Retrained first);
- ``REFERENCE``: the Retrained reference's method name;
- ``method_name``: method names are case-insensitive everywhere (``Tarf`` -> ``tarf``);
- ``DATASET_SIZES``: what ``tarf-tui datasets`` and the builder say about each dataset.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from engine.errors import InvalidSpec, UnknownName
from engine.methods.params import CATALOG, REFERENCE  # REFERENCE: the Retrained reference's name
DEFAULT_METHODS = (REFERENCE, "ft", "ga", "tarf")  # the README's main job

DATASET_SIZES = {
    "synthetic": "3600 train / 1224 test, 16x16, 12 classes",
    "cifar10": "50000 / 10000, 32x32, 10 classes",
    "cifar100": "50000 / 10000, 32x32, 100 classes",
    "npz": "as in the file",
}

_RANGE = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


def seed_values(item: Any, name: str = "--seed") -> list[int]:
    """One seed item -> its seeds: an int, ``"3"`` or a range ``"0-2"`` (both ends included)."""
    if isinstance(item, bool):
        raise InvalidSpec(f"{name}: expected an integer, got {item!r}")
    if isinstance(item, int):
        return [item]
    text = str(item).strip()
    m = _RANGE.match(text)
    if m:
        a, b = int(m.group(1)), int(m.group(2))
        if b < a:
            raise InvalidSpec(f"{name}: range {text!r} is empty (the end is below the start)")
        return list(range(a, b + 1))
    try:
        return [int(text)]
    except ValueError:
        raise InvalidSpec(f"{name}: expected an integer, got {text!r} "
                          "(seeds: 0,1,2 or a range 0-4)") from None


def parse_seeds(text: str | Iterable[Any], name: str = "seeds") -> list[int]:
    """``"0,1,2"``, ``"0-4"``, ``"0-2,7"`` (commas or spaces), or a list of such items ->
    unique seeds in the order given. Raises ``InvalidSpec`` (one line) on anything else."""
    items = text.replace(" ", ",").split(",") if isinstance(text, str) else list(text)
    out: list[int] = []
    for it in items:
        if isinstance(it, str) and not it.strip():
            continue
        for s in seed_values(it, name):
            if s not in out:
                out.append(s)
    if not out:
        raise InvalidSpec(f"{name}: give at least one seed")
    return out


def method_name(name: str) -> str:
    """The catalogue's name of a method, case-insensitive (``Tarf``, ``TARF`` -> ``tarf``;
    the title ``L1-sparse`` -> ``l1``...). Raises ``UnknownName`` listing the methods."""
    key = str(name).strip().lower()
    for n in CATALOG.names():
        if key in (n.lower(), CATALOG.get(n).title.lower()):
            return n
    raise UnknownName("method", name, CATALOG.names())


__all__ = ["DATASET_SIZES", "DEFAULT_METHODS", "REFERENCE", "method_name", "parse_seeds",
           "seed_values"]
