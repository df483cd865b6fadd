"""What every result plot shares: ``PlotSpec``, the limits, label helpers and figure helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from bokeh.models import ColumnDataSource, HoverTool, Legend, NumeralTickFormatter, Range1d, Span

from .. import style

MAX_MATRIX_TEXT = 20        # no numbers written on the cells of larger matrices
MAX_DENSE_MATRIX = 30       # larger matrices ship only their non-zero cells
MAX_LEGEND = 12             # more one-vs-rest curves: no legend (the hover says which class)
MISSING_LABEL = "(missing)"


@dataclass
class PlotSpec:
    """One plot of a result page."""

    key: str
    title: str
    caption: str                       # exact / thinned / aggregated, from style.exactness
    table: dict[str, list]             # the plot's data, column -> values (the CSV download)
    draw: Callable[[], Any]            # builds the bokeh model (root named "fig-<key>")
    note: str = ""                     # how to read it (plain text, escaped by the page)
    control: str | None = None         # "threshold" (slider + matrix toggle) or "matrix" (toggle only)
    wide: bool = False                 # spans the page's two plot columns
    exact: bool = True
    stretchable: bool = False          # reads well across the page (bars, histograms): may be made wide
    extra: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- helpers


def _display_labels(labels: list) -> list[str]:
    """Class labels as unique strings (categorical factors must be distinct strings)."""
    out: list[str] = []
    seen: set[str] = set()
    for label in labels:
        text = MISSING_LABEL if label is None else str(label)
        base, k = text, 2
        while text in seen:
            text = f"{base} ({k})"
            k += 1
        seen.add(text)
        out.append(text)
    return out


def _short(label: str, size: int = 24) -> str:
    """A label cut for a legend (the hover shows it whole)."""
    return label if len(label) <= size else label[:size - 1] + "…"


def _label_column(labels: list) -> list:
    """Labels for a CSV column: numbers stay numbers when every label is one, else text."""
    if labels and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in labels):
        return list(labels)
    return _display_labels(labels)


def _num(value: Any) -> float:
    """A JSON number for a data source (None -> NaN, which BokehJS leaves undrawn)."""
    return float("nan") if value is None else float(value)


def _hover(fig, renderers: list, tooltips: list[tuple[str, str]], **kwargs) -> None:
    fig.add_tools(HoverTool(renderers=renderers, tooltips=tooltips, **kwargs))


def _figure(**kwargs):
    """A figure without a title of its own: the page's card heading names the plot."""
    fig = style.base_figure("", **kwargs)
    fig.min_border_top = 12
    return fig


def _legend_above(fig) -> None:
    """A horizontal legend above the plot area, so it never covers data (call before adding glyphs)."""
    fig.add_layout(Legend(orientation="horizontal", location="top_left", border_line_color=None, padding=2,
                          spacing=14, label_text_font_size="12px", margin=0), "above")


def _unit_figure(x_label: str, y_label: str, **kwargs):
    """Axes from 0 to 1 on both sides (curves of rates)."""
    return _figure(x_label=x_label, y_label=y_label, x_range=Range1d(-0.02, 1.02), y_range=Range1d(-0.02, 1.04),
                   **kwargs)


def _legend_bottom_right(fig) -> None:
    """The legend under the plot area, in one row (it never covers a curve); a click on an entry
    hides its line. (Named for where it sat before: inside, bottom right, over the curves.)"""
    style.legend_outside(fig)


def _bins(edges: list[float]) -> tuple[list[float], list[float], list[str]]:
    left, right = edges[:-1], edges[1:]
    text = [f"[{a:.4g}, {b:.4g}{']' if i == len(left) - 1 else ')'}" for i, (a, b) in enumerate(zip(left, right))]
    return left, right, text


# ----------------------------------------------------------------------- histograms


def _histogram_quads(fig, source, color: str, legend: str | None = None, alpha: float = 0.55, top: str = "count"):
    kwargs = {"legend_label": legend} if legend else {}
    return fig.quad(left="left", right="right", bottom=0, top=top, source=source, fill_color=color,
                    fill_alpha=alpha, line_color=color, line_alpha=0.9, hover_fill_alpha=0.95, **kwargs)


def _simple_histogram(key: str, title: str, part: dict, x_label: str, *, zero_line: bool = False,
                      note: str = "") -> PlotSpec:
    left, right, text = _bins(part["bin_edges"])
    csv = {"bin_from": left, "bin_to": right, "count": part["counts"]}
    outside = (part.get("n_below") or 0) + (part.get("n_above") or 0)
    caption = style.exactness(part)
    if outside:
        caption += f" {outside:,} rows beyond the plotted range (0.1 % tails) are not drawn."

    def draw():
        source = ColumnDataSource({"left": left, "right": right, "bin": text, "count": part["counts"]},
                                  name=f"src-{key}")
        fig = _figure(x_label=x_label, y_label="Rows", name=f"fig-{key}")
        bars = _histogram_quads(fig, source, style.ACCENT, alpha=0.7)
        _hover(fig, [bars], [("bin", "@bin"), ("rows", "@count{0,0}")])
        if zero_line:
            fig.add_layout(Span(location=0, dimension="height", line_color=style.REFERENCE, line_dash="dashed",
                                line_width=1.5))
        fig.y_range.start = 0
        fig.yaxis.formatter = NumeralTickFormatter(format="0,0")
        return fig

    return PlotSpec(key, title, caption, csv, draw, note=note, stretchable=True)
