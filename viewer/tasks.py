"""Celery tasks: thin adapters that take ids and call the services, and ``register_kinds``, which
fills the registry of job kinds (``services.kinds``) that the services enqueue through.

Task bodies never trust the message: the services re-read the job, claim it or its chunk
through a lease, and do nothing when the work is done, cancelled or held by another worker.
"""

from __future__ import annotations

import logging
import socket
import threading

from celery import shared_task
from celery.signals import worker_init, worker_process_init, worker_ready, worker_shutdown, worker_shutting_down

from .infra import stopping
from .infra.extensions import db
from .services import comparison, dataset_drift, datasets, dependence, health, importance, jobs, kinds, logfiles, monitoring, reaper, runtimes, scoring

log = logging.getLogger(__name__)


@shared_task(name="viewer.ping", bind=True)
def ping(self, job_id: str) -> None:
    """A health check through the whole pipeline: web -> broker -> worker -> database."""
    health.run_ping(job_id, jobs.new_owner(), self.request.hostname or socket.gethostname())


@shared_task(name="viewer.score_chunk")
def score_chunk(job_id: str, index: int) -> None:
    scoring.run_chunk(job_id, index, jobs.new_owner())


@shared_task(name="viewer.finalize_job")
def finalize_job(job_id: str) -> None:
    scoring.finalize(job_id, jobs.new_owner())


def _single(run):
    """A single-task job's body: claim the job (once), then run it under the claim's lease."""

    def task(job_id: str) -> None:
        owner = jobs.new_owner()
        if jobs.claim(job_id, owner):  # unknown, finished, cancelled, or another worker has it
            run(job_id, owner)

    return task


ingest_dataset = shared_task(name="viewer.ingest_dataset")(_single(datasets.ingest_job))
feature_importance = shared_task(name="viewer.importance")(_single(importance.run))
partial_dependence = shared_task(name="viewer.dependence")(_single(dependence.run))
compare_jobs = shared_task(name="viewer.compare")(_single(comparison.run))
compare_datasets = shared_task(name="viewer.dataset_drift")(_single(dataset_drift.run))
# On its own queue (runtimes.QUEUE, celery_config's task_routes): a worker of its own takes it.
compile_model = shared_task(name="viewer.compile")(_single(runtimes.run))


def register_kinds() -> None:
    """Fill the registry of job kinds with these tasks and the services' end hooks."""
    kinds.register(kinds.JobKind("ping", run=ping))
    kinds.register(kinds.JobKind("score", chunk=score_chunk, finalize=finalize_job, on_end=scoring.ended))
    kinds.register(kinds.JobKind("ingest", run=ingest_dataset, on_end=datasets.ingest_ended))
    kinds.register(kinds.JobKind("importance", run=feature_importance))
    kinds.register(kinds.JobKind(dependence.KIND, run=partial_dependence))
    kinds.register(kinds.JobKind("compare", run=compare_jobs))
    kinds.register(kinds.JobKind(dataset_drift.KIND, run=compare_datasets, on_end=dataset_drift.ended))
    kinds.register(kinds.JobKind(runtimes.KIND, run=compile_model, on_end=runtimes.ended))


# --- the reaper: every worker runs one ---------------------------------------------------------

_reaper_stop = threading.Event()


def _backfill(app) -> None:
    """Once per start of a compiling worker: compile the versions stored before, or built with
    other libraries (services.runtimes.backfill)."""
    try:
        with app.app_context():
            queued = runtimes.backfill()
            if queued:
                log.warning("queued %d compile jobs (versions not compiled yet, or built with other libraries)", queued)
            db.session.remove()
    except Exception:  # noqa: BLE001  (database or broker away: the next worker start asks again)
        log.warning("could not queue compile jobs", exc_info=True)


def _reaper_loop(app, compiles: bool) -> None:
    interval = float(app.config["REAPER_SECONDS"])
    if compiles:
        _backfill(app)
    while not _reaper_stop.wait(interval):
        try:
            with app.app_context():
                counts = reaper.reap()
                if any(counts.values()):
                    log.warning("reaper recovered work: %s", counts)
                db.session.remove()
        except Exception:  # noqa: BLE001  (database or broker briefly away: next round)
            log.warning("reaper round failed", exc_info=True)


def _upkeep_loop(app) -> None:
    """The prediction log's upkeep, on a thread of its own (summarising a large reference dataset
    must not hold up the reaper): monitoring summaries and drift, compaction, retention hourly."""
    interval = float(app.config["REAPER_SECONDS"])
    while not _reaper_stop.wait(interval):
        try:
            with app.app_context():
                monitoring.maintain()
                if "purged" in logfiles.maintain():
                    monitoring.purge()
                db.session.remove()
        except Exception:  # noqa: BLE001  (the store or database away: next round)
            log.warning("prediction log upkeep failed", exc_info=True)


@worker_ready.connect
def _start_reaper(sender=None, **_kwargs) -> None:
    app = sender.app.flask_app if hasattr(sender.app, "flask_app") else None
    if app is None:
        return
    _reaper_stop.clear()
    compiles = runtimes.QUEUE in sender.app.amqp.queues.consume_from  # `worker --queues viewer-compile`
    threading.Thread(target=_reaper_loop, args=(app, compiles), daemon=True, name="reaper").start()
    if "viewer" in sender.app.amqp.queues.consume_from:  # job workers (not the compile-only one)
        threading.Thread(target=_upkeep_loop, args=(app,), daemon=True, name="upkeep").start()


@worker_shutdown.connect
def _stop_reaper(**_kwargs) -> None:
    _reaper_stop.set()


@worker_init.connect
def _open_stop_pipe(**_kwargs) -> None:
    stopping.open_in_main()


@worker_shutting_down.connect
def _warm_shutdown_begins(**_kwargs) -> None:
    stopping.begin_shutdown()  # tasks that go on taking chunks stop after the one they run


@worker_process_init.connect
def _child_closes_stop_pipe(**_kwargs) -> None:
    stopping.child_started()


@worker_process_init.connect
def _one_thread_per_process(**_kwargs) -> None:
    """Each worker process does its maths on one thread: N processes share N cores.
    threadpoolctl limits only the libraries already loaded, so load BLAS (numpy, scipy) and the
    OpenMP runtime (scikit-learn's HistGradientBoosting uses it) first."""
    import scipy.linalg  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(limits=1)
    log.debug("thread pools: %s", [(p["internal_api"], p["num_threads"]) for p in threadpool_info()])

