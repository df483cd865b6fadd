"""viewer.core.scoring.summarize: the finalize step reads the output parts part by part and one
probability column at a time, and must give what the metric functions give on the whole columns."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from viewer.core import scoring
from viewer.core.metrics import (
    classification_aggregates,
    classification_metrics,
    regression_aggregates,
    regression_metrics,
)


def write(tmp_path, parts: list[dict]) -> None:
    """Output parts as score_frame makes them (row, prediction, proba_<class>..., target)."""
    start = 0
    for i, columns in enumerate(parts):
        n = len(columns["prediction"])
        table = pa.table({"row": np.arange(start, start + n), **{k: scoring._arrow(v) for k, v in columns.items()}})
        scoring.write_part(table, scoring.part_path(tmp_path, i))
        start += n


def classifier_parts(rng, sizes, classes, *, target=True):
    parts = []
    for n in sizes:
        y = rng.integers(0, len(classes), n)
        logits = rng.normal(size=(n, len(classes)))
        logits[np.arange(n), y] += 1.5
        proba = np.exp(logits)
        proba /= proba.sum(axis=1, keepdims=True)
        labels = np.asarray(classes, dtype=object if isinstance(classes[0], str) else None)
        columns = {"prediction": labels[proba.argmax(axis=1)]}
        columns.update({scoring.proba_column(c): proba[:, k] for k, c in enumerate(classes)})
        if target:
            columns["target"] = labels[y]
        parts.append(columns)
    return parts


def joined(parts, name):
    if name == "proba":
        return np.concatenate([np.column_stack([p[k] for k in p if k.startswith("proba_")]) for p in parts])
    return np.concatenate([np.asarray(p[name]) for p in parts])


def same(a, b) -> bool:
    return json.dumps(a, allow_nan=False) == json.dumps(b, allow_nan=False)


@pytest.mark.parametrize("classes", [[0, 1], ["cat", "dog", "eel", "fox", "gnu"]])
def test_classifier_summary_equals_the_functions_on_whole_columns(tmp_path, classes):
    rng = np.random.default_rng(1)
    parts = classifier_parts(rng, [3_000, 1, 2_500, 4_000], classes)
    if isinstance(classes[0], str):  # missing targets and a label the model does not know
        parts[0]["target"][:40] = None
        parts[2]["target"][100:130] = "yak"
    write(tmp_path, parts)
    y_true, y_pred, proba = joined(parts, "target"), joined(parts, "prediction"), joined(parts, "proba")
    summary = scoring.summarize(scoring.parts_in(tmp_path), "classifier", classes, True)
    assert same(summary["metrics"], classification_metrics(y_true, y_pred, proba, classes))
    assert same(summary["aggregates"], classification_aggregates(y_true, proba, y_pred, classes))
    assert summary["metrics"]["n"] + summary["metrics"]["n_missing_target"] == 9_501


def test_classifier_without_target_or_probabilities(tmp_path):
    rng = np.random.default_rng(2)
    classes = ["a", "b", "c"]
    parts = classifier_parts(rng, [2_000, 3_000], classes, target=False)
    write(tmp_path / "target-less", parts)
    summary = scoring.summarize(scoring.parts_in(tmp_path / "target-less"), "classifier", classes, False)
    assert summary["metrics"] is None
    y_pred, proba = joined(parts, "prediction"), joined(parts, "proba")
    assert same(summary["aggregates"], classification_aggregates(None, proba, y_pred, classes))

    parts = classifier_parts(rng, [2_000, 3_000], classes)
    for p in parts:
        for c in classes:
            del p[scoring.proba_column(c)]
    write(tmp_path / "no-proba", parts)
    summary = scoring.summarize(scoring.parts_in(tmp_path / "no-proba"), "classifier", classes, True)
    y_true, y_pred = joined(parts, "target"), joined(parts, "prediction")
    assert same(summary["metrics"], classification_metrics(y_true, y_pred, None, classes))
    assert summary["metrics"]["roc_auc"] is None and "predict_proba" in summary["metrics"]["undefined"]["roc_auc"]
    assert same(summary["aggregates"], classification_aggregates(y_true, None, y_pred, classes))


def test_integer_target_with_missing_values_in_some_parts(tmp_path):
    """Part 0 stores the target as int64, part 1 (which has a missing value) as float64: read
    whole, the column is float64, so the unknown label 7 is the float 7.0 in every part."""
    rng = np.random.default_rng(3)
    parts = classifier_parts(rng, [1_000, 1_000], [0, 1])
    parts[0]["target"] = parts[0]["target"].astype(np.int64)
    parts[0]["target"][:5] = 7
    parts[1]["target"] = parts[1]["target"].astype(np.float64)
    parts[1]["target"][:3] = np.nan
    write(tmp_path, parts)
    y_true = np.concatenate([parts[0]["target"].astype(np.float64), parts[1]["target"]])
    y_pred, proba = joined(parts, "prediction"), joined(parts, "proba")
    summary = scoring.summarize(scoring.parts_in(tmp_path), "classifier", [0, 1], True)
    assert same(summary["metrics"], classification_metrics(y_true, y_pred, proba, [0, 1]))
    assert same(summary["aggregates"], classification_aggregates(y_true, proba, y_pred, [0, 1]))
    labels = summary["aggregates"]["confusion_matrix"]["labels"]
    assert labels == [0, 1, 7.0] and type(labels[2]) is float
    assert summary["metrics"]["n_missing_target"] == 3 and summary["metrics"]["n_unknown_label"] == 5


def test_regressor_summary(tmp_path):
    rng = np.random.default_rng(4)
    parts = []
    for n, dtype in ((6_000, np.int64), (5_000, np.float64)):
        y = rng.integers(0, 100, n).astype(dtype)
        parts.append({"prediction": y + rng.normal(0, 3, n), "target": y})
    parts[1]["target"][:4] = np.nan
    write(tmp_path, parts)
    y_true = np.concatenate([p["target"].astype(np.float64) for p in parts])
    y_pred = joined(parts, "prediction")
    summary = scoring.summarize(scoring.parts_in(tmp_path), "regressor", None, True)
    assert same(summary["metrics"], regression_metrics(y_true, y_pred))
    assert same(summary["aggregates"], regression_aggregates(y_true, y_pred))
    assert summary["metrics"]["n_dropped"] == 4
    without = scoring.summarize(scoring.parts_in(tmp_path), "regressor", None, False)
    assert without["metrics"] is None and same(without["aggregates"], regression_aggregates(None, y_pred))


def test_casts_follow_whole_column_conversion():
    i8, f8, b, o = (np.dtype(t) for t in (np.int64, np.float64, bool, object))
    assert scoring._casts([i8, i8]) == [[i8], [i8]]
    assert scoring._casts([i8, f8, i8]) == [[i8, f8], [f8], [f8]]  # nulls in one part: floats everywhere
    assert scoring._casts([b, o]) == [[b, o], [o]]                    # bools with nulls: objects
    assert scoring._casts([i8, f8, o]) == [[i8, f8, o], [f8, o], [o]]


@pytest.mark.parametrize("values", [
    pa.array([1, 2]), pa.array([1, None]), pa.array([1, None], pa.uint8()), pa.array([1, 2], pa.int8()),
    pa.array(["a", None]), pa.array([True, False]), pa.array([True, None]), pa.array([1.0, None]),
    pa.array([None, None], pa.int64()), pa.array([], pa.int64()), pa.array([None, None])], ids=repr)
def test_part_dtype_from_the_footer_is_what_reading_gives(tmp_path, values):
    import pyarrow.parquet as pq

    path = tmp_path / "part.parquet"
    nested = pa.array([{"a": i, "b": [i, None]} for i in range(len(values))])  # leaves before the column
    pq.write_table(pa.table({"row": pa.array(range(len(values))), "kept": nested, "prediction": values}), path,
                   use_dictionary=["prediction"])
    read = pq.read_table(path, columns=["prediction"]).column(0).to_numpy(zero_copy_only=False).dtype
    assert scoring._numpy_dtype(path, "prediction") == read


def test_no_parts(tmp_path):
    with pytest.raises(FileNotFoundError):
        scoring.summarize(scoring.parts_in(tmp_path), "classifier", [0, 1], True)


def test_passthrough_columns_keep_their_stored_type_in_every_part(tmp_path):
    """An integer ID with a missing value in one row group stays an integer column in every part
    (to_frame would make that chunk float), so the parts concatenate into one table."""
    import pandas as pd
    import pyarrow.parquet as pq
    from sklearn.linear_model import LinearRegression

    from viewer.core.introspect import describe_model
    from viewer.core.predictor import Predictor

    X = pd.DataFrame({"a": np.arange(8, dtype=float), "b": np.arange(8, dtype=float) ** 2})
    model = LinearRegression().fit(X, X["a"] * 2)
    ids = pa.array([101, 102, None, 104, 105, 106, 107, 108], pa.int64())
    region = pa.array(["n", "s", "n", None, "e", "e", "n", "s"]).dictionary_encode()
    table = pa.table({"loan_id": ids, "region": region, "a": X["a"], "b": X["b"]})
    source = tmp_path / "data.parquet"
    pq.write_table(table, source, row_group_size=4)
    predictor = Predictor(model, describe_model(model).to_dict())
    out = tmp_path / "out"
    assert scoring.score_dataset(predictor, source, out, passthrough=["loan_id", "region"]) == 8
    parts = scoring.parts_in(out)
    assert len(parts) == 2
    joined = scoring.read_outputs(parts)
    assert joined.column_names == ["row", "loan_id", "region", "prediction"]
    assert joined.schema.field("loan_id").type == pa.int64() and joined.schema.field("region").type == pa.string()
    assert joined.column("loan_id").to_pylist() == ids.to_pylist()
    np.testing.assert_allclose(joined.column("prediction").to_numpy(), model.predict(X))
    assert scoring.is_output_name("proba_yes") and scoring.is_output_name("row") and not scoring.is_output_name("loan_id")
