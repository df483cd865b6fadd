"""What ingestion reports about a dataset (``DatasetInfo``, ``ColumnInfo``), and the streaming
column summaries that compute it while the Parquet file is written.

Memory per column: the distinct values (an Arrow array, <= ``EXACT_DISTINCT`` values and
``EXACT_DISTINCT_BYTES``), then a 16 KiB HyperLogLog sketch; <= ``DISTINCT_CAP`` exact top-value
counts, then <= 2 x ``APPROX_TOP_KEEP`` candidates (``DISTINCT_BUDGET`` caps the total over all
columns); a histogram of ``HISTOGRAM_BINS`` counts.
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
DISTINCT_BUDGET = 200_000       # exact top-value counts kept over *all* columns ...
DISTINCT_CAP = 10_000           # ... and per column; beyond: approximate top values (lower bounds)
APPROX_TOP_KEEP = 1_000         # candidates kept for approximate top values
MAX_COUNTED_VALUE_CHARS = 200   # longer text values: no top values (free text, not categories)
#: Distinct counts are exact below ``EXACT_DISTINCT`` distinct values per column (kept as one Arrow
#: array of the distinct values, at most ``EXACT_DISTINCT_BYTES``); beyond, a HyperLogLog estimate
#: (~0.8 % error) marked as such, never above the column's number of values.  Wide tables share
#: ``EXACT_DISTINCT_TOTAL`` values over all columns (at least ``DISTINCT_CAP`` per column).
EXACT_DISTINCT = 100_000
EXACT_DISTINCT_BYTES = 8 << 20
EXACT_DISTINCT_TOTAL = 4_000_000
#: An integer or text column is an identifier when its distinct values are at least
#: ``ID_UNIQUE_SHARE`` of its rows (missing values count as rows) and it has >= ``ID_MIN_ROWS``
#: rows; with an estimated distinct count (more than ``EXACT_DISTINCT`` values) the share asked
#: is ``ID_UNIQUE_SHARE_ESTIMATED`` (the estimate's error is about 1 %).
ID_UNIQUE_SHARE = 0.999
ID_UNIQUE_SHARE_ESTIMATED = 0.98
ID_MIN_ROWS = 20
HISTOGRAM_BINS = 64             # streaming histogram of numeric / datetime columns (bins double)
SMALL_NUMERIC_DISTINCT = 20     # numeric columns with at most this many values: bars per value


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
    identifier: bool = False        # detected as an ID column (see ID_UNIQUE_SHARE)
    #: numeric / datetime: {"edges": [n+1 numbers], "counts": [n]} (datetime edges in epoch
    #: microseconds); numeric columns with few values have ``top_values`` instead
    histogram: dict[str, list] | None = None

    def to_dict(self) -> dict[str, Any]:
        return _json_safe(dataclasses.asdict(self))


@dataclass
class DatasetInfo:
    n_rows: int
    n_columns: int
    columns: list[ColumnInfo]
    preview: list[dict[str, Any]]   # first rows, JSON-safe
    source_format: str              # "csv" | "parquet" | "xlsx"
    delimiter: str | None           # CSV only
    encoding: str | None            # CSV only: "utf-8", "utf-8-sig" (BOM), "cp1252", "latin-1", ...
    row_group_rows: int             # the bound used when writing
    n_row_groups: int
    bytes_on_disk: int              # size of the Parquet file written
    source_bytes: int = 0
    filename: str | None = None     # the filename_hint given to ingest()
    decimal: str | None = None      # CSV only: "." or ","
    thousands: str | None = None    # CSV only: the thousands separator, None for none
    sheet: str | None = None        # xlsx only: the sheet read
    #: problems a user should see, e.g. a mostly numeric column stored as text:
    #: [{"column", "kind", "message", "examples"}]
    warnings: list[dict[str, Any]] = dataclasses.field(default_factory=list)

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


class _Histogram:
    """A streaming histogram of ``HISTOGRAM_BINS`` equal bins whose range grows as values arrive:
    when a value falls outside, neighbouring bins are merged in pairs (the width doubles), so the
    memory is fixed and no second pass is needed."""

    def __init__(self, bins: int = HISTOGRAM_BINS) -> None:
        self.bins = bins
        self.lo: float | None = None
        self.width = 1.0
        self.counts = np.zeros(bins, dtype=np.int64)

    def _merge(self) -> np.ndarray:
        return self.counts.reshape(-1, 2).sum(axis=1)

    def add(self, values: np.ndarray) -> None:
        if not len(values):
            return
        lo, hi = float(values.min()), float(values.max())
        if self.lo is None:
            self.lo = lo
            self.width = (hi - lo) / self.bins if hi > lo else 1.0
            if hi > lo:
                self.width *= 1 + 1e-9          # the maximum falls inside the last bin
        half = self.bins // 2
        while lo < self.lo:
            merged = self._merge()
            self.counts = np.zeros(self.bins, dtype=np.int64)
            self.counts[half:] = merged
            self.lo -= self.bins * self.width
            self.width *= 2
        while hi >= self.lo + self.bins * self.width:
            merged = self._merge()
            self.counts = np.zeros(self.bins, dtype=np.int64)
            self.counts[:half] = merged
            self.width *= 2
        index = np.clip(((values - self.lo) / self.width).astype(np.int64), 0, self.bins - 1)
        self.counts += np.bincount(index, minlength=self.bins)

    def result(self) -> dict[str, list] | None:
        if self.lo is None:
            return None
        used = np.flatnonzero(self.counts)
        first, last = int(used[0]), int(used[-1])
        counts = self.counts[first:last + 1]
        while len(counts) > 32:               # at most 32 bars on a page
            if len(counts) % 2:
                counts = np.append(counts, 0)
                last += 1
            counts = counts.reshape(-1, 2).sum(axis=1)
        width = (last + 1 - first) * self.width / len(counts)
        start = self.lo + first * self.width
        edges = [start + i * width for i in range(len(counts) + 1)]
        return {"edges": edges, "counts": counts.tolist()}


class _ColumnStats:
    """Streaming summary of one column, bounded memory: nulls, min/max/mean, a histogram, distinct
    values counted exactly below ``exact_cap`` (an Arrow array of the distinct values) then
    estimated (HyperLogLog), top values exact up to ``cap`` distinct values, then approximate
    (lower-bound counts of the ``APPROX_TOP_KEEP`` most frequent candidates)."""

    def __init__(self, name: str, arrow_type: pa.DataType, cap: int,
                 exact_cap: int = EXACT_DISTINCT) -> None:
        self.name, self.type, self.cap, self.exact_cap = name, arrow_type, cap, exact_cap
        self.kind = _kind(arrow_type)
        value_type = arrow_type.value_type if pa.types.is_dictionary(arrow_type) else arrow_type
        if pa.types.is_string_view(value_type):      # fewer compute kernels than string
            value_type = pa.string()
        elif pa.types.is_float16(value_type):       # no min_max kernel
            value_type = pa.float32()
        self.value_type = value_type                 # what the summary computes on
        self.nulls = 0
        self.rows = 0
        self.count = 0
        self.total = 0.0
        self.min: Any = None
        self.max: Any = None
        self.with_top = self.kind in ("categorical", "boolean")
        self.counts: dict[Any, int] | None = {} if self.kind in ("categorical", "boolean",
                                                                  "numeric") else None
        self.count_cap = cap if self.with_top else SMALL_NUMERIC_DISTINCT
        self.distinct: pa.Array | None = pa.array([], type=value_type) \
            if self.kind != "other" else None
        self.hll: _HyperLogLog | None = None
        self.approx: dict[Any, int] | None = None
        self.histogram = _Histogram() if self.kind in ("numeric", "datetime") else None

    def update(self, column: pa.ChunkedArray) -> None:
        self.rows += len(column)
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
            as_float = pc.cast(values, pa.float64(), safe=False)
            self.total += pc.sum(as_float).as_py()
            finite = as_float.to_numpy()
            self.histogram.add(finite[np.isfinite(finite)])
        elif self.kind == "datetime":
            self.histogram.add(_hashable(values).astype(np.float64) * _unit_to_us(self.value_type))
        vc = None
        if self.counts is not None or self.approx is not None:   # one value_counts for both
            if not (self.kind == "categorical" and
                    (pc.max(pc.utf8_length(values)).as_py() or 0) > MAX_COUNTED_VALUE_CHARS):
                vc = pc.value_counts(values)
        self._distinct(values, vc)
        self._count(values, vc)

    def _distinct(self, values: pa.ChunkedArray, vc: pa.StructArray | None = None) -> None:
        if self.hll is not None:
            self.hll.add(values if vc is None else vc.field("values"))
            return
        if self.distinct is None:
            return
        new = pc.unique(values) if vc is None else vc.field("values")
        if len(new) > self.exact_cap:
            self.hll = _HyperLogLog()
            self.hll.add(self.distinct)
            self.hll.add(new)
            self.distinct = None
            return
        merged = pc.unique(pa.chunked_array([self.distinct, new], type=self.value_type)) \
            if len(self.distinct) else new
        if len(merged) > self.exact_cap or merged.nbytes > EXACT_DISTINCT_BYTES:
            self.hll = _HyperLogLog()
            self.hll.add(merged)
            self.distinct = None
        else:
            self.distinct = merged

    def _count(self, values: pa.ChunkedArray, vc: pa.StructArray | None) -> None:
        if vc is None:               # free text (values too long to count): no top values
            self.counts = self.approx = None
            return
        if self.counts is None:
            if self.approx is not None:
                self._merge_approx(values, vc)
            return
        if len(vc) > self.count_cap:
            self._overflow(values, vc)
            return
        counts = self.counts
        for value, n in zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()):
            counts[value] = counts.get(value, 0) + n
        if len(counts) > self.count_cap:
            self._overflow(None)

    def _overflow(self, values: pa.ChunkedArray | None, vc: pa.StructArray | None = None) -> None:
        assert self.counts is not None
        if self.with_top:
            top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:APPROX_TOP_KEEP]
            self.approx = dict(top)
        self.counts = None
        if values is not None and self.approx is not None:
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
        if self.distinct is not None:
            info.n_unique_estimate, info.n_unique_exact = len(self.distinct), True
        elif self.hll is not None:   # never below the exact bound, never above the values
            info.n_unique_estimate = min(max(self.hll.estimate(), self.exact_cap + 1), self.count)
        source = self.counts if self.counts is not None else self.approx
        small_numeric = self.kind == "numeric" and self.counts is not None
        if (self.with_top or small_numeric) and source:
            top = sorted(source.items(), key=lambda kv: (-kv[1], str(kv[0])))
            if small_numeric:
                top = sorted(top, key=lambda kv: kv[0])
            else:
                top = top[:TOP_VALUES]
            info.top_values = [{"value": _json_safe(v, MAX_COUNTED_VALUE_CHARS), "count": n}
                               for v, n in top]
            info.top_values_exact = source is self.counts
        if self.histogram is not None and not small_numeric:
            info.histogram = _json_safe(self.histogram.result())
        info.identifier = self._is_identifier(info)
        return info

    def _is_identifier(self, info: ColumnInfo) -> bool:
        t = self.value_type
        if not (pa.types.is_integer(t) or self.kind == "categorical"):
            return False
        if self.rows < ID_MIN_ROWS or info.n_unique_estimate is None:
            return False
        share = ID_UNIQUE_SHARE if info.n_unique_exact else ID_UNIQUE_SHARE_ESTIMATED
        return info.n_unique_estimate >= share * self.rows


def _unit_to_us(t: pa.DataType) -> float:
    if pa.types.is_date32(t):
        return 86_400e6
    if pa.types.is_date64(t):
        return 1e3
    return {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}[t.unit]


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
