"""The confusion matrix (a static one, or the binary one the threshold slider drives) and the
threshold numbers: ``threshold_payload`` (what the slider reads) and ``threshold_numbers``
(precision, recall, ... at one threshold), which the ROC and precision-recall markers use too."""

from __future__ import annotations

import math
from typing import Any

from bokeh.models import ColumnDataSource, FactorRange, HoverTool, LinearColorMapper

from .. import style
from .common import MAX_DENSE_MATRIX, MAX_MATRIX_TEXT, PlotSpec, _display_labels, _figure, _label_column

__all__ = ["matrix_display", "threshold_numbers", "threshold_payload"]

# ------------------------------------------------------------------- confusion matrix


def matrix_display(cells: dict[str, list], mode: str = "counts") -> dict[str, list]:
    """The display columns of confusion-matrix cells: ``row_total`` and ``row_share`` (share of
    the true class's rows), ``text`` written on the cell, ``intensity`` (0..1, the colour) and
    ``text_color``. ``mode`` is "counts" (colour by count / largest count) or "row" (colour and
    text by row share). ``viewer/static/results.js`` implements the same rule."""
    counts = cells["count"]
    totals: dict[str, int] = {}
    for t, c in zip(cells["true"], counts):
        totals[t] = totals.get(t, 0) + c
    row_total = [totals[t] for t in cells["true"]]
    row_share = [c / r if r else 0.0 for c, r in zip(counts, row_total)]
    if mode == "row":
        intensity = row_share
        text = [f"{s * 100:.1f} %" if r else "—" for s, r in zip(row_share, row_total)]
    else:
        top = max(counts, default=0)
        intensity = [c / top if top else 0.0 for c in counts]
        text = [f"{c:,}" for c in counts]
    return {**cells, "row_total": row_total, "row_share": row_share, "text": text, "intensity": intensity,
            "text_color": [style.text_on(i) for i in intensity]}


def _matrix_cells(labels: list[str], matrix: list[list[int]], dense: bool) -> dict[str, list]:
    true, pred, count = [], [], []
    for i, row in enumerate(matrix):
        for j, c in enumerate(row):
            if c or dense:
                true.append(labels[i])
                pred.append(labels[j])
                count.append(int(c))
    return {"true": true, "pred": pred, "count": count}


def _matrix_figure(key: str, labels: list[str], cells: dict[str, list]):
    k = len(labels)
    source = ColumnDataSource(cells, name=f"src-{key}")
    height = min(max(320, 90 + 44 * k), 820)
    fig = _figure(x_label="Predicted class", y_label="True class", height=height,
                  x_range=FactorRange(*labels), y_range=FactorRange(*reversed(labels)),
                            tools="hover,save", name=f"fig-{key}")
    mapper = LinearColorMapper(palette=style.ramp(), low=0.0, high=1.0)
    cells_renderer = fig.rect(x="pred", y="true", width=0.96, height=0.94, source=source,
                              fill_color={"field": "intensity", "transform": mapper}, line_color=None,
                              hover_line_color=style.SECOND, hover_line_width=2,
                              hover_fill_color={"field": "intensity", "transform": mapper})
    if k <= MAX_MATRIX_TEXT:
        fig.text(x="pred", y="true", text="text", source=source, text_color="text_color",
                 text_align="center", text_baseline="middle",
                 text_font_size="15px" if k <= 4 else ("12px" if k <= 10 else "9px"), text_font_style="bold")
    hover = fig.select_one(HoverTool)
    hover.renderers = [cells_renderer]
    hover.tooltips = [("true class", "@true"), ("predicted", "@pred"), ("rows", "@count{0,0}"),
                      ("share of true class", "@row_share{0.0%}")]
    fig.xgrid.grid_line_color = None
    fig.ygrid.grid_line_color = None
    fig.axis.major_tick_line_color = None
    fig.axis.axis_line_color = None
    fig.axis.major_label_text_font_size = "12px"
    if k > 6:
        fig.xaxis.major_label_orientation = math.pi / 4
    fig.toolbar_location = None
    return fig


def threshold_payload(aggregates: dict) -> dict | None:
    """What the page's threshold slider reads (a JSON data block): the threshold table's
    thresholds and TP/FP/TN/FN at each, and the index shown first (the threshold 0.5)."""
    table = aggregates.get("threshold_table")
    if not table:
        return None
    thresholds = table["thresholds"]
    index = min(range(len(thresholds)), key=lambda i: abs(thresholds[i] - 0.5))
    return {"thresholds": thresholds, "tp": table["tp"], "fp": table["fp"], "tn": table["tn"], "fn": table["fn"],
            "index": index, "rule": table.get("rule", "")}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def threshold_numbers(payload: dict, index: int) -> dict[str, Any]:
    """Precision, recall, F1, accuracy and the flagged rows at ``payload``'s threshold number
    ``index``, as numbers and as the text the page shows (results.js computes the same)."""
    tp, fp, tn, fn = (payload[k][index] for k in ("tp", "fp", "tn", "fn"))
    n = tp + fp + tn + fn
    values = {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn),
              "accuracy": _ratio(tp + tn, n), "specificity": _ratio(tn, tn + fp)}
    text = {k: "—" if v is None else f"{v:.4f}" for k, v in values.items()}
    text["flagged"] = f"{tp + fp:,}"
    text["flagged_share"] = "—" if not n else f"{(tp + fp) / n * 100:.1f} %"
    text["threshold"] = f"{payload['thresholds'][index]:.2f}"
    return {"values": values, "text": text, "tp": tp, "fp": fp, "tn": tn, "fn": fn}


def _binary_cells(labels: list[str], payload: dict, index: int) -> dict[str, list]:
    neg, pos = labels[0], labels[1]
    tp, fp, tn, fn = (payload[k][index] for k in ("tp", "fp", "tn", "fn"))
    return {"true": [neg, neg, pos, pos], "pred": [neg, pos, neg, pos], "cell": ["tn", "fp", "fn", "tp"],
            "count": [tn, fp, fn, tp]}


def _threshold_confusion(agg: dict) -> PlotSpec:
    table = agg["threshold_table"]
    payload = threshold_payload(agg)
    labels = _display_labels(agg["classes"])[:2]
    index = payload["index"]
    csv: dict[str, list] = {"threshold": list(table["thresholds"]), "tp": list(table["tp"]), "fp": list(table["fp"]),
                            "tn": list(table["tn"]), "fn": list(table["fn"])}
    for name in ("precision", "recall", "f1", "accuracy"):
        csv[name] = [threshold_numbers(payload, i)["values"][name] for i in range(len(table["thresholds"]))]

    def draw():
        cells = matrix_display(_binary_cells(labels, payload, index), "counts")
        return _matrix_figure("confusion", labels, cells)

    note = ("A row is predicted positive when its score is at least the threshold. Move the slider to see the "
            "matrix, the numbers beside it and the markers on the ROC and precision-recall curves change.")
    return PlotSpec("confusion", "Confusion matrix at a threshold", style.exactness(table), csv, draw, note=note,
                    control="threshold", wide=True, extra={"threshold": payload})


def _static_confusion(agg: dict) -> PlotSpec:
    part = agg["confusion_matrix"]
    labels = _display_labels(part["labels"])
    dense = len(labels) <= MAX_DENSE_MATRIX
    cells = _matrix_cells(labels, part["matrix"], dense)
    full = _matrix_cells(_label_column(part["labels"]), part["matrix"], True)
    shown = matrix_display(full, "counts")
    csv = {"true_class": full["true"], "predicted_class": full["pred"], "count": full["count"],
           "share_of_true_class": shown["row_share"]}

    def draw():
        return _matrix_figure("confusion", labels, matrix_display(cells, "counts"))

    note = "Rows are the true classes, columns the predicted ones; the diagonal is right."
    if len(labels) > len(agg.get("classes", labels)):
        note += " Labels after the model's classes appear in the target but are unknown to the model."
    return PlotSpec("confusion", "Confusion matrix", style.exactness(part), csv, draw, note=note, control="matrix",
                    wide=len(labels) > 8)
