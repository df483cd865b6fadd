"""The OpenAPI 3.1 description of every JSON route: ``GET /api/openapi.json``.

Path entries come from the ``OPERATIONS`` table below (one ``Op`` per route and method); the
shared shapes live in ``openapi_schemas.SCHEMAS``. ``build_spec()`` needs no app or request, so
tests and the docs page (``viewer.api.docs``) render the same document. ``tests/test_openapi.py``
fails when a route has no entry here, or an entry has no route, and fuzzes the live app against it.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, jsonify

from ..infra.config import VERSION as __version__
from ..infra.records import ALIAS_PATTERN, JOB_STATES
from .openapi_schemas import DATASET_ID, IRIS, JOB_ID, JSON, PAGE_PARAMS, SCHEMAS, STRING, TEXT, ref

bp = Blueprint("openapi", __name__)

NAME = {"name": "name", "in": "path", "required": True, "example": "iris",
        "description": "A model name; where a version is meant, also name@alias.",
        "schema": {"type": "string", "minLength": 1}}
PATH_PARAMS: dict[str, dict[str, Any]] = {
    "name": NAME,
    "version": {"name": "version", "in": "path", "required": True, "example": 1,
                "schema": {"type": "integer", "minimum": 0}},
    "alias": {"name": "alias", "in": "path", "required": True, "example": "production",
              "schema": {"type": "string", "pattern": ALIAS_PATTERN}},
    "job_id": {"name": "job_id", "in": "path", "required": True, "example": JOB_ID, "schema": STRING},
    "dataset_id": {"name": "dataset_id", "in": "path", "required": True, "example": DATASET_ID, "schema": STRING},
    "token_id": {"name": "token_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 0}},
}
V2_VERSION = {"name": "version", "in": "path", "required": True, "example": "1",
              "description": "A version number (digits).", "schema": {"type": "string", "pattern": "^[0-9]+$"}}
OUTPUT = {"name": "output", "in": "query", "required": False,
          "description": "proba adds classes and probabilities (classifiers with predict_proba).",
          "schema": {"type": "string", "enum": ["predict", "proba", "predict_proba"]}}

MLFLOW_BODY = {
    "required": True,
    "content": {
        JSON: {"schema": ref("MlflowRequest"),
               "examples": {
                   "dataframe_split": {"value": {"dataframe_split": {"columns": list(IRIS),
                                                                     "data": [list(IRIS.values())]}}},
                   "dataframe_records": {"value": {"dataframe_records": [IRIS]}},
                   "instances": {"value": {"instances": [list(IRIS.values())]}},
                   "inputs": {"value": {"inputs": {k: [v] for k, v in IRIS.items()},
                                        "params": {"predict_method": "predict_proba"}}},
               }},
        "text/csv": {"schema": {"type": "string"},
                     "example": ",".join(IRIS) + "\n" + ",".join(str(v) for v in IRIS.values()) + "\n"},
    },
}
V2_BODY = {
    "required": True,
    "content": {JSON: {"schema": ref("V2InferenceRequest"), "example": {
        "id": "42", "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4],
                               "data": list(IRIS.values())}],
        "outputs": [{"name": "predict"}]}}},
}
V2_BINARY = {"name": "Inference-Header-Content-Length", "in": "header", "required": False,
             "description": "Binary tensor data extension: the length of the JSON header that starts the body.",
             "schema": {"type": "integer", "minimum": 0}}

# --- responses -----------------------------------------------------------------------------------

ERRORS: dict[int, str] = {
    400: "The request is malformed or does not fit the model (error_code names the problem).",
    401: "No valid API token: send 'Authorization: Bearer <token>'.",
    403: "Your role may not do this.",
    404: "No such model, version, alias, dataset, job or token.",
    409: "Conflict with the current state (e.g. a version or dataset used by unfinished jobs).",
    410: "A file this needs is gone from the store (a model's file, a job's results).",
    413: "The request is too large.",
    415: "Unsupported content type.",
    422: "The file is not a loadable, safe scikit-learn model (or a readable dataset).",
    503: "A backing service (the job queue) is unreachable.",
}


@dataclass
class Op:
    """One route and method: the row of the table that becomes an OpenAPI operation."""

    method: str
    path: str
    tag: str
    summary: str
    ok: dict[int, Any]  # status -> schema name or schema (JSON), None (no body), (media type, schema)
    #                     or {media type: {"schema": ...}, ...}
    errors: tuple[int, ...] = ()
    params: tuple[dict[str, Any], ...] = ()
    body: dict[str, Any] | None = None
    public: bool = False  # no token at all
    anonymous: bool = False  # a token is optional: an admin may open a model to anonymous predictions
    description: str = ""
    path_params: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def operation_id(self) -> str:
        words = re.sub(r"[{}]", "", self.path).replace("openapi.json", "openapi").strip("/")
        return self.method + "_" + re.sub(r"[^A-Za-z0-9]+", "_", words)


AUTH = (401,)
PREDICT_ERRORS = (400, 401, 404, 410, 413, 415)
V2_ERRORS = (400, 401, 404, 410)

OPERATIONS: list[Op] = [
    # --- account and jobs
    Op("get", "/api/v1/me", "Account", "Who the token belongs to", {200: "Me"}, AUTH),
    Op("get", "/api/v1/tokens", "Account", "Your API tokens, newest first, a page at a time", {200: "TokenList"},
       (400, 401), params=PAGE_PARAMS),
    Op("delete", "/api/v1/tokens/{token_id}", "Account", "Revoke one of your tokens", {200: "Token"}, (401, 404),
       description="Revoking an already revoked token is a no-op that returns it."),
    Op("post", "/api/v1/system/ping-worker", "Jobs", "Enqueue a no-op job (web, broker, worker, database)",
       {202: "Job"}, (401, 403, 503), description="Needs the scientist role. Poll the returned url."),
    Op("get", "/api/v1/jobs", "Jobs", "Jobs, newest first, a page at a time", {200: "JobList"}, (400, 401, 404),
       description="Filtered in the database; follow 'next' (null on the last page) for older jobs. 404 when "
                   "the cursor names no job.",
       params=tuple({"name": n, "in": "query", "description": d, "schema": sch} for n, d, sch in (
           ("state", "Only jobs in this state (empty: any).", {"type": "string", "enum": ["", *JOB_STATES]}),
           ("kind", "Only jobs of this kind (score, importance, ingest, ping).", STRING),
           ("model", "Only scoring jobs of this model name.", STRING),
           ("dataset", "Only jobs on this dataset id.", STRING),
           ("user", "Only jobs submitted by this username.", STRING),
           ("limit", "Jobs per page (default and most: 500).", {"type": "integer", "minimum": 1, "maximum": 500}),
           ("cursor", "Where the page starts: the id of the previous page's last job, as its 'next' link has "
            "it (empty: the first page).", {"type": "string", "pattern": "^([0-9a-f]{32})?$"})))),
    Op("post", "/api/v1/jobs", "Jobs", "Score a dataset with a model, or compute feature importance",
       {202: "Job", 200: "Job"}, (400, 401, 403, 404, 409, 413, 503),
       body={"required": True, "content": {JSON: {"schema": ref("ScoreRequest"), "examples": {
           "score": {"value": {"model": "iris@production", "dataset": DATASET_ID, "target": "species"}},
           "importance": {"value": {"kind": "importance", "model": "iris@production", "dataset": DATASET_ID,
                                    "target": "species", "n_repeats": 5}}}}}},
       description="202 with a new job; 200 with the earlier job when the same model version, dataset and "
                   "target (and, for importance, options) are already pending, running or done (unless "
                   "force). 409 while the dataset is not ready."),
    Op("get", "/api/v1/jobs/{job_id}", "Jobs", "A job's state, progress and result", {200: "Job"}, (401, 404)),
    Op("delete", "/api/v1/jobs/{job_id}", "Jobs", "Ask a job to stop", {202: "Job"}, (401, 403, 404),
       description="A pending job is cancelled at once; a running one stops at its next check."),
    Op("get", "/api/v1/jobs/{job_id}/aggregates", "Jobs", "Plot aggregates of a finished scoring job",
       {200: {"type": ["object", "null"], "description": "null when the job computed none (no target)."}},
       (401, 404, 409), description="409 until the job is done."),
    Op("get", "/api/v1/jobs/{job_id}/results", "Jobs", "Download a scoring job's predictions",
       {200: {"text/csv": {"schema": {"type": "string"}},
              "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}}}},
       (400, 401, 404, 409, 410),
       params=({"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "parquet"],
                                                            "default": "csv"}},),
       description="Streamed; 409 until a scoring job is done, 410 when its files are gone."),
    Op("get", "/api/v1/compare", "Jobs", "Compare finished scoring jobs over one dataset", {200: "Comparison"},
       (400, 401, 404),
       params=({"name": "jobs", "in": "query", "required": True, "style": "form", "explode": True,
                "description": "Job ids, the baseline first (2 to 8; repeat the parameter).",
                "schema": {"type": "array", "minItems": 2, "maxItems": 8, "uniqueItems": True,
                           "items": {"type": "string", "pattern": "^[0-9a-f]{32}$"}}},),
       description="Metrics side by side from each job, and the comparison job's state and result: a 95 % "
                   "bootstrap confidence interval for the difference in each main metric vs the first job, and the "
                   "rows where the models disagree most, once the comparison job has run (state not_started "
                   "until POST /api/v1/compare starts it: looking starts no work). 400 when the jobs are fewer "
                   "than two, unfinished, not scoring jobs, on different datasets or targets, or of different "
                   "tasks."),
    Op("post", "/api/v1/compare", "Jobs", "Start the comparison job of finished scoring jobs",
       {202: "Comparison", 200: "Comparison"}, (400, 401, 404, 503),
       body={"required": True, "content": {JSON: {"schema": ref("CompareRequest"), "example": {
           "jobs": [JOB_ID, "0a1b2c3d4e5f60718293a4b5c6d7e8f9"]}}}},
       description="202 with the new comparison job (any viewer may start it: it only reads results); 200 "
                   "with the existing one when it is pending, running or done, or failed and retry is false."),
    # --- datasets
    Op("get", "/api/v1/datasets", "Datasets", "Datasets, newest first, a page at a time", {200: "DatasetList"},
       (400, 401), params=PAGE_PARAMS, description="Follow 'next' (null on the last page) for older datasets."),
    Op("post", "/api/v1/datasets", "Datasets", "Upload a CSV or Parquet file", {201: "Dataset", 202: "Dataset"},
       (400, 401, 403, 413, 422, 503),
       body={"required": True, "content": {"multipart/form-data": {"schema": ref("DatasetUpload")}}},
       description="201 with a ready dataset when the file is small enough to ingest at once (a 422 says "
                   "what is wrong with it); otherwise 202 with the dataset and its ingest job."),
    Op("get", "/api/v1/datasets/{dataset_id}", "Datasets", "A dataset with its columns and first rows",
       {200: "Dataset"}, (401, 404)),
    Op("delete", "/api/v1/datasets/{dataset_id}", "Datasets", "Delete a dataset", {204: None},
       (401, 403, 404, 409), description="Refused (409) while unfinished jobs use it."),
    # --- the registry
    Op("get", "/api/v1/models", "Models", "List and search models", {200: "ModelList"}, (400, 401),
       params=({"name": "q", "in": "query", "description": "Substring of the name or description.",
                "schema": STRING},
               {"name": "sort", "in": "query", "schema": {"type": "string", "enum": ["name", "-name", "created",
                                                                                   "-created"],
                                                         "default": "name"}}, *PAGE_PARAMS),
       description="A page at a time: follow 'next' (null on the last page)."),
    Op("post", "/api/v1/models", "Models", "Upload a model file as the next version of a model",
       {201: "Version", 200: "Version"}, (400, 401, 403, 413, 422),
       body={"required": True, "content": {"multipart/form-data": {"schema": ref("ModelUpload")}}},
       description="201 with the new version; 200 with the latest version when the file is the same as it. "
                   "The file is loaded through the restricted loader before anything is stored."),
    Op("get", "/api/v1/models/{name}", "Models", "A model with its versions (name@alias: that version)",
       {200: {"anyOf": [ref("Model"), ref("Version")]}}, (401, 404)),
    Op("patch", "/api/v1/models/{name}", "Models", "Change a model's description or anonymous access",
       {200: "Model"}, (400, 401, 403, 404, 413),
       body={"required": True, "content": {JSON: {"schema": ref("ModelUpdate"),
                                                  "example": {"description": "Iris species, logistic regression"}}}}),
    Op("get", "/api/v1/models/{name}/versions/{version}", "Models", "One version", {200: "Version"}, (401, 404)),
    Op("delete", "/api/v1/models/{name}/versions/{version}", "Models",
       "Delete a version (and the model with its last version)", {204: None}, (401, 403, 404, 409)),
    Op("put", "/api/v1/models/{name}/aliases/{alias}", "Models", "Point an alias at a version",
       {200: "ModelSummary"}, (400, 401, 403, 404, 413),
       body={"required": True, "content": {JSON: {"schema": ref("AliasTarget"), "example": {"version": 1}}}}),
    Op("delete", "/api/v1/models/{name}/aliases/{alias}", "Models", "Remove an alias", {204: None},
       (401, 403, 404)),
    # --- predictions
    Op("post", "/api/v1/models/{name}/predict", "Predict", "Predict with the latest version (or name@alias)",
       {200: "Prediction"}, PREDICT_ERRORS, params=(OUTPUT,), body=MLFLOW_BODY, anonymous=True,
       description="Bodies as MLflow's scoring server takes them, or CSV. A token is optional when an admin "
                   "opened the model to anonymous predictions. At most 100,000 rows and 64 MiB."),
    Op("post", "/api/v1/models/{name}/versions/{version}/predict", "Predict", "Predict with one version",
       {200: "Prediction"}, PREDICT_ERRORS, params=(OUTPUT,), body=MLFLOW_BODY, anonymous=True),
    Op("post", "/invocations", "MLflow scoring server", "Predict with the served model (VIEWER_SERVE_MODEL)",
       {200: "MlflowPredictions"}, PREDICT_ERRORS, body=MLFLOW_BODY, anonymous=True,
       description="404 when this server serves no model. params.predict_method=predict_proba answers "
                   "probabilities."),
    Op("get", "/ping", "MLflow scoring server", "Liveness", {200: (TEXT, STRING)}, public=True),
    Op("get", "/health", "MLflow scoring server", "Readiness: the served model (if any) loads",
       {200: (TEXT, STRING), 503: (TEXT, STRING)}, public=True),
    Op("get", "/version", "MLflow scoring server", "The server's version", {200: (TEXT, STRING)}, public=True),
    # --- Open Inference Protocol
    Op("get", "/v2", "Open Inference Protocol", "Server metadata", {200: "V2ServerMetadata"}, public=True),
    Op("get", "/v2/health/live", "Open Inference Protocol", "Server liveness", {200: "V2Live"}, public=True),
    Op("get", "/v2/health/ready", "Open Inference Protocol", "Server readiness", {200: "V2Ready"}, public=True),
    Op("get", "/v2/models/{name}", "Open Inference Protocol", "Model metadata (latest version)",
       {200: "V2ModelMetadata"}, V2_ERRORS, anonymous=True),
    Op("get", "/v2/models/{name}/versions/{version}", "Open Inference Protocol", "Model metadata",
       {200: "V2ModelMetadata"}, V2_ERRORS, anonymous=True, path_params={"version": V2_VERSION}),
    Op("get", "/v2/models/{name}/ready", "Open Inference Protocol", "Model readiness (latest version)",
       {200: "V2ModelReady"}, V2_ERRORS, anonymous=True),
    Op("get", "/v2/models/{name}/versions/{version}/ready", "Open Inference Protocol", "Model readiness",
       {200: "V2ModelReady"}, V2_ERRORS, anonymous=True, path_params={"version": V2_VERSION}),
    Op("post", "/v2/models/{name}/infer", "Open Inference Protocol", "Inference (latest version)",
       {200: "V2InferenceResponse"}, V2_ERRORS + (413,), params=(V2_BINARY,), body=V2_BODY, anonymous=True,
       description="JSON tensors, or the binary tensor data extension that tritonclient uses."),
    Op("post", "/v2/models/{name}/versions/{version}/infer", "Open Inference Protocol", "Inference",
       {200: "V2InferenceResponse"}, V2_ERRORS + (413,), params=(V2_BINARY,), body=V2_BODY, anonymous=True,
       path_params={"version": V2_VERSION}),
    # --- this document
    Op("get", "/api/openapi.json", "Documentation", "This OpenAPI document",
       {200: {"type": "object", "required": ["openapi", "paths"]}}, AUTH),
]

TAGS = [  # the order of the docs page
    ("Models", "The model registry: upload, address (name, name@alias, name/version), alias, delete."),
    ("Predict", "Predictions over JSON or CSV, with MLflow's request bodies."),
    ("MLflow scoring server", "The routes of MLflow's scoring server (mlflow models serve), for one served model."),
    ("Open Inference Protocol", "KServe V2 over HTTP, as tritonclient and KServe clients speak it."),
    ("Datasets", "Tables to score: CSV or Parquet, stored as Parquet."),
    ("Jobs", "Background work on the Celery workers: scoring, ingesting, pinging."),
    ("Account", "Who you are and your API tokens."),
    ("Documentation", "This description of the API."),
]


def _media(spec: Any) -> dict[str, Any]:
    if isinstance(spec, dict) and "/" in next(iter(spec)):  # {media type: {"schema": ...}, ...}
        return spec
    if isinstance(spec, tuple):
        media_type, schema = spec
        return {media_type: {"schema": schema}}
    return {JSON: {"schema": ref(spec) if isinstance(spec, str) else spec}}


def _responses(op: Op) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for status, body in op.ok.items():
        entry: dict[str, Any] = {"description": {200: "OK", 201: "Created", 202: "Accepted", 204: "No content",
                                                 503: "Not ready"}[status]}
        if body is not None:
            entry["content"] = _media(body)
        out[str(status)] = entry
    for status in op.errors:
        entry = {"description": ERRORS[status], "content": {JSON: {"schema": ref("Error")}}}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": STRING, "description": 'Bearer realm="viewer"'}}
        out[str(status)] = entry
    return dict(sorted(out.items()))


NO_NUL = "^[^\\x00]*$"  # a NUL byte anywhere in the URL is a 400 before any view runs


def _no_nul(param: dict[str, Any]) -> dict[str, Any]:
    """A free-text query parameter says that it holds no NUL byte (PostgreSQL stores none)."""
    schema = param.get("schema") or {}
    if param.get("in") == "query" and schema.get("type") == "string" and not ({"pattern", "enum", "const", "format"} & set(schema)):
        return {**param, "schema": {**schema, "pattern": NO_NUL}}
    return param


def _operation(op: Op) -> dict[str, Any]:
    names = re.findall(r"{(\w+)}", op.path)
    params = [op.path_params.get(n) or PATH_PARAMS[n] for n in names] + [_no_nul(p) for p in op.params]
    entry: dict[str, Any] = {"tags": [op.tag], "summary": op.summary, "operationId": op.operation_id}
    if op.description:
        entry["description"] = op.description
    if params:
        entry["parameters"] = params
    if op.body is not None:
        entry["requestBody"] = op.body
    entry["responses"] = _responses(op)
    if params and "400" not in entry["responses"]:  # any parameter may carry a NUL byte: 400
        entry["responses"]["400"] = {"description": ERRORS[400], "content": {JSON: {"schema": ref("Error")}}}
        entry["responses"] = dict(sorted(entry["responses"].items()))
    if op.public:
        entry["security"] = []
    elif op.anonymous:
        entry["security"] = [{"bearerAuth": []}, {}]
    return entry


def build_spec() -> dict[str, Any]:
    """The whole document, built afresh (callers may change their copy)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return copy.deepcopy({
        "openapi": "3.1.0",
        "info": {
            "title": "Model results viewer API",
            "version": __version__,
            "description": "Registry, predictions and jobs of the model results viewer. Every route answers "
                           "JSON; errors are {\"error_code\", \"message\"}. Send an API token from your account "
                           "page as 'Authorization: Bearer <token>'; the session cookie is never accepted here.",
        },
        "servers": [{"url": "/"}],
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer",
                                               "description": "An API token from /account/."}},
            "schemas": SCHEMAS,
        },
    })


@bp.get("/api/openapi.json")
def openapi_json():
    return jsonify(build_spec())
