"""Shared test options: slow checks (real CIFAR, full tables, real-terminal runs) are skipped
unless ``--run-slow`` (or TARF_RUN_SLOW=1); GPU checks are skipped without CUDA."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
# a CIFAR-10 arrays file for the checks on real data: TARF_CIFAR10_NPZ, else the team's copy
CIFAR10_NPZ = Path(os.environ.get("TARF_CIFAR10_NPZ") or SHARED / "datasets" / "cifar10.npz")


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run checks marked slow (real CIFAR, full method tables)")


def pytest_collection_modifyitems(config, items):
    run_slow = config.getoption("--run-slow") or os.environ.get("TARF_RUN_SLOW") == "1"
    skip_slow = pytest.mark.skip(reason="slow: pass --run-slow to run")
    gpu = None
    for item in items:
        if "slow" in item.keywords and not run_slow:
            item.add_marker(skip_slow)
        if "gpu" in item.keywords:
            if gpu is None:
                try:
                    import torch
                    gpu = torch.cuda.is_available()
                except ImportError:
                    gpu = False
            if not gpu:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA GPU"))


@pytest.fixture
def store(tmp_path):
    """A fresh workspace store (``tmp_path/tarf.db``), closed afterwards."""
    from engine.store import Store

    s = Store(tmp_path / "tarf.db")
    yield s
    s.close()


@pytest.fixture
def cifar10_npz() -> Path:
    if not CIFAR10_NPZ.is_file():
        pytest.skip(f"{CIFAR10_NPZ} not present (TARF_CIFAR10_NPZ names a CIFAR-10 .npz)")
    return CIFAR10_NPZ
