"""Running a permutation importance job (one task, the whole job), and the finished ones a model
version page lists. Submitting one is ``services.submission``; the maths is ``core.importance``."""

from __future__ import annotations

from typing import Any

from threadpoolctl import threadpool_limits

from ..core import importance
from ..core.datasets import DatasetError
from ..core.payload import PayloadError
from . import datasets, jobs, serving


def run(job_id: str, owner: str) -> None:
    """Progress is counted in rows predicted (sample x (1 + features x repeats)), written after
    each feature; a cancelled job stops at the next feature."""
    found = jobs.model_and_dataset(job_id)
    if found is None:
        return
    job, version, dataset = found
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
        with threadpool_limits(limits=1), datasets.get_file(dataset) as source:
            return importance.permutation_importance(
                serving.predictor_for(version), source, params["target"],
                n_repeats=int(params["n_repeats"]), max_rows=int(params["max_rows"]), seed=int(params["seed"]),
                scoring=params.get("scoring"), progress=progress, on_sample=on_sample)

    jobs.run_single(job_id, owner, compute, cancelled=importance.Cancelled, expected=(PayloadError, DatasetError))


def finished(version_id: int, top: int, limit: int = 10) -> list[dict[str, Any]]:
    """A version's finished importance jobs, newest first, each with its ``top`` features."""
    found = jobs.of_model_version(version_id, kind="importance", state="done", limit=limit)
    return [{"job": job, "result": job.result or {}, "top": ((job.result or {}).get("features") or [])[:top]}
            for job in found]


