"""?explain=true on the predict API: contributions computed in the model's host, measured from a
sample of the model's reference dataset, adding up to the model's own raw output."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from tests.realistic import FEATURES, TARGET, loan_table
from tests.support import upload_model

NUMBERS = ["amount", "income", "age"]
CATEGORIES = ["region", "employment"]


@pytest.fixture(scope="module")
def loans():
    return loan_table(800, seed=11)


def _linear(loans):
    X = loans[["loan_id", *FEATURES]]
    return make_pipeline(ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS),
        ("categories", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                     OneHotEncoder(handle_unknown="ignore")), CATEGORIES)]),
        LogisticRegression(max_iter=1000)).fit(X, loans[TARGET])


def _boosted(loans):
    """HistGradientBoosting after a ColumnTransformer: numbers as they are, strings ordinal-coded
    (unknown and missing values as -1)."""
    return make_pipeline(ColumnTransformer([
        ("numbers", "passthrough", NUMBERS),
        ("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                      encoded_missing_value=-1), CATEGORIES)]),
        HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(loans[FEATURES], loans[TARGET])


def _dataset(client, headers, loans) -> str:
    body = loans.to_csv(index=False).encode()
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(body), "loans.csv")})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def _explain(client, headers, name, rows, status=200, **query):
    response = client.post(f"/api/v1/models/{name}/predict", headers=headers,
                           query_string={"explain": "true", **query},
                           json={"dataframe_records": rows})
    assert response.status_code == status, response.get_json()
    return response.get_json()


def _records(frame):
    return [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
            for row in frame.to_dict("records")]


def _adds_up(explanations):
    for row in explanations["rows"]:
        total = row["base"] + sum(row["contributions"].values()) + row.get("other", 0.0)
        assert total == pytest.approx(row["output"], abs=1e-6)


def test_a_pipeline_is_explained_exactly_from_its_reference_dataset(client, auth, loans):
    scientist = auth.bearer("scientist")
    model = _linear(loans)
    upload_model(client, scientist, model, "loans")
    dataset = _dataset(client, scientist, loans)
    assert client.patch("/api/v1/models/loans", headers=scientist,
                        json={"monitor": {"reference": dataset}}).status_code == 200
    rows = loans[["loan_id", *FEATURES]].iloc[:5].copy()
    rows.loc[rows.index[0], "region"] = "atlantis"  # a category the model never saw
    answer = _explain(client, auth.bearer("viewer"), "loans", _records(rows), output="proba")
    explanations = answer["explanations"]
    assert explanations["method"] == "linear" and explanations["output"] == "log-odds"
    assert explanations["background"]["source"] == "dataset" and explanations["background"]["dataset"] == "loans.csv"
    assert 10 <= explanations["background"]["rows"] <= 100
    assert "not causes" in explanations["note"]
    _adds_up(explanations)
    logits = model.decision_function(rows)
    for row, logit in zip(explanations["rows"], logits):
        assert row["output"] == pytest.approx(logit, abs=1e-9)
        assert row["class"] == 1 and list(row["contributions"]) == FEATURES  # loan_id: the model drops it
    assert answer["probabilities"][0][1] == pytest.approx(1 / (1 + np.exp(-logits[0])), abs=1e-9)


def test_without_a_dataset_the_card_s_example_row_is_the_background(client, auth, loans):
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, _linear(loans), "loans")
    rows = _records(loans[["loan_id", *FEATURES]].iloc[:2])
    explanations = _explain(client, scientist, "loans", rows)["explanations"]
    assert explanations["background"] == {"source": "schema", "rows": 1}
    _adds_up(explanations)


def test_tree_models_answer_in_their_raw_output(client, auth, loans):
    scientist = auth.bearer("scientist")
    X = loans[FEATURES]
    boosted = _boosted(loans)
    upload_model(client, scientist, boosted, "boosted")
    numbers = loans[NUMBERS].fillna(0)
    forest = RandomForestRegressor(n_estimators=10, max_depth=6, random_state=0).fit(numbers, loans["income"].fillna(0))
    upload_model(client, scientist, forest, "forest")

    explanations = _explain(client, scientist, "boosted", _records(X.iloc[:3]))["explanations"]
    assert (explanations["method"], explanations["output"]) == ("tree", "log-odds")
    _adds_up(explanations)
    for row, raw in zip(explanations["rows"], boosted.decision_function(X.iloc[:3])):
        assert row["output"] == pytest.approx(raw, abs=1e-9)

    answer = _explain(client, scientist, "forest", _records(numbers.iloc[:4]))
    explanations = answer["explanations"]
    assert (explanations["method"], explanations["output"]) == ("tree", "value")
    assert [r["class"] for r in explanations["rows"]] == [None] * 4
    _adds_up(explanations)
    assert [r["output"] for r in explanations["rows"]] == pytest.approx(answer["predictions"], abs=1e-9)


def test_other_models_are_sampled_within_the_budget_and_say_so(client, auth, loans):
    scientist = auth.bearer("scientist")
    X = loans[["amount", "age", "region"]].fillna({"amount": 0, "region": "north"})
    model = make_pipeline(ColumnTransformer([("n", StandardScaler(), ["amount", "age"]),
                                             ("c", OneHotEncoder(handle_unknown="ignore"), ["region"])]),
                          KNeighborsClassifier()).fit(X, loans[TARGET])
    upload_model(client, scientist, model, "neighbours")
    explanations = _explain(client, scientist, "neighbours", _records(X.iloc[:2]))["explanations"]
    assert explanations["method"] == "sampling" and explanations["output"] == "probability"
    assert "KNeighborsClassifier" in explanations["reason"]
    used = explanations["sampling"]
    assert used["walks"] >= 2 and used["evaluations"] <= 2 * used["max_evaluations_per_row"]
    assert used["time_limit_seconds"] == 2.0
    _adds_up(explanations)
    for row, p in zip(explanations["rows"], model.predict_proba(X.iloc[:2])[:, 1]):
        assert row["output"] == pytest.approx(p, abs=1e-12)


def test_refusals_name_the_problem(client, auth, loans):
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, _linear(loans), "loans")
    rows = _records(loans[["loan_id", *FEATURES]].iloc[:101])
    too_many = _explain(client, scientist, "loans", rows, status=413)
    assert too_many["error_code"] == "TOO_MANY_ROWS" and "at most 100 rows" in too_many["message"]
    bad = _explain(client, scientist, "loans", rows[:1], status=400, explain="maybe")
    assert "'explain' must be true or false" in bad["message"]
    client.patch("/api/v1/models/loans", headers=auth.bearer("admin"), json={"anonymous_predict": True})
    anonymous = client.post("/api/v1/models/loans/predict", query_string={"explain": "true"},
                            json={"dataframe_records": rows[:1]})
    assert anonymous.status_code == 401 and "needs a token of the model's project" in anonymous.get_json()["message"]
    assert client.post("/api/v1/models/loans/predict", json={"dataframe_records": rows[:1]}).status_code == 200
    upload_model(client, scientist, KMeans(n_clusters=2, n_init=1, random_state=0).fit(np.eye(4)), "clusters")
    response = client.post("/api/v1/models/clusters/predict", headers=scientist, query_string={"explain": "true"},
                           json={"inputs": [[0, 0, 0, 1]]})
    assert response.status_code == 400 and "classifiers' and regressors'" in response.get_json()["message"]


def test_a_restarted_host_gets_the_background_again(app, client, auth, loans):
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, _linear(loans), "loans")
    rows = _records(loans[["loan_id", *FEATURES]].iloc[:1])
    first = _explain(client, scientist, "loans", rows)["explanations"]
    from viewer.services import hosts

    for key in hosts.pool().hosts():  # stopped and forgotten, as the pool does with a crashed host
        hosts.pool().discard(key)
    again = _explain(client, scientist, "loans", rows)["explanations"]
    assert again["rows"] == first["rows"]


def test_the_row_explorer_finds_a_row_by_id_or_number_and_says_why(app, client, auth, worker, loans):
    scientist = auth.bearer("scientist")
    X = loans[FEATURES]
    model = _boosted(loans)
    upload_model(client, scientist, model, "boosted")
    dataset = _dataset(client, scientist, loans.drop(columns=["opened"]))
    from tests.support import wait_for_job

    started = client.post("/api/v1/jobs", headers=scientist, json={"model": "boosted", "dataset": dataset,
                                                                   "target": TARGET})
    job = wait_for_job(client, scientist, started.get_json()["id"])
    assert job["state"] == "done", job["error"]
    viewer = auth.bearer("viewer")
    found = client.get(f"/api/v1/jobs/{job['id']}/rows", headers=viewer,
                       query_string={"column": "loan_id", "value": "L100042"})
    assert found.status_code == 200, found.get_json()
    row = found.get_json()
    assert row["row"] == 42 and row["ids"] == {"loan_id": "L100042"}
    assert row["target"] == int(loans[TARGET].iloc[42]) and row["inputs"]["employment"] == loans["employment"].iloc[42]
    assert row["prediction"] == model.predict(X.iloc[[42]])[0]
    assert row["probabilities"]["1"] == pytest.approx(model.predict_proba(X.iloc[[42]])[0, 1], abs=1e-9)
    explanations = row["explanations"]
    _adds_up(explanations)
    assert explanations["rows"][0]["output"] == pytest.approx(model.decision_function(X.iloc[[42]])[0], abs=1e-9)
    by_number = client.get(f"/api/v1/jobs/{job['id']}/rows", headers=viewer, query_string={"row": 42}).get_json()
    assert by_number["explanations"]["rows"] == explanations["rows"]

    for query, status, words in (({"row": 800}, 404, "rows 0 to 799"), ({"column": "loan_id", "value": "nope"}, 404,
                                 "No row of this job has loan_id = 'nope'"),
                                 ({"column": "amount", "value": "1"}, 400, "passthrough columns (loan_id)")):
        refused = client.get(f"/api/v1/jobs/{job['id']}/rows", headers=viewer, query_string=query)
        assert refused.status_code == status and words in refused.get_json()["message"], refused.get_json()

    auth.login("viewer")
    page = client.get(f"/jobs/{job['id']}/row?column=loan_id&value=L100042")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Row 42" in html and 'id="why"' in html and "TreeSHAP" in html
    what_if = re.search(r'id="what-if" href="([^"]+)"|href="([^"]+)" id="what-if"', html)
    link = (what_if.group(1) or what_if.group(2)).replace("&amp;", "&")
    assert "f:employment=" + loans["employment"].iloc[42] in link
    prefilled = client.get(link).get_data(as_text=True)
    assert f'value="{loans["amount"].iloc[42]}"' in prefilled
    assert client.get(f"/jobs/{job['id']}/row?value=abc").status_code == 400
