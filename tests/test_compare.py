"""The compare page and /api/v1/compare, end to end through a real worker: two models scored on one
dataset, their plots and metrics side by side at once, then the compare job's bootstrap intervals
and disagreeing rows, checked against a brute-force computation on the downloaded predictions."""

from __future__ import annotations

import io
import json
import re
from html import unescape

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge

from tests.support import FINAL_STATES, poll, upload_model, wait_for_job

ROWS, CHUNK = 2400, 500
FINAL = FINAL_STATES
LABELS = np.array(["<b>no</b>", "yes"], dtype=object)  # a label that is markup: shown as text only


@pytest.fixture
def app_config():  # small row groups: a few thousand rows make several chunks
    return {"ROW_GROUP_ROWS": CHUNK}


@pytest.fixture(scope="module")
def binary_problem():
    X, y = make_classification(n_samples=ROWS, n_features=5, n_informative=3, n_redundant=0, flip_y=0.1,
                               random_state=4)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d", "e"])
    target = LABELS[y]
    strong = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(frame, target)
    weak = LogisticRegression().fit(frame[["a", "b", "c", "d", "e"]].assign(c=0.0, d=0.0), target)
    return frame.assign(label=target), strong, weak


def upload_frame(client, headers, frame: pd.DataFrame) -> str:
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(frame.to_csv(index=False).encode()), "data.csv")})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def wait(client, headers, job_id: str, timeout: float = 120) -> dict:
    return wait_for_job(client, headers, job_id, timeout)


def score(client, headers, model: str, dataset: str, target: str | None) -> dict:
    response = client.post("/api/v1/jobs", headers=headers, json={"model": model, "dataset": dataset, "target": target})
    assert response.status_code == 202, response.get_json()
    job = wait(client, headers, response.get_json()["id"])
    assert job["state"] == "done", job
    return job


def compare_api(client, headers, ids, **params):
    query = "&".join([f"jobs={i}" for i in ids] + [f"{k}={v}" for k, v in params.items()])
    return client.get(f"/api/v1/compare?{query}", headers=headers)


def start_comparison(client, headers, ids, retry: bool = False):
    return client.post("/api/v1/compare", headers=headers, json={"jobs": list(ids), "retry": retry})


def wait_comparison(client, headers, ids, timeout: float = 120) -> dict:
    """Start the comparison job (a POST; looking starts nothing), then follow it."""
    assert start_comparison(client, headers, ids).status_code in (200, 202)
    return poll(lambda: compare_api(client, headers, ids).get_json(),
                lambda body: body["comparison"]["state"] in FINAL, timeout, interval=0.2)


def predictions(client, headers, job_id) -> pd.DataFrame:
    response = client.get(f"/api/v1/jobs/{job_id}/results?format=parquet", headers=headers)
    assert response.status_code == 200
    return pq.read_table(io.BytesIO(response.data)).to_pandas()


def bokeh_items(html: str) -> dict[str, dict]:
    """Every plot's json_item on a page, by target id."""
    blocks = re.findall(r'<script type="application/json" data-bokeh-target="([^"]+)">(.*?)</script>', html, re.S)
    return {target: json.loads(body) for target, body in blocks}


def sources(item: dict, prefix: str) -> dict[str, dict]:
    """The ColumnDataSources named ``prefix``-<i> in a json_item, name -> data."""
    found = {}

    def walk(node):
        if isinstance(node, dict):
            attrs = node.get("attributes") or {}
            if node.get("type") == "object" and node.get("name") == "ColumnDataSource" and \
                    str(attrs.get("name", "")).startswith(prefix):
                found[attrs["name"]] = attrs["data"]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(item["doc"])
    return found


def tooltips(item: dict) -> list[list]:
    """Every HoverTool's tooltips in a json_item."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "object" and node.get("name") == "HoverTool":
                found.append(list(node.get("attributes", {}).get("tooltips", [])))
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    walk(item["doc"])
    return found


def column(data: dict, key: str) -> list:
    """A data-source column from bokeh's JSON (plain list, or an encoded ndarray)."""
    value = data["entries"] if isinstance(data, dict) and "entries" in data else data
    if isinstance(value, list) and value and isinstance(value[0], (list, tuple)):  # [[key, value], ...]
        value = dict(value)
    col = value[key]
    if isinstance(col, dict) and col.get("type") == "ndarray":
        array = col["array"]
        if isinstance(array, dict) and array.get("type") == "bytes":
            import base64

            return np.frombuffer(base64.b64decode(array["data"]), dtype=col["dtype"]).tolist()
        return list(array)
    return list(col)


# ----------------------------------------------------------------------------- end to end


def test_compare_two_classifiers_end_to_end(app, client, auth, worker, binary_problem):
    frame, strong, weak = binary_problem
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, strong, "strong")
    upload_model(client, scientist, weak, "weak")
    dataset = upload_frame(client, scientist, frame)
    a = score(client, scientist, "strong", dataset, "label")
    b = score(client, scientist, "weak", dataset, "label")
    ids = [a["id"], b["id"]]

    # The page: metrics side by side and overlaid plots at once; looking starts no work.
    auth.login("viewer")  # a viewer may open it, and start the comparison with its button
    response = client.get(f"/jobs/compare?jobs={ids[0]}&jobs={ids[1]}")
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    html = response.get_data(as_text=True)
    assert "<b>no</b>" not in html
    assert "<script>" not in html.split("</header>", 1)[1].replace('<script type="application/json"', "")
    page = unescape(html)
    assert "strong/1" in page and "weak/1" in page and "baseline" in page
    table = re.search(r'<table class="grid" id="metric-table">(.*?)</table>', html, re.S).group(1)
    auc_row = re.search(r'<tr data-metric="roc_auc">(.*?)</tr>', table, re.S).group(1)
    assert f"{a['metrics']['roc_auc']:.4f}" in auc_row and f"{b['metrics']['roc_auc']:.4f}" in auc_row
    assert "↑ higher" in auc_row and 'data-verdict="worse"' in auc_row  # weak is worse than the baseline
    assert "↓ lower" in re.search(r'<tr data-metric="log_loss">(.*?)</tr>', table, re.S).group(1)
    items = bokeh_items(html)
    assert {"plot-roc", "plot-pr", "plot-calibration"} <= set(items)
    roc = sources(items["plot-roc"], "src-roc-")
    assert sorted(roc) == ["src-roc-0", "src-roc-1"]
    aggregates = client.get(f"/api/v1/jobs/{ids[0]}/aggregates", headers=scientist).get_json()
    assert column(roc["src-roc-0"], "fpr") == pytest.approx(aggregates["roc"]["fpr"])
    assert column(roc["src-roc-0"], "model") == ["strong/1"] * len(aggregates["roc"]["fpr"])
    assert 'id="comparison"' in html and 'data-state="not_started"' in html and 'id="start-form"' in html
    assert compare_api(client, auth.bearer("viewer"), ids).get_json()["comparison"] == {
        "state": "not_started", "job": None, "result": None,
        "message": compare_api(client, auth.bearer("viewer"), ids).get_json()["comparison"]["message"]}
    with app.app_context():
        from viewer.infra.extensions import db
        from viewer.infra.records import Job

        assert db.session.query(Job).filter(Job.kind == "compare").count() == 0  # GET started nothing
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    started = client.post("/jobs/compare", data={"csrf_token": token, "jobs": ids})
    assert started.status_code == 302 and "/jobs/compare?jobs=" in started.headers["Location"]
    html = client.get(started.headers["Location"]).get_data(as_text=True)
    assert re.search(r'data-state="(pending|running|done)"', html)
    assert "job.js" in html or 'id="ci-table"' in html  # live status while it runs (or already done)

    # The API: the same jobs, the same (deduplicated) comparison job; wait for it.
    viewer = auth.bearer("viewer")
    assert start_comparison(client, viewer, ids).status_code == 200  # the page's job, not a second one
    body = wait_comparison(client, viewer, ids)
    comparison = body["comparison"]
    assert comparison["state"] == "done", comparison
    assert comparison["job"]["kind"] == "compare" and comparison["job"]["progress"]["done"] == ROWS
    assert [j["id"] for j in body["jobs"]] == ids and body["task"] == "binary" and body["target"] == "label"
    result = comparison["result"]
    assert result["main_metric"] == "roc_auc"
    main = [d for d in result["differences"] if d["main"]]
    assert len(main) == 1 and main[0]["job"] == ids[1] and main[0]["baseline"] == ids[0]
    expected_gap = b["metrics"]["roc_auc"] - a["metrics"]["roc_auc"]
    assert main[0]["difference"] == pytest.approx(expected_gap, abs=1e-9)  # every row: the exact AUCs
    assert main[0]["low"] < expected_gap < main[0]["high"] and main[0]["verdict"] == "worse"
    accuracy = next(d for d in result["differences"] if d["metric"] == "accuracy")
    assert accuracy["difference"] == pytest.approx(b["metrics"]["accuracy"] - a["metrics"]["accuracy"], abs=1e-12)

    # The disagreeing rows and label counts equal a brute-force pandas computation on the downloads.
    pa_, pb_ = predictions(client, scientist, ids[0]), predictions(client, scientist, ids[1])
    spread = (pa_["proba_yes"] - pb_["proba_yes"]).abs()
    brute = pd.DataFrame({"row": pa_["row"], "score": spread}).sort_values(["score", "row"], ascending=[False, True])
    top = result["disagreement"]["top"]
    assert [r["row"] for r in top] == brute["row"].head(50).tolist()
    assert result["disagreement"]["n_label_differ"] == int((pa_["prediction"] != pb_["prediction"]).sum())
    first = top[0]
    assert first["target"] == frame["label"].iloc[first["row"]]
    assert first["predictions"] == [pa_["prediction"].iloc[first["row"]], pb_["prediction"].iloc[first["row"]]]

    assert client.get(f"/jobs/{comparison['job']['id']}").status_code == 200  # the job page shows it too

    # Asking again, in either order, finds the same job; the reversed view flips the differences.
    again = compare_api(client, viewer, ids[::-1]).get_json()["comparison"]
    assert again["job"]["id"] == comparison["job"]["id"]
    flipped = next(d for d in again["result"]["differences"] if d["main"])
    assert flipped["difference"] == pytest.approx(-main[0]["difference"])
    assert (flipped["low"], flipped["high"]) == pytest.approx((-main[0]["high"], -main[0]["low"]))
    assert flipped["verdict"] == "better"

    # The page, now that the job is done: the interval and the rows.
    html = client.get(f"/jobs/compare?jobs={ids[0]}&jobs={ids[1]}").get_data(as_text=True)
    assert 'id="ci-table"' in html and 'id="top-rows"' in html and "job.js" not in html
    assert len(re.findall(r'<tr data-row="\d+">', html)) == 50
    assert f'<tr data-row="{first["row"]}">' in html
    for job_id in ids:  # each model's prediction opens that row's explorer, with why
        assert f'href="/jobs/{job_id}/row?value={first["row"]}"' in html
    why = client.get(f"/jobs/{ids[1]}/row?value={first['row']}").get_data(as_text=True)
    assert f"Row {first['row']:,}" in why and 'id="why"' in why
    assert re.search(r'data-main="roc_auc"', html) and "worse than the baseline" in html

    # The job list offers the checkboxes, the button, and links the comparison.
    listing = client.get("/jobs/").get_data(as_text=True)
    assert 'id="compare-form"' in listing and f'value="{ids[0]}" form="compare-form"' in listing
    assert listing.count('form="compare-form"') == 2  # only the finished scoring jobs
    assert "/jobs/compare?jobs=" in listing


def month(seed: int, noise: float, shift: float) -> pd.DataFrame:
    """Customers of one month: the label depends on a, b, c; ``noise`` blurs it and ``shift`` moves
    the features (February: noisier and shifted, so a model fitted on January does worse)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(ROWS, 4)) + np.array([shift, -shift / 2, 0.0, shift])
    logit = 1.6 * X[:, 0] - 1.2 * X[:, 1] + 0.8 * X[:, 2] - 0.5 + rng.normal(scale=noise, size=ROWS)
    frame = pd.DataFrame(X.round(5), columns=["a", "b", "c", "d"])
    frame.insert(0, "customer", [f"C{seed}-{i:05d}" for i in range(ROWS)])  # an ID column
    return frame.assign(label=LABELS[(logit > 0).astype(int)])


def upload_named(client, headers, frame: pd.DataFrame, name: str) -> str:
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(frame.to_csv(index=False).encode()), name), "name": name})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


def test_one_model_on_january_and_february_end_to_end(app, client, auth, worker):
    """One model scored on two months drawn from shifted distributions: the compare job bootstraps
    each month's rows independently; February is worse and the interval excludes 0; each month's
    metric equals scikit-learn's; no disagreement table (the rows are not the same rows)."""
    from sklearn.compose import make_column_selector, make_column_transformer
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline

    jan, feb = month(1, noise=0.3, shift=0.0), month(2, noise=2.0, shift=0.7)
    train = month(3, noise=0.3, shift=0.0)
    model = make_pipeline(make_column_transformer(("passthrough", make_column_selector(pattern="^[abcd]$"))),
                          LogisticRegression()).fit(train[["a", "b", "c", "d"]], train["label"])
    scientist = auth.bearer("scientist")
    upload_model(client, scientist, model, "churn")
    a = score(client, scientist, "churn", upload_named(client, scientist, jan, "jan.csv"), "label")
    b = score(client, scientist, "churn", upload_named(client, scientist, feb, "feb.csv"), "label")
    ids = [a["id"], b["id"]]
    truth = {}
    for name, frame, job in (("jan", jan, a), ("feb", feb, b)):
        p = model.predict_proba(frame[["a", "b", "c", "d"]])[:, list(model.classes_).index("yes")]
        truth[name] = roc_auc_score(frame["label"] == "yes", p)
        assert job["metrics"]["roc_auc"] == pytest.approx(truth[name], abs=1e-9)
        assert job["metrics"]["accuracy"] == pytest.approx(accuracy_score(frame["label"], model.predict(frame[["a", "b", "c", "d"]])))
    assert truth["feb"] < truth["jan"] - 0.03

    viewer = auth.bearer("viewer")
    looked = compare_api(client, viewer, ids).get_json()
    assert looked["mode"] == "datasets" and looked["dataset"] == "jan.csv vs feb.csv"
    assert [j["dataset"] for j in looked["jobs"]] == ["jan.csv", "feb.csv"]
    assert [j["label"] for j in looked["jobs"]] == ["churn/1 on jan.csv", "churn/1 on feb.csv"]
    assert looked["comparison"]["state"] == "not_started" and "both jobs" in looked["comparison"]["message"]
    auth.login("viewer")
    html = client.get(f"/jobs/compare?jobs={ids[0]}&jobs={ids[1]}").get_data(as_text=True)
    text = unescape(re.sub(r"<[^>]+>", "", html))
    assert "Comparing two datasets" in text and "This compares datasets, not models" in text
    assert "“feb.csv − jan.csv”" in text and 'id="start-form"' in html

    body = wait_comparison(client, viewer, ids)
    comparison = body["comparison"]
    assert comparison["state"] == "done", comparison
    assert comparison["job"]["progress"]["done"] == 2 * ROWS
    result = comparison["result"]
    assert result["mode"] == "datasets" and result["main_metric"] == "roc_auc"
    assert result["metrics"]["roc_auc"]["estimate"] == pytest.approx([truth["jan"], truth["feb"]], abs=1e-9)
    main = next(d for d in result["differences"] if d["main"])
    assert (main["job"], main["baseline"]) == (ids[1], ids[0])
    assert main["difference"] == pytest.approx(truth["feb"] - truth["jan"], abs=1e-9)
    assert main["low"] < main["difference"] < main["high"] < 0 and main["verdict"] == "worse"
    assert result["disagreement"] is None and "not the same rows" in result["no_disagreement"]
    sign = lambda v: f"{v:+.3f}".replace("-", "−")  # noqa: E731
    assert result["headline"] == (f"churn/1 on jan.csv vs feb.csv: ROC AUC {sign(main['difference'])} "
                                  f"[{sign(main['low'])}, {sign(main['high'])}]")
    flipped = next(d for d in compare_api(client, viewer, ids[::-1]).get_json()["comparison"]["result"]["differences"]
                   if d["main"])
    assert flipped["low"] == pytest.approx(-main["high"]) and flipped["verdict"] == "better"

    html = client.get(f"/jobs/compare?jobs={ids[0]}&jobs={ids[1]}").get_data(as_text=True)
    text = unescape(re.sub(r"<[^>]+>", "", html))
    assert 'id="ci-table"' in html and 'id="top-rows"' not in html and 'id="disagreement"' not in html
    assert 'id="no-disagreement"' in html and "their rows are not the same rows" in text
    assert re.search(r"churn/1 on jan\.csv vs feb\.csv: ROC AUC\s+−0\.\d+\s+\[−0\.\d+, −0\.\d+\]", text), text[:3000]
    assert "worse on feb.csv than on jan.csv" in text
    job_page = unescape(client.get(f"/jobs/{comparison['job']['id']}").get_data(as_text=True))
    assert "Comparing churn/1 on jan.csv vs feb.csv" in job_page

    # More than two jobs across datasets: refused, saying what can be compared.
    c = score(client, scientist, "churn", upload_named(client, scientist, month(4, noise=0.3, shift=0.0), "mar.csv"), "label")
    refused = compare_api(client, viewer, ids + [c["id"]])
    assert refused.status_code == 400 and "one model on two datasets" in refused.get_json()["message"]


def test_compare_two_regressors(app, client, auth, worker):
    X, y = make_regression(n_samples=1500, n_features=3, noise=10.0, random_state=5)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    headers = auth.bearer("scientist")
    upload_model(client, headers, LinearRegression().fit(frame, y), "ols")
    upload_model(client, headers, Ridge(alpha=300.0).fit(frame, y), "ridge")
    dataset = upload_frame(client, headers, frame.assign(y=y))
    ids = [score(client, headers, m, dataset, "y")["id"] for m in ("ols", "ridge")]
    body = wait_comparison(client, headers, ids)
    assert body["task"] == "regression" and body["comparison"]["state"] == "done"
    result = body["comparison"]["result"]
    rmse = next(d for d in result["differences"] if d["main"])
    assert rmse["metric"] == "rmse" and rmse["verdict"] == "worse" and rmse["low"] > 0
    metrics = {row["key"]: row for row in body["metrics"]}
    assert metrics["rmse"]["better"] == "lower" and metrics["rmse"]["verdicts"] == [None, "worse"]
    assert rmse["difference"] == pytest.approx(metrics["rmse"]["values"][1] - metrics["rmse"]["values"][0])
    pa_, pb_ = predictions(client, headers, ids[0]), predictions(client, headers, ids[1])
    gap = (pa_["prediction"] - pb_["prediction"]).abs()
    assert [r["row"] for r in result["disagreement"]["top"]] == \
        pd.DataFrame({"row": pa_["row"], "gap": gap}).sort_values(["gap", "row"], ascending=[False, True])["row"].head(50).tolist()

    auth.login("viewer")
    html = client.get(f"/jobs/compare?jobs={ids[0]}&jobs={ids[1]}").get_data(as_text=True)
    items = bokeh_items(html)
    assert {"plot-residual_histogram", "plot-error_by_decile"} <= set(items)
    assert sorted(sources(items["plot-error_by_decile"], "src-error_by_decile-")) == ["src-error_by_decile-0",
                                                                                     "src-error_by_decile-1"]
    assert 'id="ci-table"' in html and "RMSE" in html


# ----------------------------------------------------------------------------- error cases


def make_job(app, **fields) -> str:
    """A job record as a finished scoring job leaves it (its output files are not needed to refuse)."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset, Job

    with app.app_context():
        dataset_id = fields.pop("dataset_id", None)
        if dataset_id is None:
            dataset = Dataset(name="d.csv", state="ready", n_rows=10)
            db.session.add(dataset)
            db.session.flush()
            dataset_id = dataset.id
        params = {"model": "m/1", "model_name": "m", "model_version": 1, "kind": "classifier",
                  "classes": [0, 1], "target": "y", **fields.pop("params", {})}
        job = Job(kind=fields.pop("kind", "score"), state=fields.pop("state", "done"), params=params,
                  dataset_id=dataset_id, result={"metrics": {"accuracy": 0.5}, "aggregates": {}},
                  progress_done=10, progress_total=10, **fields)
        db.session.add(job)
        db.session.commit()
        return job.id, dataset_id


@pytest.fixture
def records(app):
    one, dataset = make_job(app)
    return {
        "one": one, "dataset": dataset,
        "two": make_job(app, dataset_id=dataset)[0],
        "elsewhere": make_job(app)[0],
        "running": make_job(app, dataset_id=dataset, state="pending")[0],
        "regressor": make_job(app, dataset_id=dataset, params={"kind": "regressor", "classes": None})[0],
        "other_target": make_job(app, dataset_id=dataset, params={"target": "z"})[0],
        "multiclass": make_job(app, dataset_id=dataset, params={"classes": [0, 1, 2]})[0],
        "other_classes": make_job(app, dataset_id=dataset, params={"classes": ["a", "b"]})[0],
        "ingest": make_job(app, dataset_id=dataset, kind="ingest")[0],
    }


@pytest.mark.parametrize("names, status, words", [
    (["one"], 400, "at least two"),
    (["one", "one"], 400, "at least two"),
    ([], 400, "at least two"),
    (["one", "two", "elsewhere"], 400, "different datasets"),
    (["one", "running"], 400, "is pending"),
    (["one", "regressor"], 400, "different task types"),
    (["one", "multiclass"], 400, "different task types"),
    (["one", "other_target"], 400, "different target"),
    (["one", "other_classes"], 400, "different classes"),
    (["one", "ingest"], 400, "only scoring jobs"),
    (["one", "nope"], 404, "No job"),
    (["one"] * 1 + ["x%d" % i for i in range(8)], 400, "at most 8"),
])
def test_what_cannot_be_compared_is_a_4xx_with_a_message(client, auth, records, names, status, words):
    ids = [records.get(n, n) for n in names]
    response = compare_api(client, auth.bearer("viewer"), ids)
    assert response.status_code == status
    body = response.get_json()
    assert set(body) == {"error_code", "message"} and words in body["message"], body
    auth.login("viewer")
    page = client.get("/jobs/compare?" + "&".join(f"jobs={i}" for i in ids))
    assert page.status_code == status and words in unescape(page.get_data(as_text=True))


def test_who_may_compare(client, auth, records):
    ids = f"jobs={records['one']}&jobs={records['two']}"
    assert client.get(f"/api/v1/compare?{ids}").status_code == 401
    assert client.get(f"/jobs/compare?{ids}").status_code == 302  # to the login page
    assert compare_api(client, auth.bearer("viewer"), [records["one"], records["two"]], retry="maybe").status_code == 400
    assert client.post("/api/v1/compare", json={"jobs": [records["one"], records["two"]]}).status_code == 401
    assert start_comparison(client, auth.bearer("viewer"), [records["one"], records["two"]]).status_code == 202


def test_a_failed_comparison_is_shown_and_can_be_computed_again(app, client, auth, worker, records):
    """Two finished jobs whose output files are gone: the worker fails the comparison with the
    reason; the page says so and offers a retry, which starts a new job."""
    ids = [records["one"], records["two"]]
    headers = auth.bearer("viewer")
    body = wait_comparison(client, headers, ids)
    failed = body["comparison"]
    assert failed["state"] == "error" and "gone" in failed["message"]
    # the metrics still compare (they come from the jobs)
    assert body["metrics"][0]["key"] == "accuracy" and body["metrics"][0]["verdicts"] == [None, "same"]
    # an error stays until someone asks again
    assert compare_api(client, headers, ids).get_json()["comparison"]["job"]["id"] == failed["job"]["id"]
    auth.login("viewer")
    html = unescape(client.get(f"/jobs/compare?jobs={ids[0]}&jobs={ids[1]}").get_data(as_text=True))
    assert 'id="retry-form"' in html and "gone" in html
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    response = client.post("/jobs/compare", data={"csrf_token": token, "jobs": ids})
    assert response.status_code == 302 and "/jobs/compare?jobs=" in response.headers["Location"]
    retried = compare_api(client, headers, ids).get_json()["comparison"]["job"]
    assert retried["id"] != failed["job"]["id"]
    assert wait(client, headers, retried["id"])["state"] == "error"
    assert compare_api(client, headers, ids, retry="true").status_code == 400  # looking starts no work
    assert start_comparison(client, headers, ids).get_json()["comparison"]["job"]["id"] == retried["id"]
    retried_again = start_comparison(client, headers, ids, retry=True)
    assert retried_again.status_code == 202
    assert retried_again.get_json()["comparison"]["job"]["id"] not in (failed["job"]["id"], retried["id"])
    assert client.post("/jobs/compare", data={"jobs": ids}).status_code == 400  # no CSRF token


# ------------------------------------------------------------------ plots from known aggregates


def synthetic_aggregates(task: str, seed: int, has_target: bool = True) -> dict:
    from viewer.core.metrics import classification_aggregates, regression_aggregates

    rng = np.random.default_rng(seed)
    n = 3000
    if task == "regression":
        y = rng.normal(size=n)
        return regression_aggregates(y if has_target else None, y + rng.normal(size=n) * (1 + seed))
    classes = ["<script>alert(1)</script>", "b", "c"] if task == "multiclass" else [0, 1]
    proba = rng.dirichlet(np.ones(len(classes)), n)
    y = np.array(classes, dtype=object)[rng.integers(0, len(classes), n)] if has_target else None
    return classification_aggregates(y, proba, None, classes)


@pytest.mark.parametrize("task, has_target, keys", [
    ("binary", True, ["roc", "pr", "calibration", "score_positive"]),
    ("binary", False, ["score_histogram"]),
    ("multiclass", True, ["per_class_f1", "prediction_shares"]),
    ("multiclass", False, ["prediction_shares"]),
    ("regression", True, ["residual_histogram", "error_by_decile"]),
    ("regression", False, ["prediction_histogram"]),
])
def test_overlaid_plots_draw_one_series_per_job(task, has_target, keys):
    from bokeh.embed import json_item

    from viewer.plots.compare import compare_plots

    aggs = [synthetic_aggregates(task, seed, has_target) for seed in range(3)]
    plots = compare_plots(task, [(f"m{i}/1", a) for i, a in enumerate(aggs)])
    assert [p.key for p in plots] == keys
    for plot in plots:
        item = json_item(plot.draw(), "x")
        found = sources(item, f"src-{plot.key}-")
        reference = 1 if plot.key == "prediction_shares" and has_target else 0  # the true shares, in grey
        assert len(found) == 3 + reference, plot.key
        assert plot.caption and isinstance(plot.exact, bool)
        assert "@model" in json.dumps(item)
        assert tooltips(item), plot.key
        for tips in tooltips(item):  # hover text comes from data fields, never from labels or names
            assert tips and all(value.startswith("@") and "<" not in value for _name, value in tips), tips
    if task == "binary" and has_target:
        roc = sources(json_item(plots[0].draw(), "x"), "src-roc-")
        for i, agg in enumerate(aggs):
            assert column(roc[f"src-roc-{i}"], "tpr") == pytest.approx(agg["roc"]["tpr"])
            assert set(column(roc[f"src-roc-{i}"], "model")) == {f"m{i}/1"}
    if task == "regression" and has_target:  # densities integrate to the share of rows inside the range
        xs = column(sources(json_item(plots[0].draw(), "x"), "src-residual_histogram-")["src-residual_histogram-0"],
                    "x")
        ys = column(sources(json_item(plots[0].draw(), "x"), "src-residual_histogram-")["src-residual_histogram-0"],
                    "density")
        area = sum((b - a) * y for a, b, y, y2 in zip(xs[:-1], xs[1:], ys[:-1], ys[1:]) if y == y2)
        part = aggs[0]["residual_histogram"]
        assert area == pytest.approx(sum(part["counts"]) / part["n"], rel=1e-6)


def test_a_plot_missing_from_one_job_is_left_out():
    from viewer.plots.compare import compare_plots

    aggs = [synthetic_aggregates("binary", seed) for seed in range(2)]
    del aggs[1]["roc"]
    assert "roc" not in [p.key for p in compare_plots("binary", [("a", aggs[0]), ("b", aggs[1])])]
    assert compare_plots("binary", [("a", None), ("b", None)]) == []


def test_a_multiclass_comparison_page_with_a_markup_label(app, client, auth):
    """Labels that are markup stay text: in the HTML (escaped) and in the plot data (JSON, escaped)."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset, Job

    with app.app_context():
        dataset = Dataset(name="three.csv", state="ready", n_rows=3000)
        db.session.add(dataset)
        db.session.flush()
        ids = []
        for seed in range(2):
            aggregates = synthetic_aggregates("multiclass", seed)
            job = Job(kind="score", state="done", dataset_id=dataset.id, progress_done=3000, progress_total=3000,
                      params={"model": f"m{seed}/1", "kind": "classifier", "target": "y",
                              "classes": ["<script>alert(1)</script>", "b", "c"]},
                      result={"metrics": {"accuracy": 0.3 + seed / 10, "log_loss": 1.1}, "aggregates": aggregates})
            db.session.add(job)
            db.session.flush()
            ids.append(job.id)
        db.session.commit()
    auth.login("viewer")
    response = client.get(f"/jobs/compare?jobs={ids[0]}&jobs={ids[1]}")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<script>alert(1)" not in html
    assert {"plot-per_class_f1", "plot-prediction_shares"} <= set(bokeh_items(html))
    assert "Multiclass classification" in html
    row = re.search(r'<tr data-metric="accuracy">(.*?)</tr>', html, re.S).group(1)
    assert "+0.1000" in row and 'data-verdict="better"' in row
