"""A finished scoring job's results as CSV or Parquet, streamed part by part (memory bounded by
one part), and one plot's data as CSV."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..infra.records import Job
from ..plots import results as result_plots
from . import jobs
from .artifacts import store
from .errors import ServiceError

PLOT_KEY = re.compile(r"^[a-z_]{1,40}$")
MIMETYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


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


def stream_csv(paths: Iterable[Path]) -> Iterator[bytes]:
    header = True
    for path in paths:
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


def stream_parquet(files: Iterable[Path]) -> Iterator[bytes]:
    sink = _Drain()
    writer = None
    for path in files:
        table = pq.read_table(path)
        if writer is None:
            writer = pq.ParquetWriter(sink, table.schema)
        writer.write_table(table)
        yield sink.take()
    if writer is not None:
        writer.close()
    yield sink.take()


@dataclass(frozen=True)
class Download:
    filename: str
    mimetype: str
    chunks: Iterator[bytes]


def _parts(keys: list[str]) -> Iterator[Path]:
    """Each part's local path, held while the stream reads it."""
    for key in keys:
        with store().reader(key) as path:
            yield path


def has_results(job: Job) -> bool:
    if job.kind != "score" or job.state != "done":
        return False
    keys = jobs.output_keys(job)
    return bool(keys) and all(store().exists(k) for k in keys)


def download(job: Job, fmt: str) -> Download:
    """A finished scoring job's results, streamed as CSV or Parquet (the API and the pages)."""
    if job.kind != "score" or job.state != "done":
        raise ServiceError("conflict", "conflict",
                           f"The job is {job.state}; results can be downloaded once a scoring job is done.")
    if fmt not in MIMETYPES:
        raise ServiceError("invalid", "bad_request", "format must be csv or parquet.")
    if not has_results(job):
        raise ServiceError("gone", "gone", "The job's output files are gone.")
    paths = _parts(jobs.output_keys(job))
    chunks = stream_csv(paths) if fmt == "csv" else stream_parquet(paths)
    return Download(f"job-{job.id}.{fmt}", MIMETYPES[fmt], chunks)


def aggregates(job: Job) -> dict | None:
    """A finished scoring job's plot aggregates (None before it is done, or when it has none)."""
    if job.kind != "score" or job.state != "done":
        return None
    found = (job.result or {}).get("aggregates")
    return found if isinstance(found, dict) else None


def plot_csv(job: Job, key: str) -> bytes:
    """One plot's data as CSV (text cells a spreadsheet would run as formulas are neutralised)."""
    if job.kind != "score" or job.state != "done":
        raise ServiceError("conflict", "conflict",
                           f"The job is {job.state}; plot data exists once a scoring job is done.")
    table = result_plots.plot_table(aggregates(job), key) if PLOT_KEY.match(key) else None
    if table is None:
        raise ServiceError("not_found", "not_found", f"This job has no plot {key[:40]!r}.")
    buffer = io.BytesIO()
    arrow = neutralise_formulas(pa.table({name: pa.array(values) for name, values in table.items()}))
    pacsv.write_csv(arrow, buffer)
    return buffer.getvalue()

