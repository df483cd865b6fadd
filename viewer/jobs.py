"""The job lifecycle shared by pages, the API and tasks (Redash's pattern).

A job is a row first and a Celery message second: the message carries only the job id, so an
unknown id is a 404 and never an eternal "pending", and state is read from the database, never
from ``AsyncResult.get()`` inside a request.
"""

from __future__ import annotations

from typing import Any

from celery import Task
from kombu.exceptions import OperationalError

from .extensions import db
from .records import FINAL_STATES, Job, User, utcnow

# Fail fast when the broker is down, so a request answers 503 in about a second instead of hanging.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}


class BrokerUnavailable(RuntimeError):
    pass


def submit(task: Task, kind: str, params: dict[str, Any], user: User | None) -> Job:
    """Record a job, then enqueue it. If the broker refuses, the row is removed again."""
    job = Job(kind=kind, params=params, created_by=user)
    db.session.add(job)
    db.session.commit()
    try:
        task.apply_async(args=[job.id], retry=True, retry_policy=PUBLISH_RETRY)
    except (OperationalError, OSError) as exc:
        db.session.delete(job)
        db.session.commit()
        raise BrokerUnavailable("The job queue is not reachable; try again shortly.") from exc
    return job


def request_cancel(job: Job) -> None:
    """Cooperative cancel: a pending job ends now; a running one stops at its next check."""
    if job.finished:
        return
    job.cancel_requested = True
    if job.state == "pending":
        job.state = "cancelled"
        job.finished_at = utcnow()
    db.session.commit()


def serialize_job(job: Job) -> dict[str, Any]:
    """The one status object that both the job page and the API return."""
    elapsed = None
    if job.started_at:
        elapsed = ((job.finished_at or utcnow()) - job.started_at).total_seconds()
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "params": job.params,
        "progress": {"done": job.progress_done, "total": job.progress_total},
        "error": job.error,
        "result": job.result,
        "cancel_requested": job.cancel_requested,
        "attempts": job.attempts,
        "created_by": job.created_by.username if job.created_by else None,
        "created_at": iso_time(job.created_at),
        "started_at": iso_time(job.started_at),
        "finished_at": iso_time(job.finished_at),
        "elapsed_seconds": elapsed,
        "url": f"/api/v1/jobs/{job.id}",
    }


def iso_time(value) -> str | None:
    return value.isoformat() + "Z" if value else None


__all__ = ["BrokerUnavailable", "FINAL_STATES", "request_cancel", "serialize_job", "submit"]
