"""Shared look of the TUI: category colours, number and time formatting, run-row reads.

Torch-free and Textual-free (plain functions), so tests and the benchmark can use them.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Callable

from rich.text import Text

from engine.store import Store, parse_time

from ..options import REFERENCE

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

# The same categories in at most 9 characters (runs table, the case picker on 80 columns).
CATEGORY_SHORT = {"all-matched": "matched", "target-mismatch": "target-mm",
                  "model-mismatch": "model-mm", "data-mismatch": "data-mm",
                  "similar-to-all-matched": "≈matched", "different": "different",
                  "impractical": "impract."}

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
    """Run time: the engine's unlearning seconds (RTE) when finished, else wall time since
    start (``run_time`` says which)."""
    if row.get("rte_s") is not None:
        return row["rte_s"]
    return wall_seconds(row, now)


def wall_seconds(row: dict, now: _dt.datetime | None) -> float | None:
    start = parse_time(row.get("started_at"))
    if start is None:
        return None
    end = parse_time(row.get("finished_at")) or now or utc_now()
    return max((end - start).total_seconds(), 0.0)


def run_time(row: dict, now: _dt.datetime | None = None) -> tuple[str, float | None]:
    """(label, seconds): ``RTE`` (the engine's unlearning seconds, the paper's run-time
    efficiency) once the run has it, else ``wall`` (time since the engine started)."""
    if row.get("rte_s") is not None:
        return "RTE", row["rte_s"]
    return "wall", wall_seconds(row, now)


def fmt_run_time(row: dict, now: _dt.datetime | None = None) -> str:
    """``RTE 12.5s`` / ``wall 3m02s``: a runs-table cell that says which time it is."""
    label, s = run_time(row, now)
    return "–" if s is None else f"{label} {fmt_secs(s)}"


def planned_epochs(row: dict) -> int | None:
    """The epochs a run will have: its ``epochs`` (the submitted value), else the resolved
    spec's (the method's ``params.epochs``, Retrained's recipe epochs); None while unknown."""
    if row.get("total_epochs"):
        return int(row["total_epochs"])
    spec = row.get("spec") if isinstance(row.get("spec"), dict) else {}
    if row.get("method") == REFERENCE:
        v = (spec.get("recipe") or {}).get("epochs") or row.get("epochs")
    else:
        v = row.get("epochs") or spec.get("epochs") or (spec.get("params") or {}).get("epochs")
    return int(v) if isinstance(v, (int, float)) and v > 0 else None


def epoch_progress(done: int, total: int | None) -> str:
    """The one epoch label: ``epoch 3/40`` (epochs done of planned), ``epoch 3`` while the
    total is unknown."""
    return f"epoch {done}/{total}" if total else f"epoch {done}"


def method_title(name: str | None) -> str:
    """A method as the paper prints it (``tarf`` -> ``TARF``, ``l1`` -> ``L1-sparse``)."""
    from engine.methods.params import CATALOG

    if name and name in CATALOG:
        return CATALOG.get(name).title
    return str(name or "?")


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
       r.created_at, r.error, r.executor, r.job_id, r.host, r.pid, e.epoch AS last_epoch,
       CASE WHEN r.method = 'retrained' THEN json_extract(r.spec, '$.recipe.epochs')
            ELSE coalesce(r.epochs, json_extract(r.spec, '$.params.epochs')) END AS total_epochs
FROM runs r
LEFT JOIN epochs e ON e.run_id = r.id
 AND e.epoch = (SELECT max(epoch) FROM epochs e2 WHERE e2.run_id = r.id)
"""


def read_run_rows(store: Store, ids: list[int] | None = None) -> list[dict]:
    """Every run with its final metrics, or its latest epoch's while it runs (newest first).
    ``ids``: only those runs and the ones queued or running now (an incremental refresh)."""
    if ids is None:
        return store.query(RUN_ROWS_SELECT + " ORDER BY r.id DESC")
    marks = ", ".join("?" for _ in ids) or "NULL"
    return store.query(RUN_ROWS_SELECT + f" WHERE r.id IN ({marks}) OR r.status IN "
                       "('queued', 'running') ORDER BY r.id DESC", list(ids))


def data_stamp(store: Store) -> tuple:
    """Count and newest id of the runs: when either changes (runs added or deleted, by any
    process) the list is read in full; otherwise only the active runs are re-read."""
    rows = store.query("SELECT count(*) AS n, max(id) AS mx FROM runs")
    r = rows[0] if rows else {}
    return tuple(r.values())
