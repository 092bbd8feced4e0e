"""Content-addressed cache of original models and Retrained references.

``<workspace>/cache/models/<key>.pt`` holds ``{"state_dict", "meta"}``; ``<key>.json`` (the
sidecar) holds the sha256 and size of the ``.pt`` bytes and the JSON part of the meta; the
store's ``checkpoints`` table gets the same record. The key is the sha256 of everything that
determines the trained weights (``model_key``): the dataset's content hash, per-class cut and
data seed, the hierarchy, subset count, the model's label level and the hash of the model-level
labels themselves, the architecture, the resolved training recipe, the seed, and for a Retrained
reference the hash of the D_r index array.

Writes are atomic (temporary file + ``os.replace``; the sidecar is written after the model, so a
crash in between leaves a model without a sidecar, which counts as damaged). Loading verifies
the sha256; a damaged or partial file gives a warning on stderr and is rebuilt, never a crash.
Engines that need the same model at the same time serialise on ``<key>.lock`` (``fcntl.flock``):
one trains, the others wait (checking their stop flag) and then load its result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
from torch import nn

from .train import Cancelled
from .fsio import atomic_write

CACHE_FORMAT = 1  # bump when what a key means or the file layout changes


def array_hash(a: np.ndarray | None) -> str | None:
    if a is None:
        return None
    a = np.ascontiguousarray(a)
    h = hashlib.sha256(str(a.dtype).encode() + repr(a.shape).encode())
    h.update(a.tobytes())
    return h.hexdigest()[:16]


def model_key(kind: str, *, content_hash: str, per_class: int | None, data_seed: int,
              hierarchy: str, subsets: int, model_level: str, labels: str, arch: str,
              recipe: Mapping[str, Any], seed: int, retain: str | None = None) -> tuple[str, dict]:
    """(key, identity): the key is the sha256 of the identity's canonical JSON."""
    ident = {"format": CACHE_FORMAT, "kind": kind, "content": content_hash, "per_class": per_class,
             "data_seed": data_seed, "hierarchy": hierarchy, "subsets": subsets,
             "model_level": model_level, "labels": labels, "arch": arch, "recipe": dict(recipe),
             "seed": seed, "retain": retain}
    key = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()
    return f"{kind}-{key[:32]}", ident


def task_model_key(kind: str, task, recipe, retain: np.ndarray | None = None) -> tuple[str, dict]:
    """``model_key`` for a resolved ``Task`` (``recipe``: a ``Recipe`` with its epochs set)."""
    spec, part = task.spec, task.partition
    labels = array_hash(np.concatenate([part.y_train, part.y_test]))
    return model_key(kind, content_hash=task.data.content_hash, per_class=spec.per_class,
                     data_seed=spec.data_seed, hierarchy=str(spec.hierarchy), subsets=spec.subsets,
                     model_level=part.case.model_level, labels=labels, arch=spec.arch,
                     recipe=dataclasses.asdict(recipe), seed=spec.seed,
                     retain=array_hash(retain) if retain is not None else None)


def _warn(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr, flush=True)


def _json_part(v: Any) -> Any:
    """The meta without tensors / arrays (for the sidecar and the store)."""
    if isinstance(v, Mapping):
        return {str(k): _json_part(x) for k, x in v.items() if not isinstance(x, (torch.Tensor, np.ndarray))}
    if isinstance(v, (list, tuple)):
        return [_json_part(x) for x in v if not isinstance(x, (torch.Tensor, np.ndarray))]
    return v


class ModelCache:
    """The model cache of one workspace (``folder`` = ``<workspace>/cache/models``)."""

    def __init__(self, folder: str | os.PathLike, store=None, poll_s: float = 0.2):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.poll_s = poll_s

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.pt"

    def sidecar(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    # ---- read ------------------------------------------------------------------------------
    def _expected_sha(self, key: str) -> str | None:
        try:
            return json.loads(self.sidecar(key).read_text())["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
        if self.store is not None:
            rec = self.store.get_checkpoint(key)
            if rec and rec.get("sha256"):
                return rec["sha256"]
        return None

    def _discard(self, key: str, why: str) -> None:
        _warn(f"cached model {self.path(key)} is damaged ({why}); rebuilding it")
        for p in (self.path(key), self.sidecar(key)):
            with contextlib.suppress(OSError):
                p.unlink()

    def load(self, key: str, model: nn.Module, repair: bool = True) -> dict | None:
        """Load the cached weights into ``model`` and return the meta; None on a miss or a
        damaged file. With ``repair`` a damaged file is removed with a warning; without it (a
        look outside the lock, where another engine may be between writing the model and its
        sidecar) it is only skipped."""
        meta, why = self._read(key, model)
        if why is not None and repair:
            self._discard(key, why)
        return meta

    def _read(self, key: str, model: nn.Module) -> tuple[dict | None, str | None]:
        """(meta, None) on a hit, (None, None) on a miss, (None, why) when damaged."""
        try:
            raw = self.path(key).read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as e:
            return None, str(e)
        expected = self._expected_sha(key)
        actual = hashlib.sha256(raw).hexdigest()
        if expected is None:
            return None, "no recorded sha256: the write did not complete"
        if actual != expected:
            return None, f"sha256 {actual[:12]} does not match the recorded {expected[:12]}"
        try:
            obj = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
            model.load_state_dict(obj["state_dict"])
            return dict(obj["meta"]), None
        except Exception as e:  # unpickling / shape errors come in many types
            return None, f"{type(e).__name__}: {' '.join(str(e).split())[:200]}"

    # ---- write -----------------------------------------------------------------------------
    def save(self, key: str, kind: str, model: nn.Module, meta: Mapping[str, Any]) -> str:
        """Write the model and its meta atomically; returns the file's sha256."""
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        buf = io.BytesIO()
        torch.save({"state_dict": state, "meta": dict(meta)}, buf)
        raw = buf.getvalue()
        sha = hashlib.sha256(raw).hexdigest()
        atomic_write(self.path(key), raw)
        side = {"key": key, "kind": kind, "sha256": sha, "bytes": len(raw), "meta": _json_part(meta)}
        atomic_write(self.sidecar(key), json.dumps(side, sort_keys=True, default=str).encode())
        if self.store is not None:
            self.store.record_checkpoint(key, kind, self.path(key), sha, len(raw), _json_part(meta))
        return sha

    # ---- both, under a lock ----------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, key: str, stop: Callable[[], bool] | None = None,
             on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Exclusive ``flock`` on ``<key>.lock``; polls so a waiting engine still sees its stop
        flag (raises ``Cancelled``) and can send heartbeats (``on_wait``)."""
        fd = os.open(self.folder / f"{key}.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if stop is not None and stop():
                        raise Cancelled() from None
                    if on_wait is not None:
                        on_wait()
                    time.sleep(self.poll_s)
            yield
        finally:
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def get_or_build(self, key: str, kind: str, model: nn.Module, build: Callable[[], Mapping[str, Any]],
                     stop: Callable[[], bool] | None = None,
                     on_wait: Callable[[], None] | None = None) -> tuple[dict, bool]:
        """(meta, hit). On a miss ``build()`` trains ``model`` in place and returns its meta,
        which is saved with it. Only one process builds a key at a time."""
        meta = self.load(key, model, repair=False)
        if meta is not None:
            return meta, True
        with self.lock(key, stop, on_wait):
            meta = self.load(key, model)  # another engine may have built it while we waited
            if meta is not None:
                return meta, True
            meta = dict(build())
            self.save(key, kind, model, meta)
            return meta, False
