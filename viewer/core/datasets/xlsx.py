"""Excel ``.xlsx`` input: one sheet streamed row by row (openpyxl's read-only mode, so memory is
bounded by a row, not by the sheet) into a plain UTF-8 CSV that the CSV path then reads and types.

Cells keep their meaning: numbers are written with "." and full precision (``repr``), dates and
times in ISO 8601 (so they become date / timestamp columns), booleans as true/false, empty cells
as missing.  Formulas are read as the values Excel last saved with them (``data_only``).  Rows
that are empty at the end of the sheet (Excel often keeps formatted empty rows) are dropped.
"""

from __future__ import annotations

import csv
import datetime as _dt
import zipfile
from pathlib import Path

from .errors import DatasetError, _snippet


def is_xlsx(src: Path) -> bool:
    """A ZIP archive holding an Excel workbook (xl/workbook.xml)."""
    try:
        with zipfile.ZipFile(src) as archive:
            return "xl/workbook.xml" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, _dt.datetime):
        return value.isoformat(sep=" ") if value.time() != _dt.time() else value.date().isoformat()
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return repr(value.total_seconds())
    return str(value)


def sheet_to_csv(src: Path, dest: Path, sheet: str | None = None, *,
                 max_rows: int | None = None) -> str:
    """Write the sheet named ``sheet`` (default: the first) of ``src`` to ``dest`` as CSV and
    return the sheet's name.  Raises ``DatasetError`` for a broken workbook or an unknown sheet."""
    import openpyxl   # imported here: only .xlsx uploads need it

    with open(src, "rb") as fh:     # a file object: openpyxl judges a path by its extension
        return _sheet_to_csv(openpyxl, fh, dest, sheet, max_rows)


def _sheet_to_csv(openpyxl, fh, dest: Path, sheet: str | None, max_rows: int | None) -> str:
    try:
        book = openpyxl.load_workbook(fh, read_only=True, data_only=True)
    except Exception as exc:  # noqa: BLE001 - openpyxl raises many kinds for a broken file
        raise DatasetError(f"The Excel file could not be read ({_snippet(str(exc), 100)}); "
                           "open it in Excel and save it again, or export the sheet as CSV.") from None
    try:
        names = book.sheetnames
        if sheet is None:
            if not names:
                raise DatasetError("The Excel file has no sheets.")
            sheet = names[0]
        elif sheet not in names:
            raise DatasetError(f"The Excel file has no sheet {_snippet(sheet, 60)!r}; its sheets "
                               f"are {', '.join(repr(_snippet(n, 40)) for n in names[:20])}.")
        rows = book[sheet].iter_rows(values_only=True)
        with open(dest, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            width = None
            blank_run = 0
            written = 0
            for row in rows:
                cells = [_text(v) for v in row]
                if width is None:          # the header: its last named column sets the width
                    while cells and cells[-1] == "":
                        cells.pop()
                    if not cells:
                        continue           # blank rows above the header
                    width = len(cells)
                    writer.writerow(cells)
                    continue
                cells = (cells + [""] * width)[:width]
                if not any(cells):
                    blank_run += 1
                    continue
                for _ in range(blank_run):   # blank rows inside the data stay (as missing rows)
                    writer.writerow([""] * width)
                blank_run = 0
                writer.writerow(cells)
                written += 1
                if max_rows is not None and written > max_rows:
                    raise DatasetError(f"The sheet has more than {max_rows:,} rows, the limit "
                                       "for a dataset.")
        return sheet
    finally:
        book.close()
