"""Compiled runtimes of model versions (``core.compiled``), from request to use.

- ``request``: when a version is registered, when a worker starts (versions stored before, or
  built with other versions of scikit-learn, Treelite, TL2cgen or gcc), and after a version's
  first scoring job (its rows make a better parity check than rows made from the schema), a
  ``compile`` job is queued. Versions whose final step is not a tree ensemble get their reason
  at once, without a job.
- ``run``: the job's body, on its own queue (``viewer-compile``: a worker of its own takes it, so
  compiling never holds up scoring). It reads parity rows, compiles in the compile sandbox
  (``infra.host.compiler``), stores the library under a new key and records the outcome on the
  version (``ModelVersion.runtime``).
- ``for_host``: what a model host needs to use it (the library's key and digest, the parity and
  speed figures), or None: scikit-learn answers (nothing passed, the model's switch says
  scikit-learn, or the versions changed and a recheck is due).

A version's ``runtime`` record: ``state`` ("queued", "ready", "failed", "none": not compilable),
``reason`` (why not, for the model card), ``job_id`` (the newest compile job), and once built:
``library_key``, ``sha256``, ``compiled``, ``parity``, ``timings``, ``faster``, ``rows`` (where
the parity rows came from) and ``versions``.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from typing import Any

import numpy as np
import pandas as pd
from flask import current_app
from sqlalchemy import select

from ..core.compiled import SPEED_SIZES, current_versions
from ..core.datasets import DatasetError
from ..core.payload import PayloadError
from ..core.predictor import InputSchema
from ..core.scoring import features
from ..core.tree_path import SMALL as DIRECT_ROWS
from ..infra.artifacts import new_key
from ..infra.extensions import db
from ..infra.records import Job, ModelVersion, utcnow
from . import artifacts, jobs, registry
from .errors import ServiceError

log = logging.getLogger(__name__)
KIND = "compile"
QUEUE = "viewer-compile"
PARITY_ROWS = 20_000    # data rows read from a dataset for the parity check (threshold rows come on top)
SCHEMA_ROWS = 200       # rows made from the input schema when no dataset was scored yet
SERVE_WITH = ("auto", "scikit-learn")
SCORED = "first scoring job"  # why a version is compiled again
# Final steps the compile sandbox can compile (core.compiled.compilable has the last word).
TREE_CLASSES = {f"sklearn.ensemble._forest.{n}" for n in (
    "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor")} | {
    "sklearn.ensemble._gb.GradientBoostingClassifier", "sklearn.ensemble._gb.GradientBoostingRegressor",
    "sklearn.ensemble._iforest.IsolationForest",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "lightgbm.sklearn.LGBMClassifier", "lightgbm.sklearn.LGBMRegressor"}


def enabled() -> bool:
    return bool(current_app.config.get("COMPILE_MODELS", True))


@functools.cache
def _versions(compiler: bool = False) -> dict[str, str]:
    return current_versions(compiler=compiler)


LIBRARIES = ("scikit-learn", "treelite", "tl2cgen")  # what a host's answers depend on (gcc: the build)


def final_class(info: dict[str, Any]) -> str:
    steps = [s for s in info.get("steps") or [] if isinstance(s, dict) and s.get("class")]
    return str(steps[-1]["class"]) if steps else str(info.get("estimator_class") or "")


def _short(qualified: str) -> str:
    return qualified.rsplit(".", 1)[-1] or "This model"


def _own(version: ModelVersion) -> str:
    """Who answers when the compiled runtime does not: the model's own library."""
    return "LightGBM" if final_class(version.info or {}).startswith("lightgbm.") else "scikit-learn"


def _unfinished_job(version: ModelVersion) -> Job | None:
    return db.session.scalar(select(Job).where(Job.model_version_id == version.id, Job.kind == KIND,
                                               Job.state.in_(("pending", "running"))).limit(1))


def _params(version: ModelVersion, why: str) -> dict[str, Any]:
    """A compile job's params: the model as jobs name it (its page and filters), and why."""
    return {"model": version.ref, "model_name": version.model.name, "version": version.version, "why": why}


def request(version: ModelVersion, *, why: str = "registered") -> Job | None:
    """Queue a compile job for ``version`` (none when one is queued or running already, or when
    compiling is off); a final step that is not a tree ensemble is recorded as such at once.
    A broker that is down leaves the version as it was (the next worker start asks again)."""
    if not enabled():
        return None
    final = final_class(version.info or {})
    if final not in TREE_CLASSES:
        if (version.runtime or {}).get("state") != "none":
            version.runtime = {"state": "none", "at": jobs.iso_time(utcnow()),
                               "reason": f"{_short(final)} is not a tree ensemble, so it is not compiled; "
                                         "scikit-learn serves it."}
            db.session.commit()
        return None
    running = _unfinished_job(version)
    if running is not None:
        return running
    try:
        job = jobs.submit(KIND, _params(version, why), None, model_version_id=version.id,
                          project_id=version.model.project_id)
    except ServiceError:
        log.warning("could not queue the compile job of %s (the queue is unreachable)", version.ref)
        return None
    version.runtime = {**(version.runtime or {"state": "queued"}), "job_id": job.id}
    db.session.commit()
    return job


def stale(version: ModelVersion, *, compiler: bool = False) -> bool:
    """A runtime built with other versions of scikit-learn, Treelite or TL2cgen than this
    installation's (``compiler``: or of gcc, which only a worker that compiles asks): it is
    not used, and checked again."""
    runtime = version.runtime or {}
    built = (runtime.get("compiled") or {}).get("versions")
    if runtime.get("state") not in ("ready", "failed") or built is None:
        return False
    now = _versions(compiler)
    return any(built.get(name) != now.get(name) for name in LIBRARIES + (("gcc",) if compiler else ()))


def backfill(limit: int = 1000) -> int:
    """Queue compile jobs for versions with no runtime record yet (stored before compiling
    existed) and for those built with other library versions; returns how many were queued."""
    if not enabled():
        return 0
    queued = 0
    for version in db.session.scalars(select(ModelVersion).order_by(ModelVersion.id).limit(limit)):
        runtime = version.runtime
        if runtime is None or stale(version, compiler=True) or \
                (runtime.get("state") == "queued" and _unfinished_job(version) is None):
            queued += request(version, why="recheck" if runtime else "stored before") is not None
    return queued


def scored(job: Job) -> None:
    """After a version's first finished scoring job: check the runtime again on its dataset's
    rows when the last check had only rows made from the schema."""
    version = job.model_version
    if version is None or not enabled():
        return
    runtime = version.runtime or {}
    if runtime.get("state") in ("ready", "failed") and (runtime.get("rows") or {}).get("source") == "schema" \
            and not _asked_after_scoring(version):
        request(version, why=SCORED)


# --- the job -------------------------------------------------------------------------------------

def _parity_rows(version: ModelVersion) -> tuple[pd.DataFrame | np.ndarray | None, dict[str, Any]]:
    """The rows of the parity check: up to ``PARITY_ROWS`` rows of the dataset of the version's
    first finished scoring job, else rows made from its input schema (each category in turn, each
    number at its recorded default), else none (threshold rows only)."""
    from ..core.datasets.reading import iter_chunks, to_frame
    from . import datasets

    info = version.info or {}
    names = info.get("feature_names")
    first = _first_scoring_job(version)
    dataset = first.dataset if first is not None else None
    if dataset is not None and dataset.state == "ready" and dataset.path:
        wanted = [c for c in names if c in set(dataset.columns)] if names else None
        try:
            with datasets.get_file(dataset) as path:
                parts, n = [], 0
                for _start, table in iter_chunks(path, columns=wanted, batch_rows=PARITY_ROWS):
                    parts.append(to_frame(table))
                    n += table.num_rows
                    if n >= PARITY_ROWS:
                        break
            frame = pd.concat(parts, ignore_index=True).iloc[:PARITY_ROWS] if parts else None
        except (DatasetError, ServiceError, OSError, ValueError):
            frame = None
        if frame is not None and len(frame):
            target = (first.params or {}).get("target")
            try:  # the model's input as a scoring job gives it (missing categories as it learnt them)
                rows = features(InputSchema(info, needs_frame=bool(names)), frame, target if not names else None)
            except PayloadError:
                rows = None
            if rows is not None:
                return rows, {"source": "dataset", "dataset": dataset.name, "rows": len(frame)}
    specs = [s for s in info.get("input_schema") or [] if isinstance(s, dict)]
    if not specs:
        return None, {"source": "thresholds", "rows": 0}
    n = min(SCHEMA_ROWS, max([len(s.get("categories") or []) for s in specs] + [1]))
    columns: dict[str, Any] = {}
    for spec in specs:
        if spec.get("kind") == "unused":
            columns[spec["name"]] = [None] * n
        elif spec.get("kind") == "categorical" and spec.get("categories"):
            known = [c for c in spec["categories"] if c is not None] or [None]
            columns[spec["name"]] = [known[i % len(known)] for i in range(n)]
        else:
            value = spec.get("default")
            columns[spec["name"]] = [float(value) if isinstance(value, (int, float)) else 0.0] * n
    frame = pd.DataFrame(columns)
    rows: pd.DataFrame | np.ndarray = frame if names else frame.to_numpy(dtype=np.float64)
    return rows, {"source": "schema", "rows": n}


def _asked_after_scoring(version: ModelVersion) -> bool:
    """A recheck on scored rows was asked once already (its rows may have been unreadable: a
    deleted dataset), so later scoring jobs do not ask again."""
    return any((params or {}).get("why") == SCORED for params in db.session.scalars(
        select(Job.params).where(Job.model_version_id == version.id, Job.kind == KIND)))


def _first_scoring_job(version: ModelVersion) -> Job | None:
    return db.session.scalar(select(Job).where(Job.model_version_id == version.id, Job.kind == "score",
                                               Job.state == "done").order_by(Job.created_at).limit(1))


class Cancelled(Exception):
    pass


def run(job_id: str, owner: str) -> None:
    """Compile the job's version in the compile sandbox and record the outcome on the version."""
    from ..infra.host.compiler import compile_model

    job = db.session.get(Job, job_id)
    version = job.model_version
    if version is None:
        jobs.fail(job_id, "The model version was deleted.")
        return
    config = current_app.config

    def compute() -> dict[str, Any]:
        rows, source = _parity_rows(version)
        with tempfile.TemporaryDirectory(dir=artifacts.scratch_dir()) as out, artifacts.store().reader(version.artifact_key) as model:
            outcome = compile_model(
                str(model), rows, os.path.join(out, "library"), trusted_modules=registry.trusted_modules(),
                max_decompressed_bytes=4 * int(config["MAX_MODEL_MB"]) * 2**20,
                memory_mb=int(config.get("HOST_MEMORY_MB", 2048)) * 2, file_mb=1024,
                timeout=float(config.get("COMPILE_TIMEOUT_SECONDS", 900)))
            result = outcome.result
            record: dict[str, Any] = {
                "state": "ready" if outcome.ok else "failed", "reason": outcome.reason, "job_id": job_id,
                "at": jobs.iso_time(utcnow()), "rows": source,
                "compiled": {k: v for k, v in (result.get("compiled") or {}).items() if k != "library"} or None,
                "parity": result.get("parity"), "timings": result.get("timings"), "faster": result.get("faster")}
            if outcome.ok:
                key = new_key("runtimes", "")
                key = f"{key}/{record['compiled']['sha256']}.so"
                artifacts.store().put_file(key, outcome.library)
                record.update(library_key=key, sha256=record["compiled"]["sha256"])
        cancelled = db.session.scalar(select(Job.cancel_requested).where(Job.id == job_id))  # read afresh
        if cancelled is None or cancelled:
            if record.get("library_key"):
                artifacts.store().delete(record["library_key"])
            raise Cancelled()
        old = (version.runtime or {}).get("library_key")
        version.runtime = record  # committed with the job's end (jobs.finish)
        return {"state": record["state"], "reason": record["reason"], "rows": source, "replaced": old}

    jobs.run_single(job_id, owner, compute, cancelled=Cancelled, expected=())


def compile_now(version: ModelVersion) -> dict[str, Any]:
    """Compile ``version`` in this process (``manage.py compile``): its compile job, claimed and
    run here; the job's message, when a worker takes it, finds the job done. Returns the record."""
    if final_class(version.info or {}) not in TREE_CLASSES:
        request(version)
        return dict(version.runtime or {})
    job = _unfinished_job(version)
    if job is None:  # recorded, not sent: this process runs it (no broker needed)
        job = Job(kind=KIND, params=_params(version, "by hand"), model_version_id=version.id,
                  project_id=version.model.project_id)
        db.session.add(job)
        db.session.commit()
    owner = jobs.new_owner()
    if not jobs.claim(job.id, owner):
        raise ServiceError("conflict", "compile_running",
                           f"{version.ref} is being compiled by a worker already (job {job.id}); wait for it.")
    run(job.id, owner)
    db.session.expire_all()
    job = db.session.get(Job, job.id)
    if job.state == "error":
        return {"state": "failed", "reason": job.error}
    return dict(db.session.get(ModelVersion, version.id).runtime or {})


def ended(job_id: str, state: str) -> None:
    """End hook: a compile job that failed or was cancelled leaves the version's record saying so
    (when it is still the newest); the library a finished one replaced is deleted."""
    job = db.session.get(Job, job_id)
    if job is None or job.model_version is None:
        return
    version = job.model_version
    runtime = dict(version.runtime or {})
    if state == "done":
        old = (job.result or {}).get("replaced")
        if old and old not in artifacts.library_keys():
            artifacts.store().delete(old)
        if (runtime.get("rows") or {}).get("source") == "schema" and not _asked_after_scoring(version) \
                and _first_scoring_job(version) is not None:
            request(version, why=SCORED)  # it ended while this one compiled (once: its rows may be unreadable)
        return
    if runtime.get("job_id") == job_id and runtime.get("state") in (None, "queued"):
        what = "was cancelled" if state != "error" else f"did not finish (job {job_id[:8]} says why)"
        runtime.update(state="failed", reason=f"Compiling {what}; {_own(version)} serves the model.")
        version.runtime = runtime
        db.session.commit()


# --- using it ------------------------------------------------------------------------------------

def for_host(version: ModelVersion) -> dict[str, Any] | None:
    """What a model host needs to answer with the compiled runtime, or None (scikit-learn)."""
    runtime = version.runtime or {}
    if version.model.serve_with == "scikit-learn" or runtime.get("state") != "ready" or not runtime.get("library_key"):
        return None
    if stale(version):
        return None
    faster = {int(k): bool(v) for k, v in (runtime.get("faster") or {}).items()}
    if not any(faster.values()):
        return None  # faster at no batch size: not worth a host's memory
    return {"library_key": runtime["library_key"], "sha256": runtime["sha256"], "compiled": runtime["compiled"],
            "parity": runtime["parity"], "faster": {str(k): v for k, v in faster.items()}}


def use_in_process(predictor, runtime: dict[str, Any]) -> None:
    """With model hosts off: load the library into this process (a copy in the scratch folder,
    which stays while the process lives) and let ``predictor`` answer with it."""
    folder = tempfile.mkdtemp(dir=artifacts.scratch_dir(), prefix="runtime-")
    path = os.path.join(folder, "compiled.so")
    with artifacts.store().reader(runtime["library_key"]) as stored:
        shutil.copyfile(stored, path)
    predictor.use_compiled(runtime, path)


def summary(version: ModelVersion) -> dict[str, Any]:
    """The model card's and the API's account of the version's runtime."""
    runtime = dict(version.runtime or {})
    job = _unfinished_job(version) if version.id else None
    state = runtime.get("state") or ("queued" if job is not None else None)
    used = for_host(version) is not None
    timings = runtime.get("timings") or {}
    sizes = []
    for size in SPEED_SIZES:
        t = timings.get(str(size)) or {}
        faster = bool((runtime.get("faster") or {}).get(str(size)))
        sizes.append({"rows": size, "runtime": "compiled" if used and faster else "scikit-learn",
                      "speedup": t.get("speedup")})
    own = _own(version)
    why = None  # a whole sentence, shown alone on the card
    if version.model.serve_with == "scikit-learn":
        why = f"{own} answers every prediction: the model's switch says so."
    elif state == "ready" and stale(version):
        why = (f"{own} answers until the compiled model is checked again: scikit-learn, Treelite or "
               "TL2cgen changed since it was compiled.")
    elif state == "ready" and not used:
        why = f"{own} answers: the compiled model was faster at no batch size."
    elif state in ("failed", "none"):
        why = runtime.get("reason")
    elif state is None:
        why = f"{own} answers: the model was not compiled" + (
            "." if enabled() else " (compiling is off on this server).")
    return {"state": state, "used": used, "serve_with": version.model.serve_with, "why_not": why, "own": own,
            "compiling": job.id if job is not None else None, "sizes": sizes,
            "parity": runtime.get("parity"), "rows": runtime.get("rows"), "direct_rows": DIRECT_ROWS,
            "library": (runtime.get("compiled") or {}).get("estimator_class") and {
                "estimator_class": runtime["compiled"]["estimator_class"],
                "input_dtype": runtime["compiled"].get("input_dtype"), "sha256": runtime.get("sha256"),
                "versions": runtime["compiled"].get("versions")},
            "checked_at": runtime.get("at")}
