"""Uploads in Chromium: the progress bar (bytes, speed, cancel), the duplicate offer, and the
dataset page with its distributions (screenshots to look at)."""

from __future__ import annotations

import re

from tests.browser.ui import UI
from tests.test_data_dialects import european_csv

RECORD_PROGRESS = """() => {
  const box = document.getElementById("upload-progress");
  const note = () => {
    const seen = JSON.parse(sessionStorage.getItem("progress") || "[]");
    seen.push({hidden: box.hidden, value: box.querySelector("progress").value,
               sent: box.querySelector(".sent").textContent});
    sessionStorage.setItem("progress", JSON.stringify(seen));
  };
  new MutationObserver(note).observe(box, {attributes: true, subtree: true, childList: true, characterData: true});
}"""


def test_upload_with_progress_then_the_duplicate_is_offered(ui: UI, tmp_path):
    path = tmp_path / "kredite.csv"
    european_csv(path, n=60_000)                 # ~3 MB: several progress events
    ui.goto("/datasets/upload")
    ui.page.evaluate("sessionStorage.removeItem('progress')")
    ui.page.evaluate(RECORD_PROGRESS)
    ui.page.set_input_files("input[type=file]", str(path))
    with ui.page.expect_navigation(url=re.compile(r"/datasets/[0-9a-f]{32}$"), timeout=120_000):
        ui.page.click("#upload-form button[type=submit]")
    seen = ui.page.evaluate("JSON.parse(sessionStorage.getItem('progress') || '[]')")
    assert any(not s["hidden"] for s in seen), seen
    assert any(re.search(r"of \d+(\.\d)? MB sent|MB sent", s["sent"]) for s in seen), seen
    dataset_url = ui.page.url
    ui.wait_for_plots()
    text = ui.text()
    assert "identifier" in text and "Betrag €" in text and "decimal ," in text
    ui.screenshot("dataset-distributions.png")

    ui.goto("/datasets/upload")
    ui.page.set_input_files("input[type=file]", str(path))
    ui.page.click("#upload-form button[type=submit]")
    ui.allow(r"status of 409")
    notice = ui.page.locator("#duplicate")
    notice.wait_for(timeout=120_000)
    assert "This file is already dataset kredite.csv" in notice.inner_text()
    assert notice.locator("a").get_attribute("href") == dataset_url.removeprefix(ui.base_url)
    ui.screenshot("upload-duplicate.png")
    ui.page.set_input_files("input[type=file]", str(path))
    ui.page.check("input[name=allow_duplicate]")
    with ui.page.expect_navigation(url=re.compile(r"/datasets/[0-9a-f]{32}$"), timeout=120_000):
        ui.page.click("#upload-form button[type=submit]")
    assert ui.page.url != dataset_url


def test_cancel_stops_an_upload_and_the_form_stays(ui: UI, tmp_path):
    path = tmp_path / "slow.csv"
    path.write_bytes(b"a,b\n" + b"1,2\n" * 100_000)
    held = []
    ui.page.route("**/datasets/upload", lambda route: held.append(route) if route.request.method == "POST"
                  else route.continue_())
    ui.goto("/datasets/upload")
    ui.page.set_input_files("input[type=file]", str(path))
    ui.page.click("#upload-form button[type=submit]")
    box = ui.page.locator("#upload-progress")
    box.wait_for(state="visible")
    assert ui.page.locator("#upload-form button[type=submit]").is_disabled()
    ui.page.click("#upload-progress .cancel")
    box.wait_for(state="hidden")
    assert ui.page.locator("#upload-form button[type=submit]").is_enabled()
    assert ui.page.url.endswith("/datasets/upload")
    for route in held:
        route.abort()
    ui.page.unroute("**/datasets/upload")


def test_the_model_upload_form_has_the_progress_bar(ui: UI):
    ui.goto("/models/upload")
    assert ui.page.locator("form[data-progress] #upload-progress").count() == 1
