"""Job pages: the filtered list, the live job page, cancel, and result downloads for a browser session.

The API's routes refuse session cookies by design, so the job page polls ``status.json`` here
(the same ``jobs.serialize_job`` object the API returns) and downloads go through routes here
that call ``results.response``, as the API's download route does.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections import OrderedDict
from typing import Any, Callable

import pyarrow as pa
import pyarrow.csv as pacsv
from bokeh.embed import json_item
from flask import Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from .. import jobs, registry, results
from ..api.jobs import filtered_jobs, job_or_404
from ..auth import role_required
from ..extensions import db
from ..plots import results as result_plots
from ..records import JOB_STATES, Dataset, User
from .assets import bokeh_urls
from .forms import ConfirmForm

bp = Blueprint("jobs", __name__, url_prefix="/jobs")


# (key, label, how to show it) for the headline numbers of each task, in display order.
CLASSIFICATION_METRICS = [
    ("accuracy", "Accuracy", "ratio"), ("balanced_accuracy", "Balanced accuracy", "ratio"),
    ("f1_macro", "F1 (macro)", "ratio"), ("precision_macro", "Precision (macro)", "ratio"),
    ("recall_macro", "Recall (macro)", "ratio"), ("roc_auc", "ROC AUC", "ratio"),
    ("average_precision", "Average precision", "ratio"), ("log_loss", "Log loss", "number"),
    ("brier_score", "Brier score", "number"),
]
REGRESSION_METRICS = [
    ("mae", "MAE", "number"), ("rmse", "RMSE", "number"), ("r2", "R²", "ratio"),
    ("median_absolute_error", "Median absolute error", "number"), ("mape", "MAPE", "percent"),
    ("mape_nonzero_target", "MAPE (rows with y ≠ 0)", "percent"),
]


def format_number(value: Any, how: str = "number") -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return str(value)
    if how == "percent" and abs(value) < 100:
        return f"{value * 100:.2f} %"
    if how == "ratio" and -10 <= value <= 10:
        return f"{value:.4f}"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude >= 1e7 or magnitude < 1e-4):
        return f"{value:.4g}"
    return f"{value:,.4f}".rstrip("0").rstrip(".") if magnitude < 1000 else f"{value:,.2f}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def metric_rows(metrics: dict[str, Any] | None) -> list[dict[str, str]]:
    if not metrics:
        return []
    spec = REGRESSION_METRICS if metrics.get("task") == "regression" else CLASSIFICATION_METRICS
    undefined = metrics.get("undefined") or {}
    rows = []
    for key, label, how in spec:
        if key not in metrics:
            continue
        rows.append({"key": key, "label": label, "value": format_number(metrics[key], how),
                     "raw": "" if metrics[key] is None else repr(metrics[key]), "why": undefined.get(key, "")})
    return rows


def filter_options(filters: dict[str, str]) -> dict[str, list]:
    """What the job list's filter selects offer (a chosen value always among them, even a model
    deleted since its jobs ran)."""
    models = [m.name for m in registry.search_models("", "name")]
    if filters.get("model") and filters["model"] not in models:
        models.append(filters["model"])
    datasets = [tuple(row) for row in
                db.session.execute(select(Dataset.id, Dataset.name).order_by(Dataset.created_at.desc()))]
    if filters.get("dataset") and filters["dataset"] not in {d for d, _ in datasets}:
        datasets.append((filters["dataset"], "(deleted)"))
    users = list(db.session.scalars(select(User.username).order_by(User.username)))
    if filters.get("user") and filters["user"] not in users:
        users.append(filters["user"])
    return {"models": models, "datasets": datasets, "users": users, "states": JOB_STATES}


@bp.get("/")
def index():
    args = {k: v for k, v in request.args.items() if k in ("model", "dataset", "state", "user", "kind") and v}
    found = filtered_jobs(args)
    return render_template("jobs/list.html", jobs=found, filters=args, options=filter_options(args))


def _aggregates(job) -> dict | None:
    """A finished scoring job's plot aggregates (None before it is done, or when it has none)."""
    if job.kind != "score" or job.state != "done":
        return None
    aggregates = (job.result or {}).get("aggregates")
    return aggregates if isinstance(aggregates, dict) else None


class _DrawnPlots:
    """The json_items of recently viewed jobs. Drawing a page's plots costs bokeh a few hundred
    ms; a finished job's aggregates never change, so each process keeps the last few drawn
    (a few hundred KB each), keyed by job id and last update."""

    def __init__(self, size: int = 32):
        self.size = size
        self._items: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple, draw: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        drawn = draw()
        with self._lock:
            self._items[key] = drawn
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return drawn


_drawn = _DrawnPlots()


def _draw_all(job, specs) -> dict[str, Any]:
    """key -> json_item (None when the plot failed to draw: reported on its card, not as a 500)."""
    items: dict[str, Any] = {}
    for spec in specs:
        try:
            items[spec.key] = json_item(spec.draw(), f"plot-{spec.key}")
        except Exception:  # noqa: BLE001 - one odd aggregate must not take the page down
            current_app.logger.exception("plot %s of job %s failed", spec.key, job.id)
            items[spec.key] = None
    return items


def plot_context(job) -> dict[str, Any]:
    """What templates/jobs/_plots.html draws: one entry per plot (its Bokeh json_item, caption,
    CSV link), the threshold slider's table and its numbers at the first threshold, and why
    any expected plot is missing."""
    aggregates = _aggregates(job)
    specs = result_plots.result_plots(aggregates)
    items = _drawn.get((job.id, str(job.updated_at)), lambda: _draw_all(job, specs)) if specs else {}
    plots = []
    threshold = None
    for spec in specs:
        entry = {"key": spec.key, "title": spec.title, "caption": spec.caption, "note": spec.note,
                 "control": spec.control, "wide": spec.wide, "exact": spec.exact, "item": items.get(spec.key),
                 "csv": url_for("jobs.plot_csv", job_id=job.id, key=spec.key)}
        if spec.control == "threshold":
            payload = spec.extra["threshold"]
            threshold = {"table": payload, "now": result_plots.threshold_numbers(payload, payload["index"]),
                         "labels": [str(c) for c in (aggregates.get("classes") or ["0", "1"])[:2]]}
        plots.append(entry)
    return {"plots": plots, "threshold": threshold, "plot_notes": result_plots.unavailable_notes(aggregates),
            "bokeh_scripts": bokeh_urls() if any(p["item"] for p in plots) else []}


@bp.get("/<job_id>")
def page(job_id: str):
    job = job_or_404(job_id)
    status = jobs.serialize_job(job)
    metrics = (job.result or {}).get("metrics") if job.state == "done" else None
    return render_template("jobs/job.html", job=job, status=status, metrics=metrics, metric_rows=metric_rows(metrics),
                           format_duration=format_duration, format_number=format_number, confirm=ConfirmForm(),
                           has_results=job.kind == "score" and job.state == "done"
                           and bool(results.parts(jobs.output_dir(job))), **plot_context(job))


PLOT_KEY = re.compile(r"^[a-z_]{1,40}$")


@bp.get("/<job_id>/plots/<key>.csv")
def plot_csv(job_id: str, key: str):
    """One plot's data as CSV (text cells a spreadsheet would run as formulas are neutralised)."""
    job = job_or_404(job_id)
    if job.kind != "score" or job.state != "done":
        abort(409, description=f"The job is {job.state}; plot data exists once a scoring job is done.")
    table = result_plots.plot_table(_aggregates(job), key) if PLOT_KEY.match(key) else None
    if table is None:
        abort(404, description=f"This job has no plot {key[:40]!r}.")
    buffer = io.BytesIO()
    arrow = results.neutralise_formulas(pa.table({name: pa.array(values) for name, values in table.items()}))
    pacsv.write_csv(arrow, buffer)
    return Response(buffer.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="job-{job.id[:8]}-{key}.csv"'})


@bp.get("/<job_id>/status.json")
def status(job_id: str):
    response = jsonify(jobs.serialize_job(job_or_404(job_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<job_id>/cancel")
@role_required("scientist")
def cancel(job_id: str):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    job = job_or_404(job_id)
    if job.finished:
        flash(f"The job is already {job.state}.", "info")
    else:
        jobs.request_cancel(job)
        flash("Job cancelled.", "info")
    return redirect(url_for("jobs.page", job_id=job.id))


@bp.get("/<job_id>/results.<fmt>")
def download(job_id: str, fmt: str):
    return results.response(job_or_404(job_id), fmt)
