"""Small per-column distribution plots for the dataset page, from the summaries computed at
ingest (``ColumnInfo.to_dict()``): a histogram for numeric and datetime columns, bars of the most
frequent values for categorical, boolean and few-valued numeric columns.  Nothing here reads rows.

Values and column names are user data: they go into ColumnDataSource columns (drawn as text) and
tooltips reference fields (``@label``), never HTML built from them.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from bokeh.models import ColumnDataSource, FactorRange, HoverTool, NumeralTickFormatter
from bokeh.plotting import figure

from .style import ACCENT, GREY

WIDTH, HEIGHT = 260, 120
MAX_BARS = 8


def _small(height: int = HEIGHT, **kwargs) -> Any:
    fig = figure(width=WIDTH, height=height, tools="", toolbar_location=None, **kwargs)
    fig.outline_line_color = None
    fig.grid.grid_line_color = None
    fig.yaxis.visible = False
    fig.min_border = 2
    fig.min_border_bottom = 22
    fig.xaxis.major_label_text_font_size = "9px"
    fig.background_fill_color = fig.border_fill_color = None
    return fig


def _share(count: int, n_rows: int) -> str:
    return f"{count:,} ({100 * count / n_rows:.1f} %)" if n_rows else f"{count:,}"


def _label(value: Any) -> str:
    text = "missing" if value is None else str(value)
    return text if len(text) <= 18 else text[:17] + "…"


def histogram(column: dict[str, Any], n_rows: int):
    hist = column["histogram"]
    edges, counts = hist["edges"], hist["counts"]
    datetime = column.get("kind") == "datetime"

    def shown(e: float) -> str:
        if datetime:
            return (_dt.datetime(1970, 1, 1) + _dt.timedelta(microseconds=e)).strftime("%Y-%m-%d")
        return f"{e:.4g}"

    left, right = edges[:-1], edges[1:]
    if datetime:    # epoch microseconds -> milliseconds (bokeh's datetime axis)
        left, right = [e / 1000 for e in left], [e / 1000 for e in right]
    source = ColumnDataSource({
        "left": left, "right": right, "top": counts,
        "range": [f"{shown(a)} – {shown(b)}" for a, b in zip(edges[:-1], edges[1:])],
        "rows": [_share(c, n_rows) for c in counts],
    })
    fig = _small(x_axis_type="datetime" if datetime else "linear")
    bars = fig.quad(left="left", right="right", bottom=0, top="top", source=source, fill_color=ACCENT,
                    line_color="white", line_width=0.5)
    fig.xaxis.ticker.desired_num_ticks = 3
    if not datetime:
        fig.xaxis.formatter = NumeralTickFormatter(format="0.[00]a")
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[("values", "@range"), ("rows", "@rows")]))
    return fig


def bars(column: dict[str, Any], n_rows: int):
    top = column["top_values"][:MAX_BARS]
    labels, seen = [], set()
    for t in top:                      # factors must be unique strings
        label = _label(t["value"])
        while label in seen:
            label += " "
        seen.add(label)
        labels.append(label)
    counts = [t["count"] for t in top]
    exact = column.get("top_values_exact", True)
    source = ColumnDataSource({"label": labels, "count": counts, "value": [str(t["value"]) for t in top],
                               "rows": [("" if exact else "≥ ") + _share(c, n_rows) for c in counts]})
    fig = _small(y_range=FactorRange(factors=list(reversed(labels))),
                 height=min(HEIGHT, 24 + 14 * len(labels)) if len(labels) < 5 else HEIGHT)
    renderer = fig.hbar(y="label", left=0, right="count", height=0.7, source=source,
                        fill_color=GREY if column.get("kind") == "boolean" else ACCENT, line_color=None)
    fig.yaxis.visible = True
    fig.yaxis.major_label_text_font_size = "9px"
    fig.yaxis.major_tick_line_color = None
    fig.yaxis.axis_line_color = None
    fig.xaxis.visible = False
    fig.min_border_bottom = 2
    fig.add_tools(HoverTool(renderers=[renderer], tooltips=[("value", "@value"), ("rows", "@rows")]))
    return fig


def distribution(column: dict[str, Any], n_rows: int):
    """The column's distribution plot, or None when its summary has nothing to draw (free text,
    an all-missing column)."""
    if column.get("histogram") and sum(column["histogram"].get("counts") or []):
        return histogram(column, n_rows)
    if column.get("top_values"):
        return bars(column, n_rows)
    return None
