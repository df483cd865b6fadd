"""Model files made only of admitted types that still harm the process while
(or after) being loaded, and the loader rules that stop them.

1. Memory disclosure.  An ndarray rebuilt by a reconstruction helper
   (``numpy.core.multiarray._reconstruct``, ``numpy.ma.core._mareconstruct``,
   scikit-learn's ``newObj`` for KD/Ball trees) holds uninitialised memory
   until its BUILD state arrives; a file that never sends it made the viewer
   show raw server heap, library addresses included, as a model's
   ``classes_``.  The same bytes can be copied out *before* the state
   arrives, and ``bytes()``/``str(..., encoding)``/``numpy.bytes_`` of an
   object array copy its element pointers.  Rule: every such placeholder
   is zeroed and must receive its state by the end of the load; bytes and
   text are never built from an array.
2. C stack overflow.  200,000 nested one-element object arrays are freed
   recursively by numpy and kill the process (after the file was refused as
   "not an estimator"); a deeply nested tuple used as a dict key does the
   same while hashing, and a deeply nested structured dtype with an object
   field while numpy fills the array.  Rule: nesting is bounded while
   loading (the structure is never built), measured again over the real
   references at the end (a chain hidden by filling containers after they
   were referenced), and refused objects are released without recursion.

For each case a subprocess shows it is live against plain ``pickle`` /
``joblib.load`` (the process dies with SIGSEGV, or the array holds stale
memory), and ``load_model`` refuses it, in a subprocess that then exits
normally, with a message that names the problem.  Real models, including a
Birch model whose leaves form a long linked list, still load.
"""

from __future__ import annotations

import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from numpy._core.multiarray import _reconstruct
from numpy.ma.core import _mareconstruct
from sklearn.cluster import Birch
from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KDTree, KNeighborsClassifier
from sklearn.neighbors._kd_tree import newObj
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.core.test_safe_load import (  # noqa: F401 (autouse fixture)
    X_CLS,
    Y_CLS,
    Reduce,
    _single_threaded_native_code,
    assert_same_predictions,
    dataframe_pipeline,
    hgb_categorical,
    quiet,
    save,
    stack_global,
)
from viewer.core.safe_load import ModelLoadError, UnsafeModelError, load_model
from viewer.core.safe_load.reader import _MAX_NESTING

ROOT = Path(__file__).resolve().parents[2]
SIGSEGV = -signal.SIGSEGV

# ---------------------------------------------------------------------------
# Running a load in a subprocess
# ---------------------------------------------------------------------------


def run_python(code: str, *args: str, timeout: int = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=timeout,
    )


# Loads argv[1] with load_model, then frees everything that is left and runs
# the garbage collector: a refused structure freed recursively would crash
# here rather than later in a worker.
LOAD_MODEL = """
    import gc, sys, warnings
    warnings.simplefilter("ignore")
    from viewer.core.safe_load import ModelLoadError, load_model
    try:
        loaded = load_model(sys.argv[1])
    except ModelLoadError as exc:
        print("refused:", type(exc).__name__, exc, flush=True)
    else:
        print("loaded", type(loaded.estimator).__name__, flush=True)
        del loaded
    gc.collect()
    print("freed", flush=True)
"""

PLAIN_PICKLE = """
    import pickle, sys
    with open(sys.argv[1], "rb") as fh:
        obj = pickle.load(fh)
    print("loaded", flush=True)
    del obj
    print("freed", flush=True)
"""

PLAIN_JOBLIB = """
    import sys, joblib
    obj = joblib.load(sys.argv[1])
    print("loaded", flush=True)
    del obj
    print("freed", flush=True)
"""


def assert_kills_plain_loader(path: Path, script: str = PLAIN_PICKLE) -> None:
    proc = run_python(script, str(path))
    assert proc.returncode == SIGSEGV, (proc.returncode, proc.stdout, proc.stderr[-2000:])


def assert_refused_in_subprocess(path: Path, *words: str) -> str:
    proc = run_python(LOAD_MODEL, str(path))
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert proc.stdout.startswith("refused: UnsafeModelError"), proc.stdout
    for word in words:
        assert word in proc.stdout, (word, proc.stdout)
    assert proc.stdout.rstrip().endswith("freed"), proc.stdout
    return proc.stdout


# ---------------------------------------------------------------------------
# Hand-assembled pickles (protocol 4, no framing)
# ---------------------------------------------------------------------------

# memo 0: _reconstruct, memo 1: numpy.ndarray, memo 2: numpy.dtype, memo 3: dtype('O')
PREFIX = (
    b"\x80\x04"
    + stack_global("numpy._core.multiarray", "_reconstruct")
    + b"\x94"
    + stack_global("numpy", "ndarray")
    + b"\x94"
    + stack_global("numpy", "dtype")
    + b"\x94h\x02\x8c\x02O8\x89\x88\x87R\x94"
)
PLACEHOLDER = b"h\x00h\x01K\x00\x85C\x01b\x87R"  # _reconstruct(ndarray, (0,), b"b")
OPEN_OBJECT_ARRAY = PLACEHOLDER + b"(K\x01K\x01\x85h\x03\x89]("  # ... state (1, (1,), O, False, [
CLOSE_OBJECT_ARRAY = b"etb"  # ]) BUILD


def put(i: int) -> bytes:
    return b"r" + struct.pack("<I", i)


def get(i: int) -> bytes:
    return b"j" + struct.pack("<I", i)


def nested_object_arrays(depth: int) -> bytes:
    """The body of ``depth`` one-element object arrays, each holding the next."""
    return OPEN_OBJECT_ARRAY * depth + b"N" + CLOSE_OBJECT_ARRAY * depth


def estimator_with(name: str, body: bytes) -> bytes:
    """An (unfitted) LogisticRegression whose attribute ``name`` is ``body``."""
    key = name.encode()
    return (
        stack_global("sklearn.linear_model._logistic", "LogisticRegression")
        + b")\x81}\x8c"
        + bytes([len(key)])
        + key
        + body
        + b"sb"
    )


def chain_filled_after_use(depth: int, end: str) -> bytes:
    """``depth`` object arrays each holding the next, built so that every
    array is referenced *before* it is filled in (placeholders first, states
    later), which hides the chain's depth from a count made as it is built.
    The outermost array is made last, so freeing the loader's references in
    creation order would free the chain recursively.  ``end``: "return" the
    chain, "truncate" the file after it, "hide" it in the memo and return
    an estimator, or "attach" it to an estimator as ``deep_``."""
    first = 4  # memo index of array 0
    parts = [PREFIX]

    def placeholder(i):
        return PLACEHOLDER + put(first + i) + b"0"

    def build(i):
        inner = get(first + i + 1) if i + 1 < depth else b"N"
        return get(first + i) + b"(K\x01K\x01\x85h\x03\x89]" + inner + b"atb0"

    parts += [placeholder(i) for i in range(depth - 1, 0, -1)]
    parts += [build(i) for i in range(1, depth)]
    parts += [placeholder(0), build(0)]
    if end == "return":
        parts.append(get(first) + b".")
    elif end == "hide":
        parts.append(estimator_with("C", b"G?\xf0\x00\x00\x00\x00\x00\x00") + b".")
    elif end == "attach":
        parts.append(estimator_with("deep_", get(first)) + b".")
    else:
        assert end == "truncate"
        parts.append(get(first))
    return b"".join(parts)


def nested_struct_dtype_array(depth: int) -> bytes:
    """A one-element array whose dtype is ``depth`` structs nested in one
    another around an object field: numpy fills (and clears) it recursively."""
    open_level = b"h\x02\x8c\x02V8\x89\x88\x87R(K\x03\x8c\x01|N\x8c\x01a\x85}\x8c\x01a"
    close_level = b"K\x00\x86sK\x08K\x01K?tb"
    dtype = open_level * depth + b"h\x03" + close_level * depth
    return PREFIX + b"h\x00h\x01K\x01\x85" + dtype + b"\x87R."


def joblib_object_array(nested_pickle: bytes, shape: tuple[int, ...] = (1,)) -> bytes:
    """A joblib file holding one object array, whose elements joblib writes as
    a nested pickle right after the NumpyArrayWrapper."""
    dims = b"".join(b"K" + bytes([n]) for n in shape)
    state = (
        b"}(\x8c\x08subclass"
        + stack_global("numpy", "ndarray")
        + b"\x8c\x05shape("
        + dims
        + b"t\x8c\x05order\x8c\x01C\x8c\x05dtype"
        + stack_global("numpy", "dtype")
        + b"\x8c\x02O8\x89\x88\x87R\x8c\nallow_mmap\x89u"
    )
    wrapper = stack_global("joblib.numpy_pickle", "NumpyArrayWrapper") + b")\x81" + state + b"b"
    return b"\x80\x04" + wrapper + nested_pickle + b"."


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------
# Finding 2: nesting deep enough to overflow the C stack
# ---------------------------------------------------------------------------

RED_TEAM_DEPTH = 200_000  # the red team's file
DEEP = 50_000  # numpy crashed at ~4,500 nested arrays (8 MB stack), tuple hashing at ~150,000

NESTED_CASES = {
    # the red team's file: refused as "not an estimator", then freed
    "object-arrays": lambda: PREFIX + nested_object_arrays(RED_TEAM_DEPTH) + b".",
    "object-arrays-in-estimator": lambda: PREFIX + estimator_with("classes_", nested_object_arrays(DEEP)) + b".",
    # hashing a nested tuple recurses in C without a depth check
    "tuple-dict-key": lambda: b"\x80\x04}N" + b"\x85" * RED_TEAM_DEPTH + b"Ns.",
    # numpy fills the object field of a nested struct recursively
    "struct-dtype": lambda: nested_struct_dtype_array(DEEP),
    # the chain is only as deep as recorded once the arrays are filled
    "filled-after-use": lambda: chain_filled_after_use(DEEP, "return"),
    "filled-after-use-then-truncated": lambda: chain_filled_after_use(DEEP, "truncate"),
    "filled-after-use-hidden-in-memo": lambda: chain_filled_after_use(DEEP, "hide"),
}


@pytest.mark.chaos  # the proof that the case is live (a crash, a freeze) without our loader: slow subprocesses
@pytest.mark.parametrize("case", list(NESTED_CASES))
def test_deep_nesting_kills_plain_pickle(tmp_path, case):
    path = write(tmp_path, f"{case}.pkl", NESTED_CASES[case]())
    assert_kills_plain_loader(path)


@pytest.mark.parametrize("case", [case for case in NESTED_CASES if "truncated" not in case])
def test_load_model_refuses_deep_nesting_and_exits_normally(tmp_path, case):
    path = write(tmp_path, f"{case}.pkl", NESTED_CASES[case]())
    out = assert_refused_in_subprocess(path, "objects nested too deeply")
    assert f"the limit is {_MAX_NESTING}" in out and "overflows the C stack" in out


def test_chain_built_before_a_truncation_is_freed_without_recursion(tmp_path):
    """The truncation is what is reported; the chain built before it is
    released without recursive deallocation."""
    path = write(tmp_path, "chain.pkl", NESTED_CASES["filled-after-use-then-truncated"]())
    proc = run_python(LOAD_MODEL, str(path))
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert proc.stdout.startswith("refused: ModelLoadError The model file is truncated"), proc.stdout
    assert proc.stdout.rstrip().endswith("freed"), proc.stdout


@pytest.mark.chaos  # the proof that the case is live (a crash, a freeze) without our loader: slow subprocesses
def test_joblib_object_array_nested_deeply_kills_joblib_load(tmp_path):
    nested = PREFIX + nested_object_arrays(DEEP) + b"."
    path = write(tmp_path, "nested.joblib", joblib_object_array(nested))
    assert_kills_plain_loader(path, PLAIN_JOBLIB)


def test_load_model_refuses_joblib_object_array_nested_deeply(tmp_path):
    nested = PREFIX + nested_object_arrays(DEEP) + b"."
    path = write(tmp_path, "nested.joblib", joblib_object_array(nested))
    out = assert_refused_in_subprocess(path, "objects nested too deeply")
    assert "overflows the C stack" in out


@pytest.mark.parametrize("depth,refused", [(_MAX_NESTING, False), (_MAX_NESTING + 1, True)])
def test_nesting_limit_is_exact_for_lists(tmp_path, depth, refused):
    """Lists nested exactly to the limit are only "not a model"; one more
    level is refused for its depth (measured over the real references)."""
    path = write(tmp_path, "lists.pkl", b"\x80\x04" + b"(" * depth + b"N" + b"l" * depth + b".")
    with pytest.raises(ModelLoadError) as info:
        load_model(path)
    assert ("objects nested too deeply" in str(info.value)) is refused, str(info.value)
    assert isinstance(info.value, UnsafeModelError) is refused


def test_deepest_accepted_object_array_chain_is_freed_safely(tmp_path):
    """The deepest chain of nested object arrays the loader accepts (an
    estimator holding it: _MAX_NESTING levels in all) is freed without
    crashing, in the main thread and in a worker thread."""
    depth = _MAX_NESTING - 1
    path = write(tmp_path, "deep.pkl", chain_filled_after_use(depth, "attach"))
    proc = run_python(
        """
        import gc, sys, threading
        from viewer.core.safe_load import load_model
        models = [load_model(sys.argv[1]).estimator for _ in range(2)]
        depth = 0
        node = models[0].deep_
        while node is not None:
            node, depth = node[0], depth + 1
        print("depth", depth, flush=True)
        models.pop()  # freed in the main thread
        gc.collect()
        worker = threading.Thread(target=models.clear)  # and in a thread
        worker.start(); worker.join()
        gc.collect()
        print("freed", flush=True)
        """,
        str(path),
    )
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert f"depth {depth}" in proc.stdout and "freed" in proc.stdout, proc.stdout


# ---------------------------------------------------------------------------
# Finding 1: arrays that expose uninitialised or raw memory
# ---------------------------------------------------------------------------


def test_plain_pickle_placeholder_without_state_holds_stale_memory():
    """Live: an array rebuilt without its state shows whatever the heap held
    (here a marker freed just before; in the viewer, server memory)."""
    proc = run_python(
        """
        import pickle
        import numpy as np
        from numpy._core.multiarray import _reconstruct

        class Placeholder:
            def __reduce__(self):
                return (_reconstruct, (np.ndarray, (4096,), np.dtype("u1")))

        data = pickle.dumps(Placeholder(), protocol=4)
        hits = 0
        for _ in range(20):
            secret = bytearray(b"SECRET-TOKEN-42!" * 256)
            del secret
            hits += b"SECRET-TOKEN-42!" in pickle.loads(data).tobytes()
        print("hits", hits)
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    hits = int(proc.stdout.split()[-1])
    assert hits > 0, proc.stdout


def _model():
    with quiet():
        return LogisticRegression().fit(X_CLS, np.where(Y_CLS > 0, "yes", "no"))


UNBUILT = {
    "ndarray-as-classes_": ("classes_", lambda: Reduce(_reconstruct, np.ndarray, (2048,), np.dtype("i8"))),
    "object-ndarray": ("classes_", lambda: Reduce(_reconstruct, np.ndarray, (4,), np.dtype("O"))),
    "matrix": ("extra_", lambda: Reduce(_reconstruct, np.matrix, (8, 8), np.dtype("f8"))),
    "masked-array": (
        "extra_",
        lambda: Reduce(_mareconstruct, np.ma.MaskedArray, np.ndarray, (64,), "f8"),
    ),
    "kd-tree-from-newObj": ("extra_", lambda: Reduce(newObj, KDTree)),
}


@pytest.mark.parametrize("fmt", ["joblib", "pickle2", "pickle4"])
@pytest.mark.parametrize("case", list(UNBUILT))
def test_array_rebuilt_without_its_state_is_refused(tmp_path, case, fmt):
    attribute, payload = UNBUILT[case]
    model = _model()
    setattr(model, attribute, payload())
    path = save(model, tmp_path / "model.bin", fmt)
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    message = str(info.value)
    assert "rebuilt without its" in message
    assert "never fills in its contents" in message and "server's memory" in message


def test_joblib_object_array_whose_elements_are_a_placeholder_is_refused(tmp_path):
    nested = PREFIX + b"h\x00h\x01K\x01\x85h\x03\x87R."  # _reconstruct(ndarray, (1,), O), no state
    path = write(tmp_path, "placeholder.joblib", joblib_object_array(nested))
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert "numpy.ndarray of dtype object rebuilt without its contents" in str(info.value)


def array_read_before_its_state() -> bytes:
    """An estimator with ``extra_``, a 4096-byte array placeholder that gets
    its (zero) state only at the end, and ``leak_ = list(extra_)`` taken
    before that: a copy of whatever the placeholder's memory held."""
    u1 = b"h\x02\x8c\x02u1\x89\x88\x87R"
    size = b"M\x00\x10\x85"  # (4096,)
    return (
        PREFIX
        + b"h\x00h\x01" + size + u1 + b"\x87R" + put(4) + b"0"  # placeholder
        + stack_global("builtins", "list") + get(4) + b"\x85R" + put(5) + b"0"  # list(placeholder)
        + get(4) + b"(K\x01" + size + u1 + b"\x89B" + struct.pack("<I", 4096) + bytes(4096) + b"tb0"
        + stack_global("sklearn.linear_model._logistic", "LogisticRegression")
        + b")\x81}(\x8c\x06extra_" + get(4) + b"\x8c\x05leak_" + get(5) + b"ub."
    )


def test_array_read_before_its_state_arrives_holds_zeros_not_heap(tmp_path):
    path = write(tmp_path, "model.pkl", array_read_before_its_state())
    proc = run_python(
        """
        import pickle, sys
        nonzero = 0
        for _ in range(5):
            junk = bytearray(b"\\xaa" * 4096)
            del junk
            with open(sys.argv[1], "rb") as fh:
                nonzero += any(pickle.load(fh).leak_)
        print("nonzero", nonzero)
        """,
        str(path),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert int(proc.stdout.split()[-1]) > 0, "plain pickle should show stale memory"
    loaded = load_model(path).estimator
    assert len(loaded.leak_) == 4096 and not any(loaded.leak_)
    assert not loaded.extra_.any()


OBJECTS = np.array([None, "x"], dtype=object)
POINTER_COPIES = {
    "bytes": lambda: Reduce(bytes, OBJECTS),
    "bytearray": lambda: Reduce(bytearray, OBJECTS),
    "str-decoding": lambda: Reduce(str, OBJECTS, "latin-1"),
    "numpy.bytes_": lambda: Reduce(np.bytes_, OBJECTS),
    "numpy.str_-decoding": lambda: Reduce(np.str_, OBJECTS, "latin-1"),
}


def test_plain_pickle_bytes_of_object_array_copies_its_pointers():
    """Live: bytes() of an object array is the addresses of its elements
    (here the address of None, inside libpython)."""
    model = _model()
    model.extra_ = POINTER_COPIES["bytes"]()
    loaded = pickle.loads(pickle.dumps(model, protocol=4))
    assert loaded.extra_[:8] == struct.pack("<Q", id(None))


@pytest.mark.parametrize("case", list(POINTER_COPIES))
def test_bytes_or_text_built_from_an_array_is_refused(tmp_path, case):
    model = _model()
    model.extra_ = POINTER_COPIES[case]()
    path = save(model, tmp_path / "model.pkl", "pickle4")
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    message = str(info.value)
    assert "(numpy.ndarray) (copies raw memory)" in message
    assert "addresses inside the server process" in message


def test_str_new_from_an_array_is_refused(tmp_path):
    array = pickle.dumps(OBJECTS, protocol=2)[2:-1]  # no memo: fresh objects only
    body = stack_global("builtins", "str") + b"(" + array + b"\x8c\x07latin-1t\x81"
    path = write(tmp_path, "str.pkl", b"\x80\x04" + estimator_with("extra_", body) + b".")
    with pytest.raises(UnsafeModelError) as info:
        load_model(path)
    assert "builtins.str(numpy.ndarray) (copies raw memory)" in str(info.value)


# ---------------------------------------------------------------------------
# No false refusals
# ---------------------------------------------------------------------------


def _fit(est, X, y):
    with quiet():
        return est.fit(X, y)


def _with_array_attributes():
    model = _model()
    model.masked_ = np.ma.masked_array([1.5, 2.0, 3.0], mask=[0, 1, 0])
    model.masked_objects_ = np.ma.masked_array(np.array(["a", None, "c"], dtype=object), mask=[0, 1, 0])
    with quiet():
        model.matrix_ = np.asmatrix([[1.0, 2.0], [3.0, 4.0]])
    model.nested_objects_ = np.array([np.array(["a", "b"], dtype=object), None], dtype=object)
    return model, X_CLS


def _birch():
    X = np.random.RandomState(0).rand(4000, 2)
    with quiet():
        model = Birch(threshold=0.008, n_clusters=None, branching_factor=10).fit(X)
    assert len(model._get_leaves()) > 250  # a long linked list of leaves
    return model, X[:50]


REAL_MODELS = {
    "pipeline(ColumnTransformer on a DataFrame with strings)": dataframe_pipeline,
    "string classes_": lambda: (_model(), X_CLS),
    "HistGradientBoosting(categorical)": hgb_categorical,
    "HistGradientBoosting": lambda: (_fit(HistGradientBoostingClassifier(max_iter=10), X_CLS, Y_CLS), X_CLS),
    "GradientBoosting(object array of trees)": lambda: (
        _fit(GradientBoostingClassifier(n_estimators=5, random_state=0), X_CLS, Y_CLS),
        X_CLS,
    ),
    "KNeighbors(kd_tree, newObj)": lambda: (_fit(KNeighborsClassifier(algorithm="kd_tree"), X_CLS, Y_CLS), X_CLS),
    "nested pipelines": lambda: (
        _fit(make_pipeline(make_pipeline(StandardScaler()), LogisticRegression()), X_CLS, Y_CLS),
        X_CLS,
    ),
    "masked, matrix and nested object arrays": _with_array_attributes,
}


@pytest.fixture(scope="module")
def real_models():
    return {name: make() for name, make in REAL_MODELS.items()}


@pytest.mark.parametrize("fmt", ["joblib", "pickle2", "pickle5"])
@pytest.mark.parametrize("name", list(REAL_MODELS))
def test_real_models_still_load(tmp_path, real_models, name, fmt):
    model, X = real_models[name]
    path = save(model, tmp_path / "model.bin", fmt)
    loaded = load_model(path).estimator
    assert_same_predictions(model, loaded, X, name)
    for attribute in ("masked_", "masked_objects_", "matrix_"):
        if hasattr(model, attribute):
            original, copy_ = getattr(model, attribute), getattr(loaded, attribute)
            assert type(copy_) is type(original)
            np.testing.assert_array_equal(np.ma.getdata(copy_), np.ma.getdata(original))
            np.testing.assert_array_equal(np.ma.getmaskarray(copy_), np.ma.getmaskarray(original))


@pytest.mark.parametrize("fmt", ["pickle2", "pickle5"])  # joblib.dump itself recurses too deeply
def test_birch_with_a_long_linked_list_of_leaves_still_loads(tmp_path, fmt):
    model, X = _birch()
    path = save(model, tmp_path / "birch.pkl", fmt)
    loaded = load_model(path).estimator
    with quiet():
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert len(loaded._get_leaves()) == len(model._get_leaves())
