"""A finished scoring job's page: its Bokeh plots (json_items in data blocks, no inline script),
the threshold slider's table, the per-plot CSV downloads, and that page weight does not grow with
the counts in the aggregates (a real 10M-row job: bench/pages.py).
Jobs run through a real worker process on the session's broker."""

from __future__ import annotations

import csv
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge

from tests.plots.test_results import _scaled
from tests.test_scoring import follow, upload_frame, upload_model

XSS = "<img src=x onerror=alert(1)>"
FORMULA = "=1+2"
ROWS = 1500
JSON_ITEM = re.compile(r'<script type="application/json" data-bokeh-target="(plot-[a-z_]+)">(.*?)</script>', re.S)


@pytest.fixture
def app_config():
    return {"ROW_GROUP_ROWS": 500}


def score(client, auth, model, frame, name, target):
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, name)
    dataset = upload_frame(client, scientist, frame)
    response = client.post("/api/v1/jobs", headers=scientist,
                           json={"model": name, "dataset": dataset["id"], "target": target})
    assert response.status_code == 202, response.get_json()
    job = follow(client, scientist, response.get_json()["id"], timeout=240)  # a shared machine can be slow
    assert job["state"] == "done", job
    aggregates = client.get(f"/api/v1/jobs/{job['id']}/aggregates", headers=scientist).get_json()
    return job["id"], aggregates


def plot_items(page: str) -> dict[str, dict]:
    items = {target: json.loads(body) for target, body in JSON_ITEM.findall(page)}
    for target, item in items.items():
        root = item["doc"]["roots"][0]
        assert root["attributes"]["name"] == "fig-" + target.removeprefix("plot-")
    return items


def names_in(item: dict) -> set[str]:
    """Every Bokeh model name in a json_item."""
    found = set()

    def walk(obj):
        if isinstance(obj, dict):
            if obj.get("type") == "object" and isinstance(obj.get("attributes", {}).get("name"), str):
                found.add(obj["attributes"]["name"])
            for value in obj.values():
                walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    walk(item)
    return found


def check_page_shell(page: str) -> None:
    """BokehJS from our own versioned URL (core only: the controls are plain HTML), no inline
    script, no CDN, and the page's script for the controls."""
    import bokeh

    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert f"/assets/bokeh/{bokeh.__version__}/bokeh.min.js" in scripts
    assert not any("bokeh-widgets" in s or "bokeh-tables" in s or "://" in s for s in scripts), scripts
    assert "/static/embed.js" in scripts and "/static/results.js" in scripts
    assert re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>", page) == []
    assert "CustomJS" not in page and "cdn.bokeh.org" not in page


def read_csv(response) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))


def test_binary_job_page_plots_slider_and_csv(client, auth, worker):
    X, y = make_classification(n_samples=ROWS, n_features=5, n_informative=3, random_state=11)
    labels = np.array([XSS, FORMULA], dtype=object)[y]  # user data as class labels
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(5)])
    model = LogisticRegression().fit(frame, labels)
    job_id, aggregates = score(client, auth, model, frame.assign(label=labels), "churn", "label")

    auth.login("viewer")
    response = client.get(f"/jobs/{job_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert XSS not in page  # escaped everywhere (\u003c in JSON blocks, &lt; in HTML)
    check_page_shell(page)
    items = plot_items(page)
    assert list(items) == ["plot-roc", "plot-pr", "plot-confusion", "plot-score_distribution", "plot-calibration",
                           "plot-gain", "plot-lift"]
    assert {"src-roc", "src-threshold-roc"} <= names_in(items["plot-roc"])
    assert {"src-pr", "src-threshold-pr"} <= names_in(items["plot-pr"])
    assert {"fig-confusion", "src-confusion"} <= names_in(items["plot-confusion"])
    assert "threshold-score" in names_in(items["plot-score_distribution"])
    for key in ("roc", "pr", "confusion", "calibration", "gain", "lift", "score_distribution"):
        assert f'id="card-{key}"' in page and f'href="/jobs/{job_id}/plots/{key}.csv"' in page

    # the slider reads the threshold table from a JSON block; the numbers beside it start at 0.50
    table = json.loads(re.search(r'<script type="application/json" id="threshold-table">(.*?)</script>', page,
                                 re.S).group(1))
    assert table["thresholds"] == aggregates["threshold_table"]["thresholds"]
    assert table["tp"] == aggregates["threshold_table"]["tp"] and table["thresholds"][table["index"]] == 0.5
    assert re.search(r'<input type="range" id="threshold" min="0" max="100" step="1"\s+value="50"', page)
    i = table["index"]
    tp, fp, fn = table["tp"][i], table["fp"][i], table["fn"][i]
    assert f'data-at-threshold="precision">{tp / (tp + fp):.4f}<' in page
    assert f'data-at-threshold="recall">{tp / (tp + fn):.4f}<' in page
    assert 'id="cm-mode-counts"' in page and 'id="cm-mode-row"' in page

    # CSV per plot: the plot's own data; formula-like labels neutralised
    roc = read_csv(client.get(f"/jobs/{job_id}/plots/roc.csv"))
    assert [float(r["fpr"]) for r in roc] == aggregates["roc"]["fpr"]
    scores = read_csv(client.get(f"/jobs/{job_id}/plots/score_distribution.csv"))
    assert {r["true_class"] for r in scores} == {XSS, "'" + FORMULA}
    assert sum(int(r["count"]) for r in scores) == ROWS
    thresholds = read_csv(client.get(f"/jobs/{job_id}/plots/confusion.csv"))
    assert len(thresholds) == 101 and int(thresholds[50]["tp"]) == tp
    for bad in ("nope", "ROC", "roc%2F..%2Fx", "a" * 60):
        assert client.get(f"/jobs/{job_id}/plots/{bad}.csv").status_code == 404
    assert client.get(f"/jobs/{'0' * 32}/plots/roc.csv").status_code == 404

    auth.logout()
    anonymous = client.get(f"/jobs/{job_id}/plots/roc.csv")
    assert anonymous.status_code in (302, 401) and "fpr" not in anonymous.get_data(as_text=True)


def test_multiclass_job_page(client, auth, worker):
    X, y = make_classification(n_samples=ROWS, n_features=6, n_informative=4, n_classes=3, random_state=12)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(6)])
    species = np.array(["setosa", "versicolor", "virginica"])[y]
    model = LogisticRegression(max_iter=500).fit(frame, species)
    job_id, aggregates = score(client, auth, model, frame.assign(species=species), "iris", "species")

    auth.login("viewer")
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    check_page_shell(page)
    items = plot_items(page)
    assert list(items) == ["plot-confusion", "plot-roc_ovr", "plot-per_class"]
    assert {"src-roc_ovr-0", "src-roc_ovr-1", "src-roc_ovr-2"} <= names_in(items["plot-roc_ovr"])
    assert 'id="cm-mode-row"' in page and 'id="threshold"' not in page and 'id="threshold-table"' not in page
    cells = read_csv(client.get(f"/jobs/{job_id}/plots/confusion.csv"))
    matrix = aggregates["confusion_matrix"]["matrix"]
    assert [int(c["count"]) for c in cells] == [c for row in matrix for c in row]
    per_class = read_csv(client.get(f"/jobs/{job_id}/plots/per_class.csv"))
    assert [r["class"] for r in per_class] == ["setosa", "versicolor", "virginica"]
    assert client.get(f"/jobs/{job_id}/plots/roc.csv").status_code == 404  # binary-only plot


def test_regression_job_page(client, auth, worker):
    X, y = make_regression(n_samples=ROWS, n_features=4, noise=10, random_state=13)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = Ridge().fit(frame, y)
    job_id, aggregates = score(client, auth, model, frame.assign(price=y), "price", "price")

    auth.login("viewer")
    page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    check_page_shell(page)
    assert list(plot_items(page)) == ["plot-predicted_vs_actual", "plot-residuals_vs_predicted",
                                      "plot-residual_histogram", "plot-error_by_decile", "plot-prediction_histogram"]
    assert 'class="exactness is-exact"' in page and 'id="threshold"' not in page
    points = read_csv(client.get(f"/jobs/{job_id}/plots/predicted_vs_actual.csv"))
    assert len(points) == ROWS and set(points[0]) == {"actual", "predicted"}
    deciles = read_csv(client.get(f"/jobs/{job_id}/plots/error_by_decile.csv"))
    assert [int(r["decile"]) for r in deciles] == list(range(1, 11))
    assert sum(int(r["count"]) for r in deciles) == ROWS


def add_done_job(app, aggregates, metrics=None) -> str:
    """A finished scoring job with the given result, as the finalize step stores it."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Job

    with app.app_context():
        job = Job(kind="score", state="done", params={"model": "m/1", "dataset": "big.parquet", "target": "y",
                                                      "kind": "classifier"},
                  result={"metrics": metrics, "aggregates": aggregates}, progress_done=aggregates["n"],
                  progress_total=aggregates["n"])
        db.session.add(job)
        db.session.commit()
        return job.id


def test_page_weight_does_not_grow_with_the_counts_in_the_aggregates(app, client, auth):
    """A job page drawn from aggregates whose counts are scaled to 10M rows (``_scaled``) weighs
    what the 200k-row one weighs, well under 2 MB. (A real 10M-row job: bench/pages.py.)"""
    auth.login("viewer")
    sizes = {}
    for n in (200_000, 10_000_000):
        job_id = add_done_job(app, _scaled(n))
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200
        page = response.get_data(as_text=True)
        assert len(plot_items(page)) == 7
        sizes[n] = len(response.data)
    assert sizes[10_000_000] < 2 * 2**20, sizes
    assert sizes[10_000_000] < 1.2 * sizes[200_000], sizes


def test_plot_routes_refuse_what_is_not_a_finished_scoring_job(app, client, auth):
    from viewer.infra.extensions import db
    from viewer.infra.records import Job

    with app.app_context():
        running = Job(kind="score", state="running", params={})
        odd = Job(kind="score", state="done", params={}, result={"metrics": None, "aggregates": {"task": "?"}})
        db.session.add_all([running, odd])
        db.session.commit()
        running_id, odd_id = running.id, odd.id
    auth.login("viewer")
    assert client.get(f"/jobs/{running_id}/plots/roc.csv").status_code == 409
    assert client.get(f"/jobs/{odd_id}/plots/roc.csv").status_code == 404
    page = client.get(f"/jobs/{odd_id}")
    assert page.status_code == 200 and "No plots for this job." in page.get_data(as_text=True)
    assert "/static/results.js" not in page.get_data(as_text=True)
