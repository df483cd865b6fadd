"""Running a scoring job: one task per chunk (a stored row group) writes its output part (and
goes on with the job's untried chunks, see ``run_chunk``), and one finaliser computes the
metrics and plot aggregates once every chunk is done. Submitting one is
``services.submission``; running the model over rows is ``core.scoring``.

Task bodies never trust the message: they re-read the job, claim their chunk through a lease,
and do nothing when the work is done, cancelled or held by another worker. A chunk writes its
part under a new artifact key and records the key only while it holds the lease, so a late or
duplicated copy never replaces a recorded part.
"""

from __future__ import annotations

import logging
import time
from typing import Any
from contextlib import ExitStack

from flask import current_app

from ..core import scoring
from ..core.payload import PayloadError
from ..infra import stopping
from ..infra.artifacts import new_key
from ..infra.extensions import db
from ..infra.records import Dataset, Job
from ..infra.host.pool import HostError, ModelFailed
from . import datasets, hosts, jobs, kinds, runtimes, serving
from .artifacts import store

log = logging.getLogger(__name__)
KIND = "score"


def run_chunk(job_id: str, index: int, owner: str) -> None:
    """Score chunk ``index``, then, in the same task, chunks of the job that no worker has tried
    yet, one claim at a time, for up to ``CHUNK_TASK_SECONDS``. A chunk's own message, when it
    arrives later, finds the chunk taken and does nothing. This saves every chunk's trip through
    the broker (bench/scoring.py: ~12 ms between chunks on the embedded broker, which polls)
    while several workers still share a job: each claims the next chunk when it is free. A
    retried chunk waits for its own delayed message (its back-off), so it is never taken here."""
    chunk = jobs.claim_chunk(job_id, index, owner)
    stop_at = time.monotonic() + float(current_app.config["CHUNK_TASK_SECONDS"])
    while chunk is not None:
        if not _score_one(job_id, chunk, owner) or time.monotonic() > stop_at or stopping.stopping():
            return  # (a warm shutdown finishes the running chunk and takes no more)
        chunk = jobs.claim_untried_chunk(job_id, owner)


def _score_one(job_id: str, chunk, owner: str) -> bool:
    """Score one claimed chunk; True when the job goes on (more chunks may be taken)."""
    index = chunk.index
    job = db.session.get(Job, job_id)
    if job is None or job.finished or job.cancel_requested:
        return False
    jobs.start_chunked(job)
    key = new_key(f"{jobs.output_prefix(job_id)}/part-{index:05d}", ".parquet")
    where = None  # the chunk's rows, as a failure names them
    try:
        with jobs.Heartbeat(chunk.id, owner) as beat:
            version = job.model_version
            if version is None:
                jobs.fail(job_id, "The model version was deleted.")
                return False
            if version.quarantined_at is not None:
                jobs.fail(job_id, f"{version.ref} is quarantined: {version.quarantine_reason}")
                return False
            version_key = (version.model.project_id, version.sha256)
            predictor = serving.predictor_for(version)
            dataset = db.session.get(Dataset, job.dataset_id)
            with datasets.get_file(dataset) as source, store().writer(key) as part:
                where = scoring.chunk_rows(source, index)
                rows = scoring.score_chunk(predictor, source, index, part, job.params.get("target"),
                                           job.params.get("passthrough") or (), bool(job.params.get("strict")),
                                           job.params.get("segments"))
    except PayloadError as exc:  # the data does not fit the model: every retry would fail alike
        jobs.fail(job_id, exc.message)  # it names the rows ("Rows 100,000–199,999: ..."), the column and the fix
        return False
    except Exception as exc:  # noqa: BLE001  (recorded, retried, and after N tries the job fails)
        reason = f"{type(exc).__name__}: {str(exc)[:500]}"
        if isinstance(exc, HostError):  # its model host crashed or froze on this chunk: a failed attempt
            hosts.record_failure(*version_key, exc)
            reason = exc.message
        elif isinstance(exc, ModelFailed):  # the model raised: retried like any failed chunk
            reason = exc.message
        log.exception("chunk %s/%s failed", job_id, index)
        if where is not None:
            reason = f"{where}: {reason}"
        delay = jobs.fail_chunk(chunk, owner, reason)
        if delay is not None:
            try:
                kinds.enqueue_chunk(KIND, job_id, index, countdown=delay)
            except kinds.BrokerUnavailable:
                log.warning("chunk %s/%s: queue unreachable; the reaper sends it again", job_id, index)
        return False
    if beat.lost or not jobs.complete_chunk(chunk, owner, rows, key):
        store().delete(key)  # our lease expired and another worker took the chunk: its record wins
        return False
    db.session.refresh(job)
    if job.cancel_requested or job.state in ("cancelled", "error"):
        jobs.remove_outputs(job)  # it ended while this chunk ran: its end hook cleaned up before
        return False
    if jobs.chunks_left(job_id) == 0:
        # The last chunk's task finalises at once: a finaliser's message would wait behind the
        # messages of the chunks this task took. Killed meanwhile: the reaper sends a finaliser.
        finalize(job_id, owner)
        return False
    return True


def finalize(job_id: str, owner: str) -> None:
    if jobs.chunks_left(job_id) != 0 or not jobs.claim_finalize(job_id, owner):
        return
    job = db.session.get(Job, job_id)
    try:
        with jobs.Heartbeat(job_id, owner, renew=jobs.renew_job_lease), ExitStack() as files:
            parts = [files.enter_context(store().reader(key)) for key in jobs.output_keys(job)]
            summary = scoring.summarize(parts, job.params["kind"], job.params.get("classes"),
                                        bool(job.params.get("target")))
            found = scoring.part_warnings(parts)  # the schema policy's, per column with row counts
            if found:
                summary["warnings"] = found
            if job.params.get("segments") and job.params.get("target"):
                summary["segments"] = _segments(job, parts)
    except Exception as exc:  # noqa: BLE001
        log.exception("finalising %s failed", job_id)
        jobs.fail(job_id, f"Computing metrics failed: {type(exc).__name__}: {str(exc)[:500]}")
        return
    if not jobs.finish(job_id, owner, summary):
        log.info("job %s was cancelled or finished by another worker while finalising", job_id)


def _segments(job: Job, parts: list) -> dict[str, Any] | None:
    """The job's segment table and weak segments (the pairs counted from its dataset, when the
    dataset is still there: else single conditions only)."""
    with ExitStack() as files:
        dataset = job.dataset
        source = None
        if dataset is not None and dataset.path and store().exists(dataset.path):
            source = files.enter_context(datasets.get_file(dataset))
        return scoring.segment_summary(job.params["segments"], parts, job.params["kind"], job.params.get("classes"),
                                       source)


def ended(job_id: str, state: str) -> None:
    """End hook: a scoring job that failed or was cancelled leaves no output behind; the first
    that ended done gives its model's compiled runtime a parity check on its rows."""
    if state != "done":
        jobs.remove_outputs(job_id)
        return
    job = db.session.get(Job, job_id)
    if job is not None:
        runtimes.scored(job)

