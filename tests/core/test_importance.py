"""Permutation importance over a stored dataset, without a server: the numbers are scikit-learn's,
the sample is bounded and uniform, progress and cancellation work per feature, errors explain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance as sk_permutation_importance
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from viewer.core import importance
from viewer.core.datasets import DatasetError, ingest
from viewer.core.introspect import describe_model
from viewer.core.payload import PayloadError
from viewer.core.predictor import Predictor


def predictor(model) -> Predictor:
    return Predictor(model, describe_model(model).to_dict())


def stored(tmp_path, frame: pd.DataFrame, row_group_rows: int = 250, name: str = "data"):
    """The frame as the app stores it: CSV ingested into Parquet with small row groups."""
    src = tmp_path / f"{name}.csv"
    frame.to_csv(src, index=False)
    dest = tmp_path / f"{name}.parquet"
    ingest(src, dest, row_group_rows=row_group_rows)
    return dest


@pytest.fixture(scope="module")
def binary():
    X, y = make_classification(n_samples=1500, n_features=5, n_informative=3, n_redundant=0, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    model = HistGradientBoostingClassifier(max_iter=15, random_state=0).fit(frame, y)
    return frame.assign(label=y), model


def test_binary_equals_scikit_learn_on_the_same_sample_and_seed(tmp_path, binary):
    frame, model = binary
    path = stored(tmp_path, frame)
    result = importance.permutation_importance(predictor(model), path, "label", max_rows=600, seed=7, n_repeats=4)
    assert result["scoring"] == "roc_auc" and result["n_sample"] == 600 and result["n_labelled"] == 1500
    assert not result["exact"] and result["n_rows"] == 1500 and result["n_repeats"] == 4

    sample = importance.sample_labelled(path, "label", list(frame.columns[:5]), max_rows=600, seed=7)
    features = frame.columns[:5].tolist()
    expected = sk_permutation_importance(model, sample.frame[features], sample.frame["label"], scoring="roc_auc",
                                         n_repeats=4, random_state=7, n_jobs=1)
    by_name = {f["name"]: f for f in result["features"]}
    assert set(by_name) == set(features)
    for i, name in enumerate(features):
        assert by_name[name]["mean"] == pytest.approx(expected.importances_mean[i], abs=1e-12)
        assert by_name[name]["std"] == pytest.approx(expected.importances_std[i], abs=1e-12)
        np.testing.assert_allclose(by_name[name]["values"], expected.importances[i], atol=1e-12)
    means = [f["mean"] for f in result["features"]]
    assert means == sorted(means, reverse=True)  # most important first
    assert result["baseline"] == pytest.approx(
        roc_auc_score(sample.frame["label"], model.predict_proba(sample.frame[features])[:, 1]))


def test_regression_multiclass_and_a_pipeline_on_a_frame(tmp_path):
    X, y = make_regression(n_samples=400, n_features=3, noise=5, random_state=1)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    ridge = Ridge().fit(frame, y)
    path = stored(tmp_path, frame.assign(y=y), name="reg")
    result = importance.permutation_importance(predictor(ridge), path, "y", seed=3)
    assert result["scoring"] == "r2" and result["exact"] and result["n_sample"] == 400
    expected = sk_permutation_importance(ridge, frame, y, scoring="r2", n_repeats=5, random_state=3, n_jobs=1)
    assert {f["name"]: f["mean"] for f in result["features"]} == pytest.approx(
        dict(zip(frame.columns, expected.importances_mean)), abs=1e-12)
    mae = importance.permutation_importance(predictor(ridge), path, "y", seed=3, scoring="neg_mean_absolute_error")
    assert mae["scoring"] == "neg_mean_absolute_error" and mae["features"][0]["mean"] > 0

    # Multiclass with a categorical column through a ColumnTransformer (the model takes a DataFrame).
    rng = np.random.default_rng(0)
    cat = rng.choice(["red", "green", "blue"], size=600)
    num = rng.normal(size=600)
    label = np.where(cat == "red", "x", np.where(num > 0, "y", "z"))
    data = pd.DataFrame({"colour": cat, "size": num})
    model = make_pipeline(ColumnTransformer([("oh", OneHotEncoder(), ["colour"])], remainder="passthrough"),
                          LogisticRegression(max_iter=500)).fit(data, label)
    path = stored(tmp_path, data.assign(label=label), name="multi")
    result = importance.permutation_importance(predictor(model), path, "label", seed=1, n_repeats=3)
    assert result["scoring"] == "neg_log_loss"
    sample = importance.sample_labelled(path, "label", ["colour", "size"], seed=1)
    expected = sk_permutation_importance(model, sample.frame[["colour", "size"]], sample.frame["label"],
                                         scoring="neg_log_loss", n_repeats=3, random_state=1, n_jobs=1)
    assert {f["name"]: f["mean"] for f in result["features"]} == pytest.approx(
        {"colour": expected.importances_mean[0], "size": expected.importances_mean[1]}, abs=1e-12)
    assert [f["name"] for f in result["features"]] == ["colour", "size"]


def test_the_sample_is_bounded_uniform_and_only_rows_with_a_target(tmp_path):
    n, groups = 2000, 10
    target = np.arange(n, dtype=float)
    target[::7] = np.nan  # every 7th row has no target
    frame = pd.DataFrame({"x": np.arange(n), "t": target})
    path = stored(tmp_path, frame, row_group_rows=n // groups)
    labelled = np.flatnonzero(~np.isnan(target))

    sample = importance.sample_labelled(path, "t", ["x"], max_rows=100, seed=0)
    assert len(sample.frame) == 100 and sample.n_labelled == len(labelled) and sample.n_rows == n
    assert np.all(np.diff(sample.rows) > 0)  # distinct, in dataset order
    assert set(sample.rows) <= set(labelled)
    assert sample.frame["x"].tolist() == sample.rows.tolist()  # the rows are the rows they say they are
    assert sample.frame["t"].tolist() == target[sample.rows].tolist()
    again = importance.sample_labelled(path, "t", ["x"], max_rows=100, seed=0)
    assert again.rows.tolist() == sample.rows.tolist()
    assert importance.sample_labelled(path, "t", ["x"], max_rows=100, seed=1).rows.tolist() != sample.rows.tolist()

    # Uniform: over 200 seeds every labelled row is drawn about 200 * 100 / 1714 = 11.7 times, and
    # each tenth of the file gets its share (a first-rows or per-group bias would show here).
    counts = np.zeros(n)
    for seed in range(200):
        counts[importance.sample_labelled(path, "t", ["x"], max_rows=100, seed=seed).rows] += 1
    assert counts[np.isnan(target)].sum() == 0
    per_group = counts.reshape(groups, -1).sum(axis=1)
    expected = 200 * 100 / groups
    assert np.all(np.abs(per_group - expected) < 5 * np.sqrt(expected)), per_group
    first, second = counts[labelled[: len(labelled) // 2]].sum(), counts[labelled[len(labelled) // 2:]].sum()
    assert abs(first - second) < 5 * np.sqrt(200 * 100), (first, second)

    everything = importance.sample_labelled(path, "t", ["x"], max_rows=10_000, seed=0)
    assert everything.exact and everything.rows.tolist() == labelled.tolist()


def test_progress_per_feature_and_cancel_between_features(tmp_path, binary):
    frame, model = binary
    path = stored(tmp_path, frame)
    seen = []
    importance.permutation_importance(predictor(model), path, "label", max_rows=300, n_repeats=2,
                                      progress=lambda done, total: seen.append((done, total)))
    assert seen == [(i, 5) for i in range(6)]

    seen.clear()
    with pytest.raises(importance.Cancelled):
        importance.permutation_importance(predictor(model), path, "label", max_rows=300, n_repeats=2,
                                          progress=lambda done, total: seen.append((done, total)),
                                          cancelled=lambda: len(seen) >= 3)
    assert seen == [(0, 5), (1, 5), (2, 5)]  # stopped after the second feature


def test_errors_say_what_is_wrong(tmp_path, binary):
    frame, model = binary
    p = predictor(model)
    path = stored(tmp_path, frame)
    with pytest.raises(PayloadError, match="no column 'nope'"):
        importance.permutation_importance(p, path, "nope")
    with pytest.raises(PayloadError, match="lacks columns the model needs: 'f4'"):
        importance.permutation_importance(p, stored(tmp_path, frame.drop(columns="f4"), name="narrow"), "label")
    with pytest.raises(PayloadError, match="Unknown scoring"):
        importance.permutation_importance(p, path, "label", scoring="r3")
    with pytest.raises(PayloadError, match="scores a regressor"):
        importance.permutation_importance(p, path, "label", scoring="r2")
    with pytest.raises(PayloadError, match="'f1' is one of the model's inputs"):
        importance.permutation_importance(p, path, "f1")

    few = frame.astype({"label": float})
    few.loc[5:, "label"] = np.nan
    with pytest.raises(DatasetError, match="Only 5 of 1,500 rows have a value in 'label'"):
        importance.permutation_importance(p, stored(tmp_path, few, name="few"), "label")

    relabelled = frame.assign(label=np.where(frame["label"] == 1, 1, 2))  # class 0 is called 2 here
    with pytest.raises(PayloadError, match="are not classes of the model .its classes: 0, 1.; roc_auc"):
        importance.permutation_importance(p, stored(tmp_path, relabelled, name="relabelled"), "label")
    # Accuracy takes labels the model does not know (they simply count as wrong).
    result = importance.permutation_importance(p, stored(tmp_path, relabelled, name="relabelled2"), "label",
                                               scoring="accuracy", max_rows=200, n_repeats=2)
    assert result["baseline"] == pytest.approx(0.5, abs=0.1)

    X, y = make_regression(n_samples=100, n_features=2, random_state=0)
    ridge = Ridge().fit(pd.DataFrame(X, columns=["a", "b"]), y)
    words = pd.DataFrame(X, columns=["a", "b"]).assign(y=np.where(y > 0, "high", "low"))
    with pytest.raises(DatasetError, match="a regressor needs numbers"):
        importance.permutation_importance(predictor(ridge), stored(tmp_path, words, name="words"), "y")

    kmeans = KMeans(n_clusters=2, n_init=1, random_state=0).fit(pd.DataFrame(X, columns=["a", "b"]))
    with pytest.raises(PayloadError, match="needs a classifier or a regressor"):
        importance.permutation_importance(predictor(kmeans), stored(tmp_path, words, name="k"), "y")
