"""Cost of storing one epoch row against the cost of one epoch.

    python -m bench.bench_store [--rows 200] [--threads N]

Times ``Store.add_epoch`` (one BEGIN IMMEDIATE transaction, WAL, with a typical TARF extras
object) on a fresh workspace file, and one unlearning epoch of the embedded default (FT over
D_un of case 11, smallcnn, batch 128) plus its evaluation pass, and prints the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from engine.metrics import DevicePartition, evaluate
from engine.models import build_model
from engine.spec import RunSpec
from engine.store import Store
from engine.task import resolve
from engine.train import DeviceData, batches, configure_cpu_threads, sgd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--threads", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads) if a.threads else configure_cpu_threads()

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "tarf.db")
        rid = store.create_run(RunSpec())
        extras = {"k_t": 0.012, "kept": 2400, "phase": "II", "excluded_units": [1, 2],
                  "acc_drop": [0.01 * i for i in range(12)], "step_s": 1.0}
        times = []
        for e in range(a.rows):
            t = time.perf_counter()
            store.add_epoch(rid, e, phase="II", loss=0.5, ua=10.0, ra=99.0, ta=95.0, acc_f=1.0,
                            acc_uf=50.0, acc_test_t=20.0, lr=0.01, seconds=1.0, extras=extras)
            times.append(time.perf_counter() - t)
        hb = []
        for _ in range(a.rows):
            t = time.perf_counter()
            store.heartbeat(rid)
            hb.append(time.perf_counter() - t)
        store.close()

    task = resolve(RunSpec())
    p = task.partition
    data = DeviceData(task.data.x_train, p.y_train, task.data.x_test, p.y_test, torch.device("cpu"))
    dp = DevicePartition.from_partition(p, data.device)
    torch.manual_seed(0)
    model = build_model("smallcnn", p.num_outputs)
    opt = sgd(model, 0.01)
    gen = torch.Generator().manual_seed(0)
    ep = []
    for _ in range(2):
        t = time.perf_counter()
        model.train()
        for x, y, _ in batches(data, dp.d_un, 128, generator=gen):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        t_step = time.perf_counter() - t
        evaluate(model, data, dp)
        ep.append((t_step, time.perf_counter() - t))
    step_s, epoch_s = min(s for s, _ in ep), min(w for _, w in ep)
    row_ms = statistics.median(times) * 1e3
    print(f"add_epoch: median {row_ms:.2f} ms, p95 {sorted(times)[int(0.95 * len(times))] * 1e3:.2f} ms "
          f"over {a.rows} rows; heartbeat: median {statistics.median(hb) * 1e3:.2f} ms")
    print(f"one FT epoch on the embedded default (|D_un| = {len(dp.d_un)}): step {step_s:.2f} s, "
          f"with evaluation {epoch_s:.2f} s ({torch.get_num_threads()} threads)")
    print(f"storing a row costs {100 * row_ms / 1e3 / epoch_s:.3f}% of an epoch")


if __name__ == "__main__":
    main()
