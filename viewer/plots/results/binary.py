"""The plots of a binary classifier with a target: ROC and precision-recall curves (with the
threshold slider's marker), calibration, score distribution by true class, cumulative gain and
lift."""

from __future__ import annotations

import math

from bokeh.layouts import column
from bokeh.models import ColumnDataSource, NumeralTickFormatter, Range1d, Span

from .. import style
from ..curves import Curve, curves, diagonal, threshold_marker, threshold_text
from .common import (PlotSpec, _bins, _display_labels, _figure, _histogram_quads, _hover, _label_column,
                     _legend_above, _legend_bottom_right, _num, _short, _unit_figure)
from .confusion import _ratio, threshold_numbers, threshold_payload

# --------------------------------------------------------------------------- curves


def _roc(agg: dict) -> PlotSpec:
    part = agg["roc"]
    thresholds = part["thresholds"]
    csv = {"fpr": part["fpr"], "tpr": part["tpr"], "threshold": thresholds}
    payload = threshold_payload(agg)

    def draw():
        fig = _unit_figure("False positive rate", "True positive rate", name="fig-roc")
        source = ColumnDataSource({"fpr": part["fpr"], "tpr": part["tpr"],
                                   "threshold": [threshold_text(t) for t in thresholds]}, name="src-roc")
        fig.varea(x="fpr", y1=0, y2="tpr", source=source, fill_color=style.ACCENT, fill_alpha=0.08)
        diagonal(fig, "Chance (AUC 0.5)")
        curves(fig, "fpr", "tpr", [Curve(source, style.ACCENT, f"Model (AUC {part['auc']:.4f})")],
               [("threshold", "@threshold"), ("false positive rate", "@fpr{0.0000}"),
                ("true positive rate", "@tpr{0.0000}")], mode="mouse")
        if payload:
            numbers = threshold_numbers(payload, payload["index"])
            fpr = _ratio(numbers["fp"], numbers["fp"] + numbers["tn"])
            tpr = numbers["values"]["recall"]
            threshold_marker(fig, "roc", _num(fpr), _num(tpr))
        _legend_bottom_right(fig)
        return fig

    return PlotSpec("roc", "ROC curve", style.exactness(part), csv, draw, exact=part["exact"],
                    note=f"AUC {part['auc']:.4f}. The dashed diagonal is a model that guesses; "
                         "hover the curve for the threshold at each point.",
                    extra={"positive_label": part.get("positive_label")})


def _pr(agg: dict) -> PlotSpec:
    part = agg["pr"]
    thresholds = part["thresholds"]
    csv = {"recall": part["recall"], "precision": part["precision"], "threshold": thresholds}
    payload = threshold_payload(agg)
    prevalence = part["prevalence"]

    def draw():
        fig = _unit_figure("Recall", "Precision", name="fig-pr")
        source = ColumnDataSource({"recall": part["recall"], "precision": part["precision"],
                                   "threshold": [threshold_text(t, "—") for t in thresholds]},
                                  name="src-pr")
        fig.line([0, 1], [prevalence, prevalence], line_dash="dashed", line_color=style.REFERENCE, line_width=1.5,
                 legend_label=f"Chance (prevalence {prevalence:.3f})")
        curves(fig, "recall", "precision", [Curve(source, style.ACCENT, f"Model (AP {part['average_precision']:.4f})")],
               [("threshold", "@threshold"), ("recall", "@recall{0.0000}"), ("precision", "@precision{0.0000}")],
               mode="mouse")
        if payload:
            numbers = threshold_numbers(payload, payload["index"])["values"]
            threshold_marker(fig, "pr", _num(numbers["recall"]), _num(numbers["precision"]))
        _legend_bottom_right(fig)
        return fig

    return PlotSpec("pr", "Precision-recall curve", style.exactness(part), csv, draw, exact=part["exact"],
                    note=f"Average precision {part['average_precision']:.4f}; the dashed line is the share of "
                         "positive rows, what a model that guesses gets.")


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
        diagonal(fig, "Perfectly calibrated")
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
        diagonal(fig, "Random order")
        curves(fig, "x", "gain", [Curve(source, style.ACCENT, "Model")],
               [("top rows", "@x{0%}"), ("positives found", "@gain{0.0%}"), ("lift", "@lift{0.00}")], size=8,
               halo=False, mode="vline")
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
        curves(fig, "x", "lift", [Curve(source, style.ACCENT, "Model")],
               [("top rows", "@x{0%}"), ("lift", "@lift{0.00}"), ("positives found", "@gain{0.0%}")], size=8,
               halo=False, mode="vline")
        fig.xaxis.formatter = NumeralTickFormatter(format="0%")
        fig.y_range.start = 0
        style.legend_outside(fig)
        return fig

    caption = style.exactness(part)
    return [
        PlotSpec("gain", "Cumulative gain", caption, gain_csv, draw_gain,
                 note=f"Take the top x % of rows by score: the curve is the share of all positive rows among them "
                      f"({rate:.1%} of rows are positive)."),
        PlotSpec("lift", "Lift", caption, lift_csv, draw_lift,
                 note="How many times more positives the top x % of rows hold than a random x %."),
    ]
