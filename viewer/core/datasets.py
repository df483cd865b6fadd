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

CSV type inference (two streaming passes)
-----------------------------------------
Pass 1 reads every column as text (pyarrow's streaming CSV reader, so quoting, embedded newlines
and ragged rows are handled by the same parser as pass 2) and, chunk by chunk, finds for each column
the narrowest type that *every* value in the file fits: null < int64 < float64, boolean, date32 <
timestamp, timestamp with zone, else string.  A column that is int in the first block and float (or
text) a million rows later is therefore float (or string) from the start -- nothing fails mid-file.
Pass 2 re-reads with those explicit ``column_types`` and writes Parquet, computing the summary.
Pass 1 also does all validation (ragged rows, quotes, encoding, ``max_rows``), so nothing is written
for a bad file.  If pyarrow's converter still rejects a value in pass 2 (its parsing rules differ
from ``pyarrow.compute.cast`` in corner cases), that column is widened to string and pass 2 restarts.
Missing values follow pandas: ``""``, ``NA``, ``NaN``, ``null``, ... (``PANDAS_NA_VALUES``);
booleans are ``true``/``True``/``TRUE`` and ``false``/``False``/``FALSE`` (as pandas; ``1``/``0`` stay
integers); a column with no values at all is float64 (as pandas).  Known differences from ``pandas.read_csv``: ISO dates
and timestamps become date32/timestamp columns (pandas leaves text); integers beyond int64 become
float64 (pandas: object); ``+5`` is a float (pandas: int); decimal commas are not recognised.
Every dialect detail (quoting, ``""`` escapes, blank lines skipped, CRLF) is pyarrow's.

Encoding
--------
UTF-8 (with or without BOM) is assumed when the first MiB is valid UTF-8.  When an invalid byte
is found -- in the sample or, later, by pyarrow's UTF-8 check in pass 1 -- the file is read as
latin-1 only if every byte before that one is ASCII (so nothing already decoded changes meaning);
otherwise the file mixes encodings and is rejected with the line number.  latin-1 accepts every
byte, so "is this text at all" is decided separately: NUL bytes, a UTF-16 BOM, known binary
signatures (PNG, ZIP/xlsx, gzip, ...) or more than 1% control characters in the sample mean
"not a CSV/Parquet file".

Errors
------
Ragged rows and unterminated quotes are located (physical line numbers, header = line 1) by a
second, error-path-only scan with Python's csv module, because pyarrow's streaming reader reports
neither; its messages (which quote the whole offending row) are never passed on.

Memory
------
Bounded by: pyarrow's CSV read-ahead (~32 blocks of ``csv_block_size``), one row group being
assembled (``row_group_rows`` rows, at most ~``ROW_GROUP_MAX_BYTES``), one pass-1 chunk, and the
summaries (per column: <= ``DISTINCT_CAP`` exact distinct values, a 16 KiB HyperLogLog sketch and
<= 2 x ``APPROX_TOP_KEEP`` top-value candidates; ``DISTINCT_BUDGET`` caps the total over all
columns).  Parquet input is read with a buffered stream, so a file whose single row group is
larger than memory is fine too.  Measured (bench/ingest.py): ~120 MB above the imports, the same
for 100 MB and 1 GB of CSV.
"""

from __future__ import annotations

import collections
import csv
import dataclasses
import datetime as _dt
import decimal
import io
import itertools
import math
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

__all__ = [
    "DatasetError", "ColumnInfo", "DatasetInfo", "ingest", "iter_chunks", "n_row_groups",
    "read_row_group", "to_frame", "PANDAS_NA_VALUES", "DEFAULT_ROW_GROUP_ROWS", "MAX_COLUMNS",
]

# -- limits and defaults -------------------------------------------------------------------------

#: Rows per Parquet row group.  A row group is the unit of work of a scoring job (read, convert to
#: pandas, predict): 100k rows x 50 numeric columns is ~40 MB as float64, which fits comfortably in
#: a worker next to a model, yet is large enough that per-group overhead (Python, predict() call,
#: Parquet metadata) is negligible and column compression works well.  ``ROW_GROUP_MAX_BYTES`` caps
#: very wide tables, so a row group holds at most 100k rows *and* at most ~64 MiB of Arrow data.
DEFAULT_ROW_GROUP_ROWS = 100_000
ROW_GROUP_MAX_BYTES = 64 << 20
#: pyarrow CSV block: the unit the streaming reader parses; a single row must fit in it (on failure
#: the read is retried once with ``CSV_BLOCK_RETRY_FACTOR`` times the size).  pyarrow's streaming
#: reader reads ahead up to ~32 blocks in a background thread, so this also sets that memory
#: (~32-40 MiB at 1 MiB; 4 MiB blocks are not faster and cost ~150 MiB).
DEFAULT_CSV_BLOCK_SIZE = 1 << 20
CSV_BLOCK_RETRY_FACTOR = 8
MAX_COLUMNS = 10_000
SAMPLE_BYTES = 1 << 20          # encoding + delimiter detection
SNIFF_RECORDS = 200
INFER_CHUNK_ROWS = 65_536       # pass 1 looks at this many rows at a time (fewer Python calls)
PARQUET_READ_BUFFER = 1 << 20   # buffered column-chunk reads: bounded even for huge row groups
TOP_VALUES = 10
DISTINCT_BUDGET = 200_000       # exact distinct values kept over *all* columns ...
DISTINCT_CAP = 10_000           # ... and per column; beyond it: HyperLogLog + approximate top values
APPROX_TOP_KEEP = 1_000         # candidates kept for approximate top values
MAX_COUNTED_VALUE_CHARS = 200   # longer text values: no top values (free text, not categories)
PREVIEW_MAX_CHARS = 500
MESSAGE_SNIPPET_CHARS = 60

#: pandas.read_csv's default missing-value markers (pandas._libs.parsers.STR_NA_VALUES).
PANDAS_NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
TRUE_VALUES = ["true", "True", "TRUE"]
FALSE_VALUES = ["false", "False", "FALSE"]
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (Excel .xlsx files are ZIP archives: export the sheet as CSV)"),
    (b"PK\x05\x06", "an empty ZIP archive"),
    (b"PK\x07\x08", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip-compressed file (decompress it first)"),
    (b"\xfd7zXZ\x00", "an xz-compressed file (decompress it first)"),
    (b"(\xb5/\xfd", "a zstd-compressed file (decompress it first)"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel/Office document (export the sheet as CSV)"),
    (b"ARROW1", "an Arrow/Feather file"),
    (b"SQLite format 3\x00", "a SQLite database"),
    (b"\x7fELF", "an executable"),
)
_BZIP2 = re.compile(rb"\ABZh[1-9]1AY&SY")
_PANDAS_INDEX_COLUMN = re.compile(r"__index_level_\d+__")


# -- public types ---------------------------------------------------------------------------------

class DatasetError(Exception):
    """A problem with the uploaded data, phrased for the person who uploaded it.

    ``line`` is the 1-based physical line of a CSV file (the header is line 1) when known.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message


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


# -- ingest ---------------------------------------------------------------------------------------

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


@dataclass
class _Options:
    row_group_rows: int
    preview_rows: int
    max_rows: int | None
    block_size: int
    filename_hint: str | None


def _detect_format(src: Path) -> tuple[str, bytes]:
    size = src.stat().st_size
    if size == 0:
        raise DatasetError("The file is empty (0 bytes).")
    with open(src, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    if head.startswith(b"PAR1"):
        return "parquet", head
    for signature, what in _BINARY_SIGNATURES:
        if head.startswith(signature):
            raise DatasetError(f"This is not a CSV/Parquet file: it looks like {what}.")
    if _BZIP2.match(head):
        raise DatasetError("This is not a CSV/Parquet file: it looks like a bzip2-compressed file "
                           "(decompress it first).")
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DatasetError("The file is encoded as UTF-16, which is not supported: save it as "
                           "UTF-8 CSV.")
    if b"\x00" in head:
        raise DatasetError("This is not a CSV/Parquet file: it contains NUL bytes, so it is binary "
                           "data (or UTF-16 text without a byte order mark), not CSV text.")
    controls = len(head) - len(head.translate(None, _CONTROL_BYTES))
    if controls > max(8, len(head) // 100):
        raise DatasetError("This is not a CSV/Parquet file: its beginning contains many binary "
                           "control bytes.")
    return "csv", head


_CONTROL_BYTES = bytes(b for b in range(32) if b not in (9, 10, 12, 13)) + b"\x7f"


# -- CSV --------------------------------------------------------------------------------------------

@dataclass
class _Dialect:
    delimiter: str
    encoding: str          # Python codec: "utf-8", "utf-8-sig" or "latin-1"
    block_size: int

    @property
    def arrow_encoding(self) -> str:
        return "latin-1" if self.encoding == "latin-1" else "utf8"


class _Utf8Error(Exception):
    """pass 1 met bytes that are not UTF-8 (pyarrow does not say where)."""


class _BlockTooSmall(Exception):
    """a single row does not fit in a CSV block (or a quote is never closed)."""


class _Conversion(Exception):
    def __init__(self, column: int | None) -> None:
        super().__init__(column)
        self.column = column


_NULL, _INT, _FLOAT, _BOOL, _DATE, _TS, _TSTZ, _STRING = range(8)
_STATE_TYPES = {_NULL: pa.float64(), _INT: pa.int64(), _FLOAT: pa.float64(), _BOOL: pa.bool_(),
                _DATE: pa.date32(), _TS: pa.timestamp("us"), _TSTZ: pa.timestamp("us", tz="UTC"),
                _STRING: pa.string()}
# candidates tried for a chunk, given the column's state so far (narrowest first)
_CANDIDATES = {_NULL: (_INT, _FLOAT, _BOOL, _DATE, _TS, _TSTZ), _INT: (_INT, _FLOAT),
               _FLOAT: (_FLOAT,), _BOOL: (_BOOL,), _DATE: (_DATE, _TS), _TS: (_TS,),
               _TSTZ: (_TSTZ,), _STRING: ()}


def _ingest_csv(src: Path, tmp: Path, sample: bytes, opts: _Options) -> DatasetInfo:
    complete = len(sample) == src.stat().st_size
    encoding = _sample_encoding(sample, complete)
    dialect = _Dialect(_sniff_delimiter(sample, encoding, complete, opts.filename_hint), encoding,
                       opts.block_size)
    grown = False
    while True:
        try:
            raw_names = _csv_header(src, dialect)
            names = _clean_names(raw_names, dialect.encoding)
            states, n_rows = _csv_infer(src, dialect, raw_names, opts.max_rows)
            break
        except _Utf8Error:
            if dialect.encoding == "latin-1":
                raise DatasetError("The file could not be decoded as text.") from None
            dialect.encoding = _encoding_after_invalid_utf8(src)
        except _BlockTooSmall:
            if not grown:
                grown = True
                dialect.block_size *= CSV_BLOCK_RETRY_FACTOR
                continue
            raise _csv_problem(src, dialect, None) from None
    if n_rows == 0:
        raise DatasetError("The file has a header row but no data rows.")
    for attempt in range(len(states) + 1):
        try:
            return _csv_write(src, tmp, dialect, raw_names, names, states, n_rows, opts)
        except _Conversion as exc:  # pass 1 and pyarrow's converter disagree: widen, restart
            if exc.column is not None and states[exc.column] != _STRING:
                states[exc.column] = _STRING
            elif exc.column is None and any(s != _STRING for s in states):
                states = [_STRING] * len(states)
            else:
                raise DatasetError("The CSV file could not be converted (a value did not match "
                                   "its column's type).") from None
    raise AssertionError("unreachable")


def _sample_encoding(sample: bytes, complete: bool) -> str:
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if not complete and exc.reason == "unexpected end of data" and exc.end == len(sample):
            pass  # a multi-byte character cut by the end of the sample
        else:
            prefix = sample[3:exc.start] if sample.startswith(b"\xef\xbb\xbf") else sample[:exc.start]
            if prefix.isascii():
                return "latin-1"
            line = sample.count(b"\n", 0, exc.start) + 1
            raise _mixed_encoding(line) from None
    return "utf-8-sig" if sample.startswith(b"\xef\xbb\xbf") else "utf-8"


def _mixed_encoding(line: int) -> DatasetError:
    return DatasetError(f"Line {line} contains bytes that are not valid UTF-8, although earlier "
                        "lines contain UTF-8 text: the file mixes encodings. Save it as UTF-8.",
                        line=line)


def _encoding_after_invalid_utf8(src: Path) -> str:
    """Find the first invalid UTF-8 byte of the file; latin-1 if everything before it is ASCII."""
    decoder_pending = b""   # a multi-byte character cut by the end of the previous block
    ascii_so_far = True
    lines_before = 0
    with open(src, "rb") as fh:
        if fh.read(3) != b"\xef\xbb\xbf":
            fh.seek(0)
        while True:
            block = fh.read(1 << 20)
            data = decoder_pending + block
            if not data:
                break
            try:
                data.decode("utf-8")
                decoder_pending = b""
                good = len(data)
            except UnicodeDecodeError as exc:
                if block and exc.reason == "unexpected end of data" and exc.end == len(data):
                    good = exc.start
                    decoder_pending = data[good:]
                else:
                    prefix = data[:exc.start]
                    if ascii_so_far and prefix.isascii():
                        return "latin-1"
                    raise _mixed_encoding(lines_before + prefix.count(b"\n") + 1) from None
            ascii_so_far = ascii_so_far and data[:good].isascii()
            lines_before += data.count(b"\n", 0, good)
            if not block:
                break
    raise DatasetError("The file is not valid UTF-8 text.")  # pyarrow and Python disagree


def _sniff_delimiter(sample: bytes, encoding: str, complete: bool, hint: str | None) -> str:
    """Pick the candidate delimiter that splits the header and the first rows into the same
    number (>= 2) of fields; quoting is respected because Python's csv module does the splitting."""
    text = sample.decode("latin-1" if encoding == "latin-1" else "utf-8-sig", errors="replace")
    preferred = list(DELIMITERS)
    if hint and hint.lower().endswith((".tsv", ".tab")):
        preferred.insert(0, preferred.pop(preferred.index("\t")))
    best: tuple[Any, ...] | None = None
    best_delimiter = ","
    for rank, delimiter in enumerate(preferred):
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, quotechar='"',
                            doublequote=True, strict=False)
        records: list[list[str]] = []
        cut = False
        while len(records) <= SNIFF_RECORDS:
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error:   # e.g. a quoted field longer than csv.field_size_limit()
                cut = True
                break
            if record:
                records.append(record)
        if len(records) > SNIFF_RECORDS:
            records = records[:SNIFF_RECORDS]
        elif (cut or not complete) and len(records) > 1:
            records = records[:-1]          # possibly cut by the end of the sample
        if not records:
            continue
        widths = collections.Counter(len(r) for r in records)
        mode_width, mode_count = widths.most_common(1)[0]
        consistency = mode_count / len(records)
        good = mode_width >= 2 and len(records[0]) == mode_width   # the header agrees
        key = (good and consistency >= 0.99, good, mode_width >= 2, round(consistency, 2),
               mode_width, -rank)
        if best is None or key > best:
            best, best_delimiter = key, delimiter
    return best_delimiter


def _read_options(dialect: _Dialect) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(block_size=dialect.block_size, encoding=dialect.arrow_encoding,
                             use_threads=True)


def _parse_options(dialect: _Dialect) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(delimiter=dialect.delimiter, quote_char='"', double_quote=True,
                              escape_char=False, newlines_in_values=True, ignore_empty_lines=True)


def _convert_options(column_types: dict[str, pa.DataType] | None) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(column_types=column_types, null_values=PANDAS_NA_VALUES,
                                true_values=TRUE_VALUES, false_values=FALSE_VALUES,
                                strings_can_be_null=True, quoted_strings_can_be_null=True,
                                check_utf8=True)


def _open_csv(src: Path, dialect: _Dialect, column_types: dict[str, pa.DataType] | None):
    try:
        return pacsv.open_csv(src, read_options=_read_options(dialect),
                              parse_options=_parse_options(dialect),
                              convert_options=_convert_options(column_types))
    except pa.ArrowException as exc:
        raise _arrow_csv_error(exc, src, dialect) from None


def _arrow_csv_error(exc: Exception, src: Path, dialect: _Dialect) -> Exception:
    """Map a pyarrow CSV error to a DatasetError (or an internal signal)."""
    message = str(exc)
    if "invalid UTF8" in message:
        return _Utf8Error()
    if "straddling object" in message or "straddles two block boundaries" in message:
        return _BlockTooSmall()
    if "Empty CSV file" in message:
        return DatasetError("The file is empty: it has no header row.")
    conversion = re.match(r"In CSV column #(\d+): CSV conversion error", message)
    if conversion:
        return _Conversion(int(conversion.group(1)))
    if "CSV parse error" in message:
        return _csv_problem(src, dialect, message)
    return DatasetError(f"The CSV file could not be read: {_snippet(message)}")


def _csv_header(src: Path, dialect: _Dialect) -> list[str]:
    reader = _open_csv(src, dialect, None)   # parses (and type-infers) the first block only
    names = list(reader.schema.names)
    reader.close()
    return names


def _clean_names(raw: list[str], encoding: str) -> list[str]:
    names = list(raw)
    if names:
        names[0] = names[0].removeprefix("\ufeff")
        if encoding == "latin-1":
            names[0] = names[0].removeprefix("\xef\xbb\xbf")
    _check_names(names)
    return names


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


def _csv_infer(src: Path, dialect: _Dialect, raw_names: list[str],
               max_rows: int | None) -> tuple[list[int], int]:
    """Pass 1: validate the whole file and infer one type per column (see module docstring)."""
    reader = _open_csv(src, dialect, {name: pa.string() for name in raw_names})
    states = [_NULL] * len(raw_names)
    n_rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = pending_bytes = 0
    last_batch: pa.RecordBatch | None = None

    def infer_pending() -> None:
        table = pa.Table.from_batches(pending, schema=reader.schema)
        for i, column in enumerate(table.columns):
            if states[i] != _STRING:
                states[i] = _infer_chunk(column, states[i])

    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowException as exc:
                raise _arrow_csv_error(exc, src, dialect) from None
            if batch.num_rows == 0:
                continue
            n_rows += batch.num_rows
            if max_rows is not None and n_rows > max_rows:
                raise DatasetError(f"The file has more than {max_rows:,} rows, the limit for a "
                                   "dataset.")
            last_batch = batch
            pending.append(batch)
            pending_rows += batch.num_rows
            pending_bytes += batch.get_total_buffer_size()
            if pending_rows >= INFER_CHUNK_ROWS or pending_bytes >= ROW_GROUP_MAX_BYTES:
                infer_pending()
                pending, pending_rows, pending_bytes = [], 0, 0
        if pending:
            infer_pending()
    finally:
        reader.close()
    if last_batch is not None:
        _check_unterminated_quote_at_end(src, dialect, last_batch)
    return states, n_rows


def _infer_chunk(column: pa.ChunkedArray, state: int) -> int:
    values = pc.drop_null(column)
    if len(values) == 0:
        return state
    for candidate in _CANDIDATES[state]:
        if _fits(values, candidate):
            return candidate
    return _STRING


def _fits(values: pa.ChunkedArray, candidate: int) -> bool:
    # a failing cast costs ~20 ms per 64k values (it does not stop early): try a prefix first
    if len(values) > 256 and not _fits_all(values.slice(0, 256), candidate):
        return False
    return _fits_all(values, candidate)


def _fits_all(values: pa.ChunkedArray, candidate: int) -> bool:
    if candidate == _BOOL:
        return bool(pc.all(pc.is_in(values, pa.array(TRUE_VALUES + FALSE_VALUES))).as_py())
    target = _STATE_TYPES[candidate]
    try:
        pc.cast(values, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        try:   # the CSV converter trims spaces and tabs around numbers and dates; cast does not
            pc.cast(pc.utf8_trim(values, " \t"), target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
    if candidate == _INT:   # the CSV converter (and cast) also accept "0x1F"; pandas does not
        return not (pc.any(pc.match_substring(values, "x")).as_py()
                    or pc.any(pc.match_substring(values, "X")).as_py())
    return True


def _check_unterminated_quote_at_end(src: Path, dialect: _Dialect, last: pa.RecordBatch) -> None:
    """pyarrow accepts a quote opened in the last column and never closed (the value runs to the
    end of the file).  Detect it: such a value spans lines and is the raw tail of the file."""
    row = last.slice(last.num_rows - 1, 1).to_pylist()[0]
    for value in row.values():
        if not isinstance(value, str) or ("\n" not in value and "\r" not in value):
            continue
        size = src.stat().st_size
        tail_len = min(size, 4 * len(value.encode("utf-8")) + 16)
        with open(src, "rb") as fh:
            fh.seek(size - tail_len)
            tail = fh.read().decode("latin-1" if dialect.encoding == "latin-1" else "utf-8",
                                    errors="replace")
        if tail.endswith(value) or tail.endswith(value.replace('"', '""')):
            problem = _locate_csv_problem(src, dialect)
            if problem is not None:
                raise problem


_EOF_SENTINEL = "\x1e\x1f<end of file>\x1f\x1e"


def _csv_problem(src: Path, dialect: _Dialect, arrow_message: str | None) -> DatasetError:
    """The DatasetError for a CSV that pyarrow could not parse (``arrow_message``; None: a row
    did not fit in a block even after the retry)."""
    problem = _locate_csv_problem(src, dialect)
    if problem is not None:
        return problem
    if arrow_message is None:
        return DatasetError(f"A single row is larger than the CSV read block "
                            f"({dialect.block_size >> 20} MiB); rows this long are not supported.")
    # pyarrow's message ends with the offending row's text: never echo it
    short = re.sub(r"(Expected \d+ columns, got \d+):.*", r"\1", arrow_message, flags=re.S)
    return DatasetError(f"The CSV file could not be parsed: {_snippet(short)}")


def _locate_csv_problem(src: Path, dialect: _Dialect) -> DatasetError | None:
    """Find the first structural problem with Python's csv module (same quoting rules as pyarrow,
    but it counts physical lines).  Only used on the error path; reads at ~40 MB/s."""
    expected: int | None = None
    prev_line = 0
    with open(src, encoding=dialect.encoding, newline="", errors="replace") as fh:
        lines = itertools.chain(fh, [_EOF_SENTINEL + "\n"])
        reader = csv.reader(lines, delimiter=dialect.delimiter, quotechar='"', doublequote=True,
                            strict=False)
        try:
            for record in reader:
                start, prev_line = prev_line + 1, reader.line_num
                if record == [_EOF_SENTINEL]:
                    break
                if record and record[-1].endswith(_EOF_SENTINEL + "\n"):
                    return _unterminated(start)
                if not record:
                    continue
                if expected is None:
                    expected = len(record)
                elif len(record) != expected:
                    return DatasetError(f"Line {start} has {len(record)} field"
                                        f"{'' if len(record) == 1 else 's'}, expected {expected} "
                                        f"(like the header). Check for a missing or extra "
                                        f"{_DELIMITER_NAMES.get(dialect.delimiter, 'delimiter')} "
                                        "or an unquoted value containing one.", line=start)
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                return _unterminated(prev_line + 1, long=True)
            return DatasetError(f"Line {prev_line + 1} could not be parsed: {_snippet(str(exc))}",
                                line=prev_line + 1)
    return None


def _unterminated(line: int, long: bool = False) -> DatasetError:
    if long:  # one value past the limit: a huge field, or a quote that swallowed the rest of the file
        return DatasetError(f"Line {line} has a value longer than {csv.field_size_limit():,} characters, "
                            "or opens a quoted field that is never closed (unterminated quote).", line=line)
    return DatasetError(f"Line {line} opens a quoted field that is never closed (unterminated quote).",
                        line=line)


def _csv_write(src: Path, tmp: Path, dialect: _Dialect, raw_names: list[str], names: list[str],
               states: list[int], n_rows: int, opts: _Options) -> DatasetInfo:
    """Pass 2: read with the inferred types, write Parquet row groups, summarise."""
    types = {raw: _STATE_TYPES[state] for raw, state in zip(raw_names, states)}
    schema = pa.schema([pa.field(name, types[raw]) for raw, name in zip(raw_names, names)])
    reader = _open_csv(src, dialect, types)
    try:
        with _RowGroupWriter(tmp, schema, opts) as writer:
            while True:
                try:
                    batch = reader.read_next_batch()
                except StopIteration:
                    break
                except pa.ArrowException as exc:
                    raise _arrow_csv_error(exc, src, dialect) from None
                writer.add(batch)
    finally:
        reader.close()
    if writer.n_rows != n_rows:  # pragma: no cover - the two passes read the same file
        raise DatasetError("The file changed while it was being read.")
    return writer.info(source_format="csv", delimiter=dialect.delimiter,
                       encoding=dialect.encoding)


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


# -- writing + summaries (shared) -----------------------------------------------------------------

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
        self.stats = [_ColumnStats(f.name, f.type, cap) for f in schema]
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
             encoding: str | None) -> DatasetInfo:
        return DatasetInfo(n_rows=self.n_rows, n_columns=len(self.schema),
                           columns=[s.result() for s in self.stats], preview=self.preview,
                           source_format=source_format, delimiter=delimiter, encoding=encoding,
                           row_group_rows=self.opts.row_group_rows, n_row_groups=self.n_row_groups,
                           bytes_on_disk=0)


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


# -- reading back ---------------------------------------------------------------------------------

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


# -- helpers --------------------------------------------------------------------------------------

def _snippet(text: str, limit: int = MESSAGE_SNIPPET_CHARS * 2) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(name: str) -> str:
    return repr(_snippet(name, MESSAGE_SNIPPET_CHARS))


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
