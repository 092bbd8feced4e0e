"""How the embedded dataset's sibling distance trades accuracy against target identification.

    .venv/bin/python -m bench.synthetic_design [--sibling 0.65,0.8,1.0] [--seeds 0,1,2]
                                               [--threads 1] [--k K] [--t1 T]

For each ``SynConfig.sibling`` value and seed, in target mismatch (case 11: class model, forget
car, hidden truck + bus) and data mismatch (case 13: superclass model, forget car, hidden truck +
bus): trains the original model with the dataset's recipe (as the runner does), prints its train
and test accuracy, then runs the product's TARF Phase I (``engine/methods/tarf.py``, t1 epochs of
annealed ascent on D_f) and prints whether the identification at t1 is exact and its margin (the smallest
|accuracy change| of a hidden unit minus the largest of any other unit, percentage points).
This is the measurement behind the shipped ``sibling`` and TARF's k / t1 (docs/results.md)."""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch

from engine import datasets as D
from engine import task as T
from engine.methods.base import METHODS, Context
from engine.methods import impl  # noqa: F401  (registers the implementations)
from engine.methods.params import resolve_params
from engine.models import build_model
from engine.runner import resolved_recipe, seed_everything
from engine.spec import RunSpec
from engine.train import DeviceData, accuracy, fit


def _original(case: int, seed: int):
    """The task's partition and its original model, trained with the dataset's recipe."""
    seed_everything(seed)
    spec = RunSpec(case=case, seed=seed)
    task = T.resolve(spec)
    p, r = task.partition, resolved_recipe(spec, task)
    data = DeviceData(task.data.x_train, p.y_train, task.data.x_test, p.y_test, torch.device("cpu"))
    torch.manual_seed(seed)
    model = build_model("smallcnn", p.num_outputs)
    fit(model, data, torch.arange(len(p.y_train)), epochs=int(r.epochs), lr=r.lr,
        batch_size=r.batch_size, momentum=r.momentum, weight_decay=r.weight_decay,
        label_smoothing=r.label_smoothing, augment=r.augment, seed=seed)
    return spec, task, data, model


def _phase1(case: int, seed: int, k: float | None, t1: int | None) -> tuple[float, float, bool, float]:
    """Original model of ``case`` (train and test accuracy), then TARF's identification at t1:
    exact or not, and the margin."""
    spec, task, data, model = _original(case, seed)
    p = task.partition
    accs = accuracy(model, data, "train"), accuracy(model, data, "test")
    state = {n: v.detach().clone() for n, v in model.state_dict().items()}
    names = list(p.unit_names)
    hidden = sorted(names.index(u) for u in p.hidden_units)
    ctx = Context.of(model, data, p, batch_size=spec.batch_size, seed=seed, original_state=state)
    over = {n: v for n, v in (("k", k), ("t1", t1)) if v is not None}  # else the dataset defaults
    params = resolve_params("tarf", over, dataset="synthetic", category=task.case.category)
    m = METHODS.get("tarf")(ctx, params)
    m.setup()
    for e in range(params.t1):
        m.epoch(e)
    ident = m.identify()
    ch = [None if v is None else abs(v) for v in ident["acc_change"]]
    margin = min(ch[i] for i in hidden) - max(v for i, v in enumerate(ch) if v is not None and i not in hidden)
    return (*accs, sorted(ident["excluded_units"]) == hidden, margin)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sibling", default=str(D.SYN.sibling))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--k", type=float, default=None, help="TARF k (default: the dataset's, per task)")
    ap.add_argument("--t1", type=int, default=None, help="Phase I epochs (default: the dataset's)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    base = D.SYN
    print("| sibling | seed | class model train | test | case 11 exact | margin "
          "| superclass model train | test | case 13 exact | margin |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---|---:|")
    for sib in [float(x) for x in a.sibling.split(",")]:
        D.SYN = dataclasses.replace(base, sibling=sib)
        T._cached_data.cache_clear()
        for seed in [int(s) for s in a.seeds.split(",")]:
            t0 = time.perf_counter()
            cells = []
            for case in (11, 13):
                tr, te, ok, margin = _phase1(case, seed, a.k, a.t1)
                cells += [f"{tr:.1f}", f"{te:.1f}", "yes" if ok else "no", f"{margin:+.1f}"]
            print(f"| {sib:g} | {seed} | " + " | ".join(cells) + f" |  <!-- {time.perf_counter() - t0:.0f} s -->",
                  flush=True)
    D.SYN = base
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
