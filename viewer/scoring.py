"""Scoring jobs: check that a model fits a dataset, deduplicate, split into chunks, enqueue."""

from __future__ import annotations

import hashlib

from sqlalchemy import select

from . import data, jobs, registry, tasks
from .extensions import db
from .records import Job, User
from .registry import RegistryError


def fingerprint(sha256: str, dataset_id: str, target: str | None) -> str:
    return hashlib.sha256(f"score|{sha256}|{dataset_id}|{target or ''}".encode()).hexdigest()


def submit(model_ref: str, dataset_id: str, target: str | None, user: User | None,
           force: bool = False) -> tuple[Job, bool]:
    """Returns (job, created). The same model version + dataset + target already pending,
    running or done returns that job instead, unless ``force``."""
    version = registry.resolve(model_ref)
    dataset = data.get(dataset_id)
    if dataset.state != "ready":
        raise RegistryError(409, "dataset_not_ready", f"The dataset is {dataset.state}, not ready for scoring.")
    columns = dataset.columns
    if target and target not in columns:
        raise RegistryError(400, "unknown_target", f"The dataset has no column {target[:100]!r}.")
    names = version.info.get("feature_names")
    if names:
        missing = [c for c in names if c not in columns]
        if missing:
            raise RegistryError(400, "schema_mismatch", "The dataset lacks columns the model needs: "
                                + ", ".join(repr(c) for c in missing[:5])
                                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "") + ".")
    else:
        width = len(columns) - (1 if target else 0)
        if version.info.get("n_features") not in (None, width):
            raise RegistryError(400, "schema_mismatch", f"The model takes {version.info['n_features']} unnamed "
                                f"columns; the dataset has {width}" + (" besides the target" if target else "") + ".")
    key = fingerprint(version.sha256, dataset.id, target)
    if not force:
        existing = db.session.scalar(select(Job).where(Job.fingerprint == key, Job.state.in_(("pending", "running", "done")))
                                     .order_by(Job.created_at.desc()).limit(1))
        if existing is not None:
            return existing, False
    params = {"model": version.ref, "model_name": version.model.name, "model_version": version.version,
              "dataset": dataset.name, "target": target or None, "kind": version.info.get("kind"),
              "classes": version.info.get("classes")}
    n_chunks = int(dataset.info.get("n_row_groups") or 1)
    try:
        job = jobs.submit(tasks.score_chunk, "score", params, user, chunks=n_chunks, model_version_id=version.id,
                          dataset_id=dataset.id, fingerprint=key, progress_total=dataset.n_rows)
    except jobs.BrokerUnavailable as exc:
        raise RegistryError(503, "queue_unavailable", str(exc)) from None
    return job, True
