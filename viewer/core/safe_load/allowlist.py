"""The allowlist: which globals a model file may reference, and why.

This module holds the data (explicitly admitted globals, admitted sklearn base
classes, denied/importable/untrustable packages) with the reasoning written
next to it, plus the name helpers and registries derived from scikit-learn
and numpy.  The rules that apply it live in :mod:`.policy` (``_Policy``,
``is_admitted_global``); the checked wrappers and the set of callables a
pickle may *call* while loading live in :mod:`.load_helpers`
(``_WRAPPED_GLOBALS``, ``_LOAD_HELPERS``, ``_not_callable_at_load_types``);
``_rebuild_dtype`` is in :mod:`.numpy_state` and ``_SafeNumpyArrayWrapper``
in :mod:`.unpickler`.

Imports only the standard library and numpy (scikit-learn lazily).
"""

from __future__ import annotations

import re
import types

import numpy as np

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
#     kernels, metrics) with its own data and keyword arguments from the
#     file, so numpy/scipy functions come only from _STORED_CALLABLES: an
#     explicit list of element-wise functions and reductions, each with the
#     keyword arguments it may get and the reason it is safe (no I/O, no
#     output larger than its input).  Classes kept as values are limited the
#     same way (_STORED_BUILTIN_CLASSES and below).  They may not receive the
#     model's own arrays as numpy ``out=``/``where=`` either (all checked
#     after loading).
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
# Referencing is not calling.  Admitted functions (the listed ufuncs and
# reductions, score functions, check_array) are only *referenced* by fitted
# models, as parameters.  While loading, a pickle may call only constructors and the
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
        # numpy/scipy *functions* (ufuncs, reductions, np.clip, ...) are not
        # listed here: they are admitted only from _STORED_CALLABLES below,
        # which also says with which keyword arguments they may be stored.
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
        # scipy >= 1.15 reference the array-API ``asarray`` helper (listed in
        # _STORED_CALLABLES).
        ("scipy.interpolate._bsplines", "BSpline"),
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
        # make_column_selector: stores a regex pattern and dtypes.  Calling it
        # runs ``re`` on column names (a crafted pattern could backtrack
        # catastrophically), but scikit-learn calls it only in
        # ColumnTransformer.fit (transform uses the indices resolved at fit)
        # and the viewer never fits.  It may only sit in lists, tuples and
        # dicts (ColumnTransformer.transformers), never as an attribute (a
        # FunctionTransformer func) or a partial's function, and its pattern
        # and dtypes must be plain values (_FIT_ONLY_OBJECTS, checks.py).
        ("sklearn.compose._column_transformer", "make_column_selector"),
        # Pure numeric functions stored as parameters by estimators:
        ("sklearn.utils.validation", "check_array"),  # HGB categorical prep
        # BisectingKMeans' k-means loop (``_kmeans_single``) runs Cython that
        # trusts its arguments' shapes: admitted only in that attribute, which
        # only fit calls; anywhere else the model is refused
        # (_FIT_ONLY_CALLABLES, checked after loading).
        ("sklearn.cluster._kmeans", "_kmeans_single_lloyd"),
        ("sklearn.cluster._kmeans", "_kmeans_single_elkan"),
        ("sklearn.feature_selection._univariate_selection", "f_classif"),
        ("sklearn.feature_selection._univariate_selection", "f_regression"),
        ("sklearn.feature_selection._univariate_selection", "r_regression"),
        ("sklearn.feature_selection._univariate_selection", "chi2"),
        ("sklearn.feature_selection._univariate_selection", "f_oneway"),
        ("sklearn.feature_selection._mutual_info", "mutual_info_classif"),
        ("sklearn.feature_selection._mutual_info", "mutual_info_regression"),
    ]
)

# ---------------------------------------------------------------------------
# Stored callables: the numpy/scipy functions a model may keep as a value
# ---------------------------------------------------------------------------
#
# A fitted model keeps functions as parameters (FunctionTransformer(func=...,
# kw_args=...), TransformedTargetRegressor(func=..., inverse_func=...),
# FeatureAgglomeration(pooling_func=...), functools.partial) and scikit-learn
# calls them with the viewer's data *plus keyword arguments taken from the
# file*.  So a numpy/scipy function is admitted only if calling it on an array
# cannot do I/O and cannot produce more than it is given: every entry below
# is element-wise (the output has the shape of the input) or a reduction (the
# output is smaller), and says which keyword arguments a file may pass it and
# what kind of value each must be (scalars only: an array or a nested list in
# ``where=``, ``a_min=``... broadcasts the output to any size).  Keyword
# arguments that choose output buffers, masks, shapes or sizes (out, where,
# shape, size, reps, ...) are never accepted.  Everything else in numpy and
# scipy (np.tile, np.repeat, np.full, np.ones, np.broadcast_to, np.random.*,
# binary ufuncs, and all I/O: np.load, np.save, np.fromfile, np.memmap,
# np.loadtxt, np.genfromtxt, pandas readers, ...) is refused, even as a
# reference.  The post-load checks (checks.py) enforce the keyword rules and
# where these functions may be stored.
#
# Keyword value kinds: "dtype" -- a numeric (bool/int/float/complex) dtype,
# never object; "axis" -- None, a small int or a tuple of them; "bool";
# "int" -- a small integer; "number" -- a real scalar; "number_or_none".

_UFUNC_KWARGS = {"dtype": "dtype"}
_REDUCTION_KWARGS = {"axis": "axis", "keepdims": "bool", "dtype": "dtype"}


def _ufunc(reason: str) -> tuple[dict[str, str], str]:
    return (_UFUNC_KWARGS, reason)


def _reduction(reason: str, **extra: str) -> tuple[dict[str, str], str]:
    return ({**_REDUCTION_KWARGS, **extra}, reason)


#: (module, name) -> (accepted keyword arguments and their value kind, reason)
_STORED_CALLABLES: dict[tuple[str, str], tuple[dict[str, str], str]] = {
    # -- numpy one-input ufuncs: element-wise maths, output shaped like input.
    ("numpy", "absolute"): _ufunc("element-wise |x| (np.abs is the same ufunc)"),
    ("numpy", "fabs"): _ufunc("element-wise |x| for floats"),
    ("numpy", "negative"): _ufunc("element-wise -x"),
    ("numpy", "positive"): _ufunc("element-wise +x (a copy)"),
    ("numpy", "sign"): _ufunc("element-wise sign"),
    ("numpy", "sqrt"): _ufunc("element-wise square root"),
    ("numpy", "cbrt"): _ufunc("element-wise cube root"),
    ("numpy", "square"): _ufunc("element-wise x**2"),
    ("numpy", "reciprocal"): _ufunc("element-wise 1/x"),
    ("numpy", "exp"): _ufunc("element-wise e**x (inverse of np.log)"),
    ("numpy", "exp2"): _ufunc("element-wise 2**x"),
    ("numpy", "expm1"): _ufunc("element-wise e**x - 1 (inverse of np.log1p)"),
    ("numpy", "log"): _ufunc("element-wise natural logarithm"),
    ("numpy", "log2"): _ufunc("element-wise base-2 logarithm"),
    ("numpy", "log10"): _ufunc("element-wise base-10 logarithm"),
    ("numpy", "log1p"): _ufunc("element-wise log(1 + x), the usual skew transform"),
    ("numpy", "sin"): _ufunc("element-wise sine"),
    ("numpy", "cos"): _ufunc("element-wise cosine"),
    ("numpy", "tan"): _ufunc("element-wise tangent"),
    ("numpy", "arcsin"): _ufunc("element-wise inverse sine"),
    ("numpy", "arccos"): _ufunc("element-wise inverse cosine"),
    ("numpy", "arctan"): _ufunc("element-wise inverse tangent"),
    ("numpy", "sinh"): _ufunc("element-wise hyperbolic sine"),
    ("numpy", "cosh"): _ufunc("element-wise hyperbolic cosine"),
    ("numpy", "tanh"): _ufunc("element-wise hyperbolic tangent"),
    ("numpy", "arcsinh"): _ufunc("element-wise inverse hyperbolic sine"),
    ("numpy", "arccosh"): _ufunc("element-wise inverse hyperbolic cosine"),
    ("numpy", "arctanh"): _ufunc("element-wise inverse hyperbolic tangent"),
    ("numpy", "deg2rad"): _ufunc("element-wise degrees to radians"),
    ("numpy", "rad2deg"): _ufunc("element-wise radians to degrees"),
    ("numpy", "radians"): _ufunc("element-wise degrees to radians"),
    ("numpy", "degrees"): _ufunc("element-wise radians to degrees"),
    ("numpy", "floor"): _ufunc("element-wise floor"),
    ("numpy", "ceil"): _ufunc("element-wise ceiling"),
    ("numpy", "trunc"): _ufunc("element-wise truncation toward zero"),
    ("numpy", "rint"): _ufunc("element-wise rounding to the nearest integer"),
    ("numpy", "isnan"): _ufunc("element-wise NaN test"),
    ("numpy", "isinf"): _ufunc("element-wise infinity test"),
    ("numpy", "isfinite"): _ufunc("element-wise finiteness test"),
    ("numpy", "signbit"): _ufunc("element-wise sign-bit test"),
    ("numpy", "logical_not"): _ufunc("element-wise boolean not"),
    # -- numpy element-wise functions with scalar parameters.
    ("numpy", "round"): ({"decimals": "int"}, "element-wise rounding to a number of decimals"),
    ("numpy", "clip"): (
        {"a_min": "number_or_none", "a_max": "number_or_none", "min": "number_or_none", "max": "number_or_none"},
        "element-wise clipping to scalar bounds (array bounds would broadcast the output)",
    ),
    ("numpy", "nan_to_num"): (
        {"copy": "bool", "nan": "number", "posinf": "number_or_none", "neginf": "number_or_none"},
        "element-wise replacement of NaN/inf by scalars",
    ),
    # -- numpy reductions: the output is smaller than the input
    # (FeatureAgglomeration's default pooling_func is np.mean).
    ("numpy", "mean"): _reduction("mean along an axis"),
    ("numpy", "median"): _reduction("median along an axis (sorts a copy of its input)"),
    ("numpy", "average"): _reduction("unweighted mean along an axis (weights are refused)"),
    ("numpy", "sum"): _reduction("sum along an axis", initial="number"),
    ("numpy", "prod"): _reduction("product along an axis", initial="number"),
    ("numpy", "std"): _reduction("standard deviation along an axis", ddof="number"),
    ("numpy", "var"): _reduction("variance along an axis", ddof="number"),
    ("numpy", "min"): _reduction("minimum along an axis", initial="number"),
    ("numpy", "max"): _reduction("maximum along an axis", initial="number"),
    ("numpy", "amin"): _reduction("minimum along an axis", initial="number"),
    ("numpy", "amax"): _reduction("maximum along an axis", initial="number"),
    ("numpy", "nanmean"): _reduction("mean ignoring NaN"),
    ("numpy", "nanmedian"): _reduction("median ignoring NaN"),
    ("numpy", "nansum"): _reduction("sum ignoring NaN", initial="number"),
    ("numpy", "nanstd"): _reduction("standard deviation ignoring NaN", ddof="number"),
    ("numpy", "nanvar"): _reduction("variance ignoring NaN", ddof="number"),
    ("numpy", "nanmin"): _reduction("minimum ignoring NaN", initial="number"),
    ("numpy", "nanmax"): _reduction("maximum ignoring NaN", initial="number"),
    # -- scipy.special one-input ufuncs (pickled under whichever
    # scipy.special submodule defines them; admitted by identity).
    ("scipy.special", "expit"): _ufunc("element-wise logistic sigmoid"),
    ("scipy.special", "logit"): _ufunc("element-wise log(p / (1 - p)), inverse of expit"),
    ("scipy.special", "log_expit"): _ufunc("element-wise log of the logistic sigmoid"),
    ("scipy.special", "erf"): _ufunc("element-wise error function"),
    ("scipy.special", "erfc"): _ufunc("element-wise complementary error function"),
    ("scipy.special", "erfinv"): _ufunc("element-wise inverse error function"),
    ("scipy.special", "erfcinv"): _ufunc("element-wise inverse complementary error function"),
    ("scipy.special", "ndtr"): _ufunc("element-wise standard normal CDF"),
    ("scipy.special", "ndtri"): _ufunc("element-wise inverse standard normal CDF"),
    ("scipy.special", "log_ndtr"): _ufunc("element-wise log of the standard normal CDF"),
    ("scipy.special", "gammaln"): _ufunc("element-wise log-gamma"),
    ("scipy.special", "digamma"): _ufunc("element-wise digamma (psi is the same ufunc)"),
    ("scipy.special", "entr"): _ufunc("element-wise -x log x"),
    ("scipy.special", "cbrt"): _ufunc("element-wise cube root"),
    ("scipy.special", "exp2"): _ufunc("element-wise 2**x"),
    ("scipy.special", "exp10"): _ufunc("element-wise 10**x"),
    ("scipy.special", "expm1"): _ufunc("element-wise e**x - 1"),
    ("scipy.special", "log1p"): _ufunc("element-wise log(1 + x)"),
    # -- BSpline (SplineTransformer) keeps its array namespace's asarray.
    ("scipy._lib.array_api_compat.numpy._aliases", "asarray"): (
        {"dtype": "dtype", "copy": "bool"},
        "converts its input to an array of the same size (stored by scipy's BSpline)",
    ),
}

# Where scikit-learn calls a stored numpy/scipy function with a single array
# (so positional arguments cannot be the model's own arrays, and keyword
# arguments are the ones checked above): (module, class) -> attributes.  A
# listed function stored anywhere else that is not plain data (a list, a
# dict, an array) -- e.g. as SVC.kernel or KNeighbors.metric, which are
# called with two arrays and extra keyword arguments -- is refused.
_ONE_ARRAY_CALL_SLOTS: dict[tuple[str, str], tuple[str, ...]] = {
    ("sklearn.preprocessing._function_transformer", "FunctionTransformer"): ("func", "inverse_func"),
    ("sklearn.compose._target", "TransformedTargetRegressor"): ("func", "inverse_func"),
    ("sklearn.cluster._agglomerative", "FeatureAgglomeration"): ("pooling_func",),
    ("scipy.interpolate._bsplines", "BSpline"): ("_asarray",),
    ("functools", "partial"): ("func",),
}

# Classes a model may keep as a value.  A stored class is callable like a
# function (FunctionTransformer(func=SomeClass, kw_args=...)), so only classes
# whose constructor, called on an array, converts it without I/O or growth:
#   * numpy scalar types (np.float64, ...) -- the usual ``dtype=`` values;
#   * the builtin scalar types below -- ``dtype=float`` / ``dtype=object``;
#   * scipy.sparse matrix/array classes -- convert dense data to sparse
#     (keyword arguments: dtype and copy; ``shape`` is refused).
# Not admitted as values: numpy.random classes (SeedSequence(pool_size=n) runs
# for O(n**2)), ndarray/matrix/MaskedArray/dtype, scikit-learn internals
# (Tree(n_outputs=...) trusts its arguments), containers, and everything
# else.
_STORED_BUILTIN_CLASSES: frozenset[type] = frozenset({int, float, bool, complex, str, object})
_SPARSE_CLASS_KWARGS = {"dtype": "dtype", "copy": "bool"}

# Keyword arguments whose only purpose is to choose an output buffer, a mask,
# a shape or a size; named specifically in refusals.
_SIZE_KWARGS = frozenset(
    {"out", "where", "shape", "size", "reps", "repeats", "num", "n", "pool_size", "buffer", "count"}
)

_STORED_CALLABLE_OBJECTS: dict[int, tuple[object, str, tuple[dict[str, str], str]]] | None = None


def _stored_callable_objects() -> dict[int, tuple[object, str, tuple[dict[str, str], str]]]:
    """id(function) -> (function, "module.name", (kwargs, reason)) for every
    entry of _STORED_CALLABLES that exists in the installed versions (the
    objects are kept referenced, so their ids stay valid)."""
    global _STORED_CALLABLE_OBJECTS
    if _STORED_CALLABLE_OBJECTS is None:
        import importlib

        found: dict[int, tuple[object, str, tuple[dict[str, str], str]]] = {}
        for (module, name), entry in _STORED_CALLABLES.items():
            try:
                mod = importlib.import_module(module)
            except ImportError:  # pragma: no cover - optional scipy internals
                continue
            obj = vars(mod).get(name)
            if obj is not None and callable(obj) and id(obj) not in found:
                found[id(obj)] = (obj, f"{module}.{name}", entry)
        _STORED_CALLABLE_OBJECTS = found
    return _STORED_CALLABLE_OBJECTS


def _stored_callable_entry(obj: object):
    """(name, (kwargs, reason)) if ``obj`` is on _STORED_CALLABLES, else None."""
    found = _stored_callable_objects().get(id(obj))
    if found is None or found[0] is not obj:
        return None
    return found[1], found[2]

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
    # GridSearchCV(scoring=None).scorer_: keeps the estimator; if called,
    # calls ``score`` on its first argument (input data has none).
    ("sklearn.metrics._scorer", "_PassthroughScorer"),
    # CV splitters (GridSearchCV.cv, _checked_cv_orig, Stacking.cv): records
    # of n_splits/shuffle/random_state used only by fit, rebuilt from state
    # and never called while loading (see _not_callable_at_load_types).
    ("sklearn.model_selection._split", "BaseCrossValidator"),
    ("sklearn.model_selection._split", "BaseShuffleSplit"),
    ("sklearn.model_selection._split", "_RepeatedSplits"),
)

# What only *fit* uses, admitted only where scikit-learn keeps it:
#: (module, function) -> the (module, class, attribute) that may hold it
_BKM = ("sklearn.cluster._bisect_k_means", "BisectingKMeans", "_kmeans_single")
_FIT_ONLY_CALLABLES = {("sklearn.cluster._kmeans", f"_kmeans_single_{a}"): _BKM for a in ("lloyd", "elkan")}
#: (module, class) of callable objects that may only sit in lists, tuples and dicts
_FIT_ONLY_OBJECTS: tuple[tuple[str, str], ...] = (
    ("sklearn.compose._column_transformer", "make_column_selector"),
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
        *("lightgbm", "xgboost", "imblearn", "sklearn_compat"),  # admitted class by class (boost.py)
    }
)

_TEST_PARTS = frozenset({"tests", "test", "testing", "_testing", "conftest"})
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _canonical_module(module: str) -> str:
    for old, new in _MODULE_ALIASES:
        if module == old or module.startswith(old + "."):
            return new + module[len(old) :]
    return module


def _module_matches(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _sklearn_module_denied(module: str) -> bool:
    return any(part in _SKLEARN_DENIED_PARTS for part in module.split("."))


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
