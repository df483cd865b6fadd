"""``/api/v1/models``: the model registry over JSON."""

from __future__ import annotations

from flask import jsonify, request

from ..http.auth import identity, requester, role_required
from ..services import registry
from ..services.errors import ServiceError
from .v1 import bp, json_body, next_link, page_args


@bp.get("/models")
def list_models():
    sort = request.args.get("sort", "name")
    if sort not in registry.SORTS:
        raise ServiceError("invalid", "bad_request", f"'sort' must be one of {', '.join(registry.SORTS)}.")
    limit, offset = page_args()
    found = registry.page_of_models(request.args.get("q", ""), sort, limit, offset)
    return jsonify(models=[registry.model_dict(m, with_versions=False) for m in found.items],
                   next=next_link(found.next_offset))


@bp.post("/models")
@role_required("scientist")
def upload_model():
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        raise ServiceError("invalid", "bad_request", "Send the model as a multipart form field named 'file'.")
    version, created = registry.register(
        upload.stream, name=request.form.get("name", ""), filename=upload.filename,
        description=request.form.get("description", ""), user=requester())
    return jsonify(registry.version_dict(version)), 201 if created else 200


@bp.get("/models/<name>")
def get_model(name: str):
    if "@" in name:  # name@alias names a version
        return jsonify(registry.version_dict(registry.resolve(name)))
    return jsonify(registry.model_dict(registry.get_model(name)))


@bp.patch("/models/<name>")
@role_required("scientist")
def update_model(name: str):
    model = registry.get_model(name)
    body = json_body("Send a JSON object.")
    description = body.get("description")
    if "description" in body and not isinstance(description, str):
        raise ServiceError("invalid", "bad_request", "'description' must be a string.")
    anonymous = body.get("anonymous_predict")
    if "anonymous_predict" in body:
        if not identity().has_role("admin"):
            raise ServiceError("forbidden", "forbidden", "Only an admin can open a model to anonymous predictions.")
        if not isinstance(anonymous, bool):
            raise ServiceError("invalid", "bad_request", "'anonymous_predict' must be true or false.")
    registry.update_model(model, description=description, anonymous_predict=anonymous)
    return jsonify(registry.model_dict(model))


@bp.get("/models/<name>/versions/<int:version>")
def get_version(name: str, version: int):
    return jsonify(registry.version_dict(registry.resolve(registry.Ref(name, version=version))))


@bp.delete("/models/<name>/versions/<int:version>")
@role_required("scientist")
def delete_version(name: str, version: int):
    registry.delete_version(registry.resolve(registry.Ref(name, version=version)))
    return "", 204


@bp.put("/models/<name>/aliases/<alias>")
@role_required("scientist")
def put_alias(name: str, alias: str):
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("version"), int) or isinstance(body["version"], bool):
        raise ServiceError("invalid", "bad_request", 'Send {"version": <number>}.')
    registry.set_alias(registry.get_model(name), alias, body["version"])
    return jsonify(registry.model_dict(registry.get_model(name), with_versions=False))


@bp.delete("/models/<name>/aliases/<alias>")
@role_required("scientist")
def delete_alias(name: str, alias: str):
    registry.remove_alias(registry.get_model(name), alias)
    return "", 204
