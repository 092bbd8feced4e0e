"""Datasets as numpy arrays (a registry): the embedded ``synthetic`` default, ``cifar10``,
``cifar100`` and generic ``npz`` arrays files. Torch-free: the TUI uses it for availability and
partition sizes; the engine moves the arrays to the device once.

Every loader returns ``ArrayData``: HWC uint8 images and int64 class labels in the hierarchy's
class order. ``cut_per_class`` makes a deterministic class-balanced sample; ``subset_labels``
gives the subset layer (native when the dataset has one with K parts, else a seeded k-means on
a cheap fixed feature, cached).
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import DamagedFile, DataMissing, InvalidSpec
from .registry import Registry


@dataclass(frozen=True, eq=False)
class ArrayData:
    name: str
    x_train: np.ndarray  # [N, H, W, 3] uint8
    y_train: np.ndarray  # [N] int64 class index
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]
    hierarchy: str  # default hierarchy name (or path)
    native_k: int = 0  # subsets per class the generator defines (0: none)
    sub_train: np.ndarray | None = None  # native subset index within the class, [N]
    sub_test: np.ndarray | None = None
    default_recipe_epochs: int = 30  # epochs of the original / Retrained recipe

    @property
    def content_hash(self) -> str:
        """Cheap but content-bound identity: labels plus a strided sample of the pixels."""
        h = hashlib.sha256()
        for a in (self.y_train, self.y_test, self.x_train[::37], self.x_test[::37]):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr((self.x_train.shape, self.x_test.shape, self.class_names)).encode())
        return h.hexdigest()[:16]

    def sizes(self) -> dict:
        return {"train": int(len(self.y_train)), "test": int(len(self.y_test)),
                "classes": len(self.class_names), "image": list(self.x_train.shape[1:])}


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    description: str
    loader: Callable[..., ArrayData]
    default_hierarchy: str
    locate: Callable[[str | None], tuple[bool, str]]  # (available, where / how to get it)
    detect_hierarchy: Callable[[str | None], str] | None = None  # for files without a fixed one
    version: Callable[[str | None], str] = lambda root: "1"  # content version (engine/versions.py)


DATASETS: Registry[DatasetInfo] = Registry("dataset")


def default_data_root() -> Path:
    return Path(os.environ.get("TARF_DATA_ROOT", Path.home() / ".cache" / "tarf-tui" / "datasets"))


# ---- synthetic ---------------------------------------------------------------------------------
SYN_VERSION = 3  # bump whenever make_synthetic's output changes (part of every run's identity)
SYN_K = 3  # native subsets per class


@dataclass(frozen=True)
class SynConfig:
    """The embedded dataset's generative model: hierarchical latent codes rendered through a
    fixed random smooth decoder. An image of subset k of class c of superclass s is

        z = a_s + b_c + c_(c,k) + eps,   x = 128 + 70 tanh(gain * z @ D / sqrt(d)) + pixel noise

    with ``a_s`` the superclass centre, ``b_c`` the class offset, ``c_(c,k)`` the subset offset,
    ``eps`` instance noise (N(0, 1) per latent dimension) and ``D`` d smooth random colour
    patterns (Gaussian-blurred, made left-right symmetric so the recipe's flips keep the class).
    Within a superclass the first class sits between its two siblings on one axis (sibling -
    first - sibling, like automobile between truck and the rest of CIFAR's vehicles): its
    siblings are confusable with it, not with each other. Everything structural (centres,
    offsets, patterns) comes from ``structure_seed``, the samples from the data seed, so "car"
    means the same thing in every data seed. The constants are where bench/synthetic_design.py
    found the paper's behaviour (docs/results.md section 2); the must-know trade-off: the
    sibling confusion that target identification needs is also training error."""

    size: int = 16  # image side in pixels
    train_per_subset: int = 100  # 3 subsets x 12 classes x 100 = 3,600 training images
    test_per_subset: int = 34  # 1,224 test images
    d: int = 32  # latent dimensions
    superclass: float = 1.0  # std per dimension of the superclass centres a_s
    sibling: float = 0.65  # distance first class - sibling, per sqrt(d) (sets sibling confusion)
    subset: float = 0.25  # std per dimension of the subset offsets
    blur: float = 2.0  # pattern smoothness (Gaussian blur std, pixels)
    gain: float = 1.0  # tanh gain of the renderer
    pixel_noise: float = 14.0  # std of i.i.d. pixel noise (0-255 scale)
    structure_seed: int = 20261201


SYN = SynConfig()


def _smooth_patterns(rng: np.random.Generator, n: int, side: int, sigma: float) -> np.ndarray:
    """``n`` unit-variance smooth random RGB fields [n, side, side, 3], left-right symmetric."""
    f = rng.standard_normal((n, side, side, 3))
    k = np.fft.fftfreq(side)
    g = np.exp(-2 * (np.pi * sigma) ** 2 * (k[:, None] ** 2 + k[None, :] ** 2))
    out = np.real(np.fft.ifft2(np.fft.fft2(f, axes=(1, 2)) * g[None, :, :, None], axes=(1, 2)))
    out = 0.5 * (out + out[:, :, ::-1])
    return out / out.reshape(n, -1).std(axis=1)[:, None, None, None]


def make_synthetic(seed: int = 0, cfg: SynConfig = SYN) -> ArrayData:
    """Generate the three-layer dataset (``SynConfig``), deterministic from ``seed``."""
    from .hierarchy import load_hierarchy

    hier = load_hierarchy("synthetic")
    n_cls = len(hier.classes)
    srng = np.random.default_rng(cfg.structure_seed)
    d, side = cfg.d, cfg.size
    patterns = _smooth_patterns(srng, d, side, cfg.blur).reshape(d, -1).astype(np.float32)
    n_sc = len(hier.superclasses)
    centre = srng.standard_normal((n_sc, d)) * cfg.superclass
    axis = srng.standard_normal((n_sc, d))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    offset = np.zeros((n_cls, d))
    for sc in range(n_sc):  # first class at the centre, siblings at +/- sibling * sqrt(d) * axis
        members = [c for c in range(n_cls) if hier.class_to_super[c] == sc]
        for j, c in enumerate(members):
            offset[c] = (0.0, 1.0, -1.0)[j % 3] * cfg.sibling * np.sqrt(d) * axis[sc]
    sub_off = srng.standard_normal((n_cls, SYN_K, d)) * cfg.subset
    rng = np.random.default_rng(seed)
    out = {}
    for split, per in (("train", cfg.train_per_subset), ("test", cfg.test_per_subset)):
        xs, ys, ss = [], [], []
        for c in range(n_cls):
            n = per * SYN_K
            sub = np.repeat(np.arange(SYN_K), per)
            z = centre[hier.class_to_super[c]] + offset[c] + sub_off[c, sub] + rng.standard_normal((n, d))
            img = 128 + 70 * np.tanh(cfg.gain * (z @ patterns) / np.sqrt(d))
            img += rng.normal(0, cfg.pixel_noise, img.shape)
            xs.append(np.clip(img, 0, 255).astype(np.uint8).reshape(n, side, side, 3))
            ys.append(np.full(n, c, dtype=np.int64))
            ss.append(sub.astype(np.int64))
        # mixed class order, as in CIFAR's files: "the first N samples of D_r" (the MIA's
        # members) must not all come from the first classes
        perm = rng.permutation(sum(len(y) for y in ys))
        out[split] = (np.concatenate(xs)[perm], np.concatenate(ys)[perm], np.concatenate(ss)[perm])
    return ArrayData("synthetic", *out["train"][:2], *out["test"][:2], hier.classes, "synthetic",
                     native_k=SYN_K, sub_train=out["train"][2], sub_test=out["test"][2],
                     default_recipe_epochs=10)


def _load_synthetic(data_root: str | None = None, seed: int = 0, download: bool = False) -> ArrayData:
    return make_synthetic(seed, SYN)  # the module's SYN at call time (bench/synthetic_design.py varies it)


DATASETS.add("synthetic", DatasetInfo(
    "synthetic", "embedded procedural images, 4 superclasses x 3 classes x 3 subsets, 16x16",
    _load_synthetic, "synthetic", lambda root: (True, "embedded (generated in about a second)"),
    version=lambda root: f"generator-{SYN_VERSION}"))


# ---- CIFAR (official python pickles) -----------------------------------------------------------
def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (OSError, pickle.UnpicklingError, EOFError, ValueError) as e:
        raise DamagedFile(f"cannot read {path}: {e}") from None


def _hwc(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()


_CIFAR = {
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"],
                "batches.meta", "label_names", "labels"),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "meta", "fine_label_names", "fine_labels"),
}


def _cifar_dir(name: str, data_root: str | None) -> Path:
    return Path(data_root or default_data_root()) / _CIFAR[name][0]


def _locate_cifar(name: str, data_root: str | None) -> tuple[bool, str]:
    folder, train, test, meta, *_ = _CIFAR[name]
    d = _cifar_dir(name, data_root)
    missing = [f for f in train + test + [meta] if not (d / f).is_file()]
    if not missing:
        return True, str(d)
    return False, (f"{name} not found: expected {d} with {', '.join(train + test + [meta])}; "
                   f"pass --data-root DIR holding {folder}/ (the official python version), or "
                   f"run with --download on a machine with network")


def _download_cifar(name: str, root: Path) -> None:
    try:
        import torchvision  # lazily: the TUI never gets here
        cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
        cls(str(root), train=True, download=True)
        cls(str(root), train=False, download=True)
    except Exception as e:  # network errors come in many types
        raise DataMissing(f"could not download {name} into {root}: {type(e).__name__}: {e}") from None


def _load_cifar(name: str, data_root: str | None = None, seed: int = 0, download: bool = False) -> ArrayData:
    ok, msg = _locate_cifar(name, data_root)
    if not ok and download:
        _download_cifar(name, Path(data_root or default_data_root()))
        ok, msg = _locate_cifar(name, data_root)
    if not ok:
        raise DataMissing(msg)
    folder, train, test, meta, names_key, labels_key = _CIFAR[name]
    d = _cifar_dir(name, data_root)
    parts = {}
    for split, files in (("train", train), ("test", test)):
        xs, ys = [], []
        for f in files:
            b = _unpickle(d / f)
            try:
                xs.append(_hwc(b["data"]))
                ys.append(np.asarray(b[labels_key], dtype=np.int64))
            except (KeyError, ValueError) as e:
                raise DamagedFile(f"{d / f} is not an official {name} batch: {e}") from None
        parts[split] = (np.concatenate(xs), np.concatenate(ys))
    names = tuple(_unpickle(d / meta)[names_key])
    return ArrayData(name, *parts["train"], *parts["test"], names, name, default_recipe_epochs=30)


def _cifar_version(name: str, data_root: str | None) -> str:
    from .versions import files_version

    folder, train, test, meta, *_ = _CIFAR[name]
    d = _cifar_dir(name, data_root)
    return files_version([d / f for f in train + test + [meta]])


for _n, _desc in (("cifar10", "CIFAR-10 (50k/10k, 10 classes, 5 manual superclasses)"),
                  ("cifar100", "CIFAR-100 (50k/10k, 100 classes, 20 superclasses)")):
    DATASETS.add(_n, DatasetInfo(
        _n, _desc, (lambda n: lambda root=None, seed=0, download=False: _load_cifar(n, root, seed, download))(_n),
        _n, (lambda n: lambda root: _locate_cifar(n, root))(_n),
        version=(lambda n: lambda root: _cifar_version(n, root))(_n)))


# ---- npz arrays ------------------------------------------------------------------------------
def _locate_npz(data_root: str | None) -> tuple[bool, str]:
    if not data_root:
        return False, "npz needs --data-root FILE.npz (keys x_train, y_train, x_test, y_test, class_names)"
    p = Path(data_root)
    return (True, str(p)) if p.is_file() else (False, f"npz file not found: {p}")


def _load_npz(data_root: str | None = None, seed: int = 0, download: bool = False) -> ArrayData:
    ok, msg = _locate_npz(data_root)
    if not ok:
        raise DataMissing(msg)
    try:
        with np.load(data_root, allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("x_train", "y_train", "x_test", "y_test", "class_names")}
    except KeyError as e:
        raise DamagedFile(f"{data_root} lacks array {e}; need x_train, y_train, x_test, y_test, class_names") from None
    except (OSError, ValueError) as e:
        raise DamagedFile(f"cannot read {data_root} as an npz arrays file: {e}") from None
    for k in ("x_train", "x_test"):
        a = arrays[k]
        if a.dtype != np.uint8 or a.ndim != 4 or a.shape[-1] != 3:
            raise DamagedFile(f"{data_root}: {k} must be [N, H, W, 3] uint8, got {a.shape} {a.dtype}")
    names = tuple(str(n) for n in arrays["class_names"])
    hier = _hierarchy_for(names)
    return ArrayData(Path(data_root).stem, arrays["x_train"], arrays["y_train"].astype(np.int64),
                     arrays["x_test"], arrays["y_test"].astype(np.int64), names, hier,
                     default_recipe_epochs=30)


def _hierarchy_for(names: tuple[str, ...]) -> str:
    """The built-in hierarchy whose classes are these names, else '' (user must pass one)."""
    from .hierarchy import builtin_names, load_hierarchy

    for h in builtin_names():
        if load_hierarchy(h).classes == names:
            return h
    return ""


def _npz_hierarchy(data_root: str | None) -> str:
    """Reads only ``class_names`` from the file (np.load is lazy per key)."""
    ok, msg = _locate_npz(data_root)
    if not ok:
        raise DataMissing(msg)
    try:
        with np.load(data_root, allow_pickle=False) as z:
            names = tuple(str(n) for n in z["class_names"])
    except (KeyError, OSError, ValueError) as e:
        raise DamagedFile(f"cannot read class_names from {data_root}: {e}") from None
    return _hierarchy_for(names)


def _npz_version(data_root: str | None) -> str:
    from .versions import files_version

    return files_version([Path(data_root)]) if data_root else "none"


DATASETS.add("npz", DatasetInfo(
    "npz", "arrays file: x_train, y_train, x_test, y_test (HWC uint8), class_names",
    _load_npz, "", _locate_npz, _npz_hierarchy, version=_npz_version))


# ---- common ----------------------------------------------------------------------------------
def load_dataset(name: str, data_root: str | None = None, per_class: int | None = None,
                 seed: int = 0, download: bool = False) -> ArrayData:
    info = DATASETS.get(name)
    data = info.loader(data_root, seed=seed, download=download)
    if per_class:
        data = cut_per_class(data, per_class, seed)
    return data


def cut_per_class(data: ArrayData, per_class: int, seed: int = 0) -> ArrayData:
    """Deterministic class-balanced sample: ``per_class`` training images of each class (its
    first ones under a seeded permutation) and the test set in the same proportion."""
    rng = np.random.default_rng(seed + 7919)
    n_cls = len(data.class_names)
    counts = np.bincount(data.y_train, minlength=n_cls)
    if per_class > counts.min():
        raise InvalidSpec(f"--per-class {per_class} exceeds the smallest class ({counts.min()} images)")
    frac = per_class / counts.max()

    def pick(y: np.ndarray, k_of) -> np.ndarray:
        perm = rng.permutation(len(y))
        keep = []
        for c in range(n_cls):
            idx = perm[y[perm] == c]
            keep.append(idx[: k_of(len(idx))])
        return np.sort(np.concatenate(keep))

    tr = pick(data.y_train, lambda n: per_class)
    te = pick(data.y_test, lambda n: max(1, int(round(n * frac))))
    return replace(
        data, x_train=data.x_train[tr], y_train=data.y_train[tr], x_test=data.x_test[te],
        y_test=data.y_test[te],
        sub_train=None if data.sub_train is None else data.sub_train[tr],
        sub_test=None if data.sub_test is None else data.sub_test[te])


def _cheap_feature(x: np.ndarray) -> np.ndarray:
    """4x4 average-pooled RGB (48 numbers per image): a fixed, cheap colour-layout feature."""
    n, h, w, _ = x.shape
    g = 4
    x = x[:, : h - h % g, : w - w % g].astype(np.float32) / 255.0
    return x.reshape(n, g, (h - h % g) // g, g, (w - w % g) // g, 3).mean(axis=(2, 4)).reshape(n, -1)


def subset_labels(data: ArrayData, k: int, seed: int = 0,
                  cache_dir: str | Path | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Global subset index (class * k + j) of every train and test image; (None, None) for k=0.

    Native subsets are used when the dataset defines exactly k of them; otherwise each class is
    split by k-means (scikit-learn, seeded) on ``_cheap_feature`` of its training images, test
    images going to the nearest centroid, and clusters ordered by mean brightness so that names
    are stable. Cached as ``subsets-<content>-k<k>-s<seed>.npz`` in ``cache_dir``."""
    if k == 0:
        return None, None
    if data.native_k == k and data.sub_train is not None:
        return data.y_train * k + data.sub_train, data.y_test * k + data.sub_test
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"subsets-{data.content_hash}-k{k}-s{seed}.npz"
        if cache.is_file():
            try:
                with np.load(cache) as z:
                    return z["train"], z["test"]
            except (OSError, ValueError, KeyError):
                cache.unlink(missing_ok=True)  # damaged cache: rebuild below
    from sklearn.cluster import KMeans  # lazily: costs about a second to import

    f_tr, f_te = _cheap_feature(data.x_train), _cheap_feature(data.x_test)
    s_tr = np.zeros(len(data.y_train), dtype=np.int64)
    s_te = np.zeros(len(data.y_test), dtype=np.int64)
    for c in range(len(data.class_names)):
        tr, te = data.y_train == c, data.y_test == c
        if tr.sum() < k:
            raise InvalidSpec(f"class {data.class_names[c]!r} has {tr.sum()} images, fewer than {k} subsets")
        km = KMeans(n_clusters=k, n_init=2, random_state=seed).fit(f_tr[tr])
        order = np.argsort(np.argsort(km.cluster_centers_.mean(axis=1)))  # brightness rank
        s_tr[tr] = order[km.labels_]
        if te.any():
            s_te[te] = order[km.predict(f_te[te])]
    out = data.y_train * k + s_tr, data.y_test * k + s_te
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, train=out[0], test=out[1])
        os.replace(tmp, cache)
    return out
