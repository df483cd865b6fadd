"""The runs table in Chromium: metric columns, sorting by a header, and the compare control's
inline validation (jobs that cannot be compared say why beside the button; the first ticked is
the baseline). Screenshots: runs.png, runs-compare-refused.png, compare-datasets.png, job-titled.png."""

from __future__ import annotations

import pytest

from tests.browser.ui import UI

pytestmark = pytest.mark.usefixtures("worker")


def test_runs_table_sorts_and_validates_a_comparison_inline(ui: UI, site):
    logit, nb, ridge = site.job("binary", "binary-nb", "regression")
    ui.goto("/jobs/?kind=score")
    headers = [h.strip() for h in ui.page.locator("#job-list thead th").all_text_contents()]
    for name in ("Model", "Dataset", "Target", "Accuracy", "ROC AUC", "RMSE", "R²", "Duration"):
        assert any(h.startswith(name) for h in headers), (name, headers)
    ui.page.locator('a[data-sort="roc_auc"]').click()
    ui.page.wait_for_url("**sort=-roc_auc**")
    cells = ui.page.locator("#job-list td[data-metric=roc_auc]").all_text_contents()
    values = [float(c) for c in cells if c.strip()]
    assert values == sorted(values, reverse=True) and len(values) >= 2
    ui.screenshot("runs.png")

    button = ui.page.locator("#compare-button")
    hint = ui.page.locator("#compare-hint")
    ui.page.locator(f'input[value="{nb["id"]}"]').check()
    assert button.is_disabled()
    ui.page.locator(f'input[value="{ridge["id"]}"]').check()  # another dataset, target and task
    assert button.is_disabled() and "compare jobs scored against the same target" in hint.text_content()
    assert "error" in hint.get_attribute("class")
    ui.screenshot("runs-compare-refused.png")
    ui.page.locator(f'input[value="{ridge["id"]}"]').uncheck()
    ui.page.locator(f'input[value="{logit["id"]}"]').check()
    assert button.is_enabled() and "Baseline: churn-nb/1" in hint.text_content()
    button.click()
    ui.page.wait_for_url("**/jobs/compare?**")
    assert ui.page.url.index(nb["id"]) < ui.page.url.index(logit["id"])  # the first ticked leads
    assert "churn-nb/1" in ui.page.locator("#models tr").nth(1).text_content()


def test_one_model_on_two_datasets_from_the_runs_table(ui: UI, site):
    """churn-logit on churn.csv (January) and churn-feb.csv (February): the runs table allows the
    pair (and refuses a third job across datasets, saying why); the compare page says it compares
    datasets, gives the main metric's difference with its interval, and has no disagreement table."""
    jan, feb, nb = site.job("binary", "binary-feb", "binary-nb")
    ui.goto("/jobs/?kind=score")
    button, hint = ui.page.locator("#compare-button"), ui.page.locator("#compare-hint")
    ui.page.locator(f'input[value="{jan["id"]}"]').check()
    ui.page.locator(f'input[value="{feb["id"]}"]').check()
    assert button.is_enabled() and "Compares datasets: churn-logit/1 on churn.csv" in hint.text_content()
    ui.page.locator(f'input[value="{nb["id"]}"]').check()
    assert button.is_disabled() and "one model on two datasets (tick two jobs)" in hint.text_content()
    ui.page.locator(f'input[value="{nb["id"]}"]').uncheck()
    button.click()
    ui.page.wait_for_url("**/jobs/compare?**")
    assert ui.page.locator("h1").text_content().strip() == "Comparing two datasets"
    ui.page.locator("#start-form button").click()
    ui.page.wait_for_selector("#headline", timeout=60_000)
    headline = ui.page.locator("#headline").text_content()
    assert "churn-logit/1 on churn.csv vs churn-feb.csv: ROC AUC −0." in headline
    assert ui.page.locator("#disagreement").count() == 0
    assert "not the same rows" in ui.page.locator("#no-disagreement").text_content()
    ui.wait_for_plots()
    ui.screenshot("compare-datasets.png")


def test_a_job_page_names_its_model_and_dataset(ui: UI, site):
    job = site.job("binary")
    ui.goto(f"/jobs/{job['id']}")
    assert ui.page.title().startswith("churn-logit/1 on churn.csv")
    assert ui.page.locator("h1").text_content().strip().startswith("churn-logit/1 on churn.csv")
    ui.wait_for_plots()
    ui.screenshot("job-titled.png")
