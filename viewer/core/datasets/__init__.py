"""Dataset ingestion: uploaded CSV or Parquet -> Parquet with bounded row groups, plus a summary.

Everything here streams: memory depends on the block / row-group size and the number of columns,
never on the number of rows. Framework-free (stdlib, numpy, pandas, pyarrow only).

Public API
----------
``ingest(src, dest, ...) -> DatasetInfo``   validate + convert + summarise, atomically
``iter_chunks(path, ...)``                  (start_row, pyarrow.Table) per row group / batch
``n_row_groups(path)`` / ``read_row_group(path, i)``  random access for chunked scoring
``to_frame(table)``                         pandas DataFrame in the dtypes ``pandas.read_csv`` gives
``DatasetError``                            every problem with the *data*, with a message for users

Modules
-------
``ingestion`` the entry point: detect the format, convert atomically; Parquet input is rewritten here
``sniff``     format detection (by content), encoding and delimiter sniffing
``csvfile``   CSV input: two-pass typing, conversion, errors located by line
``writing``   bounded row groups, the column-name checks, the preview
``summary``   ``DatasetInfo`` / ``ColumnInfo`` and the streaming column summaries
``reading``   reading back (scoring, importance): no ingestion code needed
``errors``    ``DatasetError``

Every public name of these modules is re-exported here (with the few private ones the tests
use), so ``from viewer.core.datasets import X`` works as it did when this was one module.

Memory
------
Bounded by: pyarrow's CSV read-ahead (~32 blocks of ``csv_block_size``), one row group being
assembled (``row_group_rows`` rows, at most ~``ROW_GROUP_MAX_BYTES``), one pass-1 chunk, and the
summaries (per column: <= ``EXACT_DISTINCT`` distinct values as one Arrow array, then a 16 KiB
HyperLogLog sketch; <= ``DISTINCT_CAP`` exact top-value counts then <= 2 x ``APPROX_TOP_KEEP``
candidates; a 64-bin histogram).  Parquet input is read with a buffered stream, so a file whose single row group is
larger than memory is fine too.  Measured (bench/ingest.py): ~120 MB above the imports, the same
for 100 MB and 1 GB of CSV.
"""

from __future__ import annotations

from .csvfile import (
    CSV_BLOCK_RETRY_FACTOR, DEFAULT_CSV_BLOCK_SIZE, FALSE_VALUES, INFER_CHUNK_ROWS, PANDAS_NA_VALUES,
    TRUE_VALUES, _INT, _infer_chunk,
)
from .errors import MESSAGE_SNIPPET_CHARS, DatasetError
from .ingestion import ingest
from .reading import PARQUET_READ_BUFFER, iter_chunks, n_row_groups, read_row_group, to_frame
from .sniff import DELIMITERS, SAMPLE_BYTES, SNIFF_RECORDS
from .summary import (
    APPROX_TOP_KEEP, DISTINCT_BUDGET, DISTINCT_CAP, EXACT_DISTINCT, ID_UNIQUE_SHARE, MAX_COUNTED_VALUE_CHARS,
    TOP_VALUES, ColumnInfo,
    DatasetInfo, _ColumnStats,
)
from .writing import DEFAULT_ROW_GROUP_ROWS, MAX_COLUMNS, PREVIEW_MAX_CHARS, ROW_GROUP_MAX_BYTES

__all__ = [
    "DatasetError", "ColumnInfo", "DatasetInfo", "ingest", "iter_chunks", "n_row_groups",
    "read_row_group", "to_frame", "PANDAS_NA_VALUES", "DEFAULT_ROW_GROUP_ROWS", "MAX_COLUMNS",
]
