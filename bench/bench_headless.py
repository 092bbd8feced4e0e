"""Wall time of ``tarf-tui headless`` with the real engine, and where it goes (a benchmark, not
a test).

    python -m bench.bench_headless                  # the no-option default, 3 cold runs, + the grid
    python -m bench.bench_headless --repeat 1 --skip-grid
    python -m bench.bench_headless --grid-args "--method ft,ga --seed 0,1 --per-class 60"

Every measurement runs in a fresh temporary workspace (no reused runs, no cached models), as a
real subprocess, exactly as a user would type it (README command 1). For the default job it
prints the median wall time of ``--repeat`` cold runs and, for the last one, each run's stages:
engine start (process start and imports, from the launch to the engine's first event), data
(dataset and task), original model, Retrained reference (training or cache), unlearning steps
(RTE), per-epoch evaluation, final metrics (evaluation and the five SVC attacks), the rest. The
engine writes the stage times into each run's final extras (``timing``) and stamps its events
with the wall clock; nothing here is estimated. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.store import parse_time

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GRID = "--method ft,ga --seed 0,1 --per-class 60 --device cpu"
STAGES = ("start", "data", "original", "reference", "unlearn", "evaluate", "final_metrics", "other")


def _ts(text: str | None) -> float | None:
    t = parse_time(text)
    return None if t is None else t.timestamp()


def _events(log: str | None) -> dict[str, float]:
    """First wall-clock stamp of each engine event in a run's log."""
    out: dict[str, float] = {}
    try:
        lines = Path(log).read_text().splitlines() if log else []
    except OSError:
        return out
    for line in lines:
        if line.startswith("{"):
            try:
                ev = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "t" in ev:
                out.setdefault(ev.get("event", ""), float(ev["t"]))
    return out


def breakdown(db: Path) -> list[dict]:
    """Per run: the stages' seconds (see the module docstring)."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    rows = []
    for r in con.execute("SELECT id, method, started_at, finished_at, log_path, extras FROM runs ORDER BY id"):
        ev = _events(r["log_path"])
        timing = (json.loads(r["extras"] or "{}") or {}).get("timing", {})
        t0, t1 = _ts(r["started_at"]), _ts(r["finished_at"])
        st = {"start": ev["running"] - t0 if "running" in ev and t0 else None,
              "data": ev["task"] - ev["running"] if {"task", "running"} <= set(ev) else None}
        for k in ("original", "reference", "unlearn", "evaluate", "final_metrics"):
            st[k] = timing.get(k, 0.0)
        wall = (t1 - t0) if t0 and t1 else None
        st["other"] = wall - sum(v or 0.0 for v in st.values()) if wall else None
        rows.append({"id": r["id"], "method": r["method"], "wall_s": wall, **st})
    con.close()
    return rows


def timed(args: list[str], label: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="tarf-bench-") as ws:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TARF_HOME": ws}
        env.pop("TARF_ENGINE_CMD", None)
        cmd = [sys.executable, "-m", "tarf_tui", "headless", *args, "--format", "json"]
        print(f"[{label}] {shlex.join(['tarf-tui', 'headless', *args])}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        wall = time.perf_counter() - t0
        rows = []
        if p.returncode in (0, 1):
            try:
                for b in json.loads(p.stdout):
                    for r in b["rows"]:
                        rows.append({"method": r["method"], "n": r["n"],
                                     "gap": r["gap"]["mean"], "rte_s": r["rte_s"]["mean"]})
            except (json.JSONDecodeError, KeyError):
                pass
        res = {"label": label, "args": args, "exit_code": p.returncode,
               "wall_s": round(wall, 2), "rows": rows}
        db = Path(ws) / "tarf.db"
        if db.is_file():
            res["stages"] = breakdown(db)
        if p.returncode != 0:
            res["stderr_tail"] = p.stderr[-2000:]
        print(f"[{label}] exit {p.returncode}, {wall:.1f} s", file=sys.stderr, flush=True)
        return res


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def print_stages(res: dict) -> None:
    print("| run | method | wall | " + " | ".join(STAGES) + " |")
    print("|---:|---|---:|" + "---:|" * len(STAGES))
    for r in res.get("stages", []):
        print(f"| {r['id']} | {r['method']} | {_fmt(r['wall_s'])} | "
              + " | ".join(_fmt(r[k]) for k in STAGES) + " |")
    tot = {k: sum(r[k] or 0.0 for r in res.get("stages", [])) for k in STAGES}
    print("| all | | | " + " | ".join(_fmt(tot[k]) for k in STAGES) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-default", action="store_true", help="do not time the no-option default")
    ap.add_argument("--skip-grid", action="store_true", help="do not time the grid")
    ap.add_argument("--repeat", type=int, default=3, help="cold runs of the default job (median)")
    ap.add_argument("--grid-args", default=DEFAULT_GRID, help=f"the grid (default: {DEFAULT_GRID!r})")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()

    results = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "runs": []}
    defaults = [] if a.skip_default else [timed([], f"default #{i + 1}") for i in range(a.repeat)]
    results["runs"] += defaults
    if not a.skip_grid:
        grid = shlex.split(a.grid_args)
        for w in (1, 2):
            results["runs"].append(timed([*grid, "--workers", str(w)], f"grid workers={w}"))

    print(f"CPUs: {results['cpus']}")
    for r in results["runs"]:
        line = f"{r['label']:<16} {r['wall_s']:>8.1f} s  exit {r['exit_code']}"
        if r["rows"]:
            line += "  " + ", ".join(f"{x['method']} gap {x['gap']:.2f}" if x["gap"] is not None
                                     else f"{x['method']} -" for x in r["rows"])
        print(line)
    if defaults:
        walls = [r["wall_s"] for r in defaults]
        print(f"default job: median {statistics.median(walls):.1f} s of {len(walls)} cold runs "
              f"({', '.join(f'{w:.1f}' for w in walls)})\n")
        print_stages(defaults[-1])
    g = {r["label"]: r["wall_s"] for r in results["runs"]}
    if "grid workers=1" in g and "grid workers=2" in g and g["grid workers=2"]:
        print(f"grid speed-up workers 2 vs 1: {g['grid workers=1'] / g['grid workers=2']:.2f}x")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
