"""The monitoring page: a model's drift heat map (columns x windows), the drill-down into one
cell, traffic, latency and realized performance per window, and its log and reference settings."""

from __future__ import annotations

from datetime import datetime

from bokeh.embed import json_item
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, FloatField, IntegerField, SelectField, StringField
from wtforms.validators import NumberRange, Optional

from ..core.drift.window import PREDICTION
from ..http.auth import role_required
from ..plots.monitoring import distribution
from ..services import datasets, monitoring, predlog, registry
from ..services.errors import ServiceError
from .assets import bokeh_urls

bp = Blueprint("monitoring", __name__, url_prefix="/models")
SPANS = {"hour": 1, "day": 24, "week": 168}
LAST = {"hour": 48, "day": 30, "week": 12}


class ReferenceForm(FlaskForm):
    reference = SelectField("Reference dataset", choices=[], validate_choice=False)


class LogForm(FlaskForm):
    enabled = BooleanField("Log predictions")
    sample = FloatField("Share of rows whose inputs are logged (0 to 1)", validators=[NumberRange(0, 1)])
    exclude = StringField("Columns never logged (comma-separated)", validators=[Optional()])
    hashed = StringField("Columns logged as a keyed hash (comma-separated)", validators=[Optional()])
    retention_days = IntegerField("Keep records for (days)", validators=[NumberRange(1, predlog.MAX_RETENTION_DAYS)])


def _cell_of(report: dict, wanted: str | None):
    """The heat map's chosen cell ("version|start|column" in the query string), if it exists."""
    if not wanted or wanted.count("|") < 2:
        return None
    version, start, column = wanted.split("|", 2)
    for window in report["windows"]:
        if str(window["version"]) == version and window["start"] == start:
            if column in window.get("columns", {}) or (column == PREDICTION and window.get("prediction")):
                return int(version), start, column
    return None


def level(figures: dict | None, thresholds: dict) -> tuple[str, float | None]:
    """A heat map cell's class and value: its drift measure against the threshold."""
    if not figures or ("wasserstein" not in figures and "jensen_shannon" not in figures):
        return "none", None
    value = figures.get("wasserstein", figures.get("jensen_shannon"))
    if value is None:
        return "none", None
    if figures.get("drift") is None:
        return "few", value
    limit = thresholds["wasserstein" if "wasserstein" in figures else "jensen_shannon"]
    return ("drift" if figures["drift"] else "near" if value > limit / 2 else "ok"), value


@bp.get("/<name>/monitoring")
def page(name: str):
    model = registry.get_model(name)
    window = request.args.get("window", "hour")
    if window not in SPANS:
        window = "hour"
    report = monitoring.report(model, span=SPANS[window], last=LAST[window])
    columns: list[str] = []
    for w in report["windows"]:
        columns.extend(c for c in w.get("columns", {}) if c not in columns)
    chosen = _cell_of(report, request.args.get("cell"))
    plot = None
    if chosen is not None:
        version, start, column = chosen
        try:
            cell = monitoring.cell(model, version, datetime.fromisoformat(start.replace("Z", "+00:00"))
                                   .replace(tzinfo=None), report["window_seconds"], column,
                                   raw=current_user.has_role("scientist"))
            cell["column"] = "predictions" if column == PREDICTION else column
            plot = json_item(distribution(cell))
        except ServiceError:
            chosen = None
    reference_form = ReferenceForm(reference=(model.monitor or {}).get("reference") or "")
    reference_form.reference.choices = [("", "The dataset of the first scoring job")] + datasets.names()
    settings = predlog.settings_of(model)
    log_form = LogForm(enabled=settings["enabled"], sample=settings["sample"], exclude=", ".join(settings["exclude"]),
                       hashed=", ".join(settings["hash"]), retention_days=settings["retention_days"])
    return render_template("models/monitoring.html", model=model, report=report, window=window, columns=columns,
                           level=level, chosen=chosen, plot=plot, PREDICTION=PREDICTION, log=predlog.summary(model),
                           reference_form=reference_form, log_form=log_form,
                           bokeh_scripts=bokeh_urls() if plot else [])


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


@bp.post("/<name>/monitoring/reference")
@role_required("scientist")
def reference(name: str):
    model = registry.get_model(name)
    form = ReferenceForm()
    if form.validate_on_submit():
        try:
            registry.update_model(model, monitor={"reference": form.reference.data or None})
            flash("Reference chosen: the drift of every window is computed again against it within a minute.", "info")
        except ServiceError as exc:
            flash(exc.message, "error")
    return redirect(url_for("monitoring.page", name=name))


@bp.post("/<name>/monitoring/log")
@role_required("scientist")
def log_settings(name: str):
    model = registry.get_model(name)
    form = LogForm()
    if not form.validate_on_submit():
        flash(" ".join(f"{form[f].label.text}: {e[0]}" for f, e in form.errors.items()), "error")
        return redirect(url_for("monitoring.page", name=name) + "#log")
    try:
        registry.update_model(model, log={"enabled": form.enabled.data, "sample": form.sample.data,
                                          "exclude": _names(form.exclude.data), "hash": _names(form.hashed.data),
                                          "retention_days": form.retention_days.data})
        flash("Log settings saved; they apply to predictions within a few seconds.", "info")
    except ServiceError as exc:
        flash(exc.message, "error")
    return redirect(url_for("monitoring.page", name=name) + "#log")
