"""Partial dependence jobs: the curves are scikit-learn's partial_dependence of the model on the
job's sample (here every row), categorical inputs with missing values included; refusals name
the problem; the version page offers the form and the job page draws the curves."""

from __future__ import annotations

import io

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import partial_dependence
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.realistic import FEATURES, TARGET, loan_table
from tests.support import post_form, upload_model, wait_for_job


@pytest.fixture
def dependent(client, auth, worker):
    loans = loan_table(600, seed=13).drop(columns=["opened"])
    X = loans[["loan_id", *FEATURES]]
    model = make_pipeline(ColumnTransformer([
        ("numbers", SimpleImputer(), ["amount", "income", "age"]),
        ("categories", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                     OneHotEncoder(handle_unknown="ignore")), ["region", "employment"])]),
        HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(X, loans[TARGET])
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    response = client.post("/api/v1/datasets", headers=scientist, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(loans.to_csv(index=False).encode()), "loans.csv")})
    return loans, model, response.get_json()["id"]


def test_curves_are_scikit_learn_s_on_the_sample(client, auth, dependent):
    loans, model, dataset = dependent
    scientist = auth.bearer("scientist")
    started = client.post("/api/v1/jobs", headers=scientist, json={
        "kind": "dependence", "model": "loans", "dataset": dataset, "features": ["age", "region"],
        "pair": ["age", "employment"], "grid": 12})
    assert started.status_code == 202, started.get_json()
    job = wait_for_job(client, scientist, started.get_json()["id"])
    assert job["state"] == "done", job["error"]
    result = job["result"]
    assert result["rows"] == len(loans) and result["output"] == {"what": "probability", "classes": [1]}
    X = loans[["loan_id", *FEATURES]]
    age, region = result["features"]
    grid = np.linspace(*np.percentile(X["age"], [5, 95]), 12)  # the 5th to the 95th percentile
    assert age["grid"] == pytest.approx(grid.tolist())
    expected = partial_dependence(model, X, ["age"], kind="average", custom_values={"age": grid})
    assert age["average"][0] == pytest.approx(expected["average"][0].tolist(), abs=1e-9)
    assert len(age["ice"]) == 50 and len(age["ice"][0]) == 12 and sum(age["distribution"]["counts"]) == len(loans)
    categories = X["region"].dropna().value_counts().index.tolist()  # missing values are not a grid point
    expected = partial_dependence(model, X, ["region"], kind="average", categorical_features=["region"],
                                  custom_values={"region": np.asarray(categories, dtype=object)})
    assert region["categorical"] and region["grid"] == categories
    assert region["average"][0] == pytest.approx(expected["average"][0].tolist(), abs=1e-9)
    assert region["distribution"]["missing"] == X["region"].isna().sum()
    assert np.asarray(result["pair"]["average"][0]).shape == (12, 4)

    auth.login("viewer")
    html = client.get(f"/jobs/{job['id']}").get_data(as_text=True)
    assert 'id="pd-0"' in html and 'id="pd-1"' in html and 'id="pd-pair"' in html and "describe the model" in html


def test_a_regressor_and_an_input_with_missing_values(client, auth, dependent):
    from sklearn.ensemble import RandomForestRegressor

    loans, _model, dataset = dependent
    scientist = auth.bearer("scientist")
    X = loans[["amount", "income", "age"]]
    forest = RandomForestRegressor(n_estimators=10, max_depth=5, random_state=0).fit(X.fillna(0), loans["age"])
    regressor = make_pipeline(SimpleImputer(), forest).fit(X, loans["age"])
    upload_model(client, scientist, regressor, "ages")
    started = client.post("/api/v1/jobs", headers=scientist, json={"kind": "dependence", "model": "ages",
                                                                   "dataset": dataset, "features": ["income"]})
    job = wait_for_job(client, scientist, started.get_json()["id"])
    assert job["state"] == "done", job["error"]
    income = job["result"]["features"][0]
    assert job["result"]["output"] == {"what": "prediction", "classes": None}
    assert all(v is not None for v in income["grid"])  # income has missing values: none is a grid point
    expected = partial_dependence(regressor, X, ["income"], kind="average",
                                  custom_values={"income": np.asarray(income["grid"])})
    assert income["average"][0] == pytest.approx(expected["average"][0].tolist(), abs=1e-9)



def test_refusals_and_the_version_page_form(client, auth, dependent):
    _loans, _model, dataset = dependent
    scientist = auth.bearer("scientist")
    for body, words in (({"features": ["nope"]}, "'nope' is not one of the model's inputs"),
                        ({"features": ["age"], "pair": ["age", "age"]}, "two different inputs"),
                        ({"features": ["age"], "grid": 1}, "grid must be between 2 and 100"),
                        ({"features": ["loan_id"]}, "is not one of the model's inputs")):
        refused = client.post("/api/v1/jobs", headers=scientist,
                              json={"kind": "dependence", "model": "loans", "dataset": dataset, **body})
        assert refused.status_code == 400 and words in refused.get_json()["message"], refused.get_json()
    auth.login("scientist")
    page = client.get("/models/loans/versions/1").get_data(as_text=True)
    assert 'id="dependence-form"' in page and '<option value="loan_id"' not in page.split('id="dependence-form"')[1][:3000]
    response = post_form(client, auth, "/models/loans/versions/1", "/models/loans/versions/1/dependence",
                         dataset=dataset, features="income")
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
