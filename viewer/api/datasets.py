"""``/api/v1/datasets``."""

from __future__ import annotations

from flask import jsonify

from ..http.auth import requester, role_required
from ..services import datasets
from ..services.jobs import serialize_job
from .inputs import DatasetUpload, MoveRequest, PageQuery
from .outputs import Dataset, DatasetList
from .spec import checks, valid
from .v1 import bp, next_link


@bp.get("/datasets")
@checks("Datasets", {200: DatasetList}, (400, 401), query=PageQuery)
def list_datasets():
    """Datasets, newest first, a page at a time

    Follow 'next' (null on the last page) for older datasets."""
    query = valid("query")
    found = datasets.list_datasets(query.limit, query.offset)
    return jsonify(datasets=[datasets.dataset_dict(d, full=False) for d in found.items],
                   next=next_link(found.next_offset))


@bp.post("/datasets")
@role_required("scientist")
@checks("Datasets", {201: Dataset, 202: Dataset}, (400, 401, 403, 413, 422, 503), form=DatasetUpload)
def upload_dataset():
    """Upload a CSV or Parquet file

    201 with a ready dataset when the file is small enough to ingest at once (a 422 says what is
    wrong with it); otherwise 202 with the dataset and its ingest job."""
    form = valid("form")
    dataset, job = datasets.upload(form.file.stream, form.name or form.file.filename, requester())
    body = datasets.dataset_dict(dataset)
    if job is not None:
        body["job"] = serialize_job(job)
        return jsonify(body), 202
    return jsonify(body), 201


@bp.get("/datasets/<dataset_id>")
@checks("Datasets", {200: Dataset}, (401, 404))
def get_dataset(dataset_id: str):
    """A dataset with its columns and first rows"""
    return jsonify(datasets.dataset_dict(datasets.get(dataset_id)))


@bp.post("/datasets/<dataset_id>/move")
@role_required("admin")
@checks("Datasets", {200: Dataset}, (400, 401, 403, 404), json=MoveRequest)
def move_dataset(dataset_id: str):
    """Move a dataset into another project

    With the jobs that ran on it. Needs the admin role in both projects."""
    return jsonify(datasets.dataset_dict(datasets.move(datasets.get(dataset_id), valid("json").project)))


@bp.delete("/datasets/<dataset_id>")
@role_required("scientist")
@checks("Datasets", {204: None}, (401, 403, 404, 409))
def delete_dataset(dataset_id: str):
    """Delete a dataset

    Refused (409) while unfinished jobs use it."""
    datasets.delete(datasets.get(dataset_id))
    return "", 204
