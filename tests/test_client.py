"""viewer.client.Client against a live server."""

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from viewer.client import ApiError, Client


@pytest.fixture
def iris(tmp_path):
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    model = LogisticRegression(max_iter=500).fit(X, data.target_names[data.target])
    path = tmp_path / "iris.joblib"
    joblib.dump(model, path)
    return X, model, path


def test_client_uploads_and_predicts(live_server, auth, iris):
    X, model, path = iris
    client = Client(live_server, auth.token("scientist"))
    assert client.me()["role"] == "scientist"
    version = client.upload_model(path, name="iris", description="demo")
    assert version["version"] == 1
    client.set_alias("iris", "production", 1)
    rows = X.iloc[[0, 60, 120]]
    np.testing.assert_array_equal(client.predict(rows, model="iris@production"), model.predict(rows))
    proba = client.predict_proba(rows, model="iris/1")
    assert list(proba.columns) == ["setosa", "versicolor", "virginica"] and list(proba.index) == [0, 60, 120]
    np.testing.assert_allclose(proba.to_numpy(), model.predict_proba(rows))
    assert [m["name"] for m in client.models()] == ["iris"]
    assert client.model("iris/1")["kind"] == "classifier"
    # a fitted estimator, as a notebook has it: saved with joblib on the way
    other = LogisticRegression(C=0.05, max_iter=500).fit(X, model.predict(X))
    again = client.upload_model(other, name="iris")
    assert again["version"] == 2
    np.testing.assert_allclose(client.predict_proba(rows, model="iris/2").to_numpy(), other.predict_proba(rows))


def test_client_sends_missing_values_as_null_and_raises_api_errors(live_server, auth, iris):
    X, _model, path = iris
    client = Client(live_server, auth.token("scientist"))
    client.upload_model(path, name="iris")
    rows = X.iloc[:2].copy()
    rows.iloc[1, 2] = np.nan
    with pytest.raises(ApiError) as caught:
        client.predict(rows, model="iris")
    assert caught.value.status == 400 and caught.value.error_code == "MISSING_VALUES"
    with pytest.raises(ApiError) as caught:
        Client(live_server, "vwr_wrong").models()
    assert caught.value.status == 401
    with pytest.raises(ApiError) as caught:
        client.predict(pd.DataFrame({"x": [1]}), model="nope")
    assert caught.value.status == 404


def test_client_sends_date_columns_as_iso_text(live_server, auth, iris):
    """A frame with dates (a datetime64 column with a missing value, Python dates) predicts like
    the same rows without them; the dates go as ISO 8601 text, as a CSV holds them."""
    import datetime

    from viewer.client import _records

    X, model, path = iris
    client = Client(live_server, auth.token("scientist"))
    client.upload_model(path, name="iris")
    rows = X.iloc[[0, 60, 120]].assign(opened=pd.to_datetime(["2024-05-15 00:00", None, "2024-06-01 12:30"]),
                                        due=[datetime.date(2025, 1, 31)] * 3)
    np.testing.assert_array_equal(client.predict(rows, model="iris"), model.predict(X.iloc[[0, 60, 120]]))
    sent = _records(rows)["dataframe_split"]["data"]
    assert [row[-2:] for row in sent] == [["2024-05-15T00:00:00", "2025-01-31"], [None, "2025-01-31"],
                                          ["2024-06-01T12:30:00", "2025-01-31"]]
    assert _records(np.array([["2024-05-15"]], dtype="datetime64[ns]"))["instances"] == [["2024-05-15T00:00:00"]]


def test_client_uploads_a_dataset_scores_it_and_reads_the_results(live_server, auth, worker, iris, tmp_path):
    X, model, path = iris
    species = load_iris().target_names[load_iris().target]
    client = Client(live_server, auth.token("scientist"))
    client.upload_model(path, name="iris")
    dataset = client.upload_dataset(X.assign(species=species), name="iris.parquet")
    assert (dataset["state"], dataset["n_rows"], dataset["name"]) == ("ready", 150, "iris.parquet")
    assert [d["id"] for d in client.datasets()] == [dataset["id"]]
    assert [c["name"] for c in client.dataset(dataset["id"])["columns"]] == [*X.columns, "species"]

    job = client.submit_job("iris", dataset["id"], target="species")
    done = client.wait_job(job["id"], timeout=120)
    assert done["state"] == "done", done["error"]
    assert done["metrics"]["accuracy"] == pytest.approx(model.score(X, species))
    results = client.results(job["id"])
    np.testing.assert_array_equal(results["row"], np.arange(150))
    np.testing.assert_array_equal(results["prediction"], model.predict(X))
    np.testing.assert_array_equal(results["target"], species)
    np.testing.assert_allclose(results[[f"proba_{c}" for c in model.classes_]].to_numpy(), model.predict_proba(X))
    assert client.submit_job("iris", dataset["id"], target="species")["id"] == job["id"]  # scored already
    again = client.submit_job("iris", dataset["id"], target="species", force=True)
    assert again["id"] != job["id"] and client.wait_job(again["id"], timeout=120)["state"] == "done"

    csv = tmp_path / "rows.csv"
    X.head(3).to_csv(csv, index=False)
    assert client.upload_dataset(csv)["name"] == "rows.csv"
    longer = client.upload_dataset(X.assign(sepal_length=X["sepal_length"] * 1.5, species=species), name="wide.parquet")
    compared = client.compare_datasets(longer["id"], dataset["id"], timeout=120)
    columns = compared["result"]["columns"]
    assert compared["state"] == "done" and columns["sepal_length"]["wasserstein"] > 1
    assert columns["petal_width"]["wasserstein"] == 0 and columns["species"]["jensen_shannon"] == 0
    assert columns["sepal_length"]["drift"] is None  # 150 rows: too few to judge
    with pytest.raises(ApiError) as caught:
        client.results("0" * 32)
    assert caught.value.status == 404
    with pytest.raises(ApiError) as caught:
        Client(live_server, auth.token("viewer")).upload_dataset(csv)
    assert caught.value.status == 403


def test_client_reads_the_prediction_log_and_posts_labels(live_server, auth, iris):
    X, model, path = iris
    client = Client(live_server, auth.token("scientist"))
    client.upload_model(path, name="iris")
    rows = X.iloc[[0, 60, 120]]
    client.predict_proba(rows, model="iris", request_id="batch-7")
    assert client.last_request_id == "batch-7"
    client.predict(X.iloc[:1], model="iris")
    generated = client.last_request_id
    from viewer.services import predlog

    predlog.flush()  # the live server runs in this process
    log = client.prediction_log("iris")
    assert list(log["request_id"]) == ["batch-7"] * 3 + [generated]
    np.testing.assert_allclose(log["input.sepal_length"], pd.concat([rows, X.iloc[:1]])["sepal_length"])
    assert list(log["prediction"]) == list(model.predict(pd.concat([rows, X.iloc[:1]])))
    assert str(log["at"].dt.tz) == "UTC"
    viewer_log = Client(live_server, auth.token("viewer")).prediction_log("iris")
    assert len(viewer_log) == 4 and not any(c.startswith("input.") for c in viewer_log.columns)
    labels = pd.DataFrame({"request_id": ["batch-7"] * 3 + ["nope"], "row": [0, 1, 2, 0],
                           "label": ["setosa", "versicolor", "virginica", "setosa"]})
    answer = client.post_labels("iris", labels)
    assert answer["accepted"] == 4 and answer["matched"] == 3 and answer["unknown"] == ["nope"]
    assert client.drift("iris")["model"] == "iris"
