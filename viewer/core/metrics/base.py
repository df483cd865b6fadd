"""What every part of the metrics package shares: its constants, JSON conversion, the blockwise
helpers every pass runs on, and histogram bins with numpy.histogram's rules.

``_blocks`` sets how many rows each step of a blockwise pass takes. The other modules call it as
``base._blocks(...)``, looked up when they run, so that replacing it here (as the tests do, to show
the results do not depend on the block size) changes every pass at once.
"""

from __future__ import annotations

import math
import sys
from typing import Any, Iterator

import numpy as np


SIG_DIGITS = 6
POINT_SIG_DIGITS = 4       # raw scatter points of regression_aggregates
SCORE_BINS = 50            # bins of score / probability histograms on [0, 1]
CALIBRATION_BINS = 10      # like sklearn.calibration.calibration_curve(n_bins=10)
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)   # threshold table grid
GAIN_PERCENTS = np.arange(1, 101)                        # gain / lift points
DECILES = 10
MAX_UNKNOWN_LABELS = 100   # distinct target labels the model does not know; more raises ValueError
BLOCK = 1 << 20            # rows per step of the blockwise passes (temporaries of a few MiB)
_EPS64 = float(np.finfo(np.float64).eps)
_LOW_BYTE = 0 if sys.byteorder == "little" else 7   # the byte of an int64 that holds its lowest bit


# --------------------------------------------------------------------------- JSON


def _jsonable(obj: Any, sig: int | None = SIG_DIGITS) -> Any:
    """Plain Python containers/scalars; floats rounded to ``sig`` digits; NaN/inf -> None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v, sig) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v, sig) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v, sig) for v in obj.tolist()]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, (bool, str, int)):
        return obj
    if isinstance(obj, float):
        if not math.isfinite(obj):
            return None
        if sig is None or obj == 0.0:
            return obj + 0.0  # also turns -0.0 into 0.0
        return float(f"{obj:.{sig}g}")
    return str(obj)


def _label(value: Any) -> Any:
    """A class label as a JSON value (labels are never rounded)."""
    return _jsonable(value, None)


# ------------------------------------------------------------------------- blocks


def _blocks(n: int, size: int = BLOCK) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(start + size, n)


def _int_type(max_value: int) -> type:
    """The smallest signed integer type that holds 0..max_value."""
    for dtype in (np.int8, np.int16, np.int32):
        if max_value <= np.iinfo(dtype).max:
            return dtype
    return np.int64


def _bincount(codes: np.ndarray, minlength: int, mask: np.ndarray | None = None) -> np.ndarray:
    """``np.bincount(codes[mask], minlength)`` block by block (np.bincount would first copy
    compact codes to a full-length intp array)."""
    out = np.zeros(minlength, dtype=np.int64)
    for a, b in _blocks(len(codes)):
        block = codes[a:b] if mask is None else codes[a:b][mask[a:b]]
        out += np.bincount(block, minlength=minlength)
    return out


# ------------------------------------------------------------------ histograms


def _edges(lo: float, hi: float, bins: int) -> np.ndarray:
    return np.linspace(lo, hi, bins + 1)


def _bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value inside [edges[0], edges[-1]], with numpy.histogram's rules
    ([a, b) bins, the last one closed)."""
    bins = len(edges) - 1
    lo, hi = float(edges[0]), float(edges[-1])
    scaled = np.clip((values - lo) * (bins / (hi - lo)), 0, bins - 1)
    idx = scaled.astype(np.intp)
    idx -= values < edges[idx]
    idx += (values >= edges[idx + 1]) & (idx != bins - 1)
    return idx


def _probability_histogram(values: np.ndarray) -> np.ndarray:
    """Counts in SCORE_BINS bins on [0, 1] (numpy.histogram's bins)."""
    edges = _edges(0.0, 1.0, SCORE_BINS)
    counts = np.zeros(SCORE_BINS, dtype=np.int64)
    for a, b in _blocks(len(values)):
        counts += np.bincount(_bin_index(np.clip(values[a:b], 0.0, 1.0), edges), minlength=SCORE_BINS)
    return counts
