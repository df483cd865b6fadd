"""Celery tasks: thin adapters that take ids, call core, and record state in the database.

Task bodies never trust the message: they re-read the job, claim their chunk through a lease
(``jobs.claim_chunk``), and do nothing when the work is done, cancelled or held by another worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path

from celery import shared_task
from celery.signals import worker_process_init, worker_ready, worker_shutdown

from . import data, jobs, serving
from .core import scoring
from .core.datasets import DatasetError
from .core.predict import PayloadError
from .extensions import db
from .records import Dataset, Job, utcnow

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


@shared_task(name="viewer.score_chunk", bind=True)
def score_chunk(self, job_id: str, index: int) -> None:
    owner = jobs.new_owner()
    chunk = jobs.claim_chunk(job_id, index, owner)
    if chunk is None:
        return  # done, cancelled, or another worker holds a live lease
    job = db.session.get(Job, job_id)
    if job is None or job.finished or job.cancel_requested:
        return
    jobs.start_job(job)
    try:
        with jobs.Heartbeat(chunk.id, owner) as beat:
            version = job.model_version
            if version is None:
                jobs.fail_job(job_id, "The model version was deleted.")
                return
            predictor = serving.predictor_for(version)
            dataset = db.session.get(Dataset, job.dataset_id)
            rows = scoring.score_chunk(predictor, data.dataset_file(dataset), index, jobs.output_dir(job),
                                       job.params.get("target"))
    except PayloadError as exc:  # the data does not fit the model: every retry would fail alike
        jobs.fail_job(job_id, f"Chunk {index}: {exc.message}")
        return
    except Exception as exc:  # noqa: BLE001  (recorded, retried, and after N tries the job fails)
        log.exception("chunk %s/%s failed", job_id, index)
        if jobs.fail_chunk(chunk, owner, f"{type(exc).__name__}: {str(exc)[:500]}"):
            score_chunk.apply_async(args=[job_id, index], countdown=min(2 ** chunk.attempts, 30))
        return
    if beat.lost or not jobs.complete_chunk(chunk, owner, rows):
        return  # our lease expired and another worker took the chunk: its record wins
    db.session.refresh(job)
    if job.cancel_requested or job.state == "cancelled":
        jobs.remove_outputs(job)
        return
    if jobs.chunks_left(job_id) == 0:
        finalize_job.delay(job_id)


@shared_task(name="viewer.finalize_job")
def finalize_job(job_id: str) -> None:
    owner = jobs.new_owner()
    if jobs.chunks_left(job_id) != 0 or not jobs.claim_finalize(job_id, owner):
        return
    job = db.session.get(Job, job_id)
    try:
        summary = scoring.summarize(jobs.output_dir(job), job.params["kind"], job.params.get("classes"),
                                    bool(job.params.get("target")))
    except Exception as exc:  # noqa: BLE001
        log.exception("finalising %s failed", job_id)
        jobs.fail_job(job_id, f"Computing metrics failed: {type(exc).__name__}: {str(exc)[:500]}")
        return
    if not jobs.finish_job(job_id, owner, summary):
        log.info("job %s was cancelled or finished by another worker while finalising", job_id)


@shared_task(name="viewer.ingest_dataset")
def ingest_dataset(job_id: str) -> None:
    job = db.session.get(Job, job_id)
    if job is None or job.finished:
        return
    jobs.start_job(job)
    dataset = db.session.get(Dataset, job.dataset_id)
    upload = Path(job.params["upload"])
    try:
        data.finish_ingest(dataset, upload)
    except DatasetError as exc:
        jobs.fail_job(job_id, exc.message)
        return
    finally:
        upload.unlink(missing_ok=True)
    job.progress_done = job.progress_total = dataset.n_rows or 0
    job.state, job.finished_at = "done", utcnow()
    db.session.commit()


# --- the reaper: every worker runs one ---------------------------------------------------------

_reaper_stop = threading.Event()


def _reaper_loop(app) -> None:
    interval = float(app.config["REAPER_SECONDS"])
    while not _reaper_stop.wait(interval):
        try:
            with app.app_context():
                counts = jobs.reap(score_chunk, finalize_job)
                if any(counts.values()):
                    log.warning("reaper recovered work: %s", counts)
                db.session.remove()
        except Exception:  # noqa: BLE001  (database or broker briefly away: next round)
            log.warning("reaper round failed", exc_info=True)


@worker_ready.connect
def _start_reaper(sender=None, **_kwargs) -> None:
    app = sender.app.flask_app if hasattr(sender.app, "flask_app") else None
    if app is None:
        return
    _reaper_stop.clear()
    threading.Thread(target=_reaper_loop, args=(app,), daemon=True, name="reaper").start()


@worker_shutdown.connect
def _stop_reaper(**_kwargs) -> None:
    _reaper_stop.set()


@worker_process_init.connect
def _one_thread_per_process(**_kwargs) -> None:
    """Each worker process does its maths on one thread: N processes share N cores."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
