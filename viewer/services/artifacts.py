"""The artifact store as the services use it, and the sweep that deletes what no record points to.

See ``viewer.infra.artifacts`` for the protocol: a writer puts an object under a new key, then
records the key; readers find objects only through records; the sweep removes keys that no
record names once they are older than a grace period (a writer between its write and its
record is never swept).
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import current_app
from sqlalchemy import select

from ..infra.artifacts import ArtifactStore, open_store, sweep_scratch
from ..infra.extensions import db
from ..infra.records import Dataset, Job, JobChunk, ModelVersion, PredictionLogFile

# The prefixes the store holds (keys of earlier releases included) and how each is recorded.
PREFIXES = ("models", "artifacts/models", "datasets", "jobs", "runtimes", "predlog")
SWEEP_GRACE_SECONDS = 6 * 3600
LEGACY_SCRATCH = ("uploads", "artifacts/tmp")  # where earlier releases staged uploads


def store() -> ArtifactStore:
    return open_store(current_app.config["DATA_DIR"])


def scratch_dir() -> Path:
    """Local files that are not artifacts: uploads being received, models being checked."""
    path = Path(current_app.config["DATA_DIR"]) / "scratch"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _recorded_keys() -> set[str]:
    keys = set(db.session.scalars(select(ModelVersion.artifact_key)))
    keys.update(k for k in db.session.scalars(select(Dataset.path)) if k)
    keys.update(k for k in db.session.scalars(select(JobChunk.output_key)) if k)
    keys.update(library_keys())
    keys.update(db.session.scalars(select(PredictionLogFile.key)))
    from .dataset_drift import recorded_keys as comparisons  # (it reads the store through this module)
    keys.update(comparisons())
    return keys


def library_keys() -> set[str]:
    """The compiled libraries that model versions record (``services.runtimes``)."""
    return {r["library_key"] for r in db.session.scalars(select(ModelVersion.runtime).where(
        ModelVersion.runtime.is_not(None))) if isinstance(r, dict) and r.get("library_key")}


def _live_jobs() -> list[Job]:
    """Jobs that may still write (their folders are left alone) or read an upload."""
    return list(db.session.scalars(select(Job).where(Job.state.in_(("pending", "running")))))


def sweep(grace_seconds: float = SWEEP_GRACE_SECONDS) -> dict[str, int]:
    """Delete objects that no record points to and that are older than ``grace_seconds``, and
    scratch files as old; returns counts. Safe to run from several processes at once."""
    artifacts = store()
    cutoff = time.time() - grace_seconds
    live_jobs = _live_jobs()
    recorded, live = _recorded_keys(), {j.id for j in live_jobs}
    # The uploads that queued ingest jobs will read stay, however long they wait.
    uploads = frozenset(Path(str(j.params.get("upload", ""))).name for j in live_jobs if j.kind == "ingest")
    removed = 0
    for prefix in PREFIXES:
        for obj in artifacts.list(prefix):
            if obj.key in recorded or obj.modified >= cutoff:
                continue
            if prefix == "jobs" and obj.key.split("/")[1] in live:
                continue
            artifacts.delete(obj.key)
            removed += 1
    data_dir = Path(current_app.config["DATA_DIR"])
    scratch = sum(sweep_scratch(folder, grace_seconds, keep=uploads)
                  for folder in (scratch_dir(), *(data_dir / old for old in LEGACY_SCRATCH)))
    return {"objects": removed, "scratch": scratch}
