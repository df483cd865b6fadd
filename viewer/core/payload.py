"""Request payloads -> ``Table``, the tabular input before it meets a model; JSON bytes out.

One parser serves every route (``/api/v1/.../predict``, MLflow's ``/invocations``, the Open
Inference Protocol's ``/v2/.../infer``) and the prediction page; ``predictor.Predictor`` then
validates the ``Table`` against the model's schema and predicts. ``PayloadError`` is every bad
input, found here or by the predictor.

JSON is read and written with orjson (about 4x faster than ``json`` on a 10,000-row body); the
few bodies it reads differently from ``json`` (NaN literals, integers beyond 64 bits, other
encodings) go to ``json``.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np
import orjson
import pandas as pd

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
    if columns is not None and (not isinstance(columns, list)
                                or not all(isinstance(c, (str, int)) and not isinstance(c, bool) for c in columns)):
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
