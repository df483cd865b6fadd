"""``/api/v1/datasets``."""

from __future__ import annotations

from flask import jsonify, url_for

from ..http.auth import requester, role_required
from ..services import dataset_drift, datasets
from ..services.errors import ServiceError
from ..services.jobs import serialize_job
from .inputs import DatasetDriftRequest, DatasetUpload, IdentifierFlag, MoveRequest, PageQuery
from .outputs import Dataset, DatasetList, Job
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
@checks("Datasets", {201: Dataset, 202: Dataset}, (400, 401, 403, 409, 413, 422, 503), form=DatasetUpload)
def upload_dataset():
    """Upload a CSV, Parquet or Excel .xlsx file

    201 with a ready dataset when the file is small enough to ingest at once (a 422 says what is
    wrong with it); otherwise 202 with the dataset and its ingest job. delimiter, decimal,
    thousands and encoding override what is sniffed from a CSV; sheet picks an .xlsx sheet.
    The same bytes as a dataset of the project already holds: 409 duplicate_dataset with
    the existing dataset's id in 'existing', unless allow_duplicate is true."""
    form = valid("form")
    options = datasets.read_options(delimiter=form.delimiter, decimal=form.decimal, thousands=form.thousands,
                                    encoding=form.encoding, sheet=form.sheet)
    try:
        dataset, job = datasets.upload(form.file.stream, form.name or form.file.filename, requester(),
                                       options=options, allow_duplicate=form.allow_duplicate)
    except ServiceError as exc:
        if exc.code != "duplicate_dataset":
            raise
        return jsonify(error_code=exc.code, message=exc.message, existing=exc.details["existing"],
                       existing_url=url_for("api.get_dataset", dataset_id=exc.details["existing"],
                                            _external=True)), 409
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


@bp.post("/datasets/<dataset_id>/identifiers")
@role_required("scientist")
@checks("Datasets", {200: Dataset}, (400, 401, 403, 404, 409), json=IdentifierFlag)
def flag_identifier(dataset_id: str):
    """Mark a column as an identifier, or not

    Overrides the detection (integer or text columns with at least 99.9 % distinct values);
    the dataset's id_columns are what jobs keep beside their predictions."""
    body = valid("json")
    return jsonify(datasets.dataset_dict(datasets.set_identifier(datasets.get(dataset_id), body.column,
                                                                 body.identifier)))


@bp.post("/datasets/<dataset_id>/drift")
@role_required("scientist")
@checks("Datasets", {202: Job, 200: Job}, (400, 401, 403, 404, 409, 503), json=DatasetDriftRequest)
def compare_datasets(dataset_id: str):
    """Compare a dataset with a reference dataset (drift, no model needed)

    A job summarises both and computes, per column present in both, the drift the monitoring
    pages show: Wasserstein distance / the reference's standard deviation and PSI (numbers),
    Jensen-Shannon distance and the chi-square p-value (categories), missing shares, and whether
    the dataset drifts (half its columns do). The job's result holds the figures; left out
    columns (ID columns, dates, text, a kind that differs) are listed in params.left_out with the
    reason. 200 with the earlier job when the pair was compared already (unless force)."""
    body = valid("json")
    job, created = dataset_drift.submit(dataset_id, body.reference, requester(), force=body.force)
    return jsonify(serialize_job(job)), 202 if created else 200


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
