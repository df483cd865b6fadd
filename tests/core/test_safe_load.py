"""Tests for viewer.core.safe_load (model loading that cannot run a file's code)
and viewer.core.introspect (describe_model).

All models are fitted at test time into tmp directories; no binaries are
committed.  The hostile corpus tries to create a canary file when loaded; every
such file must be refused with UnsafeModelError naming the offender, and the
canary must never appear.
"""

from __future__ import annotations

import contextlib
import copy
import copyreg
import functools
import gzip
import importlib
import json
import operator
import os
import pickle
import socket
import struct
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from joblib.numpy_pickle import NumpyArrayWrapper
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import BisectingKMeans, KMeans
from sklearn.dummy import DummyClassifier
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import (
    ElasticNet,
    Lasso,
    LinearRegression,
    LogisticRegression,
    Ridge,
)
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    OneHotEncoder,
    OrdinalEncoder,
    SplineTransformer,
    StandardScaler,
)
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from viewer.core.introspect import describe_model
from viewer.core.safe_load import (
    LoadedModel,
    ModelLoadError,
    UnsafeModelError,
    detect_format,
    is_admitted_global,
    load_model,
)

THIS_MODULE = __name__  # "tests.core.test_safe_load"
# A re-export of a dangerous function from a module an operator might trust.
os_system_reexport = os.system

COMPRESSIONS = [0, ("zlib", 3), ("gzip", 3), ("bz2", 3), ("lzma", 3), ("xz", 3)]
COMPRESSION_IDS = ["raw", "zlib", "gzip", "bz2", "lzma", "xz"]


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_native_code():
    """One BLAS/OpenMP thread: on a 2-core machine thread start-up dominates
    the tiny predictions made here (HistGradientBoosting especially)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@contextlib.contextmanager
def quiet():
    """Silence warnings while *building* fixtures (fit/dump), never around
    load_model: loading must not leak warnings (pytest turns them into
    errors)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


# ---------------------------------------------------------------------------
# Data and fitted models
# ---------------------------------------------------------------------------

RNG = np.random.RandomState(0)
X_CLS = RNG.randn(80, 5)
Y_CLS = (X_CLS[:, 0] + 0.5 * X_CLS[:, 1] > 0).astype(int) + (X_CLS[:, 2] > 1).astype(int)
X_REG = RNG.randn(80, 5)
Y_REG = X_REG @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 0.1 * RNG.randn(80)


def make_frame(n: int = 60, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.RandomState(seed)
    df = pd.DataFrame(
        {
            "age": rng.randint(18, 80, n).astype(float),
            "income": rng.lognormal(10, 1, n),
            "city": rng.choice(["paris", "oslo", "lima"], n),
            "score": np.where(rng.rand(n) < 0.2, np.nan, rng.randn(n)),
        }
    )
    y = np.where(df["income"] > np.median(df["income"]), "high", "low")
    return df, y


def dataframe_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    df, y = make_frame()
    pre = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "income"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city"]),
            ("imp", SimpleImputer(), ["score"]),
        ]
    )
    with quiet():
        model = Pipeline([("pre", pre), ("clf", LogisticRegression())]).fit(df, y)
    return model, df


def hgb_categorical(regressor: bool = False):
    df, y = make_frame(80, seed=2)
    df = df.assign(city=pd.Categorical(df["city"]))[["age", "city", "score"]]
    target = df["age"].to_numpy() if regressor else y
    cls = HistGradientBoostingRegressor if regressor else HistGradientBoostingClassifier
    with quiet():
        model = cls(categorical_features="from_dtype", max_iter=10).fit(df, target)
    return model, df


# name -> (estimator factory, "cls"|"reg")
COVERAGE_MODELS = {
    "LogisticRegression": (lambda: LogisticRegression(), "cls"),
    "RandomForestClassifier": (lambda: RandomForestClassifier(n_estimators=10, random_state=0), "cls"),
    "RandomForestRegressor": (lambda: RandomForestRegressor(n_estimators=10, random_state=0), "reg"),
    "ExtraTreesClassifier": (lambda: ExtraTreesClassifier(n_estimators=10, random_state=0), "cls"),
    "ExtraTreesRegressor": (lambda: ExtraTreesRegressor(n_estimators=10, random_state=0), "reg"),
    "GradientBoostingClassifier": (
        lambda: GradientBoostingClassifier(n_estimators=10, random_state=0),
        "cls",
    ),
    "GradientBoostingRegressor": (
        lambda: GradientBoostingRegressor(n_estimators=10, random_state=0),
        "reg",
    ),
    "HistGradientBoostingClassifier": (
        lambda: HistGradientBoostingClassifier(max_iter=10, random_state=0),
        "cls",
    ),
    "HistGradientBoostingRegressor": (
        lambda: HistGradientBoostingRegressor(max_iter=10, random_state=0),
        "reg",
    ),
    "SVC(probability=True)": (lambda: SVC(probability=True, random_state=0), "cls"),
    "SVR": (lambda: SVR(), "reg"),
    "KNeighborsClassifier": (lambda: KNeighborsClassifier(algorithm="kd_tree"), "cls"),
    "KNeighborsRegressor": (lambda: KNeighborsRegressor(algorithm="ball_tree"), "reg"),
    "Ridge": (lambda: Ridge(), "reg"),
    "Lasso": (lambda: Lasso(alpha=0.01), "reg"),
    "ElasticNet": (lambda: ElasticNet(alpha=0.01), "reg"),
    "LinearRegression": (lambda: LinearRegression(), "reg"),
    "DecisionTreeClassifier": (lambda: DecisionTreeClassifier(random_state=0), "cls"),
    "DecisionTreeRegressor": (lambda: DecisionTreeRegressor(random_state=0), "reg"),
    "MLPClassifier": (lambda: MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, random_state=0), "cls"),
    "MLPRegressor": (lambda: MLPRegressor(hidden_layer_sizes=(8,), max_iter=50, random_state=0), "reg"),
    "SplineTransformer+Ridge": (lambda: make_pipeline(SplineTransformer(), Ridge()), "reg"),
    "KMeans": (lambda: KMeans(n_clusters=3, n_init=1, random_state=0), "reg"),
    "FunctionTransformer(np.log1p)+Ridge": (
        lambda: make_pipeline(FunctionTransformer(np.log1p), Ridge()),
        "reg_pos",
    ),
}


def fit_coverage_model(name: str):
    factory, kind = COVERAGE_MODELS[name]
    with quiet():
        if kind == "cls":
            return factory().fit(X_CLS, Y_CLS), X_CLS
        if kind == "reg_pos":
            return factory().fit(np.abs(X_REG), Y_REG), np.abs(X_REG)
        return factory().fit(X_REG, Y_REG), X_REG


@pytest.fixture(scope="module")
def coverage_models():
    models = {name: fit_coverage_model(name) for name in COVERAGE_MODELS}
    models["Pipeline(ColumnTransformer)+LogisticRegression"] = dataframe_pipeline()
    models["HistGradientBoostingClassifier(categorical)"] = hgb_categorical()
    models["HistGradientBoostingRegressor(categorical)"] = hgb_categorical(regressor=True)
    return models


@pytest.fixture(scope="module")
def fitted_pipeline():
    return dataframe_pipeline()[0]


def assert_same_predictions(original, loaded, X, name: str = "") -> None:
    """Same predictions; probabilities equal up to float rounding (memory
    alignment of reloaded arrays can change SIMD summation order)."""
    with quiet():
        np.testing.assert_array_equal(loaded.predict(X), original.predict(X), err_msg=name)
        if hasattr(original, "predict_proba"):
            assert hasattr(loaded, "predict_proba")
            np.testing.assert_allclose(
                loaded.predict_proba(X), original.predict_proba(X), rtol=1e-9, atol=1e-12, err_msg=name
            )


def save(obj, path: Path, fmt: str = "joblib", compress=0) -> Path:
    with quiet():
        if fmt == "joblib":
            joblib.dump(obj, path, compress=compress)
        elif fmt == "skops":
            sio.dump(obj, path)
        else:
            with open(path, "wb") as fh:
                pickle.dump(obj, fh, protocol=int(fmt[len("pickle") :]))
    return path


# ---------------------------------------------------------------------------
# Hostile corpus
# ---------------------------------------------------------------------------


class Reduce:
    """Pickles as ``func(*args)``: the classic pickle exploit primitive."""

    def __init__(self, func, *args):
        self.func = func
        self.args = args

    def __reduce__(self):
        return (self.func, self.args)

    def __call__(self, *args):  # lets Reduce objects be the callable of another
        raise AssertionError("never called by the tests")


class EvilState:
    """A custom type whose __setstate__ runs code (for skops)."""

    def __init__(self, canary: str):
        self.canary = canary

    def __setstate__(self, state):
        Path(state["canary"]).touch()
        self.__dict__.update(state)

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return X


class TrustedTransformer(TransformerMixin, BaseEstimator):
    """A harmless custom transformer, admitted only via trusted_modules."""

    def __init__(self, factor=2.0):
        self.factor = factor

    def fit(self, X, y=None):
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X):
        return np.asarray(X) * self.factor


def trusted_distance(a, b, **kwargs):
    """A custom metric (admitted only via trusted_modules)."""
    return float(np.abs(a - b).sum())


POSIX_SYSTEM = f"{os.system.__module__}.system"  # "posix.system" on Linux


def hostile_payloads(canary: Path) -> dict[str, tuple[object, list[str]]]:
    """name -> (object whose unpickling attacks, offenders expected)."""
    touch = f"touch {canary}"
    create = f"open({str(canary)!r}, 'w').close()"
    return {
        "os.system": (Reduce(os.system, touch), [POSIX_SYSTEM]),
        "subprocess.Popen": (Reduce(subprocess.Popen, ["touch", str(canary)]), ["subprocess.Popen"]),
        "builtins.eval": (Reduce(eval, create), ["builtins.eval"]),
        "builtins.exec": (Reduce(exec, create), ["builtins.exec"]),
        # getattr(importlib.import_module("os"), "system")("touch canary")
        "getattr-chain": (
            Reduce(Reduce(getattr, Reduce(importlib.import_module, "os"), "system"), touch),
            ["builtins.getattr", "importlib.import_module"],
        ),
        "importlib.import_module": (Reduce(importlib.import_module, "os"), ["importlib.import_module"]),
        "socket": (Reduce(socket.create_connection, ("127.0.0.1", 9)), ["socket.create_connection"]),
        "partial(os.system)": (Reduce(functools.partial(os.system, touch)), [POSIX_SYSTEM]),
        "copyreg(Popen)": (
            Reduce(copyreg._reconstructor, subprocess.Popen, object, None),
            ["subprocess.Popen"],
        ),
        "operator.methodcaller": (
            Reduce(Reduce(operator.methodcaller, "system", touch), Reduce(importlib.import_module, "os")),
            ["operator.methodcaller"],
        ),
        "FunctionTransformer(os.system)": (
            FunctionTransformer(func=os.system, kw_args={}),
            [POSIX_SYSTEM],
        ),
    }


PAYLOAD_NAMES = list(hostile_payloads(Path("x")))


def embed(payload, how: str, pipeline: Pipeline):
    """Hide the payload: bare, as a step of a fitted pipeline, or inside an
    object-dtype numpy array of a fitted model (joblib's NumpyArrayWrapper
    nested-pickle path)."""
    if how == "bare":
        return payload
    if how == "pipeline-step":
        evil = copy.deepcopy(pipeline)
        evil.steps.insert(1, ("evil", payload))
        return evil
    if how == "object-array":
        evil = copy.deepcopy(pipeline)
        evil.steps[-1][1].classes_ = np.array(["high", payload], dtype=object)
        return evil
    raise AssertionError(how)


def assert_refused(path: Path, canary: Path, expected: list[str], **kwargs) -> UnsafeModelError:
    with pytest.raises(UnsafeModelError) as info:
        load_model(path, **kwargs)
    err = info.value
    for name in expected:
        assert name in err.offenders, (name, err.offenders)
        assert name in str(err)
    assert not canary.exists(), "the hostile payload ran"
    return err


def test_corpus_payloads_are_live(tmp_path, fitted_pipeline):
    """Sanity check that the corpus really attacks: plain pickle/joblib
    loading of two payloads creates the canary (so the refusals below are
    meaningful).  Only our own payloads, in tmp_path."""
    canary = tmp_path / "canary"
    payload, _ = hostile_payloads(canary)["os.system"]
    pickle.loads(pickle.dumps(payload))
    assert canary.exists()
    canary.unlink()
    payload, _ = hostile_payloads(canary)["builtins.eval"]
    path = save(embed(payload, "object-array", fitted_pipeline), tmp_path / "m.joblib")
    joblib.load(path)  # joblib's own loader runs it via the object-array path
    assert canary.exists()


HOSTILE_LAYOUTS = [
    (how, compress)
    for how in ("bare", "object-array")
    for compress in COMPRESSIONS
] + [("pipeline-step", 0), ("pipeline-step", ("gzip", 3))]


@pytest.mark.parametrize(
    "how,compress",
    HOSTILE_LAYOUTS,
    ids=[f"{how}-{c if c == 0 else c[0]}" for how, c in HOSTILE_LAYOUTS],
)
@pytest.mark.parametrize("payload_name", PAYLOAD_NAMES)
def test_hostile_joblib_refused(tmp_path, fitted_pipeline, payload_name, how, compress):
    canary = tmp_path / "canary"
    payload, expected = hostile_payloads(canary)[payload_name]
    path = save(embed(payload, how, fitted_pipeline), tmp_path / "model.joblib", compress=compress)
    assert detect_format(path) == "joblib"
    assert_refused(path, canary, expected)


@pytest.mark.parametrize("protocol", range(0, 6))
@pytest.mark.parametrize("payload_name", PAYLOAD_NAMES)
def test_hostile_plain_pickle_refused(tmp_path, fitted_pipeline, payload_name, protocol):
    canary = tmp_path / "canary"
    payload, expected = hostile_payloads(canary)[payload_name]
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(embed(payload, "pipeline-step", fitted_pipeline), protocol=protocol))
    assert_refused(path, canary, expected)


def test_hostile_skops_custom_type_refused(tmp_path, fitted_pipeline):
    canary = tmp_path / "canary"
    evil = copy.deepcopy(fitted_pipeline)
    evil.steps.insert(1, ("evil", EvilState(str(canary))))
    path = save(evil, tmp_path / "model.skops", "skops")
    assert detect_format(path) == "skops"
    assert_refused(path, canary, [f"{THIS_MODULE}.EvilState"])


def test_hostile_skops_function_reference_refused(tmp_path, fitted_pipeline):
    canary = tmp_path / "canary"
    evil = copy.deepcopy(fitted_pipeline)
    evil.steps.insert(1, ("evil", FunctionTransformer(func=os.system)))
    path = save(evil, tmp_path / "model.skops", "skops")
    assert_refused(path, canary, [POSIX_SYSTEM])


def test_hostile_skops_operator_refused(tmp_path, fitted_pipeline):
    canary = tmp_path / "canary"
    evil = copy.deepcopy(fitted_pipeline)
    evil.steps.insert(1, ("evil", FunctionTransformer(func=operator.methodcaller("system"))))
    path = save(evil, tmp_path / "model.skops", "skops")
    err = assert_refused(path, canary, [])
    assert any("methodcaller" in o for o in err.offenders)


# -- hand-assembled pickles ----------------------------------------------------


def stack_global(module: str, name: str) -> bytes:
    m, n = module.encode(), name.encode()
    return b"\x8c" + bytes([len(m)]) + m + b"\x8c" + bytes([len(n)]) + n + b"\x93"


# Globals that must never be admitted, whatever they are used for.  Each is
# written as ``module.name()`` (protocol 4 STACK_GLOBAL + REDUCE).
REFUSED_GLOBALS = [
    ("builtins", "getattr"),
    ("builtins", "__import__"),
    ("builtins", "open"),
    ("builtins", "compile"),
    ("builtins", "globals"),
    ("builtins", "type"),  # 3-arg type() creates classes
    ("builtins", "range"),  # lazy huge iterables
    ("builtins", "breakpoint"),
    ("os", "system"),
    ("os", "popen"),
    ("posix", "system"),
    ("shutil", "rmtree"),
    ("sys", "modules"),
    ("pickle", "loads"),
    ("_pickle", "loads"),
    ("marshal", "loads"),
    ("types", "CodeType"),
    ("types", "FunctionType"),
    ("ctypes", "CDLL"),
    ("runpy", "run_path"),
    ("operator", "attrgetter"),
    ("operator", "itemgetter"),
    ("functools", "reduce"),
    ("copyreg", "__newobj__"),
    ("joblib", "load"),
    ("joblib.numpy_pickle", "load"),
    ("joblib.numpy_pickle", "NumpyUnpickler"),
    # legacy joblib wrappers: numpy.load(allow_pickle=True) on a file path
    # taken from the pickle
    ("joblib.numpy_pickle", "NDArrayWrapper"),
    ("joblib.numpy_pickle_compat", "NDArrayWrapper"),
    ("joblib.numpy_pickle_compat", "ZNDArrayWrapper"),
    ("numpy", "load"),
    ("numpy", "fromfile"),
    ("numpy", "memmap"),
    ("numpy", "frompyfunc"),
    ("numpy", "vectorize"),
    ("numpy", "void"),
    ("numpy.lib.format", "read_array"),
    ("numpy.ma.core", "MaskedConstant"),  # singleton: BUILD would mutate np.ma.masked
    ("numpy.testing", "assert_equal"),
    ("scipy.io", "loadmat"),
    ("scipy.sparse", "load_npz"),
    # sklearn functions are never admitted by module prefix
    ("sklearn.datasets", "fetch_openml"),
    ("sklearn.datasets._openml", "fetch_openml"),
    ("sklearn.utils", "resample"),
    ("sklearn.utils.validation", "check_is_fitted"),
    ("sklearn.metrics._scorer", "get_scorer"),
    ("sklearn.base", "clone"),
    ("sklearn.base", "copy"),  # a module re-exported as an attribute
    ("sklearn.utils._testing", "assert_allclose"),
    ("sklearn.utils._mocking", "CheckingClassifier"),  # test helper estimator
    ("sklearn.experimental.enable_iterative_imputer", "IterativeImputer"),
    ("sklearn.externals.array_api_compat", "numpy"),
]


@pytest.mark.parametrize("module,name", REFUSED_GLOBALS, ids=[f"{m}.{n}" for m, n in REFUSED_GLOBALS])
def test_refused_globals(tmp_path, module, name):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x04" + stack_global(module, name) + b")R.")
    err = assert_refused(path, tmp_path / "canary", [f"{module}.{name}"])
    assert isinstance(err, ModelLoadError)
    assert not is_admitted_global(module, name)


def test_refused_global_protocol0_and_compat_names(tmp_path):
    canary = tmp_path / "canary"
    path = tmp_path / "evil.pkl"
    path.write_bytes(f"cos\nsystem\n(S'touch {canary}'\ntR.".encode())
    assert_refused(path, canary, ["os.system"])
    # Python-2 style names are mapped (__builtin__ -> builtins) before checking.
    path.write_bytes(f"c__builtin__\neval\n(S'open({str(canary)!r}, \"w\")'\ntR.".encode())
    assert_refused(path, canary, ["builtins.eval"])


def test_several_offenders_are_all_reported(tmp_path):
    path = tmp_path / "evil.pkl"
    body = stack_global("posix", "system") + stack_global("subprocess", "Popen") + b"\x86."
    path.write_bytes(b"\x80\x04" + body)
    err = assert_refused(path, tmp_path / "canary", ["posix.system", "subprocess.Popen"])
    assert err.offenders == ["posix.system", "subprocess.Popen"]


def test_dotted_attribute_path_refused(tmp_path):
    # protocol 4 resolves "a.b.c" names with getattr chains in plain pickle
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x04" + stack_global("sklearn.base", "BaseEstimator.__init__.__globals__") + b".")
    assert_refused(path, tmp_path / "canary", ["sklearn.base.BaseEstimator.__init__.__globals__"])


def test_build_on_admitted_class_refused(tmp_path):
    """BUILD with slot state on a *class* would monkeypatch it process-wide."""
    path = tmp_path / "evil.pkl"
    path.write_bytes(
        b"\x80\x02csklearn.linear_model._logistic\nLogisticRegression\n"
        b"N}X\x07\x00\x00\x00predictcnumpy\nsum\ns\x86b."
    )
    err = assert_refused(path, tmp_path / "canary", [])
    assert "LogisticRegression" in err.offenders[0] and "state overwrite" in err.offenders[0]
    assert "predict" not in vars(LogisticRegression)


@pytest.mark.parametrize(
    "body",
    [
        # APPENDS on an estimator instance (pickle calls obj.extend/append)
        b"csklearn.linear_model._logistic\nLogisticRegression\n)R(K\x01e.",
        # SETITEMS on an ndarray (built the way numpy pickles arrays)
        b"cnumpy._core.multiarray\n_reconstruct\n(cnumpy\nndarray\nK\x00\x85U\x01btR(K\x00K\x01u.",
        # SETITEM on an estimator
        b"csklearn.linear_model._logistic\nLogisticRegression\n)RK\x00K\x01s.",
    ],
    ids=["appends-on-estimator", "setitems-on-ndarray", "setitem-on-estimator"],
)
def test_container_opcodes_only_on_containers(tmp_path, body):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x02" + body)
    err = assert_refused(path, tmp_path / "canary", [])
    assert err.offenders and "on a" in err.offenders[0]


def test_additems_only_on_sets(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x04}(K\x01\x90.")
    assert_refused(path, tmp_path / "canary", [])


def test_codecs_encode_limited_to_text_codecs(tmp_path):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"c_codecs\nencode\n(X\x03\x00\x00\x00abcX\x05\x00\x00\x00rot13tR.")
    assert_refused(path, tmp_path / "canary", ["_codecs.encode('rot13')"])


def test_trusted_modules_is_operator_only(tmp_path):
    model = make_pipeline(TrustedTransformer(), Ridge())
    with quiet():
        model.fit(X_REG, Y_REG)
    path = save(model, tmp_path / "custom.joblib")
    assert_refused(path, tmp_path / "canary", [f"{THIS_MODULE}.TrustedTransformer"])
    loaded = load_model(path, trusted_modules=(THIS_MODULE,))
    assert_same_predictions(model, loaded.estimator, X_REG)
    skops_path = save(model, tmp_path / "custom.skops", "skops")
    assert_refused(skops_path, tmp_path / "canary", [f"{THIS_MODULE}.TrustedTransformer"])
    loaded = load_model(skops_path, trusted_modules=(THIS_MODULE,))
    assert_same_predictions(model, loaded.estimator, X_REG)
    # A trusted module's re-export of os.system is still refused: only objects
    # *defined* in the trusted module are admitted.
    canary = tmp_path / "canary"
    evil = tmp_path / "reexport.pkl"
    evil.write_bytes(
        b"\x80\x04" + stack_global(THIS_MODULE, "os_system_reexport") + b"\x8c\x05touch\x85R."
    )
    assert_refused(evil, canary, [f"{THIS_MODULE}.os_system_reexport"], trusted_modules=(THIS_MODULE,))


def test_refused_custom_step_says_how_to_trust_its_module(tmp_path):
    """The refusal of a custom class names the real setting, says where the module must be
    importable, and points to the README section that explains it (which exists)."""
    with quiet():
        model = make_pipeline(TrustedTransformer(), Ridge()).fit(X_REG, Y_REG)
    err = assert_refused(save(model, tmp_path / "custom.joblib"), tmp_path / "canary",
                         [f"{THIS_MODULE}.TrustedTransformer"])
    message = str(err)
    assert "VIEWER_TRUSTED_MODULES" in message
    assert "trusted_modules" not in message.replace("VIEWER_TRUSTED_MODULES", "").replace(
        "#custom-steps-viewer_trusted_modules", "")  # the setting, never the loader's argument
    assert "importable by the web app and by the workers" in message
    assert "README.md#custom-steps-viewer_trusted_modules" in message
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "\n## Custom steps (VIEWER_TRUSTED_MODULES)\n" in readme


@pytest.mark.parametrize("prefix", ["os", "builtins", "sklearn", "numpy.random", "joblib", "subprocess", "viewer",
                                    "lightgbm", "xgboost", "imblearn"])
def test_trusted_modules_cannot_name_core_packages(tmp_path, fitted_pipeline, prefix):
    path = save(fitted_pipeline, tmp_path / "m.joblib")
    with pytest.raises(ValueError):
        load_model(path, trusted_modules=(prefix,))


# -- tampered native structures ----------------------------------------------


def tamper_tree(est):
    est = copy.deepcopy(est)
    state = est.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**6
    state["nodes"] = nodes
    est.tree_.__setstate__(state)
    return est


def tamper_tree_feature(est):
    est = copy.deepcopy(est)
    state = est.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["feature"][0] = 10**6
    state["nodes"] = nodes
    est.tree_.__setstate__(state)
    return est


def tamper_forest_width(est):
    est = copy.deepcopy(est)
    est.n_features_in_ = 2  # trees use 5 features but forest validates only 2
    return est


def tamper_hgb(est):
    est = copy.deepcopy(est)
    pred = est._predictors[0][0]
    pred.nodes = pred.nodes.copy()
    pred.nodes["left"][0] = 10**6
    return est


def tamper_hgb_feature(est):
    est = copy.deepcopy(est)
    pred = est._predictors[0][0]
    pred.nodes = pred.nodes.copy()
    internal = np.flatnonzero(pred.nodes["is_leaf"] == 0)
    pred.nodes["feature_idx"][internal[0]] = 50
    return est


def tamper_kdtree(est):
    est = copy.deepcopy(est)
    state = list(est._tree.__getstate__())
    state[1] = state[1].copy()
    state[1][0] = 10**6
    est._tree.__setstate__(tuple(state))
    return est


def tamper_svc(est):
    est = copy.deepcopy(est)
    est._intercept_ = est._intercept_[:1]
    return est


def tamper_sparse(est):
    est = copy.deepcopy(est)
    est.sparsify()
    est.coef_.indices[0] = 10**6
    return est


def tamper_knn_width(est):
    est = copy.deepcopy(est)
    est._fit_X = np.ascontiguousarray(est._fit_X[:, :2])  # brute force reads 5 columns
    return est


def tamper_kmeans(est):
    est = copy.deepcopy(est)
    est.cluster_centers_ = np.ascontiguousarray(est.cluster_centers_[:, :2])
    return est


def tamper_gb_width(est):
    est = copy.deepcopy(est)
    # predict_stages() would write a second output column that does not exist
    est.estimators_ = np.concatenate([est.estimators_, est.estimators_], axis=1)
    return est


def tamper_spline(est):
    est = copy.deepcopy(est)
    est.steps[0][1].bsplines_[0].k = 40  # evaluation trusts len(t) >= 2k + 2
    return est


def tamper_mt19937(est):
    est = copy.deepcopy(est)
    state = list(est.random_state.get_state())
    state[2] = 10**7  # numpy does not bounds-check the MT19937 position
    est.random_state.set_state(tuple(state))
    return est


TAMPER_CASES = {
    "tree-child": (lambda: DecisionTreeClassifier(random_state=0), tamper_tree),
    "tree-feature": (lambda: DecisionTreeRegressor(random_state=0), tamper_tree_feature),
    "forest-width": (lambda: RandomForestClassifier(n_estimators=3, random_state=0), tamper_forest_width),
    "hgb-child": (lambda: HistGradientBoostingClassifier(max_iter=3), tamper_hgb),
    "hgb-feature": (lambda: HistGradientBoostingRegressor(max_iter=3), tamper_hgb_feature),
    "kdtree-index": (lambda: KNeighborsClassifier(algorithm="kd_tree"), tamper_kdtree),
    "libsvm-intercept": (lambda: SVC(), tamper_svc),
    "sparse-indices": (lambda: LogisticRegression(), tamper_sparse),
    "knn-brute-width": (lambda: KNeighborsClassifier(algorithm="brute"), tamper_knn_width),
    "kmeans-centers": (lambda: KMeans(n_clusters=2, n_init=1, random_state=0), tamper_kmeans),
    "gb-stage-width": (lambda: GradientBoostingRegressor(n_estimators=3), tamper_gb_width),
    "spline-knots": (lambda: make_pipeline(SplineTransformer(), Ridge()), tamper_spline),
    "mt19937-position": (
        lambda: DummyClassifier(strategy="stratified", random_state=np.random.RandomState(0)),
        tamper_mt19937,
    ),
}


@pytest.mark.parametrize("fmt", ["joblib", "skops"])
@pytest.mark.parametrize("case", list(TAMPER_CASES))
def test_tampered_native_structures_refused(tmp_path, case, fmt):
    factory, tamper = TAMPER_CASES[case]
    with quiet():
        X, y = (X_REG, Y_REG) if "Regressor" in type(factory()).__name__ else (X_CLS, Y_CLS)
        original = factory().fit(X, y)
        est = tamper(original)
    # the untampered model loads (so the refusal below is about the tampering)
    assert_same_predictions(original, load_model(save(original, tmp_path / f"ok.{fmt}", fmt)).estimator, X)
    path = save(est, tmp_path / f"model.{fmt}", fmt)
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert "inconsistent" in str(info.value)


def test_vectorizer_reading_files_refused(tmp_path):
    with quiet():
        model = make_pipeline(CountVectorizer(), LogisticRegression()).fit(
            ["red apple", "green pear", "red cherry", "green apple"], [0, 1, 0, 1]
        )
    model.steps[0][1].input = "filename"  # transform() would open the paths in X
    path = save(model, tmp_path / "text.joblib")
    err = assert_refused(path, tmp_path / "canary", [])
    assert "input='filename'" in err.offenders[0]


def test_model_arrays_cannot_be_bound_as_numpy_outputs(tmp_path):
    """A transform step must not be able to overwrite the model's own
    (validated) arrays: no ``out=`` bound to an array, no positional
    arguments bound to numpy functions through functools.partial."""
    with quiet():
        knn = KNeighborsClassifier(algorithm="kd_tree").fit(X_CLS, Y_CLS)
    idx = knn._tree.__getstate__()[1]
    cases = {
        "kw_args-out": FunctionTransformer(np.negative, kw_args={"out": idx}),
        "partial-positional": FunctionTransformer(functools.partial(np.mean, idx, None, None, idx)),
    }
    for name, step in cases.items():
        model = Pipeline([("evil", step), ("knn", knn)])
        path = save(model, tmp_path / f"{name}.joblib")
        with pytest.raises(UnsafeModelError):
            load_model(path)


@pytest.mark.parametrize(
    "func",
    [np.ndarray, np.ma.MaskedArray, np.matrix, "KDTree", "reconstruct"],
    ids=["ndarray", "MaskedArray", "matrix", "KDTree", "_reconstruct"],
)
def test_low_level_constructors_cannot_be_stored_as_callables(tmp_path, fitted_pipeline, func):
    """FunctionTransformer(func=np.ndarray, kw_args={"dtype": object,
    "buffer": ...}) would build object pointers from raw bytes at predict
    time; such constructors are refused as stored values."""
    if func == "KDTree":
        from sklearn.neighbors import KDTree as func
    elif func == "reconstruct":
        from numpy._core.multiarray import _reconstruct as func
    model = copy.deepcopy(fitted_pipeline)
    model.steps.insert(1, ("evil", FunctionTransformer(func=func, kw_args={"dtype": object})))
    for fmt in ("joblib", "skops"):
        path = save(model, tmp_path / f"m.{fmt}", fmt)
        with pytest.raises(UnsafeModelError) as info:
            load_model(path)
        assert any("stored as a callable" in o or "via" in o for o in info.value.offenders), info.value


def test_distance_metric_keywords_are_checked(tmp_path):
    """The walk reaches into Cython objects: a BallTree's PyFuncDistance
    keeps its function and keyword arguments in C fields."""
    with quiet():
        knn = KNeighborsClassifier(algorithm="ball_tree", metric=trusted_distance).fit(X_CLS, Y_CLS)
    path = save(knn, tmp_path / "ok.joblib")
    assert type(load_model(path, trusted_modules=(THIS_MODULE,)).estimator) is KNeighborsClassifier
    state = knn._tree.__getstate__()
    metric_state = list(state[11].__getstate__())
    metric_state[4] = {"out": state[1]}  # the tree's own index array
    state[11].__setstate__(tuple(metric_state))
    path = save(knn, tmp_path / "evil.joblib")
    with pytest.raises(UnsafeModelError) as info:
        load_model(path, trusted_modules=(THIS_MODULE,))
    assert "keyword argument 'out' bound to an array" in info.value.offenders


@pytest.mark.parametrize("algorithm", ["lloyd", "elkan"])
def test_bisecting_kmeans_loads_and_its_kmeans_loop_stays_where_fit_keeps_it(tmp_path, algorithm):
    """BisectingKMeans keeps the k-means loop it fits with (a function running Cython loops that
    trust their arguments' shapes); only fit calls it. Anywhere else the model is refused."""
    with quiet():
        model = BisectingKMeans(n_clusters=3, random_state=0, algorithm=algorithm).fit(X_CLS)
    path = save(model, tmp_path / "bkm.joblib")
    assert_same_predictions(model, load_model(path).estimator, X_CLS)
    loop = f"sklearn.cluster._kmeans._kmeans_single_{algorithm}"
    stolen = make_pipeline(FunctionTransformer(model._kmeans_single), Ridge())  # (fitting would call it)
    err = assert_refused(save(stolen, tmp_path / "ft.joblib"), tmp_path / "canary",
                         [f"{loop} (stored as FunctionTransformer.func)"])
    assert "BisectingKMeans._kmeans_single" in str(err)
    wrapped = make_pipeline(FunctionTransformer(functools.partial(model._kmeans_single, max_iter=3)), Ridge())
    assert_refused(save(wrapped, tmp_path / "partial.joblib"), tmp_path / "canary",
                   [f"{loop} (stored as partial.func)"])
    elsewhere = BisectingKMeans(n_clusters=3, random_state=0).fit(X_CLS)
    elsewhere._kmeans_single, elsewhere.helper = None, model._kmeans_single  # same class, other slot
    assert_refused(save(elsewhere, tmp_path / "slot.joblib"), tmp_path / "canary",
                   [f"{loop} (stored as BisectingKMeans.helper)"])
    path = tmp_path / "call.pkl"
    path.write_bytes(b"\x80\x04" + stack_global("sklearn.cluster._kmeans", f"_kmeans_single_{algorithm}") + b")R.")
    assert_refused(path, tmp_path / "canary", [f"{loop} (called while loading)"])


def test_column_selector_is_never_called_after_load(tmp_path):
    """make_column_selector runs a regex over column names when called; scikit-learn calls it only
    while fitting a ColumnTransformer. Stored where a prediction would call it (a
    FunctionTransformer's func, a partial), or with a pattern that is not text, it is refused."""
    from sklearn.compose import make_column_selector

    df, y = make_frame()
    redos = make_column_selector(pattern="^(a+)+$")
    with quiet():
        model = make_pipeline(
            ColumnTransformer([("num", StandardScaler(), make_column_selector(dtype_include="number"))]),
            FunctionTransformer(redos), LogisticRegression())
        model.steps[1][1].fit(df)
    model.steps[0][1].fit(df[["age", "income"]])
    err = assert_refused(save(model, tmp_path / "ft.joblib"), tmp_path / "canary",
                         ["make_column_selector (stored as FunctionTransformer.func)"])
    assert "ColumnTransformer's column specification" in str(err)
    with quiet():
        ok = make_pipeline(ColumnTransformer([("num", SimpleImputer(), make_column_selector(pattern="^(a+)+$|score"))]),
                           Ridge()).fit(df, df["age"])
    loaded = load_model(save(ok, tmp_path / "ok.joblib")).estimator
    slow_names = df.rename(columns={"age": "a" * 40 + "!"})  # catastrophic for that pattern, if it ran
    np.testing.assert_array_equal(loaded.predict(slow_names), ok.predict(slow_names))
    ok.steps[0][1].transformers[0][2].pattern = ["^a"]
    assert_refused(save(ok, tmp_path / "bad.joblib"), tmp_path / "canary", ["sklearn.compose._column_transformer.make_column_selector"])


@pytest.mark.parametrize(
    "body,offender",
    [
        # admitted functions are references only; calling them while loading is refused
        (stack_global("numpy", "log1p") + b"K\x01\x85R.", "numpy.log1p (called while loading)"),
        (
            stack_global("sklearn.utils.validation", "check_array") + b"]\x85R.",
            "sklearn.utils.validation.check_array (called while loading)",
        ),
        # a partial *instance* is not callable while loading either
        (
            stack_global("functools", "partial") + stack_global("numpy", "negative") + b"\x85R)R.",
            "functools.partial (called while loading)",
        ),
        # constructors that convert array arguments in native code
        (
            stack_global("scipy.sparse._csr", "csr_matrix") + b"K\x02K\x02\x86\x85R.",
            "scipy.sparse._csr.csr_matrix (called while loading)",
        ),
        (
            stack_global("sklearn.neighbors._kd_tree", "KDTree") + b"]\x85R.",
            "sklearn.neighbors._kd_tree.KDTree (called while loading)",
        ),
        # copyreg._reconstructor(csr_matrix, csr_matrix, state) would call csr_matrix.__init__
        (
            stack_global("copyreg", "_reconstructor")
            + stack_global("scipy.sparse._csr", "csr_matrix")
            + stack_global("scipy.sparse._csr", "csr_matrix")
            + b"N\x87R.",
            "copyreg._reconstructor(scipy.sparse._csr.csr_matrix, scipy.sparse._csr.csr_matrix)",
        ),
        # numpy.random ctors only accept numpy's own bit-generator constructor
        (
            stack_global("numpy.random._pickle", "__randomstate_ctor")
            + b"\x8c\x07MT19937"
            + stack_global("numpy", "negative")
            + b"\x86R.",
            "numpy.random constructor numpy.negative",
        ),
        # setting an object's state twice
        (
            stack_global("sklearn.linear_model._logistic", "LogisticRegression")
            + b")\x81}b}b.",
            "sklearn.linear_model._logistic.LogisticRegression (state set twice)",
        ),
    ],
    ids=["ufunc", "check_array", "partial", "csr_matrix", "KDTree", "reconstructor", "randomstate-ctor", "double-build"],
)
def test_only_constructors_run_while_loading(tmp_path, body, offender):
    path = tmp_path / "evil.pkl"
    path.write_bytes(b"\x80\x04" + body)
    err = assert_refused(path, tmp_path / "canary", [])
    assert offender in err.offenders, err.offenders


MEMORY_PROBES = textwrap.dedent(
    r"""
    import struct, sys, warnings
    import numpy as np
    from viewer.core.safe_load import load_model, ModelLoadError, UnsafeModelError

    def sg(module, name):
        m, n = module.encode(), name.encode()
        return b"\x8c" + bytes([len(m)]) + m + b"\x8c" + bytes([len(n)]) + n + b"\x93"

    def s(text):
        t = text.encode()
        return b"\x8c" + bytes([len(t)]) + t

    def dtype(code):
        return sg("numpy", "dtype") + s(code) + b"\x89\x88\x87R"

    raw = b"\x96" + struct.pack("<Q", 8) + b"A" * 8  # bytearray of fake pointers
    probes = {
        # ndarray(shape, object, buffer=...) would turn bytes into PyObject*
        "ndarray-buffer": sg("numpy", "ndarray") + b"(K\x01\x85" + dtype("O") + raw + b"tR.",
        "ndarray-newobj": sg("numpy", "ndarray") + b"(K\x01\x85" + dtype("O") + raw + b"t\x81.",
        # dtype.__setstate__ on a dtype already used by an array would add an
        # object field over raw bytes; the loader builds a fresh dtype instead
        "dtype-mutation": (
            dtype("V8") + b"\x94"  # memo 0: D
            + sg("numpy._core.numeric", "_frombuffer")
            + b"(C\x08AAAAAAAAh\x00K\x01\x85" + s("C") + b"tR\x94"  # memo 1: A
            + b"h\x00(K\x03" + s("|") + b"N" + s("a") + b"\x85}" + s("a")
            + b"(" + dtype("O") + b"K\x00t" + b"sK\x08K\x01K\x1btb0"  # BUILD D
            + sg("sklearn.linear_model._logistic", "LogisticRegression")
            + b")\x81}" + s("coef_") + b"h\x01sb."
        ),
        # dtype.__setstate__ would accept a bytes field name (heap corruption)
        # and object fields overlapping integer fields (fake pointers)
        "dtype-bytes-field-name": (
            dtype("V8") + b"(K\x03" + s("|") + b"N" + s("a") + b"\x85}C\x01a("
            + dtype("i8") + b"K\x00tsK\x08K\x01K\x10tb."
        ),
        # numpy's ndarray.__setstate__ reads past a too-short object list
        "object-array-short-list": (
            sg("numpy._core.multiarray", "_reconstruct") + b"(" + sg("numpy", "ndarray")
            + b"K\x00\x85C\x01btR(K\x01K\xb4\x85" + dtype("O") + b"\x89]("
            + s("age") + s("income") + b"etb."
        ),
        "dtype-object-overlap": (
            dtype("V8") + b"(K\x03" + s("|") + b"N" + s("a") + s("b") + b"\x86}" + s("a") + b"("
            + dtype("O") + b"K\x00ts" + s("b") + b"(" + dtype("i8") + b"K\x00ts"
            + b"K\x08K\x01K\x1btb."
        ),
    }
    for name, body in probes.items():
        path = sys.argv[1] + "/" + name + ".pkl"
        with open(path, "wb") as fh:
            fh.write(b"\x80\x04" + body)
        try:
            loaded = load_model(path)
            coef = loaded.estimator.coef_
            print(name, "loaded", coef.dtype.hasobject, flush=True)
        except UnsafeModelError as exc:
            print(name, "unsafe", exc.offenders, flush=True)
        except ModelLoadError as exc:
            print(name, "error", exc, flush=True)
    """
)


def test_memory_corruption_primitives_are_closed(tmp_path):
    """Run in a subprocess: if a defence regressed, these would segfault
    (each of them crashed numpy/the interpreter without the loader's checks)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBES, str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=120,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    lines = {line.split(" ", 1)[0]: line for line in proc.stdout.splitlines()}
    assert "numpy.ndarray (called while loading)" in lines["ndarray-buffer"]
    assert "numpy.ndarray.__new__ (called while loading)" in lines["ndarray-newobj"]
    assert lines["dtype-mutation"] == "dtype-mutation loaded False"
    assert lines["dtype-bytes-field-name"].startswith("dtype-bytes-field-name error")
    assert "overlapping object fields" in lines["dtype-object-overlap"]
    assert "does not match its shape" in lines["object-array-short-list"]


MUTATION_FUZZ = textwrap.dedent(
    r"""
    import io, pickle, random, sys, warnings
    import numpy as np, joblib
    warnings.simplefilter("ignore")
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC
    from viewer.core.safe_load import ModelLoadError, load_model

    rng = np.random.RandomState(0)
    X, y = rng.randn(40, 4), rng.randint(0, 3, 40)
    models = [
        RandomForestClassifier(n_estimators=2, max_depth=3, random_state=0).fit(X, y),
        HistGradientBoostingClassifier(max_iter=2).fit(X, y),
        KNeighborsClassifier(algorithm="ball_tree").fit(X, y),
        SVC().fit(X, y),
    ]
    r = random.Random(1234)
    path = sys.argv[1] + "/mutant.bin"
    outcomes = {"ok": 0, "refused": 0}
    for i in range(int(sys.argv[2])):
        model = models[i % len(models)]
        if i % 2:
            data = bytearray(pickle.dumps(model, protocol=r.choice([2, 4, 5])))
        else:
            buf = io.BytesIO(); joblib.dump(model, buf); data = bytearray(buf.getvalue())
        for _ in range(r.randint(1, 4)):
            pos = r.randrange(2, len(data))
            data[pos] = r.randrange(256)
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            loaded = load_model(path)
        except ModelLoadError:
            outcomes["refused"] += 1
            continue
        try:
            loaded.estimator.predict(X[:3])
        except Exception:
            pass  # Python-level errors from corrupted state are fine; crashes are not
        outcomes["ok"] += 1
    print(outcomes)
    """
)


def test_mutated_model_files_never_crash_the_process(tmp_path):
    """Random byte flips in real model files: every outcome must be a clean
    load or a ModelLoadError -- never a segfault or another exception type.
    (A longer run of this found the dtype.__setstate__ heap corruption that
    test_memory_corruption_primitives_are_closed pins down.)"""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", MUTATION_FUZZ, str(tmp_path), "300"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        timeout=240,
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
    assert "refused" in proc.stdout


# ---------------------------------------------------------------------------
# Corrupt, truncated, empty, bombs
# ---------------------------------------------------------------------------


def assert_load_error(path: Path, **kwargs) -> ModelLoadError:
    with pytest.raises(ModelLoadError) as info:
        load_model(path, **kwargs)
    assert not isinstance(info.value, UnsafeModelError), info.value
    assert type(info.value) is ModelLoadError
    return info.value


@pytest.mark.parametrize("fmt,compress", [("joblib", 0), ("joblib", ("gzip", 3)), ("joblib", ("xz", 3)), ("pickle5", 0), ("skops", 0)])
def test_truncated_file(tmp_path, fitted_pipeline, fmt, compress):
    path = save(fitted_pipeline, tmp_path / "full", fmt, compress)
    data = path.read_bytes()
    truncated = tmp_path / "truncated.joblib"
    truncated.write_bytes(data[: len(data) // 2])
    assert_load_error(truncated)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.joblib"
    path.write_bytes(b"")
    err = assert_load_error(path)
    assert "empty" in str(err)


@pytest.mark.parametrize("seed", range(8))
def test_random_bytes(tmp_path, seed):
    rng = np.random.RandomState(seed)
    data = rng.bytes(4096)
    if seed == 1:
        data = b"\x80\x04" + data  # looks like a pickle header
    if seed == 2:
        data = b"\x1f\x8b" + data  # looks like gzip
    if seed == 3:
        data = b"PK\x03\x04" + data  # looks like zip
    path = tmp_path / "random.joblib"
    path.write_bytes(data)
    assert_load_error(path)


@pytest.mark.parametrize(
    "text",
    [
        "sepal_length,sepal_width,species\n5.1,3.5,setosa\n4.9,3.0,setosa\n",
        "city,population\nparis,2100000\noslo,700000\n",
        "(c,d\n1,2.",  # starts/ends like a protocol-0 pickle
    ],
)
def test_csv_renamed_joblib(tmp_path, text):
    path = tmp_path / "data.joblib"
    path.write_text(text)
    assert_load_error(path)


@pytest.mark.parametrize(
    "obj",
    [{"weights": [1, 2, 3]}, np.arange(10), "just a string", LogisticRegression],
    ids=["dict", "ndarray", "str", "class"],
)
def test_non_model_objects(tmp_path, obj):
    path = save(obj, tmp_path / "thing.joblib")
    err = assert_load_error(path)
    assert "not contain a scikit-learn model" in str(err)


def test_legacy_joblib_format(tmp_path):
    path = tmp_path / "old.joblib"
    path.write_bytes(b"ZF0x1e            x\x9c" + b"\x00" * 32)
    err = assert_load_error(path)
    assert "legacy" in str(err)


def test_gzip_decompression_bomb(tmp_path):
    size = 64 * 2**20
    # A pickle frame declaring 64 MiB of payload, compressed to ~64 KiB.
    payload = b"\x80\x04\x95" + struct.pack("<Q", size) + b"\x00" * size
    path = tmp_path / "bomb.joblib"
    path.write_bytes(gzip.compress(payload, 9))
    assert path.stat().st_size < 1 * 2**20
    err = assert_load_error(path, max_decompressed_bytes=4 * 2**20)
    assert "max_decompressed_bytes" in str(err)


def test_limit_applies_to_real_compressed_models(tmp_path, fitted_pipeline):
    path = save(fitted_pipeline, tmp_path / "m.joblib", compress=("lzma", 3))
    assert_load_error(path, max_decompressed_bytes=256)
    assert load_model(path).estimator is not None


def test_skops_zip_bomb(tmp_path):
    path = tmp_path / "bomb.skops"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("schema.json", "{}")
        zf.writestr("big.npy", b"\x00" * (16 * 2**20))
    err = assert_load_error(path, max_decompressed_bytes=2**20)
    assert "max_decompressed_bytes" in str(err)


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x05\x96" + struct.pack("<Q", 2**40) + b".",  # BYTEARRAY8 of 1 TiB
        b"c__builtin__\nbytes\n(J\x00\x00\x00\x40tR.",  # bytes(1 GiB)
        b"\x80\x02P1\n.",  # persistent id
        b"\x80\x02\x82\x01.",  # copyreg extension registry
        b"\x80\x04\x8c\x0fsklearn.nothere\x8c\x03Foo\x93.",  # missing sklearn module
        # a (10**9,) object array placeholder from a few bytes
        b"\x80\x04"
        + stack_global("numpy._core.multiarray", "_reconstruct")
        + b"("
        + stack_global("numpy", "ndarray")
        + b"J\x00\xca\x9a\x3b\x85C\x01OtR.",
    ],
    ids=["bytearray8", "bytes-int", "persid", "ext1", "missing-sklearn-name", "huge-placeholder"],
)
def test_malformed_pickles_are_load_errors(tmp_path, data):
    path = tmp_path / "bad.pkl"
    path.write_bytes(data)
    assert_load_error(path)


def test_array_wrapper_with_huge_shape(tmp_path):
    wrapper = NumpyArrayWrapper(np.ndarray, (10**12,), "C", np.dtype("f8"))
    path = tmp_path / "huge.pkl"
    path.write_bytes(pickle.dumps(wrapper, protocol=2))
    err = assert_load_error(path)
    assert "larger than the remaining data" in str(err)


# ---------------------------------------------------------------------------
# Format detection, versions, warnings
# ---------------------------------------------------------------------------


def test_detect_format_by_content_not_name(tmp_path, fitted_pipeline):
    assert detect_format(save(fitted_pipeline, tmp_path / "a.skops", "joblib")) == "joblib"
    assert detect_format(save(fitted_pipeline, tmp_path / "b.pkl", "skops")) == "skops"
    assert detect_format(save(fitted_pipeline, tmp_path / "c.txt", "joblib", ("bz2", 3))) == "joblib"
    assert detect_format(save(fitted_pipeline, tmp_path / "d.bin", "pickle0")) == "joblib"
    loaded = load_model(tmp_path / "b.pkl")
    assert isinstance(loaded, LoadedModel) and loaded.format == "skops"
    with pytest.raises(FileNotFoundError):  # callers map a missing artifact themselves
        load_model(tmp_path / "missing.joblib")


@pytest.mark.parametrize("fmt", ["joblib", "skops"])
def test_saved_version_and_warnings_are_reported(tmp_path, monkeypatch, fmt):
    import sklearn
    import sklearn.base

    with quiet():
        model = LogisticRegression().fit(X_CLS, Y_CLS)
    with monkeypatch.context() as m:
        m.setattr(sklearn.base, "__version__", "1.0.0")
        path = save(model, tmp_path / f"old.{fmt}", fmt)
    loaded = load_model(path)  # must not raise InconsistentVersionWarning
    assert loaded.saved_sklearn_version == "1.0.0"
    assert any("InconsistentVersionWarning" in w and "1.0.0" in w for w in loaded.warnings)
    assert_same_predictions(model, loaded.estimator, X_CLS)

    current = load_model(save(model, tmp_path / f"new.{fmt}", fmt))
    assert current.saved_sklearn_version == sklearn.__version__
    assert current.warnings == []


def test_numpy1_module_names_are_accepted(tmp_path):
    """Pickles written with numpy 1.x reference numpy.core.*; they load
    without importing the deprecated numpy.core shim (no warnings)."""
    with quiet():
        model = LogisticRegression().fit(X_CLS, Y_CLS)
    data = pickle.dumps(model, protocol=2).replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "np1.pkl"
    path.write_bytes(data)
    assert_same_predictions(model, load_model(path).estimator, X_CLS)


# ---------------------------------------------------------------------------
# Coverage: real models load and predict identically
# ---------------------------------------------------------------------------

COVERAGE_NAMES = list(COVERAGE_MODELS) + [
    "Pipeline(ColumnTransformer)+LogisticRegression",
    "HistGradientBoostingClassifier(categorical)",
    "HistGradientBoostingRegressor(categorical)",
]


@pytest.mark.parametrize(
    "fmt,compress",
    [("joblib", 0), ("joblib", ("zlib", 3)), ("pickle5", 0), ("skops", 0)],
    ids=["joblib", "joblib-zlib", "pickle5", "skops"],
)
@pytest.mark.parametrize("name", COVERAGE_NAMES)
def test_models_load_and_predict_identically(tmp_path, coverage_models, name, fmt, compress):
    model, X = coverage_models[name]
    path = save(model, tmp_path / "model.bin", fmt, compress)
    loaded = load_model(path)
    assert loaded.format == ("skops" if fmt == "skops" else "joblib")
    assert loaded.warnings == []
    assert type(loaded.estimator) is type(model)
    assert_same_predictions(model, loaded.estimator, X)


@pytest.mark.parametrize("compress", COMPRESSIONS, ids=COMPRESSION_IDS)
@pytest.mark.parametrize(
    "name",
    ["Pipeline(ColumnTransformer)+LogisticRegression", "RandomForestClassifier", "HistGradientBoostingClassifier"],
)
def test_every_joblib_compression_loads(tmp_path, coverage_models, name, compress):
    model, X = coverage_models[name]
    path = save(model, tmp_path / "model.joblib", "joblib", compress)
    assert_same_predictions(model, load_model(path).estimator, X)


def test_plain_pickle_protocols_load(tmp_path, coverage_models):
    model, X = coverage_models["Pipeline(ColumnTransformer)+LogisticRegression"]
    for protocol in range(0, 6):
        path = save(model, tmp_path / f"p{protocol}.pkl", f"pickle{protocol}")
        assert_same_predictions(model, load_model(path).estimator, X)


# ---------------------------------------------------------------------------
# describe_model
# ---------------------------------------------------------------------------


def test_describe_kinds():
    with quiet():
        clf = LogisticRegression().fit(X_CLS, Y_CLS)
        reg = make_pipeline(StandardScaler(), Ridge()).fit(X_REG, Y_REG)
        km = KMeans(n_clusters=2, n_init=1, random_state=0).fit(X_CLS)
        scaler = StandardScaler().fit(X_CLS)
    assert describe_model(clf).kind == "classifier"
    assert describe_model(reg).kind == "regressor"
    assert describe_model(km).kind == "clusterer"
    assert describe_model(make_pipeline(StandardScaler(), km)).kind == "clusterer"
    assert describe_model(scaler).kind == "other"


def test_describe_dataframe_pipeline(fitted_pipeline):
    info = describe_model(fitted_pipeline)
    data = info.to_dict()
    json.dumps(data, allow_nan=False)  # strictly JSON-safe
    assert data["kind"] == "classifier"
    assert data["estimator_class"] == "sklearn.pipeline.Pipeline"
    assert data["classes"] == ["high", "low"]
    assert data["feature_names"] == ["age", "income", "city", "score"]
    assert data["n_features"] == 4
    assert data["has_predict_proba"] and data["has_decision_function"]
    assert [s["name"] for s in data["steps"]] == ["pre", "clf"]
    ct_steps = {s["name"]: s for s in data["steps"][0]["steps"]}
    assert ct_steps["num"]["columns"] == ["age", "income"]
    assert ct_steps["cat"]["class"].endswith("OneHotEncoder")
    assert ct_steps["cat"]["columns"] == ["city"]
    assert data["hyperparameters"]["steps"] == [["pre", "ColumnTransformer"], ["clf", "LogisticRegression"]]
    schema = {f["name"]: f for f in data["input_schema"]}
    assert schema["city"]["kind"] == "categorical"
    assert schema["city"]["categories"] == ["lima", "oslo", "paris"]
    assert schema["city"]["default"] == "lima"
    assert schema["age"]["kind"] == "numeric"
    df, _ = make_frame()
    assert schema["age"]["default"] == pytest.approx(df["age"].mean())
    assert schema["score"]["default"] == pytest.approx(df["score"].mean())


def test_describe_ordinal_encoder_inside_nested_pipeline():
    df, y = make_frame()
    pre = ColumnTransformer(
        [
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OrdinalEncoder()),
                ["city"],
            ),
        ],
        remainder="passthrough",
    )
    with quiet():
        model = make_pipeline(pre, HistGradientBoostingClassifier(max_iter=3)).fit(df, y)
    schema = {f.name: f for f in describe_model(model).input_schema}
    assert schema["city"].kind == "categorical"
    assert schema["city"].categories == ["lima", "oslo", "paris"]
    assert schema["income"].kind == "numeric"


def test_describe_hgb_native_categorical():
    model, _ = hgb_categorical()
    schema = {f.name: f for f in describe_model(model).input_schema}
    assert schema["city"].kind == "categorical"
    assert set(schema["city"].categories) == {"lima", "oslo", "paris"}
    assert schema["age"].kind == "numeric"


def test_describe_predict_proba_respects_available_if():
    with quiet():
        plain = SVC().fit(X_CLS, Y_CLS)
        proba = SVC(probability=True, random_state=0).fit(X_CLS, Y_CLS)
    assert describe_model(plain).has_predict_proba is False
    assert describe_model(plain).has_decision_function is True
    assert describe_model(proba).has_predict_proba is True
    assert describe_model(make_pipeline(StandardScaler(), plain)).has_predict_proba is False


def test_describe_numpy_values_and_callables_are_json_safe():
    with quiet():
        model = make_pipeline(FunctionTransformer(np.log1p), Ridge()).fit(np.abs(X_REG), Y_REG)
        clf = LogisticRegression().fit(X_CLS, np.array([10, 20, 30])[Y_CLS])
    data = describe_model(model).to_dict()
    json.dumps(data, allow_nan=False)
    assert data["kind"] == "regressor"
    assert data["classes"] is None and data["feature_names"] is None and data["n_features"] == 5
    step = describe_model(model.steps[0][1]).to_dict()
    assert step["hyperparameters"]["func"] == "numpy.log1p"
    assert [f["name"] for f in data["input_schema"]] == [f"x{i}" for i in range(5)]
    info = describe_model(clf).to_dict()
    assert info["classes"] == [10, 20, 30] and all(type(c) is int for c in info["classes"])


def test_describe_is_bounded_on_hostile_structures():
    """Hyperparameters come from untrusted files: deep nesting and shared
    references (exponential when naively expanded) stay cheap."""
    nested: list = []
    for _ in range(5000):
        nested = [nested]
    dag: list = [1]
    for _ in range(50):
        dag = [dag] * 150  # 150**50 paths if expanded naively
    with quiet():
        model = FunctionTransformer(kw_args={"nested": nested, "dag": dag, "big": list(range(10**6))}).fit(X_CLS)
    data = describe_model(model).to_dict()
    text = json.dumps(data, allow_nan=False)
    assert len(text) < 2_000_000


def test_describe_loaded_model_round_trip(tmp_path, fitted_pipeline):
    path = save(fitted_pipeline, tmp_path / "m.skops", "skops")
    loaded = load_model(path)
    assert describe_model(loaded.estimator).to_dict() == describe_model(fitted_pipeline).to_dict()
