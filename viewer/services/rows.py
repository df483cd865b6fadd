"""One row of a finished scoring job: found by its number or by a passthrough ID, with its inputs
(the dataset's row), the job's outputs for it and why the model predicted that (``explain``).

Part ``i`` of a job's results holds row group ``i`` of its dataset, so a row costs reading one
part and one row group (an ID search reads only the ID column of each part, one at a time)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from flask import current_app

from ..core.datasets.reading import read_row_group, to_frame
from ..core.payload import PayloadError
from ..core.scoring import PREDICTION_COLUMN, ROW_COLUMN, TARGET_COLUMN, features
from ..infra.records import Job
from . import datasets, explain, jobs, registry, results, serving
from .artifacts import store
from .errors import ServiceError

MAX_VALUE = 200


def find(job: Job, *, row: int | None = None, column: str | None = None, value: str | None = None) -> int:
    """The row number: ``row`` checked, or the first row whose passthrough ``column`` reads ``value``."""
    _check(job)
    keys = jobs.output_keys(job)
    if row is not None:
        total = sum(_rows_in(key) for key in keys)
        if not 0 <= row < total:
            raise ServiceError("not_found", "row_not_found", f"Row {row:,} is not in this job's results: they hold "
                               f"rows 0 to {total - 1:,}.")
        return row
    passthrough = list((job.params or {}).get("passthrough") or ())
    if column not in passthrough:
        raise ServiceError("invalid", "bad_request", "Find a row by one of the job's passthrough columns ("
                           + (", ".join(passthrough) if passthrough else "it has none") + ") or by its row number.")
    text = (value or "").strip()[:MAX_VALUE]
    if not text:
        raise ServiceError("invalid", "bad_request", f"Give the {column} to look for.")
    for key in keys:
        with store().reader(key) as path:
            table = pq.read_table(path, columns=[column, ROW_COLUMN])
        ids = table.column(column)
        ids = ids.cast(ids.type.value_type) if pa.types.is_dictionary(ids.type) else ids
        found = pc.index(pc.cast(ids, pa.string()), text).as_py()
        if found >= 0:
            return int(table.column(ROW_COLUMN)[found].as_py())
    raise ServiceError("not_found", "row_not_found", f"No row of this job has {column} = {text!r}.")


def _check(job: Job) -> None:
    if job.kind != "score" or job.state != "done":
        raise ServiceError("conflict", "conflict", "Rows can be looked at once a scoring job is done.")
    if not results.has_results(job):
        raise ServiceError("gone", "gone", "The job's output files are gone.")


def _rows_in(key: str) -> int:
    with store().reader(key) as path:
        return pq.ParquetFile(path).metadata.num_rows


def detail(job: Job, row: int) -> dict[str, Any]:
    """The row's outputs, inputs and explanation (or why there is none)."""
    _check(job)
    keys = jobs.output_keys(job)
    index, offset, start = _locate(keys, row)
    key = keys[index]
    with store().reader(key) as path:
        part = pq.read_table(path).slice(offset, 1).to_pylist()[0]
    passthrough = list((job.params or {}).get("passthrough") or ())
    out: dict[str, Any] = {
        "row": row, "ids": {c: registry.plain(part.get(c)) for c in passthrough},
        "prediction": registry.plain(part.get(PREDICTION_COLUMN)),
        "target": registry.plain(part.get(TARGET_COLUMN)),
        "probabilities": {name[len("proba_"):]: registry.plain(v) for name, v in part.items()
                          if name.startswith("proba_")},
        "inputs": None, "explanations": None, "explanation_error": None,
    }
    dataset = job.dataset
    if dataset is None or not dataset.path or not store().exists(dataset.path):
        out["explanation_error"] = "The job's dataset was deleted, so the row's inputs are gone."
        return out
    with datasets.get_file(dataset) as source:
        first, group = read_row_group(source, index)
    if first != start or offset >= group.num_rows:
        out["explanation_error"] = "The dataset no longer matches the job's results."
        return out
    frame = to_frame(group.slice(offset, 1))
    out["inputs"] = {str(c): registry.plain(frame[c].iloc[0]) for c in frame.columns}
    version = job.model_version
    if version is None:
        out["explanation_error"] = "The job's model version was deleted."
        return out
    try:
        predictor = serving.predictor_for(version)
        if hasattr(predictor, "with_timeout"):  # a page's request, not a job's chunk: the request deadline
            predictor = predictor.with_timeout(float(current_app.config.get("HOST_TIMEOUT_SECONDS", 30)))
        X = features(predictor, frame, (job.params or {}).get("target"))
        explanations = explain.explain_version((version.model.project_id, version.sha256), lambda: version,
                                               predictor, X, version.ref)
        out["explanations"] = explanations
    except PayloadError as exc:
        out["explanation_error"] = exc.message
    except ServiceError as exc:
        out["explanation_error"] = exc.message
    return out


def _locate(keys: list[str], row: int) -> tuple[int, int, int]:
    """(part index, offset in it, its first row) of ``row``."""
    start = 0
    for index, key in enumerate(keys):
        n = _rows_in(key)
        if row < start + n:
            return index, row - start, start
        start += n
    raise ServiceError("not_found", "row_not_found", f"Row {row:,} is not in this job's results.")
