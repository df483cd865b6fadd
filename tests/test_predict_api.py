"""Prediction routes: v1, MLflow-compatible and Open Inference Protocol, on a real app."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.support import upload_model


@pytest.fixture(scope="module")
def iris():
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    y = data.target_names[data.target]
    return X, y, LogisticRegression(max_iter=500).fit(X, y)


def register(client, headers, model, name="iris"):
    return upload_model(client, headers, model, name)


@pytest.fixture
def served(client, auth, iris):
    register(client, auth.bearer("scientist"), iris[2])
    return auth.bearer("viewer")


def test_v1_predict_and_proba_equal_the_model(client, served, iris):
    X, _y, model = iris
    rows = X.iloc[::15]
    body = {"dataframe_records": rows.to_dict("records")}
    response = client.post("/api/v1/models/iris/predict", headers=served, json=body)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["predictions"] == model.predict(rows).tolist()
    assert response.get_json()["model"] == "iris/1"
    proba = client.post("/api/v1/models/iris/predict?output=proba", headers=served, json=body).get_json()
    assert proba["classes"] == ["setosa", "versicolor", "virginica"]
    np.testing.assert_allclose(proba["probabilities"], model.predict_proba(rows))
    assert proba["predictions"] == model.predict(rows).tolist()


def test_v1_answer_is_jsonify_shaped_with_the_usual_headers(client, served, iris):
    """The answer is written by orjson: compact JSON and a final newline, like jsonify, with the
    security headers once each and no rate-limit headers (the limiter does not run on the API)."""
    X, _y, model = iris
    response = client.post("/api/v1/models/iris/predict?output=proba", headers=served,
                           json={"dataframe_split": X.iloc[:2].to_dict("split")})
    assert response.status_code == 200 and response.mimetype == "application/json"
    raw = response.get_data()
    assert raw.endswith(b"}\n") and b": " not in raw and b", " not in raw
    keys = ["model", "request_id", "predictions", "classes", "probabilities", "warnings"]
    assert list(response.get_json()) == (sorted(keys) if client.application.json.sort_keys else keys)
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy"):
        assert len(response.headers.getlist(name)) == 1, name
    assert not [h for h in response.headers.keys() if h.lower().startswith(("x-ratelimit", "retry-after"))]
    assert "Set-Cookie" not in response.headers and "Vary" not in response.headers


def test_v1_many_rows_in_another_column_order(client, served, iris):
    X, _y, model = iris
    rows = X.sample(3000, replace=True, random_state=0)
    shuffled = rows[list(reversed(X.columns))]
    proba = client.post("/api/v1/models/iris/predict?output=proba", headers=served,
                        json={"dataframe_split": shuffled.to_dict("split")}).get_json()
    np.testing.assert_allclose(proba["probabilities"], model.predict_proba(rows), rtol=1e-12)
    assert proba["predictions"] == model.predict(rows).tolist()


def test_v1_bodies_only_json_reads(client, served, iris):
    """NaN literals and integers beyond 64 bits are read as Python's json reads them."""
    nan = client.post("/api/v1/models/iris/predict", headers={**served, "Content-Type": "application/json"},
                      data=b'{"instances": [[5.1, 3.5, NaN, 0.2]]}')
    assert nan.status_code == 400 and nan.get_json()["error_code"] == "MISSING_VALUES"
    assert "petal_length" in nan.get_json()["message"]
    huge = client.post("/api/v1/models/iris/predict", headers={**served, "Content-Type": "application/json"},
                       data=b'{"instances": [[5.1, 3.5, 1' + b"0" * 400 + b', 0.2]]}')
    assert huge.status_code == 400 and huge.get_json()["error_code"] == "INVALID_TYPE"


def test_v1_addressing_by_version_and_alias(client, auth, served, iris):
    register(client, auth.bearer("scientist"), Ridge().fit(iris[0], np.arange(len(iris[0]))), name="iris")
    client.put("/api/v1/models/iris/aliases/production", headers=auth.bearer("scientist"), json={"version": 1})
    body = {"dataframe_split": iris[0].iloc[:2].to_dict("split")}
    assert client.post("/api/v1/models/iris/versions/1/predict", headers=served, json=body).get_json()["model"] == "iris/1"
    assert client.post("/api/v1/models/iris@production/predict", headers=served, json=body).get_json()["model"] == "iris/1"
    latest = client.post("/api/v1/models/iris/predict", headers=served, json=body).get_json()
    assert latest["model"] == "iris/2" and isinstance(latest["predictions"][0], float)


@pytest.mark.parametrize("body, status, code, needle", [
    ({"dataframe_records": [{"sepal_length": 1.0}]}, 400, "SCHEMA_MISMATCH", "Missing columns"),
    ({"instances": [[1, 2, None, 4]]}, 400, "MISSING_VALUES", "petal_length"),
    ({"instances": [[1, 2, "x", 4]]}, 400, "INVALID_TYPE", "petal_length"),
    ({"instances": []}, 400, "BAD_REQUEST", "no rows"),
    ({}, 400, "BAD_REQUEST", "exactly one of"),
])
def test_v1_bad_input_is_400_json_without_echo(client, served, body, status, code, needle):
    response = client.post("/api/v1/models/iris/predict", headers=served, json=body)
    assert response.status_code == status
    error = response.get_json()
    assert error["error_code"] == code and needle in error["message"]
    assert "Traceback" not in response.get_data(as_text=True) and '"x"' not in error["message"]


def test_v1_unsupported_content_type_is_415(client, served):
    response = client.post("/api/v1/models/iris/predict", headers=served, data=b"1,2", content_type="text/plain")
    assert response.status_code == 415


def test_v1_too_many_rows_is_413_with_a_hint(client, served):
    rows = [[1.0, 2.0, 3.0, 4.0]] * 100_001
    response = client.post("/api/v1/models/iris/predict", headers=served, json={"instances": rows})
    assert response.status_code == 413 and "scoring job" in response.get_json()["message"]


def test_unknown_model_is_404(client, served):
    assert client.post("/api/v1/models/nope/predict", headers=served, json={"instances": [[1]]}).status_code == 404


def test_predict_needs_a_token_unless_an_admin_opens_the_model(client, auth, served):
    body = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
    assert client.post("/api/v1/models/iris/predict", json=body).status_code == 401
    client.patch("/api/v1/models/iris", headers=auth.bearer("admin"), json={"anonymous_predict": True})
    response = client.post("/api/v1/models/iris/predict", json=body)
    assert response.status_code == 200 and response.get_json()["predictions"] == ["setosa"]
    # Anonymous access covers predictions only, never the registry.
    assert client.get("/api/v1/models/iris").status_code == 401


def test_pipeline_with_categories(client, auth):
    frame = pd.DataFrame({"age": [22, 35, 47, 51, 62, 33] * 5, "plan": ["free", "pro", "team"] * 10})
    y = [0, 1, 1, 0, 1, 0] * 5
    model = make_pipeline(ColumnTransformer([("num", StandardScaler(), ["age"]),
                                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["plan"])]),
                          LogisticRegression()).fit(frame, y)
    register(client, auth.bearer("scientist"), model, name="churn")
    response = client.post("/api/v1/models/churn/predict?output=proba", headers=auth.bearer("viewer"),
                           json={"dataframe_records": frame.iloc[:4].to_dict("records")})
    assert response.status_code == 200, response.get_json()
    np.testing.assert_allclose(response.get_json()["probabilities"], model.predict_proba(frame.iloc[:4]))


# --- MLflow scoring-server compatibility ---------------------------------------------------------

@pytest.fixture
def mlflow_app(make_app, client, auth, iris):
    register(client, auth.bearer("scientist"), iris[2])
    return make_app(SERVE_MODEL="iris")


def test_invocations_accepts_every_mlflow_body(mlflow_app, auth, iris):
    X, _y, model = iris
    rows = X.iloc[:3]
    headers = auth.bearer("viewer")
    client = mlflow_app.test_client()
    expected = model.predict(rows).tolist()
    for body in ({"dataframe_split": rows.to_dict("split")}, {"dataframe_records": rows.to_dict("records")},
                 {"instances": rows.to_dict("records")}, {"inputs": rows.to_dict("list")}):
        response = client.post("/invocations", headers=headers, json=body)
        assert response.get_json() == {"predictions": expected}, body
    csv = client.post("/invocations", headers=headers, data=rows.to_csv(index=False), content_type="text/csv")
    assert csv.get_json() == {"predictions": expected}
    proba = client.post("/invocations", headers=headers,
                        json={"inputs": rows.to_dict("list"), "params": {"predict_method": "predict_proba"}})
    np.testing.assert_allclose(proba.get_json()["predictions"], model.predict_proba(rows))
    assert client.post("/invocations", headers=headers, data="x", content_type="text/plain").status_code == 415
    assert client.post("/invocations", headers=headers, data="{", content_type="application/json").status_code == 400
    for path in ("/ping", "/health", "/version"):
        assert client.get(path).status_code == 200


def test_invocations_without_a_served_model_is_404(client, served):
    assert client.post("/invocations", headers=served, json={"instances": [[1]]}).status_code == 404


# --- Open Inference Protocol (KServe V2) ---------------------------------------------------------

def test_v2_metadata_and_health(client, served):
    assert client.get("/v2/health/live").get_json() == {"live": True}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    meta = client.get("/v2/models/iris", headers=served).get_json()
    assert meta["name"] == "iris" and meta["versions"] == ["1"]
    assert [i["name"] for i in meta["inputs"]] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert {o["name"] for o in meta["outputs"]} == {"predict", "predict_proba"}
    assert client.get("/v2/models/iris/versions/1/ready", headers=served).get_json() == {"name": "iris", "ready": True}
    assert client.get("/v2/models/iris", headers={}).status_code == 401


def test_v2_infer_tensor_and_per_column(client, served, iris):
    X, _y, model = iris
    rows = X.iloc[:5]
    tensor = {"id": "r1", "inputs": [{"name": "input-0", "shape": [5, 4], "datatype": "FP64",
                                      "data": rows.to_numpy().ravel().tolist()}],
              "outputs": [{"name": "predict_proba"}]}
    response = client.post("/v2/models/iris/infer", headers=served, json=tensor).get_json()
    assert response["id"] == "r1" and response["model_version"] == "1"
    out = response["outputs"][0]
    assert out["shape"] == [5, 3]
    np.testing.assert_allclose(np.array(out["data"]).reshape(5, 3), model.predict_proba(rows))
    per_column = {"inputs": [{"name": c, "shape": [5], "datatype": "FP64", "data": rows[c].tolist()} for c in rows]}
    outputs = client.post("/v2/models/iris/versions/1/infer", headers=served, json=per_column).get_json()["outputs"]
    assert outputs[0]["name"] == "predict" and outputs[0]["data"] == model.predict(rows).tolist()
    bad = client.post("/v2/models/iris/infer", headers=served,
                      json={"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64", "data": [1, 2]}]})
    assert bad.status_code == 400 and "values for shape" in bad.get_json()["message"]


# --- one request path: predictions go through Flask's own machinery ------------------------------

@pytest.mark.parametrize("path, headers, body, status", [
    ("/api/v1/models/iris/predict", {"Authorization": None}, b'{"instances": [[1, 2, 3, 4]]}', 401),
    ("/api/v1/models/iris/predict", {"Authorization": "Bearer nope"}, b'{"instances": [[1, 2, 3, 4]]}', 401),
    ("/api/v1/models/iris/predict", None, b'{"instances": [[1, 2, 3, 4]', 400),  # malformed
    ("/api/v1/models/iris/predict", None, b'{"instances": [[1, 2, NaN, 4]]}', 400),  # missing value
    ("/api/v1/models/iris/predict", None, b'{"dataframe_records": [{"sepal_length": 1}]}', 400),  # schema
    ("/api/v1/models/iris/predict", {"Content-Type": "text/plain"}, b"1,2,3,4", 415),
    ("/api/v1/models/iris/predict", {"Content-Type": "application/x-www-form-urlencoded"}, b"a=1", 415),
    ("/api/v1/models/iris/predict?output=bad", None, b'{"instances": [[1, 2, 3, 4]]}', 400),
    ("/api/v1/models/nope/predict", None, b'{"instances": [[1, 2, 3, 4]]}', 404),
    ("/api/v1/models/iris/predict/", None, b'{"instances": [[1, 2, 3, 4]]}', 404),
    ("/invocations", None, b'{"instances": [[1, 2, 3, 4]]}', 404),  # no VIEWER_SERVE_MODEL here
    ("/api/v1/models/iris/versions/1/predict", None, b'{"instances": [[1, 2, 3, 4]]}', 200),
    ("/api/v1/models/iris/predict?output=proba&x=1", None, b'{"instances": [[1, 2, 3, 4]]}', 200),
])
def test_predict_answers_and_refusals_with_warm_caches(client, served, path, headers, body, status):
    json_headers = {**served, "Content-Type": "application/json"}
    client.post("/api/v1/models/iris/predict", headers=json_headers, data=b'{"instances": [[1, 2, 3, 4]]}')
    headers = {k: v for k, v in {**json_headers, **(headers or {})}.items() if v is not None}
    response = client.post(path, headers=headers, data=body)
    assert response.status_code == status
    if status != 200:
        assert set(response.get_json()) == {"error_code", "message"}


def test_a_revoked_token_is_refused_at_once_with_warm_caches(client, served):
    json_headers = {**served, "Content-Type": "application/json"}
    body = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
    assert client.post("/api/v1/models/iris/predict", headers=json_headers, data=body).status_code == 200
    token_id = client.get("/api/v1/tokens", headers=served).get_json()["tokens"][0]["id"]
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=served).status_code in (200, 204)
    assert client.post("/api/v1/models/iris/predict", headers=json_headers, data=body).status_code == 401


def test_every_prediction_runs_the_apps_request_hooks(make_app, served):
    """No second request pipeline: a hook added to the app runs for predictions too."""
    from flask import abort, request

    app = make_app()

    @app.before_request
    def teapot():
        if request.path.endswith("/predict") or request.path == "/invocations":
            abort(418)

    client = app.test_client()
    for _ in range(2):  # the second time with the token and the model in the caches
        response = client.post("/api/v1/models/iris/predict", headers=served,
                               json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
        assert response.status_code == 418
