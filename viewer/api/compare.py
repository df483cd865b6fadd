"""``/api/v1/compare``: finished scoring jobs over one dataset, side by side (see
``services.comparison``). GET looks; POST starts the comparison job (work starts only on POST)."""

from __future__ import annotations

from flask import jsonify, request

from ..http.auth import requester, role_required
from ..services import comparison
from ..services.errors import ServiceError
from .v1 import bp, json_body


def _answer(spec, job, status: int = 200):
    return jsonify({**comparison.summary(spec), "comparison": comparison.comparison_view(spec, job)}), status


@bp.get("/compare")
@role_required("viewer")
def compare_jobs():
    if "retry" in request.args:
        raise ServiceError("invalid", "bad_request", 'Looking starts no work: to compute a comparison again, '
                           'POST /api/v1/compare with {"jobs": [...], "retry": true}.')
    spec = comparison.load(comparison.parse_ids(request.args.getlist("jobs")))
    return _answer(spec, comparison.comparison_job(spec))


@bp.post("/compare")
@role_required("viewer")
def start_comparison():
    """Start the comparison job (202), or answer the one that exists (200)."""
    body = json_body('Send JSON: {"jobs": ["<job id>", "<job id>", ...], "retry": false}.')
    ids, retry = body.get("jobs"), body.get("retry", False)
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise ServiceError("invalid", "bad_request", "'jobs' must be a list of job ids.")
    if not isinstance(retry, bool):
        raise ServiceError("invalid", "bad_request", "'retry' must be true or false.")
    spec = comparison.load(comparison.parse_ids(ids))
    job, created = comparison.start(spec, requester(), retry=retry)
    return _answer(spec, job, 202 if created else 200)


