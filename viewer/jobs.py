"""The job lifecycle shared by pages, the API and tasks (Redash's pattern).

A job is a row first and a Celery message second: the message carries only ids, so an unknown id
is a 404 and never an eternal "pending", and state is read from the database, never from
``AsyncResult.get()`` inside a request.

Chunked jobs never lose or duplicate work, whatever the broker does:
- the database is the source of truth; each chunk has a lease (owner + expiry);
- a worker claims a chunk with one conditional UPDATE (pending, or running with an expired
  lease), so a redelivered or duplicated message finds nothing to claim;
- it renews the lease while it works (``Heartbeat``) and records its result only while it still
  holds the lease; output parts are written to a temporary name and renamed (idempotent);
- ``reap`` (run by every worker every few seconds) puts chunks with expired leases back to
  pending and enqueues them again, which covers a SIGKILLed worker on any broker;
- a chunk that fails ``max_attempts`` times ends the job in ``error`` with the reason;
- one finaliser, chosen by a conditional UPDATE on the job's own lease, computes the summary.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import threading
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from celery import Task
from flask import current_app
from kombu.exceptions import OperationalError
from sqlalchemy import and_, func, or_, select, update

from .extensions import db
from .records import FINAL_STATES, Job, JobChunk, User, utcnow

log = logging.getLogger(__name__)

# Fail fast when the broker is down, so a request answers 503 in about a second instead of hanging.
PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.3, "interval_max": 0.5}


class BrokerUnavailable(RuntimeError):
    pass


def lease_seconds() -> float:
    return float(current_app.config["LEASE_SECONDS"])


def max_attempts() -> int:
    return int(current_app.config["MAX_ATTEMPTS"])


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def output_dir(job: Job | str) -> Path:
    job_id = job if isinstance(job, str) else job.id
    return Path(current_app.config["DATA_DIR"]) / "jobs" / job_id


def remove_outputs(job: Job | str) -> None:
    shutil.rmtree(output_dir(job), ignore_errors=True)


# --- submitting ----------------------------------------------------------------------------------

def submit(task: Task, kind: str, params: dict[str, Any], user: User | None, *, chunks: int = 0,
           **fields: Any) -> Job:
    """Record a job (and its chunks), then enqueue one message per chunk (or one for the job).

    If the broker refuses, the rows are removed again and BrokerUnavailable is raised.
    """
    job = Job(kind=kind, params=params, created_by=user, **fields)
    db.session.add(job)
    db.session.flush()
    now = utcnow()
    for index in range(chunks):
        db.session.add(JobChunk(job_id=job.id, index=index, enqueued_at=now))
    db.session.commit()
    try:
        for args in ([job.id, i] for i in range(chunks)) if chunks else [[job.id]]:
            task.apply_async(args=args, retry=True, retry_policy=PUBLISH_RETRY)
    except (OperationalError, OSError) as exc:
        # Messages already sent find no job and do nothing.
        db.session.delete(job)
        db.session.commit()
        raise BrokerUnavailable("The job queue is not reachable; try again shortly.") from exc
    return job


def request_cancel(job: Job) -> None:
    """Cancel now: the job reads as cancelled at once, queued chunks never start, running chunks
    stop at their next check (within one chunk's time), and partial output is removed."""
    if job.finished:
        return
    job.cancel_requested = True
    job.state = "cancelled"
    job.finished_at = utcnow()
    db.session.execute(update(JobChunk).where(JobChunk.job_id == job.id, JobChunk.state == "pending")
                       .values(state="cancelled"))
    db.session.commit()
    remove_outputs(job)


# --- chunks --------------------------------------------------------------------------------------

def claim_chunk(job_id: str, index: int, owner: str) -> JobChunk | None:
    """Take chunk ``index`` if it is pending or its lease expired; None if someone else has it,
    it is done, or the job is over. One conditional UPDATE: safe against every duplicate."""
    now = utcnow()
    claimed = db.session.execute(
        update(JobChunk)
        .where(JobChunk.job_id == job_id, JobChunk.index == index,
               or_(JobChunk.state == "pending",
                   and_(JobChunk.state == "running", JobChunk.lease_expires_at < now)))
        .values(state="running", lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds()),
                attempts=JobChunk.attempts + 1, started_at=now)
        .execution_options(synchronize_session=False))
    db.session.commit()
    if claimed.rowcount != 1:
        return None
    return db.session.scalar(select(JobChunk).where(JobChunk.job_id == job_id, JobChunk.index == index))


def start_job(job: Job) -> None:
    db.session.execute(update(Job).where(Job.id == job.id, Job.state == "pending")
                       .values(state="running", started_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(job)


def renew_lease(chunk_id: int, owner: str, connection) -> bool:
    result = connection.execute(
        update(JobChunk).where(JobChunk.id == chunk_id, JobChunk.lease_owner == owner, JobChunk.state == "running")
        .values(lease_expires_at=utcnow() + timedelta(seconds=float(current_app.config["LEASE_SECONDS"]))))
    return result.rowcount == 1


def renew_job_lease(job_id: str, owner: str, connection) -> bool:
    """The lease of a single-task job (ingest, importance, compare): see ``claim_job``."""
    result = connection.execute(
        update(Job).where(Job.id == job_id, Job.lease_owner == owner, Job.state == "running")
        .values(lease_expires_at=utcnow() + timedelta(seconds=float(current_app.config["LEASE_SECONDS"]))))
    return result.rowcount == 1


class Heartbeat:
    """Renews a lease (a chunk's, or with ``renew=renew_job_lease`` a single-task job's) every
    lease/4 seconds on its own connection while the work runs."""

    def __init__(self, chunk_id: int | str, owner: str, renew=renew_lease):
        self.chunk_id, self.owner, self.renew = chunk_id, owner, renew
        self.app = current_app._get_current_object()  # type: ignore[attr-defined]
        self.interval = lease_seconds() / 4
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{chunk_id}")
        self.lost = False

    def _run(self) -> None:
        with self.app.app_context():
            while not self._stop.wait(self.interval):
                try:
                    with db.engine.begin() as connection:
                        if not self.renew(self.chunk_id, self.owner, connection):
                            self.lost = True
                            return
                except Exception:  # noqa: BLE001  (database briefly away: the next beat tries again)
                    log.warning("heartbeat for chunk %s failed; retrying", self.chunk_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def complete_chunk(chunk: JobChunk, owner: str, rows: int) -> bool:
    """Record a finished chunk, only while this worker still holds its lease."""
    now = utcnow()
    done = db.session.execute(
        update(JobChunk).where(JobChunk.id == chunk.id, JobChunk.lease_owner == owner, JobChunk.state == "running")
        .values(state="done", rows=rows, finished_at=now, lease_expires_at=None, error=None)
        .execution_options(synchronize_session=False))
    if done.rowcount == 1:
        db.session.execute(update(Job).where(Job.id == chunk.job_id)
                           .values(progress_done=Job.progress_done + rows, updated_at=now)
                           .execution_options(synchronize_session=False))
    db.session.commit()
    return done.rowcount == 1


def fail_chunk(chunk: JobChunk, owner: str, reason: str) -> bool:
    """A chunk failed: back to pending for another try, or, after ``max_attempts``, the job ends
    in error (no poison loop). Returns True when the chunk should be retried."""
    db.session.refresh(chunk)
    if chunk.lease_owner != owner:
        return False  # someone else holds it now
    if chunk.attempts >= max_attempts():
        chunk.state, chunk.error, chunk.finished_at = "error", reason, utcnow()
        db.session.commit()
        fail_job(chunk.job_id, f"Chunk {chunk.index} failed {chunk.attempts} times; last error: {reason}")
        return False
    chunk.state, chunk.error, chunk.lease_owner, chunk.lease_expires_at = "pending", reason, None, None
    chunk.enqueued_at = utcnow()
    db.session.commit()
    return True


def fail_job(job_id: str, reason: str) -> None:
    now = utcnow()
    db.session.execute(update(Job).where(Job.id == job_id, Job.state.in_(("pending", "running")))
                       .values(state="error", error=reason[:5000], finished_at=now)
                       .execution_options(synchronize_session=False))
    db.session.execute(update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.state == "pending")
                       .values(state="cancelled").execution_options(synchronize_session=False))
    db.session.commit()
    remove_outputs(job_id)


def chunks_left(job_id: str) -> int:
    return db.session.scalar(select(func.count()).select_from(JobChunk)
                             .where(JobChunk.job_id == job_id, JobChunk.state != "done")) or 0


def claim_finalize(job_id: str, owner: str) -> bool:
    """The one finaliser of a job whose chunks are all done (the job's own lease)."""
    now = utcnow()
    claimed = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "running",
                          or_(Job.lease_owner.is_(None), Job.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds() * 4))
        .execution_options(synchronize_session=False))
    db.session.commit()
    return claimed.rowcount == 1


def finish_job(job_id: str, owner: str, result: dict[str, Any]) -> bool:
    """Mark done, only by the finaliser and only from running: a late copy never overwrites."""
    done = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "running", Job.lease_owner == owner)
        .values(state="done", result=result, finished_at=utcnow(), lease_owner=None, lease_expires_at=None)
        .execution_options(synchronize_session=False))
    db.session.commit()
    return done.rowcount == 1


def _reap_single(tasks: dict[str, Task], now, stale, counts: dict[str, int]) -> None:
    """Single-task jobs: a running one whose lease expired goes back to pending (or ends in error
    after MAX_ATTEMPTS), and a pending one whose message was lost (broker restarted) is sent again."""
    kinds = tuple(tasks)
    dead = db.session.execute(select(Job.id, Job.attempts).where(
        Job.kind.in_(kinds), Job.state == "running", Job.lease_expires_at < now)).all()
    for job_id, attempts in dead:
        if attempts >= max_attempts():
            fail_job(job_id, f"The worker running this job stopped {attempts} times (killed or out of memory?).")
            continue
        db.session.execute(update(Job).where(Job.id == job_id, Job.state == "running", Job.lease_expires_at < now)
                           .values(state="pending", lease_owner=None, lease_expires_at=None, updated_at=now)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        counts["expired"] += 1
    lost = db.session.execute(select(Job.id, Job.kind).where(
        Job.kind.in_(kinds), Job.state == "pending", Job.updated_at < stale)).all()
    for job_id, kind in lost:
        moved = db.session.execute(update(Job).where(Job.id == job_id, Job.state == "pending")
                                   .values(updated_at=now).execution_options(synchronize_session=False))
        db.session.commit()
        if moved.rowcount == 1:
            try:
                tasks[kind].apply_async(args=[job_id], retry=True, retry_policy=PUBLISH_RETRY)
                counts["requeued"] += 1
            except (OperationalError, OSError):
                log.warning("reaper: broker unreachable; job %s waits for the next round", job_id)


def reap(chunk_task: Task, finalize_task: Task, stale_pending_seconds: float | None = None,
         single_tasks: dict[str, Task] | None = None) -> dict[str, int]:
    """Recover work whose worker died: expired chunk leases go back to pending and are enqueued
    again; pending chunks whose message was lost are enqueued again; finished jobs whose
    finaliser died are finalised again. Safe to run from every worker at once."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_pending_seconds or lease_seconds() * 5)
    counts = {"expired": 0, "requeued": 0, "finalize": 0}
    expired = db.session.execute(
        select(JobChunk.id, JobChunk.job_id, JobChunk.index).join(Job, Job.id == JobChunk.job_id)
        .where(Job.state == "running",
               or_(and_(JobChunk.state == "running", JobChunk.lease_expires_at < now),
                   and_(JobChunk.state == "pending", JobChunk.enqueued_at < stale)))).all()
    for chunk_id, job_id, index in expired:
        moved = db.session.execute(
            update(JobChunk).where(JobChunk.id == chunk_id,
                                   or_(and_(JobChunk.state == "running", JobChunk.lease_expires_at < now),
                                       and_(JobChunk.state == "pending", JobChunk.enqueued_at < stale)))
            .values(state="pending", lease_owner=None, lease_expires_at=None, enqueued_at=now)
            .execution_options(synchronize_session=False))
        db.session.commit()
        if moved.rowcount == 1:
            counts["expired"] += 1
            try:
                chunk_task.apply_async(args=[job_id, index], retry=True, retry_policy=PUBLISH_RETRY)
                counts["requeued"] += 1
            except (OperationalError, OSError):
                log.warning("reaper: broker unreachable; chunk %s/%s waits for the next round", job_id, index)
    # Pending jobs that never started (their messages were lost before any worker took them)
    # have pending chunks with old enqueued_at, handled above once the job is running; jobs still
    # "pending" are picked up here.
    lost = db.session.execute(
        select(JobChunk.job_id, JobChunk.index).join(Job, Job.id == JobChunk.job_id)
        .where(Job.state == "pending", JobChunk.state == "pending", JobChunk.enqueued_at < stale)).all()
    for job_id, index in lost:
        moved = db.session.execute(update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.index == index,
                                                          JobChunk.enqueued_at < stale)
                                   .values(enqueued_at=now).execution_options(synchronize_session=False))
        db.session.commit()
        if moved.rowcount == 1:
            try:
                chunk_task.apply_async(args=[job_id, index], retry=True, retry_policy=PUBLISH_RETRY)
                counts["requeued"] += 1
            except (OperationalError, OSError):
                pass
    if single_tasks:
        _reap_single(single_tasks, now, stale, counts)
    unfinished = db.session.scalars(
        select(Job.id).where(Job.state == "running", Job.kind == "score",
                             or_(Job.lease_owner.is_(None), Job.lease_expires_at < now))).all()
    for job_id in unfinished:
        if chunks_left(job_id) == 0:
            try:
                finalize_task.apply_async(args=[job_id], retry=True, retry_policy=PUBLISH_RETRY)
                counts["finalize"] += 1
            except (OperationalError, OSError):
                pass
    return counts


# --- single-task jobs (importance) ---------------------------------------------------------------

SINGLE_TASK_KINDS = ("ingest", "importance", "compare")


def claim_job(job_id: str, owner: str | None = None) -> bool:
    """Start a single-task job: pending -> running, once, under a lease that the task renews
    (``Heartbeat(job_id, owner, renew=renew_job_lease)``). A duplicated or redelivered message
    finds it running (or finished, or cancelled) and does nothing; if the worker dies, the
    reaper sees the lease expire and runs the job again (up to MAX_ATTEMPTS)."""
    now = utcnow()
    started = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "pending")
        .values(state="running", started_at=now, attempts=Job.attempts + 1,
                lease_owner=owner or new_owner(), lease_expires_at=now + timedelta(seconds=lease_seconds()))
        .execution_options(synchronize_session=False))
    db.session.commit()
    return started.rowcount == 1


def set_progress(job_id: str, done: int, total: int | None) -> bool:
    """Record progress; False when the job is no longer running (cancelled): time to stop."""
    updated = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "running")
        .values(progress_done=done, progress_total=total, updated_at=utcnow())
        .execution_options(synchronize_session=False))
    db.session.commit()
    return updated.rowcount == 1


def finish_single(job_id: str, result: dict[str, Any]) -> bool:
    """Mark a single-task job done with its (small) result, only from running."""
    done = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "running")
        .values(state="done", result=result, finished_at=utcnow())
        .execution_options(synchronize_session=False))
    db.session.commit()
    return done.rowcount == 1


# --- presenting ----------------------------------------------------------------------------------

def serialize_job(job: Job) -> dict[str, Any]:
    """The one status object that both the job page and the API return."""
    elapsed = remaining = throughput = None
    if job.started_at:
        elapsed = ((job.finished_at or utcnow()) - job.started_at).total_seconds()
        if elapsed > 0 and job.progress_done:
            throughput = job.progress_done / elapsed
            if job.progress_total and not job.finished:
                remaining = max(job.progress_total - job.progress_done, 0) / throughput
    params = dict(job.params or {})
    return {
        "id": job.id,
        "kind": job.kind,
        "state": job.state,
        "params": params,
        "model": params.get("model"),
        "dataset_id": job.dataset_id,
        "progress": {"done": job.progress_done, "total": job.progress_total,
                     "fraction": (job.progress_done / job.progress_total) if job.progress_total else None},
        "rows_per_second": throughput,
        "elapsed_seconds": elapsed,
        "remaining_seconds": remaining,
        "error": job.error,
        "metrics": (job.result or {}).get("metrics"),
        "result": {k: v for k, v in (job.result or {}).items() if k not in ("metrics", "aggregates")} or None,
        "cancel_requested": job.cancel_requested,
        "attempts": job.attempts,
        "created_by": job.created_by.username if job.created_by else None,
        "created_at": iso_time(job.created_at),
        "started_at": iso_time(job.started_at),
        "finished_at": iso_time(job.finished_at),
        "url": f"/api/v1/jobs/{job.id}",
    }


def iso_time(value) -> str | None:
    return value.isoformat() + "Z" if value else None


__all__ = ["BrokerUnavailable", "FINAL_STATES", "request_cancel", "serialize_job", "submit"]
