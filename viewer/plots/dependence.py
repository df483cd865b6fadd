"""Partial dependence: one figure per feature (the average as a thick line, thinned ICE lines, the
feature's distribution in the sample below), and a heat map for a pair. Input: the dict
``viewer.core.dependence.dependence`` returns. Names and categories are user data: factors and
ColumnDataSource values only."""

from __future__ import annotations

from typing import Any

from bokeh.layouts import column
from bokeh.models import ColumnDataSource, HoverTool, LinearColorMapper
from bokeh.plotting import figure

from .style import ACCENT, GREY, REFERENCE, base_figure

ICE_COLOR = "#9aa3b5"


def feature_figure(feature: dict[str, Any], output: str):
    """The average and the ICE lines over the feature's grid, and its distribution beneath."""
    categorical = feature["categorical"]
    grid = _labels(feature["grid"]) if categorical else feature["grid"]
    average = feature["average"][0]
    options: dict[str, Any] = {"x_range": grid} if categorical else {}
    top = base_figure(f"{feature['name']}: partial dependence and {len(feature['ice'])} ICE lines",
                      y_label=output, height=260, tools="save", **options)
    if feature["ice"]:
        top.multi_line(xs=[grid] * len(feature["ice"]), ys=feature["ice"], line_color=ICE_COLOR, line_alpha=0.35,
                       line_width=1)
    source = ColumnDataSource({"x": grid, "y": average, "text": [f"{v:.4g}" if v is not None else "" for v in average]},
                              name=f"pd-{feature['name']}")
    line = top.line("x", "y", source=source, line_color=ACCENT, line_width=3)
    top.scatter("x", "y", source=source, size=6, color=ACCENT)
    top.add_tools(HoverTool(renderers=[line], tooltips=[(feature["name"], "@x"), ("average", "@text")]))
    dist = feature["distribution"]
    if categorical:
        counts = dict(zip(dist.get("values") or [], dist.get("counts") or []))
        bottom = base_figure("", x_label=f"{feature['name']} (rows of the sample)", height=120, tools="", x_range=top.x_range)
        bottom.vbar(x=grid, top=[counts.get(g, 0) for g in grid], width=0.7, color=GREY)
    else:
        edges = dist.get("edges") or []
        bottom = base_figure("", x_label=f"{feature['name']} (rows of the sample)", height=120, tools="", x_range=top.x_range)
        if edges:
            bottom.quad(left=edges[:-1], right=edges[1:], bottom=0, top=dist["counts"], color=GREY, line_color="white")
    bottom.yaxis.visible = False
    bottom.title.visible = False
    return column(top, bottom, sizing_mode="stretch_width")


def _label(value: Any) -> str:
    """A grid value as an axis factor: numbers to 4 significant digits (distinct ones stay distinct
    enough for a 100-point grid of a column's 5th to 95th percentile)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "missing" if value is None else str(value)


def _labels(values: list[Any]) -> list[str]:
    """Axis factors for a grid, with as many digits as it takes to keep them apart (Bokeh refuses
    a range with a factor twice)."""
    for digits in (4, 6, 9, 12, 17):
        labels = [f"{v:.{digits}g}" if isinstance(v, float) else ("missing" if v is None else str(v)) for v in values]
        if len(set(labels)) == len(labels):
            return labels
    return [f"{label} ({i})" for i, label in enumerate(labels)]


def pair_figure(pair: dict[str, Any], output: str):
    """The average over the two features' grid as a heat map (the first output)."""
    first, second = pair["names"]
    xs, ys = _labels(pair["grids"][0]), _labels(pair["grids"][1])
    values = pair["average"][0]
    cells = {"x": [], "y": [], "v": [], "text": []}
    for i, x in enumerate(xs):
        for j, y in enumerate(ys):
            v = values[i][j]
            cells["x"].append(x)
            cells["y"].append(y)
            cells["v"].append(v)
            cells["text"].append("" if v is None else f"{v:.4g}")
    finite = [v for v in cells["v"] if v is not None]
    mapper = LinearColorMapper(palette="Viridis256", low=min(finite, default=0), high=max(finite, default=1))
    fig = figure(title=f"{first} and {second}: partial dependence ({output})", x_range=xs, y_range=ys, height=420,
                 sizing_mode="stretch_width", tools="save", toolbar_location="above")
    rects = fig.rect("x", "y", 1, 1, source=ColumnDataSource(cells, name="pd-pair"),
                     fill_color={"field": "v", "transform": mapper}, line_color=None)
    fig.add_tools(HoverTool(renderers=[rects], tooltips=[(first, "@x"), (second, "@y"), ("average", "@text")]))
    fig.xaxis.axis_label, fig.yaxis.axis_label = first, second
    fig.xaxis.major_label_orientation = 0.8
    fig.outline_line_color = REFERENCE
    return fig
