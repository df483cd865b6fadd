"""Comparing finished scoring jobs side by side (the compare page and ``GET /api/v1/compare``
share everything here): several models on one dataset ("models" mode), or one model (or models of
one kind with the same classes) on two datasets, January vs February ("datasets" mode: the rows
differ, so the intervals come from independent bootstraps of each job's rows and there is no
table of disagreeing rows).

The metrics and plots come from each job's stored metrics and aggregates, so they are ready at
once. The bootstrap confidence intervals and the rows where the models disagree most need the
rows themselves: a "compare" job (``run`` below) streams the jobs' output parts once and
stores a small result. Looking (GET) starts nothing: the job is started by a POST (the page's
button, ``POST /api/v1/compare``), whoever asks: it only reads results the asker may already
see, and it is deduplicated by the set of job ids, so any viewer may start it and repeated
requests never add work. A failed or cancelled comparison stays failed (shown with its error)
until someone asks to retry.
"""

from __future__ import annotations

import hashlib
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import time

from ..core import compare
from ..infra.records import Job, User
from . import jobs
from .artifacts import store
from .errors import ServiceError

MAX_JOBS = 8


@dataclass
class Spec:
    """What the jobs being compared have in common."""

    jobs: list[Job]
    task: str                   # binary, multiclass or regression
    classes: list | None
    target: str | None
    dataset_id: str
    dataset_name: str
    n_rows: int | None
    mode: str = "models"        # "models": one dataset; "datasets": one model on two datasets
    dataset_names: list[str] | None = None  # each job's dataset (the same name repeated in "models")

    @property
    def ids(self) -> list[str]:
        return [j.id for j in self.jobs]


def parse_ids(values: list[str]) -> list[str]:
    """Job ids from repeated ``jobs`` parameters (commas also separate), in order, without repeats."""
    ids: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in ids:
                ids.append(part)
    if any("\x00" in i for i in ids):
        raise ServiceError("not_found", "not_found", "No such job.")  # no stored id holds a NUL (PostgreSQL cannot compare one)
    if len(ids) < 2:
        raise ServiceError("invalid", "bad_request", "Pick at least two jobs to compare: ?jobs=<id>&jobs=<id>.")
    if len(ids) > MAX_JOBS:
        raise ServiceError("invalid", "bad_request", f"Compare at most {MAX_JOBS} jobs at a time.")
    return ids


def label(job: Job) -> str:
    params = job.params or {}
    return str(params.get("model") or job.id[:8])


def dataset_name(job: Job) -> str:
    return job.dataset.name if job.dataset else str((job.params or {}).get("dataset") or job.dataset_id or "")


def labels(found: list[Job]) -> list[str]:
    """Display names (model/version); the same model twice gets the job id to tell them apart.
    Jobs on different datasets are named "model on dataset"."""
    names = [label(j) for j in found]
    if len({j.dataset_id for j in found}) > 1:
        names = [f"{n} on {dataset_name(j)}" for n, j in zip(names, found)]
    return [f"{n} · {j.id[:6]}" if names.count(n) > 1 else n for n, j in zip(names, found)]


def task_of(job: Job) -> str | None:
    params = job.params or {}
    if params.get("kind") == "regressor":
        return "regression"
    if params.get("kind") == "classifier" and params.get("classes"):
        return "binary" if len(params["classes"]) == 2 else "multiclass"
    return None


def load(ids: list[str]) -> Spec:
    """The jobs, when they can be compared; a 400 or 404 saying why not otherwise."""
    found = [jobs.get(i) for i in ids]
    for job in found:
        name = f"Job {job.id[:8]} ({label(job)})" if job.kind == "score" else f"Job {job.id[:8]}"
        if job.kind != "score":
            raise ServiceError("invalid", "bad_request", f"{name} is a {job.kind} job; only scoring jobs can be compared.")
        if job.state != "done":
            raise ServiceError("invalid", "bad_request", f"{name} is {job.state}; only finished (done) jobs can be compared.")
        if task_of(job) is None:
            raise ServiceError("invalid", "bad_request", f"{name} scored a model that is neither a classifier nor a regressor.")
    first = found[0]
    for job in found:
        if job.dataset_id is None:
            raise ServiceError("invalid", "bad_request", f"The dataset job {job.id[:8]} ({label(job)}) scored was deleted; "
                               "score the model again on an uploaded dataset to compare it.")
    n_datasets = len({j.dataset_id for j in found})
    mode = "models" if n_datasets == 1 else "datasets"
    if mode == "datasets" and len(found) > 2:
        raise ServiceError("invalid", "bad_request", f"The {len(found)} jobs were run on {n_datasets} different datasets; "
                           "compare several models on one dataset, or one model on two datasets (two jobs).")
    targets = {(j.params or {}).get("target") or None for j in found}
    if len(targets) > 1:
        raise ServiceError("invalid", "bad_request", "The jobs used different target columns; compare jobs scored against the same target.")
    tasks_found = {task_of(j) for j in found}
    if len(tasks_found) > 1:
        raise ServiceError("invalid", "bad_request", "The jobs are of different task types (" + ", ".join(sorted(tasks_found))
                               + "); compare models of one kind.")
    task = tasks_found.pop()
    classes = None
    if task != "regression":
        classes = list(first.params["classes"])
        if any(list(j.params["classes"]) != classes for j in found):
            raise ServiceError("invalid", "bad_request", "The models have different classes; their probabilities cannot be compared.")
    dataset = first.dataset
    names = [dataset_name(j) for j in found]
    if mode == "datasets":
        total = sum(j.progress_total or (j.dataset.n_rows if j.dataset else 0) or 0 for j in found) or None
        return Spec(found, task, classes, targets.pop(), first.dataset_id, " vs ".join(names), total,
                    mode="datasets", dataset_names=names)
    return Spec(found, task, classes, targets.pop(), first.dataset_id, dataset.name if dataset else "",
                first.progress_total or (dataset.n_rows if dataset else None), dataset_names=names)


def fingerprint(ids: list[str]) -> str:
    return hashlib.sha256(f"compare|{compare.VERSION}|{'|'.join(sorted(ids))}".encode()).hexdigest()


def comparison_job(spec: Spec) -> Job | None:
    """The latest compare job of these jobs, if one was ever started (looking starts nothing)."""
    return jobs.latest_with(fingerprint(spec.ids), "compare")


def start(spec: Spec, user: User | None, retry: bool = False) -> tuple[Job, bool]:
    """Start the compare job of these jobs (a POST): (job, created). One pending, running or
    done already is returned as it is; a failed or cancelled one is computed again only with
    ``retry``. A 503 ServiceError when the queue is unreachable."""
    latest = comparison_job(spec)
    # A worker that dies mid-comparison is the reaper's business (jobs.claim's lease): the job
    # runs again on another worker, or ends in error after MAX_ATTEMPTS.
    if latest is not None and (latest.state in ("pending", "running", "done") or not retry):
        return latest, False
    stored = sorted(spec.ids)
    by_id = {j.id: j for j in spec.jobs}
    params = {"jobs": stored, "order": spec.ids, "models": [label(by_id[i]) for i in stored], "task": spec.task,
              "classes": spec.classes, "target": spec.target, "dataset": spec.dataset_name, "mode": spec.mode}
    if spec.mode == "datasets":
        params["datasets"] = [spec.dataset_names[spec.ids.index(i)] for i in stored]
    job = jobs.submit("compare", params, user, dataset_id=spec.dataset_id, fingerprint=fingerprint(spec.ids),
                      progress_total=spec.n_rows)
    return job, True


NOT_STARTED = ("The confidence intervals and the rows where the models disagree need a comparison job, "
               "which reads every row once. Start it with POST /api/v1/compare (the page's button).")
NOT_STARTED_DATASETS = ("The confidence intervals of the differences between the two datasets need a comparison "
                        "job, which reads every row of both jobs once. Start it with POST /api/v1/compare "
                        "(the page's button).")


def _signed(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:+.3f}".replace("-", "−")


def headline(spec: Spec, result: dict[str, Any]) -> str | None:
    """One sentence for the main metric: "churn/1 on jan.csv vs feb.csv: ROC AUC −0.031 [−0.052, −0.010]"
    (datasets); "weak/1 − strong/1: ROC AUC ..." (models, against the baseline)."""
    main = [d for d in result.get("differences", []) if d.get("main")]
    if not main:
        return None
    d = main[0]
    if spec.mode == "datasets":
        models = {label(j) for j in spec.jobs}
        who = (models.pop() + " on ") if len(models) == 1 else ""
        subject = f"{who}{spec.dataset_names[0]} vs {spec.dataset_names[1]}"
    else:
        names = dict(zip(spec.ids, labels(spec.jobs)))
        subject = f"{names[d['job']]} − {names[spec.ids[0]]}"
    return f"{subject}: {d['label']} {_signed(d['difference'])} [{_signed(d['low'])}, {_signed(d['high'])}]"


def comparison_view(spec: Spec, job: Job | None, message: str | None = None) -> dict[str, Any]:
    """The compare job's state ("not_started" before anyone started one), and its result seen
    from the first job (the baseline)."""
    status = jobs.serialize_job(job) if job else None
    if status is not None:
        status["result"] = None  # the stored result, presented from the baseline, is "result" below
    waiting = NOT_STARTED_DATASETS if spec.mode == "datasets" else NOT_STARTED
    out: dict[str, Any] = {"state": job.state if job else "not_started", "job": status,
                           "message": message or (None if job else waiting), "result": None}
    if job is not None and job.state == "done" and job.result:
        out["result"] = compare.present(job.result, job.params["jobs"], spec.ids)
        out["result"]["headline"] = headline(spec, out["result"])
    elif job is not None and job.state in ("error", "cancelled"):
        out["message"] = job.error or f"The comparison was {job.state}."
    return out


def summary(spec: Spec) -> dict[str, Any]:
    names = labels(spec.jobs)
    return {
        "mode": spec.mode, "dataset_id": spec.dataset_id, "dataset": spec.dataset_name, "target": spec.target,
        "task": spec.task, "classes": spec.classes,
        "jobs": [{"id": j.id, "label": n, "model": (j.params or {}).get("model"),
                  "dataset_id": j.dataset_id, "dataset": d,
                  "model_name": (j.params or {}).get("model_name"),
                  "model_version": (j.params or {}).get("model_version"), "url": f"/api/v1/jobs/{j.id}"}
                 for j, n, d in zip(spec.jobs, names, spec.dataset_names or [spec.dataset_name] * len(names))],
        "metrics": compare.side_by_side([(j.result or {}).get("metrics") for j in spec.jobs]),
    }


def run(job_id: str, owner: str) -> None:
    """The compare job: stream the jobs' output parts, aligned by row index, once (bootstrap CIs,
    disagreeing rows); progress in rows, a cancel stops it."""
    job = jobs.get(job_id)
    params = dict(job.params)
    total = job.progress_total
    last = [0.0]

    def progress(done: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or done == total:  # a write at most twice a second
            last[0] = now
            if not jobs.set_progress(job_id, done, total):
                raise compare.Cancelled()

    first = jobs.get(params["jobs"][0])
    passthrough = list((first.params or {}).get("passthrough") or ())  # its IDs label the disagreeing rows

    def compute() -> dict:
        with ExitStack() as files:
            sources = [compare.Source([files.enter_context(store().reader(key)) for key in jobs.output_keys(j)])
                       for j in params["jobs"]]
            if params.get("mode") == "datasets":  # one model on two datasets: each job's rows on their own
                return compare.compare_datasets(sources, params["task"], params.get("classes"),
                                                bool(params.get("target")), progress=progress)
            return compare.compare_outputs(sources, params["task"], params.get("classes"),
                                           bool(params.get("target")), progress=progress, passthrough=passthrough)

    # outputs gone or not alike (FileNotFoundError, ValueError): a retry would fail alike
    jobs.run_single(job_id, owner, compute, cancelled=compare.Cancelled, expected=(FileNotFoundError, ValueError))
