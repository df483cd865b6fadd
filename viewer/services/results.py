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

from ..core.datasets import read_row_group
from ..core.scoring import ROW_COLUMN, TARGET_COLUMN
from ..infra.records import Job
from ..plots import results as result_plots
from . import datasets, jobs
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


def _tables(items: Iterable[Path | pa.Table]) -> Iterator[pa.Table]:
    for item in items:
        yield item if isinstance(item, pa.Table) else pq.read_table(item)


def stream_csv(paths: Iterable[Path | pa.Table]) -> Iterator[bytes]:
    header = True
    for table in _tables(paths):
        buffer = io.BytesIO()
        pacsv.write_csv(neutralise_formulas(table), buffer, write_options=pacsv.WriteOptions(include_header=header))
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


def stream_parquet(files: Iterable[Path | pa.Table]) -> Iterator[bytes]:
    sink = _Drain()
    writer = None
    for table in _tables(files):
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


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    return column.cast(column.type.value_type) if pa.types.is_dictionary(column.type) else column


def output_name(name: str, inputs: set[str]) -> str:
    """An output column's name beside the dataset's columns: as it is, or ``<name>_output``
    (``_output_2``, ...) when the dataset has a column of that name."""
    candidate, n = f"{name}", 1
    while candidate in inputs:
        candidate = f"{name}_output" + (f"_{n}" if n > 1 else "")
        n += 1
    return candidate


def _with_inputs(job: Job, keys: list[str]) -> Iterator[pa.Table]:
    """Each row group of the job's dataset with its part's outputs beside it (row for row: part i
    holds row group i), so memory holds one chunk of each. The passthrough columns and the
    target are the dataset's own, not repeated."""
    dataset = job.dataset
    kept = set((job.params or {}).get("passthrough") or ()) | {TARGET_COLUMN}
    with datasets.get_file(dataset) as source:
        inputs = set(pq.read_schema(source).names)
        for index, key in enumerate(keys):
            start, table = read_row_group(source, index)
            with store().reader(key) as path:
                part = pq.read_table(path)
            rows = part.column(ROW_COLUMN)
            if part.num_rows != table.num_rows or (part.num_rows and rows[0].as_py() != start):
                raise ValueError(f"the dataset's rows {start:,}+ no longer match the job's results")
            names = list(table.column_names)
            columns = [_decoded(table.column(n)) for n in names]
            for name in part.column_names:
                if name not in kept:
                    names.append(output_name(name, inputs))
                    columns.append(part.column(name))
            yield pa.table(columns, names=names)


def download(job: Job, fmt: str, with_inputs: bool = False) -> Download:
    """A finished scoring job's results, streamed as CSV or Parquet (the API and the pages):
    row, passthrough columns (IDs), prediction, probabilities, target; ``with_inputs``: every
    column of the dataset with the job's outputs beside it."""
    if job.kind != "score" or job.state != "done":
        raise ServiceError("conflict", "conflict",
                           f"The job is {job.state}; results can be downloaded once a scoring job is done.")
    if fmt not in MIMETYPES:
        raise ServiceError("invalid", "bad_request", "format must be csv or parquet.")
    if not has_results(job):
        raise ServiceError("gone", "gone", "The job's output files are gone.")
    keys = jobs.output_keys(job)
    if with_inputs:
        dataset = job.dataset
        if dataset is None or not dataset.path or not store().exists(dataset.path):
            raise ServiceError("gone", "gone", "The job's dataset was deleted, so its inputs cannot be joined to the "
                               "predictions; download the results alone (they keep the passthrough columns).")
        if int(dataset.info.get("n_row_groups") or 1) != len(keys):
            raise ServiceError("gone", "gone", "The dataset no longer matches the job's results; download the "
                               "results alone.")
        tables: Iterable[Path | pa.Table] = _with_inputs(job, keys)
        name = f"job-{job.id}-with-inputs.{fmt}"
    else:
        tables, name = _parts(keys), f"job-{job.id}.{fmt}"
    chunks = stream_csv(tables) if fmt == "csv" else stream_parquet(tables)
    return Download(name, MIMETYPES[fmt], chunks)


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

