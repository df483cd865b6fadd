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

from sqlalchemy import select
from threadpoolctl import threadpool_limits

from ..core.datasets import DatasetError
from ..core.drift import stats
from ..core.drift.sketch import MAX_CATEGORIES, Grid
from ..core.drift.window import Summary
from ..infra.artifacts import new_key
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
    ids = set(datasets.id_columns(reference)) | set(datasets.id_columns(current))
    compared: dict[str, str] = {}
    left_out: dict[str, str] = {}
    for column in (current.info or {}).get("columns", []):
        name, theirs = column["name"], ref.get(column["name"])
        if theirs is None:
            left_out[name] = f"not in {reference.name}"
            continue
        empty = [d.name for d, c in ((reference, theirs), (current, column)) if c.get("nulls", 0) >= (d.n_rows or 0)]
        kinds = {theirs["kind"], column["kind"]}
        if empty:
            left_out[name] = f"no values in {' or '.join(empty)}"
        elif kinds == {"numeric", "categorical"}:
            where = current.name if column["kind"] == "numeric" else reference.name
            left_out[name] = (f"numbers only in {where}, text in the other (check the decimal separator each file "
                              "was read with)")
        elif name in ids:
            left_out[name] = "an ID column (every value differs)"
        elif not kinds <= set(COMPARED):
            left_out[name] = f"{sorted(kinds - set(COMPARED))[0]} values are not compared"
        elif len({COMPARED[k] for k in kinds}) > 1:
            left_out[name] = f"{theirs['kind']} in {reference.name} but {column['kind']} here"
        elif COMPARED[column["kind"]] == "categorical" and max(
                c.get("n_unique_estimate") or 0 for c in (theirs, column)) > MAX_CATEGORIES:
            left_out[name] = f"more than {MAX_CATEGORIES:,} different values (free text, not categories)"
        else:
            compared[name] = COMPARED[column["kind"]]
    for name in ref:
        if name not in compared and name not in left_out:
            left_out[name] = f"only in {reference.name}"
    return compared, left_out


def submit(dataset_id: str, reference_id: str, user: User | None, *, force: bool = False) -> tuple[Job, bool]:
    """Start comparing a dataset with a reference dataset (of the same project); (job, created).
    The same pair and columns already pending, running or done returns that job, unless ``force``
    (or its summaries are gone)."""
    current, reference = datasets.get(dataset_id), datasets.get(reference_id)
    if current.id == reference.id:
        raise ServiceError("invalid", "same_dataset", "Choose another dataset as the reference: a dataset "
                           "compared with itself never drifts.")
    for dataset in (current, reference):
        if dataset.state == "error":
            raise ServiceError("conflict", "dataset_not_ready", f"{dataset.name} could not be read ({dataset.error}); "
                               "upload it again to compare it.")
        if dataset.state != "ready":
            raise ServiceError("conflict", "dataset_not_ready", f"{dataset.name} is still being ingested; compare "
                               "it once it is ready.")
    compared, left_out = plan(reference, current)
    if not compared:
        raise ServiceError("invalid", "no_common_columns", f"{current.name} and {reference.name} have no column of "
                           "the same name and kind to compare.", left_out=left_out)
    key = hashlib.sha256("|".join([KIND, reference.id, current.id, *sorted(compared)]).encode()).hexdigest()
    if not force:
        existing = jobs.same_work(key)
        if existing is not None and (existing.state != "done" or _kept(existing)):
            return existing, False
    params = {"dataset": current.name, "reference": reference.id, "reference_name": reference.name,
              "columns": compared, "left_out": left_out}
    job = jobs.submit(KIND, params, user, dataset_id=current.id, fingerprint=key,
                      progress_total=(current.n_rows or 0) + (reference.n_rows or 0))
    return job, True


def _kept(job: Job) -> bool:
    keys = (job.result or {}).get("summaries") or {}
    return bool(keys) and all(store().exists(k) for k in keys.values())


def recorded_keys() -> set[str]:
    """The summaries finished comparisons keep (the artifact sweep leaves them)."""
    keys: set[str] = set()
    for result in db.session.scalars(select(Job.result).where(Job.kind == KIND, Job.state == "done")):
        keys.update(((result or {}).get("summaries") or {}).values())
    return keys


def run(job_id: str, owner: str) -> None:
    """The job's body: the reference first (its numbers fix the grids), then the dataset."""
    job = db.session.get(Job, job_id)
    params = dict(job.params)
    current = db.session.get(Dataset, job.dataset_id) if job.dataset_id else None
    reference = db.session.get(Dataset, params["reference"])
    if current is None or reference is None or not current.path or not reference.path:
        gone = params["reference_name"] if reference is None or not reference.path else params["dataset"]
        jobs.fail(job_id, f"{gone} was deleted; upload it again to compare the two.")
        return
    # Plain values: committing the progress expires the records, and a dataset may go meanwhile.
    sources = [(reference.path, reference.name), (current.path, current.name)]
    total = (current.n_rows or 0) + (reference.n_rows or 0)
    prefix = jobs.output_prefix(job_id)
    columns = params["columns"]
    categorical = {n for n, kind in columns.items() if kind == "categorical"}
    names = list(columns)
    done = [0]

    def progress(rows: int) -> None:
        done[0] += rows
        if not jobs.set_progress(job_id, done[0], total):
            raise Cancelled()

    def summarise(path_key: str, name: str, grids_for) -> tuple[Summary, dict[str, Grid]]:
        try:
            with store().reader(path_key) as path:
                return monitoring.summarise_dataset(path, names, categorical, {}, grids_for, progress)
        except FileNotFoundError:
            raise DatasetError(f"{name} was deleted while the two were compared; upload it again to compare "
                               "them.") from None

    def compute() -> dict[str, Any]:
        with threadpool_limits(limits=1):
            before, grids = summarise(*sources[0], _grids)
            after, _ = summarise(*sources[1], lambda _sample: grids)
        keys = {}
        for which, summary in (("reference", before), ("current", after)):
            keys[which] = new_key(f"{prefix}/{which}", ".summary")
            with store().writer(keys[which]) as path:
                path.write_bytes(summary.to_bytes())
        thresholds = stats.Thresholds()
        figures = monitoring.drift_of(after, before, thresholds, categorical)
        figures.pop("prediction", None)
        return {**figures, "reference_rows": before.rows, "thresholds": asdict(thresholds), "summaries": keys}

    jobs.run_single(job_id, owner, compute, cancelled=Cancelled, expected=(DatasetError,))


def ended(job_id: str, state: str) -> None:
    """End hook: a comparison that failed or was cancelled keeps nothing it wrote."""
    if state != "done":
        jobs.remove_outputs(job_id)


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
        for which in ("reference", "current"):
            with store().reader(job.result["summaries"][which]) as path:
                summaries.append(Summary.from_bytes(path.read_bytes()))
    except (FileNotFoundError, KeyError):
        raise ServiceError("gone", "outputs_gone", "The comparison's summaries are gone; compare the two datasets "
                           "again from the dataset page.") from None
    reference, current = (s.columns.get(column) for s in summaries)
    return {"column": column, "figures": figures, **monitoring.distribution(current, reference)}
