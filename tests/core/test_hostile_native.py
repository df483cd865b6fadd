"""Model files made only of admitted types whose native structures would make
scikit-learn/numpy's compiled code read or write out of bounds at predict
time.  For each finding:

* the hostile model, loaded with plain ``joblib.load`` (no loader checks) in
  a subprocess, kills that process when used (the proof that the case is
  live);
* ``load_model`` refuses it (joblib and skops) with an UnsafeModelError that
  names the inconsistent structure;
* the untampered model still loads and predicts like the original.

Findings: (1) decision trees whose input width is not bounded because the
owner's ``n_features_in_`` is absent or not a true int (trees, forests, extra
trees, gradient boosting, isolation forest, bagging); (2) neighbors
classifiers' encoded labels ``_y`` out of range of ``classes_`` (a heap write
at a chosen offset); (3) KD/Ball trees whose ``node_bounds`` lacks the bound
rows; (4) SVMs with a callable kernel whose ``support_`` indexes past the
kernel row; (5) a Philox bit generator with a negative buffer position.
"""

from __future__ import annotations

import copy
import os
import resource
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, NamedTuple

import joblib
import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    BaggingClassifier,
    ExtraTreesRegressor,
    GradientBoostingRegressor,
    IsolationForest,
    RandomForestClassifier,
)
from sklearn.gaussian_process.kernels import RBF
from sklearn.neighbors import (
    KNeighborsClassifier,
    KNeighborsRegressor,
    RadiusNeighborsClassifier,
)
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import Tree

from tests.core.test_safe_load import (  # noqa: F401 (autouse fixture)
    X_CLS,
    X_REG,
    Y_CLS,
    Y_REG,
    _single_threaded_native_code,
    assert_same_predictions,
    quiet,
    save,
)
from viewer.core.safe_load import UnsafeModelError, load_model

# A tree over this many columns whose splits read column FAR_FEATURE: within
# the tree's own bound, ~400 MB past the end of a one-column input row.
HUGE_WIDTH = 10**9
FAR_FEATURE = 10**8
FAR_INDEX = 10**9  # an index ~8 GB past the start of an array of float64/uint64
# KD/Ball trees: columns of the "wide" neighbors model, so that reading a
# node's bounds from an empty node_bounds array runs megabytes past it.
WIDE = 10**6

TREE = "sklearn.tree._classes.DecisionTreeClassifier"
KNN = "sklearn.neighbors._classification.KNeighborsClassifier"
RNN = "sklearn.neighbors._classification.RadiusNeighborsClassifier"
SVC_NAME = "sklearn.svm._classes.SVC"
RANDOM_STATE = "numpy.random.mtrand.RandomState"


# ---------------------------------------------------------------------------
# Untampered models
# ---------------------------------------------------------------------------


def _fit(est, X, y=None):
    with quiet():
        return est.fit(X) if y is None else est.fit(X, y)


def _knn_brute(cls=KNeighborsClassifier, **kwargs):
    # manhattan + brute + uniform weights: predict goes through the
    # ArgKmin/RadiusNeighbors "class mode" reductions (euclidean does not).
    return _fit(cls(algorithm="brute", metric="manhattan", **kwargs), X_CLS, Y_CLS), X_CLS


def _used_philox():
    rs = np.random.RandomState(np.random.Philox(0))
    rs.random_sample(3)  # buffer position mid-way, as in a model that drew numbers
    return rs


ORIGINALS = {
    "tree": lambda: (_fit(DecisionTreeClassifier(random_state=0), X_CLS, Y_CLS), X_CLS),
    "forest": lambda: (_fit(RandomForestClassifier(n_estimators=3, random_state=0), X_CLS, Y_CLS), X_CLS),
    "extra-trees": lambda: (_fit(ExtraTreesRegressor(n_estimators=3, random_state=0), X_REG, Y_REG), X_REG),
    "gradient-boosting": lambda: (
        _fit(GradientBoostingRegressor(n_estimators=3, random_state=0), X_REG, Y_REG),
        X_REG,
    ),
    "isolation-forest": lambda: (
        _fit(IsolationForest(n_estimators=3, max_features=0.6, random_state=0), X_CLS),
        X_CLS,
    ),
    "bagging": lambda: (
        _fit(
            BaggingClassifier(DecisionTreeClassifier(), n_estimators=3, max_features=0.6, random_state=0),
            X_CLS,
            Y_CLS,
        ),
        X_CLS,
    ),
    "knn-brute": _knn_brute,
    "radius-brute": lambda: _knn_brute(RadiusNeighborsClassifier, radius=3.0),
    "knn-multioutput": lambda: (
        _fit(KNeighborsClassifier(), X_CLS, np.column_stack([Y_CLS, X_CLS[:, 3] > 0]).astype(int)),
        X_CLS,
    ),
    "knn-regressor": lambda: (_fit(KNeighborsRegressor(), X_REG, Y_REG), X_REG),
    "knn-kd-tree": lambda: (_fit(KNeighborsClassifier(algorithm="kd_tree"), X_CLS, Y_CLS), X_CLS),
    "knn-ball-tree": lambda: (_fit(KNeighborsClassifier(algorithm="ball_tree"), X_CLS, Y_CLS), X_CLS),
    # A GP kernel object is an admitted callable; SVC runs it as "precomputed".
    "svc-callable-kernel": lambda: (_fit(SVC(kernel=RBF(), random_state=0), X_CLS, Y_CLS), X_CLS),
    "svc-precomputed": lambda: (_fit(SVC(kernel="precomputed"), X_CLS @ X_CLS.T, Y_CLS), X_CLS[:7] @ X_CLS.T),
    "dummy-philox": lambda: (
        _fit(DummyClassifier(strategy="stratified", random_state=_used_philox()), X_CLS, Y_CLS),
        X_CLS,
    ),
    "dummy-with-philox-generator": lambda: (_with_philox_generator(_fit(DummyClassifier(), X_CLS, Y_CLS)), X_CLS),
}

# skops rebuilds every RandomState over MT19937 (its RandomStateNode calls
# RandomState().set_state(...)), so it cannot load one over Philox at all.
NOT_SKOPS = {"dummy-philox"}


def _with_philox_generator(est):
    gen = np.random.Generator(np.random.Philox(1))
    gen.random(3)
    est.extra_generator_ = gen  # any attribute: the loader walks the whole model
    return est


def original(name: str):
    """(fitted model, input it predicts on)"""
    return ORIGINALS[name]()


# ---------------------------------------------------------------------------
# Tampering
# ---------------------------------------------------------------------------


def widen_tree(owner) -> None:
    """Rebuild ``owner.tree_`` as a tree over HUGE_WIDTH columns whose every
    split reads column FAR_FEATURE: consistent in itself (the feature index is
    below the tree's n_features), so only the input-width check stands
    between it and an out-of-bounds read."""
    _, (_, n_classes, n_outputs), state = owner.tree_.__reduce__()
    nodes = state["nodes"].copy()
    nodes["feature"][nodes["left_child"] != -1] = FAR_FEATURE
    tree = Tree(HUGE_WIDTH, n_classes, n_outputs)
    tree.__setstate__({**state, "nodes": nodes})
    owner.tree_ = tree


_ABSENT = object()


def tree_with_n_features_in(value):
    def tamper(est):
        est = copy.deepcopy(est)
        widen_tree(est)
        if value is _ABSENT:
            del est.n_features_in_
        else:
            est.n_features_in_ = value
        return est

    return tamper


def members_without_width(est, own_width=_ABSENT):
    """Widen every member tree and drop the members' own n_features_in_ (so
    they do not check the input either); set the ensemble's to own_width."""
    est = copy.deepcopy(est)
    for member in est.estimators_:
        widen_tree(member)
        del member.n_features_in_
    if own_width is _ABSENT:
        del est.n_features_in_
    else:
        est.n_features_in_ = own_width
    return est


def boosting_with_width(own_width):
    """Stages after the first get wide trees that are consistent with their own
    (wide) n_features_in_; GradientBoosting validates the input against
    estimators_[0, 0] only and predict_stages() runs the other trees
    unchecked."""

    def tamper(est):
        est = copy.deepcopy(est)
        for member in est.estimators_.ravel()[1:]:
            widen_tree(member)
            member.n_features_in_ = HUGE_WIDTH
        if own_width is _ABSENT:
            del est.n_features_in_
        else:
            est.n_features_in_ = own_width
        return est

    return tamper


def labels(change):
    def tamper(est):
        est = copy.deepcopy(est)
        est._y = change(est._y.copy())
        return est

    return tamper


def _set(array, index, value):
    array[index] = value
    return array


def node_bounds(rows: int):
    def tamper(est):
        est = copy.deepcopy(est)
        state = list(est._tree.__getstate__())
        bounds = state[3]
        state[3] = np.zeros((rows,) + bounds.shape[1:], dtype=bounds.dtype)
        est._tree.__setstate__(tuple(state))
        return est

    return tamper


def support_indices(value, pad_support_vectors: bool = False):
    def tamper(est):
        est = copy.deepcopy(est)
        est.support_ = est.support_.copy()
        est.support_[:] = value
        if pad_support_vectors:
            # what the loader checked for non-precomputed kernels before
            est.support_vectors_ = np.zeros((len(est.support_), X_CLS.shape[1]))
        return est

    return tamper


def fit_shape(value):
    def tamper(est):
        est = copy.deepcopy(est)
        est.shape_fit_ = value
        return est

    return tamper


def philox_buffer_position(position):
    def tamper(est):
        est = copy.deepcopy(est)
        if "extra_generator_" in est.__dict__:
            bit_generator = est.extra_generator_.bit_generator
        else:
            bit_generator = est.random_state._bit_generator
        state = bit_generator.state
        state["buffer_pos"] = position
        bit_generator.state = state
        return est

    return tamper


# ---------------------------------------------------------------------------
# Finding 1..5: hostile cases
# ---------------------------------------------------------------------------

class Case(NamedTuple):
    original: str  # key of ORIGINALS
    tamper: Callable
    offender: str  # what load_model names
    reason: str  # the words of the refusal
    live_input: np.ndarray | None = None  # predict() on it kills a plain-joblib process


ONE_COLUMN = np.ones((3, 1))
N_CLASSES = len(np.unique(Y_CLS))
N_SAMPLES = X_CLS.shape[0]
NOT_AN_INT = "n_features_in_ is not a positive integer"
MISSING = "n_features_in_ is missing"
LABEL_RANGE = "encoded label out of range"
BOUNDS = "node bounds have the wrong shape"
SUPPORT = "support index out of range"
PHILOX = "Philox buffer position out of range"
GB = "sklearn.ensemble._gb.GradientBoostingRegressor"


def _all_labels(value):
    return labels(lambda y: _set(y, slice(None), value))


CASES = {
    # (1) decision trees: the input width must be bounded by a true int
    "tree-n_features_in_-absent": Case("tree", tree_with_n_features_in(_ABSENT), TREE, MISSING, ONE_COLUMN),
    "tree-n_features_in_-float": Case("tree", tree_with_n_features_in(1.0), TREE, NOT_AN_INT, ONE_COLUMN),
    "tree-n_features_in_-bool": Case("tree", tree_with_n_features_in(True), TREE, NOT_AN_INT, ONE_COLUMN),
    "tree-n_features_in_-numpy-int": Case(
        "tree", tree_with_n_features_in(np.int64(1)), TREE, NOT_AN_INT, ONE_COLUMN
    ),
    # even a numpy int equal to the tree's width is not what fitting stores
    "tree-n_features_in_-numpy-int-matching-the-tree": Case(
        "tree", tree_with_n_features_in(np.int64(HUGE_WIDTH)), TREE, NOT_AN_INT
    ),
    "tree-n_features_in_-0d-array": Case(
        "tree", tree_with_n_features_in(np.array(1)), TREE, NOT_AN_INT, ONE_COLUMN
    ),
    "tree-n_features_in_-string": Case("tree", tree_with_n_features_in("1"), TREE, NOT_AN_INT),
    "forest-n_features_in_-absent": Case("forest", members_without_width, TREE, MISSING, ONE_COLUMN),
    "extra-trees-n_features_in_-float": Case(
        "extra-trees",
        lambda est: members_without_width(est, 1.0),
        "sklearn.ensemble._forest.ExtraTreesRegressor",
        NOT_AN_INT,
        ONE_COLUMN,
    ),
    "gradient-boosting-n_features_in_-absent": Case(
        "gradient-boosting", boosting_with_width(_ABSENT), GB, MISSING, X_REG[:3]
    ),
    "gradient-boosting-n_features_in_-float": Case(
        "gradient-boosting", boosting_with_width(5.0), GB, NOT_AN_INT, X_REG[:3]
    ),
    "gradient-boosting-stage-wider-than-the-input": Case(
        "gradient-boosting",
        boosting_with_width(X_REG.shape[1]),
        GB,
        "member tree width does not match n_features_in_",
        X_REG[:3],
    ),
    "isolation-forest-n_features_in_-absent": Case(
        "isolation-forest", members_without_width, "sklearn.tree._classes.ExtraTreeRegressor", MISSING, X_CLS[:3]
    ),
    "bagging-n_features_in_-absent": Case("bagging", members_without_width, TREE, MISSING, X_CLS[:3]),
    # (2) neighbors classifiers add each neighbor's weight at
    # class_scores[i, _y[neighbor]]: _y must index classes_
    "knn-labels-far": Case("knn-brute", _all_labels(FAR_INDEX), KNN, LABEL_RANGE, X_CLS[:3]),
    "knn-labels-far-negative": Case("knn-brute", _all_labels(-FAR_INDEX), KNN, LABEL_RANGE, X_CLS[:3]),
    "knn-label-one-past-the-classes": Case("knn-brute", labels(lambda y: _set(y, 0, N_CLASSES)), KNN, LABEL_RANGE),
    "knn-label-negative": Case("knn-brute", labels(lambda y: _set(y, 0, -1)), KNN, LABEL_RANGE),
    "knn-labels-shorter-than-the-training-data": Case(
        "knn-brute", labels(lambda y: y[:10].copy()), KNN, "fitted targets do not match the training data"
    ),
    "knn-labels-not-integers": Case(
        "knn-brute", labels(lambda y: y.astype(float)), KNN, "encoded labels are not integers"
    ),
    "knn-multioutput-label-out-of-range": Case(
        "knn-multioutput", labels(lambda y: _set(y, (0, 1), 2)), KNN, LABEL_RANGE
    ),
    "radius-labels-far": Case("radius-brute", _all_labels(FAR_INDEX), RNN, LABEL_RANGE, X_CLS[:3]),
    "radius-label-one-past-the-classes": Case(
        "radius-brute", labels(lambda y: _set(y, 0, N_CLASSES)), RNN, LABEL_RANGE
    ),
    "knn-regressor-targets-shorter-than-the-training-data": Case(
        "knn-regressor",
        labels(lambda y: y[:10].copy()),
        "sklearn.neighbors._regression.KNeighborsRegressor",
        "fitted targets do not match the training data",
    ),
    # (3) KD trees keep lower and upper bounds per node, ball trees a centroid
    # (the live proofs need a wide model: see wide_neighbors)
    "kd-tree-node-bounds-empty": Case("knn-kd-tree", node_bounds(0), "sklearn.neighbors._kd_tree.KDTree", BOUNDS),
    "kd-tree-node-bounds-without-upper-bounds": Case(
        "knn-kd-tree", node_bounds(1), "sklearn.neighbors._kd_tree.KDTree", BOUNDS
    ),
    "ball-tree-node-bounds-empty": Case(
        "knn-ball-tree", node_bounds(0), "sklearn.neighbors._ball_tree.BallTree", BOUNDS
    ),
    # (4) a callable kernel runs as "precomputed": libsvm reads
    # kernel_row[support_[i]] with rows of shape_fit_[0] entries
    "svc-callable-kernel-support-far": Case(
        "svc-callable-kernel", support_indices(FAR_INDEX, pad_support_vectors=True), SVC_NAME, SUPPORT, X_CLS[:3]
    ),
    "svc-callable-kernel-support-one-past-the-samples": Case(
        "svc-callable-kernel", support_indices(N_SAMPLES), SVC_NAME, SUPPORT
    ),
    "svc-callable-kernel-support-negative": Case("svc-callable-kernel", support_indices(-1), SVC_NAME, SUPPORT),
    "svc-callable-kernel-fit-shape-not-an-int": Case(
        "svc-callable-kernel",
        fit_shape((float(N_SAMPLES), X_CLS.shape[1])),
        SVC_NAME,
        "shape_fit_ does not record the number of training samples",
    ),
    "svc-precomputed-support-one-past-the-samples": Case(
        "svc-precomputed", support_indices(N_SAMPLES), SVC_NAME, SUPPORT
    ),
    # (5) Philox reads buffer[buffer_pos] on the next draw
    "philox-buffer-position-far-negative": Case(
        "dummy-philox", philox_buffer_position(-FAR_INDEX), RANDOM_STATE, PHILOX, X_CLS[:3]
    ),
    "philox-buffer-position-negative": Case("dummy-philox", philox_buffer_position(-1), RANDOM_STATE, PHILOX),
    "philox-buffer-position-past-the-buffer": Case(
        "dummy-philox", philox_buffer_position(5), RANDOM_STATE, PHILOX
    ),
    "philox-generator-buffer-position-negative": Case(
        "dummy-with-philox-generator",
        philox_buffer_position(-1),
        "numpy.random._generator.Generator",
        PHILOX,
    ),
}
LIVE_CASES = [name for name, case in CASES.items() if case.live_input is not None]


# ---------------------------------------------------------------------------
# (a) the cases are live
# ---------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[2]

USE_WITH_PLAIN_JOBLIB = textwrap.dedent(
    """
    import sys, warnings
    warnings.simplefilter("ignore")
    import joblib, numpy as np
    model = joblib.load(sys.argv[1])  # plain joblib: none of the loader's checks
    X = np.load(sys.argv[2])
    getattr(model, sys.argv[3])(X)
    print("used without crashing")
    """
)


def _no_core_dump():  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def use_outside_the_loader(tmp_path: Path, model, X, method: str) -> subprocess.CompletedProcess:
    model_path = save(model, tmp_path / "hostile-plain.joblib", "joblib", ("zlib", 1))
    x_path = tmp_path / "X.npy"
    np.save(x_path, np.ascontiguousarray(X))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", USE_WITH_PLAIN_JOBLIB, str(model_path), str(x_path), method],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=180,
        preexec_fn=_no_core_dump,
    )


def assert_killed(proc: subprocess.CompletedProcess) -> None:
    # negative: killed by a signal (SIGSEGV, or SIGABRT from the allocator)
    assert proc.returncode < 0, (proc.returncode, proc.stdout[-500:], proc.stderr[-2000:])


@pytest.mark.chaos  # the proof that the case is live (a crash, a freeze) without our loader: slow subprocesses
@pytest.mark.parametrize("case", LIVE_CASES)
def test_hostile_model_kills_the_process_when_used_without_the_loader(tmp_path, case):
    spec = CASES[case]
    model, _ = original(spec.original)
    with quiet():
        hostile = spec.tamper(model)
    assert_killed(use_outside_the_loader(tmp_path, hostile, spec.live_input, "predict"))


def wide_neighbors(algorithm: str):
    """Two training rows of WIDE columns: reading one node's bounds from an
    empty node_bounds array runs up to 16 MB past its (tiny) allocation."""
    X = np.zeros((2, WIDE))
    X[1, 0] = 1.0
    return _fit(KNeighborsClassifier(n_neighbors=1, algorithm=algorithm), X, np.array([0, 1]))


@pytest.mark.chaos  # the proof that the case is live (a crash, a freeze) without our loader: slow subprocesses
@pytest.mark.parametrize("algorithm", ["kd_tree", "ball_tree"])
def test_empty_node_bounds_kill_the_process_when_used_without_the_loader(tmp_path, algorithm):
    """The read runs past a tiny allocation; whether it reaches unmapped memory depends on where
    the allocator put things (once in many runs a ball tree's read stayed inside mapped memory),
    so the case is live when one of three fresh processes is killed."""
    hostile = node_bounds(0)(wide_neighbors(algorithm))
    runs = []
    for _ in range(3):
        runs.append(use_outside_the_loader(tmp_path, hostile, np.ones((1, WIDE)), "predict"))
        if runs[-1].returncode < 0:
            break
    assert_killed(runs[-1])


WIDE_OFFENDERS = {
    "kd_tree": "sklearn.neighbors._kd_tree.KDTree",
    "ball_tree": "sklearn.neighbors._ball_tree.BallTree",
}


def test_wide_neighbors_with_empty_node_bounds_are_refused(tmp_path):
    for algorithm, offender in WIDE_OFFENDERS.items():
        hostile = node_bounds(0)(wide_neighbors(algorithm))
        path = save(hostile, tmp_path / f"{algorithm}.joblib", "joblib", ("zlib", 1))
        with pytest.raises(UnsafeModelError) as info:
            load_model(path)
        assert info.value.offenders == [offender]
        assert "inconsistent" in str(info.value) and BOUNDS in str(info.value)


class _ForgedTree:
    """Pickles as a Tree with ``state`` would (its ``__reduce__``), without building one here:
    scikit-learn's ``Tree.__setstate__`` itself crashes on some states."""

    def __init__(self, tree, **state_changes):
        cls, args, state = tree.__reduce__()
        self.reduced = (cls, args, {**state, **state_changes})

    def __reduce__(self):
        return self.reduced


def tree_with_0d_nodes():
    """Found by the host fuzzer: a 0-d ``nodes`` array crashes Tree.__setstate__ while the
    pickle is read, before any check after loading could see it."""
    model, _ = original("tree")
    model.tree_ = _ForgedTree(model.tree_, nodes=np.array(model.tree_.__getstate__()["nodes"][0]))
    return model


@pytest.mark.chaos  # the proof that the case is live without our loader: a subprocess
def test_a_tree_state_with_0d_nodes_kills_a_plain_joblib_load(tmp_path):
    path = tmp_path / "forged.joblib"
    joblib.dump(tree_with_0d_nodes(), path)
    done = subprocess.run([sys.executable, "-c", "import joblib, sys; joblib.load(sys.argv[1])", str(path)],
                          capture_output=True, timeout=120, preexec_fn=_no_core_dump)
    assert done.returncode < 0, done.stderr[-2000:]


def test_a_tree_state_with_0d_nodes_is_refused_before_scikit_learn_reads_it(tmp_path):
    path = tmp_path / "forged.joblib"
    joblib.dump(tree_with_0d_nodes(), path)
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert info.value.offenders == ["sklearn.tree._tree.Tree"] and "nodes array has the wrong shape" in str(info.value)


# ---------------------------------------------------------------------------
# (b) load_model refuses them
# ---------------------------------------------------------------------------


def _with_formats(names, original_of):
    return [
        pytest.param(name, fmt, id=f"{name}-{fmt}")
        for name in names
        for fmt in ("joblib", "skops")
        if not (fmt == "skops" and original_of(name) in NOT_SKOPS)
    ]


@pytest.mark.parametrize("case,fmt", _with_formats(CASES, lambda case: CASES[case].original))
def test_load_model_refuses_hostile_model_as_inconsistent(tmp_path, case, fmt):
    spec = CASES[case]
    model, _ = original(spec.original)
    with quiet():
        hostile = spec.tamper(model)
    path = save(hostile, tmp_path / f"hostile.{fmt}", fmt)
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert info.value.offenders == [spec.offender]
    message = str(info.value)
    assert "inconsistent" in message and spec.reason in message, message


# ---------------------------------------------------------------------------
# (c) no false refusals
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name,fmt", _with_formats(ORIGINALS, lambda name: name))
def test_untampered_model_loads_and_predicts_like_the_original(tmp_path, name, fmt):
    model, X = original(name)
    loaded = load_model(save(model, tmp_path / f"model.{fmt}", fmt)).estimator
    assert type(loaded) is type(model)
    if name == "knn-multioutput":  # predict_proba is a list, one array per output
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
        for got, want in zip(loaded.predict_proba(X), model.predict_proba(X), strict=True):
            np.testing.assert_allclose(got, want)
    else:
        assert_same_predictions(model, loaded, X, name)


def test_untampered_wide_neighbors_load_and_predict_like_the_originals(tmp_path):
    X = np.ones((1, WIDE))
    for algorithm in WIDE_OFFENDERS:
        model = wide_neighbors(algorithm)
        path = save(model, tmp_path / f"{algorithm}.joblib", "joblib", ("zlib", 1))
        np.testing.assert_array_equal(load_model(path).estimator.predict(X), model.predict(X))
