"""The one NaN-to-None rule for everything the engine writes as JSON (torch-free).

``jsonable(v)`` gives a copy ``json.dumps`` accepts: NaN / inf -> None, numpy / torch scalars ->
Python numbers, arrays / tensors -> lists, tuples and sets -> lists, mapping keys -> str, an
object with ``to_dict()`` (a RunSpec) -> its dict. Anything else is returned unchanged (give
``json.dumps`` a ``default=`` for it). Used by the store, the sink, the engine's stdout events,
the methods' per-unit lists (``methods.common.json_floats``) and the bench reports.
"""

from __future__ import annotations

import math
from typing import Any, Mapping


def jsonable(v: Any) -> Any:
    if v is None or isinstance(v, (str, bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, Mapping):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set, frozenset)):
        return [jsonable(x) for x in v]
    if hasattr(v, "to_dict"):  # a RunSpec
        return jsonable(v.to_dict())
    if hasattr(v, "item") and getattr(v, "ndim", 0) == 0:  # numpy / torch scalar
        return jsonable(v.item())
    if hasattr(v, "tolist"):  # numpy array / tensor
        return jsonable(v.tolist())
    if hasattr(v, "__index__"):
        return int(v)
    if hasattr(v, "__float__"):
        return jsonable(float(v))
    return v
