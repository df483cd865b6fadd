"""Compiled tree ensembles (viewer/core/compiled.py): Treelite + TL2cgen answer exactly as
scikit-learn does, or the parity check says why they may not answer. Tiny models, compiled once
per module with the machine's gcc."""

from __future__ import annotations

import os

import lightgbm
import numpy as np
import pytest
from sklearn.ensemble import (ExtraTreesRegressor, GradientBoostingClassifier, HistGradientBoostingClassifier,
                              HistGradientBoostingRegressor, IsolationForest, RandomForestClassifier)
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.realistic import TARGET, loan_table

from viewer.core.compiled import (CompiledModel, CompileError, Parity, TreeRuntime, check_parity, compilable,
                                  compile_trees)

RNG = np.random.default_rng(7)
X = RNG.normal(size=(1500, 6))
X_MISSING = np.where(RNG.random(X.shape) < 0.1, np.nan, X)
Y3 = RNG.integers(0, 3, len(X))
YB = (X[:, 1] + RNG.normal(size=len(X)) > 0).astype(int)
YR = 2 * X[:, 0] + RNG.normal(size=len(X))
LOANS = loan_table(1500, seed=5)
LOAN_FEATURES = ["amount", "income", "age", "region", "employment"]


def _loan_pipeline():
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(), StandardScaler()), ["amount", "income", "age"]),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         ["region", "employment"])])
    model = make_pipeline(prep, HistGradientBoostingClassifier(max_iter=15))
    return model.fit(LOANS[LOAN_FEATURES], LOANS[TARGET]), LOANS[LOAN_FEATURES]

MODELS = {
    "hgb_multiclass_missing": lambda: (HistGradientBoostingClassifier(max_iter=15).fit(X_MISSING, Y3), X_MISSING),
    "hgb_regressor_missing": lambda: (HistGradientBoostingRegressor(max_iter=15).fit(X_MISSING, YR), X_MISSING),
    "forest_binary": lambda: (RandomForestClassifier(n_estimators=4, max_depth=6, random_state=0).fit(X, YB), X),
    "forest_fitted_with_missing": lambda: (
        RandomForestClassifier(n_estimators=4, max_depth=6, random_state=0).fit(X_MISSING, YB), X_MISSING),
    "gradient_boosting_multiclass": lambda: (GradientBoostingClassifier(n_estimators=4).fit(X, Y3), X),
    "extra_trees_regressor": lambda: (ExtraTreesRegressor(n_estimators=4, max_depth=5, random_state=0).fit(X, YR), X),
    "lightgbm_multiclass_missing": lambda: (
        lightgbm.LGBMClassifier(n_estimators=8, verbose=-1, random_state=0).fit(X_MISSING, Y3), X_MISSING),
    "lightgbm_regressor": lambda: (lightgbm.LGBMRegressor(n_estimators=8, verbose=-1).fit(X_MISSING, YR), X_MISSING),
    "pipeline_sparse_one_hot_forest": lambda: (
        make_pipeline(OneHotEncoder(handle_unknown="ignore"),  # sparse output: the forest takes it as it is
                      RandomForestClassifier(n_estimators=4, max_depth=6, random_state=0))
        .fit(np.round(X * 2), YB), np.round(X * 2)),
    "pipeline_scaler_forest": lambda: (
        make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=4, max_depth=6, random_state=0))
        .fit(X, Y3), X),
    "pipeline_loan_column_transformer_hgb": _loan_pipeline,
}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """name -> (model, X, runtime, parity), each compiled once."""
    out = {}
    for name, make in MODELS.items():
        model, data = make()
        runtime = TreeRuntime(compile_trees(model, tmp_path_factory.mktemp(name)))
        out[name] = (model, data, runtime, check_parity(model, runtime, data[:300]))
    return out


def test_a_column_transformer_head_computed_in_numpy_is_identical_on_the_checked_rows(built):
    model, data, runtime, parity = built["pipeline_loan_column_transformer_hgb"]
    assert parity.head_same is True and parity.head_rows == 300
    served = CompiledModel(model, runtime, parity)
    assert served.head_path is not None
    rows = data.iloc[300:900]
    assert np.array_equal(served.head_path.transform(rows), model[:-1].transform(rows))
    # a head that differed on the checked rows is left to scikit-learn, with the same answers
    unchecked = CompiledModel(model, runtime, Parity(**{**parity.to_dict(), "head_same": False}))
    assert unchecked.head_path is None
    assert np.array_equal(unchecked.predict_proba(rows), served.predict_proba(rows))


@pytest.mark.parametrize("name", list(MODELS))
def test_compiled_answers_equal_scikit_learn_at_every_threshold(built, name):
    model, data, runtime, parity = built[name]
    assert parity.ok, parity.reason
    assert parity.threshold_rows > 0 and parity.max_abs_diff <= 1e-9 and parity.label_flips == 0
    # the few-row path (tree_path) where it exists: identical on every checked row it takes
    walks = "gradient_boosting" not in name and "lightgbm" not in name
    assert parity.trees_same is (True if walks else None)
    assert (parity.trees_rows >= parity.threshold_rows // 2) if walks else parity.trees_rows == 0
    served = CompiledModel(model, runtime, parity)
    rows = data[300:800]
    if hasattr(model, "predict_proba"):
        np.testing.assert_allclose(served.predict_proba(rows), model.predict_proba(rows), rtol=0, atol=1e-9)
    assert np.array_equal(served.predict(rows), model.predict(rows)) if hasattr(model, "classes_") else \
        np.allclose(served.predict(rows), model.predict(rows), rtol=0, atol=1e-9)


def test_forests_send_missing_values_where_scikit_learn_does(built):
    """scikit-learn's forests send a missing value to the side each split learnt (or its larger
    child); Treelite's importer sends it left: compile_trees copies scikit-learn's sides."""
    for name in ("forest_fitted_with_missing", "forest_binary", "hgb_multiclass_missing"):
        assert built[name][3].missing_ok is True, name
    model, data, runtime, parity = built["forest_fitted_with_missing"]
    rows = data[300:800]
    assert np.isnan(rows).any(axis=1).any()
    np.testing.assert_array_equal(runtime.predict_proba(rows), model.predict_proba(rows))


def test_rows_with_missing_values_go_to_scikit_learn_when_the_runtime_routes_them_otherwise(built, tmp_path):
    """With Treelite's own routing (left everywhere) the check finds the rows with a missing value
    answered otherwise: those rows are answered by scikit-learn, the others by the runtime."""
    model, data, _, _ = built["forest_fitted_with_missing"]
    runtime = TreeRuntime(compile_trees(model, tmp_path, missing_sides=False))
    parity = check_parity(model, runtime, data[:300])
    assert parity.ok and parity.missing_ok is False
    served = CompiledModel(model, runtime, parity)
    rows = data[300:800]
    assert np.isnan(rows).any(axis=1).any() and not np.isnan(rows).any(axis=1).all()
    assert not np.array_equal(runtime.predict_proba(rows), model.predict_proba(rows))
    np.testing.assert_array_equal(served.predict_proba(rows), model.predict_proba(rows))


@pytest.mark.parametrize("name", ["forest_binary", "gradient_boosting_multiclass", "pipeline_scaler_forest"])
def test_a_runtime_comparing_in_the_wrong_dtype_is_rejected(built, name):
    """The DecisionTree family compares float32(X) with its thresholds: the same library fed
    doubles answers otherwise right next to a threshold, and the check refuses it."""
    model, data, runtime, _ = built[name]
    wrong = TreeRuntime(runtime.compiled, input_dtype="float64")
    parity = check_parity(model, wrong, data[:300])
    assert not parity.ok
    assert parity.reason.startswith(("float64 comparisons flip ", "The compiled model's "))
    assert parity.reason.endswith("; scikit-learn serves it.")
    with pytest.raises(CompileError):
        CompiledModel(model, wrong, parity)


def test_isolation_forest_compiles_but_its_scores_differ_so_it_is_not_used(tmp_path):
    model = IsolationForest(n_estimators=4, random_state=0).fit(X)
    parity = check_parity(model, TreeRuntime(compile_trees(model, tmp_path)), X[:200])
    assert not parity.ok and "differ from scikit-learn's by up to" in parity.reason


def test_what_cannot_compile_says_why():
    categorical = HistGradientBoostingClassifier(max_iter=3, categorical_features=[0]).fit(
        np.column_stack([RNG.integers(0, 4, len(X)), X[:, 1:]]), YB)
    assert compilable(categorical) == ("Treelite cannot compile HistGradientBoosting models with categorical "
                                       "features; scikit-learn serves it.")
    from sklearn.linear_model import LogisticRegression
    assert compilable(LogisticRegression().fit(X, YB)).startswith("LogisticRegression is not a tree ensemble")
    with pytest.raises(CompileError, match="categorical"):
        compile_trees(categorical, "/nonexistent")
    # a pipeline as the last step: its scaler would be skipped before the compiled trees
    nested = make_pipeline(StandardScaler(), make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=2)))
    assert "a pipeline inside the pipeline" in compilable(nested.fit(X, YB))
    with pytest.raises(CompileError, match="one flat pipeline"):
        compile_trees(nested, "/nonexistent")


def test_no_compiler_leaves_scikit_learn_serving(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without gcc, as on a machine without one
    with pytest.raises(CompileError, match=r"^No C compiler \(gcc\) on this machine"):
        compile_trees(GradientBoostingClassifier(n_estimators=2).fit(X, YB), tmp_path / "out")


def test_a_library_changed_after_it_was_built_is_not_loaded(built, tmp_path):
    compiled = built["forest_binary"][2].compiled
    with open(compiled.library, "r+b") as fh:
        original = fh.read()
    copy = tmp_path / "model.so"
    copy.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    import dataclasses
    with pytest.raises(CompileError, match="changed since it was built"):
        TreeRuntime(dataclasses.replace(compiled, library=str(copy)))
    assert compiled.versions["tl2cgen"] == "1.0.0" and compiled.versions["scikit-learn"]
    assert compiled.versions["gcc"] and os.path.getsize(compiled.library) > 0


def test_batch_sizes_where_scikit_learn_is_faster_stay_with_it(built):
    model, data, runtime, parity = built["hgb_regressor_missing"]
    served = CompiledModel(model, runtime, parity, faster={1: True, 100: False, 10_000: False})
    assert served.uses_runtime(1) and not served.uses_runtime(50) and not served.uses_runtime(20_000)
    np.testing.assert_allclose(served.predict(data[:50]), model.predict(data[:50]), rtol=0, atol=0)
    timings = served.measure(data, repeat=1)
    assert set(timings) == {1, 100, 10_000} and all(t["compiled"] > 0 for t in timings.values())


def test_doubles_the_library_would_read_as_missing_are_answered_by_scikit_learn(built):
    """TL2cgen marks a missing value with an int -1 in a union with the double: 0.49999999999999994
    (low 32 bits all ones) reads as missing in the library. Such rows go to scikit-learn, and the
    parity check (whose threshold rows hold such values next to a 0.5 threshold) leaves them out."""
    model, data, runtime, parity = built["hgb_multiclass_missing"]
    rows = np.nan_to_num(data[:20]).copy()
    rows[3, 2] = np.nextafter(0.5, 0.0)
    assert runtime.unsure_rows(rows).tolist() == [i == 3 for i in range(20)]
    served = CompiledModel(model, runtime, parity)
    np.testing.assert_allclose(served.predict_proba(rows), model.predict_proba(rows), rtol=0, atol=1e-9)
    float32 = built["forest_binary"][2]
    assert not float32.unsure_rows(rows).any()  # float32-rounded input never has them


def test_values_lightgbm_takes_as_zero_are_answered_by_lightgbm(built):
    """LightGBM reads |x| <= float32(1e-35) as 0 (its splits near zero sit at -1e-35): rows with
    such a value go to LightGBM; the parity check (whose threshold rows hold them) leaves them out."""
    model, data, runtime, parity = built["lightgbm_multiclass_missing"]
    assert parity.ok and runtime.compiled.input_dtype == "float64"
    rows = np.nan_to_num(data[:10]).copy()
    rows[4, 1], rows[6, 2] = -1e-35, 5e-36
    assert runtime.unsure_rows(rows).tolist() == [i in (4, 6) for i in range(10)]
    served = CompiledModel(model, runtime, parity)
    np.testing.assert_array_equal(served.predict_proba(rows), model.predict_proba(rows))


def test_xgboost_3_models_are_not_compiled_and_say_why():
    import xgboost

    model = xgboost.XGBClassifier(n_estimators=2).fit(X, YB)
    assert compilable(model) == ("Treelite 4.2 cannot read the model format of XGBoost 3, so this model is not "
                                 "compiled; XGBoost's own library serves it.")
