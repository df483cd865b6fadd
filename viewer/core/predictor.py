"""Validate model input against the model's schema and predict: ``Predictor``, prepared once per
model version, and the helpers that turn its results into JSON values.

One predict path serves every route (``/api/v1/.../predict``, MLflow's ``/invocations``, the Open
Inference Protocol's ``/v2/.../infer``) and the prediction page; ``payload`` parses the request
bodies into the ``Table`` it takes.

Speed: for small requests validation, not maths, dominates. A ``Predictor`` is prepared once
per model version and cached with it. When every input is numeric it builds one float64 numpy
array straight from the payload and calls a copy of the estimator whose ``feature_names_in_`` is
removed (we check the names ourselves), which is about 4x faster than a one-row DataFrame.
Models that select columns by name (ColumnTransformer) get a DataFrame; when the pipeline's
preprocessing is made of steps ``head_path`` knows (imputers, scalers, encoders), it is computed
directly from the fitted steps, identical to scikit-learn's output (checked on a probe when the
``Predictor`` is built), and the final estimator gets the array: ~0.15 ms instead of ~4 ms a row.

Linear classifiers (LogisticRegression, SGDClassifier, LinearSVC, ... alone or at the end of a
pipeline of numeric steps) then skip scikit-learn's per-call input checks, which cost about
240 us of the 280 us a one-row ``predict_proba`` takes: ``_LinearPath`` (``linear_path``) computes
``X @ coef_.T + intercept_`` and scikit-learn's own expit/softmax/argmax on it, and is only used
when a probe batch, run once when the ``Predictor`` is built, gives exactly the estimator's own
results. Any input it does not expect (NaN, another width or dtype) goes to scikit-learn, so
errors stay scikit-learn's.

The warnings and refusals of the schema policy (extra columns, unknown categories, imputed values,
the model's own warnings) are worded in ``schema_policy``.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

from .head_path import HeadModel, HeadPath
from .introspect import final_estimator
from .linear_path import _LinearPath
from .tree_path import SMALL as TREE_ROWS
from .tree_path import TreePath
from .payload import MAX_LISTED, PayloadError, Table, _names, _rows
from .schema import unused_columns
from .schema_policy import (_caught_call, _category_set, _text_in_numbers, _unknown_rows, empty_rows_warning,
                            extra_columns_warning, imputed_warning, text_column_error, unknown_category_message,
                            unknown_category_warning)


# --- schema and preparation ----------------------------------------------------------------------

def _strip_feature_names(estimator: Any) -> Any:
    """A shallow copy of the estimator (and of its pipeline steps) without ``feature_names_in_``,
    so a numpy array is accepted without the "X does not have valid feature names" warning."""
    clone = copy.copy(estimator)
    if hasattr(clone, "steps"):
        clone.steps = [(name, _strip_feature_names(step)) for name, step in clone.steps]
    if "feature_names_in_" in vars(clone):
        del clone.feature_names_in_
    return clone


def _uses_column_names(estimator: Any) -> bool:
    """True when some step selects columns by name (ColumnTransformer), so input must be a DataFrame."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion, Pipeline

    if isinstance(estimator, ColumnTransformer):
        return True
    if _is_custom(estimator) and getattr(estimator, "feature_names_in_", None) is not None:
        return True  # a user's own step fitted on a DataFrame may read its columns by name
    if isinstance(estimator, Pipeline):
        return any(_uses_column_names(step) for _name, step in estimator.steps if step not in (None, "passthrough"))
    if isinstance(estimator, FeatureUnion):
        return any(_uses_column_names(t) for _name, t in estimator.transformer_list)
    return False


def _is_custom(step: Any) -> bool:
    """A step of a user's own class (a trusted module), not one of scikit-learn's."""
    module = (getattr(type(step), "__module__", "") or "").split(".")[0]
    return module not in ("sklearn", "numpy", "scipy", "imblearn", "lightgbm", "xgboost")


def _needs_frame(estimator: Any) -> bool:
    """The model takes a DataFrame: some step selects columns by name, or a custom first step
    that may (every step is a custom one when the pipeline's names come from a later step)."""
    from sklearn.pipeline import Pipeline

    if _uses_column_names(estimator):
        return True
    if isinstance(estimator, Pipeline):
        steps = [s for _n, s in estimator.steps if s not in (None, "passthrough")]
        return bool(steps) and _is_custom(steps[0]) and \
            any(getattr(s, "feature_names_in_", None) is not None for s in steps)
    return False


class InputSchema:
    """What a model version takes and gives, from its stored description: the checks and
    conversions of its input and the helpers for its outputs. No model code runs here, so the
    app validates requests itself and a model host only ever receives input it can take.

    ``needs_frame``: the model takes a DataFrame (categorical columns, or a step that selects
    columns by name), which only the loaded model can say (``Predictor`` works it out; a model
    host reports it)."""

    def __init__(self, info: dict[str, Any], *, needs_frame: bool, has_proba: bool | None = None):
        self.info = info
        self.feature_names: list[str] | None = info.get("feature_names")
        self.n_features: int | None = info.get("n_features") or (len(self.feature_names) if self.feature_names else None)
        self.feature_set = set(self.feature_names or ())
        schema = info.get("input_schema") or []
        self.categorical = {f["name"] for f in schema if f.get("kind") == "categorical"}
        self.needs_frame = bool(self.categorical) or needs_frame
        # The schema policy's checks (the warnings below word them): categories known per column and
        # how the model takes others, and the columns whose missing values it imputes.
        self.known: dict[str, tuple[frozenset, str, list[Any]]] = {}
        for f in schema:
            if f.get("kind") == "categorical" and f.get("unknown") in ("error", "ignore") and f.get("categories"):
                categories = f["categories"]
                self.known[f["name"]] = (_category_set(categories), f["unknown"], categories)
        self.imputed = {f["name"] for f in schema if f.get("missing") == "impute"}
        # A categorical column's missing value as its encoder learnt it: NaN (read by pandas), or
        # None for the columns listed here (fitted on Python objects). Sent otherwise, it would be
        # an unknown category.
        self.missing_is_none = {f["name"] for f in schema if f.get("missing_value") == "none"}
        self.numeric = {f["name"] for f in schema if f.get("kind") == "numeric"}
        # Columns the model's ColumnTransformer drops: optional, taken as they are, never checked.
        self.unused = unused_columns(info)
        self.watch = bool(self.known or self.imputed)
        classes = info.get("classes")
        self.classes: list[Any] | None = list(classes) if classes is not None else None
        # Per request, the classes as JSON values: labels_at takes class_labels; classes_json is
        # to_jsonable(classes).
        self.class_labels: np.ndarray | None = None
        self.classes_json: list[Any] | None = None
        if self.classes is not None:
            self.class_labels = np.empty(len(self.classes), dtype=object)
            self.class_labels[:] = [_clean(c) for c in self.classes]
            self.classes_json = to_jsonable(self.classes)
        self.has_proba = bool(info.get("has_predict_proba")) if has_proba is None else has_proba
        self.linear: _LinearPath | None = None  # a linear classifier's arithmetic, checked equal
        self.trees: TreePath | None = None  # a compiled tree ensemble's few-row path, checked equal
        self.head_path: HeadPath | None = None  # the preprocessing before those trees, checked equal

    def _direct(self, method: str, X: Any) -> np.ndarray | None:
        """The answer of a path computed here, or None: a linear classifier's arithmetic, a tree
        ensemble walked for a few rows, after its pipeline's preprocessing when X is a frame."""
        if type(X) is np.ndarray:
            if self.linear is not None and (method == "predict" or self.linear.proba is not None):
                result = getattr(self.linear, method)(X)
                if result is not None:
                    return result
            return getattr(self.trees, method)(X) if self.trees is not None else None
        if self.trees is None or self.head_path is None or not isinstance(X, (FrameRows, pd.DataFrame)) \
                or len(X) > TREE_ROWS:
            return None
        inputs = self.head_path.transform_columns(X.data) if isinstance(X, FrameRows) else self.head_path.transform(X)
        return getattr(self.trees, method)(inputs) if inputs is not None else None

    def predict(self, X: Any) -> np.ndarray:
        result = self._direct("predict", X)
        if result is not None:
            return result
        return self._call("predict", X.frame if isinstance(X, FrameRows) else X)

    def predict_proba(self, X: Any) -> np.ndarray:
        if not self.has_proba:
            raise PayloadError("This model does not give probabilities (no predict_proba).", "UNSUPPORTED_OUTPUT")
        result = self._direct("predict_proba", X)
        if result is None:
            result = self._call("predict_proba", X.frame if isinstance(X, FrameRows) else X)
        width = len(self.classes) if self.classes is not None else None
        if result.ndim != 2 or result.shape[1] < 1 or (width is not None and result.shape[1] != width):
            raise PayloadError(f"The model answered probabilities of shape {result.shape} for {width or 'its'} "
                               "classes, so they cannot be matched to its classes.", "MODEL_ERROR", 422)
        return result

    def _call(self, method: str, X: Any) -> np.ndarray:
        """Run ``method`` of the model on ``X`` (in this process, or in the model's host)."""
        raise NotImplementedError

    def explain(self, X: Any, background: Any, budget: Any = None) -> Any:
        """Each input column's contribution to the predictions of ``X`` (``core.explain``), measured
        from ``background`` (a ``core.explain.Background``)."""
        raise NotImplementedError

    # The model's input, validated. Raises PayloadError naming the columns/rows at fault; what
    # the model takes but a user should know of (extra columns, unknown categories, imputed
    # values) is appended to ``report`` as warnings (``schema_policy``).
    # A model that takes a frame gets a DataFrame, or for a few rows answered directly (a compiled
    # pipeline's paths) the frame's columns (``FrameRows``: its ``frame`` is the DataFrame).
    # ``columns``, when given, receives a frame's validated columns (the prediction log's inputs).
    def prepare(self, table: Table, report: list[dict[str, Any]] | None = None,
                columns: dict[str, Any] | None = None) -> "np.ndarray | pd.DataFrame | FrameRows":
        if table.n_rows == 0:
            raise PayloadError("The input has no rows.")
        names = self.feature_names
        if table.columns is None:  # positional rows
            width = {table.array.shape[1]} if table.array is not None else {len(r) for r in table.rows}
            if self.n_features is not None and width != {self.n_features}:
                bad = [i for i, r in enumerate(table.rows) if len(r) != self.n_features]
                raise PayloadError(f"The model takes {self.n_features} values per row; rows {_rows(bad)} differ.")
            if names is None:
                return table.array if table.array is not None else self._numeric_array(table.rows, None)
            table = Table(columns=list(names), rows=table.rows, params=table.params, array=table.array)
        if names is not None and table.columns != names:  # the common case costs one list compare
            given = table.columns
            given_set, name_set = set(given), self.feature_set
            missing = [c for c in names if c not in given_set and c not in self.unused]
            extra = [c for c in given if c not in name_set]
            if missing:
                raise PayloadError(
                    "Missing columns: " + _names(missing) + ". "
                    + f"The model takes {len(names) - len(self.unused)} columns: "
                    + _names([c for c in names if c not in self.unused]) + ". Add the missing ones (an empty "
                    "value where unknown).", "SCHEMA_MISMATCH")
            if len(set(given)) != len(given):
                raise PayloadError("Duplicate column names in the input.", "SCHEMA_MISMATCH")
            if extra and report is not None:  # the schema policy: ignored and reported, as in batch
                report.append(extra_columns_warning(extra, names))
        elif self.n_features is not None and len(table.columns) != self.n_features:
            raise PayloadError(f"The model takes {self.n_features} columns; the input has {len(table.columns)}.",
                               "SCHEMA_MISMATCH")
        order = list(names) if names is not None else table.columns
        if not self.needs_frame:
            if table.array is not None:  # columns are unique here, and hold every name in order
                if order == table.columns:
                    X = table.array
                else:
                    position = {c: i for i, c in enumerate(table.columns)}
                    X = table.array[:, [position[c] for c in order]]
            elif table.rows is not None and order == table.columns:
                X = self._numeric_array(table.rows, order)
            else:
                columns = self._columns(table)
                X = self._numeric_array(list(zip(*(columns[c] for c in order))), order)
            if self.watch and report is not None:  # the common case (no imputer) stops at the flag
                self._report_missing_array(X, order, report)
            return X
        return self._frame(table, order, report, columns)

    def _report_missing_array(self, X: np.ndarray, order: list[str], report: list[dict[str, Any]]) -> None:
        missing = np.isnan(X)
        if not missing.any():
            return
        for c, name in enumerate(order):
            if name in self.imputed:
                rows = np.flatnonzero(missing[:, c])
                if len(rows):
                    report.append(imputed_warning(name, rows))
        empty = np.flatnonzero(missing.all(axis=1))
        if len(empty):
            report.append(empty_rows_warning(empty, len(X)))

    def check_frame(self, frame: pd.DataFrame, report: list[dict[str, Any]] | None, offset: int = 0) -> None:
        """The schema policy's checks on a dataset chunk (the model's columns, as stored), row
        numbers counted from ``offset``: text in a column the model takes as numbers and
        categories its encoder refuses raise PayloadError; the rest goes to ``report``."""
        masks = []
        for name in frame.columns:
            if name in self.unused:
                continue
            column = frame[name]
            missing = column.isna().to_numpy()
            if name in self.categorical:
                known = self.known.get(name)
                if known is not None:
                    values = column.to_numpy(dtype=object)
                    unknown = _unknown_rows(values, known[0], missing)
                    if len(unknown):
                        if known[1] == "error":
                            raise PayloadError(unknown_category_message(name, unknown, known[2], refused=True,
                                                                        offset=offset, values=values),
                                               "UNKNOWN_CATEGORY")
                        if report is not None:
                            report.append(unknown_category_warning(name, unknown, known[2], offset, values))
            elif name in self.numeric and not (pd.api.types.is_numeric_dtype(column)
                                               or pd.api.types.is_bool_dtype(column)):
                error = text_column_error(name, column, offset)
                if error is not None:
                    raise error
            self._imputed(name, missing, report, offset)
            masks.append(missing)
        self._empty_rows(masks, report, offset)

    def check_array(self, X: np.ndarray, names: Sequence[str], report: list[dict[str, Any]] | None,
                    offset: int = 0) -> None:
        """``check_frame`` for a float array of the columns ``names``, as a model that takes
        numbers gets a chunk: missing values are all there is to check."""
        if report is None:
            return
        missing = np.isnan(X)
        if missing.any():
            masks = [missing[:, j] for j in range(X.shape[1])]
            for name, mask in zip(names, masks):
                self._imputed(name, mask, report, offset)
            self._empty_rows(masks, report, offset)

    def _imputed(self, name: str, missing: np.ndarray, report: list[dict[str, Any]] | None, offset: int) -> None:
        if report is not None and name in self.imputed and missing.any():
            report.append(imputed_warning(name, np.flatnonzero(missing), offset))

    @staticmethod
    def _empty_rows(masks: list[np.ndarray], report: list[dict[str, Any]] | None, offset: int) -> None:
        """Rows with every one of the model's columns empty."""
        if report is None or not masks or not all(mask.any() for mask in masks):
            return  # a column with no missing value leaves no row empty
        empty = np.flatnonzero(np.logical_and.reduce(masks))
        if len(empty):
            report.append(empty_rows_warning(empty, len(masks[0]), offset))

    def _columns(self, table: Table) -> dict[str, Sequence[Any]]:
        if table.by_column is not None:
            return table.by_column
        return {c: [row[i] for row in table.rows] for i, c in enumerate(table.columns)}

    def _numeric_array(self, rows: Sequence[Sequence[Any]], order: list[str] | None) -> np.ndarray:
        try:
            array = np.array(rows, dtype=np.float64)
        except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float range
            array = None
        if array is None or array.ndim != 2:
            self._explain_non_numeric(rows, order)
        return array

    def _explain_non_numeric(self, rows, order) -> None:
        bad_cols: dict[int, list[int]] = {}
        for r, row in enumerate(rows):
            for c, value in enumerate(row):
                if value is None or isinstance(value, (bool, float, np.number)):
                    continue
                if isinstance(value, int):
                    try:
                        float(value)
                        continue
                    except OverflowError:  # beyond float range
                        bad_cols.setdefault(c, []).append(r)
                        continue
                if isinstance(value, str):
                    try:
                        float(value)
                        continue
                    except ValueError:
                        pass
                bad_cols.setdefault(c, []).append(r)
        if not bad_cols:
            raise PayloadError("Rows must be flat lists of numbers.")
        described = "; ".join(
            f"column {order[c]!r}" if order else f"position {c}" for c in list(bad_cols)[:MAX_LISTED])
        first_rows = sorted({r for rows_ in bad_cols.values() for r in rows_})
        raise PayloadError(f"Non-numeric values where the model takes numbers: {described} "
                           f"(rows {_rows(first_rows)}).", "INVALID_TYPE")

    def _frame(self, table: Table, order: list[str], report: list[dict[str, Any]] | None = None,
               validated: dict[str, Any] | None = None) -> pd.DataFrame:
        """``validated``, when given, receives the validated columns (name -> 1-D array): what the
        prediction log records without reading the DataFrame back."""
        columns = self._columns(table)
        data: dict[str, Any] = {} if validated is None else validated
        bad: list[str] = []
        bad_rows: set[int] = set()
        n_missing: np.ndarray | None = None  # per row, how many inputs are missing
        found: list[dict[str, Any]] = []
        n_read = 0  # columns the model reads
        for name in order:
            if name in self.unused:  # left out, or any value: the model drops it
                data[name] = pd.Series(columns[name] if name in columns else [None] * table.n_rows, dtype=object)
                continue
            n_read += 1
            values = columns[name]
            if name in self.categorical:
                column = data[name] = np.fromiter(values, dtype=object, count=table.n_rows)  # (no broadcasting)
                missing = pd.isna(column)
                if missing.any():  # JSON's null (None), as the encoder learnt a missing value
                    column[missing] = None if name in self.missing_is_none else np.nan
                known = self.known.get(name)
                if known is not None:
                    unknown = _unknown_rows(values, known[0], missing)
                    if len(unknown):
                        if known[1] == "error":  # the model's encoder would refuse them, without the column
                            raise PayloadError(unknown_category_message(name, unknown, known[2], refused=True,
                                                                        values=values), "UNKNOWN_CATEGORY")
                        found.append(unknown_category_warning(name, unknown, known[2], values=values))
            else:
                array = _plain_numbers(values)
                if array is not None:
                    missing = np.isnan(array)
                    data[name] = array
                else:  # text, or numbers numpy does not take: pandas reads them and says which fail
                    series = pd.Series(values, dtype=object)
                    numeric = pd.to_numeric(series, errors="coerce")
                    missing = series.isna().to_numpy()
                    wrong = numeric.isna().to_numpy() & ~missing
                    if wrong.any():
                        bad.append(name)
                        bad_rows.update(np.flatnonzero(wrong).tolist())
                    data[name] = numeric.astype(np.float64)
            if missing.any():
                n_missing = missing.astype(np.int64) if n_missing is None else n_missing + missing
                if name in self.imputed:
                    found.append(imputed_warning(name, np.flatnonzero(missing)))
        if bad:
            raise PayloadError(f"Non-numeric values where the model takes numbers: columns {_names(bad)} "
                               f"(rows {_rows(sorted(bad_rows))}). Send numbers (a decimal point, no thousands "
                               "separators) or leave the value empty.", "INVALID_TYPE")
        if report is not None:
            report.extend(found)
            if n_missing is not None and n_read:
                empty = np.flatnonzero(n_missing == n_read)
                if len(empty):
                    report.append(empty_rows_warning(empty, table.n_rows))
        if self.head_path is not None and self.trees is not None and table.n_rows <= TREE_ROWS:
            return FrameRows(data, order)  # a DataFrame costs ~0.3 ms: made only if the direct path declines
        return _frame_of(data, order)


class FrameRows:
    """A few validated rows for a model that takes a DataFrame, still as their columns (name ->
    1-D array, in ``order``): what ``prepare`` gives when the model's preprocessing and trees are
    computed directly (``InputSchema._direct``), which reads the columns as they are. ``frame``
    is the DataFrame, made only when something else needs it."""

    def __init__(self, data: dict[str, Any], order: list[str]):
        self.data, self.order = data, order

    def __len__(self) -> int:
        return len(next(iter(self.data.values()))) if self.data else 0

    @functools.cached_property
    def frame(self) -> pd.DataFrame:
        return _frame_of(self.data, self.order)


def _frame_of(data: dict[str, Any], order: list[str]) -> pd.DataFrame:
    """The DataFrame of validated columns; text columns stay objects (pandas would infer ``str``
    from a numpy object array, which the model did not see when it was fitted on objects)."""
    return pd.DataFrame({name: pd.Series(values, dtype=object, copy=False)
                         if isinstance(values, np.ndarray) and values.dtype == object else values
                         for name, values in data.items()}, columns=order)


def _plain_numbers(values: Sequence[Any]) -> np.ndarray | None:
    """A column of JSON numbers, booleans and nulls as float64 (null: NaN), or None when it holds
    anything else (text, which pandas reads, or a value numpy cannot take). ~1 us a value, where a
    pandas Series and ``to_numeric`` cost ~100 us a column."""
    if isinstance(values, np.ndarray):
        return values.astype(np.float64) if values.dtype.kind in "fiub" else None
    if any(type(v) is str for v in values):
        return None
    try:
        array = np.array(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    return array if array.ndim == 1 and len(array) == len(values) else None


class Predictor(InputSchema):
    """A loaded model version ready to serve: its schema, its fast paths, its predict methods.
    In the app this runs inside a model host (``viewer.infra.host``); notebooks use it directly."""

    def __init__(self, estimator: Any, info: dict[str, Any]):
        super().__init__(info, needs_frame=_needs_frame(estimator))
        self.estimator = estimator
        self.final_kind = type(final_estimator(estimator)).__name__
        self.fast = None if self.needs_frame else _strip_feature_names(estimator)
        self.linear = _LinearPath.build(self.fast) if self.fast is not None else None
        # A pipeline that takes a DataFrame: its preprocessing computed directly (``head_path``)
        self.head = HeadModel.build(estimator, _strip_feature_names(estimator.steps[-1][1])) \
            if self.needs_frame and hasattr(estimator, "steps") else None
        self.compiled: dict[bool, Any] | None = None  # use_compiled: by "takes the fast copy"
        self._explainers: dict[str, Any] = {}  # core.explain.Explainer by background key

    def use_compiled(self, record: dict[str, Any], library: str) -> dict[int, bool]:
        """Answer with the compiled library at ``library`` as a version's runtime ``record``
        (``services.runtimes``: its build, parity check and per-size speeds) describes it: at the
        batch sizes where it was faster; everything else as before (``CompiledModel``). Raises
        when the library's digest is not the recorded one. Returns the sizes where it answers."""
        from .compiled import Compiled, CompiledModel, Parity, TreeRuntime

        runtime = TreeRuntime(Compiled(**{**record["compiled"], "library": library}))
        parity = Parity(**record["parity"])
        faster = {int(size): bool(v) for size, v in (record.get("faster") or {}).items()}
        self.compiled = {False: CompiledModel(self.estimator, runtime, parity, faster)}
        if self.fast is not None:
            self.compiled[True] = CompiledModel(self.fast, runtime, parity, faster)
        # A few rows: the trees walked in numpy (checked identical to scikit-learn at compile), after
        # the pipeline's preprocessing computed directly when it takes a frame.
        self.trees = self.head_path = None
        whole = self.compiled[False]
        if parity.trees_same and faster.get(1):
            if self.fast is not None:
                self.trees = TreePath.build(self.fast)
            elif whole.head_path is not None and parity.head_same:
                self.trees, self.head_path = TreePath.build(whole.est), whole.head_path
        return faster

    # --- predicting ------------------------------------------------------------------------------

    def _model_for(self, X: Any) -> Any:
        fast = isinstance(X, np.ndarray) and self.fast is not None
        if self.compiled is not None:
            return self.compiled[fast]
        if fast:
            return self.fast
        return self.head if self.head is not None and isinstance(X, pd.DataFrame) else self.estimator

    def explain(self, X: Any, background: Any, budget: Any = None) -> Any:
        from .explain import explainer_for

        explainer = self._explainers.get(background.key)
        if explainer is None:  # one background at a time: it changes when the reference does
            explainer = explainer_for(self, background.X.frame if isinstance(background.X, FrameRows) else background.X)
            self._explainers = {background.key: explainer}
        return explainer.explain(X.frame if isinstance(X, FrameRows) else X, budget)

    def _call(self, method: str, X: Any) -> np.ndarray:
        try:
            return _caught_call(getattr(self._model_for(X), method), X)
        except ValueError as exc:
            if "NaN" in str(exc) or "infinity" in str(exc):
                raise self._nan_error(X) from None
            text_error = _text_in_numbers(X, str(exc))
            if text_error is not None:
                raise text_error from None
            raise PayloadError("The model could not take this input: "
                               + _scrub(str(exc)), "INVALID_INPUT") from None

    def _nan_error(self, X: Any) -> PayloadError:
        frame = pd.DataFrame(X) if isinstance(X, np.ndarray) else X
        numeric = frame.select_dtypes("number")
        mask = numeric.isna() | np.isinf(numeric)
        columns = [str(self.feature_names[c]) if isinstance(c, int) and self.feature_names else str(c)
                   for c in numeric.columns[mask.any(axis=0).to_numpy()]]
        rows = np.flatnonzero(mask.any(axis=1).to_numpy())
        if not columns:  # finite, but beyond float32: tree models compute in float32
            large = numeric.abs() > np.finfo(np.float32).max
            columns = [str(self.feature_names[c]) if isinstance(c, int) and self.feature_names else str(c)
                       for c in numeric.columns[large.any(axis=0).to_numpy()]]
            rows = np.flatnonzero(large.any(axis=1).to_numpy())
            return PayloadError(f"Values too large for this model, which computes in 32-bit floats (at most "
                                f"about 3.4e38): columns {_names(columns)} (rows {_rows(rows)}).", "INVALID_INPUT")
        return PayloadError(f"Missing or infinite values, which this model cannot take: columns {_names(columns)} "
                            f"(rows {_rows(rows)}).", "MISSING_VALUES")


def _scrub(message: str) -> str:
    """Keep the first line of a library message, without quoted input values."""
    import re

    line = message.strip().splitlines()[0] if message.strip() else "invalid input"
    return re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", line)[:300]


# --- JSON-safe outputs ---------------------------------------------------------------------------

def to_jsonable(values: np.ndarray | Sequence[Any]) -> list[Any]:
    """numpy results as plain JSON values; NaN/inf become None."""
    array = np.asarray(values)
    if array.dtype.kind == "f":
        if np.isfinite(array).all():
            return array.tolist()
        return [_clean(v) for v in array.tolist()] if array.ndim == 1 else \
            [[_clean(v) for v in row] for row in array.tolist()]
    if array.dtype.kind in "iub":
        return array.tolist()
    return [_clean(v) for v in array.tolist()]


def labels_at(classes: Sequence[Any] | np.ndarray, indices: np.ndarray) -> list[Any]:
    """``to_jsonable`` of the classes at ``indices`` (e.g. the argmax of each row's
    probabilities), cleaning each class once, not once per row. ``classes`` may be a
    ``Predictor.class_labels`` array, cleaned already."""
    if not (isinstance(classes, np.ndarray) and classes.dtype == object):
        cleaned = np.empty(len(classes), dtype=object)
        cleaned[:] = [_clean(c) for c in classes]
        classes = cleaned
    return classes.take(indices).tolist()


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return value.item()
    return value
