"""Fairness per group of a sensitive column (or of two: their intersections), from the confusion
counts at the job's decision threshold (the saved one, else 0.5): each group's selection rate,
true and false positive rates, and the gaps between groups with the definitions of fairlearn
(``demographic_parity_difference``: the largest minus the smallest selection rate;
``equalized_odds_difference``: the larger of the same gap in true positive rates and in false
positive rates). Intervals: a parametric bootstrap from the counts (each group's positives and
negatives fixed, its decisions drawn again at its rates), ``REPLICATES`` times, seeded.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

REPLICATES = 2000
MIN_GROUP_ROWS = 1


def _rates(tp, fp, fn, tn):
    with np.errstate(invalid="ignore", divide="ignore"):
        n = tp + fp + fn + tn
        return (tp + fp) / n, tp / (tp + fn), fp / (fp + tn)


def _gaps(selection: np.ndarray, tpr: np.ndarray, fpr: np.ndarray) -> tuple[Any, Any]:
    """(demographic parity difference, equalized odds difference) over the last axis, ignoring
    groups where a rate is undefined (no positives, or no negatives)."""
    dpd = np.nanmax(selection, axis=-1) - np.nanmin(selection, axis=-1)
    eod = np.maximum(np.nanmax(tpr, axis=-1) - np.nanmin(tpr, axis=-1), np.nanmax(fpr, axis=-1) - np.nanmin(fpr, axis=-1))
    return dpd, eod


def fairness(groups: Sequence[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """``groups``: [{"label": ..., "confusion": [tp, fp, fn, tn], ...}] (groups with no rows are
    left out). Each group's rates, the two gaps, and their 95 % bootstrap intervals."""
    kept = [g for g in groups if g.get("confusion") and sum(g["confusion"]) >= MIN_GROUP_ROWS]
    if len(kept) < 2:
        return {"groups": [], "gaps": None, "note": "Fewer than two groups with labelled rows."}
    tp, fp, fn, tn = (np.array([g["confusion"][k] for g in kept], dtype=np.float64) for k in range(4))
    selection, tpr, fpr = _rates(tp, fp, fn, tn)
    with np.errstate(invalid="ignore"):
        dpd, eod = _gaps(selection, tpr, fpr)
    rng = np.random.default_rng(seed)
    positives, negatives = tp + fn, fp + tn
    with np.errstate(invalid="ignore", divide="ignore"):
        tp_b = rng.binomial(positives.astype(np.int64), np.nan_to_num(tpr), size=(REPLICATES, len(kept)))
        fp_b = rng.binomial(negatives.astype(np.int64), np.nan_to_num(fpr), size=(REPLICATES, len(kept)))
        sel_b, tpr_b, fpr_b = _rates(tp_b, fp_b, positives - tp_b, negatives - fp_b)
        tpr_b[:, positives == 0] = np.nan
        fpr_b[:, negatives == 0] = np.nan
        dpd_b, eod_b = _gaps(sel_b, tpr_b, fpr_b)
    rows = []
    for i, g in enumerate(kept):
        rows.append({"label": g["label"], "rows": int(tp[i] + fp[i] + fn[i] + tn[i]),
                     "selection_rate": _num(selection[i]), "true_positive_rate": _num(tpr[i]),
                     "false_positive_rate": _num(fpr[i]), "calibration": g.get("calibration")})
    return {"groups": rows, "gaps": {
        "demographic_parity_difference": _interval(dpd, dpd_b),
        "equalized_odds_difference": _interval(eod, eod_b)}, "replicates": REPLICATES}


def _num(value: float) -> float | None:
    return None if not np.isfinite(value) else float(value)


def _interval(value: float, replicates: np.ndarray) -> dict[str, float | None]:
    finite = replicates[np.isfinite(replicates)]
    if not np.isfinite(value) or not len(finite):
        return {"value": None, "low": None, "high": None}
    return {"value": float(value), "low": float(np.percentile(finite, 2.5)), "high": float(np.percentile(finite, 97.5))}
