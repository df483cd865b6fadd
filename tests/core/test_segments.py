"""Segment metrics merged from per-chunk counts equal scikit-learn's on the segment's rows; the
weak-segment finder finds a planted weak segment and keeps to its false-discovery rate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, precision_score, recall_score, \
    roc_auc_score

from tests.realistic import TARGET, loan_table
from viewer.core import segments
from viewer.core.datasets.ingestion import ingest
from viewer.core.segments import report

COLUMNS = ["amount", "income", "age", "region", "employment"]


def _plan(tmp_path, frame: pd.DataFrame, defined=()) -> tuple[dict, pa.Table]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    src = tmp_path / "data.csv"
    frame.to_csv(src, index=False)
    info = ingest(src, tmp_path / "data.parquet")
    planned = segments.plan([c.to_dict() for c in info.columns], skip={TARGET}, first=COLUMNS, defined=defined)
    return planned, pq.read_table(tmp_path / "data.parquet")


def _counts(planned, table, kind, y_true, y_pred, classes=None, score=None, chunks=3):
    """Counted chunk by chunk and merged, as a job does."""
    edges = np.linspace(0, table.num_rows, chunks + 1).astype(int)
    total = None
    for a, b in zip(edges, edges[1:]):
        part = segments.count(planned, table.slice(a, b - a), kind, y_true=None if y_true is None else y_true[a:b],
                              y_pred=y_pred[a:b], classes=classes, score=None if score is None else score[a:b],
                              start_row=a)
        total = part if total is None else total.merge(part)
    return total


def _rows_of(frame: pd.DataFrame, planned: dict, column: str, label: str) -> np.ndarray:
    spec = next(s for s in planned["columns"] if s["column"] == column)
    coded = segments.codes(spec, pa.array(frame[column], from_pandas=True))
    return coded == spec["labels"].index(label)


@pytest.fixture(scope="module")
def scored():
    loans = loan_table(6000, seed=21).drop(columns=["opened"])
    train = loans.iloc[:3000]
    X = train[["amount", "income", "age"]]
    model = HistGradientBoostingClassifier(max_iter=40, random_state=0).fit(X, train[TARGET])
    test = loans.iloc[3000:].reset_index(drop=True)
    proba = model.predict_proba(test[["amount", "income", "age"]])[:, 1]
    return test, model.classes_[(proba >= 0.5).astype(int)], proba


def test_classifier_segments_equal_scikit_learn_on_their_rows(tmp_path, scored):
    frame, predicted, proba = scored
    planned, table = _plan(tmp_path, frame)
    assert [c["column"] for c in planned["columns"]] == COLUMNS  # loan_id: an ID column, not segmented
    region = next(c for c in planned["columns"] if c["column"] == "region")
    assert region["labels"][-2:] == ["other", "missing"] and set(region["values"]) == {"north", "south", "east", "west"}
    counts = _counts(planned, table, "classifier", frame[TARGET].to_numpy(), predicted, [0, 1], proba)
    found = report.table(planned, counts, "classifier")
    y = frame[TARGET].to_numpy()
    assert found["overall"]["metric"] == pytest.approx(accuracy_score(y, predicted), abs=1e-12)
    checked = 0
    for entry in found["segments"]:
        rows = _rows_of(frame, planned, entry["column"], entry["label"])
        assert entry["rows"] == rows.sum()
        assert entry["metric"] == pytest.approx(accuracy_score(y[rows], predicted[rows]), abs=1e-12)
        assert entry["low"] <= entry["metric"] <= entry["high"]
        assert entry["precision"] == pytest.approx(precision_score(y[rows], predicted[rows], zero_division=0), abs=1e-12)
        assert entry["recall"] == pytest.approx(recall_score(y[rows], predicted[rows], zero_division=0), abs=1e-12)
        assert entry["f1"] == pytest.approx(f1_score(y[rows], predicted[rows], zero_division=0), abs=1e-12)
        if len(set(y[rows])) == 2:
            assert entry["roc_auc"] == pytest.approx(roc_auc_score(y[rows], proba[rows]), abs=1e-3)
            checked += 1
    assert checked >= 15
    gaps = [e["gap"] for e in found["segments"]]
    assert gaps == sorted(gaps, reverse=True)  # worst first


def test_regressor_segments_and_a_defined_segment(tmp_path):
    loans = loan_table(3000, seed=4).drop(columns=["opened"])
    truth = loans["income"].fillna(40000).to_numpy()
    predicted = truth + np.random.default_rng(0).normal(0, 3000, len(truth)) * (1 + (loans["age"] > 60))
    young_students = {"name": "young students", "conditions": [
        {"column": "age", "op": "<", "value": 30}, {"column": "employment", "op": "==", "value": "student"}]}
    planned, table = _plan(tmp_path, loans, defined=[young_students])
    counts = _counts(planned, table, "regressor", truth, predicted)
    found = report.table(planned, counts, "regressor")
    assert found["overall"]["metric"] == pytest.approx(mean_absolute_error(truth, predicted), rel=1e-12)
    defined = next(e for e in found["segments"] if e["label"] == "young students")
    rows = ((loans["age"] < 30) & (loans["employment"] == "student")).to_numpy()
    assert defined["column"] is None and defined["rows"] == rows.sum()
    assert defined["metric"] == pytest.approx(mean_absolute_error(truth[rows], predicted[rows]), rel=1e-12)
    worst = found["segments"][0]
    assert worst["column"] == "age" and worst["label"].startswith("≥")


def test_a_defined_segment_on_a_missing_column_is_refused():
    with pytest.raises(segments.SegmentError, match="names a column of the dataset"):
        segments.check_defined({"name": "x", "conditions": [{"column": "nope", "op": "==", "value": 1}]}, {"age"})
    with pytest.raises(segments.SegmentError, match="compares with a number"):
        segments.check_defined({"name": "x", "conditions": [{"column": "age", "op": "<", "value": "old"}]}, {"age"})


def _weak_run(tmp_path, seed: int, planted: bool):
    """Predictions that are wrong 15 % of the time independently of the inputs, except (when
    planted) in region south with age 60 or more, where they are wrong 45 % of the time."""
    rng = np.random.default_rng([seed, 1])  # not loan_table's stream: the errors must not follow its columns
    frame = loan_table(8000, seed=seed).drop(columns=["opened"])
    y = rng.integers(0, 2, len(frame))
    wrong_rate = np.full(len(frame), 0.15)
    if planted:
        wrong_rate[((frame["region"] == "south") & (frame["age"] >= 60)).to_numpy()] = 0.45
    predicted = np.where(rng.random(len(frame)) < wrong_rate, 1 - y, y)
    frame[TARGET] = y
    planned, table = _plan(tmp_path, frame)
    counts = _counts(planned, table, "classifier", y, predicted, [0, 1])
    chosen = report.pairs(planned, counts, "classifier")
    pair_counts = segments.count_pairs(planned, chosen, table, "classifier", y_true=y, y_pred=predicted,
                                       classes=[0, 1])
    return report.weak(planned, counts, "classifier", pair_counts)


def test_the_weak_segment_finder_finds_a_planted_weak_segment(tmp_path):
    found = _weak_run(tmp_path, 1, planted=True)
    assert found["found"], found
    best = found["found"][0]
    assert {c["column"] for c in best["conditions"]} == {"region", "age"}
    assert {c["label"] for c in best["conditions"] if c["column"] == "region"} == {"south"}
    assert best["metric"] < 0.7 and best["q"] <= report.FDR
    assert found["tested_pairs"] > 0


def test_over_20_seeds_with_no_weak_segment_it_reports_at_most_its_false_discovery_share(tmp_path):
    with_any = 0
    for seed in range(20):
        found = _weak_run(tmp_path / str(seed), 100 + seed, planted=False)
        with_any += bool(found["found"])
    assert with_any <= 0.05 * 20  # every report is false here: BH keeps P(any) at or below 5 %


def test_fairness_gaps_equal_fairlearn_s_for_one_column_and_for_intersections(tmp_path):
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    from viewer.core.segments.fairness import fairness

    rng = np.random.default_rng([7, 1])
    frame = loan_table(5000, seed=7).drop(columns=["opened"])
    frame["region"] = frame["region"].fillna("north")  # fairlearn takes no missing group
    score = 1 / (1 + np.exp(-(rng.normal(0, 1.5, len(frame)) + (frame["employment"] == "student") * 0.8)))
    y = (rng.random(len(frame)) < score * 0.9).astype(int)
    frame[TARGET] = y
    threshold = 0.4
    decided = (score >= threshold).astype(int)
    planned, table = _plan(tmp_path, frame)
    planned["threshold"] = threshold
    edges = [0, 2000, 5000]
    counts = None
    for a, b in zip(edges, edges[1:]):
        part = segments.count(planned, table.slice(a, b - a), "classifier", y_true=y[a:b], y_pred=decided[a:b],
                              classes=[0, 1], score=score[a:b], threshold=threshold, start_row=a)
        counts = part if counts is None else counts.merge(part)
    found = report.table(planned, counts, "classifier")
    groups = [e for e in found["segments"] if e["column"] == "employment"]
    result = fairness(groups)
    gaps = result["gaps"]
    sensitive = frame["employment"]
    assert gaps["demographic_parity_difference"]["value"] == pytest.approx(
        demographic_parity_difference(y, decided, sensitive_features=sensitive), abs=1e-12)
    assert gaps["equalized_odds_difference"]["value"] == pytest.approx(
        equalized_odds_difference(y, decided, sensitive_features=sensitive), abs=1e-12)
    low, high = gaps["demographic_parity_difference"]["low"], gaps["demographic_parity_difference"]["high"]
    assert low < gaps["demographic_parity_difference"]["value"] < high

    pairs = segments.joint_pairs(planned)
    region = [c["column"] for c in planned["columns"]].index("region")
    employment = [c["column"] for c in planned["columns"]].index("employment")
    assert (region, employment) in pairs
    joint = segments.count_joint(planned, [(region, employment)], table, y_true=y, y_pred=decided, classes=[0, 1],
                                 score=score, threshold=threshold)[(region, employment)]
    width = len(planned["columns"][employment]["labels"])
    cells = [{"label": f"{a} & {b}", "confusion": joint[i * width + j].tolist()}
             for i, a in enumerate(planned["columns"][region]["labels"])
             for j, b in enumerate(planned["columns"][employment]["labels"])]
    both = fairness(cells)["gaps"]
    sensitive = frame[["region", "employment"]]
    assert both["demographic_parity_difference"]["value"] == pytest.approx(
        demographic_parity_difference(y, decided, sensitive_features=sensitive), abs=1e-12)
    assert both["equalized_odds_difference"]["value"] == pytest.approx(
        equalized_odds_difference(y, decided, sensitive_features=sensitive), abs=1e-12)


def test_probabilities_of_exactly_0_and_1_land_in_the_end_bins(tmp_path):
    """A forest's scores are often exactly 0 or 1 (an infinite log-odds): its AUC is still sklearn's."""
    rng = np.random.default_rng([3, 1])
    frame = loan_table(3000, seed=3).drop(columns=["opened"])
    y = rng.integers(0, 2, len(frame))
    score = np.clip(np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.4, len(frame)), 0, 1)  # a third exactly 0 or 1
    assert ((score == 0) | (score == 1)).mean() > 0.2
    frame[TARGET] = y
    planned, table = _plan(tmp_path, frame)
    counts = _counts(planned, table, "classifier", y, (score >= 0.5).astype(int), [0, 1], score)
    found = report.table(planned, counts, "classifier")
    assert found["overall"]["roc_auc"] == pytest.approx(roc_auc_score(y, score), abs=1e-3)
