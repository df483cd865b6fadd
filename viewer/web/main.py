"""The home page and the health check."""

from flask import Blueprint, render_template

from ..services import jobs

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    return render_template("index.html", recent_jobs=jobs.recent(10), job_counts=jobs.counts_by_state())
