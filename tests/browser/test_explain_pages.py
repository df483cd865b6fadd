"""The row explorer and the partial dependence page in Chromium: their plots draw, the numbers
beside them are the job's, and nothing breaks the page's Content-Security-Policy."""

from __future__ import annotations

import pytest

from tests.browser.site import JOBS
from tests.browser.ui import UI
from tests.support import wait_for_job

pytestmark = pytest.mark.usefixtures("worker")


def test_the_row_explorer_draws_why_and_opens_the_what_if(ui: UI, site):
    job = site.job("binary")
    ui.goto(f"/jobs/{job['id']}")
    ui.page.fill("#find-row input[name=value]", "7")
    with ui.page.expect_navigation():
        ui.page.locator("#find-row button").click()
    assert ui.page.locator("h1").inner_text().startswith("Row 7")
    ui.wait_for_plots(1)
    steps = ui.source("waterfall")
    assert steps["label"][0] == "baseline" and steps["label"][-1] == "output"
    assert sum(steps["amount"][:-1]) == pytest.approx(steps["amount"][-1], abs=1e-9)
    ui.hover_plots(steps=4)
    ui.screenshot("row-explorer.png")
    with ui.page.expect_navigation():
        ui.page.locator("#what-if").click()
    assert "/predict?" in ui.page.url and ui.page.locator("input[name='f:tenure']").input_value() != ""


def test_the_partial_dependence_page_draws_each_input_and_the_pair(ui: UI, site):
    site.model(JOBS["binary"])
    dataset = site.dataset("churn.csv")
    started = site.client.post("/api/v1/jobs", headers=site.headers, json={
        "kind": "dependence", "model": "churn-logit", "dataset": dataset, "features": ["tenure", "usage"],
        "pair": ["tenure", "usage"], "grid": 10})
    assert started.status_code in (200, 202), started.get_json()
    job = wait_for_job(site.client, site.headers, started.get_json()["id"], timeout=120)
    assert job["state"] == "done", job["error"]
    ui.goto(f"/jobs/{job['id']}")
    ui.wait_for_plots(3)
    tenure = ui.source("pd-tenure")
    assert len(tenure["x"]) == 10 and tenure["y"] == pytest.approx(job["result"]["features"][0]["average"][0])
    assert len(ui.source("pd-pair")["x"]) == 100
    ui.hover_plots(steps=4)
    ui.screenshot("partial-dependence.png")
