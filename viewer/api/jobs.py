"""``/api/v1/jobs``: submit, follow, cancel, download."""

from __future__ import annotations

from flask import jsonify, request, url_for

from ..http.auth import requester, role_required
from ..http.responses import download_response
from ..services import jobs, results, submission
from ..services.errors import ServiceError
from .v1 import bp, json_body


@bp.get("/jobs")
def list_jobs():
    """One page of jobs, newest first; ``next`` is the URL of the following page (null on the last)."""
    filters = {k: v for k, v in request.args.items() if k in jobs.LIST_FILTERS and v}
    limit = request.args.get("limit", str(jobs.PAGE_SIZE))
    if not (limit.isascii() and limit.isdigit() and 1 <= int(limit) <= jobs.PAGE_SIZE):
        raise ServiceError("invalid", "bad_request", f"'limit' must be a whole number from 1 to {jobs.PAGE_SIZE}.")
    found, cursor = jobs.search(filters, int(limit), request.args.get("cursor") or None)
    following = None
    if cursor is not None:
        following = url_for("api.list_jobs", **filters, **({"limit": limit} if "limit" in request.args else {}),
                            cursor=cursor)
    return jsonify(jobs=[jobs.serialize_job(j) for j in found], next=following)


@bp.post("/jobs")
@role_required("scientist")
def create_job():
    body = json_body('Send JSON: {"model": "name[@alias|/version]", "dataset": "<id>", "target": "<column>"}.')
    model, dataset, target = body.get("model"), body.get("dataset"), body.get("target")
    if not isinstance(model, str) or not isinstance(dataset, str):
        raise ServiceError("invalid", "bad_request", "'model' and 'dataset' are required strings.")
    if target is not None and not isinstance(target, str):
        raise ServiceError("invalid", "bad_request", "'target' must be a column name.")
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise ServiceError("invalid", "bad_request", "'force' must be true or false.")
    kind = body.get("kind", "score")
    options = importance_options(body)  # checked for every kind: a wrong type is never ignored
    if kind == "importance":
        job, created = submission.submit_importance(model, dataset, target or None, requester(), force=force,
                                                    **options)
    elif kind == "score":
        job, created = submission.submit(model, dataset, target or None, requester(), force=force)
    else:
        raise ServiceError("invalid", "bad_request", "'kind' must be 'score' or 'importance'.")
    return jsonify(jobs.serialize_job(job)), 202 if created else 200


def importance_options(body: dict) -> dict:
    """n_repeats, max_rows, seed (integers) and scoring (a name) of an importance job, when given."""
    options = {}
    for name in ("n_repeats", "max_rows", "seed"):
        value = body.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ServiceError("invalid", "bad_request", f"'{name}' must be an integer.")
        options[name] = value
    scoring_name = body.get("scoring")
    if scoring_name is not None and not isinstance(scoring_name, str):
        raise ServiceError("invalid", "bad_request", "'scoring' must be a scoring name, e.g. 'accuracy' or 'r2'.")
    options["scoring"] = scoring_name or None
    submission.check_importance_ranges(options)
    return options


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(jobs.serialize_job(jobs.get(job_id)))


@bp.delete("/jobs/<job_id>")
@role_required("scientist")
def cancel_job(job_id: str):
    job = jobs.get(job_id)
    jobs.cancel(job)
    return jsonify(jobs.serialize_job(job)), 202


@bp.get("/jobs/<job_id>/aggregates")
def job_aggregates(job_id: str):
    job = jobs.get(job_id)
    if job.state != "done" or not job.result:
        raise ServiceError("conflict", "conflict", f"The job is {job.state}; aggregates exist once it is done.")
    return jsonify(job.result.get("aggregates"))


@bp.get("/jobs/<job_id>/results")
def job_results(job_id: str):
    return download_response(results.download(jobs.get(job_id), request.args.get("format", "csv")))
