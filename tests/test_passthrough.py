"""Passthrough columns: a scoring job keeps chosen dataset columns (by default the ID columns)
beside its predictions, so results join back to one's own rows by ID, not by position; a
download of inputs plus predictions streams the dataset and the parts chunk by chunk. Through a
real worker process on a real broker."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.support import FINAL_STATES, poll
from tests.test_scoring import upload_frame, upload_model

ROWS, CHUNK = 1200, 300
FEATURES = ["amount", "income", "region"]


@pytest.fixture
def app_config():  # small row groups: several chunks, several parts
    return {"ROW_GROUP_ROWS": CHUNK}


@pytest.fixture(scope="module")
def loans():
    """Loans with a string ID, numbers with missing values, a category with missing values."""
    rng = np.random.default_rng(3)
    amount = rng.gamma(2.0, 5000.0, ROWS).round(2)
    income = rng.normal(40000, 10000, ROWS).clip(9000).round(2)
    region = rng.choice(["north", "south", "east"], ROWS).astype(object)
    defaulted = ((amount / income) + (region == "south") * 0.3 + rng.normal(0, 0.2, ROWS) > 0.45).astype(int)
    amount[rng.random(ROWS) < 0.05] = np.nan
    region[rng.random(ROWS) < 0.05] = None
    frame = pd.DataFrame({"loan_id": [f"L{700000 + 7 * i}" for i in range(ROWS)], "amount": amount,
                          "income": income, "region": region, "defaulted": defaulted})
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["amount", "income"]),
        ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                              OneHotEncoder(handle_unknown="ignore")), ["region"])])
    models = [make_pipeline(prep, LogisticRegression(C=c, max_iter=500)).fit(frame[FEATURES], frame["defaulted"])
              for c in (1.0, 0.001)]
    return frame, models


def finish(client, headers, job_id, timeout=120):
    body = poll(lambda: client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json(),
                lambda b: b["state"] in FINAL_STATES, timeout)
    assert body["state"] == "done", body
    return body


def score(client, headers, model, dataset_id, **extra):
    response = client.post("/api/v1/jobs", headers=headers,
                           json={"model": model, "dataset": dataset_id, "target": "defaulted", **extra})
    assert response.status_code == 202, response.get_json()
    return finish(client, headers, response.get_json()["id"])


def download(client, headers, job_id, query="format=parquet") -> pd.DataFrame:
    response = client.get(f"/api/v1/jobs/{job_id}/results?{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    if "csv" in query:
        return pd.read_csv(io.BytesIO(response.data))
    return pq.read_table(io.BytesIO(response.data)).to_pandas()


def test_results_keep_the_id_column_and_join_back_by_id_not_position(client, auth, worker, loans):
    frame, (model, _) = loans
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    dataset = upload_frame(client, scientist, frame)
    job = score(client, scientist, "loans", dataset["id"], passthrough=["loan_id"])
    assert job["params"]["passthrough"] == ["loan_id"]
    results = download(client, scientist, job["id"])
    assert list(results.columns[:3]) == ["row", "loan_id", "prediction"]
    # one's own rows in another order: joined by ID, each gets its own prediction
    mine = frame.sample(frac=1.0, random_state=1).set_index("loan_id")
    joined = mine.join(results.set_index("loan_id")[["prediction", "proba_1"]])
    np.testing.assert_array_equal(joined["prediction"].to_numpy(), model.predict(mine[FEATURES]))
    np.testing.assert_allclose(joined["proba_1"].to_numpy(), model.predict_proba(mine[FEATURES])[:, 1])
    as_csv = download(client, scientist, job["id"], "format=csv")
    assert as_csv["loan_id"].tolist() == frame["loan_id"].tolist()


def test_passthrough_can_be_empty_and_names_of_unknown_columns_are_refused(client, auth, worker, loans):
    frame, (model, _) = loans
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    dataset = upload_frame(client, scientist, frame)
    job = score(client, scientist, "loans", dataset["id"], passthrough=[])
    assert "loan_id" not in download(client, scientist, job["id"]).columns
    answer = client.post("/api/v1/jobs", headers=scientist,
                         json={"model": "loans", "dataset": dataset["id"], "passthrough": ["loan_number"]})
    body = answer.get_json()
    assert answer.status_code == 400 and "'loan_number'" in body["message"] and "choose among" in body["message"]


def test_a_dataset_column_named_like_an_output_is_refused_with_the_fix(client, auth, worker, loans):
    frame, (model, _) = loans
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    dataset = upload_frame(client, scientist, frame.assign(prediction=frame["defaulted"]))
    answer = client.post("/api/v1/jobs", headers=scientist,
                         json={"model": "loans", "dataset": dataset["id"], "passthrough": ["prediction"]})
    assert answer.status_code == 400 and "rename it" in answer.get_json()["message"]


def test_by_default_a_job_keeps_the_detected_id_columns(app, client, auth, worker, loans):
    from viewer.services import datasets

    frame, (model, _) = loans
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    dataset = upload_frame(client, scientist, frame)
    job = score(client, scientist, "loans", dataset["id"])
    if not hasattr(datasets, "id_columns"):
        pytest.skip("ID detection (services.datasets.id_columns) is not in this tree yet")
    assert job["params"]["passthrough"] == ["loan_id"]
    assert "loan_id" in download(client, scientist, job["id"]).columns


def test_inputs_plus_predictions_stream_every_dataset_column_beside_the_outputs(client, auth, worker, loans):
    frame, (model, _) = loans
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    dataset = upload_frame(client, scientist, frame.assign(row=np.arange(ROWS) * 10))  # a column named "row"
    job = score(client, scientist, "loans", dataset["id"], passthrough=["loan_id"])
    both = download(client, scientist, job["id"], "format=parquet&inputs=true")
    assert list(both.columns) == ["loan_id", "amount", "income", "region", "defaulted", "row", "row_output",
                                  "prediction", "proba_0", "proba_1"]
    assert len(both) == ROWS and both["loan_id"].tolist() == frame["loan_id"].tolist()
    assert both["row_output"].tolist() == list(range(ROWS))
    np.testing.assert_array_equal(both["prediction"].to_numpy(), model.predict(frame[FEATURES]))
    as_csv = download(client, scientist, job["id"], "format=csv&inputs=true")
    assert len(as_csv) == ROWS and as_csv["region"].isna().sum() == frame["region"].isna().sum()
    auth.login("viewer")
    page = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert 'id="download-inputs-csv"' in page and "<code>loan_id</code> (kept from the dataset" in page
    assert client.get(f"/jobs/{job['id']}/results.csv?inputs=1").data.count(b"\n") == ROWS + 1


def test_the_disagreement_table_shows_the_ids_of_the_rows(client, auth, worker, loans):
    frame, (strong, weak) = loans
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, strong, "strong")
    upload_model(client, scientist, weak, "weak")
    dataset = upload_frame(client, scientist, frame)
    a = score(client, scientist, "strong", dataset["id"], passthrough=["loan_id"])
    b = score(client, scientist, "weak", dataset["id"], passthrough=["loan_id"])
    started = client.post("/api/v1/compare", headers=scientist, json={"jobs": [a["id"], b["id"]]})
    assert started.status_code in (200, 202), started.get_json()
    finish(client, scientist, started.get_json()["comparison"]["job"]["id"])
    body = client.get(f"/api/v1/compare?jobs={a['id']}&jobs={b['id']}", headers=scientist).get_json()
    top = body["comparison"]["result"]["disagreement"]["top"]
    assert top and all(r["ids"]["loan_id"] == frame["loan_id"][r["row"]] for r in top)
    auth.login("viewer")
    page = client.get(f"/jobs/compare?jobs={a['id']}&jobs={b['id']}").get_data(as_text=True)
    assert '<th data-id-column="loan_id">loan_id</th>' in page and f"<code>{top[0]['ids']['loan_id']}</code>" in page


def test_the_client_gives_a_dataframe_with_the_ids(live_server, auth, worker, loans, tmp_path):
    import joblib

    from viewer.client import Client

    frame, (model, _) = loans
    client = Client(live_server, auth.token("scientist"))
    joblib.dump(model, tmp_path / "loans.joblib")
    client.upload_model(tmp_path / "loans.joblib", name="loans")
    dataset = client.upload_dataset(frame)
    job = client.wait_job(client.submit_job("loans", dataset["id"], "defaulted", passthrough=["loan_id"])["id"])
    assert job["state"] == "done", job
    results = client.results(job["id"], index="loan_id")
    mine = frame.set_index("loan_id").sample(frac=1.0, random_state=2)
    np.testing.assert_array_equal(mine.join(results["prediction"])["prediction"].to_numpy(), model.predict(mine[FEATURES]))
    assert list(client.results(job["id"], inputs=True).columns[:5]) == ["loan_id", "amount", "income", "region", "defaulted"]


def test_the_scoring_form_offers_fitting_models_first_a_target_and_the_id_columns(client, auth, worker, loans):
    import re

    frame, (model, _) = loans
    scientist = auth.bearer("scientist")
    other = frame.rename(columns={"income": "salary"})
    upload_model(client, scientist, make_pipeline_for(other), "aaa-other")  # sorts first by name, lacks 'income'
    upload_model(client, scientist, model, "loans")
    dataset = upload_frame(client, scientist, frame)
    auth.login("scientist")
    page = client.get(f"/datasets/{dataset['id']}").get_data(as_text=True)
    groups = re.findall(r'<optgroup label="([^"]+)"', page)
    assert groups[0] == "loans" and groups[1] == "aaa-other · lacks salary", groups  # fitting models first
    assert re.search(r'<option selected value="defaulted">defaulted</option>', page)  # the only non-input, non-ID
    assert re.search(r'<option selected value="loan_id">loan_id</option>', page)  # the detected ID kept
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    response = client.post(f"/datasets/{dataset['id']}/score",
                           data={"csrf_token": token, "model": "loans", "target": "defaulted",
                                 "passthrough": ["", "loan_id", "region"]})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    job = client.get(f"/api/v1/jobs/{response.headers['Location'].rsplit('/', 1)[1]}", headers=scientist).get_json()
    assert job["params"]["passthrough"] == ["loan_id", "region"]


def make_pipeline_for(frame):
    """A small model over amount and salary (a column the loans table calls income)."""
    return make_pipeline(SimpleImputer(), LogisticRegression()).fit(frame[["amount", "salary"]], frame["defaulted"])
