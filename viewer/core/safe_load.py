"""Load scikit-learn models from untrusted files without running the file's code.

Supported inputs (detected by content, never by file name):

* joblib files (``joblib.dump``), uncompressed or compressed with zlib, gzip,
  bz2, lzma or xz (lz4 too when the ``lz4`` package is installed);
* plain pickles (protocols 0-5) that were not written by joblib;
* skops files (``skops.io.dump``).

Pickle-based files are read by :class:`_RestrictedUnpickler`, a subclass of
joblib's own ``NumpyUnpickler`` (so joblib's inline array format and its
compressors keep working) whose ``find_class`` only admits the globals on an
explicit allowlist (see "The allowlist" below).  It also restricts what may
be *called* while loading (constructors and reconstruction helpers only),
guards the opcodes that call methods on objects (BUILD, APPEND(S),
SETITEM(S), ADDITEMS), rebuilds numpy dtypes through the public constructor
instead of ``dtype.__setstate__``, reads joblib's object arrays with itself
rather than a plain unpickler, and counts decompressed bytes.  Nothing in
this module ever calls ``pickle.load``, ``joblib.load`` or
``numpy.load(allow_pickle=True)``.

skops files are first audited with ``skops.io.get_untrusted_types`` and then
loaded with an explicit ``trusted=[...]`` list computed from the same
allowlist, after checking how each node of the file uses each type
(``trusted=True`` is never used).

After loading, both formats go through the same structural checks of the
native data structures that scikit-learn's Cython code indexes without
bounds checks (decision trees and forests, (hist) gradient boosting, KD/Ball
trees and neighbors, k-means, libsvm models, sparse matrices, splines,
MT19937 states) and of stored callables/keyword arguments.  A tampered index
there cannot run code at load time but could crash the process or read
memory it should not at predict time.

This module only imports the standard library, numpy, scipy, scikit-learn,
joblib and skops.
"""

from __future__ import annotations

import _compat_pickle
import contextlib
import copyreg
import dataclasses
import functools
import importlib
import io
import json
import os
import pickle
import re
import struct
import sys
import types
import warnings
import zipfile
from typing import Any, Callable, Iterable, Literal

import numpy as np
from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler
from joblib.numpy_pickle_utils import (
    _ensure_native_byte_order,
    _validate_fileobject_and_memmap,
)

__all__ = [
    "DEFAULT_MAX_DECOMPRESSED_BYTES",
    "LoadedModel",
    "ModelLoadError",
    "UnsafeModelError",
    "detect_format",
    "is_admitted_global",
    "load_model",
]

#: Default ceiling on the number of bytes a model file may expand to.
DEFAULT_MAX_DECOMPRESSED_BYTES = 2 * 1024**3

ModelFormat = Literal["skops", "joblib"]


# ---------------------------------------------------------------------------
# Public errors and result type
# ---------------------------------------------------------------------------


class ModelLoadError(Exception):
    """The file is not a loadable scikit-learn model.

    Raised for empty, truncated, corrupt or unrecognised files, files that do
    not contain an estimator, files that reference scikit-learn objects that do
    not exist in the installed version, and files that would decompress to
    more than the allowed number of bytes.
    """


class UnsafeModelError(ModelLoadError):
    """The file references code that is not allowed to run while loading.

    ``offenders`` lists the refused references, e.g.
    ``["posix.system", "subprocess.Popen"]``.  Nothing referenced by the file
    has been called when this is raised.
    """

    def __init__(self, offenders: Iterable[str], detail: str | None = None):
        self.offenders: list[str] = list(dict.fromkeys(offenders))
        names = ", ".join(self.offenders) or "(unknown)"
        if detail:
            message = f"Refusing to load this model ({names}): {detail}"
        else:
            message = (
                "Refusing to load this model: it references code outside the "
                f"allowlist of safe scikit-learn/numpy/scipy objects: {names}. "
                "Loading it could execute arbitrary code. If these objects come "
                "from your own trusted package, an operator can allow their "
                "module with trusted_modules."
            )
        super().__init__(message)


@dataclasses.dataclass
class LoadedModel:
    """Result of :func:`load_model`."""

    estimator: Any
    format: ModelFormat
    saved_sklearn_version: str | None
    warnings: list[str] = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------------
# Format detection
# ---------------------------------------------------------------------------

_ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")
# Magic numbers of joblib's compressors (see joblib.compressor); duplicated
# here so detection does not depend on joblib's private registry.
_COMPRESSED_MAGICS = {
    b"\x78": "zlib",  # joblib's BinaryZlibFile: raw zlib stream (CMF 0x78)
    b"\x1f\x8b": "gzip",
    b"BZh": "bz2",
    b"\xfd7zXZ": "xz",
    b"]\x00\x00": "lzma",
    b"\x04\x22\x4d\x18": "lz4",
}
_JOBLIB_LEGACY_MAGIC = b"ZF"  # joblib < 0.10 "Z-file" format
# First opcode of a protocol 0/1 pickle: MARK, GLOBAL, EMPTY_LIST/DICT/TUPLE.
_PROTO01_FIRST_BYTES = b"(c]})"


def _read_head_tail(path: str | os.PathLike, n: int = 8) -> tuple[bytes, bytes, int]:
    try:
        with open(path, "rb") as fh:
            head = fh.read(n)
            size = os.fstat(fh.fileno()).st_size
            tail = b""
            if size:
                fh.seek(max(0, size - 1))
                tail = fh.read(1)
    except FileNotFoundError:
        raise  # the caller's problem (e.g. a missing artifact), not the file's
    except OSError as exc:
        raise ModelLoadError(f"Cannot read the model file: {exc}") from exc
    return head, tail, size


def detect_format(path: str | os.PathLike) -> ModelFormat:
    """Return ``"skops"`` or ``"joblib"`` from the file's leading bytes.

    ``"joblib"`` covers joblib files (all compressions) and plain pickles.
    Raises :class:`ModelLoadError` for empty or unrecognised content.
    """
    head, tail, size = _read_head_tail(path)
    if size == 0:
        raise ModelLoadError("The model file is empty.")
    if head.startswith(_ZIP_MAGICS):
        return "skops"
    if head.startswith(_JOBLIB_LEGACY_MAGIC):
        return "joblib"  # refused with a clear message by load_model
    if head[:1] == b"\x80" and len(head) >= 2 and 2 <= head[1] <= 5:
        return "joblib"
    for magic in _COMPRESSED_MAGICS:
        if head.startswith(magic):
            return "joblib"
    # Protocol 0/1 pickles have no header; accept only a plausible first
    # opcode together with the final STOP opcode ('.').
    if head[:1] and head[:1] in _PROTO01_FIRST_BYTES and tail == b".":
        return "joblib"
    raise ModelLoadError(
        "Unrecognised file format: expected a joblib/pickle file or a skops file "
        "containing a scikit-learn model."
    )


# ---------------------------------------------------------------------------
# The allowlist
# ---------------------------------------------------------------------------
#
# Why an allowlist, and what may be on it
# ---------------------------------------
# A pickle is a program.  Every global that ``find_class`` hands back can be
# *called* by the file with arguments of the attacker's choosing (REDUCE,
# NEWOBJ, INST/OBJ), can be handed to another admitted callable (e.g. as the
# ``func`` of a ``functools.partial`` or a ``FunctionTransformer``, which the
# viewer will later call with data), and objects built from it get
# ``__setstate__``/``append``/``extend``/``add``/``__setitem__`` called on
# them.  So a global is admitted only if calling it with *any* arguments, and
# running those methods on its instances, has no effect outside the objects
# being built: no file, network, process, import or interpreter-state access,
# and no access to attributes chosen by the file.
#
# Consequences:
#   * builtins.getattr / eval / exec / compile / open / __import__ / type,
#     importlib.*, os.*, posix.*, subprocess.*, sys.*, operator.attrgetter /
#     itemgetter / methodcaller (attribute walking), pickle/joblib/numpy
#     loaders (numpy.load with allow_pickle, joblib's legacy NDArrayWrapper
#     which calls numpy.load(allow_pickle=True) on a path from the file) are
#     never admitted.
#   * Functions are never admitted by module prefix (sklearn.datasets.fetch_*
#     does network and file IO, sklearn.utils has all kinds of helpers): every
#     admitted function is listed explicitly below or derived from an explicit
#     registry (scikit-learn's own scorer table).
#   * The viewer later calls stored callables (FunctionTransformer.func,
#     kernels, metrics) with its own data, so the same rule applies to them;
#     they may not receive the model's own arrays as numpy ``out=``/``where=``
#     (checked after loading).
#   * Classes may be admitted by a structural rule when the rule is sound:
#     scikit-learn estimators (subclasses of ``sklearn.base.BaseEstimator``
#     *defined* in a non-test ``sklearn.*`` module) follow the convention that
#     ``__init__`` only stores parameters, and ``BaseEstimator.__setstate__``
#     only updates ``__dict__`` (we audited the overrides in sklearn 1.9:
#     IsotonicRegression rebuilds its interpolation function, FrozenEstimator
#     forwards attribute reads to its wrapped estimator; both are pure).
#   * Names are resolved with ``vars(module).get(name)`` (no ``getattr``, so
#     no module ``__getattr__`` hooks and no dotted attribute chains), and a
#     class must be *defined* where the file says it is (``__module__`` and
#     ``__qualname__`` match), so re-exports such as ``sklearn.base.copy`` or
#     a trusted module's ``from os import system`` are not admitted.
#   * Modules outside the allowed packages are never imported while resolving
#     a reference; test/experimental/dataset modules of sklearn are not
#     imported either.
#
# Referencing is not calling.  Admitted functions (ufuncs, numpy reductions,
# score functions, check_array) are only *referenced* by fitted models, as
# parameters.  While loading, a pickle may call only constructors and the
# reconstruction helpers in _LOAD_HELPERS (REDUCE/INST/OBJ/NEWOBJ are checked
# against that set), because some admitted callables run native code that
# trusts its arguments, and the file chooses the arguments.  Some admitted
# classes are not callable at all (see _not_callable_at_load_types):
# ``numpy.ndarray(shape, object, buffer=...)`` turns bytes into object
# pointers, scipy.sparse/KD-tree/metric/spline constructors index crafted
# arrays natively.  Those may be rebuilt from state (NEWOBJ + BUILD) and are
# re-validated after loading, and they may not be stored as callables either
# (a FunctionTransformer would call them with keyword arguments from the
# file).
#
# The opcodes that call methods on objects are guarded too: BUILD only once
# per object and never on classes/functions (that would monkeypatch them
# process-wide), APPEND(S)/SETITEM(S)/ADDITEMS only on real lists/dicts/sets,
# and BUILD on a numpy dtype never reaches ``dtype.__setstate__`` (which
# trusts its input and mutates in place): a new dtype is built from the
# validated state with the public ``np.dtype`` constructor.
#
# ``trusted_modules`` (an argument of load_model, never something a file can
# switch on) admits every class/function *defined* in the listed module
# prefixes, for an operator's own reviewed code.  Standard-library and core
# scientific packages cannot be trusted this way.

# (module, name) pairs admitted explicitly.  Grouped with the reasoning.
_EXPLICIT_GLOBALS: frozenset[tuple[str, str]] = frozenset(
    [
        # -- Builtin value types.  Constructing them only builds a value.
        # (bytes/bytearray are wrapped to refuse bytes(<huge int>) zero-fill
        # allocations, see _WRAPPED_GLOBALS.)  Not admitted: type (3-arg form
        # creates classes with attacker-chosen dunders), range (lazy huge
        # iterables to feed list/set), getattr & co.
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "list"),
        ("builtins", "tuple"),
        ("builtins", "dict"),
        ("builtins", "slice"),
        ("builtins", "complex"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("builtins", "bool"),
        ("builtins", "str"),
        ("builtins", "object"),  # base argument of copyreg._reconstructor
        ("builtins", "Ellipsis"),
        ("builtins", "NotImplemented"),
        # -- Containers from collections.  defaultdict calls its factory on a
        # missing key; the factory can only be another admitted callable.
        ("collections", "OrderedDict"),
        ("collections", "defaultdict"),
        ("collections", "Counter"),
        # -- Pickle machinery.  copyreg._reconstructor(cls, base, state) calls
        # base.__new__(cls, state) and base.__init__(obj, state); it is
        # wrapped (_safe_reconstructor) to allow only the builtin bases that
        # copyreg._reduce_ex itself writes.
        ("copyreg", "_reconstructor"),
        # -- functools.partial can only wrap callables the file could already
        # reference (i.e. admitted ones), and a partial object cannot be
        # called while loading.  HistGradientBoosting with categorical
        # features stores partial(check_array, ...).  After loading, partials
        # that bind positional arguments to numpy/scipy functions are refused
        # (they could pass the model's own arrays as output buffers).
        ("functools", "partial"),
        # -- numpy array / dtype / scalar reconstruction (numpy.core.* names
        # written by numpy 1.x are mapped to numpy._core.*).  _reconstruct
        # only takes (type, shape, dtype) and ndarray.__setstate__ refuses raw
        # bytes for object arrays; ndarray itself (buffer=...) is not callable
        # (see _not_callable_at_load_types), _frombuffer is wrapped, and dtype
        # state goes through _rebuild_dtype.
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "matrix"),
        ("numpy.matrixlib.defmatrix", "matrix"),
        ("numpy.ma.core", "MaskedArray"),  # GridSearchCV.cv_results_
        ("numpy.ma.core", "_mareconstruct"),
        ("numpy.ma", "MaskedArray"),
        # Pure reductions used as parameters (FeatureAgglomeration's
        # pooling_func=np.mean, FunctionTransformer(func=np.sum), ...).
        ("numpy", "mean"),
        ("numpy", "median"),
        ("numpy", "average"),
        ("numpy", "sum"),
        ("numpy", "prod"),
        ("numpy", "std"),
        ("numpy", "var"),
        ("numpy", "min"),
        ("numpy", "max"),
        ("numpy", "amin"),
        ("numpy", "amax"),
        ("numpy", "nanmean"),
        ("numpy", "nanmedian"),
        ("numpy", "nansum"),
        ("numpy", "nanstd"),
        ("numpy", "nanvar"),
        ("numpy", "nanmin"),
        ("numpy", "nanmax"),
        # numpy random state: the ctors only instantiate bit generators (by
        # name from a fixed table); wrapped so that the class/ctor arguments
        # can only be numpy's own.  MT19937 positions are checked after
        # loading (numpy does not bounds-check them).
        ("numpy.random._pickle", "__bit_generator_ctor"),
        ("numpy.random._pickle", "__generator_ctor"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("numpy.random.bit_generator", "SeedSequence"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
        ("numpy.random._mt19937", "MT19937"),
        ("numpy.random._pcg64", "PCG64"),
        ("numpy.random._pcg64", "PCG64DXSM"),
        ("numpy.random._philox", "Philox"),
        ("numpy.random._sfc64", "SFC64"),
        ("numpy.random.mtrand", "RandomState"),
        ("numpy.random._generator", "Generator"),
        # -- scipy pieces that fitted estimators hold: SplineTransformer keeps
        # BSpline objects (plain containers of knots/coefficients), which in
        # scipy >= 1.15 reference the array-API ``asarray`` helper.
        ("scipy.interpolate._bsplines", "BSpline"),
        ("scipy._lib.array_api_compat.numpy._aliases", "asarray"),
        # -- joblib's inline-array placeholder.  Resolved to
        # _SafeNumpyArrayWrapper, which validates shape/dtype and reads object
        # arrays with this restricted unpickler (not joblib's).  The legacy
        # NDArrayWrapper/ZNDArrayWrapper (numpy.load(allow_pickle=True) on a
        # path taken from the file) are deliberately absent.
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        # -- scikit-learn internals that fitted estimators' pickles need and
        # that are not BaseEstimator subclasses.  Each is a data container or
        # a Cython extension type whose constructor/__setstate__ only copies
        # arrays (structural consistency is checked after loading).
        ("sklearn.tree._tree", "Tree"),
        ("sklearn.ensemble._hist_gradient_boosting.predictor", "TreePredictor"),
        # Multiclass loss of (Hist)GradientBoosting/LogisticRegression; a
        # stateless Cython class that does not derive from CyLossFunction.
        ("sklearn._loss._loss", "CyHalfMultinomialLoss"),
        ("sklearn.calibration", "_CalibratedClassifier"),
        ("sklearn.cluster._birch", "_CFNode"),
        ("sklearn.cluster._birch", "_CFSubcluster"),
        ("sklearn.cluster._bisect_k_means", "_BisectingTree"),
        # dict subclass used for named_estimators_ (Stacking/Voting).  Its
        # __setstate__ is a no-op and attribute reads return its items, which
        # are themselves admitted objects.
        ("sklearn.utils._bunch", "Bunch"),
        # Metadata-routing records (e.g. TunedThresholdClassifierCV, or any
        # estimator after set_*_request): dicts of parameter names.
        ("sklearn.utils._metadata_requests", "MetadataRequest"),
        ("sklearn.utils._metadata_requests", "MethodMetadataRequest"),
        ("sklearn.utils._metadata_requests", "MetadataRouter"),
        ("sklearn.utils._metadata_requests", "MethodMapping"),
        # newObj(cls) == cls.__new__(cls): how KDTree/BallTree/DistanceMetric
        # pickle themselves; cls can only be an admitted class.
        ("sklearn.metrics._dist_metrics", "newObj"),
        ("sklearn.neighbors._kd_tree", "newObj"),
        ("sklearn.neighbors._ball_tree", "newObj"),
        # Pure numeric functions stored as parameters by estimators:
        ("sklearn.utils.validation", "check_array"),  # HGB categorical prep
        # NOT admitted: sklearn.cluster._kmeans._kmeans_single_lloyd/_elkan
        # (stored by BisectingKMeans).  They run Cython loops that trust the
        # shapes of their array arguments, so a file (or a FunctionTransformer
        # wrapping them) could make them write out of bounds.
        ("sklearn.feature_selection._univariate_selection", "f_classif"),
        ("sklearn.feature_selection._univariate_selection", "f_regression"),
        ("sklearn.feature_selection._univariate_selection", "r_regression"),
        ("sklearn.feature_selection._univariate_selection", "chi2"),
        ("sklearn.feature_selection._univariate_selection", "f_oneway"),
        ("sklearn.feature_selection._mutual_info", "mutual_info_classif"),
        ("sklearn.feature_selection._mutual_info", "mutual_info_regression"),
    ]
)

# Base classes whose sklearn-defined subclasses are admitted (the classes must
# still be defined in a non-test sklearn module).  All are parameter/array
# containers: losses and link functions (GradientBoosting, HGB, SGD, GLMs),
# distance metrics (KD/Ball trees; PyFuncDistance's func is itself an
# admitted callable), KD/Ball trees, Gaussian-process kernels, MLP
# optimizers, and scorer objects (GridSearchCV.scorer_; their score function
# is itself an admitted callable).
_SKLEARN_BASES: tuple[tuple[str, str], ...] = (
    ("sklearn._loss.loss", "BaseLoss"),
    ("sklearn._loss.link", "BaseLink"),
    ("sklearn._loss.link", "Interval"),
    ("sklearn._loss._loss", "CyLossFunction"),
    ("sklearn.metrics._dist_metrics", "DistanceMetric"),
    ("sklearn.neighbors._kd_tree", "BinaryTree64"),
    ("sklearn.neighbors._kd_tree", "BinaryTree32"),
    ("sklearn.neighbors._ball_tree", "BinaryTree64"),
    ("sklearn.neighbors._ball_tree", "BinaryTree32"),
    ("sklearn.gaussian_process.kernels", "Kernel"),
    ("sklearn.neural_network._stochastic_optimizers", "BaseOptimizer"),
    ("sklearn.metrics._scorer", "_BaseScorer"),
    ("sklearn.metrics._scorer", "_MultimetricScorer"),
)

# sklearn module path components that are never imported or admitted from:
# tests and test helpers, experimental enablers (they mutate other modules on
# import), vendored code, dataset loaders (network/file IO), build helpers.
_SKLEARN_DENIED_PARTS = frozenset(
    {
        "tests",
        "conftest",
        "_testing",
        "_mocking",
        "estimator_checks",
        "experimental",
        "externals",
        "datasets",
        "_build_utils",
        "__check_build",
        "_min_dependencies",
        "_show_versions",
        "_distributor_init",
    }
)

# Packages from which a module may be *imported* to resolve a reference (it
# is common for a worker to not have imported e.g. sklearn.ensemble yet).
# Being importable does not admit anything; the admission rules above do.
_IMPORTABLE_PREFIXES = (
    "sklearn",
    "numpy",
    "scipy.sparse",
    "scipy.special",
    "scipy.interpolate",
    "scipy._lib.array_api_compat.numpy",
    "joblib.numpy_pickle",
)

_MODULE_ALIASES = (("numpy.core", "numpy._core"),)

# trusted_modules cannot name these (nor any standard-library module).
_UNTRUSTABLE_PACKAGES = frozenset(
    {
        "numpy",
        "scipy",
        "sklearn",
        "joblib",
        "skops",
        "pandas",
        "pyarrow",
        "cloudpickle",
        "dill",
        "viewer",
        "flask",
        "celery",
        "kombu",
        "sqlalchemy",
        "bokeh",
        "werkzeug",
        "jinja2",
        "redis",
        "psycopg",
    }
)

_TEST_PARTS = frozenset({"tests", "test", "testing", "_testing", "conftest"})
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_INT_ALLOCATION = 1 << 20  # bytes(n)/bytearray(n) with larger n refused


def _safe_codecs_encode(obj, encoding="utf-8", errors="strict"):
    """``_codecs.encode`` as used by protocol 0-2 pickles for ``bytes``.

    Only the Latin-1/ASCII/UTF-8 text codecs are allowed: other codec names
    trigger imports from the ``encodings`` package.
    """
    enc = str(encoding).lower().replace("-", "").replace("_", "")
    if enc not in {"latin1", "iso88591", "ascii", "utf8"} or not isinstance(obj, str):
        raise UnsafeModelError([f"_codecs.encode({encoding!r})"])
    import codecs

    return codecs.encode(obj, encoding, errors)


def _checked_size(args: tuple) -> None:
    if args and isinstance(args[0], int) and not isinstance(args[0], bool):
        if args[0] > _MAX_INT_ALLOCATION:
            raise ModelLoadError(
                "The file asks for a large zero-filled buffer; refusing (possible "
                "memory exhaustion attack)."
            )


def _safe_bytes(*args):
    _checked_size(args)
    return bytes(*args)


def _safe_bytearray(*args):
    _checked_size(args)
    return bytearray(*args)


def _safe_reconstructor(cls, base, state):
    """``copyreg._reconstructor`` restricted to what ``copyreg._reduce_ex``
    writes: ``base`` is ``object`` or a builtin container/value type.  (With
    an arbitrary ``base`` it would call e.g. ``csr_matrix.__init__`` on
    crafted data.)"""
    if not (isinstance(cls, type) and isinstance(base, type) and issubclass(cls, base)):
        raise ModelLoadError("The file is corrupt: invalid object reconstruction.")
    if base not in _RECONSTRUCTOR_BASES or issubclass(cls, np.ndarray):
        raise UnsafeModelError([f"copyreg._reconstructor({_global_name(cls)}, {_global_name(base)})"])
    return copyreg._reconstructor(cls, base, state)


_RECONSTRUCTOR_BASES = (object, dict, list, set, frozenset, tuple, int, float, str, bytes, complex)


def _safe_frombuffer(buf, dtype, shape, order):
    """``numpy._core.numeric._frombuffer`` (protocol-5 array pickles) limited
    to in-band byte buffers and object-free dtypes, so an array can neither
    alias another array's memory nor interpret bytes as object pointers."""
    from numpy._core.numeric import _frombuffer

    if type(buf) not in (bytes, bytearray) or not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise ModelLoadError("The file is corrupt: invalid array buffer.")
    return _frombuffer(buf, dtype, shape, order)


_MAX_PLACEHOLDER_ELEMENTS = 1 << 16


def _checked_placeholder_shape(shape) -> None:
    """numpy's reduce always writes shape ``(0,)`` here (the real shape comes
    with the state, whose data must then be present in the file); a large
    shape would only allocate memory the file never pays for."""
    dims = shape if isinstance(shape, tuple) else (shape,)
    count = 1
    for n in dims:
        n = _as_int(n)
        if n is None or n < 0:
            raise ModelLoadError("The file is corrupt: invalid array shape.")
        count *= n
    if count > _MAX_PLACEHOLDER_ELEMENTS:
        raise ModelLoadError("The file is corrupt or hostile: oversized array placeholder.")


def _safe_reconstruct(subtype, shape, dtype):
    from numpy._core.multiarray import _reconstruct

    _checked_placeholder_shape(shape)
    return _reconstruct(subtype, shape, dtype)


def _safe_mareconstruct(subtype, baseclass, baseshape, basetype):
    from numpy.ma.core import _mareconstruct

    _checked_placeholder_shape(baseshape)
    return _mareconstruct(subtype, baseclass, baseshape, basetype)


def _safe_newobj(cls):
    """sklearn's ``newObj(cls) == cls.__new__(cls)`` helper, for classes only
    (and never ndarray subclasses)."""
    if not isinstance(cls, type) or issubclass(cls, np.ndarray):
        raise ModelLoadError("The file is corrupt: invalid object construction.")
    return cls.__new__(cls)


def _numpy_random_pickle():
    from numpy.random import _pickle

    return vars(_pickle)


def _safe_bit_generator_ctor(bit_generator="MT19937"):
    if isinstance(bit_generator, type) and not issubclass(bit_generator, np.random.BitGenerator):
        raise UnsafeModelError([f"numpy.random bit generator {_global_name(bit_generator)}"])
    return _numpy_random_pickle()["__bit_generator_ctor"](bit_generator)


def _check_bitgen_ctor(ctor) -> None:
    if ctor is not None and ctor is not _safe_bit_generator_ctor:
        if ctor is not _numpy_random_pickle()["__bit_generator_ctor"]:
            raise UnsafeModelError([f"numpy.random constructor {_global_name(ctor)}"])


def _safe_generator_ctor(bit_generator_name="MT19937", bit_generator_ctor=None):
    _check_bitgen_ctor(bit_generator_ctor)
    return _numpy_random_pickle()["__generator_ctor"](bit_generator_name, _safe_bit_generator_ctor)


def _safe_randomstate_ctor(bit_generator_name="MT19937", bit_generator_ctor=None):
    _check_bitgen_ctor(bit_generator_ctor)
    return _numpy_random_pickle()["__randomstate_ctor"](bit_generator_name, _safe_bit_generator_ctor)


# Globals whose real object is replaced by a checked wrapper.
_WRAPPED_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("_codecs", "encode"): _safe_codecs_encode,
    ("builtins", "bytes"): _safe_bytes,
    ("builtins", "bytearray"): _safe_bytearray,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("numpy._core.numeric", "_frombuffer"): _safe_frombuffer,
    ("numpy._core.multiarray", "_reconstruct"): _safe_reconstruct,
    ("numpy.ma.core", "_mareconstruct"): _safe_mareconstruct,
    ("sklearn.metrics._dist_metrics", "newObj"): _safe_newobj,
    ("sklearn.neighbors._kd_tree", "newObj"): _safe_newobj,
    ("sklearn.neighbors._ball_tree", "newObj"): _safe_newobj,
    ("numpy.random._pickle", "__bit_generator_ctor"): _safe_bit_generator_ctor,
    ("numpy.random._pickle", "__generator_ctor"): _safe_generator_ctor,
    ("numpy.random._pickle", "__randomstate_ctor"): _safe_randomstate_ctor,
}

# Callables a pickle may *call while loading* (REDUCE, INST/OBJ, NEWOBJ with
# arguments).  Everything else that is admitted -- ufuncs, numpy reductions,
# score functions, check_array, functools.partial objects -- can only be
# *referenced* (stored as an estimator parameter), because functions run code
# on their arguments and some of that code is native and trusts its inputs.
_LOAD_HELPERS: frozenset[tuple[str, str]] = frozenset(
    [
        ("numpy._core.multiarray", "_reconstruct"),  # ndarray.__new__(t, shape, dtype)
        ("numpy._core.multiarray", "scalar"),  # refuses raw bytes for object dtypes
        ("numpy.ma.core", "_mareconstruct"),
        ("numpy.random.bit_generator", "__pyx_unpickle_SeedSequence"),
    ]
    + list(_WRAPPED_GLOBALS)
)


def _not_callable_at_load_types() -> tuple[type, ...]:
    """Admitted classes that may be referenced and built from state (NEWOBJ +
    BUILD) but not *called*: their constructors convert or index array
    arguments in native code (ndarray(buffer=...) even reinterprets raw bytes
    as object pointers), and fitted pickles never call them."""
    import scipy.sparse as sp
    from scipy.interpolate import BSpline

    found: list[type] = [np.ndarray, sp.spmatrix, sp.sparray, BSpline, *_binary_tree_types()]
    try:
        from sklearn.metrics._dist_metrics import DistanceMetric

        found.append(DistanceMetric)
    except ImportError:  # pragma: no cover
        pass
    return tuple(found)


def _canonical_module(module: str) -> str:
    for old, new in _MODULE_ALIASES:
        if module == old or module.startswith(old + "."):
            return new + module[len(old) :]
    return module


def _module_matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _sklearn_module_denied(module: str) -> bool:
    return any(part in _SKLEARN_DENIED_PARTS for part in module.split("."))


class _UnknownGlobal(Exception):
    """An allowed package does not define the referenced name."""


class _Policy:
    """Decides which (module, name) references a model file may use."""

    def __init__(self, trusted_modules: Iterable[str] = ()):
        if isinstance(trusted_modules, str):
            trusted_modules = (trusted_modules,)
        cleaned = []
        for prefix in trusted_modules:
            prefix = str(prefix).strip().rstrip(".")
            if not prefix or not all(_IDENT_RE.match(p) for p in prefix.split(".")):
                raise ValueError(f"Invalid trusted module prefix: {prefix!r}")
            top = prefix.split(".", 1)[0]
            if top in _UNTRUSTABLE_PACKAGES or top in sys.stdlib_module_names:
                raise ValueError(
                    f"trusted_modules may only name the operator's own packages, not "
                    f"{prefix!r}: the standard library, numpy/scipy/scikit-learn/joblib/"
                    "skops and this application contain functions that must never be "
                    "reachable from a model file."
                )
            cleaned.append(prefix)
        self.trusted_modules: tuple[str, ...] = tuple(cleaned)
        self._cache: dict[tuple[str, str], Any] = {}

    # -- helpers -----------------------------------------------------------

    def _is_trusted(self, module: str) -> bool:
        return any(_module_matches(module, p) for p in self.trusted_modules)

    def _may_import(self, module: str) -> bool:
        if self._is_trusted(module):
            return True
        if not any(_module_matches(module, p) for p in _IMPORTABLE_PREFIXES):
            return False
        if _module_matches(module, "sklearn") and _sklearn_module_denied(module):
            return False
        # never import test suites of numpy/scipy either
        return not any(part in _TEST_PARTS for part in module.split("."))

    def _module(self, module: str) -> types.ModuleType | None:
        mod = sys.modules.get(module)
        if mod is not None:
            return mod
        if not self._may_import(module):
            return None
        try:
            return importlib.import_module(module)
        except ImportError:
            raise _UnknownGlobal(module) from None

    def _lookup(self, module: str, name: str) -> Any:
        mod = self._module(module)
        if mod is None:
            return _MISSING
        obj = vars(mod).get(name, _MISSING)
        return obj

    # -- admission rules ---------------------------------------------------

    @staticmethod
    def _defined_at(obj: Any, module: str, name: str) -> bool:
        return (
            getattr(obj, "__module__", None) == module
            and getattr(obj, "__qualname__", None) == name
        )

    def _sklearn_class_admitted(self, obj: Any, module: str, name: str) -> bool:
        if not isinstance(obj, type) or not self._defined_at(obj, module, name):
            return False
        if _sklearn_module_denied(module):
            return False
        from sklearn.base import BaseEstimator

        if issubclass(obj, BaseEstimator):
            return True
        for base_module, base_name in _SKLEARN_BASES:
            base_mod = sys.modules.get(base_module)
            if base_mod is None:
                try:
                    base_mod = importlib.import_module(base_module)
                except ImportError:  # pragma: no cover - sklearn layout change
                    continue
            base = vars(base_mod).get(base_name)
            if isinstance(base, type) and issubclass(obj, base):
                return True
        return False

    def _resolve_uncached(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _WRAPPED_GLOBALS:
            return _WRAPPED_GLOBALS[key]
        if key == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
            return _SafeNumpyArrayWrapper
        if key in _EXPLICIT_GLOBALS:
            obj = self._lookup(module, name)
            if obj is _MISSING:
                raise _UnknownGlobal(f"{module}.{name}")
            return obj

        top = module.split(".", 1)[0]
        if self._is_trusted(module):
            obj = self._lookup(module, name)
            if obj is _MISSING:
                raise _UnknownGlobal(f"{module}.{name}")
            # Only objects *defined* inside the trusted prefix: a trusted
            # module's ``from os import system`` is not trusted.
            defined_in = getattr(obj, "__module__", None)
            if (
                callable(obj)
                and not isinstance(obj, types.ModuleType)
                and isinstance(defined_in, str)
                and self._is_trusted(defined_in)
            ):
                return obj
            return _REFUSED

        if top == "sklearn":
            if _sklearn_module_denied(module):
                return _REFUSED
            if name.startswith("__") and not name.startswith("__pyx_unpickle_"):
                return _REFUSED
            obj = self._lookup(module, name)
            if obj is _MISSING:
                raise _UnknownGlobal(f"{module}.{name}")
            if self._sklearn_class_admitted(obj, module, name):
                return obj
            if name.startswith("__pyx_unpickle_"):
                # Cython's generated unpickler for extension type X:
                # X.__new__(type) + field assignment.  Admitted only for
                # admitted extension types of the same module.
                cls_name = name[len("__pyx_unpickle_") :]
                cls = self._lookup(module, cls_name)
                if (
                    isinstance(cls, type)
                    and (
                        (module, cls_name) in _EXPLICIT_GLOBALS
                        or self._sklearn_class_admitted(cls, module, cls_name)
                    )
                    and callable(obj)
                ):
                    return obj
                return _REFUSED
            if (module, name) in _scorer_functions() and self._defined_at(
                obj, module, name
            ):
                return obj
            return _REFUSED

        if top == "numpy":
            if module == "numpy":
                obj = self._lookup(module, name)
                # ufuncs (np.log1p, np.exp, ...) are pure element-wise math
                # and numpy pickles them by name.
                if isinstance(obj, np.ufunc):
                    return obj
                # Scalar types (np.float64 as a dtype parameter).  np.void is
                # left out: np.void(n) zero-fills n bytes.
                if isinstance(obj, type) and obj in _numpy_scalar_types():
                    return obj
            return _REFUSED

        if top == "scipy":
            if _module_matches(module, "scipy.special"):
                obj = self._lookup(module, name)
                if isinstance(obj, np.ufunc):  # expit, logit, ...
                    return obj
                return _REFUSED
            if _module_matches(module, "scipy.sparse"):
                obj = self._lookup(module, name)
                if isinstance(obj, type) and self._defined_at(obj, module, name):
                    import scipy.sparse as sp

                    if issubclass(obj, (sp.spmatrix, sp.sparray)):
                        return obj
                return _REFUSED
        return _REFUSED

    def resolve(self, module: str, name: str) -> Any:
        """Return the admitted object, ``_REFUSED``, or raise _UnknownGlobal."""
        if not all(_IDENT_RE.match(p) for p in module.split(".")) or not _IDENT_RE.match(
            name
        ):
            # Dotted names (protocol 4 attribute paths such as
            # "BaseEstimator.__init__.__globals__") and junk are refused.
            if "." in name and all(_IDENT_RE.match(p) for p in name.split(".")):
                return _REFUSED
            raise ModelLoadError(
                "The file is corrupt: it contains an invalid global reference "
                f"{module!r}.{name!r}."
            )
        module = _canonical_module(module)
        key = (module, name)
        if key not in self._cache:
            self._cache[key] = self._resolve_uncached(module, name)
        return self._cache[key]

    def admits(self, module: str, name: str) -> bool:
        try:
            return self.resolve(module, name) is not _REFUSED
        except (_UnknownGlobal, ModelLoadError):
            return False


_MISSING = object()


class _RefusedMarker:
    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return "<refused>"


_REFUSED = _RefusedMarker()


_SCORER_FUNCTIONS: frozenset[tuple[str, str]] | None = None


def _scorer_functions() -> frozenset[tuple[str, str]]:
    """Score functions of scikit-learn's own scorer registry (pure metrics)."""
    global _SCORER_FUNCTIONS
    if _SCORER_FUNCTIONS is None:
        found: set[tuple[str, str]] = set()
        try:
            from sklearn.metrics import _scorer

            for scorer in _scorer._SCORERS.values():
                func = getattr(scorer, "_score_func", None)
                if isinstance(func, types.FunctionType):
                    found.add((func.__module__, func.__qualname__))
        except Exception:  # pragma: no cover - sklearn internals changed
            pass
        _SCORER_FUNCTIONS = frozenset(found)
    return _SCORER_FUNCTIONS


_NUMPY_SCALAR_TYPES: frozenset[type] | None = None


def _numpy_scalar_types() -> frozenset[type]:
    global _NUMPY_SCALAR_TYPES
    if _NUMPY_SCALAR_TYPES is None:
        types_ = {t for t in np.sctypeDict.values() if isinstance(t, type)}
        types_.discard(np.void)
        _NUMPY_SCALAR_TYPES = frozenset(types_)
    return _NUMPY_SCALAR_TYPES


def is_admitted_global(
    module: str, name: str, *, trusted_modules: tuple[str, ...] = ()
) -> bool:
    """Whether a pickle/skops reference ``module.name`` is on the allowlist."""
    return _Policy(trusted_modules).admits(module, name)


# ---------------------------------------------------------------------------
# Bounded reading
# ---------------------------------------------------------------------------

_CHUNK = 1 << 20


class _LimitedReader:
    """File wrapper that counts bytes and fails past ``limit``.

    Wraps the *decompressed* stream so decompression bombs stop at the limit.
    Large reads are done in chunks so a size field in the file cannot make us
    allocate more than the data actually present.
    """

    def __init__(self, raw, limit: int):
        self._raw = raw
        self.limit = int(limit)
        self.count = 0

    @property
    def remaining(self) -> int:
        return self.limit - self.count

    def _account(self, n: int) -> None:
        self.count += n
        if self.count > self.limit:
            raise ModelLoadError(
                f"The model file decompresses to more than {self.limit} bytes "
                "(max_decompressed_bytes); refusing to load it."
            )

    def read(self, n: int | None = -1) -> bytes:
        if n is None or n < 0:
            n = self.remaining + 1
        chunks = []
        left = n
        while left > 0:
            want = min(left, _CHUNK, self.remaining + 1)
            data = self._raw.read(want)
            if not data:
                break
            self._account(len(data))
            chunks.append(data)
            left -= len(data)
        return b"".join(chunks)

    def readline(self, size: int = -1) -> bytes:
        cap = self.remaining + 1
        if size is not None and size >= 0:
            cap = min(cap, size)
        data = self._raw.readline(cap)
        self._account(len(data))
        return data

    def readinto(self, buf) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)


# ---------------------------------------------------------------------------
# Restricted unpickler
# ---------------------------------------------------------------------------


class _Abort(Exception):
    """Stop unpickling after a refusal has been recorded."""


class _RefusedGlobal:
    """Inert stand-in returned for a refused global.

    Returning a stand-in (instead of raising at once) lets the load continue
    far enough to report *every* refused reference; the stand-in does nothing
    when called and the partially built result is always discarded.
    """

    __slots__ = ("qualname",)

    def __init__(self, qualname: str):
        self.qualname = qualname

    def __call__(self, *args, **kwargs):
        return _RefusedGlobal(self.qualname + "()")

    def __repr__(self) -> str:
        return f"<refused {self.qualname}>"


class _TrackingMemo(dict):
    """Pickle memo that remembers where dtype objects are stored."""

    def __init__(self):
        super().__init__()
        self.dtype_keys: dict[int, list] = {}

    def __setitem__(self, key, value):
        super().__setitem__(key, value)
        if isinstance(value, np.dtype):
            self.dtype_keys.setdefault(id(value), []).append(key)


class _LoadContext:
    """State shared by the outer unpickler and nested object-array ones."""

    def __init__(self, policy: _Policy, reader: _LimitedReader):
        self.policy = policy
        self.reader = reader
        self.offenders: list[str] = []
        self.global_ids: set[int] = set()
        self._keepalive: list[Any] = []
        self.versions: dict[int, str] = {}
        self.depth = 0
        self.load_callable_ids: set[int] = set()
        self.built_ids: set[int] = set()
        self.no_call_types = _not_callable_at_load_types()

    def refuse(self, what: str) -> None:
        self.offenders.append(what)
        if len(self.offenders) >= 20:
            raise _Abort()


_MAX_NESTED_PICKLES = 4
_CONTAINER_OPS_OFFENDER = "{kind} on a {type} object"


def _type_name(obj: Any) -> str:
    t = type(obj)
    return f"{t.__module__}.{t.__qualname__}"


class _RestrictedUnpickler(NumpyUnpickler):
    """joblib's NumpyUnpickler with an allowlisted ``find_class`` and guarded
    opcodes.  Uses the pure-Python pickle machinery (as joblib does)."""

    dispatch = NumpyUnpickler.dispatch.copy()

    def __init__(self, ctx: _LoadContext):
        super().__init__("", ctx.reader, ensure_native_byte_order=True, mmap_mode=None)
        self._ctx = ctx
        self.memo = _TrackingMemo()

    # -- globals -------------------------------------------------------------

    def find_class(self, module: str, name: str):
        if not isinstance(module, str) or not isinstance(name, str):
            raise ModelLoadError("The file is corrupt: invalid global reference.")
        if self.proto < 3 and self.fix_imports:
            if (module, name) in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[(module, name)]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        qualname = f"{module}.{name}"
        try:
            obj = self._ctx.policy.resolve(module, name)
        except _UnknownGlobal:
            if self._ctx.offenders:
                raise _Abort() from None
            raise ModelLoadError(
                f"The file references {qualname}, which does not exist in the "
                "installed libraries (the model was probably saved with an "
                "incompatible scikit-learn/numpy version)."
            ) from None
        if obj is _REFUSED:
            self._ctx.refuse(qualname)
            return _RefusedGlobal(qualname)
        self._ctx.global_ids.add(id(obj))
        self._ctx._keepalive.append(obj)
        key = (_canonical_module(module), name)
        if key in _LOAD_HELPERS or name.startswith("__pyx_unpickle_"):
            self._ctx.load_callable_ids.add(id(obj))
        elif isinstance(obj, type) and not issubclass(obj, self._ctx.no_call_types):
            self._ctx.load_callable_ids.add(id(obj))
        return obj

    # -- calls -------------------------------------------------------------------

    def _check_call(self, func, how: str = "called") -> None:
        if isinstance(func, _RefusedGlobal):
            return
        if id(func) not in self._ctx.load_callable_ids:
            self._violation(f"{_global_name(func)} ({how} while loading)")

    def load_reduce(self):
        self._check_call(self.stack[-2])
        super().load_reduce()

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _instantiate(self, klass, args):  # INST and OBJ opcodes
        self._check_call(klass)
        super()._instantiate(klass, args)

    def _check_new(self, cls, args) -> None:
        if isinstance(cls, _RefusedGlobal):
            return
        if not isinstance(cls, type) or id(cls) not in self._ctx.global_ids:
            self._violation(f"{_global_name(cls)} (constructed while loading)")
        if issubclass(cls, np.ndarray) or (args and id(cls) not in self._ctx.load_callable_ids):
            self._violation(f"{_global_name(cls)}.__new__ (called while loading)")

    def load_newobj(self):
        self._check_new(self.stack[-2], self.stack[-1])
        super().load_newobj()

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        self._check_new(self.stack[-3], self.stack[-2] or self.stack[-1])
        super().load_newobj_ex()

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def persistent_load(self, pid):
        raise ModelLoadError("The file uses pickle persistent IDs, which are not supported.")

    # -- guarded opcodes -------------------------------------------------------

    def _violation(self, what: str):
        if self._ctx.offenders:
            raise _Abort()
        raise UnsafeModelError(
            [what],
            detail="The pickle tries to modify an object in a way no scikit-learn "
            "model does (possible exploit attempt).",
        )

    def _is_shared(self, obj: Any) -> bool:
        return (
            id(obj) in self._ctx.global_ids
            or isinstance(
                obj,
                (
                    type,
                    types.ModuleType,
                    types.FunctionType,
                    types.BuiltinFunctionType,
                    types.MethodType,
                    np.ufunc,
                ),
            )
        )

    def load_build(self):
        stack = self.stack
        state = stack[-1]
        inst = stack[-2]
        if isinstance(inst, _RefusedGlobal):
            stack.pop()
            return
        if self._is_shared(inst):
            # BUILD on a class or function would overwrite attributes of
            # process-wide objects (e.g. replace a method of an estimator
            # class, or a function's __defaults__).
            self._violation(f"{_global_name(inst)} (state overwrite)")
        if id(inst) in self._ctx.built_ids:
            # Legitimate pickles set an object's state once.  Re-setting it
            # (e.g. an ndarray already used elsewhere) is refused.
            self._violation(f"{_type_name(inst)} (state set twice)")
        if isinstance(inst, np.dtype):
            self._build_dtype(inst, state)
            return
        if isinstance(inst, np.ndarray):
            _check_array_state(inst, state)
        self._ctx.built_ids.add(id(inst))
        self._ctx._keepalive.append(inst)
        if isinstance(state, dict):
            version = state.get("_sklearn_version")
            if isinstance(version, str):
                self._ctx.versions[id(inst)] = version
        NumpyUnpickler.load_build(self)

    def _build_dtype(self, dtype: np.dtype, state) -> None:
        """BUILD on a numpy dtype, without ``dtype.__setstate__``.

        ``dtype.__setstate__`` trusts its input (non-string field names
        corrupt the heap, object fields may overlap integer fields) and
        mutates in place (a dtype already used by an array built from raw
        bytes could gain object fields).  Instead a *new* dtype is built from
        the validated state with numpy's public constructor, which performs
        all consistency checks, and substituted on the stack and in the memo.
        """
        fresh = _rebuild_dtype(dtype, state)
        self.stack.pop()
        self.stack[-1] = fresh
        for key in self.memo.dtype_keys.pop(id(dtype), ()):
            if self.memo.get(key) is dtype:
                dict.__setitem__(self.memo, key, fresh)
        self._ctx.built_ids.add(id(dtype))
        self._ctx._keepalive.extend((dtype, fresh))

    dispatch[pickle.BUILD[0]] = load_build

    def load_append(self):
        target = self.stack[-2]
        if not isinstance(target, list):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="APPEND", type=_type_name(target)))
        super().load_append()

    dispatch[pickle.APPEND[0]] = load_append

    def load_appends(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, list):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="APPENDS", type=_type_name(target)))
        target.extend(items)

    dispatch[pickle.APPENDS[0]] = load_appends

    def load_setitem(self):
        target = self.stack[-3]
        if not isinstance(target, dict):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="SETITEM", type=_type_name(target)))
        super().load_setitem()

    dispatch[pickle.SETITEM[0]] = load_setitem

    def load_setitems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, dict):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="SETITEMS", type=_type_name(target)))
        for i in range(0, len(items), 2):
            target[items[i]] = items[i + 1]

    dispatch[pickle.SETITEMS[0]] = load_setitems

    def load_additems(self):
        items = self.pop_mark()
        target = self.stack[-1]
        if not isinstance(target, set):
            self._violation(_CONTAINER_OPS_OFFENDER.format(kind="ADDITEMS", type=_type_name(target)))
        target.update(items)

    dispatch[pickle.ADDITEMS[0]] = load_additems

    def load_bytearray8(self):
        # pickle's own implementation allocates bytearray(<declared length>)
        # before reading: bound the declaration by the remaining budget.
        (length,) = struct.unpack("<Q", self.read(8))
        if length > self._ctx.reader.remaining:
            raise ModelLoadError(
                "The file is corrupt or hostile: it declares a byte array larger "
                "than the remaining data allowance."
            )
        buf = bytearray(length)
        if self.readinto(buf) != length:
            raise ModelLoadError("The model file is truncated.")
        self.append(buf)

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    def load_ext(self):
        raise ModelLoadError(
            "The file uses the pickle extension registry, which is not supported."
        )

    dispatch[pickle.EXT1[0]] = load_ext
    dispatch[pickle.EXT2[0]] = load_ext
    dispatch[pickle.EXT4[0]] = load_ext


def _global_name(obj: Any) -> str:
    for (module, name), wrapper in _WRAPPED_GLOBALS.items():
        if obj is wrapper:
            return f"{module}.{name}"
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    mod = getattr(obj, "__module__", None)
    qual = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None)
    if mod and qual:
        return f"{mod}.{qual}"
    return _type_name(obj)


def _check_array_state(array: np.ndarray, state: Any) -> None:
    """Validate ``ndarray.__setstate__`` input before numpy sees it.

    numpy reads past the end of the element list when an object array's list
    is shorter than its shape (a crash found by fuzzing), so the list length
    must match exactly.  MaskedArray states carry mask and fill value after
    the array part.
    """

    def corrupt(why: str) -> ModelLoadError:
        return ModelLoadError(f"The file is corrupt: invalid array state ({why}).")

    if not isinstance(state, tuple):
        raise corrupt("not a tuple")
    if isinstance(array, np.ma.MaskedArray):
        if len(state) != 7:
            raise corrupt("masked array state")
        _, shape, dtype, _, raw = state[:5]
    elif len(state) == 5:
        _, shape, dtype, _, raw = state
    elif len(state) == 4:
        shape, dtype, _, raw = state
    else:
        raise corrupt("length")
    if not (
        isinstance(shape, tuple)
        and len(shape) <= 64
        and all(_as_int(n) is not None and n >= 0 for n in shape)
    ):
        raise corrupt("shape")
    if not isinstance(dtype, np.dtype):
        raise corrupt("dtype")
    count = 1
    for n in shape:
        count *= int(n)
    if dtype.hasobject:
        if not isinstance(raw, list) or len(raw) != count:
            raise corrupt("object array data does not match its shape")
    elif not isinstance(raw, (bytes, bytearray, str)) or len(raw) != count * dtype.itemsize:
        raise corrupt("array data does not match its shape")


_ENDIANS = ("<", ">", "|", "=")
_NPY_ALIGNED_STRUCT = 0x80


def _rebuild_dtype(base: np.dtype, state: Any) -> np.dtype:
    """The dtype that ``base.__setstate__(state)`` would describe, built with
    the public ``np.dtype`` constructor from a validated state."""

    def corrupt(why: str) -> ModelLoadError:
        return ModelLoadError(f"The file is corrupt: invalid dtype state ({why}).")

    if not isinstance(state, tuple) or len(state) not in (8, 9):
        raise corrupt("shape")
    version, endian, subarray, names, fields, elsize, alignment, flags = state[:8]
    metadata = state[8] if len(state) == 9 else None
    if version not in (3, 4) or endian not in _ENDIANS:
        raise corrupt("version")
    if not all(_as_int(v) is not None for v in (elsize, alignment, flags)):
        raise corrupt("sizes")
    try:
        if subarray is not None:
            if names is not None or fields is not None:
                raise corrupt("subarray with fields")
            if not (isinstance(subarray, tuple) and len(subarray) == 2):
                raise corrupt("subarray")
            sub_base, shape = subarray
            if not isinstance(sub_base, np.dtype) or not (
                isinstance(shape, tuple)
                and len(shape) <= 32
                and all(_as_int(n) is not None and n >= 0 for n in shape)
            ):
                raise corrupt("subarray")
            return np.dtype((sub_base, tuple(int(n) for n in shape)))
        if names is not None or fields is not None:
            if not (
                isinstance(names, tuple)
                and isinstance(fields, dict)
                and all(type(n) is str for n in names)
                and all(type(k) is str for k in fields)
                and len(set(names)) == len(names)
            ):
                raise corrupt("field names")
            formats, offsets, titles = [], [], []
            for name in names:
                entry = fields.get(name)
                if not (isinstance(entry, tuple) and len(entry) in (2, 3)):
                    raise corrupt("field entry")
                fmt, offset = entry[0], _as_int(entry[1])
                title = entry[2] if len(entry) == 3 else None
                if not isinstance(fmt, np.dtype) or offset is None or offset < 0:
                    raise corrupt("field entry")
                if title is not None and type(title) is not str:
                    raise corrupt("field title")
                formats.append(fmt)
                offsets.append(offset)
                titles.append(title)
            extra = set(fields) - set(names)
            if extra - {t for t in titles if t is not None}:
                raise corrupt("unknown fields")
            spec: dict[str, Any] = {
                "names": list(names),
                "formats": formats,
                "offsets": offsets,
                "itemsize": int(elsize),
            }
            if any(t is not None for t in titles):
                spec["titles"] = titles
            # The dict constructor rejects overlapping object fields, bad
            # offsets and sizes, which __setstate__ would accept.
            return np.dtype(spec, align=bool(int(flags) & _NPY_ALIGNED_STRUCT))
        # A plain dtype: the type comes from the constructor call, the state
        # only adds the byte order, the size of flexible types and (for
        # datetimes) the unit.
        result = base
        if base.kind in "SUV" and int(elsize) > 0 and int(elsize) != base.itemsize:
            if base.itemsize != 0:
                raise corrupt("size")
            per_char = 4 if base.kind == "U" else 1
            result = np.dtype(f"{base.kind}{int(elsize) // per_char}")
        if base.kind in "Mm" and metadata is not None:
            if not (isinstance(metadata, tuple) and len(metadata) == 2):
                raise corrupt("datetime metadata")
            unit = metadata[1]
            if not (isinstance(unit, tuple) and len(unit) == 4 and isinstance(unit[0], bytes)):
                raise corrupt("datetime metadata")
            code = unit[0].decode("ascii")
            num = _as_int(unit[1])
            if not code.isalpha() or num is None or num < 1:
                raise corrupt("datetime unit")
            result = np.dtype(f"{base.kind}8[{num if num != 1 else ''}{code}]")
        if endian in "<>" and result.byteorder != "|":
            result = result.newbyteorder(endian)
        return result
    except ModelLoadError:
        raise
    except Exception as exc:
        raise corrupt(str(exc)) from exc


class _SafeNumpyArrayWrapper(NumpyArrayWrapper):
    """joblib's NumpyArrayWrapper, validating its metadata before reading.

    joblib's own ``read_array`` reads object-dtype arrays with a plain
    ``pickle._Unpickler`` (only ``find_class`` is forwarded, none of our opcode
    guards); here they are read by a nested :class:`_RestrictedUnpickler`.
    """

    def read(self, unpickler, ensure_native_byte_order):
        if not isinstance(unpickler, _RestrictedUnpickler):  # pragma: no cover
            raise ModelLoadError("internal error: unexpected unpickler")
        ctx = unpickler._ctx
        dtype = getattr(self, "dtype", None)
        shape = getattr(self, "shape", None)
        order = getattr(self, "order", "C")
        subclass = getattr(self, "subclass", np.ndarray)
        if not isinstance(dtype, np.dtype):
            raise ModelLoadError("The file is corrupt: invalid array dtype.")
        if not (
            isinstance(shape, tuple)
            and all(isinstance(s, (int, np.integer)) and s >= 0 for s in shape)
        ):
            raise ModelLoadError("The file is corrupt: invalid array shape.")
        if order not in ("C", "F"):
            raise ModelLoadError("The file is corrupt: invalid array order.")
        if subclass not in (np.ndarray, np.matrix):
            raise ModelLoadError("The file is corrupt: unsupported array type.")
        align = self.safe_get_numpy_array_alignment_bytes()
        if align is not None and not (isinstance(align, int) and 0 < align <= 4096):
            raise ModelLoadError("The file is corrupt: invalid array alignment.")
        count = 1
        for s in shape:
            count *= int(s)
        if dtype.hasobject:
            if ctx.depth >= _MAX_NESTED_PICKLES:
                raise ModelLoadError("The file nests object arrays too deeply.")
            # joblib writes object arrays as a nested standard pickle.  Read
            # it with a fresh restricted unpickler sharing our context (same
            # allowlist, same guards, same byte budget), never pickle.load.
            if count > ctx.reader.remaining:
                raise ModelLoadError("The file is corrupt: object array too large.")
            ctx.depth += 1
            try:
                array = _RestrictedUnpickler(ctx).load()
            finally:
                ctx.depth -= 1
            if isinstance(array, _RefusedGlobal) or ctx.offenders:
                raise _Abort()
            if not isinstance(array, np.ndarray) or array.shape != tuple(
                int(s) for s in shape
            ):
                raise ModelLoadError("The file is corrupt: inconsistent object array.")
            if ensure_native_byte_order:
                array = _ensure_native_byte_order(array)
            return array
        if dtype.itemsize == 0 and count:
            raise ModelLoadError("The file is corrupt: zero-size array items.")
        if count * dtype.itemsize > ctx.reader.remaining:
            raise ModelLoadError(
                "The file is corrupt or exceeds max_decompressed_bytes: an array "
                "is larger than the remaining data."
            )
        # mmap_mode is always None, so this reads from the (counted)
        # stream with np.frombuffer; no pickle involved.
        array = self.read_array(unpickler, ensure_native_byte_order)
        if subclass is np.matrix:
            array = np.asmatrix(array)
        return array


# ---------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------


def _open_decompressed(fh, path: str):
    """joblib's own magic-number detection and decompressing file objects."""
    return _validate_fileobject_and_memmap(fh, path, None)


def _load_pickle(path: str, policy: _Policy, max_bytes: int) -> tuple[Any, str | None]:
    head, _, _ = _read_head_tail(path, 8)
    if head.startswith(_JOBLIB_LEGACY_MAGIC):
        raise ModelLoadError(
            "This file uses joblib's legacy (< 0.10) format, which is not supported. "
            "Re-save the model with a current joblib."
        )
    with open(path, "rb") as fh:
        try:
            cm = _open_decompressed(fh, path)
            fobj, _ = cm.__enter__()
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"Cannot decompress the model file: {exc}") from exc
        try:
            if isinstance(fobj, str):
                raise ModelLoadError("Legacy joblib format is not supported.")
            reader = _LimitedReader(fobj, max_bytes)
            ctx = _LoadContext(policy, reader)
            try:
                obj = _RestrictedUnpickler(ctx).load()
            except UnsafeModelError:
                raise
            except _Abort:
                obj = None
            except ModelLoadError:
                if ctx.offenders:
                    raise UnsafeModelError(ctx.offenders) from None
                raise
            except Exception as exc:
                if ctx.offenders:
                    raise UnsafeModelError(ctx.offenders) from None
                raise ModelLoadError(_corrupt_message(exc)) from exc
            if ctx.offenders:
                raise UnsafeModelError(ctx.offenders)
            version = ctx.versions.get(id(obj))
            if version is None and ctx.versions:
                version = next(iter(ctx.versions.values()))
            return obj, version
        finally:
            with contextlib.suppress(Exception):
                cm.__exit__(None, None, None)


def _corrupt_message(exc: BaseException) -> str:
    if isinstance(exc, (EOFError,)):
        return "The model file is truncated or empty."
    if isinstance(exc, MemoryError):
        return "The model file is corrupt or hostile: it requested too much memory."
    if isinstance(exc, RecursionError):
        return "The model file is corrupt or hostile: it is nested too deeply."
    text = str(exc) or type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    return f"The model file is corrupt or not a supported joblib/pickle file ({type(exc).__name__}: {text})."


# How skops node types use the type named in a node:
#   reference only:               FunctionNode, TypeNode
#   cls.__new__(cls) + state:     ObjectNode (like pickle's NEWOBJ + BUILD)
#   cls(*args from the file):     ConstructorFromReduceNode, LossNode,
#                                 TreeNode, RandomStateNode (no args)
#   skops' own constructions:     NdArrayNode (np.load, allow_pickle=False),
#                                 SparseMatrixNode (scipy load_npz), ...;
#                                 these build a fixed kind of object and only
#                                 use the name for auditing.
# skops' ``trusted`` list is per type name, not per node type, so before
# trusting a name we check every node that uses it.
_SKOPS_REFERENCE_LOADERS = frozenset(
    {
        "FunctionNode",
        "TypeNode",
        "PartialNode",
        "NdArrayNode",
        "MaskedArrayNode",
        "DTypeNode",
        "SparseMatrixNode",
        "RandomGeneratorNode",
        "DictNode",
        "DefaultDictNode",
        "ListNode",
        "SetNode",
        "TupleNode",
        "SliceNode",
        "JsonNode",
        "BytesNode",
        "BytearrayNode",
        "CachedNode",
    }
)
_SKOPS_NEW_LOADERS = frozenset({"ObjectNode"})
_SKOPS_CALL_LOADERS = frozenset(
    {"ConstructorFromReduceNode", "LossNode", "TreeNode", "RandomStateNode"}
)


def _skops_node_loaders(schema: Any) -> dict[str, set[str]]:
    """``"module.Class" -> {loader, ...}`` for every node in a skops schema."""
    found: dict[str, set[str]] = {}
    stack = [schema]
    seen = 0
    while stack:
        node = stack.pop()
        seen += 1
        if seen > 50_000_000:
            raise ModelLoadError("The skops schema is too large.")
        if isinstance(node, dict):
            loader = node.get("__loader__")
            if isinstance(loader, str):
                name = f"{node.get('__module__')}.{node.get('__class__')}"
                found.setdefault(name, set()).add(loader)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _read_skops(path: str, max_bytes: int) -> tuple[bytes, Any]:
    """Read the archive once (the same bytes are audited and loaded)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > 1_000_000:
                raise ModelLoadError("The skops file has too many entries.")
            # zipfile never returns more than an entry's declared size, so
            # the declared sizes bound decompression.
            total = sum(max(0, i.file_size) for i in infos)
            if total > max_bytes:
                raise ModelLoadError(
                    f"The skops file decompresses to {total} bytes, more than "
                    f"max_decompressed_bytes={max_bytes}; refusing to load it."
                )
            if "schema.json" not in {i.filename for i in infos}:
                raise ModelLoadError("This zip file is not a skops model (no schema.json).")
            try:
                schema = json.loads(zf.read("schema.json"))
            except (ValueError, RecursionError) as exc:
                raise ModelLoadError(f"The skops schema is corrupt: {exc}") from exc
    except zipfile.BadZipFile as exc:
        raise ModelLoadError(f"The skops file is not a valid zip archive: {exc}") from exc
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(_corrupt_message(exc)) from exc
    return data, schema


def _skops_trusted(data: bytes, schema: Any, policy: _Policy) -> list[str]:
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(data=data)
    except Exception as exc:
        raise ModelLoadError(_corrupt_message(exc)) from exc
    loaders = _skops_node_loaders(schema)
    no_call = _not_callable_at_load_types()

    trusted: list[str] = []
    offenders: list[str] = []
    for full in untrusted:
        full = str(full)
        module, _, name = full.rpartition(".")
        obj: Any = _REFUSED
        if module and name:
            try:
                obj = policy.resolve(module, name)
            except (_UnknownGlobal, ModelLoadError):
                obj = _REFUSED
        if obj is _REFUSED:
            offenders.append(full)
            continue
        key = (_canonical_module(module), name)
        callable_at_load = key in _LOAD_HELPERS or (
            isinstance(obj, type) and not issubclass(obj, no_call)
        )
        for loader in sorted(loaders.get(full, ())):
            if loader in _SKOPS_REFERENCE_LOADERS:
                continue
            if loader in _SKOPS_NEW_LOADERS and isinstance(obj, type) and not issubclass(
                obj, np.ndarray
            ):
                continue
            if loader in _SKOPS_CALL_LOADERS and callable_at_load:
                continue
            offenders.append(f"{full} (via {loader})")
            break
        else:
            trusted.append(full)
    if offenders:
        raise UnsafeModelError(offenders)
    return trusted


def _skops_root_version(schema: Any) -> str | None:
    try:
        attrs = schema["content"]["content"]["_sklearn_version"]
        value = json.loads(attrs["content"])
        return value if isinstance(value, str) else None
    except Exception:
        return None


def _load_skops(path: str, policy: _Policy, max_bytes: int) -> tuple[Any, str | None]:
    data, schema = _read_skops(path, max_bytes)
    trusted = _skops_trusted(data, schema, policy)
    import skops.io as sio

    try:
        obj = sio.loads(data, trusted=trusted)
    except ModelLoadError:
        raise
    except Exception as exc:
        if type(exc).__name__ == "UntrustedTypesFoundException":
            raise UnsafeModelError([str(exc)]) from exc
        raise ModelLoadError(_corrupt_message(exc)) from exc
    return obj, _skops_root_version(schema)


def _is_estimator(obj: Any) -> bool:
    """A scikit-learn estimator, or an object whose *class* defines fit and
    predict/transform (attribute hooks such as Bunch.__getattr__ do not
    count)."""
    if isinstance(obj, (type, types.ModuleType, _RefusedGlobal)):
        return False
    from sklearn.base import BaseEstimator

    if isinstance(obj, BaseEstimator):
        return True
    cls = type(obj)
    return callable(getattr(cls, "fit", None)) and any(
        callable(getattr(cls, name, None)) for name in ("predict", "transform", "fit_predict")
    )


def load_model(
    path: str | os.PathLike,
    *,
    trusted_modules: tuple[str, ...] = (),
    max_decompressed_bytes: int = DEFAULT_MAX_DECOMPRESSED_BYTES,
) -> LoadedModel:
    """Load a scikit-learn model from an untrusted joblib/pickle/skops file.

    Parameters
    ----------
    path:
        The uploaded file.  Its format is detected from its content.
    trusted_modules:
        Operator-supplied module prefixes (e.g. ``("acme_features",)``) whose
        classes and functions are admitted in addition to the built-in
        allowlist.  Only objects *defined* in those modules are admitted.
    max_decompressed_bytes:
        Upper bound on the decompressed size of the file.

    Raises
    ------
    UnsafeModelError
        The file references objects outside the allowlist (``offenders``),
        or tampers with objects in a way that could be an exploit.
    ModelLoadError
        Anything else about the file's content that prevents loading a model.
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Invalid arguments (e.g. a standard-library module in
        ``trusted_modules``).

    Not thread-safe with respect to warnings: loading records warnings with
    ``warnings.catch_warnings``, which swaps process-global state.
    """
    path = os.fspath(path)
    if not isinstance(max_decompressed_bytes, int) or max_decompressed_bytes <= 0:
        raise ValueError("max_decompressed_bytes must be a positive integer")
    policy = _Policy(trusted_modules)
    fmt = detect_format(path)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            if fmt == "skops":
                obj, version = _load_skops(path, policy, max_decompressed_bytes)
            else:
                obj, version = _load_pickle(path, policy, max_decompressed_bytes)
            if not _is_estimator(obj):
                raise ModelLoadError(
                    "The file does not contain a scikit-learn model (found "
                    f"{_type_name(obj)}, which has no fit/predict/transform methods)."
                )
            _validate_structure(obj)
        except ModelLoadError:
            raise
        except Exception as exc:  # anything unexpected is a load failure
            raise ModelLoadError(_corrupt_message(exc)) from exc

    messages: list[str] = []
    for w in caught:
        category = getattr(w, "category", Warning)
        text = f"{category.__name__}: {w.message}"
        if text not in messages:
            messages.append(text)
        if version is None:
            original = getattr(w.message, "original_sklearn_version", None)
            if isinstance(original, str):
                version = original
    if version == "pre-0.18":
        version = None
    return LoadedModel(
        estimator=obj,
        format=fmt,
        saved_sklearn_version=version,
        warnings=messages,
    )


# ---------------------------------------------------------------------------
# Post-load structural validation
# ---------------------------------------------------------------------------
#
# Loading cannot run code, but scikit-learn's Cython/C code trusts the index
# arrays of fitted models (no bounds checks), so a tampered index could crash
# the worker or read out of bounds at predict time.  These checks re-establish
# the invariants that fitting guarantees for the native structures an
# estimator's predict path uses.  A failure raises UnsafeModelError.

_MAX_WALK = 20_000_000


def _tampered(what: str, why: str) -> UnsafeModelError:
    return UnsafeModelError(
        [what],
        detail=f"Its internal structure is inconsistent ({why}); predicting with it "
        "could crash the worker or read out-of-bounds memory, so it is refused.",
    )


def _iter_graph(root: Any):
    """Yield every object reachable through containers, ``__dict__`` and the
    pickled state of extension types (e.g. a BallTree's distance metric and a
    PyFuncDistance's function and keyword arguments)."""
    seen: set[int] = set()
    stack = [root]
    visited = 0
    scalar_types = (str, bytes, int, float, complex, bool, type(None), np.generic)
    while stack:
        obj = stack.pop()
        if isinstance(obj, scalar_types):
            continue
        oid = id(obj)
        if oid in seen:
            continue
        seen.add(oid)
        visited += 1
        if visited > _MAX_WALK:
            raise ModelLoadError("The model is too large to validate.")
        yield obj
        if isinstance(obj, type):
            continue
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
            continue
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                stack.extend(obj.ravel().tolist())
            continue
        if isinstance(obj, functools.partial):
            stack.extend([obj.func, obj.args, obj.keywords or {}])
        d = getattr(obj, "__dict__", None)
        if isinstance(d, dict):
            stack.extend(d.values())
        if _is_native_sklearn_object(obj):
            # Cython classes keep references in C fields; their reduce state
            # (not the constructor part) lists them.
            try:
                reduced = obj.__reduce__()
            except Exception:
                reduced = None
            if isinstance(reduced, tuple) and len(reduced) >= 3:
                stack.append(reduced[2])


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE


def _is_native_sklearn_object(obj: Any) -> bool:
    """An instance of a scikit-learn Cython extension type (or of a Python
    subclass of one, like BallTree)."""
    cls = type(obj)
    if not (getattr(cls, "__module__", "") or "").startswith("sklearn."):
        return False
    return any(not (t.__flags__ & _HEAPTYPE) for t in cls.__mro__[:-1])


def _validate_structure(root: Any) -> None:
    """Run the structural checks on every object reachable from ``root``."""
    checks = _StructureChecks()
    for obj in _iter_graph(root):
        try:
            checks.check(obj)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise _tampered(
                _type_name(obj), f"unreadable internal structure: {type(exc).__name__}"
            ) from exc


class _StructureChecks:
    """Dispatch from object type to the structural check(s) that apply."""

    def __init__(self):
        import scipy.sparse as sp
        from scipy.interpolate import BSpline
        from sklearn.cluster._kmeans import _BaseKMeans
        from sklearn.ensemble._gb import BaseGradientBoosting
        from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor
        from sklearn.feature_extraction.text import _VectorizerMixin
        from sklearn.neighbors._base import NeighborsBase
        from sklearn.svm._base import BaseLibSVM
        from sklearn.tree._tree import Tree

        self.issparse = sp.issparse
        self.Tree = Tree
        self.leaf_checks: list[tuple[Any, Callable[[Any], None]]] = [
            (Tree, _check_tree),
            (TreePredictor, _check_tree_predictor),
            (_binary_tree_types(), _check_binary_tree),
            ((np.random.RandomState, np.random.Generator, np.random.BitGenerator), _check_random_state),
            (BSpline, _check_bspline),
            (dict, _check_kwargs),
            (functools.partial, _check_partial),
        ]
        self.estimator_checks: list[tuple[Any, Callable[[Any], None]]] = [
            (BaseLibSVM, _check_libsvm),
            (BaseGradientBoosting, _check_gradient_boosting),
            (_BaseKMeans, _check_kmeans),
            (NeighborsBase, _check_neighbors),
            (_VectorizerMixin, _check_vectorizer),
        ]
        self.no_call = _not_callable_at_load_types()

    def check(self, obj: Any) -> None:
        if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) or (
            "cython_function_or_method" in type(obj).__name__
        ):
            _check_stored_callable(obj, self.no_call)
        if self.issparse(obj):
            _check_sparse(obj)
            return
        for kind, check in self.leaf_checks:
            if isinstance(obj, kind):
                check(obj)
                return
        d = getattr(obj, "__dict__", None)
        if isinstance(d, dict):
            if isinstance(d.get("tree_"), self.Tree):
                _check_tree_owner(obj)
            if "estimators_" in d and "n_features_in_" in d:
                _check_ensemble(obj)
            if "_predictors" in d:
                _check_hgb(obj)
        for kind, check in self.estimator_checks:
            if isinstance(obj, kind):
                check(obj)


def _check_vectorizer(vectorizer) -> None:
    if getattr(vectorizer, "input", "content") == "filename":
        raise UnsafeModelError(
            [f"{_type_name(vectorizer)}(input='filename')"],
            detail="A text vectorizer with input='filename' opens the files named by "
            "the data it is applied to, which would let a model read files on the "
            "server.",
        )


def _check_stored_callable(obj, no_call: tuple[type, ...]) -> None:
    """Classes and functions stored *as values* (FunctionTransformer.func,
    kernels, metrics, ...) are later called with the viewer's data plus
    keyword arguments taken from the model.  The constructors that are not
    callable while loading (``ndarray(buffer=...)``, KD/Ball trees, distance
    metrics, splines) and the pickle reconstruction helpers must therefore
    not be stored either.  (Sparse matrix classes may: called on the
    viewer's dense data they only copy it.)"""
    import scipy.sparse as sp

    offending = False
    if isinstance(obj, type):
        offending = issubclass(obj, no_call) and not issubclass(obj, (sp.spmatrix, sp.sparray))
    else:
        offending = obj in _load_helper_functions() or getattr(obj, "__name__", "") in (
            "newObj",
        ) or str(getattr(obj, "__name__", "")).startswith("__pyx_unpickle_")
    if offending:
        raise UnsafeModelError(
            [f"{_global_name(obj)} (stored as a callable)"],
            detail="The model stores a low-level constructor as a parameter; "
            "calling it with keyword arguments from the file could corrupt memory.",
        )


_LOAD_HELPER_FUNCTIONS: tuple | None = None


def _load_helper_functions() -> tuple:
    global _LOAD_HELPER_FUNCTIONS
    if _LOAD_HELPER_FUNCTIONS is None:
        from numpy._core import multiarray, numeric
        from numpy.ma import core as ma_core

        found = list(_WRAPPED_GLOBALS.values())
        found += [multiarray._reconstruct, multiarray.scalar, numeric._frombuffer]
        found += [ma_core._mareconstruct, copyreg._reconstructor]
        found += [
            v
            for k, v in _numpy_random_pickle().items()
            if k in ("__bit_generator_ctor", "__generator_ctor", "__randomstate_ctor")
        ]
        import codecs

        found.append(codecs.encode)
        _LOAD_HELPER_FUNCTIONS = tuple(found)
    return _LOAD_HELPER_FUNCTIONS


_FORBIDDEN_KWARGS = ("out", "where")


def _holds_array(value) -> bool:
    if isinstance(value, np.ndarray):
        return True
    return isinstance(value, (tuple, list)) and any(isinstance(v, np.ndarray) for v in value)


def _check_kwargs(d: dict) -> None:
    """Keyword dicts (FunctionTransformer.kw_args, kernel_params,
    metric_params, partial keywords, ...) must not route one of the model's
    own arrays into a numpy ``out=``/``where=`` argument: that would let a
    transform step overwrite validated index arrays right before native code
    uses them."""
    for key in _FORBIDDEN_KWARGS:
        if key in d and _holds_array(d[key]):
            raise UnsafeModelError(
                [f"keyword argument {key!r} bound to an array"],
                detail="The model binds one of its own arrays as a numpy output "
                "buffer, which could be used to corrupt its internal state.",
            )


def _check_partial(p: functools.partial) -> None:
    func = p.func
    module = getattr(func, "__module__", None) or ""
    if (isinstance(func, np.ufunc) or module.split(".")[0] in ("numpy", "scipy")) and p.args:
        # Bound positional arguments of numpy functions can land on ``out``.
        raise UnsafeModelError(
            [f"functools.partial({_global_name(func)}, <positional arguments>)"],
            detail="Binding positional arguments to numpy functions can pass the "
            "model's own arrays as output buffers.",
        )


def _check_random_state(obj) -> None:
    try:
        if isinstance(obj, np.random.RandomState):
            state = obj.get_state(legacy=False)
        elif isinstance(obj, np.random.Generator):
            state = obj.bit_generator.state
        else:
            state = obj.state
    except Exception as exc:
        raise _tampered(_type_name(obj), f"unreadable random state: {exc}") from exc
    if state.get("bit_generator") == "MT19937":
        inner = state.get("state", {})
        pos = _as_int(inner.get("pos"))
        key = np.asarray(inner.get("key"))
        # numpy does not bounds-check ``pos`` when the state is restored.
        if pos is None or not 0 <= pos <= 624 or key.shape != (624,):
            raise _tampered(_type_name(obj), "MT19937 position out of range")


def _check_bspline(spl) -> None:
    """Re-check what BSpline.__init__ checks (BUILD bypasses __init__ and the
    evaluation code trusts len(t) and k)."""
    d = getattr(spl, "__dict__", {})
    try:
        # scipy >= 1.15 stores the knots/coefficients as _t/_c
        t = np.asarray(d["_t"] if "_t" in d else d["t"])
        c = np.asarray(d["_c"] if "_c" in d else d["c"])
        k = _as_int(d["k"])
        if k is None:
            raise ValueError("k")
        n = t.shape[0] - k - 1
        ok = (
            t.ndim == 1
            and t.dtype.kind == "f"
            and 0 <= k < 64
            and n >= k + 1
            and c.ndim >= 1
            and c.shape[0] >= n
            and bool(np.all(np.diff(t) >= 0))
            and bool(np.all(np.isfinite(t)))
        )
    except Exception:
        ok = False
    if not ok:
        raise _tampered(_type_name(spl), "invalid spline knots/coefficients")


def _check_gradient_boosting(est) -> None:
    """predict_stages() writes out[:, k] for every column of estimators_ into
    an array whose width comes from the init estimator."""
    d = est.__dict__
    if "estimators_" not in d:
        return
    name = _type_name(est)
    members = d["estimators_"]
    if not isinstance(members, np.ndarray) or members.ndim != 2 or members.dtype != object:
        raise _tampered(name, "estimators_ is not a 2-D object array")
    width = members.shape[1]
    if _as_int(d.get("n_trees_per_iteration_")) != width:
        raise _tampered(name, "estimators_ width does not match n_trees_per_iteration_")
    from sklearn.base import is_classifier

    init = d.get("init_")
    if is_classifier(est):
        n_classes = _as_int(d.get("n_classes_"))
        expected = n_classes if n_classes is not None and n_classes > 2 else 1
        if width != expected:
            raise _tampered(name, "estimators_ width does not match the number of classes")
        if width > 1 and not (isinstance(init, str) and init == "zero"):
            classes = getattr(init, "classes_", None)
            prior = getattr(init, "class_prior_", None)
            if classes is None or len(classes) != width or (
                prior is not None and np.asarray(prior).shape != (width,)
            ):
                raise _tampered(name, "init estimator width does not match")
    elif width != 1:
        raise _tampered(name, "regression boosting must have one tree per stage")


def _check_kmeans(est) -> None:
    d = est.__dict__
    if "cluster_centers_" not in d:
        return
    name = _type_name(est)
    centers = d["cluster_centers_"]
    n_in = _as_int(d.get("n_features_in_"))
    if (
        not isinstance(centers, np.ndarray)
        or centers.ndim != 2
        or centers.dtype.kind != "f"
        or n_in is None
        or centers.shape[1] != n_in
        or centers.shape[0] < 1
    ):
        raise _tampered(name, "cluster centers do not match n_features_in_")
    threads = _as_int(d.get("_n_threads", 1))
    if threads is None or not 1 <= threads <= 4096:
        raise _tampered(name, "invalid thread count")


def _check_neighbors(est) -> None:
    d = est.__dict__
    if "_fit_X" not in d:
        return
    name = _type_name(est)
    fit_x = d["_fit_X"]
    n_in = _as_int(d.get("n_features_in_"))
    shape = getattr(fit_x, "shape", None)
    if n_in is not None and shape is not None and (len(shape) != 2 or shape[1] != n_in):
        raise _tampered(name, "training data width does not match n_features_in_")
    tree = d.get("_tree")
    binary_trees = _binary_tree_types()
    if isinstance(tree, binary_trees):
        data = np.asarray(tree.__getstate__()[0])
        if shape is not None and data.shape != tuple(shape):
            raise _tampered(name, "neighbors tree does not match the training data")


def _binary_tree_types() -> tuple[type, ...]:
    found = []
    for module_name in ("sklearn.neighbors._kd_tree", "sklearn.neighbors._ball_tree"):
        try:
            mod = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover
            continue
        for base in ("BinaryTree64", "BinaryTree32"):
            cls = vars(mod).get(base)
            if isinstance(cls, type):
                found.append(cls)
    return tuple(found)


def _as_int(value: Any) -> int | None:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    return None


def _check_tree(tree) -> None:
    name = "sklearn.tree._tree.Tree"
    try:
        n = int(tree.node_count)
        capacity = int(tree.capacity)
        n_features = int(tree.n_features)
        left = np.asarray(tree.children_left)
        right = np.asarray(tree.children_right)
        feature = np.asarray(tree.feature)
    except Exception as exc:
        raise _tampered(name, f"unreadable tree: {exc}") from exc
    if n < 1 or n > capacity or n_features < 1:
        raise _tampered(name, "invalid node count")
    if len(left) != n or len(right) != n or len(feature) != n:
        raise _tampered(name, "node arrays have the wrong length")
    idx = np.arange(n)
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise _tampered(name, "half-leaf nodes")
    internal = ~leaf
    # Trees are built depth first: children always come after their parent,
    # which also rules out cycles.
    if np.any((left[internal] <= idx[internal]) | (left[internal] >= n)):
        raise _tampered(name, "child index out of range")
    if np.any((right[internal] <= idx[internal]) | (right[internal] >= n)):
        raise _tampered(name, "child index out of range")
    if np.any((feature[internal] < 0) | (feature[internal] >= n_features)):
        raise _tampered(name, "feature index out of range")


def _check_tree_owner(est) -> None:
    n_in = _as_int(est.__dict__.get("n_features_in_"))
    if n_in is not None and int(est.tree_.n_features) != n_in:
        raise _tampered(_type_name(est), "tree_.n_features does not match n_features_in_")


def _flatten_estimators(value) -> list:
    out = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, np.ndarray) and v.dtype.hasobject:
            stack.extend(v.ravel().tolist())
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        else:
            out.append(v)
    return out


def _check_ensemble(est) -> None:
    from sklearn.tree._tree import Tree

    n_in = _as_int(est.__dict__.get("n_features_in_"))
    members = est.__dict__.get("estimators_")
    if n_in is None or members is None:
        return
    feature_sets = est.__dict__.get("estimators_features_")
    if feature_sets is not None:
        members_list = list(members) if isinstance(members, (list, tuple, np.ndarray)) else []
        for member, feats in zip(members_list, list(feature_sets)):
            tree = getattr(member, "__dict__", {}).get("tree_")
            feats = np.asarray(feats)
            if feats.size and (feats.min() < 0 or feats.max() >= n_in):
                raise _tampered(_type_name(est), "feature subset index out of range")
            if isinstance(tree, Tree) and int(tree.n_features) != feats.size:
                raise _tampered(_type_name(est), "member tree width mismatch")
        return
    for member in _flatten_estimators(members):
        tree = getattr(member, "__dict__", {}).get("tree_") if hasattr(member, "__dict__") else None
        if isinstance(tree, Tree) and int(tree.n_features) != n_in:
            raise _tampered(_type_name(est), "member tree width does not match n_features_in_")


def _check_tree_predictor(pred) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    name = "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"
    d = getattr(pred, "__dict__", {})
    nodes = d.get("nodes")
    if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE:
        raise _tampered(name, "nodes array has the wrong type")
    if nodes.ndim != 1 or nodes.shape[0] < 1 or not nodes.flags.c_contiguous:
        raise _tampered(name, "nodes array has the wrong shape")
    bitsets = []
    for key in ("binned_left_cat_bitsets", "raw_left_cat_bitsets"):
        b = d.get(key)
        if (
            not isinstance(b, np.ndarray)
            or b.dtype != np.uint32
            or b.ndim != 2
            or b.shape[1] != 8
            or not b.flags.c_contiguous
        ):
            raise _tampered(name, f"{key} has the wrong type or shape")
        bitsets.append(b.shape[0])
    n = nodes.shape[0]
    idx = np.arange(n)
    internal = nodes["is_leaf"] == 0
    left = nodes["left"].astype(np.int64)
    right = nodes["right"].astype(np.int64)
    if np.any((left[internal] <= idx[internal]) | (left[internal] >= n)):
        raise _tampered(name, "child index out of range")
    if np.any((right[internal] <= idx[internal]) | (right[internal] >= n)):
        raise _tampered(name, "child index out of range")
    if np.any(nodes["feature_idx"][internal] < 0):
        raise _tampered(name, "feature index out of range")
    cat = internal & (nodes["is_categorical"] != 0)
    if np.any(nodes["bitset_idx"][cat].astype(np.int64) >= min(bitsets)):
        raise _tampered(name, "categorical bitset index out of range")


def _check_hgb(est) -> None:
    from sklearn.ensemble._hist_gradient_boosting.predictor import TreePredictor

    d = est.__dict__
    n_in = _as_int(d.get("n_features_in_"))
    name = _type_name(est)
    if n_in is None:
        raise _tampered(name, "missing n_features_in_")
    for pred in _flatten_estimators(d.get("_predictors")):
        if not isinstance(pred, TreePredictor):
            raise _tampered(name, "unexpected predictor object")
        nodes = pred.__dict__.get("nodes")
        internal = nodes["is_leaf"] == 0
        if np.any(nodes["feature_idx"][internal] >= n_in):
            raise _tampered(name, "feature index out of range")
    bin_mapper = d.get("_bin_mapper")
    is_cat = getattr(bin_mapper, "is_categorical_", None) if bin_mapper is not None else None
    if is_cat is not None and np.asarray(is_cat).size != n_in:
        raise _tampered(name, "bin mapper width does not match n_features_in_")
    pre = d.get("_preprocessor")
    if pre is not None:
        _check_hgb_preprocessor(est, pre, n_in)


def _check_hgb_preprocessor(est, pre, n_in: int) -> None:
    """HGB transforms X *after* validating it; the output must keep n_in columns."""
    from functools import partial

    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder
    from sklearn.utils.validation import check_array

    name = _type_name(est)
    if not isinstance(pre, ColumnTransformer):
        raise _tampered(name, "unexpected categorical preprocessor")
    covered = np.zeros(n_in, dtype=int)
    for _, trans, cols in getattr(pre, "transformers_", []):
        if isinstance(trans, str) and trans == "drop":
            continue
        mask = np.asarray(cols)
        if mask.dtype != bool or mask.shape != (n_in,):
            raise _tampered(name, "preprocessor column mask has the wrong shape")
        if isinstance(trans, OrdinalEncoder):
            if len(getattr(trans, "categories_", [])) != int(mask.sum()):
                raise _tampered(name, "encoder width mismatch")
        elif isinstance(trans, FunctionTransformer):
            func = trans.func
            ok = func is None or (
                isinstance(func, partial) and func.func is check_array and not func.args
            )
            if not ok:
                raise _tampered(name, "unexpected numerical preprocessor")
        else:
            raise _tampered(name, "unexpected preprocessor step")
        covered += mask
    if not np.all(covered == 1):
        raise _tampered(name, "preprocessor does not map every column exactly once")


def _check_binary_tree(tree) -> None:
    name = _type_name(tree)
    try:
        state = tree.__getstate__()
        data, idx_array, node_data, node_bounds = (np.asarray(s) for s in state[:4])
        leaf_size, n_levels, n_nodes = (int(s) for s in state[4:7])
        metric = state[11]
        sample_weight = state[12]
    except Exception as exc:
        raise _tampered(name, f"unreadable tree state: {exc}") from exc
    if data.ndim != 2:
        raise _tampered(name, "data is not 2-D")
    n_samples, n_features = data.shape
    if leaf_size < 1 or n_levels < 1 or n_levels > 64 or n_nodes != 2**n_levels - 1:
        raise _tampered(name, "inconsistent tree size")
    if node_data.shape != (n_nodes,) or node_bounds.ndim != 3:
        raise _tampered(name, "node arrays have the wrong length")
    if node_bounds.shape[1] != n_nodes or node_bounds.shape[2] != n_features:
        raise _tampered(name, "node bounds have the wrong shape")
    if idx_array.shape != (n_samples,) or not np.array_equal(
        np.sort(idx_array), np.arange(n_samples)
    ):
        raise _tampered(name, "index array is not a permutation of the samples")
    start = node_data["idx_start"]
    end = node_data["idx_end"]
    if np.any(start < 0) or np.any(end > n_samples) or np.any(start > end):
        raise _tampered(name, "node sample range out of bounds")
    internal = np.flatnonzero(node_data["is_leaf"] == 0)
    if internal.size and 2 * internal.max() + 2 >= n_nodes:
        raise _tampered(name, "child node out of range")
    if sample_weight is not None and np.asarray(sample_weight).shape != (n_samples,):
        raise _tampered(name, "sample weights have the wrong length")
    try:
        metric._validate_data(data)
    except Exception as exc:
        raise _tampered(name, f"distance metric does not fit the data: {exc}") from exc
    vec = np.asarray(metric.__getstate__()[1])
    if vec.size not in (0, n_features) and type(metric).__name__.startswith(
        ("SEuclidean", "Minkowski", "WMinkowski")
    ):
        raise _tampered(name, "metric weights have the wrong length")


def _check_sparse(matrix) -> None:
    name = _type_name(matrix)
    try:
        if hasattr(matrix, "check_format") and matrix.format in ("csr", "csc", "bsr"):
            matrix.check_format(full_check=True)
        elif matrix.format == "coo":
            matrix._check()
            coords = getattr(matrix, "coords", None)
            if coords is not None:
                for axis, c in enumerate(coords):
                    c = np.asarray(c)
                    if c.size and (c.min() < 0 or c.max() >= matrix.shape[axis]):
                        raise ValueError("coordinate out of range")
        elif matrix.format == "dia":
            data = np.asarray(matrix.data)
            offsets = np.asarray(matrix.offsets)
            if data.ndim != 2 or offsets.shape != (data.shape[0],):
                raise ValueError("dia data/offsets mismatch")
    except Exception as exc:
        raise _tampered(name, f"invalid sparse matrix: {exc}") from exc


def _check_libsvm(est) -> None:
    d = est.__dict__
    if "support_" not in d or "_n_support" not in d:
        return  # not fitted
    name = _type_name(est)
    try:
        support = np.asarray(d["support_"])
        n_support = np.asarray(d["_n_support"])
        dual = d.get("_dual_coef_")
        intercept = np.asarray(d.get("_intercept_"))
        sv = d.get("support_vectors_")
        prob_a = np.asarray(d.get("_probA", np.empty(0)))
        prob_b = np.asarray(d.get("_probB", np.empty(0)))
        impl = d.get("_impl", getattr(est, "_impl", None))
        kernel = d.get("kernel", "rbf")
    except Exception as exc:
        raise _tampered(name, f"unreadable libsvm model: {exc}") from exc
    n_class = n_support.shape[0] if n_support.ndim == 1 else -1
    n_sv = support.shape[0] if support.ndim == 1 else -1
    if n_class < 2 or n_sv < 0:
        raise _tampered(name, "bad support arrays")
    if np.any(n_support < 0):
        raise _tampered(name, "negative support counts")
    if impl in ("c_svc", "nu_svc") and int(n_support.sum()) != n_sv:
        raise _tampered(name, "support counts do not add up")
    dual_shape = getattr(dual, "shape", None)
    if dual_shape != (n_class - 1, n_sv):
        raise _tampered(name, "dual coefficients have the wrong shape")
    n_pairs = n_class * (n_class - 1) // 2
    if intercept.shape != (n_pairs,):
        raise _tampered(name, "intercepts have the wrong length")
    for p in (prob_a, prob_b):
        if p.size not in (0, n_pairs):
            raise _tampered(name, "probability parameters have the wrong length")
    if kernel == "precomputed":
        shape_fit = d.get("shape_fit_")
        if n_sv and (support.min() < 0 or shape_fit is None or support.max() >= shape_fit[0]):
            raise _tampered(name, "support index out of range")
    elif getattr(sv, "shape", (None,))[0] != n_sv:
        raise _tampered(name, "support vectors do not match the support indices")
