"""Job pages: the filtered list, the live job page, cancel, and result downloads for a browser session.

The API's routes refuse session cookies by design, so the job page polls ``status.json`` here
(the same ``jobs.serialize_job`` object the API returns) and downloads go through routes here
that call ``services.results``, as the API's download route does.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from typing import Any, Callable

from bokeh.embed import json_item
from flask import Blueprint, Response, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user

from ..http.auth import role_required
from ..http.responses import download_response
from ..infra.records import JOB_STATES
from ..plots import results as result_plots
from ..plots.monitoring import distribution
from ..core.explain import describe_output
from ..plots.explanations import TOP, waterfall
from ..services import accounts, dataset_drift, datasets, decisions, jobs, registry, results, rows
from ..services.errors import ServiceError
from .assets import bokeh_urls
from .forms import ConfirmForm, ThresholdForm, offset_arg
from . import segments
from .monitoring import level

bp = Blueprint("jobs", __name__, url_prefix="/jobs")
bp.add_app_template_global(segments.segment_view, "segment_view")


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
    found = datasets.names()
    if filters.get("dataset") and filters["dataset"] not in {d for d, _ in found}:
        found.append((filters["dataset"], "(deleted)"))
    users = accounts.usernames()
    if filters.get("user") and filters["user"] not in users:
        users.append(filters["user"])
    return {"models": models, "datasets": found, "users": users, "states": JOB_STATES,
            "sorts": [(FIRST_ORDER[k], f"{label}, {ORDER_WORDS.get(k, 'A–Z')}") for k, label in SORT_LABELS.items()]}


# The runs table's sortable columns: (sort key, header), in display order after Job.
SORT_LABELS = {"created": "Created (UTC)", "duration": "Duration", "model": "Model", "dataset": "Dataset",
               "target": "Target", "state": "State", "accuracy": "Accuracy", "roc_auc": "ROC AUC",
               "rmse": "RMSE", "r2": "R²"}

# The order a column's first click sorts in: newest, longest, best first (RMSE: lowest), text A–Z.
FIRST_ORDER = {key: (key if key in ("model", "dataset", "target", "state", "rmse") else f"-{key}")
               for key in SORT_LABELS}
ORDER_WORDS = {"created": "newest first", "duration": "longest first", "accuracy": "best first",
               "roc_auc": "best first", "rmse": "best (lowest) first", "r2": "best first"}


def run_row(job) -> dict[str, Any]:
    """What the runs table shows of one job beside the record itself."""
    metrics = {m["key"]: format_number(m["value"], "ratio" if m["key"] != "rmse" else "number")
               for m in jobs.main_metrics(job)}
    return {"job": job, "metrics": metrics, "duration": format_duration(jobs.duration_seconds(job))
            if job.finished and job.started_at else "—"}


@bp.get("/")
def index():
    args = {k: v for k, v in request.args.items() if k in jobs.LIST_FILTERS and v}
    sort = request.args.get("sort") or "-created"
    if sort not in jobs.SORTS:
        flash(f"Unknown sort {sort[:40]!r}: the list is newest first.", "error")
        sort = "-created"
    found = jobs.search(args, offset=offset_arg(), sort=sort)
    keep = {**args, **({"sort": sort} if sort != "-created" else {})}
    older = url_for("jobs.index", **keep, offset=found.next_offset) if found.next_offset else None
    rows = [run_row(j) for j in found.items]
    # metric columns: those any job on this page has, and the one sorted by
    shown = [k for k in jobs.METRIC_SORTS if any(k in r["metrics"] for r in rows) or sort.lstrip("-") == k]

    def sort_link(key: str) -> str:
        """A header's link: its first-click order, or the reverse when the list is in it already."""
        first = FIRST_ORDER[key]
        following = (first.lstrip("-") if first.startswith("-") else f"-{key}") if sort == first else first
        return url_for("jobs.index", **args, sort=following)

    return render_template("jobs/list.html", rows=rows, jobs=found.items, filters=args, sort=sort,
                           options=filter_options(args), older=older, metric_columns=shown,
                           sort_labels=SORT_LABELS, sort_link=sort_link)


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
    aggregates = results.aggregates(job)
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
                         "labels": [str(c) for c in (aggregates.get("classes") or ["0", "1"])[:2]],
                         "saved": job.model_version.threshold if job.model_version is not None else None,
                         "form": ThresholdForm(threshold=payload["thresholds"][payload["index"]])}
        plots.append(entry)
    return {"plots": plots, "threshold": threshold, "plot_notes": result_plots.unavailable_notes(aggregates),
            "bokeh_scripts": bokeh_urls() if any(p["item"] for p in plots) else []}


def subject(job) -> str | None:
    """What a job is about, for its page's title and heading: "churn/2 on loans-jan"."""
    params = job.params or {}
    dataset = job.dataset.name if job.dataset else (params.get("dataset") or params.get("filename"))
    if params.get("model"):
        return f"{params['model']} on {dataset}" if dataset else str(params["model"])
    if job.kind == "compare" and params.get("mode") == "datasets" and params.get("datasets"):
        by_job = dict(zip(params.get("jobs") or [], params["datasets"]))
        names = [by_job.get(i, "") for i in params.get("order") or params.get("jobs") or []]
        models = sorted(set(params.get("models") or []))
        return ("Comparing " + (f"{models[0]} on " if len(models) == 1 else "") + " vs ".join(names))
    if job.kind == "compare" and params.get("models"):
        return f"Comparing {len(params['models'])} models" + (f" on {dataset}" if dataset else "")
    if job.kind == dataset_drift.KIND:
        return f"{dataset} vs {params.get('reference_name')}"
    return f"{job.kind.capitalize()} of {dataset}" if dataset and job.kind == "ingest" else None


def drift_context(job) -> dict[str, Any]:
    """What templates/jobs/_drift.html draws for a finished dataset comparison: a row per column
    (the drifted first), and the chosen column's two distributions."""
    if job.kind != dataset_drift.KIND or job.state != "done" or not job.result:
        return {}
    columns = job.result.get("columns", {})
    order = sorted(columns, key=lambda c: (not columns[c].get("drift"), list(columns).index(c)))
    chosen = request.args.get("column")
    plot = None
    if chosen in columns:
        try:
            plot = json_item(distribution(dataset_drift.cell(job, chosen), "this dataset"))
        except ServiceError as exc:
            flash(exc.message, "error")
            chosen = None
    else:
        chosen = None
    return {"drift": {"columns": columns, "order": order, "chosen": chosen, "plot": plot}, "level": level}


@bp.get("/<job_id>")
def page(job_id: str):
    job = jobs.get(job_id)
    status = jobs.serialize_job(job)
    metrics = (job.result or {}).get("metrics") if job.state == "done" else None
    context = plot_context(job)
    drift = drift_context(job)
    if drift.get("drift", {}).get("plot") or (job.result or {}).get("segments") or job.kind == "dependence":
        context["bokeh_scripts"] = bokeh_urls()
    return render_template("jobs/job.html", job=job, subject=subject(job), status=status, metrics=metrics,
                           metric_rows=metric_rows(metrics),
                           format_duration=format_duration, format_number=format_number, confirm=ConfirmForm(),
                           has_results=results.has_results(job), **context, **drift)


@bp.get("/<job_id>/row")
def row(job_id: str):
    """One row of a scoring job: found by number or passthrough ID, its inputs, outputs and why."""
    job = jobs.get(job_id)
    column, value = request.args.get("column") or None, (request.args.get("value") or "").strip()
    found = error = why = None
    status = 200
    try:
        if column is None and not (value.isascii() and value.isdigit() and len(value) <= 18):
            raise ServiceError("invalid", "bad_request", "Give a row number (0, 1, 2, ...)" + (
                ", or choose an ID column to find the row by its ID." if (job.params or {}).get("passthrough") else "."))
        number = rows.find(job, row=int(value) if column is None else None, column=column, value=value)
        found = rows.detail(job, number)
    except ServiceError as exc:
        error, status = exc.message, exc.status
    if found and found["explanations"]:
        explained = found["explanations"]
        row_ = explained["rows"][0]
        label = describe_output(explained["output"], row_["class"])
        why = {"label": label, "plot": json_item(waterfall(row_, label)), "explained": explained, "row": row_,
               "top": sorted(row_["contributions"].items(), key=lambda kv: -abs(kv[1] or 0.0))[:TOP]}
    return render_template("jobs/row.html", job=job, subject=subject(job), found=found, error=error, why=why,
                           column=column, value=value, what_if=_what_if(job, found),
                           bokeh_scripts=bokeh_urls() if why else []), status


def _what_if(job, found) -> str | None:
    """The prediction page with this row's inputs filled in."""
    version = job.model_version
    if not found or not found["inputs"] or version is None:
        return None
    fields = {f"f:{k}": "" if v is None else v for k, v in found["inputs"].items()
              if k in set((version.info or {}).get("feature_names") or ())}
    return url_for("predict.page", name=version.model.name, version=version.version, **fields)


@bp.get("/<job_id>/plots/<key>.csv")
def plot_csv(job_id: str, key: str):
    """One plot's data as CSV (text cells a spreadsheet would run as formulas are neutralised)."""
    job = jobs.get(job_id)
    return Response(results.plot_csv(job, key), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="job-{job.id[:8]}-{key}.csv"'})


@bp.get("/<job_id>/status.json")
def status(job_id: str):
    response = jsonify(jobs.serialize_job(jobs.get(job_id)))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<job_id>/cancel")
@role_required("scientist")
def cancel(job_id: str):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    job = jobs.get(job_id)
    if job.finished:
        flash(f"The job is already {job.state}.", "info")
    else:
        jobs.cancel(job)
        flash("Job cancelled.", "info")
    return redirect(url_for("jobs.page", job_id=job.id))


@bp.post("/<job_id>/threshold")
@role_required("scientist")
def save_threshold(job_id: str):
    """The slider's threshold, saved on the job's model version (services.decisions)."""
    job = jobs.get(job_id)
    form = ThresholdForm()
    version = job.model_version
    if version is None or not form.validate_on_submit():
        flash("Choose a threshold from 0 to 1 with the slider." if version is not None else
              "This job's model version is gone.", "error")
        return redirect(url_for("jobs.page", job_id=job_id) + "#plots")
    try:
        decisions.set_threshold(version, form.threshold.data, current_user)
        registry.changed()
        flash(f"{version.ref} now decides for {version.info['classes'][1]!s} from a probability of "
              f"{form.threshold.data:.2f}: predictions with probabilities give that decision.", "info")
    except ServiceError as exc:
        flash(exc.message, "error")
    return redirect(url_for("jobs.page", job_id=job_id) + "#plots")


@bp.get("/<job_id>/results.<fmt>")
def download(job_id: str, fmt: str):
    """The results (``?inputs=1``: with every column of the dataset)."""
    return download_response(results.download(jobs.get(job_id), fmt, with_inputs=request.args.get("inputs") == "1"))
