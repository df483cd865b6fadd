"""The prediction log: every row a route served, kept as Parquet files in the artifact store.

On the request path recording costs a few microseconds: the route's ``Call`` (its request id
and arrival time) and references to what was already computed (the validated inputs, the
outputs) go into this process's buffer. A background thread writes the buffer every
``PREDICTION_LOG_FLUSH_SECONDS``: one file per model version and UTC hour under a new key
(``core.predlog`` builds the records), then one database row per file. The store's protocol
holds: readers find files only through those rows; compaction and deletion write new files and
swap the rows in one transaction.

What can be lost: a process killed with SIGKILL loses what it buffered since its last flush
(at most ``PREDICTION_LOG_FLUSH_SECONDS`` of its requests, plus a flush under way); SIGTERM and
a normal exit flush first (``atexit``). A store or database that fails, or a buffer over
``PREDICTION_LOG_BUFFER_ROWS``, drops records: they are counted per model version
(``PredictionLogDrop``) and the predictions are answered as always.
"""

from __future__ import annotations

import atexit
import hmac
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..core import predlog
from ..core.payload import PayloadError
from ..core.predictor import FrameRows
from ..core.predlog import Entry, Policy
from ..infra.artifacts import new_key
from ..infra.extensions import db
from ..infra.records import ClientRequestId, PredictionLogDrop, PredictionLogFile, RegisteredModel, utcnow
from .artifacts import store
from .errors import ServiceError

log = logging.getLogger(__name__)

PREFIX = "predlog"
DEFAULTS: dict[str, Any] = {"enabled": True, "sample": 1.0, "exclude": [], "hash": [], "retention_days": 30}
MAX_RETENTION_DAYS = 3650
HEADER = "X-Request-ID"


# --- settings ---------------------------------------------------------------------------------

def settings_of(model: RegisteredModel) -> dict[str, Any]:
    return {**DEFAULTS, **(model.log_settings or {})}


def update_settings(model: RegisteredModel, changes: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """Change a model's log settings (``columns``: its latest version's input columns, which
    ``exclude`` and ``hash`` must name)."""
    settings = settings_of(model)
    unknown = set(changes) - set(DEFAULTS)
    if unknown:
        raise ServiceError("invalid", "bad_request", f"Unknown log setting {sorted(unknown)[0]!r}; the settings are "
                           + ", ".join(DEFAULTS) + ".")
    if "enabled" in changes:
        if not isinstance(changes["enabled"], bool):
            raise ServiceError("invalid", "bad_request", "enabled must be true or false.")
        settings["enabled"] = changes["enabled"]
    if "sample" in changes:
        sample = changes["sample"]
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 <= sample <= 1:
            raise ServiceError("invalid", "bad_request", "sample must be a number from 0 to 1 (the share of rows "
                               "whose inputs are logged; 1 logs every row's inputs).")
        settings["sample"] = float(sample)
    if "retention_days" in changes:
        days = changes["retention_days"]
        if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_RETENTION_DAYS:
            raise ServiceError("invalid", "bad_request",
                               f"retention_days must be a whole number of days from 1 to {MAX_RETENTION_DAYS}.")
        settings["retention_days"] = days
    for name in ("exclude", "hash"):
        if name in changes:
            value = changes[name]
            if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
                raise ServiceError("invalid", "bad_request", f"{name} must be a list of column names.")
            missing = [c for c in value if c not in columns]
            if missing:
                raise ServiceError("invalid", "bad_request", f"{name}: the model has no column "
                                   f"{missing[0][:100]!r}; its columns are {', '.join(columns[:50]) or 'unnamed'}.")
            settings[name] = sorted(set(value))
    both = set(settings["exclude"]) & set(settings["hash"])
    if both:
        raise ServiceError("invalid", "bad_request", f"Column {sorted(both)[0]!r} is both excluded and hashed; "
                           "choose one (excluded columns are not logged at all).")
    model.log_settings = {k: v for k, v in settings.items() if v != DEFAULTS[k]} or None
    db.session.commit()
    return settings


def hash_key() -> bytes:
    """The deployment's key for hashed columns: PREDICTION_LOG_KEY, else derived from SECRET_KEY."""
    given = current_app.config.get("PREDICTION_LOG_KEY")
    if given:
        return given.encode()
    return hmac.new(str(current_app.config["SECRET_KEY"]).encode(), b"prediction-log", "sha256").digest()


@dataclass(frozen=True)
class Target:
    """Where a served version's records go and how they are written (``serving.Served.log``)."""

    project_id: int
    model_id: int
    version_id: int
    version: int
    policy: Policy
    info: dict[str, Any] = field(default_factory=dict, compare=False)  # the version's description

    @classmethod
    def of(cls, version) -> "Target | None":
        settings = settings_of(version.model)
        if not settings["enabled"] or not current_app.config.get("PREDICTION_LOG", True):
            return None
        policy = Policy(sample=settings["sample"], exclude=frozenset(settings["exclude"]),
                        hashed=frozenset(settings["hash"]), key=hash_key() if settings["hash"] else b"")
        return cls(version.model.project_id, version.model.id, version.id, version.version, policy, version.info)


# --- the request path ---------------------------------------------------------------------------

@dataclass(slots=True)
class Call:
    """One prediction request as the log sees it: which route, its id, when it arrived."""

    route: str
    request_id: str
    from_client: bool
    at: float
    started: float


def begin(route: str, header: str | None) -> Call:
    """The request's id: the client's ``X-Request-ID`` (checked), or a new time-ordered one."""
    now, started = time.time(), time.perf_counter()
    if header is not None:
        header = header.strip()
        problem = predlog.client_id_problem(header)
        if problem:
            raise PayloadError(problem, "BAD_REQUEST_ID", 400)
        return Call(route, header, True, now, started)
    return Call(route, predlog.new_request_id(now), False, now, started)


def record(target: Target | None, call: Call, info: dict[str, Any], X: Any, columns: dict[str, Any] | None,
           prediction: Any, proba: np.ndarray | None) -> None:
    """Log a request the model answered. A client's id used before for this model is refused
    (409) and not logged; a database that cannot say leaves the id unchecked (the prediction is
    never refused for the log's sake)."""
    if target is None:
        return
    if call.from_client:
        _claim(target, call)
    names = None
    if columns:  # the validated columns of a frame (InputSchema.prepare)
        inputs = columns
    elif isinstance(X, np.ndarray):
        inputs, names = X, info.get("feature_names")
    elif isinstance(X, FrameRows):
        inputs = X.data
    else:  # a DataFrame
        inputs = {str(c): X[c].to_numpy() for c in X.columns}
    entry = Entry(call.request_id, call.at, (time.perf_counter() - call.started) * 1000, call.route,
                  len(prediction), inputs, names, prediction, proba)
    _buffer.add(target, info, entry, current_app._get_current_object())


def record_error(target: Target | None, call: Call, code: str) -> None:
    """Log a request that failed after its model was found (bad input, a quarantined model, a
    host that failed): one record with the error code, for the monitoring pages' error rate."""
    if target is None:
        return
    entry = Entry(call.request_id, call.at, (time.perf_counter() - call.started) * 1000, call.route, 1, None, None,
                  None, None, error=str(code)[:64])
    _buffer.add(target, target.info, entry, current_app._get_current_object())


def _claim(target: Target, call: Call) -> None:
    try:
        db.session.add(ClientRequestId(model_id=target.model_id, request_id=call.request_id,
                                       model_version_id=target.version_id, at=utcnow()))
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise ServiceError("conflict", "request_id_reused",
                           f"Request id {call.request_id!r} was used before for this model (ids are kept as long as "
                           "the prediction log is); send a new X-Request-ID, or none and one is generated.") from None
    except SQLAlchemyError:
        db.session.rollback()
        log.warning("could not check request id %r: database unavailable", call.request_id)


# --- the buffer and its writer ------------------------------------------------------------------

class _Buffer:
    """This process's records not yet written, and the thread that writes them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: deque[tuple[Target, dict[str, Any], Entry]] = deque()
        self.rows = 0
        self.pid = 0
        self.app = None
        self.limit = 0
        self.stop = threading.Event()
        self.drops: dict[tuple[int, int], list[Any]] = {}  # (model id, version id) -> [count, reason]
        self.flushing = threading.Lock()

    def add(self, target: Target, info: dict[str, Any], entry: Entry, app) -> None:
        with self.lock:
            if self.pid != os.getpid():
                self._start(app)
            if app is not self.app:
                self.app, self.limit = app, int(app.config.get("PREDICTION_LOG_BUFFER_ROWS", 200_000))
            if self.rows + entry.n_rows > self.limit:
                self._dropped(target, entry.n_rows, "the log's buffer was full (the store is slower than the traffic)")
                return
            self.entries.append((target, info, entry))
            self.rows += entry.n_rows

    def _start(self, app) -> None:
        """The writer thread of this process (a forked child starts its own)."""
        self.pid, self.app = os.getpid(), app
        self.limit = int(app.config.get("PREDICTION_LOG_BUFFER_ROWS", 200_000))
        self.entries.clear()
        self.rows = 0
        self.stop = threading.Event()
        self.flushing = threading.Lock()
        interval = float(app.config.get("PREDICTION_LOG_FLUSH_SECONDS", 1.0))
        threading.Thread(target=self._loop, args=(interval, self.stop), daemon=True, name="prediction-log").start()
        atexit.register(self.close)

    def _loop(self, interval: float, stop: threading.Event) -> None:
        while not stop.wait(interval):
            try:
                self.flush()
            except Exception:  # noqa: BLE001  (never let the writer die: the next round tries again)
                log.warning("prediction log flush failed", exc_info=True)

    def close(self) -> None:
        """Write what is buffered (SIGTERM and normal exits)."""
        if self.pid != os.getpid():
            return
        self.stop.set()
        try:
            self.flush()
        except Exception:  # noqa: BLE001
            log.warning("prediction log: final flush failed", exc_info=True)

    def _dropped(self, target: Target, rows: int, reason: str) -> None:
        count = self.drops.setdefault((target.model_id, target.version_id), [0, reason])
        count[0] += rows
        count[1] = reason

    def take(self) -> list[tuple[Target, dict[str, Any], Entry]]:
        with self.lock:
            taken = list(self.entries)
            self.entries.clear()
            self.rows = 0
        return taken

    def flush(self) -> int:
        """Write everything buffered; returns the rows written."""
        with self.flushing:
            app = self.app  # read under the lock: ``discard`` may have let it go
            if app is None:
                return 0
            with app.app_context():
                return self._write_all()

    def _write_all(self) -> int:
        """Write what is buffered, in the app's context; drops are counted, never raised."""
        taken = self.take()
        written = 0
        # One file per version, hour and settings: records taken under other settings (a column just
        # excluded) are never written with the older ones'.
        # Grouped first by the Target object and the hour's number (no hashing of settings, no
        # datetime per record: a second's records cost one dict step each), then equal Targets joined.
        by_object: dict[tuple[int, int], list[tuple[Target, dict[str, Any], Entry]]] = {}
        for item in taken:
            by_object.setdefault((id(item[0]), int(item[2].at // 3600)), []).append(item)
        groups: dict[tuple[Target, int], list[tuple[Target, dict[str, Any], Entry]]] = {}
        for (_object, hour), items in by_object.items():
            groups.setdefault((items[0][0], hour), []).extend(items)
        for (_target, hour_number), items in groups.items():
            target, info = items[0][0], items[0][1]
            hour = predlog.hour_of(hour_number * 3600.0)
            entries = [e for _, _, e in items]
            try:
                written += _write(target, info, hour, entries)
            except Exception as exc:  # noqa: BLE001  (a full or unreachable store, a database away)
                db.session.rollback()
                with self.lock:
                    self._dropped(target, sum(e.n_rows for e in entries), _reason(exc))
                log.warning("prediction log: %d records of model version %d dropped: %s",
                            sum(e.n_rows for e in entries), target.version_id, exc)
        self._record_drops()
        db.session.remove()
        return written

    def _record_drops(self) -> None:
        with self.lock:
            drops, self.drops = self.drops, {}
        if not drops:
            return
        try:
            for (model_id, version_id), (count, reason) in drops.items():
                moved = db.session.execute(update(PredictionLogDrop).where(
                    PredictionLogDrop.model_version_id == version_id).values(
                    dropped=PredictionLogDrop.dropped + count, reason=reason, last_at=utcnow()))
                if moved.rowcount == 0:
                    db.session.add(PredictionLogDrop(model_version_id=version_id, model_id=model_id, dropped=count,
                                                     reason=reason, last_at=utcnow()))
            db.session.commit()
        except SQLAlchemyError:  # the database is away: keep counting here until it is back
            db.session.rollback()
            with self.lock:
                for key, (count, reason) in drops.items():
                    kept = self.drops.setdefault(key, [0, reason])
                    kept[0] += count


def _reason(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.errno == 28:
        return "the artifact store is full"
    if isinstance(exc, SQLAlchemyError):
        return "the database was unavailable"
    return f"the artifact store failed ({type(exc).__name__})"


_buffer = _Buffer()


def flush() -> int:
    """Write this process's buffered records now (tests, shutdown); the rows written."""
    return _buffer.flush()


def discard() -> None:
    """Forget what this process buffered, unwritten, and the app it was for (tests: their tables
    are emptied and their app's connections closed under it). A write under way finishes first."""
    with _buffer.flushing:
        _buffer.take()
        _buffer.drops.clear()
        _buffer.app = None


def write_entries(version, entries: list[Entry]) -> int:
    """Write records made elsewhere (a backfill from another server's log, a benchmark's
    generator) exactly as the web processes write theirs: per UTC hour, under the version's
    current settings. Returns the rows written."""
    target = Target.of(version) or Target(version.model.project_id, version.model.id, version.id, version.version,
                                          Policy(), version.info)
    hours: dict[Any, list[Entry]] = {}
    for entry in entries:
        hours.setdefault(predlog.hour_of(entry.at), []).append(entry)
    return sum(_write(target, version.info, hour, group) for hour, group in sorted(hours.items()))


def _write(target: Target, info: dict[str, Any], hour, entries: list[Entry]) -> int:
    table = predlog.build_table(entries, predlog.features_of(info), target.policy,
                                classifier=info.get("classes") is not None)
    key = new_key(f"{PREFIX}/{target.project_id}/{target.model_id}/{target.version_id}/{hour:%Y%m%dT%H}",
                  ".parquet")
    artifacts = store()
    with artifacts.writer(key) as path:
        pq.write_table(table, path, compression="lz4")  # cheap on the web process; compaction uses zstd
        size = path.stat().st_size
    at = table.column("at")
    try:
        db.session.add(PredictionLogFile(
            project_id=target.project_id, model_id=target.model_id, model_version_id=target.version_id,
            version=target.version, hour=hour, key=key, rows=table.num_rows, size_bytes=size,
            first_at=naive(pc.min(at)), last_at=naive(pc.max(at))))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        artifacts.delete(key)
        raise
    return table.num_rows


def naive(scalar):
    """An Arrow timestamp scalar as the records' naive UTC datetime."""
    return scalar.as_py().replace(tzinfo=None)


def dropped(model_id: int) -> int:
    return int(db.session.scalar(select(func.coalesce(func.sum(PredictionLogDrop.dropped), 0))
                                 .where(PredictionLogDrop.model_id == model_id)) or 0)


def summary(model: RegisteredModel) -> dict[str, Any]:
    """What the model card and the API show: the settings, what the log holds, what it dropped."""
    totals = db.session.execute(select(func.count(PredictionLogFile.id), func.coalesce(func.sum(PredictionLogFile.rows), 0),
                                       func.coalesce(func.sum(PredictionLogFile.size_bytes), 0),
                                       func.min(PredictionLogFile.first_at), func.max(PredictionLogFile.last_at))
                                .where(PredictionLogFile.model_id == model.id)).one()
    return {**settings_of(model), "files": totals[0], "records": int(totals[1]), "size_bytes": int(totals[2]),
            "first_at": totals[3], "last_at": totals[4], "dropped": dropped(model.id),
            "logging": bool(current_app.config.get("PREDICTION_LOG", True))}
