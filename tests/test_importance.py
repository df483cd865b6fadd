"""Permutation importance jobs end to end: from the API, the page and the client, through a real
worker process on a real broker; the result, the job page's plot, the model page's link; refusals."""

from __future__ import annotations

import io
import json
import re
import time
from html import unescape

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression

from tests.conftest import AuthActions
from tests.support import post_form, upload_model
from viewer.client import Client

ROWS = 1200
FEATURES = ["a", "b", "c", "d"]
FINAL = ("done", "error", "cancelled")


@pytest.fixture
def app_config():  # several row groups, so the sample is drawn across them
    return {"ROW_GROUP_ROWS": 300}


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(n_samples=ROWS, n_features=4, n_informative=2, n_redundant=0, random_state=5)
    frame = pd.DataFrame(X, columns=FEATURES)
    model = LogisticRegression().fit(frame, y)
    return frame.assign(label=y), model


def register(client, headers, model, name="logit"):
    return upload_model(client, headers, model, name)


def upload(client, headers, frame, filename="labelled.csv") -> str:
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(frame.to_csv(index=False).encode()), filename)})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def follow(client, headers, job_id, timeout=120) -> dict:
    """Poll a job until it ends, checking that progress only rises."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
        seen.append(body["progress"]["done"])
        if body["state"] in FINAL:
            assert seen == sorted(seen), seen
            return body
        time.sleep(0.1)
    raise TimeoutError(body)


def page_text(response) -> str:
    return unescape(response.get_data(as_text=True))


def test_importance_from_the_api_equals_scikit_learn_and_shows_on_the_pages(client, auth, worker, problem):
    frame, model = problem
    scientist = auth.bearer("scientist")
    register(client, scientist, model)
    dataset = upload(client, scientist, frame)
    response = client.post("/api/v1/jobs", headers=scientist,
                           json={"kind": "importance", "model": "logit", "dataset": dataset, "target": "label",
                                 "n_repeats": 3, "seed": 11})
    assert response.status_code == 202, response.get_json()
    assert response.get_json()["kind"] == "importance"
    job = follow(client, scientist, response.get_json()["id"])
    assert job["state"] == "done", job
    result = job["result"]
    assert result["scoring"] == "roc_auc" and result["n_repeats"] == 3 and result["seed"] == 11
    assert result["n_sample"] == ROWS and result["exact"]  # fewer rows than the default sample: all of them
    total = ROWS * (1 + len(FEATURES) * 3)  # rows predicted: the baseline, then each feature's repeats
    assert job["progress"] == {"done": total, "total": total, "fraction": 1.0}

    expected = permutation_importance(model, frame[FEATURES], frame["label"], scoring="roc_auc", n_repeats=3,
                                      random_state=11, n_jobs=1)
    got = {f["name"]: f for f in result["features"]}
    for i, name in enumerate(FEATURES):
        assert got[name]["mean"] == pytest.approx(expected.importances_mean[i], abs=1e-9)
        assert got[name]["std"] == pytest.approx(expected.importances_std[i], abs=1e-9)
        assert got[name]["values"] == pytest.approx(list(expected.importances[i]), abs=1e-9)
    ranked = [f["name"] for f in result["features"]]
    assert ranked == [FEATURES[i] for i in np.argsort(-expected.importances_mean, kind="stable")]

    # The same work again is the same job; other options or force make a new one.
    same = client.post("/api/v1/jobs", headers=scientist, json={"kind": "importance", "model": "logit/1",
                                                                "dataset": dataset, "target": "label",
                                                                "n_repeats": 3, "seed": 11})
    assert same.status_code == 200 and same.get_json()["id"] == job["id"]
    forced = client.post("/api/v1/jobs", headers=scientist, json={"kind": "importance", "model": "logit",
                                                                  "dataset": dataset, "target": "label",
                                                                  "n_repeats": 3, "seed": 11, "force": True})
    assert forced.status_code == 202 and forced.get_json()["id"] != job["id"]
    accuracy = client.post("/api/v1/jobs", headers=scientist, json={"kind": "importance", "model": "logit",
                                                                    "dataset": dataset, "target": "label",
                                                                    "scoring": "accuracy", "max_rows": 500})
    assert accuracy.status_code == 202
    done = follow(client, scientist, accuracy.get_json()["id"])
    assert done["state"] == "done" and done["result"]["n_sample"] == 500 and not done["result"]["exact"]
    assert done["result"]["scoring_label"] == "accuracy"
    follow(client, scientist, forced.get_json()["id"])

    # The job page draws the plot from a JSON data block (no inline script) with the names as data.
    auth.login("viewer")
    shown = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "Feature importance" in shown and 'data-bokeh-target="importance-plot"' in shown
    assert "<script>" not in shown and "/static/embed.js" in shown and "/assets/bokeh/" in shown
    item = json.loads(unescape(re.search(r'data-bokeh-target="importance-plot">(.*?)</script>', shown, re.S)
                               .group(1)))
    assert item["target_id"] == "importance-plot"
    assert "ROC AUC" in shown and f"all {ROWS:,} rows with a target" in shown
    top = result["features"][0]["name"]
    assert re.search(rf"<td>1</td><td><code>{top}</code></td>", shown)

    # The model version page links the finished jobs, with their top features.
    version_page = page_text(client.get("/models/logit/versions/1"))
    assert f'href="/jobs/{job["id"]}"' in version_page
    assert re.search(rf'<span class="tag" title="mean [^"]+">{top} <span class="muted">', version_page)
    assert "Compute importance" not in version_page  # a viewer gets no form


def test_importance_from_the_page(client, auth, worker, problem):
    frame, model = problem
    register(client, auth.bearer("scientist"), model)
    dataset = upload(client, auth.bearer("scientist"), frame, "train.csv")
    auth.login("scientist")
    page = "/models/logit/versions/1"
    shown = page_text(client.get(page))
    assert "Compute importance" in shown and f'<option value="{dataset}">train.csv ({ROWS:,} rows)</option>' in shown
    importance_form = shown[shown.index('id="importance"'):shown.index('id="dependence"')]
    assert '<option value="label">' in importance_form  # suggested target; the model's inputs are not
    assert '<option value="a">' not in importance_form
    action = "/models/logit/versions/1/importance"

    response = post_form(client, auth, page, action, dataset=dataset, target="label", n_repeats="2", max_rows="800")
    assert response.status_code == 302, page_text(response)
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    assert "Computing feature importance of logit/1 on train.csv" in page_text(client.get(f"/jobs/{job_id}"))
    job = follow(client, auth.bearer("scientist"), job_id)
    assert job["state"] == "done" and job["result"]["n_sample"] == 800 and job["params"]["n_repeats"] == 2
    again = post_form(client, auth, page, action, dataset=dataset, target="label", n_repeats="2", max_rows="800")
    assert again.headers["Location"].endswith(f"/jobs/{job_id}")
    assert "already exists: this is that job (done)" in page_text(client.get(again.headers["Location"]))
    assert f'href="/jobs/{job_id}"' in client.get(page).get_data(as_text=True)

    # Refusals are shown beside their fields, and nothing starts.
    missing = post_form(client, auth, page, action, dataset=dataset, target="", n_repeats="5", max_rows="")
    assert missing.status_code == 400 and "Name the column with the true values." in page_text(missing)
    unknown = post_form(client, auth, page, action, dataset=dataset, target="zzz", n_repeats="5")
    assert unknown.status_code == 400
    assert re.search(r"The dataset has no column 'zzz'.</span>", page_text(unknown))
    feature = post_form(client, auth, page, action, dataset=dataset, target="a")
    assert feature.status_code == 400 and "'a' is one of the model's inputs, not a target." in page_text(feature)
    no_dataset = post_form(client, auth, page, action, dataset="0" * 32, target="label")
    assert no_dataset.status_code == 404 and "No such dataset." in page_text(no_dataset)
    too_many = post_form(client, auth, page, action, dataset=dataset, target="label", n_repeats="1000")
    assert too_many.status_code == 400 and "Number must be between 1 and 100." in page_text(too_many)
    no_csrf = client.post(action, data={"dataset": dataset, "target": "label"})
    assert no_csrf.status_code == 400


def test_refusals_and_roles(app, client, auth, problem):
    frame, model = problem
    scientist = auth.bearer("scientist")
    register(client, scientist, model)
    dataset = upload(client, scientist, frame)

    def post(body, headers=scientist):
        return client.post("/api/v1/jobs", headers=headers, json={"kind": "importance", "model": "logit",
                                                                  "dataset": dataset, **body})

    def refused(response, status, code):
        assert response.status_code == status, response.get_json()
        assert response.get_json()["error_code"] == code, response.get_json()
        return response.get_json()["message"]

    assert "needs a target column" in refused(post({}), 400, "target_required")
    assert "no column 'nope'" in refused(post({"target": "nope"}), 400, "unknown_target")
    assert refused(post({"target": "label", "dataset": "f" * 32}), 404, "dataset_not_found")
    assert refused(post({"target": "label", "model": "nope"}), 404, "model_not_found")
    assert "scores a regressor" in refused(post({"target": "label", "scoring": "r2"}), 400, "bad_scoring")
    assert "Unknown scoring" in refused(post({"target": "label", "scoring": "<b>x</b>"}), 400, "bad_scoring")
    assert "n_repeats must be between 1 and 100" in refused(post({"target": "label", "n_repeats": 0}), 400,
                                                             "bad_option")
    assert "'max_rows' should be a valid integer" in refused(post({"target": "label", "max_rows": "9"}), 400, "bad_request")
    assert "'n_repeats' should be a valid integer" in refused(post({"target": "label", "n_repeats": True}), 400,
                                                       "bad_request")
    assert "'kind' should be 'score', 'importance' or 'dependence'" in refused(post({"target": "label", "kind": "explain"}), 400, "bad_request")
    assert refused(post({"target": "label"}, auth.bearer("viewer")), 403, "forbidden")

    auth.login("viewer")
    assert post_form(client, auth, "/models/logit/versions/1", "/models/logit/versions/1/importance",
                     dataset=dataset, target="label").status_code == 403
    from viewer.infra.records import Job

    with app.app_context():
        assert Job.query.filter_by(kind="importance").count() == 0


def test_a_job_that_cannot_be_computed_ends_in_error_with_the_reason(client, auth, worker, problem):
    frame, model = problem
    scientist = auth.bearer("scientist")
    register(client, scientist, model)
    relabelled = frame.assign(label=np.where(frame["label"] == 1, "pos", "neg"))  # the model knows 0 and 1 (yes/no would read as booleans, True == 1)
    dataset = upload(client, scientist, relabelled)
    response = client.post("/api/v1/jobs", headers=scientist,
                           json={"kind": "importance", "model": "logit", "dataset": dataset, "target": "label"})
    job = follow(client, scientist, response.get_json()["id"])
    assert job["state"] == "error" and "are not classes of the model (its classes: 0, 1)" in job["error"], job
    assert job["result"] is None
    auth.login("viewer")
    shown = page_text(client.get(f"/jobs/{job['id']}"))
    assert "The job failed:" in shown and "are not classes of the model" in shown
    assert 'id="importance"' not in shown


def test_a_cancelled_job_does_not_run(make_app, auth, problem):
    """The task body, run in this process for a job cancelled while it waited: it does nothing."""
    frame, model = problem
    parked = make_app(ROW_GROUP_ROWS=300)
    parked.extensions["celery"].conf.task_default_queue = "parked-for-tests"
    other = AuthActions(parked, parked.test_client())
    browser = other._client
    register(browser, other.bearer("scientist"), model)
    dataset = upload(browser, other.bearer("scientist"), frame)
    job = browser.post("/api/v1/jobs", headers=other.bearer("scientist"),
                       json={"kind": "importance", "model": "logit", "dataset": dataset, "target": "label"}
                       ).get_json()
    assert job["state"] == "pending"
    cancelled = browser.delete(f"/api/v1/jobs/{job['id']}", headers=other.bearer("scientist")).get_json()
    assert cancelled["state"] == "cancelled"
    from viewer import tasks
    from viewer.infra.extensions import db
    from viewer.infra.records import Job

    with parked.app_context():
        tasks.feature_importance(job["id"])
        stored = db.session.get(Job, job["id"])
        assert (stored.state, stored.result, stored.started_at) == ("cancelled", None, None)

    # The same body on a pending job computes it.
    again = browser.post("/api/v1/jobs", headers=other.bearer("scientist"),
                         json={"kind": "importance", "model": "logit", "dataset": dataset, "target": "label",
                               "n_repeats": 1}).get_json()
    with parked.app_context():
        tasks.feature_importance(again["id"])
        stored = db.session.get(Job, again["id"])
        assert stored.state == "done" and len(stored.result["features"]) == 4


def test_the_client_computes_importance(live_server, auth, worker, problem, tmp_path):
    frame, model = problem
    path = tmp_path / "logit.joblib"
    joblib.dump(model, path)
    api = Client(live_server, auth.token("scientist"))
    api.upload_model(path, name="logit")
    csv = tmp_path / "labelled.csv"
    frame.to_csv(csv, index=False)
    dataset = api.request("POST", "/api/v1/datasets", files={"file": ("labelled.csv", csv.read_bytes())})["id"]
    job = api.feature_importance("logit", dataset, "label", n_repeats=2, timeout=120)
    assert job["state"] == "done" and job["kind"] == "importance"
    assert sorted(f["name"] for f in job["result"]["features"]) == FEATURES
    assert all(len(f["values"]) == 2 for f in job["result"]["features"])
