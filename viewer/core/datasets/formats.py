"""Number and date formats of CSV files: decimal and thousands separators (sniffed or given),
dd.mm.yyyy dates, and the evidence for the "mostly numbers" warning of a column read as text.
Used by ``csvfile``'s two passes; see its docstring.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from .errors import _snippet
from .sniff import SNIFF_RECORDS

if TYPE_CHECKING:
    from .csvfile import _Dialect

#: a text column gets a "mostly numbers" warning when at least this share of its values are numbers
MOSTLY_NUMERIC = 0.6
WARNING_EXAMPLES = 5
#: a column whose first SETTLE_AFTER values are less than SETTLE_SHARE numbers is text: pass 1
#: stops counting numbers in it (the regular expressions cost ~5 ms per 64k values)
SETTLE_AFTER = 2_000
SETTLE_SHARE = 0.3
DMY_PATTERN = r"^\s*\d{1,2}\.\d{1,2}\.\d{4}\s*$"


def number_pattern(decimal: str, thousands: str | None) -> str:
    """The regular expression a number written with ``decimal`` and ``thousands`` matches."""
    d = re.escape(decimal)
    whole = rf"(?:\d{{1,3}}(?:{re.escape(thousands)}\d{{3}})+|\d+)" if thousands else r"\d+"
    return rf"^\s*[+-]?(?:{whole}(?:{d}\d*)?|{d}\d+)(?:[eE][+-]?\d+)?\s*$"


_NUMBER = r"^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$"   # what pyarrow reads as a number


@dataclass
class _Looks:
    """Pass 1's evidence for the "mostly numbers" warning of a column that ends as text."""
    values: int = 0          # non-missing values seen
    numbers: int = 0         # of which numbers in the file's format
    other: int = 0           # of which numbers in the other decimal convention
    examples: list[str] | None = None
    settled: bool = False    # clearly text (few numbers among the first values): stop looking


def _look_at(column: pa.ChunkedArray, look: _Looks, dialect: _Dialect) -> None:
    values = pc.drop_null(column)
    if len(values) == 0:
        return
    if look.settled:
        look.values += len(values)
        return
    look.values += len(values)
    numbers = pc.match_substring_regex(values, dialect.localized and dialect.number_regex or _NUMBER)
    look.numbers += pc.sum(numbers).as_py() or 0
    look.other += pc.sum(pc.match_substring_regex(values, dialect.other_regex())).as_py() or 0
    if look.values >= SETTLE_AFTER and max(look.numbers, look.other) < SETTLE_SHARE * look.values:
        look.settled = True      # counts from here on would not change the (absent) warning
    if look.examples is None:
        look.examples = []
    if len(look.examples) < WARNING_EXAMPLES:
        bad = pc.unique(pc.filter(values, pc.invert(numbers)).slice(0, 1000)).to_pylist()
        for value in bad:
            if value not in look.examples and len(look.examples) < WARNING_EXAMPLES:
                look.examples.append(value)


def _number_warnings(names: list[str], text: list[bool], looks: list[_Looks],
                     dialect: _Dialect) -> list[dict]:
    """A warning for each column stored as text although most of its values are numbers."""
    out = []
    for name, is_text, look in zip(names, text, looks):
        if not is_text or not look.values:
            continue
        column = repr(_snippet(name, 60))
        examples = ", ".join(repr(_snippet(str(v), 30)) for v in (look.examples or []))
        if look.other / look.values >= MOSTLY_NUMERIC and look.other > look.numbers:
            other_decimal = "." if dialect.decimal == "," else ","
            other_thousands = "," if other_decimal == "." else "."
            out.append({"column": name, "kind": "number_format", "examples": look.examples or [],
                        "message": f"Column {column} looks like numbers written with decimal "
                                   f"{other_decimal!r} (for example {examples}), but the file was "
                                   f"read with decimal {dialect.decimal!r}, so it is stored as text. "
                                   f"Upload the file again with decimal {other_decimal!r} and "
                                   f"thousands {other_thousands!r}."})
        elif look.numbers / look.values >= MOSTLY_NUMERIC:
            out.append({"column": name, "kind": "mostly_numbers", "examples": look.examples or [],
                        "message": f"Column {column} is stored as text although {look.numbers:,} "
                                   f"of its {look.values:,} values are numbers; these are not: "
                                   f"{examples}. Correct or empty those cells (an empty cell is "
                                   "a missing value) and upload the file again; if the numbers "
                                   "use another decimal or thousands separator, choose it on "
                                   "upload."})
    return out


def _parse_dmy(values):
    return pc.cast(pc.strptime(pc.utf8_trim(values, " \t"), format="%d.%m.%Y", unit="s"),
                   pa.date32())


def _local_number(values, dialect: _Dialect, target: pa.DataType):
    text = pc.utf8_trim(values, " \t")
    if dialect.thousands:
        text = pc.replace_substring(text, dialect.thousands, "")
    if dialect.decimal != ".":
        text = pc.replace_substring(text, dialect.decimal, ".")
    return pc.cast(text, target)


def _sniff_numbers(sample: bytes, dialect: _Dialect, complete: bool) -> tuple[str, str | None]:
    """decimal and thousands separators from the sample's fields: decimal "," (thousands ".")
    when more fields look like ``1.234,5`` / ``3,5`` than like ``1,234.5`` / ``3.5``."""
    text = sample.decode(dialect.text_encoding, errors="replace")
    if not complete:
        text = text[: text.rfind("\n") + 1] or text
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=dialect.delimiter, quotechar='"',
                        doublequote=True, strict=False)
    comma = re.compile(r"^\s*[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+\s*$")
    dotted_thousands = re.compile(r"^\s*[+-]?\d{1,3}(?:\.\d{3}){2,}\s*$")
    point = re.compile(r"^\s*[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)\.\d+\s*$")
    comma_thousands = re.compile(r"^\s*[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?\s*$")
    n_comma = n_point = n_comma_thousands = 0
    try:
        for i, record in enumerate(reader):
            if i == 0:
                continue                     # the header
            if i > SNIFF_RECORDS:
                break
            for field in record:
                if comma.match(field) or dotted_thousands.match(field):
                    n_comma += 1
                elif point.match(field):
                    n_point += 1
                    n_comma_thousands += bool(comma_thousands.match(field))
    except csv.Error:
        pass
    if n_comma > n_point:
        return ",", "."
    if n_comma_thousands:
        return ".", ","
    return ".", None
