"""The paper's Table 1 pattern on the embedded dataset: every method in cases 10-13 over seeds,
mean +- std of UA, RA, TA, MIA, Gap, RTE, plus Gap3 = the Gap over UA, RA and TA only (``engine.metrics.gap3``).

    .venv/bin/python -m bench.paper_table [-w WORKSPACE] [--seeds 0,1,2] [--cases 10,11,12,13]

Runs (or reuses) the grid through ``tarf-tui headless --method all`` and then reads each run's
final metrics and its Retrained reference values from the workspace's ``tarf.db``. Gap3 is
shown because on the embedded dataset the confidence MIA is degenerate (train and test
confidences are both ~1, so the SVC's verdict on D_t is its intercept: 0 or 100 by chance) and
it moves the full Gap by 25 points either way."""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

from engine.metrics import GAP3_KEYS, gap3

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("ua", "ra", "ta", "mia", "gap", "gap3", "rte_s")


def fmt(vals: list[float]) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    m = statistics.mean(vals)
    return f"{m:.2f} ± {statistics.stdev(vals):.2f}" if len(vals) > 1 else f"{m:.2f}"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-w", "--workspace", default=str(ROOT / "tarf-runs"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--cases", default="10,11,12,13")
    ap.add_argument("--methods", default="all")
    a = ap.parse_args()
    cmd = [sys.executable, "-m", "tarf_tui", "headless", "--case", a.cases, "--method", a.methods,
           "--seed", a.seeds, "-w", a.workspace, "--format", "json"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        print(out.stderr[-3000:], file=sys.stderr)
        return out.returncode
    db = sqlite3.connect(Path(a.workspace) / "tarf.db")
    for exp in json.loads(out.stdout):
        print(f"**{exp['title']}**\n")
        print("| Method | UA | RA | TA | MIA | Gap | Gap3 (UA/RA/TA) | RTE (s) | runs |")
        print("|---|" + "---:|" * 8)
        for row in exp["rows"]:
            vals = {m: [] for m in METRICS}
            statuses = []
            for rid in row["run_ids"]:
                r = db.execute("select status, ua, ra, ta, mia, gap, rte_s, ref_ua, ref_ra, ref_ta "
                               "from runs where id = ?", (rid,)).fetchone()
                statuses.append(r[0])
                if r[0] != "finished" or r[1] is None:
                    continue
                for m, v in zip(("ua", "ra", "ta", "mia", "gap", "rte_s"), r[1:7]):
                    vals[m].append(v)
                if r[7] is not None:
                    vals["gap3"].append(gap3(dict(zip(GAP3_KEYS, r[1:4])), dict(zip(GAP3_KEYS, r[7:10]))))
            note = f"{statuses.count('finished')}/{len(statuses)}"
            if statuses.count("diverged"):
                note += f" ({statuses.count('diverged')} diverged)"
            print(f"| {row['title']} | " + " | ".join(fmt(vals[m]) for m in METRICS) + f" | {note} |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
