"""The prediction log: every row served by every route is recorded, with the model's settings."""

from __future__ import annotations

import hashlib
import hmac
import io
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.support import upload_model
from tests.test_predict_api import iris  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def loans():
    """Messy data as users have it: text categories with missing values, a column selector."""
    rng = np.random.default_rng(3)
    n = 300
    X = pd.DataFrame({"income": rng.normal(50_000, 15_000, n).round(0),
                      "age": rng.integers(18, 80, n).astype(float),
                      "region": rng.choice(["north", "south", "east", None], n).astype(object),
                      "customer_id": [f"C{i:05d}" for i in range(n)]})
    y = (X["income"] > 50_000).astype(int)
    features = X.drop(columns="customer_id")
    model = make_pipeline(
        ColumnTransformer([("num", SimpleImputer(), make_column_selector(dtype_include="number")),
                           ("cat", make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                                                 OneHotEncoder(handle_unknown="ignore")), ["region"])]),
        LogisticRegression(max_iter=1000)).fit(features, y)
    return features, y, model


def log_of(app, name: str, **kwargs):
    from viewer.infra.records import RegisteredModel
    from viewer.services import logfiles, predlog

    predlog.flush()
    with app.app_context():
        model = RegisteredModel.query.filter_by(name=name).one()
        return logfiles.read(model.id, **kwargs)


def test_v1_rows_are_logged_with_ids_outputs_and_inputs(app, client, auth, iris):
    X, _y, model = iris
    upload_model(client, auth.bearer("scientist"), model, "iris")
    rows = X.iloc[[0, 60, 120]]
    before = datetime.now(UTC).replace(tzinfo=None)
    response = client.post("/api/v1/models/iris/predict?output=proba", headers=auth.bearer("viewer"),
                           json={"dataframe_records": rows.to_dict("records")})
    assert response.status_code == 200, response.get_json()
    request_id = response.get_json()["request_id"]
    assert response.headers["X-Request-ID"] == request_id
    parsed = uuid.UUID(request_id)
    assert parsed.version == 7  # time-ordered, and carries its time
    from viewer.core.predlog import request_time
    assert abs((request_time(request_id) - before).total_seconds()) < 5

    table = log_of(app, "iris")
    assert table.num_rows == 3
    assert table.column("request_id").to_pylist() == [request_id] * 3
    assert table.column("row").to_pylist() == [0, 1, 2]
    assert table.column("route").to_pylist() == ["v1"] * 3
    assert table.column("version").to_pylist() == [1] * 3
    assert table.column("prediction").to_pylist() == model.predict(rows).tolist()
    np.testing.assert_allclose(np.array(table.column("proba").to_pylist()), model.predict_proba(rows))
    inputs = pd.DataFrame(table.column("inputs").to_pylist())
    pd.testing.assert_frame_equal(inputs, rows.reset_index(drop=True))
    assert all(v >= 0 for v in table.column("latency_ms").to_pylist())
    at = table.column("at").to_pylist()[0]
    assert at.tzinfo is not None and abs((at.replace(tzinfo=None) - before).total_seconds()) < 5


def test_every_route_logs_under_its_name(app, client, auth, iris):
    X, _y, model = iris
    upload_model(client, auth.bearer("scientist"), model, "iris")
    headers = auth.bearer("viewer")
    row = X.iloc[:1]
    app.config["SERVE_MODEL"] = "iris"
    assert client.post("/invocations", headers=headers, json={"dataframe_split": row.to_dict("split")}).status_code == 200
    v2 = client.post("/v2/models/iris/infer", headers=headers, json={"inputs": [
        {"name": c, "shape": [1], "datatype": "FP64", "data": [float(row[c].iloc[0])]} for c in row.columns]})
    assert v2.status_code == 200, v2.get_json()
    assert v2.headers["X-Request-ID"]
    auth.login("viewer")
    token = auth.csrf_token("/models/iris/versions/1/predict")
    page = client.post("/models/iris/versions/1/predict", data={
        "csrf_token": token, "mode": "fields", **{f"f:{c}": str(row[c].iloc[0]) for c in row.columns}})
    assert page.status_code == 200
    table = log_of(app, "iris")
    assert sorted(table.column("route").to_pylist()) == ["mlflow", "page", "v2"]
    assert set(table.column("prediction").to_pylist()) == {model.predict(row)[0]}


def test_client_request_ids_are_echoed_and_a_reused_one_is_refused(app, client, auth, iris):
    X, _y, model = iris
    upload_model(client, auth.bearer("scientist"), model, "iris")
    upload_model(client, auth.bearer("scientist"), model, "iris-b")
    headers = {**auth.bearer("viewer"), "X-Request-ID": "order-1234/attempt-1"}
    body = {"dataframe_split": X.iloc[:2].to_dict("split")}
    first = client.post("/api/v1/models/iris/predict", headers=headers, json=body)
    assert first.status_code == 200
    assert first.get_json()["request_id"] == "order-1234/attempt-1" == first.headers["X-Request-ID"]
    again = client.post("/api/v1/models/iris/predict", headers=headers, json=body)
    assert again.status_code == 409
    assert again.get_json()["error_code"] == "request_id_reused"
    assert "send a new X-Request-ID" in again.get_json()["message"]
    assert client.post("/api/v1/models/iris-b/predict", headers=headers, json=body).status_code == 200  # another model
    bad = client.post("/api/v1/models/iris/predict", headers={**headers, "X-Request-ID": "has space"}, json=body)
    assert bad.status_code == 400 and "X-Request-ID must be" in bad.get_json()["message"]
    # A refused request does not take the id: the client can send it again once its input is right.
    wrong = client.post("/api/v1/models/iris/predict", headers={**headers, "X-Request-ID": "r2"},
                        json={"dataframe_split": {"columns": ["x"], "data": [[1]]}})
    assert wrong.status_code == 400 and wrong.headers["X-Request-ID"] == "r2"
    assert client.post("/api/v1/models/iris/predict", headers={**headers, "X-Request-ID": "r2"},
                       json=body).status_code == 200
    table = log_of(app, "iris")
    assert sorted(set(table.column("request_id").to_pylist())) == ["order-1234/attempt-1", "r2"]


def test_pipeline_inputs_are_logged_as_validated_with_missing_and_unseen_values(app, client, auth, loans):
    X, _y, model = loans
    upload_model(client, auth.bearer("scientist"), model, "loans")
    rows = [{"income": 42000.5, "age": None, "region": "west", "customer_id": "C1"},  # unseen category, missing
            {"income": "61000", "age": 30, "region": None, "customer_id": "C2"}]
    response = client.post("/api/v1/models/loans/predict", headers=auth.bearer("viewer"),
                           json={"dataframe_records": rows})
    assert response.status_code == 200, response.get_json()
    table = log_of(app, "loans")
    inputs = table.column("inputs").to_pylist()
    assert inputs[0]["income"] == 42000.5 and np.isnan(inputs[0]["age"]) and inputs[0]["region"] == "west"
    assert inputs[1]["income"] == 61000.0 and inputs[1]["age"] == 30.0 and inputs[1]["region"] is None
    assert "customer_id" not in inputs[0]  # not a model input
    assert table.column("prediction").to_pylist() == [str(p) for p in response.get_json()["predictions"]]


def test_sampling_excluding_and_hashing_follow_the_model_settings(app, client, auth, loans):
    X, _y, model = loans
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    changed = client.patch("/api/v1/models/loans", headers=scientist,
                           json={"log": {"sample": 0.5, "exclude": ["age"], "hash": ["region"], "retention_days": 7}})
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["log"] == {"enabled": True, "sample": 0.5, "exclude": ["age"], "hash": ["region"],
                                         "retention_days": 7}
    from viewer.services import serving
    serving.forget()
    rows = X.iloc[:400].to_dict("records")
    assert client.post("/api/v1/models/loans/predict", headers=scientist,
                       json={"dataframe_records": rows}).status_code == 200
    table = log_of(app, "loans")
    inputs = table.column("inputs").to_pylist()
    kept = [r for r in inputs if r is not None]
    assert table.num_rows == 300 and 100 < len(kept) < 200  # about half the rows' inputs
    assert all(set(r) == {"income", "region"} for r in kept)
    with app.app_context():
        from viewer.services import predlog
        key = predlog.hash_key()
    for row, original in zip(inputs, rows):
        if row is not None:
            expected = None if pd.isna(original["region"]) else \
                hmac.new(key, original["region"].encode(), hashlib.sha256).hexdigest()[:32]
            assert row["region"] == expected
    assert table.column("prediction").null_count == 0  # every row's outputs, sampled or not


@pytest.mark.parametrize("change, message", [
    ({"sample": 1.5}, "sample"), ({"exclude": ["nope"]}, "has no column 'nope'"),
    ({"retention_days": 0}, "retention_days"), ({"exclude": ["age"], "hash": ["age"]}, "both excluded and hashed")])
def test_bad_log_settings_are_refused_and_nothing_changes(client, auth, loans, change, message):
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, loans[2], "loans")
    response = client.patch("/api/v1/models/loans", headers=scientist, json={"log": change, "description": "new"})
    assert response.status_code == 400 and message in response.get_json()["message"], response.get_json()
    after = client.get("/api/v1/models/loans", headers=scientist).get_json()
    assert after["log"]["sample"] == 1.0 and after["description"] == ""


def test_a_model_with_logging_off_logs_nothing(app, client, auth, iris):
    upload_model(client, auth.bearer("scientist"), iris[2], "iris")
    assert client.patch("/api/v1/models/iris", headers=auth.bearer("scientist"),
                        json={"log": {"enabled": False}}).status_code == 200
    response = client.post("/api/v1/models/iris/predict", headers=auth.bearer("viewer"),
                           json={"dataframe_split": iris[0].iloc[:2].to_dict("split")})
    assert response.status_code == 200 and response.get_json()["request_id"]
    assert log_of(app, "iris").num_rows == 0


def test_export_gives_scientists_inputs_and_viewers_outputs_only(app, client, auth, iris):
    X, _y, model = iris
    upload_model(client, auth.bearer("scientist"), model, "iris")
    for start in (0, 10):
        client.post("/api/v1/models/iris/predict", headers=auth.bearer("viewer"),
                    json={"dataframe_split": X.iloc[start:start + 5].to_dict("split")})
    from viewer.services import predlog
    predlog.flush()
    full = client.get("/api/v1/models/iris/log", headers=auth.bearer("scientist"))
    assert full.status_code == 200 and full.mimetype == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(full.data))
    assert table.num_rows == 10 and "inputs" in table.column_names
    outputs = pq.read_table(io.BytesIO(client.get("/api/v1/models/iris/log", headers=auth.bearer("viewer")).data))
    assert outputs.num_rows == 10 and "inputs" not in outputs.column_names
    csv = client.get("/api/v1/models/iris/log?format=csv", headers=auth.bearer("scientist"))
    frame = pd.read_csv(io.BytesIO(csv.data))
    assert len(frame) == 10 and "input.sepal_length" in frame.columns
    np.testing.assert_allclose(frame["input.sepal_length"], pd.concat([X.iloc[0:5], X.iloc[10:15]])["sepal_length"])
    from viewer.infra.records import RegisteredModel
    from viewer.services import logfiles
    from viewer.services.errors import ServiceError
    with app.app_context():  # an export stops at its limit (1,000,000 records), counted exactly
        model_id = RegisteredModel.query.filter_by(name="iris").one().id
        assert logfiles.read(model_id, max_rows=10).num_rows == 10
        with pytest.raises(ServiceError, match="more than 9 records") as refused:
            logfiles.read(model_id, max_rows=9)
        assert refused.value.status == 413
    future = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    empty = client.get(f"/api/v1/models/iris/log?start={future}", headers=auth.bearer("scientist"))
    assert empty.status_code == 200 and pq.read_table(io.BytesIO(empty.data)).num_rows == 0


def test_deleting_requests_removes_every_row_of_them(app, client, auth, iris):
    X, _y, model = iris
    upload_model(client, auth.bearer("scientist"), model, "iris")
    ids = []
    for i, request_id in enumerate(["keep", "gone", None]):
        headers = {**auth.bearer("viewer"), **({"X-Request-ID": request_id} if request_id else {})}
        response = client.post("/api/v1/models/iris/predict", headers=headers,
                               json={"dataframe_split": X.iloc[i * 3:i * 3 + 3].to_dict("split")})
        ids.append(response.get_json()["request_id"])
    from viewer.services import predlog
    predlog.flush()
    deleted = client.post("/api/v1/models/iris/log/delete", headers=auth.bearer("scientist"),
                          json={"request_ids": ["gone", ids[2], "never-sent"]})
    assert deleted.status_code == 200, deleted.get_json()
    assert deleted.get_json() == {"deleted": sorted(["gone", ids[2]]), "not_found": ["never-sent"]}
    assert client.post("/api/v1/models/iris/log/delete", headers=auth.bearer("viewer"),
                       json={"request_ids": ["keep"]}).status_code == 403
    assert log_of(app, "iris").column("request_id").to_pylist() == ["keep"] * 3


def test_a_file_summarised_while_a_deletion_rewrites_it_is_not_replaced_by_an_unsummarised_copy(app, client, auth, iris):
    """The deletion read the file before the monitoring claimed it: its swap must lose (and the
    deletion read again), or the rewritten file would be summarised a second time."""
    X, _y, model = iris
    upload_model(client, auth.bearer("scientist"), model, "iris")
    client.post("/api/v1/models/iris/predict", headers={**auth.bearer("viewer"), "X-Request-ID": "gone"},
                json={"dataframe_split": X.iloc[:3].to_dict("split")})
    from sqlalchemy import update

    from viewer.infra.extensions import db
    from viewer.infra.records import PredictionLogFile
    from viewer.services import logfiles, predlog
    predlog.flush()
    with app.app_context():
        stale = PredictionLogFile.query.one()
        db.session.expunge(stale)
        stale.aggregated = False  # what the deletion read (the session's worker may have summarised it since)
        db.session.execute(update(PredictionLogFile).values(aggregated=True))  # the monitoring's claim
        db.session.commit()
        with pytest.raises(logfiles._Lost):
            logfiles._swap([stale], None, stale)
        assert PredictionLogFile.query.one().aggregated  # nothing swapped
    deleted = client.post("/api/v1/models/iris/log/delete", headers=auth.bearer("scientist"),
                          json={"request_ids": ["gone"]})
    assert deleted.get_json() == {"deleted": ["gone"], "not_found": []}
    with app.app_context():
        assert PredictionLogFile.query.count() == 0


def test_compaction_merges_small_files_and_keeps_every_record(app, client, auth, iris):
    X, _y, model = iris
    upload_model(client, auth.bearer("scientist"), model, "iris")
    from viewer.infra.records import PredictionLogFile, utcnow
    from viewer.services import logfiles, monitoring, predlog
    for i in range(4):
        client.post("/api/v1/models/iris/predict", headers=auth.bearer("viewer"),
                    json={"dataframe_split": X.iloc[i:i + 2].to_dict("split")})
        predlog.flush()
    before = log_of(app, "iris")
    with app.app_context():
        files = PredictionLogFile.query.all()
        assert len(files) == 4
        monitoring.aggregate()  # compaction takes files already summarised (here, or by the session's worker)
        assert all(f.aggregated for f in PredictionLogFile.query.all())
        assert logfiles.compact(now=utcnow()) == 0  # younger than COMPACT_AFTER_SECONDS: left alone
        assert logfiles.compact(now=utcnow() + timedelta(minutes=5)) == 4
        files = PredictionLogFile.query.all()
        assert len(files) == 1 and files[0].compacted and files[0].rows == 8
    after = log_of(app, "iris")
    assert after.drop_columns(["version"]).equals(before.drop_columns(["version"]))
    assert not (app.config["DATA_DIR"] and list(
        (__import__("pathlib").Path(app.config["DATA_DIR"]) / "predlog").rglob("*.parquet"))[1:])


def test_retention_purges_old_records_and_request_ids(app, client, auth, iris):
    X, _y, model = iris
    upload_model(client, auth.bearer("scientist"), model, "iris")
    headers = {**auth.bearer("viewer"), "X-Request-ID": "once"}
    client.post("/api/v1/models/iris/predict", headers=headers, json={"dataframe_split": X.iloc[:1].to_dict("split")})
    from viewer.infra.records import utcnow
    from viewer.services import logfiles, predlog
    predlog.flush()
    with app.app_context():
        assert logfiles.purge(now=utcnow() + timedelta(days=29)) == 0
        assert logfiles.purge(now=utcnow() + timedelta(days=31)) == 1
    assert log_of(app, "iris").num_rows == 0
    # Past the retention the id may be used again.
    again = client.post("/api/v1/models/iris/predict", headers=headers,
                        json={"dataframe_split": X.iloc[:1].to_dict("split")})
    assert again.status_code == 200


def test_a_failing_store_drops_records_with_a_count_while_predictions_answer(app, client, auth, iris):
    X, _y, model = iris
    upload_model(client, auth.bearer("scientist"), model, "iris")
    from pathlib import Path
    blocker = Path(app.config["DATA_DIR"]) / "predlog"
    blocker.parent.mkdir(parents=True, exist_ok=True)
    blocker.write_text("a file where the log's folder would be: every write fails")
    try:
        for _ in range(3):
            response = client.post("/api/v1/models/iris/predict", headers=auth.bearer("viewer"),
                                   json={"dataframe_split": X.iloc[:4].to_dict("split")})
            assert response.status_code == 200
        from viewer.services import predlog
        assert predlog.flush() == 0
        with app.app_context():
            from viewer.infra.records import RegisteredModel
            summary = predlog.summary(RegisteredModel.query.filter_by(name="iris").one())
        assert summary["dropped"] == 12 and summary["records"] == 0
    finally:
        blocker.unlink()
    client.post("/api/v1/models/iris/predict", headers=auth.bearer("viewer"),
                json={"dataframe_split": X.iloc[:4].to_dict("split")})
    assert log_of(app, "iris").num_rows == 4  # the store is back: the log goes on


def test_regressor_values_and_positional_rows_are_logged(app, client, auth):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    model = Ridge().fit(X, X @ [1.0, 2.0, 3.0])
    upload_model(client, auth.bearer("scientist"), model, "ridge")
    response = client.post("/api/v1/models/ridge/predict", headers=auth.bearer("viewer"),
                           json={"instances": X[:2].tolist()})
    assert response.status_code == 200
    table = log_of(app, "ridge")
    np.testing.assert_allclose(table.column("prediction").to_pylist(), model.predict(X[:2]))
    assert pd.DataFrame(table.column("inputs").to_pylist()).to_numpy().tolist() == X[:2].tolist()
    assert table.column("proba").null_count == 2
