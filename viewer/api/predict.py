"""Prediction routes: ``/api/v1/models/<ref>/predict`` and MLflow's scoring-server routes.

Both parse with ``core.payload.parse_mlflow`` and predict with ``services.serving.run``; the
answer is written by the app's orjson JSON provider. Every request goes through Flask's own
machinery; these views are kept lean by design (token checks and models cached per process,
no cookie session, CSRF or rate limiter on the API blueprints).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, after_this_request, current_app, jsonify, request

from ..infra.config import VERSION as __version__
from ..core.payload import PayloadError, parse_mlflow
from ..http.auth import allow_anonymous_if, identity, public
from ..services import predlog, serving
from ..services.errors import ServiceError
from ..services.registry import Ref
from .inputs import MlflowRequest, PredictQuery
from .outputs import MlflowPredictions, Prediction
from .spec import checks
from .v1 import bp

MAX_PREDICT_BYTES = 64 * 2**20
PREDICT_ERRORS = (400, 401, 404, 410, 413, 415)
CSV_BODY = {"requestBody": {"content": {"text/csv": {"schema": {"type": "string"}, "example": (
    "sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")}}}}
TEXT = {"responses": {"200": {"content": {"text/plain": {"schema": {"type": "string"}}}}}}

mlflow_bp = Blueprint("mlflow", __name__)


def body() -> bytes:
    if (request.content_length or 0) > MAX_PREDICT_BYTES:
        raise PayloadError(f"The request body is over {MAX_PREDICT_BYTES // 2**20} MiB; score large inputs with "
                           "a scoring job (POST /api/v1/jobs).", "REQUEST_TOO_LARGE", 413)
    return request.get_data(cache=False)


WARNINGS_HEADER = "X-Viewer-Warnings"
MAX_WARNINGS_HEADER = 4096  # bytes: proxies refuse headers of some 8 KiB


def strict() -> bool:
    return serving.query_flag(request.args.get("strict"))


def refused(exc: PayloadError):
    """A strict refusal: the error, and every warning it was made of (column, rows, fix)."""
    return jsonify(error_code=exc.error_code, message=exc.message, warnings=getattr(exc, "warnings", [])), exc.status


def warnings_header(found: list[dict[str, Any]]) -> dict[str, str]:
    """The warnings as one JSON header (ASCII, at most MAX_WARNINGS_HEADER bytes: the last ones
    give way to a count of those left out), for routes whose body is another protocol's."""
    if not found:
        return {}
    kept = list(found)
    while True:
        shown = kept + ([{"code": "more_warnings", "message": f"{len(found) - len(kept)} more warnings left out."}]
                        if len(kept) < len(found) else [])
        text = json.dumps(shown, ensure_ascii=True, separators=(",", ":"))
        if len(text) <= MAX_WARNINGS_HEADER or not kept:
            return {WARNINGS_HEADER: text[:MAX_WARNINGS_HEADER]}
        kept.pop()


def begin(route: str) -> predlog.Call:
    """The request's id for the prediction log (the client's X-Request-ID, checked, or a new
    one), returned in the X-Request-ID header of every answer, errors included."""
    call = predlog.begin(route, request.headers.get(predlog.HEADER))

    @after_this_request
    def _header(response):
        response.headers[predlog.HEADER] = call.request_id
        return response

    return call


def _predict(ref: str):
    call = begin("v1")
    served = serving.resolve(ref)
    explain = serving.query_flag(request.args.get("explain"), "explain")
    if explain and identity() is None:  # contributions are measured from the project's own rows
        raise ServiceError("unauthorized", "unauthorized", "explain=true needs a token of the model's project: "
                           "explanations are measured from the project's data, which anonymous callers do not see.")
    table = parse_mlflow(body(), request.content_type or "")
    try:
        result = serving.run(served, table, proba=serving.wants_proba(table.params, request.args.get("output") or None),
                             strict=strict(), call=call, explain=explain)
    except PayloadError as exc:
        if hasattr(exc, "warnings"):
            return refused(exc)
        raise
    return jsonify({"model": served.ref, "request_id": call.request_id, **result})


@bp.post("/models/<name>/predict")
@checks("Predict", {200: Prediction}, PREDICT_ERRORS, query=PredictQuery, json=MlflowRequest, extra=CSV_BODY,
        check=False)
@allow_anonymous_if(lambda name: serving.anonymous_allowed(name))
def predict(name: str):
    """Predict with the latest version (or name@alias)

    Bodies as MLflow's scoring server takes them, or CSV. A token is optional when an admin opened
    the model to anonymous predictions. At most 100,000 rows and 64 MiB. Columns the model does not
    take are ignored; they, unknown categories, values the model imputes and the model's own
    warnings are listed in ``warnings`` (?strict=true: a 400 instead). ?explain=true adds each
    row's contributions per input column (at most 100 rows), which add up to the model's raw output."""
    return _predict(name)


@bp.post("/models/<name>/versions/<int:version>/predict")
@checks("Predict", {200: Prediction}, PREDICT_ERRORS, query=PredictQuery, json=MlflowRequest, extra=CSV_BODY,
        check=False)
@allow_anonymous_if(lambda name, version: serving.anonymous_allowed(str(Ref(name, version=version))))
def predict_version(name: str, version: int):
    """Predict with one version"""
    return _predict(str(Ref(name, version=version)))


# --- MLflow scoring server compatibility ---------------------------------------------------------

def _served_ref() -> str:
    ref = current_app.config.get("SERVE_MODEL")
    if not ref:
        raise ServiceError("not_found", "not_found",
                           "No model is served here: set VIEWER_SERVE_MODEL to name, name@alias or name/version.")
    return ref


@mlflow_bp.post("/invocations")
@checks("MLflow scoring server", {200: MlflowPredictions}, PREDICT_ERRORS, json=MlflowRequest, extra=CSV_BODY,
        check=False)
@allow_anonymous_if(lambda: serving.anonymous_allowed(current_app.config.get("SERVE_MODEL") or ""))
def invocations():
    """Predict with the served model (VIEWER_SERVE_MODEL)

    404 when this server serves no model. params.predict_method=predict_proba answers probabilities.
    The body is MLflow's; warnings about the input (ignored columns, unknown categories, imputed
    values, the model's own warnings) come in the X-Viewer-Warnings header as a JSON list.
    ?strict=true refuses such input with a 400 instead."""
    call = begin("mlflow")
    served = serving.resolve(_served_ref())
    table = parse_mlflow(body(), request.content_type or "")
    try:
        result = serving.run(served, table, proba=serving.wants_proba(table.params, None), strict=strict(), call=call)
    except PayloadError as exc:
        if hasattr(exc, "warnings"):
            return refused(exc)
        raise
    # MLflow's shape: {"predictions": [...]}; with predict_method=predict_proba, one list per row. The
    # schema policy's warnings travel in the X-Viewer-Warnings header.
    return jsonify({"predictions": result.get("probabilities", result["predictions"])}), 200, \
        warnings_header(result["warnings"])


@mlflow_bp.get("/ping")
@checks("MLflow scoring server", {200: None}, extra=TEXT)
@public
def ping():
    """Liveness"""
    return "\n", 200, {"Content-Type": "text/plain"}


@mlflow_bp.get("/health")
@checks("MLflow scoring server", {200: None, 503: None},
        extra={"responses": {code: TEXT["responses"]["200"] for code in ("200", "503")}})
@public
def health():
    """Readiness: the served model (if any) loads"""
    ref = current_app.config.get("SERVE_MODEL")
    if ref:
        try:
            serving.resolve(ref)
        except Exception:  # noqa: BLE001
            return "The served model is not available.\n", 503, {"Content-Type": "text/plain"}
    return "\n", 200, {"Content-Type": "text/plain"}


@mlflow_bp.get("/version")
@checks("MLflow scoring server", {200: None}, extra=TEXT)
@public
def version():
    """The server's version"""
    return __version__, 200, {"Content-Type": "text/plain"}
