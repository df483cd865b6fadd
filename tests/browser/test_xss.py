"""User data that looks like script stays text, in a real browser.

A dataset whose name, column names and class labels are script payloads (see tests/browser/site.py)
is uploaded, models are trained on it with scikit-learn and registered with a payload as their
description, and it is scored with its targets. Every page that shows those strings is opened in
Chromium and every plot hovered (tooltips render labels). Nothing may run: ``window.__xss`` stays
undefined, no dialog opens, no element or attribute the payloads describe exists in the page or
in any shadow root, and the payloads are visible as the literal text they are.

The test runs twice: with the app's Content-Security-Policy, and with Chromium told to ignore it
(``bypass_csp``), so it proves the escaping itself and not only the CSP behind it.
"""

from __future__ import annotations

import pytest

from tests.browser.site import (DOLLAR, FIELD, IMG, PROTO, SCRIPT, SVG, TEMPLATE, XSS_DATASET_NAME, XSS_DESCRIPTION,
                                XSS_FEATURES)
from tests.browser.ui import UI

pytestmark = pytest.mark.usefixtures("worker")


def nothing_ran(ui: UI, where: str) -> None:
    assert ui.page.evaluate("() => typeof window.__xss") == "undefined", f"a payload ran on {where}"
    assert ui.dialogs == [], f"a dialog opened on {where}: {ui.dialogs}"
    assert ui.injected() == [], f"payload markup became elements on {where}"


def visit(ui: UI, path: str, must_show: list[str]) -> str:
    ui.goto(path)
    if ui.page.locator("script[type='application/json'][data-bokeh-target]").count():
        ui.wait_for_plots()
        ui.hover_plots(steps=5)
    nothing_ran(ui, path)
    text = ui.text()
    missing = [p for p in must_show if p not in text]
    assert not missing, f"{path} does not show {missing} as text"
    return text


def tooltip_values(ui: UI, card: str) -> list[str]:
    """Hover the middle of the plot in ``card``; the values its Bokeh tooltip shows, as text."""
    canvas = ui.page.locator(f"{card} canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    tooltip = ui.page.locator(".bk-tooltip-content").filter(visible=True)  # BokehJS puts it outside the card
    for x, y in ((0.55, 0.5), (0.4, 0.3), (0.7, 0.7), (0.3, 0.6)):
        ui.page.mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y, steps=3)
        try:
            tooltip.first.wait_for(state="visible", timeout=2_000)
            break
        except Exception:  # noqa: BLE001 - between two cells: try another point
            continue
    return [v.strip() for v in tooltip.first.locator(".bk-tooltip-row-value").all_text_contents()]


def predict_labels(ui: UI) -> list[str]:
    """The class labels of the prediction page's bar chart (its one data source)."""
    return ui.page.evaluate("""() => {
      const doc = Bokeh.documents[0];
      const source = [...doc.all_models].find((m) => m.constructor.__name__ === "ColumnDataSource");
      const data = source.data;
      return Array.from(data instanceof Map ? data.get("label") : data.label);
    }""")


@pytest.mark.parametrize("csp", ["enforced", "bypassed"])
def test_script_payloads_in_names_and_labels_stay_text(open_ui, site, csp):
    multi, multi_nb, binary, importance = site.job("xss-multi", "xss-multi-nb", "xss-binary", "xss-importance")
    dataset_id = site.dataset(XSS_DATASET_NAME)
    ui = open_ui("scientist", bypass_csp=csp == "bypassed")
    ui.page.add_init_script("window.addEventListener('securitypolicyviolation', (e) => "
                            "console.error('CSP violation: ' + e.violatedDirective + ' ' + e.blockedURI))")

    visit(ui, "/datasets/", [XSS_DATASET_NAME])
    visit(ui, f"/datasets/{dataset_id}", [XSS_DATASET_NAME, *XSS_FEATURES, IMG, FIELD])
    if csp == "enforced":
        ui.screenshot("dataset-xss.png")
    visit(ui, "/models/xss-multi", [XSS_DESCRIPTION])
    visit(ui, "/models/xss-multi/versions/1", [IMG, SCRIPT, FIELD, TEMPLATE])
    visit(ui, "/jobs/", [IMG])  # the list shortens the name to 40 characters
    visit(ui, f"/jobs/{multi['id']}", [IMG, SCRIPT, FIELD, TEMPLATE, XSS_DATASET_NAME])
    shown = tooltip_values(ui, "#card-confusion")  # true class, predicted class, rows, share
    nothing_ran(ui, "the confusion matrix tooltip")
    assert shown[0] in (IMG, SCRIPT, FIELD, TEMPLATE) and shown[1] in (IMG, SCRIPT, FIELD, TEMPLATE), shown
    visit(ui, f"/jobs/{binary['id']}", [DOLLAR, SVG, FIELD])
    ui.page.locator("#threshold").focus()
    for _ in range(10):
        ui.page.keyboard.press("ArrowRight")
    nothing_ran(ui, "the binary job after moving the slider")
    visit(ui, f"/jobs/{importance['id']}", [IMG])
    ui.page.locator("#importance details summary").click()  # the table of every feature's numbers
    nothing_ran(ui, "the importance job")
    assert all(name in ui.text() for name in XSS_FEATURES)

    # The prediction page: payload feature names label the fields, payload classes label the bars.
    ui.goto("/models/xss-multi/versions/1/predict")
    fields = ui.page.locator("input[name^='f:']")
    assert fields.count() == len(XSS_FEATURES)
    for i in range(fields.count()):
        fields.nth(i).fill(f"{0.3 * i - 0.4:.1f}")
    with ui.page.expect_navigation() as navigation:
        ui.page.get_by_role("button", name="Predict", exact=True).click()
    assert navigation.value.status == 200
    ui.wait_for_plots(1)
    ui.hover_plots(steps=8)
    nothing_ran(ui, "the prediction page")
    text = ui.text()
    assert all(name in text for name in XSS_FEATURES)
    assert sorted(predict_labels(ui)) == sorted([IMG, SCRIPT, FIELD, TEMPLATE])
    if csp == "enforced":
        ui.screenshot("predict-xss.png")

    # The compare page's button starts a comparison job (the rows where the models disagree show labels).
    ui.goto(f"/jobs/compare?jobs={multi['id']}&jobs={multi_nb['id']}")
    if ui.page.locator("#start-form").count():
        with ui.page.expect_navigation():
            ui.page.get_by_role("button", name="Compute confidence intervals").click()
    ui.page.wait_for_selector("#comparison[data-state=done]", timeout=90_000)
    visit(ui, ui.page.url.removeprefix(site.base_url), [XSS_DATASET_NAME, IMG])
    assert PROTO in XSS_FEATURES  # a column named __proto__ went through every page above
