"""Datasets: upload (inline for small files, as an ingest job for large ones), ingest, list, delete.

An upload is received into a scratch file; ingesting writes the dataset's Parquet file to the
artifact store under a new key and records the key (``Dataset.path``) with the dataset.

Duplicates: the upload's SHA-256 is kept in ``info["sha256"]``; uploading the same bytes again
into the same project is refused with a 409 ``duplicate_dataset`` naming the existing dataset
(``existing``) unless ``allow_duplicate`` is set.

Identifier columns: ingestion detects them (``ColumnInfo.identifier``); a user can flip a column
(``set_identifier``, kept in ``info["id_overrides"]``); ``id_columns(dataset)`` is the answer the
rest of the application uses.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from flask import current_app
from sqlalchemy import inspect, select, update

from sqlalchemy.orm.attributes import flag_modified

from ..core.datasets import DatasetError, ingest
from ..core.datasets.ingestion import check_read_options
from ..infra.artifacts import new_key
from ..infra.extensions import db
from ..infra.scope import is_mine, only_mine
from ..infra.records import Dataset, Job, User, new_id
from . import jobs, projects
from .artifacts import scratch_dir, store
from .errors import ServiceError
from .paging import PAGE_SIZE, Page, page

COPY_CHUNK = 1 << 20
log = logging.getLogger(__name__)


def _display_name(filename: str) -> str:
    name = os.path.basename((filename or "").replace("\\", "/").replace("\x00", "")).strip()
    return (name or "dataset")[:255]


def read_options(**given: str | None) -> dict[str, str]:
    """The CSV/xlsx reading options of an upload (delimiter, decimal, thousands, encoding, sheet),
    checked; empty ones are dropped ("" thousands means "none" only when given as "none")."""
    given = {k: v.strip() for k, v in given.items() if isinstance(v, str) and v.strip()}
    if given.get("thousands", "").lower() == "none":
        given["thousands"] = ""
    try:
        return check_read_options(**given)
    except DatasetError as exc:
        raise ServiceError("invalid", "bad_read_option", exc.message) from None


def find_duplicate(sha256: str) -> Dataset | None:
    """A dataset of the current project holding exactly these bytes (not one that failed)."""
    query = only_mine(select(Dataset), Dataset.project_id).where(
        Dataset.info["sha256"].as_string() == sha256, Dataset.state != "error")
    return db.session.scalars(query.order_by(Dataset.created_at)).first()


def upload(source: BinaryIO, filename: str, user: User | None, *, options: dict[str, str] | None = None,
           allow_duplicate: bool = False) -> tuple[Dataset, Job | None]:
    """Store an upload. Small files are ingested now (the dataset is ready, or a 422 explains
    what is wrong); larger ones become an ingest job and the dataset reads "ingesting".
    ``options`` (from ``read_options``) override what is sniffed; the same bytes as an existing
    dataset of the project are refused (409 ``duplicate_dataset``) unless ``allow_duplicate``."""
    options = dict(options or {})
    fd, tmp = tempfile.mkstemp(dir=scratch_dir(), prefix="upload-")
    size = 0
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(COPY_CHUNK):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    if size == 0:
        os.unlink(tmp)
        raise ServiceError("unprocessable", "dataset_invalid", "The file is empty.")
    sha256 = digest.hexdigest()
    if not allow_duplicate:
        existing = find_duplicate(sha256)
        if existing is not None:
            os.unlink(tmp)
            raise ServiceError("conflict", "duplicate_dataset",
                               f"This file is already dataset {existing.name} (the same bytes, uploaded "
                               f"{existing.created_at:%Y-%m-%d %H:%M} UTC). Open it, or upload again with "
                               "allow_duplicate to keep a second copy.",
                               existing=existing.id, name=existing.name)
    # The row becomes visible only together with what makes it whole: after a successful inline
    # ingest, or in the same transaction as its ingest job. A web process killed mid-upload leaves
    # no "ingesting" row behind (only a scratch file, which the sweep removes).
    dataset = Dataset(id=new_id(), project_id=projects.current_id(), name=_display_name(filename), uploaded_by=user,
                      state="ingesting", info={"sha256": sha256, "read_options": options})
    if size <= current_app.config["INLINE_INGEST_MB"] * 2**20:
        try:
            finish_ingest(dataset, Path(tmp), options=options)
        except DatasetError as exc:  # nothing half-stored: no row, no file
            raise ServiceError("unprocessable", "dataset_invalid", exc.message,
                                **({"line": exc.line} if exc.line else {})) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dataset, None
    db.session.add(dataset)
    try:
        job = jobs.submit("ingest", {"upload": Path(tmp).name, "filename": dataset.name, "options": options}, user,
                          dataset_id=dataset.id, progress_total=None)
    except ServiceError:
        # submit removed its job row; the dataset row goes too, and the upload with it.
        db.session.delete(dataset)
        db.session.commit()
        Path(tmp).unlink(missing_ok=True)
        raise
    return dataset, job


def upload_path(job) -> Path:
    """The scratch file an ingest job reads (kept until the ingest succeeds, so a retried ingest
    has its input). Jobs queued by an earlier release name an absolute path under uploads/."""
    recorded = Path(job.params["upload"])
    if recorded.is_absolute() and recorded.parent == Path(current_app.config["DATA_DIR"]) / "uploads":
        return recorded
    return scratch_dir() / recorded.name


def finish_ingest(dataset: Dataset, upload: Path, *, commit: bool = True, options: dict | None = None) -> None:
    """Ingest an uploaded file into the dataset's Parquet file and record what it holds (with
    ``commit=False`` the record is left in the session for the caller's guarded commit); on a
    DatasetError the dataset row ends in "error" with the message and no file is left."""
    key = new_key(f"datasets/{dataset.id}", ".parquet")
    try:
        with store().writer(key) as target:
            info = ingest(upload, target, filename_hint=dataset.name,
                          row_group_rows=current_app.config["ROW_GROUP_ROWS"], **(options or {}))
    except DatasetError as exc:
        if inspect(dataset).persistent:  # an ingest job's row records why; an inline upload has no row
            dataset.state, dataset.error = "error", exc.message
            db.session.commit()
        raise
    db.session.add(dataset)
    dataset.path, dataset.error = key, None
    before = dataset.info or {}
    dataset.info = {**info.to_dict(), **{k: before[k] for k in ("sha256", "read_options") if k in before}}
    dataset.n_rows, dataset.n_columns, dataset.size_bytes = info.n_rows, info.n_columns, info.bytes_on_disk
    dataset.state = "ready"
    if commit:
        db.session.commit()


def get(dataset_id: str) -> Dataset:
    dataset = db.session.get(Dataset, dataset_id) \
        if isinstance(dataset_id, str) and len(dataset_id) <= 32 and "\x00" not in dataset_id else None
    if dataset is None or not is_mine(dataset.project_id):
        raise ServiceError("not_found", "dataset_not_found", "No such dataset.")
    return dataset


def ingest_job(job_id: str, owner: str) -> None:
    """The body of an ingest job (after its claim): ingest the upload under a renewed lease, then
    finish the job; a refused file ends the job (and the dataset) in error with the reason."""
    job = jobs.get(job_id)
    dataset = db.session.get(Dataset, job.dataset_id)
    upload = upload_path(job)
    if not upload.is_file():
        jobs.fail(job_id, "The uploaded file is gone (removed before a worker could read it); upload it again.")
        return
    try:
        with jobs.Heartbeat(job_id, owner, renew=jobs.renew_job_lease):
            finish_ingest(dataset, upload, commit=False, options=job.params.get("options"))
    except DatasetError as exc:
        jobs.fail(job_id, exc.message)
        return
    except FileNotFoundError:  # a cancel removed the upload between the two passes over it
        jobs.fail(job_id, "The uploaded file is gone (removed before a worker could read it); upload it again.")
        return
    key = dataset.path
    # The dataset's record commits with the guarded finish or not at all: a cancel (or another
    # worker's lease) that came first keeps the dataset as the end hook left it.
    if not jobs.finish(job_id, owner, {}, progress=dataset.n_rows or 0):
        store().delete(key)
        log.info("ingest job %s was cancelled or taken over while it ran; its result is dropped", job_id)


def ingest_ended(job_id: str, state: str) -> None:
    """End hook of ingest jobs: the upload's scratch file goes, and a dataset still "ingesting"
    (the job failed or was cancelled before the ingest recorded anything) ends in error."""
    job = db.session.get(Job, job_id)
    if job is None:
        return
    upload_path(job).unlink(missing_ok=True)
    dataset = db.session.get(Dataset, job.dataset_id) if job.dataset_id else None
    if dataset is not None and dataset.state == "ingesting":
        dataset.state = "error"
        dataset.error = job.error or f"The upload's ingest was {state}; upload the file again."
        db.session.commit()


def get_file(dataset: Dataset):
    """A context manager giving a local path to the dataset's Parquet file."""
    if not dataset.path:
        raise ServiceError("conflict", "dataset_not_ready", f"The dataset is {dataset.state}, not ready.")
    return store().reader(dataset.path)


def ready(limit: int = 200) -> list[Dataset]:
    return list(db.session.scalars(only_mine(select(Dataset), Dataset.project_id).where(Dataset.state == "ready")
                                   .order_by(Dataset.created_at.desc()).limit(limit)))


def names(*, ready: bool = False) -> list[tuple[str, str]]:
    """(id, name) of every dataset (or every one ready), newest first."""
    statement = only_mine(select(Dataset.id, Dataset.name), Dataset.project_id)
    if ready:
        statement = statement.where(Dataset.state == "ready")
    return [tuple(row) for row in db.session.execute(statement.order_by(Dataset.created_at.desc()))]


def delete(dataset: Dataset) -> None:
    busy = jobs.unfinished(dataset_id=dataset.id)
    if busy:
        raise ServiceError("conflict", "dataset_in_use", f"The dataset is used by {len(busy)} unfinished job(s).",
                            jobs=[j.id for j in busy])
    key = dataset.path
    db.session.delete(dataset)
    db.session.commit()
    if key:
        store().delete(key)


def move(dataset: Dataset, project: str) -> Dataset:
    """Move a dataset into ``project`` (an admin of both), with the jobs that ran on it. Its
    comparisons with other datasets (drift jobs) are deleted: they describe a dataset that stays."""
    target = projects.move_target(project)
    pairs = [j for j in jobs.with_dataset(dataset.id) if j.kind == "drift"]
    busy = [j for j in pairs if not j.finished]
    if busy:
        raise ServiceError("conflict", "dataset_in_use", f"The dataset is being compared with another in {len(busy)} "
                           "unfinished job(s); move it once they end.", jobs=[j.id for j in busy])
    for job in pairs:
        db.session.delete(job)
    dataset.project_id = target.id
    db.session.execute(update(Job).where(Job.dataset_id == dataset.id).values(project_id=target.id))
    db.session.commit()
    for job in pairs:
        jobs.remove_outputs(job.id)
    return dataset


def dataset_dict(dataset: Dataset, *, full: bool = True) -> dict[str, Any]:
    out = {
        "id": dataset.id, "name": dataset.name, "state": dataset.state, "error": dataset.error,
        "n_rows": dataset.n_rows, "n_columns": dataset.n_columns, "size_bytes": dataset.size_bytes,
        "uploaded_by": dataset.uploaded_by.username if dataset.uploaded_by else None,
        "created_at": jobs.iso_time(dataset.created_at),
    }
    if full and dataset.info:
        ids = set(id_columns(dataset))
        out["columns"] = [{**c, "identifier": c["name"] in ids} for c in dataset.info.get("columns") or []] \
            if dataset.info.get("columns") is not None else None
        out["preview"] = dataset.info.get("preview")
        out["source"] = {k: dataset.info.get(k) for k in ("source_format", "delimiter", "encoding", "source_bytes",
                                                          "decimal", "thousands", "sheet", "sha256")}
        out["id_columns"] = sorted(ids, key=[c["name"] for c in dataset.info.get("columns") or []].index)
        out["warnings"] = dataset.info.get("warnings") or []
    return out


def id_columns(dataset: Dataset) -> list[str]:
    """The dataset's identifier columns, in column order: those ingestion detected (integer or
    text columns with >= 99.9 % distinct values), as flipped by users (``set_identifier``)."""
    info = dataset.info or {}
    overrides = info.get("id_overrides") or {}
    return [c["name"] for c in info.get("columns") or []
            if overrides.get(c["name"], bool(c.get("identifier")))]


def set_identifier(dataset: Dataset, column: str, identifier: bool) -> Dataset:
    """Mark ``column`` as an identifier (or not), overriding the detection."""
    if dataset.state != "ready":
        raise ServiceError("conflict", "dataset_not_ready", f"The dataset is {dataset.state}, not ready.")
    columns = {c["name"]: c for c in (dataset.info or {}).get("columns") or []}
    if column not in columns:
        raise ServiceError("not_found", "column_not_found", f"The dataset has no column {column[:80]!r}; "
                           "choose one of its columns.")
    info = dict(dataset.info)
    overrides = dict(info.get("id_overrides") or {})
    if bool(columns[column].get("identifier")) == identifier:
        overrides.pop(column, None)
    else:
        overrides[column] = identifier
    info["id_overrides"] = overrides
    dataset.info = info
    flag_modified(dataset, "info")
    db.session.commit()
    return dataset


def list_datasets(limit: int = PAGE_SIZE, offset: int = 0) -> Page:
    """One page of datasets, newest first (the datasets page and ``GET /api/v1/datasets``)."""
    return page(only_mine(select(Dataset), Dataset.project_id).order_by(Dataset.created_at.desc(), Dataset.id.desc()),
                limit, offset)


__all__ = ["dataset_dict", "delete", "find_duplicate", "get", "id_columns", "list_datasets", "read_options",
           "set_identifier", "upload"]
