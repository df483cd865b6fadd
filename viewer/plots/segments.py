"""Segments as a dot plot: each segment's metric with its 95 % interval, the whole dataset's as a
line, the worst at the top. Segment names (column = value) are user data: y-range factors
and ColumnDataSource values, drawn as text."""

from __future__ import annotations

from typing import Any, Sequence

from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d, Span, Whisker

from .style import ACCENT, REFERENCE, SECOND, base_figure

SHOWN = 15
ROW_HEIGHT = 24


def name_of(entry: dict[str, Any]) -> str:
    """"region = south", "age 30 to < 45", or a defined segment's own name."""
    if entry.get("column") is None:
        return str(entry["label"])
    if entry.get("kind") == "numeric" and entry["label"] != "missing":
        return f"{entry['column']} {entry['label']}"
    return f"{entry['column']} = {entry['label']}"


def segment_bars(entries: Sequence[dict[str, Any]], overall: dict[str, Any], label: str, higher_is_better: bool):
    """The first ``SHOWN`` entries (worst first): bars of the metric, whiskers of the interval."""
    shown = [e for e in entries if e.get("metric") is not None][:SHOWN]
    names = []
    for e in shown:  # factors must be unique: a defined segment may read like a column's bin
        name = name_of(e)
        while name in names:
            name += " "
        names.append(name)
    worse = [(e.get("gap") or 0) > 0 for e in shown]
    source = ColumnDataSource({
        "name": names, "metric": [e["metric"] for e in shown],
        "low": [e["low"] if e.get("low") is not None else e["metric"] for e in shown],
        "high": [e["high"] if e.get("high") is not None else e["metric"] for e in shown],
        "rows": [f"{e['rows']:,}" for e in shown], "text": [f"{e['metric']:.4g}" for e in shown],
        "interval": [f"{e['low']:.4g} to {e['high']:.4g}" if e.get("low") is not None else "" for e in shown],
        "color": [SECOND if w else ACCENT for w in worse],
    }, name="segments")
    fig = base_figure(f"{label} per segment (the {len(shown)} furthest below the whole dataset)",
                      x_label=f"{label}, with its 95 % interval; the line: all rows",
                      y_range=FactorRange(factors=list(reversed(names))),
                      height=90 + ROW_HEIGHT * max(len(names), 1), tools="save")
    # Dots, not bars: the differences that matter are small beside the metric's size.
    fig.add_layout(Whisker(source=source, base="name", lower="low", upper="high", dimension="width",
                           line_color="#3b4252", line_width=1.2))
    bars = fig.scatter(x="metric", y="name", size=11, source=source, fill_color="color", line_color="#3b4252")
    values = [*source.data["low"], *source.data["high"]]
    if overall.get("metric") is not None:
        fig.add_layout(Span(location=overall["metric"], dimension="height", line_color=REFERENCE, line_width=2,
                            line_dash="dashed"))
        values.append(overall["metric"])
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max((high - low) * 0.08, 1e-9)
    fig.x_range = Range1d(max(low - pad, 0.0), min(high + pad, 1.0) if higher_is_better else high + pad)
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[("segment", "@name"), (label, "@text"),
                                                        ("95 % interval", "@interval"), ("rows", "@rows")]))
    fig.ygrid.grid_line_color = None
    return fig
