"""Partial dependence on pages: the form on the model version page (beside feature importance)
and the curves on the job page (the ``dependence_view(job)`` template global)."""

from __future__ import annotations

from typing import Any

from bokeh.embed import json_item
from flask import flash, redirect, request, url_for

from ..http.auth import requester
from ..infra.records import Job, ModelVersion
from ..plots.dependence import feature_figure, pair_figure
from ..services import dependence
from ..services import datasets as dataset_service
from ..services.errors import ServiceError


def page_context(version: ModelVersion) -> dict[str, Any]:
    """What the version page's partial dependence form needs: the datasets, the inputs to choose
    from, and the finished jobs."""
    schema = [f["name"] for f in (version.info or {}).get("input_schema") or [] if f.get("kind") != "unused"]
    return {"dependence_datasets": dataset_service.ready(), "dependence_inputs": schema,
            "dependence_jobs": dependence.finished(version.id)}


def start(version: ModelVersion):
    """Start (or find) the job from the form and open its page; a refusal is flashed above the form."""
    chosen = request.form.getlist("features")
    pair = [p for p in request.form.getlist("pair") if p]
    try:
        job, created = dependence.submit(version.ref, request.form.get("dataset") or "", requester(),
                                         features=chosen, pair=pair or None)
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for("models.version", name=version.model.name, version=version.version) + "#dependence")
    flash(f"Partial dependence of {version.ref} on {job.params['dataset']}" + (" is being computed." if created else
          f" with these options exists already: this is that job ({job.state})."), "info")
    return redirect(url_for("jobs.page", job_id=job.id))


def dependence_view(job: Job) -> dict[str, Any] | None:
    result = job.result or {}
    if job.kind != dependence.KIND or job.state != "done" or not result.get("features"):
        return None
    output = result["output"]
    label = "prediction" if output["what"] == "prediction" else f"probability of {output['classes'][0]}"
    items = [{"name": f["name"], "item": json_item(feature_figure(f, label), f"pd-{i}")}
             for i, f in enumerate(result["features"])]
    pair = json_item(pair_figure(result["pair"], label), "pd-pair") if result.get("pair") else None
    return {"result": result, "label": label, "items": items, "pair": pair}
