"""January vs February: two datasets compared with no serving (a "drift" job on the session's
worker), with the data users have: a semicolon CSV with decimal commas, an ID column, dates,
missing values and categories January never had."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tests.support import post_form, wait_for_job


def months(n: int = 4_000) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(7)

    def month(seed_shift: float, regions, start: str) -> pd.DataFrame:
        data = pd.DataFrame({
            "loan_id": [f"L{i:06d}" for i in rng.permutation(10 * n)[:n]],
            "amount": rng.lognormal(8 + seed_shift, 0.5, n).round(2),
            "age": rng.normal(40, 10, n).round(1),
            "region": rng.choice(list(regions), n, p=list(regions.values())),
            "signed": pd.date_range(start, periods=n, freq="10min").strftime("%d.%m.%Y"),
        })
        data.loc[rng.random(n) < 0.05, "age"] = np.nan
        return data

    january = month(0.0, {"north": 0.5, "south": 0.3, "east": 0.2}, "2026-01-01")
    february = month(0.4, {"north": 0.2, "south": 0.3, "east": 0.2, "west": 0.3}, "2026-02-01")
    return january, february


def upload(client, headers, data: pd.DataFrame, name: str, **csv) -> str:
    if csv:  # what Excel writes in Germany
        body = data.to_csv(index=False, sep=";", decimal=",").encode("cp1252")
    else:
        body = data.to_csv(index=False).encode()
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(body), name), **csv})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.fixture
def pair(client, auth):
    january, february = months()
    scientist = auth.bearer("scientist")
    jan = upload(client, scientist, january, "january.csv")
    feb = upload(client, scientist, february, "february.csv", delimiter="semicolon", decimal=",")
    return january, february, jan, feb


def test_february_against_january_flags_the_shifted_columns_with_the_monitoring_s_measures(
        app, client, auth, worker, pair):
    january, february, jan, feb = pair
    scientist = auth.bearer("scientist")
    started = client.post(f"/api/v1/datasets/{feb}/drift", headers=scientist, json={"reference": jan})
    assert started.status_code == 202, started.get_json()
    job = wait_for_job(client, scientist, started.get_json()["id"])
    assert job["state"] == "done", job["error"]
    result, left_out = job["result"], job["params"]["left_out"]
    assert set(result["columns"]) == {"amount", "age", "region"}
    assert "ID column" in left_out["loan_id"] and "datetime" in left_out["signed"]
    flagged = {c for c, f in result["columns"].items() if f["drift"]}
    assert flagged == {"amount", "region"} and result["dataset_drift"] is True
    assert result["rows"] == result["reference_rows"] == 4_000
    age = result["columns"]["age"]
    assert age["missing"] == february["age"].isna().sum()
    for column in ("amount", "age"):  # the grid's figure is within 1 % of scipy's on the raw values
        before, after = january[column].dropna(), february[column].dropna()
        exact = stats.wasserstein_distance(before, after) / before.std(ddof=0)
        assert result["columns"][column]["wasserstein"] == pytest.approx(exact, rel=0.01, abs=0.002)
    shares = lambda s: s.value_counts(normalize=True)  # noqa: E731
    from scipy.spatial.distance import jensenshannon
    p, q = shares(january["region"]).align(shares(february["region"]), fill_value=0)
    assert result["columns"]["region"]["jensen_shannon"] == pytest.approx(jensenshannon(p, q), abs=1e-9)

    again = client.post(f"/api/v1/datasets/{feb}/drift", headers=scientist, json={"reference": jan})
    assert again.status_code == 200 and again.get_json()["id"] == job["id"]  # the same pair: that job
    from viewer.services import artifacts
    with app.app_context():
        artifacts.sweep(grace_seconds=0)  # what a comparison keeps is recorded: the sweep leaves it

    auth.login("viewer")  # analysts read it on the job page, with a column's two distributions
    page = client.get(f"/jobs/{job['id']}?column=region")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "february.csv vs january.csv" in html
    assert "The dataset drifts" in html and 'id="drift-plot"' in html and "west" in html
    assert "vs january.csv" in client.get(f"/datasets/{feb}").get_data(as_text=True)  # in its list of jobs


def test_a_scientist_compares_from_the_dataset_page(client, auth, pair):
    _january, _february, jan, feb = pair
    auth.login("scientist")
    page = f"/datasets/{feb}"
    shown = client.get(page).get_data(as_text=True)
    assert "Compare with another dataset" in shown and f'<option value="{jan}">january.csv</option>' in shown
    assert f'<option value="{feb}">' not in shown  # not itself
    response = post_form(client, auth, page, f"/datasets/{feb}/drift", reference=jan)
    assert response.status_code == 302 and "/jobs/" in response.headers["Location"]
    assert "february.csv vs january.csv" in client.get(response.headers["Location"]).get_data(as_text=True)
    refused = post_form(client, auth, page, f"/datasets/{feb}/drift", reference=feb)
    assert refused.headers["Location"].endswith(f"/datasets/{feb}#drift")
    assert "compared with itself" in client.get(refused.headers["Location"]).get_data(as_text=True)


def test_bad_comparisons_are_refused_with_the_reason(client, auth, pair):
    _january, _february, jan, feb = pair
    scientist = auth.bearer("scientist")

    def ask(dataset, body, headers=scientist):
        response = client.post(f"/api/v1/datasets/{dataset}/drift", headers=headers, json=body)
        return response.status_code, response.get_json()

    status, body = ask(feb, {"reference": feb})
    assert status == 400 and "compared with itself" in body["message"]
    status, body = ask(feb, {"reference": "nope"})
    assert status == 404 and body["message"] == "No such dataset."
    other = upload(client, scientist, pd.DataFrame({"x": [1, 2, 3], "y": ["a", "b", "c"]}), "other.csv")
    status, body = ask(feb, {"reference": other})
    assert status == 400 and "no column of the same name and kind" in body["message"]
    status, _ = ask(feb, {"reference": jan}, auth.bearer("viewer"))
    assert status == 403
    status, body = ask(feb, {"reference": jan, "extra": 1})
    assert status == 400


def test_a_column_read_as_text_in_one_month_is_left_out_with_the_likely_cause(client, auth):
    january, february = months(200)
    scientist = auth.bearer("scientist")
    jan = upload(client, scientist, january, "jan.csv")
    feb = upload(client, scientist, february, "feb.csv", delimiter="semicolon", decimal=".")  # the wrong decimal
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset
    from viewer.services import dataset_drift
    with client.application.app_context():
        compared, left_out = dataset_drift.plan(db.session.get(Dataset, jan), db.session.get(Dataset, feb))
    assert "amount" not in compared and "age" not in compared, left_out
    assert "numbers only in jan.csv, text in the other (check the decimal separator" in left_out["amount"]


def test_a_reference_in_use_is_not_deleted_and_a_failed_comparison_keeps_nothing(app, client, auth, pair):
    _january, _february, jan, feb = pair
    scientist = auth.bearer("scientist")
    from viewer.infra.extensions import db
    from viewer.infra.records import Job
    from viewer.services import artifacts, dataset_drift, jobs
    with app.app_context():  # a comparison still queued (recorded here, never sent: no worker takes it)
        queued = Job(kind=dataset_drift.KIND, dataset_id=feb, params={"reference": jan, "reference_name": "january.csv"})
        db.session.add(queued)
        db.session.commit()
        queued_id = queued.id
    refused = client.delete(f"/api/v1/datasets/{jan}", headers=scientist)
    assert refused.status_code == 409 and "used by 1 unfinished job" in refused.get_json()["message"]
    with app.app_context():
        with artifacts.store().writer(f"jobs/{queued_id}/reference-x.summary") as path:
            path.write_bytes(b"half")
        jobs.fail(queued_id, "stopped")  # its end hook removes what it wrote
        assert not list(artifacts.store().list(f"jobs/{queued_id}"))
    assert client.delete(f"/api/v1/datasets/{jan}", headers=scientist).status_code == 204
