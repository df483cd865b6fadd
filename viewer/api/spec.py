"""The OpenAPI 3.1 document, generated from the code: ``GET /api/openapi.json``.

spectree collects every route decorated with ``checks`` (strict mode: nothing else), with the
pydantic models of ``inputs`` (which also check each request before the view runs) and
``outputs``; the views' docstrings give the summaries. ``build_spec`` adds what the code knows
elsewhere: who may call a route (``http.auth``'s ``public`` / ``allow_anonymous_if`` marks), the
path parameters' examples, and the other media types some routes take or answer.

Why spectree + pydantic: pydantic models express the predict bodies' unions exactly and give an
independent validator to hold core's parser to; pydantic writes JSON Schema 2020-12, which is
OpenAPI 3.1's own; the views stay plain Flask views on plain blueprints.
"""

from __future__ import annotations

import copy
import re
import threading
from typing import Any, Callable

from flask import Blueprint, Flask, current_app, jsonify, request
from pydantic import BaseModel, ConfigDict
from spectree import Response, SpecTree
from spectree.model_adapter.pydantic_adapter import PydanticModelAdapter
from spectree.plugins.flask_plugin import FlaskPlugin

from ..infra.config import VERSION
from ..infra.records import ALIAS_PATTERN
from ..services.errors import ServiceError
from .inputs import DATASET_ID, JOB_ID
from .outputs import Error

JSON = "application/json"
API_PREFIXES = ("/api/", "/v2", "/invocations", "/ping", "/health", "/version")
TAGS = [  # the docs page's order
    ("Models", "The model registry: upload, address (name, name@alias, name/version), alias, delete."),
    ("Predict", "Predictions over JSON or CSV, with MLflow's request bodies."),
    ("MLflow scoring server", "The routes of MLflow's scoring server (mlflow models serve), for one served model."),
    ("Open Inference Protocol", "KServe V2 over HTTP, as tritonclient and KServe clients speak it."),
    ("Datasets", "Tables to score: CSV or Parquet, stored as Parquet."),
    ("Jobs", "Background work on the Celery workers: scoring, ingesting, comparing, pinging."),
    ("Account", "Who you are and your API tokens."),
    ("Documentation", "This description of the API."),
]
ERRORS: dict[int, str] = {
    400: "The request is malformed or does not fit the route (error_code and message name the problem).",
    401: "No valid API token: send 'Authorization: Bearer <token>'.",
    403: "Your role may not do this.",
    404: "No such model, version, alias, dataset, job or token.",
    409: "Conflict with the current state (e.g. a version or dataset used by unfinished jobs).",
    410: "A file this needs is gone from the store (a model's file, a job's results).",
    413: "The request is too large.",
    415: "Unsupported content type.",
    422: "The file is not a loadable, safe scikit-learn model (or a readable dataset).",
    503: "A backing service (the job queue, the database) is unreachable.",
}
OK = {200: "OK", 201: "Created", 202: "Accepted", 204: "No content", 503: "Not ready"}
PATH_PARAMS: dict[str, dict[str, Any]] = {  # by name and the converter's schema type
    "name": {"example": "iris", "description": "A model name; where a version is meant, also name@alias.",
             "schema": {"type": "string", "minLength": 1}},
    "version:integer": {"example": 1, "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}},
    "version:string": {"example": "1", "description": "A version number (digits).",
                       "schema": {"type": "string", "pattern": "^[0-9]+$"}},
    "alias": {"example": "production", "schema": {"type": "string", "pattern": ALIAS_PATTERN}},
    "job_id": {"example": JOB_ID, "schema": {"type": "string"}},
    "dataset_id": {"example": DATASET_ID, "schema": {"type": "string"}},
    "token_id": {"schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}},
}


class _Adapter(PydanticModelAdapter):
    """Refusals are worded by ``_refuse`` (spectree's own list would echo the input)."""

    def validation_errors(self, err):
        return []


class _Plugin(FlaskPlugin):
    """Requests are checked; answers pass through untouched (see ``outputs``): a streamed download
    is never read into memory here."""

    def validate_response(self, resp, resp_model, skip_validation, force_resp_serialize):
        return resp, None


def _say(error: dict[str, Any]) -> str:
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    text = error["msg"].removeprefix("Value error, ")
    if error["type"] == "missing":
        text = "is required"
    elif error["type"] == "extra_forbidden":
        text = "is not a field of this request"
    elif error["type"] in ("model_type", "dict_type", "model_attributes_type"):
        text = "should be an object"
    text = re.sub(r"^(Input|String|List|Value|Dictionary|Object) should", "should", text)
    return f"'{where}' {text}" if where else f"The body {text}"


def _refuse(req, resp, error, instance, adapter) -> None:
    """Before the view: a request that its route's models refuse is a 400 naming each problem."""
    metadata = api.get_function_metadata(current_app.view_functions[request.endpoint])
    if metadata is not None and request.method not in ("GET", "DELETE"):
        if metadata.form is not None and request.mimetype != "multipart/form-data":
            raise ServiceError("invalid", "bad_request", "Send the file as multipart/form-data (a file field named "
                               "'file'); the API document (/docs/api) lists the fields.")
        if metadata.json is not None and not isinstance(request.get_json(silent=True), dict):
            raise ServiceError("invalid", "bad_request", "Send a JSON object (Content-Type: application/json); the "
                               "API document (/docs/api) lists its fields.")
    if error is not None:
        problems = [_say(e) for e in error.errors(include_url=False)]
        raise ServiceError("invalid", "bad_request", "The request does not fit this route: " + "; ".join(problems[:5])
                           + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
                           + ". The API document (/docs/api) lists what each route takes.")


api = SpecTree("flask", backend=_Plugin, mode="strict", annotations=False, validation_error_status=400,
               validation_error_model=Error, before=_refuse, model_adapter=_Adapter(), naming_strategy=lambda model: model.__name__,
               nested_naming_strategy=lambda parent, child: child)


def checks(tag: str, ok: dict[int, Any], errors: tuple[int, ...] = (), *, extra: dict[str, Any] | None = None,
           check: bool = True, **models: Any) -> Callable:
    """Document a view (its tag, answers by status, errors, and the ``query`` / ``json`` / ``form`` /
    ``headers`` models it takes) and check each request against those models before it runs.
    ``check=False`` documents only (the predict routes: core's parser reads their bodies), as does
    a route that takes no models (nothing to check: its view is left unwrapped).
    ``extra`` is merged into the operation (media types pydantic cannot describe)."""
    answers: dict[str, Any] = {}
    for status, model in ok.items():
        answers[f"HTTP_{status}"] = (model, OK[status])
    for status in errors:
        answers[f"HTTP_{status}"] = (Error, ERRORS[status])

    check = check and bool(models)  # nothing to check: documented only, never wrapped

    def decorate(view: Callable) -> Callable:
        checked = api.validate(tags=[tag], resp=Response(**answers), skip_validation=not check, **models)(view)
        checked.openapi_extra = extra or {}  # type: ignore[attr-defined]
        if check:
            return checked
        # documented, never wrapped: the hot path stays as it is
        api._function_metadata[view] = api.get_function_metadata(checked)  # spectree 3.0 (pinned); tested
        view.openapi_extra = extra or {}  # type: ignore[attr-defined]
        return view

    return decorate


def valid(part: str) -> Any:
    """The request's checked ``query``, ``json`` or ``form`` model."""
    return getattr(request.context, part)


# --- the document ---------------------------------------------------------------------------------

def _unwrap(view: Callable, name: str, default: Any = None) -> Any:
    while view is not None:
        if name in getattr(view, "__dict__", {}):
            return view.__dict__[name]
        view = getattr(view, "__wrapped__", None)
    return default


def _merge(into: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _untitled(node: Any, parent: str = "") -> Any:
    """pydantic's per-field titles repeat the names: left out."""
    if isinstance(node, dict):
        return {k: _untitled(v, k) for k, v in node.items() if not (k == "title" and parent != "properties"
                                                                    and isinstance(v, str))}
    if isinstance(node, list):
        return [_untitled(v) for v in node]
    return node


def _referenced(spec: dict[str, Any]) -> dict[str, Any]:
    """The schemas that the paths use, directly or through other schemas (query and header models
    are inlined as parameters, so theirs are left out)."""
    schemas, seen, todo = spec["components"]["schemas"], set(), [spec["paths"]]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            name = ref.rsplit("/", 1)[-1] if isinstance(ref, str) and ref.startswith("#/components/schemas/") else None
            if name and name not in seen:
                seen.add(name)
                todo.append(schemas[name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return {name: schemas[name] for name in sorted(seen)}


def _operation_id(method: str, path: str) -> str:
    words = re.sub(r"[{}]", "", path).replace("openapi.json", "openapi").strip("/")
    return method + "_" + re.sub(r"[^A-Za-z0-9]+", "_", words)


def _finish(path: str, method: str, operation: dict[str, Any], view: Callable) -> None:
    operation["operationId"] = _operation_id(method, path)
    if not operation.get("description"):
        operation.pop("description", None)
    for param in operation.get("parameters", []):
        if param["in"] == "path":
            known = PATH_PARAMS.get(param["name"]) or PATH_PARAMS[f"{param['name']}:{param['schema']['type']}"]
            param.update(known)
        param["schema"].pop("description", None)  # said once, beside the parameter
        if not param.get("description"):
            param.pop("description", None)
    responses = operation["responses"]
    if operation.get("parameters") and "400" not in responses:  # any parameter may carry a NUL byte
        responses["400"] = {"content": {JSON: {"schema": {"$ref": "#/components/schemas/Error"}}}}
    if "400" in responses:
        responses["400"]["description"] = ERRORS[400]
    if "401" in responses:
        responses["401"]["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"},
                                                            "description": 'Bearer realm="viewer"'}}
    if _unwrap(view, "is_public", False):
        operation["security"] = []
    elif _unwrap(view, "allows_anonymous") is not None:
        operation["security"] = [{"bearerAuth": []}, {}]
    _merge(operation, _unwrap(view, "openapi_extra", {}))
    operation["responses"] = dict(sorted(responses.items()))


_building = threading.Lock()


def build_spec(app: Flask | None = None) -> dict[str, Any]:
    """The document of ``app`` (the current one by default), generated once per app."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    with _building:
        return app.extensions.get("openapi") or _build(app)


def _build(app: Flask) -> dict[str, Any]:
    """spectree's document of the app's routes, finished with what the code knows elsewhere."""
    models = copy.deepcopy(api.models)  # spectree moves nested definitions out of them as it goes
    try:
        with app.app_context():
            spec = api._generate_spec()
    finally:
        api.models = models
    views = {(m.lower(), rule.rule): app.view_functions[rule.endpoint]
             for rule in app.url_map.iter_rules() for m in rule.methods}
    for path, item in spec["paths"].items():
        flask_path = re.sub(r"{(\w+)}", r"<\1>", path)
        for method, operation in item.items():
            view = next(v for (m, rule), v in views.items()
                        if m == method and re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"<\1>", rule) == flask_path)
            _finish(path, method, operation, view)
    spec = _untitled(spec)
    spec.update(
        info={"title": "Model results viewer API", "version": VERSION,
              "description": "Registry, predictions and jobs of the model results viewer. Every route answers "
                             "JSON; errors are {\"error_code\", \"message\"}. Send an API token from your account "
                             "page as 'Authorization: Bearer <token>'; the session cookie is never accepted here."},
        servers=[{"url": "/"}], tags=[{"name": n, "description": d} for n, d in TAGS],
        security=[{"bearerAuth": []}], paths=dict(sorted(spec["paths"].items())))
    spec["components"]["securitySchemes"] = {"bearerAuth": {"type": "http", "scheme": "bearer",
                                                            "description": "An API token from /account/."}}
    spec["components"]["schemas"] = _referenced(spec)
    app.extensions["openapi"] = spec
    return spec


class OpenApiDocument(BaseModel):
    """An OpenAPI 3.1 document."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    paths: dict[str, Any]


bp = Blueprint("document", __name__)


@bp.get("/api/openapi.json")
@checks("Documentation", {200: OpenApiDocument}, (401,))
def openapi_json():
    """This OpenAPI document"""
    return jsonify(build_spec())
