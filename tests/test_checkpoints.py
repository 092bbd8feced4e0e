"""The model cache: hit, miss, damaged and partial files rebuilt with a warning, the store
record, keys, and one builder at a time under the lock."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

from engine.checkpoints import ModelCache, array_hash, model_key
from engine.store import Store
from engine.train import Cancelled


def net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def builder(model, calls, value=0.5, delay=0.0, started=None):
    def build():
        calls.append(1)
        if started is not None:
            started.set()
        time.sleep(delay)
        with torch.no_grad():
            model[0].weight.fill_(value)
        return {"kind": "original", "train_seconds": 1.25,
                "history": [{"epoch": 0, "loss": 1.0, "bits": torch.tensor([1, 2], dtype=torch.uint8)}],
                "metrics": {"test_acc": 97.5}}
    return build


def test_miss_then_hit(tmp_path):
    store = Store(tmp_path / "tarf.db")
    cache = ModelCache(tmp_path / "models", store)
    calls = []
    m1 = net(1)
    meta, hit = cache.get_or_build("k1", "original", m1, builder(m1, calls))
    assert not hit and len(calls) == 1
    m2 = net(2)
    meta2, hit2 = cache.get_or_build("k1", "original", m2, builder(m2, calls))
    assert hit2 and len(calls) == 1
    assert torch.equal(m2[0].weight, torch.full((3, 4), 0.5))
    assert meta2["metrics"] == {"test_acc": 97.5} and meta2["train_seconds"] == 1.25
    assert torch.equal(meta2["history"][0]["bits"], torch.tensor([1, 2], dtype=torch.uint8))
    rec = store.get_checkpoint("k1")
    side = json.loads(cache.sidecar("k1").read_text())
    assert rec["sha256"] == side["sha256"] and rec["bytes"] == cache.path("k1").stat().st_size
    assert rec["kind"] == "original" and rec["meta"]["metrics"] == {"test_acc": 97.5}
    assert "bits" not in side["meta"]["history"][0]  # tensors stay in the .pt only
    store.close()


@pytest.mark.parametrize("damage", ["flip", "truncate", "no-sidecar", "garbage"])
def test_damaged_file_is_rebuilt_with_a_warning(tmp_path, capfd, damage):
    cache = ModelCache(tmp_path / "models")
    calls = []
    m = net()
    cache.get_or_build("k", "original", m, builder(m, calls))
    p = cache.path("k")
    raw = bytearray(p.read_bytes())
    if damage == "flip":
        raw[len(raw) // 2] ^= 0xFF
        p.write_bytes(bytes(raw))
    elif damage == "truncate":
        p.write_bytes(bytes(raw[: len(raw) // 3]))
    elif damage == "no-sidecar":  # a crash between writing the model and its sidecar
        cache.sidecar("k").unlink()
    else:  # a file whose recorded sha matches but is not a checkpoint
        p.write_bytes(b"not a checkpoint")
        side = json.loads(cache.sidecar("k").read_text())
        import hashlib
        side["sha256"] = hashlib.sha256(b"not a checkpoint").hexdigest()
        cache.sidecar("k").write_text(json.dumps(side))
    capfd.readouterr()
    m2 = net(5)
    meta, hit = cache.get_or_build("k", "original", m2, builder(m2, calls, value=0.25))
    err = capfd.readouterr().err
    assert not hit and len(calls) == 2
    assert "warning" in err and "damaged" in err and str(p) in err
    assert torch.equal(m2[0].weight, torch.full((3, 4), 0.25))
    # and the rebuilt file is sound
    m3 = net(6)
    assert cache.load("k", m3) is not None and torch.equal(m3[0].weight, m2[0].weight)


def test_wrong_architecture_is_a_miss_not_a_crash(tmp_path, capfd):
    cache = ModelCache(tmp_path / "models")
    m = net()
    cache.get_or_build("k", "original", m, builder(m, []))
    other = nn.Linear(2, 2)
    assert cache.load("k", other) is None
    assert "damaged" in capfd.readouterr().err


def test_concurrent_builders_train_once(tmp_path):
    """Two engines (here: two threads with their own cache objects; flock works between file
    descriptions, so this is what two processes see) need the same model: one builds, the other
    waits and loads."""
    calls = []
    results = {}
    building = threading.Event()

    def worker(name, delay):
        cache = ModelCache(tmp_path / "models", poll_s=0.02)
        m = net(hash(name) % 100)
        meta, hit = cache.get_or_build("shared", "original", m,
                                       builder(m, calls, delay=delay, started=building))
        results[name] = (hit, m[0].weight.detach().clone())

    a = threading.Thread(target=worker, args=("a", 0.6))
    a.start()
    assert building.wait(10)  # a holds the lock and is building (b waits, or finds it built)
    b = threading.Thread(target=worker, args=("b", 0.0))
    b.start()
    a.join(10)
    b.join(10)
    assert len(calls) == 1
    assert results["a"][0] is False and results["b"][0] is True
    assert torch.equal(results["a"][1], results["b"][1])


def test_waiting_engine_sees_its_stop_flag(tmp_path):
    cache = ModelCache(tmp_path / "models", poll_s=0.02)
    waits = []
    with cache.lock("k"):
        other = ModelCache(tmp_path / "models", poll_s=0.02)
        with pytest.raises(Cancelled):
            with other.lock("k", stop=lambda: len(waits) >= 3, on_wait=lambda: waits.append(1)):
                pass
    assert len(waits) == 3


def test_keys_cover_what_determines_the_model():
    base = dict(content_hash="abc", per_class=60, data_seed=0, hierarchy="synthetic", subsets=3,
                model_level="class", labels="l1", arch="smallcnn",
                recipe={"epochs": 10, "lr": 0.1}, seed=0)
    k, ident = model_key("original", **base)
    assert model_key("original", **base)[0] == k and ident["arch"] == "smallcnn"
    changes = [("content_hash", "abd"), ("per_class", None), ("data_seed", 1), ("hierarchy", "x"),
               ("subsets", 0), ("model_level", "superclass"), ("labels", "l2"), ("arch", "resnet18"),
               ("recipe", {"epochs": 11, "lr": 0.1}), ("seed", 1)]
    keys = {model_key("original", **{**base, f: v})[0] for f, v in changes}
    assert k not in keys and len(keys) == len(changes)
    r1 = model_key("retrained", **base, retain=array_hash(np.arange(10)))[0]
    r2 = model_key("retrained", **base, retain=array_hash(np.arange(9)))[0]
    assert len({k, r1, r2}) == 3 and r1.startswith("retrained-")
