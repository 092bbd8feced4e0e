"""A stand-in for ``python -m engine run``: no torch, a few fake epochs, real store writes.

    python tests/fake_engine.py run --db DB --run-id ID [--epochs N] [--delay S]
    python tests/fake_engine.py run --sink RUN_FOLDER --run-id ID ...   (engine/sink.py)

Environment: ``TARF_FAKE_EPOCHS`` (default 3), ``TARF_FAKE_DELAY`` (seconds per epoch, default
0), ``TARF_FAKE_FAIL=1`` (mark the run failed after the epochs), ``TARF_FAKE_HANG=1`` (mark
running, then sleep without heartbeats until killed), ``TARF_FAKE_PRETRAIN`` (print that many
``pretrain`` events, one per delay, before the first epoch row, as the real engine does while it
trains the original model). Command-line flags win over the
environment. SIGTERM marks the run ``killed`` and exits 143, like the real engine.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.sink import FolderSink  # noqa: E402
from engine.store import Store  # noqa: E402


class Terminated(Exception):
    pass


def _on_sigterm(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="fake_engine")
    ap.add_argument("command", choices=["run"])
    dst = ap.add_mutually_exclusive_group(required=True)
    dst.add_argument("--db")
    dst.add_argument("--sink")
    ap.add_argument("--workspace")
    ap.add_argument("--run-id", type=int, required=True)
    ap.add_argument("--epochs", type=int, default=int(os.environ.get("TARF_FAKE_EPOCHS", 3)))
    ap.add_argument("--delay", type=float, default=float(os.environ.get("TARF_FAKE_DELAY", 0)))
    a = ap.parse_args(argv)
    fail = os.environ.get("TARF_FAKE_FAIL") == "1"
    hang = os.environ.get("TARF_FAKE_HANG") == "1"

    signal.signal(signal.SIGTERM, _on_sigterm)
    store = Store(a.db) if a.db else FolderSink(a.sink)
    try:
        if not store.mark_running(a.run_id, os.getpid(), "cpu",
                                  {"code": "fake", "torch": None,
                                   "python": platform.python_version()}):
            print(f"run {a.run_id} is not queued; exiting", flush=True)
            return 0
        print(f'{{"event": "running", "run_id": {a.run_id}, "pid": {os.getpid()}}}', flush=True)
        if hang:
            while True:
                time.sleep(0.1)
        pre = int(os.environ.get("TARF_FAKE_PRETRAIN", 0))
        for e in range(pre):
            time.sleep(max(a.delay, 0.3))
            store.heartbeat(a.run_id)
            print(f'{{"event": "pretrain", "run_id": {a.run_id}, "kind": "original", '
                  f'"epoch": {e}, "epochs": {pre}, "loss": 1.0}}', flush=True)  # from 0, as train.fit
        t0 = time.perf_counter()
        n = max(a.epochs, 1)
        for e in range(a.epochs):
            t = time.perf_counter()
            end = t + a.delay
            while time.perf_counter() < end:  # sleep in slices, with a heartbeat each
                time.sleep(min(0.05, max(end - time.perf_counter(), 0)))
                store.heartbeat(a.run_id)
            frac = (e + 1) / n
            # percent, like engine/metrics.py
            store.add_epoch(a.run_id, e, phase="unlearn", loss=1.0 / (e + 1),
                            ua=90.0 * (1 - frac) + 2.0, ra=95.0 - 1.0 * frac,
                            ta=90.0 - 1.0 * frac, acc_f=90.0 * (1 - frac),
                            acc_uf=93.0, acc_test_t=85.0 * (1 - frac), mia=None, lr=0.01,
                            seconds=time.perf_counter() - t, extras={"fake": True})
            print(f'{{"event": "epoch", "run_id": {a.run_id}, "epoch": {e}}}', flush=True)
        if fail:
            store.mark(a.run_id, "failed", error="fake engine failure (TARF_FAKE_FAIL=1)")
            print("fake failure", file=sys.stderr, flush=True)
            return 1
        store.finish(a.run_id, {"ua": 2.0, "ra": 94.0, "ta": 89.0, "mia": 50.0, "acc_f": 0.0,
                                "acc_uf": 93.0, "acc_test_t": 0.0, "gap": 1.0,
                                "rte_s": time.perf_counter() - t0, "ref_ua": 0.0,
                                "ref_ra": 95.0, "ref_ta": 90.0, "ref_mia": 50.0})
        print(f'{{"event": "finished", "run_id": {a.run_id}}}', flush=True)
        return 0
    except Terminated:
        store.mark(a.run_id, "killed", error="terminated by SIGTERM", expect=("queued", "running"))
        print(f'{{"event": "killed", "run_id": {a.run_id}}}', flush=True)
        return 143
    finally:
        store.close()


if __name__ == "__main__":
    sys.exit(main())
