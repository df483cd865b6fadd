"""Datasets: upload (inline for small files, as a worker job for large ones), list, delete."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

from flask import current_app
from sqlalchemy import inspect, select

from . import jobs
from .core.datasets import DatasetError, ingest
from .extensions import db
from .records import Dataset, Job, User, new_id
from .registry import RegistryError

COPY_CHUNK = 1 << 20


def upload_dir() -> Path:
    path = Path(current_app.config["DATA_DIR"]) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _display_name(filename: str) -> str:
    name = os.path.basename((filename or "").replace("\\", "/").replace("\x00", "")).strip()
    return (name or "dataset")[:255]


def upload(source: BinaryIO, filename: str, user: User | None) -> tuple[Dataset, Job | None]:
    """Store an upload. Small files are ingested now (the dataset is ready, or a 422 explains
    what is wrong); larger ones become an ingest job and the dataset reads "ingesting"."""
    fd, tmp = tempfile.mkstemp(dir=upload_dir(), prefix="upload-")
    size = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(COPY_CHUNK):
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        os.unlink(tmp)
        raise
    if size == 0:
        os.unlink(tmp)
        raise RegistryError(422, "dataset_invalid", "The file is empty.")
    # The row becomes visible only together with what makes it whole: after a successful inline
    # ingest, or in the same transaction as its ingest job. A web process killed mid-upload leaves
    # no "ingesting" row behind (only a temp file under uploads/).
    dataset = Dataset(id=new_id(), name=_display_name(filename), uploaded_by=user, state="ingesting")
    if size <= current_app.config["INLINE_INGEST_MB"] * 2**20:
        try:
            finish_ingest(dataset, Path(tmp))
        except DatasetError as exc:  # nothing half-stored: no row, no file
            raise RegistryError(422, "dataset_invalid", exc.message,
                                **({"line": exc.line} if exc.line else {})) from None
        finally:
            Path(tmp).unlink(missing_ok=True)
        return dataset, None
    from . import tasks

    db.session.add(dataset)
    try:
        job = jobs.submit(tasks.ingest_dataset, "ingest", {"upload": tmp, "filename": dataset.name}, user,
                          dataset_id=dataset.id, progress_total=None)
    except jobs.BrokerUnavailable as exc:
        db.session.delete(dataset)
        db.session.commit()
        Path(tmp).unlink(missing_ok=True)
        raise RegistryError(503, "queue_unavailable", str(exc)) from None
    return dataset, job


def dataset_file(dataset: Dataset) -> Path:
    return Path(current_app.config["DATA_DIR"]) / dataset.path


def finish_ingest(dataset: Dataset, upload: Path) -> None:
    """Ingest an uploaded file into the dataset's Parquet file and record what it holds; on a
    DatasetError the dataset row ends in "error" with the message and no file is left."""
    target = Path(current_app.config["DATA_DIR"]) / "datasets" / f"{dataset.id}.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = ingest(upload, target, filename_hint=dataset.name,
                      row_group_rows=current_app.config["ROW_GROUP_ROWS"])
    except DatasetError as exc:
        if inspect(dataset).persistent:  # an ingest job's row records why; an inline upload has no row
            dataset.state, dataset.error = "error", exc.message
            db.session.commit()
        raise
    db.session.add(dataset)
    dataset.path = str(target.relative_to(current_app.config["DATA_DIR"]))
    dataset.info = info.to_dict()
    dataset.n_rows, dataset.n_columns, dataset.size_bytes = info.n_rows, info.n_columns, info.bytes_on_disk
    dataset.state = "ready"
    db.session.commit()


def get(dataset_id: str) -> Dataset:
    dataset = db.session.get(Dataset, dataset_id) \
        if isinstance(dataset_id, str) and len(dataset_id) <= 32 and "\x00" not in dataset_id else None
    if dataset is None:
        raise RegistryError(404, "dataset_not_found", "No such dataset.")
    return dataset


def delete(dataset: Dataset) -> None:
    busy = db.session.scalars(select(Job).where(Job.dataset_id == dataset.id,
                                                Job.state.in_(("pending", "running")))).all()
    if busy:
        raise RegistryError(409, "dataset_in_use", f"The dataset is used by {len(busy)} unfinished job(s).",
                            jobs=[j.id for j in busy])
    path = Path(current_app.config["DATA_DIR"]) / dataset.path if dataset.path else None
    db.session.delete(dataset)
    db.session.commit()
    if path is not None:
        path.unlink(missing_ok=True)


def dataset_dict(dataset: Dataset, *, full: bool = True) -> dict[str, Any]:
    out = {
        "id": dataset.id, "name": dataset.name, "state": dataset.state, "error": dataset.error,
        "n_rows": dataset.n_rows, "n_columns": dataset.n_columns, "size_bytes": dataset.size_bytes,
        "uploaded_by": dataset.uploaded_by.username if dataset.uploaded_by else None,
        "created_at": jobs.iso_time(dataset.created_at),
    }
    if full and dataset.info:
        out["columns"] = dataset.info.get("columns")
        out["preview"] = dataset.info.get("preview")
        out["source"] = {k: dataset.info.get(k) for k in ("source_format", "delimiter", "encoding", "source_bytes")}
    return out


def list_datasets() -> list[Dataset]:
    return list(db.session.scalars(select(Dataset).order_by(Dataset.created_at.desc())))


__all__ = ["dataset_dict", "delete", "get", "list_datasets", "upload"]
