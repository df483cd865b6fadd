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

Which functions need the full arrays
------------------------------------
All four take full columns.  Exact ROC/PR curves, AUC, average precision, the
threshold table and gain/lift need every (target, score) pair sorted (one
O(n log n) sort per binary problem / per class), the median absolute error and the
robust ranges / deciles of the regression aggregates need quantiles of the full
column.  Only histograms with fixed edges, the confusion matrix and the prediction
shares could be merged from per-chunk partials; that is not offered here because
reading the (target, score) columns once in the finalize step is simpler and fast
enough (see the report in the tests).
"""

from __future__ import annotations

import heapq
import math
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "SIG_DIGITS",
    "classification_aggregates",
    "classification_metrics",
    "regression_aggregates",
    "regression_metrics",
]

SIG_DIGITS = 6
POINT_SIG_DIGITS = 4       # raw scatter points of regression_aggregates
SCORE_BINS = 50            # bins of score / probability histograms on [0, 1]
CALIBRATION_BINS = 10      # like sklearn.calibration.calibration_curve(n_bins=10)
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)   # threshold table grid
GAIN_PERCENTS = np.arange(1, 101)                        # gain / lift points
DECILES = 10
MAX_UNKNOWN_LABELS = 100   # distinct target labels the model does not know; more raises ValueError
_EPS64 = float(np.finfo(np.float64).eps)


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


# ----------------------------------------------------------------------- encoding


class _Encoded(NamedTuple):
    labels: list          # JSON labels: the model's classes, then unknown labels
    k: int                # number of model classes
    true: np.ndarray | None   # int codes into labels (rows with a target)
    pred: np.ndarray | None   # int codes into labels
    proba: np.ndarray | None  # float64 (n, k)
    n_missing: int            # rows dropped because the target is missing


def _column(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind in "US":  # pandas factorizes object arrays much faster
        arr = arr.astype(object)
    return arr


def _encode(y_true, y_pred, proba, classes) -> _Encoded:
    classes_arr = np.asarray(classes)
    if classes_arr.ndim != 1 or len(classes_arr) == 0:
        raise ValueError("classes must be a non-empty 1-D sequence")
    index = pd.Index(classes_arr, dtype=object)
    if not index.is_unique:
        raise ValueError("classes must be unique")
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
        if not np.isfinite(pr).all():
            raise ValueError("proba contains NaN or infinite values")
    lengths = {len(a) for a in (yt, yp, pr) if a is not None}
    if len(lengths) > 1:
        raise ValueError(f"y_true, y_pred and proba have different lengths: {sorted(lengths)}")
    if yp is None and pr is None:
        raise ValueError("need y_pred or proba")
    if yp is None:  # what predict() returns: argmax of predict_proba
        yp = classes_arr[np.argmax(pr, axis=1)]
        if yp.dtype.kind in "US":
            yp = yp.astype(object)

    extras: list = []
    extra_index: dict = {}

    def codes_of(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(values)  # missing values -> -1
        mapping = index.get_indexer(pd.Index(uniques, dtype=object))
        unknown = np.flatnonzero(mapping < 0)
        if len(extras) + len(unknown) > MAX_UNKNOWN_LABELS:
            raise ValueError(f"more than {MAX_UNKNOWN_LABELS} distinct labels are not among the model's classes "
                             f"(e.g. {list(uniques[unknown[:5]])}); is this the right target column?")
        for i in unknown:
            key = uniques[i]
            if key not in extra_index:
                extra_index[key] = k + len(extras)
                extras.append(key)
            mapping[i] = extra_index[key]
        missing = codes < 0
        if not len(mapping):
            out = np.zeros(len(codes), np.intp)
        elif missing.any():
            out = mapping[np.where(missing, 0, codes)]
        else:
            out = mapping[codes]
        return out.astype(np.int64, copy=False), missing

    n_missing = 0
    ct = None
    if yt is not None:
        ct, missing = codes_of(yt)
        if missing.any():
            keep = ~missing
            n_missing = int(missing.sum())
            ct = ct[keep]
            yp = yp[keep]
            if pr is not None:
                pr = pr[keep]
    cp, pred_missing = codes_of(yp)
    if pred_missing.any():  # a missing prediction is its own (unknown) label
        key = None
        if key not in extra_index:
            extra_index[key] = k + len(extras)
            extras.append(key)
        cp[pred_missing] = extra_index[key]
    labels = [_label(c) for c in classes_arr] + [_label(e) for e in extras]
    return _Encoded(labels, k, ct, cp, pr, n_missing)


# ------------------------------------------------------------ label-based metrics


def _confusion(true: np.ndarray, pred: np.ndarray, n_labels: int) -> np.ndarray:
    return np.bincount(true * n_labels + pred, minlength=n_labels * n_labels).reshape(n_labels, n_labels)


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


def _sort_with_labels(score: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores ascending and the labels in the same order (order within ties is irrelevant)."""
    score = np.asarray(score, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    if len(score) and score.min() >= 0.0 and score.max() < 2.0:
        # Non-negative doubles below 2 order like their bit patterns, which stay
        # below 2**62: pack the label into the lowest bit and sort plain int64,
        # several times faster than argsort.
        key = (score + 0.0).view(np.int64) << 1  # + 0.0 turns -0.0 into 0.0
        key |= positive
        key.sort()
        return (key >> 1).view(np.float64), (key & 1).astype(bool)
    order = np.argsort(score, kind="stable")
    return score[order], positive[order]


class _Ranked:
    """One binary scoring problem, sorted once; everything else is O(#thresholds)."""

    def __init__(self, score: np.ndarray, positive: np.ndarray):
        self.asc, y_asc = _sort_with_labels(score, positive)
        n = self.n = len(self.asc)
        self.cum_pos = np.zeros(n + 1, dtype=np.int64)  # positives among the top i scores
        np.cumsum(y_asc[::-1], out=self.cum_pos[1:])
        self.p = int(self.cum_pos[-1])
        self.neg = n - self.p
        # tie groups start where the ascending scores change; in descending order the
        # last row of each group (sklearn's threshold_idxs) is n - 1 - start
        starts = np.flatnonzero(self.asc[1:] != self.asc[:-1])
        ends = np.empty(len(starts) + (1 if n else 0), dtype=np.int64)
        if n:
            ends[:-1] = starts[::-1]
            ends[:-1] *= -1
            ends[:-1] += n - 2
            ends[-1] = n - 1
        self.ends = ends
        self.tps = self.cum_pos[ends + 1]          # like sklearn confusion_matrix_at_thresholds
        self.fps = ends + 1 - self.tps
        self.thresholds = self.asc[n - 1 - ends]

    def count_ge(self, t) -> tuple[np.ndarray, np.ndarray]:
        """(rows, positives) with score >= t."""
        m = self.n - np.searchsorted(self.asc, t, side="left")
        return m, self.cum_pos[m]

    def count_le(self, t) -> tuple[np.ndarray, np.ndarray]:
        """(rows, positives) with score <= t."""
        m = np.searchsorted(self.asc, t, side="right")
        return m, self.p - self.cum_pos[self.n - m]

    def roc(self, drop_intermediate: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """sklearn's roc_curve (``drop_intermediate`` drops the same collinear points)."""
        fps, tps, thr = self.fps, self.tps, self.thresholds
        if drop_intermediate and len(fps) > 2:
            keep = np.concatenate([[True], (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), [True]])
            fps, tps, thr = fps[keep], tps[keep], thr[keep]
        fpr = np.concatenate([[0.0], fps / self.neg])
        tpr = np.concatenate([[0.0], tps / self.p])
        return fpr, tpr, np.concatenate([[np.inf], thr])

    def auc(self) -> float:
        """Trapezoidal area under the ROC curve, in exact integer arithmetic."""
        d_fps = np.diff(self.fps, prepend=0)
        d_tps = np.diff(self.tps, prepend=0)
        twice_area = 2 * int(np.dot(d_fps, self.tps)) - int(np.dot(d_fps, d_tps))
        return twice_area / (2 * self.p * self.neg)

    def pr(self, drop_intermediate: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """sklearn's precision_recall_curve: recall decreasing, ending with (recall 0,
        precision 1, no threshold); ``drop_intermediate`` drops the inner points of
        vertical runs (equal recall), as sklearn does."""
        fps, tps, thr = self.fps, self.tps, self.thresholds
        if drop_intermediate and len(fps) > 2:
            keep = np.concatenate([[True], (np.diff(tps[:-1]) != 0) | (np.diff(tps[1:]) != 0), [True]])
            fps, tps, thr = fps[keep], tps[keep], thr[keep]
        precision = tps / (tps + fps)
        recall = tps / self.p
        return (np.concatenate([precision[::-1], [1.0]]), np.concatenate([recall[::-1], [0.0]]),
                np.concatenate([thr[::-1], [np.nan]]))

    def average_precision(self) -> float:
        """sum_i (R_i - R_{i-1}) P_i over descending thresholds (sklearn's step integral)."""
        precision = self.tps / (self.ends + 1.0)
        return max(0.0, float(np.dot(np.diff(self.tps, prepend=0), precision)) / self.p)


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
    candidates = np.arange(n)
    fine = max(16 * max_points, 4096)
    if n > fine:
        path = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(x)) + np.abs(np.diff(y)))])
        positions = np.searchsorted(path, np.linspace(0.0, path[-1], fine // 2), side="left")
        positions = np.minimum(positions, n - 1)
        candidates = np.unique(np.concatenate([[0, n - 1], positions, np.maximum(positions - 1, 0)]))
    keep = _rdp_top(x[candidates], y[candidates], max_points)
    return candidates[keep]


def _curve_part(n_rows: int, max_points: int, xs: tuple[str, np.ndarray], ys: tuple[str, np.ndarray],
                thresholds: np.ndarray, **extra) -> dict:
    (xname, x), (yname, y) = xs, ys
    keep = _thin(x, y, max_points)
    return {"exact": len(keep) == len(x), "n": n_rows, "n_points_exact": len(x), "n_points": len(keep),
            **extra, xname: x[keep], yname: y[keep], "thresholds": thresholds[keep]}


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
    return np.bincount(_bin_index(np.clip(values, 0.0, 1.0), _edges(0.0, 1.0, SCORE_BINS)), minlength=SCORE_BINS)


# ---------------------------------------------------------- classification metrics


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
    enc = _encode(y_true, y_pred, proba, classes)
    n_labels = len(enc.labels)
    n = len(enc.true)
    k = enc.k
    out: dict[str, Any] = {
        "task": "binary" if k == 2 else "multiclass",
        "n": n,
        "n_missing_target": enc.n_missing,
        "n_unknown_label": int((enc.true >= k).sum()),
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
        return _jsonable(out, None)

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

    known = enc.true < k
    n_scored = int(known.sum())
    out["n_scored"] = n_scored
    if enc.proba is None:
        for name in ("roc_auc", "average_precision", "log_loss", "brier_score"):
            undefined[name] = "no class probabilities (the model has no predict_proba)"
        return _jsonable(out, None)
    if n_scored == 0:
        for name in ("roc_auc", "average_precision", "log_loss", "brier_score"):
            undefined[name] = "no row has a target label the model knows"
        return _jsonable(out, None)
    if n_scored < n:
        notes.append(f"{n - n_scored} rows with target labels unknown to the model are left out of "
                     "roc_auc, average_precision, log_loss and brier_score")
    true = enc.true[known] if n_scored < n else enc.true
    proba = enc.proba[known] if n_scored < n else enc.proba
    rows = np.arange(n_scored)
    p_true = proba[rows, true]

    if k >= 2:
        eps = _EPS64
        out["log_loss"] = float(-np.mean(np.log(np.clip(p_true, eps, 1 - eps))))
    else:
        undefined["log_loss"] = "the model has a single class"
    if k == 2:
        out["brier_score"] = float(np.mean((proba[:, 1] - (true == 1)) ** 2))
    else:
        out["brier_score"] = float(np.mean(np.einsum("ij,ij->i", proba, proba) - 2 * p_true + 1))

    if k == 2:
        positive = true == 1
        n_pos = int(positive.sum())
        ranked = _Ranked(proba[:, 1], positive) if 0 < n_pos else None
        if n_pos in (0, n_scored):
            undefined["roc_auc"] = f"only one class present in y_true ({enc.labels[int(true[0])]!r})"
        else:
            out["roc_auc"] = ranked.auc()
        if n_pos == 0:
            undefined["average_precision"] = f"no positive ({enc.labels[1]!r}) rows in y_true"
        else:
            out["average_precision"] = ranked.average_precision()
    else:
        aucs, aps, absent = [], [], []
        for row in per_class:
            row["roc_auc"] = row["average_precision"] = None
        for c in range(k):
            positive = true == c
            n_pos = int(positive.sum())
            if n_pos == 0:
                absent.append(enc.labels[c])
                continue
            ranked = _Ranked(proba[:, c], positive)
            per_class[c]["average_precision"] = ranked.average_precision()
            aps.append(per_class[c]["average_precision"])
            if n_pos < n_scored:
                per_class[c]["roc_auc"] = ranked.auc()
                aucs.append(per_class[c]["roc_auc"])
        if aucs:
            out["roc_auc"] = float(np.mean(aucs))
        else:
            undefined["roc_auc"] = "only one class present in y_true"
        if aps:
            out["average_precision"] = float(np.mean(aps))
        else:
            undefined["average_precision"] = "no class present in y_true"
        if absent:
            notes.append(f"classes absent from y_true are left out of the one-vs-rest macro roc_auc and "
                         f"average_precision (scikit-learn raises here): {absent}")
    return _jsonable(out, None)


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
    n = len(yt)
    names = ("mae", "rmse", "r2", "median_absolute_error", "mape", "mape_nonzero_target")
    out: dict[str, Any] = {"task": "regression", "n": n, "n_dropped": n_dropped,
                           "n_zero_target": int((yt == 0).sum())}
    out.update(dict.fromkeys(names))
    undefined: dict[str, str] = {}
    notes: list[str] = []
    out["undefined"] = undefined
    out["notes"] = notes
    if n == 0:
        undefined.update(dict.fromkeys(names, "no rows with a finite target and prediction"))
        return _jsonable(out, None)
    err = yt - yp
    abs_err = np.abs(err)
    out["mae"] = float(np.mean(abs_err))
    out["rmse"] = float(np.sqrt(np.mean(err * err)))
    out["median_absolute_error"] = float(np.median(abs_err))
    out["mape"] = float(np.mean(abs_err / np.maximum(np.abs(yt), _EPS64)))
    nonzero = yt != 0
    if nonzero.any():
        out["mape_nonzero_target"] = float(np.mean(abs_err[nonzero] / np.abs(yt[nonzero])))
    else:
        undefined["mape_nonzero_target"] = "every target is 0"
    if out["n_zero_target"]:
        notes.append(f"{out['n_zero_target']} rows have y_true == 0: sklearn's MAPE divides their error by "
                     "machine epsilon, which dominates 'mape'; see 'mape_nonzero_target'")
    if n < 2:
        undefined["r2"] = "R^2 needs at least two rows"
    else:
        ss_res = float(np.sum(err * err))
        ss_tot = float(np.sum((yt - yt.mean()) ** 2))
        if ss_tot == 0:
            out["r2"] = 1.0 if ss_res == 0 else 0.0
            notes.append("the target is constant: r2 is set to 1.0 (perfect) or 0.0 as scikit-learn does")
        else:
            out["r2"] = 1.0 - ss_res / ss_tot
    return _jsonable(out, None)


# ------------------------------------------------------- classification aggregates


def _shares_part(codes: np.ndarray, labels: list) -> dict:
    counts = np.bincount(codes, minlength=len(labels))
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
    gt_pos = ranked.cum_pos[gt]
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
        fpr, tpr, thr = ranked.roc(drop_intermediate=True)
        out["roc"] = _curve_part(n, max_points, ("fpr", fpr), ("tpr", tpr), thr,
                                 positive_label=labels[1], auc=float(np.trapezoid(tpr, fpr)))
    if ranked.p and ranked.neg:
        precision, recall, thr = ranked.pr(drop_intermediate=True)
        out["pr"] = _curve_part(n, max_points, ("recall", recall), ("precision", precision), thr,
                                positive_label=labels[1], average_precision=ranked.average_precision(),
                                prevalence=ranked.p / n)
    if ranked.p:
        # cumulative gain at each percent of rows taken by descending score; rows
        # tied on a score count pro rata (linear between tie-group boundaries)
        x = np.concatenate([[0.0], (ranked.tps + ranked.fps) / n])
        y = np.concatenate([[0.0], ranked.tps / ranked.p])
        fraction = GAIN_PERCENTS / 100.0
        gain = np.interp(fraction, x, y)
        out["gain_lift"] = {"exact": True, "n": n, "positive_label": labels[1], "positive_rate": ranked.p / n,
                            "percent": GAIN_PERCENTS, "gain": gain, "lift": gain / fraction}


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
    enc = _encode(y_true, y_pred, proba, classes)
    k = enc.k
    labels = enc.labels
    has_target = enc.true is not None
    n = len(enc.pred)
    out: dict[str, Any] = {"task": "binary" if k == 2 else "multiclass", "classes": labels[:k],
                           "has_target": has_target, "n": n, "n_missing_target": enc.n_missing,
                           "max_points": max_points, "unavailable": {}}
    unavailable = out["unavailable"]
    out["prediction_shares"] = _shares_part(enc.pred, labels)
    proba = enc.proba
    if proba is not None and (proba.min() < 0.0 or proba.max() > 1.0):  # copy only when needed
        proba = np.clip(proba, 0.0, 1.0)

    if has_target:
        cm = _confusion(enc.true, enc.pred, len(labels))
        out["confusion_matrix"] = {"exact": True, "n": n, "labels": labels, "rows": "true",
                                   "columns": "predicted", "matrix": cm}
        prf = _prf(cm)
        out["per_class"] = {"exact": True, "n": n, "labels": labels, "precision": prf["precision"],
                            "recall": prf["recall"], "f1": prf["f1"], "support": prf["support"]}
        known = enc.true < k
        n_scored = int(known.sum())
        out["n_unknown_label"] = n - n_scored
        true = enc.true if n_scored == n else enc.true[known]
        if proba is not None and n_scored < n:
            proba = proba[known]

    if proba is None:
        unavailable["probabilities"] = "no class probabilities (the model has no predict_proba)"
        return _jsonable(out)

    if k == 2:
        if not has_target:
            edges = _edges(0.0, 1.0, SCORE_BINS)
            out["score_histogram"] = {"exact": True, "n": n, "label": labels[1], "bin_edges": edges,
                                      "counts": _probability_histogram(proba[:, 1])}
        elif n_scored == 0:
            unavailable["curves"] = "no row has a target label the model knows"
        else:
            _binary_target_parts(out, _Ranked(proba[:, 1], true == 1), labels, max_points)
        return _jsonable(out)

    out["probability_histograms"] = {
        "exact": True, "n": len(proba), "bin_edges": _edges(0.0, 1.0, SCORE_BINS),
        "series": [{"label": labels[c], "counts": _probability_histogram(proba[:, c])} for c in range(k)]}
    if has_target:
        per_curve = max(50, max_points // k)
        curves, skipped = [], []
        for c in range(k):
            positive = true == c
            n_pos = int(positive.sum())
            if n_pos == 0 or n_pos == len(true):
                skipped.append(labels[c])
                continue
            ranked = _Ranked(proba[:, c], positive)
            fpr, tpr, thr = ranked.roc(drop_intermediate=True)
            curve = _curve_part(len(true), per_curve, ("fpr", fpr), ("tpr", tpr), thr,
                                label=labels[c], auc=float(np.trapezoid(tpr, fpr)))
            curves.append(curve)
        if curves:
            out["roc_ovr"] = {"exact": all(c["exact"] for c in curves), "n": len(true),
                              "max_points_per_class": per_curve, "curves": curves}
            for curve in curves:
                del curve["n"]
        if skipped:
            unavailable["roc_ovr"] = f"classes with no positive or no negative rows: {skipped}"
    return _jsonable(out)


# ----------------------------------------------------------- regression aggregates


class _Column:
    """One numeric column: its plot range and quantiles from a single sort, and cached bin indices."""

    def __init__(self, values: np.ndarray, quantiles: np.ndarray | None = None):
        self.values = values
        ordered = np.sort(values)  # SIMD sort: as fast as one np.quantile call
        self.quantiles = None if quantiles is None else self._quantile(ordered, quantiles)
        full_lo, full_hi = float(ordered[0]), float(ordered[-1])
        q_lo, q_hi = (float(q) for q in self._quantile(ordered, np.array([0.001, 0.999])))
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
        """(bin index of each value, inside mask or None when all are inside); cached."""
        key = (float(edges[0]), float(edges[-1]), len(edges))
        if key not in self._bins:
            v = self.values
            inside = (v >= edges[0]) & (v <= edges[-1])
            if inside.all():
                self._bins[key] = (_bin_index(v, edges), None)
            else:
                idx = np.zeros(len(v), dtype=np.intp)
                idx[inside] = _bin_index(v[inside], edges)
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
    if inside is None:
        counts, n_below, n_above = np.bincount(idx, minlength=bins), 0, 0
    else:
        counts = np.bincount(idx[inside], minlength=bins)
        n_below = int((col.values < edges[0]).sum())
        n_above = n - int(inside.sum()) - n_below
    return {"exact": True, "n": n, "bin_edges": edges, "counts": counts, "n_below": n_below, "n_above": n_above}


def _grid_part(x: _Column, y: _Column, x_edges: np.ndarray, y_edges: np.ndarray, names: tuple[str, str]) -> dict:
    grid_x, grid_y = len(x_edges) - 1, len(y_edges) - 1
    ix, x_in = x.bins(x_edges)
    iy, y_in = y.bins(y_edges)
    cells = iy * grid_x + ix
    inside = x_in if y_in is None else (y_in if x_in is None else x_in & y_in)
    if inside is not None:
        cells = cells[inside]
    counts = np.bincount(cells, minlength=grid_x * grid_y).reshape(grid_y, grid_x)
    n = len(x.values)
    return {"exact": False, "n": n, "kind": "grid", "x_name": names[0], "y_name": names[1],
            "x_edges": x_edges, "y_edges": y_edges, "counts": counts, "counts_index": "counts[y_bin][x_bin]",
            "n_outside": n - len(cells)}


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
    yt, yp, n_dropped = _regression_columns(y_true, y_pred)
    n = len(yp)
    out: dict[str, Any] = {"task": "regression", "has_target": yt is not None, "n": n, "n_dropped": n_dropped,
                           "residual_definition": "y_true - y_pred", "unavailable": {}}
    if n == 0:
        out["unavailable"]["plots"] = "no rows with a finite target and prediction"
        return _jsonable(out)
    decile_q = np.linspace(0.0, 1.0, DECILES + 1)
    pred = _Column(yp, decile_q if yt is not None else None)
    out["prediction_histogram"] = _column_hist_part(pred, grid)
    if yt is None:
        return _jsonable(out)
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
    edges = pred.quantiles
    decile = np.searchsorted(edges[1:-1], yp, side="right")
    count = np.bincount(decile, minlength=DECILES)
    abs_sum = np.bincount(decile, weights=np.abs(resid), minlength=DECILES)
    sum_ = np.bincount(decile, weights=resid, minlength=DECILES)
    sq_sum = np.bincount(decile, weights=resid * resid, minlength=DECILES)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty deciles -> NaN -> None
        out["error_by_decile"] = {
            "exact": True, "n": n, "decile": np.arange(1, DECILES + 1), "pred_from": edges[:-1],
            "pred_to": edges[1:], "count": count, "mean_abs_error": abs_sum / count,
            "mean_error": sum_ / count, "rmse": np.sqrt(sq_sum / count)}
    return _jsonable(out)
