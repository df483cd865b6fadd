"""Permutation importance as horizontal bars (mean decrease in score) with error bars (one std).

Input: the dict ``viewer.core.importance.permutation_importance`` returns. Feature names are user
data: they are factors of the y range and values of ColumnDataSource columns (drawn as text), and
the tooltips only reference fields (``@name``), never build HTML from them.
"""

from __future__ import annotations

from typing import Any

from bokeh.models import ColumnDataSource, FactorRange, HoverTool, Range1d, Span, Whisker

from .style import ACCENT, GREY, REFERENCE, base_figure

TOP = 30
ROW_HEIGHT = 22


def _text(value: float | None) -> str:
    return "—" if value is None else f"{value:.6g}"


def shown_features(result: dict[str, Any], top: int = TOP) -> list[dict[str, Any]]:
    """The ``top`` most important features, most important first (the result is sorted already;
    sorting again keeps this right for any input)."""
    ranked = sorted(result.get("features") or [],
                    key=lambda f: -(f["mean"] if f.get("mean") is not None else float("-inf")))
    return ranked[:top]


def importance_bars(result: dict[str, Any], top: int = TOP):
    """Bars of the mean importance with whiskers of +- one standard deviation over the repeats,
    the most important feature at the top; negative means (shuffling helped) in grey."""
    shown = shown_features(result, top)
    names = [str(f["name"]) for f in shown]
    means = [f["mean"] if f.get("mean") is not None else 0.0 for f in shown]
    stds = [f["std"] if f.get("std") is not None else 0.0 for f in shown]
    source = ColumnDataSource({
        "name": names, "mean": means, "std": stds,
        "lower": [m - s for m, s in zip(means, stds)], "upper": [m + s for m, s in zip(means, stds)],
        "mean_text": [_text(f.get("mean")) for f in shown], "std_text": [_text(f.get("std")) for f in shown],
        "repeats": [", ".join(_text(v) for v in f.get("values") or []) for f in shown],
        "color": [ACCENT if m >= 0 else GREY for m in means],
    })
    label = result.get("scoring_label") or result.get("scoring") or "score"
    total = len(result.get("features") or [])
    title = f"Permutation importance: drop in {label} when a feature is shuffled"
    if total > len(shown):
        title += f" (top {len(shown)} of {total})"
    fig = base_figure(title, x_label=f"Decrease in {label} (mean ± 1 std over {result.get('n_repeats', '?')} repeats)",
                      y_range=FactorRange(factors=list(reversed(names))),
                      height=min(90 + ROW_HEIGHT * max(len(names), 1), 90 + ROW_HEIGHT * TOP),
                      tools="save", x_axis_type="linear")
    bars = fig.hbar(y="name", left=0, right="mean", height=0.62, source=source, fill_color="color",
                    line_color=None)
    fig.add_layout(Whisker(source=source, base="name", lower="lower", upper="upper", dimension="width",
                           line_color="#3b4252", line_width=1.2))
    # The automatic range follows the bars only: set it to hold the whiskers too, or they are cut off.
    low = min([0.0, *source.data["lower"]])
    high = max([0.0, *source.data["upper"]])
    pad = 0.05 * ((high - low) or 1.0)
    fig.x_range = Range1d(low - pad, high + pad)
    fig.add_layout(Span(location=0, dimension="height", line_color=REFERENCE, line_width=1))
    fig.add_tools(HoverTool(renderers=[bars], tooltips=[
        ("feature", "@name"), ("mean decrease", "@mean_text"), ("std", "@std_text"), ("each repeat", "@repeats")]))
    fig.ygrid.grid_line_color = None
    fig.yaxis.major_label_text_font_size = "11px"
    return fig
