"""Metrics and compact plot aggregates for scored datasets.

Pure functions on numpy arrays; no web framework, no I/O.  The finalize step of a
scoring job calls them once with the full columns it needs (target, prediction,
class probabilities) and stores the returned dicts; result pages draw every plot
from those dicts and never touch the rows again.

Public API
----------
``classification_metrics(y_true, y_pred, proba, classes)``
``regression_metrics(y_true, y_pred)``
``classification_aggregates(y_true, proba, y_pred, classes, *, max_points=500)``
``regression_aggregates(y_true, y_pred, *, grid=60, max_points=5000)``
``classification_summary(columns, classes, *, with_metrics=True, max_points=500)``
  both classification dicts at once, from a ``ClassifierColumns`` that hands out the
  columns block by block (the finalize step reads them from the job's output parts)
``regression_summary(y_true, y_pred, *, with_metrics=True)`` both regression dicts

Every returned dict is JSON-safe: ``json.dumps(result, allow_nan=False)`` works,
there are no numpy types, and undefined numbers are ``None`` (the reason is in an
``"undefined"`` / ``"unavailable"`` mapping).  Aggregates round floats to
``SIG_DIGITS`` significant digits; metrics keep full float precision.

Conventions
-----------
* ``classes`` is the model's ``classes_``: column ``j`` of ``proba`` is the
  probability of ``classes[j]``; for a binary model the positive class is
  ``classes[1]`` (scikit-learn's convention), and a 1-D ``proba`` is accepted as
  the probability of ``classes[1]``.
* Rows whose target is missing (``None``/``NaN``) are left out of everything and
  counted in ``n_missing_target``.
* Target labels that are not among ``classes`` ("unknown labels") count as wrong
  predictions in the label metrics (accuracy, confusion matrix, ...) and appear as
  extra labels after the model's classes; the probability metrics and curves
  (AUC, AP, log loss, Brier, ROC, ...) cannot score them and use only the rows with
  a known label (``n_scored``).
* A part of an aggregate is ``"exact": true`` when it carries every value of the
  plot it describes (all curve vertices, all raw points, exact counts for its
  stated bins/thresholds), ``false`` when it was thinned (curves) or gridded
  (scatters).  ``"n"`` is the number of rows the part summarises.
* A prediction "at threshold t" is positive when ``score >= t`` (like
  ``roc_curve``).  Note ``predict`` of a binary scikit-learn classifier picks
  ``classes[1]`` only when its probability is ``> 0.5``.

Which functions need the full arrays, and memory
------------------------------------------------
Exact ROC/PR curves, AUC, average precision, the threshold table and gain/lift need
every (target, score) pair sorted (one O(n log n) sort per binary problem / per
class), the median absolute error and the robust ranges / deciles of the regression
aggregates need quantiles of the full column.  Only histograms with fixed edges, the
confusion matrix and the prediction shares could be merged from per-chunk partials.

Memory is kept to a few full-length arrays (bench/finalise_memory.py measures it at
10M rows): labels become 1-byte codes (``int8``; wider only past 127 labels), every
elementwise step runs in blocks of ``BLOCK`` rows, and one binary problem holds its
sorted scores (8 bytes a row, sorted in place in the column it was given) and the
running count of positives (4 bytes a row below 2**31 rows); its tie groups, true
and false positive counts and thresholds are derived from those two block by block.
``classification_summary`` reads each probability column only when it ranks that
class, and both dicts share one ranking per class.  Sums and means are still taken
over one full-length array of terms, in the same order as a plain numpy expression,
so the values do not depend on the block size.
"""

from __future__ import annotations

import heapq
import math
import sys
from typing import Any, Iterator, NamedTuple, Protocol

import numpy as np
import pandas as pd

__all__ = [
    "SIG_DIGITS",
    "ClassifierColumns",
    "classification_aggregates",
    "classification_metrics",
    "classification_summary",
    "regression_aggregates",
    "regression_metrics",
    "regression_summary",
]

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


# ----------------------------------------------------------------------- encoding


class ClassifierColumns(Protocol):
    """The columns of a scored classification dataset, as ``classification_summary`` reads them.

    ``blocks()`` yields ``(y_true, y_pred, proba)`` for consecutive row ranges in row order,
    each a 1-D array (``proba``: a C-contiguous float64 ``(rows, n_classes)`` array), or None
    for a column the dataset does not have (``y_pred`` None: argmax of ``proba``).
    ``proba_column(c, rows)`` returns a new, writable, contiguous float64 array with column
    ``c`` of the probabilities at the rows where the boolean mask ``rows`` (over all ``n``
    rows) is true, or of every row when ``rows`` is None; the caller may overwrite it."""

    n: int
    has_target: bool
    has_proba: bool

    def blocks(self) -> Iterator[tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]]: ...

    def proba_column(self, c: int, rows: np.ndarray | None) -> np.ndarray: ...


def _column(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _text_as_object(arr: np.ndarray) -> np.ndarray:
    return arr.astype(object) if arr.dtype.kind in "US" else arr  # pandas factorizes object arrays much faster


def _classes_array(classes) -> np.ndarray:
    classes_arr = np.asarray(classes)
    if classes_arr.ndim != 1 or len(classes_arr) == 0:
        raise ValueError("classes must be a non-empty 1-D sequence")
    if not pd.Index(classes_arr, dtype=object).is_unique:
        raise ValueError("classes must be unique")
    return classes_arr


class _ArrayColumns:
    """``ClassifierColumns`` over in-memory arrays (the public functions' arguments)."""

    def __init__(self, y_true, y_pred, proba, classes_arr: np.ndarray):
        k = len(classes_arr)
        yt = None if y_true is None else _column(y_true, "y_true")
        yp = None if y_pred is None else _column(y_pred, "y_pred")
        pr = None
        if proba is not None:
            pr = np.asarray(proba, dtype=np.float64)
            if pr.ndim == 1 and k == 2:
                pr = np.column_stack([1.0 - pr, pr])
            if pr.ndim != 2 or pr.shape[1] != k:
                raise ValueError(f"proba must have shape (n, {k}), got {pr.shape}")
            if not all(np.isfinite(pr[a:b]).all() for a, b in _blocks(len(pr))):
                raise ValueError("proba contains NaN or infinite values")
        lengths = {len(a) for a in (yt, yp, pr) if a is not None}
        if len(lengths) > 1:
            raise ValueError(f"y_true, y_pred and proba have different lengths: {sorted(lengths)}")
        if yp is None and pr is None:
            raise ValueError("need y_pred or proba")
        self.yt, self.yp, self.pr = yt, yp, pr
        self.n = lengths.pop()
        self.has_target = yt is not None
        self.has_proba = pr is not None

    def blocks(self):
        for a, b in _blocks(self.n):
            yield (None if self.yt is None else self.yt[a:b], None if self.yp is None else self.yp[a:b],
                   None if self.pr is None else self.pr[a:b])

    def proba_column(self, c: int, rows: np.ndarray | None) -> np.ndarray:
        return self.pr[:, c].copy() if rows is None else self.pr[rows, c]


class _Encoded(NamedTuple):
    labels: list              # JSON labels: the model's classes, then unknown labels
    k: int                    # number of model classes
    true: np.ndarray | None   # compact int codes into labels, rows with a target
    pred: np.ndarray          # compact int codes into labels, the same rows
    present: np.ndarray | None  # bool mask over all rows: the rows with a target (None: all)
    n_missing: int            # rows dropped because the target is missing


class _LabelCoder:
    """Codes of target and predicted labels, filled block by block.

    The result is what factorizing the whole columns gives: unknown target labels get
    codes after the model's classes in order of first appearance, then unknown predicted
    labels not already among them, then ``None`` when a prediction is missing.  While the
    blocks come in, the prediction's unknown labels have temporary codes above
    ``pred_base`` (the target's unknown labels may still grow); ``finish`` renumbers."""

    def __init__(self, classes_arr: np.ndarray, n: int, with_target: bool):
        self.index = pd.Index(classes_arr, dtype=object)
        self.classes_arr = classes_arr
        self.k = k = len(classes_arr)
        self.pred_base = k + MAX_UNKNOWN_LABELS + 1
        self.missing_code = self.pred_base + MAX_UNKNOWN_LABELS + 1
        work = _int_type(self.missing_code)
        self.true = np.empty(n, dtype=work) if with_target else None
        self.pred = np.empty(n, dtype=work)
        self.n = n
        self.present: np.ndarray | None = None
        self.row = 0   # rows seen
        self.pos = 0   # rows kept (with a target)
        self.true_extras: list = []
        self.true_index: dict = {}
        self.pred_unknown: list = []
        self.pred_index: dict = {}
        self.pred_missing = False

    def _codes(self, values: np.ndarray, extras: list, extra_index: dict, base: int,
               others: int) -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(_text_as_object(values))  # missing values -> -1
        mapping = self.index.get_indexer(pd.Index(uniques, dtype=object))
        unknown = np.flatnonzero(mapping < 0)
        if others + len(extras) + len(unknown) > MAX_UNKNOWN_LABELS:
            new = [uniques[i] for i in unknown if uniques[i] not in extra_index]
            if others + len(extras) + len(new) > MAX_UNKNOWN_LABELS:
                raise ValueError(f"more than {MAX_UNKNOWN_LABELS} distinct labels are not among the model's classes "
                                 f"(e.g. {(extras + new)[:5]}); is this the right target column?")
        for i in unknown:
            key = uniques[i]
            if key not in extra_index:
                extra_index[key] = base + len(extras)
                extras.append(key)
            mapping[i] = extra_index[key]
        missing = codes < 0
        mapping = mapping.astype(self.pred.dtype)
        if not len(mapping):
            out = np.zeros(len(codes), dtype=mapping.dtype)
        elif missing.any():
            out = mapping[np.where(missing, 0, codes)]
        else:
            out = mapping[codes]
        return out, missing

    def add(self, yt: np.ndarray | None, yp: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Code one block; returns (mask of the block's rows with a target or None for all,
        the target codes of those rows or None)."""
        keep, true = None, None
        rows = len(yp)
        if yt is not None:
            true, missing = self._codes(yt, self.true_extras, self.true_index, self.k, 0)
            if missing.any():
                keep = ~missing
                if self.present is None:
                    self.present = np.ones(self.n, dtype=bool)
                self.present[self.row:self.row + rows] = keep
                true, yp = true[keep], yp[keep]
            self.true[self.pos:self.pos + len(true)] = true
        pred, pred_missing = self._codes(yp, self.pred_unknown, self.pred_index, self.pred_base,
                                         len(self.true_extras))
        if pred_missing.any():  # a missing prediction is its own (unknown) label
            self.pred_missing = True
            pred[pred_missing] = self.missing_code
        self.pred[self.pos:self.pos + len(pred)] = pred
        self.pos += len(pred)
        self.row += rows
        return keep, true

    def finish(self) -> _Encoded:
        k = self.k
        extras = list(self.true_extras)
        lut = None
        if self.pred_unknown or self.pred_missing:
            final = dict(self.true_index)
            lut = np.arange(self.missing_code + 1, dtype=np.int64)
            for j, key in enumerate(self.pred_unknown):
                if key not in final:
                    final[key] = k + len(extras)
                    extras.append(key)
                lut[self.pred_base + j] = final[key]
            if self.pred_missing:
                lut[self.missing_code] = k + len(extras)
                extras.append(None)
        labels = [_label(c) for c in self.classes_arr] + [_label(e) for e in extras]
        dtype = _int_type(len(labels))
        true = None if self.true is None else self.true[:self.pos].astype(dtype)
        pred = self.pred[:self.pos]
        pred = pred.astype(dtype) if lut is None else lut.astype(dtype)[pred]
        self.true = self.pred = None
        n_missing = 0 if self.present is None else self.n - int(np.count_nonzero(self.present))
        return _Encoded(labels, k, true, pred, self.present, n_missing)


# ------------------------------------------------------------ label-based metrics


def _confusion(true: np.ndarray, pred: np.ndarray, n_labels: int) -> np.ndarray:
    out = np.zeros(n_labels * n_labels, dtype=np.int64)
    for a, b in _blocks(len(true)):
        cells = true[a:b].astype(np.intp)
        cells *= n_labels
        cells += pred[a:b]
        out += np.bincount(cells, minlength=n_labels * n_labels)
    return out.reshape(n_labels, n_labels)


def _prf(cm: np.ndarray) -> dict[str, np.ndarray]:
    """Per-label precision/recall/F1 like sklearn with zero_division=0."""
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    den = (support + predicted).astype(np.float64)
    f1 = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support, "predicted": predicted}

# ------------------------------------------------------------ sorted score curves


class _Ranked:
    """One binary scoring problem, sorted once; everything else is O(#thresholds).

    ``score`` is sorted in place (the caller hands over a float64 array it no longer
    needs; it becomes ``asc``, the scores ascending), ``positive`` is a bool array.
    Held: ``asc`` (8 bytes a row), ``cum_pos`` (positives among the top i scores, 4 bytes
    a row below 2**31 rows) and, only when some scores tie, ``ends`` (per tie group in
    descending score order, its last row in descending order: sklearn's threshold_idxs).
    The group arrays of sklearn's ``_binary_clf_curve`` are derived from them block by
    block: rows at or above group g's threshold ``cnt = ends + 1``, ``tps = cum_pos[cnt]``,
    ``fps = cnt - tps``, ``threshold = asc[n - cnt]``."""

    def __init__(self, score: np.ndarray, positive: np.ndarray):
        n = self.n = len(score)
        count_type = np.int32 if n < np.iinfo(np.int32).max else np.int64
        self.cum_pos = cum_pos = np.empty(n + 1, dtype=count_type)
        cum_pos[0] = 0
        if n and score.min() >= 0.0 and score.max() < 2.0:
            # Non-negative doubles below 2 order like their bit patterns, which stay below
            # 2**62: pack the label into the lowest bit and sort plain int64 in place,
            # several times faster than argsort and without an index array.
            np.add(score, 0.0, out=score)  # turns -0.0 into 0.0
            key = score.view(np.int64)
            key <<= 1
            key |= positive
            key.sort()
            low = key.view(np.uint8)[_LOW_BYTE::8] & 1
            np.cumsum(low[::-1], dtype=count_type, out=cum_pos[1:])
            del low
            key >>= 1
            self.asc = score
        else:
            order = np.argsort(score, kind="stable")
            self.asc = score[order]
            y_asc = positive[order]
            del order
            np.cumsum(y_asc[::-1], dtype=count_type, out=cum_pos[1:])
        self.p = int(cum_pos[-1])
        self.neg = n - self.p
        asc = self.asc
        changes = sum(int(np.count_nonzero(asc[a + 1:b + 1] != asc[a:b])) for a, b in _blocks(n - 1))
        self.n_groups = groups = changes + 1 if n else 0
        self.ends = None  # every score distinct: group g is row g
        if groups != n:
            # tie groups start where the ascending scores change; in descending order the
            # last row of each group is n - 1 - start
            ends = np.empty(groups, dtype=count_type)
            w = groups - 1
            for a, b in _blocks(n - 1):
                starts = np.flatnonzero(asc[a + 1:b + 1] != asc[a:b])
                starts += a
                ends[w - len(starts):w] = (n - 2 - starts)[::-1]
                w -= len(starts)
            ends[groups - 1] = n - 1
            self.ends = ends
        self._ap: float | None = None

    # per-group arrays, for a range of groups or at given groups
    def _cnt(self, a: int, b: int) -> np.ndarray:
        if self.ends is None:
            return np.arange(a + 1, b + 1, dtype=np.int64)
        return self.ends[a:b].astype(np.int64) + 1

    def _cnt_at(self, groups: np.ndarray) -> np.ndarray:
        if self.ends is None:
            return groups.astype(np.int64) + 1
        return self.ends[groups].astype(np.int64) + 1

    def _pos(self, cnt) -> np.ndarray:
        return self.cum_pos[cnt].astype(np.int64)

    def thresholds_at(self, groups: np.ndarray) -> np.ndarray:
        return self.asc[self.n - self._cnt_at(groups)]

    def count_ge(self, t) -> tuple[np.ndarray, np.ndarray]:
        """(rows, positives) with score >= t."""
        m = self.n - np.searchsorted(self.asc, t, side="left")
        return m, self._pos(m)

    def count_le(self, t) -> tuple[np.ndarray, np.ndarray]:
        """(rows, positives) with score <= t."""
        m = np.searchsorted(self.asc, t, side="right")
        return m, self.p - self._pos(self.n - m)

    def _kept(self, pr: bool) -> np.ndarray:
        """Groups that sklearn's drop_intermediate keeps: for ROC the points where the
        curve bends (second differences of fps or tps), for PR the ends of vertical runs."""
        groups = self.n_groups
        if groups <= 2:
            return np.arange(groups, dtype=self.cum_pos.dtype)
        parts = [np.zeros(1, dtype=self.cum_pos.dtype)]
        for a, b in _blocks(groups - 2):  # inner groups a + 1 .. b, with one neighbour each side
            cnt = self._cnt(a, b + 2)
            tps = self._pos(cnt)
            if pr:
                keep = (tps[1:-1] != tps[:-2]) | (tps[2:] != tps[1:-1])
            else:
                fps = cnt - tps
                keep = (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
            kept = np.flatnonzero(keep)
            kept += a + 1
            parts.append(kept.astype(self.cum_pos.dtype))
        parts.append(np.array([groups - 1], dtype=self.cum_pos.dtype))
        return np.concatenate(parts)

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """sklearn's roc_curve(drop_intermediate=True): (kept groups, fpr, tpr); fpr and tpr
        start with the (0, 0) point, whose threshold is +inf."""
        groups = self._kept(pr=False)
        m = len(groups)
        fpr, tpr = np.empty(m + 1), np.empty(m + 1)
        fpr[0] = tpr[0] = 0.0
        for a, b in _blocks(m):
            cnt = self._cnt_at(groups[a:b])
            tps = self._pos(cnt)
            tpr[a + 1:b + 1] = tps / self.p
            cnt -= tps
            fpr[a + 1:b + 1] = cnt / self.neg
        return groups, fpr, tpr

    def roc_thresholds(self, groups: np.ndarray, points: np.ndarray) -> np.ndarray:
        out = np.full(len(points), np.inf)
        inner = points > 0
        out[inner] = self.thresholds_at(groups[points[inner] - 1])
        return out

    def auc(self) -> float:
        """Trapezoidal area under the ROC curve, in exact integer arithmetic."""
        twice_rect, triangles, last_fps, last_tps = 0, 0, 0, 0
        for a, b in _blocks(self.n_groups):
            cnt = self._cnt(a, b)
            tps = self._pos(cnt)
            fps = cnt - tps
            d_fps = np.diff(fps, prepend=last_fps)
            twice_rect += int(np.dot(d_fps, tps))
            triangles += int(np.dot(d_fps, np.diff(tps, prepend=last_tps)))
            last_fps, last_tps = int(fps[-1]), int(tps[-1])
        return (2 * twice_rect - triangles) / (2 * self.p * self.neg)

    def pr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """sklearn's precision_recall_curve(drop_intermediate=True): (kept groups, precision,
        recall), recall decreasing, ending with (recall 0, precision 1, no threshold)."""
        groups = self._kept(pr=True)
        m = len(groups)
        precision, recall = np.empty(m + 1), np.empty(m + 1)
        for a, b in _blocks(m):
            cnt = self._cnt_at(groups[a:b])
            tps = self._pos(cnt)
            precision[m - b:m - a] = (tps / cnt)[::-1]
            recall[m - b:m - a] = (tps / self.p)[::-1]
        precision[m], recall[m] = 1.0, 0.0
        return groups, precision, recall

    def pr_thresholds(self, groups: np.ndarray, points: np.ndarray) -> np.ndarray:
        m = len(groups)
        out = np.full(len(points), np.nan)
        inner = points < m
        out[inner] = self.thresholds_at(groups[m - 1 - points[inner]])
        return out

    def average_precision(self) -> float:
        """sum_i (R_i - R_{i-1}) P_i over descending thresholds (sklearn's step integral)."""
        if self._ap is None:
            groups = self.n_groups
            d_tps, precision = np.empty(groups), np.empty(groups)
            last = 0
            for a, b in _blocks(groups):
                cnt = self._cnt(a, b)
                tps = self._pos(cnt)
                d_tps[a:b] = np.diff(tps, prepend=last)
                precision[a:b] = tps / cnt
                last = int(tps[-1])
            self._ap = max(0.0, float(np.dot(d_tps, precision)) / self.p)
        return self._ap

    def gain(self, fraction: np.ndarray) -> np.ndarray:
        """np.interp(fraction, x, y) on the gain curve x = [0, cnt / n], y = [0, tps / p] (rows
        tied on a score count pro rata), from the few points around each fraction."""
        groups = self.n_groups
        near = fraction * self.n  # about the number of groups with cnt / n <= fraction
        if self.ends is None:
            j = np.clip(np.floor(near), 0, groups).astype(np.int64)
        else:
            j = np.searchsorted(self.ends, near - 1, side="right")
        points = np.unique(np.clip(j[:, None] + np.arange(-2, 4), 0, groups))  # indices into x and y
        inner = points[points > 0] - 1
        cnt = self._cnt_at(inner)
        tps = self._pos(cnt)
        lead = [0.0] if points[0] == 0 else []
        x = np.concatenate([lead, cnt / self.n])
        y = np.concatenate([lead, tps / self.p])
        return np.interp(fraction, x, y)


def _out_of_unit(score: np.ndarray) -> bool:
    return bool(len(score)) and (score.min() < 0.0 or score.max() > 1.0)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """float(np.trapezoid(y, x)) with its terms computed block by block."""
    terms = np.empty(max(len(x) - 1, 0))
    for a, b in _blocks(len(terms)):
        terms[a:b] = (x[a + 1:b + 1] - x[a:b]) * (y[a + 1:b + 1] + y[a:b]) / 2.0
    return float(terms.sum())


# ----------------------------------------------------------------------- thinning


def _rdp_top(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Ramer-Douglas-Peucker by priority: keep the ends, then repeatedly the point
    farthest from its current chord, until ``k`` points or the chords are exact."""
    n = len(x)
    if n <= k:
        return np.arange(n)
    heap: list = []

    def push(i: int, j: int) -> None:
        if j - i < 2:
            return
        px = x[i + 1:j] - x[i]
        py = y[i + 1:j] - y[i]
        dx = x[j] - x[i]
        dy = y[j] - y[i]
        length2 = dx * dx + dy * dy
        if length2 > 0:
            t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)
            px = px - t * dx
            py = py - t * dy
        d2 = px * px + py * py
        m = int(np.argmax(d2))
        if d2[m] > 1e-24:  # farther than 1e-12: not just rounding on a straight run
            heapq.heappush(heap, (-float(d2[m]), i + 1 + m, i, j))

    keep = [0, n - 1]
    push(0, n - 1)
    while heap and len(keep) < k:
        _, m, i, j = heapq.heappop(heap)
        keep.append(m)
        push(i, m)
        push(m, j)
    return np.array(sorted(keep), dtype=np.int64)

def _path_length(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[0, cumsum(|diff(x)| + |diff(y)|)], block by block (cumsum adds in order, so the
    running total carried over from block to block gives the same sums)."""
    path = np.empty(len(x))
    path[0] = total = 0.0
    for a, b in _blocks(len(x) - 1):
        d = np.abs(x[a + 1:b + 1] - x[a:b])
        d += np.abs(y[a + 1:b + 1] - y[a:b])
        d[0] += total
        np.cumsum(d, out=path[a + 1:b + 1])
        total = float(path[b])
    return path


def _thin(x: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` vertices (always the first and the last)
    whose polyline follows the curve (x, y).

    Stage 1 (only for long curves) keeps, at ``fine`` evenly spaced positions along
    the L1 path length, the vertices on both sides of each position: every dropped
    vertex then lies in a box of L1 size < path_length / fine around its chord.
    Stage 2 picks the final vertices by Ramer-Douglas-Peucker priority.
    """
    n = len(x)
    if n <= max_points:
        return np.arange(n)
    fine = max(16 * max_points, 4096)
    if n > fine:
        path = _path_length(x, y)
        positions = np.searchsorted(path, np.linspace(0.0, path[-1], fine // 2), side="left")
        del path
        positions = np.minimum(positions, n - 1)
        candidates = np.unique(np.concatenate([[0, n - 1], positions, np.maximum(positions - 1, 0)]))
    else:
        candidates = np.arange(n)
    keep = _rdp_top(x[candidates], y[candidates], max_points)
    return candidates[keep]


def _curve_part(n_rows: int, max_points: int, xs: tuple[str, np.ndarray], ys: tuple[str, np.ndarray],
                thresholds, **extra) -> dict:
    """``thresholds``: the thresholds of the curve's points, or a function giving those at
    the indices it is passed (long curves: only the kept points' are looked up)."""
    (xname, x), (yname, y) = xs, ys
    keep = _thin(x, y, max_points)
    thr = thresholds(keep) if callable(thresholds) else thresholds[keep]
    return {"exact": len(keep) == len(x), "n": n_rows, "n_points_exact": len(x), "n_points": len(keep),
            **extra, xname: x[keep], yname: y[keep], "thresholds": thr}


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


# ---------------------------------------------------------- classification


class _RowTerms:
    """Per-row terms of log loss and Brier score for the scored rows (target known to the
    model), filled block by block; their means are taken over the full arrays."""

    def __init__(self, n: int, k: int):
        self.k = k
        self.log = np.empty(n)
        self.brier = np.empty(n)
        self.pos = 0

    def add(self, true: np.ndarray, proba: np.ndarray) -> None:
        rows = slice(self.pos, self.pos + len(true))
        p_true = proba[np.arange(len(true)), true]
        if self.k == 2:
            self.brier[rows] = (proba[:, 1] - (true == 1)) ** 2
        else:
            self.brier[rows] = np.einsum("ij,ij->i", proba, proba) - 2 * p_true + 1
        self.log[rows] = np.log(np.clip(p_true, _EPS64, 1 - _EPS64))
        self.pos += len(true)

    def log_loss(self) -> float:
        return float(-np.mean(self.log[:self.pos]))

    def brier_score(self) -> float:
        return float(np.mean(self.brier[:self.pos]))


def _encode(columns: ClassifierColumns, classes_arr: np.ndarray, terms: bool) -> tuple[_Encoded, _RowTerms | None]:
    k = len(classes_arr)
    coder = _LabelCoder(classes_arr, columns.n, columns.has_target)
    row_terms = _RowTerms(columns.n, k) if terms and columns.has_target and columns.has_proba else None
    for yt, yp, pr in columns.blocks():
        if pr is not None and not np.isfinite(pr).all():
            raise ValueError("proba contains NaN or infinite values")
        if yp is None:  # what predict() returns: argmax of predict_proba
            yp = classes_arr[np.argmax(pr, axis=1)]
        keep, true = coder.add(yt, yp)
        if row_terms is not None:
            if keep is not None:
                pr = pr[keep]
            known = true < k
            if not known.all():
                true, pr = true[known], pr[known]
            row_terms.add(true, pr)
    return coder.finish(), row_terms


def _metrics_head(enc: _Encoded, has_proba: bool, n_scored: int) -> tuple[dict, bool]:
    """The label metrics; (out, whether the probability metrics can follow)."""
    n_labels = len(enc.labels)
    n = len(enc.true)
    k = enc.k
    out: dict[str, Any] = {
        "task": "binary" if k == 2 else "multiclass",
        "n": n,
        "n_missing_target": enc.n_missing,
        "n_unknown_label": n - n_scored,
        "classes": enc.labels[:k],
    }
    if k == 2:
        out["positive_label"] = enc.labels[1]
    undefined: dict[str, str] = {}
    notes: list[str] = []
    names = ("accuracy", "balanced_accuracy", "precision_macro", "recall_macro", "f1_macro",
             "roc_auc", "average_precision", "log_loss", "brier_score")
    for name in names:
        out[name] = None
    per_class = [{"label": label, "known": i < k, "precision": None, "recall": None, "f1": None,
                  "support": 0} for i, label in enumerate(enc.labels)]
    out["per_class"] = per_class
    out["undefined"] = undefined
    out["notes"] = notes
    if n == 0:
        for name in names:
            undefined[name] = "no rows with a target"
        out["n_scored"] = 0
        return out, False

    cm = _confusion(enc.true, enc.pred, n_labels)
    prf = _prf(cm)
    present = (prf["support"] > 0) | (prf["predicted"] > 0)
    out["accuracy"] = float(np.trace(cm)) / n
    out["balanced_accuracy"] = float(np.mean(prf["recall"][prf["support"] > 0]))
    for key in ("precision", "recall", "f1"):
        out[f"{key}_macro"] = float(np.mean(prf[key][present]))
    for i, row in enumerate(per_class):
        row.update(precision=float(prf["precision"][i]), recall=float(prf["recall"][i]),
                   f1=float(prf["f1"][i]), support=int(prf["support"][i]))

    out["n_scored"] = n_scored
    if not has_proba:
        for name in ("roc_auc", "average_precision", "log_loss", "brier_score"):
            undefined[name] = "no class probabilities (the model has no predict_proba)"
        return out, False
    if n_scored == 0:
        for name in ("roc_auc", "average_precision", "log_loss", "brier_score"):
            undefined[name] = "no row has a target label the model knows"
        return out, False
    if n_scored < n:
        notes.append(f"{n - n_scored} rows with target labels unknown to the model are left out of "
                     "roc_auc, average_precision, log_loss and brier_score")
    return out, True


def _shares_part(codes: np.ndarray, labels: list) -> dict:
    counts = _bincount(codes, len(labels))
    n = len(codes)
    return {"exact": True, "n": n, "labels": labels, "counts": counts,
            "shares": counts / n if n else [None] * len(labels)}


def _binary_target_parts(out: dict, ranked: _Ranked, labels: list, max_points: int) -> None:
    unavailable = out["unavailable"]
    n = ranked.n
    # threshold table: exact counts for "score >= t"
    m, tp = ranked.count_ge(THRESHOLDS)
    fp = m - tp
    out["threshold_table"] = {"exact": True, "n": n, "rule": "score >= threshold predicts the positive class",
                              "thresholds": THRESHOLDS, "tp": tp, "fp": fp,
                              "tn": ranked.neg - fp, "fn": ranked.p - tp}
    # calibration, binned like sklearn.calibration.calibration_curve(strategy="uniform")
    edges = _edges(0.0, 1.0, CALIBRATION_BINS)
    bounds, pos = ranked.count_le(edges[1:-1])
    bounds = np.concatenate([[0], bounds, [n]])
    pos = np.concatenate([[0], pos, [ranked.p]])
    counts = np.diff(bounds)
    positives = np.diff(pos)
    sums = np.array([ranked.asc[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:])])
    nonzero = np.flatnonzero(counts)
    out["calibration"] = {"exact": True, "n": n, "strategy": "uniform", "bin_edges": edges,
                          "bin": nonzero, "count": counts[nonzero],
                          "prob_true": positives[nonzero] / counts[nonzero],
                          "prob_pred": sums[nonzero] / counts[nonzero]}
    # score histograms per true class ([a, b) bins, the last one closed)
    edges = _edges(0.0, 1.0, SCORE_BINS)
    ge, ge_pos = ranked.count_ge(edges[:-1])
    gt = ranked.n - np.searchsorted(ranked.asc, 1.0, side="right")
    gt_pos = ranked._pos(gt)
    total = -np.diff(np.append(ge, gt))
    pos_counts = -np.diff(np.append(ge_pos, gt_pos))
    out["score_histograms"] = {"exact": True, "n": n, "bin_edges": edges, "series": [
        {"label": labels[0], "counts": total - pos_counts},
        {"label": labels[1], "counts": pos_counts}]}
    if ranked.p == 0 or ranked.neg == 0:
        reason = (f"only one class present in y_true ({labels[1] if ranked.p else labels[0]!r})")
        unavailable["roc"] = unavailable["pr"] = reason
        if ranked.p == 0:
            unavailable["gain_lift"] = f"no positive ({labels[1]!r}) rows in y_true"
    if ranked.p and ranked.neg:
        groups, fpr, tpr = ranked.roc()
        out["roc"] = _curve_part(n, max_points, ("fpr", fpr), ("tpr", tpr),
                                 lambda keep: ranked.roc_thresholds(groups, keep),
                                 positive_label=labels[1], auc=_trapezoid(tpr, fpr))
        del groups, fpr, tpr
        average_precision = ranked.average_precision()
        groups, precision, recall = ranked.pr()
        out["pr"] = _curve_part(n, max_points, ("recall", recall), ("precision", precision),
                                lambda keep: ranked.pr_thresholds(groups, keep),
                                positive_label=labels[1], average_precision=average_precision,
                                prevalence=ranked.p / n)
        del groups, precision, recall
    if ranked.p:
        # cumulative gain at each percent of rows taken by descending score; rows
        # tied on a score count pro rata (linear between tie-group boundaries)
        fraction = GAIN_PERCENTS / 100.0
        gain = ranked.gain(fraction)
        out["gain_lift"] = {"exact": True, "n": n, "positive_label": labels[1], "positive_rate": ranked.p / n,
                            "percent": GAIN_PERCENTS, "gain": gain, "lift": gain / fraction}


def classification_summary(columns: ClassifierColumns, classes, *, with_metrics: bool = True,
                           with_aggregates: bool = True, max_points: int = 500) -> tuple[dict | None, dict | None]:
    """``(classification_metrics, classification_aggregates)`` of ``columns`` in one pass.

    The labels are coded once, and each class's probability column is read and ranked
    once for both dicts (twice only when it has values outside [0, 1]: the metrics rank
    them as they are, the aggregates clipped).  ``with_metrics`` needs a target."""
    if with_aggregates and max_points < 4:
        raise ValueError("max_points must be at least 4")
    classes_arr = _classes_array(classes)
    if with_metrics and not columns.has_target:
        raise ValueError("classification_metrics needs y_true")
    enc, row_terms = _encode(columns, classes_arr, with_metrics)
    k = enc.k
    labels = enc.labels
    has_target = enc.true is not None
    has_proba = columns.has_proba
    n = len(enc.pred)

    true = scored = None
    n_scored = n
    if has_target:
        known = enc.true < k
        n_scored = int(np.count_nonzero(known))
        true = enc.true if n_scored == n else enc.true[known]
        if enc.present is None:
            scored = None if n_scored == n else known
        else:
            scored = enc.present
            if n_scored < n:
                scored = scored.copy()
                scored[enc.present] = known
        del known

    metrics = agg = None
    ranking_metrics = False
    if with_metrics:
        metrics, ranking_metrics = _metrics_head(enc, has_proba, n_scored)
        if ranking_metrics:
            if k >= 2:
                metrics["log_loss"] = row_terms.log_loss()
            else:
                metrics["undefined"]["log_loss"] = "the model has a single class"
            metrics["brier_score"] = row_terms.brier_score()
        row_terms = None
    if with_aggregates:
        agg = {"task": "binary" if k == 2 else "multiclass", "classes": labels[:k],
               "has_target": has_target, "n": n, "n_missing_target": enc.n_missing,
               "max_points": max_points, "unavailable": {}}
        agg["prediction_shares"] = _shares_part(enc.pred, labels)
        if has_target:
            cm = _confusion(enc.true, enc.pred, len(labels))
            agg["confusion_matrix"] = {"exact": True, "n": n, "labels": labels, "rows": "true",
                                       "columns": "predicted", "matrix": cm}
            prf = _prf(cm)
            agg["per_class"] = {"exact": True, "n": n, "labels": labels, "precision": prf["precision"],
                                "recall": prf["recall"], "f1": prf["f1"], "support": prf["support"]}
            agg["n_unknown_label"] = n - n_scored
        if not has_proba:
            agg["unavailable"]["probabilities"] = "no class probabilities (the model has no predict_proba)"
    enc = None  # the codes of every row are no longer needed; ``true`` holds the scored rows'

    if has_proba and (ranking_metrics or agg is not None):
        problems = _binary_problems if k == 2 else _multiclass_problems
        problems(columns, k, true, scored, n_scored, labels, metrics if ranking_metrics else None, agg, max_points)
    return (None if metrics is None else _jsonable(metrics, None)), (None if agg is None else _jsonable(agg))


def _binary_problems(columns: ClassifierColumns, k: int, true, scored, n_scored: int, labels: list,
                     metrics: dict | None, agg: dict | None, max_points: int) -> None:
    if true is None:
        if agg is not None:
            edges = _edges(0.0, 1.0, SCORE_BINS)
            agg["score_histogram"] = {"exact": True, "n": agg["n"], "label": labels[1], "bin_edges": edges,
                                      "counts": _probability_histogram(columns.proba_column(1, None))}
        return
    if n_scored == 0:
        if agg is not None:
            agg["unavailable"]["curves"] = "no row has a target label the model knows"
        return
    positive = true == 1
    n_pos = int(np.count_nonzero(positive))
    score = columns.proba_column(1, scored)
    clip = agg is not None and _out_of_unit(score)
    ranked = None
    if metrics is not None:
        if n_pos:
            ranked = _Ranked(score.copy() if clip else score, positive)
        undefined = metrics["undefined"]
        if n_pos in (0, n_scored):
            undefined["roc_auc"] = f"only one class present in y_true ({labels[int(true[0])]!r})"
        else:
            metrics["roc_auc"] = ranked.auc()
        if n_pos == 0:
            undefined["average_precision"] = f"no positive ({labels[1]!r}) rows in y_true"
        else:
            metrics["average_precision"] = ranked.average_precision()
    if agg is not None:
        if ranked is None or clip:
            ranked = None
            if clip:
                np.clip(score, 0.0, 1.0, out=score)
            ranked = _Ranked(score, positive)
        del score, positive
        _binary_target_parts(agg, ranked, labels, max_points)


def _multiclass_problems(columns: ClassifierColumns, k: int, true, scored, n_scored: int, labels: list,
                         metrics: dict | None, agg: dict | None, max_points: int) -> None:
    per_curve = max(50, max_points // k)
    series, curves, skipped = [], [], []
    aucs, aps, absent = [], [], []
    if metrics is not None:
        for row in metrics["per_class"]:
            row["roc_auc"] = row["average_precision"] = None
    for c in range(k):
        score = columns.proba_column(c, scored)
        if agg is not None:
            series.append({"label": labels[c], "counts": _probability_histogram(score)})
        if true is None:
            continue
        positive = true == c
        n_pos = int(np.count_nonzero(positive))
        curve = agg is not None and 0 < n_pos < n_scored
        if agg is not None and not curve:
            skipped.append(labels[c])
        clip = curve and _out_of_unit(score)
        ranked = None
        if metrics is not None:
            if n_pos == 0:
                absent.append(labels[c])
            else:
                ranked = _Ranked(score.copy() if clip else score, positive)
                row = metrics["per_class"][c]
                row["average_precision"] = ranked.average_precision()
                aps.append(row["average_precision"])
                if n_pos < n_scored:
                    row["roc_auc"] = ranked.auc()
                    aucs.append(row["roc_auc"])
        if curve:
            if ranked is None or clip:
                ranked = None
                if clip:
                    np.clip(score, 0.0, 1.0, out=score)
                ranked = _Ranked(score, positive)
            del score
            groups, fpr, tpr = ranked.roc()
            curves.append(_curve_part(n_scored, per_curve, ("fpr", fpr), ("tpr", tpr),
                                      lambda keep: ranked.roc_thresholds(groups, keep),
                                      label=labels[c], auc=_trapezoid(tpr, fpr)))
            del groups, fpr, tpr
        ranked = score = positive = None
    if metrics is not None:
        undefined, notes = metrics["undefined"], metrics["notes"]
        if aucs:
            metrics["roc_auc"] = float(np.mean(aucs))
        else:
            undefined["roc_auc"] = "only one class present in y_true"
        if aps:
            metrics["average_precision"] = float(np.mean(aps))
        else:
            undefined["average_precision"] = "no class present in y_true"
        if absent:
            notes.append(f"classes absent from y_true are left out of the one-vs-rest macro roc_auc and "
                         f"average_precision (scikit-learn raises here): {absent}")
    if agg is None:
        return
    agg["probability_histograms"] = {"exact": True, "n": n_scored if true is not None else agg["n"],
                                     "bin_edges": _edges(0.0, 1.0, SCORE_BINS), "series": series}
    if true is not None:
        if curves:
            agg["roc_ovr"] = {"exact": all(c["exact"] for c in curves), "n": n_scored,
                              "max_points_per_class": per_curve, "curves": curves}
            for curve in curves:
                del curve["n"]
        if skipped:
            agg["unavailable"]["roc_ovr"] = f"classes with no positive or no negative rows: {skipped}"


def classification_metrics(y_true, y_pred, proba: np.ndarray | None, classes) -> dict:
    """Metrics of a classifier on rows with a target; equal to scikit-learn's.

    * ``accuracy``, ``balanced_accuracy`` (mean recall over labels present in
      ``y_true``, as sklearn), ``precision_macro``/``recall_macro``/``f1_macro``
      over the labels present in ``y_true`` or ``y_pred`` (sklearn's default label
      set; ``zero_division=0``), and ``per_class`` rows for every model class plus
      every unknown target label (``known: false``).
    * ``roc_auc``: binary AUC of ``classes[1]``; multiclass: macro one-vs-rest
      AUC.  ``average_precision``: binary with positive ``classes[1]``; multiclass:
      macro one-vs-rest.  When a class is absent from the target (where sklearn
      raises) the macro is over the classes where it is defined and
      ``notes`` says so; when no class qualifies the value is ``None`` with the
      reason under ``undefined``.
    * ``log_loss``: sklearn's ``log_loss(..., labels=classes)`` (probabilities
      clipped to [eps, 1-eps], not renormalised).
    * ``brier_score``: binary: mean squared error of the ``classes[1]``
      probability (sklearn ``brier_score_loss``, 0..1); multiclass: mean over
      rows of sum_k (p_k - 1[y = k])^2 (sklearn's multiclass ``brier_score_loss``,
      range 0..2, not halved).
    Probability metrics use only rows whose target is one of ``classes``.
    """
    if y_true is None:
        raise ValueError("classification_metrics needs y_true")
    classes_arr = _classes_array(classes)
    metrics, _ = classification_summary(_ArrayColumns(y_true, y_pred, proba, classes_arr), classes_arr,
                                        with_metrics=True, with_aggregates=False)
    return metrics


def classification_aggregates(y_true, proba: np.ndarray | None, y_pred, classes, *, max_points: int = 500) -> dict:
    """Everything a classification result page plots, in a few tens of KB.

    Parts (each with ``exact`` and ``n``; a part that cannot be computed is absent
    and ``unavailable[part]`` says why):

    * always: ``prediction_shares`` (counts and shares of predicted labels).
    * with a target: ``confusion_matrix`` (rows = true, columns = predicted, counts;
      unknown target labels become extra rows/columns after the model's classes) and
      ``per_class`` (precision, recall, f1, support per label).
    * binary with probabilities and a target: ``roc`` and ``pr`` (vertices of
      sklearn's ``roc_curve`` / ``precision_recall_curve(drop_intermediate=True)``,
      ``n_points_exact`` of them, thinned to at most ``max_points`` while keeping
      the first and last; thresholds of the kept vertices, +inf/none -> null), ``threshold_table`` (TP/FP/TN/FN for
      score >= 0.00, 0.01, ..., 1.00), ``calibration`` (like
      ``calibration_curve(n_bins=10)`` plus per-bin counts), ``score_histograms``
      (50 bins on [0, 1] per true class), ``gain_lift`` (1..100 % of rows).
    * binary with probabilities, no target: ``score_histogram``.
    * multiclass with probabilities: ``probability_histograms`` (one per class
      column); with a target also ``roc_ovr`` (one-vs-rest curves, each thinned to
      ``max(50, max_points // n_classes)`` points).

    ``y_pred`` may be None (then argmax of ``proba``, i.e. what ``predict`` gives).
    """
    if max_points < 4:
        raise ValueError("max_points must be at least 4")
    classes_arr = _classes_array(classes)
    _, agg = classification_summary(_ArrayColumns(y_true, y_pred, proba, classes_arr), classes_arr,
                                    with_metrics=False, max_points=max_points)
    return agg


# -------------------------------------------------------------- regression metrics


def _regression_columns(y_true, y_pred) -> tuple[np.ndarray | None, np.ndarray, int]:
    yp = np.asarray(y_pred, dtype=np.float64)
    if yp.ndim != 1:
        raise ValueError(f"y_pred must be one-dimensional, got shape {yp.shape}")
    yt = None
    ok = np.isfinite(yp)
    if y_true is not None:
        yt = np.asarray(y_true, dtype=np.float64)
        if yt.shape != yp.shape:
            raise ValueError(f"y_true and y_pred have different shapes: {yt.shape} vs {yp.shape}")
        ok &= np.isfinite(yt)
    n_dropped = int(len(yp) - ok.sum())
    if n_dropped:
        yp = yp[ok]
        yt = None if yt is None else yt[ok]
    return yt, yp, n_dropped


def regression_metrics(y_true, y_pred) -> dict:
    """MAE, RMSE, R^2, median absolute error, MAPE and n; equal to scikit-learn's.

    Rows where the target or the prediction is not finite are dropped
    (``n_dropped``).  ``r2`` follows sklearn's ``force_finite``: with a constant
    target it is 1.0 for a perfect prediction, else 0.0 (noted); with fewer than two
    rows it is None.  ``mape`` is sklearn's ``mean_absolute_percentage_error``:
    |y - y_hat| / max(|y|, machine epsilon), so a row with ``y_true == 0`` and a
    non-zero error contributes about 4.5e15 x its error (a huge, finite value, not
    a percentage); ``n_zero_target`` counts them and ``mape_nonzero_target`` is the
    MAPE over the other rows.
    """
    yt, yp, n_dropped = _regression_columns(y_true, y_pred)
    if yt is None:
        raise ValueError("regression_metrics needs y_true")
    return _regression_metrics(yt, yp, n_dropped, None)


def _regression_metrics(yt: np.ndarray, yp: np.ndarray, n_dropped: int, err: np.ndarray | None) -> dict:
    """``err`` is ``yt - yp`` when the caller has it.  One full-length buffer of terms at a
    time; each mean is taken over it as numpy would over the plain expression."""
    n = len(yt)
    names = ("mae", "rmse", "r2", "median_absolute_error", "mape", "mape_nonzero_target")
    out: dict[str, Any] = {"task": "regression", "n": n, "n_dropped": n_dropped,
                           "n_zero_target": int(n - np.count_nonzero(yt))}
    out.update(dict.fromkeys(names))
    undefined: dict[str, str] = {}
    notes: list[str] = []
    out["undefined"] = undefined
    out["notes"] = notes
    if n == 0:
        undefined.update(dict.fromkeys(names, "no rows with a finite target and prediction"))
        return _jsonable(out, None)
    if err is None:
        err = yt - yp
    terms = np.abs(err)
    out["mae"] = float(np.mean(terms))
    for a, b in _blocks(n):  # |err| / max(|y|, eps)
        terms[a:b] /= np.maximum(np.abs(yt[a:b]), _EPS64)
    out["mape"] = float(np.mean(terms))
    nonzero = n - out["n_zero_target"]
    if nonzero:
        m = 0
        for a, b in _blocks(n):
            keep = yt[a:b] != 0
            part = np.abs(err[a:b][keep]) / np.abs(yt[a:b][keep])
            terms[m:m + len(part)] = part
            m += len(part)
        out["mape_nonzero_target"] = float(np.mean(terms[:m]))
    else:
        undefined["mape_nonzero_target"] = "every target is 0"
    if out["n_zero_target"]:
        notes.append(f"{out['n_zero_target']} rows have y_true == 0: sklearn's MAPE divides their error by "
                     "machine epsilon, which dominates 'mape'; see 'mape_nonzero_target'")
    np.multiply(err, err, out=terms)
    out["rmse"] = float(np.sqrt(np.mean(terms)))
    if n < 2:
        undefined["r2"] = "R^2 needs at least two rows"
    else:
        ss_res = float(np.sum(terms))
        np.subtract(yt, yt.mean(), out=terms)
        np.multiply(terms, terms, out=terms)
        ss_tot = float(np.sum(terms))
        if ss_tot == 0:
            out["r2"] = 1.0 if ss_res == 0 else 0.0
            notes.append("the target is constant: r2 is set to 1.0 (perfect) or 0.0 as scikit-learn does")
        else:
            out["r2"] = 1.0 - ss_res / ss_tot
    np.abs(err, out=terms)
    out["median_absolute_error"] = float(np.median(terms, overwrite_input=True))
    return _jsonable(out, None)


# ----------------------------------------------------------- regression aggregates


class _Column:
    """One numeric column: its plot range and quantiles from a single sort, and cached bin
    indices (compact integers, filled block by block)."""

    def __init__(self, values: np.ndarray, quantiles: np.ndarray | None = None):
        self.values = values
        ordered = np.sort(values)  # SIMD sort: as fast as one np.quantile call
        self.quantiles = None if quantiles is None else self._quantile(ordered, quantiles)
        full_lo, full_hi = float(ordered[0]), float(ordered[-1])
        q_lo, q_hi = (float(q) for q in self._quantile(ordered, np.array([0.001, 0.999])))
        del ordered
        width = q_hi - q_lo
        if full_hi - full_lo > 2 * width and width > 0:  # outliers would squash the plot
            self.range = (max(full_lo, q_lo - 0.05 * width), min(full_hi, q_hi + 0.05 * width))
        else:
            self.range = (full_lo, full_hi)
        self._bins: dict = {}

    @staticmethod
    def _quantile(ordered: np.ndarray, q: np.ndarray) -> np.ndarray:
        """np.quantile's default ("linear") method on sorted values."""
        h = (len(ordered) - 1) * q
        lo = np.floor(h)
        t = h - lo
        lo = lo.astype(np.intp)
        a, b = ordered[lo], ordered[np.minimum(lo + 1, len(ordered) - 1)]
        return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)

    def bins(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(bin index of each value, 0 outside; inside mask or None when all are inside); cached."""
        key = (float(edges[0]), float(edges[-1]), len(edges))
        if key not in self._bins:
            v = self.values
            idx = np.zeros(len(v), dtype=_int_type(len(edges)))
            inside = None
            for a, b in _blocks(len(v)):
                block = v[a:b]
                ins = (block >= edges[0]) & (block <= edges[-1])
                if ins.all():
                    idx[a:b] = _bin_index(block, edges)
                    if inside is not None:
                        inside[a:b] = True
                    continue
                if inside is None:
                    inside = np.ones(len(v), dtype=bool)
                inside[a:b] = ins
                idx[a:b][ins] = _bin_index(block[ins], edges)
            self._bins[key] = (idx, inside)
        return self._bins[key]


def _padded(lo: float, hi: float) -> tuple[float, float]:
    if hi > lo:
        return lo, hi
    pad = abs(lo) * 0.05 if lo else 0.5
    return lo - pad, hi + pad


def _column_hist_part(col: _Column, bins: int) -> dict:
    edges = _edges(*_padded(*col.range), bins)
    idx, inside = col.bins(edges)
    n = len(col.values)
    counts = _bincount(idx, bins, inside)
    if inside is None:
        n_below, n_above = 0, 0
    else:
        n_below = sum(int(np.count_nonzero(col.values[a:b] < edges[0])) for a, b in _blocks(n))
        n_above = n - int(np.count_nonzero(inside)) - n_below
    return {"exact": True, "n": n, "bin_edges": edges, "counts": counts, "n_below": n_below, "n_above": n_above}


def _grid_part(x: _Column, y: _Column, x_edges: np.ndarray, y_edges: np.ndarray, names: tuple[str, str]) -> dict:
    grid_x, grid_y = len(x_edges) - 1, len(y_edges) - 1
    ix, x_in = x.bins(x_edges)
    iy, y_in = y.bins(y_edges)
    n = len(x.values)
    counts = np.zeros(grid_x * grid_y, dtype=np.int64)
    n_inside = 0
    for a, b in _blocks(n):
        cells = iy[a:b].astype(np.intp)
        cells *= grid_x
        cells += ix[a:b]
        inside = x_in if y_in is None else (y_in if x_in is None else None)
        if x_in is not None and y_in is not None:
            cells = cells[x_in[a:b] & y_in[a:b]]
        elif inside is not None:
            cells = cells[inside[a:b]]
        counts += np.bincount(cells, minlength=grid_x * grid_y)
        n_inside += len(cells)
    counts = counts.reshape(grid_y, grid_x)
    return {"exact": False, "n": n, "kind": "grid", "x_name": names[0], "y_name": names[1],
            "x_edges": x_edges, "y_edges": y_edges, "counts": counts, "counts_index": "counts[y_bin][x_bin]",
            "n_outside": n - n_inside}


def _points_part(x: np.ndarray, y: np.ndarray, names: tuple[str, str]) -> dict:
    """Raw points, rounded to POINT_SIG_DIGITS (invisible on a scatter; keeps 4 x 5,000 numbers < 200 KB)."""
    def rounded(values: np.ndarray) -> list[float]:
        return [float(f"{v:.{POINT_SIG_DIGITS}g}") for v in values.tolist()]
    return {"exact": True, "n": len(x), "kind": "points", "x_name": names[0], "y_name": names[1],
            "sig_digits": POINT_SIG_DIGITS, "x": rounded(x), "y": rounded(y)}


def regression_aggregates(y_true, y_pred, *, grid: int = 60, max_points: int = 5000) -> dict:
    """Everything a regression result page plots.

    * always: ``prediction_histogram`` (``grid`` bins).
    * with a target: ``predicted_vs_actual`` (x = actual, y = predicted) and
      ``residuals_vs_predicted`` (x = predicted, y = residual) as the raw points
      (``kind: "points"``, ``exact: true``, rounded to 4 significant digits) when
      n <= ``max_points``, else a
      ``grid`` x ``grid`` count grid (``kind: "grid"``, ``exact: false``,
      ``counts[y_bin][x_bin]``, bin edges, ``n_outside``; predicted-vs-actual uses
      one range for both axes so y = x is the diagonal); ``residual_histogram``;
      ``error_by_decile`` (deciles of the prediction, bins [from, to) with the
      last one closed: count, mean absolute error, mean error, RMSE; empty
      deciles, e.g. with constant predictions, have null means).
    Residual / error = ``y_true - y_pred`` (positive: the model under-predicts).
    Histograms use numpy.histogram's bins.  Ranges trim the 0.1 % tails only when
    outliers would squash the plot; ``n_below``/``n_above``/``n_outside`` count
    what falls outside.  Rows with a non-finite target or prediction are dropped
    (``n_dropped``).
    """
    if grid < 2:
        raise ValueError("grid must be at least 2")
    _, agg = regression_summary(y_true, y_pred, with_metrics=False, grid=grid, max_points=max_points)
    return agg


def regression_summary(y_true, y_pred, *, with_metrics: bool = True, grid: int = 60,
                       max_points: int = 5000) -> tuple[dict | None, dict]:
    """``(regression_metrics, regression_aggregates)``, sharing the residuals;
    ``with_metrics`` needs a target."""
    if grid < 2:
        raise ValueError("grid must be at least 2")
    yt, yp, n_dropped = _regression_columns(y_true, y_pred)
    if with_metrics and yt is None:
        raise ValueError("regression_metrics needs y_true")
    n = len(yp)
    out: dict[str, Any] = {"task": "regression", "has_target": yt is not None, "n": n, "n_dropped": n_dropped,
                           "residual_definition": "y_true - y_pred", "unavailable": {}}
    if n == 0:
        out["unavailable"]["plots"] = "no rows with a finite target and prediction"
        return (_regression_metrics(yt, yp, n_dropped, None) if with_metrics else None), _jsonable(out)
    decile_q = np.linspace(0.0, 1.0, DECILES + 1)
    pred = _Column(yp, decile_q if yt is not None else None)
    out["prediction_histogram"] = _column_hist_part(pred, grid)
    if yt is None:
        return None, _jsonable(out)
    resid = yt - yp
    if n <= max_points:
        out["predicted_vs_actual"] = _points_part(yt, yp, ("actual", "predicted"))
        out["residuals_vs_predicted"] = _points_part(yp, resid, ("predicted", "residual"))
        res = _Column(resid)
    else:
        actual = _Column(yt)
        shared = _edges(*_padded(min(actual.range[0], pred.range[0]), max(actual.range[1], pred.range[1])), grid)
        out["predicted_vs_actual"] = _grid_part(actual, pred, shared, shared, ("actual", "predicted"))
        del actual
        res = _Column(resid)
        out["residuals_vs_predicted"] = _grid_part(pred, res, _edges(*_padded(*pred.range), grid),
                                                   _edges(*_padded(*res.range), grid), ("predicted", "residual"))
    out["residual_histogram"] = _column_hist_part(res, grid)
    del res
    edges = pred.quantiles
    del pred
    # np.bincount with weights adds each bin's weights in row order; np.add.at block by block
    # does the same additions in the same order
    count = np.zeros(DECILES, dtype=np.int64)
    abs_sum, sum_, sq_sum = np.zeros(DECILES), np.zeros(DECILES), np.zeros(DECILES)
    for a, b in _blocks(n):
        decile = np.searchsorted(edges[1:-1], yp[a:b], side="right")
        r = resid[a:b]
        count += np.bincount(decile, minlength=DECILES)
        np.add.at(abs_sum, decile, np.abs(r))
        np.add.at(sum_, decile, r)
        np.add.at(sq_sum, decile, r * r)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty deciles -> NaN -> None
        out["error_by_decile"] = {
            "exact": True, "n": n, "decile": np.arange(1, DECILES + 1), "pred_from": edges[:-1],
            "pred_to": edges[1:], "count": count, "mean_abs_error": abs_sum / count,
            "mean_error": sum_ / count, "rmse": np.sqrt(sq_sum / count)}
    metrics = _regression_metrics(yt, yp, n_dropped, resid) if with_metrics else None
    return metrics, _jsonable(out)
