"""Every main page loads in Chromium with no console error, draws what it should, and keeps to its
Content-Security-Policy: scripts from the app only, no request and no reference outside it."""

from __future__ import annotations

import re

import pytest

from tests.browser.site import JOBS
from tests.browser.ui import UI
from tests.support import PASSWORD


def test_login_page_and_the_real_login_form(anon_ui: UI):
    anon_ui.goto("/login")
    assert anon_ui.page.locator("h1").inner_text() == "Log in"
    anon_ui.screenshot("login.png")
    anon_ui.page.fill("input[name=username]", "viewer")
    anon_ui.page.fill("input[name=password]", "not the password")
    anon_ui.allow(r"Failed to load resource: the server responded with a status of 401")
    with anon_ui.page.expect_navigation():
        anon_ui.page.click("button[type=submit]")
    assert anon_ui.page.get_by_text("Wrong username or password.").is_visible()
    anon_ui.login("viewer", PASSWORD)
    assert anon_ui.page.locator("h1").inner_text() == "Welcome, viewer"


def test_models_list_and_model_pages(ui: UI, site):
    site.model(JOBS["binary"])
    ui.goto("/models/")
    link = ui.page.get_by_role("link", name="churn-logit")
    assert link.is_visible()
    ui.screenshot("models.png")
    link.click()
    ui.page.wait_for_load_state()
    assert ui.page.url.endswith("/models/churn-logit")
    ui.goto("/models/churn-logit/versions/1")
    text = ui.text()
    assert "LogisticRegression" in text and "Model card" in text
    for tag in ("churn", "stay"):
        assert ui.page.locator("span.tag", has_text=re.compile(f"^{tag}$")).count() == 1
    ui.screenshot("model.png")


def test_prediction_page_draws_probability_bars_and_the_waterfall_of_contributions(ui: UI, site):
    site.model(JOBS["binary"])
    ui.goto("/models/churn-logit/versions/1/predict")
    assert ui.bokeh() in (None, [])  # no plot before the first prediction
    fields = ui.page.locator("input[name^='f:']")
    assert fields.count() == 5
    for i, name in enumerate(["tenure", "usage", "support_calls", "spend", "age"]):
        ui.page.fill(f"input[name='f:{name}']", str(0.5 - i / 4))
    with ui.page.expect_navigation() as navigation:
        ui.page.get_by_role("button", name="Predict", exact=True).click()
    assert navigation.value.status == 200
    ui.wait_for_plots(2)
    assert ui.canvases() >= 2
    probabilities, why = [doc["renderers"] for doc in ui.bokeh()]
    assert [r["glyph"] for r in probabilities] == ["HBar"] and probabilities[0]["columns"]["label"] == 2
    assert [r["glyph"] for r in why] == ["HBar"] and why[0]["columns"]["label"] == 7  # baseline, 5 inputs, output
    first = ui.page.locator("#prediction").inner_text()
    assert first in ("churn", "stay")
    steps = ui.source("waterfall")
    assert steps["label"][0] == "baseline" and steps["label"][-1] == "output"
    assert sum(steps["amount"][:-1]) == pytest.approx(steps["amount"][-1], abs=1e-9)  # the pushes add up
    assert "Exact: the model is linear" in ui.page.locator("#why").inner_text()

    ui.page.fill("input[name='f:tenure']", "3")  # a what-if: the previous prediction shows as thin bars
    with ui.page.expect_navigation() as navigation:
        ui.page.get_by_role("button", name="Predict", exact=True).click()
    assert navigation.value.status == 200
    ui.wait_for_plots(2)
    assert [r["glyph"] for r in ui.renderers()] == ["HBar", "HBar", "HBar", "HBar"]
    assert ui.page.get_by_text(f"Before: {first}").is_visible()
    steps = ui.source("waterfall")  # the previous row's bars stay, for every input that it had
    assert steps["before"][0] != "" and all(text != "" for text in steps["before"])
    tenure = ui.page.locator("#contributions tr", has_text="tenure")
    assert tenure.locator("td").nth(1).inner_text() == "3" and tenure.locator("td").nth(3).inner_text() != ""
    ui.hover_plots(steps=4)
    ui.screenshot("predict.png")


def test_datasets_pages(ui: UI, site):
    site.model(JOBS["binary"])
    dataset_id = site.dataset("churn.csv")
    ui.goto("/datasets/")
    ui.screenshot("datasets.png")
    with ui.page.expect_navigation():
        ui.page.get_by_role("link", name="churn.csv").first.click()
    assert ui.page.url.endswith(f"/datasets/{dataset_id}")
    columns = ui.page.locator("td code").all_inner_texts()
    assert {"tenure", "usage", "support_calls", "spend", "age", "churned"} <= set(columns)
    target = ui.page.locator("#score select[name=target]")
    assert "churned" in target.locator("option").all_inner_texts()
    assert ui.page.locator("#score select[name=model] option[value='churn-logit']").count() == 1
    ui.screenshot("dataset.png")


CSP_REQUIRED = {"script-src": ["'self'"], "default-src": ["'self'"], "object-src": ["'none'"]}
EXTERNAL_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.\-\[\]:]+[^\s"'<>)]*""")


def csp_directives(header: str) -> dict[str, list[str]]:
    directives = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            directives[words[0].lower()] = words[1:]
    return directives


@pytest.mark.usefixtures("worker")
def test_every_page_keeps_to_its_content_security_policy(open_ui, site):
    """Each page's CSP allows scripts from the app only (no inline script, no eval); its HTML names
    no URL outside the app; everything the browser loads comes from the live server (UI.check)."""
    jobs = dict(zip(("binary", "binary-nb", "multiclass", "regression", "no-target", "importance"),
                    site.job("binary", "binary-nb", "multiclass", "regression", "no-target", "importance")))
    dataset_id = site.dataset("churn.csv")
    pages = {
        None: ["/login"],
        "scientist": [
            "/", "/models/", "/models/upload", "/models/churn-logit", "/models/churn-logit/versions/1",
            "/models/churn-logit/versions/1/predict", "/datasets/", "/datasets/upload", f"/datasets/{dataset_id}",
            "/jobs/", *(f"/jobs/{job['id']}" for job in jobs.values()),
            f"/jobs/compare?jobs={jobs['binary']['id']}&jobs={jobs['binary-nb']['id']}", "/account/", "/docs/api",
        ],
        "admin": ["/admin/users"],
    }
    checked = 0
    for user, paths in pages.items():
        ui = open_ui(user)
        for path in paths:
            response = ui.goto(path)
            header = response.headers.get("content-security-policy", "")
            directives = csp_directives(header)
            for name, allowed in CSP_REQUIRED.items():
                assert directives.get(name) == allowed, f"{path}: {name} is {directives.get(name)} in {header!r}"
            assert "'unsafe-eval'" not in header and "'unsafe-inline'" not in directives.get("script-src", [])
            html = response.text()
            external = [u for u in EXTERNAL_URL.findall(html) if not u.startswith((site.base_url, "//" + site.base_url.split("//")[1]))]
            assert external == [], f"{path} refers to URLs outside the app: {external[:5]}"
            inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", html)
            assert inline == [], f"{path} has inline scripts: {inline}"
            if path.startswith("/jobs/compare"):  # looking starts no comparison job (its button does)
                assert ui.page.locator("#comparison[data-state]").count() == 1
            if ui.page.locator("script[type='application/json'][data-bokeh-target]").count():
                ui.wait_for_plots()
            checked += 1
        outside = [u for u in ui.requests if not u.startswith(site.base_url + "/")]
        assert outside == [], outside
    assert checked == sum(len(p) for p in pages.values())


def test_api_docs_page_shows_the_generated_document(ui: UI):
    """The docs page renders the generated document: an operation opens to its parameters, its
    body (with the example from the pydantic model) and its answers."""
    ui.goto("/docs/api")
    operation = ui.page.locator("#op-post_api_v1_jobs")
    operation.locator("summary").click()
    text = operation.inner_text()
    assert "ScoreRequest" in text and "iris@production" in text and "403" in text
    ui.page.locator("#op-post_api_v1_models_name_predict summary").click()
    predict = ui.page.locator("#op-post_api_v1_models_name_predict").inner_text()
    assert "MlflowRequest" in predict and "text/csv" in predict and "dataframe_split" in predict
    ui.page.locator("#op-post_api_v1_jobs").scroll_into_view_if_needed()
    ui.page.screenshot(path=str(ui.screenshots / "api-docs.png"))


def test_the_project_switcher_moves_between_projects(open_ui, site):
    """An administrator sees every project in the top bar's switcher; picking one moves the pages
    (and every link on them) under /p/<project>/; its members are managed from there, and a model
    page offers the other projects to move it into."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Project, User

    with site.app.app_context():
        if not db.session.scalar(db.select(Project).where(Project.name == "team-b")):
            db.session.add(Project(name="team-b"))
            db.session.commit()
        if not User.by_name("analyst-b"):
            db.session.add(User(username="analyst-b", role="viewer"))  # the site's users stay out of team-b
            db.session.commit()
    ui = open_ui("admin")
    ui.goto("/models/")
    switcher = ui.page.locator("details.projects")
    assert "default" in switcher.locator("summary").inner_text()
    switcher.locator("summary").click()
    ui.screenshot("project-switcher.png")
    switcher.get_by_role("link", name="team-b").click()
    ui.page.wait_for_load_state()
    assert ui.page.url.endswith("/p/team-b/")
    assert "team-b" in ui.page.locator("details.projects summary").inner_text()
    models = ui.page.get_by_role("link", name="Models")
    assert models.get_attribute("href") == "/p/team-b/models/"
    models.click()
    ui.page.wait_for_load_state()
    assert "No models yet" in ui.text()
    # the project's members, from the switcher; and "Move to project" on a model of another project
    ui.page.locator("details.projects summary").click()
    ui.page.get_by_role("link", name="Members of team-b").click()
    ui.page.wait_for_load_state()
    assert ui.page.url.endswith("/p/team-b/members/")
    ui.page.get_by_label("Username").fill("analyst-b")
    ui.page.locator("select#role").select_option("scientist")
    ui.page.get_by_role("button", name="Add or change").click()
    ui.page.wait_for_load_state()
    assert "analyst-b is scientist in team-b." in ui.text()
    assert ui.page.get_by_label("Role of analyst-b").input_value() == "scientist"
    ui.screenshot("project-members.png")
    site.model(JOBS["binary"])
    ui.goto("/models/churn-logit")
    move = ui.page.locator("form.move")
    assert move.get_by_role("option").all_inner_texts() == ["team-b"]
    move.scroll_into_view_if_needed()
    ui.screenshot("move-model.png")


def test_a_quarantined_model_says_why_and_an_admin_releases_it(open_ui, site):
    """Three host failures quarantine a version: the models page lists it, its card says why and
    offers an admin the release; released, it serves again."""
    from sqlalchemy import select

    from viewer.infra.extensions import db
    from viewer.infra.host.pool import HostCrashed
    from viewer.infra.records import ModelVersion, RegisteredModel
    from viewer.services import hosts

    name = site.model(JOBS["binary"])
    with site.app.app_context():
        found = db.session.scalar(select(ModelVersion).join(ModelVersion.model).where(RegisteredModel.name == name))
        for _ in range(3):  # what three crashes of its host record
            hosts.record_failure(found.model.project_id, found.sha256,
                                 HostCrashed(found.ref, f"The model {found.ref} crashed its host process."))
    ui = open_ui("admin")
    ui.goto("/models/")
    assert "Quarantined" in ui.text() and f"{name}/1" in ui.text()
    ui.screenshot("quarantined-models.png")
    ui.goto(f"/models/{name}/versions/1")
    assert "crashed 3 times" in ui.text()
    ui.screenshot("quarantined-card.png")
    ui.page.get_by_role("button", name="Release it").click()
    ui.page.wait_for_load_state()
    assert f"Released {name}/1" in ui.text() and "Quarantined since" not in ui.text()
