"""``ingest``: an uploaded CSV or Parquet file -> Parquet with bounded row groups, plus a summary,
written atomically.  The CSV path lives in ``csvfile``; Parquet input is rewritten here.  (Not
named ``ingest``: the package re-exports the function under that name.)
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .csvfile import DEFAULT_CSV_BLOCK_SIZE, _ingest_csv
from .errors import DatasetError, _snippet
from .reading import PARQUET_READ_BUFFER
from .sniff import _detect_format
from .summary import DatasetInfo
from .writing import DEFAULT_ROW_GROUP_ROWS, _check_names, _Options, _RowGroupWriter

_PANDAS_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


def ingest(src_path: str | os.PathLike[str], dest_path: str | os.PathLike[str], *,
           filename_hint: str | None = None, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
           preview_rows: int = 20, max_rows: int | None = None,
           csv_block_size: int = DEFAULT_CSV_BLOCK_SIZE, durable: bool = True) -> DatasetInfo:
    """Validate ``src_path`` (CSV or Parquet, detected by content) and store it as Parquet at
    ``dest_path`` with row groups of at most ``row_group_rows`` rows (and ~64 MiB).

    Writes a temporary file next to ``dest_path`` and renames it into place only on success;
    on any error the temporary file is removed and ``dest_path`` is untouched.  With ``durable``
    the file is fsync'ed before the rename, so a crash cannot leave a renamed but empty file
    (on ext4 this also flushes other recently written files, e.g. the upload: seconds per GB).
    ``filename_hint`` (the uploaded name) only breaks delimiter ties (.tsv) and is reported back.
    Raises ``DatasetError`` for every problem with the data; ``OSError`` for problems with paths.
    """
    if row_group_rows < 1:
        raise ValueError("row_group_rows must be >= 1")
    if preview_rows < 0:
        raise ValueError("preview_rows must be >= 0")
    if max_rows is not None and max_rows < 0:
        raise ValueError("max_rows must be >= 0")
    if csv_block_size < 1024:
        raise ValueError("csv_block_size must be >= 1024")
    src, dest = Path(src_path), Path(dest_path)
    source_format, sample = _detect_format(src)
    options = _Options(row_group_rows=row_group_rows, preview_rows=preview_rows, max_rows=max_rows,
                       block_size=csv_block_size, filename_hint=filename_hint)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if source_format == "parquet":
            info = _ingest_parquet(src, tmp, options)
        else:
            info = _ingest_csv(src, tmp, sample, options)
        if durable:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    info.bytes_on_disk = dest.stat().st_size
    info.source_bytes = src.stat().st_size
    info.filename = filename_hint
    return info


# -- Parquet --------------------------------------------------------------------------------------

def _corrupt_parquet(exc: Exception) -> DatasetError:
    return DatasetError("The Parquet file is corrupt or truncated and cannot be read "
                        f"({_snippet(str(exc), 120)}).")


def _ingest_parquet(src: Path, tmp: Path, opts: _Options) -> DatasetInfo:
    try:
        pf = pq.ParquetFile(src, buffer_size=PARQUET_READ_BUFFER, pre_buffer=False,
                            page_checksum_verification=True)
        arrow_schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise _corrupt_parquet(exc) from None
    with pf:
        keep = [f.name for f in arrow_schema if not _PANDAS_INDEX_COLUMN.fullmatch(f.name)]
        if not keep:
            raise DatasetError("The Parquet file has no columns.")
        _check_names(keep)
        n_rows = pf.metadata.num_rows
        if n_rows == 0:
            raise DatasetError("The Parquet file has no rows.")
        if opts.max_rows is not None and n_rows > opts.max_rows:
            raise DatasetError(f"The file has {n_rows:,} rows, more than {opts.max_rows:,}, the "
                               "limit for a dataset.")
        schema = pa.schema([arrow_schema.field(name) for name in keep])  # drops pandas metadata
        batches = pf.iter_batches(batch_size=min(opts.row_group_rows, 65_536),
                                  columns=keep if len(keep) < len(arrow_schema) else None)
        with _RowGroupWriter(tmp, schema, opts) as writer:
            while True:
                try:
                    batch = next(batches)
                except StopIteration:
                    break
                except (pa.ArrowException, OSError, ValueError) as exc:
                    raise _corrupt_parquet(exc) from None
                writer.add(batch)
    if writer.n_rows != n_rows:
        raise DatasetError(f"The Parquet file is corrupt: its metadata says {n_rows:,} rows but "
                           f"{writer.n_rows:,} could be read.")
    return writer.info(source_format="parquet", delimiter=None, encoding=None)
