"""The job lifecycle that every job kind shares (Redash's pattern), and the one status object.

A job is a row first and a Celery message second: the message carries only ids, so an unknown id
is a 404 and never an eternal "pending", and state is read from the database, never from
``AsyncResult.get()`` inside a request. Messages are sent through the registry of job kinds
(``services.kinds``), never by importing the Celery module.

One lifecycle for every kind:
- claim: a worker takes a job (single-task kinds: pending only; the reaper puts one whose lease
  expired back to pending) or a chunk (chunked kinds: pending, or running with an expired lease)
  with one conditional UPDATE, under a lease (owner + expiry), so a redelivered or duplicated
  message finds nothing to claim;
- heartbeat: the holder renews its lease while it works (``Heartbeat``), the finaliser included;
- one guarded finish: ``finish`` marks a job done only while the caller still holds its lease
  and the job is running, so a late copy or a worker whose lease expired never overwrites;
  ``fail`` and ``cancel`` end it otherwise;
- an end hook: once a job ends, its kind's ``on_end`` runs (remove partial outputs, mark an
  ingesting dataset failed, ...).
Work whose worker died is recovered by ``services.reaper``.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import timedelta
from typing import Any, Callable, Mapping

from flask import current_app
from sqlalchemy import and_, func, or_, select, update

from ..infra.extensions import db
from ..infra.records import FINAL_STATES, JOB_STATES, Dataset, Job, JobChunk, User, utcnow
from ..infra.scope import is_mine, only_mine
from . import kinds, projects
from .artifacts import store
from .errors import ServiceError
from .paging import Page, page

log = logging.getLogger(__name__)


def lease_seconds() -> float:
    return float(current_app.config["LEASE_SECONDS"])


def max_attempts() -> int:
    return int(current_app.config["MAX_ATTEMPTS"])


def new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


# --- finding jobs ---------------------------------------------------------------------------------

def get(job_id: str) -> Job:
    job = db.session.get(Job, job_id) if isinstance(job_id, str) and len(job_id) <= 32 else None
    if job is None or not is_mine(job.project_id):
        raise ServiceError("not_found", "not_found", f"No job {str(job_id)[:40]!r}.")
    return job


LIST_FILTERS = ("model", "dataset", "state", "user", "kind", "target", "task")
PAGE_SIZE = 500  # what one page of the jobs list (API and page) holds unless a limit is asked

# The runs table's main metrics: (key, label, the better direction), read from the stored results.
MAIN_METRICS = {"classifier": (("accuracy", "Accuracy", "higher"), ("roc_auc", "ROC AUC", "higher")),
                "regressor": (("rmse", "RMSE", "lower"), ("r2", "R²", "higher"))}
METRIC_SORTS = tuple(key for spec in MAIN_METRICS.values() for key, _, _ in spec)
TASKS = ("classifier", "regressor")


def _duration():
    """Seconds from start to finish, in SQL (None while a job has not finished)."""
    if db.session.get_bind().dialect.name == "sqlite":
        return (func.julianday(Job.finished_at) - func.julianday(Job.started_at)) * 86400.0
    return func.extract("epoch", Job.finished_at - Job.started_at)


def _sort_column(key: str):
    if key == "created":
        return Job.created_at
    if key == "duration":
        return _duration()
    if key in ("model", "dataset", "target"):
        return Job.params[{"model": "model", "dataset": "dataset", "target": "target"}[key]].as_string()
    if key == "state":
        return Job.state
    return Job.result[("metrics", key)].as_float()


SORT_KEYS = ("created", "duration", "model", "dataset", "target", "state", *METRIC_SORTS)
SORTS = tuple(k for key in SORT_KEYS for k in (key, f"-{key}"))  # "-key": descending


def search(filters: Mapping[str, str], limit: int = PAGE_SIZE, offset: int = 0,
           sort: str = "-created") -> Page:
    """One page of jobs filtered by model name, dataset id, state, user, kind, target column and
    task (classifier, regressor) and sorted by ``sort`` (``SORTS``: created, duration, model,
    dataset, target, state or a main metric; "-key" descending; jobs without the value last),
    all in SQL (the jobs page and ``GET /api/v1/jobs``)."""
    if sort not in SORTS:
        raise ServiceError("invalid", "bad_request", f"sort must be one of {', '.join(SORTS)}.")
    statement = only_mine(select(Job), Job.project_id)
    if filters.get("state"):
        if filters["state"] not in JOB_STATES:
            raise ServiceError("invalid", "bad_request", f"state must be one of {', '.join(JOB_STATES)}.")
        statement = statement.where(Job.state == filters["state"])
    if filters.get("task"):
        if filters["task"] not in TASKS:
            raise ServiceError("invalid", "bad_request", f"task must be one of {', '.join(TASKS)}.")
        statement = statement.where(Job.params["kind"].as_string() == filters["task"])
    if any("\x00" in value for value in filters.values()):
        return Page([], None)  # no stored text holds a NUL (and PostgreSQL refuses to compare with one)
    if filters.get("dataset"):
        statement = statement.where(Job.dataset_id == filters["dataset"])
    if filters.get("user"):
        statement = statement.join(User, Job.created_by_id == User.id).where(User.username == filters["user"])
    if filters.get("kind"):
        statement = statement.where(Job.kind == filters["kind"])
    else:  # compiling a model is the system's work, listed on the model card
        statement = statement.where(Job.kind != "compile")
    if filters.get("model"):  # the name at submission: still there when the version was deleted since
        statement = statement.where(Job.params["model_name"].as_string() == filters["model"])
    if filters.get("target"):
        statement = statement.where(Job.params["target"].as_string() == filters["target"])
    column = _sort_column(sort.lstrip("-"))
    ordered = (column.desc() if sort.startswith("-") else column.asc()).nulls_last()
    statement = statement.order_by(ordered, Job.created_at.desc(), Job.id.desc())
    return page(statement, limit, offset)


def main_metrics(job: Job) -> list[dict[str, Any]]:
    """The runs table's headline numbers of a finished scoring job: accuracy and ROC AUC for a
    classifier, RMSE and R² for a regressor (those its stored metrics hold)."""
    metrics = (job.result or {}).get("metrics") if job.kind == "score" and job.state == "done" else None
    spec = MAIN_METRICS.get((job.params or {}).get("kind") or "")
    if not metrics or not spec:
        return []
    return [{"key": key, "label": label, "better": better, "value": metrics.get(key)}
            for key, label, better in spec if isinstance(metrics.get(key), (int, float))]


def duration_seconds(job: Job) -> float | None:
    if job.started_at and job.finished_at:
        return max((job.finished_at - job.started_at).total_seconds(), 0.0)
    return None


def recent(limit: int = 10) -> list[Job]:
    return list(db.session.scalars(only_mine(select(Job), Job.project_id).where(Job.kind != "compile")
                                   .order_by(Job.created_at.desc()).limit(limit)))


def counts_by_state() -> dict[str, int]:
    return dict(db.session.execute(only_mine(select(Job.state, func.count()), Job.project_id).group_by(Job.state)).all())


def of_model_version(version_id: int, *, kind: str | None = None, state: str | None = None,
                     limit: int = 50) -> list[Job]:
    statement = only_mine(select(Job), Job.project_id).where(Job.model_version_id == version_id)
    if kind:
        statement = statement.where(Job.kind == kind)
    if state:
        statement = statement.where(Job.state == state)
    return list(db.session.scalars(statement.order_by(Job.created_at.desc()).limit(limit)))


def of_dataset(dataset_id: str, limit: int = 50) -> list[Job]:
    return list(db.session.scalars(only_mine(select(Job), Job.project_id).where(Job.dataset_id == dataset_id)
                                   .order_by(Job.created_at.desc()).limit(limit)))


def unfinished(*, model_version_id: int | None = None, dataset_id: str | None = None) -> list[Job]:
    statement = select(Job).where(Job.state.in_(("pending", "running")))
    if model_version_id is not None:
        statement = statement.where(Job.model_version_id == model_version_id)
    if dataset_id is not None:
        return [j for j in with_dataset(dataset_id) if not j.finished
                and (model_version_id is None or j.model_version_id == model_version_id)]
    return list(db.session.scalars(statement))


def with_dataset(dataset_id: str) -> list[Job]:
    """Every job that reads a dataset: on it, or comparing another dataset with it (a "drift"
    job's reference)."""
    return [j for j in db.session.scalars(select(Job).where((Job.dataset_id == dataset_id) | (Job.kind == "drift")))
            if j.dataset_id == dataset_id or (j.params or {}).get("reference") == dataset_id]


def same_work(fingerprint: str, **where: Any) -> Job | None:
    """The newest pending, running or done job with this fingerprint (and these column values)."""
    statement = only_mine(select(Job), Job.project_id).where(Job.fingerprint == fingerprint,
                                                             Job.state.in_(("pending", "running", "done")))
    for column, value in where.items():
        statement = statement.where(getattr(Job, column) == value)
    return db.session.scalar(statement.order_by(Job.created_at.desc()).limit(1))


def latest_with(fingerprint: str, kind: str) -> Job | None:
    return db.session.scalar(only_mine(select(Job), Job.project_id).where(Job.fingerprint == fingerprint, Job.kind == kind)
                             .order_by(Job.created_at.desc()).limit(1))


# --- outputs --------------------------------------------------------------------------------------

def output_prefix(job_id: str) -> str:
    return f"jobs/{job_id}"


def output_keys(job: Job | str) -> list[str]:
    """The recorded output parts of a job's done chunks, in row order."""
    job_id = job if isinstance(job, str) else job.id
    return list(db.session.scalars(select(JobChunk.output_key).where(
        JobChunk.job_id == job_id, JobChunk.state == "done", JobChunk.output_key.is_not(None))
        .order_by(JobChunk.index)))


def remove_outputs(job: Job | str) -> None:
    store().delete_prefix(output_prefix(job if isinstance(job, str) else job.id))


# --- submitting -----------------------------------------------------------------------------------

def submit(kind: str, params: dict[str, Any], user: User | None, *, chunks: int = 0, **fields: Any) -> Job:
    """Record a job (and its chunks) together with whatever the session holds already (an
    ingesting dataset, say), then send one message per chunk (or one for the job).

    If the broker refuses, the job's rows are deleted again and a 503 ServiceError is raised; the
    caller removes what it added to the session (``datasets.upload`` deletes its dataset row).
    """
    spec = kinds.get(kind)
    fields.setdefault("project_id", projects.current_id())
    job = Job(kind=kind, params=params, created_by=user, **fields)
    db.session.add(job)
    db.session.flush()
    now = utcnow()
    for index in range(chunks):
        db.session.add(JobChunk(job_id=job.id, index=index, enqueued_at=now))
    db.session.commit()
    try:
        if spec.chunked:
            for index in range(chunks):
                kinds.enqueue_chunk(kind, job.id, index)
        else:
            kinds.enqueue_run(kind, job.id)
    except kinds.BrokerUnavailable as exc:
        # Messages already sent find no job and do nothing.
        db.session.delete(job)
        db.session.commit()
        raise ServiceError("unavailable", "queue_unavailable", str(exc)) from None
    return job


# --- ending: one guarded finish, fail, cancel, and the kind's end hook ----------------------------

def _ended(job_id: str, state: str) -> None:
    kind = db.session.scalar(select(Job.kind).where(Job.id == job_id))
    if kind is not None:
        try:
            kinds.ended(kind, job_id, state)
        except Exception:  # noqa: BLE001  (a hook's failure must not undo the job's end)
            db.session.rollback()
            log.exception("end hook of %s job %s failed", kind, job_id)


def finish(job_id: str, owner: str, result: dict[str, Any], *, progress: int | None = None) -> bool:
    """Mark a job done with its (small) result: only from running, only by the holder of its
    lease, so a late copy or a worker whose lease expired never overwrites. What the caller
    left in the session (a dataset's record, say) commits with it, or is rolled back with it."""
    values: dict[str, Any] = {"state": "done", "result": result, "finished_at": utcnow(), "lease_owner": None,
                              "lease_expires_at": None}
    if progress is not None:
        values.update(progress_done=progress, progress_total=progress)
    done = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "running", Job.lease_owner == owner)
        .values(**values).execution_options(synchronize_session=False))
    if done.rowcount != 1:
        db.session.rollback()
        return False
    db.session.commit()
    _ended(job_id, "done")
    return True


def fail(job_id: str, reason: str) -> None:
    """End a pending or running job in error with the reason (pending chunks never start)."""
    now = utcnow()
    failed = db.session.execute(update(Job).where(Job.id == job_id, Job.state.in_(("pending", "running")))
                                .values(state="error", error=reason[:5000], finished_at=now)
                                .execution_options(synchronize_session=False))
    db.session.execute(update(JobChunk).where(JobChunk.job_id == job_id, JobChunk.state == "pending")
                       .values(state="cancelled").execution_options(synchronize_session=False))
    db.session.commit()
    if failed.rowcount == 1:
        _ended(job_id, "error")


def cancel(job: Job) -> None:
    """Cancel now: the job reads as cancelled at once, queued chunks never start, running work
    stops at its next check (within one chunk's time), and the end hook cleans up."""
    if job.finished:
        return
    cancelled = db.session.execute(update(Job).where(Job.id == job.id, Job.state.in_(("pending", "running")))
                                   .values(state="cancelled", cancel_requested=True, finished_at=utcnow())
                                   .execution_options(synchronize_session=False))
    db.session.execute(update(JobChunk).where(JobChunk.job_id == job.id, JobChunk.state == "pending")
                       .values(state="cancelled"))
    db.session.commit()
    db.session.refresh(job)
    if cancelled.rowcount == 1:
        _ended(job.id, "cancelled")


def set_progress(job_id: str, done: int, total: int | None) -> bool:
    """Record progress; False when the job is no longer running (cancelled): time to stop."""
    updated = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "running")
        .values(progress_done=done, progress_total=total, updated_at=utcnow())
        .execution_options(synchronize_session=False))
    db.session.commit()
    return updated.rowcount == 1


# --- claiming and leases --------------------------------------------------------------------------

def claim(job_id: str, owner: str) -> bool:
    """Start a single-task job: pending -> running, once, under a lease that the task renews
    (``Heartbeat(job_id, owner, renew=renew_job_lease)``). A duplicated or redelivered message
    finds it running (or finished, or cancelled) and does nothing; if the worker dies, the
    reaper sees the lease expire and runs the job again (up to MAX_ATTEMPTS)."""
    now = utcnow()
    started = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "pending")
        .values(state="running", started_at=now, attempts=Job.attempts + 1,
                lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds()))
        .execution_options(synchronize_session=False))
    db.session.commit()
    return started.rowcount == 1


# A message may arrive this much before the time its chunk is due (clocks of workers differ a little).
DUE_MARGIN = timedelta(seconds=1)


def claim_chunk(job_id: str, index: int, owner: str) -> JobChunk | None:
    """Take chunk ``index`` if it is pending and due (a failed chunk is due when its retry's
    delayed message is: ``fail_chunk``) or its lease expired; None if someone else has it, it is
    done, it waits for its retry, or the job is over. One conditional UPDATE: safe against every
    duplicate (the chunk's first message, arriving after a task took the chunk and it failed,
    finds it waiting and does nothing)."""
    now = utcnow()
    claimed = db.session.execute(
        update(JobChunk)
        .where(JobChunk.job_id == job_id, JobChunk.index == index,
               or_(and_(JobChunk.state == "pending",
                        or_(JobChunk.enqueued_at.is_(None), JobChunk.enqueued_at <= now + DUE_MARGIN)),
                   and_(JobChunk.state == "running", JobChunk.lease_expires_at < now)))
        .values(state="running", lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds()),
                attempts=JobChunk.attempts + 1, started_at=now)
        .execution_options(synchronize_session=False))
    db.session.commit()
    if claimed.rowcount != 1:
        return None
    return db.session.scalar(select(JobChunk).where(JobChunk.job_id == job_id, JobChunk.index == index))


def claim_untried_chunk(job_id: str, owner: str) -> JobChunk | None:
    """The lowest-numbered chunk of the job that no worker has tried yet, claimed (a chunk taken
    by another worker in between is skipped); None when there is none left."""
    for _race in range(8):
        index = db.session.scalar(select(JobChunk.index).where(JobChunk.job_id == job_id, JobChunk.state == "pending",
                                                               JobChunk.attempts == 0)
                                  .order_by(JobChunk.index).limit(1))
        if index is None:
            return None
        chunk = claim_chunk(job_id, index, owner)
        if chunk is not None:
            return chunk
    return None


def start_chunked(job: Job) -> None:
    """A chunked job is running from its first claimed chunk on."""
    db.session.execute(update(Job).where(Job.id == job.id, Job.state == "pending")
                       .values(state="running", started_at=utcnow()).execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(job)


def claim_finalize(job_id: str, owner: str) -> bool:
    """The one finaliser of a chunked job whose chunks are all done: it takes the job's own
    lease (free, or expired) and renews it like any other holder."""
    now = utcnow()
    claimed = db.session.execute(
        update(Job).where(Job.id == job_id, Job.state == "running",
                          or_(Job.lease_owner.is_(None), Job.lease_expires_at < now))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds()))
        .execution_options(synchronize_session=False))
    db.session.commit()
    return claimed.rowcount == 1


def renew_chunk_lease(chunk_id: int, owner: str, connection) -> bool:
    result = connection.execute(
        update(JobChunk).where(JobChunk.id == chunk_id, JobChunk.lease_owner == owner, JobChunk.state == "running")
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds())))
    return result.rowcount == 1


def renew_job_lease(job_id: str, owner: str, connection) -> bool:
    """The lease of a whole job: a single-task job's worker, or a chunked job's finaliser."""
    result = connection.execute(
        update(Job).where(Job.id == job_id, Job.lease_owner == owner, Job.state == "running")
        .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds())))
    return result.rowcount == 1


class Heartbeat:
    """Renews a lease (a chunk's, or with ``renew=renew_job_lease`` a whole job's) every
    lease/4 seconds on its own connection while the work runs. ``lost`` turns true when the
    lease was taken over (the holder must then not record anything)."""

    def __init__(self, holder_id: int | str, owner: str, renew=renew_chunk_lease):
        self.holder_id, self.owner, self.renew = holder_id, owner, renew
        self.app = current_app._get_current_object()  # type: ignore[attr-defined]
        self.interval = lease_seconds() / 4
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"heartbeat-{holder_id}")
        self.lost = False

    def _run(self) -> None:
        with self.app.app_context():
            while not self._stop.wait(self.interval):
                try:
                    with db.engine.begin() as connection:
                        if not self.renew(self.holder_id, self.owner, connection):
                            self.lost = True
                            return
                except Exception:  # noqa: BLE001  (database briefly away: the next beat tries again)
                    log.warning("heartbeat for %s failed; retrying", self.holder_id, exc_info=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def complete_chunk(chunk: JobChunk, owner: str, rows: int, output_key: str | None) -> bool:
    """Record a finished chunk and its output part, only while this worker still holds its lease."""
    now = utcnow()
    done = db.session.execute(
        update(JobChunk).where(JobChunk.id == chunk.id, JobChunk.lease_owner == owner, JobChunk.state == "running")
        .values(state="done", rows=rows, output_key=output_key, finished_at=now, lease_expires_at=None, error=None)
        .execution_options(synchronize_session=False))
    if done.rowcount == 1:
        db.session.execute(update(Job).where(Job.id == chunk.job_id)
                           .values(progress_done=Job.progress_done + rows, updated_at=now)
                           .execution_options(synchronize_session=False))
    db.session.commit()
    return done.rowcount == 1


def retry_delay(attempts: int) -> int:
    """Seconds a failed chunk waits before its next try: 2, 4, 8, 16, then 30."""
    return min(2 ** attempts, 30)


def fail_chunk(chunk: JobChunk, owner: str, reason: str) -> int | None:
    """A chunk failed: back to pending for another try, due in ``retry_delay`` seconds (its
    ``enqueued_at``: when its retry's message is due; the reaper sends one again when that is
    long past), or, after ``max_attempts``, the job ends in error (no poison loop). Returns the
    delay of the retry to send, or None."""
    db.session.refresh(chunk)
    if chunk.lease_owner != owner:
        return None  # someone else holds it now
    if chunk.attempts >= max_attempts():
        chunk.state, chunk.error, chunk.finished_at = "error", reason, utcnow()
        db.session.commit()
        fail(chunk.job_id, f"The model failed {chunk.attempts} times on the same rows, so the job stopped. "
                           f"Last error: {reason}")
        return None
    delay = retry_delay(chunk.attempts)
    chunk.state, chunk.error, chunk.lease_owner, chunk.lease_expires_at = "pending", reason, None, None
    chunk.enqueued_at = utcnow() + timedelta(seconds=delay)
    db.session.commit()
    return delay


def chunks_left(job_id: str) -> int:
    return db.session.scalar(select(func.count()).select_from(JobChunk)
                             .where(JobChunk.job_id == job_id, JobChunk.state != "done")) or 0


def model_and_dataset(job_id: str):
    """(job, its model version, its dataset) for a single-task job over a model and a dataset,
    or None after failing the job when either was deleted (or the dataset is not ready)."""
    job = db.session.get(Job, job_id)
    version, dataset = job.model_version, db.session.get(Dataset, job.dataset_id) if job.dataset_id else None
    if version is None or dataset is None or dataset.state != "ready":
        fail(job_id, "The model version was deleted." if version is None
             else "The dataset was deleted or is not ready.")
        return None
    return job, version, dataset


def run_single(job_id: str, owner: str, compute: Callable[[], dict], *, cancelled: type[Exception],
               expected: tuple[type[Exception], ...]) -> None:
    """Compute under a renewed lease, then record the result with the one guarded finish, or
    the reason it failed (``expected`` errors by their message, anything else by its type too,
    logged), or nothing when it was cancelled (``cancel`` recorded that)."""
    try:
        with Heartbeat(job_id, owner, renew=renew_job_lease):
            result = compute()
    except cancelled:
        return
    except expected as exc:
        fail(job_id, getattr(exc, "message", None) or str(exc)[:500])
        return
    except Exception as exc:  # noqa: BLE001  (recorded: the job ends in error with the reason)
        log.exception("job %s failed", job_id)
        fail(job_id, f"{type(exc).__name__}: {str(exc)[:500]}")
        return
    if not finish(job_id, owner, result):
        log.info("job %s was cancelled while it ran", job_id)


# --- presenting -----------------------------------------------------------------------------------

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
        # the schema policy's: checks before queueing (params) and those the chunks collected (result)
        "warnings": list(params.get("warnings") or []) + list((job.result or {}).get("warnings") or []),
        "metrics": (job.result or {}).get("metrics"),
        "result": {k: v for k, v in (job.result or {}).items() if k not in ("metrics", "aggregates")} or None,
        "cancel_requested": job.cancel_requested,
        "attempts": job.attempts,
        "main_metrics": {m["key"]: m["value"] for m in main_metrics(job)},
        "duration_seconds": duration_seconds(job),
        "created_by": job.created_by.username if job.created_by else None,
        "created_at": iso_time(job.created_at),
        "started_at": iso_time(job.started_at),
        "finished_at": iso_time(job.finished_at),
        "url": f"/api/v1/jobs/{job.id}",
    }


def iso_time(value) -> str | None:
    return value.isoformat() + "Z" if value else None


__all__ = ["FINAL_STATES", "cancel", "fail", "finish", "get", "search", "serialize_job", "submit"]
