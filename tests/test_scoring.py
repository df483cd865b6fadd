"""Datasets and scoring jobs end to end, through a real worker process on a real broker."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import Ridge
from sklearn.metrics import accuracy_score, f1_score, log_loss, mean_absolute_error, r2_score, roc_auc_score

from tests.support import FINAL_STATES, poll, upload_model


ROWS, CHUNK = 4000, 500


@pytest.fixture
def app_config():  # small row groups so a few thousand rows make several chunks
    return {"ROW_GROUP_ROWS": CHUNK}


def upload_frame(client, headers, frame: pd.DataFrame, filename="data.csv"):
    content = frame.to_csv(index=False).encode()
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(content), filename)})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


@pytest.fixture(scope="module")
def binary_problem():
    X, y = make_classification(n_samples=ROWS, n_features=6, n_informative=4, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(frame, y)
    return frame.assign(label=y), model


def follow(client, headers, job_id, timeout=90):
    """Poll a job, checking that progress only rises."""
    seen = []

    def fetch():
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
        seen.append(body["progress"]["done"])
        return body

    body = poll(fetch, lambda b: b["state"] in FINAL_STATES, timeout)
    assert seen == sorted(seen), seen
    return body


def results_frame(client, headers, job_id) -> pd.DataFrame:
    response = client.get(f"/api/v1/jobs/{job_id}/results?format=parquet", headers=headers)
    assert response.status_code == 200
    return pq.read_table(io.BytesIO(response.data)).to_pandas()


def test_score_end_to_end(client, auth, worker, binary_problem):
    frame, model = binary_problem
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "hgb")
    dataset = upload_frame(client, scientist, frame)
    assert dataset["n_rows"] == ROWS and dataset["state"] == "ready"
    response = client.post("/api/v1/jobs", headers=scientist,
                           json={"model": "hgb", "dataset": dataset["id"], "target": "label"})
    assert response.status_code == 202, response.get_json()
    job = follow(client, scientist, response.get_json()["id"])
    assert job["state"] == "done", job
    assert job["progress"] == {"done": ROWS, "total": ROWS, "fraction": 1.0}

    out = results_frame(client, scientist, job["id"])
    assert out["row"].tolist() == list(range(ROWS))  # every row exactly once, in order
    features = frame.drop(columns="label")
    np.testing.assert_array_equal(out["prediction"], model.predict(features))
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), model.predict_proba(features))

    metrics = job["metrics"]
    y, proba = frame["label"], model.predict_proba(features)
    assert np.isclose(metrics["accuracy"], accuracy_score(y, model.predict(features)))
    assert np.isclose(metrics["f1_macro"], f1_score(y, model.predict(features), average="macro"))
    assert np.isclose(metrics["roc_auc"], roc_auc_score(y, proba[:, 1]))
    assert np.isclose(metrics["log_loss"], log_loss(y, proba))

    csv = client.get(f"/api/v1/jobs/{job['id']}/results?format=csv", headers=auth.bearer("viewer"))
    assert csv.status_code == 200 and csv.data.decode().splitlines()[0].startswith('"row","prediction"')
    assert len(csv.data.decode().splitlines()) == ROWS + 1
    aggregates = client.get(f"/api/v1/jobs/{job['id']}/aggregates", headers=scientist).get_json()
    assert aggregates["roc"]["auc"] == pytest.approx(metrics["roc_auc"], abs=1e-3)

    # The same work again is the same job; force makes a new one.
    again = client.post("/api/v1/jobs", headers=scientist, json={"model": "hgb/1", "dataset": dataset["id"],
                                                                "target": "label"})
    assert again.status_code == 200 and again.get_json()["id"] == job["id"]
    forced = client.post("/api/v1/jobs", headers=scientist, json={"model": "hgb", "dataset": dataset["id"],
                                                                 "target": "label", "force": True})
    assert forced.status_code == 202 and forced.get_json()["id"] != job["id"]
    assert follow(client, scientist, forced.get_json()["id"])["state"] == "done"


def test_regression_without_target(client, auth, worker):
    X, y = make_regression(n_samples=1200, n_features=3, random_state=1)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = Ridge().fit(frame, y)
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "ridge")
    dataset = upload_frame(client, headers, frame)
    job = client.post("/api/v1/jobs", headers=headers, json={"model": "ridge", "dataset": dataset["id"]}).get_json()
    done = follow(client, headers, job["id"])
    assert done["state"] == "done" and done["metrics"] is None
    out = results_frame(client, headers, job["id"])
    np.testing.assert_allclose(out["prediction"], model.predict(frame))


def test_regression_metrics_equal_sklearn(client, auth, worker):
    X, y = make_regression(n_samples=1500, n_features=3, noise=5.0, random_state=2)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    model = Ridge().fit(frame, y)
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "ridge")
    dataset = upload_frame(client, headers, frame.assign(y=y))
    job = client.post("/api/v1/jobs", headers=headers,
                      json={"model": "ridge", "dataset": dataset["id"], "target": "y"}).get_json()
    metrics = follow(client, headers, job["id"])["metrics"]
    assert np.isclose(metrics["mae"], mean_absolute_error(y, model.predict(frame)))
    assert np.isclose(metrics["r2"], r2_score(y, model.predict(frame)))


def test_job_rules(client, auth, binary_problem):
    frame, model = binary_problem
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "hgb")
    dataset = upload_frame(client, headers, frame.drop(columns=["f5"]))
    bad = client.post("/api/v1/jobs", headers=headers, json={"model": "hgb", "dataset": dataset["id"]})
    assert bad.status_code == 400 and "'f5'" in bad.get_json()["message"]
    assert client.post("/api/v1/jobs", headers=headers,
                       json={"model": "hgb", "dataset": dataset["id"], "target": "nope"}).status_code == 400
    assert client.post("/api/v1/jobs", headers=headers, json={"model": "hgb", "dataset": "0" * 32}).status_code == 404
    assert client.post("/api/v1/jobs", headers=headers, json={"model": "none", "dataset": dataset["id"]}).status_code == 404
    assert client.post("/api/v1/jobs", headers=auth.bearer("viewer"),
                       json={"model": "hgb", "dataset": dataset["id"]}).status_code == 403
    assert client.get("/api/v1/jobs/" + "f" * 32, headers=headers).status_code == 404


def test_submitting_while_the_broker_is_down_is_503_with_no_orphan_rows(make_app, client, auth, binary_problem):
    from viewer.infra.extensions import db
    from viewer.infra.records import Job, JobChunk

    frame, model = binary_problem
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "hgb")
    dataset = upload_frame(client, headers, frame)
    down = make_app(BROKER_URL="redis://127.0.0.1:1/0")
    response = down.test_client().post("/api/v1/jobs", headers=headers,
                                       json={"model": "hgb", "dataset": dataset["id"], "target": "label"})
    assert response.status_code == 503
    with down.app_context():
        assert db.session.query(Job).count() == 0 and db.session.query(JobChunk).count() == 0


def test_cancel_a_queued_job(client, auth, binary_problem):
    """No worker runs in this test, so the job stays queued until cancelled."""
    frame, model = binary_problem
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "hgb")
    dataset = upload_frame(client, headers, frame)
    job = client.post("/api/v1/jobs", headers=headers, json={"model": "hgb", "dataset": dataset["id"]}).get_json()
    cancelled = client.delete(f"/api/v1/jobs/{job['id']}", headers=headers)
    assert cancelled.status_code == 202 and cancelled.get_json()["state"] == "cancelled"
    assert client.get(f"/api/v1/jobs/{job['id']}/results", headers=headers).status_code == 409


@pytest.mark.parametrize("content, needle", [
    (b"", "empty"),
    (b"a,b\n", "no data rows"),
    (b"a,b\n1,2\n3,4,5\n", "Line 3 has 3 fields"),
    (b"a,a\n1,2\n", "'a'"),
    (b"\x89PNG\r\n\x1a\n" + bytes(200), "not a CSV"),
    (b'a,b\n1,"unterminated\n', "quote"),
])
def test_bad_datasets_get_a_clear_422_and_leave_nothing(app, client, auth, content, needle):
    from pathlib import Path

    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset

    response = client.post("/api/v1/datasets", headers=auth.bearer("scientist"), content_type="multipart/form-data",
                           data={"file": (io.BytesIO(content), "bad.csv")})
    assert response.status_code == 422, response.get_json()
    assert needle in response.get_json()["message"]
    with app.app_context():
        assert db.session.query(Dataset).count() == 0
    data_dir = Path(app.config["DATA_DIR"])
    assert not list((data_dir / "scratch").glob("upload-*"))
    assert not list((data_dir / "datasets").rglob("*.partial")) if (data_dir / "datasets").exists() else True


def test_large_upload_is_ingested_by_a_worker(make_app, auth, worker, binary_problem):
    frame, _model = binary_problem
    app = make_app(INLINE_INGEST_MB=0)  # every upload counts as large here
    client = app.test_client()
    headers = auth.bearer("scientist")
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(frame.to_csv(index=False).encode()), "big.csv")})
    assert response.status_code == 202
    body = response.get_json()
    assert body["state"] == "ingesting" and body["job"]["kind"] == "ingest"
    assert follow(client, headers, body["job"]["id"])["state"] == "done"
    ready = client.get(f"/api/v1/datasets/{body['id']}", headers=headers).get_json()
    assert ready["state"] == "ready" and ready["n_rows"] == ROWS
    bad = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                      data={"file": (io.BytesIO(b"a,b\n1,2\n3\n"), "bad.csv")}).get_json()
    failed = follow(client, headers, bad["job"]["id"])
    assert failed["state"] == "error" and "Line 3" in failed["error"]
    assert client.get(f"/api/v1/datasets/{bad['id']}", headers=headers).get_json()["state"] == "error"


def test_a_version_registered_again_gets_its_own_job(client, auth, worker, binary_problem):
    """Deduplication is per model version: the same bytes deleted and registered again are a new
    version whose model card must list jobs of its own."""
    frame, model = binary_problem
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "again")
    dataset = upload_frame(client, headers, frame)
    first = client.post("/api/v1/jobs", headers=headers, json={"model": "again", "dataset": dataset["id"]})
    assert first.status_code == 202
    assert follow(client, headers, first.get_json()["id"])["state"] == "done"
    same = client.post("/api/v1/jobs", headers=headers, json={"model": "again", "dataset": dataset["id"]})
    assert same.status_code == 200 and same.get_json()["id"] == first.get_json()["id"]
    deleted = client.delete("/api/v1/models/again/versions/1", headers=headers)
    assert deleted.status_code in (200, 204), deleted.get_json()
    upload_model(client, headers, model, "again")
    fresh = client.post("/api/v1/jobs", headers=headers, json={"model": "again", "dataset": dataset["id"]})
    assert fresh.status_code == 202 and fresh.get_json()["id"] != first.get_json()["id"]


def test_a_chunk_task_goes_on_with_the_jobs_untried_chunks_and_finalises(app, client, auth, binary_problem):
    """The task body runs here, on jobs recorded like a submitted one but whose messages were
    never sent (so no worker of the session takes their chunks). Chunk 0's task takes every chunk
    nobody has tried, but not one waiting for its retry (its back-off); that chunk's own task
    then finishes the job and computes the metrics at once. With CHUNK_TASK_SECONDS=0 a task
    scores its own chunk only."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Job, JobChunk, utcnow
    from viewer.services import scoring

    frame, model = binary_problem
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "hgb")
    dataset = upload_frame(client, headers, frame)
    response = client.post("/api/v1/jobs", headers=headers, json={"model": "hgb", "dataset": dataset["id"],
                                                                  "target": "label"})
    assert response.status_code == 202, response.get_json()
    n_chunks = ROWS // CHUNK

    def unsent_copy():
        submitted = db.session.get(Job, response.get_json()["id"])
        job = Job(kind=submitted.kind, params=dict(submitted.params), project_id=submitted.project_id,
                  model_version_id=submitted.model_version_id, dataset_id=submitted.dataset_id,
                  progress_total=submitted.progress_total)
        db.session.add(job)
        db.session.flush()
        for index in range(n_chunks):
            db.session.add(JobChunk(job_id=job.id, index=index, enqueued_at=utcnow()))
        db.session.commit()
        return job.id

    def states(job_id):
        db.session.expire_all()
        rows = db.session.query(JobChunk).filter_by(job_id=job_id).order_by(JobChunk.index).all()
        return [(c.state, c.lease_owner) for c in rows]

    with app.app_context():
        job_id = unsent_copy()
        waiting = db.session.query(JobChunk).filter_by(job_id=job_id, index=3).one()
        waiting.attempts, waiting.error = 1, "an earlier try failed"  # pending, its retry not due yet
        db.session.commit()
        scoring.run_chunk(job_id, 0, "first")
        assert states(job_id) == [("done", "first")] * 3 + [("pending", None)] + [("done", "first")] * (n_chunks - 4)
        assert db.session.get(Job, job_id).state == "running"
        scoring.run_chunk(job_id, 3, "retry")
        assert states(job_id)[3] == ("done", "retry")
        job = db.session.get(Job, job_id)
        assert job.state == "done" and job.progress_done == ROWS and job.result["metrics"]["roc_auc"] > 0.5

        app.config["CHUNK_TASK_SECONDS"] = 0
        job_id = unsent_copy()
        scoring.run_chunk(job_id, 1, "single")
        assert [s for s, _ in states(job_id)] == ["pending", "done"] + ["pending"] * (n_chunks - 2)


def test_a_failed_chunk_waits_for_its_retry_even_when_its_first_message_arrives(app, client, auth, binary_problem):
    """A task's loop took chunk 2 before chunk 2's own message arrived, and it failed: the chunk
    is due again only when its retry's delayed message is (2 s, then 4 s...). The first message,
    arriving meanwhile, finds it waiting and does nothing (it was retried at once, skipping the
    back-off); the reaper does not send it again before it is long overdue."""
    from datetime import timedelta

    from viewer.infra.extensions import db
    from viewer.infra.records import Job, JobChunk, utcnow
    from viewer.services import jobs, reaper

    frame, model = binary_problem
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "hgb")
    dataset = upload_frame(client, headers, frame)
    response = client.post("/api/v1/jobs", headers=headers, json={"model": "hgb", "dataset": dataset["id"]})
    assert response.status_code == 202, response.get_json()
    with app.app_context():
        submitted = db.session.get(Job, response.get_json()["id"])
        job = Job(kind=submitted.kind, params=dict(submitted.params), project_id=submitted.project_id,
                  model_version_id=submitted.model_version_id, dataset_id=submitted.dataset_id,
                  progress_total=submitted.progress_total, state="running", started_at=utcnow())
        db.session.add(job)
        db.session.flush()
        for index in range(3):
            db.session.add(JobChunk(job_id=job.id, index=index, enqueued_at=utcnow()))
        db.session.commit()
        for _ in range(3):  # the loop takes the lowest untried chunk each time: 0, 1, then 2
            chunk = jobs.claim_untried_chunk(job.id, "loop")
        assert chunk.index == 2
        before = utcnow()
        assert jobs.fail_chunk(chunk, "loop", "the host restarted") == 2
        assert jobs.claim_chunk(job.id, 2, "first message") is None  # not due for ~2 s
        db.session.refresh(chunk)
        assert chunk.state == "pending" and chunk.enqueued_at >= before + timedelta(seconds=2)
        reaper.reap()
        db.session.refresh(chunk)
        assert chunk.enqueued_at >= before + timedelta(seconds=2)  # not re-sent: its retry is on its way
        chunk.enqueued_at = utcnow() - timedelta(seconds=1)  # the retry's time came
        db.session.commit()
        retried = jobs.claim_chunk(job.id, 2, "retry message")
        assert retried is not None and retried.attempts == 2 and retried.lease_owner == "retry message"
        assert jobs.fail_chunk(retried, "retry message", "again") == 4
