"""Partial dependence and ICE jobs (one task each): submit and run. The maths is
``core.dependence``; the job page draws the result (``viewer.web.dependence``)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from threadpoolctl import threadpool_limits

from ..core import dependence as core
from ..core.datasets import DatasetError
from ..core.payload import PayloadError
from ..infra.records import Job, User
from . import datasets, jobs, registry, serving
from .errors import ServiceError

KIND = "dependence"


def options(version, chosen: list[str] | None, pair: list[str] | None, max_rows: int | None,
            grid: int | None) -> dict[str, Any]:
    """The job's options with defaults filled in (the model's first inputs when none are chosen),
    checked; a ServiceError (400) names what is wrong."""
    columns = registry.input_columns(version.info or {})
    if columns is None:
        raise ServiceError("invalid", "bad_option", "Partial dependence needs a model whose inputs have names.")
    unused = {f["name"] for f in version.info.get("input_schema") or [] if f.get("kind") == "unused"}
    inputs = [c for c in columns if c not in unused]
    chosen = [c.strip() for c in chosen or [] if c and c.strip()] or inputs[:5]
    for name in [*chosen, *(pair or [])]:
        if name not in inputs:
            raise ServiceError("invalid", "unknown_feature", f"{name[:100]!r} is not one of the model's inputs "
                               f"({', '.join(inputs[:10])}{', ...' if len(inputs) > 10 else ''}).")
    if not 1 <= len(chosen) <= core.MAX_FEATURES:
        raise ServiceError("invalid", "bad_option", f"Choose 1 to {core.MAX_FEATURES} inputs.")
    if pair is not None and (len(pair) != 2 or pair[0] == pair[1]):
        raise ServiceError("invalid", "bad_option", "pair names two different inputs of the model.")
    max_rows = core.DEFAULT_MAX_ROWS if max_rows is None else max_rows
    grid = core.DEFAULT_GRID if grid is None else grid
    if not 10 <= max_rows <= core.MAX_SAMPLE_ROWS:
        raise ServiceError("invalid", "bad_option", f"max_rows must be between 10 and {core.MAX_SAMPLE_ROWS:,}.")
    if not 2 <= grid <= core.MAX_GRID:
        raise ServiceError("invalid", "bad_option", f"grid must be between 2 and {core.MAX_GRID}.")
    return {"features": chosen, "pair": list(pair) if pair else None, "max_rows": max_rows, "grid": grid,
            "seed": 0, "columns": columns}


def submit(model_ref: str, dataset_id: str, user: User | None, *, features: list[str] | None = None,
           pair: list[str] | None = None, max_rows: int | None = None, grid: int | None = None,
           force: bool = False) -> tuple[Job, bool]:
    from .submission import same_work, check_fit

    version, dataset = check_fit(model_ref, dataset_id, None)
    chosen = options(version, features, pair, max_rows, grid)
    key = hashlib.sha256(json.dumps([KIND, version.sha256, dataset.id, chosen], sort_keys=True).encode()).hexdigest()
    if not force:
        existing = same_work(key, version)
        if existing is not None:
            return existing, False
    params = {"model": version.ref, "model_name": version.model.name, "model_version": version.version,
              "dataset": dataset.name, "kind": version.info.get("kind"), **chosen}
    job = jobs.submit(KIND, params, user, model_version_id=version.id, dataset_id=dataset.id, fingerprint=key,
                      progress_total=None)
    return job, True


def run(job_id: str, owner: str) -> None:
    """Progress counts the features drawn (and the pair); a cancelled job stops at the next one."""
    found = jobs.model_and_dataset(job_id)
    if found is None:
        return
    job, version, dataset = found
    params = dict(job.params)

    def progress(done: int, total: int) -> None:
        if not jobs.set_progress(job_id, done, total):
            raise core.Cancelled()

    def compute() -> dict:
        with threadpool_limits(limits=1), datasets.get_file(dataset) as source:
            return core.dependence(serving.predictor_for(version), source, params["columns"], params["features"],
                                   params.get("pair"), max_rows=int(params["max_rows"]), grid=int(params["grid"]),
                                   seed=int(params["seed"]), progress=progress)

    jobs.run_single(job_id, owner, compute, cancelled=core.Cancelled, expected=(PayloadError, DatasetError))


def finished(version_id: int, limit: int = 5) -> list[Job]:
    return jobs.of_model_version(version_id, kind=KIND, state="done", limit=limit)
