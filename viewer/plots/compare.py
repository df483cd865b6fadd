"""Overlaid plots for the compare page: one line (or bar group) per job, from each job's stored
aggregates (``viewer.core.metrics``), so the page weighs the same at 1,000 rows and at 10 million.

``compare_plots(task, series)`` takes the task ("binary", "multiclass" or "regression") and one
``(label, aggregates)`` pair per job, and returns one ``ComparePlot`` per plot the aggregates of
every job allow. Colours follow ``style.color(i)`` for job ``i`` everywhere on the page.

Model names and class labels are user data: they go only into data-source columns, categorical
factors and legend/title text, which BokehJS draws as text; tooltips are fixed ``@field`` pairs.
Root models are named ``fig-<key>``; each job's data source is ``src-<key>-<i>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from bokeh.models import ColumnDataSource, FactorRange, HoverTool, NumeralTickFormatter, Range1d, Span
from bokeh.transform import dodge

from . import style
from .curves import Curve, curves, diagonal, threshold_text

__all__ = ["ComparePlot", "compare_plots"]


@dataclass
class ComparePlot:
    key: str
    title: str
    caption: str          # exact / thinned / aggregated, per job when they differ
    exact: bool
    draw: Callable[[], Any]
    note: str = ""


def _num(value: Any) -> float:
    return float("nan") if value is None else float(value)


def _caption(labels: Sequence[str], parts: Sequence[dict]) -> tuple[str, bool]:
    """One "exact / thinned / aggregated" caption for the overlaid parts of every job."""
    exact = all(p.get("exact", True) for p in parts)
    texts = [style.exactness(p) for p in parts]
    if len(set(texts)) == 1:
        return (texts[0].rstrip(".") + " (each model)." if len(parts) > 1 else texts[0]), exact
    if all("n_points" in p for p in parts) and len({p.get("n") for p in parts}) == 1:
        rows = parts[0].get("n")
        rows_text = f"{rows:,} rows" if isinstance(rows, int) else "all rows"
        if exact:
            return f"Exact: every curve point of each model ({rows_text}).", exact
        return (f"Thinned to at most {max(p['n_points'] for p in parts):,} curve points per model (from "
                + " / ".join(f"{p['n_points_exact']:,}" for p in parts)
                + f"; {rows_text}); the shapes are unchanged."), exact
    return " ".join(f"{label}: {text}" for label, text in zip(labels, texts)), exact


def _legend(fig, location: str = "bottom_right") -> None:
    """The legend under the plot area (never over the data); click an entry to hide its curve."""
    style.legend_outside(fig)


def _unit_figure(key: str, title: str, x_label: str, y_label: str, **kwargs):
    """A [0, 1] x [0, 1] figure. ``title`` is not drawn: the page's card heading names the plot."""
    return _untitled(style.base_figure("", x_label=x_label, y_label=y_label, x_range=Range1d(-0.02, 1.02),
                                       y_range=Range1d(-0.02, 1.04), name=f"fig-{key}", **kwargs))


def _untitled(fig):
    fig.title.visible = False  # no empty band above the plot
    return fig


# ------------------------------------------------------------------------ binary curves


def _roc(labels: list[str], parts: list[dict]) -> ComparePlot:
    caption, exact = _caption(labels, parts)

    def draw():
        fig = _unit_figure("roc", "ROC curves", "False positive rate", "True positive rate")
        diagonal(fig, "Chance (AUC 0.5)")
        series = []
        for i, (label, part) in enumerate(zip(labels, parts)):
            n = len(part["fpr"])
            source = ColumnDataSource({"fpr": part["fpr"], "tpr": part["tpr"], "model": [label] * n,
                                       "threshold": [threshold_text(t) for t in part["thresholds"]]},
                                      name=f"src-roc-{i}")
            series.append(Curve(source, style.color(i), f"{label} (AUC {part['auc']:.4f})", f"hover-roc-{i}"))
        curves(fig, "fpr", "tpr", series, [
            ("model", "@model"), ("threshold", "@threshold"), ("false positive rate", "@fpr{0.0000}"),
            ("true positive rate", "@tpr{0.0000}")])
        _legend(fig)
        return fig

    return ComparePlot("roc", "ROC curves", caption, exact, draw,
                       "Higher and further left is better; the dashed diagonal is a model that guesses. "
                       "Click a legend entry to hide its curve.")


def _pr(labels: list[str], parts: list[dict]) -> ComparePlot:
    caption, exact = _caption(labels, parts)
    prevalence = parts[0].get("prevalence")

    def draw():
        fig = _unit_figure("pr", "Precision-recall curves", "Recall", "Precision")
        if prevalence is not None:
            fig.line([0, 1], [prevalence, prevalence], line_dash="dashed", line_color=style.REFERENCE,
                     line_width=1.5, legend_label=f"Chance (prevalence {prevalence:.3f})")
        series = []
        for i, (label, part) in enumerate(zip(labels, parts)):
            n = len(part["recall"])
            source = ColumnDataSource({"recall": part["recall"], "precision": part["precision"], "model": [label] * n,
                                       "threshold": [threshold_text(t, "—") for t in part["thresholds"]]},
                                      name=f"src-pr-{i}")
            series.append(Curve(source, style.color(i), f"{label} (AP {part['average_precision']:.4f})",
                                f"hover-pr-{i}"))
        curves(fig, "recall", "precision", series, [
            ("model", "@model"), ("threshold", "@threshold"), ("recall", "@recall{0.0000}"),
            ("precision", "@precision{0.0000}")])
        _legend(fig, "bottom_left")
        return fig

    return ComparePlot("pr", "Precision-recall curves", caption, exact, draw,
                       "Higher is better; the dashed line is the share of positive rows.")


def _calibration(labels: list[str], parts: list[dict]) -> ComparePlot:
    caption, exact = _caption(labels, parts)

    def draw():
        fig = _unit_figure("calibration", "Calibration (reliability)", "Mean predicted probability",
                           "Fraction of positive rows")
        diagonal(fig, "Perfectly calibrated")
        dots = []
        for i, (label, part) in enumerate(zip(labels, parts)):
            edges, bins = part["bin_edges"], part["bin"]
            n = len(bins)
            source = ColumnDataSource({
                "prob_pred": part["prob_pred"], "prob_true": part["prob_true"], "count": part["count"],
                "model": [label] * n,
                "bin": [f"[{edges[b]:.2g}, {edges[b + 1]:.2g}{']' if b == len(edges) - 2 else ')'}" for b in bins]},
                name=f"src-calibration-{i}")
            fig.line("prob_pred", "prob_true", source=source, line_color=style.color(i), line_width=2,
                     legend_label=label)
            dots.append(fig.scatter("prob_pred", "prob_true", source=source, size=8, fill_color=style.color(i),
                                    line_color="white", hover_fill_color=style.color(i), hover_line_color="black"))
        fig.add_tools(HoverTool(renderers=dots, tooltips=[
            ("model", "@model"), ("score bin", "@bin"), ("mean score", "@prob_pred{0.0000}"),
            ("fraction positive", "@prob_true{0.0000}"), ("rows", "@count{0,0}")]))
        _legend(fig)
        return fig

    return ComparePlot("calibration", "Calibration", caption, exact, draw,
                       "Closer to the diagonal is better: a score of p should be right p of the time.")


# --------------------------------------------------------------------------- histograms


def _density_steps(part: dict, counts_key: str = "counts") -> tuple[list[float], list[float]]:
    """Step-line vertices of a histogram as a density (share of rows per unit of x), so models
    with different bin edges overlay on one scale."""
    edges, counts = part["bin_edges"], part[counts_key]
    total = part.get("n") or sum(counts) or 1
    xs, ys = [edges[0]], [0.0]
    for a, b, c in zip(edges[:-1], edges[1:], counts):
        height = c / total / (b - a) if b > a else 0.0
        xs += [a, b]
        ys += [height, height]
    xs.append(edges[-1])
    ys.append(0.0)
    return xs, ys


def _histograms(key: str, title: str, x_label: str, labels: list[str], parts: list[dict], note: str,
                *, zero_line: bool = False, unit: bool = False) -> ComparePlot:
    caption, exact = _caption(labels, parts)

    def draw():
        kwargs = {"x_range": Range1d(-0.02, 1.02)} if unit else {}
        fig = _untitled(style.base_figure("", x_label=x_label, y_label="Density (share of rows per unit)",
                                          name=f"fig-{key}", **kwargs))
        renderers = []
        for i, (label, part) in enumerate(zip(labels, parts)):
            xs, ys = _density_steps(part)
            source = ColumnDataSource({"x": xs, "density": ys, "model": [label] * len(xs)}, name=f"src-{key}-{i}")
            fig.varea(x="x", y1=0, y2="density", source=source, fill_color=style.color(i), fill_alpha=0.10)
            renderers.append(fig.line("x", "density", source=source, line_color=style.color(i), line_width=2,
                                      legend_label=label))
        if zero_line:
            fig.add_layout(Span(location=0, dimension="height", line_color=style.REFERENCE, line_dash="dashed"))
        fig.add_tools(HoverTool(renderers=renderers, mode="vline",
                                tooltips=[("model", "@model"), ("x", "@x{0.[0000]}"), ("density", "@density{0.[0000]}")]))
        fig.y_range.start = 0
        _legend(fig, "top_right")
        return fig

    return ComparePlot(key, title, caption, exact, draw, note)


# -------------------------------------------------------------------------- regression


def _error_by_decile(labels: list[str], parts: list[dict]) -> ComparePlot:
    caption, exact = _caption(labels, parts)

    def draw():
        fig = _untitled(style.base_figure("", x_label="Decile of the prediction", y_label="Mean absolute error",
                                          name="fig-error_by_decile"))
        dots = []
        for i, (label, part) in enumerate(zip(labels, parts)):
            n = len(part["decile"])
            source = ColumnDataSource({
                "decile": part["decile"], "mae": [_num(v) for v in part["mean_abs_error"]],
                "bias": [_num(v) for v in part["mean_error"]], "rmse": [_num(v) for v in part["rmse"]],
                "count": part["count"], "model": [label] * n,
                "range": [f"[{_num(a):.4g}, {_num(b):.4g}]" for a, b in zip(part["pred_from"], part["pred_to"])]},
                name=f"src-error_by_decile-{i}")
            fig.line("decile", "mae", source=source, line_color=style.color(i), line_width=2, legend_label=label)
            dots.append(fig.scatter("decile", "mae", source=source, size=8, fill_color=style.color(i),
                                    line_color="white"))
        fig.add_tools(HoverTool(renderers=dots, tooltips=[
            ("model", "@model"), ("decile", "@decile"), ("predictions in", "@range"),
            ("mean absolute error", "@mae{0.[0000]}"), ("mean error (bias)", "@bias{0.[0000]}"),
            ("RMSE", "@rmse{0.[0000]}"), ("rows", "@count{0,0}")]))
        fig.xaxis.ticker = list(range(1, 11))
        fig.y_range.start = 0
        _legend(fig, "top_left")
        return fig

    return ComparePlot("error_by_decile", "Mean absolute error by decile", caption, exact, draw,
                       "Each model's own predictions cut into ten equal-count groups, lowest first; lower is better.")


# ------------------------------------------------------------------------- multiclass


def _grouped_bars(key: str, title: str, y_label: str, labels: list[str], classes: list[str],
                  values: list[list[float]], caption: str, exact: bool, note: str, *, percent: bool,
                  reference: list[float] | None = None, reference_label: str = "") -> ComparePlot:
    def draw():
        fig = _untitled(style.base_figure("", x_label="Class", y_label=y_label, x_range=FactorRange(*classes),
                                          name=f"fig-{key}", tools="save"))
        groups = len(labels) + (1 if reference is not None else 0)
        width = min(0.8 / groups, 0.3)
        bars = []
        series = [(label, vals, style.color(i)) for i, (label, vals) in enumerate(zip(labels, values))]
        if reference is not None:
            series = [(reference_label, reference, style.GREY)] + series
        for j, (label, vals, color) in enumerate(series):
            offset = (j - (groups - 1) / 2) * width
            source = ColumnDataSource({"cls": classes, "value": [_num(v) for v in vals],
                                       "model": [label] * len(classes)}, name=f"src-{key}-{j}")
            bars.append(fig.vbar(x=dodge("cls", offset, range=fig.x_range), top="value", width=width * 0.92,
                                 source=source, fill_color=color, line_color=None, legend_label=label))
        fig.add_tools(HoverTool(renderers=bars, tooltips=[("model", "@model"), ("class", "@cls"),
                                                         ("value", "@value{0.[000]%}" if percent else "@value{0.0000}")]))
        fig.y_range.start = 0
        if percent:
            fig.yaxis.formatter = NumeralTickFormatter(format="0%")
        fig.xgrid.grid_line_color = None
        _legend(fig, "top_right")
        return fig

    return ComparePlot(key, title, caption, exact, draw, note)


def _class_names(classes: list) -> list[str]:
    out: list[str] = []
    for c in classes:
        text = "(missing)" if c is None else str(c)
        base, k = text, 2
        while text in out:
            text, k = f"{base} ({k})", k + 1
        out.append(text)
    return out


def _per_class_f1(labels: list[str], aggs: list[dict]) -> ComparePlot | None:
    parts = [a["per_class"] for a in aggs]
    classes = parts[0]["labels"]
    if any(p["labels"] != classes for p in parts):
        return None  # unknown target labels differ between jobs (cannot happen with one target)
    caption, exact = _caption(labels, parts)
    return _grouped_bars("per_class_f1", "F1 per class", "F1", labels, _class_names(classes),
                         [p["f1"] for p in parts], caption, exact,
                         "Higher is better. Hover a bar for its value.", percent=False)


def _shares(labels: list[str], aggs: list[dict]) -> ComparePlot | None:
    parts = [a["prediction_shares"] for a in aggs]
    classes = parts[0]["labels"]
    if any(p["labels"] != classes for p in parts):
        return None
    caption, exact = _caption(labels, parts)
    reference = None
    matrix = aggs[0].get("confusion_matrix")
    if matrix and matrix["labels"] == classes:
        rows = [sum(r) for r in matrix["matrix"]]
        total = sum(rows) or 1
        reference = [r / total for r in rows]
    return _grouped_bars("prediction_shares", "Predicted class shares", "Share of rows", labels,
                         _class_names(classes), [p["shares"] for p in parts], caption, exact,
                         "How often each model predicts each class" + (", beside the true shares (grey)."
                                                                        if reference else "."),
                         percent=True, reference=reference, reference_label="True shares")


# ------------------------------------------------------------------------------ entry


def compare_plots(task: str, series: Sequence[tuple[str, dict | None]]) -> list[ComparePlot]:
    """The overlaid plots that every job's aggregates allow (a part missing from one job drops
    that plot: an overlay with a model missing would mislead)."""
    labels = [label for label, _ in series]
    aggs = [agg or {} for _, agg in series]

    def every(part: str) -> list[dict] | None:
        found = [a.get(part) for a in aggs]
        return found if all(isinstance(p, dict) for p in found) else None

    plots: list[ComparePlot] = []
    if task == "binary":
        if (parts := every("roc")) is not None:
            plots.append(_roc(labels, parts))
        if (parts := every("pr")) is not None:
            plots.append(_pr(labels, parts))
        if (parts := every("calibration")) is not None:
            plots.append(_calibration(labels, parts))
        if (parts := every("score_histograms")) is not None:
            positive = [{**p, "counts": p["series"][1]["counts"], "n": sum(p["series"][1]["counts"])} for p in parts]
            plots.append(_histograms("score_positive", "Scores of the positive rows", "Predicted probability",
                                     labels, positive, "Further right is better: the scores the models give "
                                     "rows whose true class is the positive one.", unit=True))
        elif (parts := every("score_histogram")) is not None:
            plots.append(_histograms("score_histogram", "Score distributions", "Predicted probability", labels,
                                     parts, "The models' scores over all rows.", unit=True))
    elif task == "multiclass":
        if every("per_class") is not None:
            plot = _per_class_f1(labels, aggs)
            if plot:
                plots.append(plot)
        if every("prediction_shares") is not None:
            plot = _shares(labels, aggs)
            if plot:
                plots.append(plot)
    else:
        if (parts := every("residual_histogram")) is not None:
            plots.append(_histograms("residual_histogram", "Residuals", "Residual (actual − predicted)", labels, parts,
                                     "Narrower and centred on 0 is better.", zero_line=True))
        if (parts := every("error_by_decile")) is not None:
            plots.append(_error_by_decile(labels, parts))
        if not plots and (parts := every("prediction_histogram")) is not None:
            plots.append(_histograms("prediction_histogram", "Predictions", "Predicted value", labels, parts,
                                     "The distribution of each model's predictions."))
    return plots
