"""Dataset pages: list, upload (CSV or Parquet), the dataset page with summaries, scoring, delete."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, SelectField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice

from ..core.datasets import EXACT_DISTINCT
from ..http.auth import requester, role_required
from ..infra.records import Dataset
from ..services import dataset_drift, datasets, jobs, projects, registry, submission
from ..services.errors import ServiceError
from .forms import ConfirmForm, move_form, offset_arg
from .assets import bokeh_urls
from .jobs import format_number

# Distribution plots per column: built once per dataset and process (a ready dataset's summary
# never changes; an identifier flip does not change its plots).
_PLOT_CACHE: dict[str, dict] = {}
_PLOT_CACHE_SIZE = 32


def column_plots(dataset: Dataset) -> dict[str, dict]:
    """{column: bokeh json_item} of each column's distribution, from the ingest-time summary."""
    if dataset.state != "ready" or not dataset.info:
        return {}
    cached = _PLOT_CACHE.get(dataset.id)
    if cached is None:
        from bokeh.embed import json_item

        from ..plots.columns import distribution

        cached = {}
        for i, column in enumerate(dataset.info.get("columns") or []):
            fig = distribution(column, dataset.n_rows or 0)
            if fig is not None:
                cached[column["name"]] = json_item(fig, f"dist-{i}")
        if len(_PLOT_CACHE) >= _PLOT_CACHE_SIZE:
            _PLOT_CACHE.pop(next(iter(_PLOT_CACHE)))
        _PLOT_CACHE[dataset.id] = cached
    return cached

bp = Blueprint("datasets", __name__, url_prefix="/datasets")

ACCEPT = ".csv,.tsv,.txt,.parquet,.pq,.xlsx"
# Which form field a scoring refusal belongs beside; anything else is shown above the form.
TARGET_ERRORS = ("unknown_target",)
MODEL_ERRORS = ("model_not_found", "alias_not_found", "version_not_found", "bad_model_reference",
                "schema_mismatch")


def _choices(*pairs: tuple[str, str]) -> list[SelectChoice]:
    return [SelectChoice(value, label) for value, label in pairs]


class UploadForm(FlaskForm):
    file = FileField("Dataset file (CSV, Parquet or Excel .xlsx)",
                     validators=[FileRequired("Choose a CSV, Parquet or .xlsx file.")])
    delimiter = SelectField("Delimiter", choices=_choices(("", "detect"), ("comma", "comma ,"),
                                                          ("semicolon", "semicolon ;"), ("tab", "tab"),
                                                          ("pipe", "pipe |")), default="")
    decimal = SelectField("Decimal separator", choices=_choices(("", "detect"), (".", "point 1.5"),
                                                                (",", "comma 1,5")), default="")
    thousands = SelectField("Thousands separator",
                            choices=_choices(("", "detect"), ("none", "none"), (".", "point 1.000"),
                                             (",", "comma 1,000"), ("space", "space 1 000"),
                                             ("apostrophe", "apostrophe 1'000")), default="")
    encoding = StringField("Encoding", description="e.g. utf-8, cp1252 (Excel, Western Europe), latin-1; "
                           "empty: detect")
    sheet = StringField("Excel sheet", description="empty: the first sheet")
    allow_duplicate = BooleanField("Upload anyway, as a second copy")


class ScoreForm(FlaskForm):
    # Choices are filled per request; registry.resolve and submission.submit judge the values, so
    # their messages (not WTForms' "Not a valid choice") are what a user sees.
    model = SelectField("Model", validate_choice=False)
    target = SelectField("Target column (optional)", validate_choice=False)
    passthrough = SelectMultipleField("Keep beside the predictions", validate_choice=False)


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
    """The scoring form: models whose inputs the dataset has first, a target guessed by name and
    the ID columns kept beside the predictions (web/forms.py has the rules)."""
    from .forms import guess_target, order_model_groups

    form = ScoreForm(model=model or None)
    found = {m.name: m.latest for m in registry.search_models("", "name") if m.latest is not None}
    form.model.choices = order_model_groups(model_choices(), {n: v.info or {} for n, v in found.items()},
                                            dataset.columns)
    form.target.choices = [("", "— none: predictions only, no metrics —")] + [(c, c) for c in dataset.columns]
    form.passthrough.choices = [(c, c) for c in dataset.columns]
    ids = datasets.id_columns(dataset) if hasattr(datasets, "id_columns") else []
    if request.method == "GET":
        first = next((options[0][0] for options in form.model.choices.values()), None)
        chosen = found.get(str(model or first or "").split("@")[0].split("/")[0])
        known = [j.params.get("target") for j in jobs.of_model_version(chosen.id, kind="score")
                 if j.params.get("target")] if chosen is not None else []
        form.model.data = model or first
        form.target.data = guess_target(dataset.columns, (chosen.info or {}).get("feature_names") if chosen else None,
                                        ids, known)
        form.passthrough.data = ids
    return form


def chosen_passthrough() -> list[str] | None:
    """The form's passthrough columns (None when the form had no such field: the ID columns)."""
    if "passthrough" not in request.form:
        return None
    return [c for c in request.form.getlist("passthrough") if c]


def render_dataset(dataset: Dataset, form: ScoreForm | None = None, status: int = 200):
    found = jobs.of_dataset(dataset.id)
    ingest_job = next((j for j in found if j.kind == "ingest"), None)
    return render_template(
        "datasets/dataset.html", dataset=dataset, d=datasets.dataset_dict(dataset), jobs=found, ingest_job=ingest_job,
        distributions=column_plots(dataset), bokeh_scripts=bokeh_urls() if dataset.state == "ready" else [],
        flag=ConfirmForm(), exact_bound=EXACT_DISTINCT,
        form=form or score_form(dataset, request.args.get("model")), confirm=ConfirmForm(), fmt=format_number,
        move_targets=projects.move_targets(),
        references=[(i, n) for i, n in datasets.names(ready=True) if i != dataset.id]
        if current_user.has_role("scientist") and dataset.state == "ready" else []), status


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
    duplicate = None
    if form.validate_on_submit():
        upload = form.file.data
        try:
            options = datasets.read_options(delimiter=form.delimiter.data, decimal=form.decimal.data,
                                            thousands=form.thousands.data, encoding=form.encoding.data,
                                            sheet=form.sheet.data)
            dataset, job = datasets.upload(upload.stream, upload.filename, requester(), options=options,
                                           allow_duplicate=form.allow_duplicate.data)
        except ServiceError as exc:
            if exc.code == "duplicate_dataset":
                duplicate = exc.details
            else:
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
    return render_template("datasets/upload.html", form=form, accept=ACCEPT, duplicate=duplicate), status


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
        job, created = submission.submit(form.model.data, dataset.id, form.target.data or None, requester(),
                                         passthrough=chosen_passthrough())
    except ServiceError as exc:
        field = (form.target if exc.code in TARGET_ERRORS
                 else form.model if exc.code in MODEL_ERRORS
                 else form.passthrough if exc.code in ("unknown_column", "bad_option") else None)
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


@bp.post("/<dataset_id>/drift")
@role_required("scientist")
def drift(dataset_id: str):
    """Compare the dataset with a reference dataset: a drift job, then its page."""
    if not ConfirmForm().validate_on_submit():
        abort(400, description="The form was incomplete; reload the page and try again.")
    dataset = datasets.get(dataset_id)
    try:
        job, created = dataset_drift.submit(dataset.id, request.form.get("reference", ""), requester())
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("datasets.page", dataset_id=dataset.id) + "#drift")
    if not created:
        flash(f"{job.params['dataset']} was compared with {job.params['reference_name']} already: this is that "
              f"comparison ({job.state}).", "info")
    return redirect(url_for("jobs.page", job_id=job.id))


@bp.post("/<dataset_id>/identifier")
@role_required("scientist")
def identifier(dataset_id: str):
    """Flip a column's identifier flag (a button per column on the dataset page)."""
    form = ConfirmForm()
    if not form.validate_on_submit():
        abort(400, description="The form was incomplete; reload the page and try again.")
    dataset = datasets.get(dataset_id)
    column = request.form.get("column", "")
    flag = request.form.get("identifier") == "1"
    try:
        datasets.set_identifier(dataset, column, flag)
    except ServiceError as exc:
        flash(exc.message, "error")
    else:
        flash(f"Column {column} is {'now' if flag else 'no longer'} an identifier.", "info")
    return redirect(url_for("datasets.page", dataset_id=dataset.id) + "#columns")


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
