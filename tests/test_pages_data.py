"""Dataset and job pages: upload (CSRF, errors beside the field), summaries, scoring from the page
with a real worker, the live status endpoint, downloads, cancel, roles and the job list's filters."""

from __future__ import annotations

import io
import re
import time
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score

from tests.conftest import AuthActions
from tests.support import post_form, upload_model

ROWS, CHUNK = 2000, 500
FINAL = ("done", "error", "cancelled")


@pytest.fixture
def app_config():  # small row groups: a few thousand rows make several chunks (like test_scoring)
    return {"ROW_GROUP_ROWS": CHUNK}


@pytest.fixture(scope="module")
def problem():
    X, y = make_classification(n_samples=ROWS, n_features=4, n_informative=3, n_redundant=0, random_state=3)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    model = LogisticRegression().fit(frame, y)
    return frame.assign(label=y), model


def register_model(client, auth, model, name):
    return upload_model(client, auth.bearer("scientist"), model, name)


def upload_page(client, auth, content: bytes, filename: str = "data.csv", **kwargs):
    token = auth.csrf_token("/datasets/upload")
    return client.post("/datasets/upload", content_type="multipart/form-data",
                       data={"csrf_token": token, "file": (io.BytesIO(content), filename)}, **kwargs)


def dataset_id_from(response) -> str:
    match = re.search(r"/datasets/([0-9a-f]{32})$", response.headers["Location"])
    assert match, response.headers.get("Location")
    return match.group(1)


def count(app, record) -> int:
    from viewer.infra.extensions import db

    with app.app_context():
        return db.session.query(record).count()


def parked(make_app):
    """An app whose Celery messages go to a queue no worker reads: its jobs stay pending."""
    other = make_app(ROW_GROUP_ROWS=CHUNK)
    other.extensions["celery"].conf.task_default_queue = "parked-for-tests"
    return other


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


# --- upload ---------------------------------------------------------------------------------------

def test_upload_through_the_page(app, client, auth):
    auth.login("scientist")
    page = client.get("/datasets/upload")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'id="dropzone"' in html and "upload.js" in html and 'accept=".csv' in html
    response = upload_page(client, auth, b"x;y;name\n1;2.5;ann\n2;3.5;bob\n3;;ann\n", "people.csv")
    assert response.status_code == 302
    dataset_id = dataset_id_from(response)
    shown = text(client.get(response.headers["Location"]))
    assert "Uploaded people.csv: 3 rows, 3 columns." in shown
    assert "people.csv" in shown and 'state state-ready">ready' in shown
    assert re.search(r"<th>Delimiter</th><td><code>;</code> \(semicolon\)", shown)
    assert "<th>Encoding</th><td>utf-8" in shown

    listing = text(client.get("/datasets/"))
    assert f'href="/datasets/{dataset_id}"' in listing and ">people.csv<" in listing
    assert "Upload a dataset" in listing


def test_a_parquet_upload_is_read_as_parquet(client, auth):
    auth.login("scientist")
    buffer = io.BytesIO()
    pd.DataFrame({"n": [1, 2, 3, 4], "s": ["a", "b", "a", None]}).to_parquet(buffer)
    response = upload_page(client, auth, buffer.getvalue(), "frame.parquet")
    assert response.status_code == 302
    shown = text(client.get(response.headers["Location"]))
    assert "<th>Source</th><td>PARQUET" in shown and "Delimiter" not in shown


def test_a_bad_csv_is_explained_beside_the_field_and_nothing_is_stored(app, client, auth, migrated):
    from viewer.infra.records import Dataset, Job

    auth.login("scientist")
    uploads = Path(migrated.data_dir) / "scratch"
    before = set(uploads.iterdir()) if uploads.exists() else set()
    response = upload_page(client, auth, b"a,b\n1,2\n3,4,5\n6,7\n", "ragged.csv")
    assert response.status_code == 422
    shown = text(response)
    assert re.search(r'<p class="field-error" role="alert">Line 3 has 3 fields, expected 2', shown)
    assert 'class="dropzone invalid"' in shown
    assert count(app, Dataset) == 0 and count(app, Job) == 0
    assert (set(uploads.iterdir()) if uploads.exists() else set()) == before

    empty = upload_page(client, auth, b"", "empty.csv")
    assert empty.status_code in (400, 422) and "empty" in text(empty).lower()
    missing = client.post("/datasets/upload", data={"csrf_token": auth.csrf_token("/datasets/upload")})
    assert missing.status_code == 400 and "Choose a CSV, Parquet or .xlsx file." in text(missing)
    no_csrf = client.post("/datasets/upload", content_type="multipart/form-data",
                          data={"file": (io.BytesIO(b"a\n1\n"), "a.csv")})
    assert no_csrf.status_code == 400 and count(app, Dataset) == 0


def test_dataset_page_shows_summaries_and_preview(client, auth):
    auth.login("viewer")
    scientist = AuthActions(client.application, client.application.test_client())
    scientist.login("scientist")
    csv = "age,plan,score,when\n" + "\n".join(
        f"{20 + i},{['free', 'pro', 'team'][i % 3]},{'' if i == 4 else i / 2},2024-01-{i + 1:02d}" for i in range(10))
    response = upload_page(scientist._client, scientist, csv.encode(), "plans.csv")
    assert response.status_code == 302
    shown = text(client.get(response.headers["Location"]))
    assert "<th>Rows</th><td>10</td>" in shown and "<th>Columns</th><td>4</td>" in shown
    rows = {m.group(1): m.group(0) for m in re.finditer(r"<tr>\s*<td><code>(\w+)</code></td>.*?</tr>", shown, re.S)}
    assert set(rows) >= {"age", "plan", "score", "when"}
    assert "numeric" in rows["age"] and ">20<" in rows["age"] and ">29<" in rows["age"] and ">24.5<" in rows["age"]
    assert "categorical" in rows["plan"] and "data-bokeh-target" in rows["plan"]   # its distribution
    assert '"free"' in rows["plan"] and "data-bokeh-target" in rows["age"]
    assert re.search(r'<td class="num">1 <span class="hint">\(10\.0 %\)</span>', rows["score"])  # one null
    assert "datetime" in rows["when"]
    preview = shown.split("Preview", 1)[1]
    assert "first 10 rows" in preview
    assert re.search(r"<td class=\"num\">20</td><td>free</td><td class=\"num\">0\.0</td>", preview)
    assert '<span class="muted">null</span>' in preview
    # a viewer sees no scoring or delete controls
    assert "Score with a model" not in shown
    assert "/score" not in shown and "Delete dataset" not in shown


# --- scoring and the job page -------------------------------------------------------------------

def follow_status(client, job_id: str, timeout: float = 90) -> tuple[dict, list[int]]:
    seen: list[int] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/jobs/{job_id}/status.json")
        assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
        body = response.get_json()
        seen.append(body["progress"]["done"])
        if body["state"] in FINAL:
            return body, seen
        time.sleep(0.1)
    raise TimeoutError(body)


def test_score_from_the_page_follow_it_and_download(app, client, auth, worker, problem):
    frame, model = problem
    register_model(client, auth, model, "logit")
    auth.login("scientist")
    dataset_id = dataset_id_from(upload_page(client, auth, frame.to_csv(index=False).encode(), "train.csv"))
    page = f"/datasets/{dataset_id}"
    shown = client.get(page + "?model=logit/1").get_data(as_text=True)
    assert '<optgroup label="logit">' in shown
    assert '<option selected value="logit/1">' in shown and '<option value="logit">' in shown
    assert re.search(r'<select[^>]*name="target"[^>]*>.*<option value="label">label</option>', shown, re.S)

    response = post_form(client, auth, page, f"/datasets/{dataset_id}/score", model="logit", target="label")
    assert response.status_code == 302
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    job_page = client.get(f"/jobs/{job_id}").get_data(as_text=True)
    assert f'data-status-url="/jobs/{job_id}/status.json"' in job_page and "/static/job.js" in job_page
    assert "<script>" not in job_page  # CSP: script-src 'self', no inline script
    assert "Cancel job" in job_page or 'data-state="done"' in job_page

    # The API refuses the session cookie; the page's own endpoint takes it.
    assert client.get(f"/api/v1/jobs/{job_id}").status_code == 401
    body, seen = follow_status(client, job_id)
    assert body["state"] == "done", body
    assert seen == sorted(seen) and body["progress"] == {"done": ROWS, "total": ROWS, "fraction": 1.0}

    done = text(client.get(f"/jobs/{job_id}"))
    assert 'data-state="done"' in done and "job.js" not in done and "Cancel job" not in done
    features = frame.drop(columns="label")
    accuracy = accuracy_score(frame["label"], model.predict(features))
    auc = roc_auc_score(frame["label"], model.predict_proba(features)[:, 1])
    assert re.search(rf'data-metric="accuracy"[^>]*><span class="num">{accuracy:.4f}</span>'
                     r'<span class="lbl">Accuracy', done)
    assert re.search(rf'data-metric="roc_auc"[^>]*><span class="num">{auc:.4f}</span>', done)
    for label in ("Balanced accuracy", "F1 (macro)", "Average precision", "Log loss", "Brier score", "Per class"):
        assert label in done
    assert f'<span data-field="done">{ROWS:,}</span> / <span data-field="total">{ROWS:,}</span>' in done

    csv_link = f"/jobs/{job_id}/results.csv"
    parquet_link = f"/jobs/{job_id}/results.parquet"
    assert f'href="{csv_link}"' in done and f'href="{parquet_link}"' in done
    csv = client.get(csv_link)
    assert csv.status_code == 200 and csv.mimetype == "text/csv"
    assert f'filename="job-{job_id}.csv"' in csv.headers["Content-Disposition"]
    lines = csv.get_data(as_text=True).splitlines()
    assert len(lines) == ROWS + 1 and lines[0].startswith('"row","prediction"')
    table = pq.read_table(io.BytesIO(client.get(parquet_link).data)).to_pandas()
    assert len(table) == ROWS
    np.testing.assert_array_equal(table["prediction"], model.predict(features))
    assert client.get(f"/jobs/{job_id}/results.xlsx").status_code == 400

    # The same work again opens the same job, with a message.
    again = post_form(client, auth, page, f"/datasets/{dataset_id}/score", model="logit/1", target="label")
    assert again.status_code == 302 and again.headers["Location"].endswith(f"/jobs/{job_id}")
    assert "already scored train.csv" in text(client.get(again.headers["Location"]))

    # The job is listed on the dataset page.
    assert f'href="/jobs/{job_id}"' in client.get(page).get_data(as_text=True)


def test_scoring_refusals_are_shown_beside_the_fields(app, client, auth, problem):
    frame, model = problem
    register_model(client, auth, model, "logit")
    auth.login("scientist")
    dataset_id = dataset_id_from(upload_page(client, auth, frame.drop(columns="d").to_csv(index=False).encode()))
    page, action = f"/datasets/{dataset_id}", f"/datasets/{dataset_id}/score"
    mismatch = post_form(client, auth, page, action, model="logit", target="label")
    assert mismatch.status_code == 400
    assert re.search(r'<p class="field-error" role="alert">The dataset lacks columns the model needs: \'d\'',
                     text(mismatch))
    unknown = post_form(client, auth, page, action, model="nope", target="")
    assert unknown.status_code == 404 and "No model named 'nope'." in text(unknown)
    target = post_form(client, auth, page, action, model="logit", target="zzz")
    assert target.status_code == 400 and "The dataset has no column 'zzz'." in text(target)
    assert "No jobs yet." in client.get("/jobs/").get_data(as_text=True)
    from viewer.infra.records import Job

    assert count(app, Job) == 0


def test_cancel_from_the_page(make_app, client, auth, problem):
    frame, model = problem
    register_model(client, auth, model, "logit")
    other = parked(make_app)
    scientist = AuthActions(other, other.test_client())
    scientist.login("scientist")
    browser = scientist._client
    dataset_id = dataset_id_from(upload_page(browser, scientist, frame.to_csv(index=False).encode()))
    response = post_form(browser, scientist, f"/datasets/{dataset_id}", f"/datasets/{dataset_id}/score",
                         model="logit", target="label")
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    page = text(browser.get(f"/jobs/{job_id}"))
    assert 'data-state="pending"' in page and "Waiting for a worker" in page and "Cancel job" in page
    assert browser.get(f"/jobs/{job_id}/results.csv").status_code == 409

    # a dataset in use by an unfinished job cannot be deleted
    refused = post_form(browser, scientist, f"/datasets/{dataset_id}", f"/datasets/{dataset_id}/delete")
    assert refused.status_code == 302
    assert "used by 1 unfinished job" in text(browser.get(refused.headers["Location"]))

    cancelled = post_form(browser, scientist, f"/jobs/{job_id}", f"/jobs/{job_id}/cancel")
    assert cancelled.status_code == 302
    shown = text(browser.get(cancelled.headers["Location"]))
    assert "Job cancelled." in shown and 'data-state="cancelled"' in shown and "Cancel job" not in shown
    assert browser.get(f"/jobs/{job_id}/status.json").get_json()["state"] == "cancelled"
    assert "The job is already cancelled." in text(browser.get(
        post_form(browser, scientist, f"/jobs/{job_id}", f"/jobs/{job_id}/cancel").headers["Location"]))

    deleted = post_form(browser, scientist, f"/datasets/{dataset_id}", f"/datasets/{dataset_id}/delete")
    assert deleted.headers["Location"].endswith("/datasets/")
    assert browser.get(f"/datasets/{dataset_id}").status_code == 404


def test_a_large_upload_is_ingested_by_a_job_and_the_page_waits(make_app, auth, problem):
    frame, _model = problem
    other = make_app(INLINE_INGEST_MB=0)
    other.extensions["celery"].conf.task_default_queue = "parked-for-tests"
    scientist = AuthActions(other, other.test_client())
    scientist.login("scientist")
    browser = scientist._client
    response = upload_page(browser, scientist, frame.to_csv(index=False).encode(), "big.csv")
    assert response.status_code == 302
    dataset_id = dataset_id_from(response)
    shown = text(browser.get(response.headers["Location"]))
    assert "a worker is ingesting it" in shown and 'state-ingesting">ingesting' in shown
    assert '<meta http-equiv="refresh" content="2">' in shown and "Follow the ingest job" in shown
    job_id = re.search(r'href="/jobs/([0-9a-f]{32})">Follow the ingest job', shown).group(1)
    assert "Score with a model" not in shown

    from viewer import tasks

    with other.app_context():
        tasks.ingest_dataset(job_id)  # what the worker would do
    ready = text(browser.get(f"/datasets/{dataset_id}"))
    assert 'http-equiv="refresh"' not in ready and f"<th>Rows</th><td>{ROWS:,}</td>" in ready
    job = text(browser.get(f"/jobs/{job_id}"))
    assert "Ingest job" in job and 'data-state="done"' in job and "Ingest jobs have no downloadable results." in job


# --- roles ----------------------------------------------------------------------------------------

def test_a_viewer_browses_but_changes_nothing(make_app, client, auth, problem):
    from viewer.infra.records import Dataset, Job

    frame, model = problem
    register_model(client, auth, model, "logit")
    other = parked(make_app)
    scientist = AuthActions(other, other.test_client())
    scientist.login("scientist")
    dataset_id = dataset_id_from(upload_page(scientist._client, scientist, frame.to_csv(index=False).encode()))
    job_id = post_form(scientist._client, scientist, f"/datasets/{dataset_id}", f"/datasets/{dataset_id}/score",
                       model="logit").headers["Location"].rsplit("/", 1)[1]

    auth.login("viewer")
    for path in ("/datasets/", f"/datasets/{dataset_id}", "/jobs/", f"/jobs/{job_id}", "/models/logit/versions/1"):
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.get_data(as_text=True)
        for control in ("Upload a dataset", 'action="/datasets/', "Cancel job", "Delete dataset", "Score a dataset",
                        f'action="/jobs/{job_id}/cancel"'):
            assert control not in html, (path, control)
    assert client.get(f"/jobs/{job_id}/status.json").status_code == 200
    assert client.get("/datasets/upload").status_code == 403

    token = auth.csrf_token("/datasets/")
    posts = {
        "/datasets/upload": {"file": (io.BytesIO(b"a\n1\n"), "a.csv")},
        f"/datasets/{dataset_id}/score": {"model": "logit"},
        f"/datasets/{dataset_id}/delete": {},
        f"/jobs/{job_id}/cancel": {},
    }
    for path, fields in posts.items():
        response = client.post(path, content_type="multipart/form-data", data={"csrf_token": token, **fields})
        assert response.status_code == 403, path
    assert count(other, Dataset) == 1 and count(other, Job) == 1
    assert client.get(f"/jobs/{job_id}/status.json").get_json()["state"] == "pending"


def test_pages_need_a_login(client, auth):
    for path in ("/datasets/", "/jobs/", "/jobs/" + "0" * 32 + "/status.json"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"], path


# --- the job list ---------------------------------------------------------------------------------

def test_the_job_list_filters(app, client, auth):
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset, Job, User

    with app.app_context():
        scientist, admin = User.by_name("scientist"), User.by_name("admin")
        one, two = Dataset(name="one.csv", state="ready"), Dataset(name="two.csv", state="ready")
        db.session.add_all([one, two])
        db.session.flush()
        made = {
            "a-one-done": Job(kind="score", state="done", params={"model": "alpha/1", "model_name": "alpha"},
                              dataset_id=one.id, created_by=scientist),
            "a-two-error": Job(kind="score", state="error", params={"model": "alpha/2", "model_name": "alpha"},
                               dataset_id=two.id, created_by=admin, error="boom"),
            "b-one-pending": Job(kind="score", state="pending", params={"model": "beta/1", "model_name": "beta"},
                                 dataset_id=one.id, created_by=admin),
        }
        db.session.add_all(made.values())
        db.session.commit()
        ids = {k: j.id for k, j in made.items()}
        one_id, two_id = one.id, two.id

    auth.login("viewer")

    def listed(**args) -> set[str]:
        response = client.get("/jobs/", query_string=args)
        assert response.status_code == 200
        found = set(re.findall(r'href="/jobs/([0-9a-f]{32})"', response.get_data(as_text=True)))
        return {k for k, v in ids.items() if v in found}

    assert listed() == set(ids)
    assert listed(model="alpha") == {"a-one-done", "a-two-error"}
    assert listed(dataset=one_id) == {"a-one-done", "b-one-pending"}
    assert listed(dataset=two_id) == {"a-two-error"}
    assert listed(state="pending") == {"b-one-pending"}
    assert listed(user="admin") == {"a-two-error", "b-one-pending"}
    assert listed(user="admin", model="alpha", state="error", dataset=two_id) == {"a-two-error"}
    assert listed(model="gamma") == set()
    assert listed(kind="score") == set(ids) and listed(kind="ingest") == set()
    page = client.get("/jobs/", query_string={"model": "alpha", "state": "done"}).get_data(as_text=True)
    assert '<option value="alpha" selected>' in page and '<option value="done" selected>' in page
    assert "Clear filters" in page
    assert "No job matches these filters." in client.get("/jobs/?model=gamma").get_data(as_text=True)
    assert client.get("/jobs/?state=bogus").status_code == 400

    error_page = text(client.get(f"/jobs/{ids['a-two-error']}"))
    assert "The job failed:" in error_page and "boom" in error_page
    assert client.get("/jobs/" + "f" * 32).status_code == 404
