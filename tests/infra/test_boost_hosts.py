"""LightGBM and XGBoost models served by real model hosts: the fork server has their libraries in
memory, a host (one thread, no thread creation allowed, Landlock, seccomp) loads and predicts with
them exactly as the library does in-process, and a booster its library refuses is a refused load
with the library's reason, never a dead server."""

from __future__ import annotations

import os

import joblib
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.infra.test_hosts import hosted, pool  # noqa: F401  (the module's pool fixture)
from viewer.infra.host.pool import LoadRefused

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = np.where(X[:, 0] + X[:, 1] > 0, "yes", "no")
    return X, y


def test_hosted_lightgbm_and_xgboost_answer_exactly_as_their_library(pool, tmp_path, data):  # noqa: F811
    X, y = data
    codes = (y == "yes").astype(int)
    models = [
        (lightgbm.LGBMClassifier(n_estimators=10, verbose=-1).fit(X, y), X),
        (make_pipeline(StandardScaler(), lightgbm.LGBMRegressor(n_estimators=10, verbose=-1)).fit(X, X[:, 0]), X),
        (xgboost.XGBClassifier(n_estimators=10, max_depth=3).fit(X, codes), X),
        (make_pipeline(StandardScaler(), xgboost.XGBRegressor(n_estimators=10)).fit(X, X[:, 0]), X),
    ]
    for model, rows in models:
        path = tmp_path / "reference.joblib"
        joblib.dump(model, path)
        reference = joblib.load(path)
        served = hosted(pool, tmp_path, model)
        np.testing.assert_array_equal(served.predict(rows[:50]), reference.predict(rows[:50]))
        if hasattr(reference, "predict_proba"):
            np.testing.assert_array_equal(served.predict_proba(rows[:50]), reference.predict_proba(rows[:50]))


def test_a_booster_its_library_refuses_is_a_refused_load(pool, tmp_path, data):  # noqa: F811
    X, y = data
    model = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
    state = model._Booster.__getstate__()
    state["_handle"] = state["_handle"].replace("objective=binary", "objective=nosuchthing", 1)
    model._Booster.__getstate__ = lambda: state
    path = tmp_path / "bad.joblib"
    joblib.dump(model, path)
    load = {"trusted_modules": [], "info": None, "max_decompressed_bytes": 2**30}
    with pytest.raises(LoadRefused, match="LightGBM refused to read it") as caught:
        pool.start("bad-lightgbm", lambda: os.open(path, os.O_RDONLY), load, timeout=20)
    assert caught.value.meta["kind"] == "unreadable"
    served = hosted(pool, tmp_path, lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y))
    assert served.predict(X[:5]).shape == (5,)  # the server lives on
