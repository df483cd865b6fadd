"""The plots of a regression job with a target: predicted vs actual and residuals vs predicted
(points, or counts on a grid for many rows) and the error by decile of the prediction. The
residual and prediction histograms are ``common._simple_histogram``."""

from __future__ import annotations

from bokeh.models import ColorBar, ColumnDataSource, FixedTicker, LogColorMapper, NumeralTickFormatter, Range1d, Span

from .. import style
from .common import PlotSpec, _figure, _hover, _legend_above, _num


def _scatter_or_grid(key: str, title: str, part: dict, *, diagonal: bool, zero_line: bool, note: str) -> PlotSpec:
    x_name, y_name = part["x_name"], part["y_name"]
    x_label, y_label = x_name.capitalize(), y_name.capitalize()
    caption = style.exactness(part)
    if part["kind"] == "points":
        csv = {x_name: part["x"], y_name: part["y"]}
    else:
        xe, ye, counts = part["x_edges"], part["y_edges"], part["counts"]
        cells = [(i, j, c) for j, row in enumerate(counts) for i, c in enumerate(row) if c]
        csv = {f"{x_name}_from": [xe[i] for i, _, _ in cells], f"{x_name}_to": [xe[i + 1] for i, _, _ in cells],
               f"{y_name}_from": [ye[j] for _, j, _ in cells], f"{y_name}_to": [ye[j + 1] for _, j, _ in cells],
               "count": [c for _, _, c in cells]}
        if part.get("n_outside"):
            caption += f" {part['n_outside']:,} rows beyond the plotted range (0.1 % tails) are not drawn."

    def draw():
        fig = _figure(x_label=x_label, y_label=y_label, name=f"fig-{key}")
        if part["kind"] == "points":
            source = ColumnDataSource({"x": part["x"], "y": part["y"]}, name=f"src-{key}")
            alpha = 0.6 if part["n"] < 1000 else 0.35
            dots = fig.scatter("x", "y", source=source, size=5, fill_color=style.ACCENT, fill_alpha=alpha,
                               line_color=None, hover_fill_color=style.SECOND, hover_fill_alpha=1)
            _hover(fig, [dots], [(x_name, "@x{0.0000a}"), (y_name, "@y{0.0000a}")])
            lo = min(part["x"] + (part["y"] if diagonal else []), default=0.0)
            hi = max(part["x"] + (part["y"] if diagonal else []), default=1.0)
        else:
            data = {"x0": csv[f"{x_name}_from"], "x1": csv[f"{x_name}_to"], "y0": csv[f"{y_name}_from"],
                    "y1": csv[f"{y_name}_to"], "count": csv["count"]}
            source = ColumnDataSource(data, name=f"src-{key}")
            top = max(data["count"], default=1)
            mapper = LogColorMapper(palette=style.ramp(low="#dfe8f8"), low=1, high=max(top, 2))
            cells = fig.quad(left="x0", right="x1", bottom="y0", top="y1", source=source,
                             fill_color={"field": "count", "transform": mapper}, line_color=None,
                             hover_line_color=style.SECOND, hover_line_width=2,
                             hover_fill_color={"field": "count", "transform": mapper})
            _hover(fig, [cells], [(x_name, "@x0{0.000a} to @x1{0.000a}"), (y_name, "@y0{0.000a} to @y1{0.000a}"),
                                  ("rows", "@count{0,0}")])
            bar = ColorBar(color_mapper=mapper, width=10, title="rows", title_text_font_size="11px",
                           major_label_text_font_size="11px", formatter=NumeralTickFormatter(format="0a"))
            fig.add_layout(bar, "right")
            lo, hi = part["x_edges"][0], part["x_edges"][-1]
            fig.x_range = Range1d(part["x_edges"][0], part["x_edges"][-1])
            fig.y_range = Range1d(part["y_edges"][0], part["y_edges"][-1])
        if diagonal:
            fig.line([lo, hi], [lo, hi], line_dash="dashed", line_color=style.INK, line_alpha=0.55, line_width=1.5,
                     legend_label="predicted = actual")
            style.legend_outside(fig)
        if zero_line:
            fig.add_layout(Span(location=0, dimension="width", line_color=style.INK, line_alpha=0.55,
                                line_dash="dashed", line_width=1.5))
        return fig

    return PlotSpec(key, title, caption, csv, draw, note=note, exact=part["exact"])


def _error_by_decile(agg: dict) -> PlotSpec:
    part = agg["error_by_decile"]
    csv = {k: part[k] for k in ("decile", "pred_from", "pred_to", "count", "mean_abs_error", "mean_error", "rmse")}

    def draw():
        data = {k: [_num(v) if k != "decile" else v for v in part[k]] for k in csv}
        data["range"] = [f"[{a:.4g}, {b:.4g}{']' if i == len(part['decile']) - 1 else ')'}"
                         if a is not None and b is not None else "—"
                         for i, (a, b) in enumerate(zip(part["pred_from"], part["pred_to"]))]
        source = ColumnDataSource(data, name="src-error_by_decile")
        fig = _figure(x_label="Decile of the prediction (low to high)", y_label="Error",
                      x_range=Range1d(0.4, len(part["decile"]) + 0.6), name="fig-error_by_decile")
        _legend_above(fig)
        bars = fig.vbar(x="decile", top="mean_abs_error", width=0.7, source=source, fill_color=style.ACCENT,
                        fill_alpha=0.8, line_color=None, legend_label="Mean absolute error",
                        hover_fill_color=style.ACCENT, hover_fill_alpha=1)
        fig.line("decile", "rmse", source=source, line_color=style.SECOND, line_width=2, legend_label="RMSE")
        rmse = fig.scatter("decile", "rmse", source=source, size=8, fill_color=style.SECOND, line_color="white")
        fig.line("decile", "mean_error", source=source, line_color=style.color(2), line_width=2, line_dash="dashed",
                 legend_label="Mean error (bias)")
        bias = fig.scatter("decile", "mean_error", source=source, size=7, marker="square", fill_color=style.color(2),
                           line_color="white")
        fig.add_layout(Span(location=0, dimension="width", line_color=style.REFERENCE, line_width=1))
        _hover(fig, [bars, rmse, bias], [("decile", "@decile"), ("predictions in", "@range"), ("rows", "@count{0,0}"),
                                         ("mean absolute error", "@mean_abs_error{0.0000a}"),
                                         ("RMSE", "@rmse{0.0000a}"), ("mean error", "@mean_error{0.0000a}")])
        fig.xaxis.ticker = FixedTicker(ticks=list(part["decile"]))
        fig.xgrid.grid_line_color = None
        return fig

    return PlotSpec("error_by_decile", "Error by decile of the prediction", style.exactness(part), csv, draw,
                    stretchable=True,
                    note="Rows split into ten equal groups by their prediction. Error = actual − predicted, so a "
                         "positive mean error means the model predicts too low there.")
