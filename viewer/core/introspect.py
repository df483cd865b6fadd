"""Describe a fitted scikit-learn estimator in JSON-safe terms.

``describe_model(estimator)`` never calls ``fit``/``predict``; it only reads
attributes (with ``hasattr`` semantics, so ``available_if`` methods such as
``SVC(probability=False).predict_proba`` are reported as absent).  Every value
in :meth:`ModelInfo.to_dict` is made of ``dict``/``list``/``str``/``int``/
``float``/``bool``/``None`` (NaN and infinities become ``None``), so it can be
passed to ``json.dumps`` directly.  Conversions are bounded in size and depth:
a loaded model is untrusted data.

This module only imports the standard library, numpy and scikit-learn.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
import types
import warnings
from typing import Any, Literal

import numpy as np

__all__ = ["FeatureSpec", "ModelInfo", "describe_model", "json_safe"]

Kind = Literal["classifier", "regressor", "clusterer", "other"]

_MAX_ITEMS = 200  # list/dict entries kept per container
_MAX_DEPTH = 8
_MAX_STR = 500
_MAX_CATEGORIES = 1000
_MAX_STEP_DEPTH = 10

_repr = reprlib.Repr()
_repr.maxstring = _MAX_STR
_repr.maxother = _MAX_STR
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 10
_repr.maxlevel = 2


@dataclasses.dataclass
class FeatureSpec:
    """One input column the model expects."""

    name: str
    kind: Literal["numeric", "categorical"]
    categories: list[Any] | None = None
    default: Any = None
    # How the model takes a value outside ``categories``: "error" (its encoder refuses it) or
    # "ignore" (encoded as all zeros / a reserved code); None when not known.
    unknown: Literal["error", "ignore"] | None = None
    # "impute": a missing value is filled in by an imputer step; None: not known to be.
    missing: Literal["impute"] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "name": self.name,
            "kind": self.kind,
            "categories": json_safe(self.categories) if self.categories is not None else None,
            "default": json_safe(self.default),
        }
        if self.unknown is not None:
            out["unknown"] = self.unknown
        if self.missing is not None:
            out["missing"] = self.missing
        return out


@dataclasses.dataclass
class ModelInfo:
    kind: Kind
    estimator_class: str
    steps: list[dict[str, Any]]
    classes: list[Any] | None
    feature_names: list[str] | None
    n_features: int | None
    hyperparameters: dict[str, Any]
    has_predict_proba: bool
    has_decision_function: bool
    input_schema: list[FeatureSpec]
    parameters: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "estimator_class": self.estimator_class,
            "steps": json_safe(self.steps),
            "classes": json_safe(self.classes) if self.classes is not None else None,
            "feature_names": list(self.feature_names) if self.feature_names is not None else None,
            "n_features": self.n_features,
            "hyperparameters": json_safe(self.hyperparameters),
            "has_predict_proba": bool(self.has_predict_proba),
            "has_decision_function": bool(self.has_decision_function),
            "input_schema": [f.to_dict() for f in self.input_schema],
            "parameters": self.parameters,
        }


# ---------------------------------------------------------------------------
# JSON-safe conversion
# ---------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------
# Structure helpers
# ---------------------------------------------------------------------------


def final_estimator(est: Any) -> Any:
    """Look through Pipelines (and skip 'passthrough' last steps)."""
    from sklearn.pipeline import Pipeline

    for _ in range(_MAX_STEP_DEPTH):
        if not isinstance(est, Pipeline):
            return est
        steps = [s for _, s in est.steps if s is not None and s != "passthrough"]
        if not steps:
            return est
        est = steps[-1]
    return est


def _kind(est: Any) -> Kind:
    from sklearn import base

    is_clusterer = getattr(base, "is_clusterer", None)
    for candidate in (est, final_estimator(est)):
        try:
            if base.is_classifier(candidate):
                return "classifier"
            if base.is_regressor(candidate):
                return "regressor"
            if (is_clusterer is not None and is_clusterer(candidate)) or isinstance(
                candidate, base.ClusterMixin
            ):
                return "clusterer"
        except Exception:
            continue
    return "other"


def _feature_names(est: Any) -> list[str] | None:
    try:
        names = getattr(est, "feature_names_in_", None)
    except Exception:
        return None
    if names is None:
        return None
    try:
        return [str(n) for n in list(names)[:100_000]]
    except Exception:
        return None


def _n_features(est: Any) -> int | None:
    try:
        n = getattr(est, "n_features_in_", None)
    except Exception:
        return None
    if isinstance(n, (int, np.integer)) and not isinstance(n, bool):
        return int(n)
    return None


def _safe_hasattr(obj: Any, name: str) -> bool:
    try:
        return hasattr(obj, name)
    except Exception:
        return False


def _column_names(ct: Any, name: str, columns: Any) -> list[Any]:
    """The input columns a ColumnTransformer entry consumes, as names if known."""
    feature_names = _feature_names(ct)
    mapping = getattr(ct, "_transformer_to_input_indices", None)
    indices = mapping.get(name) if isinstance(mapping, dict) else None
    if indices is None:
        # Unfitted: report the column specification as given.
        if callable(columns):
            return [_callable_name(columns)]
        if isinstance(columns, (str, int, np.integer)):
            columns = [columns]
        if isinstance(columns, slice):
            return [_repr.repr(columns)]
        arr = np.asarray(columns)
        indices = np.flatnonzero(arr).tolist() if arr.dtype == bool else None
        if indices is None:
            return [json_safe(c) for c in list(columns)[:100_000]]
    out: list[Any] = []
    for i in np.asarray(indices, dtype=np.int64).tolist()[:100_000]:
        if feature_names is not None and 0 <= i < len(feature_names):
            out.append(feature_names[i])
        else:
            out.append(i)
    return out


def _describe_steps(est: Any, depth: int = 0) -> list[dict[str, Any]]:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if depth >= _MAX_STEP_DEPTH:
        return []
    out: list[dict[str, Any]] = []
    if isinstance(est, Pipeline):
        entries = [(name, step, None) for name, step in est.steps]
    elif isinstance(est, FeatureUnion):
        entries = [(name, step, None) for name, step in est.transformer_list]
    elif isinstance(est, ColumnTransformer):
        fitted = getattr(est, "transformers_", None)
        entries = [
            (name, trans, cols)
            for name, trans, cols in (fitted if fitted is not None else est.transformers)
        ]
    else:
        return out
    for name, step, cols in entries:
        if isinstance(step, str) or step is None:
            cls = str(step)  # "passthrough" / "drop"
        else:
            cls = qualified_name(type(step))
        item: dict[str, Any] = {"name": str(name), "class": cls}
        if isinstance(est, ColumnTransformer):
            item["columns"] = _column_names(est, name, cols)
        children = _describe_steps(step, depth + 1) if not isinstance(step, str) else []
        if children:
            item["steps"] = children
        out.append(item)
    return out


def _classes(est: Any) -> list[Any] | None:
    try:
        classes = getattr(est, "classes_", None)
    except Exception:
        return None
    if classes is None:
        return None
    safe = json_safe(list(classes) if not isinstance(classes, list) else classes)
    return safe if isinstance(safe, list) else None


def _hyperparameters(est: Any) -> dict[str, Any]:
    try:
        params = est.get_params(deep=False)
    except Exception:
        return {}
    return {str(k): json_safe(v) for k, v in params.items()}


_MAX_PARAMETERS = 2000


def _parameters(est: Any) -> list[dict[str, Any]]:
    """Every hyperparameter of ``est`` and of its nested steps, by scikit-learn's double-underscore
    name (``clf__C``, ``prep__num__imputer__strategy``), in ``get_params(deep=True)`` order: per
    entry its ``step`` (the name's prefix, "" for the root) and that step's ``class``, the ``value``,
    the class's ``default`` and whether the value ``changed`` from it (None when the default is
    unknown). Steps themselves and lists of steps are left out: ``steps`` describes them."""
    import inspect

    try:
        params = est.get_params(deep=True)
    except Exception:
        return []
    owners: dict[str, Any] = {"": est}
    signatures: dict[int, Any] = {}
    out: list[dict[str, Any]] = []
    for key, value in params.items():
        if len(out) >= _MAX_PARAMETERS:
            break
        key = str(key)
        if _is_estimator(value):
            owners[key] = value
            continue
        if isinstance(value, (list, tuple)) and any(
                _is_estimator(v) or (isinstance(v, tuple) and any(_is_estimator(w) for w in v))
                for v in value[:_MAX_ITEMS]):
            continue  # Pipeline.steps, ColumnTransformer.transformers, VotingClassifier.estimators
        step, _, name = key.rpartition("__")
        owner = owners.get(step)
        if owner is None:
            continue
        if id(owner) not in signatures:
            try:
                signatures[id(owner)] = inspect.signature(type(owner).__init__).parameters
            except (TypeError, ValueError):
                signatures[id(owner)] = {}
        declared = signatures[id(owner)].get(name)
        if declared is None and signatures[id(owner)]:
            continue  # a step set to "passthrough" or "drop", not a parameter of the class
        default = declared.default if declared is not None else inspect.Parameter.empty
        shown = json_safe(value)
        known = default is not inspect.Parameter.empty
        shown_default = json_safe(default) if known else None
        out.append({"name": key, "step": step, "class": qualified_name(type(owner)), "value": shown,
                    "default": shown_default, "changed": shown != shown_default if known else None})
    return out


# ---------------------------------------------------------------------------
# Input schema
# ---------------------------------------------------------------------------


def _first_finite(values: Any) -> Any:
    for v in values:
        s = _scalar(v)
        if s is not _MISSING and s is not None:
            return s
    return None


def _imputers() -> tuple[type, ...]:
    from sklearn import impute

    found = [impute.SimpleImputer, impute.KNNImputer]
    try:  # experimental: importable once a model that uses it was loaded
        iterative = getattr(impute, "IterativeImputer", None)
    except ImportError:
        iterative = None
    if iterative is not None:
        found.append(iterative)
    return tuple(found)


def _steps_of(trans: Any) -> list[Any]:
    from sklearn.pipeline import Pipeline

    if isinstance(trans, Pipeline):
        return [s for _, s in trans.steps if s is not None and s != "passthrough"]
    return [trans]


def _imputes(trans: Any) -> bool:
    """True when the first step of ``trans`` fills in missing values (an imputer)."""
    steps = _steps_of(trans)
    return bool(steps) and isinstance(steps[0], _imputers())


def _unknown_policy(encoder: Any) -> str | None:
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    policy = getattr(encoder, "handle_unknown", None)
    if isinstance(encoder, OneHotEncoder):
        return "error" if policy == "error" else "ignore"
    if isinstance(encoder, OrdinalEncoder):
        return "error" if policy == "error" else "ignore"
    return None


def _encoder_info(trans: Any):
    """(categories_, imputer, encoder) of the encoder a CT entry applies, or None.

    Looks through a Pipeline (e.g. SimpleImputer -> OneHotEncoder) as long as
    the steps before the encoder keep one output column per input column.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    imputer = None
    for step in _steps_of(trans):
        if isinstance(step, (OneHotEncoder, OrdinalEncoder)):
            cats = getattr(step, "categories_", None)
            if cats is None:
                return None
            return cats, imputer, step
        if isinstance(step, SimpleImputer) and not getattr(step, "add_indicator", False):
            imputer = step
            continue
        return None
    return None


def _numeric_defaults(trans: Any) -> Any:
    """Per-column typical values from a scaler/imputer, as an array or None."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import StandardScaler

    for step in _steps_of(trans):
        if isinstance(step, SimpleImputer) and getattr(step, "statistics_", None) is not None:
            return np.asarray(step.statistics_)
        if isinstance(step, StandardScaler) and getattr(step, "mean_", None) is not None:
            return np.asarray(step.mean_)
    return None


def _categories_list(cats: Any) -> list[Any]:
    values = list(np.asarray(cats, dtype=object).tolist())[:_MAX_CATEGORIES]
    return [json_safe(v) for v in values]


def _chain(est: Any) -> list[Any]:
    """The steps input goes through, in order: nested Pipelines flattened, passthrough dropped."""
    from sklearn.pipeline import Pipeline

    out: list[Any] = []

    def walk(node: Any, depth: int) -> None:
        if depth >= _MAX_STEP_DEPTH:
            return
        if isinstance(node, Pipeline):
            for _, step in node.steps:
                if step is not None and step != "passthrough":
                    walk(step, depth + 1)
        else:
            out.append(node)

    walk(est, 0)
    return out


def _column_selector(step: Any) -> Any:
    """The ColumnTransformer a step applies to its input: itself, or HistGradientBoosting's
    internal one for its categorical features; None otherwise."""
    from sklearn.compose import ColumnTransformer

    if isinstance(step, ColumnTransformer):
        return step
    pre = getattr(step, "_preprocessor", None)
    return pre if isinstance(pre, ColumnTransformer) else None


def input_names(est: Any) -> list[str] | None:
    """The model's input column names: its own ``feature_names_in_``, else those of the first
    step that knows them (a custom first step fitted without names does not hide the
    ColumnTransformer behind it)."""
    names = _feature_names(est)
    if names is not None:
        return names
    for step in _chain(est):
        names = _feature_names(step)
        if names is not None:
            return names
    return None


def _apply_selector(ct: Any, specs: dict[str, FeatureSpec]) -> None:
    """Kinds, categories, defaults and missing-value handling from a fitted ColumnTransformer."""
    entries = getattr(ct, "transformers_", None) or []
    for name, trans, cols in entries:
        if isinstance(trans, str):
            continue
        col_names = [c for c in _column_names(ct, name, cols) if c in specs]
        imputes = _imputes(trans)
        info = _encoder_info(trans)
        if info is not None:
            cats, imputer, encoder = info
            if len(cats) != len(col_names):
                continue
            stats = getattr(imputer, "statistics_", None) if imputer is not None else None
            for i, col in enumerate(col_names):
                categories = _categories_list(cats[i])
                default = None
                if stats is not None and i < len(stats):
                    default = json_safe(stats[i])
                if default is None:
                    default = _first_finite(categories)
                specs[col] = FeatureSpec(
                    name=col, kind="categorical", categories=categories, default=default,
                    unknown=_unknown_policy(encoder) if len(cats[i]) <= _MAX_CATEGORIES else None,
                    missing="impute" if imputes else None,
                )
            continue
        defaults = _numeric_defaults(trans)
        for i, col in enumerate(col_names):
            if imputes:
                specs[col].missing = "impute"
            if defaults is not None and len(defaults) == len(col_names) and specs[col].kind == "numeric":
                specs[col].default = json_safe(defaults[i])


def _input_schema(est: Any) -> list[FeatureSpec]:
    names = input_names(est)
    n = _n_features(est)
    if names is None:
        if n is None:
            for step in _chain(est):
                n = _n_features(step)
                if n is not None:
                    break
        if n is None:
            return []
        names = [f"x{i}" for i in range(n)]
    specs = {name: FeatureSpec(name=name, kind="numeric") for name in names}

    # The step that sees the raw input is the first of the chain; when it is a custom step the
    # columns' kinds come from the first ColumnTransformer behind it (the columns it selects by
    # name are the input's, passed through).
    chain = _chain(est) or [est]
    head = chain[0]
    selector = _column_selector(head)
    if selector is None:
        selector = next((s for s in map(_column_selector, chain[1:]) if s is not None), None)
        if selector is not None and _is_library_step(head):
            selector = None  # a library transformer in front changes the columns: not the input's
    if selector is not None:
        _apply_selector(selector, specs)
        return [specs[name] for name in names]
    info = _encoder_info(head)
    if info is not None and len(info[0]) == len(names):
        cats, _, encoder = info
        for i, col in enumerate(names):
            categories = _categories_list(cats[i])
            specs[col] = FeatureSpec(name=col, kind="categorical", categories=categories,
                                     default=_first_finite(categories),
                                     unknown=_unknown_policy(encoder) if len(cats[i]) <= _MAX_CATEGORIES else None)
    else:
        defaults = _numeric_defaults(head)
        imputes = isinstance(head, _imputers())
        for i, col in enumerate(names):
            if defaults is not None and len(defaults) == len(names):
                specs[col].default = json_safe(defaults[i])
            if imputes:
                specs[col].missing = "impute"
    return [specs[name] for name in names]


def _is_library_step(step: Any) -> bool:
    module = (getattr(type(step), "__module__", "") or "").split(".")[0]
    return module in ("sklearn", "imblearn", "lightgbm", "xgboost")


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def describe_model(estimator: Any) -> ModelInfo:
    """Summarise a fitted estimator (see module docstring).

    Attribute reads on deprecated estimators may emit warnings; they are not
    the caller's concern and are silenced here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _describe(estimator)


def _describe(estimator: Any) -> ModelInfo:
    schema = _input_schema(estimator)
    n_features = _n_features(estimator)
    if n_features is None and schema:
        n_features = len(schema)
    return ModelInfo(
        kind=_kind(estimator),
        estimator_class=qualified_name(type(estimator)),
        steps=_describe_steps(estimator),
        classes=_classes(estimator),
        feature_names=input_names(estimator),
        n_features=n_features,
        hyperparameters=_hyperparameters(estimator),
        parameters=_parameters(estimator),
        has_predict_proba=_safe_hasattr(estimator, "predict_proba"),
        has_decision_function=_safe_hasattr(estimator, "decision_function"),
        input_schema=schema,
    )
