"""User-facing errors. Anything raised as a ``TarfError`` is bad input or a missing resource:
front ends print ``str(err)`` on one line and exit with ``err.exit_code`` (2), no traceback."""

from __future__ import annotations

from typing import Iterable


class TarfError(Exception):
    """Bad input or a missing resource, described in one line."""

    exit_code = 2

    def __str__(self) -> str:  # always one line
        return " ".join(str(self.args[0]).split()) if self.args else self.__class__.__name__


class UnknownName(TarfError):
    """A name that is not among the valid choices."""

    def __init__(self, kind: str, name: object, choices: Iterable[object]):
        choices = list(choices)
        shown = ", ".join(map(str, choices[:40])) + (" ..." if len(choices) > 40 else "")
        super().__init__(f"unknown {kind} {name!r}; valid choices: {shown}")
        self.kind, self.name, self.choices = kind, name, choices


class InvalidSpec(TarfError):
    """A run spec or option that is malformed or inconsistent."""


class DataMissing(TarfError):
    """A dataset's files are not where they were looked for."""


class DamagedFile(TarfError):
    """A file exists but cannot be read (not SQLite, truncated checkpoint, bad JSON...)."""


class CatalogueMismatch(TarfError):
    """The method catalogue (params.py) and the implementations (engine/methods/*.py) disagree."""
