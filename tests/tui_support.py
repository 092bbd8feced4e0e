"""Helpers shared by the TUI tests (no tests here): deterministic workspaces, a recording
launcher, the fake engine command, and ``wait_for`` for Pilot tests."""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from pathlib import Path
from typing import Any, Callable

from engine.spec import RunSpec
from engine.store import Store, Workspace
from tarf_tui.launcher import Launcher

ROOT = Path(__file__).resolve().parent.parent
FAKE_CMD = [sys.executable, str(ROOT / "tests" / "fake_engine.py")]
FIXED_NOW = dt.datetime(2026, 5, 9, 9, 0, 0, tzinfo=dt.timezone.utc)
SIZE = (150, 48)


def fixed_clock() -> dt.datetime:
    return FIXED_NOW


class NullHandle:
    pid = None
    log_path = None


class NullExecutor:
    """Starts nothing: runs stay queued. Records what it was asked to start."""

    def __init__(self):
        self.started: list[int] = []

    def start(self, run_id: int) -> Any:
        self.started.append(run_id)
        return NullHandle()

    def alive(self, handle: Any) -> bool:
        return False

    def terminate(self, handle: Any) -> None:
        pass

    def kill(self, handle: Any) -> None:
        pass

    def adopt(self, run: dict) -> Any:
        return None


class RecordingLauncher(Launcher):
    """A real ``Launcher`` on the workspace's store that records every submitted spec and starts
    no engine."""

    def __init__(self, store: Store, stale_after: float = 1e12):
        super().__init__(store, NullExecutor(), stale_after=stale_after)
        self.submitted: list[RunSpec] = []

    def submit(self, spec: RunSpec) -> int:
        self.submitted.append(spec)
        return super().submit(spec)


async def wait_for(pilot, cond: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what or cond}")


def _stamp(minutes: float) -> str:
    return (FIXED_NOW - dt.timedelta(minutes=minutes)).isoformat(timespec="milliseconds")


# The embedded dataset's classes (units at the model level), and what case 11 hides in D_un:
# the target "vehicle" minus the forgetting class "car".
UNIT_NAMES = ["cat", "dog", "horse", "car", "truck", "bus", "apple", "pear", "grape",
              "oak", "pine", "palm"]
HIDDEN = [4, 5]  # truck, bus
SPEED = {"retrained": 1.2, "ft": 0.3, "ga": 0.8, "tarf": 1.1}  # how fast each method's UA falls


def ident_extras(seed: int) -> dict:
    """TARF's identification extras from t1 on, in the engine's keys (runner.identification and
    methods/tarf.py): seed 0 finds truck and bus, seed 1 takes dog instead of bus (hits 1/2);
    the car unit is not in D_un (null)."""
    change = [-1.5, -9.0 if seed else -0.5, 0.3, None, -31.0, -6.0 if seed else -24.5,
              0.0, -0.2, 0.4, -1.0, 0.1, -0.6]
    excluded = [1, 4] if seed else [4, 5]
    return {"excluded_units": excluded, "hidden_units": HIDDEN, "unit_names": UNIT_NAMES,
            "acc_change": change, "id_margin": 3.0 if seed else 23.0}


TASK_REQUEST = {10: ("car", ("car",)), 11: ("vehicle", ("car",)), 12: ("car", ("car",)),
                13: ("vehicle", ("car",))}  # the paper's four tasks on the embedded data


def populate(ws: Workspace, seeds=(0, 1), methods=("retrained", "ft", "ga", "tarf"),
             case: int = 11, epochs: int = 5, running: bool = False) -> list[int]:
    """Finished runs of one experiment with fixed numbers and timestamps (percent metrics),
    TARF's epochs carrying phases, unit decisions and, from t1 = epoch 2 on, the identification
    extras (``ident_extras``); a finished TARF run's extras carry ``identification`` {hits, n}.
    ``running``: the last run is still running."""
    ids = []
    with Store(ws.db_path) as s:
        i = 0
        for seed in seeds:
            for m in methods:
                i += 1
                target, forget = TASK_REQUEST.get(case, ("vehicle", ("car",)))
                spec = RunSpec(case=case, method=m, seed=seed, target=target, forget=forget,
                               hierarchy="synthetic", epochs=epochs)
                rid = s.create_run(spec)
                ids.append(rid)
                for e in range(epochs):
                    phase = ("ga" if e < 2 else "retain") if m.startswith("tarf") else "unlearn"
                    extras = {"k_t": round(0.02 * (epochs - e) / epochs, 4),
                              "excluded": ["truck", "bus"], "kept": ["cat", "dog"]} \
                        if m.startswith("tarf") else {}
                    if m.startswith("tarf") and e >= 2:
                        extras.update(ident_extras(seed))
                    s.add_epoch(rid, e, phase=phase, loss=round(2.0 / (e + 1), 3),
                                ua=round(90 - 17 * e * SPEED.get(m, 1.0) - seed, 1), ra=round(95 - e * 0.5, 1),
                                ta=round(90 - e * 0.4, 1), acc_f=round(95 - 20 * e, 1),
                                acc_uf=round(92 - 15 * e, 1), lr=0.01, seconds=1.0, extras=extras)
                gap = ({"retrained": 0.0, "ft": 6.1, "ga": 9.4, "tarf": 1.3}.get(m, 5.0) + 0.2 * seed
                       + (0.0 if m == "retrained" else 0.7 * (case - 11) * (1 if m != "tarf" else -0.5)))
                last = running and seed == seeds[-1] and m == methods[-1]
                if not last:
                    extras = {"wall_s": 20.0 + i}
                    if m.startswith("tarf"):
                        x = ident_extras(seed)
                        hits = len(set(x["excluded_units"]) & set(HIDDEN))
                        extras["identification"] = {
                            "hits": hits, "n": len(HIDDEN), "excluded": x["excluded_units"],
                            "hidden": HIDDEN, "unit_names": UNIT_NAMES, "unit_level": "class"}
                    s.finish(rid, {"ua": 2.0 + seed, "ra": 93.1 - gap / 10, "ta": 88.4 - gap / 20,
                                   "mia": 10.0 + gap, "gap": gap, "rte_s": 12.5 + i,
                                   "ref_ua": 0.4, "ref_ra": 94.0, "ref_ta": 89.0, "ref_mia": 8.0,
                                   "extras": extras})
                s.db.execute("UPDATE runs SET created_at = ?, started_at = ?, finished_at = ?, "
                             "heartbeat_at = ?, status = ? WHERE id = ?",
                             [_stamp(60 - i), _stamp(60 - i), None if last else _stamp(59 - i),
                              _stamp(1), "running" if last else "finished", rid])
                s.db.execute("UPDATE epochs SET at = ? WHERE run_id = ?", [_stamp(59 - i), rid])
        s.db.conn.commit()
    return ids


def no_blink(app) -> None:
    from textual.widgets import Input

    for w in app.screen.query(Input):
        w.cursor_blink = False


def sync(fn):
    """Run an ``async def`` test with ``asyncio.run`` (no pytest-asyncio needed)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))

    return wrapper
