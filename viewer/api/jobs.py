"""``/api/v1/jobs``: submit, follow, cancel, download."""

from __future__ import annotations

from flask import jsonify

from ..http.auth import requester, role_required
from ..http.responses import download_response
from ..services import dependence, jobs, results, rows, submission
from ..services.errors import ServiceError
from .inputs import JobQuery, ResultsQuery, RowQuery, ScoreRequest
from .outputs import Aggregates, Job, JobList, JobRow
from .spec import checks, valid
from .v1 import bp, next_link

RESULT_TYPES = {"text/csv": {"schema": {"type": "string"}},
                "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}}


@bp.get("/jobs")
@checks("Jobs", {200: JobList}, (400, 401), query=JobQuery)
def list_jobs():
    """The runs table: jobs filtered and sorted, a page at a time

    Filtered and sorted in the database (newest first unless 'sort' says otherwise; sort by a
    main metric, accuracy, roc_auc, rmse or r2, or by duration); each job carries its
    main_metrics and duration_seconds. Follow 'next' (null on the last page)."""
    query = valid("query")
    filters = {name: getattr(query, name) for name in jobs.LIST_FILTERS if getattr(query, name)}
    found = jobs.search(filters, query.limit, query.offset, query.sort)
    return jsonify(jobs=[jobs.serialize_job(j) for j in found.items], next=next_link(found.next_offset))


@bp.post("/jobs")
@role_required("scientist")
@checks("Jobs", {202: Job, 200: Job}, (400, 401, 403, 404, 409, 413, 503), json=ScoreRequest)
def create_job():
    """Score a dataset with a model, or compute feature importance

    202 with a new job; 200 with the earlier job when the same model version, dataset and target
    (and, for importance, options) are already pending, running or done (unless force). 409 while
    the dataset is not ready."""
    body = valid("json")
    target = body.target or None
    if body.kind == "dependence":
        job, created = dependence.submit(body.model, body.dataset, requester(), features=body.features,
                                         pair=body.pair, max_rows=body.max_rows, grid=body.grid, force=body.force)
        return jsonify(jobs.serialize_job(job)), 202 if created else 200
    submission.check_importance_ranges(body.model_dump())  # for every kind: a wrong option is never ignored
    if body.kind == "importance":
        job, created = submission.submit_importance(body.model, body.dataset, target, requester(), force=body.force,
                                                    n_repeats=body.n_repeats, max_rows=body.max_rows,
                                                    seed=body.seed, scoring=body.scoring or None)
    else:
        job, created = submission.submit(body.model, body.dataset, target, requester(), force=body.force,
                                         passthrough=body.passthrough, strict=body.strict,
                                         segments=[s.model_dump() for s in body.segments or []])
    return jsonify(jobs.serialize_job(job)), 202 if created else 200


@bp.get("/jobs/<job_id>")
@checks("Jobs", {200: Job}, (401, 404))
def get_job(job_id: str):
    """A job's state, progress and result"""
    return jsonify(jobs.serialize_job(jobs.get(job_id)))


@bp.delete("/jobs/<job_id>")
@role_required("scientist")
@checks("Jobs", {202: Job}, (401, 403, 404))
def cancel_job(job_id: str):
    """Ask a job to stop

    A pending job is cancelled at once; a running one stops at its next check."""
    job = jobs.get(job_id)
    jobs.cancel(job)
    return jsonify(jobs.serialize_job(job)), 202


@bp.get("/jobs/<job_id>/aggregates")
@checks("Jobs", {200: Aggregates}, (401, 404, 409))
def job_aggregates(job_id: str):
    """Plot aggregates of a finished scoring job

    409 until the job is done."""
    job = jobs.get(job_id)
    if job.state != "done" or not job.result:
        raise ServiceError("conflict", "conflict", f"The job is {job.state}; aggregates exist once it is done.")
    return jsonify(job.result.get("aggregates"))


@bp.get("/jobs/<job_id>/rows")
@checks("Jobs", {200: JobRow}, (400, 401, 404, 409, 410), query=RowQuery)
def job_row(job_id: str):
    """One row of a finished scoring job, and why

    By its number (row) or by a passthrough column's value (column and value: an ID): the
    dataset's inputs, the job's prediction, probabilities and target, and each input's
    contribution to the prediction (as ?explain=true on the predict API gives them)."""
    query = valid("query")
    job = jobs.get(job_id)
    if query.row is None and query.column is None:
        raise ServiceError("invalid", "bad_request", "Give row (a number) or column and value (an ID).")
    row = rows.find(job, row=query.row, column=query.column, value=query.value)
    return jsonify(rows.detail(job, row))


@bp.get("/jobs/<job_id>/results")
@checks("Jobs", {200: None}, (400, 401, 404, 409, 410), query=ResultsQuery,
        extra={"responses": {"200": {"content": RESULT_TYPES}}})
def job_results(job_id: str):
    """Download a scoring job's predictions

    Streamed; the passthrough columns (by default the dataset's ID columns) come after row, to join
    the predictions back to your rows by ID. inputs=true adds every column of the dataset. 409
    until a scoring job is done, 410 when its files (or, with inputs, its dataset) are gone."""
    query = valid("query")
    return download_response(results.download(jobs.get(job_id), query.format, with_inputs=query.inputs))
