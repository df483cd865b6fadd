"""Writing the stored Parquet file: row groups bounded in rows and in bytes, each one fed to the
column summaries and the preview as it is written.  Shared by the CSV and the Parquet inputs,
with the column-name checks both need.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import DatasetError, _quote
from .summary import (
    DISTINCT_BUDGET, DISTINCT_CAP, EXACT_DISTINCT, EXACT_DISTINCT_TOTAL, DatasetInfo, _ColumnStats, _json_safe,
    _kind,
)

#: Rows per Parquet row group.  A row group is the unit of work of a scoring job (read, convert to
#: pandas, predict): 100k rows x 50 numeric columns is ~40 MB as float64, which fits comfortably in
#: a worker next to a model, yet is large enough that per-group overhead (Python, predict() call,
#: Parquet metadata) is negligible and column compression works well.  ``ROW_GROUP_MAX_BYTES`` caps
#: very wide tables, so a row group holds at most 100k rows *and* at most ~64 MiB of Arrow data.
DEFAULT_ROW_GROUP_ROWS = 100_000
ROW_GROUP_MAX_BYTES = 64 << 20
MAX_COLUMNS = 10_000
PREVIEW_MAX_CHARS = 500


@dataclass
class _Options:
    row_group_rows: int
    preview_rows: int
    max_rows: int | None
    block_size: int
    filename_hint: str | None
    delimiter: str | None = None     # CSV overrides (None: sniffed)
    decimal: str | None = None
    thousands: str | None = None     # "" means "no thousands separator"
    encoding: str | None = None
    sheet: str | None = None         # xlsx: the sheet to read (None: the first)


def _check_names(names: list[str]) -> None:
    if len(names) > MAX_COLUMNS:
        raise DatasetError(f"The file has {len(names):,} columns; at most {MAX_COLUMNS:,} are "
                           "supported.")
    empty = [i + 1 for i, name in enumerate(names) if not name.strip()]
    if empty:
        which = ", ".join(str(i) for i in empty[:10]) + (", ..." if len(empty) > 10 else "")
        hint = " (a CSV written by pandas with its index? save it with index=False)" \
            if empty[0] == 1 else ""
        raise DatasetError(f"Column{'s' if len(empty) > 1 else ''} {which} "
                           f"{'have' if len(empty) > 1 else 'has'} an empty name in the header"
                           f"{hint}. Every column needs a name.")
    seen: dict[str, int] = {}
    duplicates: list[str] = []
    for i, name in enumerate(names, start=1):
        if name in seen:
            duplicates.append(f"{_quote(name)} (columns {seen[name]} and {i})")
        else:
            seen[name] = i
    if duplicates:
        raise DatasetError("Duplicate column name" + ("s: " if len(duplicates) > 1 else ": ")
                           + ", ".join(duplicates[:5]) + (", ..." if len(duplicates) > 5 else "")
                           + ". Column names must be unique.")


class _RowGroupWriter:
    """Buffers batches into row groups of <= row_group_rows rows / ~ROW_GROUP_MAX_BYTES, writes
    each with ParquetWriter and feeds it to the column summaries and the preview."""

    def __init__(self, path: Path, schema: pa.Schema, opts: _Options) -> None:
        self.path, self.schema, self.opts = path, schema, opts
        self.buffer: list[pa.RecordBatch] = []
        self.buffer_rows = self.buffer_bytes = 0
        self.n_rows = 0
        self.n_row_groups = 0
        self.preview: list[dict[str, Any]] = []
        cap = max(100, min(DISTINCT_CAP, DISTINCT_BUDGET // max(1, len(schema))))
        exact = max(DISTINCT_CAP, min(EXACT_DISTINCT, EXACT_DISTINCT_TOTAL // max(1, len(schema))))
        self.stats = [_ColumnStats(f.name, f.type, cap, exact) for f in schema]
        self.writer: pq.ParquetWriter | None = None

    def __enter__(self) -> _RowGroupWriter:
        # dictionary encoding only for text: on high-cardinality numbers it doubles write time
        text = [f.name for f in self.schema if _kind(f.type) == "categorical"]
        self.writer = pq.ParquetWriter(self.path, self.schema, compression="zstd",
                                       use_dictionary=text, write_statistics=True)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.writer is not None
        if exc_type is not None:       # the caller deletes the file; keep the original error
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001
                pass
            return
        try:
            self.flush()
        finally:
            self.writer.close()

    def add(self, batch: pa.RecordBatch) -> None:
        if not batch.schema.equals(self.schema, check_metadata=True):   # names (BOM), metadata
            batch = pa.RecordBatch.from_arrays(batch.columns, schema=self.schema)
        limit = self.opts.row_group_rows
        # (RecordBatch.nbytes walks every column in Python-visible code: slow for wide tables)
        bytes_per_row = batch.get_total_buffer_size() / max(1, batch.num_rows)
        while batch.num_rows:
            take = min(batch.num_rows, limit - self.buffer_rows)
            part = batch.slice(0, take) if take < batch.num_rows else batch
            batch = batch.slice(take)
            self.buffer.append(part)
            self.buffer_rows += part.num_rows
            self.buffer_bytes += int(part.num_rows * bytes_per_row)
            if self.buffer_rows >= limit or self.buffer_bytes >= ROW_GROUP_MAX_BYTES:
                self.flush()

    def flush(self) -> None:
        if not self.buffer_rows:
            return
        table = pa.Table.from_batches(self.buffer, schema=self.schema)
        self.buffer, self.buffer_rows, self.buffer_bytes = [], 0, 0
        assert self.writer is not None
        self.writer.write_table(table, row_group_size=table.num_rows)
        self.n_row_groups += 1
        self.n_rows += table.num_rows
        for stats, column in zip(self.stats, table.columns):
            stats.update(column)
        missing = self.opts.preview_rows - len(self.preview)
        if missing > 0:
            rows = table.slice(0, missing).to_pylist()
            self.preview.extend({k: _json_safe(v, PREVIEW_MAX_CHARS) for k, v in row.items()}
                                for row in rows)

    def info(self, *, source_format: str, delimiter: str | None,
             encoding: str | None, **extra: Any) -> DatasetInfo:
        return DatasetInfo(n_rows=self.n_rows, n_columns=len(self.schema),
                           columns=[s.result() for s in self.stats], preview=self.preview,
                           source_format=source_format, delimiter=delimiter, encoding=encoding,
                           row_group_rows=self.opts.row_group_rows, n_row_groups=self.n_row_groups,
                           bytes_on_disk=0, **extra)
