"""``GET /api/v1/compare``: finished scoring jobs over one dataset, side by side (see
``services.comparison``)."""

from __future__ import annotations

from flask import jsonify, request

from ..http.auth import requester, role_required
from ..services import comparison
from .v1 import bp, flag


@bp.get("/compare")
@role_required("viewer")
def compare_jobs():
    spec = comparison.load(comparison.parse_ids(request.args.getlist("jobs")))
    job, message = comparison.comparison_job(spec, requester(), retry=flag(request.args.get("retry"), "retry"))
    return jsonify({**comparison.summary(spec), "comparison": comparison.comparison_view(spec, job, message)})
