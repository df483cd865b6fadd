"""Which plots a result page shows, in what order, and their CSV tables: ``result_plots``,
``plot_table`` and ``unavailable_notes``."""

from __future__ import annotations

from typing import Any, Callable

from bokeh.models import ColumnDataSource, Plot

from .binary import _calibration, _gain_lift, _pr, _roc, _score_distribution
from .classes import _per_class, _prediction_shares, _probability_histograms, _roc_ovr
from .common import PlotSpec, _display_labels, _simple_histogram
from .confusion import _static_confusion, _threshold_confusion
from .regression import _error_by_decile, _scatter_or_grid

__all__ = ["UNAVAILABLE_NAMES", "plot_table", "result_plots", "unavailable_notes"]


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
