"""Watch TARF's Phase I step by step: per-unit accuracy on D_un and where D_f's predictions go.

    .venv/bin/python -m bench.identification_trace [--case 11] [--k 3] [--t1 2] [--every 4]
                                                   [--seed 0] [--per-class N] [--json FILE]

Trains the original model with the dataset's default recipe (as the runner does), then runs the
product's TARF (``engine/methods/tarf.py``, Phase I only: t1 epochs of annealed gradient ascent
on D_f in mini-batches of D) and, every ``--every`` optimiser steps, evaluates the accuracy of
each unit of D_un and the histogram of the model's predictions on D_f. The last line is the
identification TARF makes at t1. This is how docs/results.md explains why accuracy-drop
identification finds the hidden units in data mismatch (case 13) and not in target mismatch
(case 11) on the embedded dataset: gradient ascent sends D_f into one "sink" class, that class
keeps (or gains) accuracy, and the classes that lose accuracy are the sink's neighbours."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", type=int, default=11)
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--per-class", type=int, default=None)
    ap.add_argument("--k", type=float, default=None, help="TARF k (default: the dataset default)")
    ap.add_argument("--t1", type=int, default=None, help="Phase I epochs (default: the dataset default)")
    ap.add_argument("--every", type=int, default=4, help="evaluate every N optimiser steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None, help="also write the trace here")
    a = ap.parse_args()

    import torch

    from engine.methods.base import Context
    from engine.methods.impl import METHODS
    from engine.methods.params import resolve_params
    from engine.models import build_model
    from engine.runner import resolved_recipe, seed_everything
    from engine.spec import RunSpec
    from engine.task import resolve
    from engine.train import DeviceData, fit

    torch.set_num_threads(a.threads)
    spec = RunSpec(dataset=a.dataset, case=a.case, per_class=a.per_class, seed=a.seed)
    task = resolve(spec)
    p = task.partition
    r = resolved_recipe(spec, task)
    data = DeviceData(task.data.x_train, p.y_train, task.data.x_test, p.y_test, torch.device("cpu"))
    seed_everything(a.seed)
    model = build_model("smallcnn", p.num_outputs)
    t0 = time.perf_counter()
    fit(model, data, torch.arange(len(p.y_train)), epochs=int(r.epochs), lr=r.lr, batch_size=r.batch_size,
        momentum=r.momentum, weight_decay=r.weight_decay, label_smoothing=r.label_smoothing,
        augment=r.augment, seed=a.seed)
    print(f"original model: {r.epochs} epochs in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    over = {k: v for k, v in (("k", a.k), ("t1", a.t1)) if v is not None}
    params = resolve_params("tarf", over, dataset=a.dataset, category=task.case.category)
    names = list(p.unit_names)
    hidden = [names.index(u) for u in p.hidden_units]
    trace: list[dict] = []
    steps = [0]

    def snapshot() -> None:
        acc = ctx.unit_accuracy(d_un)
        pred = ctx.probs(d_f).argmax(1)
        hist = torch.bincount(pred, minlength=p.num_outputs)
        top = [(p.output_names[int(i)], int(hist[i])) for i in torch.argsort(-hist)[:3] if hist[i] > 0]
        trace.append({"step": steps[0], "acc": [None if v != v else round(100 * float(v), 1) for v in acc],
                      "d_f_predicted_as": top})

    def on_step() -> None:
        if steps[0] % a.every == 0:
            was = ctx.model.training
            snapshot()
            ctx.model.train(was)
        steps[0] += 1

    ctx = Context.of(model, data, p, batch_size=spec.batch_size, seed=a.seed, recipe=r,
                     original_state=state, on_step=on_step)
    d_f, d_un = ctx.d_f, ctx.d_un
    m = METHODS.get("tarf")(ctx, params)
    m.setup()
    for e in range(params.t1):
        m.epoch(e)
    snapshot()
    ident = m.identify()
    shown = [i for i in range(len(names)) if i != names.index(p.forget[0]) or i in hidden] \
        if p.forget and p.forget[0] in names else list(range(len(names)))
    head = ["step", *[names[i] + ("*" if i in hidden else "") for i in shown], "D_f predicted as"]
    print(f"case {a.case}, TARF k={params.k} t1={params.t1} lr={params.lr}; * = hidden target units; "
          f"accuracy on D_un per unit (%)")
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---:"] * (len(head) - 1) + ["---"]) + "|")
    for row in trace:
        cells = ["-" if row["acc"][i] is None else f"{row['acc'][i]:.0f}" for i in shown]
        print("| " + " | ".join([str(row["step"]), *cells,
                                   ", ".join(f"{n} {c}" for n, c in row["d_f_predicted_as"])]) + " |")
    ex = [names[i] for i in ident["excluded_units"]]
    print(f"\nidentified at t1: {ex} (hidden: {[names[i] for i in hidden]}; "
          f"{'exact' if sorted(ident['excluded_units']) == sorted(hidden) else 'missed'}), "
          f"margin {ident['id_margin']}")
    if a.json:
        Path(a.json).write_text(json.dumps({"case": a.case, "k": params.k, "t1": params.t1, "units": names,
                                            "hidden": hidden, "trace": trace, "identified": ident}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
