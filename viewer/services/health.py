"""Health: is the database answering, and does a job go web -> broker -> worker -> database."""

from __future__ import annotations

import os

from sqlalchemy import text

from ..infra.extensions import db
from ..infra.records import Job, User
from . import jobs


def database_ready() -> None:
    """Raises the driver's error (answered 503 by the error handlers) when the database is down."""
    db.session.execute(text("SELECT 1"))


def submit_ping(user: User | None) -> Job:
    return jobs.submit("ping", {}, user)


def run_ping(job_id: str, owner: str, worker: str) -> None:
    if jobs.claim(job_id, owner):
        jobs.finish(job_id, owner, {"pong": True, "worker": worker, "pid": os.getpid()}, progress=1)
