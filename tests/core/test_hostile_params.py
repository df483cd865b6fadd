"""Hostile *parameters* of admitted types (viewer.core.safe_load).

A model file can stay inside the allowlist of classes and functions and still
harm the server through the values it stores:

1. Process fan-out: ``n_jobs=24`` anywhere in a pipeline starts two dozen
   worker processes per prediction; ``memory=<path>`` makes a pipeline write
   a cache to the server's disk.  load_model sets every ``n_jobs`` to 1 and
   every ``memory`` to None, and reports each change in ``warnings``.
2. A frozen server: a stored numpy/scipy callable called with the viewer's
   data and keyword arguments from the file (``where=<nested list>``
   broadcasts the output to any size; ``SeedSequence(pool_size=n)`` runs for
   O(n**2) holding the interpreter lock).  Stored callables come from an
   explicit list of element-wise functions and reductions, with the keyword
   arguments each may get (allowlist._STORED_CALLABLES).

Each finding is shown live without our loader (in a subprocess with a
deadline and a memory cap, killed by the test), then refused or neutralised
by load_model; the idioms real users rely on keep loading and predicting the
same.  All models are fitted single-process at test time; hostile values are
set afterwards, so the test process itself never fans out.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import pickle
import selectors
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import joblib
import numpy as np
import pytest
import scipy.sparse as sparse
import scipy.special
import skops.io as sio
from sklearn.cluster import FeatureAgglomeration, KMeans
from sklearn.compose import ColumnTransformer, TransformedTargetRegressor
from sklearn.ensemble import RandomForestClassifier, StackingClassifier, VotingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.multiclass import OneVsRestClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import FeatureUnion, Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from viewer.core.safe_load import ModelLoadError, UnsafeModelError, load_model

ROOT = Path(__file__).resolve().parents[2]

RNG = np.random.RandomState(0)
X = np.abs(RNG.randn(60, 4)) + 0.1
Y_CLS = (X[:, 0] + X[:, 1] > 2.0).astype(int)
Y_REG = X @ np.array([1.0, -2.0, 0.5, 3.0]) + 10.0  # positive (for np.log targets)


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_native_code():
    """One BLAS/OpenMP thread (a 2-core machine runs other suites too)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


@contextlib.contextmanager
def quiet():
    """Silence warnings while building fixtures, never around load_model."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def save(obj, path: Path, fmt: str = "joblib") -> Path:
    with quiet():
        if fmt == "joblib":
            joblib.dump(obj, path)
        elif fmt == "skops":
            sio.dump(obj, path)
        else:
            path.write_bytes(pickle.dumps(obj, protocol=5))
    return path


def refused(path: Path) -> UnsafeModelError:
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    return info.value


def walk(obj, seen=None):
    """Every object reachable through __dict__, lists, tuples and dicts."""
    seen = set() if seen is None else seen
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, (str, bytes, int, float, type(None), np.ndarray, np.generic, type)):
            continue
        if id(o) in seen:
            continue
        seen.add(id(o))
        yield o
        if isinstance(o, dict):
            stack.extend(o.values())
        elif isinstance(o, (list, tuple)):
            stack.extend(o)
        elif isinstance(getattr(o, "__dict__", None), dict):
            stack.extend(vars(o).values())


def subprocess_env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }


def run_with_deadline(code: str, *args: str, ready_timeout: float = 60, deadline: float) -> tuple[str, bool]:
    """Run ``code`` in its own process group.  Once it prints "ready" it has
    ``deadline`` seconds to exit; otherwise the whole group is killed.
    Returns (stdout, timed_out)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=subprocess_env(),
        start_new_session=True,
    )
    out: list[str] = []
    timed_out = False
    try:
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ)
        limit = time.monotonic() + ready_timeout
        started = None
        while proc.poll() is None or sel.select(timeout=0):
            now = time.monotonic()
            if now > (started + deadline if started else limit):
                timed_out = True
                break
            if not sel.select(timeout=0.1):
                continue
            line = proc.stdout.readline().decode()
            if not line:
                break
            out.append(line)
            if line.strip() == "ready" and started is None:
                started = time.monotonic()
        sel.close()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # our own process group only
        rest, err = proc.communicate(timeout=30)
    out.append(rest.decode())
    text = "".join(out)
    assert "ready" in text, err.decode()[-3000:]
    return text, timed_out


# ---------------------------------------------------------------------------
# 1. Process fan-out: n_jobs and memory
# ---------------------------------------------------------------------------

FANOUT = textwrap.dedent(
    r"""
    import json, os, sys, warnings
    warnings.simplefilter("ignore")
    import numpy as np, joblib, psutil
    from viewer.core.safe_load import load_model
    path, how = sys.argv[1], sys.argv[2]
    X = np.abs(np.random.RandomState(0).randn(60, 4)) + 0.1
    if how == "joblib":
        model, notes = joblib.load(path), []
    else:
        loaded = load_model(path)
        model, notes = loaded.estimator, loaded.warnings
    print("ready", flush=True)
    model.predict(X)
    me = psutil.Process()
    children = me.children(recursive=True)
    print(json.dumps({"children": len(children), "threads": me.num_threads(), "notes": notes}), flush=True)
    for child in children:
        try:
            child.kill()
        except psutil.Error:
            pass
    os._exit(0)
    """
)


def set_everywhere(model, attr: str, value) -> None:
    """Set ``attr`` on every object of the fitted model that has it (what a
    hostile file does; fitting stays single-process)."""
    for obj in walk(model):
        if hasattr(obj, "get_params") and attr in vars(obj):
            setattr(obj, attr, value)


def fan_out_pipeline(n_jobs: int):
    """ColumnTransformer + forest, fitted with n_jobs=1, then n_jobs set."""
    model = Pipeline(
        [
            (
                "pre",
                ColumnTransformer([("a", StandardScaler(), [0, 1]), ("b", StandardScaler(), [2, 3])]),
            ),
            ("rf", RandomForestClassifier(n_estimators=4, random_state=0)),
        ]
    )
    with quiet():
        model.fit(X, Y_CLS)
    set_everywhere(model, "n_jobs", n_jobs)
    return model


def nested_parallel_model(tmp_path: Path):
    """n_jobs in every kind of holder: pipeline steps, a column transformer
    holding a pipeline, a feature union, meta-estimators and lists of
    estimators (fitted copies included), plus Pipeline.memory."""
    union = FeatureUnion([("s", StandardScaler()), ("f", FunctionTransformer(np.square))])
    pre = ColumnTransformer(
        [("num", make_pipeline(StandardScaler(), union), [0, 1]), ("rest", "passthrough", [2, 3])]
    )
    voting = VotingClassifier(
        [
            ("rf", RandomForestClassifier(n_estimators=3, random_state=0)),
            ("knn", KNeighborsClassifier()),
            ("ovr", OneVsRestClassifier(LogisticRegression())),
            ("stack", StackingClassifier([("lr", LogisticRegression())], cv=2)),
        ],
        voting="soft",
    )
    model = Pipeline([("pre", pre), ("vote", voting)])
    with quiet():
        model.fit(X, Y_CLS)
    values = iter([24, -1, 3, 2, 5, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23])
    for obj in walk(model):
        if hasattr(obj, "get_params") and "n_jobs" in vars(obj):
            obj.n_jobs = next(values, 24)
    model.memory = str(tmp_path / "pipeline-cache")
    model.steps[0][1].transformers_[0][1].memory = str(tmp_path / "inner-cache")
    return model


@pytest.mark.chaos  # the proof that the case is live (a crash, a freeze) without our loader: slow subprocesses
def test_n_jobs_fan_out_is_live_without_the_loader(tmp_path):
    """joblib.load keeps n_jobs=4: one predict starts worker processes."""
    path = save(fan_out_pipeline(4), tmp_path / "fanout.joblib")
    out, timed_out = run_with_deadline(FANOUT, str(path), "joblib", deadline=60)
    assert not timed_out, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["children"] >= 2, result


@pytest.mark.parametrize("fmt", ["joblib", "skops"])
def test_load_model_sets_every_n_jobs_to_1_and_memory_to_none_and_reports_it(tmp_path, fmt):
    model = nested_parallel_model(tmp_path)
    holders = [o for o in walk(model) if hasattr(o, "get_params") and "n_jobs" in vars(o)]
    assert len(holders) >= 8  # pre, voting, rf (+ fitted copy), knn, ovr, stack...
    assert {type(o).__name__ for o in holders} >= {
        "ColumnTransformer",
        "FeatureUnion",
        "VotingClassifier",
        "RandomForestClassifier",
        "KNeighborsClassifier",
        "OneVsRestClassifier",
        "StackingClassifier",
    }
    loaded = load_model(save(model, tmp_path / f"m.{fmt}", fmt))
    objects = list(walk(loaded.estimator))
    n_jobs = [vars(o)["n_jobs"] for o in objects if "n_jobs" in getattr(o, "__dict__", {})]
    assert len(n_jobs) == len(holders) and set(n_jobs) == {1}
    memories = [vars(o)["memory"] for o in objects if "memory" in getattr(o, "__dict__", {})]
    assert memories and set(memories) == {None}
    notes = "\n".join(loaded.warnings)
    assert "Changed at upload: n_jobs=24 was set to 1 in" in notes
    assert "Changed at upload: n_jobs=-1 was set to 1 in" in notes
    assert "one process and one thread" in notes
    assert "Changed at upload: memory=" in notes and "was set to None in Pipeline" in notes
    for name in ("ColumnTransformer", "FeatureUnion", "VotingClassifier", "KNeighborsClassifier"):
        assert name in notes
    with quiet():
        np.testing.assert_array_equal(loaded.estimator.predict(X), model.predict(X))


def test_predicting_a_model_loaded_with_load_model_starts_no_child_process(tmp_path):
    path = save(fan_out_pipeline(4), tmp_path / "fanout.joblib")
    out, timed_out = run_with_deadline(FANOUT, str(path), "load_model", deadline=60)
    assert not timed_out, out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["children"] == 0, result
    assert any("n_jobs=4 was set to 1" in note for note in result["notes"]), result


def test_pipeline_memory_writes_a_cache_without_the_loader_and_none_with_it(tmp_path):
    cache = tmp_path / "cache"
    model = make_pipeline(StandardScaler(), Ridge())
    with quiet():
        model.fit(X, Y_REG)
    model.memory = str(cache)
    path = save(model, tmp_path / "m.joblib")
    with quiet():
        joblib.load(path).fit(X, Y_REG)  # live: joblib.Memory writes under the path from the file
    assert cache.exists() and any(cache.rglob("*"))
    import shutil

    shutil.rmtree(cache)
    loaded = load_model(path)
    assert loaded.estimator.memory is None
    assert any("memory=" in w and "disk" in w for w in loaded.warnings)
    with quiet():
        loaded.estimator.fit(X, Y_REG)
    assert not cache.exists()


def test_fitted_thread_counts_are_capped_to_the_server(tmp_path):
    """KMeans.predict runs OpenMP loops with the thread count stored at fit
    time (_n_threads); a file can store any number."""
    with quiet():
        model = KMeans(n_clusters=2, n_init=1, random_state=0).fit(X)
    expected = model.predict(X)
    model._n_threads = 512
    loaded = load_model(save(model, tmp_path / "km.joblib"))
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    assert 1 <= loaded.estimator._n_threads <= max(1, _openmp_effective_n_threads())
    assert any("_n_threads=512 was set to" in w for w in loaded.warnings)
    np.testing.assert_array_equal(loaded.estimator.predict(X), expected)


@pytest.mark.parametrize("n_jobs", [None, 1])
def test_models_without_parallelism_are_not_changed_or_reported(tmp_path, n_jobs):
    model = make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=3, n_jobs=n_jobs, random_state=0))
    with quiet():
        model.fit(X, Y_CLS)
    loaded = load_model(save(model, tmp_path / "m.joblib"))
    assert loaded.warnings == []
    assert loaded.estimator.steps[-1][1].n_jobs == n_jobs


# ---------------------------------------------------------------------------
# 2. Stored callables: an explicit list, with checked keyword arguments
# ---------------------------------------------------------------------------


def nested_true(outer: int, inner: int) -> list:
    """A list of shape (outer, inner, 1, 1) made of shared references: a few
    KB in a pickle, ``outer * inner`` times the data once broadcast."""
    leaf = [[True]]
    row = [leaf] * inner
    return [row] * outer


def transformer_model(step) -> Pipeline:
    """A fitted pipeline with a harmless step, then the hostile step put in
    its place (fitting never runs the hostile step)."""
    model = make_pipeline(FunctionTransformer(np.sqrt), Ridge())
    with quiet():
        model.fit(X, Y_REG)
    model.steps[0] = ("evil", step)
    return model


WHERE_BROADCAST = textwrap.dedent(
    r"""
    import resource, sys, warnings
    warnings.simplefilter("ignore")
    import numpy as np, joblib
    resource.setrlimit(resource.RLIMIT_AS, (2 * 2**30, 2 * 2**30))  # a 2 GiB cap
    model = joblib.load(sys.argv[1])
    X = np.abs(np.random.RandomState(0).randn(100, 5))
    print("ready", flush=True)
    try:
        out = model.transform(X)
        print("allocated", out.nbytes, flush=True)
    except MemoryError as exc:
        print("MemoryError", exc, flush=True)
    """
)


@pytest.mark.chaos  # the proof that the case is live (a crash, a freeze) without our loader: slow subprocesses
def test_where_broadcast_is_live_without_the_loader(tmp_path):
    """FunctionTransformer(np.sqrt, kw_args={"where": <nested list>}): a file
    of a few KB asks one transform for 3.7 GiB (refused here only by the
    subprocess's 2 GiB memory cap)."""
    step = FunctionTransformer(np.sqrt, kw_args={"where": nested_true(1000, 1000)})
    path = save(step, tmp_path / "where.joblib")
    assert path.stat().st_size < 64 * 1024
    out, timed_out = run_with_deadline(WHERE_BROADCAST, str(path), deadline=60)
    assert not timed_out, out
    assert "MemoryError Unable to allocate 3.73 GiB" in out, out


SEED_SEQUENCE_FREEZE = textwrap.dedent(
    r"""
    import sys, threading, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np, joblib
    model = joblib.load(sys.argv[1])

    def ticker():
        while True:
            print("tick", flush=True)
            time.sleep(0.2)

    print("ready", flush=True)
    threading.Thread(target=ticker, daemon=True).start()
    time.sleep(0.5)
    print("calling", flush=True)
    model.transform(np.arange(20).reshape(10, 2))  # integer data, as from a CSV of counts
    print("done", flush=True)
    """
)


@pytest.mark.chaos  # the proof that the case is live (a crash, a freeze) without our loader: slow subprocesses
def test_seed_sequence_pool_size_freezes_the_interpreter_without_the_loader(tmp_path):
    """FunctionTransformer(func=SeedSequence, kw_args={"pool_size": 10**6})
    runs for hours holding the interpreter lock: a ticking thread stops
    ticking, and the process has to be killed."""
    from numpy.random import SeedSequence

    step = FunctionTransformer(SeedSequence, kw_args={"pool_size": 10**6})
    path = save(step, tmp_path / "seed.joblib")
    out, timed_out = run_with_deadline(SEED_SEQUENCE_FREEZE, str(path), deadline=4)
    assert timed_out and "calling" in out and "done" not in out, out
    ticks_while_frozen = out.split("calling", 1)[1].count("tick")
    assert ticks_while_frozen <= 3, out  # ~15 if the lock were released


# (name, FunctionTransformer, substring of an offender, substring of the message)
HOSTILE_STEPS = {
    "sqrt-where-nested-list": (
        lambda: FunctionTransformer(np.sqrt, kw_args={"where": nested_true(2, 2)}),
        "numpy.sqrt(where=...)",
        "allocate unbounded memory",
    ),
    "sqrt-out-list": (
        lambda: FunctionTransformer(np.sqrt, kw_args={"out": [np.zeros(3)]}),
        "numpy.sqrt(out=...)",
        "Remove 'out'",
    ),
    "expit-where": (
        lambda: FunctionTransformer(scipy.special.expit, kw_args={"where": nested_true(2, 2)}),
        "scipy.special.expit(where=...)",
        "Remove 'where'",
    ),
    "log1p-dtype-object": (
        lambda: FunctionTransformer(np.log1p, validate=False, kw_args={"dtype": object}),
        "numpy.log1p(dtype=",
        "must be a numeric dtype",
    ),
    "clip-array-bound": (
        lambda: FunctionTransformer(np.clip, kw_args={"a_min": 0.0, "a_max": nested_true(2, 2)}),
        "numpy.clip(a_max=",
        "broadcast the result to any size",
    ),
    "mean-where": (
        lambda: FunctionTransformer(np.mean, kw_args={"axis": 1, "where": nested_true(2, 2)}),
        "numpy.mean(where=...)",
        "only these keyword arguments: axis, dtype, keepdims",
    ),
    "partial-sqrt-where": (
        lambda: FunctionTransformer(functools.partial(np.sqrt, where=nested_true(2, 2))),
        "numpy.sqrt(where=...)",
        "Remove 'where'",
    ),
    "inverse-func-kwargs": (
        lambda: FunctionTransformer(np.log1p, inverse_func=np.expm1, inv_kw_args={"where": nested_true(2, 2)}),
        "numpy.expm1(where=...) in FunctionTransformer(inverse_func=numpy.expm1)",
        "Remove 'where'",
    ),
    "csr-matrix-shape": (
        lambda: FunctionTransformer(sparse.csr_matrix, kw_args={"shape": (10**9, 10**9)}),
        "csr_matrix(shape=...)",
        "a shape or a size",
    ),
    "seed-sequence-class": (
        lambda: FunctionTransformer(np.random.SeedSequence, kw_args={"pool_size": 10**6}),
        "numpy.random.bit_generator.SeedSequence (stored as a callable)",
        "Only dtype classes",
    ),
    "random-state-class": (
        lambda: FunctionTransformer(np.random.RandomState),
        "RandomState (stored as a callable)",
        "Only dtype classes",
    ),
    "bit-generator-class": (
        lambda: FunctionTransformer(np.random.MT19937),
        "MT19937 (stored as a callable)",
        "Only dtype classes",
    ),
    "sklearn-tree-class": (
        lambda: FunctionTransformer(__import__("sklearn.tree._tree", fromlist=["Tree"]).Tree),
        "sklearn.tree._tree.Tree (stored as a callable)",
        "Only dtype classes",
    ),
}


@pytest.mark.parametrize("fmt", ["joblib", "skops"])
@pytest.mark.parametrize("case", list(HOSTILE_STEPS))
def test_hostile_keyword_arguments_and_stored_classes_are_refused(tmp_path, case, fmt):
    factory, offender, message = HOSTILE_STEPS[case]
    path = save(transformer_model(factory()), tmp_path / f"m.{fmt}", fmt)
    err = refused(path)
    assert any(offender in o for o in err.offenders), err.offenders
    assert message in str(err), str(err)


# Callables never admitted as stored values (size/shape-taking numpy
# functions, unlisted ufuncs, I/O).  (name, function, kw_args).
def _pandas_read_csv():
    import pandas

    return pandas.read_csv


UNLISTED_CALLABLES = {
    "np.tile": (lambda: np.tile, {"reps": (10**6, 10**6)}),
    "np.repeat": (lambda: np.repeat, {"repeats": 10**12}),
    "np.full": (lambda: np.full, {"fill_value": 1.0}),
    "np.ones": (lambda: np.ones, {}),
    "np.broadcast_to": (lambda: np.broadcast_to, {"shape": (10**6, 10**6)}),
    "np.add": (lambda: np.add, {}),
    "np.ldexp": (lambda: np.ldexp, {}),
    "scipy.special.gamma": (lambda: scipy.special.gamma, {}),
    "np.load": (lambda: np.load, {"allow_pickle": True}),
    "np.save": (lambda: np.save, {}),
    "np.fromfile": (lambda: np.fromfile, {}),
    "np.memmap": (lambda: np.memmap, {"mode": "w+", "shape": (10**9,)}),
    "np.loadtxt": (lambda: np.loadtxt, {}),
    "np.genfromtxt": (lambda: np.genfromtxt, {}),
    "np.savetxt": (lambda: np.savetxt, {}),
    "pandas.read_csv": (_pandas_read_csv, {}),
}


@pytest.mark.parametrize("fmt", ["joblib", "skops"])
@pytest.mark.parametrize("name", list(UNLISTED_CALLABLES))
def test_unlisted_numpy_scipy_and_io_callables_are_refused(tmp_path, name, fmt):
    func_factory, kw_args = UNLISTED_CALLABLES[name]
    func = func_factory()
    step = FunctionTransformer(func, kw_args=kw_args, validate=False)
    path = save(transformer_model(step), tmp_path / f"m.{fmt}", fmt)
    err = refused(path)
    short = getattr(func, "__name__", name.rsplit(".", 1)[-1])
    assert any(short in o for o in err.offenders), err.offenders
    assert "Refusing to load this model" in str(err)
    if not name.startswith("pandas"):
        # (skops trusts every numpy/scipy ufunc itself; there our post-load
        # check refuses them, with the same pointer to the explicit list.)
        assert "explicit list" in str(err) and "numpy.log1p" in str(err), str(err)


@pytest.mark.parametrize("fmt", ["joblib", "pickle5"])
@pytest.mark.parametrize(
    "func,offender",
    [(np.random.normal, "builtins.getattr"), (np.random.default_rng, "numpy.random.default_rng")],
    ids=["np.random.normal", "np.random.default_rng"],
)
def test_numpy_random_functions_are_refused(tmp_path, func, offender, fmt):
    """np.random.normal(size=10**12) would allocate 8 TB; it is a bound
    method of numpy's global RandomState, pickled through getattr."""
    step = FunctionTransformer(func, kw_args={"size": 10**12})
    err = refused(save(transformer_model(step), tmp_path / "m.bin", fmt))
    assert offender in err.offenders, err.offenders


def test_hostile_keywords_bound_by_partial_are_refused_in_any_one_array_slot(tmp_path):
    """TransformedTargetRegressor passes no keyword arguments itself, but a
    partial stored as its func binds them."""
    with quiet():
        model = TransformedTargetRegressor(regressor=Ridge(), func=np.log, inverse_func=np.exp).fit(X, Y_REG)
    model.inverse_func = functools.partial(np.clip, a_min=0.0, a_max=nested_true(2, 2))
    err = refused(save(model, tmp_path / "ttr.joblib"))
    assert any("numpy.clip(a_max=<list>) in functools.partial(numpy.clip)" in o for o in err.offenders), err.offenders


class OperatorScaler:
    """An operator's own class, stored as a FunctionTransformer func: admitted
    only through trusted_modules."""

    def __init__(self, X, factor=2.0):
        self.values = np.asarray(X) * factor

    def __array__(self, dtype=None, copy=None):
        return self.values


def test_classes_from_trusted_modules_may_be_stored(tmp_path):
    step = FunctionTransformer(OperatorScaler, kw_args={"factor": 3.0})
    path = save(transformer_model(step), tmp_path / "m.joblib")
    refused(path)
    loaded = load_model(path, trusted_modules=(__name__,))
    assert loaded.estimator.steps[0][1].func is OperatorScaler


@pytest.mark.parametrize("fmt", ["joblib", "skops"])
def test_numpy_function_as_kernel_or_metric_is_refused(tmp_path, fmt):
    """Kernels and metrics are called with two arrays and keyword arguments
    from the file: np.clip as a metric with metric_params={"a_max": <nested
    list>} broadcasts every distance; a one-input ufunc as a kernel writes
    into the model's own array (its second positional argument is ``out``)."""
    with quiet():
        svc = SVC(kernel="rbf").fit(X, Y_CLS)
        knn = KNeighborsClassifier(algorithm="brute").fit(X, Y_CLS)
    svc.kernel = np.exp
    err = refused(save(svc, tmp_path / f"svc.{fmt}", fmt))
    assert any("numpy.exp (stored as SVC.kernel)" in o for o in err.offenders), err.offenders
    assert "kernel='rbf'" in str(err)
    knn.metric = knn.effective_metric_ = np.clip
    knn.metric_params = knn.effective_metric_params_ = {"a_max": 1.0}
    err = refused(save(knn, tmp_path / f"knn.{fmt}", fmt))
    assert any("numpy.clip (stored as KNeighborsClassifier." in o for o in err.offenders), err.offenders


def test_nested_list_as_where_is_refused_in_any_keyword_dict(tmp_path):
    """Keyword dicts the loader cannot pair with a listed function (here a
    KNN metric's params) still may not carry out=/where= arrays or nested
    lists."""
    with quiet():
        knn = KNeighborsClassifier(metric="minkowski").fit(X, Y_CLS)
    knn.metric_params = {"where": nested_true(2, 2)}
    err = refused(save(knn, tmp_path / "knn.joblib"))
    assert "keyword argument 'where' bound to an array" in err.offenders


# ---------------------------------------------------------------------------
# 3. What real users store keeps loading and predicting the same
# ---------------------------------------------------------------------------


def idiom(name: str):
    """(fitted model, input data, method)"""
    with quiet():
        if name == "FunctionTransformer(np.log1p)":
            return make_pipeline(FunctionTransformer(np.log1p), Ridge()).fit(X, Y_REG), "predict"
        if name == "FunctionTransformer(np.log1p, inverse_func=np.expm1)":
            model = FunctionTransformer(np.log1p, inverse_func=np.expm1, check_inverse=True).fit(X)
            return model, "inverse_transform"
        if name == "TransformedTargetRegressor(np.log, np.exp)":
            model = TransformedTargetRegressor(regressor=Ridge(), func=np.log, inverse_func=np.exp)
            return model.fit(X, Y_REG), "predict"
        if name == "FunctionTransformer(scipy.special.expit)":
            return make_pipeline(FunctionTransformer(scipy.special.expit), LogisticRegression()).fit(X, Y_CLS), "predict_proba"
        if name == "SVC(kernel='rbf')":
            return SVC(kernel="rbf", probability=True, random_state=0).fit(X, Y_CLS), "predict_proba"
        if name == "KNeighborsClassifier(metric='minkowski')":
            return KNeighborsClassifier(metric="minkowski", p=2).fit(X, Y_CLS), "predict_proba"
        if name == "KNeighborsClassifier(metric='manhattan')":
            return KNeighborsClassifier(metric="manhattan", algorithm="brute").fit(X, Y_CLS), "predict_proba"
        if name == "FeatureAgglomeration(pooling_func=np.mean)":
            return make_pipeline(FeatureAgglomeration(n_clusters=2), Ridge()).fit(X, Y_REG), "predict"
        if name == "FunctionTransformer(np.clip, scalar bounds)":
            step = FunctionTransformer(np.clip, kw_args={"a_min": 0.2, "a_max": 1.5})
            return make_pipeline(step, Ridge()).fit(X, Y_REG), "predict"
        if name == "FunctionTransformer(np.round, decimals=1)":
            step = FunctionTransformer(np.round, kw_args={"decimals": 1})
            return make_pipeline(step, Ridge()).fit(X, Y_REG), "predict"
        if name == "FunctionTransformer(np.nan_to_num)":
            return make_pipeline(FunctionTransformer(np.nan_to_num), Ridge()).fit(X, Y_REG), "predict"
        if name == "FunctionTransformer(np.sum, axis=1, keepdims=True)":
            step = FunctionTransformer(np.sum, kw_args={"axis": 1, "keepdims": True})
            return make_pipeline(step, Ridge()).fit(X, Y_REG), "predict"
        if name == "FunctionTransformer(partial(np.round, decimals=2))":
            step = FunctionTransformer(functools.partial(np.round, decimals=2))
            return make_pipeline(step, Ridge()).fit(X, Y_REG), "predict"
        if name == "FunctionTransformer(csr_matrix)":
            step = FunctionTransformer(sparse.csr_matrix, accept_sparse=True)
            return make_pipeline(step, LogisticRegression()).fit(X, Y_CLS), "predict_proba"
        if name == "OneHotEncoder(dtype=np.float32)":
            cats = (X[:, :2] > 1).astype(int)
            model = make_pipeline(OneHotEncoder(dtype=np.float32), LogisticRegression()).fit(cats, Y_CLS)
            return model, "predict_proba"
    raise AssertionError(name)


IDIOMS = [
    "FunctionTransformer(np.log1p)",
    "FunctionTransformer(np.log1p, inverse_func=np.expm1)",
    "TransformedTargetRegressor(np.log, np.exp)",
    "FunctionTransformer(scipy.special.expit)",
    "SVC(kernel='rbf')",
    "KNeighborsClassifier(metric='minkowski')",
    "KNeighborsClassifier(metric='manhattan')",
    "FeatureAgglomeration(pooling_func=np.mean)",
    "FunctionTransformer(np.clip, scalar bounds)",
    "FunctionTransformer(np.round, decimals=1)",
    "FunctionTransformer(np.nan_to_num)",
    "FunctionTransformer(np.sum, axis=1, keepdims=True)",
    "FunctionTransformer(partial(np.round, decimals=2))",
    "FunctionTransformer(csr_matrix)",
    "OneHotEncoder(dtype=np.float32)",
]


@pytest.mark.parametrize("fmt", ["joblib", "skops", "pickle5"])
@pytest.mark.parametrize("name", IDIOMS)
def test_real_user_idioms_still_load_and_predict_the_same(tmp_path, name, fmt):
    model, method = idiom(name)
    data = (X[:, :2] > 1).astype(int) if "OneHotEncoder" in name else X
    loaded = load_model(save(model, tmp_path / f"m.{fmt}", fmt))
    assert loaded.warnings == []
    assert type(loaded.estimator) is type(model)
    with quiet():
        np.testing.assert_allclose(
            getattr(loaded.estimator, method)(data), getattr(model, method)(data), rtol=1e-9, atol=1e-12
        )


def test_forest_with_n_jobs_minus_1_still_loads_and_predicts_the_same(tmp_path):
    """The common RandomForestClassifier(n_jobs=-1): loaded single-process,
    with a note for the user, and identical predictions."""
    with quiet():
        model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y_CLS)
    model.n_jobs = -1  # as saved from a laptop; fitted here single-process
    loaded = load_model(save(model, tmp_path / "rf.joblib"))
    assert loaded.estimator.n_jobs == 1
    assert loaded.warnings == [
        "Changed at upload: n_jobs=-1 was set to 1 in RandomForestClassifier (the server runs each model "
        "in one process and one thread)."
    ]
    model.n_jobs = 1
    np.testing.assert_array_equal(loaded.estimator.predict_proba(X), model.predict_proba(X))


def test_kw_args_that_is_not_a_dict_is_refused_in_plain_words(tmp_path):
    """A kw_args that is not a dict is refused in plain words, not crashed on."""
    step = FunctionTransformer(np.log1p)
    model = transformer_model(step)
    step.kw_args = [("where", 1)]
    with pytest.raises(ModelLoadError) as info:
        load_model(save(model, tmp_path / "m.joblib"))
    assert "kw_args must be a dict" in str(info.value)
