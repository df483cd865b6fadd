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
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from flask import current_app
from sqlalchemy import delete, func, select, update
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
COMPACT_BELOW_ROWS = 100_000   # files smaller than this are merged; a merged file stops growing at
COMPACT_TARGET_ROWS = 1_000_000  # about this many rows
COMPACT_AFTER_SECONDS = 60.0   # files younger than this are left to their writers' flushes
PURGE_EVERY_SECONDS = 3600.0
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

    @classmethod
    def of(cls, version) -> "Target | None":
        settings = settings_of(version.model)
        if not settings["enabled"] or not current_app.config.get("PREDICTION_LOG", True):
            return None
        policy = Policy(sample=settings["sample"], exclude=frozenset(settings["exclude"]),
                        hashed=frozenset(settings["hash"]), key=hash_key() if settings["hash"] else b"")
        return cls(version.model.project_id, version.model.id, version.id, version.version, policy)


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
        app = self.app
        if app is None:
            return 0
        with self.flushing, app.app_context():
            taken = self.take()
            written = 0
            groups: dict[tuple[int, Any], list[tuple[Target, dict[str, Any], Entry]]] = {}
            for item in taken:
                groups.setdefault((item[0].version_id, predlog.hour_of(item[2].at)), []).append(item)
            for (_version_id, hour), items in groups.items():
                target, info = items[0][0], items[0][1]
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
    """Forget what this process buffered, unwritten (a test's tables are emptied under it)."""
    with _buffer.flushing:
        _buffer.take()
        _buffer.drops.clear()


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
            first_at=_naive(pc.min(at)), last_at=_naive(pc.max(at))))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        artifacts.delete(key)
        raise
    return table.num_rows


def _naive(scalar):
    return scalar.as_py().replace(tzinfo=None)


# --- reading -------------------------------------------------------------------------------------

def files(model_id: int, start=None, end=None, version_id: int | None = None) -> list[PredictionLogFile]:
    statement = select(PredictionLogFile).where(PredictionLogFile.model_id == model_id)
    if version_id is not None:
        statement = statement.where(PredictionLogFile.model_version_id == version_id)
    if start is not None:
        statement = statement.where(PredictionLogFile.last_at >= start)
    if end is not None:
        statement = statement.where(PredictionLogFile.first_at < end)
    return list(db.session.scalars(statement.order_by(PredictionLogFile.hour, PredictionLogFile.id)))


def read(model_id: int, start=None, end=None, *, version_id: int | None = None, inputs: bool = True,
         max_rows: int | None = None) -> pa.Table:
    """The records of a model (one version) from ``start`` to before ``end`` (naive UTC), oldest
    first; without ``inputs`` the inputs column is left out. Refuses more than ``max_rows``."""
    found = files(model_id, start, end, version_id)
    if max_rows is not None and sum(f.rows for f in found) > max_rows * 4:
        raise ServiceError("too_large", "log_window_too_large", f"The window holds more than {max_rows:,} records; "
                           "ask for a shorter one (start and end).")
    artifacts = store()
    parts = []
    for f in found:
        try:
            with artifacts.reader(f.key) as path:
                table = pq.read_table(path)
        except FileNotFoundError:  # compacted meanwhile: its records are in the new file
            return read(model_id, start, end, version_id=version_id, inputs=inputs, max_rows=max_rows)
        table = table.append_column("version", pa.array(np.full(table.num_rows, f.version, dtype=np.int32)))
        if start is not None or end is not None:
            at = table.column("at")
            keep = pa.array(np.ones(table.num_rows, dtype=bool))
            if start is not None:
                keep = pc.and_(keep, pc.greater_equal(at, pa.scalar(_aware(start), at.type)))
            if end is not None:
                keep = pc.and_(keep, pc.less(at, pa.scalar(_aware(end), at.type)))
            table = table.filter(keep)
        if not inputs:
            table = table.drop_columns(["inputs"])
        parts.append(table)
    if not parts:
        return pa.table({})
    merged = pa.concat_tables(parts, promote_options="permissive")
    if max_rows is not None and merged.num_rows > max_rows:
        raise ServiceError("too_large", "log_window_too_large", f"The window holds {merged.num_rows:,} records, "
                           f"more than the {max_rows:,} an export may; ask for a shorter one (start and end).")
    return merged.sort_by([("at", "ascending"), ("request_id", "ascending"), ("row", "ascending")])


def _aware(value):
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


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


# --- keeping the log: compaction, retention, deletion -------------------------------------------

def _swap(old: list[PredictionLogFile], new_table: pa.Table | None, template: PredictionLogFile) -> int:
    """Replace the files ``old`` (one version, one hour) with one file of ``new_table`` (None or
    empty: with nothing). One transaction; a concurrent swap of the same files wins or loses
    whole. Returns the rows the new file holds."""
    artifacts = store()
    key = None
    if new_table is not None and new_table.num_rows:
        key = new_key(f"{PREFIX}/{template.project_id}/{template.model_id}/{template.model_version_id}/"
                      f"{template.hour:%Y%m%dT%H}", ".parquet")
        with artifacts.writer(key) as path:
            pq.write_table(new_table, path, compression="zstd", row_group_size=COMPACT_BELOW_ROWS)
            size = path.stat().st_size
    ids, old_keys = [f.id for f in old], [f.key for f in old]
    try:
        gone = db.session.execute(delete(PredictionLogFile).where(PredictionLogFile.id.in_(ids))
                                  .execution_options(synchronize_session=False))
        if gone.rowcount != len(ids):  # another process swapped some of them first
            raise _Lost()
        for f in old:  # gone from the table: a new row may take its id (SQLite reuses the highest)
            if f in db.session:
                db.session.expunge(f)
        if key is not None:
            at = new_table.column("at")
            db.session.add(PredictionLogFile(
                project_id=template.project_id, model_id=template.model_id, model_version_id=template.model_version_id,
                version=template.version, hour=template.hour, key=key, rows=new_table.num_rows, size_bytes=size,
                first_at=_naive(pc.min(at)), last_at=_naive(pc.max(at)), compacted=True,
                aggregated=template.aggregated))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        if key is not None:
            artifacts.delete(key)
        raise
    for old_key in old_keys:
        artifacts.delete(old_key)  # a failure here leaves an unrecorded object: the sweep takes it
    return new_table.num_rows if key is not None else 0


class _Lost(Exception):
    pass


def compact(now=None) -> int:
    """Merge each version-hour's small files older than COMPACT_AFTER_SECONDS and summarised in
    the monitoring windows into one (files of one schema together: a changed setting starts
    another). Returns the files merged away."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=COMPACT_AFTER_SECONDS)
    small = list(db.session.scalars(select(PredictionLogFile).where(  # in the windows already (services.monitoring)
        PredictionLogFile.rows < COMPACT_BELOW_ROWS, PredictionLogFile.created_at < cutoff,
        PredictionLogFile.aggregated.is_(True))
        .order_by(PredictionLogFile.model_version_id, PredictionLogFile.hour, PredictionLogFile.id)))
    groups: dict[tuple[int, Any], list[PredictionLogFile]] = {}
    for f in small:
        groups.setdefault((f.model_version_id, f.hour), []).append(f)
    merged = 0
    artifacts = store()
    for files_ in groups.values():
        if len(files_) < 2:
            continue
        by_schema: dict[Any, list[tuple[PredictionLogFile, pa.Table]]] = {}
        for f in files_:
            try:
                with artifacts.reader(f.key) as path:
                    table = pq.read_table(path)
            except FileNotFoundError:
                continue
            by_schema.setdefault(table.schema, []).append((f, table))
        for parts in by_schema.values():
            batch, rows = [], 0
            for f, table in parts:
                if rows + table.num_rows > COMPACT_TARGET_ROWS and batch:
                    merged += _merge(batch)
                    batch, rows = [], 0
                batch.append((f, table))
                rows += table.num_rows
            merged += _merge(batch)
    db.session.remove()
    return merged


def _merge(batch: list[tuple[PredictionLogFile, pa.Table]]) -> int:
    if len(batch) < 2:
        return 0
    table = pa.concat_tables([t for _, t in batch]).sort_by([("at", "ascending")])
    try:
        _swap([f for f, _ in batch], table, batch[0][0])
    except _Lost:
        return 0
    return len(batch)


def purge(now=None) -> int:
    """Delete records older than each model's retention; returns the files deleted."""
    now = now or utcnow()
    removed = 0
    for model in db.session.scalars(select(RegisteredModel)):
        cutoff = now - timedelta(days=settings_of(model)["retention_days"])
        old = list(db.session.scalars(select(PredictionLogFile).where(PredictionLogFile.model_id == model.id,
                                                                      PredictionLogFile.last_at < cutoff)))
        for f in old:
            try:
                _swap([f], None, f)
                removed += 1
            except _Lost:
                pass
        db.session.execute(delete(ClientRequestId).where(ClientRequestId.model_id == model.id,
                                                         ClientRequestId.at < cutoff))
        db.session.commit()
    # Files of models deleted since: nothing points at them for reading; their records go too.
    orphans = list(db.session.scalars(select(PredictionLogFile).where(
        PredictionLogFile.model_id.not_in(select(RegisteredModel.id)))))
    for f in orphans:
        try:
            _swap([f], None, f)
            removed += 1
        except _Lost:
            pass
    return removed


def delete_requests(model: RegisteredModel, request_ids: list[str]) -> dict[str, Any]:
    """Delete the records of these requests (every row, every version). Returns the ids found
    and those the log does not hold."""
    wanted = set(request_ids)
    hours = set()
    for rid in wanted:
        generated = predlog.request_time(rid)
        if generated is not None:
            hours.add(generated.replace(minute=0, second=0, microsecond=0))
    client = db.session.execute(select(ClientRequestId.request_id, ClientRequestId.at).where(
        ClientRequestId.model_id == model.id, ClientRequestId.request_id.in_(wanted))).all()
    for _rid, at in client:
        hours.add(at.replace(minute=0, second=0, microsecond=0))
    # A record's hour is its arrival; an id's time is within the same request, so a neighbouring
    # hour is read too (a request arriving at 10:59:59.999).
    hours |= {h - timedelta(hours=1) for h in hours} | {h + timedelta(hours=1) for h in hours}
    found: set[str] = set()
    artifacts = store()
    candidates = list(db.session.scalars(select(PredictionLogFile).where(
        PredictionLogFile.model_id == model.id, PredictionLogFile.hour.in_(hours)))) if hours else []
    for f in candidates:
        with artifacts.reader(f.key) as path:
            table = pq.read_table(path)
        hit = pc.is_in(table.column("request_id"), value_set=pa.array(sorted(wanted), pa.string()))
        if not pc.any(hit).as_py():
            continue
        found.update(table.filter(hit).column("request_id").to_pylist())
        _swap([f], table.filter(pc.invert(hit)), f)
    return {"deleted": sorted(found), "not_found": sorted(wanted - found)}


_last_purge = [0.0]


def maintain() -> dict[str, int]:
    """The periodic work (every worker's reaper round): compact small files; purge once an hour."""
    counts = {"compacted": compact()}
    if time.monotonic() - _last_purge[0] >= PURGE_EVERY_SECONDS:
        _last_purge[0] = time.monotonic()
        counts["purged"] = purge()
    return counts
