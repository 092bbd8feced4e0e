"""The paper's four-case comparison (Table 1) on real CIFAR-10 at a CPU size: the offline npz
copy (``--data-root``, default ../shared/datasets/cifar10.npz), ``--per-class`` training images
per class (default 500; test set in proportion), smallcnn, every method, cases 10-13.

    .venv/bin/python bench/cifar10_cpu.py [--per-class 500] [--seeds 0] [-w WORKSPACE]

Runs through the headless CLI (every run stored in the workspace) and prints its Markdown table.
TARF gets the paper's CIFAR-10 k (Appendix F.1: 0.02, 0.04 in model mismatch) explicitly, since
an npz dataset does not pick up the ``cifar10`` dataset defaults. Exits 0 with a note when the
data file is absent."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NPZ = ROOT.parent / "shared" / "datasets" / "cifar10.npz"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-root", default=str(NPZ))
    ap.add_argument("--per-class", default="500")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--methods", default="all")
    ap.add_argument("-w", "--workspace", default=str(ROOT / "tarf-runs" / "cifar10-cpu"))
    a = ap.parse_args()
    if not Path(a.data_root).is_file():
        print(f"skipped: {a.data_root} not found", file=sys.stderr)
        return 0
    base = [sys.executable, "-m", "tarf_tui", "headless", "--dataset", "npz", "--data-root", a.data_root,
            "--per-class", a.per_class, "--method", a.methods, "--seed", a.seeds, "-w", a.workspace,
            "--format", "md"]
    rc = 0
    for cases, k in (("10,11,13", 0.02), ("12", 0.04)):
        out = subprocess.run(base + ["--case", cases, "--set", f"tarf.k={k}", "--set", f"tarf-i.k={k}"], cwd=ROOT)
        rc = max(rc, out.returncode)
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
