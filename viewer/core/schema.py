"""The input schema of a fitted estimator: the columns it takes (``input_names``) and, per column,
its kind, categories, typical value and how the model takes unknown categories and missing values
(``FeatureSpec``), read from its ColumnTransformer, encoders, imputers and scalers without calling
``fit``/``predict``. ``introspect.describe_model`` reports it as ``input_schema``.

This module only imports the standard library, numpy and scikit-learn.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import numpy as np

from .jsonsafe import _MISSING, _callable_name, _repr, _scalar, json_safe

_MAX_CATEGORIES = 1000
_MAX_STEP_DEPTH = 10


@dataclasses.dataclass
class FeatureSpec:
    """One input column the model expects."""

    name: str
    # "unused": the model's ColumnTransformer drops the column (``remainder="drop"`` or a "drop"
    # entry), so its values are never read: any value or none may be sent.
    kind: Literal["numeric", "categorical", "unused"]
    categories: list[Any] | None = None
    default: Any = None
    # How the model takes a value outside ``categories``: "error" (its encoder refuses it) or
    # "ignore" (encoded as all zeros / a reserved code); None when not known.
    unknown: Literal["error", "ignore"] | None = None
    # "impute": a missing value is filled in by an imputer step; None: not known to be.
    missing: Literal["impute"] | None = None
    # "none": the encoder learnt None as the missing category (fitted on Python objects), so a
    # missing value is given to it as None; otherwise as NaN, as pandas reads one.
    missing_value: Literal["none"] | None = None

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
        if self.missing_value is not None:
            out["missing_value"] = self.missing_value
        return out


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


def _missing_value(cats: Any) -> Literal["none"] | None:
    """"none" when the learnt categories hold None (and no NaN) as the missing one."""
    values = np.asarray(cats, dtype=object).tolist()
    has_nan = any(isinstance(v, float) and v != v for v in values)
    return "none" if not has_nan and any(v is None for v in values) else None


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


def _apply_selector(ct: Any, specs: dict[str, FeatureSpec], *, is_input: bool = False) -> None:
    """Kinds, categories, defaults and missing-value handling from a fitted ColumnTransformer.
    ``is_input``: the transformer is the first step (it sees the raw input), so a column none of
    its entries takes is not used by the model at all."""
    entries = getattr(ct, "transformers_", None) or []
    if is_input and entries and _feature_names(ct) is not None:
        used = {c for name, trans, cols in entries if not (isinstance(trans, str) and trans == "drop")
                for c in _column_names(ct, name, cols)}
        for col, spec in specs.items():
            if col not in used:
                spec.kind = "unused"
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
                    missing="impute" if imputes else None, missing_value=_missing_value(cats[i]),
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
        _apply_selector(selector, specs, is_input=selector is head)
        return [specs[name] for name in names]
    info = _encoder_info(head)
    if info is not None and len(info[0]) == len(names):
        cats, _, encoder = info
        for i, col in enumerate(names):
            categories = _categories_list(cats[i])
            specs[col] = FeatureSpec(name=col, kind="categorical", categories=categories,
                                     default=_first_finite(categories),
                                     unknown=_unknown_policy(encoder) if len(cats[i]) <= _MAX_CATEGORIES else None,
                                     missing_value=_missing_value(cats[i]))
    else:
        defaults = _numeric_defaults(head)
        imputes = isinstance(head, _imputers())
        for i, col in enumerate(names):
            if defaults is not None and len(defaults) == len(names):
                specs[col].default = json_safe(defaults[i])
            if imputes:
                specs[col].missing = "impute"
    return [specs[name] for name in names]


def unused_columns(info: dict[str, Any]) -> set[str]:
    """The named inputs a described model never reads (kind "unused" in its input schema)."""
    return {str(f["name"]) for f in info.get("input_schema") or []
            if isinstance(f, dict) and f.get("kind") == "unused" and f.get("name") is not None}


def needed_columns(info: dict[str, Any]) -> list[str] | None:
    """The named inputs a described model reads, in its order (None when it names none): the
    columns a request or a dataset must have; the unused ones may be left out."""
    names = info.get("feature_names")
    if not names:
        return None
    unused = unused_columns(info)
    return [str(n) for n in names if str(n) not in unused]


def _is_library_step(step: Any) -> bool:
    module = (getattr(type(step), "__module__", "") or "").split(".")[0]
    return module in ("sklearn", "imblearn", "lightgbm", "xgboost")
