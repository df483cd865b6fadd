"""Permutation feature importance of a model on a labelled dataset (framework-free).

How much does the model's score drop when one input column is shuffled? scikit-learn's
``sklearn.inspection.permutation_importance`` answers that; this module feeds it a bounded sample of
a stored dataset, chooses the scoring from the task, reports progress per feature and can be
cancelled between features.

Sampling (datasets can hold 10M rows)
-------------------------------------
``sample_labelled`` draws a uniform random sample, without replacement, of at most ``max_rows``
rows *among the rows that have a target*, with a fixed seed, in two streaming passes over the
Parquet row groups: pass 1 reads only the target column and counts the labelled rows of each group;
the seed then picks ``k`` ranks among all labelled rows; pass 2 reads only the row groups that hold
a chosen row (only the columns the model needs, plus the target) and keeps those rows. Memory is one
row group plus the sample; the sample keeps the dataset's row order.

Scoring (higher is better, so importance = baseline score - permuted score)
---------------------------------------------------------------------------
- binary classifier with ``predict_proba``: ``roc_auc`` (threshold-free, ignores calibration);
- multiclass classifier with ``predict_proba``: ``neg_log_loss``, with the model's classes as labels
  (a sample that lacks a rare class still scores);
- classifier without probabilities: ``accuracy``;
- regressor: ``r2`` (unit-free, comparable between datasets).
``SCORINGS`` lists the others a caller may choose instead.

The importances are exactly scikit-learn's: the sample and ``random_state=seed`` go straight to
``permutation_importance`` (with ``n_jobs=1``: the worker process does its maths on one thread).
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .datasets import PARQUET_READ_BUFFER, DatasetError, to_frame
from .payload import PayloadError
from .predictor import InputSchema, _scrub
from .scoring import features

__all__ = ["Cancelled", "DEFAULT_MAX_ROWS", "DEFAULT_REPEATS", "MIN_ROWS", "SCORINGS", "Sample",
           "default_scoring", "feature_names", "permutation_importance", "sample_labelled"]

DEFAULT_MAX_ROWS = 20_000
DEFAULT_REPEATS = 5
MIN_ROWS = 10            # fewer labelled rows than this make every importance noise
MAX_SAMPLE_ROWS = 1_000_000
MAX_REPEATS = 100

# name -> (label for people, task, needs predict_proba)
SCORINGS: dict[str, tuple[str, str, bool]] = {
    "accuracy": ("accuracy", "classifier", False),
    "balanced_accuracy": ("balanced accuracy", "classifier", False),
    "roc_auc": ("ROC AUC", "classifier", True),
    "neg_log_loss": ("log loss", "classifier", True),
    "r2": ("R²", "regressor", False),
    "neg_mean_absolute_error": ("mean absolute error", "regressor", False),
    "neg_root_mean_squared_error": ("root mean squared error", "regressor", False),
}


class Cancelled(Exception):
    """Raised between features when ``cancelled()`` says so."""


def default_scoring(kind: str | None, classes: list[Any] | None, has_proba: bool) -> str:
    if kind == "regressor":
        return "r2"
    if kind == "classifier":
        if has_proba and classes is not None and len(classes) == 2:
            return "roc_auc"
        if has_proba and classes is not None and len(classes) > 2:
            return "neg_log_loss"
        return "accuracy"
    raise PayloadError(f"Permutation importance needs a classifier or a regressor; this model is a {kind or 'model'} "
                       "of unknown kind.", "UNSUPPORTED_MODEL")


def check_scoring(scoring: str, kind: str | None, classes: list[Any] | None, has_proba: bool) -> None:
    """Raise PayloadError unless ``scoring`` fits the model."""
    if scoring not in SCORINGS:
        raise PayloadError(f"Unknown scoring; choose one of {', '.join(SCORINGS)}.", "BAD_SCORING")
    label, task, needs_proba = SCORINGS[scoring]
    if task != kind:
        raise PayloadError(f"{scoring} scores a {task}; this model is a {kind}.", "BAD_SCORING")
    if needs_proba and not has_proba:
        raise PayloadError(f"{scoring} needs probabilities and this model has no predict_proba.", "BAD_SCORING")
    if scoring == "roc_auc" and (classes is None or len(classes) != 2):
        raise PayloadError("roc_auc is for binary classifiers; this model has "
                           f"{len(classes) if classes is not None else 'unknown'} classes (use neg_log_loss "
                           "or accuracy).", "BAD_SCORING")


def feature_names(predictor: InputSchema, columns: list[str], target: str) -> list[str]:
    """The names of the model's input columns, in the order ``features`` gives them."""
    if predictor.feature_names is not None:
        return [str(n) for n in predictor.feature_names]
    return [c for c in columns if c != target]


# --- sampling ------------------------------------------------------------------------------------

class Sample:
    """A labelled sample: ``frame`` (the model's columns and the target, in dataset order),
    ``rows`` (their row numbers in the dataset), and the counts it was drawn from."""

    def __init__(self, frame: pd.DataFrame, rows: np.ndarray, n_rows: int, n_labelled: int):
        self.frame, self.rows, self.n_rows, self.n_labelled = frame, rows, n_rows, n_labelled

    @property
    def exact(self) -> bool:
        """True when every labelled row is in the sample."""
        return len(self.rows) == self.n_labelled


def _labelled(column: pa.ChunkedArray, numeric_target: bool) -> np.ndarray:
    """Which rows have a target: not null, not NaN (and finite, when the target must be a number)."""
    valid = pc.is_valid(column)
    if pa.types.is_floating(column.type):
        valid = pc.and_(valid, pc.is_finite(column) if numeric_target else pc.invert(pc.is_nan(column)))
    return np.asarray(valid.to_numpy(zero_copy_only=False), dtype=bool)


def sample_labelled(path: str | os.PathLike[str], target: str, columns: list[str] | None, *,
                    max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0, numeric_target: bool = False) -> Sample:
    """A uniform random sample of at most ``max_rows`` rows that have a target (see the module
    docstring). ``columns``: what to read besides the target (None: every column)."""
    if max_rows < 1:
        raise ValueError("max_rows must be >= 1")
    with pq.ParquetFile(path, buffer_size=PARQUET_READ_BUFFER, pre_buffer=False) as pf:
        schema, meta = pf.schema_arrow, pf.metadata
        if schema.get_field_index(target) < 0:
            raise DatasetError(f"The dataset has no column {target[:100]!r}.")
        target_type = schema.field(target).type
        if numeric_target and not (pa.types.is_integer(target_type) or pa.types.is_floating(target_type)
                                   or pa.types.is_boolean(target_type)):
            raise DatasetError(f"The target {target[:100]!r} holds {target_type} values; a regressor needs numbers.")
        wanted = None if columns is None else list(dict.fromkeys([*columns, target]))
        missing = [c for c in wanted or () if schema.get_field_index(c) < 0]
        if missing:
            raise DatasetError("The dataset has no column" + ("s " if len(missing) > 1 else " ")
                               + ", ".join(repr(c[:100]) for c in missing[:5]) + ".")
        n_groups, n_rows = meta.num_row_groups, meta.num_rows
        counts = np.zeros(n_groups, dtype=np.int64)
        for i in range(n_groups):  # pass 1: the target column only
            counts[i] = int(_labelled(pf.read_row_group(i, columns=[target]).column(0), numeric_target).sum())
        n_labelled = int(counts.sum())
        if n_labelled < MIN_ROWS:
            raise DatasetError(f"Only {n_labelled} of {n_rows:,} rows have a value in {target[:100]!r}; "
                               f"permutation importance needs at least {MIN_ROWS}.")
        k = min(max_rows, n_labelled)
        rng = np.random.default_rng(seed)
        ranks = np.sort(rng.choice(n_labelled, size=k, replace=False)) if k < n_labelled \
            else np.arange(n_labelled, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(counts)])
        first_rows = np.concatenate([[0], np.cumsum([meta.row_group(i).num_rows for i in range(n_groups)])])
        tables, rows = [], []
        for i in range(n_groups):  # pass 2: only the groups that hold a chosen row
            lo, hi = np.searchsorted(ranks, [starts[i], starts[i + 1]])
            if lo == hi:
                continue
            table = pf.read_row_group(i, columns=wanted)
            positions = np.flatnonzero(_labelled(table.column(target), numeric_target))[ranks[lo:hi] - starts[i]]
            tables.append(table.take(pa.array(positions)))
            rows.append(first_rows[i] + positions)
            del table
    sample = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    return Sample(to_frame(sample), np.concatenate(rows), n_rows, n_labelled)


# --- the target ----------------------------------------------------------------------------------

def _class_target(values: pd.Series, classes: list[Any] | None, scoring: str) -> np.ndarray:
    """The target as the model's own class values (a CSV's 1.0 is the class 1), so a scorer
    compares like with like. Labels the model does not know are refused for probability
    scorings (their columns do not exist) and kept as they are for accuracy."""
    if classes is None:
        return values.to_numpy()
    classes_arr = np.asarray(classes)
    index = pd.Index(classes_arr, dtype=object)
    codes = index.get_indexer(pd.Index(values.to_numpy(dtype=object), dtype=object))
    unknown = codes < 0
    if not unknown.any():
        return classes_arr[codes]
    # Messages name the model's classes (model data), never the dataset's values.
    strange = list(dict.fromkeys(values[unknown].tolist()))
    known = ", ".join(repr(c)[:40] for c in classes_arr.tolist()[:10]) + (", …" if len(classes_arr) > 10 else "")
    what = f"{len(strange)} distinct target value{'s' if len(strange) != 1 else ''} ({int(unknown.sum()):,} rows)"
    if SCORINGS[scoring][2]:
        raise PayloadError(f"{what} are not classes of the model (its classes: {known}); {scoring} needs every "
                           "value to be one of them. Choose accuracy, or another target column.", "UNKNOWN_LABELS")
    kinds = {type(c) for c in classes_arr.tolist()}
    if not all(type(v) in kinds or (isinstance(v, (int, float)) and kinds <= {int, float}) for v in strange):
        raise PayloadError(f"{what} are not of the type of the model's classes ({known}); is this the right "
                           "target column?", "UNKNOWN_LABELS")
    out = values.to_numpy(dtype=object).copy()
    out[~unknown] = classes_arr[codes[~unknown]]
    return np.asarray(out.tolist())


def _target(sample: pd.Series, kind: str, classes: list[Any] | None, scoring: str) -> np.ndarray:
    if kind == "regressor":
        return sample.to_numpy(dtype=np.float64)
    y = _class_target(sample, classes, scoring)
    if scoring == "roc_auc" and len(np.unique(y)) < 2:
        raise PayloadError("Every sampled row has the same target value, so ROC AUC is not defined; "
                           "choose accuracy, or a sample with both classes.", "ONE_CLASS")
    return y


# --- the importance ------------------------------------------------------------------------------

def _scorer(name: str, classes: list[Any] | None):
    from sklearn.metrics import check_scoring as sk_check_scoring, log_loss, make_scorer

    if name == "neg_log_loss" and classes is not None:
        return make_scorer(log_loss, greater_is_better=False, response_method="predict_proba", labels=classes)
    return sk_check_scoring(None, scoring=name)


class _Progress:
    """Wraps the scorer: scikit-learn calls it once for the baseline, then ``n_repeats`` times per
    feature in column order (sequentially with ``n_jobs=1``), so every ``n_repeats`` calls one more
    feature is done; that is where progress is reported and cancellation checked."""

    def __init__(self, scorer, n_features: int, n_repeats: int, progress, cancelled):
        self.scorer, self.n_features, self.n_repeats = scorer, n_features, n_repeats
        self.progress, self.cancelled = progress, cancelled
        self.calls = 0
        self.baseline = math.nan

    def __call__(self, estimator, X, y, **kwargs) -> float:
        score = self.scorer(estimator, X, y, **kwargs)
        self.calls += 1
        if self.calls == 1:
            self.baseline = float(score)
        done, rest = divmod(self.calls - 1, self.n_repeats)
        if self.calls == 1 or rest == 0:
            if self.progress is not None:
                self.progress(done, self.n_features)
            if self.cancelled is not None and done < self.n_features and self.cancelled():
                raise Cancelled()
        return score


def _as_estimator(predictor: InputSchema):
    """An estimator for scikit-learn's scorers whose predictions are the predictor's: the
    model runs where the predictor runs it (a model host in the app), never here."""
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    classifier = predictor.info.get("kind") == "classifier"

    class Served(ClassifierMixin if classifier else RegressorMixin, BaseEstimator):
        def fit(self, X, y=None):  # noqa: ARG002  (never called: the model is fitted)
            return self

        def predict(self, X):
            return predictor.predict(X)

        def __sklearn_is_fitted__(self):  # scikit-learn's inspection tools check (partial_dependence)
            return True

    def predict_proba(self, X):  # named: scikit-learn's scorers look methods up by name
        return predictor.predict_proba(X)

    if predictor.has_proba:
        Served.predict_proba = predict_proba
    served = Served()
    if predictor.classes is not None:
        served.classes_ = np.asarray(predictor.classes)
    return served


def _finite(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def importance_of(predictor: InputSchema, frame: pd.DataFrame, target: str, *, n_repeats: int = DEFAULT_REPEATS,
                  seed: int = 0, scoring: str | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Permutation importance on an in-memory labelled frame (rows without a target must be gone).
    ``progress(features_done, n_features)`` is called after the baseline and after each feature;
    ``cancelled()`` is checked between features (``Cancelled`` is raised)."""
    from sklearn.inspection import permutation_importance as sk_permutation_importance

    kind = predictor.info.get("kind")
    classes = predictor.classes
    scoring = scoring or default_scoring(kind, classes, predictor.has_proba)
    check_scoring(scoring, kind, classes, predictor.has_proba)
    if not 1 <= n_repeats <= MAX_REPEATS:
        raise PayloadError(f"n_repeats must be between 1 and {MAX_REPEATS}.")
    if target not in frame.columns:
        raise PayloadError(f"The dataset has no column {target[:100]!r}.", "UNKNOWN_TARGET")
    if predictor.feature_names is not None and target in predictor.feature_set:
        raise PayloadError(f"{target[:100]!r} is one of the model's inputs, not a target.", "TARGET_IS_FEATURE")
    if len(frame) < MIN_ROWS:
        raise PayloadError(f"Permutation importance needs at least {MIN_ROWS} rows with a target; "
                           f"there are {len(frame)}.", "TOO_FEW_ROWS")
    X = features(predictor, frame, target)  # the schema check scoring jobs use
    y = _target(frame[target], kind, classes, scoring)
    names = feature_names(predictor, list(frame.columns), target)
    predictor.predict(X)  # input the model cannot take fails here, with the predict path's messages
    counting = _Progress(_scorer(scoring, classes), len(names), n_repeats, progress, cancelled)
    try:
        bunch = sk_permutation_importance(_as_estimator(predictor), X, y, scoring=counting, n_repeats=n_repeats,
                                          n_jobs=1, random_state=seed)
    except PayloadError:
        raise
    except (ValueError, TypeError) as exc:
        raise PayloadError("The model could not be scored on this data: " + _scrub(str(exc)),
                           "INVALID_INPUT") from None
    order = np.argsort(-bunch.importances_mean, kind="stable")
    label = SCORINGS[scoring][0]
    return {
        "scoring": scoring,
        "scoring_label": label,
        "greater_is_better": True,  # scikit-learn's convention: neg_* scorings are negated losses
        "baseline": _finite(counting.baseline),
        "n_repeats": n_repeats,
        "seed": seed,
        "n_sample": int(len(frame)),
        "n_features": len(names),
        "features": [{"name": names[i], "mean": _finite(bunch.importances_mean[i]),
                      "std": _finite(bunch.importances_std[i]),
                      "values": [_finite(v) for v in bunch.importances[i]]} for i in order],
    }


def permutation_importance(predictor: InputSchema, path: str | os.PathLike[str], target: str, *,
                           n_repeats: int = DEFAULT_REPEATS, max_rows: int = DEFAULT_MAX_ROWS, seed: int = 0,
                           scoring: str | None = None,
                           progress: Callable[[int, int], None] | None = None,
                           cancelled: Callable[[], bool] | None = None,
                           on_sample: Callable[[Sample], None] | None = None) -> dict[str, Any]:
    """Permutation importance of ``predictor`` on a stored dataset (Parquet, as ingested): sample,
    check, compute. Every problem with the data or the model raises PayloadError / DatasetError
    with a message for people. ``on_sample(sample)`` is called once the sample is drawn."""
    kind = predictor.info.get("kind")
    scoring = scoring or default_scoring(kind, predictor.classes, predictor.has_proba)
    check_scoring(scoring, kind, predictor.classes, predictor.has_proba)
    if not 1 <= max_rows <= MAX_SAMPLE_ROWS:
        raise PayloadError(f"max_rows must be between 1 and {MAX_SAMPLE_ROWS:,}.")
    schema = pq.read_schema(path)
    if schema.get_field_index(target) < 0:
        raise PayloadError(f"The dataset has no column {target[:100]!r}.", "UNKNOWN_TARGET")
    # Check the schema before reading any row: the same check, on the dataset's empty frame.
    features(predictor, to_frame(schema.empty_table()), target)
    columns = list(predictor.feature_names) if predictor.feature_names is not None else None
    sample = sample_labelled(path, target, columns, max_rows=max_rows, seed=seed,
                             numeric_target=kind == "regressor")
    if on_sample is not None:
        on_sample(sample)
    result = importance_of(predictor, sample.frame, target, n_repeats=n_repeats, seed=seed, scoring=scoring,
                           progress=progress, cancelled=cancelled)
    result.update(target=target, max_rows=max_rows, n_rows=sample.n_rows, n_labelled=sample.n_labelled,
                  exact=sample.exact)
    return result
