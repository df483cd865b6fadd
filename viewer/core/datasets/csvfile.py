"""CSV input: pass 1 (validate + infer one type per column), pass 2 (convert + write), and the
error messages for files pyarrow cannot parse.

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
booleans are true/false, yes/no and ja/nein in lower, Title or UPPER case (``1``/``0`` stay
integers); a column with no values at all is float64 (as pandas).  Known differences from ``pandas.read_csv``: ISO dates
and timestamps become date32/timestamp columns (pandas leaves text), and so do dd.mm.yyyy dates;
integers beyond int64 become float64 (pandas: object); ``+5`` is a float (pandas: int).
Every dialect detail (quoting, ``""`` escapes, blank lines skipped, CRLF) is pyarrow's.

Number formats
--------------
``decimal`` ("." or ",") and ``thousands`` (None, ".", ",", " " or "'") are sniffed from the
sample (a file whose numbers look like ``1.234,56`` or ``3,5`` has decimal "," and thousands ".")
unless given.  With anything but the default ("." and no thousands separator) numbers are checked
against the format's pattern in pass 1 and converted by ``_LocalNumbers`` in pass 2 (pyarrow's
converter knows no thousands separators).  A column that ends as text although most of its values
are numbers gets a warning naming the column, a few values that are not numbers and the fix.

Errors
------
Ragged rows and unterminated quotes are located (physical line numbers, header = line 1) by a
second, error-path-only scan with Python's csv module, because pyarrow's streaming reader reports
neither; its messages (which quote the whole offending row) are never passed on.
"""

from __future__ import annotations

import csv
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from .errors import DatasetError, _snippet
from .formats import (
    DMY_PATTERN, _local_number, _look_at, _Looks, _number_warnings, _parse_dmy, _sniff_numbers,
    number_pattern,
)
from .sniff import _DELIMITER_NAMES, _encoding_after_invalid_utf8, _sample_encoding, _sniff_delimiter
from .summary import DatasetInfo
from .writing import ROW_GROUP_MAX_BYTES, _check_names, _Options, _RowGroupWriter

#: pyarrow CSV block: the unit the streaming reader parses; a single row must fit in it (on failure
#: the read is retried once with ``CSV_BLOCK_RETRY_FACTOR`` times the size).  pyarrow's streaming
#: reader reads ahead up to ~32 blocks in a background thread, so this also sets that memory
#: (~32-40 MiB at 1 MiB; 4 MiB blocks are not faster and cost ~150 MiB).
DEFAULT_CSV_BLOCK_SIZE = 1 << 20
CSV_BLOCK_RETRY_FACTOR = 8
INFER_CHUNK_ROWS = 65_536       # pass 1 looks at this many rows at a time (fewer Python calls)

#: pandas.read_csv's default missing-value markers (pandas._libs.parsers.STR_NA_VALUES).
PANDAS_NA_VALUES = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
                    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"]
TRUE_VALUES = ["true", "True", "TRUE", "yes", "Yes", "YES", "ja", "Ja", "JA"]
FALSE_VALUES = ["false", "False", "FALSE", "no", "No", "NO", "nein", "Nein", "NEIN"]
DECIMALS = (".", ",")
THOUSANDS = (".", ",", " ", "'")


@dataclass
class _Dialect:
    delimiter: str
    encoding: str          # Python codec: "utf-8", "utf-8-sig", "cp1252", "latin-1", ...
    block_size: int
    decimal: str = "."
    thousands: str | None = None
    fixed_encoding: bool = False   # given by the user: never changed by detection

    @property
    def arrow_encoding(self) -> str:
        return "utf8" if self.encoding in ("utf-8", "utf-8-sig") else self.encoding

    @property
    def text_encoding(self) -> str:
        """The codec to decode raw bytes of the file with in Python."""
        return "utf-8-sig" if self.encoding in ("utf-8", "utf-8-sig") else self.encoding

    @property
    def localized(self) -> bool:
        return self.decimal != "." or self.thousands is not None

    @property
    def number_regex(self) -> str:
        return number_pattern(self.decimal, self.thousands)

    def other_regex(self) -> str:
        """Numbers in the other common convention (to suggest the fix)."""
        if self.decimal == ",":
            return number_pattern(".", ",")
        return number_pattern(",", ".")


class _Utf8Error(Exception):
    """pass 1 met bytes that are not UTF-8 (pyarrow does not say where)."""


class _BlockTooSmall(Exception):
    """a single row does not fit in a CSV block (or a quote is never closed)."""


class _Conversion(Exception):
    def __init__(self, column: int | None) -> None:
        super().__init__(column)
        self.column = column


_NULL, _INT, _FLOAT, _BOOL, _DATE, _TS, _TSTZ, _STRING, _DMY = range(9)
_STATE_TYPES = {_NULL: pa.float64(), _INT: pa.int64(), _FLOAT: pa.float64(), _BOOL: pa.bool_(),
                _DATE: pa.date32(), _TS: pa.timestamp("us"), _TSTZ: pa.timestamp("us", tz="UTC"),
                _STRING: pa.string(), _DMY: pa.date32()}
# candidates tried for a chunk, given the column's state so far (narrowest first)
_CANDIDATES = {_NULL: (_INT, _FLOAT, _BOOL, _DATE, _DMY, _TS, _TSTZ), _INT: (_INT, _FLOAT),
               _FLOAT: (_FLOAT,), _BOOL: (_BOOL,), _DATE: (_DATE, _TS), _TS: (_TS,),
               _TSTZ: (_TSTZ,), _STRING: (), _DMY: (_DMY,)}
def _single_byte(sample: bytes) -> str:
    """cp1252 (what Excel writes in Western Europe: € is 0x80) when the sample decodes as it,
    else latin-1 (which decodes every byte)."""
    try:
        sample.decode("cp1252")
    except UnicodeDecodeError:
        return "latin-1"
    return "cp1252"


def _ingest_csv(src: Path, tmp: Path, sample: bytes, opts: _Options) -> DatasetInfo:
    complete = len(sample) == src.stat().st_size
    if opts.encoding:
        encoding = opts.encoding
    else:
        encoding = _sample_encoding(sample, complete)
        if encoding == "latin-1":
            encoding = _single_byte(sample)
    delimiter = opts.delimiter or _sniff_delimiter(sample, encoding, complete, opts.filename_hint)
    dialect = _Dialect(delimiter, encoding, opts.block_size, fixed_encoding=bool(opts.encoding))
    if opts.decimal or opts.thousands is not None:
        dialect.decimal = opts.decimal or ("," if opts.thousands == "." else ".")
        dialect.thousands = opts.thousands or None
        if dialect.thousands == dialect.decimal:
            raise DatasetError(f"The decimal separator and the thousands separator are both "
                               f"{dialect.decimal!r}: choose two different ones.")
    else:
        dialect.decimal, dialect.thousands = _sniff_numbers(sample, dialect, complete)
    grown = False
    while True:
        try:
            raw_names = _csv_header(src, dialect)
            names = _clean_names(raw_names, dialect.encoding)
            states, n_rows, looks = _csv_infer(src, dialect, raw_names, opts.max_rows)
            break
        except _Utf8Error:
            if dialect.fixed_encoding or dialect.encoding not in ("utf-8", "utf-8-sig"):
                if dialect.encoding == "cp1252" and not dialect.fixed_encoding:
                    dialect.encoding = "latin-1"
                    continue
                raise DatasetError(f"The file could not be decoded as {dialect.encoding} text: "
                                   "choose its encoding (for example utf-8, cp1252 or latin-1) "
                                   "and upload it again.") from None
            dialect.encoding = _encoding_after_invalid_utf8(src)
            if dialect.encoding == "latin-1":
                dialect.encoding = _single_byte(sample)
        except _BlockTooSmall:
            if not grown:
                grown = True
                dialect.block_size *= CSV_BLOCK_RETRY_FACTOR
                continue
            raise _csv_problem(src, dialect, None) from None
    if n_rows == 0:
        raise DatasetError("The file has a header row but no data rows.")
    warnings = _number_warnings(names, [state == _STRING for state in states], looks, dialect)
    for attempt in range(len(states) + 1):
        try:
            return _csv_write(src, tmp, dialect, raw_names, names, states, n_rows, opts,
                              warnings)
        except _Conversion as exc:  # pass 1 and pyarrow's converter disagree: widen, restart
            if exc.column is not None and states[exc.column] != _STRING:
                states[exc.column] = _STRING
            elif exc.column is None and any(s != _STRING for s in states):
                states = [_STRING] * len(states)
            else:
                raise DatasetError("The CSV file could not be converted (a value did not match "
                                   "its column's type).") from None
    raise AssertionError("unreachable")


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
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        raise _arrow_csv_error(exc, src, dialect) from None


def _arrow_csv_error(exc: Exception, src: Path, dialect: _Dialect) -> Exception:
    """Map a pyarrow CSV error to a DatasetError (or an internal signal)."""
    if isinstance(exc, UnicodeDecodeError):   # a transcoded (non-UTF-8) file
        return _Utf8Error()
    message = str(exc)
    if "invalid UTF8" in message or "codec can't decode" in message:
        return _Utf8Error()
    if "straddling object" in message or "straddles two block boundaries" in message:
        return _BlockTooSmall()
    if "Empty CSV file" in message:
        return DatasetError("The file is empty: it has no header row.")
    # "Row #n: " appears when pyarrow converts on one thread (OMP_NUM_THREADS=1, as in workers)
    conversion = re.match(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error", message)
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
        if encoding not in ("utf-8", "utf-8-sig"):
            names[0] = names[0].removeprefix("\xef\xbb\xbf").removeprefix("ï»¿")
    _check_names(names)
    return names


def _csv_infer(src: Path, dialect: _Dialect, raw_names: list[str],
               max_rows: int | None) -> tuple[list[int], int, list[_Looks]]:
    """Pass 1: validate the whole file and infer one type per column (see module docstring)."""
    reader = _open_csv(src, dialect, {name: pa.string() for name in raw_names})
    states = [_NULL] * len(raw_names)
    looks = [_Looks() for _ in raw_names]
    n_rows = 0
    pending: list[pa.RecordBatch] = []
    pending_rows = pending_bytes = 0
    last_batch: pa.RecordBatch | None = None

    def infer_pending() -> None:
        table = pa.Table.from_batches(pending, schema=reader.schema)
        for i, column in enumerate(table.columns):
            before = states[i]
            if before != _STRING:
                states[i] = _infer_chunk(column, before, dialect)
            look = looks[i]
            if states[i] == _STRING:
                if before != _STRING and before in (_INT, _FLOAT):
                    look.numbers = look.values      # every earlier value was a number
                _look_at(column, look, dialect)
            else:
                look.values += len(column) - column.null_count

    try:
        for batch in _read_batches(reader, src, dialect):
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
    return states, n_rows, looks


def _read_batches(reader, src, dialect) -> Iterator[pa.RecordBatch]:
    """The reader's batches; pyarrow's parse errors become a DatasetError that names the line."""
    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except pa.ArrowException as exc:
            raise _arrow_csv_error(exc, src, dialect) from None
        yield batch


def _infer_chunk(column: pa.ChunkedArray, state: int, dialect: _Dialect | None = None) -> int:
    values = pc.drop_null(column)
    if len(values) == 0:
        return state
    for candidate in _CANDIDATES[state]:
        if _fits(values, candidate, dialect):
            return candidate
    return _STRING


def _fits(values: pa.ChunkedArray, candidate: int, dialect: _Dialect | None = None) -> bool:
    # a failing cast costs ~20 ms per 64k values (it does not stop early): try a prefix first
    if len(values) > 256 and not _fits_all(values.slice(0, 256), candidate, dialect):
        return False
    return _fits_all(values, candidate, dialect)


def _fits_all(values: pa.ChunkedArray, candidate: int, dialect: _Dialect | None = None) -> bool:
    if candidate == _BOOL:
        return bool(pc.all(pc.is_in(values, pa.array(TRUE_VALUES + FALSE_VALUES))).as_py())
    if candidate == _DMY:
        if not pc.all(pc.match_substring_regex(values, DMY_PATTERN)).as_py():
            return False
        try:
            _parse_dmy(values)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
        return True
    if candidate in (_INT, _FLOAT) and dialect is not None and dialect.localized:
        if not pc.all(pc.match_substring_regex(values, dialect.number_regex)).as_py():
            return False
        if candidate == _INT and pc.any(pc.match_substring(values, dialect.decimal)).as_py():
            return False
        try:
            _local_number(values, dialect, _STATE_TYPES[candidate])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return False
        return True
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
            tail = fh.read().decode(dialect.text_encoding, errors="replace")
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
               states: list[int], n_rows: int, opts: _Options,
               warnings: list[dict] | None = None) -> DatasetInfo:
    """Pass 2: read with the inferred types, write Parquet row groups, summarise."""
    types = {raw: _STATE_TYPES[state] for raw, state in zip(raw_names, states)}
    schema = pa.schema([pa.field(name, types[raw]) for raw, name in zip(raw_names, names)])
    # columns pyarrow's converter cannot read: read as text, converted here
    ours = {i: state for i, state in enumerate(states)
            if state == _DMY or (dialect.localized and state in (_INT, _FLOAT))}
    read_types = {raw: (pa.string() if i in ours else types[raw])
                  for i, raw in enumerate(raw_names)}
    reader = _open_csv(src, dialect, read_types)
    try:
        with _RowGroupWriter(tmp, schema, opts) as writer:
            for batch in _read_batches(reader, src, dialect):
                if ours:
                    batch = _convert_ours(batch, ours, dialect)
                writer.add(batch)
    finally:
        reader.close()
    if writer.n_rows != n_rows:  # pragma: no cover - the two passes read the same file
        raise DatasetError("The file changed while it was being read.")
    return writer.info(source_format="csv", delimiter=dialect.delimiter,
                       encoding=dialect.encoding, decimal=dialect.decimal,
                       thousands=dialect.thousands, warnings=list(warnings or []))


def _convert_ours(batch: pa.RecordBatch, ours: dict[int, int], dialect: _Dialect) -> pa.RecordBatch:
    arrays = list(batch.columns)
    for i, state in ours.items():
        try:
            if state == _DMY:
                arrays[i] = _parse_dmy(arrays[i])
            else:
                arrays[i] = _local_number(arrays[i], dialect, _STATE_TYPES[state])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise _Conversion(i) from None
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)
