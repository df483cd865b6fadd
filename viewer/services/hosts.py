"""Model versions served from sandboxed host processes (``viewer.infra.host``).

Every prediction (the predict routes, the prediction page, scoring chunks) goes through a
``HostedPredictor``: the app checks the input against the stored schema and a host runs the model.
``MODEL_HOSTS=false`` turns hosts off (the model then runs in this process, as a notebook runs
it): for benchmarks, and for machines where a host cannot start. A host failure becomes a
``ServiceError`` that names the model: 503 (crashed), 504 (deadline), 502 (malformed answer).
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
from collections import Counter
from datetime import timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, select
from sqlalchemy.exc import SQLAlchemyError

from ..infra.extensions import db
from ..infra.host import guards
from ..infra.host.pool import HostError, HostedPredictor, HostPool, LoadRefused, ModelFailed
from ..infra.records import HostFailure, ModelVersion, RegisteredModel, utcnow
from ..infra.scope import only_mine
from . import registry, runtimes
from .artifacts import store
from .errors import ServiceError

log = logging.getLogger(__name__)

_pool: HostPool | None = None
_pool_lock = threading.Lock()
ERROR_KIND = {"crashed": "unavailable", "unavailable": "unavailable", "timeout": "timeout", "malformed": "bad_gateway"}


def enabled() -> bool:
    return bool(current_app.config.get("MODEL_HOSTS", True))


def pool() -> HostPool:
    global _pool
    with _pool_lock:
        if _pool is None:
            config = current_app.config
            _pool = HostPool(size=int(config.get("HOSTS", 8)), memory_mb=int(config.get("HOST_MEMORY_MB", 2048)),
                             file_mb=int(config["MAX_MODEL_MB"]) + 64, imports=_trusted())
            atexit.register(_pool.close)
        return _pool


def _forget_after_fork() -> None:
    """A forked child (a gunicorn or Celery worker) starts its own server and hosts when it
    needs them; it closes its copies of the parent's sockets and leaves the parent's hosts alone."""
    global _pool, _pool_lock
    if _pool is not None:
        _pool.abandon()
    _pool, _pool_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


def _trusted() -> tuple[str, ...]:
    raw = current_app.config.get("TRUSTED_MODULES") or ""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _pinned() -> set[str]:
    raw = current_app.config.get("PINNED_MODELS") or ""
    return {part.strip() for part in raw.split(",") if part.strip()}


def _load_request(info: dict[str, Any] | None) -> dict[str, Any]:
    return {"trusted_modules": list(_trusted()), "info": info,
            "max_decompressed_bytes": 4 * int(current_app.config["MAX_MODEL_MB"]) * 2**20}


def predictor(version, *, runtime: dict[str, Any] | None = None, timeout: float | None = None) -> HostedPredictor:
    """The hosted predictor of a model version (a host is started now if none serves it), with
    ``runtime`` (``runtimes.for_host``: the caller decides, so its cache key says which)."""
    the_pool, artifacts = pool(), store()
    key, label, info = host_key(version.model.project_id, version.sha256, runtime), version.ref, dict(version.info or {})
    load = {**_load_request(info), "runtime": runtime}
    timeout = float(timeout or current_app.config.get("HOST_TIMEOUT_SECONDS", 30))

    sha256, stored_at = version.sha256, [version.artifact_key]

    def open_library() -> int | None:
        try:
            with artifacts.reader(runtime["library_key"]) as path:
                return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            log.warning("the compiled library of %s is missing from the artifact store; scikit-learn serves it", label)
            return None

    def open_model() -> int | tuple[int, int]:
        for attempt in range(2):
            try:
                with artifacts.reader(stored_at[0]) as path:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                library = open_library() if runtime is not None else None
                return fd if library is None else (fd, library)
            except FileNotFoundError:
                # Deleted and uploaded again (same bytes, a new key) since this predictor was made?
                now = db.session.scalar(select(ModelVersion.artifact_key).where(ModelVersion.sha256 == sha256)
                                        .limit(1))
                if attempt or now is None or now == stored_at[0]:
                    break
                stored_at[0] = now
        raise ServiceError("gone", "model_file_missing", f"The file of {label} is missing from the artifact store.")

    def starter():
        try:
            host = the_pool.start(label, open_model, load, timeout=timeout)
        except LoadRefused as exc:
            raise ServiceError("conflict", "model_not_loadable",
                               f"{label} can no longer be loaded: {exc}") from None
        used = (host.reply.get("runtime") or {})
        if runtime is not None and not used.get("used"):
            log.warning("%s: %s", label, used.get("reason") or "its compiled library was not used")
        return host

    if version.model.name in _pinned():
        the_pool.pinned.add(key)
    host = guarded(lambda: the_pool.get(key, starter), label)
    return HostedPredictor(the_pool, key, label, info, host.reply, starter, timeout)


def host_key(project_id: int, sha256: str, runtime: dict[str, Any] | None = None) -> str:
    """Hosts are per project and model file (two projects never share one), and per compiled
    runtime record (its library's key: a recheck with the same bytes brings new parity figures),
    so a host started before the model was compiled, or with an older check, is not reused (the
    pool's least-recently-used rule stops it)."""
    if not runtime:
        return f"{project_id}/{sha256}"
    return f"{project_id}/{sha256}+{hashlib.sha256(runtime['library_key'].encode()).hexdigest()[:16]}"


def guarded(call, label: str | None = None, version_key: tuple[int, str] | None = None):
    """Run ``call``; a host failure is recorded (``version_key``: project id and the model file's
    digest) and becomes the ServiceError the adapters answer with."""
    try:
        return call()
    except ModelFailed as exc:
        raise ServiceError("unprocessable", "model_error", exc.message, model=exc.label or label) from None
    except HostError as exc:
        if version_key is not None:
            record_failure(*version_key, exc)
        raise ServiceError(ERROR_KIND[exc.kind], f"model_host_{exc.kind}", exc.message,
                           model=exc.label or label) from None


KIND_TEXT = {"crashed": "crashed", "timeout": "missed its deadline", "malformed": "answered nonsense",
             "unavailable": "could not start"}


def record_failure(project_id: int, sha256: str, exc: HostError) -> None:
    """Record a host failure; after ``QUARANTINE_FAILURES`` within ``QUARANTINE_MINUTES`` every
    version with this file is quarantined (predictions answer 409 until an admin releases it)."""
    if exc.kind == "unavailable":  # the server could not start a host: not the model's doing
        return
    config = current_app.config
    limit, minutes = int(config.get("QUARANTINE_FAILURES", 3)), float(config.get("QUARANTINE_MINUTES", 10))
    try:
        db.session.rollback()  # the failure is recorded on its own, whatever the caller had pending
        db.session.add(HostFailure(project_id=project_id, sha256=sha256, model_ref=exc.label[:255], kind=exc.kind))
        db.session.commit()
        since = utcnow() - timedelta(minutes=minutes)
        recent = db.session.scalars(select(HostFailure.kind).where(
            HostFailure.project_id == project_id, HostFailure.sha256 == sha256, HostFailure.at >= since)).all()
        if limit > 0 and len(recent) >= limit:
            counts = Counter(recent)
            what = ", ".join(f"{KIND_TEXT.get(kind, kind)} {n} time{'s' if n > 1 else ''}"
                             for kind, n in counts.most_common())
            reason = (f"its model host failed {len(recent)} times in {minutes:g} minutes ({what}; the last: "
                      f"{exc.message})")
            versions = db.session.scalars(
                select(ModelVersion).join(ModelVersion.model).where(
                    RegisteredModel.project_id == project_id, ModelVersion.sha256 == sha256,
                    ModelVersion.quarantined_at.is_(None))).all()
            for version in versions:
                version.quarantined_at, version.quarantine_reason = utcnow(), reason
            db.session.commit()
            if versions:
                registry.changed()
                discard(host_key(project_id, sha256))
    except SQLAlchemyError:  # the database is down: the request still gets its answer
        db.session.rollback()
        log.warning("could not record the failure of %s's host", exc.label, exc_info=True)


def quarantined() -> list[ModelVersion]:
    """The current project's quarantined versions, newest first (the admins' list)."""
    return list(db.session.scalars(only_mine(
        select(ModelVersion).join(ModelVersion.model).where(ModelVersion.quarantined_at.is_not(None)),
        RegisteredModel.project_id).order_by(ModelVersion.quarantined_at.desc())))


def release(version: ModelVersion) -> None:
    """Serve a quarantined version again: every version of its project with its file, and their
    failures forgotten."""
    project_id = version.model.project_id
    for same in db.session.scalars(select(ModelVersion).join(ModelVersion.model).where(
            RegisteredModel.project_id == project_id, ModelVersion.sha256 == version.sha256)):
        same.quarantined_at = same.quarantine_reason = None
    db.session.execute(delete(HostFailure).where(HostFailure.project_id == project_id,
                                                 HostFailure.sha256 == version.sha256))
    db.session.commit()
    registry.changed()


def inspect(path: str, label: str):
    """Load an uploaded file in a new host: returns the host, whose ``reply`` holds what the
    loader and introspection found (format, saved version, warnings, description). A refusal,
    or a file that crashes or freezes the host while loading, is a ServiceError (422)."""
    the_pool = pool()
    timeout = max(float(current_app.config.get("HOST_TIMEOUT_SECONDS", 30)), 120.0)
    try:
        return the_pool.start(label, lambda: os.open(path, os.O_RDONLY | os.O_CLOEXEC), _load_request(None),
                              timeout=timeout)
    except LoadRefused as exc:
        if exc.meta.get("kind") == "unsafe":
            raise ServiceError("unprocessable", "model_unsafe", str(exc),
                               offenders=[str(o) for o in exc.meta.get("offenders") or []]) from None
        raise ServiceError("unprocessable", "model_unreadable", str(exc)) from None
    except HostError as exc:
        what = {"timeout": f"took longer than {timeout:g} s to load", "malformed": "made its loader answer nonsense"}
        raise ServiceError("unprocessable", "model_unreadable",
                           f"The file {what.get(exc.kind, 'crashed the process that loaded it')}; it was refused "
                           "(no model was stored).") from None


def adopt(version, host) -> None:
    """Keep an upload's host as the version's host, so the first prediction needs no start
    (unless a host serves the same file already, with its compiled runtime, say)."""
    host.label = version.ref
    base = host_key(version.model.project_id, version.sha256)
    if any(k.split("+")[0] == base for k in pool().hosts()) or pool().get(base, lambda: host) is not host:
        host.close()


def discard(key: str) -> None:
    """Stop this process's host of a model (``host_key``; or every project's, given a digest)."""
    if _pool is not None:
        for found in [k for k in _pool.hosts() if k.split("+")[0] == key or k.split("+")[0].endswith("/" + key)]:
            _pool.discard(found)


def sandbox_notice() -> str | None:
    """A sentence for every page when model code runs with fewer guards than it should."""
    if not enabled():
        return ("Sandbox off: model code runs inside the web and worker processes "
                "(VIEWER_MODEL_HOSTS=false). Upload only models you trust.")
    report = _pool.last_guards if _pool is not None else {}
    gaps = guards.missing(report) if report else _expected()
    if not gaps:
        return None
    return (f"Sandbox degraded: model hosts run without these guards: {', '.join(gaps)}. "
            "The README's guards table says what each one needs (most need the app to run as root on Linux).")


_expected_gaps: list[str] | None = None


def _expected() -> list[str]:
    global _expected_gaps
    if _expected_gaps is None:
        _expected_gaps = guards.expected()
    return _expected_gaps


def status() -> dict[str, Any]:
    """What this process's hosts are: for the admin page and /api/v1/system."""
    if _pool is None:
        return {"enabled": enabled(), "hosts": [], "started": 0}
    return {"enabled": enabled(), "started": _pool.started,
            "hosts": [{"model": h.label, "pid": h.pid, "guards": h.guards,
                       "runtime": "compiled" if (h.reply or {}).get("runtime", {}).get("used") else "scikit-learn"}
                      for h in _pool.hosts().values()]}
