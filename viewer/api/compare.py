"""``/api/v1/compare``: finished scoring jobs over one dataset, side by side.

The metrics and plots come from each job's stored metrics and aggregates, so they are ready at
once. The bootstrap confidence intervals and the rows where the models disagree most need the
rows themselves: a "compare" job (``tasks.compare_jobs``) streams the jobs' output parts once and
stores a small result. It is started by the first request for a set of jobs, whoever asks: it
only reads results the asker may already see, and it is deduplicated by the set of job ids, so
any viewer may trigger it and repeated requests never add work. A failed or cancelled comparison
stays failed (shown with its error) until someone asks to retry.

The page (``viewer.web.compare``) and this API share everything here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from flask import abort, jsonify, request
from sqlalchemy import select

from .. import jobs, tasks
from ..auth import requester, role_required
from ..core import compare
from ..extensions import db
from ..records import Job, User
from .jobs import job_or_404
from .v1 import bp

MAX_JOBS = 8


@dataclass
class Spec:
    """What the jobs being compared have in common."""

    jobs: list[Job]
    task: str                   # binary, multiclass or regression
    classes: list | None
    target: str | None
    dataset_id: str
    dataset_name: str
    n_rows: int | None

    @property
    def ids(self) -> list[str]:
        return [j.id for j in self.jobs]


def parse_ids(values: list[str]) -> list[str]:
    """Job ids from repeated ``jobs`` parameters (commas also separate), in order, without repeats."""
    ids: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in ids:
                ids.append(part)
    if any("\x00" in i for i in ids):
        abort(404, description="No such job.")  # no stored id holds a NUL (PostgreSQL cannot compare one)
    if len(ids) < 2:
        abort(400, description="Pick at least two jobs to compare: ?jobs=<id>&jobs=<id>.")
    if len(ids) > MAX_JOBS:
        abort(400, description=f"Compare at most {MAX_JOBS} jobs at a time.")
    return ids


def label(job: Job) -> str:
    params = job.params or {}
    return str(params.get("model") or job.id[:8])


def labels(found: list[Job]) -> list[str]:
    """Display names (model/version); the same model twice gets the job id to tell them apart."""
    names = [label(j) for j in found]
    return [f"{n} · {j.id[:6]}" if names.count(n) > 1 else n for n, j in zip(names, found)]


def task_of(job: Job) -> str | None:
    params = job.params or {}
    if params.get("kind") == "regressor":
        return "regression"
    if params.get("kind") == "classifier" and params.get("classes"):
        return "binary" if len(params["classes"]) == 2 else "multiclass"
    return None


def load(ids: list[str]) -> Spec:
    """The jobs, when they can be compared; a 400 or 404 saying why not otherwise."""
    found = [job_or_404(i) for i in ids]
    for job in found:
        name = f"Job {job.id[:8]} ({label(job)})" if job.kind == "score" else f"Job {job.id[:8]}"
        if job.kind != "score":
            abort(400, description=f"{name} is a {job.kind} job; only scoring jobs can be compared.")
        if job.state != "done":
            abort(400, description=f"{name} is {job.state}; only finished (done) jobs can be compared.")
        if task_of(job) is None:
            abort(400, description=f"{name} scored a model that is neither a classifier nor a regressor.")
    first = found[0]
    if any(j.dataset_id != first.dataset_id for j in found) or first.dataset_id is None:
        abort(400, description="The jobs were run on different datasets (or a dataset was deleted); "
                               "compare jobs on the same dataset.")
    targets = {(j.params or {}).get("target") or None for j in found}
    if len(targets) > 1:
        abort(400, description="The jobs used different target columns; compare jobs scored against the same target.")
    tasks_found = {task_of(j) for j in found}
    if len(tasks_found) > 1:
        abort(400, description="The jobs are of different task types (" + ", ".join(sorted(tasks_found))
                               + "); compare models of one kind.")
    task = tasks_found.pop()
    classes = None
    if task != "regression":
        classes = list(first.params["classes"])
        if any(list(j.params["classes"]) != classes for j in found):
            abort(400, description="The models have different classes; their probabilities cannot be compared.")
    dataset = first.dataset
    return Spec(found, task, classes, targets.pop(), first.dataset_id, dataset.name if dataset else "",
                first.progress_total or (dataset.n_rows if dataset else None))


def fingerprint(ids: list[str]) -> str:
    return hashlib.sha256(f"compare|{compare.VERSION}|{'|'.join(sorted(ids))}".encode()).hexdigest()


def comparison_job(spec: Spec, user: User | None, retry: bool = False) -> tuple[Job | None, str | None]:
    """The compare job of these jobs, started when there is none (or ``retry`` after a failure).
    Returns (job, None), or (None, why) when the queue is unreachable."""
    key = fingerprint(spec.ids)
    latest = db.session.scalar(select(Job).where(Job.fingerprint == key, Job.kind == "compare")
                               .order_by(Job.created_at.desc()).limit(1))
    # A worker that dies mid-comparison is the reaper's business (jobs.claim_job's lease): the job
    # runs again on another worker, or ends in error after MAX_ATTEMPTS.
    if latest is not None and (latest.state in ("pending", "running", "done") or not retry):
        return latest, None
    stored = sorted(spec.ids)
    by_id = {j.id: j for j in spec.jobs}
    params = {"jobs": stored, "order": spec.ids, "models": [label(by_id[i]) for i in stored], "task": spec.task,
              "classes": spec.classes, "target": spec.target, "dataset": spec.dataset_name}
    try:
        job = jobs.submit(tasks.compare_jobs, "compare", params, user, dataset_id=spec.dataset_id,
                          fingerprint=key, progress_total=spec.n_rows)
    except jobs.BrokerUnavailable as exc:
        return None, str(exc)
    return job, None


def comparison_view(spec: Spec, job: Job | None, message: str | None) -> dict[str, Any]:
    """The compare job's state, and its result seen from the first job (the baseline)."""
    status = jobs.serialize_job(job) if job else None
    if status is not None:
        status["result"] = None  # the stored result, presented from the baseline, is "result" below
    out: dict[str, Any] = {"state": job.state if job else "unavailable", "job": status, "message": message,
                           "result": None}
    if job is not None and job.state == "done" and job.result:
        out["result"] = compare.present(job.result, job.params["jobs"], spec.ids)
    elif job is not None and job.state in ("error", "cancelled"):
        out["message"] = job.error or f"The comparison was {job.state}."
    return out


def summary(spec: Spec) -> dict[str, Any]:
    names = labels(spec.jobs)
    return {
        "dataset_id": spec.dataset_id, "dataset": spec.dataset_name, "target": spec.target, "task": spec.task,
        "classes": spec.classes,
        "jobs": [{"id": j.id, "label": n, "model": (j.params or {}).get("model"),
                  "model_name": (j.params or {}).get("model_name"),
                  "model_version": (j.params or {}).get("model_version"), "url": f"/api/v1/jobs/{j.id}"}
                 for j, n in zip(spec.jobs, names)],
        "metrics": compare.side_by_side([(j.result or {}).get("metrics") for j in spec.jobs]),
    }


def flag(value: str | None, name: str) -> bool:
    text = (value or "false").lower()
    if text not in ("true", "false", "1", "0"):
        abort(400, description=f"'{name}' must be true or false.")
    return text in ("true", "1")


@bp.get("/compare")
@role_required("viewer")
def compare_jobs():
    spec = load(parse_ids(request.args.getlist("jobs")))
    job, message = comparison_job(spec, requester(), retry=flag(request.args.get("retry"), "retry"))
    return jsonify({**summary(spec), "comparison": comparison_view(spec, job, message)})
