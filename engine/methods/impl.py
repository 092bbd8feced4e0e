"""Importing this module imports every method implementation (torch), found from the catalogue:
each ``params.CATALOG`` entry names its implementation module (``MethodInfo.module``, by default
``engine/methods/<name>.py``), whose ``@register(name)`` fills ``base.METHODS``. No list of
imports to keep: a new method is its ``Params`` entry plus that one file.

It fails loudly (``CatalogueMismatch``) when a catalogued method has no implementation, or when a
file in this package is neither a helper nor named in some method's ``code`` (an implementation
nobody catalogued, or a helper missing from the version fingerprint)."""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from ..errors import CatalogueMismatch
from .base import METHODS
from .params import CATALOG

# modules of this package that are no method's implementation
HELPERS = frozenset({"__init__", "base", "common", "impl", "params"})


def load() -> None:
    """Import every catalogued method's implementation module and check the two registries
    agree. Idempotent; run at import, call again after adding a catalogue entry."""
    for name, info in CATALOG.items():
        if name not in METHODS:
            try:
                importlib.import_module(info.module)
            except ModuleNotFoundError as e:
                if e.name != info.module:
                    raise
                raise CatalogueMismatch(f"method {name!r} is catalogued in params.py but its "
                                        f"implementation module {info.module} does not exist") from None
        if name not in METHODS:
            raise CatalogueMismatch(f"method {name!r}: {info.module} registers no implementation "
                                    f"(decorate its Method class with @register({name!r}))")
    extra = [n for n in METHODS.names() if n not in CATALOG]
    if extra:  # register() refuses an uncatalogued name; this catches a removed entry
        raise CatalogueMismatch(f"implementations without a catalogue entry: {', '.join(extra)}")
    stray = unclaimed_modules()
    if stray:
        raise CatalogueMismatch(
            f"engine/methods has modules no catalogue entry names: {', '.join(stray)} (add the "
            f"method's Params entry in params.py, or list the file in a method's code=)")


def unclaimed_modules(folder: Path = Path(__file__).parent) -> list[str]:
    """Modules in ``folder`` that are neither helpers nor in any catalogued method's ``code``."""
    claimed = {Path(f).name.removesuffix(".py") for _, info in CATALOG.items() for f in info.code
               if not Path(f).is_absolute() and "/" not in f}
    return sorted(m.name for m in pkgutil.iter_modules([str(folder)])
                  if m.name not in HELPERS and m.name not in claimed)


load()

__all__ = ["METHODS", "load", "unclaimed_modules"]
