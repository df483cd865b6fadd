"""Monitoring: served inputs summarised per window and compared with the reference dataset."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from tests.support import MONITOR_WINDOW_SECONDS, upload_model

WINDOW = MONITOR_WINDOW_SECONDS  # seconds: every process of the test session cuts windows this short

def frame(n: int, seed: int, *, shift: float = 0.0, regions=(0.5, 0.3, 0.2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = pd.DataFrame({"a": rng.normal(10 + shift, 2, n), "b": rng.normal(0, 1, n),
                         "c": rng.lognormal(3, 1, n), "region": rng.choice(["north", "south", "east"], n, p=regions)})
    data.loc[data.sample(frac=0.05, random_state=seed).index, "b"] = np.nan  # missing values, imputed
    return data


@pytest.fixture(scope="module")
def fitted():
    X = frame(3_000, 0)
    y = (X["a"] + X["c"] / 20 > 11.5).astype(int)
    model = make_pipeline(ColumnTransformer([("num", SimpleImputer(), ["a", "b", "c"]),
                                             ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])]),
                          LogisticRegression(max_iter=1000)).fit(X, y)
    return X, model


def upload_reference(client, headers, data: pd.DataFrame) -> str:
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(data.to_csv(index=False).encode()), "reference.csv")})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def next_window() -> None:
    time.sleep(WINDOW - time.time() % WINDOW + 0.05)


def summarise(app):
    from viewer.services import monitoring, predlog

    predlog.flush()
    with app.app_context():
        return monitoring.maintain()


def test_drift_is_flagged_in_exactly_the_shifted_columns_and_windows(app, client, auth, fitted):
    X, model = fitted
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    reference = upload_reference(client, scientist, X)
    assert client.patch("/api/v1/models/loans", headers=scientist,
                        json={"monitor": {"reference": reference}}).status_code == 200
    served = [frame(2_000, 1), frame(2_000, 2, shift=1.0, regions=(0.2, 0.3, 0.5))]
    next_window()
    for i, rows in enumerate(served):
        if i:
            next_window()
        response = client.post("/api/v1/models/loans/predict?output=proba", headers=scientist,
                               json={"dataframe_split": rows.to_dict("split")})
        assert response.status_code == 200
    summarise(app)  # (the session's worker may have summarised some files first: either way)
    report = client.get("/api/v1/models/loans/drift?last=10", headers=auth.bearer("viewer")).get_json()
    windows = [w for w in report["windows"] if w["rows"]]
    assert [w["rows"] for w in windows] == [2_000, 2_000]
    before, after = windows
    flagged = lambda w: sorted(c for c, f in w["columns"].items() if f.get("drift"))  # noqa: E731
    assert flagged(before) == [] and not before["dataset_drift"]
    assert flagged(after) == ["a", "region"]
    assert after["drifted"] == 2 and after["judged"] == 4 and after["dataset_drift"]  # half of the columns
    # The figures are those of the rows, within the stated binning error.
    exact = stats.wasserstein_distance(X["a"], served[1]["a"]) / np.std(X["a"])
    assert after["columns"]["a"]["wasserstein"] == pytest.approx(exact, abs=0.003)
    assert after["columns"]["b"]["missing"] == served[1]["b"].isna().sum()
    assert after["latency_p50_ms"] > 0 and after["requests"] == 1
    assert after["prediction"]["kind"] == "categorical"


def test_too_few_rows_say_so_instead_of_flagging_and_no_reference_says_choose_one(app, client, auth, fitted):
    X, model = fitted
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    client.post("/api/v1/models/loans/predict", headers=scientist,
                json={"dataframe_split": frame(50, 3, shift=5.0).to_dict("split")})
    summarise(app)
    report = client.get("/api/v1/models/loans/drift", headers=scientist).get_json()
    assert report["reference"] is None
    window = report["windows"][-1]
    assert window["columns"]["a"].get("drift") is None and "wasserstein" not in window["columns"]["a"]
    reference = upload_reference(client, scientist, X)
    client.patch("/api/v1/models/loans", headers=scientist, json={"monitor": {"reference": reference}})
    summarise(app)  # a new reference: the windows' drift is computed again from their summaries
    window = client.get("/api/v1/models/loans/drift", headers=scientist).get_json()["windows"][-1]
    a = window["columns"]["a"]
    assert a["drift"] is None and a["enough_rows"] is False and a["wasserstein"] > 1  # shifted, but 50 rows
    cell = client.get(f"/api/v1/models/loans/drift/cell?version=1&start={window['start']}&column=a",
                      headers=scientist)
    assert cell.status_code == 200, cell.get_json()
    body = cell.get_json()
    assert body["kind"] == "numeric" and len(body["edges"]) == 61
    assert sum(body["current"]) == pytest.approx(1) and sum(body["reference"]) == pytest.approx(1)
    region = client.get(f"/api/v1/models/loans/drift/cell?version=1&start={window['start']}&column=region",
                        headers=scientist).get_json()
    assert set(region["labels"]) == {"north", "south", "east"}


def test_bad_monitor_settings_are_refused(client, auth, fitted):
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, fitted[1], "loans")
    for body, words in [({"reference": "nope"}, "ready dataset"), ({"thresholds": {"nope": 1}}, "Unknown threshold"),
                        ({"thresholds": {"wasserstein": -1}}, "at least 0")]:
        response = client.patch("/api/v1/models/loans", headers=scientist, json={"monitor": body})
        assert response.status_code == 400 and words in response.get_json()["message"], response.get_json()


def test_labels_give_realized_performance_equal_to_scikit_learn_on_the_joined_rows(app, client, auth, fitted):
    from sklearn.metrics import accuracy_score, f1_score, log_loss, precision_score, recall_score, roc_auc_score

    X, model = fitted
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    served = frame(1_500, 7, shift=0.3)
    truth = ((served["a"] + served["c"] / 20 + np.random.default_rng(8).normal(0, 1, len(served))) > 11.5).astype(int)
    ids = []
    next_window()  # the three requests take well under a window: they fall in one
    for start in range(0, len(served), 500):
        part = served.iloc[start:start + 500]
        answer = client.post("/api/v1/models/loans/predict?output=proba", headers=scientist,
                             json={"dataframe_split": part.to_dict("split")}).get_json()
        ids.append(answer["request_id"])
    from viewer.services import predlog
    predlog.flush()
    # Labels for two requests (1,000 rows), days later in a test's terms: after the log was written.
    labelled = [{"request_id": ids[r // 500], "row": r % 500, "label": int(truth.iloc[r])} for r in range(1_000)]
    posted = client.post("/api/v1/models/loans/labels", headers=scientist,
                         json={"labels": labelled + [{"request_id": "never-served", "label": 1}]})
    assert posted.status_code == 200, posted.get_json()
    assert posted.get_json() == {"accepted": 1_001, "matched": 1_000, "unknown": ["never-served"], "unknown_count": 1,
                                 "rejected": [], "rejected_count": 0}
    again = client.post("/api/v1/models/loans/labels", headers=scientist, json={"labels": labelled[:10]})
    assert again.get_json()["matched"] == 10  # idempotent: replaced, not counted twice
    csv = "request_id,row,label\n" + "\n".join(f"{ids[1]},{r},{int(truth.iloc[500 + r])}" for r in range(5))
    assert client.post("/api/v1/models/loans/labels", headers=scientist, data=csv,
                       content_type="text/csv").get_json()["matched"] == 5
    bad = client.post("/api/v1/models/loans/labels", headers=scientist, json={"labels": [
        {"request_id": ids[0], "label": "maybe"}, {"request_id": ids[0], "row": 1, "label": int(truth.iloc[1])}]})
    assert bad.status_code == 200 and bad.get_json()["matched"] == 1
    assert bad.get_json()["rejected"] == [{"request_id": ids[0], "row": 0, "label": "maybe",
                                           "reason": "not a class of loans (its classes are 0, 1)"}]
    assert client.post("/api/v1/models/loans/labels", headers=scientist, json={"labels": [
        {"request_id": ids[0], "label": None}]}).status_code == 400
    summarise(app)
    windows = client.get("/api/v1/models/loans/drift?last=50", headers=scientist).get_json()["windows"]
    performance = [w["performance"] for w in windows if w.get("performance")]
    # The label of row 0 of the first request was refused: the earlier one (the truth) stays.
    assert sum(p["labelled"] for p in performance) == 1_000
    rows = served.iloc[:1_000]
    y, proba = truth.iloc[:1_000], model.predict_proba(rows)[:, 1]
    assert len(performance) == 1
    p = performance[0]
    assert p["accuracy"] == pytest.approx(accuracy_score(y, model.predict(rows)), abs=1e-12)
    assert p["precision"] == pytest.approx(precision_score(y, model.predict(rows)), abs=1e-12)
    assert p["recall"] == pytest.approx(recall_score(y, model.predict(rows)), abs=1e-12)
    assert p["f1"] == pytest.approx(f1_score(y, model.predict(rows)), abs=1e-12)
    assert p["log_loss"] == pytest.approx(log_loss(y, proba), abs=1e-9)
    assert p["roc_auc"] == pytest.approx(roc_auc_score(y, proba), abs=1e-3)
    assert p["labelled_share"] == pytest.approx(1_000 / 1_500)
    assert sum(b["rows"] for b in p["calibration"]) == 1_000


def test_failed_requests_are_logged_and_give_the_error_rate(app, client, auth, fitted):
    _X, model = fitted
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    next_window()
    good = client.post("/api/v1/models/loans/predict", headers=scientist,
                       json={"dataframe_split": frame(10, 4).to_dict("split")})
    bad = client.post("/api/v1/models/loans/predict", headers=scientist,
                      json={"dataframe_split": frame(10, 4).drop(columns="a").to_dict("split")})
    assert good.status_code == 200 and bad.status_code == 400
    from viewer.services import logfiles, monitoring, predlog
    predlog.flush()
    with app.app_context():
        from viewer.infra.records import RegisteredModel
        table = logfiles.read(RegisteredModel.query.filter_by(name="loans").one().id)
        monitoring.maintain()
    failed = [r for r in table.to_pylist() if r["error"] is not None]
    assert [(r["request_id"], r["error"], r["prediction"], r["inputs"]) for r in failed] == \
        [(bad.headers["X-Request-ID"], "SCHEMA_MISMATCH", None, None)]
    window = client.get("/api/v1/models/loans/drift", headers=scientist).get_json()["windows"][-1]
    assert (window["rows"], window["requests"], window["errors"], window["error_rate"]) == (10, 1, 1, 0.5)
    assert window["missing_share"] == pytest.approx(frame(10, 4)["b"].isna().sum() / 40)


def test_viewers_see_no_logged_category_the_model_and_reference_do_not_know(app, client, auth, fitted):
    X, model = fitted
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    reference = upload_reference(client, scientist, X)
    client.patch("/api/v1/models/loans", headers=scientist, json={"monitor": {"reference": reference}})
    rows = frame(20, 5)
    rows.loc[:4, "region"] = "customer 4711 (secret)"  # a value only the log holds
    client.post("/api/v1/models/loans/predict", headers=scientist, json={"dataframe_split": rows.to_dict("split")})
    summarise(app)
    window = client.get("/api/v1/models/loans/drift", headers=scientist).get_json()["windows"][-1]
    path = f"/api/v1/models/loans/drift/cell?version=1&start={window['start']}&column=region"
    seen = client.get(path, headers=scientist).get_json()
    assert "customer 4711 (secret)" in seen["labels"]
    hidden = client.get(path, headers=auth.bearer("viewer")).get_json()
    assert "customer 4711 (secret)" not in hidden["labels"]
    from viewer.services.monitoring import HIDDEN
    assert hidden["current"][hidden["labels"].index(HIDDEN)] == pytest.approx(5 / 20)
    assert set(hidden["labels"]) - {HIDDEN} <= {"north", "south", "east"}


def test_a_deleted_version_s_records_do_not_hold_up_the_summaries(app, client, auth, fitted):
    X, model = fitted
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    client.post("/api/v1/models/loans/predict", headers=scientist, json={"dataframe_split": X.iloc[:5].to_dict("split")})
    from viewer.infra.records import PredictionLogFile
    from viewer.services import monitoring, predlog
    predlog.flush()
    with app.app_context():  # the version goes before any worker summarised its file
        files = PredictionLogFile.query.all()
        PredictionLogFile.query.update({"aggregated": False})
        from viewer.infra.extensions import db
        db.session.commit()
    assert files and client.delete("/api/v1/models/loans/versions/1", headers=scientist).status_code == 204
    with app.app_context():
        monitoring.aggregate()
        assert all(f.aggregated for f in PredictionLogFile.query.all())


def test_drift_computed_from_a_summary_merged_into_meanwhile_is_not_stored(app, client, auth, fitted):
    """Two workers: one computes a window's drift while another merges a new log file into it. The
    older figures must not be stored over the newer summary (the window stays stale instead)."""
    X, model = fitted
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "loans")
    client.post("/api/v1/models/loans/predict", headers=scientist, json={"dataframe_split": X.iloc[:50].to_dict("split")})
    summarise(app)
    from viewer.core.drift.window import Summary
    from viewer.infra.extensions import db
    from viewer.infra.records import ModelVersion, MonitorWindow, RegisteredModel
    from viewer.services import monitoring
    with app.app_context():
        window = MonitorWindow.query.filter_by(seconds=WINDOW).one()
        read, key = window.revision, window.reference
        assert key is not None and window.rows == 50
        model_row = db.session.get(RegisteredModel, window.model_id)
        version = db.session.get(ModelVersion, window.model_version_id)
        monitoring._merge_window(model_row, version, window.seconds, window.start, Summary.from_bytes(window.summary))
        db.session.commit()  # the other worker's merge: 100 rows now, drift to compute again
        assert not monitoring._store_drift(window.id, read, {"rows": 50}, key)
        db.session.commit()
        window = db.session.get(MonitorWindow, window.id)  # stale, unless the session's worker computed it since
        assert window.rows == 100 and (window.reference is None or window.drift["rows"] == 100)
        monitoring.refresh_drift(model_row)
        assert db.session.get(MonitorWindow, window.id).drift["rows"] == 100
