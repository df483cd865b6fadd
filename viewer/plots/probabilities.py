"""Figures for the prediction page."""

from __future__ import annotations

from typing import Sequence

from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter
from bokeh.plotting import figure

BLUE, GREY = "#2f6fde", "#c2c8d6"


def probability_bars(classes: Sequence[object], probabilities: Sequence[float],
                     previous: Sequence[float] | None = None):
    """One horizontal bar per class; with ``previous``, the last prediction as a thin grey bar, so
    a what-if change shows at a glance. Labels are data (drawn as text), never HTML."""
    labels = [str(c) for c in classes]
    data = {"label": labels, "p": list(probabilities), "pct": [f"{p:.1%}" for p in probabilities]}
    if previous is not None and len(previous) == len(labels):
        data["before"] = list(previous)
        data["delta"] = [f"{p - b:+.1%}" for p, b in zip(probabilities, previous)]
    source = ColumnDataSource(data)
    height = 60 + 34 * len(labels)
    fig = figure(y_range=list(reversed(labels)), x_range=(0, 1), height=min(height, 600), sizing_mode="stretch_width",
                 toolbar_location=None, tools="")
    bars = fig.hbar(y="label", right="p", height=0.62, source=source, color=BLUE)
    tooltips = [("class", "@label"), ("probability", "@pct")]
    if "before" in data:
        fig.hbar(y="label", right="before", height=0.16, source=source, color=GREY)
        tooltips.append(("change", "@delta"))
    fig.add_tools(HoverTool(renderers=[bars], tooltips=tooltips))
    fig.xaxis.formatter = NumeralTickFormatter(format="0%")
    fig.xgrid.grid_line_color = "#eef0f4"
    fig.ygrid.grid_line_color = None
    fig.outline_line_color = None
    fig.title.text = "Probability per class"
    return fig
