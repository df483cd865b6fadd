"""viewer.core.compare: paired bootstrap CIs, the most-disagreeing rows, chunking independence."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.metrics import accuracy_score, log_loss, mean_absolute_error, roc_auc_score, root_mean_squared_error

from viewer.core import compare as C
from viewer.core.metrics import classification_metrics
from viewer.core.scoring import part_path, parts_in, proba_column, write_part

FAST = {"buckets": 4096, "resamples": 200}


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def run(task, rows, target, outputs, chunks=None, **kwargs) -> dict:
    """One Comparison fed in the given chunk boundaries (None: one chunk)."""
    comparison = C.Comparison(task, len(outputs), **kwargs)
    bounds = [0, len(rows)] if chunks is None else [0, *chunks, len(rows)]
    for a, b in zip(bounds[:-1], bounds[1:]):
        comparison.add(rows[a:b], None if target is None else target[a:b],
                       [C.ChunkOutput(pred[a:b], None if proba is None else proba[a:b]) for pred, proba in outputs])
    result = comparison.result()
    json.dumps(result, allow_nan=False)  # JSON-safe
    return result


def diff(result: dict, metric: str, a: int = 0, b: int = 1) -> dict:
    [entry] = [d for d in result["differences"] if d["metric"] == metric and (d["a"], d["b"]) == (a, b)]
    return entry


# ------------------------------------------------------------------------ synthetic problems


def binary_problem(n: int, seed: int, shift_a: float = 1.5, shift_b: float = 1.0):
    """Binormal scores: AUC = phi(shift / sqrt(2)) exactly, so the true difference is known."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    za = rng.normal(size=n) + shift_a * y
    zb = rng.normal(size=n) + shift_b * y
    pa_, pb_ = 1 / (1 + np.exp(-za + shift_a / 2)), 1 / (1 + np.exp(-zb + shift_b / 2))
    outputs = [((p >= 0.5).astype(int), np.column_stack([1 - p, p])) for p in (pa_, pb_)]
    truth = phi(shift_b / math.sqrt(2)) - phi(shift_a / math.sqrt(2))
    return np.arange(n), y, outputs, truth


def test_auc_ci_contains_the_true_difference_and_is_never_zero_width():
    rows, y, outputs, truth = binary_problem(20_000, seed=2)
    result = run("binary", rows, y, outputs, classes=[0, 1], has_proba=[True, True], **FAST)
    assert result["main_metric"] == "roc_auc"
    d = diff(result, "roc_auc")
    assert d["low"] < truth < d["high"], (d, truth)
    assert d["low"] < d["high"]
    # the point estimate is the exact AUC when the sample holds every row
    assert result["metrics"]["roc_auc"]["exact"]
    for j, (_pred, proba) in enumerate(outputs):
        assert result["metrics"]["roc_auc"]["estimate"][j] == pytest.approx(roc_auc_score(y, proba[:, 1]), abs=1e-12)
    # the interval has the width the normal theory predicts (DeLong-free check: the spread of
    # independent datasets' differences)
    spread = np.std([_auc_gap(seed) for seed in range(40)])
    assert (d["high"] - d["low"]) / (2 * 1.96) == pytest.approx(spread, rel=0.35)


def test_auc_ci_covers_the_true_gap_about_95_percent_of_the_time():
    covered = 0
    for seed in range(40):
        rows, y, outputs, truth = binary_problem(3000, seed=100 + seed)
        d = diff(run("binary", rows, y, outputs, classes=[0, 1], has_proba=[True, True], buckets=1024), "roc_auc")
        assert d["low"] < d["high"]
        covered += d["low"] <= truth <= d["high"]
    assert covered >= 34, covered  # 38 expected; 33 or fewer has probability < 2 %


def _auc_gap(seed: int) -> float:
    _rows, y, outputs, _truth = binary_problem(20_000, seed=1000 + seed)
    return roc_auc_score(y, outputs[1][1][:, 1]) - roc_auc_score(y, outputs[0][1][:, 1])


def test_accuracy_ci_covers_the_true_gap_about_95_percent_of_the_time():
    """Model A is right with probability 0.85, B with 0.80, independently: the true gap is -0.05.
    Over 60 independent datasets the 95 % interval must cover it nearly always (and never be a point)."""
    covered = 0
    for seed in range(60):
        rng = np.random.default_rng(seed)
        n = 3000
        y = rng.integers(0, 3, n)
        right_a, right_b = rng.random(n) < 0.85, rng.random(n) < 0.80
        wrong = (y + 1 + rng.integers(0, 2, n)) % 3
        outputs = [(np.where(right_a, y, wrong), None), (np.where(right_b, y, wrong), None)]
        result = run("multiclass", np.arange(n), y, outputs, classes=[0, 1, 2], buckets=1024)
        d = diff(result, "accuracy")
        assert d["low"] < d["high"]
        assert d["difference"] == pytest.approx(right_b.mean() - right_a.mean())
        covered += d["low"] <= -0.05 <= d["high"]
    assert covered >= 53, covered  # 95 % nominal: 57 expected; 53 or fewer has probability < 2 %


def test_regression_ci_contains_the_true_rmse_and_mae_gaps():
    rng = np.random.default_rng(7)
    n = 30_000
    y = rng.normal(size=n) * 10
    outputs = [(y + rng.normal(size=n), None), (y + 1.2 * rng.normal(size=n), None)]
    result = run("regression", np.arange(n), y, outputs, **FAST)
    assert result["main_metric"] == "rmse"
    rmse, mae = diff(result, "rmse"), diff(result, "mae")
    assert rmse["low"] < 0.2 < rmse["high"] and rmse["low"] > 0  # B is clearly worse
    assert mae["low"] < 0.2 * math.sqrt(2 / math.pi) < mae["high"]
    assert rmse["better"] == "lower"
    assert result["metrics"]["rmse"]["estimate"] == pytest.approx(
        [root_mean_squared_error(y, p) for p, _ in outputs], rel=1e-12)
    assert result["metrics"]["mae"]["estimate"] == pytest.approx(
        [mean_absolute_error(y, p) for p, _ in outputs], rel=1e-12)


def test_identical_models_have_a_zero_difference_and_no_verdict():
    rows, y, outputs, _ = binary_problem(2000, seed=3)
    result = run("binary", rows, y, [outputs[0], outputs[0]], classes=[0, 1], has_proba=[True, True], **FAST)
    for entry in result["differences"]:
        assert entry["difference"] == entry["low"] == entry["high"] == 0
    view = C.present(result, ["a", "b"], ["a", "b"])
    assert {d["verdict"] for d in view["differences"]} == {"unclear"}
    assert result["disagreement"]["n_label_differ"] == 0


# ---------------------------------------------------------------------------- metrics agree


def test_point_estimates_equal_the_jobs_metrics_with_string_labels_missing_and_unknown_targets():
    rng = np.random.default_rng(5)
    n = 3000
    classes = ["cat", "dog", "<script>"]
    proba = [rng.dirichlet([1, 1, 1], n) for _ in range(2)]
    preds = [np.array(classes, dtype=object)[p.argmax(axis=1)] for p in proba]
    target = np.array(classes, dtype=object)[rng.integers(0, 3, n)]
    target[::17] = None          # missing: left out
    target[5::23] = "bird"       # unknown to the models: wrong, and out of the probability metrics
    result = run("multiclass", np.arange(n), target, list(zip(preds, proba)), classes=classes,
                 has_proba=[True, True], **FAST)
    for j in range(2):
        expected = classification_metrics(target, preds[j], proba[j], classes)
        assert result["metrics"]["accuracy"]["estimate"][j] == pytest.approx(expected["accuracy"], rel=1e-12)
        assert result["metrics"]["log_loss"]["estimate"][j] == pytest.approx(expected["log_loss"], rel=1e-12)
    assert result["main_metric"] == "accuracy"  # multiclass: AUC is not the main metric


@pytest.mark.parametrize("ties", [False, True])
def test_weighted_auc_equals_sklearn(ties):
    rng = np.random.default_rng(11)
    score = rng.random(500)
    if ties:
        score = np.round(score, 1)
    y = rng.random(500) < score
    weights = rng.poisson(1.0, (5, 500)).astype(float)
    got = C.weighted_auc(score, y, weights)
    for w, value in zip(weights, got):
        assert value == pytest.approx(roc_auc_score(y, score, sample_weight=w), abs=1e-12)
    assert C.weighted_auc(score, y) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_the_auc_sample_is_bounded_and_uniform():
    rows, y, outputs, _ = binary_problem(30_000, seed=9)
    result = run("binary", rows, y, outputs, chunks=[7000, 15000, 22001], classes=[0, 1],
                 has_proba=[True, True], auc_sample=5000, **FAST)
    auc = result["metrics"]["roc_auc"]
    assert auc["sample"] == 5000 and not auc["exact"]
    for j, (_pred, proba) in enumerate(outputs):  # a uniform sample of 5,000 estimates the AUC closely
        assert auc["estimate"][j] == pytest.approx(roc_auc_score(y, proba[:, 1]), abs=0.02)
    again = run("binary", rows, y, outputs, chunks=[123], classes=[0, 1], has_proba=[True, True],
                auc_sample=5000, **FAST)
    assert again["metrics"]["roc_auc"] == auc and diff(again, "roc_auc") == diff(result, "roc_auc")


# ------------------------------------------------------------------- top-K vs brute force


def brute_top(frame: pd.DataFrame, k: int) -> list[int]:
    frame = frame[np.isfinite(frame["score"])]
    return frame.sort_values(["score", "row"], ascending=[False, True]).head(k)["row"].tolist()


def test_top_k_binary_equals_pandas_with_ties():
    rows, y, outputs, _ = binary_problem(5000, seed=2)
    outputs = [(pred, np.round(proba, 2)) for pred, proba in outputs]  # many ties
    result = run("binary", rows, y, outputs, chunks=[999, 2500, 2501, 4000], classes=[0, 1],
                 has_proba=[True, True], top_k=50, **FAST)
    top = result["disagreement"]["top"]
    frame = pd.DataFrame({"row": rows, "score": np.abs(outputs[0][1][:, 1] - outputs[1][1][:, 1])})
    assert [r["row"] for r in top] == brute_top(frame, 50)
    assert [r["score"] for r in top] == pytest.approx(frame.set_index("row").loc[[r["row"] for r in top], "score"])
    first = top[0]
    assert first["p"] == pytest.approx([outputs[0][1][first["row"], 1], outputs[1][1][first["row"], 1]])
    assert first["target"] == y[first["row"]] and first["predictions"] == [o[0][first["row"]] for o in outputs]
    differ = outputs[0][0] != outputs[1][0]
    assert result["disagreement"]["n_label_differ"] == int(differ.sum())
    pair = result["disagreement"]["pairs"][0]
    right_a, right_b = outputs[0][0] == y, outputs[1][0] == y
    assert (pair["only_a_right"], pair["only_b_right"]) == (int((right_a & ~right_b).sum()),
                                                             int((right_b & ~right_a).sum()))


def test_top_k_multiclass_three_models_true_class_spread_equals_pandas():
    rng = np.random.default_rng(4)
    n, classes = 4000, [0, 1, 2]
    y = rng.integers(0, 3, n)
    y_obj = y.astype(float)
    y_obj[::50] = np.nan  # no target: out of the ranking
    probas = [np.round(rng.dirichlet([1, 1, 1], n), 2) for _ in range(3)]
    outputs = [(p.argmax(axis=1), p) for p in probas]
    result = run("multiclass", np.arange(n), y_obj, outputs, chunks=[1000, 1001, 3333], classes=classes,
                 has_proba=[True] * 3, top_k=40, **FAST)
    safe = np.where(np.isnan(y_obj), 0, y_obj).astype(int)
    p_true = np.column_stack([p[np.arange(n), safe] for p in probas])
    score = np.where(np.isnan(y_obj), np.nan, p_true.max(axis=1) - p_true.min(axis=1))
    assert [r["row"] for r in result["disagreement"]["top"]] == brute_top(pd.DataFrame({"row": np.arange(n),
                                                                                        "score": score}), 40)
    preds = np.column_stack([o[0] for o in outputs])
    assert result["disagreement"]["n_label_differ"] == int((preds != preds[:, :1]).any(axis=1).sum())
    assert len(result["disagreement"]["pairs"]) == 3  # (0,1), (0,2), (1,2)


def test_top_k_without_probabilities_ranks_rows_whose_labels_differ_first():
    rng = np.random.default_rng(8)
    n = 3000
    labels = np.array(["a", "b"], dtype=object)
    outputs = [(labels[rng.integers(0, 2, n)], None), (labels[rng.integers(0, 2, n)], None)]
    result = run("binary", np.arange(n), None, outputs, chunks=[10, 2000], classes=["a", "b"], has_target=False,
                 top_k=25, **FAST)
    differ = outputs[0][0] != outputs[1][0]
    assert [r["row"] for r in result["disagreement"]["top"]] == np.flatnonzero(differ)[:25].tolist()
    assert result["differences"] == [] and result["main_metric"] is None


def test_top_k_regression_equals_pandas():
    rng = np.random.default_rng(6)
    n = 6000
    y = rng.normal(size=n)
    pa_, pb_ = np.round(y + rng.normal(size=n), 1), np.round(y + rng.normal(size=n), 1)
    pb_[17] = np.nan  # a non-finite prediction is never "the most different"
    result = run("regression", np.arange(n), y, [(pa_, None), (pb_, None)], chunks=[3000], top_k=30, **FAST)
    frame = pd.DataFrame({"row": np.arange(n), "score": np.abs(pa_ - pb_)})
    top = result["disagreement"]["top"]
    assert [r["row"] for r in top] == brute_top(frame, 30)
    assert top[0]["errors"] == pytest.approx([y[top[0]["row"]] - pa_[top[0]["row"]], y[top[0]["row"]] - pb_[top[0]["row"]]])
    ok = np.isfinite(pb_)
    assert result["disagreement"]["pairs"][0]["mean_abs_difference"] == pytest.approx(np.abs(pa_ - pb_)[ok].mean())


# ------------------------------------------------------------------ chunked equals one-shot


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_chunked_results_equal_one_shot(task):
    rng = np.random.default_rng(12)
    n = 5000
    if task == "regression":
        y = rng.normal(size=n)
        outputs = [(y + rng.normal(size=n), None) for _ in range(3)]
        kwargs = {}
    else:
        k = 2 if task == "binary" else 4
        y = rng.integers(0, k, n)
        probas = [rng.dirichlet(np.ones(k), n) for _ in range(3)]
        outputs = [(p.argmax(axis=1), p) for p in probas]
        kwargs = {"classes": list(range(k)), "has_proba": [True] * 3}
    one = run(task, np.arange(n), y, outputs, **kwargs, **FAST)
    cuts = sorted(rng.choice(np.arange(1, n), 25, replace=False).tolist())
    many = run(task, np.arange(n), y, outputs, chunks=cuts, **kwargs, **FAST)
    assert many["disagreement"]["top"] == one["disagreement"]["top"]
    for a, b in zip(many["disagreement"]["pairs"], one["disagreement"]["pairs"]):
        assert a == pytest.approx(b, rel=1e-12)
    assert many["metrics"].keys() == one["metrics"].keys()
    for a, b in zip(many["differences"], one["differences"]):  # sums in another order: equal to rounding
        assert a.keys() == b.keys()
        for key in a:
            if isinstance(a[key], float):
                assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key
            else:
                assert a[key] == b[key], key


# --------------------------------------------------------------------------- reading parts


def write_parts(directory, frame: pd.DataFrame, size: int) -> None:
    for index, start in enumerate(range(0, len(frame), size)):
        write_part(pa.Table.from_pandas(frame.iloc[start:start + size], preserve_index=False), part_path(directory, index))


def test_compare_outputs_aligns_parts_of_any_chunking_by_row(tmp_path):
    rows, y, outputs, _ = binary_problem(3000, seed=21)
    labels = np.array(["no", "yes"], dtype=object)
    frames = []
    for pred, proba in outputs:
        frames.append(pd.DataFrame({"row": rows, "prediction": labels[pred], proba_column("no"): proba[:, 0],
                                    proba_column("yes"): proba[:, 1], "target": labels[y]}))
    write_parts(tmp_path / "a", frames[0], 1000)
    write_parts(tmp_path / "b", frames[1], 700)   # cut differently: still aligned by row index
    sources = [C.Source(parts_in(tmp_path / "a")), C.Source(parts_in(tmp_path / "b"))]
    seen = []
    result = C.compare_outputs(sources, "binary", ["no", "yes"], True, progress=seen.append, **FAST)
    expected = run("binary", rows, labels[y], [(labels[p], q) for p, q in outputs], classes=["no", "yes"],
                   has_proba=[True, True], **FAST)
    assert result["disagreement"] == expected["disagreement"]
    assert result["metrics"]["accuracy"] == expected["metrics"]["accuracy"]
    assert result["metrics"]["accuracy"]["estimate"][0] == pytest.approx(accuracy_score(y, outputs[0][0]))
    assert result["metrics"]["log_loss"]["estimate"][1] == pytest.approx(log_loss(y, outputs[1][1]))
    assert seen == sorted(seen) and seen[-1] == 3000

    def stop(done):
        raise C.Cancelled()

    with pytest.raises(C.Cancelled):
        C.compare_outputs(sources, "binary", ["no", "yes"], True, progress=stop, **FAST)


def test_compare_outputs_refuses_outputs_that_do_not_match(tmp_path):
    rows, y, outputs, _ = binary_problem(1000, seed=22)
    frame = pd.DataFrame({"row": rows, "prediction": outputs[0][0], "target": y})
    write_parts(tmp_path / "a", frame, 500)
    write_parts(tmp_path / "short", frame.iloc[:800], 500)
    write_parts(tmp_path / "shifted", frame.assign(row=frame["row"] + 1), 500)
    with pytest.raises(ValueError, match="one ends early"):
        C.compare_outputs([C.Source(parts_in(tmp_path / "a")), C.Source(parts_in(tmp_path / "short"))], "binary", [0, 1], True)
    with pytest.raises(ValueError, match="same rows"):
        C.compare_outputs([C.Source(parts_in(tmp_path / "a")), C.Source(parts_in(tmp_path / "shifted"))], "binary", [0, 1], True)
    with pytest.raises(FileNotFoundError):
        C.compare_outputs([C.Source(parts_in(tmp_path / "a")), C.Source(parts_in(tmp_path / "gone"))], "binary", [0, 1], True)


# ------------------------------------------------------------------------------- presenting


def test_present_from_the_other_baseline_flips_signs_and_counts():
    rows, y, outputs, _ = binary_problem(4000, seed=13)
    result = run("binary", rows, y, outputs, classes=[0, 1], has_proba=[True, True], **FAST)
    forward = C.present(result, ["A", "B"], ["A", "B"])
    backward = C.present(result, ["A", "B"], ["B", "A"])
    for f, b in zip(forward["differences"], backward["differences"]):
        assert (f["job"], f["baseline"], b["job"], b["baseline"]) == ("B", "A", "A", "B")
        assert b["difference"] == pytest.approx(-f["difference"])
        assert (b["low"], b["high"]) == pytest.approx((-f["high"], -f["low"]))
        assert {f["verdict"], b["verdict"]} in ({"better", "worse"}, {"unclear"})
    assert forward["differences"][0]["metric"] == "roc_auc" and forward["differences"][0]["main"]
    assert forward["differences"][0]["verdict"] == "worse"  # B separates the classes less well
    fp, bp = forward["disagreement"]["pairs"][0], backward["disagreement"]["pairs"][0]
    assert (fp["only_baseline_right"], fp["only_job_right"]) == (bp["only_job_right"], bp["only_baseline_right"])
    top_f, top_b = forward["disagreement"]["top"][0], backward["disagreement"]["top"][0]
    assert top_b["p"] == top_f["p"][::-1] and top_b["predictions"] == top_f["predictions"][::-1]
    assert backward["metrics"]["roc_auc"]["estimate"] == forward["metrics"]["roc_auc"]["estimate"][::-1]
    with pytest.raises(ValueError):
        C.present(result, ["A", "B"], ["A", "C"])


def test_side_by_side_says_which_direction_is_better():
    rows = C.side_by_side([{"accuracy": 0.9, "log_loss": 0.30, "roc_auc": None},
                           {"accuracy": 0.8, "log_loss": 0.25, "roc_auc": 0.7},
                           {"accuracy": 0.9, "log_loss": 0.35}])
    by_key = {r["key"]: r for r in rows}
    assert by_key["accuracy"]["better"] == "higher" and by_key["log_loss"]["better"] == "lower"
    assert by_key["accuracy"]["differences"][0] is None
    assert by_key["accuracy"]["differences"][1:] == pytest.approx([-0.1, 0.0], abs=1e-12)
    assert by_key["accuracy"]["verdicts"] == [None, "worse", "same"]
    assert by_key["log_loss"]["verdicts"] == [None, "better", "worse"]
    assert by_key["roc_auc"]["verdicts"] == [None, None, None]  # the baseline has none: no difference
    assert [r["key"] for r in rows] == ["accuracy", "roc_auc", "log_loss"]


def test_poisson_weights_have_mean_and_variance_one():
    weights = C._poisson_weights(np.random.default_rng(0), (100, 20_000)).astype(float)
    assert weights.mean() == pytest.approx(1.0, abs=0.005) and weights.var() == pytest.approx(1.0, abs=0.01)
    assert np.bincount(weights.astype(int).ravel())[:4] / weights.size == pytest.approx(
        [math.exp(-1), math.exp(-1), math.exp(-1) / 2, math.exp(-1) / 6], abs=0.002)


def test_bad_arguments():
    with pytest.raises(ValueError):
        C.Comparison("binary", 1, classes=[0, 1])
    with pytest.raises(ValueError):
        C.Comparison("ranking", 2)
    with pytest.raises(ValueError):
        C.Comparison("binary", 2)
    comparison = C.Comparison("regression", 2, **FAST)
    with pytest.raises(ValueError):
        comparison.add([0, 1], [1.0, 2.0], [C.ChunkOutput([1.0, 2.0])])


# ------------------------------------------------------------- one model on two datasets


def run_datasets(task, jobs, chunk: int | None = None, **kwargs) -> dict:
    """A DatasetComparison fed each job's (rows, target, prediction, proba) in chunks of ``chunk``."""
    comparison = C.DatasetComparison(task, **kwargs)
    for which, (rows, target, pred, proba) in enumerate(jobs):
        step = chunk or len(rows)
        for a in range(0, len(rows), step):
            comparison.add(which, rows[a:a + step], target[a:a + step],
                           C.ChunkOutput(pred[a:a + step], None if proba is None else proba[a:a + step]))
    result = comparison.result()
    json.dumps(result, allow_nan=False)
    return result


def shifted_binary(n: int, seed: int, shift: float):
    """One dataset of binormal scores: AUC = phi(shift / sqrt(2)) exactly."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + shift * y) + shift / 2))
    return np.arange(n), y, (p >= 0.5).astype(int), np.column_stack([1 - p, p])


def test_datasets_auc_ci_covers_the_true_difference_about_95_percent_of_the_time():
    """January: shift 1.5, February: shift 1.0 (the model separates the classes less well); the true
    AUC difference is known. Over 40 pairs of independent datasets (of different sizes) the
    independent-bootstrap 95 % interval must cover it about 95 % of the time."""
    truth = phi(1.0 / math.sqrt(2)) - phi(1.5 / math.sqrt(2))
    covered = 0
    for seed in range(40):
        jan, feb = shifted_binary(2000, 300 + seed, 1.5), shifted_binary(1500, 900 + seed, 1.0)
        result = run_datasets("binary", [jan, feb], classes=[0, 1], has_proba=[True, True], buckets=1024)
        assert result["resamples"] == 1000  # 200 undercover here (92 % in a longer simulation)
        assert result["mode"] == "datasets" and result["disagreement"] is None
        d = diff(result, "roc_auc")
        assert d["low"] < d["difference"] < d["high"]
        covered += d["low"] <= truth <= d["high"]
    assert covered >= 34, covered  # 38 expected; 33 or fewer has probability < 2 %


def test_datasets_accuracy_ci_covers_the_true_difference_about_95_percent_of_the_time():
    """Right with probability 0.85 in January, 0.80 in February: the true gap is -0.05."""
    covered = 0
    for seed in range(60):
        jobs = []
        for k, (n, p_right) in enumerate(((2500, 0.85), (2000, 0.80))):
            rng = np.random.default_rng([seed, k])
            y = rng.integers(0, 3, n)
            wrong = (y + 1 + rng.integers(0, 2, n)) % 3
            jobs.append((np.arange(n), y, np.where(rng.random(n) < p_right, y, wrong), None))
        result = run_datasets("multiclass", jobs, classes=[0, 1, 2], buckets=1024)
        d = diff(result, "accuracy")
        assert d["difference"] == pytest.approx((jobs[1][2] == jobs[1][1]).mean() - (jobs[0][2] == jobs[0][1]).mean())
        covered += d["low"] <= -0.05 <= d["high"]
    assert covered >= 53, covered  # 57 expected; 53 or fewer has probability < 2 %


def test_datasets_estimates_equal_sklearn_on_each_dataset_whatever_the_chunking():
    jan, feb = shifted_binary(3000, 1, 1.5), shifted_binary(2000, 2, 0.8)
    labels = np.array(["stay", "churn"], dtype=object)
    jobs = [(rows, labels[y], labels[pred], proba) for rows, y, pred, proba in (jan, feb)]
    one = run_datasets("binary", jobs, classes=["stay", "churn"], has_proba=[True, True], **FAST)
    chunked = run_datasets("binary", jobs, chunk=333, classes=["stay", "churn"], has_proba=[True, True], **FAST)
    assert one == chunked
    for j, (_rows, y, pred, proba) in enumerate((jan, feb)):
        assert one["metrics"]["roc_auc"]["estimate"][j] == pytest.approx(roc_auc_score(y, proba[:, 1]), abs=1e-12)
        assert one["metrics"]["accuracy"]["estimate"][j] == pytest.approx(accuracy_score(y, pred))
        assert one["metrics"]["log_loss"]["estimate"][j] == pytest.approx(log_loss(y, proba))
    assert one["n_rows_each"] == [3000, 2000] and one["metrics"]["roc_auc"]["exact"]
    d = diff(one, "roc_auc")
    assert d["high"] < 0  # February is clearly worse
    seen = C.present(one, ["jan", "feb"], ["feb", "jan"])  # February as the baseline: signs flip
    [back] = [x for x in seen["differences"] if x["metric"] == "roc_auc"]
    assert back["low"] == pytest.approx(-d["high"]) and back["verdict"] == "better" and back["main"]
    assert seen["n_rows_each"] == [2000, 3000] and seen["disagreement"] is None
    assert "not the same rows" in seen["no_disagreement"]


def test_datasets_regression_and_two_jobs_only(tmp_path):
    rng = np.random.default_rng(5)
    jobs = []
    for k, noise in enumerate((1.0, 2.0)):
        n = 4000
        y = rng.normal(size=n) * 3
        jobs.append((np.arange(n), y, y + rng.normal(scale=noise, size=n), None))
    result = run_datasets("regression", jobs, **FAST)
    d = diff(result, "rmse")
    assert d["low"] > 0 and result["main_metric"] == "rmse"
    assert result["metrics"]["rmse"]["estimate"][1] == pytest.approx(root_mean_squared_error(jobs[1][1], jobs[1][2]))
    assert result["metrics"]["mae"]["estimate"][0] == pytest.approx(mean_absolute_error(jobs[0][1], jobs[0][2]))
    with pytest.raises(ValueError):
        C.DatasetComparison("regression", has_proba=[False, False, False])
    # streamed from part files, one job after the other
    for k, (rows, y, pred, _) in enumerate(jobs):
        write_parts(tmp_path / str(k), pd.DataFrame({"row": rows, "prediction": pred, "target": y}), 900 + 300 * k)
    sources = [C.Source(parts_in(tmp_path / "0")), C.Source(parts_in(tmp_path / "1"))]
    seen = []
    streamed = C.compare_datasets(sources, "regression", None, True, progress=seen.append, **FAST)
    assert streamed == result and seen[-1] == 8000 and seen == sorted(seen)
    with pytest.raises(ValueError):
        C.compare_datasets(sources[:1], "regression", None, True, **FAST)
