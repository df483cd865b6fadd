"""The prediction page: a form built from the model's input schema, a what-if, and CSV rows."""

from __future__ import annotations

import math

from bokeh.embed import json_item
from flask import Blueprint, render_template, request, session

from ..core.payload import PayloadError, Table, parse_csv
from ..core.explain import describe_output
from ..plots.explanations import TOP, waterfall
from ..plots.probabilities import probability_bars
from ..services import predlog, registry, serving
from ..services.errors import ServiceError
from ..services.registry import Ref
from .assets import bokeh_urls
from .forms import ConfirmForm

bp = Blueprint("predict", __name__, url_prefix="/models")
MAX_PAGE_ROWS = 200
EXPLANATION_KEY = "whatif:explanation"


def _field_value(feature: dict, raw: str | None, errors: dict[str, str]):
    name = feature["name"]
    raw = (raw or "").strip()
    if feature.get("kind") == "categorical":
        return raw if raw != "" else None
    if raw == "":
        return None  # missing: the model may impute it, or the predictor says it cannot
    try:
        value = float(raw)
    except ValueError:
        errors[name] = "Enter a number."
        return None
    if not math.isfinite(value):
        errors[name] = "Enter a finite number."
    return value


@bp.route("/<name>/versions/<int:version>/predict", methods=["GET", "POST"])
def page(name: str, version: int):
    ref = str(Ref(name, version=version))
    record = registry.resolve(ref)
    served = serving.resolve(ref)
    # Named features get a field each; unnamed ones (x0, x1, ...) a pasted row of values.
    # Columns the model drops get no field (the predictor takes them as left out); the page lists them.
    described = (record.info.get("input_schema") or []) if record.info.get("feature_names") else []
    schema = [f for f in described if f.get("kind") != "unused"]
    unused = [f["name"] for f in described if f.get("kind") == "unused"]
    form = ConfirmForm()
    values = {f["name"]: registry.typical(f.get("default")) for f in schema}
    if request.method == "GET":  # a row opened from elsewhere (a job's row explorer): its values
        values.update({f["name"]: request.args["f:" + f["name"]] for f in schema if "f:" + f["name"] in request.args})
    errors: dict[str, str] = {}
    error = None
    result = rows_result = plot = why = None
    mode = request.form.get("mode", "fields")
    status = 200
    has_proba = served.predictor is not None and served.predictor.has_proba
    if served.quarantined is not None and request.method == "GET":
        error = f"{served.ref} is quarantined: {served.quarantined}"
    if form.validate_on_submit():
        try:
            if mode == "csv":
                text = request.form.get("csv", "")
                table = parse_csv(text.encode())
                if table.n_rows > MAX_PAGE_ROWS:
                    raise PayloadError(f"Paste at most {MAX_PAGE_ROWS} rows here; use a scoring job for more.")
                rows_result = serving.run(served, table, proba=has_proba, call=predlog.begin("page", None))
                rows_result["n"] = table.n_rows
            else:
                if schema:
                    values = {f["name"]: request.form.get("f:" + f["name"]) for f in schema}
                    row = [_field_value(f, values[f["name"]], errors) for f in schema]
                    table = Table(columns=[f["name"] for f in schema], rows=[row])
                else:
                    text = request.form.get("row", "")
                    values = {"row": text}
                    try:
                        row = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
                    except ValueError:
                        errors["row"] = "Enter numbers separated by commas."
                        row = []
                    table = Table(columns=None, rows=[row])
                if not errors:
                    explain = "optional" if record.info.get("kind") in ("classifier", "regressor") else False
                    result = serving.run(served, table, proba=has_proba, call=predlog.begin("page", None),
                                         explain=explain)
        except PayloadError as exc:
            error = exc.message
        except ServiceError as exc:  # a quarantined model, a model host that failed
            error, status = exc.message, exc.status
        if (errors or error) and status == 200:
            status = 400
    if result:
        key = f"whatif:{record.sha256[:16]}"
        previous = session.get(key)
        if "probabilities" in result:
            probabilities = result["probabilities"][0]
            plot = json_item(probability_bars(result["classes"], probabilities,
                                              previous.get("probabilities") if previous else None))
            result["previous"] = previous
            session[key] = {"prediction": result["predictions"][0], "probabilities": probabilities}
        else:
            result["previous"] = previous
            session[key] = {"prediction": result["predictions"][0]}
        explained = result.get("explanations")
        if explained:
            row = explained["rows"][0]
            label = describe_output(explained["output"], row["class"])
            kept = session.get(EXPLANATION_KEY) or {}
            before = kept.get("row") if kept.get("model") == record.sha256 else None
            why = {"label": label, "row": row, "plot": json_item(waterfall(row, label, before)),
                   "explained": explained, "before": before,
                   "top": sorted(row["contributions"].items(), key=lambda kv: -abs(kv[1] or 0.0))[:TOP]}
            # one slot for every model: the cookie stays small however many models a user tries
            session[EXPLANATION_KEY] = {"model": record.sha256, "row": _kept(row)}
    return render_template("models/predict.html", v=record, schema=schema, unused=unused, values=values, errors=errors,
                           error=error, result=result, rows_result=rows_result, plot=plot, why=why, mode=mode,
                           form=form, bokeh_scripts=bokeh_urls() if plot or why else []), status


def _kept(row: dict) -> dict:
    """What the next what-if needs of this explanation, small enough for the session cookie: the
    baseline, the output and the largest contributions."""
    largest = sorted(row["contributions"].items(), key=lambda kv: -abs(kv[1] or 0.0))[:TOP + 3]
    return {"base": round(row["base"], 6), "output": round(row["output"], 6),
            "contributions": {k: round(v or 0.0, 6) for k, v in largest if len(k) <= 200}}
