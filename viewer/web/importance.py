"""Permutation feature importance on pages: the form and the finished jobs on the model version
page (``viewer.web.models`` owns the routes), and the plot on the job page.

``templates/jobs/_importance.html`` calls the ``importance_plot(job)`` template global, which
``viewer.web.models`` registers through its blueprint, so the job page's view needs no change.
"""

from __future__ import annotations

from typing import Any

from bokeh.embed import json_item
from flask import abort, flash, redirect, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField
from wtforms.validators import NumberRange, Optional

from ..core import importance as core
from ..core.payload import PayloadError
from ..http.auth import requester
from ..infra.records import Dataset, Job, ModelVersion
from ..plots.importance import TOP, importance_bars
from ..services import datasets as dataset_service
from ..services import importance as importance_service
from ..services import submission
from ..services.errors import ServiceError
from .assets import bokeh_urls

TOP_ON_CARD = 5       # features named per finished job on the model version page
TABLE_ROWS = 100      # features listed in the job page's table (the plot shows TOP)
MAX_SUGGESTIONS = 200  # target column names offered in the form's datalist

# Which form field a refusal belongs beside; anything else is shown above the form.
FIELD_OF_ERROR = {
    "dataset_not_found": "dataset", "dataset_not_ready": "dataset", "schema_mismatch": "dataset",
    "unknown_target": "target", "target_required": "target", "target_is_feature": "target",
}


class ImportanceForm(FlaskForm):
    # Choices are filled per request; submission.submit_importance judges the values, so its
    # messages (not WTForms' "Not a valid choice") are what a user sees.
    dataset = SelectField("Dataset", validate_choice=False)
    target = SelectField("Target column", validate_choice=False)
    n_repeats = IntegerField("Repeats", default=core.DEFAULT_REPEATS,
                             validators=[Optional(), NumberRange(1, core.MAX_REPEATS)])
    max_rows = IntegerField("Rows to sample", default=core.DEFAULT_MAX_ROWS,
                            validators=[Optional(), NumberRange(core.MIN_ROWS, core.MAX_SAMPLE_ROWS)])


def make_form(datasets: list[Dataset] | None = None, version: ModelVersion | None = None) -> ImportanceForm:
    """The importance form: the ready datasets, and the target as a choice among their columns
    (one <optgroup> per dataset, the model's inputs left out)."""
    form = ImportanceForm()
    datasets = dataset_service.ready() if datasets is None else datasets
    form.dataset.choices = [("", "— choose a dataset —")] + [
        (d.id, f"{d.name} ({d.n_rows:,} rows)" if d.n_rows is not None else d.name) for d in datasets]
    inputs = set((version.info or {}).get("feature_names") or ()) if version is not None else set()
    groups: dict[str, list[tuple[str, str]]] = {"": [("", "— choose the column with the true values —")]}
    for d in datasets[:MAX_SUGGESTIONS]:
        columns = [c for c in d.columns if c not in inputs]
        if columns:
            groups[f"{d.name} · {d.id[:6]}"] = [(c, c) for c in columns]
    form.target.choices = groups
    return form


def target_suggestions(version: ModelVersion, datasets: list[Dataset]) -> list[str]:
    """Column names of the ready datasets that are not the model's inputs: likely targets."""
    inputs = set(version.info.get("feature_names") or ())
    seen: dict[str, None] = {}
    for dataset in datasets:
        for name in dataset.columns:
            if name not in inputs:
                seen.setdefault(name, None)
            if len(seen) >= MAX_SUGGESTIONS:
                return list(seen)
    return list(seen)


def finished_jobs(version: ModelVersion, limit: int = 10) -> list[dict[str, Any]]:
    """This version's finished importance jobs, newest first, each with its top features."""
    return importance_service.finished(version.id, TOP_ON_CARD, limit)


def page_context(version: ModelVersion, form: ImportanceForm | None = None) -> dict[str, Any]:
    """What templates/models/version.html needs for its "Feature importance" section."""
    datasets = dataset_service.ready()
    return {"importance_form": form or make_form(datasets, version), "importance_jobs": finished_jobs(version),
            "importance_targets": target_suggestions(version, datasets),
            "importance_default_scoring": _default_scoring(version)}


def _default_scoring(version: ModelVersion) -> str | None:
    info = version.info
    try:
        name = core.default_scoring(info.get("kind"), info.get("classes"), bool(info.get("has_predict_proba")))
    except PayloadError:
        return None
    return core.SCORINGS[name][0]


def start(version: ModelVersion, render):
    """Handle the form: start (or find) the job and open its page, or show the form again with
    the refusal beside its field. ``render(form, status)`` renders the version page."""
    form = make_form(version=version)
    if not form.validate_on_submit():
        if "csrf_token" in form.errors:
            abort(400, description="The form was incomplete; reload the page and try again.")
        return render(form, 400)  # a number out of range: its message is beside its field
    errors = False
    if not form.dataset.data:
        form.dataset.errors.append("Choose a dataset.")
        errors = True
    target = (form.target.data or "").strip()
    if not target:
        form.target.errors.append("Name the column with the true values.")
        errors = True
    if errors:
        return render(form, 400)
    try:
        job, created = submission.submit_importance(version.ref, form.dataset.data, target, requester(),
                                                    n_repeats=form.n_repeats.data, max_rows=form.max_rows.data)
    except ServiceError as exc:
        field = getattr(form, FIELD_OF_ERROR.get(exc.code, ""), None)
        if exc.code == "bad_option":
            field = form.n_repeats if "n_repeats" in exc.message else form.max_rows
        if field is not None:
            field.errors.append(exc.message)
        else:
            flash(exc.message, "error")
        return render(form, exc.status)
    if created:
        flash(f"Computing feature importance of {version.ref} on {job.params['dataset']}.", "info")
    else:
        flash(f"Feature importance of {version.ref} on {job.params['dataset']} with these options "
              f"already exists: this is that job ({job.state}).", "info")
    return redirect(url_for("jobs.page", job_id=job.id))


def importance_plot(job: Job) -> dict[str, Any] | None:
    """The job page's plot (a json_item), the scripts it needs and the numbers around it;
    None when the job has no importance result."""
    result = job.result or {}
    if job.kind != "importance" or not result.get("features"):
        return None
    features = result["features"]
    return {"item": json_item(importance_bars(result, TOP), "importance-plot"), "scripts": bokeh_urls(),
            "result": result, "shown": min(TOP, len(features)), "total": len(features),
            "table": features[:TABLE_ROWS]}
