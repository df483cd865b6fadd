"""Reading the scoring jobs' outputs: their part files streamed batch by batch, aligned by row
index (``aligned_chunks``), into a ``Comparison`` (``compare_outputs``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..scoring import PREDICTION_COLUMN, ROW_COLUMN, TARGET_COLUMN, proba_column
from .accumulator import ChunkOutput, Comparison
from .base import BATCH_ROWS


# ----------------------------------------------------------------------------- reading outputs


class Cancelled(Exception):
    """Raised by a progress callback to stop ``compare_outputs``."""



@dataclass
class Source:
    """One scoring job's outputs: its part files in row order (``core.scoring.parts_in`` lists
    a folder's; a served job's come from its records)."""

    paths: Sequence[str | Path]

    def parts(self) -> list[Path]:
        return [Path(p) for p in self.paths]


def _batches(parts: list[Path], columns: list[str]) -> Iterator[pa.Table]:
    for path in parts:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns):
            yield pa.Table.from_batches([batch])


def aligned_chunks(sources: Sequence[Source], columns: Sequence[list[str]]) -> Iterator[tuple[np.ndarray, list[pa.Table]]]:
    """Yield (row indices, one table per source) over the rows every source holds, in row order.

    The parts of jobs over one dataset are cut alike (part i is the dataset's row group i), but
    nothing here relies on it: batches of any size are matched by row index, and a source missing
    a row (or holding another) is an error."""
    iterators = [_batches(s.parts(), [ROW_COLUMN, *cols]) for s, cols in zip(sources, columns)]
    buffers: list[pa.Table | None] = [None] * len(sources)
    while True:
        for i, it in enumerate(iterators):
            while buffers[i] is None or buffers[i].num_rows == 0:
                nxt = next(it, None)
                if nxt is None:
                    buffers[i] = None
                    break
                buffers[i] = nxt
        live = [b is not None for b in buffers]
        if not any(live):
            return
        if not all(live):
            raise ValueError("the jobs' outputs do not hold the same rows (one ends early)")
        n = min(b.num_rows for b in buffers)
        heads = [b.slice(0, n) for b in buffers]
        rows = heads[0].column(ROW_COLUMN).to_numpy()
        for head in heads[1:]:
            if not np.array_equal(head.column(ROW_COLUMN).to_numpy(), rows):
                raise ValueError("the jobs' outputs do not hold the same rows in the same order")
        yield rows, heads
        buffers = [b.slice(n) for b in buffers]


def _plain(value: Any) -> Any:
    """A JSON-safe cell: numbers, text, booleans and None as they are, anything else as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def lookup_rows(source: Source, rows: Sequence[int], columns: Sequence[str]) -> dict[int, dict[str, Any]]:
    """``columns`` (a job's passthrough columns, its IDs) of the given row indices, read from the
    job's parts one batch at a time: row index -> {column: value}. Columns a part lacks are
    left out (a job scored before it kept any)."""
    wanted = sorted(set(int(r) for r in rows))
    if not wanted or not columns or not source.parts():
        return {}
    present = [c for c in columns if c in set(pq.read_schema(source.parts()[0]).names) and c != ROW_COLUMN]
    if not present:
        return {}
    keys = pa.array(wanted, pa.int64())
    found: dict[int, dict[str, Any]] = {}
    for batch in _batches(source.parts(), [ROW_COLUMN, *present]):
        hits = batch.filter(pc.is_in(batch.column(ROW_COLUMN), value_set=keys))
        for record in hits.to_pylist():
            found[int(record.pop(ROW_COLUMN))] = {k: _plain(v) for k, v in record.items()}
        if len(found) == len(wanted):
            break
    return found


def compare_outputs(sources: Sequence[Source], task: str, classes: Sequence[Any] | None, has_target: bool,
                    progress: Callable[[int], None] | None = None, passthrough: Sequence[str] = (),
                    **options: Any) -> dict[str, Any]:
    """Stream the scoring outputs of ``sources`` (same dataset, same task) into a ``Comparison``
    and return its result. ``progress(rows_done)`` is called after each batch; it may raise
    ``Cancelled`` to stop. ``passthrough``: columns of the first job's parts (its IDs) that each
    disagreeing row carries as ``ids``, to find it in one's own data. FileNotFoundError when a
    job's parts are gone, ValueError when the outputs do not hold the same rows."""
    if len(sources) < 2:
        raise ValueError("a comparison needs at least two jobs")
    for source in sources:
        if not source.parts():
            raise FileNotFoundError("a job's output files are gone")
    proba_names = [proba_column(c) for c in classes] if task != "regression" and classes else []
    has_proba = []
    for source in sources:
        names = set(pq.read_schema(source.parts()[0]).names)
        has_proba.append(bool(proba_names) and all(c in names for c in proba_names))
    all_proba = task != "regression" and all(has_proba)
    columns = []
    for i in range(len(sources)):
        cols = [PREDICTION_COLUMN] + (proba_names if all_proba else [])
        if i == 0 and has_target:
            cols.append(TARGET_COLUMN)
        columns.append(cols)
    comparison = Comparison(task, len(sources), classes=classes, has_proba=has_proba, has_target=has_target,
                            **options)
    done = 0
    for rows, tables in aligned_chunks(sources, columns):
        target = tables[0].column(TARGET_COLUMN) if has_target else None
        outputs = []
        for table in tables:
            proba = None
            if all_proba:
                proba = np.column_stack([table.column(c).to_numpy() for c in proba_names]).astype(np.float64)
            outputs.append(ChunkOutput(table.column(PREDICTION_COLUMN), proba))
        comparison.add(rows, target, outputs)
        done += len(rows)
        if progress is not None:
            progress(done)
    result = comparison.result()
    top = result.get("disagreement", {}).get("top") or []
    if passthrough and top:
        ids = lookup_rows(sources[0], [r["row"] for r in top], passthrough)
        result["disagreement"]["id_columns"] = [c for c in passthrough if any(c in v for v in ids.values())]
        for r in top:
            r["ids"] = ids.get(r["row"], {})
    return result
