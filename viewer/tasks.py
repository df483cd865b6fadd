"""Celery tasks: thin adapters that take ids, call core, and record state in the database."""

from __future__ import annotations

import logging
import os
import socket

from celery import shared_task

from .extensions import db
from .records import Job, utcnow

log = logging.getLogger(__name__)


@shared_task(name="viewer.ping", bind=True)
def ping(self, job_id: str) -> None:
    """A health check through the whole pipeline: web -> broker -> worker -> database."""
    job = db.session.get(Job, job_id)
    if job is None:
        log.warning("ping: job %s does not exist (deleted before it ran); dropping it", job_id)
        return
    if job.finished:
        return
    job.state = "running"
    job.attempts += 1
    job.started_at = utcnow()
    db.session.commit()
    job.result = {"pong": True, "worker": self.request.hostname or socket.gethostname(), "pid": os.getpid()}
    job.progress_done = job.progress_total = 1
    job.state = "done"
    job.finished_at = utcnow()
    db.session.commit()
