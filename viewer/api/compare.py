"""``/api/v1/compare``: finished scoring jobs side by side, several models on one dataset or one
model on two datasets (see
``services.comparison``). GET looks; POST starts the comparison job (work starts only on POST)."""

from __future__ import annotations

from flask import jsonify, request

from ..http.auth import requester, role_required
from ..services import comparison
from ..services.errors import ServiceError
from .inputs import CompareQuery, CompareRequest
from .outputs import Comparison
from .spec import checks, valid
from .v1 import bp


def _answer(spec, job, status: int = 200):
    return jsonify({**comparison.summary(spec), "comparison": comparison.comparison_view(spec, job)}), status


@bp.get("/compare")
@role_required("viewer")
@checks("Jobs", {200: Comparison}, (400, 401, 404), query=CompareQuery)
def compare_jobs():
    """Compare finished scoring jobs: models on one dataset, or one model on two datasets

    Metrics side by side from each job, and the comparison job's state and result: a 95 % bootstrap
    confidence interval for the difference in each main metric vs the first job, and the rows where
    the models disagree most, once the comparison job has run (state not_started until POST
    /api/v1/compare starts it: looking starts no work). Two jobs on different datasets (one model,
    January vs February) give mode "datasets": the differences are "second − first" with intervals
    from independent bootstraps of each job's rows, result.headline says it in one sentence, and
    there is no disagreement (the rows are not the same; result.no_disagreement says so). 400 when
    the jobs are fewer than two, unfinished, not scoring jobs, more than two across datasets, on
    different targets, of different tasks or classes."""
    if "retry" in request.args:
        raise ServiceError("invalid", "bad_request", 'Looking starts no work: to compute a comparison again, '
                           'POST /api/v1/compare with {"jobs": [...], "retry": true}.')
    spec = comparison.load(comparison.parse_ids(valid("query").jobs))
    return _answer(spec, comparison.comparison_job(spec))


@bp.post("/compare")
@role_required("viewer")
@checks("Jobs", {202: Comparison, 200: Comparison}, (400, 401, 404, 503), json=CompareRequest)
def start_comparison():
    """Start the comparison job of finished scoring jobs

    202 with the new comparison job (any viewer may start it: it only reads results); 200 with the
    existing one when it is pending, running or done, or failed and retry is false."""
    body = valid("json")
    spec = comparison.load(comparison.parse_ids(body.jobs))
    job, created = comparison.start(spec, requester(), retry=body.retry)
    return _answer(spec, job, 202 if created else 200)
