"""JSON-safe conversion of values read from a loaded model: ``json_safe`` and ``qualified_name``.

Every value ``json_safe`` returns is made of ``dict``/``list``/``str``/``int``/``float``/``bool``/
``None`` (NaN and infinities become ``None``), so it can be passed to ``json.dumps`` directly.
Conversions are bounded in size and depth: a loaded model is untrusted data.

This module only imports the standard library and numpy.
"""

from __future__ import annotations

import math
import reprlib
import types
from typing import Any

import numpy as np

_MAX_ITEMS = 200  # list/dict entries kept per container
_MAX_DEPTH = 8
_MAX_STR = 500

_repr = reprlib.Repr()
_repr.maxstring = _MAX_STR
_repr.maxother = _MAX_STR
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 10
_repr.maxlevel = 2


def qualified_name(obj: Any) -> str:
    """``module.QualName`` of a class, function or (for instances) its class."""
    target = obj if isinstance(obj, (type, types.FunctionType, types.BuiltinFunctionType)) else None
    if target is None and isinstance(obj, np.ufunc):
        return f"numpy.{obj.__name__}"
    if target is None:
        target = type(obj)
    module = getattr(target, "__module__", None) or ""
    name = getattr(target, "__qualname__", None) or getattr(target, "__name__", "?")
    return f"{module}.{name}" if module and module != "builtins" else str(name)


def _is_estimator(obj: Any) -> bool:
    return not isinstance(obj, type) and hasattr(obj, "get_params") and hasattr(obj, "fit")


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, complex):
        return _repr.repr(value)
    if isinstance(value, str):
        return value if len(value) <= _MAX_STR else value[:_MAX_STR] + "..."
    if isinstance(value, bytes):
        return _repr.repr(value)
    return _MISSING


_MISSING = object()


class _Budget:
    """Total number of values one json_safe() call may emit (shared
    references in a loaded model would otherwise expand exponentially)."""

    __slots__ = ("left",)

    def __init__(self, left: int):
        self.left = left


_MAX_NODES = 20_000


def json_safe(value: Any, _depth: int = 0, _budget: _Budget | None = None) -> Any:
    """Convert ``value`` into plain JSON-compatible Python objects.

    numpy scalars/arrays become Python numbers/lists, estimators are shown by
    class name, callables by qualified name, anything else by (bounded)
    ``repr``.  NaN/inf become ``None``.  Output size is bounded.
    """
    if _budget is None:
        _budget = _Budget(_MAX_NODES)
    _budget.left -= 1
    if _budget.left < 0:
        return "..."
    scalar = _scalar(value)
    if scalar is not _MISSING:
        return scalar
    if _depth >= _MAX_DEPTH:
        return _summary(value)
    if isinstance(value, np.ndarray):
        if value.size > _MAX_ITEMS * 10:
            return f"<array shape={list(value.shape)} dtype={value.dtype}>"
        return json_safe(value.tolist(), _depth + 1, _budget)
    if isinstance(value, dict):
        out = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= _MAX_ITEMS or _budget.left <= 0:
                out["..."] = f"{len(value) - i} more"
                break
            key = _scalar(k)
            key = str(key) if key is not _MISSING and key is not None else _repr.repr(k)
            out[key] = json_safe(v, _depth + 1, _budget)
        return out
    if isinstance(value, (list, tuple, set, frozenset)):
        if isinstance(value, (set, frozenset)):
            items = sorted(value, key=repr)[: _MAX_ITEMS + 1] if len(value) <= 10_000 else []
        else:
            items = list(value[: _MAX_ITEMS + 1])
        out_list = []
        for v in items[:_MAX_ITEMS]:
            if _budget.left <= 0:
                break
            out_list.append(json_safe(v, _depth + 1, _budget))
        if len(value) > len(out_list):
            out_list.append("...")
        return out_list
    if _is_estimator(value):
        return qualified_name(type(value)).rsplit(".", 1)[-1]
    if isinstance(value, type) or callable(value):
        return _callable_name(value)
    return _bounded_repr(value)


_CHEAP_REPR_PACKAGES = ("builtins", "numpy", "scipy", "sklearn", "collections", "functools", "datetime")


def _summary(value: Any) -> str:
    if isinstance(value, (list, tuple, set, frozenset, dict)):
        return f"<{type(value).__name__} of {len(value)} items>"
    return f"<{qualified_name(type(value))}>"


def _bounded_repr(value: Any) -> str:
    """repr() for library types (short and cheap), a type placeholder for
    anything else (an arbitrary object's __repr__ may be expensive)."""
    module = (getattr(type(value), "__module__", "") or "").split(".")[0]
    if module not in _CHEAP_REPR_PACKAGES:
        return _summary(value)
    try:
        return _repr.repr(value)
    except Exception:
        return _summary(value)


def _callable_name(func: Any) -> str:
    import functools

    if isinstance(func, functools.partial):
        return f"functools.partial({_callable_name(func.func)})"
    return qualified_name(func)
