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
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Perceptron, Ridge, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import LinearSVC

from viewer.core.introspect import describe_model
from viewer.core.payload import PayloadError, Table, parse_csv, parse_mlflow
from viewer.core.predictor import Predictor, to_jsonable


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


# --- the linear fast path ------------------------------------------------------------------------

def _random_rows(n_features: int, n_rows: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n_rows, n_features)) * rng.choice([0.1, 1.0, 10.0], size=n_features)


def _fitted(model, n_classes: int):
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_redundant=0,
                               n_classes=n_classes, random_state=n_classes)
    return model.fit(X, y), X


LINEAR_WITH_PROBA = [
    lambda: LogisticRegression(max_iter=500),
    lambda: LogisticRegression(C=0.01, fit_intercept=False),
    lambda: LogisticRegressionCV(Cs=3, l1_ratios=(0,), scoring="neg_log_loss", use_legacy_attributes=False,
                                 max_iter=500),
    lambda: SGDClassifier(loss="log_loss", random_state=0),
    lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)),
]
LINEAR_PREDICT_ONLY = [
    lambda: LinearSVC(),
    lambda: Perceptron(random_state=0),
    lambda: SGDClassifier(loss="hinge", random_state=0),
]


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("make", range(len(LINEAR_WITH_PROBA)))
def test_linear_fast_path_equals_predict_proba_and_predict(make, n_classes):
    model, _X = _fitted(LINEAR_WITH_PROBA[make](), n_classes)
    predictor = Predictor(model, describe_model(model).to_dict())
    assert predictor.linear is not None and predictor.linear.proba is not None
    for seed, n_rows in enumerate([1, 2, 17, 1000]):
        X = _random_rows(6, n_rows, seed)
        proba, expected = predictor.predict_proba(X), model.predict_proba(X)
        assert proba.dtype == expected.dtype and proba.shape == expected.shape
        np.testing.assert_array_equal(proba, expected)  # bit for bit, not approximately
        labels = predictor.predict(X)
        assert labels.dtype == model.predict(X).dtype
        np.testing.assert_array_equal(labels, model.predict(X))


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("make", range(len(LINEAR_PREDICT_ONLY)))
def test_linear_fast_path_predicts_for_classifiers_without_probabilities(make, n_classes):
    model, _X = _fitted(LINEAR_PREDICT_ONLY[make](), n_classes)
    predictor = Predictor(model, describe_model(model).to_dict())
    assert predictor.linear is not None and predictor.linear.proba is None
    X = _random_rows(6, 500, 1)
    np.testing.assert_array_equal(predictor.predict(X), model.predict(X))


def test_linear_fast_path_keeps_string_labels(iris_frame):
    X, y = iris_frame
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = LogisticRegression(max_iter=500).fit(X.to_numpy(), names)
    predictor = Predictor(model, describe_model(model).to_dict())
    assert predictor.linear is not None
    rows = _random_rows(4, 50, 3) + 4
    np.testing.assert_array_equal(predictor.predict(rows), model.predict(rows))
    assert predictor.predict(rows).dtype == model.predict(rows).dtype


class _ShiftedDecision(LogisticRegression):
    def decision_function(self, X):
        return super().decision_function(X) + 1.0


class _OwnProba(LogisticRegression):
    def predict_proba(self, X):
        return super().predict_proba(X)[:, ::-1]


def test_linear_fast_path_is_not_used_for_what_it_does_not_reproduce():
    X6 = _random_rows(6, 1, 0)
    # a subclass with its own decision_function: scikit-learn serves it
    model, _ = _fitted(_ShiftedDecision(max_iter=500), 2)
    predictor = Predictor(model, describe_model(model).to_dict())
    assert predictor.linear is None
    np.testing.assert_array_equal(predictor.predict_proba(X6), model.predict_proba(X6))
    # its own predict_proba: labels by the fast path, probabilities by the model
    model, _ = _fitted(_OwnProba(max_iter=500), 3)
    predictor = Predictor(model, describe_model(model).to_dict())
    assert predictor.linear is not None and predictor.linear.proba is None
    np.testing.assert_array_equal(predictor.predict_proba(X6), model.predict_proba(X6))
    # not linear at all
    model, _ = _fitted(HistGradientBoostingClassifier(max_iter=3), 2)
    assert Predictor(model, describe_model(model).to_dict()).linear is None
    # a pipeline step with sparse output fails the probe: no fast path, same answers
    grid = np.tile(np.arange(3.0), (2, 20)).T
    model = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(grid, [0, 1] * 30)
    predictor = Predictor(model, describe_model(model).to_dict())
    assert predictor.linear is None
    np.testing.assert_array_equal(predictor.predict_proba(grid[:5]), model.predict_proba(grid[:5]))


def test_linear_fast_path_hands_unexpected_input_to_scikit_learn(named_lr):
    model, predictor = named_lr
    assert predictor.linear is not None
    fitted_on_numpy = predictor.fast
    # another width: scikit-learn's own error, scrubbed, as before the fast path existed
    with pytest.raises(PayloadError) as caught:
        predictor.predict_proba(np.ones((1, 3)))
    assert caught.value.error_code == "INVALID_INPUT" and "3 features" in caught.value.message
    # NaN and infinity: the missing-values error naming the column
    for bad in (np.nan, np.inf):
        row = np.ones((2, 4))
        row[1, 2] = bad
        with pytest.raises(PayloadError) as caught:
            predictor.predict(row)
        assert caught.value.error_code == "MISSING_VALUES" and "petal_length" in caught.value.message
    # float32 input: scikit-learn computes it (in float32)
    X32 = np.ones((3, 4), dtype=np.float32)
    np.testing.assert_array_equal(predictor.predict_proba(X32), fitted_on_numpy.predict_proba(X32))


# --- JSON in and out -----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**62, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=25)


def _same(a, b) -> bool:
    """Equal with the same types all the way down (1 == 1.0 == True does not count)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b or (a != a and b != b)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_parse_json_reads_what_json_loads_reads(value):
    from viewer.core.payload import parse_json

    raw = json.dumps(value).encode()
    assert _same(parse_json(raw), json.loads(raw))


@pytest.mark.parametrize("raw", [
    b'[NaN, Infinity, -Infinity]', b'[1e400]', b'{"a": 12345678901234567890123}', b'[-18446744073709551616]',
    b'[18446744073709551615, 9223372036854775808, 1.5e300, 0.00001234567890123456789]',
    '\ufeff{"a": [1, 2.5]}'.encode("utf-8"), '{"é": ["x"]}'.encode("utf-16"), b'"\\ud800"',
    b'{"a": 1, "a": 2}', b'{"id": "12345678901234567890"}',
])
def test_parse_json_edge_cases_match_json(raw):
    from viewer.core.payload import parse_json

    assert _same(parse_json(raw), json.loads(raw))


def test_big_integers_keep_their_meaning_in_mlflow_bodies(named_lr):
    """orjson reads integers beyond 64 bits as floats; the parser must answer as json would."""
    _model, predictor = named_lr
    big = 10**30
    # as a column name: an int is a valid name (a float is not)
    split = {"dataframe_split": {"columns": [big, "b"], "data": [[1, 2]]}}
    assert parse_mlflow(body(split), "application/json").columns == [str(big), "b"]
    # as a value of a numeric column: the same float either way
    table = parse_mlflow(body({"instances": [[1, 2, big, 4]]}), "application/json")
    assert table.rows[0][2] == big and type(table.rows[0][2]) is int
    np.testing.assert_array_equal(predictor.prepare(table), [[1, 2, float(big), 4]])
    # too large for a float at all: a 400, not a 500
    with pytest.raises(PayloadError) as caught:
        predictor.prepare(parse_mlflow(b'{"instances": [[1, 2, ' + b"9" * 400 + b', 4]]}', "application/json"))
    assert caught.value.error_code == "INVALID_TYPE" and "petal_length" in caught.value.message


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats()
                         | st.sampled_from(["1.5", "x", "nan", " 2 "]), min_size=4, max_size=4), max_size=5),
       st.permutations(["sepal_length", "sepal_width", "petal_length", "petal_width"]))
def test_dataframe_split_matrix_prepares_like_the_row_by_row_path(named_lr, rows, columns):
    """The float matrix built while parsing gives what prepare builds from the rows."""
    _model, predictor = named_lr
    try:
        raw = json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()
    except ValueError:
        return
    table = parse_mlflow(raw, "application/json")
    slow = Table(columns=table.columns, rows=table.rows)  # the same input without the matrix
    outcomes = []
    for candidate in (table, slow):
        try:
            outcomes.append(("ok", predictor.prepare(candidate)))
        except PayloadError as exc:
            outcomes.append(("error", (exc.error_code, exc.message)))
    assert outcomes[0][0] == outcomes[1][0]
    if outcomes[0][0] == "ok":
        np.testing.assert_array_equal(outcomes[0][1], outcomes[1][1])
    else:
        assert outcomes[0][1] == outcomes[1][1]


def test_dumps_writes_what_json_reads_back():
    from viewer.core.payload import dumps

    value = {"b": [1e-05, 1e16, 0.1, None, "é", True], "a": {"z": 1, "y": [2**63, -3]}}
    assert json.loads(dumps(value)) == value
    assert list(json.loads(dumps(value, sort_keys=True))) == ["a", "b"]
    assert json.loads(dumps({"n": 10**30})) == {"n": 10**30}  # beyond 64 bits: json writes it
    assert dumps({"a": 1}) == b'{"a":1}'


def test_labels_at_is_to_jsonable_of_the_labels():
    from viewer.core.predictor import labels_at

    indices = np.array([2, 0, 1, 1])
    for classes in ([0, 1, 2], ["a", "b", "c"], [True, False, None], [np.int64(4), 5.5, float("nan")]):
        expected = to_jsonable(np.asarray(classes, dtype=object).take(indices))
        assert labels_at(classes, indices) == expected
        cleaned = Predictor(LogisticRegression(), {"classes": classes}).class_labels
        assert labels_at(cleaned, indices) == expected
