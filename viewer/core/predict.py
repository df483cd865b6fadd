"""Turn request payloads into model input, validate them against the model's schema, predict.

One parser and one predict path serve every route (``/api/v1/.../predict``, MLflow's
``/invocations``, the Open Inference Protocol's ``/v2/.../infer``) and the prediction page.

Speed: for small requests validation, not maths, dominates. A ``Predictor`` is prepared once
per model version and cached with it. When every input is numeric it builds one float64 numpy
array straight from the payload and calls a copy of the estimator whose ``feature_names_in_`` is
removed (we check the names ourselves), which is about 4x faster than a one-row DataFrame.
Models that select columns by name (ColumnTransformer) get a DataFrame.

Linear classifiers (LogisticRegression, SGDClassifier, LinearSVC, ... alone or at the end of a
pipeline of numeric steps) then skip scikit-learn's per-call input checks, which cost about
240 us of the 280 us a one-row ``predict_proba`` takes: ``_LinearPath`` computes
``X @ coef_.T + intercept_`` and scikit-learn's own expit/softmax/argmax on it, and is only used
when a probe batch, run once when the ``Predictor`` is built, gives exactly the estimator's own
results. Any input it does not expect (NaN, another width or dtype) goes to scikit-learn, so
errors stay scikit-learn's.

JSON is read and written with orjson (about 4x faster than ``json`` on a 10,000-row body); the
few bodies it reads differently from ``json`` (NaN literals, integers beyond 64 bits, other
encodings) go to ``json``.
"""

from __future__ import annotations

import copy
import io
import json
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import orjson
import pandas as pd
from scipy.special import expit

MAX_LISTED = 5  # how many column names / row numbers an error message names


class PayloadError(ValueError):
    """Bad input: becomes a 4xx with ``error_code`` and a message naming columns or rows.

    Messages never echo input values, only column names (truncated) and row numbers.
    """

    def __init__(self, message: str, error_code: str = "BAD_REQUEST", status: int = 400):
        super().__init__(message)
        self.message = message
        self.error_code = error_code
        self.status = status


def _names(items: Iterable[Any]) -> str:
    items = [str(i)[:64] for i in items]
    shown = ", ".join(repr(i) for i in items[:MAX_LISTED])
    return shown + (f" and {len(items) - MAX_LISTED} more" if len(items) > MAX_LISTED else "")


def _rows(indices: Iterable[int]) -> str:
    indices = [int(i) for i in indices]
    shown = ", ".join(str(i) for i in indices[:MAX_LISTED])
    return shown + (f" and {len(indices) - MAX_LISTED} more" if len(indices) > MAX_LISTED else "")


# --- payloads ------------------------------------------------------------------------------------

@dataclass
class Table:
    """Tabular input before validation: named columns, or positional rows when names are None."""

    columns: list[str] | None
    rows: list[Sequence[Any]] | None = None          # row-major
    by_column: dict[str, Sequence[Any]] | None = None  # column-major
    params: dict[str, Any] = field(default_factory=dict)
    # ``rows`` as one float64 matrix, when every value converts (what ``prepare`` would build
    # for a model of numeric inputs); None otherwise. Set by the parsers that can build it at once.
    array: np.ndarray | None = None

    @property
    def n_rows(self) -> int:
        if self.rows is not None:
            return len(self.rows)
        return len(next(iter(self.by_column.values()))) if self.by_column else 0


MLFLOW_KEYS = ("dataframe_split", "dataframe_records", "instances", "inputs")


def parse_mlflow(body: bytes, content_type: str) -> Table:
    """Bodies as MLflow's scoring server accepts them (JSON with exactly one of ``MLFLOW_KEYS``
    plus optional ``params``, or CSV)."""
    mime = (content_type or "").split(";")[0].strip().lower()
    if mime == "text/csv":
        return parse_csv(body)
    if mime != "application/json":
        raise PayloadError(f"Content type {mime or 'missing'!r} is not supported; send application/json "
                           "or text/csv.", "UNSUPPORTED_MEDIA_TYPE", 415)
    payload, exact = _loads(body)
    if exact:
        return _table_from(payload)
    # orjson read it. The answer is json's unless the body has an integer beyond 64 bits, which
    # orjson reads as a float; that only matters outside a float matrix, so only then is the
    # body searched for one (and read again by json if found).
    try:
        table = _table_from(payload)
    except PayloadError:
        if _may_hold_big_int(body):
            return _table_from(_json_loads(body))
        raise
    if (table.array is None or not (np.abs(table.array) < 2.0**63).all()) and _may_hold_big_int(body):
        return _table_from(_json_loads(body))
    return table


def _table_from(payload: Any) -> Table:
    if not isinstance(payload, dict):
        raise PayloadError("The JSON body must be an object with one of " + _names(MLFLOW_KEYS) + ".")
    found = [key for key in MLFLOW_KEYS if key in payload]
    unknown = sorted(set(payload) - set(MLFLOW_KEYS) - {"params"})
    if len(found) != 1 or unknown:
        raise PayloadError("The JSON body must have exactly one of " + _names(MLFLOW_KEYS)
                           + (f" (found {_names(found)})" if found else "")
                           + (f"; unexpected keys {_names(unknown)}" if unknown else "") + ".")
    params = payload.get("params")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise PayloadError("'params' must be an object.")
    key = found[0]
    value = payload[key]
    if key == "dataframe_split":
        table = _from_split(value)
    elif key == "dataframe_records":
        table = _from_records(value, key)
    else:  # instances / inputs: records, rows, or a dict of columns
        table = _from_instances(value, key)
    table.params = params
    return table


def parse_json(body: bytes) -> Any:
    """The JSON body exactly as ``json.loads`` reads it (read by orjson when that is the same)."""
    payload, exact = _loads(body)
    if not exact and _may_hold_big_int(body):
        return _json_loads(body)
    return payload


def _loads(body: bytes) -> tuple[Any, bool]:
    """(payload, exact): orjson's reading, exact=False, or json's when orjson refuses the body
    (NaN/Infinity literals, UTF-16/32 or a BOM, nesting deeper than 1024, invalid JSON)."""
    if not body:
        raise PayloadError("The request body is empty.")
    try:
        return orjson.loads(body), False
    except orjson.JSONDecodeError:
        return _json_loads(body), True


def _json_loads(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise PayloadError("The request body is not valid JSON.", "MALFORMED_REQUEST") from None


# orjson reads an integer beyond 64 bits as a float; json keeps it an int. Such an integer has 20
# digits or more in a row, not after a '.'. Found by mapping digits to "d", '.' to itself and
# every other byte to " " (one C pass), then searching " " + 19 "d"s. A long digit run inside a
# string matches too: such a body is read by json, which is slower but never wrong.
_DIGIT_CLASSES = bytes(0x64 if 0x30 <= i <= 0x39 else 0x2E if i == 0x2E else 0x20 for i in range(256))
_LONG_INTEGER = b" " + b"d" * 19


def _may_hold_big_int(body: bytes) -> bool:
    return (b" " + bytes(body).translate(_DIGIT_CLASSES)).find(_LONG_INTEGER) != -1


def dumps(obj: Any, *, sort_keys: bool = False) -> bytes:
    """Compact JSON bytes of plain values (what ``to_jsonable`` returns), through orjson, or json
    for what orjson refuses (integers beyond 64 bits, keys that are not strings)."""
    try:
        return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError:
        return json.dumps(obj, sort_keys=sort_keys, separators=(",", ":")).encode()


def parse_csv(body: bytes) -> Table:
    if not body.strip():
        raise PayloadError("The CSV body is empty.")
    try:
        frame = pd.read_csv(io.BytesIO(body))
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        raise PayloadError("The CSV body could not be parsed (check the header and that every row has "
                           "as many fields as the header).", "MALFORMED_REQUEST") from None
    return Table(columns=[str(c) for c in frame.columns],
                 by_column={str(c): frame[c].to_numpy() for c in frame.columns})


def _from_split(value: Any) -> Table:
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise PayloadError("'dataframe_split' must be an object with 'columns' and 'data' (a list of rows).")
    columns = value.get("columns")
    if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, (str, int)) for c in columns)):
        raise PayloadError("'dataframe_split.columns' must be a list of column names.")
    rows = value["data"]
    array = _matrix(rows, len(columns) if columns is not None else None)
    if array is None:  # not all numbers: check row by row (the matrix implies these checks pass)
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                raise PayloadError(f"'dataframe_split.data' row {i} is not a list.")
            if columns is not None and len(row) != len(columns):
                raise PayloadError(f"'dataframe_split.data' row {i} has {len(row)} values for {len(columns)} columns.")
    return Table(columns=[str(c) for c in columns] if columns is not None else None, rows=rows, array=array)


def _matrix(rows: list[Any], width: int | None) -> np.ndarray | None:
    """``rows`` as a float64 matrix (the conversion ``prepare`` makes for numeric models) when
    they are lists of ``width`` values that all convert, else None. One numpy call instead of a
    Python loop over the rows."""
    if not rows:
        return None
    try:
        array = np.array(rows, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if array.ndim != 2 or (width is not None and array.shape[1] != width):
        return None
    return array


def _from_records(value: Any, key: str) -> Table:
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise PayloadError(f"'{key}' must be a list of objects, one per row.")
    if not value:
        return Table(columns=[], rows=[])
    columns = list(value[0])
    wanted = set(columns)
    for i, record in enumerate(value):
        if record.keys() != wanted:
            missing = sorted(wanted - record.keys())
            extra = sorted(record.keys() - wanted)
            raise PayloadError(f"'{key}' row {i} has different columns from row 0"
                               + (f": missing {_names(missing)}" if missing else "")
                               + (f"; extra {_names(extra)}" if extra else "") + ".")
    return Table(columns=[str(c) for c in columns], rows=[[r[c] for c in columns] for r in value])


def _from_instances(value: Any, key: str) -> Table:
    if isinstance(value, dict):  # columnar: {"col": [values...]}
        lengths = {len(v) if isinstance(v, list) else -1 for v in value.values()}
        if -1 in lengths or len(lengths) > 1:
            raise PayloadError(f"'{key}' as an object must map each column to a list of values, all of one length.")
        return Table(columns=[str(c) for c in value], by_column={str(c): v for c, v in value.items()})
    if not isinstance(value, list):
        raise PayloadError(f"'{key}' must be a list of rows or an object of columns.")
    if value and isinstance(value[0], dict):
        return _from_records(value, key)
    rows = []
    for i, row in enumerate(value):
        if isinstance(row, list):
            rows.append(row)
        elif isinstance(row, (int, float, str, bool)) or row is None:
            rows.append([row])  # a flat list: one value per row
        else:
            raise PayloadError(f"'{key}' row {i} is not a list of values.")
    return Table(columns=None, rows=rows)


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
    if isinstance(estimator, Pipeline):
        return any(_uses_column_names(step) for _name, step in estimator.steps if step not in (None, "passthrough"))
    if isinstance(estimator, FeatureUnion):
        return any(_uses_column_names(t) for _name, t in estimator.transformer_list)
    return False


class Predictor:
    """A model version ready to serve: its schema, its fast path, its output helpers."""

    def __init__(self, estimator: Any, info: dict[str, Any]):
        self.estimator = estimator
        self.info = info
        self.feature_names: list[str] | None = info.get("feature_names")
        self.n_features: int | None = info.get("n_features") or (len(self.feature_names) if self.feature_names else None)
        self.feature_set = set(self.feature_names or ())
        schema = info.get("input_schema") or []
        self.categorical = {f["name"] for f in schema if f.get("kind") == "categorical"}
        self.needs_frame = bool(self.categorical) or _uses_column_names(estimator)
        self.fast = None if self.needs_frame else _strip_feature_names(estimator)
        self.linear = _LinearPath.build(self.fast) if self.fast is not None else None
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
        self.has_proba = bool(info.get("has_predict_proba"))

    # The model's input, validated. Raises PayloadError naming the columns/rows at fault.
    def prepare(self, table: Table) -> np.ndarray | pd.DataFrame:
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
            missing = [c for c in names if c not in given_set]
            extra = [c for c in given if c not in name_set]
            if missing or extra:
                raise PayloadError(
                    ("Missing columns: " + _names(missing) + ". " if missing else "")
                    + ("Unexpected columns: " + _names(extra) + ". " if extra else "")
                    + f"The model takes {len(names)} columns: {_names(names)}.", "SCHEMA_MISMATCH")
            if len(set(given)) != len(given):
                raise PayloadError("Duplicate column names in the input.", "SCHEMA_MISMATCH")
        elif self.n_features is not None and len(table.columns) != self.n_features:
            raise PayloadError(f"The model takes {self.n_features} columns; the input has {len(table.columns)}.",
                               "SCHEMA_MISMATCH")
        order = list(names) if names is not None else table.columns
        if not self.needs_frame:
            if table.array is not None:  # columns are unique here, and the same set as order
                if order == table.columns:
                    return table.array
                position = {c: i for i, c in enumerate(table.columns)}
                return table.array[:, [position[c] for c in order]]
            if table.rows is not None and order == table.columns:
                return self._numeric_array(table.rows, order)
            columns = self._columns(table)
            return self._numeric_array(list(zip(*(columns[c] for c in order))), order)
        return self._frame(table, order)

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

    def _frame(self, table: Table, order: list[str]) -> pd.DataFrame:
        columns = self._columns(table)
        data: dict[str, Any] = {}
        bad: list[str] = []
        bad_rows: set[int] = set()
        for name in order:
            values = columns[name]
            if name in self.categorical:
                data[name] = pd.Series(values, dtype=object)
                continue
            series = pd.Series(values, dtype=object)
            numeric = pd.to_numeric(series, errors="coerce")
            wrong = numeric.isna() & series.notna()
            if wrong.any():
                bad.append(name)
                bad_rows.update(np.flatnonzero(wrong.to_numpy()).tolist())
            data[name] = numeric.astype(np.float64)
        if bad:
            raise PayloadError(f"Non-numeric values where the model takes numbers: columns {_names(bad)} "
                               f"(rows {_rows(sorted(bad_rows))}).", "INVALID_TYPE")
        return pd.DataFrame(data, columns=order)

    # --- predicting ------------------------------------------------------------------------------

    def _model_for(self, X: Any) -> Any:
        return self.fast if isinstance(X, np.ndarray) and self.fast is not None else self.estimator

    def predict(self, X: Any) -> np.ndarray:
        if self.linear is not None and type(X) is np.ndarray:
            result = self.linear.predict(X)
            if result is not None:
                return result
        return self._call("predict", X)

    def predict_proba(self, X: Any) -> np.ndarray:
        if not self.has_proba:
            raise PayloadError("This model does not give probabilities (no predict_proba).", "UNSUPPORTED_OUTPUT")
        if self.linear is not None and self.linear.proba is not None and type(X) is np.ndarray:
            result = self.linear.predict_proba(X)
            if result is not None:
                return result
        return self._call("predict_proba", X)

    def _call(self, method: str, X: Any) -> np.ndarray:
        try:
            return getattr(self._model_for(X), method)(X)
        except ValueError as exc:
            if "NaN" in str(exc) or "infinity" in str(exc):
                raise self._nan_error(X) from None
            raise PayloadError("The model could not take this input: "
                               + _scrub(str(exc)), "INVALID_INPUT") from None

    def _nan_error(self, X: Any) -> PayloadError:
        frame = pd.DataFrame(X) if isinstance(X, np.ndarray) else X
        numeric = frame.select_dtypes("number")
        mask = numeric.isna() | np.isinf(numeric)
        columns = [str(self.feature_names[c]) if isinstance(c, int) and self.feature_names else str(c)
                   for c in numeric.columns[mask.any(axis=0).to_numpy()]]
        rows = np.flatnonzero(mask.any(axis=1).to_numpy())
        return PayloadError(f"Missing or infinite values, which this model cannot take: columns {_names(columns)} "
                            f"(rows {_rows(rows)}).", "MISSING_VALUES")


class _LinearPath:
    """``predict`` and ``predict_proba`` of a fitted linear classifier, computed the way
    scikit-learn computes them after its input checks (``LinearClassifierMixin.decision_function``
    and ``predict``, ``LogisticRegression.predict_proba``, ``_predict_proba_lr``), on a float64
    numpy array. ``before``: the pipeline steps ahead of the classifier, run through their own
    ``transform``.

    Each method returns None for input it was not built for (another dtype or width, NaN or
    infinity, a step that fails), and the caller then asks scikit-learn, which gives its own
    answer or error. ``build`` returns a path only when it reproduces the estimator exactly on
    a probe batch.
    """

    PROBE_ROWS = 16

    def __init__(self, before: Any, final: Any, proba: str | None):
        self.before = before
        self.coef_t = final.coef_.T
        self.intercept = final.intercept_
        self.classes = final.classes_
        self.n_features = final.coef_.shape[1]
        self.proba = proba  # "softmax" (multinomial), "ovr" (expit, normalised) or None

    @classmethod
    def build(cls, estimator: Any) -> "_LinearPath | None":
        try:
            return cls._build(estimator)
        except Exception:  # noqa: BLE001  (a model this code does not know: scikit-learn serves it)
            return None

    @classmethod
    def _build(cls, estimator: Any) -> "_LinearPath | None":
        from sklearn.linear_model import LogisticRegression, SGDClassifier
        from sklearn.linear_model._base import LinearClassifierMixin
        from sklearn.pipeline import Pipeline

        before, final = None, estimator
        if isinstance(estimator, Pipeline):
            if type(estimator) is not Pipeline or len(estimator.steps) == 0:
                return None
            final = estimator.steps[-1][1]
            before = estimator[:-1] if len(estimator.steps) > 1 else None
        kind = type(final)
        if not (getattr(kind, "decision_function", None) is LinearClassifierMixin.decision_function
                and getattr(kind, "predict", None) is LinearClassifierMixin.predict):
            return None
        coef, classes = getattr(final, "coef_", None), getattr(final, "classes_", None)
        if type(coef) is not np.ndarray or coef.ndim != 2 or coef.dtype.kind != "f" \
                or not isinstance(classes, np.ndarray) or len(classes) < 2:
            return None
        proba = None
        if getattr(kind, "predict_proba", None) is LogisticRegression.predict_proba:
            proba = "ovr" if len(classes) <= 2 else "softmax"
        elif kind is SGDClassifier and final.loss == "log_loss":
            proba = "ovr"
        n_features = getattr(estimator, "n_features_in_", None)
        if not isinstance(n_features, (int, np.integer)) or n_features < 1:
            return None
        path = cls(before, final, proba)
        return path if path._reproduces(estimator, int(n_features)) else None

    def _reproduces(self, estimator: Any, n_features: int) -> bool:
        rng = np.random.default_rng(0)
        n = self.PROBE_ROWS
        probe = np.vstack([np.zeros((1, n_features)), rng.random((n // 2, n_features)),
                           rng.standard_normal((n - n // 2 - 1, n_features)) * 3.0])
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                checks = [(self.predict(probe), estimator.predict(probe))]
                if self.proba is not None:
                    checks.append((self.predict_proba(probe), estimator.predict_proba(probe)))
        except Exception:  # noqa: BLE001  (anything unexpected: no fast path, scikit-learn serves)
            return False
        return all(ours is not None and ours.dtype == theirs.dtype and ours.shape == theirs.shape
                   and np.array_equal(ours, theirs, equal_nan=ours.dtype.kind == "f") for ours, theirs in checks)

    def _decision(self, X: np.ndarray) -> np.ndarray | None:
        if X.dtype != np.float64 or X.ndim != 2:
            return None
        if self.before is not None:
            try:
                X = self.before.transform(X)
            except Exception:  # noqa: BLE001  (scikit-learn, asked next, raises it again)
                return None
            if type(X) is not np.ndarray or X.ndim != 2 or X.dtype.kind != "f":
                return None
        if X.shape[1] != self.n_features or not np.isfinite(X).all():
            return None
        scores = X @ self.coef_t + self.intercept
        return scores.reshape(-1) if scores.shape[1] == 1 else scores

    def predict(self, X: np.ndarray) -> np.ndarray | None:
        scores = self._decision(X)
        if scores is None:
            return None
        indices = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes.take(indices, axis=0)

    def predict_proba(self, X: np.ndarray) -> np.ndarray | None:
        prob = self._decision(X)
        if prob is None:
            return None
        if self.proba == "softmax":  # sklearn.utils.extmath.softmax
            prob -= prob.max(axis=1).reshape((-1, 1))
            np.exp(prob, out=prob)
            prob /= prob.sum(axis=1).reshape((-1, 1))
            return prob
        expit(prob, out=prob)  # LinearClassifierMixin._predict_proba_lr
        if prob.ndim == 1:  # np.stack([1 - prob, prob], axis=1), without its overhead
            out = np.empty((prob.shape[0], 2))
            np.subtract(1, prob, out=out[:, 0])
            out[:, 1] = prob
            return out
        prob_sum = prob.sum(axis=1)
        all_zero = prob_sum == 0
        if np.any(all_zero):
            prob[all_zero, :] = 1
            prob_sum[all_zero] = prob.shape[1]
        prob /= prob_sum.reshape((prob.shape[0], -1))
        return prob


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
