"""Jobs survive broken workers: SIGKILL mid-job, two workers sharing, a poison chunk, cancel.

Workers here use a 3 s lease and a 1 s reaper so recovery is quick; every run is bounded.
"""

from __future__ import annotations

import io
import os
import signal
import time

import joblib
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_classification
from sklearn.neighbors import KNeighborsClassifier

from tests.support import WorkerProcess

pytestmark = pytest.mark.chaos  # slow: `make chaos` runs these (and .ci/run calls it)
ROWS, CHUNK = 12_000, 1000
FAST_RECOVERY = {"VIEWER_LEASE_SECONDS": "3", "VIEWER_REAPER_SECONDS": "1", "VIEWER_TRUSTED_MODULES": "tests.poison"}


@pytest.fixture
def app_config():
    return {"ROW_GROUP_ROWS": CHUNK, "TRUSTED_MODULES": "tests.poison"}


@pytest.fixture
def workers(migrated, tmp_path):
    started: list[WorkerProcess] = []

    def start(name: str) -> WorkerProcess:
        proc = WorkerProcess({**migrated.env(), **FAST_RECOVERY}, tmp_path / f"{name}.log")
        proc.wait_ready()
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def slow_problem():
    """k-NN over 30k training rows: ~0.2 s per 1000-row chunk, so a job is reliably mid-flight."""
    X, y = make_classification(n_samples=30_000, n_features=8, random_state=0)
    model = KNeighborsClassifier(n_neighbors=15, algorithm="brute").fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]), y)
    frame = pd.DataFrame(X[:ROWS], columns=[f"f{i}" for i in range(8)])
    return frame, model


def register(client, headers, model, name):
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    response = client.post("/api/v1/models", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(buffer.getvalue()), f"{name}.joblib"), "name": name})
    assert response.status_code == 201, response.get_json()


def start_job(client, headers, frame, model_name):
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(frame.to_csv(index=False).encode()), "d.csv")})
    assert response.status_code == 201, response.get_json()
    job = client.post("/api/v1/jobs", headers=headers, json={"model": model_name, "dataset": response.get_json()["id"]})
    assert job.status_code == 202, job.get_json()
    return job.get_json()["id"]


def wait(client, headers, job_id, predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
        if predicate(body):
            return body
        time.sleep(0.1)
    raise TimeoutError(body)


def chunks(app, job_id):
    from viewer.extensions import db
    from viewer.records import JobChunk

    with app.app_context():
        return db.session.query(JobChunk).filter_by(job_id=job_id).order_by(JobChunk.index).all()


def assert_every_row_once(client, headers, job_id, frame, model):
    response = client.get(f"/api/v1/jobs/{job_id}/results?format=parquet", headers=headers)
    out = pq.read_table(io.BytesIO(response.data)).to_pandas()
    assert out["row"].tolist() == list(range(len(frame)))
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), model.predict_proba(frame))


def test_sigkilled_worker_mid_job_another_finishes_every_row_once(app, client, auth, workers, slow_problem):
    frame, model = slow_problem
    headers = auth.bearer("scientist")
    register(client, headers, model, "knn")
    first = workers("first")
    job_id = start_job(client, headers, frame, "knn")
    wait(client, headers, job_id, lambda j: 0 < j["progress"]["done"] < ROWS)
    os.killpg(first.proc.pid, signal.SIGKILL)  # the worker and its pool child, mid-chunk
    first.proc.wait()
    stalled = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert stalled["state"] == "running" and stalled["progress"]["done"] < ROWS
    workers("second")
    done = wait(client, headers, job_id, lambda j: j["state"] in ("done", "error", "cancelled"))
    assert done["state"] == "done", done
    assert done["progress"]["done"] == ROWS
    assert_every_row_once(client, headers, job_id, frame, model)
    assert all(c.state == "done" for c in chunks(app, job_id))


def test_two_workers_share_one_job(app, client, auth, workers, slow_problem):
    frame, model = slow_problem
    headers = auth.bearer("scientist")
    register(client, headers, model, "knn")
    workers("a")
    workers("b")
    job_id = start_job(client, headers, frame, "knn")
    done = wait(client, headers, job_id, lambda j: j["state"] in ("done", "error", "cancelled"))
    assert done["state"] == "done", done
    pids = {c.lease_owner.split(":")[1] for c in chunks(app, job_id)}
    assert len(pids) >= 2, f"one process did every chunk: {pids}"
    assert_every_row_once(client, headers, job_id, frame, model)


def test_poison_chunk_ends_the_job_in_error_after_n_tries(app, client, auth, workers):
    from tests.poison import PoisonModel

    frame = pd.DataFrame({"a": np.linspace(-3, 3, 3000), "b": 1.0})
    frame.loc[1500, "a"] = 999  # row group 1 of 3
    headers = auth.bearer("scientist")
    register(client, headers, PoisonModel().fit(frame, [0, 1] * 1500), "poison")
    workers("w")
    job_id = start_job(client, headers, frame, "poison")
    done = wait(client, headers, job_id, lambda j: j["state"] in ("done", "error", "cancelled"), timeout=90)
    assert done["state"] == "error"
    assert "Chunk 1 failed 3 times" in done["error"] and "poisoned row" in done["error"]
    poisoned = chunks(app, job_id)[1]
    assert poisoned.attempts == 3 and poisoned.state == "error"


def test_cancel_a_running_job_stops_it_and_removes_its_output(app, client, auth, workers, slow_problem):
    frame, model = slow_problem
    headers = auth.bearer("scientist")
    register(client, headers, model, "knn")
    workers("w")
    job_id = start_job(client, headers, frame, "knn")
    wait(client, headers, job_id, lambda j: j["progress"]["done"] > 0)
    response = client.delete(f"/api/v1/jobs/{job_id}", headers=headers)
    assert response.get_json()["state"] == "cancelled"
    time.sleep(1.5)  # longer than one chunk
    settled = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    time.sleep(1.0)
    later = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert later["state"] == "cancelled" and later["progress"]["done"] == settled["progress"]["done"] < ROWS
    assert not (app.config["DATA_DIR"] and os.path.exists(os.path.join(app.config["DATA_DIR"], "jobs", job_id)))
