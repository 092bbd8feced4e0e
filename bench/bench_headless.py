"""Wall time of ``tarf-tui headless`` with the real engine (a benchmark, not a test).

    python bench/bench_headless.py                 # the no-option default + the grid, workers 1 vs 2
    python bench/bench_headless.py --skip-default  # only the grid
    python bench/bench_headless.py --grid-args "--method ft,ga --seed 0,1 --per-class 60"

Every measurement runs in a fresh temporary workspace (no reused runs, no cached models), as a
real subprocess, exactly as a user would type it. Figures are printed and, with ``--json FILE``,
saved; nothing is asserted. The CPU count and torch thread count are reported with them.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_GRID = "--method ft,ga --seed 0,1 --per-class 60 --device cpu"


def timed(args: list[str], label: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="tarf-bench-") as ws:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TARF_HOME": ws}
        env.pop("TARF_ENGINE_CMD", None)
        cmd = [sys.executable, "-m", "tarf_tui", "headless", *args, "--format", "json"]
        print(f"[{label}] {shlex.join(['tarf-tui', 'headless', *args])}", file=sys.stderr,
              flush=True)
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
        if p.returncode != 0:
            res["stderr_tail"] = p.stderr[-2000:]
        print(f"[{label}] exit {p.returncode}, {wall:.1f} s", file=sys.stderr, flush=True)
        return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--skip-default", action="store_true", help="do not time the no-option default")
    ap.add_argument("--grid-args", default=DEFAULT_GRID, help=f"the grid (default: {DEFAULT_GRID!r})")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    a = ap.parse_args()

    results = {"cpus": os.cpu_count(), "python": sys.version.split()[0], "runs": []}
    if not a.skip_default:
        results["runs"].append(timed([], "default"))
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
    g = {r["label"]: r["wall_s"] for r in results["runs"]}
    if "grid workers=1" in g and "grid workers=2" in g and g["grid workers=2"]:
        print(f"grid speed-up workers 2 vs 1: {g['grid workers=1'] / g['grid workers=2']:.2f}x")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
