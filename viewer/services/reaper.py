"""Recover work whose worker died or whose message was lost; every worker runs this every few
seconds (``viewer.tasks`` starts the loop), and it is safe to run from all of them at once:
every step is a conditional UPDATE that only one caller wins.

- a chunk whose lease expired goes back to pending and is sent again;
- a pending chunk whose message was lost (a restarted broker keeps nothing) is sent again;
- a single-task job whose lease expired goes back to pending (or ends in error after
  MAX_ATTEMPTS), and a pending one whose message was lost is sent again;
- a chunked job whose chunks are all done but which has no live finaliser is finalised again;
- once in a while, artifacts that no record points to are swept (``services.artifacts.sweep``).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import and_, or_, select, update

from ..infra.extensions import db
from ..infra.records import Job, JobChunk, utcnow
from . import artifacts, kinds
from .jobs import chunks_left, fail, lease_seconds, max_attempts

log = logging.getLogger(__name__)
SWEEP_EVERY_SECONDS = 3600
_last_sweep = [0.0]


def _send(send, *args) -> bool:
    try:
        send(*args)
        return True
    except kinds.BrokerUnavailable:
        log.warning("reaper: broker unreachable; %s waits for the next round", args)
        return False


def _chunks(now, stale, counts: dict[str, int]) -> None:
    chunked = kinds.names(chunked=True)
    expired = db.session.execute(
        select(JobChunk.id, JobChunk.job_id, JobChunk.index, Job.kind).join(Job, Job.id == JobChunk.job_id)
        .where(Job.kind.in_(chunked), Job.state == "running",
               or_(and_(JobChunk.state == "running", JobChunk.lease_expires_at < now),
                   and_(JobChunk.state == "pending", JobChunk.enqueued_at < stale)))).all()
    for chunk_id, job_id, index, kind in expired:
        moved = db.session.execute(
            update(JobChunk).where(JobChunk.id == chunk_id,
                                   or_(and_(JobChunk.state == "running", JobChunk.lease_expires_at < now),
                                       and_(JobChunk.state == "pending", JobChunk.enqueued_at < stale)))
            .values(state="pending", lease_owner=None, lease_expires_at=None, enqueued_at=now)
            .execution_options(synchronize_session=False))
        db.session.commit()
        if moved.rowcount == 1:
            counts["expired"] += 1
            counts["requeued"] += _send(kinds.enqueue_chunk, kind, job_id, index)
    # Jobs still "pending" never started: their messages were lost before any worker took them.
    lost = db.session.execute(
        select(JobChunk.job_id, JobChunk.index, Job.kind).join(Job, Job.id == JobChunk.job_id)
        .where(Job.kind.in_(chunked), Job.state == "pending", JobChunk.state == "pending",
               JobChunk.enqueued_at < stale)).all()
    for job_id, index, kind in lost:
        moved = db.session.execute(update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.index == index,
                                                          JobChunk.enqueued_at < stale)
                                   .values(enqueued_at=now).execution_options(synchronize_session=False))
        db.session.commit()
        if moved.rowcount == 1:
            counts["requeued"] += _send(kinds.enqueue_chunk, kind, job_id, index)
    unfinalised = db.session.execute(
        select(Job.id, Job.kind).where(Job.kind.in_(chunked), Job.state == "running",
                                       or_(Job.lease_owner.is_(None), Job.lease_expires_at < now))).all()
    for job_id, kind in unfinalised:
        if chunks_left(job_id) == 0:
            counts["finalize"] += _send(kinds.enqueue_finalize, kind, job_id)


def _single(now, stale, counts: dict[str, int]) -> None:
    single = kinds.names(chunked=False)
    dead = db.session.execute(select(Job.id, Job.attempts).where(
        Job.kind.in_(single), Job.state == "running", Job.lease_expires_at < now)).all()
    for job_id, attempts in dead:
        if attempts >= max_attempts():
            fail(job_id, f"The worker running this job stopped {attempts} times (killed or out of memory?).")
            continue
        db.session.execute(update(Job).where(Job.id == job_id, Job.state == "running", Job.lease_expires_at < now)
                           .values(state="pending", lease_owner=None, lease_expires_at=None, updated_at=now)
                           .execution_options(synchronize_session=False))
        db.session.commit()
        counts["expired"] += 1
    lost = db.session.execute(select(Job.id, Job.kind).where(
        Job.kind.in_(single), Job.state == "pending", Job.updated_at < stale)).all()
    for job_id, kind in lost:
        moved = db.session.execute(update(Job).where(Job.id == job_id, Job.state == "pending")
                                   .values(updated_at=now).execution_options(synchronize_session=False))
        db.session.commit()
        if moved.rowcount == 1:
            counts["requeued"] += _send(kinds.enqueue_run, kind, job_id)


def reap(stale_pending_seconds: float | None = None) -> dict[str, int]:
    """One round over every registered kind; returns what it recovered."""
    now = utcnow()
    stale = now - timedelta(seconds=stale_pending_seconds or lease_seconds() * 5)
    counts = {"expired": 0, "requeued": 0, "finalize": 0}
    _chunks(now, stale, counts)
    _single(now, stale, counts)
    if time.monotonic() - _last_sweep[0] > SWEEP_EVERY_SECONDS:
        _last_sweep[0] = time.monotonic()
        counts.update(artifacts.sweep())
    return counts
