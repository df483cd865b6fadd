"""Why a model gave this prediction: each input column's contribution, mapped back through the
model's preprocessing, plus a baseline, adding up to the model's raw output.

``Explainer(model, background, ...)`` is built once per model and background (a model host keeps
it) and chooses the method: exact for a linear final estimator, TreeSHAP for a tree ensemble,
both only when its preprocessing maps each feature to one input column (``groups``); otherwise
the bounded model-agnostic sampling (``methods.Sampling``), which says why. Contributions
describe the model's arithmetic, not causes in the world.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from . import groups
from ..payload import PayloadError
from .methods import Budget, Linear, NotApplicable, Sampling, Tree

__all__ = ["Background", "Budget", "Explained", "Explainer", "NOTE", "describe_output", "explainer_for", "from_wire", "to_wire"]

NOTE = ("Contributions describe how the model arrived at its output, not causes in the world: changing "
        "a column in reality may not change the outcome the way its contribution suggests.")
TRACED_ROWS = 16  # rows of one call whose untraced features are traced
TREE_MODULES = ("sklearn.ensemble", "sklearn.tree", "lightgbm", "xgboost")


@dataclass(frozen=True)
class Background:
    """Rows the contributions are measured from, prepared as a request's input is, under a key
    that changes when they do."""

    key: str
    X: Any


@dataclass
class Explained:
    values: np.ndarray   # (rows, columns): each input column's contribution to the explained output
    other: np.ndarray    # (rows,): features the probe could not trace to one column
    base: np.ndarray     # (rows,): the baseline; base + values + other == output
    output: np.ndarray   # (rows,): the model's raw output explained
    classes: np.ndarray  # (rows,): the explained class's index; -1 for a regressor
    method: str          # "linear", "tree" or "sampling"
    output_kind: str     # "log-odds", "probability", "value", "decision score", "class score"
    reason: str | None = None  # why sampling, when it is
    sampling: dict[str, Any] = field(default_factory=dict)  # its budget and what it used


def describe_output(kind: str, class_label: Any = None) -> str:
    """A sentence part naming what the contributions add up to."""
    if class_label is None:
        return {"value": "the predicted value"}.get(kind, kind)
    return f"the {kind} of class {class_label!r}"


class Explainer:
    def __init__(self, model: Any, background: Any, *, columns: Sequence[str], classifier: bool, n_classes: int,
                 has_proba: bool, categories: dict[str, list[Any]] | None = None, budget: Budget | None = None,
                 seed: int = 0):
        if len(background) < 1:
            raise ValueError("an explainer needs at least one background row")
        self.model, self.background, self.columns = model, background, list(columns)
        self.classifier, self.n_classes, self.has_proba = classifier, n_classes, has_proba
        self.budget, self.seed = budget or Budget(), seed
        self.head, final = groups.split(model)
        self.fast_head = _fast_head(self.head)
        self.reason: str | None = None
        self.owner: np.ndarray | None = None
        self.exact: Linear | Tree | None = None
        self.sampling: Sampling | None = None
        self.categories = {i: list(categories[name]) for i, name in enumerate(self.columns)
                           if categories and name in categories}
        try:
            self.exact, self.method, self.output_kind = self._exact(final, self.categories)
        except (NotApplicable, groups.NotSeparable) as exc:
            self.reason = str(exc)
            self.sampling = self._sampler(self.reason)
            self.method, self.output_kind = "sampling", self.sampling.output

    def _exact(self, final: Any, categories: dict[int, list[Any]]):
        module = type(final).__module__
        tree = module.startswith(TREE_MODULES) and not hasattr(final, "coef_")
        if not tree and getattr(final, "coef_", None) is None:
            raise NotApplicable(f"{type(final).__name__} is neither a linear model nor a tree ensemble")
        Z = self._features(self.background)
        self.owner = groups.owners(self.head, self.background, categories) if self.head \
            else np.arange(self.background.shape[1])
        if tree:
            return Tree(final, Z, self.classifier, self.n_classes), "tree", _kind(Tree, final, self.classifier)
        return Linear(final, Z, self.classifier, self.n_classes), "linear", _kind(Linear, final, self.classifier,
                                                                                  self.n_classes, self.has_proba)

    def _features(self, X: Any) -> Any:
        """What the final estimator takes: the input itself when there is no preprocessing (a
        frame keeps its names and types: LightGBM reads its categorical columns), else numbers:
        through ``core.head_path`` when it reproduces the preprocessing (a ColumnTransformer on a
        row costs scikit-learn some 5 ms), else through scikit-learn."""
        if not self.head:
            return X
        if self.fast_head is not None and isinstance(X, pd.DataFrame):
            numbers = self.fast_head.transform(X)
            if numbers is not None:
                return numbers
        numbers = groups.dense(groups.transform(self.head, X))
        if numbers is None:
            raise NotApplicable("its preprocessing gives values that are not numbers")
        return numbers

    def _trace(self, X: Any, Z: Any, values: np.ndarray) -> None:
        """Features the background's probe never moved (a category no background row has) are
        traced on the first rows that use them, and remembered."""
        assert self.owner is not None
        untraced = self.owner < 0
        if not untraced.any():
            return
        for i in np.flatnonzero((values[:, untraced] != 0).any(axis=1))[:TRACED_ROWS]:
            row = X.iloc[[i]] if isinstance(X, pd.DataFrame) else X[[i]]
            before = np.asarray(Z[[i]], dtype=np.float64)
            self.owner = groups.trace(self.head, row, before, self.background, self.categories, self.owner)
            if not (self.owner < 0).any():
                return

    def _sampler(self, reason: str) -> Sampling:
        """The model-agnostic way, and why; a model it cannot explain either is a clear refusal."""
        try:
            sampler = Sampling(self.model, self.background, self.classifier, self.n_classes, self.has_proba,
                               self.budget, self.seed)
        except NotApplicable as exc:
            raise PayloadError(f"This model's predictions cannot be explained: {exc}.", "CANNOT_EXPLAIN", 422) from None
        sampler.reason = reason
        return sampler

    def explain(self, X: Any, budget: Budget | None = None) -> Explained:
        if budget is not None:
            self.budget = budget
            if self.sampling is not None:
                self.sampling.budget = budget
        sampler = self.sampling
        if self.exact is not None:
            try:
                Z = self._features(X)
                per = self.exact.explain(Z)
                self._trace(X, Z, per.values)
            except (NotApplicable, groups.NotSeparable) as exc:  # this request only (e.g. not additive for a row)
                sampler = self._sampler(str(exc))
            else:
                columns = np.zeros((len(per.values), len(self.columns)))
                traced = self.owner >= 0
                np.add.at(columns.T, self.owner[traced], per.values[:, traced].T)
                other = per.values[:, ~traced].sum(axis=1)
                return Explained(columns, other, per.base, per.output, per.classes, self.method, self.output_kind)
        try:
            per = sampler.explain(X)
        except NotApplicable as exc:
            raise PayloadError(f"This model's predictions cannot be explained: {exc}.", "CANNOT_EXPLAIN", 422) from None
        return Explained(per.values, np.zeros(len(per.values)), per.base, per.output, per.classes, "sampling",
                         sampler.output, sampler.reason, dict(sampler.used))


def _fast_head(head: list[Any]) -> Any:
    """``core.head_path``'s numpy path of the preprocessing, when it reproduces it exactly."""
    if not head:
        return None
    from sklearn.pipeline import Pipeline

    from ..head_path import HeadPath

    try:
        return HeadPath.build(Pipeline([(f"step{i}", step) for i, step in enumerate(head)]))
    except Exception:  # noqa: BLE001  (scikit-learn transforms)
        return None


def _kind(method: type, final: Any, classifier: bool, n_classes: int = 2, has_proba: bool = False) -> str:
    if method is Tree:
        from .methods import raw_output

        return raw_output(final, classifier)[1]
    if not classifier:
        return "value"
    if not has_proba:
        return "decision score"
    return "log-odds" if n_classes == 2 else "class score"


def columns_of(predictor: Any, X: Any) -> list[str]:
    """The names of the input columns the contributions belong to."""
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    if predictor.feature_names is not None and len(predictor.feature_names) == X.shape[1]:
        return [str(c) for c in predictor.feature_names]
    return [f"x{i}" for i in range(X.shape[1])]


def explainer_for(predictor: Any, background: Any, budget: Budget | None = None) -> Explainer:
    """The explainer of a ``core.predictor.Predictor``'s model over ``background`` (prepared as a
    request's input is: an array, or a frame)."""
    fast = isinstance(background, np.ndarray) and predictor.fast is not None
    categories = {f["name"]: f["categories"] for f in predictor.info.get("input_schema") or []
                  if isinstance(f, dict) and f.get("categories")}
    return Explainer(predictor.fast if fast else predictor.estimator, background,
                     columns=columns_of(predictor, background),
                     classifier=predictor.info.get("kind") == "classifier" and predictor.classes is not None,
                     n_classes=len(predictor.classes or ()), has_proba=predictor.has_proba,
                     categories=categories, budget=budget)


# --- on the wire: one float64 matrix (values, other, base, output, class) and a small JSON object

def to_wire(explained: Explained) -> tuple[np.ndarray, dict[str, Any]]:
    array = np.column_stack([explained.values, explained.other, explained.base, explained.output,
                             explained.classes.astype(np.float64)])
    meta = {"method": explained.method, "output_kind": explained.output_kind, "reason": explained.reason,
            "sampling": explained.sampling}
    return np.ascontiguousarray(array, dtype=np.float64), meta


METHODS = ("linear", "tree", "sampling")
OUTPUT_KINDS = ("log-odds", "probability", "value", "decision score", "class score")


def from_wire(array: np.ndarray, meta: dict[str, Any], n_rows: int, n_columns: int, n_classes: int) -> Explained:
    """Raises ValueError when the matrix or the object is not what ``to_wire`` makes."""
    if array.dtype != np.float64 or array.shape != (n_rows, n_columns + 4):
        raise ValueError("the explanation's table has the wrong shape")
    classes = array[:, -1]
    if not np.isfinite(array).all() or not np.array_equal(classes, np.round(classes)) \
            or (len(classes) and (classes.min() < -1 or classes.max() >= max(n_classes, 1))):
        raise ValueError("the explanation holds values that are not finite or classes that are not the model's")
    if meta.get("method") not in METHODS or meta.get("output_kind") not in OUTPUT_KINDS:
        raise ValueError("the explanation names an unknown method")
    reason, sampling = meta.get("reason"), meta.get("sampling") or {}
    if not (reason is None or isinstance(reason, str)) or not isinstance(sampling, dict) or \
            not all(isinstance(v, (int, float)) for v in sampling.values()):
        raise ValueError("the explanation's description is malformed")
    return Explained(array[:, :n_columns], array[:, n_columns], array[:, n_columns + 1], array[:, n_columns + 2],
                     classes.astype(np.int64), meta["method"], meta["output_kind"],
                     reason[:500] if reason else None, {str(k)[:64]: v for k, v in list(sampling.items())[:16]})
