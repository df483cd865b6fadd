"""The job page's segments: the table (worst first), its bar chart, the weak segments the finder
kept, and fairness for the sensitive column(s) chosen (``?sensitive=<column>``, twice for two).

``templates/jobs/_segments.html`` calls the ``segment_view(job)`` template global, registered on
the jobs blueprint, so the job page's view needs no change."""

from __future__ import annotations

from typing import Any

from bokeh.embed import json_item
from flask import request

from ..core.segments.fairness import fairness
from ..plots.segments import name_of, segment_bars

TABLE_ROWS = 60
LABELS = {"accuracy": ("Accuracy", True), "mae": ("Mean absolute error", False)}


def segment_view(job) -> dict[str, Any] | None:
    found = (job.result or {}).get("segments") if job.kind == "score" and job.state == "done" else None
    if not found:
        return None
    label, higher_is_better = LABELS[found["metric"]]
    entries = found["segments"]
    binary = any("confusion" in e for e in entries)
    view: dict[str, Any] = {
        "label": label, "overall": found["overall"], "rows": entries[:TABLE_ROWS], "total": len(entries),
        "weak": found.get("weak"), "name_of": name_of, "binary": binary, "threshold": found.get("threshold"),
        "plot": json_item(segment_bars(entries, found["overall"], label, higher_is_better), "segments-plot"),
    }
    if binary:
        view["fair"] = _fairness(found, [c for c in request.args.getlist("sensitive") if c][:2])
    return view


def _fairness(found: dict[str, Any], chosen: list[str]) -> dict[str, Any]:
    columns = list(dict.fromkeys(e["column"] for e in found["segments"]
                                 if e.get("kind") == "categorical" and "confusion" in e))
    out: dict[str, Any] = {"columns": columns, "chosen": chosen, "result": None, "error": None}
    if not chosen:
        return out
    if any(c not in columns for c in chosen) or (len(chosen) == 2 and chosen[0] == chosen[1]):
        out["error"] = "Choose categorical columns of this job's segments."
        return out
    if len(chosen) == 1:
        groups = [{"label": e["label"], "confusion": e["confusion"], "calibration": e.get("calibration")}
                  for e in found["segments"] if e.get("column") == chosen[0] and "confusion" in e]
    else:
        joint = next((j for j in found.get("joint") or [] if set(j["columns"]) == set(chosen)), None)
        if joint is None:
            out["error"] = ("Intersections are counted for the first six categorical columns only; choose two of "
                            "them.")
            return out
        swap = joint["columns"] != chosen
        groups = [{"label": " & ".join(reversed(pair) if swap else pair), "confusion": confusion}
                  for pair, confusion in zip(joint["labels"], joint["confusion"])]
    out["result"] = fairness(groups)
    return out

