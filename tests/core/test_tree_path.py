"""``TreePath``: tree ensembles walked in numpy for a few rows, identical to scikit-learn (not
close), exported as numbers and rebuilt elsewhere only when it gives the model's own answers;
anything it was not built for is declined, so the caller asks the model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import ensemble

from viewer.core.compiled import threshold_rows
from viewer.core.tree_path import SMALL, TreePath


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6)) * [1, 10, 1000, 1, 0.01, 1]
    labels = np.array(["low", "mid", "high"], dtype=object)[(X[:, 0] + X[:, 1] / 10 > 0).astype(int)
                                                            + (X[:, 3] > 0.5)]
    holes = X.copy()
    holes[rng.random(X.shape) < 0.1] = np.nan
    return X, holes, labels


def families(data):
    X, holes, labels = data
    binary = (labels == "low").astype(int)
    return {
        "forest, three text classes": (ensemble.RandomForestClassifier(n_estimators=15, random_state=0).fit(X, labels), X),
        "extra trees": (ensemble.ExtraTreesClassifier(n_estimators=10, max_depth=6, random_state=0).fit(X, binary), X),
        "forest regressor": (ensemble.RandomForestRegressor(n_estimators=10, max_depth=8, random_state=0)
                             .fit(X, X[:, 0] * 3 + X[:, 2] / 100), X),
        "boosting, missing values": (ensemble.HistGradientBoostingClassifier(max_iter=20, random_state=0)
                                     .fit(holes, binary), holes),
        "boosting, three classes": (ensemble.HistGradientBoostingClassifier(max_iter=10, random_state=0)
                                    .fit(holes, labels), holes),
        "boosting, ten classes": (ensemble.HistGradientBoostingClassifier(max_iter=5, random_state=0)
                                  .fit(X, np.digitize(X[:, 0] + X[:, 3], np.linspace(-2.5, 2.5, 9))), X),
        "boosting regressor": (ensemble.HistGradientBoostingRegressor(max_iter=15, random_state=0)
                               .fit(holes, X[:, 0] - X[:, 3]), holes),
    }


def test_each_family_answers_exactly_as_scikit_learn_on_data_and_threshold_rows(data):
    for name, (model, rows) in families(data).items():
        path = TreePath.build(model)
        assert path is not None, name
        float32 = isinstance(model, (ensemble.RandomForestClassifier, ensemble.RandomForestRegressor,
                                     ensemble.ExtraTreesClassifier))
        edges = threshold_rows(model, np.nan_to_num(rows[:50]), float32=float32, with_missing=not float32)
        checked = np.concatenate([rows, edges])
        assert path.compare(model, checked) == len(checked), name  # every row taken, every answer identical
        for batch in (rows[:1], rows[:SMALL]):
            ours = path.predict(batch)
            assert ours.dtype == model.predict(batch).dtype and np.array_equal(ours, model.predict(batch)), name
            if hasattr(model, "classes_"):
                assert np.array_equal(path.predict_proba(batch), model.predict_proba(batch)), name


def test_a_few_rows_only_and_input_scikit_learn_treats_differently_is_declined(data):
    X, holes, labels = data
    forest = ensemble.RandomForestClassifier(n_estimators=5, random_state=0).fit(X, labels)
    path = TreePath.build(forest)
    assert path.predict(X[:SMALL + 1]) is None  # a batch: the compiled library's
    for value in (np.nan, np.inf, 1e39):  # refused by scikit-learn (1e39 overflows float32)
        row = X[:2].copy()
        row[1, 2] = value
        assert path.predict(row) is None and path.predict_proba(row) is None
    assert path.predict(X[:2].astype(np.float32)) is None and path.predict(X[:2, :5]) is None
    assert path.predict(X[:2].tolist()) is None

    boosting = ensemble.HistGradientBoostingClassifier(max_iter=5).fit(holes, labels)
    row = X[:1].copy()
    row[0, :2] = [np.nan, -np.inf]  # boosting routes both itself, as scikit-learn does
    assert np.array_equal(TreePath.build(boosting).predict_proba(row), boosting.predict_proba(row))


def test_estimators_and_options_it_does_not_reproduce_get_no_path(data):
    X, _holes, labels = data
    binary = (labels == "low").astype(int)
    refused = [
        ensemble.GradientBoostingClassifier(n_estimators=5).fit(X, binary),
        ensemble.HistGradientBoostingRegressor(loss="poisson", max_iter=5).fit(X, np.abs(X[:, 0])),
        ensemble.RandomForestRegressor(n_estimators=3).fit(X, X[:, :2]),  # two outputs
        ensemble.HistGradientBoostingClassifier(max_iter=5, categorical_features=[0])
        .fit(np.c_[np.abs(X[:, :1]).round() % 4, X[:, 1:]], binary),
    ]
    for model in refused:
        assert TreePath.build(model) is None, type(model).__name__


def test_an_exported_path_is_rebuilt_only_when_it_gives_the_models_answers(data):
    X, holes, labels = data
    for model in (ensemble.RandomForestClassifier(n_estimators=8, random_state=0).fit(X, labels),
                  ensemble.HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(holes, labels)):
        path = TreePath.build(model)
        spec, nodes = path.export()
        spec = json.loads(json.dumps(spec))  # as the host sends it
        expected = json.loads(json.dumps(path.expected(model)))
        rebuilt = TreePath.from_export(spec, nodes, model.classes_, expected)
        assert rebuilt is not None
        assert np.array_equal(rebuilt.predict_proba(holes[:3] if rebuilt.nan else X[:3]),
                              model.predict_proba(holes[:3] if rebuilt.nan else X[:3]))

        inner = np.flatnonzero(nodes[:, 2] != np.arange(len(nodes)))
        moved = nodes.copy()
        moved[inner, 1] += 0.25  # thresholds that are not the model's
        assert TreePath.from_export(spec, moved, model.classes_, expected) is None
        broken = nodes.copy()
        broken[inner[0], 2] = len(nodes) + 5  # a child outside the table
        assert TreePath.from_export(spec, broken, model.classes_, expected) is None
        assert TreePath.from_export(spec, nodes[:, :4], model.classes_, expected) is None
        assert TreePath.from_export({**spec, "depth": "deep"}, nodes, model.classes_, expected) is None


def test_a_pipelines_few_rows_are_answered_from_their_columns_and_declined_rows_by_the_model():
    """With a compiled pipeline's paths (its preprocessing computed directly, then the trees),
    ``prepare`` leaves a few rows as columns and the answer is computed from them, identical to
    the pipeline's; a row the trees decline (a missing amount the forest routes by its own rules)
    is answered by the pipeline from the DataFrame, whose text columns stay objects."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from tests.realistic import FEATURES, TARGET, loan_table
    from viewer.core.head_path import HeadPath
    from viewer.core.introspect import describe_model
    from viewer.core.payload import parse_mlflow
    from viewer.core.predictor import FrameRows, Predictor

    loans = loan_table(800, seed=3)
    loans["region"] = loans["region"].fillna("unknown")
    prep = ColumnTransformer([("text", OneHotEncoder(handle_unknown="ignore"), ["region", "employment"]),
                              ("numbers", "passthrough", ["amount", "income", "age"])])
    model = make_pipeline(prep, ensemble.RandomForestClassifier(n_estimators=10, max_depth=6, random_state=0))
    model.fit(loans[FEATURES], loans[TARGET])
    predictor = Predictor(model, describe_model(model).to_dict())
    predictor.head_path, predictor.trees = HeadPath.build(model[:-1]), TreePath.build(model[-1])
    assert predictor.head_path is not None and predictor.trees is not None

    rows = loans[FEATURES].iloc[:SMALL + 1].astype(object)
    rows = rows.where(rows.notna(), None)
    rows.loc[rows.index[1], "region"] = "atlantis"  # unseen: ignored by the encoder

    def prepared(frame):
        body = json.dumps({"dataframe_records": frame.to_dict(orient="records")}).encode()
        return predictor.prepare(parse_mlflow(body, "application/json"), [])

    complete = rows[rows["amount"].notna() & rows["income"].notna()]
    few = prepared(complete.iloc[:SMALL])
    assert isinstance(few, FrameRows)
    assert np.array_equal(predictor.predict_proba(few), model.predict_proba(few.frame))
    assert np.array_equal(predictor.predict(few), model.predict(few.frame))
    assert few.frame["region"].dtype == object and few.frame["amount"].dtype == np.float64

    holes = prepared(rows.iloc[:SMALL])
    assert isinstance(holes, FrameRows) and holes.frame["amount"].isna().any()
    assert predictor.trees.predict(predictor.head_path.transform_columns(holes.data)) is None  # declined
    assert np.array_equal(predictor.predict_proba(holes), model.predict_proba(holes.frame))
    assert isinstance(prepared(rows), pd.DataFrame)  # more rows: a DataFrame, as before
