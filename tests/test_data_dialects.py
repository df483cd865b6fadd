"""European CSVs, Excel workbooks and the "mostly numbers" warning: files built at test time."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from viewer.core.datasets import DatasetError, ingest, iter_chunks, to_frame


def european_csv(path, n: int = 2_000, *, bad: dict[int, str] | None = None) -> None:
    """What Excel writes in Germany: cp1252, ';', decimal commas, thousands dots, dd.mm.yyyy,
    ja/nein, missing values and a string ID column."""
    rng = np.random.default_rng(7)
    lines = ["Kunden-ID;Betrag €;Zins;Datum;Aktiv;Region"]
    for i in range(n):
        amount = f"{rng.integers(0, 5_000_000) / 100:,.2f}".translate(str.maketrans(",.", ".,"))
        rate = f"{rng.uniform(0, 10):.1f}".replace(".", ",")
        day = f"{rng.integers(1, 29):02d}.{rng.integers(1, 13):02d}.{rng.integers(2019, 2025)}"
        if i % 50 == 0:
            amount = ""
        if i % 70 == 0:
            day = ""
        if bad and i in bad:
            amount = bad[i]
        lines.append(f"K{i:06d};{amount};{rate};{day};{'ja' if i % 3 else 'nein'};"
                     f"{'Süd' if i % 2 else 'Nord'}")
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("cp1252"))


def read_all(path):
    return to_frame(next(iter_chunks(path))[1])


def test_semicolon_csv_with_decimal_commas_is_read_as_numbers_dates_and_booleans(tmp_path):
    european_csv(tmp_path / "eu.csv")
    info = ingest(tmp_path / "eu.csv", tmp_path / "eu.parquet")
    assert (info.delimiter, info.encoding, info.decimal, info.thousands) == (";", "cp1252", ",", ".")
    types = {c.name: c.dtype for c in info.columns}
    assert types == {"Kunden-ID": "string", "Betrag €": "double", "Zins": "double",
                     "Datum": "date32[day]", "Aktiv": "bool", "Region": "string"}
    assert info.column("Betrag €").nulls == 40 and info.column("Datum").nulls == 29
    assert info.column("Kunden-ID").identifier and not info.column("Region").identifier
    assert info.warnings == []
    frame = read_all(tmp_path / "eu.parquet")
    first = frame.iloc[1]
    raw = (tmp_path / "eu.csv").read_bytes().decode("cp1252").splitlines()[2].split(";")
    assert first["Betrag €"] == pytest.approx(float(raw[1].replace(".", "").replace(",", ".")))
    assert first["Datum"] == np.datetime64(dt.datetime.strptime(raw[3], "%d.%m.%Y"))
    assert frame["Region"].iloc[1] == "Süd"


def test_a_mostly_numeric_column_with_bad_values_is_named_with_examples_and_the_fix(tmp_path):
    european_csv(tmp_path / "bad.csv", bad={5: "n/v", 9: "12,3,4"})
    info = ingest(tmp_path / "bad.csv", tmp_path / "bad.parquet")
    assert info.column("Betrag €").dtype == "string"
    [warning] = info.warnings
    assert warning["column"] == "Betrag €" and warning["examples"] == ["n/v", "12,3,4"]
    assert "Column 'Betrag €' is stored as text although 1,958 of its 1,960 values are numbers" \
        in warning["message"]
    assert "Correct or empty those cells" in warning["message"]


def test_a_wrong_decimal_override_says_which_decimal_to_choose(tmp_path):
    european_csv(tmp_path / "eu.csv", n=300)
    info = ingest(tmp_path / "eu.csv", tmp_path / "eu.parquet", decimal=".", thousands="")
    columns = {w["column"] for w in info.warnings}
    assert columns == {"Betrag €", "Zins"}
    assert all("Upload the file again with decimal ','" in w["message"] for w in info.warnings)


def test_overrides_delimiter_encoding_and_thousands(tmp_path):
    src = tmp_path / "us.csv"
    src.write_bytes('id|amount|note\n1|"1,234.5"|café\n2|"12,000"|thé\n'.encode("latin-1"))
    info = ingest(src, tmp_path / "us.parquet", delimiter="pipe", encoding="latin-1",
                  thousands=",")
    assert (info.delimiter, info.encoding, info.thousands) == ("|", "latin-1", ",")
    frame = read_all(tmp_path / "us.parquet")
    assert frame["amount"].tolist() == [1234.5, 12000.0] and frame["note"].tolist() == ["café", "thé"]


@pytest.mark.parametrize("options, message", [
    ({"delimiter": "x"}, "delimiter 'x' is not supported: choose one of comma, semicolon, tab or pipe"),
    ({"decimal": ";"}, "decimal separator ';' is not supported"),
    ({"encoding": "klingon"}, "encoding 'klingon' is unknown: choose one such as utf-8, cp1252"),
    ({"decimal": ",", "thousands": ","}, "both ',': choose two different ones"),
])
def test_bad_overrides_are_refused_with_the_choices(tmp_path, options, message):
    european_csv(tmp_path / "eu.csv", n=10)
    with pytest.raises(DatasetError, match=message):
        ingest(tmp_path / "eu.csv", tmp_path / "eu.parquet", **options)


def write_workbook(path, *, sheets=("Daten",)):
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for name in sheets:
        sheet = book.create_sheet(name)
        sheet.append(["loan_id", "amount", "opened", "active", "region"])
        for i in range(120):
            sheet.append([1000 + i, None if i % 10 == 0 else 1234.5 + i, dt.date(2024, 1, 1 + i % 28),
                          i % 2 == 0, "north" if i % 3 else "south"])
        for _ in range(3):
            sheet.append([None] * 5)          # formatted empty rows at the end
    book.save(path)


def test_xlsx_first_sheet_or_a_chosen_one(tmp_path):
    write_workbook(tmp_path / "loans.xlsx", sheets=("Januar", "Februar"))
    info = ingest(tmp_path / "loans.xlsx", tmp_path / "l.parquet", filename_hint="loans.xlsx")
    assert (info.source_format, info.sheet, info.n_rows) == ("xlsx", "Januar", 120)
    assert {c.name: c.dtype for c in info.columns} == {
        "loan_id": "int64", "amount": "double", "opened": "date32[day]", "active": "bool",
        "region": "string"}
    assert info.column("amount").nulls == 12 and info.column("loan_id").identifier
    assert ingest(tmp_path / "loans.xlsx", tmp_path / "f.parquet", sheet="Februar").sheet == "Februar"
    with pytest.raises(DatasetError, match="no sheet 'März'; its sheets are 'Januar', 'Februar'"):
        ingest(tmp_path / "loans.xlsx", tmp_path / "m.parquet", sheet="März")


def test_a_zip_that_is_not_a_workbook_is_refused(tmp_path):
    import zipfile

    with zipfile.ZipFile(tmp_path / "a.zip", "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    with pytest.raises(DatasetError, match="not an Excel .xlsx workbook"):
        ingest(tmp_path / "a.zip", tmp_path / "a.parquet")
