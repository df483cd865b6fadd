"""The probability half of a classification summary: each class's probability column is read and
ranked once (``_Ranked``) for both the ranking metrics (ROC AUC, average precision) and the plot
parts (ROC / PR curves, threshold table, calibration, score histograms, gain and lift, the
one-vs-rest curves of a multiclass model).
"""

from __future__ import annotations

import numpy as np

from .base import CALIBRATION_BINS, GAIN_PERCENTS, SCORE_BINS, THRESHOLDS, _edges, _probability_histogram
from .curves import _curve_part
from .encoding import ClassifierColumns
from .ranking import _Ranked, _out_of_unit, _trapezoid


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
