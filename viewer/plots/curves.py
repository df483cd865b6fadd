"""Model curves (ROC, precision-recall, gain, lift) as the result page and the compare page draw
them: a line per model, invisible points on its vertices that light up under the mouse, one
hover tool over those points, and the threshold slider's marker.

``viewer.plots.results`` (one model, or one curve per class) and ``viewer.plots.compare`` (one
curve per job) both draw their curves here, so a curve looks and hovers alike on every page.
Tooltips are fixed ``(label, "@field")`` pairs; user data (model names, class labels) only goes
into the data sources and the legend text.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Sequence

from bokeh.models import ColumnDataSource, HoverTool

from . import style

__all__ = ["Curve", "curves", "diagonal", "threshold_marker", "threshold_text"]


class Curve(NamedTuple):
    """One curve: its data source (the x and y columns and the tooltips' fields), its colour, its
    legend entry (None: none) and the name of the renderer of its hover points (None: unnamed)."""

    source: ColumnDataSource
    color: str
    legend: str | None = None
    name: str | None = None


def curves(fig, x: str, y: str, series: Sequence[Curve], tooltips: list[tuple[str, str]], *, width: float = 2.5,
           size: float = 9, halo: bool = True, **hover: Any) -> list:
    """Draw every curve of ``series`` (its line, then invisible points on its vertices that light
    up in its colour under the mouse, ringed in white when ``halo``) and one HoverTool over all
    those points. ``hover`` holds further HoverTool properties (``mode``). Returns the points'
    renderers."""
    points = []
    for curve in series:
        legend = {"legend_label": curve.legend} if curve.legend else {}
        fig.line(x, y, source=curve.source, line_color=curve.color, line_width=width, **legend)
        extra: dict[str, Any] = {"hover_line_color": "white"} if halo else {}
        if curve.name:
            extra["name"] = curve.name
        points.append(fig.scatter(x, y, source=curve.source, size=size, fill_alpha=0, line_alpha=0,
                                  hover_fill_color=curve.color, hover_fill_alpha=1, **extra))
    fig.add_tools(HoverTool(renderers=points, tooltips=tooltips, **hover))
    return points


def threshold_marker(fig, key: str, x: float, y: float) -> None:
    """The threshold slider's point on a curve: its source ``src-threshold-<key>`` (columns ``x``,
    ``y``) is what the page's script moves."""
    source = ColumnDataSource({"x": [x], "y": [y]}, name=f"src-threshold-{key}")
    fig.scatter("x", "y", source=source, size=13, marker="circle", fill_color=style.SECOND, line_color="white",
                line_width=2, legend_label="Slider threshold", name=f"threshold-marker-{key}")


def diagonal(fig, legend: str | None = None) -> None:
    """The dashed y = x line (a model that guesses; perfect calibration)."""
    kwargs = {"legend_label": legend} if legend else {}
    fig.line([0, 1], [0, 1], line_dash="dashed", line_color=style.REFERENCE, line_width=1.5, **kwargs)


def threshold_text(value: Any, none: str = "∞ (nothing flagged)") -> str:
    """A curve point's threshold for its tooltip; ``none`` stands for a point without one (the ROC
    curve's first point: above every score)."""
    return none if value is None else f"{value:.4g}"
