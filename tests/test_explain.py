"""?explain=true on the predict API: contributions computed in the model's host, measured from a
sample of the model's reference dataset, adding up to the model's own raw output."""

from __future__ import annotations

import io

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
        assert row["class"] == 1 and list(row["contributions"]) == ["loan_id", *FEATURES]
        assert row["contributions"]["loan_id"] == 0  # the model drops it
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
    boosted = make_pipeline(ColumnTransformer([
        ("numbers", "passthrough", NUMBERS),
        ("categories", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1,
                                      encoded_missing_value=-1), CATEGORIES)]),
        HistGradientBoostingClassifier(max_iter=20, random_state=0)).fit(X, loans[TARGET])
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

    for host in hosts.pool().hosts().values():
        host.kill()
    again = _explain(client, scientist, "loans", rows)["explanations"]
    assert again["rows"] == first["rows"]
