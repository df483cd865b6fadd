"""Compiled runtimes end to end (services.runtimes): a registered tree model is compiled by a
real worker on its own queue (in the compile sandbox), checked for parity, and then answers
predictions through its model host; the model's switch sends it back to scikit-learn; models
that are not tree ensembles say why; a version's first scoring job checks it again on its rows.

Data like users have: a pipeline with a column transformer (text categories with missing values,
an ID column it drops, numbers with missing values) ending in HistGradientBoosting.
Which runtime is faster is never asserted: only that the answers are scikit-learn's."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from .support import BACKEND, WorkerProcess, poll, upload_model

# Parity and serving do not depend on the database or broker: these run with the embedded suite;
# the compile job's lifecycle (listing, cancel, the recheck after scoring) runs on both.
once = pytest.mark.skipif(BACKEND != "embedded", reason="backend-independent: runs with the embedded suite")

TOLERANCE = 1e-9


@pytest.fixture
def app_config():
    return {"COMPILE_MODELS": True}


@pytest.fixture(autouse=True)
def no_hosts_of_earlier_tests():
    """This process's model hosts of earlier tests (other projects, same files) are stopped, so a
    test counts only its own; and its own are stopped after it, so later tests count theirs."""
    from viewer.services import hosts

    def stop_all():
        if hosts._pool is not None:
            for key in list(hosts._pool.hosts()):
                hosts._pool.discard(key)
    stop_all()
    yield
    stop_all()


@pytest.fixture(scope="module")
def compiler(migrated, tmp_path_factory):
    """A worker that takes only the compile queue, as ``manage.py up`` starts one."""
    proc = WorkerProcess({**migrated.env(), "VIEWER_COMPILE_MODELS": "true"},
                         tmp_path_factory.mktemp("logs") / "compiler.log", queues="viewer-compile")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def messy_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    city = rng.choice(np.array(["Lyon", "Porto", "Graz", None], dtype=object), n)
    income = rng.normal(3000, 900, n).round(2)
    income[rng.random(n) < 0.1] = np.nan
    age = rng.integers(18, 80, n).astype(float)
    return pd.DataFrame({"loan_id": [f"L{i:05d}" for i in range(n)], "city": city, "income": income, "age": age})


@pytest.fixture(scope="module")
def pipeline():
    frame = messy_frame(600, 0)
    y = ((frame["income"].fillna(3000) / 1000 + (frame["city"] == "Porto") * 1.5 + frame["age"] / 40
          + np.random.default_rng(1).normal(0, 0.6, len(frame))) > 5.2).astype(int)
    prep = ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                              ("numbers", "passthrough", ["income", "age"])], remainder="drop")
    model = make_pipeline(prep, HistGradientBoostingClassifier(max_iter=25, random_state=0)).fit(frame, y)
    return model, frame, y


def runtime_of(client, headers, name: str, version: int = 1) -> dict:
    body = client.get(f"/api/v1/models/{name}", headers=headers).get_json()
    return next(v for v in body["versions"] if v["version"] == version)["runtime"]


def settled(client, headers, name: str, timeout: float = 180) -> dict:
    return poll(lambda: runtime_of(client, headers, name),
                lambda r: r["state"] in ("ready", "failed", "none") and not r["compiling"], timeout=timeout, interval=0.3)


def host_runtime(app, name: str) -> str:
    from viewer.services import hosts

    with app.app_context():
        found = [h["runtime"] for h in hosts.status()["hosts"] if h["model"].startswith(f"{name}/")]
    return found[-1]  # the pool's order: the most recently used last


def predict(client, headers, name: str, frame: pd.DataFrame) -> dict:
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    response = client.post(f"/api/v1/models/{name}/predict?output=proba", headers=headers,
                           json={"dataframe_records": records})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


@once
def test_a_registered_pipeline_is_compiled_checked_and_answers_as_scikit_learn(app, client, auth, compiler, pipeline):
    model, _frame, _y = pipeline
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "loans")
    runtime = settled(client, headers, "loans")
    assert runtime["state"] == "ready", runtime
    assert runtime["used"] and runtime["why_not"] is None
    parity = runtime["parity"]
    assert parity["label_flips"] == 0 and parity["max_abs_diff"] <= TOLERANCE and parity["threshold_rows"] > 0
    assert runtime["rows"]["source"] == "schema"  # no dataset scored yet
    assert runtime["library"]["versions"]["tl2cgen"] and runtime["library"]["versions"]["gcc"]
    assert [s["rows"] for s in runtime["sizes"]] == [1, 100, 10_000]
    assert parity["head_same"] is True and parity["head_rows"] > 0  # the ColumnTransformer, computed directly
    assert parity["trees_same"] is True  # and the trees walked directly, for a few rows

    # New rows: missing values, an unseen city, IDs the model drops; batch sizes 1 and 300.
    rows = messy_frame(300, 7)
    rows.loc[::11, "city"] = "Tallinn"
    expected = model.predict_proba(rows)
    for batch in (rows.iloc[:1], rows):
        body = predict(client, headers, "loans", batch)
        got = np.array(body["probabilities"], dtype=float)
        assert np.abs(got - expected[: len(batch)]).max() <= TOLERANCE
        assert body["predictions"] == model.predict(batch).tolist()
    assert host_runtime(app, "loans") == "compiled"

    # A few rows are answered in the app (the host exported its preprocessing and trees), exactly
    # as scikit-learn answers them: even with its host gone.
    from viewer.services import hosts

    for host in hosts._pool.hosts().values():
        host.kill()
    started = hosts._pool.started
    few = rows.iloc[10:26]
    body = predict(client, headers, "loans", few)
    assert np.array_equal(np.array(body["probabilities"], dtype=float), model.predict_proba(few))
    assert body["predictions"] == model.predict(few).tolist() and hosts._pool.started == started

    auth.login("viewer")
    page = client.get("/models/loans/versions/1")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="runtime"' in text and "Compiled:" in text and "Parity check" in text
    assert "preprocessing steps before the trees are computed directly" in text


@once
def test_the_switch_sends_a_model_back_to_scikit_learn(app, client, auth, compiler, pipeline):
    model, _frame, _y = pipeline
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "loans")
    assert settled(client, headers, "loans")["state"] == "ready"
    rows = messy_frame(50, 3)
    predict(client, headers, "loans", rows)
    assert host_runtime(app, "loans") == "compiled"

    switched = client.patch("/api/v1/models/loans", headers=headers, json={"serve_with": "scikit-learn"})
    assert switched.status_code == 200 and switched.get_json()["serve_with"] == "scikit-learn"
    runtime = runtime_of(client, headers, "loans")
    assert not runtime["used"] and "switch" in runtime["why_not"]
    assert {s["runtime"] for s in runtime["sizes"]} == {"scikit-learn"}
    body = predict(client, headers, "loans", rows)
    assert np.abs(np.array(body["probabilities"]) - model.predict_proba(rows)).max() <= TOLERANCE
    assert host_runtime(app, "loans") == "scikit-learn"

    refused = client.patch("/api/v1/models/loans", headers=headers, json={"serve_with": "onnx"})
    assert refused.status_code == 400 and "serve_with" in refused.get_data(as_text=True)
    viewer = client.patch("/api/v1/models/loans", headers=auth.bearer("viewer"), json={"serve_with": "auto"})
    assert viewer.status_code == 403

    # The model card's form switches it back.
    auth.login("scientist")
    token = auth.csrf_token("/models/loans/versions/1")
    back = client.post("/models/loans/versions/1/runtime", data={"serve_with": "auto", "csrf_token": token})
    assert back.status_code == 302
    assert runtime_of(client, headers, "loans")["used"]
    predict(client, headers, "loans", rows)
    assert host_runtime(app, "loans") == "compiled"


def test_a_model_that_is_not_a_tree_ensemble_says_why_without_a_job(client, auth, compiler, pipeline):
    _model, frame, y = pipeline
    headers = auth.bearer("scientist")
    numbers = frame[["income", "age"]].fillna(0.0)
    upload_model(client, headers, LogisticRegression(max_iter=500).fit(numbers, y), "logit")
    runtime = runtime_of(client, headers, "logit")
    assert runtime["state"] == "none" and not runtime["used"] and runtime["compiling"] is None
    assert "LogisticRegression is not a tree ensemble" in runtime["why_not"]
    listed = client.get("/api/v1/jobs?kind=compile", headers=headers).get_json()
    assert listed["jobs"] == []


def test_compile_jobs_are_listed_only_when_asked_for_and_deleting_a_version_cancels_its_own(client, auth, compiler):
    headers = auth.bearer("scientist")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    forest = RandomForestRegressor(n_estimators=30, random_state=0).fit(X, X[:, 0] + rng.normal(0, 0.1, 300))
    upload_model(client, headers, forest, "forest")
    compiling = client.get("/api/v1/jobs?kind=compile", headers=headers).get_json()["jobs"]
    assert len(compiling) == 1 and compiling[0]["kind"] == "compile"
    assert client.get("/api/v1/jobs", headers=headers).get_json()["jobs"] == []  # the system's work, not the user's
    auth.login("viewer")
    page = client.get(f"/jobs/{compiling[0]['id']}")
    assert page.status_code == 200 and "forest" in page.get_data(as_text=True)

    deleted = client.delete("/api/v1/models/forest/versions/1", headers=headers)
    assert deleted.status_code in (200, 204), deleted.get_json()
    job = client.get(f"/api/v1/jobs/{compiling[0]['id']}", headers=headers).get_json()
    assert job["state"] in ("cancelled", "done"), job  # done only when it finished before the delete


def test_the_first_scoring_job_checks_the_runtime_again_on_its_rows(app, client, auth, compiler, worker, pipeline):
    from viewer.services import scoring

    model, frame, y = pipeline
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "loans")
    assert settled(client, headers, "loans")["rows"]["source"] == "schema"
    labelled = frame.assign(label=y)
    upload = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                         data={"file": (io.BytesIO(labelled.to_csv(index=False, sep=";", decimal=",").encode()),
                                        "loans.csv")})
    assert upload.status_code == 201, upload.get_json()
    response = client.post("/api/v1/jobs", headers=headers,
                           json={"model": "loans", "dataset": upload.get_json()["id"], "target": "label"})
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    poll(lambda: client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json(),
         lambda body: body["state"] in ("done", "error", "cancelled"), timeout=120)
    # The session's scoring worker runs with compiling off; its end hook runs here, where it is on.
    with app.app_context():
        scoring.ended(job_id, "done")
    deadline = time.monotonic() + 180
    runtime = runtime_of(client, headers, "loans")
    while time.monotonic() < deadline and (runtime["compiling"] or runtime["rows"]["source"] != "dataset"):
        time.sleep(0.3)
        runtime = runtime_of(client, headers, "loans")
    assert runtime["state"] == "ready" and runtime["rows"] == {"source": "dataset", "dataset": "loans.csv",
                                                               "rows": len(frame)}, runtime
    assert runtime["parity"]["rows"] > len(frame)


@once
def test_a_lightgbm_model_is_compiled_and_answers_as_lightgbm(app, client, auth, compiler):
    """LightGBM (the boost extra): compiled from its booster, checked against LightGBM, then its
    host answers with the compiled code, missing values included."""
    lightgbm = pytest.importorskip("lightgbm")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(800, 6))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 3]) > 0).astype(int)
    model = lightgbm.LGBMClassifier(n_estimators=40, verbose=-1, random_state=0).fit(X, y)
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "gbm")
    runtime = settled(client, headers, "gbm")
    assert runtime["state"] == "ready" and runtime["used"], runtime
    assert runtime["library"]["estimator_class"] == "LGBMClassifier"
    rows = rng.normal(size=(200, 6))
    rows[::9, 2] = np.nan
    inputs = [[None if np.isnan(v) else float(v) for v in row] for row in rows]
    body = client.post("/api/v1/models/gbm/predict?output=proba", headers=headers, json={"inputs": inputs}).get_json()
    assert np.abs(np.array(body["probabilities"]) - model.predict_proba(rows)).max() <= TOLERANCE
    assert host_runtime(app, "gbm") == "compiled"


@once
def test_a_model_whose_compiled_code_fails_its_check_is_served_by_scikit_learn_with_the_reason(
        client, auth, compiler):
    """IsolationForest compiles, but its compiled scores differ from scikit-learn's: the runtime
    is recorded as failed with the reason, the card says it, and scikit-learn answers."""
    from sklearn.ensemble import IsolationForest

    rng = np.random.default_rng(4)
    X = rng.normal(size=(400, 5))
    model = IsolationForest(n_estimators=20, random_state=0).fit(X)
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "outliers")
    runtime = settled(client, headers, "outliers")
    assert runtime["state"] == "failed" and not runtime["used"], runtime
    assert runtime["why_not"] and runtime["why_not"].endswith("serves it."), runtime["why_not"]
    body = client.post("/api/v1/models/outliers/predict", headers=headers, json={"inputs": X[:20].tolist()}).get_json()
    assert body["predictions"] == model.predict(X[:20]).tolist()
    auth.login("viewer")
    from markupsafe import escape

    text = client.get("/models/outliers/versions/1").get_data(as_text=True)
    assert str(escape(runtime["why_not"])) in text


@once
def test_a_compiled_forest_answers_a_few_rows_without_its_host_and_batches_with_it(app, client, auth, compiler):
    """A bare forest's trees are numbers: once its compiled runtime passed parity (the few-row
    path included), the app walks the trees for batches of up to 16 rows itself, identical to
    scikit-learn; bigger batches still go to the compiled library in the host."""
    from sklearn.ensemble import RandomForestClassifier

    from viewer.services import hosts

    rng = np.random.default_rng(5)
    X = rng.normal(size=(500, 5)) * [1, 100, 0.01, 1, 5000]
    y = np.array(["approve", "refer", "decline"], dtype=object)[(X[:, 0] > 0).astype(int) + (X[:, 4] > 2000)]
    model = RandomForestClassifier(n_estimators=12, max_depth=7, random_state=0).fit(X, y)
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "forest3")
    runtime = settled(client, headers, "forest3")
    assert runtime["state"] == "ready" and runtime["used"], runtime
    assert runtime["parity"]["trees_same"] is True and runtime["parity"]["trees_rows"] > 0
    assert runtime["direct_rows"] == 16

    def ask(rows):
        body = client.post("/api/v1/models/forest3/predict?output=proba", headers=headers,
                           json={"inputs": rows.tolist()}).get_json()
        assert body["predictions"] == model.predict(rows).tolist()
        assert np.array_equal(np.array(body["probabilities"]), model.predict_proba(rows))  # identical
    ask(X[:1])  # starts its host, which sends the trees
    assert host_runtime(app, "forest3") == "compiled"
    for host in hosts._pool.hosts().values():
        host.kill()
    started = hosts._pool.started
    for n in (1, 16):
        ask(X[100:100 + n])
    assert hosts._pool.started == started  # answered without a host
    ask(X[:17])
    assert hosts._pool.started == started + 1  # a batch: the compiled library, in a new host

    auth.login("viewer")
    text = client.get("/models/forest3/versions/1").get_data(as_text=True)
    assert "Batches of up to 16 rows are answered by walking the trees directly" in text
