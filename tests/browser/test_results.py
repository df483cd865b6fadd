"""Result pages in Chromium: a finished scoring job of each kind draws its plots (a canvas per
plot, the expected glyphs and data lengths in the Bokeh documents), the threshold slider drives
the confusion matrix and the numbers beside it, the compare page and the importance job render."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import confusion_matrix

from tests.browser.ui import UI

pytestmark = pytest.mark.usefixtures("worker")


def glyphs(ui: UI) -> dict[str, int]:
    """How many renderers of each glyph type the page's Bokeh documents hold."""
    counts: dict[str, int] = {}
    for r in ui.renderers():
        counts[r["glyph"]] = counts.get(r["glyph"], 0) + 1
    return counts


def check_plot_cards(ui: UI, expected: list[str]) -> None:
    """The page shows exactly these plots, each drawn on a canvas with its exact/aggregated badge
    and a working CSV download."""
    cards = ui.page.locator("#plot-grid [data-plot]")
    assert sorted(c.get_attribute("data-plot") for c in cards.all()) == sorted(expected)
    assert ui.page.get_by_text("This plot could not be drawn.").count() == 0
    for card in cards.all():
        key = card.get_attribute("data-plot")
        assert card.locator("canvas").count() >= 1, f"plot {key} has no canvas"
        assert card.locator(".exactness").text_content().strip() in ("exact", "aggregated")
        href = card.locator("a.csv-link").get_attribute("href")
        if href:
            response = ui.page.request.get(href)
            assert response.status == 200 and response.headers["content-type"].startswith("text/csv"), key
            assert response.text().count("\n") >= 2, key


def results_frame(site, job_id: str) -> pd.DataFrame:
    response = site.client.get(f"/api/v1/jobs/{job_id}/results?format=parquet", headers=site.headers)
    assert response.status_code == 200
    return pd.read_parquet(io.BytesIO(response.data))


def matrix_shown(ui: UI) -> dict[tuple[str, str], int]:
    cells = ui.source("src-confusion")
    return {(t, p): c for t, p, c in zip(cells["true"], cells["pred"], cells["count"])}


def test_binary_job_page_plots_and_threshold_slider(ui: UI, site):
    job = site.job("binary")
    ui.goto(site.path("binary"))
    ui.wait_for_plots()
    check_plot_cards(ui, ["roc", "pr", "confusion", "score_distribution", "calibration", "gain", "lift"])
    assert ui.canvases() >= 7
    counts = glyphs(ui)
    assert counts["Rect"] == 1 and counts["Text"] == 1 and counts["Quad"] == 3 and counts["VArea"] == 1
    roc, pr = ui.source("src-roc"), ui.source("src-pr")
    assert 2 <= len(roc["fpr"]) <= 501 and len(roc["fpr"]) == len(roc["tpr"])
    assert 2 <= len(pr["recall"]) <= 501
    assert roc["fpr"][0] == 0 and roc["tpr"][-1] == 1
    assert len(ui.source("src-calibration")["prob_pred"]) == 10
    assert len(ui.source("src-gain")["x"]) == 101

    table = ui.page.evaluate("() => JSON.parse(document.getElementById('threshold-table').textContent)")
    negative, positive = job["params"]["classes"]
    slider = ui.page.locator("#threshold")
    start = int(slider.input_value())
    assert table["thresholds"][start] == 0.5
    before = matrix_shown(ui)
    precision_before = ui.page.locator("dd[data-at-threshold=precision]").inner_text()
    recall_before = ui.page.locator("dd[data-at-threshold=recall]").inner_text()
    marker_before = ui.source("src-threshold-roc")

    slider.focus()
    for _ in range(20):  # the keyboard, as a person would: 0.50 -> 0.70
        ui.page.keyboard.press("ArrowRight")
    index = int(slider.input_value())
    assert index == start + 20 and ui.page.locator("#threshold-value").inner_text() == "0.70"
    ui.page.wait_for_function("(before) => JSON.stringify(Array.from("
                              "Bokeh.documents.map((d) => d.get_model_by_name('src-confusion')).find(Boolean)"
                              ".data.count)) !== before", arg=str(list(before.values())).replace(" ", ""))
    after = matrix_shown(ui)
    tp, fp, tn, fn = (table[k][index] for k in ("tp", "fp", "tn", "fn"))
    assert after == {(negative, negative): tn, (negative, positive): fp, (positive, negative): fn,
                     (positive, positive): tp}
    assert after != before and sum(after.values()) == sum(before.values()) == 1000

    # ... and it is scikit-learn's confusion matrix of the job's own scores at that threshold.
    rows = results_frame(site, job["id"])
    predicted = np.where(rows[f"proba_{positive}"] >= 0.70, positive, negative)
    expected = confusion_matrix(rows["target"], predicted, labels=[negative, positive])
    assert [[tn, fp], [fn, tp]] == expected.tolist()

    precision = ui.page.locator("dd[data-at-threshold=precision]").inner_text()
    recall = ui.page.locator("dd[data-at-threshold=recall]").inner_text()
    assert (precision, recall) != (precision_before, recall_before)
    assert precision == f"{tp / (tp + fp):.4f}" and recall == f"{tp / (tp + fn):.4f}"
    assert ui.page.locator("dd[data-at-threshold=f1]").inner_text() == f"{2 * tp / (2 * tp + fp + fn):.4f}"
    marker = ui.source("src-threshold-roc")
    assert marker != marker_before and marker["x"] == [pytest.approx(fp / (fp + tn))]
    assert ui.source("src-threshold-pr")["y"] == [pytest.approx(tp / (tp + fp))]

    ui.page.locator("label[for=cm-mode-row]").click()  # row shares instead of counts
    ui.page.wait_for_function("() => Bokeh.documents.map((d) => d.get_model_by_name('src-confusion'))"
                              ".find(Boolean).data.text[0].endsWith('%')")
    shown = ui.source("src-confusion")
    assert all(t.endswith(" %") for t in shown["text"])
    assert shown["count"] == [tn, fp, fn, tp]  # the threshold still holds
    ui.hover_plots(steps=4)
    ui.page.locator("label[for=cm-mode-counts]").click()
    slider.focus()
    ui.page.keyboard.press("ArrowLeft")
    ui.page.wait_for_timeout(100)
    assert ui.page.locator("#threshold-value").inner_text() == "0.69"
    for _ in range(19):
        ui.page.keyboard.press("ArrowLeft")
    ui.page.wait_for_timeout(100)
    assert matrix_shown(ui) == before
    assert ui.page.locator("dd[data-at-threshold=precision]").inner_text() == precision_before
    ui.screenshot("job-binary.png")

    # Where the model is weak: the segments' dot plot (worst first) and their table, as the job computed them.
    found = job["result"]["segments"]
    drawn = ui.source("segments")
    assert len(drawn["name"]) == min(15, len(found["segments"])) and drawn["metric"][0] == found["segments"][0]["metric"]
    ui.page.locator("#segment-table summary").click()
    first = ui.page.locator("#segment-table tbody tr").first.locator("td")
    assert first.nth(1).inner_text() == f"{found['segments'][0]['rows']:,}"
    assert first.nth(3).inner_text() == f"{found['segments'][0]['metric']:.4f}"
    assert ui.page.locator("#weak-segments, #no-weak-segments").count() == 1
    ui.page.locator("#segments").scroll_into_view_if_needed()
    ui.screenshot("job-segments.png")


def test_the_threshold_chosen_on_the_slider_is_saved_on_the_version(ui: UI, site):
    job = site.job("binary")
    name, version = job["params"]["model_name"], job["params"]["model_version"]
    ui.goto(site.path("binary"))
    ui.wait_for_plots()
    slider = ui.page.locator("#threshold")
    slider.focus()
    for _ in range(15):  # 0.50 -> 0.35
        ui.page.keyboard.press("ArrowLeft")
    assert ui.page.locator("#save-threshold-value").input_value() == "0.35"  # the form follows the slider
    try:
        ui.page.get_by_role("button", name=f"Save this threshold on {name}/{version}").click()
        ui.page.wait_for_selector(".saved-threshold")
        assert f"Saved on {name}/{version}: 0.35 by scientist" in ui.page.locator(".saved-threshold").inner_text()
        stored = site.client.get(f"/api/v1/models/{name}/versions/{version}", headers=site.headers).get_json()
        assert stored["threshold"]["value"] == 0.35
    finally:  # the other pages of the shared site show the model's own decision
        site.client.delete(f"/api/v1/models/{name}/versions/{version}/threshold", headers=site.headers)


def test_multiclass_job_page(ui: UI, site):
    job = site.job("multiclass")
    ui.goto(site.path("multiclass"))
    ui.wait_for_plots()
    check_plot_cards(ui, ["confusion", "per_class", "roc_ovr"])
    classes = job["params"]["classes"]
    cells = ui.source("src-confusion")
    assert len(cells["count"]) == 9 and sum(cells["count"]) == 150
    assert set(cells["true"]) == set(cells["pred"]) == set(classes)
    assert len(ui.source("src-per_class")["cls"]) == 3
    counts = glyphs(ui)
    assert counts["VBar"] == 3 and counts["Rect"] == 1
    assert sum(1 for r in ui.renderers() if "cls" in r["columns"] and r["glyph"] == "Line") == 3  # one ROC per class
    assert ui.page.locator("#threshold").count() == 0

    ui.page.locator("label[for=cm-mode-row]").click()
    ui.page.wait_for_function("() => Bokeh.documents.map((d) => d.get_model_by_name('src-confusion'))"
                              ".find(Boolean).data.text[0].endsWith('%')")
    shown = ui.source("src-confusion")
    for cls in classes:  # every true class's row shares add up to 100 %
        assert sum(s for t, s in zip(shown["true"], shown["row_share"]) if t == cls) == pytest.approx(1)
    assert shown["count"] == cells["count"]
    ui.hover_plots(steps=4)
    ui.screenshot("job-multiclass.png")


def test_regression_job_page(ui: UI, site):
    ui.goto(site.path("regression"))
    ui.wait_for_plots()
    check_plot_cards(ui, ["predicted_vs_actual", "residuals_vs_predicted", "residual_histogram", "error_by_decile",
                          "prediction_histogram"])
    points = ui.source("src-predicted_vs_actual")
    assert len(points["x"]) == len(points["y"]) == 442  # few rows: every point, exact
    assert len(ui.source("src-residuals_vs_predicted")["x"]) == 442
    assert sum(ui.source("src-residual_histogram")["count"]) == 442
    assert len(ui.source("src-error_by_decile")["decile"]) == 10
    metrics = ui.page.locator("#metrics")
    assert re.search(r"R²", metrics.inner_text()) and re.search(r"RMSE", metrics.inner_text())
    ui.hover_plots(steps=4)
    ui.screenshot("job-regression.png")


def test_job_without_target(ui: UI, site):
    ui.goto(site.path("no-target"))
    ui.wait_for_plots()
    check_plot_cards(ui, ["score_histogram", "prediction_shares"])
    assert sum(ui.source("src-score_histogram")["count"]) == 1000
    shares = ui.source("src-prediction_shares")
    assert sorted(shares["cls"]) == ["churn", "stay"] and sum(shares["count"]) == 1000
    assert ui.page.get_by_text("No metrics: the job ran without a target column.").is_visible()
    ui.screenshot("job-notarget.png")


def test_jobs_list(ui: UI, site):
    site.job("binary", "multiclass")
    ui.goto("/jobs/")
    rows = ui.page.locator("table tbody tr")
    assert rows.count() >= 2
    ui.page.locator(f"a[href='/jobs/{site.job('multiclass')['id']}']").first.click()
    ui.page.wait_for_load_state()
    ui.wait_for_plots()
    assert ui.page.locator("#plot-grid").is_visible()


def test_compare_page(ui: UI, site):
    first, second = site.job("binary", "binary-nb")
    ui.goto(f"/jobs/compare?jobs={first['id']}&jobs={second['id']}")
    ui.wait_for_plots()
    # Looking starts nothing; the button starts the comparison job, and the page reloads itself
    # when it is done (static/job.js).
    if ui.page.locator("#start-form").count():
        ui.page.locator("#comparison").scroll_into_view_if_needed()
        ui.screenshot("compare-not-started.png")
        with ui.page.expect_navigation():
            ui.page.get_by_role("button", name="Compute confidence intervals").click()
    ui.page.wait_for_selector("#comparison[data-state=done]", timeout=90_000)
    ui.wait_for_plots()
    keys = [c.get_attribute("data-plot") for c in ui.page.locator("#plot-grid [data-plot]").all()]
    assert keys[:2] == ["roc", "pr"]
    for card in ui.page.locator("#plot-grid [data-plot]").all():
        assert card.locator("canvas").count() >= 1
    roc = [ui.source(f"src-roc-{i}") for i in (0, 1)]
    assert all(r is not None and len(r["fpr"]) >= 2 for r in roc)
    assert ui.page.locator("#metric-table tr[data-metric=roc_auc] td.num").count() == 2
    assert ui.page.locator("#ci-table tbody tr").count() >= 1
    assert ui.page.locator(".headline[data-main]").count() == 1
    ui.hover_plots(steps=4)
    ui.screenshot("compare.png")


def test_importance_job_from_the_model_page(ui: UI, site):
    from tests.browser.site import JOBS

    site.model(JOBS["binary"])
    dataset_id = site.dataset("churn.csv")
    ui.goto("/models/churn-logit/versions/1")
    form = ui.page.locator("#importance form")
    form.locator("select[name=dataset]").select_option(dataset_id)
    form.locator("select[name=target]").select_option("churned")  # a choice among the columns, not free text
    form.locator("input[name=n_repeats]").fill("3")
    with ui.page.expect_navigation():
        form.get_by_role("button", name="Compute importance").click()
    assert re.search(r"/jobs/[0-9a-f]{32}$", ui.page.url)
    job_path = ui.page.url.removeprefix(site.base_url)
    # The job page follows the job and reloads itself once it is done.
    ui.page.wait_for_selector("#importance", timeout=90_000)
    ui.wait_for_plots(1)
    bars = [r for r in ui.renderers() if r["glyph"] == "HBar"]
    assert len(bars) == 1 and bars[0]["columns"]["name"] == bars[0]["columns"]["upper"] == 5  # five features
    assert ui.page.locator("#importance canvas").count() >= 1
    ui.page.locator("#importance details summary").click()  # the numbers, folded under the plot
    names = ui.page.locator("table.importance-table tbody tr td:nth-child(2)").all_inner_texts()
    assert sorted(names) == ["age", "spend", "support_calls", "tenure", "usage"]
    ui.hover_plots(steps=4)
    ui.screenshot("importance.png")
    ui.goto("/models/churn-logit/versions/1")  # the model card links the finished job
    assert ui.page.locator(f"table.importance-jobs a[href='{job_path}']").count() == 1
