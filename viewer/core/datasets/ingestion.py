"""``ingest``: an uploaded CSV or Parquet file -> Parquet with bounded row groups, plus a summary,
written atomically.  The CSV path lives in ``csvfile``; Parquet input is rewritten here.  (Not
named ``ingest``: the package re-exports the function under that name.)
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import re
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .csvfile import DECIMALS, DEFAULT_CSV_BLOCK_SIZE, THOUSANDS, _ingest_csv
from .errors import DatasetError, _snippet
from .reading import PARQUET_READ_BUFFER
from .sniff import DELIMITERS, SAMPLE_BYTES, _detect_format
from .summary import DatasetInfo
from .writing import DEFAULT_ROW_GROUP_ROWS, _check_names, _Options, _RowGroupWriter

_PANDAS_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


def ingest(src_path: str | os.PathLike[str], dest_path: str | os.PathLike[str], *,
           filename_hint: str | None = None, row_group_rows: int = DEFAULT_ROW_GROUP_ROWS,
           preview_rows: int = 20, max_rows: int | None = None,
           csv_block_size: int = DEFAULT_CSV_BLOCK_SIZE, durable: bool = True,
           delimiter: str | None = None, decimal: str | None = None, thousands: str | None = None,
           encoding: str | None = None, sheet: str | None = None) -> DatasetInfo:
    """Validate ``src_path`` (CSV or Parquet, detected by content) and store it as Parquet at
    ``dest_path`` with row groups of at most ``row_group_rows`` rows (and ~64 MiB).

    Writes a temporary file next to ``dest_path`` and renames it into place only on success;
    on any error the temporary file is removed and ``dest_path`` is untouched.  With ``durable``
    the file is fsync'ed before the rename, so a crash cannot leave a renamed but empty file
    (on ext4 this also flushes other recently written files, e.g. the upload: seconds per GB).
    ``filename_hint`` (the uploaded name) only breaks delimiter ties (.tsv) and is reported back.
    ``delimiter``, ``decimal``, ``thousands`` ("" for none) and ``encoding`` override what is
    sniffed from a CSV file; ``sheet`` chooses an .xlsx file's sheet (default: the first).
    Raises ``DatasetError`` for every problem with the data (and with these options);
    ``OSError`` for problems with paths.
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
    options = _Options(row_group_rows=row_group_rows, preview_rows=preview_rows, max_rows=max_rows,
                       block_size=csv_block_size, filename_hint=filename_hint,
                       **check_read_options(delimiter=delimiter, decimal=decimal,
                                            thousands=thousands, encoding=encoding, sheet=sheet))
    source_format, sample = _detect_format(src)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if source_format == "parquet":
            info = _ingest_parquet(src, tmp, options)
        elif source_format == "xlsx":
            info = _ingest_xlsx(src, tmp, options)
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


def check_read_options(*, delimiter: str | None = None, decimal: str | None = None,
                       thousands: str | None = None, encoding: str | None = None,
                       sheet: str | None = None) -> dict:
    """The reading options, checked and normalised (names such as "tab" or "semicolon" are
    accepted for delimiters); a DatasetError names a bad one and the choices."""
    names = {"comma": ",", "semicolon": ";", "tab": "\t", "\\t": "\t", "pipe": "|", "none": "",
             "space": " ", "dot": ".", "period": ".", "apostrophe": "'"}
    out: dict = {}
    if delimiter:
        delimiter = names.get(delimiter.lower(), delimiter)
        if delimiter not in DELIMITERS:
            raise DatasetError(f"The delimiter {delimiter!r} is not supported: choose one of comma, "
                               "semicolon, tab or pipe.")
        out["delimiter"] = delimiter
    if decimal:
        decimal = names.get(decimal.lower(), decimal)
        if decimal not in DECIMALS:
            raise DatasetError(f"The decimal separator {decimal!r} is not supported: choose '.' "
                               "or ','.")
        out["decimal"] = decimal
    if thousands is not None and thousands != "":
        thousands = names.get(thousands.lower(), thousands)
        if thousands not in THOUSANDS + ("",):
            raise DatasetError(f"The thousands separator {thousands!r} is not supported: choose "
                               "none, '.', ',', ' ' or \"'\".")
    if thousands is not None:
        out["thousands"] = thousands
    if encoding:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise DatasetError(f"The encoding {_snippet(encoding, 40)!r} is unknown: choose one "
                               "such as utf-8, cp1252 (Excel in Western Europe) or latin-1.") from None
        if name.startswith("utf-16") or name.startswith("utf-32"):
            raise DatasetError("UTF-16 and UTF-32 files are not supported: save the file as UTF-8.")
        out["encoding"] = {"utf-8": "utf-8", "iso8859-1": "latin-1"}.get(name, name)
    if sheet:
        out["sheet"] = sheet
    return out


def _ingest_xlsx(src: Path, tmp: Path, opts: _Options) -> DatasetInfo:
    """The chosen (default: first) sheet, streamed through openpyxl's read-only mode into a
    temporary UTF-8 CSV (typed values written plainly: numbers with ".", dates ISO), which the
    CSV path then reads; memory stays bounded by one row."""
    from .xlsx import sheet_to_csv

    fd, csv_name = tempfile.mkstemp(prefix=f".{tmp.name}.", suffix=".csv", dir=tmp.parent)
    os.close(fd)
    csv_path = Path(csv_name)
    try:
        sheet = sheet_to_csv(src, csv_path, opts.sheet, max_rows=opts.max_rows)
        with open(csv_path, "rb") as fh:
            sample = fh.read(SAMPLE_BYTES)
        if not sample.strip():
            raise DatasetError(f"The sheet {sheet!r} is empty.")
        csv_opts = dataclasses.replace(opts, delimiter=",", decimal=".", thousands="",
                                       encoding="utf-8")
        info = _ingest_csv(csv_path, tmp, sample, csv_opts)
    finally:
        csv_path.unlink(missing_ok=True)
    info.source_format, info.delimiter, info.encoding = "xlsx", None, None
    info.decimal = info.thousands = None
    info.sheet = sheet
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
