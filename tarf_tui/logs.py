"""The one reader of engine log files (``<workspace>/logs/run-<id>.log``): the launcher's failure
reason, headless progress before the first epoch row, the TUI's log panel. Torch-free.

The engine prints one JSON object per line for its events (``{"event": "pretrain", ...}``) and
free text otherwise; the launcher writes ``# ...`` header lines. A missing or unreadable log is
no information, never an error.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .options import REFERENCE

TAIL_BYTES = 8192


def read_from(path: str | os.PathLike | None, offset: int = -1, size: int | None = None,
              tail: int = TAIL_BYTES) -> tuple[int, int, list[str]] | None:
    """Whole lines appended since byte ``offset``; from the last ``tail`` bytes when starting
    (``offset`` < 0), when the file shrank or when more than ``tail`` bytes are new. ``size``:
    the file's size (read when None). Returns (start, new offset, lines), a start other than
    ``offset`` meaning "replace what is shown"; None without a readable file."""
    if not path:
        return None
    try:
        if size is None:
            size = os.path.getsize(path)
        fresh = offset < 0 or offset > size or size - offset > tail
        start = max(size - tail, 0) if fresh else offset
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(size - start)
    except OSError:
        return None
    if fresh and start > 0:  # drop the partial first line
        k = data.find(b"\n") + 1
        data, start = data[k:], start + k
    cut = data.rfind(b"\n") + 1  # a partial last line comes next time
    return start, start + cut, data[:cut].decode(errors="replace").splitlines()


def tail_lines(path: str | os.PathLike | None, tail: int = TAIL_BYTES) -> list[str]:
    """The whole lines among the last ``tail`` bytes (and a last line without its newline)."""
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - tail))
            data = f.read()
    except OSError:
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    return lines[1:] if size > tail and lines else lines


def last_line(path: str | os.PathLike | None, limit: int = 200) -> str:
    """The last non-empty line that is not a launcher header (a failure's reason)."""
    for line in reversed(tail_lines(path, 4096)):
        line = line.strip()
        if line and not line.startswith("# "):
            return line[:limit]
    return ""


def last_event(path: str | os.PathLike | None, *events: str) -> dict[str, Any] | None:
    """The last JSON line of the log whose ``"event"`` is one of ``events``, or None."""
    needles = [f'"{e}"' for e in events]
    for line in reversed(tail_lines(path)):
        if not any(n in line for n in needles):
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if isinstance(ev, dict) and ev.get("event") in events:
            return ev
    return None


def pretrain_state(run: dict | None) -> tuple[str, int, int | None] | None:
    """(kind, epochs done, epochs) of the last ``pretrain`` event of a run, or None: the
    engine prints one after each epoch (``epoch`` counted from 0) while it trains the
    original model or the Retrained reference, before any epoch row exists; the last one of
    a 10-epoch recipe reads ``("original", 10, 10)``."""
    ev = last_event((run or {}).get("log_path"), "pretrain")
    if ev is None or not isinstance(ev.get("epoch"), int):
        return None
    epochs = ev.get("epochs")
    return (str(ev.get("kind") or "original"), ev["epoch"] + 1,
            epochs if isinstance(epochs, int) else None)


PHASE_EVENTS = ("task", "pretrain", "original", "reference")


def phase_text(run: dict | None) -> str | None:
    """What a run's engine is doing before its first epoch row, from its log, e.g.
    ``"original model epoch 3/10"``, ``"original model ready, Retrained reference next"``;
    None when the log says nothing yet."""
    ev = last_event((run or {}).get("log_path"), *PHASE_EVENTS)
    if ev is None:
        return None
    kind = ev["event"]
    if kind == "task":
        return "data loaded, preparing the models"
    if kind == "pretrain":
        st = pretrain_state(run)
        if st is None:
            return None
        name = "Retrained reference" if st[0] == REFERENCE else f"{st[0]} model"
        return f"{name} epoch {st[1]}" + (f"/{st[2]}" if st[2] else "")
    if kind == "original":
        how = "loaded from the cache" if ev.get("cached") else "ready"
        return f"original model {how}, Retrained reference next"
    how = "loaded from the cache" if ev.get("cached") else "ready"
    return f"Retrained reference {how}, unlearning starts"


__all__ = ["PHASE_EVENTS", "TAIL_BYTES", "last_event", "last_line", "phase_text",
           "pretrain_state", "read_from", "tail_lines"]
