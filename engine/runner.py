"""The run loop: spec -> task -> original model -> Retrained reference -> method epochs, each
evaluated and stored -> final metrics (MIA, Gap vs Retrained, RTE) -> finished.

``run(spec, store, run_id, workspace, stop)`` returns the run's terminal status. It never lets
an error escape except a ``TarfError`` (bad input: the run is marked failed with the one-line
message and the error re-raised so the command line can exit 2):

- ``Diverged`` (NaN / exploding loss or weights) -> ``diverged``, the epoch rows written so far kept;
- ``Cancelled`` (``stop()`` became true; checked every batch) -> ``killed``;
- anything else -> ``failed`` with the exception and traceback in ``error``.

Progress also goes to stdout as one JSON object per line (``{"event": "epoch", ...}``), flushed,
for liveness; nothing depends on parsing it.

The Retrained method is special: when its params match the recipe the run *is* the reference.
A cached reference has its stored training history replayed as the run's epoch rows (extras
``{"cached": true}``; the per-sample correctness saved per epoch makes the accuracies exact for
this run's partition); otherwise it is trained here, a row per epoch, and cached.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import subprocess
import time
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch import nn

from . import __version__
from .checkpoints import ModelCache, task_model_key
from .errors import TarfError
from .jsonsafe import jsonable
from .methods.base import METHODS, Context
from .methods.params import REFERENCE
from .metrics import DevicePartition, accuracies_np, correct_bits, evaluate, gap
from .models import build_model
from .spec import Recipe, RunSpec
from .store import ACTIVE, Store, Workspace
from .task import Task, resolve
from .train import Cancelled, DeviceData, Diverged, configure_cpu_threads, fit, pick_device

HEARTBEAT_S = 1.0  # at most one heartbeat write per second


def load_methods() -> None:
    """Register every method implementation (``engine.methods.impl``), when it exists."""
    try:
        import engine.methods.impl  # noqa: F401
    except ModuleNotFoundError as e:
        if e.name not in ("engine.methods.impl",):
            raise


def code_version() -> str:
    """The package version, plus the git commit when the code runs from a checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return f"{__version__}+g{out.stdout.strip()}"
    except (OSError, subprocess.SubprocessError):
        pass
    return __version__


def resolved_recipe(spec: RunSpec, task: Task) -> Recipe:
    return replace(spec.recipe, epochs=spec.recipe.epochs or task.data.default_recipe_epochs)


def emit(event: str, **values: Any) -> None:
    """One JSON line on stdout (NaN / inf become null), stamped with the wall clock ``t``
    (seconds since the epoch: bench.bench_headless reads where a run's time goes from them)."""
    print(json.dumps({"event": event, "t": round(time.time(), 3), **jsonable(values)}, default=str),
          flush=True)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


class _Heartbeat:
    """A callable that writes a heartbeat at most once per ``HEARTBEAT_S``."""

    def __init__(self, store: Store, run_id: int):
        self.store, self.run_id, self.last = store, run_id, 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last >= HEARTBEAT_S:
            self.last = now
            self.store.heartbeat(self.run_id)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _finite_weights(model: nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all()) if flags else True


# ---- entry -------------------------------------------------------------------------------------
def run(spec: RunSpec, store: Store, run_id: int, workspace: Workspace,
        stop: Callable[[], bool] = lambda: False) -> str:
    pid = os.getpid()
    versions = {"code": code_version(), "torch": torch.__version__,
                "python": platform.python_version()}
    try:
        if not store.mark_running(run_id, pid, None, versions):
            row = store.get_run(run_id)
            status = row["status"] if row else "failed"
            emit("not-run", run_id=run_id, status=status)
            return status
        emit("running", run_id=run_id, pid=pid)
        seed_everything(spec.seed)
        load_methods()
        task = resolve(spec, cache_dir=workspace.cache_dir)
        device = pick_device(spec.device)
        if device.type == "cpu":
            configure_cpu_threads()
        else:
            torch.backends.cudnn.benchmark = True  # fixed image size: pick the fastest kernels once
        store.mark_running(run_id, pid, str(device), versions, spec=task.spec)
        # a background heartbeat covers the stretches without batches (an MIA fit, waiting for
        # another engine's cached model); the per-batch one keeps it fresh while training
        with store.keep_alive(run_id):
            return _Run(task, store, run_id, workspace, stop, device).go()
    except Diverged as e:
        store.mark(run_id, "diverged", error=f"diverged: {e}", expect=ACTIVE)
        emit("diverged", run_id=run_id, error=str(e))
        return "diverged"
    except Cancelled:
        store.mark(run_id, "killed", error="stopped by signal (SIGTERM / SIGINT)", expect=ACTIVE)
        emit("killed", run_id=run_id)
        return "killed"
    except TarfError as e:
        store.mark(run_id, "failed", error=str(e), expect=ACTIVE)
        emit("failed", run_id=run_id, error=str(e))
        raise
    except Exception as e:  # anything else is a bug or an environment problem: keep the trace
        tb = traceback.format_exc()
        store.mark(run_id, "failed", error=f"{type(e).__name__}: {e} | {tb}", expect=ACTIVE)
        emit("failed", run_id=run_id, error=f"{type(e).__name__}: {e}")
        return "failed"


class _Run:
    def __init__(self, task: Task, store: Store, run_id: int, workspace: Workspace,
                 stop: Callable[[], bool], device: torch.device):
        self.task, self.spec, self.part = task, task.spec, task.partition
        self.store, self.run_id, self.stop, self.device = store, run_id, stop, device
        self.beat = _Heartbeat(store, run_id)
        self.timing: dict[str, float] = {}  # seconds per stage (``timed``), in the final extras
        self.recipe = resolved_recipe(self.spec, task)
        self.cache = ModelCache(workspace.cache_dir / "models", store)
        d = task.data
        self.data = DeviceData(d.x_train, self.part.y_train, d.x_test, self.part.y_test, device)
        self.dp = DevicePartition.from_partition(self.part, device)
        self.all_train = torch.arange(len(d.y_train), device=device)

    def stop_and_beat(self) -> bool:
        self.beat()
        return self.stop()

    # ---- models --------------------------------------------------------------------------
    def fresh_model(self) -> nn.Module:
        torch.manual_seed(self.spec.seed)  # same initial weights in every process
        m = build_model(self.spec.arch, self.part.num_outputs).to(self.device)
        if self.device.type == "cuda":
            m = m.to(memory_format=torch.channels_last)
        return m

    def _fit_build(self, model: nn.Module, idx: torch.Tensor, kind: str,
                   on_row: Callable[[dict], None] | None = None) -> Callable[[], dict]:
        """A ``build`` for the cache: train ``model`` from its initial weights on ``idx`` with
        the recipe, recording per epoch the fit row plus per-sample correctness (original: test
        set; retrained: both sets, so any partition's accuracies can be replayed)."""
        init = {k: v.clone() for k, v in model.state_dict().items()}
        r = self.recipe

        def build() -> dict:
            model.load_state_dict(init)
            history: list[dict] = []

            def on_epoch(row: dict) -> None:
                row = dict(row)
                if kind == "retrained":
                    ct, cte = correct_bits(model, self.data)
                    row["correct_train"] = torch.from_numpy(np.packbits(ct))
                    row["correct_test"] = torch.from_numpy(np.packbits(cte))
                    row.update(accuracies_np(ct, cte, self.part))
                else:
                    _, cte = correct_bits(model, self.data, train=False)
                    row["test_acc"] = float(100.0 * cte.mean()) if len(cte) else float("nan")
                history.append(row)
                emit("pretrain", run_id=self.run_id, kind=kind, epoch=row["epoch"],
                     epochs=r.epochs, loss=row["loss"], train_acc=row["train_acc"],
                     seconds=row["seconds"])
                if on_row is not None:
                    on_row(row)

            fit(model, self.data, idx, epochs=int(r.epochs), lr=r.lr, batch_size=r.batch_size,
                momentum=r.momentum, weight_decay=r.weight_decay,
                label_smoothing=r.label_smoothing, augment=r.augment, seed=self.spec.seed,
                stop=self.stop_and_beat, on_epoch=on_epoch)
            if not _finite_weights(model):
                raise Diverged(f"{kind} model weights became NaN / inf")
            meta = {"kind": kind, "history": history,
                    "train_seconds": float(sum(h["seconds"] for h in history)),
                    "device": str(self.device), "built_by_run": self.run_id}
            if kind == "retrained":
                meta["metrics"] = evaluate(model, self.data, self.dp, mia_seed=self.spec.seed,
                                           variants=True)
            else:
                ct, cte = correct_bits(model, self.data)
                meta["metrics"] = {"train_acc": float(100.0 * ct.mean()),
                                   "test_acc": float(100.0 * cte.mean()) if len(cte) else float("nan")}
            return meta

        return build

    def original(self) -> tuple[nn.Module, dict, bool, str]:
        model = self.fresh_model()
        key, ident = task_model_key("original", self.task, self.recipe)
        build = self._fit_build(model, self.all_train, "original")
        meta, hit = self.cache.get_or_build(key, "original", model, lambda: {**build(), "identity": ident},
                                            stop=self.stop, on_wait=self.beat)
        model.to(self.device)
        emit("original", run_id=self.run_id, cached=hit, key=key, **meta.get("metrics", {}))
        return model, meta, hit, key

    def reference(self, on_row: Callable[[dict], None] | None = None) -> tuple[nn.Module, dict, bool, str]:
        model = self.fresh_model()
        key, ident = task_model_key("retrained", self.task, self.recipe, self.part.d_r)
        build = self._fit_build(model, self.dp.d_r, "retrained", on_row)
        meta, hit = self.cache.get_or_build(key, "retrained", model, lambda: {**build(), "identity": ident},
                                            stop=self.stop, on_wait=self.beat)
        model.to(self.device)
        return model, meta, hit, key

    def ref_metrics(self, model: nn.Module, meta: dict) -> dict[str, float]:
        """The reference's metrics on this run's partition (one pass; the MIA attacks from the
        cache when it has them)."""
        cached = meta.get("metrics", {})
        have = cached.get("mia") is not None and cached.get("mia_variants") is not None
        m = evaluate(model, self.data, self.dp, mia_seed=None if have else self.spec.seed,
                     variants=not have)
        if have:
            m["mia"], m["mia_variants"] = float(cached["mia"]), dict(cached["mia_variants"])
        return m

    def identification(self, extras: dict) -> dict | None:
        """The truth next to a method's target identification (``excluded_units`` in its epoch
        extras): which units were really hidden, their names, and hits / n. The method never
        sees this; reports do."""
        if "excluded_units" not in extras:
            return None
        names = list(self.part.unit_names)
        hidden = sorted(names.index(u) for u in self.part.hidden_units)
        excluded = sorted(int(u) for u in extras["excluded_units"])
        return {"hits": len(set(hidden) & set(excluded)), "n": len(hidden),
                "excluded": excluded, "hidden": hidden, "unit_names": names,
                "unit_level": self.part.unit_level}

    # ---- the run -------------------------------------------------------------------------
    @contextlib.contextmanager
    def timed(self, key: str) -> Iterator[None]:
        """Add the block's wall time to ``self.timing[key]`` (the run's final extras)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.timing[key] = self.timing.get(key, 0.0) + time.perf_counter() - t0

    def go(self) -> str:
        t_wall = time.perf_counter()
        emit("task", run_id=self.run_id, note=self.task.note, device=str(self.device),
             sizes=self.part.sizes(), recipe_epochs=self.recipe.epochs)
        if self.spec.method == REFERENCE and self._retrained_is_reference():
            return self.retrained_run(t_wall)
        with self.timed("original"):
            orig, orig_meta, orig_hit, orig_key = self.original()
        orig_state = {k: v.detach().clone() for k, v in orig.state_dict().items()}
        with self.timed("evaluate"):
            orig_eval = evaluate(orig, self.data, self.dp)
        with self.timed("reference"):
            ref, ref_meta, ref_hit, ref_key = self.reference()
            ref_m = self.ref_metrics(ref, ref_meta)
        emit("reference", run_id=self.run_id, cached=ref_hit, key=ref_key, **ref_m)
        del ref

        retrained = self.spec.method == REFERENCE
        model = self.fresh_model() if retrained else orig
        ctx = Context.of(model, self.data, self.dp, batch_size=self.spec.batch_size,
                         seed=self.spec.seed, retrained=retrained, recipe=self.recipe,
                         stop=self.stop, on_step=self.beat, original_state=orig_state)
        method = METHODS.get(self.spec.method)(ctx, self.task.params)
        t0 = time.perf_counter()
        method.setup()
        _sync(self.device)
        rte = time.perf_counter() - t0
        identified = None
        for e in range(method.epochs()):
            t0 = time.perf_counter()
            r = method.epoch(e)
            _sync(self.device)
            step_s = time.perf_counter() - t0
            rte += step_s
            loss = float(r.loss)
            if not math.isfinite(loss):
                raise Diverged(f"epoch {e}: loss became {loss}")
            with self.timed("evaluate"):
                ev = evaluate(model, self.data, self.dp,
                              mia_seed=self.spec.seed if self.spec.mia_every_epoch else None)
            if not _finite_weights(model):
                raise Diverged(f"epoch {e}: weights became NaN / inf")
            lr = r.lr if r.lr is not None else ctx.last_lr
            seconds = time.perf_counter() - t0
            extras = {**(r.extras or {}), "step_s": step_s}
            ident = self.identification(extras)
            if ident is not None:
                identified = ident
                extras.update(hidden_units=ident["hidden"], unit_names=ident["unit_names"])
            self.store.add_epoch(self.run_id, e, phase=r.phase or "unlearn", loss=loss, lr=lr,
                                 seconds=seconds, extras=extras, **ev)
            emit("epoch", run_id=self.run_id, epoch=e, phase=r.phase or "unlearn", loss=loss, lr=lr,
                 seconds=seconds, **ev, extras=r.extras or {})
        with self.timed("final_metrics"):  # one evaluation + the five SVC attacks
            final = evaluate(model, self.data, self.dp,
                             mia_seed=self.spec.seed if self.spec.mia else None, variants=True)
        extras = {"original": orig_eval, "original_key": orig_key, "original_cached": orig_hit,
                  "original_test_acc": orig_meta.get("metrics", {}).get("test_acc"),
                  "reference_key": ref_key, "reference_cached": ref_hit}
        if identified is not None:
            extras["identification"] = identified
        return self._finish(final, ref_m, rte, t_wall, extras)

    def _retrained_is_reference(self) -> bool:
        p, r = self.task.params, self.recipe
        return ((p.epochs in (0, r.epochs)) and p.lr == r.lr and p.momentum == r.momentum
                and p.weight_decay == r.weight_decay and not p.clip_grad)

    def retrained_run(self, t_wall: float) -> str:
        """The run is the Retrained reference: train it (a row per epoch) or replay its cache."""
        written: list[int] = []

        def write_row(row: dict, cached: bool = False) -> None:
            if row.get("correct_train") is not None:
                ct = np.unpackbits(row["correct_train"].numpy())[: len(self.part.y_train)]
                cte = np.unpackbits(row["correct_test"].numpy())[: len(self.part.y_test)]
                acc = accuracies_np(ct, cte, self.part)
            else:
                acc = {k: row.get(k) for k in ("ua", "ra", "ta", "acc_f", "acc_uf", "acc_test_t")}
            extras = {"train_acc": row.get("train_acc")}
            if cached:
                extras["cached"] = True
            self.store.add_epoch(self.run_id, int(row["epoch"]), phase="retrain", loss=row["loss"],
                                 lr=row["lr"], seconds=row["seconds"], extras=extras, **acc)
            written.append(int(row["epoch"]))
            emit("epoch", run_id=self.run_id, epoch=int(row["epoch"]), phase="retrain",
                 loss=row["loss"], lr=row["lr"], seconds=row["seconds"], cached=cached, **acc)

        with self.timed("reference"):
            model, meta, hit, key = self.reference(on_row=write_row)
        if hit:
            for row in meta.get("history", []):
                write_row(row, cached=True)
        with self.timed("final_metrics"):
            m = self.ref_metrics(model, meta)
        if not self.spec.mia:
            m.pop("mia", None)
            m.pop("mia_variants", None)
        self.timing["unlearn"] = 0.0  # its training is the "reference" stage
        return self._finish(m, m, float(meta.get("train_seconds", float("nan"))), t_wall,
                            {"reference_key": key, "reference_cached": hit,
                             "rte_cached": hit})

    def _finish(self, final: dict, ref: dict, rte: float, t_wall: float, extras: dict) -> str:
        metrics = dict(final)
        metrics["gap"] = gap(final, ref)
        metrics["rte_s"] = rte
        for k in ("ua", "ra", "ta", "mia", "mia_variants"):
            metrics[f"ref_{k}"] = ref.get(k, float("nan"))
        self.timing.setdefault("unlearn", rte)
        extras = {**extras, "wall_s": time.perf_counter() - t_wall, "device": str(self.device),
                  "timing": dict(self.timing),
                  "recipe_epochs": self.recipe.epochs, "sizes": self.part.sizes()}
        metrics["extras"] = extras
        self.store.finish(self.run_id, metrics, status="finished")
        emit("finished", run_id=self.run_id, **{k: v for k, v in metrics.items() if k != "extras"})
        return "finished"

