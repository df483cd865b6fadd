"""``/api/v1/models``: the model registry over JSON."""

from __future__ import annotations

from flask import jsonify

from ..http.auth import identity, requester, role_required
from ..services import decisions, hosts, registry
from ..services.errors import ServiceError
from .inputs import AliasTarget, ModelQuery, ModelUpdate, ModelUpload, MoveRequest, ThresholdBody
from .outputs import Model, ModelList, ModelOrVersion, ModelSummary, Version
from .spec import checks, valid
from .v1 import bp, next_link


@bp.get("/models")
@checks("Models", {200: ModelList}, (400, 401), query=ModelQuery)
def list_models():
    """List and search models, a page at a time

    Follow 'next' (null on the last page)."""
    query = valid("query")
    found = registry.page_of_models(query.q, query.sort, query.limit, query.offset)
    return jsonify(models=[registry.model_dict(m, with_versions=False) for m in found.items],
                   next=next_link(found.next_offset))


@bp.post("/models")
@role_required("scientist")
@checks("Models", {201: Version, 200: Version}, (400, 401, 403, 413, 422), form=ModelUpload)
def upload_model():
    """Upload a model file as the next version of a model

    201 with the new version; 200 with the latest version when the file is the same as it. The file
    is loaded through the restricted loader before anything is stored."""
    form = valid("form")
    version, created = registry.register(form.file.stream, name=form.name, filename=form.file.filename,
                                         description=form.description, user=requester())
    return jsonify(registry.version_dict(version)), 201 if created else 200


@bp.get("/models/<name>")
@checks("Models", {200: ModelOrVersion}, (401, 404))
def get_model(name: str):
    """A model with its versions (name@alias: that version)"""
    if "@" in name:  # name@alias names a version
        return jsonify(registry.version_dict(registry.resolve(name)))
    return jsonify(registry.model_dict(registry.get_model(name)))


@bp.patch("/models/<name>")
@role_required("scientist")
@checks("Models", {200: Model}, (400, 401, 403, 404, 413), json=ModelUpdate)
def update_model(name: str):
    """Change a model's description, anonymous access, runtime switch or prediction log settings"""
    model = registry.get_model(name)
    body = valid("json")
    if "anonymous_predict" in body.model_fields_set and not identity().has_role("admin"):
        raise ServiceError("forbidden", "forbidden", "Only an admin can open a model to anonymous predictions.")
    registry.update_model(model, description=body.description, anonymous_predict=body.anonymous_predict,
                          serve_with=body.serve_with,
                          log=body.log.model_dump(exclude_unset=True) if body.log is not None else None,
                          monitor=body.monitor.model_dump(exclude_unset=True) if body.monitor is not None else None)
    return jsonify(registry.model_dict(model))


@bp.post("/models/<name>/move")
@role_required("admin")
@checks("Models", {200: ModelSummary}, (400, 401, 403, 404, 409), json=MoveRequest)
def move_model(name: str):
    """Move a model into another project

    With its versions and aliases; its past jobs stay where they ran. Needs the admin role in both
    projects; 409 when the other project has a model of that name."""
    model = registry.move(registry.get_model(name), valid("json").project)
    return jsonify(registry.model_dict(model, with_versions=False))


@bp.get("/models/<name>/versions/<int:version>")
@checks("Models", {200: Version}, (401, 404))
def get_version(name: str, version: int):
    """One version"""
    return jsonify(registry.version_dict(registry.resolve(registry.Ref(name, version=version))))


@bp.delete("/models/<name>/versions/<int:version>")
@role_required("scientist")
@checks("Models", {204: None}, (401, 403, 404, 409))
def delete_version(name: str, version: int):
    """Delete a version (and the model with its last version)"""
    registry.delete_version(registry.resolve(registry.Ref(name, version=version)))
    return "", 204


@bp.put("/models/<name>/versions/<int:version>/threshold")
@role_required("scientist")
@checks("Models", {200: Version}, (400, 401, 403, 404, 413), json=ThresholdBody)
def put_threshold(name: str, version: int):
    """Save a binary classifier version's decision threshold

    Its predictions with probabilities then also give decision (v1, the prediction page; V2 as an
    output), and the monitoring page's confusion matrices use it. Who and when are recorded."""
    found = registry.resolve(registry.Ref(name, version=version))
    decisions.set_threshold(found, valid("json").threshold, requester())
    registry.changed()
    return jsonify(registry.version_dict(found))


@bp.delete("/models/<name>/versions/<int:version>/threshold")
@role_required("scientist")
@checks("Models", {200: Version}, (401, 403, 404))
def delete_threshold(name: str, version: int):
    """Clear a version's decision threshold (decisions by the argmax again)"""
    found = registry.resolve(registry.Ref(name, version=version))
    decisions.set_threshold(found, None, requester())
    registry.changed()
    return jsonify(registry.version_dict(found))


@bp.post("/models/<name>/versions/<int:version>/release")
@role_required("admin")
@checks("Models", {200: Version}, (401, 403, 404))
def release_version(name: str, version: int):
    """Release a quarantined version

    It serves again (with every version of the same file) and its host failures are forgotten."""
    found = registry.resolve(registry.Ref(name, version=version))
    hosts.release(found)
    return jsonify(registry.version_dict(found))


@bp.put("/models/<name>/aliases/<alias>")
@role_required("scientist")
@checks("Models", {200: ModelSummary}, (400, 401, 403, 404, 413), json=AliasTarget)
def put_alias(name: str, alias: str):
    """Point an alias at a version"""
    registry.set_alias(registry.get_model(name), alias, valid("json").version)
    return jsonify(registry.model_dict(registry.get_model(name), with_versions=False))


@bp.delete("/models/<name>/aliases/<alias>")
@role_required("scientist")
@checks("Models", {204: None}, (401, 403, 404))
def delete_alias(name: str, alias: str):
    """Remove an alias"""
    registry.remove_alias(registry.get_model(name), alias)
    return "", 204
