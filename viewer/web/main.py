"""The home page and the health check."""

from flask import Blueprint, render_template
from sqlalchemy import func, select

from ..auth import public
from ..extensions import db
from ..records import Job

bp = Blueprint("main", __name__)


@bp.get("/")
def index():
    recent_jobs = db.session.scalars(select(Job).order_by(Job.created_at.desc()).limit(10)).all()
    counts = dict(db.session.execute(select(Job.state, func.count()).group_by(Job.state)).all())
    return render_template("index.html", recent_jobs=recent_jobs, job_counts=counts)


@bp.get("/ping")
@public
def ping():
    """Liveness, as MLflow's scoring server answers it."""
    return "\n", 200, {"Content-Type": "text/plain"}
