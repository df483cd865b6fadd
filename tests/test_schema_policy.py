"""One schema policy, online and batch (README "Schema policy"): the columns a model does not take
are ignored and reported; unknown categories, values the model imputes, rows with every input
missing and the model's own warnings are reported per column with row counts (v1 ``warnings``,
V2 ``parameters.warnings``, MLflow's ``/invocations`` in the X-Viewer-Warnings header, the
prediction page); ``strict=true`` refuses them with a 400 that names the column, rows and fix.

The model is the pipeline people write: a trusted custom first step, then a ColumnTransformer
selecting columns with ``make_column_selector``, imputers and a OneHotEncoder."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from sklearn.compose import ColumnTransformer, make_column_selector
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from tests.realistic import FEATURES, TARGET, ClipOutliers, loan_table
from tests.support import upload_model
from viewer.core.introspect import describe_model


class _Unnamed(ClipOutliers):
    """The custom step fitted without keeping names (as most hand-written steps are)."""

    def fit(self, X, y=None):
        super().fit(X, y)
        del self.feature_names_in_, self.n_features_in_
        return self


def loan_model(custom=ClipOutliers, handle_unknown="ignore"):
    frame = loan_table(400)
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
         make_column_selector(dtype_include="number")),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown=handle_unknown)),
         ["region", "employment"]),
    ])
    steps = ([("clip", custom())] if custom is not None else []) + [("prep", prep),
                                                                     ("clf", LogisticRegression(max_iter=500))]
    return Pipeline(steps).fit(frame[FEATURES], frame[TARGET])


@pytest.fixture
def app_config():  # small row groups: a few thousand rows make several chunks
    return {"TRUSTED_MODULES": "tests.realistic,tests.test_schema_policy", "ROW_GROUP_ROWS": 500}


def register(client, headers, model, name="loans"):
    return upload_model(client, headers, model, name)


ROW = {"amount": 12000.0, "income": 40000.0, "age": 35.0, "region": "north", "employment": "salaried"}


def test_custom_first_step_keeps_the_input_schema():
    """A custom step without feature names in front does not hide the ColumnTransformer's columns:
    names, kinds, categories and which columns are imputed come from the first step that knows."""
    info = describe_model(loan_model(_Unnamed)).to_dict()
    assert info["feature_names"] == FEATURES and info["n_features"] == 5
    schema = {f["name"]: f for f in info["input_schema"]}
    assert schema["region"]["kind"] == "categorical" and schema["region"]["categories"] == [
        "east", "north", "south", "west"]
    assert schema["region"]["unknown"] == "ignore" and schema["region"]["missing"] == "impute"
    assert schema["amount"]["kind"] == "numeric" and schema["amount"]["missing"] == "impute"


def test_api_takes_strings_for_a_custom_step_pipeline(client, auth):
    """Once trusted, a Pipeline([custom, ColumnTransformer, clf]) takes its string columns on v1."""
    model = loan_model(_Unnamed)
    register(client, auth.bearer("scientist"), model)
    response = client.post("/api/v1/models/loans/predict", headers=auth.bearer("viewer"),
                           json={"dataframe_records": [ROW]})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    import pandas as pd
    assert body["predictions"] == model.predict(pd.DataFrame([ROW])).tolist() and body["warnings"] == []


MESSY = [dict(ROW, region="Mars", loan_id="L1"),
         {"amount": None, "income": None, "age": None, "region": None, "employment": None, "loan_id": "L2"}]


def _codes(found):
    return {(w["code"], w.get("column"), w.get("rows")) for w in found}


EXPECTED = {("extra_columns", None, None), ("unknown_category", "region", 1), ("missing_imputed", "amount", 1),
            ("missing_imputed", "region", 1), ("empty_rows", None, 1)}


def test_v1_reports_extra_columns_unknown_categories_imputed_and_empty_rows(client, auth):
    register(client, auth.bearer("scientist"), loan_model())
    response = client.post("/api/v1/models/loans/predict", headers=auth.bearer("viewer"),
                           json={"dataframe_records": MESSY})
    assert response.status_code == 200, response.get_json()
    found = response.get_json()["warnings"]
    assert EXPECTED <= _codes(found)
    by_code = {w["code"]: w for w in found}
    assert by_code["extra_columns"]["columns"] == ["loan_id"]
    assert "'region': 1 row (row 0) holds a category ('Mars') the model did not see" in by_code["unknown_category"]["message"]
    assert by_code["empty_rows"]["first_rows"] == [1]


def test_strict_refuses_with_column_rows_and_fix(client, auth):
    register(client, auth.bearer("scientist"), loan_model())
    response = client.post("/api/v1/models/loans/predict?strict=true", headers=auth.bearer("viewer"),
                           json={"dataframe_records": [dict(ROW, region="Mars")]})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error_code"] == "SCHEMA_WARNING"
    assert "Column 'region'" in body["message"] and "row 0" in body["message"] and "retrain" in body["message"]
    assert body["warnings"][0]["column"] == "region"
    bad = client.post("/api/v1/models/loans/predict?strict=maybe", headers=auth.bearer("viewer"),
                      json={"dataframe_records": [ROW]})
    assert bad.status_code == 400 and "'strict' must be true or false" in bad.get_json()["message"]


def test_unknown_category_an_encoder_refuses_names_the_column(client, auth):
    """handle_unknown='error': refused before the model runs, naming the column, rows and fix
    (scikit-learn's own message names only a column number)."""
    register(client, auth.bearer("scientist"), loan_model(handle_unknown="error"))
    response = client.post("/api/v1/models/loans/predict", headers=auth.bearer("viewer"),
                           json={"dataframe_records": [ROW, dict(ROW, region="Mars")]})
    assert response.status_code == 400
    body = response.get_json()
    assert body["error_code"] == "UNKNOWN_CATEGORY"
    assert body["message"].startswith("Column 'region': row 1 holds a category ('Mars') the model did not see in training")
    assert "Use one of 'east', 'north', 'south', 'west'" in body["message"]


def test_invocations_body_stays_mlflow_and_warnings_come_in_a_header(make_app, client, auth):
    register(client, auth.bearer("scientist"), loan_model())
    served = make_app(SERVE_MODEL="loans", TRUSTED_MODULES="tests.realistic,tests.test_schema_policy")
    with served.test_client() as mlflow:
        response = mlflow.post("/invocations", headers=auth.bearer("viewer"), json={"dataframe_records": MESSY})
        assert response.status_code == 200, response.get_json()
        assert list(response.get_json()) == ["predictions"]
        header = response.headers["X-Viewer-Warnings"]
        assert len(header) <= 4096 and header.isascii()
        assert EXPECTED <= _codes(json.loads(header))
        clean = mlflow.post("/invocations", headers=auth.bearer("viewer"), json={"dataframe_records": [ROW]})
        assert clean.status_code == 200 and "X-Viewer-Warnings" not in clean.headers
        strict = mlflow.post("/invocations?strict=true", headers=auth.bearer("viewer"),
                             json={"dataframe_records": MESSY})
        assert strict.status_code == 400 and strict.get_json()["error_code"] == "SCHEMA_WARNING"


def test_v2_reports_warnings_in_parameters(client, auth):
    register(client, auth.bearer("scientist"), loan_model())
    inputs = [{"name": name, "datatype": "BYTES" if name in ("region", "employment") else "FP64", "shape": [2],
               "data": [row.get(name) for row in MESSY]} for name in FEATURES + ["loan_id"]]
    for spec in inputs:
        if spec["name"] == "loan_id":
            spec["datatype"] = "BYTES"
    response = client.post("/v2/models/loans/infer", headers=auth.bearer("viewer"), json={"inputs": inputs})
    assert response.status_code == 200, response.get_json()
    assert EXPECTED <= _codes(response.get_json()["parameters"]["warnings"])
    strict = client.post("/v2/models/loans/infer?strict=true", headers=auth.bearer("viewer"), json={"inputs": inputs})
    assert strict.status_code == 400 and strict.get_json()["warnings"]


def test_prediction_page_shows_the_warnings(client, auth):
    register(client, auth.bearer("scientist"), loan_model())
    auth.login("viewer")
    path = "/models/loans/versions/1/predict"
    token = auth.csrf_token(path)
    csv = "amount,income,age,region,employment,loan_id\n12000,,35,Mars,salaried,L1\n"
    response = client.post("/models/loans/versions/1/predict", data={"csrf_token": token, "mode": "csv", "csv": csv})
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'id="warnings"' in text and "Predicted, with 3 warnings" in text
    assert "Column &#39;region&#39;: 1 row (row 0) holds a category" in text
    assert "Ignored 1 column the model does not take: &#39;loan_id&#39;" in text


# --- batch: the same checks per chunk, in the job's words ----------------------------------------

def _dataset(tmp_path, frame, rows_per_group=100):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "data.parquet"
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path, row_group_size=rows_per_group)
    return path


def _predictor(model):
    from viewer.core.predictor import Predictor

    return Predictor(model, describe_model(model).to_dict())


def test_batch_chunk_reports_the_same_warnings_with_dataset_rows(tmp_path):
    """Extra columns are ignored in batch as online; unknown categories and imputed values are
    counted per column with the dataset's row numbers, kept with the part and merged per job."""
    from viewer.core import scoring

    frame = loan_table(300, seed=1)
    frame.loc[150, "region"] = "Mars"
    frame.loc[[120, 250], "income"] = np.nan
    path = _dataset(tmp_path, frame)
    predictor = _predictor(loan_model())
    parts = [tmp_path / f"part-{i}.parquet" for i in range(3)]
    for i, part in enumerate(parts):
        scoring.score_chunk(predictor, path, i, part, TARGET)
    found = {(w["code"], w.get("column")): w for w in scoring.part_warnings(parts)}
    unknown = found[("unknown_category", "region")]
    assert unknown["rows"] == 1 and unknown["first_rows"] == [150]
    assert "Column 'region': 1 row (row 150) holds a category" in unknown["message"]
    income = found[("missing_imputed", "income")]
    assert income["rows"] == int(frame["income"].isna().sum())
    assert income["message"].endswith(f"In all, {income['rows']:,} rows of the dataset.")


def test_batch_strict_refuses_the_rows_naming_column_and_fix(tmp_path):
    from viewer.core import scoring
    from viewer.core.payload import PayloadError

    frame = loan_table(300, seed=1)
    frame.loc[150, "region"] = "Mars"
    path = _dataset(tmp_path, frame)
    with pytest.raises(PayloadError) as caught:
        scoring.score_chunk(_predictor(loan_model()), path, 1, tmp_path / "p1.parquet", TARGET, strict=True)
    assert caught.value.message.startswith("Rows 100–199: Refused (strict=true): ")
    assert "Column " in caught.value.message and "Chunk" not in caught.value.message


def test_batch_decimal_comma_text_names_the_column_and_the_reupload(tmp_path):
    """Replaces "Chunk 0: The model could not take this input: Cannot use median strategy with
    non-numeric data:" (a cut sentence naming no column)."""
    from viewer.core import scoring
    from viewer.core.payload import PayloadError
    from tests.realistic import _european_number

    frame = loan_table(200, seed=2)
    model = loan_model()
    text = frame.assign(amount=[_european_number(v) for v in frame["amount"]])
    path = _dataset(tmp_path, text)
    with pytest.raises(PayloadError) as caught:
        scoring.score_chunk(_predictor(model), path, 1, tmp_path / "p.parquet", TARGET)
    message = caught.value.message
    assert message.startswith("Rows 100–199: Column 'amount' holds text where the model takes numbers (")
    assert 'upload the file again with decimal=","' in message and message.endswith("read as numbers.")


def test_model_refusal_of_text_names_the_column_not_a_cut_sentence():
    """Without a described schema the model itself refuses the text: scikit-learn's sentence ends
    with a colon and the values; ours names the column and the fix."""
    from viewer.core.payload import PayloadError
    from viewer.core.predictor import Predictor

    model = loan_model(custom=None)
    info = describe_model(model).to_dict()
    predictor = Predictor(model, {**info, "input_schema": []})
    frame = loan_table(50, seed=3)[FEATURES].assign(amount=lambda f: ["1.234,50"] * len(f))
    with pytest.raises(PayloadError) as caught:
        predictor.predict(frame)
    message = caught.value.message
    assert "Cannot use median strategy" not in message and not message.endswith(":")
    assert message.startswith("Column 'amount' holds text where the model takes numbers (50 rows: rows 0, 1, 2, 3, 4 "
                              "and 45 more).")


def test_model_warnings_are_reported_not_raised():
    """A warning the model raises while predicting (here a user's own step, as pandas 3.1 warns on
    make_column_selector(dtype_include=object)) comes back as a model_warning, deduplicated."""
    from viewer.core.payload import Table
    from viewer.core.predictor import Predictor
    from viewer.core.schema_policy import collecting, model_warnings

    model = loan_model(_Warns)
    model.named_steps["clip"].serving_ = True  # warns from now on, as a new pandas would
    predictor = Predictor(model, describe_model(model).to_dict())
    table = Table(columns=FEATURES, rows=[list(ROW.values())] * 3)
    with collecting() as raised:
        predictor.predict(predictor.prepare(table))
        predictor.predict(predictor.prepare(table))
    found = model_warnings(raised)
    assert len(found) == 1 and found[0]["category"] == "FutureWarning" and found[0]["count"] == 2
    assert "The model raised a FutureWarning while predicting" in found[0]["message"]
    assert "old_option is deprecated" in found[0]["message"]


class _Warns(ClipOutliers):
    def transform(self, X):
        import warnings

        if getattr(self, "serving_", False):
            warnings.warn("old_option is deprecated and will be removed; use new_option.", FutureWarning)
        return super().transform(X)


def test_model_warnings_come_back_from_the_host(client, auth):
    """The host records what the model warns while predicting and the answer carries it: a
    warnings entry, never a 500."""
    model = loan_model(_Warns)
    model.named_steps["clip"].serving_ = True
    register(client, auth.bearer("scientist"), model)
    for _ in range(2):  # every request reports its own
        response = client.post("/api/v1/models/loans/predict", headers=auth.bearer("viewer"),
                               json={"dataframe_records": [ROW, ROW]})
        assert response.status_code == 200, response.get_json()
        found = [w for w in response.get_json()["warnings"] if w["code"] == "model_warning"]
        assert len(found) == 1 and found[0]["category"] == "FutureWarning", response.get_json()
        assert "old_option is deprecated" in found[0]["message"]


# --- batch through the services: checks before queueing, warnings on the job, strict jobs --------

def upload_dataset(client, headers, frame, filename="data.csv"):
    if filename.endswith(".parquet"):
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        content = buffer.getvalue()
    else:
        content = frame.to_csv(index=False).encode()
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(content), filename)})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def clean_loans(n):
    frame = loan_table(n, seed=4)[FEATURES + [TARGET]]
    return frame.fillna({"amount": 1000.0, "income": 40000.0, "region": "north"})


def test_job_checks_run_before_queueing(client, auth):
    from tests.realistic import _european_number

    headers = auth.bearer("scientist")
    register(client, headers, loan_model())
    lacking = upload_dataset(client, headers, clean_loans(300).drop(columns=["income"]))
    response = client.post("/api/v1/jobs", headers=headers, json={"model": "loans", "dataset": lacking["id"]})
    assert response.status_code == 400
    assert response.get_json()["message"] == ("The dataset lacks columns the model needs: 'income'. Upload a dataset "
                                              "that has them (named exactly so), or choose a model trained on this "
                                              "dataset's columns.")
    frame = clean_loans(300)
    text = upload_dataset(client, headers, frame.assign(amount=[_european_number(v) for v in frame["amount"]]),
                          "text.parquet")
    response = client.post("/api/v1/jobs", headers=headers, json={"model": "loans", "dataset": text["id"]})
    assert response.status_code == 400, response.get_json()
    message = response.get_json()["message"]
    assert message.startswith("Column 'amount' holds text where the model takes numbers (300 rows: rows 0, 1")
    assert 'upload the file again with decimal=","' in message

    mars = upload_dataset(client, headers, clean_loans(300).assign(region="Mars"))
    strict = client.post("/api/v1/jobs", headers=headers, json={"model": "loans", "dataset": mars["id"],
                                                               "target": TARGET, "strict": True})
    assert strict.status_code == 400 and "Refused (strict=true): In the first 300 rows: Column 'region'" in \
        strict.get_json()["message"]

    leaky = upload_dataset(client, headers, clean_loans(300))
    response = client.post("/api/v1/jobs", headers=headers, json={"model": "loans", "dataset": leaky["id"],
                                                                 "target": "age"})
    assert response.status_code == 202, response.get_json()
    found = response.get_json()["warnings"]
    assert [w["code"] for w in found] == ["target_in_inputs", "extra_columns"]
    assert found[1]["columns"] == [TARGET]  # not the target here: ignored and reported, as online
    assert found[0]["message"].startswith("The target 'age' is one of the model's inputs: the model sees the answer "
                                          "(leakage)")


def test_job_reports_warnings_per_column_and_a_strict_job_fails_naming_rows(client, auth, worker):
    headers = auth.bearer("scientist")
    register(client, headers, loan_model())
    frame = clean_loans(1500)
    frame.loc[1200, "region"] = "Mars"
    frame.loc[[700, 1300], "income"] = np.nan
    dataset = upload_dataset(client, headers, frame)
    job = client.post("/api/v1/jobs", headers=headers, json={"model": "loans", "dataset": dataset["id"],
                                                            "target": TARGET}).get_json()
    from tests.support import poll
    done = poll(lambda: client.get(f"/api/v1/jobs/{job['id']}", headers=headers).get_json(),
                lambda j: j["state"] in ("done", "error", "cancelled"), 120)
    assert done["state"] == "done", done
    found = {(w["code"], w.get("column")): w for w in done["warnings"]}
    assert found[("unknown_category", "region")]["first_rows"] == [1200]
    assert "Column 'region': 1 row (row 1,200) holds a category" in found[("unknown_category", "region")]["message"]
    income = found[("missing_imputed", "income")]
    assert income["rows"] == 2 and income["first_rows"] == [700]
    assert income["message"].endswith("In all, 2 rows of the dataset.")
    auth.login("scientist")
    page = client.get(f"/jobs/{job['id']}")  # the job page shows them too (serialize_job's)
    assert page.status_code == 200 and 'id="warnings"' in page.get_data(as_text=True)
    assert "Column &#39;region&#39;: 1 row (row 1,200) holds a category" in page.get_data(as_text=True)

    strict = client.post("/api/v1/jobs", headers=headers, json={"model": "loans", "dataset": dataset["id"],
                                                               "target": TARGET, "strict": True}).get_json()
    failed = poll(lambda: client.get(f"/api/v1/jobs/{strict['id']}", headers=headers).get_json(),
                  lambda j: j["state"] in ("done", "error", "cancelled"), 120)
    assert failed["state"] == "error", failed
    assert failed["error"].startswith("Rows 500–999: Refused (strict=true): Column 'income': 1 row (row 700) has "
                                      "no value") or failed["error"].startswith(
        "Rows 1,000–1,499: Refused (strict=true): "), failed["error"]
    assert "Chunk" not in failed["error"]


def test_numeric_pipeline_with_an_imputer_reports_on_its_array_path():
    """A model of numbers only takes a numpy array (its fast path): the imputed columns and the
    empty rows are found there too; a model without an imputer pays one flag check."""
    from viewer.core.payload import parse_mlflow
    from viewer.core.predictor import Predictor

    frame = loan_table(300)[["amount", "income", "age", TARGET]]
    model = make_pipeline(SimpleImputer(), LogisticRegression(max_iter=500)).fit(frame.drop(columns=TARGET),
                                                                                 frame[TARGET])
    predictor = Predictor(model, describe_model(model).to_dict())
    assert not predictor.needs_frame and predictor.imputed == {"amount", "income", "age"}
    body = {"dataframe_split": {"columns": ["amount", "income", "age"],
                                "data": [[1000.0, None, 30.0], [None, None, None], [5.0, 6.0, 7.0]]}}
    found: list = []
    X = predictor.prepare(parse_mlflow(json.dumps(body).encode(), "application/json"), found)
    assert isinstance(X, np.ndarray)
    assert _codes(found) == {("missing_imputed", "amount", 1), ("missing_imputed", "income", 2),
                             ("missing_imputed", "age", 1), ("empty_rows", None, 1)}
    plain = make_pipeline(LogisticRegression(max_iter=500)).fit(frame.dropna().drop(columns=TARGET),
                                                                frame.dropna()[TARGET])
    assert not Predictor(plain, describe_model(plain).to_dict()).watch


def test_batch_text_for_a_model_described_without_kinds_names_column_and_fix(tmp_path):
    """A model whose stored description has no column kinds (registered before them): the chunk's
    own check names the column, the rows and the re-upload, in place of "Non-numeric columns"."""
    import pandas as pd

    from viewer.core import scoring
    from viewer.core.payload import PayloadError
    from viewer.core.predictor import Predictor

    numbers = pd.DataFrame({"a": np.arange(200.0), "b": np.arange(200.0) / 3})
    model = LogisticRegression().fit(numbers, np.arange(200) % 2)
    predictor = Predictor(model, {**describe_model(model).to_dict(), "input_schema": []})
    path = _dataset(tmp_path, numbers.assign(b=[f"{v:.2f}".replace(".", ",") for v in numbers["b"]]))
    with pytest.raises(PayloadError) as caught:
        scoring.score_chunk(predictor, path, 1, tmp_path / "p.parquet")
    assert caught.value.message.startswith("Rows 100–199: Column 'b' holds text where the model takes numbers (100 "
                                           "rows: rows 100, 101, 102, 103, 104 and 95 more).")
    assert 'decimal=","' in caught.value.message


def dropping_model():
    """Fitted on the whole table as people do (ID, date and all), a ColumnTransformer that takes
    some columns and drops the rest (``remainder="drop"``, and an explicit "drop" entry)."""
    frame = loan_table(400)
    prep = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["amount", "income", "age"]),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
         ["region"]),
        ("id", "drop", ["loan_id"]),
    ], remainder="drop")
    inputs = frame.drop(columns=[TARGET])
    return make_pipeline(prep, LogisticRegression(max_iter=500)).fit(inputs, frame[TARGET]), inputs


def test_columns_the_column_transformer_drops_are_described_as_unused():
    info = describe_model(dropping_model()[0]).to_dict()
    kinds = {f["name"]: f["kind"] for f in info["input_schema"]}
    assert kinds == {"loan_id": "unused", "amount": "numeric", "income": "numeric", "age": "numeric",
                     "region": "categorical", "employment": "unused", "opened": "unused"}
    from viewer.core.schema import needed_columns
    assert needed_columns(info) == ["amount", "income", "age", "region"]


def test_v1_takes_any_value_or_none_for_columns_the_model_drops(client, auth):
    """A date or an ID the model drops is not checked as a number (it was refused as "Non-numeric
    values where the model takes numbers" while batch scoring took it) and may be left out."""
    import pandas as pd

    model, inputs = dropping_model()
    register(client, auth.bearer("scientist"), model, name="dropper")
    row = {"loan_id": "L7", "amount": 5000.0, "income": 30000.0, "age": 50.0, "region": "south",
           "employment": "student", "opened": "2024-03-01"}
    expected = model.predict_proba(pd.DataFrame([row]))[0].tolist()
    with_them = client.post("/api/v1/models/dropper/predict?output=proba", headers=auth.bearer("viewer"),
                            json={"dataframe_records": [row]})
    assert with_them.status_code == 200, with_them.get_json()
    assert with_them.get_json()["probabilities"][0] == pytest.approx(expected, abs=1e-12)
    assert with_them.get_json()["warnings"] == []
    read = {k: row[k] for k in ("amount", "income", "age", "region")}
    without = client.post("/api/v1/models/dropper/predict?output=proba", headers=auth.bearer("viewer"),
                          json={"dataframe_records": [read]})
    assert without.status_code == 200, without.get_json()
    assert without.get_json()["probabilities"][0] == pytest.approx(expected, abs=1e-12)
    # A row whose every column the model reads is empty is reported though its ID is there.
    empty = client.post("/api/v1/models/dropper/predict?output=proba", headers=auth.bearer("viewer"), json={"dataframe_records": [
        {"loan_id": "L9", "amount": None, "income": None, "age": None, "region": None, "opened": "2024-01-01"}]})
    assert empty.status_code == 200, empty.get_json()
    assert "empty_rows" in {w["code"] for w in empty.get_json()["warnings"]}

    missing = client.post("/api/v1/models/dropper/predict?output=proba", headers=auth.bearer("viewer"),
                          json={"dataframe_records": [{"amount": 1.0, "opened": "x"}]})
    assert missing.status_code == 400
    assert missing.get_json()["message"] == ("Missing columns: 'income', 'age', 'region'. The model takes 4 columns: "
                                             "'amount', 'income', 'age', 'region'. Add the missing ones (an empty "
                                             "value where unknown).")


def test_card_and_prediction_page_show_dropped_columns_as_not_used(client, auth):
    import pandas as pd

    model = dropping_model()[0]
    register(client, auth.bearer("scientist"), model, name="dropper")
    auth.login("viewer")
    card = client.get("/models/dropper/versions/1").get_data(as_text=True)
    assert "7 named features (3 not used)" in card
    assert card.count("dropped by the column transformer; may be left out") == 3
    page = client.get("/models/dropper/versions/1/predict").get_data(as_text=True)
    assert 'name="f:opened"' not in page and 'name="f:amount"' in page
    assert "Not asked: loan_id, employment, opened (the model's column transformer drops them" in page
    token = auth.csrf_token("/models/dropper/versions/1/predict")
    posted = client.post("/models/dropper/versions/1/predict", data={
        "csrf_token": token, "mode": "fields", "f:amount": "5000", "f:income": "30000", "f:age": "50",
        "f:region": "south"})
    text = posted.get_data(as_text=True)
    row = pd.DataFrame([{"amount": 5000.0, "income": 30000.0, "age": 50.0, "region": "south"}])
    assert posted.status_code == 200 and 'role="alert"' not in text
    assert f'["p",[{",".join(map(repr, model.predict_proba(row)[0].tolist()))}]]' in text


def test_a_dataset_without_the_dropped_columns_scores(tmp_path, client, auth):
    """Batch as online: a dataset lacking columns the model drops is accepted and scored."""
    from viewer.core import scoring

    model, inputs = dropping_model()
    frame = loan_table(300, seed=2).drop(columns=["opened", "loan_id", "employment"])
    path = _dataset(tmp_path, frame)
    predictor = _predictor(model)
    scoring.score_chunk(predictor, path, 0, tmp_path / "p0.parquet", TARGET)
    import pyarrow.parquet as pq
    out = pq.read_table(tmp_path / "p0.parquet").to_pandas()
    expected = model.predict_proba(loan_table(300, seed=2).iloc[:100])[:, 1]
    assert out["proba_1"].to_numpy() == pytest.approx(expected, abs=1e-12)

    headers = auth.bearer("scientist")
    register(client, headers, model, name="dropper")
    stored = upload_dataset(client, headers, frame)
    response = client.post("/api/v1/jobs", headers=headers, json={"model": "dropper", "dataset": stored["id"],
                                                                 "target": TARGET})
    assert response.status_code == 202, response.get_json()


def _city_model(missing):
    """A OneHotEncoder that learnt a missing city as its own category: NaN when the frame came
    from pandas (read_csv), None when it was built from Python objects."""
    import pandas as pd

    rng = np.random.default_rng(5)
    city = rng.choice(np.array(["Lyon", "Porto", missing], dtype=object), 300)
    frame = pd.DataFrame({"city": pd.Series(city, dtype=object if missing is None else "str"),
                          "income": rng.normal(3000, 500, 300)})
    y = (pd.isna(frame["city"]).to_numpy() | (frame["income"].to_numpy() > 3200)).astype(int)
    prep = ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), ["city"])], remainder="passthrough")
    return make_pipeline(prep, LogisticRegression(max_iter=500)).fit(frame, y), frame


@pytest.mark.parametrize("missing", [np.nan, None], ids=["nan-from-pandas", "none-from-objects"])
def test_a_missing_category_online_and_in_batch_is_the_one_the_encoder_learnt(client, auth, missing):
    """JSON's null and a dataset's empty cell reach the encoder as the missing value it learnt
    (NaN or None), not as an unknown category: the answer is the notebook's, with no warning."""
    import pandas as pd

    from viewer.core.predictor import InputSchema
    from viewer.core.scoring import features

    model, frame = _city_model(missing)
    info = describe_model(model).to_dict()
    spec = next(f for f in info["input_schema"] if f["name"] == "city")
    assert spec.get("missing_value") == (None if missing is not None else "none")
    headers = auth.bearer("scientist")
    register(client, headers, model, "cities")
    rows = frame.iloc[:40]
    records = [{"city": None if pd.isna(c) else c, "income": i} for c, i in zip(rows["city"], rows["income"])]
    body = client.post("/api/v1/models/cities/predict?output=proba", headers=headers,
                       json={"dataframe_records": records}).get_json()
    assert np.abs(np.array(body["probabilities"]) - model.predict_proba(rows)).max() < 1e-12
    assert not [w for w in body["warnings"] if w["code"] == "unknown_category"], body["warnings"]
    # Batch: a dataset read from CSV has NaN for the empty cells, whatever the model learnt.
    read = pd.read_csv(io.StringIO(rows.to_csv(index=False)))
    X = features(InputSchema(info, needs_frame=True), read, None)
    assert np.abs(model.predict_proba(X) - model.predict_proba(rows)).max() < 1e-12
