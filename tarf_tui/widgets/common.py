"""Shared look of the TUI: category colours, number and time formatting, run-row reads.

Torch-free and Textual-free (plain functions), so tests and the benchmark can use them.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

from rich.text import Text

from engine.store import Store, parse_time

# One colour per task category (Table 4 comments), used in the case picker, runs and compare.
CATEGORY_STYLE = {
    "all-matched": "bold green",
    "target-mismatch": "bold cyan",
    "model-mismatch": "bold magenta",
    "data-mismatch": "bold yellow",
    "similar-to-all-matched": "green3",
    "different": "steel_blue1",
    "impractical": "red",
}

STATUS_STYLE = {
    "queued": "grey62",
    "running": "bold cyan",
    "finished": "green",
    "failed": "bold red",
    "killed": "dark_orange",
    "diverged": "bold magenta",
}

# Model catalogue names: engine.spec.ARCHS is the torch-free copy of the model registry.
from engine.spec import ARCHS  # noqa: E402,F401

Clock = Callable[[], _dt.datetime]


def utc_now() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def fmt_num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    try:
        return f"{float(v):.{digits}f}"
    except (TypeError, ValueError):
        return str(v)


def fmt_secs(s: float | None) -> str:
    if s is None:
        return "–"
    s = float(s)
    if s < 60:
        return f"{s:.1f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def fmt_time(text: str | None) -> str:
    """A store timestamp as ``MM-DD HH:MM:SS`` UTC (stable across machines)."""
    t = parse_time(text)
    return "–" if t is None else t.astimezone(_dt.timezone.utc).strftime("%m-%d %H:%M:%S")


def run_seconds(row: dict, now: _dt.datetime) -> float | None:
    """Run time: the engine's unlearning seconds when finished, else wall time since start."""
    if row.get("rte_s") is not None:
        return row["rte_s"]
    start = parse_time(row.get("started_at"))
    if start is None:
        return None
    end = parse_time(row.get("finished_at")) or now
    return max((end - start).total_seconds(), 0.0)


def category_text(category: str, text: str | None = None) -> Text:
    return Text(text or category, style=CATEGORY_STYLE.get(category, ""))


def status_text(status: str, extra: str = "") -> Text:
    return Text(status + (f" {extra}" if extra else ""), style=STATUS_STYLE.get(status, ""))


# ---- reads (called from thread workers) ------------------------------------------------------
RUN_ROWS_SELECT = """
SELECT r.id, r.status, r.label, r.dataset, r.case_no, r.target, r.forget, r.method, r.arch,
       r.seed, r.epochs, r.experiment,
       coalesce(r.ua, e.ua) AS ua, coalesce(r.ra, e.ra) AS ra, coalesce(r.ta, e.ta) AS ta,
       coalesce(r.mia, e.mia) AS mia, r.gap, r.rte_s, r.started_at, r.finished_at,
       r.created_at, r.error, e.epoch AS last_epoch
FROM runs r
LEFT JOIN epochs e ON e.run_id = r.id
 AND e.epoch = (SELECT max(epoch) FROM epochs e2 WHERE e2.run_id = r.id)
"""


def read_run_rows(store: Store, ids: list[int] | None = None) -> list[dict]:
    """Every run with its final metrics, or its latest epoch's while it runs (newest first).
    ``ids``: only those runs and the ones queued or running now (an incremental refresh)."""
    if ids is None:
        return store._rows(RUN_ROWS_SELECT + " ORDER BY r.id DESC")
    marks = ", ".join("?" for _ in ids) or "NULL"
    return store._rows(RUN_ROWS_SELECT + f" WHERE r.id IN ({marks}) OR r.status IN "
                       "('queued', 'running') ORDER BY r.id DESC", list(ids))


def data_stamp(store: Store) -> tuple:
    """Count and newest id of the runs: when either changes (runs added or deleted, by any
    process) the list is read in full; otherwise only the active runs are re-read."""
    rows = store._rows("SELECT count(*) AS n, max(id) AS mx FROM runs")
    r = rows[0] if rows else {}
    return tuple(r.values())
