import pickle
import time

import numpy as np
import pytest

from engine.datasets import (DATASETS, SYN_K, cut_per_class, load_dataset, make_synthetic,
                             subset_labels)
from engine.errors import DamagedFile, DataMissing, InvalidSpec, UnknownName
from engine.hierarchy import load_hierarchy


@pytest.fixture(scope="module")
def syn():
    return make_synthetic(0)


def test_synthetic_deterministic_and_fast():
    t = time.perf_counter()
    a = make_synthetic(0)
    took = time.perf_counter() - t
    b = make_synthetic(0)
    c = make_synthetic(1)
    assert took < 2.0, f"generation took {took:.2f}s"
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.y_test, b.y_test)
    assert a.content_hash == b.content_hash != c.content_hash
    assert a.x_train.dtype == np.uint8 and a.x_train.shape[1:] == (16, 16, 3)
    assert np.bincount(a.y_train).tolist() == [300] * 12


def test_synthetic_three_native_layers(syn):
    h = load_hierarchy("synthetic")
    assert syn.class_names == h.classes and syn.native_k == SYN_K
    assert set(np.unique(syn.sub_train)) == set(range(SYN_K))
    # Classes of one superclass share visual features: class-mean images are closer within a
    # superclass than across superclasses.
    means = np.stack([syn.x_train[syn.y_train == c].astype(np.float32).mean(0).ravel()
                      for c in range(12)])
    d = np.linalg.norm(means[:, None] - means[None], axis=-1)
    sup = np.asarray(h.class_to_super)
    same = sup[:, None] == sup[None]
    off = ~np.eye(12, dtype=bool)
    assert d[same & off].mean() < 0.7 * d[~same].mean()


def _linear_acc(xtr, ytr, xte, yte):
    """Test accuracy of a ridge-regression linear classifier on raw pixels (closed form, fast):
    a lower bound on what a CNN learns."""
    f = lambda x: np.hstack([x.reshape(len(x), -1).astype(np.float64) / 255.0, np.ones((len(x), 1))])  # noqa: E731
    a, n = f(xtr), int(ytr.max()) + 1
    w = np.linalg.solve(a.T @ a + 1.0 * np.eye(a.shape[1]), a.T @ np.eye(n)[ytr])
    return float((np.argmax(f(xte) @ w, axis=1) == yte).mean())


def test_synthetic_subsets_learnable(syn):
    tr, te = subset_labels(syn, SYN_K)
    acc = _linear_acc(syn.x_train, tr, syn.x_test, te)  # 36 subset classes; chance ~3%
    assert acc > 0.3  # a linear lower bound on what a CNN learns: ten times chance


def test_synthetic_first_class_sits_between_its_siblings(syn):
    """The generator's hierarchy geometry: in every superclass the first class (car, cat, tree,
    hammer) is nearer to each sibling than the siblings are to each other."""
    h = load_hierarchy("synthetic")
    means = np.stack([syn.x_train[syn.y_train == c].astype(np.float32).mean(0).ravel()
                      for c in range(12)])
    dist = lambda a, b: float(np.linalg.norm(means[a] - means[b]))  # noqa: E731
    for sc in range(len(h.superclasses)):
        first, s1, s2 = [c for c in range(12) if h.class_to_super[c] == sc]
        assert max(dist(first, s1), dist(first, s2)) < dist(s1, s2)


def test_clustered_subsets_deterministic_cached_and_learnable(syn, tmp_path):
    a = subset_labels(syn, 2, seed=0, cache_dir=tmp_path)
    files = list(tmp_path.glob("subsets-*-k2-s0.npz"))
    assert len(files) == 1
    b = subset_labels(syn, 2, seed=0, cache_dir=tmp_path)  # from the cache
    c = subset_labels(syn, 2, seed=0)  # recomputed
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[0], c[0]) and np.array_equal(a[1], c[1])
    assert np.array_equal(a[0] // 2, syn.y_train)  # subsets nest inside their class
    within = [(a[0][syn.y_train == k] % 2).mean() for k in range(12)]
    assert all(0.05 < w < 0.95 for w in within)  # both subsets populated in every class
    acc = _linear_acc(syn.x_train, a[0], syn.x_test, a[1])
    assert acc > 0.5  # 24 clustered subsets, chance ~4%
    files[0].write_bytes(b"garbage")  # damaged cache: rebuilt, same labels
    d = subset_labels(syn, 2, seed=0, cache_dir=tmp_path)
    assert np.array_equal(a[0], d[0])
    assert subset_labels(syn, 0) == (None, None)


def test_cut_per_class(syn):
    a = cut_per_class(syn, 50, seed=3)
    b = cut_per_class(syn, 50, seed=3)
    assert np.bincount(a.y_train).tolist() == [50] * 12
    assert np.array_equal(a.x_train, b.x_train)
    assert abs(len(a.y_test) - round(len(syn.y_test) * 50 / 300)) <= 12
    assert len(np.unique(a.y_test)) == 12
    with pytest.raises(InvalidSpec, match="exceeds"):
        cut_per_class(syn, 301)


def _write_cifar100(root, per_class=2):
    from engine.hierarchy import load_hierarchy

    h = load_hierarchy("cifar100")
    d = root / "cifar-100-python"
    d.mkdir()
    rng = np.random.default_rng(0)
    coarse_names = sorted(h.superclasses)
    for split, n in (("train", per_class), ("test", 1)):
        fine = np.repeat(np.arange(100), n)
        coarse = [coarse_names.index(h.superclasses[h.class_to_super[f]]) for f in fine]
        data = rng.integers(0, 256, (len(fine), 3072), dtype=np.uint8)
        with open(d / split, "wb") as f:
            pickle.dump({"data": data, "fine_labels": fine.tolist(), "coarse_labels": coarse,
                         "filenames": [f"{i}.png" for i in range(len(fine))]}, f)
    with open(d / "meta", "wb") as f:
        pickle.dump({"fine_label_names": list(h.classes), "coarse_label_names": coarse_names}, f)
    return d


def test_cifar100_loader_official_pickle_fixture(tmp_path):
    _write_cifar100(tmp_path)
    ok, where = DATASETS.get("cifar100").locate(str(tmp_path))
    assert ok
    data = load_dataset("cifar100", str(tmp_path))
    assert data.x_train.shape == (200, 32, 32, 3) and data.x_test.shape == (100, 32, 32, 3)
    assert data.class_names == load_hierarchy("cifar100").classes
    # pixel layout: CHW rows -> HWC
    raw = pickle.load(open(tmp_path / "cifar-100-python" / "train", "rb"), encoding="latin1")
    assert np.array_equal(data.x_train[0, :, :, 0].ravel(), raw["data"][0, :1024])
    from engine.spec import RunSpec
    from engine.task import resolve

    t = resolve(RunSpec(dataset="cifar100", data_root=str(tmp_path), subsets=0, method="ft"))
    assert t.partition.target == "people" and t.partition.forget == ("boy", "girl")
    assert t.partition.sizes()["d_f"] == 4 and t.partition.sizes()["d_t"] == 10


def test_missing_and_damaged_cifar(tmp_path):
    with pytest.raises(DataMissing, match="cifar-10-batches-py"):
        load_dataset("cifar10", str(tmp_path))
    d = _write_cifar100(tmp_path)
    (d / "train").write_bytes(b"not a pickle")
    with pytest.raises(DamagedFile, match="cannot read"):
        load_dataset("cifar100", str(tmp_path))
    with pytest.raises(UnknownName, match="synthetic"):
        load_dataset("imagenet")


def test_npz_loader(tmp_path, syn):
    p = tmp_path / "c.npz"
    np.savez(p, x_train=syn.x_train, y_train=syn.y_train, x_test=syn.x_test, y_test=syn.y_test,
             class_names=np.array(syn.class_names))
    d = load_dataset("npz", str(p), per_class=20)
    assert d.hierarchy == "synthetic" and np.bincount(d.y_train).tolist() == [20] * 12
    bad = tmp_path / "bad.npz"
    np.savez(bad, x_train=syn.x_train)
    with pytest.raises(DamagedFile, match="lacks array"):
        load_dataset("npz", str(bad))
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(DamagedFile):
        load_dataset("npz", str(tmp_path / "junk.npz"))
    with pytest.raises(DataMissing):
        load_dataset("npz", str(tmp_path / "absent.npz"))


def test_real_cifar10_npz(cifar10_npz):
    d = load_dataset("npz", str(cifar10_npz), per_class=100)
    assert d.hierarchy == "cifar10" and d.x_train.shape == (1000, 32, 32, 3)
    from engine.spec import RunSpec
    from engine.task import resolve

    full = resolve(RunSpec(dataset="npz", data_root=str(cifar10_npz), subsets=0, method="ft"))
    s = full.partition.sizes()
    assert (s["d_t"], s["d_f"], s["d_uf"], s["d_r"], s["test_t"]) == (10000, 5000, 5000, 40000, 2000)
