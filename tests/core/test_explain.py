"""Contributions add up to the model's raw output, per model family, on data like users have
(a loan table with an ID column, strings, missing values; pipelines with column selectors and a
custom step), and each input column gets what its features contributed."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor, RandomForestClassifier, \
    RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, PolynomialFeatures, StandardScaler

from tests.realistic import FEATURES, TARGET, ClipOutliers, loan_table
from viewer.core.explain import Budget, Explainer

NUMBERS = ["amount", "income", "age"]
CATEGORIES = ["region", "employment"]


@pytest.fixture(scope="module")
def loans() -> pd.DataFrame:
    return loan_table(600, seed=3)


def _inputs(loans: pd.DataFrame) -> pd.DataFrame:
    return loans[["loan_id", *FEATURES]]


def _one_hot_pipeline(final):
    """What people fit: numbers imputed and scaled, strings one-hot encoded (unknown ones ignored),
    the ID column dropped by the ColumnTransformer."""
    return make_pipeline(ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS),
        ("categories", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                     OneHotEncoder(handle_unknown="ignore")), CATEGORIES)]), final)


def _explain(model, X, background, *, classifier=True, n_classes=2, has_proba=True, **kwargs):
    explainer = Explainer(model, background, columns=[str(c) for c in X.columns] if hasattr(X, "columns")
                          else [f"x{i}" for i in range(X.shape[1])], classifier=classifier, n_classes=n_classes,
                          has_proba=has_proba, **kwargs)
    explained = explainer.explain(X)
    total = explained.base + explained.values.sum(axis=1) + explained.other
    np.testing.assert_allclose(total, explained.output, rtol=1e-6, atol=1e-6)
    return explainer, explained


def test_logistic_pipeline_is_exact_and_one_hot_columns_sum_to_their_source(loans):
    X = _inputs(loans)
    model = _one_hot_pipeline(LogisticRegression(max_iter=1000)).fit(X, loans[TARGET])
    explainer, explained = _explain(model, X.iloc[:50], X.iloc[100:200])
    assert explainer.method == "linear" and explainer.output_kind == "log-odds"
    np.testing.assert_allclose(explained.output, model.decision_function(X.iloc[:50]), rtol=1e-12)
    # each column's contribution is its features' coefficients times their distance from the mean
    Z = model[0].transform(X.iloc[:50])
    mean = model[0].transform(X.iloc[100:200]).mean(axis=0)
    coef = model[-1].coef_[0]
    names = model[0].get_feature_names_out()
    region = [i for i, n in enumerate(names) if n.startswith("categories__region_")]
    np.testing.assert_allclose(explained.values[:, list(X.columns).index("region")],
                               ((Z[:, region] - mean[region]) * coef[region]).sum(axis=1), atol=1e-12)
    assert np.all(explained.values[:, 0] == 0)  # loan_id: dropped by the model
    assert np.all(explained.other == 0)
    assert np.all(explained.classes == 1)


def test_unseen_category_and_missing_values_still_add_up(loans):
    X = _inputs(loans)
    model = _one_hot_pipeline(LogisticRegression(max_iter=1000)).fit(X, loans[TARGET])
    odd = X.iloc[:3].copy()
    odd["region"] = ["atlantis", None, "north"]
    odd["income"] = [np.nan, 1e6, 30000.0]
    _explainer, explained = _explain(model, odd, X.iloc[100:130])
    np.testing.assert_allclose(explained.output, model.decision_function(odd), rtol=1e-12)


def test_multinomial_logistic_explains_the_predicted_class(loans):
    X = _inputs(loans)
    y = pd.cut(loans["age"], [0, 35, 55, 100], labels=["young", "middle", "old"]).astype(str)
    model = _one_hot_pipeline(LogisticRegression(max_iter=2000)).fit(X, y)
    explainer, explained = _explain(model, X.iloc[:40], X.iloc[200:260], n_classes=3)
    assert explainer.output_kind == "class score"
    predicted = model.predict(X.iloc[:40])
    assert list(model.classes_[explained.classes]) == list(predicted)
    scores = model.decision_function(X.iloc[:40])
    np.testing.assert_allclose(explained.output, scores[np.arange(40), explained.classes], rtol=1e-12)
    assert np.abs(explained.values[:, FEATURES.index("age") + 1]).mean() > 0.1


def test_ridge_on_a_plain_array():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    model = Ridge().fit(X, X @ [1.0, -2.0, 0.5, 0.0] + 3)
    explainer, explained = _explain(model, X[:20], X[20:120], classifier=False, n_classes=0, has_proba=False)
    assert (explainer.method, explainer.output_kind) == ("linear", "value")
    np.testing.assert_allclose(explained.values, model.coef_ * (X[:20] - X[20:120].mean(axis=0)), atol=1e-12)
    assert np.all(explained.classes == -1)


@pytest.mark.parametrize("make", [
    lambda: HistGradientBoostingClassifier(max_iter=30, random_state=0),
    lambda: RandomForestClassifier(n_estimators=15, max_depth=6, random_state=0),
], ids=["hgb", "forest"])
def test_tree_classifiers_in_pipelines_are_exact(loans, make):
    X = _inputs(loans)
    model = make_pipeline(ColumnTransformer([
        ("numbers", SimpleImputer(), NUMBERS),
        ("categories", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                     OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)),
         CATEGORIES)]), make()).fit(X, loans[TARGET])
    explainer, explained = _explain(model, X.iloc[:60], X.iloc[300:400])
    assert explainer.method == "tree"
    if explainer.output_kind == "log-odds":
        np.testing.assert_allclose(explained.output, model.decision_function(X.iloc[:60]), rtol=1e-9)
    else:
        assert explainer.output_kind == "probability"
        np.testing.assert_allclose(explained.output, model.predict_proba(X.iloc[:60])[:, 1], rtol=1e-9)
    assert np.abs(explained.values[:, 1 + FEATURES.index("amount")]).sum() > 0
    assert np.all(explained.values[:, 0] == 0)


@pytest.mark.parametrize("make", [
    lambda: HistGradientBoostingRegressor(max_iter=30, random_state=0),
    lambda: RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0),
], ids=["hgb", "forest"])
def test_tree_regressors_on_numbers_are_exact(loans, make):
    X = loans[NUMBERS]
    model = make().fit(X.fillna(0) if "Forest" in repr(make()) else X, loans["income"].fillna(0))
    X = X.fillna(0)
    explainer, explained = _explain(model, X.iloc[:50], X.iloc[100:150], classifier=False, n_classes=0,
                                    has_proba=False)
    assert (explainer.method, explainer.output_kind) == ("tree", "value")
    np.testing.assert_allclose(explained.output, model.predict(X.iloc[:50]), rtol=1e-9)


def test_lightgbm_with_categorical_columns(loans):
    lightgbm = pytest.importorskip("lightgbm")
    X = loans[FEATURES].copy()
    for name in CATEGORIES:
        X[name] = X[name].astype("category")
    model = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=8, verbose=-1).fit(X, loans[TARGET])
    explainer, explained = _explain(model, X.iloc[:40], X.iloc[100:200])
    assert (explainer.method, explainer.output_kind) == ("tree", "log-odds")
    np.testing.assert_allclose(explained.output, model.predict(X.iloc[:40], raw_score=True), rtol=1e-9)
    assert np.abs(explained.values[:, FEATURES.index("region")]).sum() > 0


def test_a_custom_step_is_traced_through(loans):
    X = _inputs(loans)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pandas 3.1 on make_column_selector(dtype_include=object)
        model = make_pipeline(ClipOutliers(), ColumnTransformer([
            ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), make_column_selector(dtype_include="number")),
            ("categories", OneHotEncoder(handle_unknown="ignore"),
             make_column_selector(pattern="region|employment"))]),
            LogisticRegression(max_iter=1000)).fit(X, loans[TARGET])
    explainer, explained = _explain(model, X.iloc[:30], X.iloc[100:160])
    assert explainer.method == "linear"
    np.testing.assert_allclose(explained.output, model.decision_function(X.iloc[:30]), rtol=1e-12)


def test_features_that_mix_columns_fall_back_to_sampling_within_its_budget():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] * X[:, 1] + X[:, 2] > 0).astype(int)
    model = make_pipeline(PolynomialFeatures(2), LogisticRegression(max_iter=1000)).fit(X, y)
    explainer, explained = _explain(model, X[:5], X[50:70], budget=Budget(max_evaluations=400, seconds=5))
    assert explainer.method == "sampling" and "depends on input columns" in explainer.reason
    assert explainer.output_kind == "probability"
    np.testing.assert_allclose(explained.output, model.predict_proba(X[:5])[:, 1], rtol=1e-12)
    assert explained.sampling["evaluations"] <= 5 * 400 and explained.sampling["walks"] > 0


def test_sampling_recovers_a_linear_models_exact_contributions():
    """On a model that adds its columns' effects, every walk's step is exact, so the sampled
    contributions equal coef * (x - mean of the background rows used)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(100, 5))
    model = TransformedTargetRegressor(LinearRegression()).fit(X, X @ [3.0, -1.0, 0.0, 2.0, 0.5])
    background = X[:8]
    explainer, explained = _explain(model, X[50:53], background, classifier=False, n_classes=0, has_proba=False,
                                    budget=Budget(max_evaluations=16 * 6 * 2, seconds=10))
    assert explainer.method == "sampling"
    coef = model.regressor_.coef_
    np.testing.assert_allclose(explained.values, coef * (X[50:53] - background.mean(axis=0)), atol=1e-9)


def test_models_without_structure_are_sampled_on_frames(loans):
    X = loans[["amount", "age", "region"]].fillna({"amount": 0, "region": "north"})
    model = make_pipeline(ColumnTransformer([("n", StandardScaler(), ["amount", "age"]),
                                             ("c", OneHotEncoder(handle_unknown="ignore"), ["region"])]),
                          KNeighborsClassifier()).fit(X, loans[TARGET])
    explainer, explained = _explain(model, X.iloc[:3], X.iloc[10:30])
    assert explainer.method == "sampling" and "KNeighborsClassifier" in explainer.reason
    np.testing.assert_allclose(explained.output, model.predict_proba(X.iloc[:3])[:, 1], rtol=1e-12)


def test_a_category_no_background_row_has_is_traced_to_its_column(loans):
    X = _inputs(loans)
    model = _one_hot_pipeline(LogisticRegression(max_iter=1000)).fit(X, loans[TARGET])
    background = X[(X["employment"] != "student") & X["region"].notna()].iloc[:40]
    students = X[X["employment"] == "student"].iloc[:3]
    explainer, explained = _explain(model, students, background)
    assert np.all(explained.other == 0)
    names = list(model[0].get_feature_names_out())
    Z, mean = model[0].transform(students), model[0].transform(background).mean(axis=0)
    employment = [i for i, n in enumerate(names) if n.startswith("categories__employment_")]
    np.testing.assert_allclose(explained.values[:, list(X.columns).index("employment")],
                               ((Z[:, employment] - mean[employment]) * model[-1].coef_[0][employment]).sum(axis=1),
                               atol=1e-12)
    assert (explainer.owner >= 0).sum() == len(names)


def test_a_product_of_two_columns_is_caught_even_when_the_first_rows_hide_it():
    """flag is 0 in the background's first rows, so x * flag does not move with x there: the
    probe's row of unusual values still shows that it depends on both columns."""
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=200), (rng.random(200) < 0.3).astype(float)])
    X[:50:2, 1] = 0  # every probe row spread over the background has flag 0
    model = make_pipeline(PolynomialFeatures(2, interaction_only=True, include_bias=False), LinearRegression()).fit(
        X, X[:, 0] * X[:, 1] + X[:, 0])
    explainer, _explained = _explain(model, X[60:62], X[:50], classifier=False, n_classes=0, has_proba=False,
                                     budget=Budget(max_evaluations=200, seconds=5))
    assert explainer.method == "sampling" and "depends on input columns 0 and 1" in explainer.reason
