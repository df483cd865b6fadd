"""The compare page: ``/jobs/compare?jobs=<id>&jobs=<id>...``: several models on one dataset, or
one model on two datasets (January vs February: ``spec.mode == "datasets"``, no disagreeing rows).

Metrics side by side and the overlaid plots come from the jobs' stored metrics and aggregates and
render at once; the bootstrap confidence intervals and the disagreeing rows come from a compare
job (see ``viewer.services.comparison``), which the page's button starts (a POST: looking starts
nothing) and which the page follows live with ``static/job.js`` (the job page's poller: it reloads
the page when the job ends).

Every logged-in user (viewer and up) may open the page and start the comparison: it only reads
results they can already see, and it runs once per set of jobs.
"""

from __future__ import annotations

import math
from typing import Any

from bokeh.embed import json_item
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for

from ..core.cache import LRUCache
from ..http.auth import requester, role_required
from ..plots import style
from ..plots.compare import compare_plots
from ..services import comparison
from ..services.errors import ServiceError
from .assets import bokeh_urls
from .forms import ConfirmForm
from .jobs import CLASSIFICATION_METRICS, REGRESSION_METRICS, format_duration, format_number

bp = Blueprint("compare", __name__, url_prefix="/jobs")

HOW = {key: how for key, _label, how in CLASSIFICATION_METRICS + REGRESSION_METRICS}


def format_difference(value: Any, how: str = "number") -> str:
    """A signed difference in the metric's own units (percentage points for percentages)."""
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    if how == "percent":
        return f"{value * 100:+.2f} pp".replace("-", "−")
    if how == "ratio":
        return f"{value:+.4f}".replace("-", "−")
    text = format_number(abs(value), how)
    return ("+" if value > 0 else "−") + text


def metric_table(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        how = HOW.get(row["key"], "number")
        cells = []
        for value, difference, verdict in zip(row["values"], row["differences"], row["verdicts"]):
            cells.append({"value": format_number(value, how), "raw": "" if value is None else repr(value),
                          "difference": format_difference(difference, how), "verdict": verdict})
        out.append({**row, "cells": cells})
    return out


# Finished jobs never change, so their overlaid plots are built once per process: bokeh takes
# ~100 ms of CPU per figure, the cached page needs none (keyed by job ids, finish times, names).
_plots: LRUCache[list[dict[str, Any]]] = LRUCache(maxsize=32)


def plot_items(spec: comparison.Spec, names: list[str]) -> list[dict[str, Any]]:
    key = (spec.task, tuple((j.id, str(j.finished_at)) for j in spec.jobs), tuple(names))
    return _plots.get(key, lambda: _draw(spec, names))


def _draw(spec: comparison.Spec, names: list[str]) -> list[dict[str, Any]]:
    items = []
    for plot in compare_plots(spec.task, [(n, (j.result or {}).get("aggregates")) for n, j in zip(names, spec.jobs)]):
        entry = {"key": plot.key, "title": plot.title, "caption": plot.caption, "exact": plot.exact,
                 "note": plot.note, "item": None}
        try:
            entry["item"] = json_item(plot.draw(), f"plot-{plot.key}")
        except Exception:  # noqa: BLE001 - one odd aggregate must not take the page down
            current_app.logger.exception("compare plot %s failed", plot.key)
        items.append(entry)
    return items


@bp.get("/compare")
@role_required("viewer")
def page():
    spec = comparison.load(comparison.parse_ids(request.args.getlist("jobs")))
    job = comparison.comparison_job(spec)  # looking starts nothing: the button POSTs
    summary = comparison.summary(spec)
    names = [j["label"] for j in summary["jobs"]]
    models = [{"id": j.id, "label": n, "color": style.color(i), "job": j} for i, (j, n) in enumerate(zip(spec.jobs, names))]
    plots = plot_items(spec, names)
    view = comparison.comparison_view(spec, job)
    result = view["result"]
    by_id = {m["id"]: m for m in models}
    return render_template(
        "jobs/compare.html", spec=spec, summary=summary, models=models, by_id=by_id,
        metrics=metric_table(summary["metrics"]), plots=plots, comparison=view, result=result,
        compare_job=job, status=view["job"], confirm=ConfirmForm(), how=HOW,
        format_number=format_number, format_difference=format_difference, format_duration=format_duration,
        bokeh_scripts=bokeh_urls() if any(p["item"] for p in plots) else [])


@bp.post("/compare")
@role_required("viewer")
def start():
    """Start the comparison job, or compute a failed or cancelled one again (the page's button)."""
    if not ConfirmForm().validate_on_submit():
        abort(400, description="The form was missing a valid CSRF token. Reload the page and try again.")
    ids = comparison.parse_ids(request.form.getlist("jobs"))
    try:
        comparison.start(comparison.load(ids), requester(), retry=True)
    except ServiceError as exc:  # the queue is unreachable: the page says so, the plots still show
        flash(exc.message, "error")
    return redirect(url_for("compare.page", jobs=ids))
