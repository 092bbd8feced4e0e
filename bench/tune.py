"""Hyperparameter search for the methods methods.md calls "tuned" (GA lr, IU alpha, L1-sparse
alpha, TARF k and t1) on the embedded dataset: every value on cases 10-13, seed 0, through the
headless CLI (so every run is an ordinary stored run), scored by Gap to Retrained.

    .venv/bin/python -m bench.tune [-w WORKSPACE] [--seeds 0] [--out docs/tuning.json]

Prints a Markdown record (paste into docs/results.md); the JSON keeps every cell.
Score: the Gap over UA, RA and TA only (``engine.metrics.gap3``; the full Gap is shown next to it): on the
embedded dataset the confidence MIA is degenerate (members and non-members both sit at
confidence ~1, so the SVC's answer on low-confidence samples is its intercept, 0 or 100 by
chance) and would decide the search by a coin flip worth 25 Gap points.
Selection: GA / IU / L1-sparse by the smallest mean score over the four cases (one default per
dataset, as the methods have no per-task defaults); TARF per task category (its defaults are per
dataset and category, as Appendix F.1's k)."""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path

from engine.metrics import gap3

ROOT = Path(__file__).resolve().parent.parent
CASES = (10, 11, 12, 13)
GRIDS = {
    "ga": {"lr": [1e-4, 1e-3, 1e-2]},
    "iu": {"alpha": [10.0, 100.0, 1000.0]},
    "l1-sparse": {"alpha": [5e-5, 5e-4]},
    "tarf": {"k": [3.0, 10.0, 30.0], "t1": [1, 2]},
}


def run(method: str, sets: dict, workspace: str, seeds: str) -> list[dict]:
    cmd = [sys.executable, "-m", "tarf_tui", "headless", "--case", ",".join(map(str, CASES)),
           "--method", method, "--seed", seeds, "-w", workspace, "--format", "json"]
    for k, v in sets.items():
        cmd += ["--set", f"{method}.{k}={v}"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode not in (0, 1):
        raise SystemExit(f"headless failed ({out.returncode}): {out.stderr[-2000:]}")
    cells = []
    for exp in json.loads(out.stdout):
        ref = next(r for r in exp["rows"] if r["method"] == "retrained")
        for row in exp["rows"]:
            if row["method"] != method:
                continue
            c = {"case": exp["case_no"], "sets": sets, "statuses": row["statuses"],
                 **{m: row[m]["mean"] for m in ("ua", "ra", "ta", "mia", "gap")},
                 "ref": {m: ref[m]["mean"] for m in ("ua", "ra", "ta", "mia")}}
            c["gap3"] = None if c["ua"] is None else gap3(c, c["ref"])
            cells.append(c)
    return cells


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-w", "--workspace", default=str(ROOT / "tarf-runs" / "tune"))
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--out", default=str(ROOT / "docs" / "tuning.json"))
    ap.add_argument("--methods", default=",".join(GRIDS))
    a = ap.parse_args()
    record = {}
    for method in a.methods.split(","):
        grid = GRIDS[method]
        keys = list(grid)
        cells = []
        for combo in itertools.product(*(grid[k] for k in keys)):
            sets = dict(zip(keys, combo))
            got = run(method, sets, a.workspace, a.seeds)
            cells += got
            print(f"{method} {sets}: " + ", ".join(f"case {c['case']} gap {c['gap']}" for c in got),
                  file=sys.stderr, flush=True)
        record[method] = cells
        Path(a.out).write_text(json.dumps(record, indent=1))
    print(markdown(record))
    return 0


def _gap(c):
    return float("inf") if c["gap3"] is None else c["gap3"]


def markdown(record: dict) -> str:
    lines = []
    for method, cells in record.items():
        settings = []
        for c in cells:
            if c["sets"] not in settings:
                settings.append(c["sets"])
        lines += [f"**{method}**: Gap over UA, RA, TA (full Gap with MIA after the slash), seed 0", "",
                  "| setting | " + " | ".join(f"case {n}" for n in CASES) + " | mean |",
                  "|---|" + "---:|" * (len(CASES) + 1)]
        for s in settings:
            row = {c["case"]: c for c in cells if c["sets"] == s}
            gaps = [_gap(row[n]) if n in row else float("inf") for n in CASES]
            fmt = lambda n: (f"{row[n]['gap3']:.2f} / {row[n]['gap']:.2f}"  # noqa: E731
                             if n in row and row[n]["gap3"] is not None else
                             ("diverged" if n in row else "-"))
            lines.append(f"| {', '.join(f'{k}={v}' for k, v in s.items())} | "
                         + " | ".join(fmt(n) for n in CASES) + f" | {statistics.mean(gaps):.2f} |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
