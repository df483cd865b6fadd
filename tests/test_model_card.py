"""The model card: every nested step's hyperparameters by scikit-learn's double-underscore names,
and usage snippets (curl, Python, viewer.client) that really work against the app."""

from __future__ import annotations

import html
import io
import json
import os
import re
import shlex
import subprocess
import sys

import joblib
import pandas as pd
import pytest
import requests
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from tests.realistic import FEATURES, TARGET, loan_table
from tests.support import PASSWORD, ROOT, poll, upload_model, wait_for_job

NUMERIC, CATEGORICAL = ["amount", "income", "age"], ["region", "employment"]
PLACEHOLDER = "paste your API token here"


def loan_logit(frame: pd.DataFrame) -> Pipeline:
    """The pipeline people write: impute and scale the numbers, one-hot the strings."""
    prep = ColumnTransformer([
        ("num", Pipeline([("imputer", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), NUMERIC),
        ("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
    ])
    return Pipeline([("prep", prep), ("clf", LogisticRegression(C=0.5, max_iter=1000))]).fit(frame[FEATURES],
                                                                                            frame[TARGET])


def loan_boosting(frame: pd.DataFrame) -> Pipeline:
    prep = ColumnTransformer([
        ("num", SimpleImputer(), NUMERIC),
        ("cat", Pipeline([("fill", SimpleImputer(strategy="constant", fill_value="missing")),
                          ("codes", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))]),
         CATEGORICAL),
    ])
    gbm = GradientBoostingClassifier(n_estimators=30, learning_rate=0.2, max_depth=2, random_state=0)
    return Pipeline([("prep", prep), ("gbm", gbm)]).fit(frame[FEATURES], frame[TARGET])


@pytest.fixture(scope="module")
def loans() -> pd.DataFrame:
    return loan_table(600)


def snippet(page: str, key: str) -> str:
    match = re.search(rf'<pre id="snippet-{key}"><code>(.*?)</code></pre>', page, re.S)
    assert match, f"no {key} snippet on the page"
    return html.unescape(match.group(1))


def page_over_http(server: str, path: str, user: str = "viewer") -> str:
    """A page as a browser gets it from a live server (logged in through the real form), so its
    snippets name that server's URL."""
    browser = requests.Session()
    login = browser.get(f"{server}/login").text
    csrf = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', login).group(1)
    browser.post(f"{server}/login", data={"username": user, "password": PASSWORD, "csrf_token": csrf})
    response = browser.get(server + path)
    assert response.status_code == 200 and response.url == server + path, response.url
    return response.text


def param_rows(page: str) -> dict[str, str]:
    """Parameter name -> the class of its table row ("changed" / "unchanged")."""
    return {html.unescape(name): cls for cls, name in
            re.findall(r'<tr class="(changed|unchanged)"><td><code>([^<]+)</code>', page)}


def test_card_lists_every_nested_steps_hyperparameters_by_double_underscore_name(client, auth, loans):
    upload_model(client, auth.bearer("scientist"), loan_logit(loans), "loans")
    auth.login("viewer")
    page = client.get("/models/loans/versions/1").get_data(as_text=True)
    rows = param_rows(page)
    for name in ("clf__C", "clf__max_iter", "prep__num__imputer__strategy", "prep__num__scale__with_mean",
                 "prep__cat__handle_unknown", "prep__remainder", "verbose"):
        assert name in rows, name
    # highlighted: exactly what the author set differently from scikit-learn's defaults
    assert {name for name, cls in rows.items() if cls == "changed"} == {
        "clf__C", "clf__max_iter", "prep__num__imputer__strategy", "prep__cat__handle_unknown"}
    # grouped by step, each group headed by its path and class, in the pipeline's order
    heads = re.findall(r'<tr class="step"><th colspan="3">(?:<code>)?([^<]+)(?:</code>)? <span class="class">(\w+)<',
                       page)
    assert heads == [
        ("the model itself", "Pipeline"), ("prep", "ColumnTransformer"), ("prep__num", "Pipeline"),
        ("prep__num__imputer", "SimpleImputer"), ("prep__num__scale", "StandardScaler"),
        ("prep__cat", "OneHotEncoder"), ("clf", "LogisticRegression")]
    assert "&#39;median&#39;" in page and "&#39;mean&#39;" in page  # the value and the default beside it


def test_card_of_a_single_estimator_lists_its_own_parameters(client, auth, loans):
    model = GradientBoostingClassifier(n_estimators=10, random_state=0).fit(loans[NUMERIC].fillna(0), loans[TARGET])
    upload_model(client, auth.bearer("scientist"), model, "gbm")
    auth.login("viewer")
    rows = param_rows(client.get("/models/gbm/versions/1").get_data(as_text=True))
    assert rows["n_estimators"] == "changed" and rows["random_state"] == "changed"
    assert rows["learning_rate"] == "unchanged" and "loss" in rows


def _run(args: list[str], **kwargs) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, **kwargs)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_usage_snippets_run_as_written_against_a_live_server(app, client, auth, loans, live_server):
    """curl, Python (requests) and viewer.client, copied from the card as a user would, with only
    the token filled in, answer with predictions from this model's real columns: strings, numbers,
    and (in the row) the values its imputer fills in."""
    model = loan_logit(loans)
    upload_model(client, auth.bearer("scientist"), model, "loans")
    token = auth.token("viewer")
    page = page_over_http(live_server, "/models/loans/versions/1")
    assert 'href="/account/"' in page and "create a token" in page

    curl = snippet(page, "curl")
    assert f"'{live_server}/api/v1/models/loans/versions/1/predict'" in curl
    body = shlex.split(curl.split("-d ", 1)[1])[0]
    for column in FEATURES:
        assert f'"{column}"' in body
    answer = _run(["bash", "-c", curl.replace(PLACEHOLDER, token) + " --fail-with-body --silent"])
    predictions = json.loads(answer)["predictions"]
    sent = pd.DataFrame(json.loads(body)["dataframe_records"])
    assert predictions == model.predict(sent[FEATURES].astype({c: float for c in NUMERIC})).tolist()

    python = snippet(page, "python")
    assert PLACEHOLDER in python and "import requests" in python
    assert _run([sys.executable, "-c", python.replace(PLACEHOLDER, token)]).strip() == str(predictions)

    client_code = snippet(page, "client")
    assert f"Client('{live_server}'" in client_code and "model='loans/1'" in client_code
    printed = _run([sys.executable, "-c", client_code.replace(PLACEHOLDER, token)])
    assert printed.splitlines()[0] == str(model.predict(sent[FEATURES].astype({c: float for c in NUMERIC})))
    assert "0" in printed.splitlines()[1] and "1" in printed.splitlines()[1]  # predict_proba: a column per class


def _curl_request(curl: str) -> tuple[str, dict[str, str], bytes]:
    """What the curl snippet sends: (url, headers, body)."""
    words = shlex.split(curl.split("\n\n", 1)[1].replace("\\\n", " "))
    headers, url, data = {}, None, None
    i = 1
    while i < len(words):
        if words[i] == "-H":
            key, _, value = words[i + 1].partition(": ")
            headers[key] = value
            i += 2
        elif words[i] == "-d":
            data = words[i + 1].encode()
            i += 2
        elif words[i] == "-X":
            i += 2
        else:
            url = words[i]
            i += 1
    return url, headers, data


def _upload_dataset(client, headers, frame: pd.DataFrame, filename: str) -> dict:
    dataset = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(frame.to_csv(index=False).encode()), filename)}).get_json()
    found = poll(lambda: client.get(f"/api/v1/datasets/{dataset['id']}", headers=headers).get_json(),
                 lambda d: d["state"] in ("ready", "error"), 90)
    assert found["state"] == "ready", found
    return found


def test_usage_example_is_the_first_row_of_the_latest_scored_dataset(client, auth, loans, worker):
    """The snippet sends the first row of a dataset the model fits (the model's columns only, a
    missing value as null), preferring the one it was last scored on; the request it shows
    answers 200 through the app."""
    scientist = auth.bearer("scientist")
    model = loan_logit(loans)
    upload_model(client, scientist, model, "loans")
    rows = loans.head(50).copy()
    rows.loc[rows.index[0], "income"] = None  # the first row has a missing number and a string
    march = _upload_dataset(client, scientist, rows, "loans-march.csv")
    auth.login("viewer")
    assert "one row of loans-march" in client.get("/models/loans/versions/1").get_data(as_text=True)
    _upload_dataset(client, scientist, loans.iloc[100:150], "loans-april.csv")  # newer, and fits too
    assert "one row of loans-april" in client.get("/models/loans/versions/1").get_data(as_text=True)
    job = client.post("/api/v1/jobs", headers=scientist,
                      json={"model": "loans/1", "dataset": march["id"], "target": TARGET}).get_json()
    assert wait_for_job(client, scientist, job["id"], 120)["state"] == "done"

    page = client.get("/models/loans/versions/1").get_data(as_text=True)
    assert "one row of loans-march" in page
    url, headers, data = _curl_request(snippet(page, "curl"))
    record = json.loads(data)["dataframe_records"][0]
    assert list(record) == FEATURES  # no ID, date or target column: only what the model takes
    assert record["income"] is None and record["region"] == rows["region"].iloc[0]
    assert record["amount"] == pytest.approx(rows["amount"].iloc[0])
    assert url.startswith("http://localhost/api/v1/models/loans/versions/1/predict")
    headers["Authorization"] = headers["Authorization"].replace("$TOKEN", auth.token("viewer"))
    response = client.post(url.removeprefix("http://localhost"), headers=headers, data=data)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["predictions"] == model.predict(pd.DataFrame([record]).astype(
        {c: float for c in NUMERIC})).tolist()


def test_usage_snippet_of_a_boosting_pipeline_from_its_schema(client, auth, loans):
    """Without a scoring job the row comes from the model's own schema (imputed medians, first
    categories) and predicts."""
    model = loan_boosting(loans)
    upload_model(client, auth.bearer("scientist"), model, "loans-gbm")
    auth.login("viewer")
    page = client.get("/models/loans-gbm/versions/1").get_data(as_text=True)
    assert "a row of typical values" in page
    url, headers, data = _curl_request(snippet(page, "curl"))
    headers["Authorization"] = headers["Authorization"].replace("$TOKEN", auth.token("viewer"))
    response = client.post(url.removeprefix("http://localhost"), headers=headers, data=data)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["predictions"][0] in (0, 1)


def test_usage_snippet_keeps_the_project_in_its_urls(client, auth, loans, app):
    """A model of another project: the snippets call that project's routes."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Project

    with app.app_context():
        db.session.add(Project(name="risk"))
        db.session.commit()
    admin = auth.bearer("admin")
    buffer = io.BytesIO()
    joblib.dump(loan_logit(loans), buffer)
    response = client.post("/p/risk/api/v1/models", headers=admin, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(buffer.getvalue()), "m.joblib"), "name": "loans"})
    assert response.status_code == 201, response.get_json()
    auth.login("admin")
    page = client.get("/p/risk/models/loans/versions/1").get_data(as_text=True)
    assert "'http://localhost/p/risk/api/v1/models/loans/versions/1/predict'" in snippet(page, "curl")
    assert "Client('http://localhost', token=TOKEN, project='risk')" in snippet(page, "client")
    url, headers, data = _curl_request(snippet(page, "curl"))
    headers["Authorization"] = headers["Authorization"].replace("$TOKEN", auth.token("admin"))
    assert client.post(url.removeprefix("http://localhost"), headers=headers, data=data).status_code == 200


def test_curl_snippet_quotes_column_names_with_quotes_and_spaces(client, auth, live_server):
    """Column names as spreadsheets have them survive the shell: the curl command runs as shown."""
    frame = pd.DataFrame({"owner's age": [20.0, 35.0, 50.0, 65.0] * 10, 'amount "gross"': [1.0, 2.0, 3.0, 4.0] * 10})
    labels = ["young", "young", "old", "old"] * 10
    upload_model(client, auth.bearer("scientist"), LogisticRegression().fit(frame, labels), "quoted")
    page = page_over_http(live_server, "/models/quoted/versions/1")
    curl = snippet(page, "curl")
    assert live_server in curl
    answer = _run(["bash", "-c", curl.replace(PLACEHOLDER, auth.token("viewer")) + " --fail-with-body --silent"])
    assert json.loads(answer)["predictions"][0] in ("young", "old")


def test_a_version_described_before_nested_parameters_shows_its_own(app, client, auth, loans):
    """Versions uploaded before the card recorded every step keep a card: their top-level
    parameters, with no claim about defaults."""
    upload_model(client, auth.bearer("scientist"), loan_logit(loans), "older")
    from viewer.infra.extensions import db
    from viewer.services import registry

    with app.app_context():
        version = registry.resolve("older/1")
        version.info = {k: v for k, v in version.info.items() if k != "parameters"}
        db.session.commit()
    auth.login("viewer")
    page = client.get("/models/older/versions/1").get_data(as_text=True)
    assert "<code>memory</code>" in page and "<code>verbose</code>" in page
    assert "only the" not in page and 'class="changed"' not in page


def test_usage_snippet_of_a_model_with_unnamed_features(client, auth):
    """A model fitted on a bare array takes rows of values: the snippet sends one, and it predicts."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    upload_model(client, auth.bearer("scientist"), LogisticRegression(max_iter=500).fit(X, y), "bare")
    auth.login("viewer")
    page = client.get("/models/bare/versions/1").get_data(as_text=True)
    assert "4 unnamed values" in page
    assert "rows = [[" in snippet(page, "client")
    url, headers, data = _curl_request(snippet(page, "curl"))
    headers["Authorization"] = headers["Authorization"].replace("$TOKEN", auth.token("viewer"))
    response = client.post(url.removeprefix("http://localhost"), headers=headers, data=data)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["predictions"][0] in (0, 1, 2)
