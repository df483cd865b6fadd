"""One look for every figure: palette, base figure, and the "exact / aggregated" caption.

Builders in ``viewer.plots`` take core result objects (plain dicts from ``viewer.core``) and
return bokeh models. User data (labels, column names, model names) only ever goes into
ColumnDataSource columns and axis/legend *text* properties, never into HTML tooltip templates
or JavaScript: tooltips reference fields (``@label``), which BokehJS renders as text.
"""

from __future__ import annotations

from bokeh.plotting import figure

# Colour-blind-safe categorical palette (Okabe-Ito, reordered so the first two contrast well).
PALETTE = ("#2f6fde", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")
ACCENT = PALETTE[0]
SECOND = PALETTE[1]
GREY = "#c2c8d6"
GRID = "#eef0f4"
REFERENCE = "#9aa3b5"   # chance lines, y = x, zero lines
HEIGHT = 340


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def base_figure(title: str, *, x_label: str = "", y_label: str = "", height: int = HEIGHT,
                tools: str = "pan,wheel_zoom,box_zoom,reset,save", **kwargs):
    """A responsive figure with the project's look (light grid, no outline, toolbar on hover)."""
    fig = figure(title=title, height=height, sizing_mode="stretch_width", tools=tools,
                 toolbar_location="above", **kwargs)
    fig.toolbar.autohide = True
    fig.toolbar.logo = None
    fig.xaxis.axis_label = x_label
    fig.yaxis.axis_label = y_label
    fig.xgrid.grid_line_color = GRID
    fig.ygrid.grid_line_color = GRID
    fig.outline_line_color = None
    fig.title.text_font_size = "13px"
    fig.title.text_font_style = "bold"
    fig.background_fill_color = "#ffffff"
    fig.border_fill_color = "#ffffff"
    fig.min_border_left = 50
    return fig


def exactness(part: dict) -> str:
    """Caption text saying whether a plot shows every value or an aggregate of ``n`` rows."""
    n = part.get("n")
    rows = f"{n:,} rows" if isinstance(n, int) else "all rows"
    if part.get("exact", True):
        return f"Exact: every value of {rows}."
    if part.get("kind") == "grid":
        return f"Aggregated: {rows} counted on a grid."
    shown, total = part.get("n_points"), part.get("n_points_exact")
    if shown is not None and total is not None:
        return f"Thinned: {shown:,} of {total:,} curve points ({rows}); the shape is unchanged."
    return f"Aggregated from {rows}."


# ---- additions for the result pages (viewer/plots/results/) ----

SEQUENTIAL_LOW = "#f1f4fa"    # empty / low cells of a heatmap
SEQUENTIAL_HIGH = "#173f8a"   # the accent blue, darkened, for the highest cells
INK = "#1d2330"               # text on light cells (the page's foreground colour)


def ramp(n: int = 256, low: str = SEQUENTIAL_LOW, high: str = SEQUENTIAL_HIGH) -> tuple[str, ...]:
    """``n`` colours from ``low`` to ``high`` (linear in RGB) for heatmaps and colour bars."""
    a = [int(low[i:i + 2], 16) for i in (1, 3, 5)]
    b = [int(high[i:i + 2], 16) for i in (1, 3, 5)]
    steps = max(n - 1, 1)
    return tuple("#" + "".join(f"{round(x + (y - x) * k / steps):02x}" for x, y in zip(a, b)) for k in range(n))


def text_on(intensity: float) -> str:
    """Readable text colour on a ``ramp`` cell of the given intensity (0..1)."""
    return "#ffffff" if intensity > 0.55 else INK


def legend_outside(fig, place: str = "below") -> None:
    """Move a figure's legend out of the plot area (``place``: below or right), in one row when
    below, so it never covers data; a click on an entry hides its glyphs. Call after the glyphs
    with legend labels are added."""
    if not fig.legend:
        return
    legend = fig.legend[0]
    fig.center = [r for r in fig.center if r is not legend]
    legend.orientation = "horizontal" if place == "below" else "vertical"
    legend.location = "top_left"
    legend.border_line_color = None
    legend.background_fill_alpha = 0.0
    legend.label_text_font_size = "12px"
    legend.spacing = 14 if place == "below" else 2
    legend.padding = 2
    legend.margin = 0
    legend.click_policy = "hide"
    if place == "below":  # wrap into columns when one row would run past a card's ~440 px plot
        labels = [str(getattr(item.label, "value", "") or "") for item in legend.items]
        widest = max((len(t) for t in labels), default=0) * 7 + 44
        rows = 1
        if sum(len(t) * 7 + 44 for t in labels) > 440:
            legend.ncols = max(1, min(len(labels), 440 // max(widest, 1)))
            legend.spacing = 4
            rows = -(-len(labels) // legend.ncols)
        if fig.height:  # the legend's rows take height from the figure: give it back to the plot area
            fig.height = fig.height + 22 * rows
    fig.add_layout(legend, place)
