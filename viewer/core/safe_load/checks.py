"""Post-load structural validation: the walk over a loaded model and the
dispatch to the checks that apply, plus the checks of stored callables and
keyword arguments.  The checks of native structures live in
:mod:`.checks_trees` (decision trees, forests, (hist) gradient boosting) and
:mod:`.checks_native` (KD/Ball trees and neighbors, k-means, libsvm, sparse
matrices, splines, random states).
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

import numpy as np

from .checks_native import (
    _check_binary_tree,
    _check_bspline,
    _check_kmeans,
    _check_libsvm,
    _check_neighbors,
    _check_random_state,
    _check_sparse,
)
from .checks_trees import (
    _check_ensemble,
    _check_gradient_boosting,
    _check_hgb,
    _check_tree,
    _check_tree_owner,
    _check_tree_predictor,
)
from .errors import ModelLoadError, UnsafeModelError, _tampered, _type_name
from .load_helpers import (
    _binary_tree_types,
    _global_name,
    _load_helper_functions,
    _not_callable_at_load_types,
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
