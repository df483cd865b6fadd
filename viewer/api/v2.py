"""Open Inference Protocol (KServe V2) routes over the registry's models."""

from __future__ import annotations

import numpy as np
from flask import Blueprint, Response, jsonify, request

from ..infra.config import VERSION as __version__
from ..core import v2
from ..core.payload import PayloadError
from ..http.auth import allow_anonymous_if, public
from ..services import health, serving
from ..services.registry import Ref
from .inputs import V2Headers, V2InferenceRequest
from .outputs import V2InferenceResponse, V2Live, V2ModelMetadata, V2ModelReady, V2Ready, V2ServerMetadata
from .predict import begin, body, refused, strict
from .spec import checks

TAG = "Open Inference Protocol"
ERRORS = (400, 401, 404, 410)
BINARY_BODY = {"requestBody": {"content": {"application/octet-stream": {"schema": {
    "type": "string", "format": "binary",
    "description": "Binary tensor data extension: the JSON header (Inference-Header-Content-Length bytes), then "
                   "each input's data in order."}}}}}

bp = Blueprint("v2", __name__, url_prefix="/v2")


def _is_number(version: str) -> bool:
    return version.isascii() and version.isdigit()  # str.isdigit() alone takes "²", which int() refuses


def _ref(name: str, version: str | None) -> str:
    if version is None:
        return name
    if not _is_number(version):
        raise PayloadError("Version must be a number.", "BAD_REQUEST", 400)
    return str(Ref(name, version=int(version)))


def _anonymous(name: str, version: str | None = None) -> bool:
    return serving.anonymous_allowed(name if version is None or not _is_number(version) else f"{name}/{version}")


@bp.get("")
@checks(TAG, {200: V2ServerMetadata})
@public
def server_metadata():
    """Server metadata"""
    return jsonify(name="model-results-viewer", version=__version__, extensions=["binary_tensor_data"])


@bp.get("/health/live")
@checks(TAG, {200: V2Live})
@public
def live():
    """Server liveness"""
    return jsonify(live=True)


@bp.get("/health/ready")
@checks(TAG, {200: V2Ready}, (503,))
@public
def ready():
    """Server readiness

    Ready means able to serve: the database answers (a down database is a 503 here, via the
    error handler), so a load balancer stops sending predictions that would fail."""
    health.database_ready()
    return jsonify(ready=True)


@bp.get("/models/<name>")
@bp.get("/models/<name>/versions/<version>")
@checks(TAG, {200: V2ModelMetadata}, ERRORS)
@allow_anonymous_if(_anonymous)
def model_metadata(name: str, version: str | None = None):
    """Model metadata (the latest version, or the version named)"""
    served = serving.resolve(_ref(name, version))
    predictor = serving.serving(served)
    if predictor.feature_names:
        inputs = [{"name": f["name"], "datatype": "BYTES" if f.get("kind") == "categorical" else "FP64", "shape": [-1]}
                  for f in predictor.info.get("input_schema") or [] if f.get("kind") != "unused"] or \
                 [{"name": n, "datatype": "FP64", "shape": [-1]} for n in predictor.feature_names]
    else:
        inputs = [{"name": "input-0", "datatype": "FP64", "shape": [-1, predictor.n_features or -1]}]
    classes = predictor.classes
    outputs = [{"name": "predict", "datatype": v2.datatype_of(np.asarray(classes)) if classes else "FP64", "shape": [-1]}]
    if predictor.has_proba:
        outputs.append({"name": "predict_proba", "datatype": "FP64", "shape": [-1, len(classes or [])]})
        if served.threshold is not None and classes is not None and len(classes) == 2:
            outputs.append({"name": "decision", "datatype": outputs[0]["datatype"], "shape": [-1]})
    versions = [str(v) for v in serving.versions_of(served.name)]
    return jsonify(name=served.name, versions=versions, platform="scikit-learn", inputs=inputs, outputs=outputs)


@bp.get("/models/<name>/ready")
@bp.get("/models/<name>/versions/<version>/ready")
@checks(TAG, {200: V2ModelReady}, ERRORS)
@allow_anonymous_if(_anonymous)
def model_ready(name: str, version: str | None = None):
    """Model readiness (the latest version, or the version named)"""
    served = serving.resolve(_ref(name, version))
    return jsonify(name=served.name, ready=served.quarantined is None)


@bp.post("/models/<name>/infer")
@bp.post("/models/<name>/versions/<version>/infer")
@checks(TAG, {200: V2InferenceResponse}, ERRORS + (413,), headers=V2Headers, json=V2InferenceRequest,
        extra=BINARY_BODY, check=False)
@allow_anonymous_if(_anonymous)
def infer(name: str, version: str | None = None):
    """Inference (the latest version, or the version named)

    JSON tensors, or the binary tensor data extension that tritonclient uses. Warnings about the input
    (ignored inputs, unknown categories, imputed values, the model's own) are listed in
    ``parameters.warnings``; ?strict=true refuses such input with a 400 instead."""
    call = begin("v2")
    served = serving.resolve(_ref(name, version))
    table, wanted, request_id = v2.decode_request(body(), request.headers.get("Inference-Header-Content-Length"))
    try:
        answers, found = serving.infer_outputs(served, table, wanted, strict=strict(), call=call)
    except PayloadError as exc:
        if hasattr(exc, "warnings"):
            return refused(exc)
        raise
    outputs = [v2.output(name_, values) for name_, values in answers]
    answer = {"model_name": served.name, "model_version": str(served.version), "outputs": outputs}
    if found:  # the schema policy's warnings (README "Schema policy")
        answer["parameters"] = {"warnings": found}
    if request_id is not None:
        answer["id"] = request_id
    return Response(v2.encode(answer), mimetype="application/json")
