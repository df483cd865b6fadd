"""Classification metrics and plot aggregates in one pass (``classification_summary``), and the
two public functions over in-memory arrays built on it.

The labels are coded once (``encoding``); the label metrics and parts (accuracy, confusion
matrix, per-class precision/recall/F1, prediction shares) come from those codes, the probability
metrics and parts from ranking each class's probability column (``probability``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import base
from .base import _EPS64, _bincount, _jsonable
from .encoding import ClassifierColumns, _ArrayColumns, _classes_array, _Encoded, _LabelCoder
from .probability import _binary_problems, _multiclass_problems


# ------------------------------------------------------------ label-based metrics


def _confusion(true: np.ndarray, pred: np.ndarray, n_labels: int) -> np.ndarray:
    out = np.zeros(n_labels * n_labels, dtype=np.int64)
    for a, b in base._blocks(len(true)):
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
