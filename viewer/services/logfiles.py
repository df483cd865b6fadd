"""The prediction log's files: reading a window of them, and keeping them (compaction,
retention, deletion by request id). ``services.predlog`` writes them.

Every change writes new files under new keys and swaps the records in one transaction
(``_swap``), so a reader never meets a half-written file and two workers never both win.
"""

from __future__ import annotations

import time
from datetime import UTC, timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from sqlalchemy import delete, select

from ..core import predlog
from ..infra.artifacts import new_key
from ..infra.extensions import db
from ..infra.records import ClientRequestId, PredictionLogFile, RegisteredModel, utcnow
from .artifacts import store
from .errors import ServiceError
from .predlog import PREFIX, naive, settings_of

COMPACT_BELOW_ROWS = 100_000   # files smaller than this are merged; a merged file stops growing at
COMPACT_TARGET_ROWS = 1_000_000  # about this many rows
COMPACT_AFTER_SECONDS = 60.0   # files younger than this are left to their writers' flushes
PURGE_EVERY_SECONDS = 3600.0
DELETE_ATTEMPTS = 5            # a deletion racing compaction reads the hours again this many times


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
         max_rows: int | None = None, _attempt: int = 0) -> pa.Table:
    """The records of a model (one version) from ``start`` to before ``end`` (naive UTC), oldest
    first; without ``inputs`` the inputs column is left out. Refuses more than ``max_rows``."""
    artifacts = store()
    found = files(model_id, start, end, version_id)
    inside = sum(f.rows for f in found if (start is None or f.first_at >= start) and (end is None or f.last_at < end))
    if max_rows is not None and inside > max_rows:  # known before reading a file
        raise _too_large(max_rows)
    parts, rows = [], 0
    for f in found:
        try:
            with artifacts.reader(f.key) as path, pq.ParquetFile(path) as source:
                columns = [c for c in source.schema_arrow.names if inputs or c != "inputs"]
                table = source.read(columns=columns)
        except FileNotFoundError:  # compacted meanwhile (its records are in the new file), or lost
            if _lost(f):
                continue
            if _attempt >= 3:
                raise ServiceError("unavailable", "log_busy", "The prediction log is being rewritten by the "
                                   "workers; ask again in a minute.") from None
            return read(model_id, start, end, version_id=version_id, inputs=inputs, max_rows=max_rows,
                        _attempt=_attempt + 1)
        table = table.append_column("version", pa.array(np.full(table.num_rows, f.version, dtype=np.int32)))
        if start is not None or end is not None:
            at = table.column("at")
            keep = pa.array(np.ones(table.num_rows, dtype=bool))
            if start is not None:
                keep = pc.and_(keep, pc.greater_equal(at, pa.scalar(_aware(start), at.type)))
            if end is not None:
                keep = pc.and_(keep, pc.less(at, pa.scalar(_aware(end), at.type)))
            table = table.filter(keep)
        rows += table.num_rows
        if max_rows is not None and rows > max_rows:  # refused as soon as it is known: memory stays bounded
            raise _too_large(max_rows)
        parts.append(table)
    if not parts:
        return pa.table({})
    merged = pa.concat_tables(parts, promote_options="permissive")
    return merged.sort_by([("at", "ascending"), ("request_id", "ascending"), ("row", "ascending")])


def _too_large(max_rows: int) -> ServiceError:
    return ServiceError("too_large", "log_window_too_large", f"The window holds more than {max_rows:,} records, more "
                        "than an export may; ask for a shorter one (start and end).")


def _lost(f: PredictionLogFile) -> bool:
    """Whether a file whose object is missing is still recorded under that key: the object is
    lost (its records with it), not swapped away by a compaction meanwhile."""
    return db.session.scalar(select(PredictionLogFile.key).where(PredictionLogFile.id == f.id)) == f.key


def _aware(value):
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


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
        # Conditional on the summarised flag too: a file the monitoring claimed meanwhile is lost here
        # (its replacement would carry the old flag and be counted twice).
        gone = db.session.execute(delete(PredictionLogFile).where(
            PredictionLogFile.id.in_(ids), PredictionLogFile.aggregated.is_(template.aggregated))
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
                first_at=naive(pc.min(at)), last_at=naive(pc.max(at)), compacted=True,
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
    value_set = pa.array(sorted(wanted), pa.string())
    for _attempt in range(DELETE_ATTEMPTS):
        try:
            _delete_in(model.id, hours, value_set, found)
            break
        except (_Lost, FileNotFoundError):  # compacted or summarised meanwhile: read the hours again
            db.session.rollback()
    else:
        raise ServiceError("unavailable", "log_busy",
                           "The prediction log is being rewritten by the workers; send the deletion again in a "
                           "minute (requests deleted so far stay deleted).", deleted=sorted(found))
    return {"deleted": sorted(found), "not_found": sorted(wanted - found)}


def _delete_in(model_id: int, hours: set, value_set: pa.Array, found: set[str]) -> None:
    artifacts = store()
    candidates = list(db.session.scalars(select(PredictionLogFile).where(
        PredictionLogFile.model_id == model_id, PredictionLogFile.hour.in_(hours)))) if hours else []
    for f in candidates:
        try:
            with artifacts.reader(f.key) as path:
                table = pq.read_table(path)
        except FileNotFoundError:
            if _lost(f):
                continue
            raise  # compacted meanwhile: read the hours again
        hit = pc.is_in(table.column("request_id"), value_set=value_set)
        if not pc.any(hit).as_py():
            continue
        ids = set(table.filter(hit).column("request_id").to_pylist())
        _swap([f], table.filter(pc.invert(hit)), f)
        found.update(ids)

_last_purge = [0.0]


def maintain() -> dict[str, int]:
    """The periodic work (every worker's reaper round): compact small files; purge once an hour."""
    counts = {"compacted": compact()}
    if time.monotonic() - _last_purge[0] >= PURGE_EVERY_SECONDS:
        _last_purge[0] = time.monotonic()
        counts["purged"] = purge()
    return counts
