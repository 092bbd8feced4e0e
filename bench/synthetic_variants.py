"""Variants of the embedded dataset's generator (and recipe) against TARF's target identification.

    .venv/bin/python bench/synthetic_variants.py '[{"shapes": "shared", "bg": 0.2, "seed": 1}]' [CASE]

Each JSON object is one variant: generator knobs ``shapes`` ("family": the shipped design, each
superclass its own shape family; "shared": class j of every superclass has the same shape;
"cross"), ``bg`` (superclass background contrast, 1 = shipped), ``noise`` (pixel noise std, 14 =
shipped), ``fgsd``; recipe knobs ``ls`` (label smoothing), ``ep``; and ``ks`` / ``t1s`` (TARF
settings to try), ``seed``. For each it trains the smallcnn original (10 epochs, lr 0.1, batch
128), runs TARF's Phase I for t1 epochs and prints one JSON line: the original's test accuracy,
the units identified at t1 vs the hidden ones, the margin and every unit's accuracy drop.
docs/results.md section 4 reports what these runs found (raw lines: docs/synthetic_variants.jsonl).
The generator here is a parameterised copy of ``engine.datasets.make_synthetic``; the shipped
dataset is unchanged."""
import sys, time, json, itertools
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT)); sys.path.insert(0, str(ROOT / "tests"))
import numpy as np, torch
torch.set_num_threads(1)
import engine.datasets as D
from engine.hierarchy import load_hierarchy

def make(seed=0, shapes="family", bg=1.0, noise=14.0, fgsd=18.0, train_per=100, test_per=34, shape_jit=0.0):
    hier = load_hierarchy("synthetic")
    rng = np.random.default_rng(seed)
    S = D.SYN_SIZE
    yy, xx = np.mgrid[0:S, 0:S].astype(np.float32)
    out = {}
    # shared: class j of every superclass uses shape from family j's list
    shared_map = {0: (0, 0), 1: (1, 0), 2: (2, 0)}
    for split, per in (("train", train_per), ("test", test_per)):
        xs, ys, ss = [], [], []
        for c in range(len(hier.classes)):
            sc = hier.class_to_super[c]
            j = [i for i, p in enumerate(hier.class_to_super) if p == sc].index(c)
            n = per * D.SYN_K
            sub = np.repeat(np.arange(D.SYN_K), per)
            cx = rng.uniform(5.5, 9.5, (n, 1, 1)).astype(np.float32)
            cy = rng.uniform(5.5, 9.5, (n, 1, 1)).astype(np.float32)
            r = rng.uniform(*D.SYN_RADIUS, (n, 1, 1)).astype(np.float32)
            phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
            ang = D._SYN_ANGLE[sc] + rng.normal(0, 0.12, (n, 1, 1))
            proj = xx * np.cos(ang) + yy * np.sin(ang)
            stripes = 0.5 + 0.5 * np.sin(2 * np.pi * D._SYN_FREQ[sc] * proj / S + phase)
            base = D._SYN_BG[:, 0].mean(0); hi = D._SYN_BG[:, 1].mean(0)
            b0 = base + bg * (D._SYN_BG[sc, 0] - base); b1 = hi + bg * (D._SYN_BG[sc, 1] - hi)
            bgimg = b0 + stripes[..., None] * (b1 - b0)
            if shapes == "family":
                msc, mj = sc, j
            elif shapes == "shared":   # class j of every superclass: shape j of superclass j
                msc, mj = j, 0
            elif shapes == "cross":    # class j of superclass sc: shape j of superclass (sc+j)%4
                msc, mj = (sc + j) % 4, j
            mask = D._shape_mask(msc, mj, xx - cx, yy - cy, r)[..., None]
            fg = D._SYN_FG[sub][:, None, None, :] + rng.normal(0, fgsd, (n, 1, 1, 3))
            img = np.where(mask, fg, bgimg) * rng.uniform(0.8, 1.2, (n, 1, 1, 1))
            img += rng.normal(0, noise, img.shape)
            xs.append(np.clip(img, 0, 255).astype(np.uint8)); ys.append(np.full(n, c, dtype=np.int64)); ss.append(sub)
        perm = rng.permutation(sum(len(y) for y in ys))
        out[split] = (np.concatenate(xs)[perm], np.concatenate(ys)[perm], np.concatenate(ss)[perm])
    return D.ArrayData("synthetic", *out["train"][:2], *out["test"][:2], hier.classes, "synthetic",
                       native_k=D.SYN_K, sub_train=out["train"][2], sub_test=out["test"][2], default_recipe_epochs=10)

from method_fixtures import Trained
from engine.spec import Recipe, RunSpec
from engine.task import resolve
from engine.train import DeviceData, fit, accuracy
from engine.models import build_model
from engine.methods import impl  # noqa
from engine.methods.base import METHODS
from engine.methods.params import resolve_params

def trial(case, kw, ks=(0.3, 1.0, 3.0), t1s=(1, 2), seed=0):
    kw = dict(kw); ls = kw.pop("ls", 0.0); ks = kw.pop("ks", ks); t1s = kw.pop("t1s", t1s); ep = kw.pop("ep", 10); seed = kw.pop("seed", seed)
    D.make_synthetic = lambda seed=0, **_: make(seed, **kw)
    import engine.task as T; T._cached_data.cache_clear()
    torch.manual_seed(seed)
    task = resolve(RunSpec(case=case))
    p = task.partition
    data = DeviceData(task.data.x_train, p.y_train, task.data.x_test, p.y_test, torch.device("cpu"))
    m = build_model("smallcnn", p.num_outputs)
    t = time.time()
    fit(m, data, torch.arange(len(p.y_train)), epochs=ep, lr=0.1, batch_size=128, seed=seed, label_smoothing=ls)
    tacc = accuracy(m, data, "test", torch.arange(len(p.y_test)))
    state = {k: v.detach().clone() for k, v in m.state_dict().items()}
    tr = Trained(task, data, "smallcnn", None, state, Recipe(epochs=10))
    hidden = sorted(p.unit_names.index(u) for u in p.hidden_units)
    from engine.train import predict as _pred
    m.eval()
    with torch.no_grad():
        lo = _pred(m, data, "train", torch.as_tensor(p.d_f)).float()
    runner = [round(float(v), 3) for v in lo.mean(0)]  # mean predicted probabilities on D_f
    res = {"mean_probs_on_d_f": runner, "kw": [kw, ls, seed], "case": case, "test_acc": round(tacc, 2), "fit_s": round(time.time() - t, 1), "hidden": hidden, "runs": []}
    for k, t1 in itertools.product(ks, t1s):
        ctx = tr.context(seed=seed, batch_size=128)
        meth = METHODS.get("tarf")(ctx, resolve_params("tarf", {"k": k, "t1": t1}, epochs=10))
        meth.setup()
        for e in range(t1):
            meth.epoch(e)
        ex = meth.identify()
        drop = [None if x is None else round(float(x), 2) for x in ex["acc_drop"]]
        res["runs"].append({"k": k, "t1": t1, "excluded": ex["excluded_units"], "ok": ex["excluded_units"] == hidden,
                            "margin": ex["id_margin"], "drop": drop})
    print(json.dumps(res), flush=True)

if __name__ == "__main__":
    variants = json.loads(sys.argv[1])
    case = int(sys.argv[2]) if len(sys.argv) > 2 else 11
    for kw in variants:
        trial(case, kw)
