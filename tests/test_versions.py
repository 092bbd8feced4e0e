"""Versions in a run's identity: the data's content version and the method code's version."""

from __future__ import annotations

import numpy as np
import pytest

from engine import versions
from engine.datasets import SYN_VERSION
from engine.errors import InvalidSpec
from engine.methods.params import CATALOG, SHARED_CODE
from engine.spec import RunSpec
from engine.task import normalise


def test_normalise_fills_versions_and_they_enter_the_hash():
    s = normalise(RunSpec(case=11, method="tarf"))
    assert s.versions["data"] == f"generator-{SYN_VERSION}"
    assert s.versions["method"] == versions.method_version("tarf")
    assert normalise(s) == s  # idempotent
    other_data = s.replace(versions={**s.versions, "data": "generator-0"})
    other_code = s.replace(versions={**s.versions, "method": "0" * 12})
    assert other_data.hash() != s.hash() and other_code.hash() != s.hash()
    # a new method version is the same question (compare groups it), new data is not
    assert other_code.experiment_key() == s.experiment_key()
    assert other_data.experiment_key() != s.experiment_key()
    assert RunSpec.from_json(s.to_json()) == s


def test_bad_versions_rejected():
    with pytest.raises(InvalidSpec, match="versions"):
        RunSpec(versions={"dataa": "x"})


def test_method_versions_differ_and_cover_the_implementation():
    vs = {m: versions.method_version(m) for m in CATALOG.names()}
    assert len(set(vs.values())) == len(vs)
    assert CATALOG.get("tarf-i").code[:2] == ("tarf_i.py", "tarf.py")
    for m in CATALOG.names():
        assert CATALOG.get(m).code[-len(SHARED_CODE):] == SHARED_CODE
        for f in CATALOG.get(m).code:
            assert (versions.METHODS_DIR / f).is_file(), (m, f)


def test_declared_code_files_hold_every_class_of_the_method():
    """The fingerprint must cover every module the implementation's classes live in."""
    pytest.importorskip("torch")
    import inspect
    from pathlib import Path

    from engine.methods.impl import METHODS

    for name in CATALOG.names():
        declared = {(versions.METHODS_DIR / f).resolve() for f in CATALOG.get(name).code}
        for klass in inspect.getmro(METHODS.get(name)):
            if klass.__module__.startswith("engine.methods"):
                assert Path(inspect.getfile(klass)).resolve() in declared, (name, klass)


def test_code_version_ignores_comments_not_code(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "METHODS_DIR", tmp_path)
    (tmp_path / "m.py").write_text("def f(x):\n    return x + 1\n")
    v0 = versions.code_version.__wrapped__(("m.py",))
    (tmp_path / "m.py").write_text("# a comment\n\ndef f(x):  # why\n    return x + 1\n")
    assert versions.code_version.__wrapped__(("m.py",)) == v0
    (tmp_path / "m.py").write_text("def f(x):\n    return x + 2\n")
    assert versions.code_version.__wrapped__(("m.py",)) != v0


def test_file_dataset_version_follows_content(tmp_path):
    p = tmp_path / "d.npz"
    np.savez(p, a=np.zeros(10, dtype=np.uint8))
    v0 = versions.dataset_version("npz", str(p))
    assert versions.dataset_version("npz", str(p)) == v0
    np.savez(p, a=np.ones(10, dtype=np.uint8))
    assert versions.dataset_version("npz", str(p)) != v0
    assert versions.dataset_version("npz", str(tmp_path / "absent.npz")) != v0  # no error
