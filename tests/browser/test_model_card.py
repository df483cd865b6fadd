"""The model card in Chromium: nested hyperparameters grouped by step with the changed ones
highlighted, and usage snippets behind tabs with a working copy button (screenshots of both)."""

from __future__ import annotations

import io

import joblib
from playwright.sync_api import expect

from tests.browser.ui import UI
from tests.realistic import loan_table
from tests.test_model_card import loan_boosting, loan_logit


def _upload(site, model, name: str) -> None:
    if name in site.models:
        return
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    response = site.client.post("/api/v1/models", headers=site.headers, content_type="multipart/form-data",
                                data={"file": (io.BytesIO(buffer.getvalue()), f"{name}.joblib"), "name": name,
                                      "description": "Loan defaults: numbers, strings and missing values"})
    assert response.status_code == 201, response.get_json()
    site.models.add(name)


def test_model_card_of_a_column_transformer_pipeline(ui: UI, site):
    _upload(site, loan_logit(loan_table(600)), "loans-logit")
    ui.context.grant_permissions(["clipboard-read", "clipboard-write"])
    ui.goto("/models/loans-logit/versions/1")
    page = ui.page
    params = page.locator("table.params")
    assert params.locator("tr.changed").get_by_text("clf__C", exact=True).count() == 1
    assert params.locator("tr.changed").get_by_text("prep__num__imputer__strategy", exact=True).count() == 1
    assert params.locator("tr.unchanged").get_by_text("clf__tol", exact=True).count() == 1
    steps = params.locator("tr.step th").all_inner_texts()
    assert "prep__num__imputer SimpleImputer · 1 changed" in steps, steps  # names as written, not upper-cased
    ui.screenshot("model-card-pipeline.png")

    page.locator("#only-changed").check()  # only the values the author chose
    assert not params.get_by_text("clf__tol", exact=True).is_visible()
    assert params.get_by_text("clf__C", exact=True).is_visible()
    page.locator("#hyperparameters").screenshot(path=str(ui.screenshots / "model-card-changed-only.png"))

    usage = page.locator("#usage")
    assert usage.locator("#snippet-curl").is_visible() and not usage.locator("#snippet-python").is_visible()
    usage.get_by_role("link", name="Python", exact=True).click()
    assert usage.locator("#snippet-python").is_visible()
    usage.locator("[data-pane='usage-python'] button.copy").click()
    expect(usage.locator("[data-pane='usage-python'] button.copy")).to_have_text("Copied")  # written asynchronously
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("import requests") and "/api/v1/models/loans-logit/versions/1/predict" in copied
    assert usage.get_by_role("link", name="create a token").get_attribute("href") == "/account/"
    usage.screenshot(path=str(ui.screenshots / "model-card-usage.png"))


def test_model_card_of_a_gradient_boosting_pipeline(ui: UI, site):
    _upload(site, loan_boosting(loan_table(600)), "loans-gbm")
    ui.goto("/models/loans-gbm/versions/1")
    params = ui.page.locator("table.params")
    for name in ("gbm__n_estimators", "gbm__learning_rate", "gbm__max_depth", "gbm__random_state",
                 "prep__cat__fill__strategy", "prep__cat__codes__handle_unknown"):
        assert params.locator("tr.changed").get_by_text(name, exact=True).count() == 1, name
    ui.page.get_by_role("link", name="viewer.client").click()
    client_code = ui.page.locator("#snippet-client").inner_text()
    assert "Client(" in client_code and "predict_proba(rows, model='loans-gbm/1')" in client_code
    ui.screenshot("model-card-boosting.png")
