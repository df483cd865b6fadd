"""Dataset pages: list, upload (CSV or Parquet), the dataset page with summaries, scoring, delete."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import SelectField

from ..http.auth import requester, role_required
from ..infra.records import Dataset
from ..services import datasets, jobs, projects, registry, submission
from ..services.errors import ServiceError
from .forms import ConfirmForm, move_form, offset_arg
from .jobs import format_number

bp = Blueprint("datasets", __name__, url_prefix="/datasets")

ACCEPT = ".csv,.tsv,.txt,.parquet,.pq"
# Which form field a scoring refusal belongs beside; anything else is shown above the form.
TARGET_ERRORS = ("unknown_target",)
MODEL_ERRORS = ("model_not_found", "alias_not_found", "version_not_found", "bad_model_reference",
                "schema_mismatch")


class UploadForm(FlaskForm):
    file = FileField("Dataset file (CSV or Parquet)", validators=[FileRequired("Choose a CSV or Parquet file.")])


class ScoreForm(FlaskForm):
    # Choices are filled per request; registry.resolve and submission.submit judge the values, so
    # their messages (not WTForms' "Not a valid choice") are what a user sees.
    model = SelectField("Model", validate_choice=False)
    target = SelectField("Target column (optional)", validate_choice=False)


def model_choices() -> dict[str, list[tuple[str, str]]]:
    """Every registered model as ``name`` (latest), ``name@alias`` and ``name/version``, grouped
    by model for an <optgroup> each."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for model in registry.search_models("", "name"):
        latest = model.latest
        if latest is None:
            continue
        options = [(model.name, f"{model.name} (latest, v{latest.version})")]
        options += [(f"{model.name}@{a.alias}", f"{model.name}@{a.alias} → v{a.version.version}")
                    for a in model.aliases]
        options += [(f"{model.name}/{v.version}", f"{model.name} v{v.version}") for v in reversed(model.versions)]
        groups[model.name] = options
    return groups


def score_form(dataset: Dataset, model: str | None = None) -> ScoreForm:
    form = ScoreForm(model=model or None)
    form.model.choices = model_choices()
    form.target.choices = [("", "— none: predictions only, no metrics —")] + [(c, c) for c in dataset.columns]
    return form


def render_dataset(dataset: Dataset, form: ScoreForm | None = None, status: int = 200):
    found = jobs.of_dataset(dataset.id)
    ingest_job = next((j for j in found if j.kind == "ingest"), None)
    return render_template(
        "datasets/dataset.html", dataset=dataset, d=datasets.dataset_dict(dataset), jobs=found, ingest_job=ingest_job,
        form=form or score_form(dataset, request.args.get("model")), confirm=ConfirmForm(), fmt=format_number,
        move_targets=projects.move_targets()), status


@bp.get("/")
def index():
    found = datasets.list_datasets(offset=offset_arg())
    model = request.args.get("model", "")
    more = url_for("datasets.index", model=model or None, offset=found.next_offset) if found.next_offset else None
    return render_template("datasets/list.html", datasets=found.items, model=model, more=more)


@bp.route("/upload", methods=["GET", "POST"])
@role_required("scientist")
def upload():
    form = UploadForm()
    status = 200
    if form.validate_on_submit():
        upload = form.file.data
        try:
            dataset, job = datasets.upload(upload.stream, upload.filename, requester())
        except ServiceError as exc:
            form.file.errors.append(exc.message)
            status = exc.status
        else:
            if job is None:
                flash(f"Uploaded {dataset.name}: {dataset.n_rows:,} rows, {dataset.n_columns} columns.", "info")
            else:
                flash(f"Uploaded {dataset.name}; a worker is ingesting it.", "info")
            return redirect(url_for("datasets.page", dataset_id=dataset.id))
    elif form.is_submitted():
        status = 400
    return render_template("datasets/upload.html", form=form, accept=ACCEPT), status


@bp.get("/<dataset_id>")
def page(dataset_id: str):
    return render_dataset(datasets.get(dataset_id))


@bp.post("/<dataset_id>/score")
@role_required("scientist")
def score(dataset_id: str):
    dataset = datasets.get(dataset_id)
    form = score_form(dataset)
    if not form.validate_on_submit():
        abort(400, description="The form was incomplete; reload the page and try again.")
    if not form.model.data:
        form.model.errors.append("Choose a model.")
        return render_dataset(dataset, form, 400)
    try:
        job, created = submission.submit(form.model.data, dataset.id, form.target.data or None, requester())
    except ServiceError as exc:
        field = (form.target if exc.code in TARGET_ERRORS
                 else form.model if exc.code in MODEL_ERRORS else None)
        if field is not None:
            field.errors.append(exc.message)
        else:
            flash(exc.message, "error")
        return render_dataset(dataset, form, exc.status)
    if created:
        flash(f"Scoring {dataset.name} with {job.params['model']}.", "info")
    else:
        flash(f"{job.params['model']} already scored {dataset.name}"
              f"{' with target ' + repr(job.params['target']) if job.params.get('target') else ''}: "
              f"this is that job ({job.state}).", "info")
    return redirect(url_for("jobs.page", job_id=job.id))


@bp.post("/<dataset_id>/move")
@role_required("admin")
def move(dataset_id: str):
    dataset = datasets.get(dataset_id)
    return move_form(lambda project: datasets.move(dataset, project), f"Dataset {dataset.name}", "datasets.page",
                     dataset_id=dataset.id)


@bp.post("/<dataset_id>/delete")
@role_required("scientist")
def delete(dataset_id: str):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    dataset = datasets.get(dataset_id)
    name = dataset.name
    try:
        datasets.delete(dataset)
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("datasets.page", dataset_id=dataset_id))
    flash(f"Deleted dataset {name}.", "info")
    return redirect(url_for("datasets.index"))
