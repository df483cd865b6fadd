"""LightGBM, XGBoost and imbalanced-learn models (the ``boost`` extra) through the restricted loader.

They load alone and at the end of a Pipeline and then answer exactly as the same file loaded by
joblib; their thread counts are set to one; a model whose booster is tampered with (text or bytes
the library would read out of bounds, or rejects, or an estimator that disagrees with its booster)
is refused with a clear message and never crashes the process; without the package, the refusal
names the extra to install.
"""

from __future__ import annotations

import contextlib
import json
import re
import struct
import subprocess
import sys
import warnings
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from viewer.core.safe_load import ModelLoadError, UnsafeModelError, load_model

lightgbm = pytest.importorskip("lightgbm")
xgboost = pytest.importorskip("xgboost")
imblearn = pytest.importorskip("imblearn")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


RNG = np.random.RandomState(0)
N = 200
X = RNG.randn(N, 5)
Y3 = np.digitize(X[:, 0] + 0.5 * X[:, 1], [-0.5, 0.5])
Y2 = (X[:, 0] - X[:, 2] > 0).astype(int)
Y_REG = X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * RNG.randn(N)
LABELS = np.array(["default", "repaid"])[Y2]


def frame(n: int = N, seed: int = 1) -> pd.DataFrame:
    rng = np.random.RandomState(seed)
    return pd.DataFrame({
        "income": rng.lognormal(10, 1, n),
        "age": np.where(rng.rand(n) < 0.1, np.nan, rng.randint(18, 80, n)),
        "region": rng.choice(["north", "south", "east"], n).astype(object),
    })


def preprocessing():
    return ColumnTransformer([
        ("num", SimpleImputer(), make_column_selector(dtype_include="number")),
        ("cat", OneHotEncoder(handle_unknown="ignore"), make_column_selector(dtype_include=object)),
    ])


def models() -> dict[str, tuple[object, object, object]]:
    """name -> (unfitted model, X, y)."""
    from imblearn.ensemble import BalancedRandomForestClassifier
    from imblearn.over_sampling import SMOTE, RandomOverSampler
    from imblearn.pipeline import make_pipeline as imb_pipeline
    from imblearn.under_sampling import RandomUnderSampler

    df = frame()
    categorical = df.assign(region=df["region"].astype("category"))
    lgb = dict(n_estimators=8, num_leaves=7, verbose=-1, random_state=0)
    xgb = dict(n_estimators=8, max_depth=3, random_state=0)
    return {
        "LGBMClassifier(binary)": (lightgbm.LGBMClassifier(**lgb), X, LABELS),
        "LGBMClassifier(3 classes)": (lightgbm.LGBMClassifier(**lgb), X, Y3),
        "LGBMRegressor": (lightgbm.LGBMRegressor(**lgb), X, Y_REG),
        "LGBMClassifier(pandas categorical)": (lightgbm.LGBMClassifier(**lgb), categorical, LABELS),
        "Pipeline(ColumnTransformer, LGBMClassifier)": (
            make_pipeline(preprocessing(), lightgbm.LGBMClassifier(**lgb)), df, LABELS),
        "Pipeline(StandardScaler, LGBMRegressor(n_jobs=4))": (
            make_pipeline(StandardScaler(), lightgbm.LGBMRegressor(n_jobs=4, **lgb)), X, Y_REG),
        "XGBClassifier(binary)": (xgboost.XGBClassifier(**xgb), X, Y2),
        "XGBClassifier(3 classes)": (xgboost.XGBClassifier(**xgb), X, Y3),
        "XGBRegressor": (xgboost.XGBRegressor(**xgb), X, Y_REG),
        "XGBClassifier(enable_categorical)": (
            xgboost.XGBClassifier(enable_categorical=True, tree_method="hist", **xgb), categorical, Y2),
        "Pipeline(ColumnTransformer, XGBRegressor)": (
            make_pipeline(preprocessing(), xgboost.XGBRegressor(n_jobs=3, **xgb)), df, Y_REG),
        "imblearn Pipeline(RandomOverSampler, LogisticRegression)": (
            imb_pipeline(StandardScaler(), RandomOverSampler(random_state=0), LogisticRegression()), X, Y2),
        "imblearn Pipeline(ColumnTransformer, SMOTE, LGBMClassifier)": (
            imb_pipeline(preprocessing(), SMOTE(random_state=0), lightgbm.LGBMClassifier(**lgb)), df, LABELS),
        "imblearn Pipeline(RandomUnderSampler, XGBClassifier)": (
            imb_pipeline(RandomUnderSampler(random_state=0), xgboost.XGBClassifier(**xgb)), X, Y2),
        "BalancedRandomForestClassifier": (BalancedRandomForestClassifier(
            n_estimators=5, random_state=0, sampling_strategy="all", replacement=True, bootstrap=False), X, Y2),
    }


MODELS = list(models())


def save(model, path: Path) -> Path:
    with quiet():
        joblib.dump(model, path)
    return path


def answers(model, data) -> dict[str, np.ndarray]:
    out = {}
    with quiet():
        for method in ("predict", "predict_proba"):
            if hasattr(model, method):
                out[method] = np.asarray(getattr(model, method)(data))
    return out


@pytest.mark.parametrize("name", MODELS)
def test_model_loads_and_predicts_exactly_as_its_library(tmp_path, name):
    model, data, y = models()[name]
    with quiet():
        model.fit(data, y)
    path = save(model, tmp_path / "model.joblib")
    loaded = load_model(path)
    with quiet():
        reference = joblib.load(path)
    want = answers(reference, data)
    got = answers(loaded.estimator, data)
    assert want.keys() == got.keys() and "predict" in got
    for method in want:
        np.testing.assert_array_equal(got[method], want[method], err_msg=f"{name}.{method}", strict=True)
    # one thread, said at upload
    final = loaded.estimator.steps[-1][1] if hasattr(loaded.estimator, "steps") else loaded.estimator
    if type(final).__module__.split(".")[0] in ("lightgbm", "xgboost"):
        assert final.n_jobs == 1
        assert any(w.startswith("Changed at upload: n_jobs=") for w in loaded.warnings), loaded.warnings


def test_boosters_predict_with_one_thread(tmp_path):
    with quiet():
        lgb = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1, num_threads=4).fit(X, Y2)
        xgb = xgboost.XGBClassifier(n_estimators=3, nthread=4).fit(X, Y2)
    lgb_loaded = load_model(save(lgb, tmp_path / "lgb.joblib")).estimator
    assert lgb_loaded.n_jobs == 1 and lgb_loaded.get_params()["num_threads"] == 1
    assert lgb_loaded._Booster.params["num_threads"] == 1
    xgb_loaded = load_model(save(xgb, tmp_path / "xgb.joblib")).estimator
    config = json.loads(xgb_loaded.get_booster().save_config())
    assert config["learner"]["generic_param"]["nthread"] == "1"
    assert xgb_loaded.n_jobs == 1 and xgb_loaded.get_params()["nthread"] == 1


# --- hostile boosters ----------------------------------------------------------------------------

def lgb_with_text(edit) -> object:
    """A fitted LGBMClassifier whose pickled booster text is ``edit(text)``."""
    with quiet():
        model = lightgbm.LGBMClassifier(n_estimators=4, num_leaves=7, verbose=-1).fit(X, Y3)
    state = model._Booster.__getstate__()
    state["_handle"] = edit(state["_handle"])
    model._Booster.__getstate__ = lambda: state
    return model


def first(pattern: str, replacement: str):
    def edit(text: str) -> str:
        edited = re.sub(pattern, replacement, text, count=1, flags=re.MULTILINE)
        assert edited != text
        return edited
    return edit


LGB_TAMPERED = {
    # same length: LightGBM would parse it and read past the row when predicting
    "split feature past the row": (first(r"^split_feature=\d", "split_feature=9"), UnsafeModelError,
                                   "a split on a feature the model does not have"),
    "child past the tree": (first(r"^left_child=\d+", "left_child=99999"), UnsafeModelError,
                            "a child index points past the tree"),
    "cycle": (first(r"^left_child=(\d+) (\d+)", r"left_child=\1 0"), UnsafeModelError, "reached twice"),
    "leaf past the leaves": (first(r"^right_child=\S+", "right_child=-99"), UnsafeModelError,
                             "a leaf index points past the tree's leaves"),
    "short array": (first(r"^threshold=\S+ ", "threshold="), UnsafeModelError, "threshold has"),
    # a longer text breaks tree_sizes, which made LightGBM end the process (std::terminate)
    "longer text": (first(r"^shrinkage=1$", "shrinkage=1.000000"), None, None),
    "garbage number": (first(r"^leaf_value=\S+", "leaf_value=1e99999x"), UnsafeModelError, "not a number"),
    "impossible header": (first(r"^max_feature_idx=\d+", "max_feature_idx=-7"), UnsafeModelError,
                          "an impossible number of features"),
    "unknown objective": (first(r"^objective=multiclass", "objective=nosuchthing"), ModelLoadError,
                          "LightGBM refused to read it"),
}


@pytest.mark.parametrize("case", list(LGB_TAMPERED))
def test_tampered_lightgbm_text_is_refused_without_crashing(tmp_path, case):
    edit, error, words = LGB_TAMPERED[case]
    path = save(lgb_with_text(edit), tmp_path / "model.joblib")
    if error is None:  # harmless once LightGBM parses tree by tree: it loads and predicts
        loaded = load_model(path).estimator
        with quiet():
            assert loaded.predict(X).shape == (N,)
        return
    with pytest.raises(error) as refusal:
        load_model(path)
    message = str(refusal.value)
    assert words in message
    assert "Stack trace" not in message and ".cpp" not in message and ".h," not in message


def ubjson(value) -> bytes:
    """A tiny UBJSON writer (XGBoost's binary serialisation): enough for its model and config."""
    def s(text: str) -> bytes:
        raw = text.encode()
        return b"L" + struct.pack(">q", len(raw)) + raw
    if isinstance(value, dict):
        return b"{" + b"".join(s(k) + ubjson(v) for k, v in value.items()) + b"}"
    if isinstance(value, list):
        return b"[" + b"".join(ubjson(v) for v in value) + b"]"
    if isinstance(value, bool):
        return b"T" if value else b"F"
    if isinstance(value, int):
        return b"L" + struct.pack(">q", value)
    if isinstance(value, float):
        return b"D" + struct.pack(">d", value)
    if value is None:
        return b"Z"
    return b"S" + s(value)


def xgb_with_model(edit) -> object:
    """A fitted XGBClassifier whose pickled booster holds ``edit(model_json)`` with its config."""
    with quiet():
        model = xgboost.XGBClassifier(n_estimators=3, max_depth=3).fit(X, Y3)
    booster = model.get_booster()
    document = {"Config": json.loads(booster.save_config()), "Model": json.loads(bytes(booster.save_raw("json")))}
    edit(document["Model"])
    booster.__getstate__ = lambda: {"handle": bytearray(ubjson(document))}
    return model


def tree0(model: dict) -> dict:
    return model["learner"]["gradient_booster"]["model"]["trees"][0]


def set_item(key: str, index: int, value):
    def edit(model: dict) -> None:
        tree0(model)[key][index] = value
    return edit


XGB_TAMPERED = {
    "unchanged": (lambda model: None, None, None),
    "child past the tree": (set_item("left_children", 0, 100000), UnsafeModelError, "a child index points past"),
    "cycle": (set_item("left_children", 1, 0), UnsafeModelError, "a child index points past"),
    "split feature past the row": (set_item("split_indices", 0, 4096), UnsafeModelError,
                                   "a split on a feature the model does not have"),
    "node with one child": (set_item("right_children", 0, -1), UnsafeModelError, "a node with one child"),
    "arrays of another length": (lambda m: tree0(m)["split_indices"].pop(), ModelLoadError,
                                 "XGBoost refused to read it"),
}


@pytest.mark.parametrize("case", list(XGB_TAMPERED))
def test_tampered_xgboost_model_is_refused_without_crashing(tmp_path, case):
    edit, error, words = XGB_TAMPERED[case]
    path = save(xgb_with_model(edit), tmp_path / "model.joblib")
    if error is None:  # the hand-written serialisation itself is faithful
        loaded = load_model(path).estimator
        with quiet():
            assert loaded.predict(X).shape == (N,)
        return
    with pytest.raises(error) as refusal:
        load_model(path)
    assert words in str(refusal.value)
    assert "Stack trace" not in str(refusal.value)


def test_booster_state_of_another_shape_is_refused(tmp_path):
    with quiet():
        xgb = xgboost.XGBClassifier(n_estimators=2).fit(X, Y2)
    raw = xgb.get_booster().__getstate__()["handle"]
    xgb.get_booster().__getstate__ = lambda: {"handle": np.frombuffer(bytes(raw), dtype=np.uint8).copy()}
    with pytest.raises(UnsafeModelError, match="holds only its model, as bytes"):
        load_model(save(xgb, tmp_path / "array.joblib"))
    lgb = lgb_with_text(lambda text: text)
    state = lgb._Booster.__getstate__()
    lgb._Booster.__getstate__ = lambda: {**state, "handle": 12345}
    with pytest.raises(UnsafeModelError, match="holds its model as text"):
        load_model(save(lgb, tmp_path / "handle.joblib"))


def test_estimator_that_disagrees_with_its_booster_is_refused(tmp_path):
    with quiet():
        lgb = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, Y3)
        xgb = xgboost.XGBClassifier(n_estimators=3).fit(X, Y3)
    lgb._n_features = lgb._n_features_in = 9
    with pytest.raises(UnsafeModelError, match="but its trees use 5 features"):
        load_model(save(lgb, tmp_path / "lgb_features.joblib"))
    with quiet():
        lgb = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, Y3)
    lgb._classes, lgb._n_classes = np.array([0, 1]), 2
    with pytest.raises(UnsafeModelError, match="class"):
        load_model(save(lgb, tmp_path / "lgb_classes.joblib"))
    xgb.n_classes_ = 7
    with pytest.raises(UnsafeModelError, match="n_classes_=7 but its booster has 3 classes"):
        load_model(save(xgb, tmp_path / "xgb_classes.joblib"))


def test_boost_models_are_not_loaded_from_skops_files(tmp_path):
    import skops.io as sio

    with quiet():
        model = lightgbm.LGBMClassifier(n_estimators=2, verbose=-1).fit(X, Y2)
        sio.dump(model, tmp_path / "model.skops")
    with pytest.raises(UnsafeModelError, match="save LightGBM and XGBoost models with joblib"):
        load_model(tmp_path / "model.skops")


@pytest.mark.parametrize("package,model", [
    ("lightgbm", "lightgbm.LGBMClassifier(n_estimators=2, verbose=-1)"),
    ("xgboost", "xgboost.XGBClassifier(n_estimators=2)"),
    ("imblearn", "imblearn.pipeline.make_pipeline(imblearn.over_sampling.RandomOverSampler(), "
                 "sklearn.linear_model.LogisticRegression())"),
])
def test_without_the_package_the_refusal_names_the_extra(tmp_path, package, model):
    """In a process where the package cannot be imported (as on a server without the extra)."""
    path = tmp_path / "model.joblib"
    with quiet():
        import imblearn.over_sampling  # noqa: F401
        import imblearn.pipeline  # noqa: F401
        import sklearn.linear_model

        fitted = eval(model, {"lightgbm": lightgbm, "xgboost": xgboost, "imblearn": imblearn,
                              "sklearn": sklearn}).fit(X, Y2)
    save(fitted, path)
    script = (f"import sys; sys.modules[{package!r}] = None\n"
              "from viewer.core.safe_load import load_model, ModelLoadError\n"
              f"try:\n    load_model({str(path)!r})\n"
              "except ModelLoadError as exc:\n    print(exc)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    message = result.stdout.strip()
    assert "install model-results-viewer[boost]" in message, message
    assert "web app and the workers" in message
