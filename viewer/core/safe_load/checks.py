"""Post-load structural validation: the walk over a loaded model and the
dispatch to the checks that apply, plus the checks of stored callables and
keyword arguments, and the normalisation of resource settings (``n_jobs``,
``memory``, thread counts) applied after them.  The checks of native
structures live in
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
from . import boost
from .allowlist import _FIT_ONLY_CALLABLES, _FIT_ONLY_OBJECTS, _stored_callable_entry
from .checks_callables import (
    _CALLABLE_TYPES,
    _check_call_slots,
    _check_function_transformer,
    _check_kwargs,
    _check_partial,
    _check_stored_callable,
    _is_stored_callable_value,
    _short_repr,
)
from .errors import ModelLoadError, UnsafeModelError, _as_int, _tampered, _type_name
from .load_helpers import _binary_tree_types, _not_callable_at_load_types

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


def _iter_graph(root: Any, edges: list | None = None):
    """Yield every object reachable through containers, ``__dict__`` and the
    pickled state of extension types (e.g. a BallTree's distance metric and a
    PyFuncDistance's function and keyword arguments).

    With ``edges``, also record ``(holder, attribute, value)`` for every
    function, class or partial found as a value: ``attribute`` is the
    ``__dict__`` key, ``"func"`` for a partial, ``"<native state>"`` for the
    state of an extension type, and None inside plain containers."""
    seen: set[int] = set()
    stack = [root]
    visited = 0
    scalar_types = (str, bytes, int, float, complex, bool, type(None), np.generic)

    def push(holder, key, children) -> None:
        if edges is not None:
            for child in children:
                if not isinstance(child, scalar_types) and _is_stored_callable_value(child):
                    edges.append((holder, key, child))
        stack.extend(children)

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
        if isinstance(obj, _CALLABLE_TYPES) or (
            "cython_function_or_method" in type(obj).__name__
            or _stored_callable_entry(obj) is not None
        ):
            # Process-wide objects defined by code, not by the file (pickle
            # never BUILDs them): numpy's dispatchers keep their Python
            # implementation in __dict__ (``__wrapped__``), which is numpy's
            # business, not the model's.
            continue
        if isinstance(obj, dict):
            push(obj, None, list(obj.keys()))
            push(obj, None, list(obj.values()))
            continue
        if isinstance(obj, (list, tuple, set, frozenset)):
            push(obj, None, list(obj))
            continue
        if isinstance(obj, np.ndarray):
            if obj.dtype.hasobject:
                push(obj, None, obj.ravel().tolist())
            continue
        if isinstance(obj, functools.partial):
            push(obj, "func", [obj.func])
            stack.extend([obj.args, obj.keywords or {}])
        d = getattr(obj, "__dict__", None)
        if isinstance(d, dict):
            if edges is None:
                stack.extend(d.values())
            else:
                for key, value in list(d.items()):
                    push(obj, key, [value])
        if _is_native_sklearn_object(obj):
            # Cython classes keep references in C fields; their reduce state
            # (not the constructor part) lists them.
            try:
                reduced = obj.__reduce__()
            except Exception:
                reduced = None
            if isinstance(reduced, tuple) and len(reduced) >= 3:
                state = reduced[2]
                if isinstance(state, (tuple, list)):
                    push(obj, "<native state>", list(state))
                else:
                    push(obj, "<native state>", [state])


_HEAPTYPE = 1 << 9  # Py_TPFLAGS_HEAPTYPE


def _is_native_sklearn_object(obj: Any) -> bool:
    """An instance of a scikit-learn Cython extension type (or of a Python
    subclass of one, like BallTree)."""
    cls = type(obj)
    if not (getattr(cls, "__module__", "") or "").startswith("sklearn."):
        return False
    return any(not (t.__flags__ & _HEAPTYPE) for t in cls.__mro__[:-1])


def _validate_structure(root: Any, policy: Any = None) -> None:
    """Run the structural checks on every object reachable from ``root``.

    ``policy`` (a ``_Policy``) tells which modules the operator trusts: their
    classes and functions may be stored anywhere."""
    trusted = policy._is_trusted if policy is not None else (lambda module: False)
    checks = _StructureChecks(trusted)
    edges: list = []
    for obj in _iter_graph(root, edges):
        try:
            checks.check(obj)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise _tampered(
                _type_name(obj), f"unreadable internal structure: {type(exc).__name__}"
            ) from exc
    _check_call_slots(edges, trusted)
    _check_fit_only_places(edges)


class _StructureChecks:
    """Dispatch from object type to the structural check(s) that apply."""

    def __init__(self, trusted: Callable[[str], bool] = lambda module: False):
        import scipy.sparse as sp
        from sklearn.preprocessing import FunctionTransformer
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
            (FunctionTransformer, _check_function_transformer),
        ]
        self.no_call = _not_callable_at_load_types()
        self.trusted = trusted
        from sklearn.compose import make_column_selector

        self.column_selector = make_column_selector

    def check(self, obj: Any) -> None:
        if isinstance(obj, _CALLABLE_TYPES) or "cython_function_or_method" in type(obj).__name__:
            _check_stored_callable(obj, self.no_call, self.trusted)
        if boost.package_of(getattr(type(obj), "__module__", "") or "") in boost.NATIVE:
            boost.check(obj)
        if isinstance(obj, self.column_selector):
            _check_column_selector(obj)
            return
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


def _check_column_selector(selector) -> None:
    """make_column_selector keeps a regex pattern and dtype names for ColumnTransformer.fit; they
    must be plain values (the viewer never calls it: see its entry in allowlist.py)."""
    d = vars(selector)
    pattern = d.get("pattern")
    plain = (str, type)
    dtypes_ok = all(
        value is None or isinstance(value, (*plain, np.dtype))
        or (isinstance(value, (list, tuple)) and len(value) <= 100 and all(isinstance(v, (*plain, np.dtype)) for v in value))
        for value in (d.get("dtype_include"), d.get("dtype_exclude"))
    )
    if not (pattern is None or (isinstance(pattern, str) and len(pattern) <= 10_000)) or not dtypes_ok:
        raise _tampered(_type_name(selector), "its pattern or dtypes are not plain text or types")


def _check_fit_only_places(edges: list) -> None:
    """Objects and functions that only fit uses stay where scikit-learn keeps them: the k-means
    loops only as BisectingKMeans._kmeans_single, column selectors only inside lists, tuples and
    dicts (ColumnTransformer.transformers). Anywhere else a prediction could call them."""
    places = _fit_only_places()
    for holder, key, value in edges:
        where = places.get(id(value)) if not isinstance(value, functools.partial) else None
        if where is None and isinstance(value, places.get("selector", ())):
            where = "selector"
        if where is None:
            continue
        if where == "selector":
            if isinstance(holder, (list, tuple, dict)) and not isinstance(holder, functools.partial):
                continue
            what, allowed = "make_column_selector", "a ColumnTransformer's column specification"
        else:
            cls, attr = where
            if type(holder) is cls and key == attr:
                continue
            what, allowed = f"{value.__module__}.{value.__qualname__}", f"{cls.__name__}.{attr}"
        place = f"{type(holder).__name__}.{key}" if isinstance(key, str) else f"a {type(holder).__name__}"
        raise UnsafeModelError(
            [f"{what} (stored as {place})"],
            detail=f"The model stores {what} as {place}. scikit-learn keeps it only as {allowed} and "
            "uses it only while fitting; stored elsewhere, a prediction would call it with data "
            "and arguments chosen by the file. Save the model as scikit-learn fitted it.",
        )


_FIT_ONLY_PLACES: dict | None = None


def _fit_only_places() -> dict:
    """id(function) -> (class, attribute) for _FIT_ONLY_CALLABLES, and "selector" -> the
    classes of _FIT_ONLY_OBJECTS."""
    global _FIT_ONLY_PLACES
    if _FIT_ONLY_PLACES is None:
        import importlib

        places: dict = {}
        for (module, name), (cls_module, cls_name, attr) in _FIT_ONLY_CALLABLES.items():
            func = vars(importlib.import_module(module)).get(name)
            cls = vars(importlib.import_module(cls_module)).get(cls_name)
            if func is not None and isinstance(cls, type):
                places[id(func)] = (cls, attr)
                places.setdefault("_keep", []).append(func)
        places["selector"] = tuple(
            vars(importlib.import_module(module))[name] for module, name in _FIT_ONLY_OBJECTS)
        _FIT_ONLY_PLACES = places
    return _FIT_ONLY_PLACES


def _check_vectorizer(vectorizer) -> None:
    if getattr(vectorizer, "input", "content") == "filename":
        raise UnsafeModelError(
            [f"{_type_name(vectorizer)}(input='filename')"],
            detail="A text vectorizer with input='filename' opens the files named by "
            "the data it is applied to, which would let a model read files on the "
            "server.",
        )


# ---------------------------------------------------------------------------
# Resource settings, normalised after the checks
# ---------------------------------------------------------------------------
#
# A model's parameters choose how many worker processes/threads scikit-learn
# starts at predict time (n_jobs=24 in a ColumnTransformer or a forest starts
# two dozen processes per prediction) and whether it writes a cache to disk
# (Pipeline/FeatureAgglomeration ``memory``: a path or a joblib.Memory).  The
# viewer decides those, not the file: after the structural checks, every
# object of the loaded graph that has such an attribute gets n_jobs=1 and
# memory=None, KMeans' stored OpenMP thread count (_n_threads, used by
# predict) is capped at the server's, and load_model reports each change.
# Only instances are changed, never classes, functions or other
# process-wide objects.

_NEVER_MUTATED = (types.ModuleType, *_CALLABLE_TYPES)
ADJUSTED = "Changed at upload:"  # how the notes of these changes begin (the model card lists them apart)


def _limit_resources(root: Any) -> list[str]:
    """Force ``n_jobs`` to 1, ``memory`` to None and ``_n_threads`` (the
    OpenMP thread count KMeans stores at fit and uses at predict) to at most
    this server's on every object of ``root``'s graph that has them; return
    one sentence per change (grouped by setting and old value)."""
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    max_threads = max(1, int(_openmp_effective_n_threads()))
    changes: dict[tuple[str, str, str], list[str]] = {}

    def note(obj: Any, attr: str, old: Any, new: Any) -> None:
        names = changes.setdefault((attr, _short_repr(old), repr(new)), [])
        name = type(obj).__name__
        if name not in names:
            names.append(name)

    for obj in _iter_graph(root):
        if isinstance(obj, _NEVER_MUTATED) or "cython_function_or_method" in type(obj).__name__:
            continue  # shared, process-wide objects
        if _stored_callable_entry(obj) is not None:
            continue
        d = getattr(obj, "__dict__", None)
        if not isinstance(d, dict):
            continue
        if "n_jobs" in d:
            old = d["n_jobs"]
            if not (old is None or (_as_int(old) == 1 and not isinstance(old, bool))):
                d["n_jobs"] = 1
                note(obj, "n_jobs", old, 1)
        if "memory" in d and d["memory"] is not None:
            old = d["memory"]
            d["memory"] = None
            note(obj, "memory", old, None)
        boost.limit_threads(obj, note)  # LightGBM/XGBoost: n_jobs=None means every core
        if "_n_threads" in d:
            old = d["_n_threads"]
            value = _as_int(old)
            if value is None or value < 1 or value > max_threads:
                d["_n_threads"] = max_threads if value is None or value > max_threads else 1
                note(obj, "_n_threads", old, d["_n_threads"])

    reasons = {
        "n_jobs": "the server runs each model in one process and one thread",
        "memory": "a model may not write a cache to the server's disk",
        "_n_threads": "the thread count stored when the model was fitted, capped at this "
        "server's",
    }
    for attr in ("num_threads", "num_thread", "nthread", "nthreads"):
        reasons[attr] = reasons["n_jobs"]
    messages = []
    for (attr, old, new), names in changes.items():
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        messages.append(f"{ADJUSTED} {attr}={old} was set to {new} in {shown} ({reasons[attr]}).")
    return messages
