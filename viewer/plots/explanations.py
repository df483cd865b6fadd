"""The waterfall of one prediction's contributions: from the baseline, each input column's push
up or down, to the model's output."""

from __future__ import annotations

from typing import Any

from bokeh.models import ColumnDataSource, HoverTool, Span

from .style import GREY, REFERENCE, base_figure

UP, DOWN, ENDS = "#d55e00", "#2f6fde", "#5b6478"
TOP = 12


def steps(row: dict[str, Any], top: int = TOP) -> list[tuple[str, float]]:
    """(label, contribution) in the waterfall's order: the largest ``top`` by size, then the rest
    summed, then what no single column could be given."""
    ranked = sorted(row["contributions"].items(), key=lambda kv: -abs(kv[1] or 0.0))
    shown = [(str(k), float(v or 0.0)) for k, v in ranked[:top]]
    rest = ranked[top:]
    if rest:
        shown.append((f"{len(rest)} other columns", float(sum(v or 0.0 for _k, v in rest))))
    if row.get("other"):
        shown.append(("preprocessing (not traced)", float(row["other"])))
    return shown


def waterfall(row: dict[str, Any], output_label: str, previous: dict[str, Any] | None = None, top: int = TOP):
    """``row``: an ``explanations`` row of the predict API (base, output, contributions, other).
    ``previous``: the last row's, drawn as thin grey bars from the same starts (a what-if)."""
    shown = steps(row, top)
    names = {label for label, _ in shown}
    first, last = _unique("baseline", names), _unique("output", names)
    labels = [first] + [label for label, _ in shown] + [last]
    start, lefts, rights, colors, values = float(row["base"]), [], [], [], []
    lefts.append(min(0.0, start))
    rights.append(max(0.0, start))
    colors.append(ENDS)
    values.append(start)
    for _label, value in shown:
        end = start + value
        lefts.append(min(start, end))
        rights.append(max(start, end))
        colors.append(UP if value >= 0 else DOWN)
        values.append(value)
        start = end
    output = float(row["output"])
    lefts.append(min(0.0, output))
    rights.append(max(0.0, output))
    colors.append(ENDS)
    values.append(output)
    data: dict[str, list[Any]] = {"label": labels, "left": lefts, "right": rights, "color": colors,
                                  "amount": values, "value": [f"{v:+.4g}" for v in values]}
    before = _before(previous, labels, [float(row["base"])] + _starts(row, shown), first, last) if previous else None
    if before is not None:
        data.update(before)
    source = ColumnDataSource(data, name="waterfall")
    fig = base_figure(f"Contributions to {output_label}", y_range=list(reversed(labels)),
                      height=min(120 + 26 * len(labels), 640), tools="save")
    bars = fig.hbar(y="label", left="left", right="right", height=0.62, color="color", source=source)
    tooltips = [("", "@label"), ("contribution", "@value")]
    if before is not None:
        fig.hbar(y="label", left="before_left", right="before_right", height=0.16, color=GREY, source=source)
        tooltips.append(("before", "@before"))
    fig.add_tools(HoverTool(renderers=[bars], tooltips=tooltips))
    fig.add_layout(Span(location=0, dimension="height", line_color=REFERENCE, line_width=1))
    fig.ygrid.grid_line_color = None
    return fig


def _unique(name: str, taken: set[str]) -> str:
    while name in taken:
        name = f"({name})"
    return name


def _starts(row: dict[str, Any], shown: list[tuple[str, float]]) -> list[float]:
    """Where each step's bar starts (after the baseline), and the output's 0."""
    starts, at = [], float(row["base"])
    for _label, value in shown:
        starts.append(at)
        at += value
    return starts + [0.0]


def _before(previous: dict[str, Any], labels: list[str], starts: list[float], first: str, last: str):
    """The previous row's values at the same labels: bars from this row's starts, with the
    previous length (the baseline and output from 0)."""
    contributions = previous.get("contributions") or {}
    lefts, rights, texts = [], [], []
    for i, label in enumerate(labels):
        if label == first:
            value, at = previous.get("base"), 0.0
        elif label == last:
            value, at = previous.get("output"), 0.0
        else:
            value, at = contributions.get(label), starts[i]
        if value is None:
            lefts.append(at)
            rights.append(at)
            texts.append("")
            continue
        lefts.append(min(at, at + float(value)))
        rights.append(max(at, at + float(value)))
        texts.append(f"{float(value):+.4g}")
    return {"before_left": lefts, "before_right": rights, "before": texts}
