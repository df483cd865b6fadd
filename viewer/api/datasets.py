"""``/api/v1/datasets``."""

from __future__ import annotations

from flask import jsonify, request

from ..http.auth import requester, role_required
from ..services import datasets
from ..services.errors import ServiceError
from ..services.jobs import serialize_job
from .v1 import bp, next_link, page_args


@bp.get("/datasets")
def list_datasets():
    found = datasets.list_datasets(*page_args())
    return jsonify(datasets=[datasets.dataset_dict(d, full=False) for d in found.items],
                   next=next_link(found.next_offset))


@bp.post("/datasets")
@role_required("scientist")
def upload_dataset():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ServiceError("invalid", "bad_request",
                           "Send the dataset as a multipart form field named 'file' (CSV or Parquet).")
    dataset, job = datasets.upload(upload.stream, request.form.get("name") or upload.filename, requester())
    body = datasets.dataset_dict(dataset)
    if job is not None:
        body["job"] = serialize_job(job)
        return jsonify(body), 202
    return jsonify(body), 201


@bp.get("/datasets/<dataset_id>")
def get_dataset(dataset_id: str):
    return jsonify(datasets.dataset_dict(datasets.get(dataset_id)))


@bp.delete("/datasets/<dataset_id>")
@role_required("scientist")
def delete_dataset(dataset_id: str):
    datasets.delete(datasets.get(dataset_id))
    return "", 204
