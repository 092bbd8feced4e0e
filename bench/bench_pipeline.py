"""Training throughput of the engine's batched pipeline against a plain torchvision loop.

    python -m bench.bench_pipeline [--epochs 3] [--batch-size 128] [--workers 0,2] [--threads N]

Both train the same ``smallcnn`` (same init, SGD, batch size) for the same epochs over the
embedded dataset's 3,600 training images:

- engine: uint8 images on the device, one gather per batch, batched random crop + flip
  (``engine.train.batches``);
- torchvision: ``DataLoader`` over a Dataset that returns ``PIL.Image`` and applies
  ``RandomCrop(side, padding=side // 8)``, ``RandomHorizontalFlip()``, ``ToTensor()`` per sample.

Runs alternate (engine, torchvision, engine, ...) so background load hits both alike; the table
gives the median images/s of each and their ratio, all measured in this one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from engine.datasets import make_synthetic
from engine.models import build_model
from engine.train import DeviceData, batches, configure_cpu_threads, sgd


class PILDataset(torch.utils.data.Dataset):
    def __init__(self, x: np.ndarray, y: np.ndarray, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def train_steps(model, opt, it) -> int:
    model.train()
    n = 0
    for x, y, *_ in it:
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(y)
    return n


def engine_epoch(model, opt, data, idx, bs, gen) -> int:
    return train_steps(model, opt, batches(data, idx, bs, augment=True, generator=gen))


def torchvision_epoch(model, opt, loader) -> int:
    return train_steps(model, opt, loader)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3, help="timed epochs of each pipeline")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--workers", default="0,2", help="DataLoader num_workers values to try")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = every core)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    else:
        configure_cpu_threads()
    from torchvision import transforms

    d = make_synthetic(0)
    side = d.x_train.shape[1]
    dev = torch.device("cpu")
    data = DeviceData(d.x_train, d.y_train, d.x_test, d.y_test, dev)
    idx = torch.arange(len(d.y_train))
    tf = transforms.Compose([transforms.RandomCrop(side, padding=side // 8),
                             transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    ds = PILDataset(d.x_train, d.y_train, tf)
    workers = [int(w) for w in a.workers.split(",") if w != ""]

    torch.manual_seed(0)
    init = build_model("smallcnn", len(d.class_names)).state_dict()

    def fresh():
        m = build_model("smallcnn", len(d.class_names))
        m.load_state_dict(init)
        return m, sgd(m, 0.05)

    # also time the input pipelines alone (no model): where the difference comes from
    def time_input_only(it) -> float:
        t = time.perf_counter()
        n = sum(len(b[1]) for b in it)
        return n / (time.perf_counter() - t)

    rates: dict[str, list[float]] = {"engine": [], **{f"torchvision w={w}": [] for w in workers}}
    models = {k: fresh() for k in rates}
    gen = torch.Generator().manual_seed(0)
    loaders = {f"torchvision w={w}": torch.utils.data.DataLoader(
        ds, batch_size=a.batch_size, shuffle=True, num_workers=w, persistent_workers=w > 0)
        for w in workers}
    # warm-up: one untimed pass each (allocator, worker start-up)
    engine_epoch(*models["engine"], data, idx, a.batch_size, gen)
    for k, ld in loaders.items():
        torchvision_epoch(*models[k], ld)
    for _ in range(a.epochs):
        t = time.perf_counter()
        n = engine_epoch(*models["engine"], data, idx, a.batch_size, gen)
        rates["engine"].append(n / (time.perf_counter() - t))
        for k, ld in loaders.items():
            t = time.perf_counter()
            n = torchvision_epoch(*models[k], ld)
            rates[k].append(n / (time.perf_counter() - t))
    input_only = {"engine": time_input_only(batches(data, idx, a.batch_size, augment=True, generator=gen))}
    for k, ld in loaders.items():
        input_only[k] = time_input_only(ld)

    base = statistics.median(rates["engine"])
    print(f"smallcnn, {len(idx)} images {side}x{side}, batch {a.batch_size}, "
          f"{torch.get_num_threads()} torch threads, {a.epochs} timed epochs each (median)")
    print(f"{'pipeline':<18}{'train img/s':>12}{'engine / this':>15}{'input-only img/s':>18}")
    for k, v in rates.items():
        med = statistics.median(v)
        print(f"{k:<18}{med:>12.0f}{base / med:>15.2f}{input_only[k]:>18.0f}")


if __name__ == "__main__":
    main()
