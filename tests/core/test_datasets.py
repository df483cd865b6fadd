"""viewer.core.datasets: streamed CSV/Parquet ingestion, summaries, chunked reading."""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import subprocess
import sys
import tempfile
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from viewer.core import datasets
from viewer.core.datasets import DatasetError, ingest, iter_chunks, n_row_groups, read_row_group, to_frame

ROOT = Path(__file__).resolve().parents[2]


# -- helpers ----------------------------------------------------------------------------------------

def write(tmp_path: Path, data: bytes | str, name: str = "upload.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def ingest_bytes(tmp_path: Path, data: bytes | str, **kwargs) -> tuple[datasets.DatasetInfo, Path]:
    src = write(tmp_path, data)
    dest = tmp_path / "out" / "dataset.parquet"
    dest.parent.mkdir(exist_ok=True)
    return ingest(src, dest, **kwargs), dest


def read_back(dest: Path) -> pd.DataFrame:
    return to_frame(pq.read_table(dest))


def assert_fails(tmp_path: Path, data: bytes | str, match: str, **kwargs) -> DatasetError:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    (out / "dataset.parquet").write_bytes(b"previous version")
    src = write(tmp_path, data)
    with pytest.raises(DatasetError, match=match) as excinfo:
        ingest(src, out / "dataset.parquet", **kwargs)
    # nothing half-written: no temporary file left, the previous file untouched
    assert sorted(p.name for p in out.iterdir()) == ["dataset.parquet"]
    assert (out / "dataset.parquet").read_bytes() == b"previous version"
    assert len(str(excinfo.value)) < 400
    return excinfo.value


def mixed_frame(n: int = 500, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ints = rng.integers(-1000, 1000, n)
    with_missing = pd.Series(rng.integers(0, 50, n), dtype="float64")
    with_missing[rng.random(n) < 0.1] = np.nan
    floats = rng.normal(size=n)
    floats[rng.random(n) < 0.1] = np.nan
    cats = pd.Series(rng.choice(["red", "green", "blue", "ünïcödé", 'say "hi"', "a,b"], n),
                     dtype="str")
    cats[rng.random(n) < 0.1] = np.nan
    return pd.DataFrame({
        "id": np.arange(n), "ints": ints, "maybe": with_missing, "x": floats, "colour": cats,
        "flag": rng.random(n) < 0.5, "empty": np.full(n, np.nan),
    })


# -- round trips ------------------------------------------------------------------------------------

def test_csv_round_trip_equals_pandas_read_csv(tmp_path):
    frame = mixed_frame()
    src = tmp_path / "mixed.csv"
    frame.to_csv(src, index=False)
    info = ingest(src, tmp_path / "mixed.parquet", filename_hint="mixed.csv")
    ours = read_back(tmp_path / "mixed.parquet")
    pd.testing.assert_frame_equal(ours, pd.read_csv(src))
    assert info.source_format == "csv" and info.delimiter == "," and info.encoding == "utf-8"
    assert (info.n_rows, info.n_columns) == (500, 7)
    assert [c.kind for c in info.columns] == ["numeric", "numeric", "numeric", "numeric",
                                               "categorical", "boolean", "numeric"]
    assert info.column("ints").dtype == "int64" and info.column("colour").dtype == "string"
    assert info.filename == "mixed.csv"
    assert info.bytes_on_disk == (tmp_path / "mixed.parquet").stat().st_size
    assert info.source_bytes == src.stat().st_size


def test_parquet_input_is_rewritten_with_bounded_row_groups(tmp_path):
    frame = mixed_frame(2_500)
    frame["category"] = frame["colour"].astype("category")
    frame.index = frame.index + 10    # a non-default index is stored as __index_level_0__
    src = tmp_path / "in.parquet"
    frame.to_parquet(src, row_group_size=10_000)
    assert pq.ParquetFile(src).metadata.num_row_groups == 1
    info = ingest(src, tmp_path / "out.parquet", row_group_rows=1_000)
    assert info.source_format == "parquet" and info.delimiter is None and info.encoding is None
    meta = pq.ParquetFile(tmp_path / "out.parquet").metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1000, 1000, 500]
    assert info.n_row_groups == 3
    ours = read_back(tmp_path / "out.parquet")
    assert "__index_level_0__" not in ours.columns and list(ours.columns) == list(frame.columns)
    expected = frame.reset_index(drop=True)
    expected["category"] = expected["category"].astype("str")
    pd.testing.assert_frame_equal(ours, expected)
    assert info.column("category").kind == "categorical"


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_delimiters_are_sniffed(tmp_path, delimiter):
    frame = pd.DataFrame({"a": [1, 2, 3], "b": ["x,y", "p;q", "t|u"], "c": [0.5, 1.5, 2.5]})
    info, dest = ingest_bytes(tmp_path, frame.to_csv(index=False, sep=delimiter))
    assert info.delimiter == delimiter
    pd.testing.assert_frame_equal(read_back(dest), frame.astype({"b": "str"}))


def test_semicolon_with_decimal_commas_is_not_mistaken_for_comma(tmp_path):
    info, dest = ingest_bytes(tmp_path, "name;price\napple;1,5\npear;2,25\n")
    assert info.delimiter == ";" and list(read_back(dest).columns) == ["name", "price"]


def test_tsv_filename_hint(tmp_path):
    info, _ = ingest_bytes(tmp_path, "a\tb,c\n1\t2,3\n", filename_hint="data.tsv")
    assert info.delimiter == "\t" and [c.name for c in info.columns] == ["a", "b,c"]


def test_utf8_bom_is_stripped(tmp_path):
    info, dest = ingest_bytes(tmp_path, "\ufeffname,value\nZoë,1\n".encode("utf-8"))
    assert info.encoding == "utf-8-sig"
    assert [c.name for c in info.columns] == ["name", "value"]
    assert read_back(dest)["name"].tolist() == ["Zoë"]


def test_latin1_file_with_accented_names_and_values(tmp_path):
    text = "prénom;ville;âge\nJosé;Montréal;31\nFrançoise;Orléans;45\n"
    info, dest = ingest_bytes(tmp_path, text.encode("latin-1"))
    assert info.encoding == "cp1252" and info.delimiter == ";"
    frame = read_back(dest)
    assert list(frame.columns) == ["prénom", "ville", "âge"]
    assert frame["ville"].tolist() == ["Montréal", "Orléans"] and frame["âge"].tolist() == [31, 45]
    pd.testing.assert_frame_equal(frame, pd.read_csv(tmp_path / "upload.csv", sep=";",
                                                     encoding="latin-1"))


def test_latin1_found_after_the_sample_when_everything_before_is_ascii(tmp_path):
    rows = "".join(f"{i},plain ascii text {i}\n" for i in range(60_000))   # > 1 MiB sample
    data = b"n,text\n" + rows.encode() + "60000,crème brûlée\n".encode("latin-1")
    assert len(data) > datasets.SAMPLE_BYTES
    info, dest = ingest_bytes(tmp_path, data)
    assert info.encoding == "cp1252"   # Excel's Western code page: decodes every byte here
    assert read_back(dest)["text"].iloc[-1] == "crème brûlée"


def test_utf8_bom_then_latin1_bytes(tmp_path):
    info, dest = ingest_bytes(tmp_path, b"\xef\xbb\xbfnom,ville\nJos\xe9,Orl\xe9ans\n")
    assert info.encoding == "cp1252"
    assert read_back(dest).to_dict("records") == [{"nom": "José", "ville": "Orléans"}]


def test_windows_line_endings_and_a_single_column(tmp_path):
    info, dest = ingest_bytes(tmp_path, "value\r\n1\r\n2\r\n\r\n3\r\n")
    assert (info.n_columns, info.n_rows) == (1, 3)
    assert read_back(dest)["value"].tolist() == [1, 2, 3]
    assert_fails(tmp_path, "a,b\r\n1,2\r\n3\r\n", "^Line 3 has 1 field, expected 2")


def test_quoted_fields_with_newlines_delimiters_and_quotes(tmp_path):
    frame = pd.DataFrame({"id": [1, 2, 3],
                          "text": ["line one\nline two", 'he said "hi", then left', "a\r\nb;c|d\te"],
                          "after": [1.5, 2.5, 3.5]})
    info, dest = ingest_bytes(tmp_path, frame.to_csv(index=False))
    assert info.n_rows == 3
    pd.testing.assert_frame_equal(read_back(dest), frame.astype({"text": "str"}))


def test_types_widen_across_blocks(tmp_path):
    """int, then float, then text deep in the file, far beyond the first 1 KiB block."""
    lines = ["widening,to_text,late_values,stays_int,dates"]
    for i in range(5_000):
        lines.append(f"{i},{i},,{i},2024-01-{1 + i % 28:02d}")
    lines.append("2.5,7,,1,2024-02-01 10:30:00")
    lines += [f"{i},{i},{i},{i},2024-03-01" for i in range(5_000)]
    lines.append("3,not a number,5,2,2024-03-02")
    info, dest = ingest_bytes(tmp_path, "\n".join(lines) + "\n", csv_block_size=1024,
                              row_group_rows=3_000)
    dtypes = {c.name: c.dtype for c in info.columns}
    assert dtypes == {"widening": "double", "to_text": "string", "late_values": "int64",
                      "stays_int": "int64", "dates": "timestamp[us]"}
    frame = read_back(dest)
    assert frame["to_text"].iloc[-1] == "not a number" and frame["widening"].iloc[5_000] == 2.5
    assert frame["late_values"].isna().sum() == 5_001
    expected = pd.read_csv(tmp_path / "upload.csv")
    pd.testing.assert_frame_equal(frame.drop(columns="dates"), expected.drop(columns="dates"))
    assert (frame["dates"] == pd.to_datetime(expected["dates"], format="mixed")).all()


@pytest.mark.parametrize("arrow_threads", [1, None])  # workers run pyarrow on one thread (its message differs)
def test_converter_disagreement_widens_the_column_and_restarts(tmp_path, monkeypatch, arrow_threads):
    """If pass 1 says int but pyarrow's converter rejects a value, pass 2 restarts with text."""
    import pyarrow as pa

    monkeypatch.setattr(datasets.csvfile, "_infer_chunk", lambda column, state, dialect=None: datasets._INT)
    before = pa.cpu_count()
    pa.set_cpu_count(arrow_threads or before)
    try:
        info, dest = ingest_bytes(tmp_path, "n,word\n1,one\n2,two\n")
    finally:
        pa.set_cpu_count(before)
    assert {c.name: c.dtype for c in info.columns} == {"n": "int64", "word": "string"}
    assert read_back(dest)["word"].tolist() == ["one", "two"]


def test_pandas_missing_value_markers_and_booleans(tmp_path):
    data = "a,b,c,d\nNA,x,True,1\nnull,NULL,false,0\n3,,TRUE,1\n"
    info, dest = ingest_bytes(tmp_path, data)
    pd.testing.assert_frame_equal(read_back(dest), pd.read_csv(tmp_path / "upload.csv"))
    assert info.column("c").kind == "boolean" and info.column("d").dtype == "int64"


def test_whitespace_hex_and_signs_follow_pandas_where_it_matters(tmp_path):
    info, dest = ingest_bytes(tmp_path, "a,b,c\n 12 ,0x1F,1e3\n7,0x20,-2\n")
    assert [c.dtype for c in info.columns] == ["int64", "string", "double"]
    assert read_back(dest)["a"].tolist() == [12, 7]


# -- errors -----------------------------------------------------------------------------------------

def test_empty_file(tmp_path):
    assert_fails(tmp_path, b"", r"empty \(0 bytes\)")


def test_blank_file(tmp_path):
    assert_fails(tmp_path, b"\n\n  \n", "empty")


def test_header_only(tmp_path):
    assert_fails(tmp_path, "a,b,c\n", "header row but no data rows")


def test_ragged_row_more_fields(tmp_path):
    err = assert_fails(tmp_path, 'a,b,c\n1,"multi\nline",3\n4,5,6\n7,8,9,10\n',
                       r"^Line 5 has 4 fields, expected 3")
    assert err.line == 5


def test_ragged_row_fewer_fields(tmp_path):
    assert_fails(tmp_path, "a;b;c\n1;2;3\n4;5\n", r"^Line 3 has 2 fields, expected 3 .*semicolon")


def test_ragged_row_deep_in_the_file(tmp_path):
    rows = "".join(f"{i},{i},{i}\n" for i in range(20_000))
    assert_fails(tmp_path, "a,b,c\n" + rows + "1,2\n" + rows, r"^Line 20002 has 2 fields",
                 csv_block_size=4096)


def test_long_ragged_row_is_not_echoed(tmp_path):
    err = assert_fails(tmp_path, "a,b\n1,2\n3," + "x" * 100_000 + ",5\n", "^Line 3 has 3 fields")
    assert "xxxxxxxxxx" not in str(err)


def test_unterminated_quote(tmp_path):
    assert_fails(tmp_path, 'a,b,c\n1,2,3\n4,"five,6\n7,8,9\n',
                 r"^Line 3 opens a quoted field that is never closed")


def test_unterminated_quote_in_last_column(tmp_path):
    """pyarrow itself accepts this (the value runs to the end of the file)."""
    assert_fails(tmp_path, 'a,b,c\n1,2,3\n4,5,"six\n7,8,9\n', r"^Line 3 opens a quoted field")


def test_unterminated_quote_in_a_large_file(tmp_path):
    rows = "".join(f"{i},{i},{i}\n" for i in range(2_000))
    assert_fails(tmp_path, "a,b,c\n" + rows + '1,"2,3\n' + rows * 40,
                 r"^Line 2002 .*opens a quoted field that is never closed", csv_block_size=4096)


def test_duplicate_column_names(tmp_path):
    assert_fails(tmp_path, "id,name,id\n1,x,2\n",
                 r"Duplicate column name: 'id' \(columns 1 and 3\)")


def test_empty_column_name(tmp_path):
    assert_fails(tmp_path, ",a,b\n0,1,2\n", r"Column 1 has an empty name.*index=False")
    assert_fails(tmp_path, "a,,b,\n0,1,2,3\n", r"Columns 2, 4 have an empty name")


def test_too_many_columns(tmp_path):
    header = ",".join(f"c{i}" for i in range(10_001))
    assert_fails(tmp_path, header + "\n" + ",".join("1" * 10_001) + "\n",
                 "10,001 columns; at most 10,000")


def test_mixed_encodings(tmp_path):
    data = "a,b\nZoë,1\n".encode() + b"caf\xe9,2\n"
    err = assert_fails(tmp_path, data, r"^Line 3 contains bytes that are not valid UTF-8")
    assert err.line == 3


def test_mixed_encodings_after_the_sample(tmp_path):
    rows = "".join(f"{i},ünïcödé {i}\n" for i in range(60_000))
    assert_fails(tmp_path, b"n,text\n" + rows.encode() + b"60000,caf\xe9\n",
                 r"^Line 60002 contains bytes that are not valid UTF-8")


def test_binary_with_nul_bytes(tmp_path):
    assert_fails(tmp_path, b"a,b\n1,2\n\x00\x01\x02\x03", "NUL bytes")


def test_control_bytes(tmp_path):
    assert_fails(tmp_path, bytes(range(1, 9)) * 50 + b"a,b\n", "not a CSV/Parquet file")


def test_utf16(tmp_path):
    assert_fails(tmp_path, "a,b\n1,2\n".encode("utf-16"), "UTF-16")


def _png() -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(64)


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", "a,b\n1,2\n")
    return buffer.getvalue()


@pytest.mark.parametrize("payload,what", [
    (_png(), "PNG image"),
    (_zip(), "ZIP archive"),
    (gzip.compress(b"a,b\n1,2\n"), "gzip"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "Excel"),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
])
def test_non_data_file_renamed_csv(tmp_path, payload, what):
    assert_fails(tmp_path, payload, f"not a CSV/Parquet file: it looks like .*{what}")


def _parquet_bytes(tmp_path: Path, **kwargs) -> bytes:
    path = tmp_path / "good.parquet"
    mixed_frame(5_000).to_parquet(path, row_group_size=1_000, **kwargs)
    return path.read_bytes()


def test_truncated_parquet(tmp_path):
    data = _parquet_bytes(tmp_path)
    assert_fails(tmp_path, data[: len(data) // 2], "Parquet file is corrupt or truncated")


def test_corrupt_parquet_structure(tmp_path):
    data = bytearray(_parquet_bytes(tmp_path))
    data[4:40] = b"\xff" * 36        # the first page header
    assert_fails(tmp_path, bytes(data), r"Parquet file is corrupt .*page header")


def test_corrupt_parquet_data_caught_by_page_checksums(tmp_path):
    """Without page checksums, flipped bytes inside values cannot be noticed; with them, they are."""
    data = bytearray(_parquet_bytes(tmp_path, write_page_checksum=True))
    middle = len(data) // 3
    data[middle: middle + 2_000] = os.urandom(2_000)
    assert_fails(tmp_path, bytes(data), r"Parquet file is corrupt .*checksum")


def test_empty_parquet(tmp_path):
    path = tmp_path / "empty.parquet"
    pd.DataFrame({"a": pd.Series([], dtype="int64")}).to_parquet(path)
    assert_fails(tmp_path, path.read_bytes(), "Parquet file has no rows")


def test_parquet_with_duplicate_column_names(tmp_path):
    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([pa.array([1]), pa.array([2])], names=["a", "a"]), path)
    assert_fails(tmp_path, path.read_bytes(), r"Duplicate column name: 'a' \(columns 1 and 2\)")


def test_max_rows(tmp_path):
    rows = "".join(f"{i},{i}\n" for i in range(1_001))
    assert_fails(tmp_path, "a,b\n" + rows, "more than 1,000 rows", max_rows=1_000)
    info, _ = ingest_bytes(tmp_path, "a,b\n" + rows, max_rows=1_001)
    assert info.n_rows == 1_001
    assert_fails(tmp_path, _parquet_bytes(tmp_path), "5,000 rows, more than 1,000",
                 max_rows=1_000)


def test_row_that_does_not_fit_a_block_is_retried_with_a_larger_block(tmp_path):
    info, dest = ingest_bytes(tmp_path, "a,b\n1," + "y" * 5_000 + "\n2,z\n", csv_block_size=1024)
    assert info.n_rows == 2 and read_back(dest)["b"].str.len().tolist() == [5_000, 1]


def test_error_leaves_no_temporary_file_on_unexpected_failure(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(datasets._ColumnStats, "update", boom)
    src = write(tmp_path, "a\n1\n")
    (tmp_path / "out").mkdir()
    with pytest.raises(RuntimeError):
        ingest(src, tmp_path / "out" / "d.parquet")
    assert list((tmp_path / "out").iterdir()) == []


# -- row groups and chunked reading -----------------------------------------------------------------

@pytest.fixture
def stored(tmp_path) -> tuple[Path, pd.DataFrame]:
    frame = mixed_frame(10_500, seed=3)
    src = tmp_path / "in.csv"
    frame.to_csv(src, index=False)
    dest = tmp_path / "stored.parquet"
    ingest(src, dest, row_group_rows=1_000, csv_block_size=8192)
    return dest, pd.read_csv(src)


def test_row_groups_are_bounded(stored):
    dest, _ = stored
    meta = pq.ParquetFile(dest).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == [1000] * 10 + [500]
    assert n_row_groups(dest) == 11


def test_row_groups_are_also_bounded_in_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.writing, "ROW_GROUP_MAX_BYTES", 64 * 1024)
    frame = pd.DataFrame({"text": ["x" * 100] * 5_000})
    info, dest = ingest_bytes(tmp_path, frame.to_csv(index=False), csv_block_size=4096)
    meta = pq.ParquetFile(dest).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sum(sizes) == 5_000 and len(sizes) > 5 and max(sizes) <= 1_000
    assert info.n_row_groups == len(sizes)


def test_iter_chunks_covers_every_row_once_in_order(stored):
    dest, expected = stored
    starts, frames = [], []
    for start, table in iter_chunks(dest):
        assert table.num_rows <= 1_000
        starts.append(start)
        frames.append(to_frame(table, start_row=start))
    assert starts == list(range(0, 10_500, 1_000))
    whole = pd.concat(frames)
    assert whole.index.tolist() == list(range(10_500))
    pd.testing.assert_frame_equal(whole.reset_index(drop=True), expected, check_dtype=False)


def test_iter_chunks_by_batch_and_column_subset(stored):
    dest, expected = stored
    seen = []
    for start, table in iter_chunks(dest, columns=["id", "colour"], batch_rows=333):
        assert table.column_names == ["id", "colour"] and table.num_rows <= 333
        assert table.column("id").to_pylist() == list(range(start, start + table.num_rows))
        seen.extend(table.column("id").to_pylist())
    assert seen == list(range(10_500))


def test_read_row_group_independently(stored):
    dest, expected = stored
    start, table = read_row_group(dest, 7, columns=["id", "x"])
    assert start == 7_000 and table.column_names == ["id", "x"]
    assert table.column("id").to_pylist() == list(range(7_000, 8_000))
    start, table = read_row_group(dest, 10)
    assert (start, table.num_rows) == (10_000, 500)
    with pytest.raises(IndexError):
        read_row_group(dest, 11)
    with pytest.raises(DatasetError, match="no column 'nope'"):
        read_row_group(dest, 0, columns=["id", "nope"])
    with pytest.raises(DatasetError, match="no column 'nope'"):
        next(iter_chunks(dest, columns=["nope"]))


# -- summaries --------------------------------------------------------------------------------------

def _check_summary(info: datasets.DatasetInfo, frame: pd.DataFrame) -> None:
    for column in info.columns:
        series = frame[column.name]
        assert column.nulls == int(series.isna().sum()), column.name
        values = series.dropna()
        if column.kind == "numeric" and len(values):
            assert column.min == pytest.approx(values.min()) and column.max == pytest.approx(values.max())
            assert column.mean == pytest.approx(values.mean())
        if column.kind == "datetime":
            assert column.min == values.min().isoformat() and column.max == values.max().isoformat()
        if column.kind != "other":
            assert column.n_unique_exact and column.n_unique_estimate == values.nunique()
        if column.kind in ("categorical", "boolean"):
            counts = values.value_counts()
            top = {d["value"]: d["count"] for d in column.top_values}
            assert len(top) == min(10, len(counts)) and column.top_values_exact
            assert all(counts[value] == n for value, n in top.items())
            assert sorted(top.values(), reverse=True) == counts.iloc[:len(top)].tolist()


def test_summaries_equal_pandas_for_csv(tmp_path):
    frame = mixed_frame(3_000, seed=5)
    frame["many"] = pd.Series([f"v{i % 37}" for i in range(3_000)], dtype="str")
    frame["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(3_000), unit="h")
    src = tmp_path / "s.csv"
    frame.to_csv(src, index=False)
    info = ingest(src, tmp_path / "s.parquet", row_group_rows=700)
    expected = pd.read_csv(src, parse_dates=["when"])
    _check_summary(info, expected)
    assert info.column("when").kind == "datetime"
    assert info.column("when").min == "2024-01-01T00:00:00"
    assert info.column("empty").nulls == 3_000 and info.column("empty").mean is None


def test_summaries_equal_pandas_for_parquet_with_nan(tmp_path):
    frame = mixed_frame(3_000, seed=6)
    frame.loc[::7, "x"] = np.nan                 # NaN (not null) in a float column
    frame["small"] = frame["ints"].astype("int16")
    frame["cat"] = frame["colour"].astype("category")
    src = tmp_path / "n.parquet"
    frame.to_parquet(src)
    info = ingest(src, tmp_path / "n2.parquet", row_group_rows=1_000)
    _check_summary(info, frame)


def test_distinct_counts_are_exact_below_the_bound_and_top_values_approximate(tmp_path):
    n = 40_000
    ids = [f"user-{i}" for i in range(n)]
    ids[::4] = ["frequent"] * len(ids[::4])       # a heavy hitter among 30,001 distinct values
    frame = pd.DataFrame({"who": ids, "num": np.arange(n) * 0.5,
                          "note": ["long text " * 30 + str(i % 3) for i in range(n)]})
    src = tmp_path / "hc.csv"
    frame.to_csv(src, index=False)
    info = ingest(src, tmp_path / "hc.parquet", row_group_rows=5_000)
    who, num, note = info.column("who"), info.column("num"), info.column("note")
    assert who.n_unique_exact and who.n_unique_estimate == 30_001
    assert num.n_unique_exact and num.n_unique_estimate == n
    assert who.top_values[0] == {"value": "frequent", "count": 10_000}
    assert not who.top_values_exact                  # more than DISTINCT_CAP values counted
    assert note.top_values is None and note.n_unique_exact and note.n_unique_estimate == 3


def test_a_50000_row_id_column_counts_exactly_and_is_an_identifier(tmp_path):
    n = 50_000
    frame = pd.DataFrame({"loan_id": np.arange(10_000_000, 10_000_000 + n),
                          "code": [f"L-{i:06d}" for i in range(n)],
                          "amount": np.round(np.random.default_rng(0).gamma(2, 500, n), 2),
                          "region": np.where(np.arange(n) % 3 == 0, "north", "south")})
    src = tmp_path / "loans.csv"
    frame.to_csv(src, index=False)
    info = ingest(src, tmp_path / "loans.parquet", row_group_rows=8_000)
    loan_id, code = info.column("loan_id"), info.column("code")
    assert (loan_id.n_unique_estimate, loan_id.n_unique_exact, loan_id.identifier) == (n, True, True)
    assert (code.n_unique_estimate, code.n_unique_exact, code.identifier) == (n, True, True)
    assert not info.column("amount").identifier         # floats are measurements, not identifiers
    assert not info.column("region").identifier


def test_distinct_estimates_beyond_the_bound_never_exceed_the_row_count(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.summary, "EXACT_DISTINCT", 1_000)
    monkeypatch.setattr(datasets.writing, "EXACT_DISTINCT", 1_000)
    monkeypatch.setattr(datasets.writing, "DISTINCT_CAP", 1_000)
    n = 30_000
    src = tmp_path / "ids.parquet"
    pd.DataFrame({"id": np.arange(n), "half": np.arange(n) // 2}).to_parquet(src)
    info = ingest(src, tmp_path / "ids2.parquet", row_group_rows=4_000)
    ident, half = info.column("id"), info.column("half")
    assert not ident.n_unique_exact and 1_000 < ident.n_unique_estimate <= n
    assert ident.identifier                  # an estimate within ID_UNIQUE_SHARE_ESTIMATED
    assert half.n_unique_estimate == pytest.approx(n / 2, rel=0.05) and not half.identifier


def test_histograms_cover_every_value(tmp_path):
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(50, 5, 5_000), [-1_000.0, 10_000.0]])  # outliers late
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(values)), unit="min")
    src = tmp_path / "h.parquet"
    pd.DataFrame({"x": values, "when": when, "stars": rng.integers(1, 6, len(values))}).to_parquet(src)
    info = ingest(src, tmp_path / "h2.parquet", row_group_rows=1_000)
    hist = info.column("x").histogram
    assert sum(hist["counts"]) == len(values) and len(hist["counts"]) <= 32
    assert hist["edges"][0] <= -1_000 and hist["edges"][-1] > 10_000
    assert sum(info.column("when").histogram["counts"]) == len(values)
    stars = info.column("stars")                       # few values: one bar per value
    assert stars.histogram is None and [t["value"] for t in stars.top_values] == [1, 2, 3, 4, 5]
    assert sum(t["count"] for t in stars.top_values) == len(values)


def test_parquet_with_unusual_types(tmp_path):
    import decimal

    table = pa.table({
        "half": pa.array([1.5, None, -2.0], pa.float16()),
        "dec": pa.array([decimal.Decimal("1.10"), decimal.Decimal("-3.25"), None],
                        pa.decimal128(10, 2)),
        "big": pa.array(["a", "b", "a"], pa.large_string()),
        "view": pa.array(["x", None, "x"], pa.string_view()),
        "lists": pa.array([[1, 2], [], None]),
        "u64": pa.array([2**63 + 1, 0, 5], pa.uint64()),
        "tz": pa.array([0, 86_400_000_000, None], pa.timestamp("us", tz="Europe/Paris")),
    })
    src = tmp_path / "types.parquet"
    pq.write_table(table, src)
    info = ingest(src, tmp_path / "out.parquet")
    kinds = {c.name: c.kind for c in info.columns}
    assert kinds == {"half": "numeric", "dec": "numeric", "big": "categorical",
                     "view": "categorical", "lists": "other", "u64": "numeric", "tz": "datetime"}
    assert (info.column("half").min, info.column("half").max) == (-2.0, 1.5)
    assert (info.column("dec").min, info.column("dec").mean) == (-3.25, pytest.approx(-1.075))
    assert info.column("view").top_values == [{"value": "x", "count": 2}]
    assert info.column("u64").max == 2**63 + 1
    assert info.column("tz").max == "1970-01-02T01:00:00+01:00"
    assert info.column("lists").nulls == 1 and info.column("lists").n_unique_estimate is None
    json.dumps(info.to_dict(), allow_nan=False)
    frame = read_back(tmp_path / "out.parquet")
    assert str(frame["view"].dtype) == "str" and str(frame["big"].dtype) == "str"


def test_preview_and_to_dict_are_json_safe(tmp_path):
    frame = pd.DataFrame({"x": [1.5, np.nan, np.inf], "t": ["a" * 2_000, None, "c"],
                          "when": pd.to_datetime(["2024-01-01 10:00", None, "2024-05-06 00:00"]),
                          "d": [b"\x00\xff", b"ok", None]})
    src = tmp_path / "p.parquet"
    frame.to_parquet(src)
    info = ingest(src, tmp_path / "p2.parquet", preview_rows=2)
    as_json = json.loads(json.dumps(info.to_dict(), allow_nan=False))
    assert as_json["preview"][0]["when"] == "2024-01-01T10:00:00"
    assert as_json["preview"][1] == {"x": None, "t": None, "when": None, "d": "ok"}
    assert as_json["preview"][0]["d"] == "00ff"
    assert len(as_json["preview"][0]["t"]) <= datasets.PREVIEW_MAX_CHARS
    assert len(as_json["preview"]) == 2
    x = as_json["columns"][0]
    assert x["max"] is None and x["min"] == 1.5 and x["nulls"] == 1   # inf is not JSON
    assert as_json["columns"][3]["kind"] == "other"


def test_to_frame_dtypes_for_scikit_learn(tmp_path):
    table = pa.table({
        "s": pa.array(["a", None, "b"]),
        "d": pa.array(["x", "y", None]).dictionary_encode(),
        "i": pa.array([1, None, 3]), "j": pa.array([1, 2, 3]),
        "b": pa.array([True, None, False]), "n": pa.nulls(3),
        "ts": pa.array([1, 2, None], pa.timestamp("us")),
        "day": pa.array([19000, None, 19001], pa.date32()),
    })
    frame = to_frame(table, start_row=100)
    assert frame.index.tolist() == [100, 101, 102]
    assert {k: str(v) for k, v in frame.dtypes.items()} == {
        "s": "str", "d": "str", "i": "float64", "j": "int64", "b": "object", "n": "float64",
        "ts": "datetime64[us]", "day": "datetime64[ms]"}
    assert frame["b"].iloc[1] is np.nan or math.isnan(frame["b"].iloc[1])
    assert np.isnan(frame["s"].iloc[1])


# -- property ---------------------------------------------------------------------------------------

_OTHER_DELIMITERS = {",": ";\t|", ";": ",\t|", "\t": ",;|", "|": ",;\t"}


@st.composite
def small_tables(draw):
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    # other candidate delimiters would make sniffing genuinely ambiguous; pandas.to_csv writes a
    # lone "\r" unquoted (and cannot read its own output back), so it is not a valid input either
    alphabet = st.characters(codec="utf-8", exclude_characters=_OTHER_DELIMITERS[sep] + "\x00\r",
                             exclude_categories=("Cs",))
    n_rows = draw(st.integers(1, 8))
    kinds = draw(st.lists(st.sampled_from(["int", "float", "text"]), min_size=1, max_size=4))
    columns = {}
    for i, kind in enumerate(kinds):
        name = f"c{i}" + draw(st.text(alphabet, max_size=5)).strip()
        missing = st.none() if i % 2 else st.nothing()
        if kind == "int":
            values = draw(st.lists(st.integers(-2**53, 2**53), min_size=n_rows, max_size=n_rows))
            columns[name] = pd.Series(values, dtype="int64")
        elif kind == "float":
            values = draw(st.lists(st.floats(allow_nan=False, width=64) | missing,
                                   min_size=n_rows, max_size=n_rows))
            columns[name] = pd.Series(values, dtype="float64")
        else:   # "x" first: never a number, a missing-value marker or a boolean
            text = st.builds(lambda s: "x" + s, st.text(alphabet, max_size=12))
            values = draw(st.lists(text | missing, min_size=n_rows, max_size=n_rows))
            columns[name] = pd.Series(values, dtype="str")
    return sep, pd.DataFrame(columns)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_tables())
def test_property_round_trip_or_dataset_error(case):
    sep, frame = case
    with tempfile.TemporaryDirectory() as scratch:
        src = Path(scratch) / "t.csv"
        frame.to_csv(src, index=False, sep=sep)
        try:
            info = ingest(src, Path(scratch) / "t.parquet")
        except DatasetError:
            return
        assert info.delimiter == sep or len(frame.columns) == 1
        ours = to_frame(pq.read_table(Path(scratch) / "t.parquet"))
        expected = frame.copy()
        for name in expected.columns:   # what any CSV reader gives back for this table
            if expected[name].isna().all():
                expected[name] = expected[name].astype("float64")
        pd.testing.assert_frame_equal(ours, expected)
        pd.testing.assert_frame_equal(ours, pd.read_csv(src, sep=sep))


# -- memory -----------------------------------------------------------------------------------------

# Peak RSS of the child itself.  ru_maxrss is not usable here: on Linux a child started with
# fork/vfork + exec inherits the parent's high-water mark (signal->maxrss survives exec), so it
# would report pytest's own peak.  VmHWM belongs to the process's current memory map, which exec
# replaces, so it starts from zero; ru_maxrss is the fallback on systems without /proc.
_CHILD = textwrap.dedent("""
    import json, resource, sys
    from viewer.core.datasets import ingest

    def peak_mb():
        try:
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except OSError:
            pass
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    before = peak_mb()
    info = ingest(sys.argv[1], sys.argv[2], durable=False)  # fsync flushes the generated CSV
    print(json.dumps({"rows": info.n_rows, "imports_mb": before, "peak_mb": peak_mb()}))
""")


def _write_big_csv(path: Path, target_bytes: int) -> None:
    rng = np.random.default_rng(0)
    words = np.array(["alpha", "beta, gamma", 'say "hi"', "line\nbreak", "été"], dtype=object)
    start, first = 0, True
    with open(path, "wb") as fh:
        while fh.tell() < target_bytes:
            n = 200_000
            table = pa.table({"id": np.arange(start, start + n), "x": rng.normal(size=n).round(5),
                              "k": rng.integers(0, 100, n), "w": words[rng.integers(0, 5, n)]})
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(include_header=first))
            fh.write(sink.getvalue().to_pybytes())
            start, first = start + n, False


def _peak_rss_mb(src: Path, dest: Path) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", _CHILD, str(src), str(dest)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["rows"] > 100_000
    return result["peak_mb"]


def test_memory_does_not_grow_with_file_size(tmp_path):
    """Peak RSS of ingest in a fresh process: 200 MB of CSV vs 20 MB (bench/ingest.py: 1 GB)."""
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    _write_big_csv(small, 20_000_000)
    _write_big_csv(big, 200_000_000)
    small_peak = _peak_rss_mb(small, tmp_path / "small.parquet")
    big_peak = _peak_rss_mb(big, tmp_path / "big.parquet")
    assert big_peak - small_peak < 60, (small_peak, big_peak)


def test_parquet_decompression_bomb_is_ingested_in_bounded_memory(tmp_path):
    """200 KB of zstd Parquet that holds 320 MB of float64 zeros in one row group: ingestion
    streams it in batches, so the process grows by far less than the decompressed size."""
    import subprocess
    import sys

    script = f"""
import resource, numpy as np, pyarrow as pa, pyarrow.parquet as pq
n = 20_000_000
pq.write_table(pa.table({{"a": np.zeros(n), "b": np.zeros(n)}}), {str(tmp_path / 'bomb.parquet')!r},
               compression="zstd", row_group_size=n, use_dictionary=False)
import gc; gc.collect()
from viewer.core.datasets import ingest
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
info = ingest({str(tmp_path / 'bomb.parquet')!r}, {str(tmp_path / 'out.parquet')!r})
grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(info.n_rows, round(grew))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                         cwd=str(__import__("pathlib").Path(__file__).resolve().parents[2]))
    assert out.returncode == 0, out.stderr[-2000:]
    rows, grew = map(int, out.stdout.split())
    assert (tmp_path / "bomb.parquet").stat().st_size < 1_000_000
    assert rows == 20_000_000
    assert grew < 200, f"ingesting grew the process by {grew} MiB (the data is 320 MB decompressed)"


def test_a_huge_single_field_gets_a_clear_error_naming_the_line(tmp_path):
    """A value of a few MiB is data like any other; 20 MiB in one field is not a table."""
    src = tmp_path / "huge.csv"
    src.write_text("a,b\n1,y\n2," + "x" * (20 * 2**20) + "\n3,z\n")
    with pytest.raises(DatasetError, match=r"^Line 3 has a value longer than [\d,]+ characters") as caught:
        ingest(src, tmp_path / "out.parquet")
    assert caught.value.line == 3
    assert not (tmp_path / "out.parquet").exists()
