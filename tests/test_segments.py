"""A scoring job with a target measures its model per segment, finds where it is weak, and shows
fairness per group: through the API, a real worker and the job page, on a loan table with IDs,
strings and missing values, where the labels of old applicants in the south were made noise."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.realistic import FEATURES, TARGET, loan_table
from tests.support import upload_model, wait_for_job

NUMBERS = ["amount", "income", "age"]
CATEGORIES = ["region", "employment"]


@pytest.fixture(scope="module")
def loans():
    frame = loan_table(6000, seed=31).drop(columns=["opened"])
    noisy = ((frame["region"] == "south") & (frame["age"] >= 60)).to_numpy()
    rng = np.random.default_rng([31, 1])
    frame.loc[noisy, TARGET] = rng.integers(0, 2, noisy.sum())  # the model cannot learn these
    return frame


@pytest.fixture
def scored(client, auth, worker, loans):
    scientist = auth.bearer("scientist")
    train = loans.iloc[:3000]
    model = make_pipeline(ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS),
        ("categories", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                     OneHotEncoder(handle_unknown="ignore")), CATEGORIES)]),
        LogisticRegression(max_iter=2000)).fit(train[FEATURES], train[TARGET])
    upload_model(client, scientist, model, "loans")
    test = loans.iloc[3000:].reset_index(drop=True)
    response = client.post("/api/v1/datasets", headers=scientist, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(test.to_csv(index=False).encode()), "loans.csv")})
    dataset = response.get_json()["id"]
    started = client.post("/api/v1/jobs", headers=scientist, json={
        "model": "loans", "dataset": dataset, "target": TARGET, "segments": [
            {"name": "old in the south", "conditions": [{"column": "region", "op": "==", "value": "south"},
                                                        {"column": "age", "op": ">=", "value": 60}]}]})
    assert started.status_code == 202, started.get_json()
    job = wait_for_job(client, scientist, started.get_json()["id"])
    assert job["state"] == "done", job["error"]
    return job, model, test, dataset


def test_segments_equal_scikit_learn_and_the_planted_weak_segment_is_found(client, auth, scored):
    job, model, test, _dataset = scored
    found = job["result"]["segments"]
    proba = model.predict_proba(test[FEATURES])[:, 1]
    predicted = model.predict(test[FEATURES])
    y = test[TARGET].to_numpy()
    south = next(e for e in found["segments"] if e["column"] == "region" and e["label"] == "south")
    rows = (test["region"] == "south").to_numpy()
    assert south["rows"] == rows.sum()
    assert south["metric"] == pytest.approx(accuracy_score(y[rows], predicted[rows]), abs=1e-12)
    assert south["roc_auc"] == pytest.approx(roc_auc_score(y[rows], proba[rows]), abs=1e-3)
    missing = next(e for e in found["segments"] if e["column"] == "region" and e["label"] == "missing")
    assert missing["rows"] == test["region"].isna().sum()
    defined = next(e for e in found["segments"] if e["label"] == "old in the south")
    planted = ((test["region"] == "south") & (test["age"] >= 60)).to_numpy()
    assert defined["kind"] == "defined" and defined["rows"] == planted.sum()
    assert defined["metric"] == pytest.approx(accuracy_score(y[planted], predicted[planted]), abs=1e-12)
    weak = found["weak"]["found"]

    def planted_in(conditions) -> bool:  # region = south (alone or with age), or the defined segment
        return any((c["column"], c["label"]) in (("region", "south"), (None, "old in the south")) for c in conditions)

    assert weak and planted_in(weak[0]["conditions"]), weak[:3]
    assert "loan_id" not in {e["column"] for e in found["segments"]}  # an ID column is not a segment

    auth.login("viewer")
    html = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert 'id="segments"' in html and 'id="weak-segments"' in html and "old in the south" in html


def test_fairness_on_the_job_page_equals_fairlearn_s(client, auth, scored):
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    job, model, test, _dataset = scored
    decided = (model.predict_proba(test[FEATURES])[:, 1] >= 0.5).astype(int)
    y = test[TARGET].to_numpy()
    auth.login("viewer")
    html = client.get(f"/jobs/{job['id']}?sensitive=employment").get_data(as_text=True)
    dpd = demographic_parity_difference(y, decided, sensitive_features=test["employment"])
    eod = equalized_odds_difference(y, decided, sensitive_features=test["employment"])
    assert f'<strong id="dpd">{dpd:.4f}</strong>' in html and f'<strong id="eod">{eod:.4f}</strong>' in html
    both = client.get(f"/jobs/{job['id']}?sensitive=employment&sensitive=region").get_data(as_text=True)
    assert "salaried &amp; south" in both or "salaried & south" in both
    bad = client.get(f"/jobs/{job['id']}?sensitive=amount").get_data(as_text=True)
    assert "Choose categorical columns" in bad


def test_segments_are_refused_with_the_reason(client, auth, scored):
    _job, _model, _test, dataset = scored
    scientist = auth.bearer("scientist")
    for body, words in (
            ({"target": TARGET, "segments": [{"name": "x", "conditions": [{"column": "nope", "op": "==", "value": 1}]}]},
             "names a column of the dataset"),
            ({"target": TARGET, "segments": [{"name": "x", "conditions": [{"column": "age", "op": "<", "value": "old"}]}]},
             "compares with a number"),
            ({"segments": [{"name": "x", "conditions": [{"column": "age", "op": "<", "value": 3}]}]},
             "measured against a target")):
        refused = client.post("/api/v1/jobs", headers=scientist, json={"model": "loans", "dataset": dataset, **body})
        assert refused.status_code == 400 and words in refused.get_json()["message"], refused.get_json()
