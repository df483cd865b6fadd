"""``/api/v1/jobs``: submit, follow, cancel, download."""

from __future__ import annotations

from flask import abort, jsonify, request
from sqlalchemy import select

from .. import jobs, results, scoring
from ..auth import requester, role_required
from ..extensions import db
from ..records import JOB_STATES, Job, User
from .v1 import bp


def job_or_404(job_id: str) -> Job:
    job = db.session.get(Job, job_id) if len(job_id) <= 32 else None
    if job is None:
        abort(404, description=f"No job {job_id[:40]!r}.")
    return job


def filtered_jobs(args) -> list[Job]:
    """Jobs filtered by model name, dataset id, state and user; shared with the jobs page."""
    statement = select(Job).order_by(Job.created_at.desc())
    if args.get("state"):
        if args["state"] not in JOB_STATES:
            abort(400, description=f"state must be one of {', '.join(JOB_STATES)}.")
        statement = statement.where(Job.state == args["state"])
    if any("\x00" in value for value in args.values()):
        return []  # no stored text holds a NUL (and PostgreSQL refuses to compare with one)
    if args.get("dataset"):
        statement = statement.where(Job.dataset_id == args["dataset"])
    if args.get("user"):
        statement = statement.join(User, Job.created_by_id == User.id).where(User.username == args["user"])
    if args.get("kind"):
        statement = statement.where(Job.kind == args["kind"])
    rows = db.session.scalars(statement.limit(500)).all()
    if args.get("model"):
        rows = [j for j in rows if (j.params or {}).get("model_name") == args["model"]]
    return rows


@bp.get("/jobs")
def list_jobs():
    return jsonify(jobs=[jobs.serialize_job(j) for j in filtered_jobs(request.args)])


@bp.post("/jobs")
@role_required("scientist")
def create_job():
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description='Send JSON: {"model": "name[@alias|/version]", "dataset": "<id>", "target": "<column>"}.')
    model, dataset, target = body.get("model"), body.get("dataset"), body.get("target")
    if not isinstance(model, str) or not isinstance(dataset, str):
        abort(400, description="'model' and 'dataset' are required strings.")
    if target is not None and not isinstance(target, str):
        abort(400, description="'target' must be a column name.")
    force = body.get("force", False)
    if not isinstance(force, bool):
        abort(400, description="'force' must be true or false.")
    kind = body.get("kind", "score")
    options = importance_options(body)  # checked for every kind: a wrong type is never ignored
    if kind == "importance":
        job, created = scoring.submit_importance(model, dataset, target or None, requester(), force=force, **options)
        return jsonify(jobs.serialize_job(job)), 202 if created else 200
    if kind != "score":
        abort(400, description="'kind' must be 'score' or 'importance'.")
    job, created = scoring.submit(model, dataset, target or None, requester(), force=force)
    return jsonify(jobs.serialize_job(job)), 202 if created else 200


def importance_options(body: dict) -> dict:
    """n_repeats, max_rows, seed (integers) and scoring (a name) of an importance job, when given."""
    options = {}
    for name in ("n_repeats", "max_rows", "seed"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            abort(400, description=f"'{name}' must be an integer.")
        options[name] = value
    scoring_name = body.get("scoring")
    if scoring_name is not None and not isinstance(scoring_name, str):
        abort(400, description="'scoring' must be a scoring name, e.g. 'accuracy' or 'r2'.")
    options["scoring"] = scoring_name or None
    scoring.check_importance_ranges(options)
    return options


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(jobs.serialize_job(job_or_404(job_id)))


@bp.delete("/jobs/<job_id>")
@role_required("scientist")
def cancel_job(job_id: str):
    job = job_or_404(job_id)
    jobs.request_cancel(job)
    return jsonify(jobs.serialize_job(job)), 202


@bp.get("/jobs/<job_id>/aggregates")
def job_aggregates(job_id: str):
    job = job_or_404(job_id)
    if job.state != "done" or not job.result:
        abort(409, description=f"The job is {job.state}; aggregates exist once it is done.")
    return jsonify(job.result.get("aggregates"))


@bp.get("/jobs/<job_id>/results")
def job_results(job_id: str):
    return results.response(job_or_404(job_id), request.args.get("format", "csv"))
