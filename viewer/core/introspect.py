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
import warnings
from typing import Any, Literal

from .jsonsafe import _MAX_ITEMS, _is_estimator, json_safe, qualified_name
from .schema import _MAX_STEP_DEPTH, FeatureSpec, _column_names, _input_schema, _n_features, input_names

__all__ = ["FeatureSpec", "ModelInfo", "describe_model", "json_safe"]

Kind = Literal["classifier", "regressor", "clusterer", "other"]


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


def _safe_hasattr(obj: Any, name: str) -> bool:
    try:
        return hasattr(obj, name)
    except Exception:
        return False


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
