"""One short device check for a lent GPU (written to be run once, blind).

    python -m bench.gpu_check [--npz ../shared/datasets/cifar10.npz] [--epochs 30] [--budget-s 540]
    python -m bench.gpu_check --smoke      # the same path on CPU in a minute (50 images per class)

Through the product's own path (``engine.runner.run`` on a throwaway workspace), on CIFAR-10 from
the npz arrays file, case 11 (forget automobile, target vehicle, model outputs classes):

1. FT for 10 epochs. This trains and caches the ResNet-18 original model (the recipe: one-cycle
   SGD, lr 0.1, batch 256, ``--epochs``) and the Retrained reference on D_r; the original's
   per-epoch history gives the time to > 93% test accuracy and training images/s;
2. TARF for 10 epochs, reusing both cached models.

Prints one JSON object as the last line (also written to ``$OUT/gpu_check.json`` when ``OUT``
is set, after every stage, so a run cut short still leaves what it measured). The test accuracy
is given on the whole test set and on its first 1,000 images, the only ones stored losslessly
(the other 9,000 are JPEG copies, which cost 2-3 points: see shared/datasets/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path

from engine.jsonsafe import jsonable

ROOT = Path(__file__).resolve().parent.parent

T0 = time.perf_counter()
REPORT: dict = {"ok": False, "stages": {}, "errors": []}


def save() -> None:
    REPORT["elapsed_s"] = round(time.perf_counter() - T0, 1)
    out = os.environ.get("OUT")
    if out:
        try:
            Path(out).mkdir(parents=True, exist_ok=True)
            (Path(out) / "gpu_check.json").write_text(json.dumps(jsonable(REPORT), indent=1, default=str))
        except OSError as e:
            print(f"could not write $OUT/gpu_check.json: {e}", file=sys.stderr)


def stage(name):
    def deco(fn):
        def wrapped(*a, **kw):
            t = time.perf_counter()
            try:
                res = fn(*a, **kw)
                REPORT["stages"][name] = {"ok": True, "seconds": round(time.perf_counter() - t, 2), **(res or {})}
                return res
            except BaseException as e:  # noqa: BLE001 - a blind run must always report
                REPORT["stages"][name] = {"ok": False, "seconds": round(time.perf_counter() - t, 2)}
                REPORT["errors"].append(f"{name}: {type(e).__name__}: {e} | {traceback.format_exc()[-1500:]}")
                return None
            finally:
                save()
        return wrapped
    return deco


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--npz", default=str(ROOT.parent / "shared" / "datasets" / "cifar10.npz"))
    ap.add_argument("--epochs", type=int, default=30, help="recipe epochs of the original / Retrained")
    ap.add_argument("--batch-size", type=int, default=256, help="recipe batch size")
    ap.add_argument("--budget-s", type=float, default=540, help="skip TARF when less than this is left")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU version of the same path")
    ap.add_argument("--workspace", default=None, help="default: a temporary folder")
    a = ap.parse_args()

    import torch

    from engine.checkpoints import ModelCache, task_model_key
    from engine.models import build_model
    from engine.runner import resolved_recipe, run
    from engine.spec import RunSpec
    from engine.store import Workspace
    from engine.task import resolve
    from engine.train import DeviceData, accuracy, pick_device

    REPORT["env"] = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
                     "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                     "smoke": a.smoke, "npz": a.npz, "npz_exists": Path(a.npz).is_file()}
    save()
    if not Path(a.npz).is_file():
        REPORT["errors"].append(f"npz file not found: {a.npz}")
        save()
        print(json.dumps(jsonable(REPORT), default=str))
        return 1
    base = {"dataset": "npz", "data_root": str(Path(a.npz).resolve()), "subsets": 0, "case": 11,
            "arch": "resnet18", "device": "cuda" if torch.cuda.is_available() else "cpu",
            "recipe": {"epochs": a.epochs, "batch_size": a.batch_size, "lr": 0.1}, "epochs": 10}
    if a.smoke:
        base.update(per_class=50, arch="smallcnn", device="cpu", epochs=2,
                    recipe={"epochs": 2, "batch_size": 128, "lr": 0.1})
    ws = Workspace(a.workspace or tempfile.mkdtemp(prefix="tarf-gpu-check-"))
    REPORT["workspace"] = str(ws.path)
    store = ws.store()

    def do_run(method: str) -> dict:
        spec = RunSpec.from_dict({**base, "method": method, "label": f"gpu_check {method}"})
        rid = store.create_run(spec)
        t = time.perf_counter()
        status = run(spec, store, rid, ws)
        wall = time.perf_counter() - t
        r = store.get_run(rid)
        rows = store.epochs(rid)
        keep = ("ua", "ra", "ta", "mia", "acc_f", "acc_uf", "acc_test_t", "gap", "rte_s",
                "ref_ua", "ref_ra", "ref_ta", "ref_mia")
        return {"status": status, "error": r.get("error"), "process_wall_s": round(wall, 2),
                **{k: r.get(k) for k in keep}, "run_extras": r.get("extras"),
                "epoch_seconds": [x["seconds"] for x in rows],
                "epoch_ua": [x["ua"] for x in rows], "epoch_loss": [x["loss"] for x in rows]}

    @stage("ft")
    def ft():
        return do_run("ft")

    @stage("original")
    def original():
        spec = RunSpec.from_dict({**base, "method": "ft"})
        task = resolve(spec)
        recipe = resolved_recipe(spec, task)
        key, _ = task_model_key("original", task, recipe)
        dev = pick_device(spec.device)
        torch.manual_seed(0)
        model = build_model(spec.arch, task.partition.num_outputs)
        meta = ModelCache(ws.cache_dir / "models").load(key, model)
        if meta is None:
            raise RuntimeError(f"original model {key} not in the cache")
        model.to(dev)
        part = task.partition
        data = DeviceData(task.data.x_train, part.y_train, task.data.x_test, part.y_test, dev)
        n_lossless = min(1000, len(part.y_test))
        hist = meta["history"]
        cum, t93, e93 = 0.0, None, None
        for h in hist:
            cum += h["seconds"]
            if t93 is None and h.get("test_acc", 0) > 93.0:
                t93, e93 = cum, h["epoch"]
        n_train = len(part.y_train)
        rates = [n_train / h["seconds"] for h in hist[1:]] or [n_train / hist[0]["seconds"]]
        rates.sort()
        return {"epochs": len(hist), "train_seconds": meta["train_seconds"],
                "test_acc_per_epoch": [round(h.get("test_acc", float("nan")), 2) for h in hist],
                "test_acc": accuracy(model, data, "test"),
                "test_acc_lossless_first_1000": accuracy(
                    model, data, "test", torch.arange(n_lossless, device=dev)),
                "time_to_93_s": t93, "epoch_reaching_93": e93,
                "train_images_per_s_median": rates[len(rates) // 2],
                "params_m": sum(p.numel() for p in model.parameters()) / 1e6}

    @stage("tarf")
    def tarf():
        return do_run("tarf")

    ft()
    original()
    left = a.budget_s - (time.perf_counter() - T0)
    ft_s = (REPORT["stages"].get("ft") or {}).get("seconds", 0)
    if REPORT["stages"].get("ft", {}).get("ok") and left < 0.5 * ft_s:
        REPORT["errors"].append(f"tarf skipped: {left:.0f} s of the budget left")
    else:
        tarf()
    store.close()
    REPORT["ok"] = not REPORT["errors"] and all(s.get("ok") for s in REPORT["stages"].values())
    save()
    print(json.dumps(jsonable(REPORT), default=str))
    return 0 if REPORT["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
