"""Two datasets compared with no serving ("January vs February"): the monitoring's drift report
for one window, a dataset against a reference dataset.

A "drift" job (one task) streams both datasets by row group into the summaries the monitoring
keeps (``monitoring.summarise_dataset``: numeric columns on grids made from the reference,
categories counted), then computes the same figures with the same default thresholds
(``monitoring.drift_of``). The job's result holds the figures (a few numbers per column); the
two summaries are kept beside it for the distributions a column opens. Columns are taken from
the datasets' ingest-time kinds: numbers against numbers, categories (and booleans) against
categories; ID columns, dates and free text are listed as left out, with the reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from typing import Any

from threadpoolctl import threadpool_limits

from ..core.datasets import DatasetError
from ..core.drift import stats
from ..core.drift.sketch import Grid
from ..core.drift.window import Summary
from ..infra.extensions import db
from ..infra.records import Dataset, Job, User
from . import datasets, jobs, monitoring
from .artifacts import store
from .errors import ServiceError

KIND = "drift"
COMPARED = {"numeric": "numeric", "categorical": "categorical", "boolean": "categorical"}


class Cancelled(Exception):
    pass


def plan(reference: Dataset, current: Dataset) -> tuple[dict[str, str], dict[str, str]]:
    """The columns compared (name: numeric or categorical) and those left out (name: why)."""
    ref = {c["name"]: c for c in (reference.info or {}).get("columns", [])}
    compared: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for column in (current.info or {}).get("columns", []):
        name, theirs = column["name"], ref.get(column["name"])
        kinds = (theirs["kind"], column["kind"]) if theirs is not None else ()
        if theirs is None:
            left_out[name] = f"not in {reference.name}"
        elif "numeric" in kinds and set(kinds) <= {"numeric", "categorical", "other"} and len(set(kinds)) == 2:
            where = current.name if column["kind"] == "numeric" else reference.name
            left_out[name] = (f"numbers only in {where}, text in the other (check the decimal separator each file "
                              "was read with)")
        elif column.get("identifier") or theirs.get("identifier"):
            left_out[name] = "an ID column (every value differs)"
        elif column["kind"] not in COMPARED or theirs["kind"] not in COMPARED:
            unsupported = column["kind"] if column["kind"] not in COMPARED else theirs["kind"]
            left_out[name] = f"{unsupported} values are not compared"
        elif COMPARED[column["kind"]] != COMPARED[theirs["kind"]]:
            left_out[name] = f"{theirs['kind']} in {reference.name} but {column['kind']} here"
        else:
            compared[name] = COMPARED[column["kind"]]
    for name in ref:
        if name not in compared and name not in left_out:
            left_out[name] = f"only in {reference.name}"
    return compared, left_out


def submit(dataset_id: str, reference_id: str, user: User | None, *, force: bool = False) -> tuple[Job, bool]:
    """Start comparing a dataset with a reference dataset; (job, created). The same pair already
    pending, running or done returns that job, unless ``force``."""
    current, reference = datasets.get(dataset_id), datasets.get(reference_id)
    if current.id == reference.id:
        raise ServiceError("invalid", "same_dataset", "Choose another dataset as the reference: a dataset "
                           "compared with itself never drifts.")
    for dataset in (current, reference):
        if dataset.state != "ready":
            raise ServiceError("conflict", "dataset_not_ready", f"{dataset.name} is {dataset.state}, not ready; "
                               "compare it once its upload is ingested.")
    compared, left_out = plan(reference, current)
    if not compared:
        raise ServiceError("invalid", "no_common_columns", f"{current.name} and {reference.name} have no column of "
                           "the same name and kind to compare.", left_out=left_out)
    key = hashlib.sha256(f"{KIND}|{reference.id}|{current.id}".encode()).hexdigest()
    if not force:
        existing = jobs.same_work(key, kind=KIND)
        if existing is not None:
            return existing, False
    params = {"dataset": current.name, "reference": reference.id, "reference_name": reference.name,
              "columns": compared, "left_out": left_out}
    job = jobs.submit(KIND, params, user, dataset_id=current.id, fingerprint=key,
                      progress_total=(current.n_rows or 0) + (reference.n_rows or 0))
    return job, True


def _keys(job_id: str) -> tuple[str, str]:
    prefix = jobs.output_prefix(job_id)
    return f"{prefix}/reference.summary", f"{prefix}/current.summary"


def run(job_id: str, owner: str) -> None:
    """The job's body: the reference first (its numbers fix the grids), then the dataset."""
    job = db.session.get(Job, job_id)
    params = dict(job.params)
    current = db.session.get(Dataset, job.dataset_id) if job.dataset_id else None
    reference = db.session.get(Dataset, params["reference"])
    if current is None or reference is None or not current.path or not reference.path:
        jobs.fail(job_id, "One of the two datasets was deleted; upload it again to compare them.")
        return
    columns = params["columns"]
    categorical = {n for n, kind in columns.items() if kind == "categorical"}
    names = list(columns)
    done = [0]

    def progress(rows: int) -> None:
        done[0] += rows
        if not jobs.set_progress(job_id, done[0], (current.n_rows or 0) + (reference.n_rows or 0)):
            raise Cancelled()

    def compute() -> dict[str, Any]:
        try:
            with threadpool_limits(limits=1):
                with store().reader(reference.path) as path:
                    before, grids = monitoring.summarise_dataset(path, names, categorical, {},
                                                                 lambda sample: _grids(sample), progress)
                if not before.rows:
                    raise DatasetError(f"{reference.name} has no rows to compare with.")
                with store().reader(current.path) as path:
                    after, _ = monitoring.summarise_dataset(path, names, categorical, {}, lambda _sample: grids,
                                                            progress)
        except FileNotFoundError:
            raise DatasetError("One of the two datasets was deleted while they were compared; upload it "
                               "again to compare them.") from None
        reference_key, current_key = _keys(job_id)
        for key, summary in ((reference_key, before), (current_key, after)):
            with store().writer(key) as path:
                path.write_bytes(summary.to_bytes())
        thresholds = stats.Thresholds()
        figures = monitoring.drift_of(after, before, thresholds, categorical)
        figures.pop("prediction", None)
        return {**figures, "reference_rows": before.rows, "thresholds": asdict(thresholds)}

    jobs.run_single(job_id, owner, compute, cancelled=Cancelled, expected=(DatasetError,))


def _grids(sample: dict[str, Any]) -> dict[str, Grid]:
    return {name: Grid.for_values(values) for name, values in sample.items()}


def cell(job: Job, column: str) -> dict[str, Any]:
    """One column's two distributions (``monitoring.distribution``) and its figures."""
    if job.kind != KIND or job.state != "done":
        raise ServiceError("conflict", "not_done", "The comparison is not done yet.")
    figures = (job.result or {}).get("columns", {}).get(column)
    if figures is None:
        raise ServiceError("not_found", "not_found", f"The comparison has no column {column[:100]!r}.")
    summaries = []
    try:
        for key in _keys(job.id):
            with store().reader(key) as path:
                summaries.append(Summary.from_bytes(path.read_bytes()))
    except FileNotFoundError:
        raise ServiceError("gone", "outputs_gone", "The comparison's summaries are gone; run it again.") from None
    reference, current = (s.columns.get(column) for s in summaries)
    return {"column": column, "figures": figures, **monitoring.distribution(current, reference)}


def of_dataset(dataset_id: str, limit: int = 10) -> list[Job]:
    """The comparisons of a dataset with a reference, newest first."""
    return jobs.of_dataset(dataset_id, limit, kind=KIND)
