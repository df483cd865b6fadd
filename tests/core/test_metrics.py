"""viewer.core.metrics: equality with scikit-learn, thinning fidelity, JSON safety, size and speed."""

from __future__ import annotations

import json
import math
import time
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve

from viewer.core import metrics as M
from viewer.core.metrics import (
    classification_aggregates,
    classification_metrics,
    regression_aggregates,
    regression_metrics,
)


def sk(fn, *args, **kwargs):
    """A scikit-learn reference value, without its UndefinedMetricWarnings (warnings are errors here)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


def dumps(obj) -> str:
    return json.dumps(obj, allow_nan=False)


def assert_plain_json(obj, path="$"):
    """Only dict/list/str/int/float/bool/None, no NaN/inf, no numpy scalars."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            assert type(key) is str, path
            assert_plain_json(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            assert_plain_json(value, f"{path}[{i}]")
    else:
        assert obj is None or type(obj) in (str, int, float, bool), f"{path}: {type(obj)}"
        if type(obj) is float:
            assert math.isfinite(obj), path
    return obj


def close(a, b, rtol=1e-5, atol=1e-8) -> bool:
    return bool(np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=rtol, atol=atol))


def binary_problem(n: int, seed: int = 0, prevalence: float = 0.3):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < prevalence
    score = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + 1.6 * y - 0.9)))
    return y, score


def multiclass_problem(n: int, seed: int = 1, classes=("cat", "dog", "eel")):
    rng = np.random.default_rng(seed)
    k = len(classes)
    y_idx = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k)) + 1.2 * np.eye(k)[y_idx]
    proba = np.exp(logits)
    proba /= proba.sum(axis=1, keepdims=True)
    labels = np.array(classes, dtype=object)
    return labels[y_idx], proba, labels[proba.argmax(axis=1)]


# ------------------------------------------------------------------ classification metrics


@pytest.mark.parametrize("labels", [(0, 1), ("no", "yes")])
@pytest.mark.parametrize("ties", [False, True])
def test_binary_metrics_equal_sklearn(labels, ties):
    y, score = binary_problem(20_000, seed=3)
    if ties:
        score = np.round(score, 2)
    classes = np.array(labels)
    y_true = classes[y.astype(int)]
    proba = np.column_stack([1 - score, score])
    y_pred = classes[(score > 0.5).astype(int)]
    m = assert_plain_json(classification_metrics(y_true, y_pred, proba, list(labels)))
    dumps(m)
    pos = labels[1]
    assert m["task"] == "binary" and m["positive_label"] == pos and m["n"] == 20_000
    assert close(m["accuracy"], skm.accuracy_score(y_true, y_pred))
    assert close(m["balanced_accuracy"], skm.balanced_accuracy_score(y_true, y_pred))
    assert close(m["precision_macro"], skm.precision_score(y_true, y_pred, average="macro"))
    assert close(m["recall_macro"], skm.recall_score(y_true, y_pred, average="macro"))
    assert close(m["f1_macro"], skm.f1_score(y_true, y_pred, average="macro"))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=list(labels))
    assert [row["label"] for row in m["per_class"]] == list(labels)
    assert close([row["precision"] for row in m["per_class"]], p)
    assert close([row["recall"] for row in m["per_class"]], r)
    assert close([row["f1"] for row in m["per_class"]], f)
    assert [row["support"] for row in m["per_class"]] == s.tolist()
    assert close(m["roc_auc"], skm.roc_auc_score(y_true == pos, score))
    assert close(m["average_precision"], skm.average_precision_score(y_true, score, pos_label=pos))
    assert close(m["log_loss"], skm.log_loss(y_true, proba, labels=list(labels)))
    assert close(m["brier_score"], skm.brier_score_loss(y_true, score, pos_label=pos))
    assert m["undefined"] == {} and m["notes"] == []


def test_multiclass_string_labels_equal_sklearn():
    classes = ["cat", "dog", "eel"]
    y_true, proba, y_pred = multiclass_problem(30_000)
    m = assert_plain_json(classification_metrics(y_true, y_pred, proba, classes))
    dumps(m)
    assert m["task"] == "multiclass" and m["classes"] == classes
    assert close(m["accuracy"], skm.accuracy_score(y_true, y_pred))
    assert close(m["balanced_accuracy"], skm.balanced_accuracy_score(y_true, y_pred))
    for key in ("precision", "recall", "f1"):
        fn = getattr(skm, f"{key}_score")
        assert close(m[f"{key}_macro"], fn(y_true, y_pred, average="macro"))
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes)
    assert close([row["f1"] for row in m["per_class"]], f)
    assert [row["support"] for row in m["per_class"]] == s.tolist()
    assert close(m["roc_auc"], skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes))
    assert close([row["roc_auc"] for row in m["per_class"]],
                 skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes, average=None))
    assert close(m["average_precision"], skm.average_precision_score(y_true, proba, average="macro"))
    assert close(m["log_loss"], skm.log_loss(y_true, proba, labels=classes))
    # multiclass Brier: mean over rows of sum_k (p_k - 1[y=k])^2, sklearn's multiclass brier_score_loss
    assert close(m["brier_score"], skm.brier_score_loss(y_true, proba, labels=classes))


def test_class_unseen_in_target():
    classes = ["cat", "dog", "eel"]
    y_true, proba, y_pred = multiclass_problem(5_000)
    keep = y_true != "eel"  # the model knows "eel", the data has none
    y_true, proba, y_pred = y_true[keep], proba[keep], y_pred[keep]
    m = assert_plain_json(classification_metrics(y_true, y_pred, proba, classes))
    # sklearn's default label set: labels present in y_true or y_pred
    assert close(m["f1_macro"], sk(skm.f1_score, y_true, y_pred, average="macro"))
    assert close(m["precision_macro"], sk(skm.precision_score, y_true, y_pred, average="macro"))
    assert close(m["balanced_accuracy"], sk(skm.balanced_accuracy_score, y_true, y_pred))
    eel = m["per_class"][2]
    assert eel["support"] == 0 and eel["recall"] == 0.0 and eel["roc_auc"] is None
    # sklearn refuses multiclass OvR AUC here; we average over the classes where it is defined
    per = [skm.roc_auc_score(y_true == c, proba[:, i]) for i, c in enumerate(classes[:2])]
    assert close(m["roc_auc"], np.mean(per))
    assert any("absent" in note for note in m["notes"])
    assert close(m["log_loss"], skm.log_loss(y_true, proba, labels=classes))


def test_target_labels_unknown_to_model():
    classes = ["cat", "dog", "eel"]
    y_true, proba, y_pred = multiclass_problem(5_000)
    y_true = y_true.copy()
    y_true[:250] = "fox"
    m = assert_plain_json(classification_metrics(y_true, y_pred, proba, classes))
    assert m["n_unknown_label"] == 250 and m["n_scored"] == 4_750
    assert [row["label"] for row in m["per_class"]] == classes + ["fox"]
    assert m["per_class"][3]["known"] is False and m["per_class"][3]["support"] == 250
    assert close(m["accuracy"], skm.accuracy_score(y_true, y_pred))
    assert close(m["balanced_accuracy"], sk(skm.balanced_accuracy_score, y_true, y_pred))
    assert close(m["f1_macro"], sk(skm.f1_score, y_true, y_pred, average="macro"))
    known = y_true != "fox"
    assert close(m["log_loss"], skm.log_loss(y_true[known], proba[known], labels=classes))
    assert close(m["roc_auc"], skm.roc_auc_score(y_true[known], proba[known], multi_class="ovr", labels=classes))
    assert m["notes"]
    agg = assert_plain_json(classification_aggregates(y_true, proba, y_pred, classes))
    cm = agg["confusion_matrix"]
    assert cm["labels"] == classes + ["fox"]
    assert cm["matrix"] == skm.confusion_matrix(y_true, y_pred, labels=classes + ["fox"]).tolist()
    assert agg["n_unknown_label"] == 250 and agg["roc_ovr"]["n"] == 4_750


def test_missing_targets_are_dropped():
    y, score = binary_problem(1_000, seed=5)
    y_true = y.astype(float)
    y_true[:10] = np.nan
    proba = np.column_stack([1 - score, score])
    m = classification_metrics(y_true, (score > 0.5).astype(int), proba, [0, 1])
    assert m["n"] == 990 and m["n_missing_target"] == 10
    assert close(m["roc_auc"], skm.roc_auc_score(y[10:], score[10:]))
    agg = classification_aggregates(y_true, proba, None, [0, 1])
    assert agg["n"] == 990 and agg["roc"]["n"] == 990


@pytest.mark.parametrize("present", [0, 1])
def test_single_class_in_target(present):
    rng = np.random.default_rng(7)
    score = rng.random(500)
    proba = np.column_stack([1 - score, score])
    y_true = np.full(500, ["neg", "pos"][present], dtype=object)
    y_pred = np.where(score > 0.5, "pos", "neg").astype(object)
    m = assert_plain_json(classification_metrics(y_true, y_pred, proba, ["neg", "pos"]))
    dumps(m)
    assert m["roc_auc"] is None and "one class" in m["undefined"]["roc_auc"]
    assert close(m["accuracy"], skm.accuracy_score(y_true, y_pred))
    assert close(m["log_loss"], skm.log_loss(y_true, proba, labels=["neg", "pos"]))
    assert close(m["brier_score"], skm.brier_score_loss(y_true, score, pos_label="pos"))
    if present:  # all positive: AP is defined (1.0)
        assert close(m["average_precision"], skm.average_precision_score(y_true, score, pos_label="pos"))
    else:
        assert m["average_precision"] is None and m["undefined"]["average_precision"]
    agg = assert_plain_json(classification_aggregates(y_true, proba, y_pred, ["neg", "pos"]))
    dumps(agg)
    assert "roc" not in agg and "pr" not in agg and agg["unavailable"]["roc"]
    table = agg["threshold_table"]
    assert table["tp"][0] + table["fp"][0] + table["tn"][0] + table["fn"][0] == 500


def test_single_class_multiclass_target():
    classes = ["cat", "dog", "eel"]
    _, proba, y_pred = multiclass_problem(300)
    y_true = np.full(300, "dog", dtype=object)
    m = assert_plain_json(classification_metrics(y_true, y_pred, proba, classes))
    dumps(m)
    assert m["roc_auc"] is None and m["undefined"]["roc_auc"]
    assert close(m["average_precision"], skm.average_precision_score(y_true == "dog", proba[:, 1]))
    agg = assert_plain_json(classification_aggregates(y_true, proba, y_pred, classes))
    assert "roc_ovr" not in agg and agg["unavailable"]["roc_ovr"]


def test_perfect_classifier():
    y, _ = binary_problem(10_000, seed=11)
    score = np.where(y, 0.9, 0.1) + np.random.default_rng(0).uniform(-0.05, 0.05, y.size)
    proba = np.column_stack([1 - score, score])
    m = classification_metrics(y.astype(int), y.astype(int), proba, [0, 1])
    assert m["accuracy"] == 1.0 and m["roc_auc"] == 1.0 and m["average_precision"] == 1.0
    agg = classification_aggregates(y.astype(int), proba, y.astype(int), [0, 1], max_points=50)
    roc = agg["roc"]
    assert roc["auc"] == 1.0 and len(roc["fpr"]) <= 50
    assert [0.0, 1.0] in [[f, t] for f, t in zip(roc["fpr"], roc["tpr"])]  # the corner survives thinning
    assert agg["gain_lift"]["gain"][29] == 1.0 or agg["gain_lift"]["gain"][30] == 1.0


def test_constant_predictions():
    y, _ = binary_problem(2_000, seed=13)
    proba = np.full((2_000, 2), 0.5)
    m = classification_metrics(y.astype(int), np.zeros(2_000, int), proba, [0, 1])
    assert m["roc_auc"] == 0.5
    assert close(m["average_precision"], skm.average_precision_score(y, proba[:, 1]))
    agg = assert_plain_json(classification_aggregates(y.astype(int), proba, None, [0, 1]))
    roc = agg["roc"]
    assert roc["exact"] and roc["fpr"] == [0.0, 1.0] and roc["tpr"] == [0.0, 1.0]
    assert roc["thresholds"] == [None, 0.5]  # the first threshold is +inf in sklearn
    assert close(agg["gain_lift"]["gain"], np.arange(1, 101) / 100)  # ties count pro rata
    assert close(agg["gain_lift"]["lift"], 1.0)
    table = agg["threshold_table"]
    i50, i51 = table["thresholds"].index(0.5), table["thresholds"].index(0.51)
    assert table["tp"][i50] + table["fp"][i50] == 2_000 and table["tp"][i51] + table["fp"][i51] == 0
    assert agg["prediction_shares"]["counts"] == [2_000, 0]


def test_model_without_probabilities():
    classes = ["cat", "dog", "eel"]
    y_true, _, y_pred = multiclass_problem(1_000)
    m = classification_metrics(y_true, y_pred, None, classes)
    assert m["roc_auc"] is None and m["log_loss"] is None and "predict_proba" in m["undefined"]["log_loss"]
    agg = assert_plain_json(classification_aggregates(y_true, None, y_pred, classes))
    assert "confusion_matrix" in agg and "roc_ovr" not in agg and agg["unavailable"]["probabilities"]


def test_label_types_are_matched_by_value():
    # a target read back as floats (0.0/1.0) or bools still matches integer classes
    y, score = binary_problem(1_000, seed=17)
    proba = np.column_stack([1 - score, score])
    expected = classification_metrics(y.astype(int), None, proba, [0, 1])
    for y_true in (y.astype(float), y, y.astype(int).astype(object)):
        m = classification_metrics(y_true, None, proba, np.array([0, 1]))
        assert m["n_unknown_label"] == 0 and m["roc_auc"] == expected["roc_auc"]
        assert m["accuracy"] == expected["accuracy"] == skm.accuracy_score(y, score > 0.5)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="right target column"):  # e.g. a regression column as target
        classification_metrics(np.arange(1_000) + 0.5, np.zeros(1_000, int), None, [0, 1])
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0, 1], np.ones((2, 3)) / 3, [0, 1])
    with pytest.raises(ValueError):
        classification_metrics([0, 1], [0, 1], np.array([[0.5, np.nan], [0.5, 0.5]]), [0, 1])
    with pytest.raises(ValueError):
        classification_metrics([0, 1, 1], [0, 1], None, [0, 1])


# ------------------------------------------------------------------ 1,000,000-row binary problem


@pytest.fixture(scope="module")
def big():
    n = 1_000_000
    y, score = binary_problem(n, seed=42)
    proba = np.column_stack([1 - score, score])
    y_pred = (score > 0.5).astype(np.int64)
    start = time.perf_counter()
    agg = classification_aggregates(y.astype(np.int64), proba, y_pred, [0, 1])
    seconds = time.perf_counter() - start
    return {"y": y, "score": score, "proba": proba, "y_pred": y_pred, "agg": agg, "seconds": seconds}


def test_big_aggregates_fast_small_and_json_safe(big):
    agg = assert_plain_json(big["agg"])
    size = len(dumps(agg))
    print(f"\n1M-row binary aggregates: {big['seconds']:.2f} s, {size / 1024:.1f} KiB JSON")
    assert big["seconds"] < 4.0  # ~0.4 s on a 2-core box; generous for loaded CI
    assert size < 200_000
    for part in ("roc", "pr", "threshold_table", "calibration", "score_histograms", "gain_lift",
                 "confusion_matrix", "per_class", "prediction_shares"):
        assert agg[part]["n"] == 1_000_000 and isinstance(agg[part]["exact"], bool), part
    assert agg["roc"]["exact"] is False and agg["threshold_table"]["exact"] is True


def test_big_roc_thinned_keeps_shape(big):
    y, score, roc = big["y"], big["score"], big["agg"]["roc"]
    fpr, tpr = np.array(roc["fpr"]), np.array(roc["tpr"])
    assert roc["n_points"] == len(fpr) <= 500 < roc["n_points_exact"]
    exact_fpr, exact_tpr, exact_thr = skm.roc_curve(y, score, drop_intermediate=False)
    assert roc["n_points_exact"] == len(skm.roc_curve(y, score)[0])  # sklearn's default drop_intermediate
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert roc["thresholds"][0] is None and close(roc["thresholds"][-1], exact_thr[-1])
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    grid = np.concatenate([np.linspace(0, 1, 2001), np.random.default_rng(0).random(2000)])
    deviation = np.abs(np.interp(grid, fpr, tpr) - np.interp(grid, exact_fpr, exact_tpr))
    assert deviation.max() < 0.005, deviation.max()
    auc = skm.roc_auc_score(y, score)
    assert abs(np.trapezoid(tpr, fpr) - auc) < 1e-3
    assert close(roc["auc"], auc)


def test_big_pr_thinned_keeps_shape(big):
    y, score, pr = big["y"], big["score"], big["agg"]["pr"]
    precision, recall = np.array(pr["precision"]), np.array(pr["recall"])
    exact_p, exact_r, _ = skm.precision_recall_curve(y, score)
    assert len(recall) <= 500 < pr["n_points_exact"]
    assert pr["n_points_exact"] == len(skm.precision_recall_curve(y, score, drop_intermediate=True)[0])
    assert (recall[0], recall[-1], precision[-1]) == (1.0, 0.0, 1.0)
    assert close(precision[0], exact_p[0])
    assert close(pr["average_precision"], skm.average_precision_score(y, score))
    # precision at recall, away from the noisy start of the curve
    grid = np.linspace(0.02, 1.0, 2000)
    deviation = np.abs(np.interp(grid, recall[::-1], precision[::-1]) - np.interp(grid, exact_r[::-1], exact_p[::-1]))
    assert deviation.max() < 0.005, deviation.max()


def test_thinning_bounds_every_vertex():
    """_thin keeps exact vertices and every dropped vertex stays close to its chord."""
    rng = np.random.default_rng(9)
    y = rng.random(400_000) < 0.1
    score = rng.normal(size=y.size) + 1.0 * y
    for x_curve, y_curve in (skm.roc_curve(y, score, drop_intermediate=False)[:2],
                             skm.precision_recall_curve(y, score)[1::-1]):
        keep = M._thin(x_curve, y_curve, 300)
        assert len(keep) <= 300 and keep[0] == 0 and keep[-1] == len(x_curve) - 1
        seg = np.searchsorted(keep, np.arange(len(x_curve)), side="right") - 1
        seg = np.minimum(seg, len(keep) - 2)
        a, b = keep[seg], keep[seg + 1]
        ax, ay, bx, by = x_curve[a], y_curve[a], x_curve[b], y_curve[b]
        dx, dy = bx - ax, by - ay
        t = np.clip(((x_curve - ax) * dx + (y_curve - ay) * dy) / np.maximum(dx * dx + dy * dy, 1e-300), 0, 1)
        dist = np.hypot(x_curve - ax - t * dx, y_curve - ay - t * dy)
        assert dist.max() < 0.01, dist.max()


def test_big_threshold_table_equals_confusion_matrix(big):
    y, score, table = big["y"], big["score"], big["agg"]["threshold_table"]
    assert table["thresholds"][0] == 0.0 and table["thresholds"][-1] == 1.0 and len(table["thresholds"]) == 101
    for t in (0.0, 0.01, 0.1, 0.25, 0.37, 0.5, 0.73, 0.99, 1.0):
        i = table["thresholds"].index(t)
        tn, fp, fn, tp = skm.confusion_matrix(y, score >= t, labels=[False, True]).ravel()
        assert [table["tn"][i], table["fp"][i], table["fn"][i], table["tp"][i]] == [tn, fp, fn, tp], t


def test_big_calibration_histograms_and_gain(big):
    y, score, agg = big["y"], big["score"], big["agg"]
    cal = agg["calibration"]
    prob_true, prob_pred = calibration_curve(y, score, n_bins=10)
    assert close(cal["prob_true"], prob_true) and close(cal["prob_pred"], prob_pred)
    binids = np.searchsorted(np.linspace(0, 1, 11)[1:-1], score)
    assert cal["count"] == np.bincount(binids, minlength=10)[cal["bin"]].tolist()
    hist = agg["score_histograms"]
    assert [s["label"] for s in hist["series"]] == [0, 1]
    for series, mask in zip(hist["series"], (~y, y)):
        assert series["counts"] == np.histogram(score[mask], bins=50, range=(0, 1))[0].tolist()
    order = np.argsort(-score)
    cum = np.cumsum(y[order])
    cut = np.arange(1, 101) * len(y) // 100
    naive = cum[cut - 1] / y.sum()
    gl = agg["gain_lift"]
    assert close(gl["gain"], naive) and close(gl["lift"], naive / (np.arange(1, 101) / 100))
    shares = agg["prediction_shares"]
    assert shares["counts"] == np.bincount(big["y_pred"], minlength=2).tolist()


def test_big_metrics_equal_sklearn(big):
    y, score, proba = big["y"], big["score"], big["proba"]
    m = classification_metrics(y.astype(np.int64), big["y_pred"], proba, [0, 1])
    assert close(m["roc_auc"], skm.roc_auc_score(y, score))
    assert close(m["average_precision"], skm.average_precision_score(y, score))
    assert close(m["log_loss"], skm.log_loss(y, proba))


# ------------------------------------------------------------------ multiclass and no-target aggregates


def test_multiclass_aggregates():
    classes = ["cat", "dog", "eel"]
    y_true, proba, y_pred = multiclass_problem(200_000)
    agg = assert_plain_json(classification_aggregates(y_true, proba, y_pred, classes, max_points=300))
    assert len(dumps(agg)) < 200_000
    assert agg["task"] == "multiclass" and agg["has_target"]
    cm = agg["confusion_matrix"]
    assert cm["labels"] == classes and cm["matrix"] == skm.confusion_matrix(y_true, y_pred, labels=classes).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(y_true, y_pred, labels=classes)
    assert close(agg["per_class"]["f1"], f) and agg["per_class"]["support"] == s.tolist()
    roc = agg["roc_ovr"]
    assert roc["n"] == 200_000 and roc["max_points_per_class"] == 100 and not roc["exact"]
    for i, curve in enumerate(roc["curves"]):
        assert curve["label"] == classes[i] and len(curve["fpr"]) <= 100
        truth = y_true == classes[i]
        assert close(curve["auc"], skm.roc_auc_score(truth, proba[:, i]))
        assert abs(np.trapezoid(curve["tpr"], curve["fpr"]) - curve["auc"]) < 2e-3
    hists = agg["probability_histograms"]
    assert [h["label"] for h in hists["series"]] == classes
    assert hists["series"][2]["counts"] == np.histogram(proba[:, 2], bins=50, range=(0, 1))[0].tolist()


def test_aggregates_without_target():
    y, score = binary_problem(50_000, seed=21)
    proba = np.column_stack([1 - score, score])
    agg = assert_plain_json(classification_aggregates(None, proba, (score > 0.5).astype(int), [0, 1]))
    assert not agg["has_target"] and "roc" not in agg and "confusion_matrix" not in agg
    hist = agg["score_histogram"]
    assert hist["exact"] and hist["n"] == 50_000 and hist["label"] == 1
    assert hist["counts"] == np.histogram(score, bins=50, range=(0, 1))[0].tolist()
    assert sum(agg["prediction_shares"]["counts"]) == 50_000 and close(sum(agg["prediction_shares"]["shares"]), 1)

    classes = ["cat", "dog", "eel"]
    _, proba3, y_pred3 = multiclass_problem(10_000)
    agg3 = assert_plain_json(classification_aggregates(None, proba3, y_pred3, classes))
    assert len(agg3["probability_histograms"]["series"]) == 3
    assert agg3["prediction_shares"]["labels"] == classes
    assert agg3["prediction_shares"]["counts"] == [int((y_pred3 == c).sum()) for c in classes]

    reg = assert_plain_json(regression_aggregates(None, np.linspace(0, 1, 1_000)))
    assert set(reg) >= {"prediction_histogram"} and "predicted_vs_actual" not in reg
    assert sum(reg["prediction_histogram"]["counts"]) == 1_000


# ------------------------------------------------------------------ regression


def regression_problem(n, seed=0):
    rng = np.random.default_rng(seed)
    y_true = rng.gamma(2.0, 10.0, n)
    y_pred = y_true + rng.normal(0, 3.0, n)
    return y_true, y_pred


def test_regression_metrics_equal_sklearn():
    y_true, y_pred = regression_problem(10_000)
    y_true[:5] = 0.0  # MAPE: sklearn divides by machine epsilon there
    m = assert_plain_json(regression_metrics(y_true, y_pred))
    dumps(m)
    assert m["n"] == 10_000 and m["n_zero_target"] == 5
    assert close(m["mae"], skm.mean_absolute_error(y_true, y_pred))
    assert close(m["rmse"], skm.root_mean_squared_error(y_true, y_pred))
    assert close(m["r2"], skm.r2_score(y_true, y_pred))
    assert close(m["median_absolute_error"], skm.median_absolute_error(y_true, y_pred))
    assert close(m["mape"], skm.mean_absolute_percentage_error(y_true, y_pred))
    assert m["mape"] > 1e12 and m["notes"]
    nz = y_true != 0
    assert close(m["mape_nonzero_target"], skm.mean_absolute_percentage_error(y_true[nz], y_pred[nz]))


def test_regression_metrics_edge_cases():
    m = regression_metrics([3.0, 3.0, 3.0], [3.0, 3.0, 3.0])
    assert m["r2"] == sk(skm.r2_score, [3.0, 3.0, 3.0], [3.0, 3.0, 3.0]) == 1.0
    m = regression_metrics([3.0, 3.0, 3.0], [2.0, 3.0, 4.0])
    assert m["r2"] == sk(skm.r2_score, [3.0, 3.0, 3.0], [2.0, 3.0, 4.0]) == 0.0
    m = assert_plain_json(regression_metrics([1.0], [2.0]))
    assert m["r2"] is None and m["undefined"]["r2"] and m["mae"] == 1.0
    m = regression_metrics([1.0, np.nan, 2.0, 4.0], [1.5, 2.0, np.inf, 3.0])
    assert m["n"] == 2 and m["n_dropped"] == 2 and m["mae"] == 0.75
    m = assert_plain_json(regression_metrics([np.nan], [1.0]))
    assert m["n"] == 0 and m["mae"] is None
    dumps(m)


@pytest.mark.parametrize("n, kind", [(5_000, "points"), (5_001, "grid")])
def test_regression_grid_switch(n, kind):
    y_true, y_pred = regression_problem(n, seed=2)
    agg = assert_plain_json(regression_aggregates(y_true, y_pred))
    size = len(dumps(agg))
    assert size < 200_000, size
    for part in ("predicted_vs_actual", "residuals_vs_predicted"):
        p = agg[part]
        assert p["kind"] == kind and p["exact"] is (kind == "points") and p["n"] == n
        if kind == "points":
            assert len(p["x"]) == len(p["y"]) == n
        else:
            counts = np.array(p["counts"])
            assert counts.shape == (60, 60) and len(p["x_edges"]) == len(p["y_edges"]) == 61
            assert counts.sum() + p["n_outside"] == n
    pva = agg["predicted_vs_actual"]
    if kind == "points":
        assert close(pva["x"], y_true, rtol=5e-4) and close(pva["y"], y_pred, rtol=5e-4)  # 4 significant digits
        assert close(agg["residuals_vs_predicted"]["y"], y_true - y_pred, rtol=5e-4)
    else:
        assert pva["x_edges"] == pva["y_edges"]  # shared range: y = x is the diagonal
        edges = np.array(pva["x_edges"])
        inside = (y_true >= edges[0]) & (y_true <= edges[-1]) & (y_pred >= edges[0]) & (y_pred <= edges[-1])
        expected, _, _ = np.histogram2d(y_pred[inside], y_true[inside], bins=[edges, edges])
        assert np.abs(np.array(pva["counts"]) - expected).sum() <= 4  # edges are rounded to 6 digits in JSON
    hist = agg["residual_histogram"]
    assert sum(hist["counts"]) + hist["n_below"] + hist["n_above"] == n
    dec = agg["error_by_decile"]
    assert sum(dec["count"]) == n and len(dec["count"]) == 10
    cut = np.quantile(y_pred, np.linspace(0, 1, 11))
    first = y_pred < cut[1]  # deciles are [from, to), the last one closed
    resid = y_true - y_pred
    assert dec["count"][0] == first.sum()
    assert close(dec["mean_abs_error"][0], np.abs(resid[first]).mean())
    assert close(dec["mean_error"][0], resid[first].mean())


def test_regression_large_and_outliers():
    y_true, y_pred = regression_problem(1_000_000, seed=4)
    y_pred[:3] = 1e12  # outliers must not squash the grid
    start = time.perf_counter()
    agg = assert_plain_json(regression_aggregates(y_true, y_pred))
    seconds = time.perf_counter() - start
    size = len(dumps(agg))
    print(f"\n1M-row regression aggregates: {seconds:.2f} s, {size / 1024:.1f} KiB JSON")
    assert seconds < 4.0 and size < 200_000
    pva = agg["predicted_vs_actual"]
    assert pva["x_edges"][-1] < 1e4 and pva["n_outside"] >= 3
    assert agg["prediction_histogram"]["n_above"] >= 3


def test_regression_constant_prediction():
    y_true, _ = regression_problem(20_000, seed=6)
    agg = assert_plain_json(regression_aggregates(y_true, np.full(20_000, 7.0)))
    dumps(agg)
    dec = agg["error_by_decile"]
    assert sum(dec["count"]) == 20_000 and dec["mean_abs_error"].count(None) == 9
    assert sum(agg["prediction_histogram"]["counts"]) == 20_000


def test_jsonable_rounds_and_sanitises():
    out = M._jsonable({"a": np.float32(1.23456789), "b": [np.nan, np.inf, -0.0, np.int64(3)],
                       "c": np.array([True, False]), 4: np.str_("x")})
    assert out == {"a": 1.23457, "b": [None, None, 0.0, 3], "c": [True, False], "4": "x"}
    dumps(out)


# ------------------------------------------------------------------ one pass for both dicts, block by block


class BlockColumns:
    """A ClassifierColumns handing out the arrays in blocks of ``size`` rows, as the finalize
    step's reader does part by part."""

    def __init__(self, y_true, y_pred, proba, size=7_777):
        self.y_true, self.y_pred, self.proba, self.size = y_true, y_pred, proba, size
        self.n = len(y_pred if y_pred is not None else proba)
        self.has_target, self.has_proba = y_true is not None, proba is not None

    def blocks(self):
        for a in range(0, self.n, self.size):
            b = a + self.size
            yield (None if self.y_true is None else self.y_true[a:b], None if self.y_pred is None else self.y_pred[a:b],
                   None if self.proba is None else np.ascontiguousarray(self.proba[a:b]))

    def proba_column(self, c, rows):
        return self.proba[:, c].copy() if rows is None else self.proba[rows, c]


def messy_multiclass(n, seed):
    """Missing targets, target labels the model does not know, missing predictions, ties."""
    classes = ["cat", "dog", "eel"]
    y_true, proba, y_pred = multiclass_problem(n, seed=seed, classes=classes)
    proba = np.round(proba, 3)
    y_true, y_pred = y_true.copy(), y_pred.copy()
    rng = np.random.default_rng(seed)
    y_true[rng.random(n) < 0.05] = None
    y_true[rng.random(n) < 0.02] = "fox"
    y_pred[rng.random(n) < 0.01] = None
    return classes, y_true, proba, y_pred


@pytest.mark.parametrize("case", ["binary", "binary-ties-missing", "multiclass", "multiclass-messy", "no-target"])
def test_summary_equals_the_separate_functions(case):
    if case.startswith("binary"):
        y, score = binary_problem(30_000, seed=31)
        if case == "binary-ties-missing":
            score = np.round(score, 2)
        classes = ["no", "yes"]
        y_true = np.array(classes, dtype=object)[y.astype(int)]
        if case == "binary-ties-missing":
            y_true[::50] = None
        proba = np.column_stack([1 - score, score])
        y_pred = np.where(score > 0.5, "yes", "no").astype(object)
    elif case == "multiclass-messy":
        classes, y_true, proba, y_pred = messy_multiclass(30_000, seed=32)
    else:
        classes = ["cat", "dog", "eel"]
        y_true, proba, y_pred = multiclass_problem(30_000, seed=33)
        if case == "no-target":
            y_true = None
    metrics, agg = M.classification_summary(BlockColumns(y_true, y_pred, proba), classes,
                                            with_metrics=y_true is not None, max_points=300)
    assert agg == classification_aggregates(y_true, proba, y_pred, classes, max_points=300)
    if y_true is None:
        assert metrics is None
    else:
        assert metrics == classification_metrics(y_true, y_pred, proba, classes)
        assert dumps(metrics) == dumps(classification_metrics(y_true, y_pred, proba, classes))


def test_results_do_not_depend_on_the_block_size(monkeypatch):
    """Every blockwise pass (codes, confusion matrix, ranking, curves, thinning, histograms,
    regression bins and deciles) gives exactly what one block gives."""
    classes, y_true, proba, y_pred = messy_multiclass(20_000, seed=41)
    y, score = binary_problem(20_000, seed=42)
    score = np.round(score, 3)  # ties: tie groups cross block boundaries
    y_reg, p_reg = regression_problem(20_000, seed=43)
    p_reg[:5] = 1e9

    def run():
        return dumps([classification_metrics(y_true, y_pred, proba, classes),
                      classification_aggregates(y_true, proba, None, classes),
                      classification_metrics(y.astype(int), None, np.column_stack([1 - score, score]), [0, 1]),
                      classification_aggregates(y.astype(int), score, None, [0, 1], max_points=50),
                      regression_metrics(y_reg, p_reg), regression_aggregates(y_reg, p_reg)])

    whole = run()
    for size in (997, 4096):
        monkeypatch.setattr(M.base, "_blocks", lambda n, size=size: ((a, min(a + size, n)) for a in range(0, n, size)))
        assert run() == whole


def test_exact_curves_with_ties_equal_sklearn():
    y, score = binary_problem(20_000, seed=51)
    score = np.round(score, 2)
    agg = classification_aggregates(y.astype(int), score, None, [0, 1], max_points=10_000)
    roc, pr = agg["roc"], agg["pr"]
    fpr, tpr, thr = skm.roc_curve(y, score)
    assert roc["exact"] and roc["n_points"] == len(fpr)
    assert close(roc["fpr"], fpr) and close(roc["tpr"], tpr) and close(roc["thresholds"][1:], thr[1:])
    precision, recall, thr = skm.precision_recall_curve(y, score, drop_intermediate=True)
    assert pr["exact"] and pr["n_points"] == len(precision)
    assert close(pr["precision"], precision) and close(pr["recall"], recall)
    assert close(pr["thresholds"][:-1], thr) and pr["thresholds"][-1] is None


def test_ranking_outside_unit_interval():
    """Scores outside [0, 1] are ranked as they are for the metrics and clipped for the plots."""
    y, score = binary_problem(5_000, seed=61)
    score = score * 1.4 - 0.2
    proba = np.column_stack([1 - score, score])
    metrics, agg = M.classification_summary(BlockColumns(y.astype(int), None, proba), [0, 1])
    assert close(metrics["roc_auc"], skm.roc_auc_score(y, score))
    assert close(metrics["average_precision"], skm.average_precision_score(y, score))
    assert close(agg["roc"]["auc"], skm.roc_auc_score(y, np.clip(score, 0, 1)))
    assert agg == classification_aggregates(y.astype(int), proba, None, [0, 1])


def test_summary_memory_per_row(monkeypatch):
    """The binary summary of 1M rows allocates about 32 bytes a row on top of its input at its
    peak (sorted scores 8, positive counts 4, average precision's two float arrays 16, codes),
    where each of the separate functions took about 105. Blocks of 65,536 rows keep the block-sized
    temporaries as small a share of 1M rows as 1M-row blocks are of 10M rows
    (bench/finalise_memory.py measures 10M in a fresh process)."""
    import tracemalloc

    monkeypatch.setattr(M.base, "_blocks", lambda n, size=65_536: ((a, min(a + size, n)) for a in range(0, n, size)))
    n = 1_000_000
    y, score = binary_problem(n, seed=71)
    proba = np.column_stack([1 - score, score])
    y_pred = (score > 0.5).astype(np.int64)
    columns = BlockColumns(y.astype(np.int64), y_pred, proba, size=100_000)
    tracemalloc.start()
    try:
        M.classification_summary(columns, [0, 1])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\n1M-row binary summary: traced peak {peak / n:.1f} bytes a row")
    assert peak < 40 * n, peak / n
