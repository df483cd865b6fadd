"""Payload parsing, schema validation and the predict path, without a server."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from viewer.core.introspect import describe_model
from viewer.core.predict import PayloadError, Predictor, Table, parse_csv, parse_mlflow, to_jsonable


def body(obj) -> bytes:
    return json.dumps(obj).encode()


@pytest.fixture(scope="module")
def iris_frame():
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    return X, data.target


@pytest.fixture(scope="module")
def named_lr(iris_frame):
    X, y = iris_frame
    model = LogisticRegression(max_iter=500).fit(X, y)
    return model, Predictor(model, describe_model(model).to_dict())


@pytest.fixture(scope="module")
def mixed_pipeline():
    frame = pd.DataFrame({"age": [20, 30, 40, 50, 60, 70] * 5, "city": ["a", "b", "c"] * 10,
                          "income": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0] * 5})
    y = [0, 1] * 15
    pre = ColumnTransformer([("num", make_pipeline(SimpleImputer(), StandardScaler()), ["age", "income"]),
                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"])])
    model = make_pipeline(pre, LogisticRegression()).fit(frame, y)
    return model, frame, Predictor(model, describe_model(model).to_dict())


ALL_SHAPES = [
    lambda X: {"dataframe_split": {"columns": list(X.columns), "data": X.values.tolist()}},
    lambda X: {"dataframe_split": X.to_dict(orient="split")},
    lambda X: {"dataframe_records": X.to_dict(orient="records")},
    lambda X: {"instances": X.to_dict(orient="records")},
    lambda X: {"inputs": X.to_dict(orient="list")},
    lambda X: {"instances": X.values.tolist()},
]


@pytest.mark.parametrize("shape", range(len(ALL_SHAPES)))
def test_every_mlflow_shape_predicts_like_the_model(named_lr, iris_frame, shape):
    model, predictor = named_lr
    X = iris_frame[0].iloc[::10]
    table = parse_mlflow(body(ALL_SHAPES[shape](X)), "application/json")
    prepared = predictor.prepare(table)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fast path must not trigger the feature-names warning
        np.testing.assert_array_equal(predictor.predict(prepared), model.predict(X))
        np.testing.assert_allclose(predictor.predict_proba(prepared), model.predict_proba(X))


def test_named_numeric_input_takes_the_numpy_fast_path(named_lr, iris_frame):
    _model, predictor = named_lr
    X = iris_frame[0].iloc[:1]
    assert isinstance(predictor.prepare(parse_mlflow(body({"dataframe_records": X.to_dict("records")}),
                                                      "application/json")), np.ndarray)


def test_columns_in_another_order_are_reordered(named_lr, iris_frame):
    model, predictor = named_lr
    X = iris_frame[0].iloc[:5]
    shuffled = X[list(reversed(X.columns))]
    prepared = predictor.prepare(parse_mlflow(body({"dataframe_split": shuffled.to_dict("split")}), "application/json"))
    np.testing.assert_array_equal(predictor.predict(prepared), model.predict(X))


def test_csv_body(named_lr, iris_frame):
    model, predictor = named_lr
    X = iris_frame[0].iloc[:7]
    prepared = predictor.prepare(parse_mlflow(X.to_csv(index=False).encode(), "text/csv; charset=utf-8"))
    np.testing.assert_array_equal(predictor.predict(prepared), model.predict(X))


def test_pipeline_with_categories_gets_a_frame(mixed_pipeline):
    model, frame, predictor = mixed_pipeline
    rows = frame.iloc[:6].astype(object).where(frame.iloc[:6].notna(), None)
    prepared = predictor.prepare(parse_mlflow(body({"dataframe_records": rows.to_dict("records")}), "application/json"))
    assert isinstance(prepared, pd.DataFrame)
    np.testing.assert_allclose(predictor.predict_proba(prepared), model.predict_proba(frame.iloc[:6]))


@pytest.mark.parametrize("payload, needle, code", [
    ({"dataframe_records": [{"sepal_length": 1}]}, "Missing columns: 'sepal_width'", "SCHEMA_MISMATCH"),
    ({"dataframe_records": [{"sepal_length": 1, "sepal_width": 1, "petal_length": 1, "petal_width": 1, "zz": 2}]},
     "Unexpected columns: 'zz'", "SCHEMA_MISMATCH"),
    ({"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                          "data": [[1, 2, 3, 4], [1, "abc", 3, 4]]}}, "column 'sepal_width' (rows 1)", "INVALID_TYPE"),
    ({"dataframe_split": {"columns": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
                          "data": [[1, 2, None, 4]]}}, "columns 'petal_length' (rows 0)", "MISSING_VALUES"),
    ({"instances": [[1, 2, 3]]}, "takes 4 values per row", "BAD_REQUEST"),
    ({"instances": []}, "no rows", "BAD_REQUEST"),
    ({"dataframe_records": [{"a": 1}, {"b": 2}]}, "row 1 has different columns", "BAD_REQUEST"),
])
def test_bad_input_names_the_columns_or_rows(named_lr, payload, needle, code):
    _model, predictor = named_lr
    with pytest.raises(PayloadError) as caught:
        prepared = predictor.prepare(parse_mlflow(body(payload), "application/json"))
        predictor.predict(prepared)
    assert needle in caught.value.message
    assert caught.value.error_code == code
    assert "abc" not in caught.value.message  # no echo of input values


@pytest.mark.parametrize("raw, content_type, status", [
    (b"{}", "application/json", 400),
    (b'{"instances": [], "inputs": []}', "application/json", 400),
    (b'{"instances": [[1]], "extra": 1}', "application/json", 400),
    (b"[1, 2]", "application/json", 400),
    (b"{not json", "application/json", 400),
    (b"", "application/json", 400),
    (b'{"instances": [[1]]}', "text/plain", 415),
    (b'{"instances": [[1]]}', "", 415),
    (b'{"dataframe_split": {"columns": ["a"], "data": [[1, 2]]}}', "application/json", 400),
    (b'{"instances": [[1]], "params": []}', "application/json", 400),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
])
def test_malformed_bodies(raw, content_type, status):
    with pytest.raises(PayloadError) as caught:
        parse_mlflow(raw, content_type)
    assert caught.value.status == status


def test_nan_is_fine_for_models_that_take_it():
    X = np.array([[0.0, 1.0], [1.0, np.nan], [2.0, 0.5], [3.0, 1.5]] * 10)
    y = [0, 1, 0, 1] * 10
    model = HistGradientBoostingClassifier(max_iter=5).fit(X, y)
    predictor = Predictor(model, describe_model(model).to_dict())
    prepared = predictor.prepare(parse_mlflow(body({"instances": [[1.0, None]]}), "application/json"))
    np.testing.assert_array_equal(predictor.predict(prepared), model.predict([[1.0, np.nan]]))


def test_proba_on_a_regressor_is_a_clear_error():
    model = Ridge().fit(np.eye(3), [1, 2, 3])
    predictor = Predictor(model, describe_model(model).to_dict())
    with pytest.raises(PayloadError, match="does not give probabilities"):
        predictor.predict_proba(predictor.prepare(Table(columns=None, rows=[[1, 2, 3]])))


def test_to_jsonable_cleans_numpy():
    assert to_jsonable(np.array([1.5, np.nan, np.inf])) == [1.5, None, None]
    assert to_jsonable(np.array(["a", "b"], dtype=object)) == ["a", "b"]
    assert to_jsonable(np.array([1, 2], dtype=np.int64)) == [1, 2]
    json.dumps(to_jsonable(np.array([[0.1, np.nan]])), allow_nan=False)


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                    max_leaves=20))
def test_parser_and_validation_never_fail_unexpectedly(named_lr, payload):
    """Whatever JSON arrives, the answer is a prediction or a PayloadError, never another exception."""
    _model, predictor = named_lr
    for wrapped in (payload, {"instances": payload}, {"dataframe_split": payload}, {"dataframe_records": payload},
                    {"inputs": payload}):
        try:
            raw = json.dumps(wrapped).encode()
        except ValueError:
            continue
        try:
            predictor.predict(predictor.prepare(parse_mlflow(raw, "application/json")))
        except PayloadError:
            pass


def test_parse_csv_rejects_ragged_rows():
    with pytest.raises(PayloadError):
        parse_csv(b"a,b\n1,2\n1,2,3\n")
