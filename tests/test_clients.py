"""Real third-party clients against a live server: MLflow's scoring-server client and tritonclient."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import joblib
import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression


@pytest.fixture
def iris_registered(client, auth):
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    model = LogisticRegression(max_iter=500).fit(X, data.target)
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    response = client.post("/api/v1/models", headers=auth.bearer("scientist"), content_type="multipart/form-data",
                           data={"file": (io.BytesIO(buffer.getvalue()), "m.joblib"), "name": "iris"})
    assert response.status_code == 201
    # MLflow's client sends no Authorization header: an admin opens this model for anonymous use.
    client.patch("/api/v1/models/iris", headers=auth.bearer("admin"), json={"anonymous_predict": True})
    return X, model


@pytest.mark.filterwarnings("ignore:.*Any type hint is inferred:UserWarning")
def test_mlflow_scoring_server_client(app, live_server, iris_registered):
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    X, model = iris_registered
    app.config["SERVE_MODEL"] = "iris"
    url = urlsplit(live_server)
    client = ScoringServerClient(url.hostname, url.port)
    client.wait_server_ready(timeout=10)
    rows = X.iloc[:6]
    result = client.invoke(rows)
    np.testing.assert_array_equal(result.get_predictions(predictions_format="ndarray"), model.predict(rows))
    proba = client.invoke(rows, params={"predict_method": "predict_proba"})
    np.testing.assert_allclose(proba.get_predictions(predictions_format="ndarray"), model.predict_proba(rows))


@pytest.mark.parametrize("binary", [True, False])
def test_tritonclient_http(live_server, auth, iris_registered, binary):
    import tritonclient.http as httpclient

    X, model = iris_registered
    rows = X.iloc[:7].to_numpy()
    client = httpclient.InferenceServerClient(url=urlsplit(live_server).netloc)
    headers = auth.bearer("viewer")
    assert client.is_server_live() and client.is_model_ready("iris", headers=headers)
    metadata = client.get_model_metadata("iris", headers=headers)
    assert metadata["platform"] == "scikit-learn"

    tensor = httpclient.InferInput("input-0", list(rows.shape), "FP64")
    tensor.set_data_from_numpy(rows, binary_data=binary)
    outputs = [httpclient.InferRequestedOutput("predict_proba", binary_data=binary),
               httpclient.InferRequestedOutput("predict", binary_data=binary)]
    result = client.infer("iris", [tensor], outputs=outputs, headers=headers)
    frame = X.iloc[:7]
    np.testing.assert_allclose(result.as_numpy("predict_proba"), model.predict_proba(frame))
    np.testing.assert_array_equal(result.as_numpy("predict"), model.predict(frame))

    columns = []
    for name in X.columns:  # one input per column, FP32 this time
        column = httpclient.InferInput(name, [7], "FP32")
        column.set_data_from_numpy(X[name].iloc[:7].to_numpy(np.float32), binary_data=binary)
        columns.append(column)
    by_column = client.infer("iris", columns, model_version="1", headers=headers)
    np.testing.assert_array_equal(by_column.as_numpy("predict"),
                                  model.predict(X.iloc[:7].astype(np.float32)))
