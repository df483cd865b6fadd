"""What an uploaded file is, before any parsing: CSV, Parquet or .xlsx (by content, not by name),
the CSV's text encoding and its delimiter.

Encoding
--------
UTF-8 (with or without BOM) is assumed when the first MiB is valid UTF-8.  When an invalid byte
is found -- in the sample or, later, by pyarrow's UTF-8 check in pass 1 -- the file is read as
latin-1 only if every byte before that one is ASCII (so nothing already decoded changes meaning);
otherwise the file mixes encodings and is rejected with the line number.  latin-1 accepts every
byte, so "is this text at all" is decided separately: NUL bytes, a UTF-16 BOM, known binary
signatures (PNG, ZIP/xlsx, gzip, ...) or more than 1% control characters in the sample mean
"not a CSV/Parquet file".

Delimiter
---------
The candidate (``DELIMITERS``) that splits the header and the first rows of the sample into the
same number (>= 2) of fields; a ``.tsv``/``.tab`` filename only breaks ties.
"""

from __future__ import annotations

import collections
import csv
import io
import re
from pathlib import Path
from typing import Any

from .errors import DatasetError

SAMPLE_BYTES = 1 << 20          # encoding + delimiter detection
SNIFF_RECORDS = 200
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}

_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive (not an Excel .xlsx workbook)"),
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


def _detect_format(src: Path) -> tuple[str, bytes]:
    size = src.stat().st_size
    if size == 0:
        raise DatasetError("The file is empty (0 bytes).")
    with open(src, "rb") as fh:
        head = fh.read(SAMPLE_BYTES)
    if head.startswith(b"PAR1"):
        return "parquet", head
    if head.startswith(b"PK\x03\x04"):
        from .xlsx import is_xlsx
        if is_xlsx(src):
            return "xlsx", head
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
    text = sample.decode("utf-8-sig" if encoding in ("utf-8", "utf-8-sig") else encoding,
                         errors="replace")
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
