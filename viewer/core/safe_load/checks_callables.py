"""Checks of what a model stores to be called later with the viewer's data:
functions and classes kept as values (FunctionTransformer.func, kernels,
metrics, ...), the keyword arguments bound to them, and ``functools.partial``.
Only the callables on ``allowlist._STORED_CALLABLES`` may be stored, each with
the keyword arguments it accepts; nothing may route the model's own arrays into
a numpy output buffer.
"""

from __future__ import annotations

import functools
import types
from typing import Any, Callable

import numpy as np

from .allowlist import (
    _ONE_ARRAY_CALL_SLOTS,
    _SIZE_KWARGS,
    _SPARSE_CLASS_KWARGS,
    _STORED_BUILTIN_CLASSES,
    _numpy_scalar_types,
    _stored_callable_entry,
)
from .errors import UnsafeModelError, _as_int, _type_name
from .load_helpers import _global_name, _load_helper_functions

_NUMPY_DISPATCHER = type(np.mean)  # numpy's __array_function__ wrappers (np.mean, np.clip, ...)
_CALLABLE_TYPES = (
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    np.ufunc,
    _NUMPY_DISPATCHER,
)


def _is_stored_callable_value(value: Any) -> bool:
    """Functions, classes and partials, and the callable objects that must stay where fit keeps
    them (make_column_selector): the graph walk records where each is stored."""
    return (
        isinstance(value, (*_CALLABLE_TYPES, functools.partial))
        or "cython_function_or_method" in type(value).__name__
        or _stored_callable_entry(value) is not None
        or (type(value).__name__ == "make_column_selector"
            and type(value).__module__ == "sklearn.compose._column_transformer")
    )


def _check_stored_callable(obj, no_call: tuple[type, ...], trusted: Callable[[str], bool]) -> None:
    """Classes and functions stored *as values* (FunctionTransformer.func,
    kernels, metrics, ...) are later called with the viewer's data plus
    keyword arguments taken from the model.

    * The constructors that are not callable while loading
      (``ndarray(buffer=...)``, KD/Ball trees, distance metrics, splines) and
      the pickle reconstruction helpers must not be stored.
    * Other classes only if calling one on an array converts it without I/O
      or growth (numpy scalar types, int/float/bool/complex/str/object,
      scipy.sparse matrix classes; see ``_STORED_BUILTIN_CLASSES`` in
      :mod:`.allowlist`) or if the operator trusts their module.
    * numpy/scipy functions only from the explicit list
      (``_STORED_CALLABLES``); skops trusts every numpy and scipy.special
      ufunc by default, so this is checked again after loading.
    """
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
    if isinstance(obj, type):
        if _stored_class_kwargs(obj) is not None or trusted(getattr(obj, "__module__", "") or ""):
            return
        raise UnsafeModelError(
            [f"{_global_name(obj)} (stored as a callable)"],
            detail=f"The model stores the class {_global_name(obj)} as a value. scikit-learn "
            "calls stored classes like functions (for example as a FunctionTransformer func), "
            "with your data and keyword arguments taken from the file, and this class's "
            "constructor can allocate memory or run for as long as those arguments ask. Only "
            "dtype classes (numpy scalar types such as numpy.float64, and int, float, bool, "
            "complex, str, object) and scipy.sparse matrix classes may be stored as values. "
            "Remove it from the model, or ask the operator to trust the package that defines it "
            "(VIEWER_TRUSTED_MODULES; see README.md#custom-steps-viewer_trusted_modules).",
        )
    if _stored_callable_entry(obj) is not None:
        return
    module = getattr(obj, "__module__", None) or ""
    if isinstance(obj, np.ufunc) or module.split(".")[0] == "numpy" or module.startswith("scipy.special"):
        name = _callable_name(obj)
        raise UnsafeModelError(
            [f"{name} (stored as a callable)"],
            detail=f"The model stores {name} as a function to call on your data, "
            "but only the element-wise numpy/scipy functions and reductions on the viewer's "
            "explicit list may be stored (for example numpy.log1p, numpy.expm1, numpy.sqrt, "
            "numpy.exp, numpy.clip, numpy.mean, scipy.special.expit), because other numpy "
            "functions can take sizes, shapes or output buffers from the file and exhaust the "
            "server's memory or CPU. Use a listed function, or put the function in your own "
            "package and ask the operator to trust it (the VIEWER_TRUSTED_MODULES setting; see "
            "README.md#custom-steps-viewer_trusted_modules).",
        )


def _callable_name(obj: Any) -> str:
    """``numpy.add`` / ``scipy.special.gamma`` for ufuncs (whose
    ``__module__``/``__qualname__`` are those of the ufunc class)."""
    if isinstance(obj, np.ufunc):
        name = getattr(obj, "__name__", "?")
        import scipy.special

        for module in (np, scipy.special):
            if vars(module).get(name) is obj:
                return f"{module.__name__}.{name}"
        return f"ufunc {name}"
    return _global_name(obj)


def _stored_class_kwargs(cls: type) -> dict[str, str] | None:
    """The keyword arguments a class admitted as a stored value may be
    called with (see ``_STORED_BUILTIN_CLASSES``), or None if it is not
    admitted."""
    import scipy.sparse as sp

    if cls in _STORED_BUILTIN_CLASSES or cls in _numpy_scalar_types():
        return {}
    if issubclass(cls, (sp.spmatrix, sp.sparray)) and (cls.__module__ or "").startswith("scipy.sparse"):
        return _SPARSE_CLASS_KWARGS
    return None


def _callable_spec(func: Any) -> tuple[str, dict[str, str], str] | None:
    """(name, accepted keyword arguments, reason) for a listed numpy/scipy
    function or an admitted stored class; None for anything else (sklearn
    functions, trusted code), whose keyword arguments are not restricted
    here."""
    entry = _stored_callable_entry(func)
    if entry is not None:
        name, (kwargs, reason) = entry
        return name, kwargs, reason
    if isinstance(func, type):
        kwargs = _stored_class_kwargs(func)
        if kwargs is not None:
            return _global_name(func), kwargs, "converts its input to that type"
    return None


def _unwrap_partial(value: Any) -> tuple[Any, dict, bool]:
    """The function a (possibly nested) functools.partial ends up calling,
    the keyword arguments it binds (outer ones win, as at call time) and
    whether it binds positional arguments."""
    keywords: dict = {}
    positional = False
    for _ in range(100):
        if not isinstance(value, functools.partial):
            break
        keywords = {**(value.keywords or {}), **keywords}
        positional = positional or bool(value.args)
        value = value.func
    return value, keywords, positional


_KIND_TEXT = {
    "dtype": "a numeric dtype (bool, integer, float or complex; never object)",
    "axis": "None, a small integer or a tuple of small integers",
    "bool": "True or False",
    "int": "a small integer",
    "number": "a real number",
    "number_or_none": "None or a real number",
}


_KIND_WHY = {
    "dtype": "an object dtype makes numpy call a Python method on every element, and "
    "other dtypes do not fit these functions",
    "axis": "anything else is not an axis",
    "bool": "anything else is not a flag",
    "int": "anything else is not a number of decimals",
    "number": "an array or a list would broadcast the result to any size",
    "number_or_none": "an array or a list would broadcast the result to any size",
}


def _is_small_int(value: Any, limit: int) -> bool:
    v = _as_int(value)
    return v is not None and -limit <= v <= limit


def _is_real(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if _as_int(value) is not None:
        return abs(int(value)) < 2**63
    return isinstance(value, (float, np.floating))


def _value_fits(kind: str, value: Any) -> bool:
    if kind == "dtype":
        if not (
            isinstance(value, np.dtype)
            or any(value is t for t in (int, float, bool, complex))
            or (isinstance(value, type) and value in _numpy_scalar_types())
            or (isinstance(value, str) and len(value) <= 32)
        ):
            return False
        try:
            return np.dtype(value).kind in "biufc"
        except Exception:
            return False
    if kind == "axis":
        if value is None or _is_small_int(value, 64):
            return True
        return isinstance(value, tuple) and len(value) <= 64 and all(_is_small_int(v, 64) for v in value)
    if kind == "bool":
        return isinstance(value, (bool, np.bool_))
    if kind == "int":
        return _is_small_int(value, 10_000)
    if kind == "number":
        return _is_real(value)
    if kind == "number_or_none":
        return value is None or _is_real(value)
    return False  # pragma: no cover - unknown kind in the allowlist


def _short_repr(value: Any) -> str:
    try:
        text = repr(value) if not isinstance(value, (list, tuple, dict, np.ndarray)) else (
            f"<{type(value).__name__}>"
        )
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 40 else text[:40] + "..."


def _check_call_kwargs(spec: tuple[str, dict[str, str], str], kwargs: dict, where: str) -> None:
    """The keyword arguments a model passes to a listed function or stored
    class must be the accepted ones, with values of the accepted kind."""
    name, accepted, reason = spec
    if accepted:
        allowed_text = "only these keyword arguments: " + ", ".join(sorted(accepted))
    else:
        allowed_text = "no keyword arguments"
    for key, value in kwargs.items():
        kind = accepted.get(key) if isinstance(key, str) else None
        if kind is None:
            why = (
                " Keyword arguments that choose an output buffer, a mask, a shape or a size "
                "can make a single prediction allocate unbounded memory or overwrite the "
                "model's own arrays."
                if key in _SIZE_KWARGS
                else ""
            )
            raise UnsafeModelError(
                [f"{name}({key}=...) in {where}"],
                detail=f"{where} calls {name} with the keyword argument {key!r} taken from "
                f"the file.{why} {name} ({reason}) may be given {allowed_text}. Remove "
                f"{key!r} from the model's keyword arguments and save it again.",
            )
        if not _value_fits(kind, value):
            raise UnsafeModelError(
                [f"{name}({key}={_short_repr(value)}) in {where}"],
                detail=f"{where} calls {name} with {key}={_short_repr(value)}, but {key} must be "
                f"{_KIND_TEXT[kind]}: {_KIND_WHY[kind]}. Change {key} in the model and save "
                "it again.",
            )


def _check_function_transformer(ft) -> None:
    """FunctionTransformer calls ``func(X, **kw_args)`` and
    ``inverse_func(X, **inv_kw_args)``: the keyword arguments come from the
    file, so they must be ones the (listed) function accepts."""
    d = vars(ft)
    for func_attr, kw_attr in (("func", "kw_args"), ("inverse_func", "inv_kw_args")):
        func = d.get(func_attr)
        if func is None:
            continue
        inner, bound, _ = _unwrap_partial(func)
        spec = _callable_spec(inner)
        if spec is None:
            continue
        kwargs = d.get(kw_attr)
        if kwargs is None:
            kwargs = {}
        if not isinstance(kwargs, dict):
            raise UnsafeModelError(
                [f"FunctionTransformer.{kw_attr} ({_type_name(kwargs)})"],
                detail=f"FunctionTransformer.{kw_attr} must be a dict of keyword arguments; "
                "this model stores something else there.",
            )
        _check_call_kwargs(spec, {**bound, **kwargs}, f"FunctionTransformer({func_attr}={spec[0]})")


_ONE_ARRAY_SLOT_CLASSES: list[tuple[type, tuple[str, ...]]] | None = None


def _one_array_slot_classes() -> list[tuple[type, tuple[str, ...]]]:
    global _ONE_ARRAY_SLOT_CLASSES
    if _ONE_ARRAY_SLOT_CLASSES is None:
        import importlib

        found = []
        for (module, name), attrs in _ONE_ARRAY_CALL_SLOTS.items():
            try:
                cls = vars(importlib.import_module(module)).get(name)
            except ImportError:  # pragma: no cover - layout change
                continue
            if isinstance(cls, type):
                found.append((cls, attrs))
        _ONE_ARRAY_SLOT_CLASSES = found
    return _ONE_ARRAY_SLOT_CLASSES


_PLAIN_DATA = (list, tuple, dict, set, frozenset, np.ndarray)


def _check_call_slots(edges: list, trusted: Callable[[str], bool]) -> None:
    """A listed numpy/scipy function may be stored where scikit-learn calls
    it with one array (FunctionTransformer/TransformedTargetRegressor func and
    inverse_func, FeatureAgglomeration.pooling_func, ...; see
    ``_ONE_ARRAY_CALL_SLOTS``) or as plain data (e.g. in GridSearchCV's
    cv_results_).  Kernels, metrics, score functions and the like are called
    with two arrays and keyword arguments from the file: np.clip as a metric
    with ``metric_params={"a_max": <nested list>}`` would broadcast each
    distance to any size, and a one-input ufunc would write its result into
    the model's own array (its second positional argument is ``out``)."""
    for holder, key, value in edges:
        inner, _, _ = _unwrap_partial(value)
        if isinstance(inner, type):
            continue
        entry = _stored_callable_entry(inner)
        if entry is None or isinstance(holder, _PLAIN_DATA):
            continue
        if trusted(getattr(type(holder), "__module__", "") or ""):
            continue
        if any(isinstance(holder, cls) and key in attrs for cls, attrs in _one_array_slot_classes()):
            continue
        name = entry[0]
        where = f"{type(holder).__name__}.{key}" if isinstance(key, str) and not key.startswith("<") else (
            f"the internal state of {type(holder).__name__}"
        )
        raise UnsafeModelError(
            [f"{name} (stored as {where})"],
            detail=f"The model stores {name} as {where}, which scikit-learn calls with more "
            "than one array or with keyword arguments from the file that cannot be checked. "
            "numpy/scipy functions may only be a FunctionTransformer or "
            "TransformedTargetRegressor func/inverse_func (or FeatureAgglomeration's "
            "pooling_func). Use a built-in string option (for example kernel='rbf' or "
            "metric='minkowski') or a function from a package the operator trusts.",
        )


# Keyword arguments that route the model's own arrays (or a nested list the
# size of a broadcast) into a numpy output buffer or mask.
_FORBIDDEN_KWARGS = ("out", "where")


def _holds_array(value) -> bool:
    """An array, or a list/tuple holding an array or another list/tuple (a
    nested list given as ``where=`` broadcasts the result to its shape)."""
    if isinstance(value, np.ndarray):
        return True
    return isinstance(value, (tuple, list)) and any(
        isinstance(v, (np.ndarray, list, tuple)) for v in value
    )


def _check_kwargs(d: dict) -> None:
    """Keyword dicts (FunctionTransformer.kw_args, kernel_params,
    metric_params, partial keywords, ...) must not route one of the model's
    own arrays into a numpy ``out=``/``where=`` argument: that would let a
    transform step overwrite validated index arrays right before native code
    uses them; nor a nested list, which would broadcast the result to any
    size.  (Functions on the stored-callable list are checked more strictly:
    see _check_call_kwargs.)"""
    for key in _FORBIDDEN_KWARGS:
        if key in d and _holds_array(d[key]):
            raise UnsafeModelError(
                [f"keyword argument {key!r} bound to an array"],
                detail="The model binds one of its own arrays (or a nested list) as a numpy "
                f"{key!r} argument, which could corrupt its internal state or make a "
                f"prediction allocate unbounded memory. Remove {key!r} from the model's "
                "keyword arguments.",
            )


def _check_partial(p: functools.partial) -> None:
    func, keywords, positional = _unwrap_partial(p)
    module = getattr(func, "__module__", None) or ""
    spec = _callable_spec(func)
    if positional and (
        spec is not None or isinstance(func, np.ufunc) or module.split(".")[0] in ("numpy", "scipy")
    ):
        # Bound positional arguments of numpy functions can land on ``out``.
        raise UnsafeModelError(
            [f"functools.partial({_global_name(func)}, <positional arguments>)"],
            detail="Binding positional arguments to numpy functions can pass the "
            "model's own arrays as output buffers.",
        )
    if spec is not None:
        _check_call_kwargs(spec, keywords, f"functools.partial({spec[0]})")
