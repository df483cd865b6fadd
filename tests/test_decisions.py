"""Decision thresholds: saved on a binary classifier's version, given as ``decision`` beside the
probabilities by every route, used by the monitoring confusion matrices."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from tests.support import poll, upload_model, wait_for_job
from tests.test_predict_api import iris  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def cancer():
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :8].rename(columns=lambda c: c.replace(" ", "_"))
    y = np.where(data.target == 1, "benign", "malignant")
    return X, y, make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)


def test_a_saved_threshold_gives_decisions_beside_the_probabilities(client, auth, cancer, iris):  # noqa: F811
    X, _y, model = cancer
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "cancer")
    rows = X.iloc[::40]
    body = {"dataframe_split": rows.to_dict("split")}
    before = client.post("/api/v1/models/cancer/predict?output=proba", headers=scientist, json=body).get_json()
    assert "decision" not in before
    saved = client.put("/api/v1/models/cancer/versions/1/threshold", headers=scientist, json={"threshold": 0.9})
    assert saved.status_code == 200, saved.get_json()
    threshold = saved.get_json()["threshold"]
    assert threshold["value"] == 0.9 and threshold["by"] == "scientist" and threshold["positive"] == "malignant"
    from viewer.services import serving
    serving.forget()  # (other processes: within REF_CACHE_SECONDS)
    after = client.post("/api/v1/models/cancer/predict?output=proba", headers=auth.bearer("viewer"), json=body)
    answer = after.get_json()
    p = model.predict_proba(rows)[:, 1]
    assert answer["decision"] == np.where(p >= 0.9, "malignant", "benign").tolist()
    assert answer["predictions"] == model.predict(rows).tolist()  # the model's own, unchanged
    assert answer["threshold"] == 0.9 and answer["decision"] != answer["predictions"]
    assert "decision" not in client.post("/api/v1/models/cancer/predict", headers=scientist, json=body).get_json()
    # V2: an output of its own.
    v2 = client.post("/v2/models/cancer/infer", headers=scientist, json={
        "inputs": [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": rows[c].tolist()} for c in rows],
        "outputs": [{"name": "decision"}]}).get_json()
    assert v2["outputs"][0]["name"] == "decision" and v2["outputs"][0]["data"] == answer["decision"]
    meta = client.get("/v2/models/cancer", headers=scientist).get_json()
    assert [o["name"] for o in meta["outputs"]] == ["predict", "predict_proba", "decision"]
    # Cleared: the argmax again.
    assert client.delete("/api/v1/models/cancer/versions/1/threshold", headers=scientist).get_json()["threshold"] is None
    serving.forget()
    assert "decision" not in client.post("/api/v1/models/cancer/predict?output=proba", headers=scientist,
                                         json=body).get_json()
    # Refused with the reason: a multiclass model, a value outside 0..1, a viewer.
    upload_model(client, scientist, iris[2], "iris")
    multi = client.put("/api/v1/models/iris/versions/1/threshold", headers=scientist, json={"threshold": 0.5})
    assert multi.status_code == 400 and "not a binary classifier" in multi.get_json()["message"]
    assert client.put("/api/v1/models/cancer/versions/1/threshold", headers=scientist,
                      json={"threshold": 1.5}).status_code == 400
    assert client.put("/api/v1/models/cancer/versions/1/threshold", headers=auth.bearer("viewer"),
                      json={"threshold": 0.5}).status_code == 403


def test_the_job_page_slider_saves_the_threshold_and_monitoring_decides_with_it(app, client, auth, cancer, worker):
    from sklearn.metrics import accuracy_score

    X, y, model = cancer
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "cancer")
    data = X.assign(diagnosis=y)
    dataset = client.post("/api/v1/datasets", headers=scientist, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(data.to_csv(index=False).encode()), "cancer.csv")}).get_json()
    job = client.post("/api/v1/jobs", headers=scientist, json={"model": "cancer", "dataset": dataset["id"],
                                                                "target": "diagnosis"}).get_json()
    assert wait_for_job(client, scientist, job["id"])["state"] == "done"
    auth.login("scientist")
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "Save this threshold on cancer/1" in page
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    saved = client.post(f"/jobs/{job['id']}/threshold", data={"csrf_token": token, "threshold": "0.25"})
    assert saved.status_code == 302
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert "Saved on cancer/1: 0.25 by scientist" in page
    bad = client.post(f"/jobs/{job['id']}/threshold", data={"csrf_token": token, "threshold": "7"})
    assert "Choose a threshold from 0 to 1" in client.get(bad.headers["Location"]).get_data(as_text=True)

    from viewer.services import monitoring, predlog, serving
    serving.forget()
    rows = X.iloc[:300]
    answer = client.post("/api/v1/models/cancer/predict?output=proba", headers=scientist,
                         json={"dataframe_split": rows.to_dict("split")}).get_json()
    predlog.flush()
    labels = [{"request_id": answer["request_id"], "row": i, "label": str(y[i])} for i in range(300)]
    assert client.post("/api/v1/models/cancer/labels", headers=scientist,
                       json={"labels": labels}).get_json()["matched"] == 300

    def performance():
        with app.app_context():
            monitoring.maintain()
        windows = client.get("/api/v1/models/cancer/drift", headers=scientist).get_json()["windows"]
        return [w["performance"] for w in windows if w.get("performance")]

    found = poll(performance, lambda p: sum(x["labelled"] for x in p) == 300, timeout=30, interval=0.5)
    decided = np.where(model.predict_proba(rows)[:, 1] >= 0.25, "malignant", "benign")
    assert len(found) == 1
    assert found[0]["accuracy"] == pytest.approx(accuracy_score(y[:300], decided), abs=1e-12)
    assert (decided != model.predict(rows)).any()  # the threshold decided some rows otherwise
    counts = found[0]["confusion"]["counts"]
    assert sum(map(sum, counts)) == 300 and pd.Series(decided).eq("malignant").sum() == \
        sum(row[found[0]["confusion"]["classes"].index("malignant")] for row in counts)


def test_the_prediction_page_shows_the_decision(client, auth, cancer):
    X, _y, model = cancer
    upload_model(client, auth.bearer("scientist"), model, "cancer")
    client.put("/api/v1/models/cancer/versions/1/threshold", headers=auth.bearer("scientist"), json={"threshold": 0.05})
    from viewer.services import serving
    serving.forget()
    auth.login("viewer")
    page = client.get("/models/cancer/versions/1/predict").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    row = X.iloc[0]
    answer = client.post("/models/cancer/versions/1/predict", data={
        "csrf_token": token, "mode": "fields", **{f"f:{c}": str(row[c]) for c in X.columns}}).get_data(as_text=True)
    expected = "malignant" if model.predict_proba(X.iloc[:1])[0, 1] >= 0.05 else "benign"
    assert f"Decision at the saved threshold 0.05: <strong>{expected}</strong>" in answer
