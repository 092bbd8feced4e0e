"""What ``tarf-tui methods`` prints: every method's parameters with the defaults that actually run
for a dataset and case (``engine.methods.params.resolve_params``: dataset- and category-specific
defaults applied), next to the method's generic default. Torch-free."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from engine.cases import get_case
from engine.datasets import DATASETS
from engine.errors import UnknownName
from engine.methods.params import CATALOG, param_fields, resolve_params

from .options import method_name


def method_rows(dataset: str = "synthetic", case: int = 11, method: str | None = None) -> list[dict[str, Any]]:
    """One dict per method (catalogue order, or only ``method``): name, title, description,
    dataset, case, category and ``params`` = [{name, type, default (what runs), base_default
    (the method's generic one), help}]. Unknown dataset / case / method: ``TarfError``."""
    if dataset not in DATASETS:
        raise UnknownName("dataset", dataset, DATASETS.names())
    category = get_case(case).category
    names = [method_name(method)] if method else list(CATALOG.names())
    rows = []
    for n in names:
        info = CATALOG.get(n)
        resolved = asdict(resolve_params(n, {}, dataset, None, None, category))
        params = []
        for f in param_fields(n):
            params.append({**f, "base_default": f["default"],
                           "default": resolved.get(f["name"], f["default"])})
        rows.append({"name": n, "title": info.title, "description": info.description,
                     "dataset": dataset, "case": case, "category": category, "params": params,
                     "dataset_defaults": {k: dict(v) for k, v in info.dataset_defaults.items()}})
    return rows


__all__ = ["method_rows"]
