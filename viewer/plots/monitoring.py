"""Figures for the monitoring page: one column's distribution in a window over the reference's."""

from __future__ import annotations

from typing import Any

from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter
from bokeh.plotting import figure

CURRENT, REFERENCE = "#2f6fde", "#9aa3b5"


def distribution(cell: dict[str, Any], current: str = "this window"):
    """``services.monitoring.cell``'s shares: overlaid histograms (numeric) or side-by-side
    bars per category; the reference in grey. Labels are data (drawn as text), never HTML."""
    if cell["kind"] == "categorical":
        labels = [str(label) for label in cell["labels"]]
        data = {"label": labels, "current": cell["current"], "pct": [f"{v:.1%}" for v in cell["current"]]}
        if cell.get("reference") is not None:
            data["reference"] = cell["reference"]
            data["ref_pct"] = [f"{v:.1%}" for v in cell["reference"]]
        source = ColumnDataSource(data)
        fig = figure(y_range=list(reversed(labels)), height=min(80 + 26 * len(labels), 700),
                     sizing_mode="stretch_width", toolbar_location=None, tools="")
        if "reference" in data:
            fig.hbar(y="label", right="reference", height=0.8, source=source, color=REFERENCE, alpha=0.6,
                     legend_label="reference")
        bars = fig.hbar(y="label", right="current", height=0.45, source=source, color=CURRENT,
                        legend_label=current)
        tips = [("category", "@label"), (current, "@pct")] + ([("reference", "@ref_pct")]
                                                                     if "reference" in data else [])
        fig.add_tools(HoverTool(renderers=[bars], tooltips=tips))
        fig.xaxis.formatter = NumeralTickFormatter(format="0%")
    else:
        edges = cell["edges"]
        data = {"left": edges[:-1], "right": edges[1:], "current": cell["current"]}
        if cell.get("reference") is not None:
            data["reference"] = cell["reference"]
        source = ColumnDataSource(data)
        fig = figure(height=320, sizing_mode="stretch_width", toolbar_location=None, tools="")
        if "reference" in data:
            fig.quad(left="left", right="right", bottom=0, top="reference", source=source, color=REFERENCE,
                     alpha=0.45, legend_label="reference")
        fig.quad(left="left", right="right", bottom=0, top="current", source=source, fill_alpha=0.0,
                 line_color=CURRENT, line_width=2, legend_label=current)
        fig.yaxis.formatter = NumeralTickFormatter(format="0.0%")
        fig.y_range.start = 0
    fig.legend.location = "top_right"
    fig.legend.background_fill_alpha = 0.7
    fig.outline_line_color = None
    fig.title.text = f"{cell['column']}: share of rows"
    return fig
