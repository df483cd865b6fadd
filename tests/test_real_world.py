"""The issue's "done when": the pipelines people really fit and the files they really have, end to
end through a real worker on a real broker. A semicolon CSV with decimal commas, thousands dots,
dd.mm.yyyy dates and Windows-1252 text, and an .xlsx of the same loans; pipelines with
``make_column_selector``, a trusted custom step, LightGBM and XGBoost. Each is uploaded, answers on
the prediction page and the API (with warnings for an unseen category and imputed values), scores
the dataset in a job that keeps the loan IDs beside its predictions, and shows in the runs table.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.realistic import FEATURES, TARGET, ClipOutliers, european_csv, loan_table
from tests.support import FINAL_STATES, poll
from tests.test_scoring import upload_model

ROWS, CHUNK = 1500, 500


@pytest.fixture
def app_config():  # the custom step's module is trusted; small row groups make several chunks
    return {"TRUSTED_MODULES": "tests.poison,tests.realistic", "ROW_GROUP_ROWS": CHUNK}


def _prep(categorical):
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
         make_column_selector(dtype_include="number")),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         categorical),
    ], sparse_threshold=0)


def _pipelines():
    """name -> unfitted pipeline, as data scientists write them."""
    from lightgbm import LGBMClassifier
    from xgboost import XGBClassifier

    return {
        # the idiom pandas 3 warns about (dtype_include=object), fitted below with that warning expected
        "selector-logreg": make_pipeline(_prep(make_column_selector(dtype_include=object)),
                                         LogisticRegression(max_iter=1000)),
        "custom-hgb": Pipeline([("clip", ClipOutliers()), ("prep", _prep(["region", "employment"])),
                                ("clf", HistGradientBoostingClassifier(max_iter=30, random_state=0))]),
        "lightgbm": make_pipeline(_prep(make_column_selector(dtype_include=["object", "string"])),
                                  LGBMClassifier(n_estimators=30, verbose=-1, random_state=0)),
        "xgboost": make_pipeline(_prep(["region", "employment"]),
                                 XGBClassifier(n_estimators=30, max_depth=3, random_state=0)),
    }


@pytest.fixture(scope="module")
def loans():
    frame = loan_table(ROWS, seed=7)
    fitted = {}
    for name, model in _pipelines().items():
        with warnings.catch_warnings():
            # pandas 3 deprecates selecting str columns with dtype_include=object: the user's idiom
            warnings.filterwarnings("ignore", category=Warning, message=".*(object|str).*dtype.*")
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            fitted[name] = model.fit(frame[FEATURES], frame[TARGET])
    return frame, fitted


def _upload_dataset(client, headers, content: bytes, filename: str) -> dict:
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(content), filename)})
    assert response.status_code in (201, 202), response.get_json()
    dataset_id = response.get_json()["id"]
    return poll(lambda: client.get(f"/api/v1/datasets/{dataset_id}", headers=headers).get_json(),
                lambda body: body["state"] in ("ready", "error"), 60)


def _xlsx(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    out = frame.copy()
    out["opened"] = out["opened"].dt.date
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        out.to_excel(writer, sheet_name="Loans", index=False)
    return buffer.getvalue()


def _columns(dataset: dict) -> dict[str, dict]:
    return {c["name"]: c for c in dataset["columns"]}


@pytest.mark.parametrize("filename", ["loans.csv", "loans.xlsx"])
def test_messy_loans_end_to_end(client, auth, worker, loans, filename):
    frame, fitted = loans
    scientist, viewer = auth.bearer("scientist"), auth.bearer("viewer")
    content = european_csv(frame) if filename.endswith(".csv") else _xlsx(frame)
    dataset = _upload_dataset(client, scientist, content, filename)
    assert dataset["state"] == "ready", dataset
    assert dataset["n_rows"] == ROWS
    columns = _columns(dataset)
    # decimal commas with thousands dots are numbers, not text; the loan number is an identifier
    assert columns["amount"]["dtype"] == "double" and columns["income"]["dtype"] == "double", columns
    assert dataset["id_columns"] == ["loan_id"]
    assert not dataset.get("warnings"), dataset["warnings"]

    auth.login("viewer")
    for name, model in fitted.items():
        upload_model(client, scientist, model, name)
        # the API answers what scikit-learn answers, and says what it could not take as given
        rows = [dict(frame.loc[0, FEATURES].to_dict(), region="Mars"),
                {**frame.loc[1, FEATURES].to_dict(), "amount": None}]
        rows = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()} for r in rows]
        response = client.post(f"/api/v1/models/{name}/predict", headers=viewer, json={"dataframe_records": rows})
        assert response.status_code == 200, (name, response.get_json())
        body = response.get_json()
        expected = model.predict(pd.DataFrame(rows, columns=FEATURES).astype({"amount": float}))
        assert body["predictions"] == expected.tolist(), name
        codes = {(w["code"], w.get("column")) for w in body["warnings"]}
        assert ("unknown_category", "region") in codes and ("missing_imputed", "amount") in codes, (name, codes)

        # the prediction page takes the same row from its form, strings and all
        path = f"/models/{name}/versions/1/predict"
        fields = {f"f:{k}": ("" if v is None else str(v)) for k, v in rows[0].items()}
        page = client.post(path, data={"csrf_token": auth.csrf_token(path), "mode": "fields", **fields})
        assert page.status_code == 200, (name, page.get_data(as_text=True)[:500])
        text = page.get_data(as_text=True)
        assert f'id="prediction">{expected[0]}</p>' in text, name
        assert "Column &#39;region&#39;: 1 row (row 0) holds a category (&#39;Mars&#39;) the model did not see" in text, name

        # a job keeps the loan IDs beside its predictions: results join back by ID, not position
        response = client.post("/api/v1/jobs", headers=scientist,
                               json={"model": name, "dataset": dataset["id"], "target": TARGET})
        assert response.status_code == 202, (name, response.get_json())
        job = poll(lambda: client.get(f"/api/v1/jobs/{response.get_json()['id']}", headers=scientist).get_json(),
                   lambda b: b["state"] in FINAL_STATES, 120)
        assert job["state"] == "done", job
        results = pq.read_table(io.BytesIO(client.get(f"/api/v1/jobs/{job['id']}/results?format=parquet",
                                                      headers=scientist).data)).to_pandas()
        assert "loan_id" in results.columns
        joined = results.merge(frame, on="loan_id", validate="one_to_one")
        assert len(joined) == ROWS
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X does not have valid feature names")
            truth = pd.Series(model.predict(frame[FEATURES]), index=frame["loan_id"])
        assert (joined["prediction"].to_numpy() == truth.loc[joined["loan_id"]].to_numpy()).all(), name

    # the runs table lists each job with its model, dataset and main metric
    table = client.get("/jobs/").get_data(as_text=True)
    for name in fitted:
        assert re.search(rf">{re.escape(name)}\b", table), name
    assert filename in table and "ROC AUC" in table
