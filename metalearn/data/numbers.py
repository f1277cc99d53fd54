"""Numbers made JSON-safe, once for every layer: NaN and infinities become ``None``; the range a feature
value may take (:data:`FEATURE_LIMIT`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

#: the largest magnitude a feature value may have: tree models (scikit-learn's forests, LightGBM) compute in
#: float32, and a value beyond its range (or an infinity) fails their fit or prediction
FEATURE_LIMIT = float(np.finfo(np.float32).max)


def out_of_range(values: np.ndarray) -> np.ndarray:
    """Per cell of a float array: an infinity or a magnitude beyond :data:`FEATURE_LIMIT` (NaN is missing, not
    out of range)."""
    with np.errstate(invalid="ignore"):
        out: np.ndarray = np.abs(values) > FEATURE_LIMIT
    return out


def finite_or_none(x: Any) -> float | None:
    """``x`` as a float, or None when it is missing, not a number, NaN or infinite."""
    if x is None:
        return None
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def json_safe(obj: Any) -> Any:
    """``obj`` made JSON-safe, recursively: NaN/inf -> None, numpy scalars and arrays -> Python,
    tuples -> lists, mapping keys -> str."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [json_safe(v) for v in obj.tolist()]
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
