"""What ingestion reports about a dataset (``DatasetInfo``, ``ColumnInfo``), and the streaming
column summaries that compute it while the Parquet file is written.

Memory per column: <= ``DISTINCT_CAP`` exact distinct values, then a 16 KiB HyperLogLog sketch
and <= 2 x ``APPROX_TOP_KEEP`` top-value candidates; ``DISTINCT_BUDGET`` caps the total over all
columns.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import decimal
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

TOP_VALUES = 10
DISTINCT_BUDGET = 200_000       # exact distinct values kept over *all* columns ...
DISTINCT_CAP = 10_000           # ... and per column; beyond it: HyperLogLog + approximate top values
APPROX_TOP_KEEP = 1_000         # candidates kept for approximate top values
MAX_COUNTED_VALUE_CHARS = 200   # longer text values: no top values (free text, not categories)


@dataclass
class ColumnInfo:
    name: str
    dtype: str                      # Arrow type, e.g. "int64", "string", "timestamp[us]"
    kind: str                       # numeric | categorical | boolean | datetime | other
    nulls: int                      # missing values (NaN counts as missing, like pandas)
    min: Any = None                 # numeric / datetime (ISO string); None when non-finite
    max: Any = None
    mean: float | None = None       # numeric
    n_unique_estimate: int | None = None   # exact if n_unique_exact, else HyperLogLog (~1%)
    n_unique_exact: bool = False
    top_values: list[dict[str, Any]] | None = None  # categorical/boolean: [{"value", "count"}]
    top_values_exact: bool = False  # False: counts are lower bounds (too many distinct values)

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(dataclasses.asdict(self))


@dataclass
class DatasetInfo:
    n_rows: int
    n_columns: int
    columns: list[ColumnInfo]
    preview: list[dict[str, Any]]   # first rows, JSON-safe
    source_format: str              # "csv" | "parquet"
    delimiter: str | None           # CSV only
    encoding: str | None            # CSV only: "utf-8", "utf-8-sig" (BOM) or "latin-1"
    row_group_rows: int             # the bound used when writing
    n_row_groups: int
    bytes_on_disk: int              # size of the Parquet file written
    source_bytes: int = 0
    filename: str | None = None     # the filename_hint given to ingest()

    def column(self, name: str) -> ColumnInfo:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (``json.dumps(..., allow_nan=False)`` works)."""
        return _json_safe(dataclasses.asdict(self))


def _kind(arrow_type: pa.DataType) -> str:
    t = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
    if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "numeric"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "categorical"
    return "other"


class _ColumnStats:
    """Streaming summary of one column, bounded memory: nulls, min/max/mean, distinct values
    counted exactly up to ``cap`` then estimated (HyperLogLog), top values exact up to ``cap``
    distinct values, then approximate (lower-bound counts of the ``APPROX_TOP_KEEP`` most frequent
    candidates)."""

    def __init__(self, name: str, arrow_type: pa.DataType, cap: int) -> None:
        self.name, self.type, self.cap = name, arrow_type, cap
        self.kind = _kind(arrow_type)
        value_type = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
        if pa.types.is_string_view(value_type):      # fewer compute kernels than string
            value_type = pa.string()
        elif pa.types.is_float16(value_type):       # no min_max kernel
            value_type = pa.float32()
        self.value_type = value_type                 # what the summary computes on
        self.nulls = 0
        self.count = 0
        self.total = 0.0
        self.min: Any = None
        self.max: Any = None
        self.counts: dict[Any, int] | None = {} if self.kind != "other" else None
        self.hll: _HyperLogLog | None = None
        self.approx: dict[Any, int] | None = None
        self.with_top = self.kind in ("categorical", "boolean")

    def update(self, column: pa.ChunkedArray) -> None:
        if column.type != self.value_type and self.kind != "other":
            column = column.cast(self.value_type)
        self.nulls += column.null_count
        values = column
        if pa.types.is_floating(self.value_type):
            nan = pc.is_nan(column)
            n_nan = pc.sum(nan).as_py() or 0
            if n_nan:
                self.nulls += n_nan
                values = pc.filter(column, pc.invert(nan))  # drops nulls too
        if values.null_count:
            values = pc.drop_null(values)
        if len(values) == 0 or self.kind == "other":
            return
        self.count += len(values)
        if self.kind in ("numeric", "datetime"):
            bounds = pc.min_max(values)
            lo, hi = bounds["min"].as_py(), bounds["max"].as_py()
            self.min = lo if self.min is None or lo < self.min else self.min
            self.max = hi if self.max is None or hi > self.max else self.max
        if self.kind == "numeric":
            self.total += pc.sum(pc.cast(values, pa.float64(), safe=False)).as_py()
        self._distinct(values)

    def _distinct(self, values: pa.ChunkedArray) -> None:
        if self.counts is None and self.hll is None:
            return
        if self.hll is not None:                 # past the cap
            self.hll.add(values)
            if self.approx is not None:
                self._merge_approx(values)
            return
        assert self.counts is not None
        if self.kind == "categorical" and \
                (pc.max(pc.utf8_length(values)).as_py() or 0) > MAX_COUNTED_VALUE_CHARS:
            self._overflow(values, keep_top=False)   # free text: distinct estimate only
            return
        vc = pc.value_counts(values)
        if len(vc) > self.cap:
            self._overflow(values, keep_top=self.with_top, vc=vc)
            return
        counts = self.counts
        for value, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
            counts[value] = counts.get(value, 0) + n
        if len(counts) > self.cap:
            self._overflow(None, keep_top=self.with_top)

    def _overflow(self, values: pa.ChunkedArray | None, *, keep_top: bool,
                  vc: pa.StructArray | None = None) -> None:
        assert self.counts is not None
        self.hll = _HyperLogLog()
        if self.counts:
            self.hll.add(pa.array(list(self.counts), type=self.value_type))
        if keep_top:
            top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:APPROX_TOP_KEEP]
            self.approx = dict(top)
        self.counts = None
        if values is not None:
            self.hll.add(values)
            if self.approx is not None:
                self._merge_approx(values, vc)

    def _merge_approx(self, values: pa.ChunkedArray, vc: pa.StructArray | None = None) -> None:
        assert self.approx is not None
        vc = pc.value_counts(values) if vc is None else vc
        counts = vc.field("counts")
        if len(vc) > APPROX_TOP_KEEP:
            order = pc.array_sort_indices(counts, order="descending")[:APPROX_TOP_KEEP]
            vc = vc.take(order)
        approx = self.approx
        for value, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
            approx[value] = approx.get(value, 0) + n
        if len(approx) > 2 * APPROX_TOP_KEEP:
            self.approx = dict(sorted(approx.items(), key=lambda kv: -kv[1])[:APPROX_TOP_KEEP])

    def result(self) -> ColumnInfo:
        info = ColumnInfo(name=self.name, dtype=str(self.type), kind=self.kind, nulls=self.nulls)
        if self.kind in ("numeric", "datetime"):
            info.min, info.max = _json_safe(self.min), _json_safe(self.max)
        if self.kind == "numeric" and self.count:
            info.mean = _json_safe(self.total / self.count)
        if self.counts is not None:
            info.n_unique_estimate, info.n_unique_exact = len(self.counts), True
            source = self.counts
        elif self.hll is not None:
            info.n_unique_estimate = max(self.hll.estimate(), self.cap + 1)
            source = self.approx
        else:
            source = None
        if self.with_top and source is not None:
            top = sorted(source.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP_VALUES]
            info.top_values = [{"value": _json_safe(v, MAX_COUNTED_VALUE_CHARS), "count": n}
                               for v, n in top]
            info.top_values_exact = source is self.counts
        return info


class _HyperLogLog:
    """HyperLogLog (2**14 one-byte registers: 16 KiB, ~0.8% standard error) over pandas' 64-bit
    value hashes."""

    P = 14
    M = 1 << P

    def __init__(self) -> None:
        self.registers = np.zeros(self.M, dtype=np.uint8)

    def add(self, values: pa.Array | pa.ChunkedArray) -> None:
        if len(values) == 0:
            return
        hashes = pd.util.hash_array(_hashable(values), categorize=False)
        index = (hashes >> np.uint64(64 - self.P)).astype(np.intp)
        w = (hashes << np.uint64(self.P)) | np.uint64(1 << (self.P - 1))
        smeared = w.copy()
        for shift in (1, 2, 4, 8, 16, 32):
            smeared |= smeared >> np.uint64(shift)
        rank = (65 - np.bitwise_count(smeared)).astype(np.uint8)   # leading zeros + 1
        np.maximum.at(self.registers, index, rank)

    def estimate(self) -> int:
        m = float(self.M)
        alpha = 0.7213 / (1 + 1.079 / m)
        estimate = alpha * m * m / float(np.sum(np.ldexp(1.0, -self.registers.astype(np.int64))))
        zeros = int(np.count_nonzero(self.registers == 0))
        if estimate <= 2.5 * m and zeros:
            estimate = m * math.log(m / zeros)
        return int(round(estimate))


def _hashable(values: pa.Array | pa.ChunkedArray) -> np.ndarray:
    t = values.type
    if pa.types.is_decimal(t):
        values, t = values.cast(pa.string()), pa.string()
    array = values.to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return np.ascontiguousarray(array).view(np.int64)
    if pa.types.is_floating(t):
        return array.astype(np.float64) + 0.0     # -0.0 == 0.0
    return array


def _json_safe(value: Any, max_chars: int | None = None) -> Any:
    """Convert to JSON-safe Python: NaN/inf -> None, datetimes -> ISO 8601 strings, Decimal ->
    float, bytes -> text (UTF-8 or hex), containers recursively; strings cut at ``max_chars``."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        if max_chars is not None and len(value) > max_chars:
            return value[: max_chars - 1] + "…"
        return value
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return _json_safe(float(value))
    if isinstance(value, np.generic):
        return _json_safe(value.item(), max_chars)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.hex()
        return _json_safe(text, max_chars)
    if isinstance(value, dict):
        return {str(k): _json_safe(v, max_chars) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v, max_chars) for v in value]
    return _json_safe(str(value), max_chars)
