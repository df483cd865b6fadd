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
from .core import importance, scoring
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
    owner = jobs.new_owner()
    if not jobs.claim_job(job_id, owner):
        return  # unknown, finished, or another worker has it
    job = db.session.get(Job, job_id)
    dataset = db.session.get(Dataset, job.dataset_id)
    upload = Path(job.params["upload"])
    try:
        with jobs.Heartbeat(job_id, owner, renew=jobs.renew_job_lease):
            data.finish_ingest(dataset, upload)
    except DatasetError as exc:
        upload.unlink(missing_ok=True)
        jobs.fail_job(job_id, exc.message)
        return
    upload.unlink(missing_ok=True)  # kept until now: a worker that dies mid-ingest is retried on it
    job.progress_done = job.progress_total = dataset.n_rows or 0
    job.state, job.finished_at, job.lease_expires_at = "done", utcnow(), None
    db.session.commit()


@shared_task(name="viewer.importance")
def feature_importance(job_id: str) -> None:
    """Permutation importance of a model version on a dataset: one task, the whole job. Progress
    is counted in rows predicted (sample x (1 + features x repeats)), written after each feature;
    a cancelled job stops at the next feature."""
    from threadpoolctl import threadpool_limits

    owner = jobs.new_owner()
    if not jobs.claim_job(job_id, owner):
        return  # unknown, cancelled, finished, or another worker has it
    job = db.session.get(Job, job_id)
    version, dataset = job.model_version, db.session.get(Dataset, job.dataset_id) if job.dataset_id else None
    if version is None or dataset is None or dataset.state != "ready":
        jobs.fail_job(job_id, "The model version was deleted." if version is None
                      else "The dataset was deleted or is not ready.")
        return
    params = dict(job.params)
    per_step: dict[str, int] = {}

    def on_sample(sample) -> None:
        per_step["rows"] = len(sample.rows)

    def progress(features_done: int, n_features: int) -> None:
        rows = per_step.get("rows", 0)
        total = rows * (1 + n_features * int(params["n_repeats"]))
        if not jobs.set_progress(job_id, rows * (1 + features_done * int(params["n_repeats"])), total):
            raise importance.Cancelled()

    def compute() -> dict:
        with threadpool_limits(limits=1):
            return importance.permutation_importance(
                serving.predictor_for(version), data.dataset_file(dataset), params["target"],
                n_repeats=int(params["n_repeats"]), max_rows=int(params["max_rows"]), seed=int(params["seed"]),
                scoring=params.get("scoring"), progress=progress, on_sample=on_sample)

    _run_single(job_id, owner, compute, cancelled=importance.Cancelled, expected=(PayloadError, DatasetError))


@shared_task(name="viewer.compare")
def compare_jobs(job_id: str) -> None:
    """Compare finished scoring jobs over one dataset (bootstrap CIs, disagreeing rows): one task
    streams their output parts, aligned by row index; progress in rows, a cancel stops it."""
    import time

    from .core import compare

    owner = jobs.new_owner()
    if not jobs.claim_job(job_id, owner):
        return  # unknown, cancelled, finished, or another worker has it
    job = db.session.get(Job, job_id)
    params = dict(job.params)
    total = job.progress_total
    last = [0.0]

    def progress(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or done == total:  # a write at most twice a second
            last[0] = now
            if not jobs.set_progress(job_id, done, total):
                raise compare.Cancelled()

    def compute() -> dict:
        return compare.compare_outputs([compare.Source(jobs.output_dir(j)) for j in params["jobs"]],
                                       params["task"], params.get("classes"), bool(params.get("target")),
                                       progress=progress)

    # outputs gone or not alike (FileNotFoundError, ValueError): a retry would fail alike
    _run_single(job_id, owner, compute, cancelled=compare.Cancelled, expected=(FileNotFoundError, ValueError))


def _run_single(job_id: str, owner: str, compute, *, cancelled: type[Exception],
                expected: tuple[type[Exception], ...]) -> None:
    """The body of a single-task job after its claim: compute under a renewed lease, then record
    the result, or the reason it failed (``expected`` errors by their message, anything else by
    its type too, logged), or nothing when it was cancelled (request_cancel recorded that)."""
    try:
        with jobs.Heartbeat(job_id, owner, renew=jobs.renew_job_lease):
            result = compute()
    except cancelled:
        return
    except expected as exc:
        jobs.fail_job(job_id, getattr(exc, "message", None) or str(exc)[:500])
        return
    except Exception as exc:  # noqa: BLE001  (recorded: the job ends in error with the reason)
        log.exception("job %s failed", job_id)
        jobs.fail_job(job_id, f"{type(exc).__name__}: {str(exc)[:500]}")
        return
    if not jobs.finish_single(job_id, result):
        log.info("job %s was cancelled while it ran", job_id)


# --- the reaper: every worker runs one ---------------------------------------------------------

def _single_tasks() -> dict:
    return {"ingest": ingest_dataset, "importance": feature_importance, "compare": compare_jobs}


_reaper_stop = threading.Event()


def _reaper_loop(app) -> None:
    interval = float(app.config["REAPER_SECONDS"])
    while not _reaper_stop.wait(interval):
        try:
            with app.app_context():
                counts = jobs.reap(score_chunk, finalize_job, single_tasks=_single_tasks())
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
    """Each worker process does its maths on one thread: N processes share N cores.
    threadpoolctl limits only the libraries already loaded, so load BLAS (numpy, scipy) and the
    OpenMP runtime (scikit-learn's compiled helpers) first."""
    import scipy.linalg  # noqa: F401
    import sklearn.utils._openmp_helpers  # noqa: F401
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=1)
    log.debug("thread pools: %s", [(p["internal_api"], p["num_threads"]) for p in threadpool_info()])
