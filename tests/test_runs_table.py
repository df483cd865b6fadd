"""The jobs list is a runs table: model and version, dataset, target, the main metrics from the
stored results (accuracy / ROC AUC, RMSE / R²) and duration, sorted and filtered in SQL with
the same query parameters on the page and in the API. The home page and a job's page name
its model and dataset."""

from __future__ import annotations

import re
from datetime import timedelta

from viewer.infra.extensions import db
from viewer.infra.records import Dataset, Job, User, utcnow


def add_runs(app) -> dict[str, str]:
    """Finished scoring jobs of two classifiers and a regressor, and one job still running."""
    with app.app_context():
        user = User.by_name("scientist")
        jan = Dataset(name="loans-january", state="ready", uploaded_by=user)
        db.session.add(jan)
        now = utcnow()

        def run(name, model, kind, metrics, seconds, minutes_ago, target="defaulted", state="done"):
            started = now - timedelta(minutes=minutes_ago)
            job = Job(kind="score", state=state, dataset=jan, created_by=user,
                      params={"model": f"{model}/2", "model_name": model, "model_version": 2, "kind": kind,
                              "dataset": "loans-january", "target": target,
                              "classes": [0, 1] if kind == "classifier" else None},
                      result={"metrics": metrics, "aggregates": {}} if state == "done" else None,
                      created_at=started, started_at=started,
                      finished_at=started + timedelta(seconds=seconds) if state == "done" else None)
            db.session.add(job)
            return name, job

        made = dict([
            run("forest", "forest", "classifier", {"task": "binary", "n": 100, "accuracy": 0.91, "roc_auc": 0.955}, 75, 1),
            run("logit", "logit", "classifier", {"task": "binary", "n": 100, "accuracy": 0.87, "roc_auc": 0.962}, 4, 2),
            run("ridge", "ridge", "regressor", {"task": "regression", "n": 100, "rmse": 1234.5, "r2": 0.71}, 30, 3,
                target="amount"),
            run("running", "forest", "classifier", None, 0, 0, state="running"),
        ])
        db.session.commit()
        return {name: job.id for name, job in made.items()}


def ids(client, headers, query: str) -> list[str]:
    answer = client.get(f"/api/v1/jobs?{query}", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return [j["id"] for j in answer.get_json()["jobs"]]


def test_the_api_sorts_by_main_metrics_and_duration_with_missing_values_last(app, client, auth):
    runs = add_runs(app)
    headers = auth.bearer("viewer")
    assert ids(client, headers, "sort=-accuracy")[:2] == [runs["forest"], runs["logit"]]
    assert ids(client, headers, "sort=accuracy")[:2] == [runs["logit"], runs["forest"]]  # the others: last
    assert ids(client, headers, "sort=-roc_auc")[:2] == [runs["logit"], runs["forest"]]
    assert ids(client, headers, "sort=rmse")[0] == runs["ridge"]
    assert ids(client, headers, "sort=-duration")[:3] == [runs["forest"], runs["ridge"], runs["logit"]]
    assert ids(client, headers, "sort=duration")[-1] == runs["running"]  # no duration yet: last either way
    body = client.get("/api/v1/jobs?sort=-accuracy&limit=1", headers=headers).get_json()
    assert body["jobs"][0]["main_metrics"] == {"accuracy": 0.91, "roc_auc": 0.955}
    assert body["jobs"][0]["duration_seconds"] == 75.0 and "sort=-accuracy" in body["next"]


def test_the_api_filters_by_task_and_target(app, client, auth):
    runs = add_runs(app)
    headers = auth.bearer("viewer")
    assert ids(client, headers, "task=regressor") == [runs["ridge"]]
    assert set(ids(client, headers, "target=defaulted")) == {runs["forest"], runs["logit"], runs["running"]}
    assert ids(client, headers, "task=classifier&state=done&sort=-roc_auc") == [runs["logit"], runs["forest"]]
    answer = client.get("/api/v1/jobs?task=clustering", headers=headers)
    assert answer.status_code == 400


def test_the_runs_page_shows_metrics_and_duration_and_sorts_by_a_header(app, client, auth):
    runs = add_runs(app)
    auth.login("viewer")
    page = client.get("/jobs/").get_data(as_text=True)
    for header in ("Accuracy", "ROC AUC", "RMSE", "R²", "Duration", "Model", "Dataset", "Target"):
        assert f">{header}" in page, header
    row = re.search(rf'<tr data-job="{runs["forest"]}">(.*?)</tr>', page, re.S).group(1)
    assert "<code>forest</code> <span class=\"muted\">v2</span>" in row and "loans-january" in row
    assert '<td class="num" data-metric="accuracy">0.9100</td>' in row and "1 min 15 s" in row
    link = re.search(r'<a href="([^"]+)" data-sort="roc_auc">', page).group(1).replace("&amp;", "&")
    assert link.endswith("sort=-roc_auc")  # best first on the first click
    ranked = client.get(link).get_data(as_text=True)
    assert ranked.index(runs["logit"]) < ranked.index(runs["forest"]) and 'aria-sort="descending"' in ranked
    rmse = re.search(r'<a href="([^"]+)" data-sort="rmse">', page).group(1)
    assert rmse.endswith("sort=rmse")  # lower is better: ascending first
    only = client.get("/jobs/?task=regressor").get_data(as_text=True)
    assert runs["ridge"] in only and runs["forest"] not in only
    odd = client.get("/jobs/?sort=bogus")
    assert odd.status_code == 200 and "Unknown sort" in odd.get_data(as_text=True)


def test_home_and_job_pages_name_model_dataset_and_main_metric(app, client, auth):
    runs = add_runs(app)
    auth.login("viewer")
    home = client.get("/").get_data(as_text=True)
    recent = home[home.index('id="recent-jobs"'):]
    assert "<code>forest/2</code>" in recent and "loans-january" in recent and "ROC AUC 0.9550" in recent
    assert "RMSE 1,234" in recent
    page = client.get(f"/jobs/{runs['forest']}").get_data(as_text=True)
    assert "<title>forest/2 on loans-january" in page
    assert re.search(r"<h1>forest/2 on loans-january", page)
