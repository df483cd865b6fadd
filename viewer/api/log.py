"""``/api/v1/models/<name>/log`` and ``/drift``: the prediction log (a window of it, deleting requests
from it) and the drift reports drawn from its summaries."""

from __future__ import annotations

import io
import json
from datetime import UTC

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from flask import Response, jsonify, request

from ..http.auth import identity, role_required
from ..services import labels, logfiles, monitoring, registry
from ..services.errors import ServiceError
from .inputs import DriftCellQuery, DriftQuery, LabelBatch, LogDeletion, LogQuery
from .outputs import LabelsPosted, LogDeleted
from .spec import checks, valid
from .v1 import bp

MAX_EXPORT_ROWS = 1_000_000
SPANS = {"hour": 1, "day": 24, "week": 168}
LOG_TYPES = {"application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
             "text/csv": {"schema": {"type": "string"}}}


def _naive_utc(value):
    return value.astimezone(UTC).replace(tzinfo=None) if value is not None and value.tzinfo else value


@bp.get("/models/<name>/log")
@checks("Prediction log", {200: None}, (400, 401, 404, 413, 503), query=LogQuery,
        extra={"responses": {"200": {"content": LOG_TYPES}}})
def export_log(name: str):
    """A window of a model's prediction log

    One record per row served: request_id, row, at (UTC), latency_ms, route, prediction, proba,
    version and (for scientists of the project; viewers get the rest) inputs. At most 1,000,000
    records: a longer window is a 413 that asks for a shorter one."""
    query = valid("query")
    model = registry.get_model(name)
    version_id = registry.resolve(registry.Ref(name, version=query.version)).id if query.version else None
    table = logfiles.read(model.id, _naive_utc(query.start), _naive_utc(query.end), version_id=version_id,
                         inputs=identity().has_role("scientist"), max_rows=MAX_EXPORT_ROWS)
    out = io.BytesIO()
    if query.format == "csv":
        flat = table.flatten() if table.num_columns else table
        flat = flat.rename_columns([c.replace("inputs.", "input.", 1) for c in flat.column_names])
        if "proba" in flat.column_names:  # CSV has no lists: each row's probabilities as a JSON list
            flat = flat.set_column(flat.column_names.index("proba"), "proba", pa.array(
                [None if p is None else json.dumps(p) for p in flat.column("proba").to_pylist()], pa.string()))
        if flat.num_columns:
            pacsv.write_csv(flat, out)
        mimetype, suffix = "text/csv", "csv"
    else:
        pq.write_table(table, out, compression="zstd")
        mimetype, suffix = "application/vnd.apache.parquet", "parquet"
    return Response(out.getvalue(), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{model.name}-log.{suffix}"'})


@bp.post("/models/<name>/log/delete")
@role_required("scientist")
@checks("Prediction log", {200: LogDeleted}, (400, 401, 403, 404, 503), json=LogDeletion)
def delete_from_log(name: str):
    """Delete requests from a model's prediction log

    Every row of each request, in every version. Ids the log does not hold are listed in
    not_found. A 503 asks to send it again when the workers kept rewriting the same files."""
    return jsonify(logfiles.delete_requests(registry.get_model(name), valid("json").request_ids))


@bp.get("/models/<name>/drift")
@checks("Monitoring", {200: None}, (400, 401, 404), query=DriftQuery)
def drift(name: str):
    """Drift of a model's served inputs and predictions, per window

    Per window (newest last, per version): rows, requests, latency p50/p99, and per input column
    the missing and unknown-category counts and its drift against the reference dataset
    (numeric: wasserstein, the Wasserstein distance / the reference's standard deviation, and psi;
    categorical: jensen_shannon, with chi_square_p shown, not used to flag). drift is true or
    false, or null with enough_rows false when the window has too few rows to judge;
    dataset_drift when at least dataset_share of the judged columns drift."""
    query = valid("query")
    return jsonify(monitoring.report(registry.get_model(name), span=SPANS[query.window], last=query.last,
                                     version=query.version))


@bp.get("/models/<name>/drift/cell")
@checks("Monitoring", {200: None}, (400, 401, 404), query=DriftCellQuery)
def drift_cell(name: str):
    """One column's distribution in one window beside the reference's

    Viewers see a categorical column's values the model or the reference dataset knows; other
    logged values are counted together (raw logged inputs are for the project's scientists)."""
    query = valid("query")
    model = registry.get_model(name)
    return jsonify(monitoring.cell(model, query.version, _naive_utc(query.start),
                                   monitoring.window_seconds() * SPANS[query.window], query.column,
                                   raw=identity().has_role("scientist")))


LABEL_KEYS = {"request_id", "row", "label"}
CSV_LABELS = {"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}, "example": (
    "request_id,row,label\n0192f7a0-7b1c-7c3e-9a51-2f1d0c9e4b7a,0,yes\n")}}}}


def _csv_labels(text: str) -> list[dict]:
    import csv

    items = []
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        if not reader.fieldnames or not {"request_id", "label"} <= set(reader.fieldnames):
            raise ServiceError("invalid", "bad_request", "The CSV needs a header with request_id and label (and "
                               "optionally row).")
        for line, record in enumerate(reader, start=2):
            row = (record.get("row") or "0").strip()
            if not (row.isascii() and row.isdigit()):
                raise ServiceError("invalid", "bad_request", f"Line {line}: row must be a whole number from 0.")
            items.append({"request_id": (record["request_id"] or "").strip(), "row": int(row),
                          "label": (record["label"] or "").strip()})
    except csv.Error as exc:
        raise ServiceError("invalid", "bad_request", f"The CSV cannot be read ({exc}); send comma-separated lines "
                           "with a request_id,row,label header.") from None
    return items


@bp.post("/models/<name>/labels")
@role_required("scientist")
@checks("Monitoring", {200: LabelsPosted}, (400, 401, 403, 404, 413, 415), json=LabelBatch, extra=CSV_LABELS,
        check=False)
def post_labels(name: str):
    """Labels for logged predictions, days later if need be

    JSON {"labels": [{"request_id", "row", "label"}]} (row defaults to 0), or CSV with a
    request_id, row, label header (a text/csv body or a multipart upload in "file"). Idempotent:
    a label sent again replaces the stored one. Ids whose records the log does not hold (yet) are
    listed in unknown and tried again for a day; the others are matched at once and counted in
    the model's realized performance."""
    mime = (request.mimetype or "").lower()
    if mime == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or set(body) != {"labels"} or not isinstance(body["labels"], list) or \
                not all(isinstance(i, dict) and set(i) <= LABEL_KEYS for i in body["labels"]):
            raise ServiceError("invalid", "bad_request", 'Send {"labels": [{"request_id": ..., "row": 0, "label": ...}]} '
                               "(no other keys).")
        items = body["labels"]
    elif mime == "text/csv":
        items = _csv_labels(request.get_data(as_text=True))
    elif mime == "multipart/form-data" and "file" in request.files:
        items = _csv_labels(request.files["file"].read().decode("utf-8-sig", errors="replace"))
    else:
        raise ServiceError("unsupported", "unsupported_media_type", "Send JSON, a text/csv body, or a CSV file in a "
                           "multipart field named file.")
    return jsonify(labels.post(registry.get_model(name), items))
