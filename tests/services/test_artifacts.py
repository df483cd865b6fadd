"""The artifact store's protocol through the services: objects are written under new keys and
found through their records; the sweep deletes only old objects that no record points to."""

import io
import os
import time
from pathlib import Path

import joblib
import pandas as pd
from sklearn.linear_model import LogisticRegression

from tests.support import queued_ingest
from viewer.infra.extensions import db
from viewer.infra.records import Dataset, ModelVersion
from viewer.services import artifacts


def _model_bytes() -> bytes:
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression().fit(X, [0, 0, 1, 1]), buffer)
    return buffer.getvalue()


def _plant(root: Path, key: str, age_seconds: float) -> Path:
    path = root / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left behind by a writer that died before recording it")
    then = time.time() - age_seconds
    os.utime(path, (then, then))
    return path


def test_sweep_deletes_only_old_unrecorded_objects(app, client, auth):
    headers = auth.bearer("scientist")
    content = _model_bytes()
    for name in ("first", "second"):  # the same bytes twice: two versions, one stored object
        answer = client.post("/api/v1/models", headers=headers, content_type="multipart/form-data",
                             data={"file": (io.BytesIO(content), "m.joblib"), "name": name})
        assert answer.status_code == 201, answer.get_json()
    csv = b"a,b\n1,0\n2,1\n3,0\n"
    answer = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(csv), "d.csv")})
    assert answer.status_code == 201, answer.get_json()
    root = Path(app.config["DATA_DIR"])
    with app.app_context():
        keys = {v.artifact_key for v in db.session.query(ModelVersion)}
        dataset_key = db.session.query(Dataset).one().path
    assert len(keys) == 1 and (root / keys.pop()).is_file() and (root / dataset_key).is_file()
    recorded = [p for p in (root / "models").rglob("*") if p.is_file()] + [root / dataset_key]
    for path in recorded:  # old, but recorded: kept
        os.utime(path, (time.time() - 10 * 3600, time.time() - 10 * 3600))
    old = [_plant(root, "models/0123456789abcdef/orphan", 10 * 3600),
           _plant(root, "datasets/gone/orphan.parquet", 10 * 3600),
           _plant(root, "jobs/finished-long-ago/part-00000/orphan.parquet", 10 * 3600),
           _plant(root, "datasets/killed/.orphan.parquet.partial", 10 * 3600)]  # an ingest killed mid-write
    fresh = _plant(root, "models/fedcba9876543210/being-written", 60)
    with app.app_context():
        counts = artifacts.sweep(grace_seconds=3600)
    assert counts["objects"] == 4
    assert not any(p.exists() for p in old)
    assert fresh.exists() and all(p.exists() for p in recorded)
    predicted = client.post("/api/v1/models/second/predict", headers=headers,
                            json={"dataframe_split": {"columns": ["a", "b"], "data": [[3.0, 0.0]]}})
    assert predicted.status_code == 200 and predicted.get_json()["predictions"] == [1]


def test_deleting_one_of_two_versions_keeps_their_shared_object(app, client, auth):
    headers = auth.bearer("scientist")
    content = _model_bytes()
    for name in ("a1", "a2"):
        client.post("/api/v1/models", headers=headers, content_type="multipart/form-data",
                    data={"file": (io.BytesIO(content), "m.joblib"), "name": name})
    root = Path(app.config["DATA_DIR"])
    with app.app_context():
        key = db.session.query(ModelVersion).first().artifact_key
    assert client.delete("/api/v1/models/a1/versions/1", headers=headers).status_code == 204
    assert (root / key).is_file()
    assert client.delete("/api/v1/models/a2/versions/1", headers=headers).status_code == 204
    assert not (root / key).exists()


def test_sweep_keeps_the_upload_a_queued_ingest_will_read_and_cancel_removes_it(app, client, auth):
    headers = auth.bearer("scientist")
    csv = b"a,b\n1,0\n2,1\n"
    dataset_id, job_id = queued_ingest(app, csv, "queued.csv")
    uploads = [p for p in (Path(app.config["DATA_DIR"]) / "scratch").iterdir() if p.name.startswith("upload-")]
    assert len(uploads) == 1 and uploads[0].read_bytes() == csv
    os.utime(uploads[0], (time.time() - 10 * 3600, time.time() - 10 * 3600))
    with app.app_context():
        artifacts.sweep(grace_seconds=3600)
    assert uploads[0].exists()  # however long the job waits for a worker
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["state"] == "cancelled"
    assert not uploads[0].exists()  # the end hook removed it
    dataset = client.get(f"/api/v1/datasets/{dataset_id}", headers=headers).get_json()
    assert dataset["state"] == "error" and "cancelled" in dataset["error"]
