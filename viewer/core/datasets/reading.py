"""Reading an ingested dataset back: what scoring and importance use.

``n_row_groups(path)`` / ``read_row_group(path, i)``  random access for chunked scoring
``iter_chunks(path, ...)``                  (start_row, pyarrow.Table) per row group / batch
``sample_rows(path, k, ...)``               a seeded uniform sample, reading only the row groups it needs
``to_frame(table)``                         pandas DataFrame in the dtypes ``pandas.read_csv`` gives

Memory is bounded by one row group / batch; nothing here writes.
"""

from __future__ import annotations

import os
from typing import Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DatasetError, _quote

PARQUET_READ_BUFFER = 1 << 20   # buffered column-chunk reads: bounded even for huge row groups


def n_row_groups(path: str | os.PathLike[str]) -> int:
    with pq.ParquetFile(path) as pf:
        return pf.metadata.num_row_groups


def read_row_group(path: str | os.PathLike[str], i: int,
                   columns: list[str] | None = None) -> tuple[int, pa.Table]:
    """Row group ``i`` and the index of its first row (from the footer metadata, no data read)."""
    with pq.ParquetFile(path) as pf:
        meta = pf.metadata
        if not 0 <= i < meta.num_row_groups:
            raise IndexError(f"row group {i} out of range (0..{meta.num_row_groups - 1})")
        _check_columns(pf.schema_arrow, columns)
        start = sum(meta.row_group(j).num_rows for j in range(i))
        return start, pf.read_row_group(i, columns=columns)


def iter_chunks(path: str | os.PathLike[str], *, columns: list[str] | None = None,
                batch_rows: int | None = None) -> Iterator[tuple[int, pa.Table]]:
    """Yield ``(start_row, table)`` covering every row once, in order: one table per row group,
    or tables of at most ``batch_rows`` rows.  Memory is bounded by one row group / batch."""
    if batch_rows is not None and batch_rows < 1:
        raise ValueError("batch_rows must be >= 1")
    with pq.ParquetFile(path, buffer_size=PARQUET_READ_BUFFER, pre_buffer=False) as pf:
        _check_columns(pf.schema_arrow, columns)
        start = 0
        if batch_rows is None:
            for i in range(pf.metadata.num_row_groups):
                table = pf.read_row_group(i, columns=columns)
                yield start, table
                start += table.num_rows
        else:
            for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
                yield start, pa.Table.from_batches([batch])
                start += batch.num_rows


def sample_rows(path: str | os.PathLike[str], k: int, *, columns: list[str] | None = None,
                seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    """A uniform random sample of at most ``k`` rows (all of them when the dataset is smaller),
    in dataset order, and their row numbers. Reads only the row groups that hold a chosen row."""
    with pq.ParquetFile(path, buffer_size=PARQUET_READ_BUFFER, pre_buffer=False) as pf:
        _check_columns(pf.schema_arrow, columns)
        meta = pf.metadata
        sizes = np.array([meta.row_group(i).num_rows for i in range(meta.num_row_groups)], dtype=np.int64)
        n = int(sizes.sum())
        chosen = np.sort(np.random.default_rng(seed).choice(n, size=k, replace=False)) if k < n else np.arange(n)
        firsts = np.concatenate([[0], np.cumsum(sizes)])
        tables = []
        for i in range(len(sizes)):
            lo, hi = np.searchsorted(chosen, [firsts[i], firsts[i + 1]])
            if lo < hi:
                group = pf.read_row_group(i, columns=columns)
                tables.append(group.take(pa.array(chosen[lo:hi] - firsts[i])))
        if not tables:
            return pf.schema_arrow.empty_table() if columns is None else \
                pa.schema([pf.schema_arrow.field(c) for c in columns]).empty_table(), chosen
    return (pa.concat_tables(tables) if len(tables) > 1 else tables[0]), chosen


def _check_columns(schema: pa.Schema, columns: Iterable[str] | None) -> None:
    if columns is None:
        return
    missing = [c for c in columns if schema.get_field_index(c) < 0]
    if missing:
        raise DatasetError("The dataset has no column" + ("s " if len(missing) > 1 else " ")
                           + ", ".join(_quote(c) for c in missing[:10]) + ".")


def to_frame(table: pa.Table, *, start_row: int | None = None) -> pd.DataFrame:
    """A pandas DataFrame with the dtypes ``pandas.read_csv`` (pandas 3) gives for the same data,
    so a model trained on ``read_csv`` output sees the same input at scoring time:

    * text and dictionary (categorical) columns -> pandas' default ``str`` dtype, missing = NaN
      (not ``object``: pandas 3 reads text as ``str``, scikit-learn's encoders accept it);
    * int64 -> int64, or float64 when the chunk has missing values; float64 -> float64;
    * boolean -> bool, or object with True/False/NaN when missing values are present;
    * timestamps / dates -> datetime64 (``read_csv`` would leave them as text);
    * a column of nulls only -> float64 NaN.

    Column names and order are kept; the index starts at ``start_row`` when given.
    """
    arrays, names = [], []
    for name, column in zip(table.column_names, table.columns):
        t = column.type
        if pa.types.is_dictionary(t):
            column = column.cast(t.value_type)
        elif pa.types.is_string_view(t):
            column = column.cast(pa.string())
        elif pa.types.is_null(t):
            column = column.cast(pa.float64())
        arrays.append(column)
        names.append(name)
    frame = pa.Table.from_arrays(arrays, names=names).to_pandas(date_as_object=False)
    for name, column in zip(names, arrays):
        if pa.types.is_boolean(column.type) and column.null_count:
            series = frame[name]
            frame[name] = series.where(series.notna(), np.nan)
    if start_row is not None:
        frame.index = pd.RangeIndex(start_row, start_row + len(frame))
    return frame
