"""Model registry pages: list, upload, model page, model card (with feature importance)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import IntegerField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp

from ..http.auth import PROJECT_KEY, requester, role_required
from ..infra.records import ALIAS_PATTERN, MODEL_NAME_PATTERN
from ..services import hosts, jobs, predlog, projects, registry
from ..services.errors import ServiceError
from . import dependence, importance
from .forms import ConfirmForm, move_form, offset_arg

bp = Blueprint("models", __name__, url_prefix="/models")


class UploadForm(FlaskForm):
    file = FileField("Model file (.joblib, .pkl, .skops)", validators=[FileRequired("Choose a model file.")])
    name = StringField("Name", validators=[DataRequired(), Length(max=100), Regexp(
        MODEL_NAME_PATTERN, message="Letters, digits, '_', '.' or '-', starting with a letter or digit.")])
    description = TextAreaField("Description", validators=[Optional(), Length(max=10_000)])


class AliasForm(FlaskForm):
    alias = StringField("Alias", validators=[DataRequired(), Regexp(
        ALIAS_PATTERN, message="Letters, digits, '_' or '-', starting with a letter.")])
    version = IntegerField("Version", validators=[DataRequired()])


class ServeWithForm(FlaskForm):
    serve_with = SelectField("Answer with", choices=[
        SelectChoice("auto", "the compiled runtime where it passed and is faster"),
        SelectChoice("scikit-learn", "the model's own library, always")])


@bp.get("/")
def index():
    query, sort = request.args.get("q", ""), request.args.get("sort", "name")
    found = registry.page_of_models(query, sort, offset=offset_arg())
    more = url_for("models.index", q=query, sort=sort, offset=found.next_offset) if found.next_offset else None
    return render_template("models/list.html", models=found.items, q=query, sort=sort, more=more,
                           quarantined=hosts.quarantined(), confirm=ConfirmForm())


@bp.route("/upload", methods=["GET", "POST"])
@role_required("scientist")
def upload():
    form = UploadForm(name=request.args.get("name", ""))
    status = 200
    if form.validate_on_submit():
        try:
            version, created = registry.register(
                form.file.data.stream, name=form.name.data, filename=form.file.data.filename,
                description=form.description.data or "", user=requester())
        except ServiceError as exc:
            form.file.errors.append(exc.message)
            status = exc.status
        else:
            flash(f"Registered {version.ref}." if created else
                  f"That file is already {version.ref}; no new version was made.", "info")
            return redirect(url_for("models.version", name=version.model.name, version=version.version))
    elif form.is_submitted():
        status = 400
    return render_template("models/upload.html", form=form), status


@bp.get("/<name>")
def model(name: str):
    if "@" in name:
        version = registry.resolve(name)
        return redirect(url_for("models.version", name=version.model.name, version=version.version))
    found = registry.get_model(name)
    return render_template("models/model.html", model=found, alias_form=AliasForm(), confirm=ConfirmForm(),
                           move_targets=projects.move_targets())


@bp.post("/<name>/move")
@role_required("admin")
def move(name: str):
    model = registry.get_model(name)
    return move_form(lambda project: registry.move(model, project), f"Model {name}", "models.model", name=name)


TOKEN_PLACEHOLDER = "paste your API token here"


def _shell_quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def usage(found, card: dict) -> dict:
    """The model card's usage snippets (curl, Python with requests, viewer.client), built from the
    model's own columns and an example row, against this deployment's URL and the version's v1
    predict route; the token is a placeholder the reader fills in."""
    import json
    import pprint

    from . import root

    example = registry.example_input(found)
    url = url_for("api.predict_version", name=found.model.name, version=found.version, _external=True)
    body = json.dumps(example["payload"], ensure_ascii=False)
    curl = "\n".join([f"TOKEN={_shell_quote(TOKEN_PLACEHOLDER)}", "",
                       f"curl -X POST {_shell_quote(url)} \\", '  -H "Authorization: Bearer $TOKEN" \\',
                       "  -H 'Content-Type: application/json' \\", f"  -d {_shell_quote(body)}"])
    payload = pprint.pformat(example["payload"], sort_dicts=False, width=92)
    python = "\n".join([
        "import requests", "",
        f"TOKEN = {TOKEN_PLACEHOLDER!r}", "",
        "response = requests.post(",
        f"    {url!r},",
        '    headers={"Authorization": f"Bearer {TOKEN}"},',
        "    json=" + payload.replace("\n", "\n         ") + ",",
        "    timeout=60,",
        ")",
        "response.raise_for_status()",
        'print(response.json()["predictions"])',
    ])
    project = request.environ.get(PROJECT_KEY)
    server = request.host_url.rstrip("/") + root()
    rows = pprint.pformat([example["row"]], sort_dicts=False, width=88)
    client_lines = [
        "import pandas as pd", "",
        "from viewer.client import Client", "",
        f"TOKEN = {TOKEN_PLACEHOLDER!r}",
        f"client = Client({server!r}, token=TOKEN" + (f", project={project!r})" if project else ")"),
        ("rows = pd.DataFrame(" + rows.replace("\n", "\n                    ") + ")") if example["columns"] is not None
        else ("rows = " + rows),
        f"print(client.predict(rows, model={found.ref!r}))",
    ]
    if card.get("has_predict_proba"):
        client_lines.append(f"print(client.predict_proba(rows, model={found.ref!r}))")
    return {"curl": curl, "python": python, "client": "\n".join(client_lines), "url": url, "example": example,
            "latest_url": url_for("api.predict", name=found.model.name, _external=True)}


def render_version(found, importance_form: importance.ImportanceForm | None = None, status: int = 200):
    card = registry.version_dict(found)
    return render_template("models/version.html", v=found, card=card,
                           serve_with_form=ServeWithForm(serve_with=found.model.serve_with),
                           parameter_groups=registry.parameter_groups(found.info or {}), usage=usage(found, card),
                           runtime=registry.runtime_versions(), jobs=jobs.of_model_version(found.id),
                           confirm=ConfirmForm(), log=predlog.summary(found.model),
                           **importance.page_context(found, importance_form), **dependence.page_context(found)), status


@bp.get("/<name>/versions/<int:version>")
def version(name: str, version: int):
    return render_version(registry.resolve(registry.Ref(name, version=version)))


@bp.post("/<name>/versions/<int:version>/importance")
@role_required("scientist")
def start_importance(name: str, version: int):
    found = registry.resolve(registry.Ref(name, version=version))
    return importance.start(found, lambda form, status: render_version(found, form, status))


@bp.post("/<name>/versions/<int:version>/dependence")
@role_required("scientist")
def start_dependence(name: str, version: int):
    return dependence.start(registry.resolve(registry.Ref(name, version=version)))


# The job page draws an importance job's plot with this (templates/jobs/_importance.html), and
# partial dependence with the next (templates/jobs/_dependence.html).
bp.add_app_template_global(importance.importance_plot, "importance_plot")
bp.add_app_template_global(dependence.dependence_view, "dependence_view")


@bp.post("/<name>/versions/<int:version>/delete")
@role_required("scientist")
def delete(name: str, version: int):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    found = registry.resolve(registry.Ref(name, version=version))
    try:
        registry.delete_version(found)
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("models.version", name=name, version=version))
    flash(f"Deleted {name}/{version}.", "info")
    return redirect(url_for("models.model", name=name) if registry.exists(name) else url_for("models.index"))


@bp.post("/<name>/versions/<int:version>/release")
@role_required("admin")
def release(name: str, version: int):
    if not ConfirmForm().validate_on_submit():
        abort(400)
    found = registry.resolve(registry.Ref(name, version=version))
    hosts.release(found)
    flash(f"Released {found.ref}: it serves predictions again.", "info")
    return redirect(url_for("models.version", name=name, version=version))


@bp.post("/<name>/versions/<int:version>/runtime")
@role_required("scientist")
def serve_with(name: str, version: int):
    """The per-model switch: compiled runtimes answer (auto) or never (scikit-learn)."""
    found = registry.resolve(registry.Ref(name, version=version))  # 404 before anything else
    form = ServeWithForm()
    if not form.validate_on_submit():
        flash("Choose auto or scikit-learn.", "error")
        return redirect(url_for("models.version", name=name, version=version))
    registry.update_model(found.model, serve_with=form.serve_with.data)
    flash("Compiled runtimes answer where they passed their parity check and are faster."
          if form.serve_with.data == "auto" else f"{name}: scikit-learn answers every prediction.", "info")
    return redirect(url_for("models.version", name=name, version=version) + "#runtime")


@bp.post("/<name>/aliases")
@role_required("scientist")
def set_alias(name: str):
    model = registry.get_model(name)
    form = AliasForm()
    if form.validate_on_submit():
        try:
            registry.set_alias(model, form.alias.data, form.version.data)
            flash(f"{name}@{form.alias.data} now points at version {form.version.data}.", "info")
        except ServiceError as exc:
            flash(exc.message, "error")
    else:
        for field, errors in form.errors.items():
            flash(f"{field}: {'; '.join(errors)}", "error")
    return redirect(url_for("models.model", name=name))


@bp.post("/<name>/aliases/<alias>/delete")
@role_required("scientist")
def remove_alias(name: str, alias: str):
    if ConfirmForm().validate_on_submit():
        registry.remove_alias(registry.get_model(name), alias)
        flash(f"Removed alias {alias}.", "info")
    return redirect(url_for("models.model", name=name))
