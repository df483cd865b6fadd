"""Ingest jobs end as their dataset says: a cancel before or during the ingest, or a last attempt
that fails, leaves the dataset failed with the reason, its upload removed and nothing stored."""

import os
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

from viewer.infra.extensions import db
from viewer.infra.records import Job
from tests.support import queued_ingest
from viewer.services import datasets, jobs, reaper


def _stored(app, dataset_id: str) -> list[Path]:
    folder = Path(app.config["DATA_DIR"]) / "datasets" / dataset_id
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


def test_cancelling_an_ingest_before_a_worker_takes_it(app, client, auth):
    headers = auth.bearer("scientist")
    dataset_id, job_id = queued_ingest(app, b"a,b\n1,2\n")
    with app.app_context():
        upload = datasets.upload_path(jobs.get(job_id))
    assert upload.exists()
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["state"] == "cancelled"
    dataset = client.get(f"/api/v1/datasets/{dataset_id}", headers=headers).get_json()
    assert dataset["state"] == "error" and "cancelled" in dataset["error"]
    assert not upload.exists() and _stored(app, dataset_id) == []


def test_cancelling_during_the_ingest_is_not_overwritten_by_its_result(app, client, auth):
    headers = auth.bearer("scientist")
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": np.arange(400_000), "x": rng.normal(size=400_000), "y": rng.integers(0, 9, 400_000)})
    dataset_id, job_id = queued_ingest(app, frame.to_csv(index=False).encode())
    with app.app_context():
        upload = datasets.upload_path(jobs.get(job_id))
        assert jobs.claim(job_id, "worker-1")  # what the task does first
    failures = []

    def worker():  # the ingest task's body, on a thread of this process
        try:
            with app.app_context():
                datasets.ingest_job(job_id, "worker-1")
        except BaseException as exc:  # noqa: BLE001
            failures.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + 30
    while not any(os.path.realpath(f"/proc/self/fd/{fd}") == str(upload) for fd in os.listdir("/proc/self/fd")):
        assert thread.is_alive() and time.monotonic() < deadline, "the ingest never opened its upload"
        time.sleep(0.001)
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["state"] == "cancelled"
    thread.join(60)
    assert not thread.is_alive() and failures == []
    job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    dataset = client.get(f"/api/v1/datasets/{dataset_id}", headers=headers).get_json()
    assert job["state"] == "cancelled"
    assert dataset["state"] == "error" and "cancelled" in dataset["error"] and dataset["n_rows"] is None
    assert not upload.exists() and _stored(app, dataset_id) == []


def test_an_ingest_whose_last_attempt_dies_marks_its_dataset_failed(app, client, auth):
    headers = auth.bearer("scientist")
    dataset_id, job_id = queued_ingest(app, b"a,b\n1,2\n")
    with app.app_context():
        job = db.session.get(Job, job_id)
        job.attempts = app.config["MAX_ATTEMPTS"] - 1
        db.session.commit()
        assert jobs.claim(job_id, "worker-that-dies")  # the last attempt
        job = db.session.get(Job, job_id)
        job.lease_expires_at = job.lease_expires_at.replace(year=job.lease_expires_at.year - 1)
        db.session.commit()
        reaper.reap()
    job = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    dataset = client.get(f"/api/v1/datasets/{dataset_id}", headers=headers).get_json()
    assert job["state"] == "error" and "stopped" in job["error"]
    assert dataset["state"] == "error" and dataset["error"] == job["error"]


def test_an_ingest_job_reads_with_the_uploads_options_and_keeps_its_digest(app, client, auth):
    headers = auth.bearer("scientist")
    dataset_id, job_id = queued_ingest(app, "id|betrag\n1|1.234,5\n2|7,25\n".encode("cp1252"), "eu.csv")
    with app.app_context():
        job = db.session.get(Job, job_id)
        job.params = {**job.params, "options": {"delimiter": "|", "decimal": ",", "thousands": "."}}
        dataset = datasets.get(dataset_id)
        dataset.info = {"sha256": "ab" * 32, "read_options": job.params["options"]}
        db.session.commit()
        assert jobs.claim(job_id, "worker-1")
        datasets.ingest_job(job_id, "worker-1")
    body = client.get(f"/api/v1/datasets/{dataset_id}", headers=headers).get_json()
    assert body["state"] == "ready", body
    assert {c["name"]: c["dtype"] for c in body["columns"]} == {"id": "int64", "betrag": "double"}
    assert body["source"]["delimiter"] == "|" and body["source"]["sha256"] == "ab" * 32
    assert body["preview"][0]["betrag"] == 1234.5
