"""Strict JSON of results that hold numpy and torch values (NaN and inf become null)."""

import json
import math
import sys
from pathlib import Path

import numpy as np

__all__ = ["to_jsonable"]


def _json_default(obj):
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    torch = sys.modules.get("torch")  # no tensor exists unless torch was imported
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def _finite_or_none(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite_or_none(v) for v in obj]
    return obj


def to_jsonable(obj):
    """Recursively turn numpy/torch values into strict-JSON Python objects.

    NaN and infinite floats (e.g. ROC-AUC of a one-class part) become ``None``
    (JSON ``null``), so any JSON parser reads the output.
    """
    return _finite_or_none(json.loads(json.dumps(obj, default=_json_default, allow_nan=True)))
