"""The plots of a finished scoring job, drawn from its stored aggregates (``viewer.core.metrics``).

``result_plots(aggregates)`` returns one ``PlotSpec`` per plot the aggregates allow: a stable
``key``, a title, the "exact / aggregated" caption, the plot's data as a table (for its CSV
download) and ``draw()``, which builds the bokeh model only when a page asks for it (the CSV route
needs only the table). Everything comes from the bounded aggregates, so the size of a page does
not grow with the number of rows scored.

Names the page's script (``viewer/static/results.js``) and browser tests rely on:

* every plot's root model is named ``fig-<key>`` and its main data source ``src-<key>``;
* the confusion matrix cells (``src-confusion``) have the columns ``true``, ``pred``, ``count``,
  ``row_total``, ``row_share``, ``text``, ``intensity``, ``text_color`` (and ``cell`` = tn/fp/fn/tp
  for a binary matrix driven by the threshold slider); ``matrix_display`` is the one rule both
  Python and the script follow to fill the display columns;
* the threshold markers: ``src-threshold-roc``, ``src-threshold-pr`` (columns ``x``, ``y``) and
  the vertical line ``threshold-score`` (a ``Span``) on the score distribution.

User data (class labels, the target's name) goes only into data-source columns, categorical
factors and text properties (axis and legend labels), which BokehJS draws as text. Hover tooltips
are fixed ``(label, "@field")`` pairs, and BokehJS escapes field values; no CustomJS anywhere.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from bokeh.layouts import column
from bokeh.models import (ColorBar, ColumnDataSource, FactorRange, FixedTicker, HoverTool, Legend, LinearColorMapper,
                          LogColorMapper, NumeralTickFormatter, Plot, Range1d, Span)
from bokeh.transform import dodge

from . import style

__all__ = ["PlotSpec", "matrix_display", "plot_table", "result_plots", "threshold_numbers", "threshold_payload",
           "unavailable_notes"]

MAX_MATRIX_TEXT = 20        # no numbers written on the cells of larger matrices
MAX_DENSE_MATRIX = 30       # larger matrices ship only their non-zero cells
MAX_LEGEND = 12             # more one-vs-rest curves: no legend (the hover says which class)
MISSING_LABEL = "(missing)"


@dataclass
class PlotSpec:
    """One plot of a result page."""

    key: str
    title: str
    caption: str                       # exact / thinned / aggregated, from style.exactness
    table: dict[str, list]             # the plot's data, column -> values (the CSV download)
    draw: Callable[[], Any]            # builds the bokeh model (root named "fig-<key>")
    note: str = ""                     # how to read it (plain text, escaped by the page)
    control: str | None = None         # "threshold" (slider + matrix toggle) or "matrix" (toggle only)
    wide: bool = False                 # spans the page's two plot columns
    exact: bool = True
    stretchable: bool = False          # reads well across the page (bars, histograms): may be made wide
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def _display_labels(labels: list) -> list[str]:
    """Class labels as unique strings (categorical factors must be distinct strings)."""
    out: list[str] = []
    seen: set[str] = set()
    for label in labels:
        text = MISSING_LABEL if label is None else str(label)
        base, k = text, 2
        while text in seen:
            text = f"{base} ({k})"
            k += 1
        seen.add(text)
        out.append(text)
    return out


def _short(label: str, size: int = 24) -> str:
    """A label cut for a legend (the hover shows it whole)."""
    return label if len(label) <= size else label[:size - 1] + "…"


def _label_column(labels: list) -> list:
    """Labels for a CSV column: numbers stay numbers when every label is one, else text."""
    if labels and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
        return list(labels)
    return _display_labels(labels)


def _num(value: Any) -> float:
    """A JSON number for a data source (None -> NaN, which BokehJS leaves undrawn)."""
    return float("nan") if value is None else float(value)


def _hover(fig, renderers: list, tooltips: list[tuple[str, str]], **kwargs) -> None:
    fig.add_tools(HoverTool(renderers=renderers, tooltips=tooltips, **kwargs))


def _figure(**kwargs):
    """A figure without a title of its own: the page's card heading names the plot."""
    fig = style.base_figure("", **kwargs)
    fig.min_border_top = 12
    return fig


def _legend_above(fig) -> None:
    """A horizontal legend above the plot area, so it never covers data (call before adding glyphs)."""
    fig.add_layout(Legend(orientation="horizontal", location="top_left", border_line_color=None, padding=2,
                          spacing=14, label_text_font_size="12px", margin=0), "above")


def _unit_figure(x_label: str, y_label: str, **kwargs):
    """Axes from 0 to 1 on both sides (curves of rates)."""
    return _figure(x_label=x_label, y_label=y_label, x_range=Range1d(-0.02, 1.02), y_range=Range1d(-0.02, 1.04),
                   **kwargs)


def _diagonal(fig, legend: str | None = None) -> None:
    kwargs = {"legend_label": legend} if legend else {}
    fig.line([0, 1], [0, 1], line_dash="dashed", line_color=style.REFERENCE, line_width=1.5, **kwargs)


def _legend_bottom_right(fig) -> None:
    fig.legend.location = "bottom_right"
    fig.legend.background_fill_alpha = 0.85
    fig.legend.border_line_color = None
    fig.legend.label_text_font_size = "12px"
    fig.legend.spacing = 0
    fig.legend.padding = 6


def _fmt_threshold(value: Any) -> str:
    if value is None:
        return "∞ (nothing flagged)"
    return f"{value:.4g}"


def _bins(edges: list[float]) -> tuple[list[float], list[float], list[str]]:
    left, right = edges[:-1], edges[1:]
    text = [f"[{a:.4g}, {b:.4g}{']' if i == len(left) - 1 else ')'}" for i, (a, b) in enumerate(zip(left, right))]
    return left, right, text


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


# --------------------------------------------------------------------------- curves


def _roc(agg: dict) -> PlotSpec:
    part = agg["roc"]
    thresholds = part["thresholds"]
    csv = {"fpr": part["fpr"], "tpr": part["tpr"], "threshold": thresholds}
    payload = threshold_payload(agg)

    def draw():
        fig = _unit_figure("False positive rate", "True positive rate", name="fig-roc")
        source = ColumnDataSource({"fpr": part["fpr"], "tpr": part["tpr"],
                                   "threshold": [_fmt_threshold(t) for t in thresholds]}, name="src-roc")
        fig.varea(x="fpr", y1=0, y2="tpr", source=source, fill_color=style.ACCENT, fill_alpha=0.08)
        _diagonal(fig, "Chance (AUC 0.5)")
        fig.line("fpr", "tpr", source=source, line_color=style.ACCENT, line_width=2.5,
                 legend_label=f"Model (AUC {part['auc']:.4f})")
        points = fig.scatter("fpr", "tpr", source=source, size=9, fill_alpha=0, line_alpha=0,
                             hover_fill_color=style.ACCENT, hover_fill_alpha=1, hover_line_color="white")
        _hover(fig, [points], [("threshold", "@threshold"), ("false positive rate", "@fpr{0.0000}"),
                               ("true positive rate", "@tpr{0.0000}")], mode="mouse")
        if payload:
            numbers = threshold_numbers(payload, payload["index"])
            fpr = _ratio(numbers["fp"], numbers["fp"] + numbers["tn"])
            tpr = numbers["values"]["recall"]
            _threshold_marker(fig, "roc", _num(fpr), _num(tpr))
        _legend_bottom_right(fig)
        return fig

    return PlotSpec("roc", "ROC curve", style.exactness(part), csv, draw, exact=part["exact"],
                    note=f"AUC {part['auc']:.4f}. The dashed diagonal is a model that guesses; "
                         "hover the curve for the threshold at each point.",
                    extra={"positive_label": part.get("positive_label")})


def _threshold_marker(fig, key: str, x: float, y: float) -> None:
    source = ColumnDataSource({"x": [x], "y": [y]}, name=f"src-threshold-{key}")
    fig.scatter("x", "y", source=source, size=13, marker="circle", fill_color=style.SECOND, line_color="white",
                line_width=2, legend_label="Slider threshold", name=f"threshold-marker-{key}")


def _pr(agg: dict) -> PlotSpec:
    part = agg["pr"]
    thresholds = part["thresholds"]
    csv = {"recall": part["recall"], "precision": part["precision"], "threshold": thresholds}
    payload = threshold_payload(agg)
    prevalence = part["prevalence"]

    def draw():
        fig = _unit_figure("Recall", "Precision", name="fig-pr")
        source = ColumnDataSource({"recall": part["recall"], "precision": part["precision"],
                                   "threshold": ["—" if t is None else f"{t:.4g}" for t in thresholds]},
                                  name="src-pr")
        fig.line([0, 1], [prevalence, prevalence], line_dash="dashed", line_color=style.REFERENCE, line_width=1.5,
                 legend_label=f"Chance (prevalence {prevalence:.3f})")
        fig.line("recall", "precision", source=source, line_color=style.ACCENT, line_width=2.5,
                 legend_label=f"Model (AP {part['average_precision']:.4f})")
        points = fig.scatter("recall", "precision", source=source, size=9, fill_alpha=0, line_alpha=0,
                             hover_fill_color=style.ACCENT, hover_fill_alpha=1, hover_line_color="white")
        _hover(fig, [points], [("threshold", "@threshold"), ("recall", "@recall{0.0000}"),
                               ("precision", "@precision{0.0000}")], mode="mouse")
        if payload:
            numbers = threshold_numbers(payload, payload["index"])["values"]
            _threshold_marker(fig, "pr", _num(numbers["recall"]), _num(numbers["precision"]))
        _legend_bottom_right(fig)
        fig.legend.location = "bottom_left"
        return fig

    return PlotSpec("pr", "Precision-recall curve", style.exactness(part), csv, draw, exact=part["exact"],
                    note=f"Average precision {part['average_precision']:.4f}; the dashed line is the share of "
                         "positive rows, what a model that guesses gets.")


def _roc_ovr(agg: dict) -> PlotSpec:
    part = agg["roc_ovr"]
    curves = part["curves"]
    labels = _display_labels([c["label"] for c in curves])
    csv_labels = _label_column([c["label"] for c in curves])
    csv: dict[str, list] = {"class": [], "fpr": [], "tpr": [], "threshold": []}
    for label, curve in zip(csv_labels, curves):
        csv["class"] += [label] * len(curve["fpr"])
        csv["fpr"] += curve["fpr"]
        csv["tpr"] += curve["tpr"]
        csv["threshold"] += curve["thresholds"]
    caption = style.exactness({"exact": part["exact"], "n": part["n"],
                               "n_points": sum(c["n_points"] for c in curves),
                               "n_points_exact": sum(c["n_points_exact"] for c in curves)})

    def draw():
        fig = _unit_figure("False positive rate", "True positive rate", name="fig-roc_ovr")
        _diagonal(fig)
        tips = [("class", "@cls"), ("AUC", "@auc{0.0000}"), ("threshold", "@threshold"),
                ("false positive rate", "@fpr{0.0000}"), ("true positive rate", "@tpr{0.0000}")]
        if len(curves) > MAX_LEGEND:  # many classes: two renderers in all, no legend (bokeh models are slow)
            lines = ColumnDataSource({"fpr": [c["fpr"] for c in curves], "tpr": [c["tpr"] for c in curves],
                                      "color": [style.color(i) for i in range(len(curves))]},
                                     name="src-roc_ovr-lines")
            fig.multi_line("fpr", "tpr", source=lines, line_color="color", line_width=1.5, line_alpha=0.8)
            data: dict[str, list] = {"fpr": [], "tpr": [], "cls": [], "auc": [], "threshold": []}
            for label, curve in zip(labels, curves):
                n = len(curve["fpr"])
                data["fpr"] += curve["fpr"]
                data["tpr"] += curve["tpr"]
                data["cls"] += [label] * n
                data["auc"] += [curve["auc"]] * n
                data["threshold"] += [_fmt_threshold(t) for t in curve["thresholds"]]
            points = fig.scatter("fpr", "tpr", source=ColumnDataSource(data, name="src-roc_ovr-0"), size=7,
                                 fill_alpha=0, line_alpha=0, hover_fill_color=style.INK, hover_fill_alpha=1)
            _hover(fig, [points], tips)
            return fig
        renderers = []
        for i, (label, curve) in enumerate(zip(labels, curves)):
            n = len(curve["fpr"])
            source = ColumnDataSource({"fpr": curve["fpr"], "tpr": curve["tpr"], "cls": [label] * n,
                                       "auc": [curve["auc"]] * n,
                                       "threshold": [_fmt_threshold(t) for t in curve["thresholds"]]},
                                      name=f"src-roc_ovr-{i}")
            fig.line("fpr", "tpr", source=source, line_color=style.color(i), line_width=2,
                     legend_label=f"{_short(label)} (AUC {curve['auc']:.3f})")
            renderers.append(fig.scatter("fpr", "tpr", source=source, size=8, fill_alpha=0, line_alpha=0,
                                         hover_fill_color=style.color(i), hover_fill_alpha=1,
                                         hover_line_color="white"))
        _hover(fig, renderers, tips)
        _legend_bottom_right(fig)
        fig.legend.click_policy = "hide"
        return fig

    note = "Each class against all others. " + ("Click a legend entry to hide its curve." if len(curves) <= MAX_LEGEND
                                                 else "Hover a curve to see its class.")
    return PlotSpec("roc_ovr", "One-vs-rest ROC curves", caption, csv, draw, exact=part["exact"], note=note)


# ----------------------------------------------------------------- calibration, scores


def _calibration(agg: dict) -> PlotSpec:
    part = agg["calibration"]
    edges = part["bin_edges"]
    bins = part["bin"]
    left = [edges[b] for b in bins]
    right = [edges[b + 1] for b in bins]
    csv = {"bin_from": left, "bin_to": right, "count": part["count"], "mean_predicted": part["prob_pred"],
           "fraction_positive": part["prob_true"]}

    def draw():
        top = max(part["count"], default=1) or 1
        data = {"prob_pred": part["prob_pred"], "prob_true": part["prob_true"], "count": part["count"],
                "size": [8 + 16 * math.sqrt(c / top) for c in part["count"]],
                "bin": [f"[{a:.2g}, {b:.2g}{']' if b >= 1 else ')'}" for a, b in zip(left, right)],
                "left": left, "right": right}
        source = ColumnDataSource(data, name="src-calibration")
        fig = _unit_figure("", "Fraction of positive rows", height=280,
                           name="fig-calibration-curve")
        _diagonal(fig, "Perfectly calibrated")
        fig.line("prob_pred", "prob_true", source=source, line_color=style.ACCENT, line_width=2, legend_label="Model")
        dots = fig.scatter("prob_pred", "prob_true", source=source, size="size", fill_color=style.ACCENT,
                           fill_alpha=0.85, line_color="white", hover_fill_color=style.SECOND)
        tips = [("score bin", "@bin"), ("mean score", "@prob_pred{0.0000}"),
                ("fraction positive", "@prob_true{0.0000}"), ("rows", "@count{0,0}")]
        _hover(fig, [dots], tips)
        _legend_bottom_right(fig)
        fig.xaxis.visible = False
        counts = _figure(x_label="Mean predicted probability (score bin)", y_label="Rows", height=150,
                         x_range=fig.x_range, tools="", name="fig-calibration-counts")
        bars = counts.quad(left="left", right="right", bottom=0, top="count", source=source, fill_color=style.GREY,
                           line_color="white", hover_fill_color=style.ACCENT)
        _hover(counts, [bars], tips)
        counts.yaxis.formatter = NumeralTickFormatter(format="0a")
        counts.yaxis.ticker.desired_num_ticks = 3
        counts.toolbar_location = None
        counts.y_range.start = 0
        return column(fig, counts, sizing_mode="stretch_width", name="fig-calibration")

    return PlotSpec("calibration", "Calibration", style.exactness(part), csv, draw,
                    note="Points on the diagonal mean a score of p is right p of the time; a bigger dot is a fuller "
                         "bin, and the bars below count the rows per bin.")


def _histogram_quads(fig, source, color: str, legend: str | None = None, alpha: float = 0.55, top: str = "count"):
    kwargs = {"legend_label": legend} if legend else {}
    return fig.quad(left="left", right="right", bottom=0, top=top, source=source, fill_color=color,
                    fill_alpha=alpha, line_color=color, line_alpha=0.9, hover_fill_alpha=0.95, **kwargs)


def _score_distribution(agg: dict) -> PlotSpec:
    part = agg["score_histograms"]
    left, right, text = _bins(part["bin_edges"])
    labels = _display_labels([s["label"] for s in part["series"]])
    csv_labels = _label_column([s["label"] for s in part["series"]])
    csv: dict[str, list] = {"true_class": [], "bin_from": [], "bin_to": [], "count": [], "share_of_class": []}
    shares = []
    for label, series in zip(csv_labels, part["series"]):
        total = sum(series["counts"])
        share = [c / total if total else 0.0 for c in series["counts"]]
        shares.append(share)
        csv["true_class"] += [label] * len(left)
        csv["bin_from"] += left
        csv["bin_to"] += right
        csv["count"] += series["counts"]
        csv["share_of_class"] += share
    payload = threshold_payload(agg)
    positive = labels[1] if len(labels) > 1 else ""

    def draw():
        fig = _figure(x_label=f"Score (probability of {positive})", y_label="Share of the class's rows",
                      x_range=Range1d(0, 1), name="fig-score_distribution")
        _legend_above(fig)
        renderers = []
        for i, (label, series) in enumerate(zip(labels, part["series"])):
            source = ColumnDataSource({"left": left, "right": right, "bin": text, "count": series["counts"],
                                       "share": shares[i], "cls": [label] * len(left)},
                                      name=f"src-score_distribution-{i}")
            renderers.append(_histogram_quads(fig, source, style.color(i), f"true class {_short(label)}", alpha=0.4,
                                              top="share"))
        _hover(fig, renderers, [("true class", "@cls"), ("score bin", "@bin"), ("rows", "@count{0,0}"),
                                ("share of the class", "@share{0.0%}")])
        fig.yaxis.formatter = NumeralTickFormatter(format="0%")
        fig.y_range.start = 0
        if payload:
            fig.add_layout(Span(location=payload["thresholds"][payload["index"]], dimension="height",
                                line_color=style.SECOND, line_width=2, line_dash="dashed", name="threshold-score"))
        fig.legend.click_policy = "hide"
        return fig

    return PlotSpec("score_distribution", "Score distribution by true class", style.exactness(part), csv, draw,
                    note="Each class's histogram sums to 100 %, so a rare class stays visible. Well separated "
                         "humps mean an easy threshold; the dashed line is the slider's threshold.")


def _gain_lift(agg: dict) -> list[PlotSpec]:
    part = agg["gain_lift"]
    rate = part["positive_rate"]
    x = [p / 100 for p in part["percent"]]
    perfect = [min(1.0, v / rate) if rate else 0.0 for v in x]
    gain_csv = {"share_of_rows": x, "gain": part["gain"], "random": x, "perfect": perfect}
    lift_csv = {"share_of_rows": x, "lift": part["lift"]}

    def draw_gain():
        fig = _unit_figure("Share of rows, highest scores first", "Share of positive rows found",
                           name="fig-gain")
        source = ColumnDataSource({"x": [0.0, *x], "gain": [0.0, *part["gain"]], "perfect": [0.0, *perfect],
                                   "lift": [None, *part["lift"]]}, name="src-gain")
        fig.line("x", "perfect", source=source, line_color=style.color(2), line_dash="dotted", line_width=1.5,
                 legend_label="Perfect model")
        _diagonal(fig, "Random order")
        fig.line("x", "gain", source=source, line_color=style.ACCENT, line_width=2.5, legend_label="Model")
        points = fig.scatter("x", "gain", source=source, size=8, fill_alpha=0, line_alpha=0,
                             hover_fill_color=style.ACCENT, hover_fill_alpha=1)
        _hover(fig, [points], [("top rows", "@x{0%}"), ("positives found", "@gain{0.0%}"), ("lift", "@lift{0.00}")],
               mode="vline")
        for axis in (fig.xaxis, fig.yaxis):
            axis.formatter = NumeralTickFormatter(format="0%")
        _legend_bottom_right(fig)
        return fig

    def draw_lift():
        fig = _figure(x_label="Share of rows, highest scores first",
                      y_label="Lift (× the random rate)", x_range=Range1d(0, 1.02), name="fig-lift")
        source = ColumnDataSource({"x": x, "lift": part["lift"], "gain": part["gain"]}, name="src-lift")
        fig.line([0, 1], [1, 1], line_dash="dashed", line_color=style.REFERENCE, line_width=1.5,
                 legend_label="Random order (1×)")
        fig.line("x", "lift", source=source, line_color=style.ACCENT, line_width=2.5, legend_label="Model")
        points = fig.scatter("x", "lift", source=source, size=8, fill_alpha=0, line_alpha=0,
                             hover_fill_color=style.ACCENT, hover_fill_alpha=1)
        _hover(fig, [points], [("top rows", "@x{0%}"), ("lift", "@lift{0.00}"), ("positives found", "@gain{0.0%}")],
               mode="vline")
        fig.xaxis.formatter = NumeralTickFormatter(format="0%")
        fig.y_range.start = 0
        fig.legend.location = "bottom_left"
        fig.legend.border_line_color = None
        fig.legend.background_fill_alpha = 0.85
        return fig

    caption = style.exactness(part)
    return [
        PlotSpec("gain", "Cumulative gain", caption, gain_csv, draw_gain,
                 note=f"Take the top x % of rows by score: the curve is the share of all positive rows among them "
                      f"({rate:.1%} of rows are positive)."),
        PlotSpec("lift", "Lift", caption, lift_csv, draw_lift,
                 note="How many times more positives the top x % of rows hold than a random x %."),
    ]


# --------------------------------------------------------------- bars and histograms


def _per_class(agg: dict) -> PlotSpec:
    part = agg["per_class"]
    labels = _display_labels(part["labels"])
    csv = {"class": _label_column(part["labels"]), "precision": part["precision"], "recall": part["recall"],
           "f1": part["f1"], "support": part["support"]}

    def draw():
        source = ColumnDataSource({"cls": labels, "precision": part["precision"], "recall": part["recall"],
                                   "f1": part["f1"], "support": part["support"]}, name="src-per_class")
        fig = _figure(y_label="Score", x_range=FactorRange(*labels), y_range=Range1d(0, 1.04), name="fig-per_class",
                      tools="save")
        _legend_above(fig)
        renderers = []
        for i, (metric, name, offset) in enumerate((("precision", "Precision", -0.27), ("recall", "Recall", 0.0),
                                                    ("f1", "F1", 0.27))):
            renderers.append(fig.vbar(x=dodge("cls", offset, range=fig.x_range), top=metric, width=0.25,
                                      source=source, fill_color=style.color(i), line_color=None,
                                      hover_line_color=style.INK, legend_label=name))
        _hover(fig, renderers, [("class", "@cls"), ("precision", "@precision{0.0000}"), ("recall", "@recall{0.0000}"),
                                ("F1", "@f1{0.0000}"), ("support", "@support{0,0}")])
        fig.xgrid.grid_line_color = None
        if len(labels) > 6:
            fig.xaxis.major_label_orientation = math.pi / 4
        return fig

    return PlotSpec("per_class", "Per-class precision, recall and F1", style.exactness(part), csv, draw,
                    stretchable=True, note="Support is the number of rows of each true class; hover a bar for it.")


def _prediction_shares(agg: dict) -> PlotSpec:
    part = agg["prediction_shares"]
    labels = _display_labels(part["labels"])
    keep = [i for i, c in enumerate(part["counts"]) if c or i < len(agg.get("classes", []))]
    labels = [labels[i] for i in keep]
    counts = [part["counts"][i] for i in keep]
    shares = [_num(part["shares"][i]) for i in keep]
    csv = {"predicted_class": [_label_column(part["labels"])[i] for i in keep], "count": counts, "share": shares}

    def draw():
        text = ["—" if s != s else f" {s * 100:.1f} %  ({c:,})" for s, c in zip(shares, counts)]
        source = ColumnDataSource({"cls": labels, "count": counts, "share": shares, "text": text},
                                  name="src-prediction_shares")
        height = min(max(style.HEIGHT, 70 + 30 * len(labels)), 700)
        top = max([s for s in shares if s == s] or [1]) or 1
        fig = _figure(x_label="Share of rows", y_range=FactorRange(*reversed(labels)), x_range=Range1d(0, top * 1.3),
                      height=height, tools="save", name="fig-prediction_shares")
        bars = fig.hbar(y="cls", right="share", height=0.7, source=source, fill_color=style.ACCENT, line_color=None,
                        hover_fill_color=style.SECOND)
        if len(labels) <= 30:
            fig.text(x="share", y="cls", text="text", source=source, text_baseline="middle", text_font_size="12px",
                     text_color=style.INK)
        _hover(fig, [bars], [("predicted class", "@cls"), ("rows", "@count{0,0}"), ("share", "@share{0.0%}")])
        fig.xaxis.formatter = NumeralTickFormatter(format="0%")
        fig.ygrid.grid_line_color = None
        return fig

    return PlotSpec("prediction_shares", "Predicted classes", style.exactness(part), csv, draw, stretchable=True,
                    note="How the model splits the rows between its classes.")


def _simple_histogram(key: str, title: str, part: dict, x_label: str, *, zero_line: bool = False,
                      note: str = "") -> PlotSpec:
    left, right, text = _bins(part["bin_edges"])
    csv = {"bin_from": left, "bin_to": right, "count": part["counts"]}
    outside = (part.get("n_below") or 0) + (part.get("n_above") or 0)
    caption = style.exactness(part)
    if outside:
        caption += f" {outside:,} rows beyond the plotted range (0.1 % tails) are not drawn."

    def draw():
        source = ColumnDataSource({"left": left, "right": right, "bin": text, "count": part["counts"]},
                                  name=f"src-{key}")
        fig = _figure(x_label=x_label, y_label="Rows", name=f"fig-{key}")
        bars = _histogram_quads(fig, source, style.ACCENT, alpha=0.7)
        _hover(fig, [bars], [("bin", "@bin"), ("rows", "@count{0,0}")])
        if zero_line:
            fig.add_layout(Span(location=0, dimension="height", line_color=style.REFERENCE, line_dash="dashed",
                                line_width=1.5))
        fig.y_range.start = 0
        fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
        return fig

    return PlotSpec(key, title, caption, csv, draw, note=note, stretchable=True)


def _probability_histograms(agg: dict) -> PlotSpec:
    part = agg["probability_histograms"]
    left, right, text = _bins(part["bin_edges"])
    labels = _display_labels([s["label"] for s in part["series"]])
    csv_labels = _label_column([s["label"] for s in part["series"]])
    csv: dict[str, list] = {"class": [], "bin_from": [], "bin_to": [], "count": []}
    for label, series in zip(csv_labels, part["series"]):
        csv["class"] += [label] * len(left)
        csv["bin_from"] += left
        csv["bin_to"] += right
        csv["count"] += series["counts"]

    def draw():
        fig = _figure(x_label="Predicted probability",
                      y_label="Rows", x_range=Range1d(0, 1), name="fig-probability_histograms")
        renderers = []
        legend = len(labels) <= MAX_LEGEND
        for i, (label, series) in enumerate(zip(labels, part["series"])):
            source = ColumnDataSource({"left": left, "right": right, "bin": text, "count": series["counts"],
                                       "cls": [label] * len(left)}, name=f"src-probability_histograms-{i}")
            renderers.append(_histogram_quads(fig, source, style.color(i), f"P({_short(label)})" if legend else None,
                                              alpha=0.3))
        _hover(fig, renderers, [("class", "@cls"), ("probability bin", "@bin"), ("rows", "@count{0,0}")])
        fig.y_range.start = 0
        fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
        if legend:
            fig.legend.click_policy = "hide"
            fig.legend.border_line_color = None
            fig.legend.background_fill_alpha = 0.85
        return fig

    return PlotSpec("probability_histograms", "Probability distribution per class", style.exactness(part), csv, draw,
                    stretchable=True,
                    note="For each class, how many rows get each probability of it. Click a legend entry to hide it.")


# ----------------------------------------------------------------------- regression


def _scatter_or_grid(key: str, title: str, part: dict, *, diagonal: bool, zero_line: bool, note: str) -> PlotSpec:
    x_name, y_name = part["x_name"], part["y_name"]
    x_label, y_label = x_name.capitalize(), y_name.capitalize()
    caption = style.exactness(part)
    if part["kind"] == "points":
        csv = {x_name: part["x"], y_name: part["y"]}
    else:
        xe, ye, counts = part["x_edges"], part["y_edges"], part["counts"]
        cells = [(i, j, c) for j, row in enumerate(counts) for i, c in enumerate(row) if c]
        csv = {f"{x_name}_from": [xe[i] for i, _, _ in cells], f"{x_name}_to": [xe[i + 1] for i, _, _ in cells],
               f"{y_name}_from": [ye[j] for _, j, _ in cells], f"{y_name}_to": [ye[j + 1] for _, j, _ in cells],
               "count": [c for _, _, c in cells]}
        if part.get("n_outside"):
            caption += f" {part['n_outside']:,} rows beyond the plotted range (0.1 % tails) are not drawn."

    def draw():
        fig = _figure(x_label=x_label, y_label=y_label, name=f"fig-{key}")
        if part["kind"] == "points":
            source = ColumnDataSource({"x": part["x"], "y": part["y"]}, name=f"src-{key}")
            alpha = 0.6 if part["n"] < 1000 else 0.35
            dots = fig.scatter("x", "y", source=source, size=5, fill_color=style.ACCENT, fill_alpha=alpha,
                               line_color=None, hover_fill_color=style.SECOND, hover_fill_alpha=1)
            _hover(fig, [dots], [(x_name, "@x{0.0000a}"), (y_name, "@y{0.0000a}")])
            lo = min(part["x"] + (part["y"] if diagonal else []), default=0.0)
            hi = max(part["x"] + (part["y"] if diagonal else []), default=1.0)
        else:
            data = {"x0": csv[f"{x_name}_from"], "x1": csv[f"{x_name}_to"], "y0": csv[f"{y_name}_from"],
                    "y1": csv[f"{y_name}_to"], "count": csv["count"]}
            source = ColumnDataSource(data, name=f"src-{key}")
            top = max(data["count"], default=1)
            mapper = LogColorMapper(palette=style.ramp(low="#dfe8f8"), low=1, high=max(top, 2))
            cells = fig.quad(left="x0", right="x1", bottom="y0", top="y1", source=source,
                             fill_color={"field": "count", "transform": mapper}, line_color=None,
                             hover_line_color=style.SECOND, hover_line_width=2,
                             hover_fill_color={"field": "count", "transform": mapper})
            _hover(fig, [cells], [(x_name, "@x0{0.000a} to @x1{0.000a}"), (y_name, "@y0{0.000a} to @y1{0.000a}"),
                                  ("rows", "@count{0,0}")])
            bar = ColorBar(color_mapper=mapper, width=10, title="rows", title_text_font_size="11px",
                           major_label_text_font_size="11px", formatter=NumeralTickFormatter(format="0a"))
            fig.add_layout(bar, "right")
            lo, hi = part["x_edges"][0], part["x_edges"][-1]
            fig.x_range = Range1d(part["x_edges"][0], part["x_edges"][-1])
            fig.y_range = Range1d(part["y_edges"][0], part["y_edges"][-1])
        if diagonal:
            fig.line([lo, hi], [lo, hi], line_dash="dashed", line_color=style.INK, line_alpha=0.55, line_width=1.5,
                     legend_label="predicted = actual")
            fig.legend.location = "top_left"
            fig.legend.border_line_color = None
            fig.legend.background_fill_alpha = 0.85
        if zero_line:
            fig.add_layout(Span(location=0, dimension="width", line_color=style.INK, line_alpha=0.55,
                                line_dash="dashed", line_width=1.5))
        return fig

    return PlotSpec(key, title, caption, csv, draw, note=note, exact=part["exact"])


def _error_by_decile(agg: dict) -> PlotSpec:
    part = agg["error_by_decile"]
    csv = {k: part[k] for k in ("decile", "pred_from", "pred_to", "count", "mean_abs_error", "mean_error", "rmse")}

    def draw():
        data = {k: [_num(v) if k != "decile" else v for v in part[k]] for k in csv}
        data["range"] = [f"[{a:.4g}, {b:.4g}{']' if i == len(part['decile']) - 1 else ')'}"
                         if a is not None and b is not None else "—"
                         for i, (a, b) in enumerate(zip(part["pred_from"], part["pred_to"]))]
        source = ColumnDataSource(data, name="src-error_by_decile")
        fig = _figure(x_label="Decile of the prediction (low to high)", y_label="Error",
                      x_range=Range1d(0.4, len(part["decile"]) + 0.6), name="fig-error_by_decile")
        _legend_above(fig)
        bars = fig.vbar(x="decile", top="mean_abs_error", width=0.7, source=source, fill_color=style.ACCENT,
                        fill_alpha=0.8, line_color=None, legend_label="Mean absolute error",
                        hover_fill_color=style.ACCENT, hover_fill_alpha=1)
        fig.line("decile", "rmse", source=source, line_color=style.SECOND, line_width=2, legend_label="RMSE")
        rmse = fig.scatter("decile", "rmse", source=source, size=8, fill_color=style.SECOND, line_color="white")
        fig.line("decile", "mean_error", source=source, line_color=style.color(2), line_width=2, line_dash="dashed",
                 legend_label="Mean error (bias)")
        bias = fig.scatter("decile", "mean_error", source=source, size=7, marker="square", fill_color=style.color(2),
                           line_color="white")
        fig.add_layout(Span(location=0, dimension="width", line_color=style.REFERENCE, line_width=1))
        _hover(fig, [bars, rmse, bias], [("decile", "@decile"), ("predictions in", "@range"), ("rows", "@count{0,0}"),
                                         ("mean absolute error", "@mean_abs_error{0.0000a}"),
                                         ("RMSE", "@rmse{0.0000a}"), ("mean error", "@mean_error{0.0000a}")])
        fig.xaxis.ticker = FixedTicker(ticks=list(part["decile"]))
        fig.xgrid.grid_line_color = None
        return fig

    return PlotSpec("error_by_decile", "Error by decile of the prediction", style.exactness(part), csv, draw,
                    stretchable=True,
                    note="Rows split into ten equal groups by their prediction. Error = actual − predicted, so a "
                         "positive mean error means the model predicts too low there.")


# ---------------------------------------------------------------------------- entry


def _classification(agg: dict) -> list[PlotSpec]:
    plots: list[PlotSpec] = []
    binary = agg.get("task") == "binary"
    if agg.get("has_target"):
        if binary:
            if "roc" in agg:
                plots.append(_roc(agg))
            if "pr" in agg:
                plots.append(_pr(agg))
        if binary and "threshold_table" in agg:
            plots.append(_threshold_confusion(agg))
        elif "confusion_matrix" in agg:
            plots.append(_static_confusion(agg))
        if binary:
            if "score_histograms" in agg:
                plots.append(_score_distribution(agg))
            if "calibration" in agg:
                plots.append(_calibration(agg))
            if "gain_lift" in agg:
                plots.extend(_gain_lift(agg))
        if "roc_ovr" in agg:
            plots.append(_roc_ovr(agg))
        if "per_class" in agg and (not binary or "threshold_table" not in agg):
            plots.append(_per_class(agg))
        return plots
    if "score_histogram" in agg:
        part = agg["score_histogram"]
        plots.append(_simple_histogram("score_histogram", "Score distribution", part,
                                       f"Score (probability of {_display_labels([part.get('label')])[0]})",
                                       note="How many rows get each score; there is no target to split them by."))
    if "probability_histograms" in agg:
        plots.append(_probability_histograms(agg))
    if "prediction_shares" in agg:
        plots.append(_prediction_shares(agg))
    return plots


def _regression(agg: dict) -> list[PlotSpec]:
    plots: list[PlotSpec] = []
    if "predicted_vs_actual" in agg:
        plots.append(_scatter_or_grid("predicted_vs_actual", "Predicted vs actual", agg["predicted_vs_actual"],
                                      diagonal=True, zero_line=False,
                                      note="Points on the dashed line are predicted exactly; above it the model "
                                           "predicts too high."))
    if "residuals_vs_predicted" in agg:
        plots.append(_scatter_or_grid("residuals_vs_predicted", "Residuals vs predicted",
                                      agg["residuals_vs_predicted"], diagonal=False, zero_line=True,
                                      note="Residual = actual − predicted. A band centred on zero with an even "
                                           "width is what a good model leaves."))
    if "residual_histogram" in agg:
        plots.append(_simple_histogram("residual_histogram", "Residual distribution", agg["residual_histogram"],
                                       "Residual (actual − predicted)", zero_line=True,
                                       note="Centred on zero means no overall bias; long tails are rows the model "
                                            "gets very wrong."))
    if "error_by_decile" in agg:
        plots.append(_error_by_decile(agg))
    if "prediction_histogram" in agg:
        plots.append(_simple_histogram("prediction_histogram", "Distribution of predictions",
                                       agg["prediction_histogram"], "Prediction",
                                       note="How many rows get each predicted value."))
    return plots


def _named(key: str, draw: Callable[[], Any]) -> Callable[[], Any]:
    """``draw`` that also names what the builder left unnamed (reference lines' sources, inner
    figures), so every data source and figure of a page has a stable name: ``src-<key>-ref<i>``
    and ``fig-<key>-<i>``, numbered in document order."""
    def wrapped():
        model = draw()
        for i, src in enumerate(s for s in model.select({"type": ColumnDataSource}) if not s.name):
            src.name = f"src-{key}-ref{i}"
        for i, fig in enumerate(f for f in model.select({"type": Plot}) if not f.name):
            fig.name = f"fig-{key}-{i}"
        return model
    return wrapped


def result_plots(aggregates: dict | None) -> list[PlotSpec]:
    """Every plot the aggregates allow, in page order (nothing is drawn until ``draw()``)."""
    if not aggregates:
        return []
    if aggregates.get("task") == "regression":
        plots = _regression(aggregates)
    elif aggregates.get("task") in ("binary", "multiclass"):
        plots = _classification(aggregates)
    else:
        return []
    for spec in plots:
        spec.draw = _named(spec.key, spec.draw)
    return _balanced(plots)


def _balanced(plots: list[PlotSpec]) -> list[PlotSpec]:
    """The page shows plots two by two; a last plot that would stand alone in its row spans both
    columns when it reads well that wide (bars, histograms)."""
    run = 0
    for spec in plots:
        run = 0 if spec.wide else run + 1
    if run % 2 and plots[-1].stretchable:
        plots[-1].wide = True
    return plots


def plot_table(aggregates: dict | None, key: str) -> dict[str, list] | None:
    """The data table of the plot ``key`` (its CSV download), or None when there is no such plot."""
    for spec in result_plots(aggregates):
        if spec.key == key:
            return spec.table
    return None


UNAVAILABLE_NAMES = {"roc": "ROC curve", "pr": "Precision-recall curve", "gain_lift": "Cumulative gain and lift",
                     "roc_ovr": "One-vs-rest ROC curves", "probabilities": "Probability plots",
                     "curves": "Curves", "plots": "Plots"}


def unavailable_notes(aggregates: dict | None) -> list[str]:
    """Why a plot one might expect is missing, one sentence each (plain text)."""
    notes = []
    for part, why in ((aggregates or {}).get("unavailable") or {}).items():
        notes.append(f"{UNAVAILABLE_NAMES.get(part, part.replace('_', ' ').capitalize())}: not shown ({why}).")
    return notes
