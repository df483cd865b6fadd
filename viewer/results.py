"""Streaming a job's results as CSV or Parquet, part by part (memory bounded by one part)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from flask import Response, abort, stream_with_context

MIMETYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def parts(output_dir: Path) -> list[Path]:
    return sorted(output_dir.glob("part-*.parquet"))


def neutralise_formulas(table: pa.Table) -> pa.Table:
    """Prefix text cells that a spreadsheet would run as a formula with a quote (OWASP's advice)."""
    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            risky = pc.or_(pc.starts_with(column, "="), pc.starts_with(column, "+"))
            for prefix in FORMULA_PREFIXES[2:]:
                risky = pc.or_(risky, pc.starts_with(column, prefix))
            column = pc.if_else(pc.fill_null(risky, False), pc.binary_join_element_wise("'", column, ""), column)
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def stream_csv(output_dir: Path) -> Iterator[bytes]:
    header = True
    for path in parts(output_dir):
        buffer = io.BytesIO()
        pacsv.write_csv(neutralise_formulas(pq.read_table(path)), buffer,
                        write_options=pacsv.WriteOptions(include_header=header))
        header = False
        yield buffer.getvalue()


class _Drain(io.RawIOBase):
    """A write-only file whose bytes are handed out as they are written."""

    def __init__(self):
        self.pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.pending += data
        return len(data)

    def take(self) -> bytes:
        out, self.pending = bytes(self.pending), bytearray()
        return out


def stream_parquet(output_dir: Path) -> Iterator[bytes]:
    files = parts(output_dir)
    sink = _Drain()
    writer = pq.ParquetWriter(sink, pq.read_schema(files[0]))
    for path in files:
        writer.write_table(pq.read_table(path))
        yield sink.take()
    writer.close()
    yield sink.take()


def response(job, fmt: str) -> Response:
    """A finished scoring job's results, streamed as CSV or Parquet (the API and the pages)."""
    from .jobs import output_dir

    if job.kind != "score" or job.state != "done":
        abort(409, description=f"The job is {job.state}; results can be downloaded once a scoring job is done.")
    if fmt not in MIMETYPES:
        abort(400, description="format must be csv or parquet.")
    directory = output_dir(job)
    if not parts(directory):
        abort(410, description="The job's output files are gone.")
    stream = stream_csv(directory) if fmt == "csv" else stream_parquet(directory)
    return Response(stream_with_context(stream), mimetype=MIMETYPES[fmt],
                    headers={"Content-Disposition": f'attachment; filename="job-{job.id}.{fmt}"'})
