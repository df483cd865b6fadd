"""Presenting results: the headline metrics of several jobs side by side, and a stored comparison
seen from one baseline job (``present``).
"""

from __future__ import annotations

from typing import Any, Sequence

from .base import METRICS, _json


# ---------------------------------------------------------------------------------- presenting


def side_by_side(metrics: Sequence[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The headline metrics of several jobs as rows: values, differences vs the first job, which
    direction is better and whether each job is better or worse than the first on it."""
    present_keys = [key for key in METRICS if any(m and m.get(key) is not None for m in metrics)]
    rows = []
    for key in present_keys:
        label, better = METRICS[key]
        values = [(m or {}).get(key) for m in metrics]
        base = values[0]
        differences, verdicts = [None], [None]
        for value in values[1:]:
            if isinstance(base, (int, float)) and isinstance(value, (int, float)):
                d = value - base
                differences.append(d)
                verdicts.append("same" if d == 0 else "better" if (d > 0) == (better == "higher") else "worse")
            else:
                differences.append(None)
                verdicts.append(None)
        rows.append({"key": key, "label": label, "better": better, "values": values,
                     "differences": differences, "verdicts": verdicts})
    return _json(rows)


def present(result: dict[str, Any], stored_order: Sequence[str], order: Sequence[str]) -> dict[str, Any]:
    """A stored result (models in ``stored_order``) as seen from ``order[0]``, the baseline: every
    difference is "other - baseline" with its CI, and per-model lists follow ``order``."""
    position = {job: i for i, job in enumerate(stored_order)}
    if sorted(position) != sorted(order):
        raise ValueError("the jobs do not match the stored comparison")
    perm = [position[job] for job in order]
    base = perm[0]
    differences = []
    for entry in result.get("differences", []):
        for other_pos, other in enumerate(perm[1:], start=1):
            if {entry["a"], entry["b"]} != {base, other}:
                continue
            flip = entry["a"] == other
            item = {"metric": entry["metric"], "label": METRICS[entry["metric"]][0], "better": entry["better"],
                    "job": order[other_pos], "baseline": order[0], "resamples": entry["resamples"]}
            if flip:
                item.update(difference=-entry["difference"], low=-entry["high"], high=-entry["low"],
                            share_positive=1.0 - entry["share_positive"])
            else:
                item.update(difference=entry["difference"], low=entry["low"], high=entry["high"],
                            share_positive=entry["share_positive"])
            if item["low"] > 0 or item["high"] < 0:
                positive = item["low"] > 0
                item["verdict"] = "better" if positive == (entry["better"] == "higher") else "worse"
            else:
                item["verdict"] = "unclear"
            item["main"] = entry["metric"] == result.get("main_metric")
            differences.append(item)
    differences.sort(key=lambda d: (not d["main"], list(METRICS).index(d["metric"]), order.index(d["job"])))
    metrics = {name: {**entry, "estimate": [entry["estimate"][p] for p in perm]}
               for name, entry in result.get("metrics", {}).items()}
    if result.get("disagreement") is None:  # one model on two datasets: no paired rows
        metrics = {name: {**entry, **{key: [entry[key][p] for p in perm] for key in ("n", "sample")
                                      if isinstance(entry.get(key), list)}} for name, entry in metrics.items()}
        rows_each = result.get("n_rows_each")
        return _json({**{k: v for k, v in result.items() if k not in ("differences", "metrics")},
                      "jobs": list(order), "metrics": metrics, "differences": differences,
                      "n_rows_each": [rows_each[p] for p in perm] if rows_each else None})
    disagreement = dict(result.get("disagreement") or {})
    top = []
    for row in disagreement.get("top", []):
        row = dict(row)
        for key in ("predictions", "p", "errors"):
            if row.get(key) is not None:
                row[key] = [row[key][p] for p in perm]
        top.append(row)
    disagreement["top"] = top
    pairs = []
    for pair in disagreement.get("pairs", []):
        for other_pos, other in enumerate(perm[1:], start=1):
            if {pair["a"], pair["b"]} != {base, other}:
                continue
            flip = pair["a"] == other
            item = {"job": order[other_pos], "baseline": order[0]}
            for key, value in pair.items():
                if key in ("a", "b"):
                    continue
                if flip and key == "only_a_right":
                    key = "only_b_right"
                elif flip and key == "only_b_right":
                    key = "only_a_right"
                item[{"only_a_right": "only_baseline_right", "only_b_right": "only_job_right"}.get(key, key)] = value
            pairs.append(item)
    disagreement["pairs"] = sorted(pairs, key=lambda p: order.index(p["job"]))
    return _json({**{k: v for k, v in result.items() if k not in ("differences", "metrics", "disagreement")},
                  "jobs": list(order), "metrics": metrics, "differences": differences,
                  "disagreement": disagreement})
