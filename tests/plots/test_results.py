"""Result-page plot builders (viewer.plots.results) on known inputs; no app, no server."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from bokeh.embed import json_item
from bokeh.models import ColumnDataSource, CustomJS, HoverTool, Plot
from sklearn.metrics import confusion_matrix, roc_curve

from viewer.core.metrics import classification_aggregates, regression_aggregates
from viewer.plots.results import (matrix_display, plot_table, result_plots, threshold_numbers, threshold_payload,
                                  unavailable_notes)

XSS = "<img src=x onerror=alert(1)>"


def binary_data(n=20_000, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # rounded scores: many ties, and some exactly on the threshold grid (0.5, 0.37, ...)
    score = np.clip(np.round(0.35 * y + 0.65 * rng.random(n), 2), 0, 1)
    return y, score


def by_key(plots):
    return {p.key: p for p in plots}


def source(model, name) -> dict:
    found = model.select_one({"name": name})
    assert isinstance(found, ColumnDataSource), name
    return found.data


def distance_to_polyline(px, py, x, y) -> np.ndarray:
    """Euclidean distance of each point (px, py) to the polyline through (x, y)."""
    ax, ay, bx, by = x[:-1], y[:-1], x[1:], y[1:]
    dx, dy = bx - ax, by - ay
    length2 = np.where(dx * dx + dy * dy > 0, dx * dx + dy * dy, 1.0)
    out = np.empty(len(px))
    for start in range(0, len(px), 2000):
        qx, qy = px[start:start + 2000, None], py[start:start + 2000, None]
        t = np.clip(((qx - ax) * dx + (qy - ay) * dy) / length2, 0.0, 1.0)
        out[start:start + 2000] = np.hypot(qx - ax - t * dx, qy - ay - t * dy).min(axis=1)
    return out


def test_roc_points_are_sklearns_after_thinning():
    y, score = binary_data(200_000, seed=1)
    score = score + np.random.default_rng(2).random(len(score)) * 1e-3  # distinct scores: a long curve
    agg = classification_aggregates(y, np.column_stack([1 - score, score]), None, [0, 1])
    spec = by_key(result_plots(agg))["roc"]
    assert not spec.exact and "Thinned" in spec.caption
    data = source(spec.draw(), "src-roc")
    fpr, tpr = np.array(data["fpr"]), np.array(data["tpr"])
    exact_fpr, exact_tpr, _ = roc_curve(y, score)
    assert len(fpr) <= 500 < len(exact_fpr)
    # every plotted point is a vertex of sklearn's curve (values rounded to 6 significant digits) ...
    distance = np.abs(fpr[:, None] - exact_fpr[None, :]) + np.abs(tpr[:, None] - exact_tpr[None, :])
    assert distance.min(axis=1).max() < 1e-5
    # ... and every vertex of sklearn's curve lies close to the plotted polyline
    assert distance_to_polyline(exact_fpr, exact_tpr, fpr, tpr).max() < 0.005
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert spec.table["fpr"] == data["fpr"] and len(spec.table["threshold"]) == len(fpr)


def test_the_threshold_table_the_script_reads_is_sklearns_confusion_matrix():
    y, score = binary_data()
    agg = classification_aggregates(y, np.column_stack([1 - score, score]), None, [0, 1])
    payload = threshold_payload(agg)
    assert payload["thresholds"][payload["index"]] == 0.5
    json.dumps(payload, allow_nan=False)  # it goes into a JSON data block as is
    for i, t in enumerate(payload["thresholds"]):
        tn, fp, fn, tp = confusion_matrix(y, (score >= t).astype(int), labels=[0, 1]).ravel()
        assert (payload["tn"][i], payload["fp"][i], payload["fn"][i], payload["tp"][i]) == (tn, fp, fn, tp), t
    # the numbers shown beside the matrix
    t = 0.37
    i = payload["thresholds"].index(t)
    predicted = score >= t
    numbers = threshold_numbers(payload, i)["values"]
    tp = int((predicted & (y == 1)).sum())
    assert numbers["precision"] == pytest.approx(tp / predicted.sum())
    assert numbers["recall"] == pytest.approx(tp / (y == 1).sum())
    assert numbers["accuracy"] == pytest.approx((predicted == (y == 1)).mean())


def test_the_matrix_drawn_first_is_sklearns_at_the_first_threshold():
    y, score = binary_data()
    agg = classification_aggregates(np.array(["stay", "churn"])[y], np.column_stack([1 - score, score]), None,
                                    ["stay", "churn"])
    spec = by_key(result_plots(agg))["confusion"]
    assert spec.control == "threshold" and spec.wide
    cells = source(spec.draw(), "src-confusion")
    expected = confusion_matrix(y, (score >= 0.5).astype(int), labels=[0, 1])
    shown = {(t, p): c for t, p, c in zip(cells["true"], cells["pred"], cells["count"])}
    assert shown == {("stay", "stay"): expected[0, 0], ("stay", "churn"): expected[0, 1],
                     ("churn", "stay"): expected[1, 0], ("churn", "churn"): expected[1, 1]}
    assert cells["cell"] == ["tn", "fp", "fn", "tp"]
    # the CSV holds the whole table the slider moves through
    assert spec.table["threshold"][50] == 0.5 and spec.table["tp"][50] == expected[1, 1]


def test_matrix_display_counts_and_row_shares():
    cells = {"true": ["a", "a", "b", "b"], "pred": ["a", "b", "a", "b"], "count": [30, 10, 0, 60]}
    counts = matrix_display(cells, "counts")
    assert counts["text"] == ["30", "10", "0", "60"]
    assert counts["intensity"] == [0.5, 10 / 60, 0.0, 1.0]
    assert counts["row_total"] == [40, 40, 60, 60]
    rows = matrix_display(cells, "row")
    assert rows["text"] == ["75.0 %", "25.0 %", "0.0 %", "100.0 %"]
    assert rows["intensity"] == [0.75, 0.25, 0.0, 1.0]
    assert rows["text_color"][3] == "#ffffff" and rows["text_color"][1] != "#ffffff"
    empty = matrix_display({"true": ["a"], "pred": ["a"], "count": [0]}, "row")
    assert empty["text"] == ["—"] and empty["intensity"] == [0.0]


def multiclass_data(n=3000, seed=3, labels=("setosa", "versicolor", "virginica")):
    rng = np.random.default_rng(seed)
    k = len(labels)
    y = rng.integers(0, k, n)
    proba = rng.dirichlet(np.ones(k), n)
    proba[np.arange(n), y] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    return np.array(labels, dtype=object)[y], proba


def regression_data(n, seed=4):
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 3, n)
    return y, y + rng.normal(0, 1, n)


@functools.cache
def all_aggregates() -> dict[str, dict]:
    y, score = binary_data(5000)
    proba = np.column_stack([1 - score, score])
    ym, pm = multiclass_data()
    many_labels = [f"c{i}" for i in range(40)]
    ymany, pmany = multiclass_data(4000, labels=many_labels)
    yr, pr = regression_data(3000)
    yr_big, pr_big = regression_data(20_000)
    return {
        "binary": classification_aggregates(y, proba, None, [0, 1]),
        "binary without target": classification_aggregates(None, proba, None, [0, 1]),
        "binary without probabilities": classification_aggregates(y, None, (score >= 0.5).astype(int), [0, 1]),
        "binary, one class in the target": classification_aggregates(np.ones(100, int), proba[:100], None, [0, 1]),
        "binary with unknown and missing labels": classification_aggregates(
            np.where(np.arange(5000) % 50 == 0, 7, np.where(np.arange(5000) % 70 == 0, np.nan, y)), proba, None,
            [0, 1]),
        "multiclass": classification_aggregates(ym, pm, None, ["setosa", "versicolor", "virginica"]),
        "multiclass without target": classification_aggregates(None, pm, None, ["setosa", "versicolor", "virginica"]),
        "multiclass without probabilities": classification_aggregates(ym, None, ym[::-1],
                                                                      ["setosa", "versicolor", "virginica"]),
        "multiclass, 40 classes": classification_aggregates(ymany, pmany, None, many_labels),
        "regression (points)": regression_aggregates(yr, pr),
        "regression (grid)": regression_aggregates(yr_big, pr_big),
        "regression without target": regression_aggregates(None, pr),
        "regression with no finite rows": regression_aggregates([np.nan], [1.0]),
    }


EXPECTED_KEYS = {
    "binary": ["roc", "pr", "confusion", "score_distribution", "calibration", "gain", "lift"],
    "binary without target": ["score_histogram", "prediction_shares"],
    "binary without probabilities": ["confusion", "per_class"],
    "binary, one class in the target": ["confusion", "score_distribution", "calibration", "gain", "lift"],
    "binary with unknown and missing labels": ["roc", "pr", "confusion", "score_distribution", "calibration",
                                               "gain", "lift"],
    "multiclass": ["confusion", "roc_ovr", "per_class"],
    "multiclass without target": ["probability_histograms", "prediction_shares"],
    "multiclass without probabilities": ["confusion", "per_class"],
    "multiclass, 40 classes": ["confusion", "roc_ovr", "per_class"],
    "regression (points)": ["predicted_vs_actual", "residuals_vs_predicted", "residual_histogram",
                            "error_by_decile", "prediction_histogram"],
    "regression (grid)": ["predicted_vs_actual", "residuals_vs_predicted", "residual_histogram",
                          "error_by_decile", "prediction_histogram"],
    "regression without target": ["prediction_histogram"],
    "regression with no finite rows": [],
}


@pytest.mark.parametrize("case", list(EXPECTED_KEYS))
def test_every_task_builds_with_hover_names_and_a_table(case):
    agg = all_aggregates()[case]
    plots = result_plots(agg)
    assert [p.key for p in plots] == EXPECTED_KEYS[case]
    for spec in plots:
        model = spec.draw()
        assert model.name == f"fig-{spec.key}"
        figures = list(model.select({"type": Plot}))
        assert figures
        for fig in figures:  # hover tooltips with exact values on every plot
            hovers = [t for t in fig.tools if isinstance(t, HoverTool)]
            assert hovers and all(h.tooltips for h in hovers), (spec.key, fig.name)
        sources = [s.name for s in model.select({"type": ColumnDataSource})]
        assert f"src-{spec.key}" in sources or f"src-{spec.key}-0" in sources, sources
        names = sources + [f.name for f in figures]
        assert all(n and n.startswith(("src-", "fig-")) for n in names) and len(set(names)) == len(names), names
        json.dumps(json_item(model, f"plot-{spec.key}"))
        assert spec.caption.startswith(("Exact", "Thinned", "Aggregated"))
        lengths = {len(v) for v in spec.table.values()}
        assert len(lengths) == 1 and lengths.pop() > 0, spec.key
        assert plot_table(agg, spec.key) == spec.table
    assert plot_table(agg, "nope") is None


def test_exactness_is_said_per_plot():
    agg = all_aggregates()
    grid = by_key(result_plots(agg["regression (grid)"]))
    assert not grid["predicted_vs_actual"].exact and grid["predicted_vs_actual"].caption.startswith("Aggregated")
    points = by_key(result_plots(agg["regression (points)"]))
    assert points["predicted_vs_actual"].exact and points["predicted_vs_actual"].caption.startswith("Exact")
    assert len(points["predicted_vs_actual"].table["actual"]) == 3000


def test_missing_plots_are_explained():
    agg = all_aggregates()["binary, one class in the target"]
    notes = unavailable_notes(agg)
    assert any(n.startswith("ROC curve: not shown (only one class present") for n in notes)
    assert unavailable_notes(None) == []
    assert result_plots(None) == [] and result_plots({"task": "clustering"}) == []


def _strings_with(obj, needle, path=()):
    """(path, string) for every JSON string containing ``needle``; a path step is (model type, attribute)."""
    if isinstance(obj, str):
        if needle in obj:
            yield path, obj
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings_with(v, needle, path)
    elif isinstance(obj, dict):
        kind = obj.get("name") if obj.get("type") == "object" else None
        for key, value in obj.items():
            step = (kind, key) if kind and key == "attributes" else None
            if kind and key == "attributes":
                for attr, v in value.items():
                    yield from _strings_with(v, needle, path + ((kind, attr),))
            elif step is None:
                yield from _strings_with(value, needle, path)


# Where user data may appear: data columns, categorical factors, and text drawn on the canvas.
DATA_ONLY = {("ColumnDataSource", "data"), ("FactorRange", "factors"), ("LegendItem", "label"), ("Title", "text"),
             ("LinearAxis", "axis_label")}


@pytest.mark.parametrize("task", ["binary", "binary-no-target", "multiclass", "multiclass-no-target"])
def test_labels_are_only_ever_data(task):
    """A script payload as a class label appears in the document JSON only as data, never in a
    tooltip template, a CustomJS or any HTML-rendering model."""
    rng = np.random.default_rng(5)
    if task.startswith("binary"):
        labels = [XSS, "=HYPERLINK(\"http://x\")"]
        y, score = binary_data(2000)
        target = np.array(labels, dtype=object)[y] if "no-target" not in task else None
        agg = classification_aggregates(target, np.column_stack([1 - score, score]), None, labels)
    else:
        labels = [XSS, "a\"b", "<script>alert(2)</script>"]
        y, proba = multiclass_data(2000, labels=labels)
        agg = classification_aggregates(y if "no-target" not in task else None, proba, None, labels)
        rng.shuffle(labels)
    seen = 0
    for spec in result_plots(agg):
        model = spec.draw()
        assert not list(model.select({"type": CustomJS}))
        for hover in model.select({"type": HoverTool}):
            assert isinstance(hover.tooltips, list), "tooltips are (label, @field) pairs, never an HTML template"
            for name, value in hover.tooltips:
                assert "<" not in name and "{safe}" not in value and XSS not in name + value
        item = json_item(model, f"plot-{spec.key}")
        for path, text in _strings_with(item, "onerror"):
            seen += 1
            owner = path[-1] if path else None
            assert any(step in DATA_ONLY for step in path), (spec.key, path, text)
            assert owner is None or owner[0] not in ("Div", "Paragraph", "PreText", "HTML"), path
    assert seen > 0  # the label did reach the plots (as data)


def _binary_only():
    return all_aggregates()["binary"]


def test_csv_tables_keep_labels_as_values():
    """Label columns hold the labels (so the CSV route can neutralise formulas); column names are fixed."""
    labels = [XSS, "=cmd|' /C calc'!A0"]
    y, score = binary_data(2000)
    agg = classification_aggregates(np.array(labels, dtype=object)[y], np.column_stack([1 - score, score]), None,
                                    labels)
    table = plot_table(agg, "score_distribution")
    assert set(table) == {"true_class", "bin_from", "bin_to", "count", "share_of_class"}
    assert set(table["true_class"]) == set(labels)
    numeric = plot_table(_binary_only(), "score_distribution")
    assert set(numeric["true_class"]) == {0, 1}  # numbers stay numbers


def test_plot_weight_does_not_grow_with_the_counts_in_the_aggregates():
    """Real aggregates of 200k rows with their counts scaled up to 10M draw into the same few hundred
    KB (the aggregates are bounded; counts only get more digits). A real 10M-row job's page is
    measured by bench/pages.py."""
    sizes = {}
    for n in (200_000, 10_000_000):
        agg = _scaled(n)
        total = 0
        for spec in result_plots(agg):
            total += len(json.dumps(json_item(spec.draw(), f"plot-{spec.key}")))
        sizes[n] = total
    assert sizes[10_000_000] < 2 * 2**20
    assert sizes[10_000_000] < 1.2 * sizes[200_000]


def _scaled(n: int) -> dict:
    """Real binary aggregates of 200k rows with every count multiplied up to ``n`` rows."""
    y, score = binary_data(200_000, seed=7)
    score = score + np.random.default_rng(8).random(len(score)) * 1e-3
    agg = classification_aggregates(y, np.column_stack([1 - score, score]), None, [0, 1])
    factor = n // 200_000

    def scale(obj):
        if isinstance(obj, dict):
            return {k: (v * factor if k in ("n", "tp", "fp", "tn", "fn", "count", "counts") and isinstance(v, int)
                        else [x * factor for x in v] if k in ("tp", "fp", "tn", "fn", "count", "counts")
                        and isinstance(v, list) else scale(v)) for k, v in obj.items()}
        if isinstance(obj, list):
            return [scale(v) for v in obj]
        return obj

    return scale(agg)


def test_importance_whiskers_fit_inside_the_x_range():
    from viewer.plots.importance import importance_bars

    result = {"scoring": "roc_auc", "n_repeats": 3, "features": [
        {"name": "a", "mean": 0.20, "std": 0.15, "values": [0.1, 0.2, 0.3]},
        {"name": "b", "mean": -0.01, "std": 0.05, "values": [0.0, -0.05, 0.02]}]}
    fig = importance_bars(result)
    assert fig.x_range.start <= -0.06 and fig.x_range.end >= 0.35


def test_legends_sit_outside_the_plot_area_and_hide_on_click():
    from bokeh.models import Legend

    from viewer.plots import style

    fig = style.base_figure("", x_label="x", y_label="y")
    fig.line([0, 1], [0, 1], legend_label="model")
    style.legend_outside(fig)
    assert not [r for r in fig.center if isinstance(r, Legend)]
    (legend,) = fig.below[-1:]
    assert isinstance(legend, Legend) and legend.click_policy == "hide" and legend.orientation == "horizontal"
