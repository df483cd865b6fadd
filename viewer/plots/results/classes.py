"""Plots with a curve or a bar per class: one-vs-rest ROC curves, per-class precision / recall /
F1, the predicted classes' shares and the probability distribution per class (multiclass jobs,
and binary ones without probabilities or without a target)."""

from __future__ import annotations

import math

from bokeh.models import ColumnDataSource, FactorRange, NumeralTickFormatter, Range1d
from bokeh.transform import dodge

from .. import style
from ..curves import Curve, curves, diagonal, threshold_text
from .common import (MAX_LEGEND, PlotSpec, _bins, _display_labels, _figure, _histogram_quads, _hover, _label_column,
                     _legend_above, _legend_bottom_right, _num, _short, _unit_figure)

# --------------------------------------------------------------------------- curves


def _roc_ovr(agg: dict) -> PlotSpec:
    part = agg["roc_ovr"]
    ovr = part["curves"]
    labels = _display_labels([c["label"] for c in ovr])
    csv_labels = _label_column([c["label"] for c in ovr])
    csv: dict[str, list] = {"class": [], "fpr": [], "tpr": [], "threshold": []}
    for label, curve in zip(csv_labels, ovr):
        csv["class"] += [label] * len(curve["fpr"])
        csv["fpr"] += curve["fpr"]
        csv["tpr"] += curve["tpr"]
        csv["threshold"] += curve["thresholds"]
    caption = style.exactness({"exact": part["exact"], "n": part["n"],
                               "n_points": sum(c["n_points"] for c in ovr),
                               "n_points_exact": sum(c["n_points_exact"] for c in ovr)})

    def draw():
        fig = _unit_figure("False positive rate", "True positive rate", name="fig-roc_ovr")
        diagonal(fig)
        tips = [("class", "@cls"), ("AUC", "@auc{0.0000}"), ("threshold", "@threshold"),
                ("false positive rate", "@fpr{0.0000}"), ("true positive rate", "@tpr{0.0000}")]
        if len(ovr) > MAX_LEGEND:  # many classes: two renderers in all, no legend (bokeh models are slow)
            lines = ColumnDataSource({"fpr": [c["fpr"] for c in ovr], "tpr": [c["tpr"] for c in ovr],
                                      "color": [style.color(i) for i in range(len(ovr))]},
                                     name="src-roc_ovr-lines")
            fig.multi_line("fpr", "tpr", source=lines, line_color="color", line_width=1.5, line_alpha=0.8)
            data: dict[str, list] = {"fpr": [], "tpr": [], "cls": [], "auc": [], "threshold": []}
            for label, curve in zip(labels, ovr):
                n = len(curve["fpr"])
                data["fpr"] += curve["fpr"]
                data["tpr"] += curve["tpr"]
                data["cls"] += [label] * n
                data["auc"] += [curve["auc"]] * n
                data["threshold"] += [threshold_text(t) for t in curve["thresholds"]]
            points = fig.scatter("fpr", "tpr", source=ColumnDataSource(data, name="src-roc_ovr-0"), size=7,
                                 fill_alpha=0, line_alpha=0, hover_fill_color=style.INK, hover_fill_alpha=1)
            _hover(fig, [points], tips)
            return fig
        series = []
        for i, (label, curve) in enumerate(zip(labels, ovr)):
            n = len(curve["fpr"])
            source = ColumnDataSource({"fpr": curve["fpr"], "tpr": curve["tpr"], "cls": [label] * n,
                                       "auc": [curve["auc"]] * n,
                                       "threshold": [threshold_text(t) for t in curve["thresholds"]]},
                                      name=f"src-roc_ovr-{i}")
            series.append(Curve(source, style.color(i), f"{_short(label)} (AUC {curve['auc']:.3f})"))
        curves(fig, "fpr", "tpr", series, tips, width=2, size=8)
        _legend_bottom_right(fig)
        fig.legend.click_policy = "hide"
        return fig

    note = "Each class against all others. " + ("Click a legend entry to hide its curve." if len(ovr) <= MAX_LEGEND
                                                 else "Hover a curve to see its class.")
    return PlotSpec("roc_ovr", "One-vs-rest ROC curves", caption, csv, draw, exact=part["exact"], note=note)


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
            style.legend_outside(fig)
        return fig

    return PlotSpec("probability_histograms", "Probability distribution per class", style.exactness(part), csv, draw,
                    stretchable=True,
                    note="For each class, how many rows get each probability of it. Click a legend entry to hide it.")
