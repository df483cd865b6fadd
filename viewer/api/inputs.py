"""What the API's routes take: the models that check query strings, JSON bodies and uploads before
a view runs (``viewer.api.spec`` turns a refusal into a 400 ``{"error_code", "message"}``), and
the OpenAPI document is generated from them.

Predict bodies are the exception: core's own parser (``core.payload``, ``core.v2``) reads them,
for speed, and ``MlflowRequest`` / ``V2InferenceRequest`` only document them.
``tests/test_predict_shapes.py`` holds each parser to its model: a body is accepted by one exactly
when it is valid for the other.
"""

from __future__ import annotations

from datetime import datetime
from math import prod
from typing import Annotated, Any, Literal

import numpy as np

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StrictBool, StrictFloat, StrictInt, StrictStr, \
    WithJsonSchema, model_validator

from ..core.v2 import DTYPES
from ..infra.records import JOB_STATES, MODEL_NAME_PATTERN
from ..services import comparison, jobs, registry, results, submission
from ..services.errors import ServiceError
from ..services.paging import PAGE_SIZE

NO_NUL = "^[^\\x00]*$"  # a NUL byte anywhere in the URL is a 400 before any view runs
JOB_ID = "9b2e4c6a8d0f4a1b3c5d7e9f1a2b3c4d"  # the examples' ids (tests create records with them)
DATASET_ID = "3f1c0a9e5b7d4e2f8a6b1c0d9e8f7a6b"
IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)


def optional(**kwargs: Any) -> Any:
    """A field that may be left out (and is then None), documented without a null."""
    return Field(None, json_schema_extra=_no_default, **kwargs)


# --- query strings -------------------------------------------------------------------------------

def _given_once(model: type[BaseModel], values: Any) -> Any:
    """A field of one value given twice (``?limit=1&limit=2``) is refused by name."""
    if isinstance(values, dict):
        for name, value in values.items():
            field = model.model_fields.get(name)
            if isinstance(value, list) and field is not None and getattr(field.annotation, "__origin__", None) is not list:
                raise ServiceError("invalid", "bad_request", f"'{name[:64]}' is given more than once; send it once.")
    return values


def _empty_refused(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    return field is not None and any(getattr(m, "func", None) in (_digits, _iso_time) for m in field.metadata)


class Query(BaseModel):
    """A query string: an empty parameter is the same as leaving it out (an empty number such as
    ``limit=`` is refused: it is no number); others are ignored."""

    @model_validator(mode="before")
    @classmethod
    def _empty_is_absent(cls, values: Any) -> Any:
        values = _given_once(cls, values)
        if not isinstance(values, dict):
            return values
        return {k: v for k, v in values.items() if v != "" or _empty_refused(cls, k)}


def _digits(value: Any) -> Any:
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("should be a whole number (digits only)")
    return value


def _iso_time(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 10 and value[:4].isdigit() and value[4] == "-":
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError("should be a time in ISO 8601, e.g. 2026-12-07T10:00:00Z")


Text = Annotated[str, Field(pattern=NO_NUL)]
Whole = Annotated[int, BeforeValidator(_digits)]
IsoTime = Annotated[datetime, BeforeValidator(_iso_time)]


class PageQuery(Query):
    limit: Whole = Field(PAGE_SIZE, ge=1, le=PAGE_SIZE, description=f"Items per page (default and most: {PAGE_SIZE}).")
    offset: Whole = Field(0, ge=0, le=2**31 - 1, description="Where the page starts (as the 'next' link has it).")


class ModelQuery(PageQuery):
    q: Text = Field("", description="Substring of the name or description.")
    sort: Literal[tuple(registry.SORTS)] = "name"  # type: ignore[valid-type]


class JobQuery(PageQuery):
    state: Literal[("", *JOB_STATES)] = Field("", description="Only jobs in this state (empty: any).")  # type: ignore[valid-type]
    kind: Text = Field("", description="Only jobs of this kind (score, importance, compare, drift, compile, ingest, ping).")
    model: Text = Field("", description="Only scoring jobs of this model name.")
    dataset: Text = Field("", description="Only jobs on this dataset id.")
    user: Text = Field("", description="Only jobs submitted by this username.")
    target: Text = Field("", description="Only jobs scored against this target column.")
    task: Literal["", "classifier", "regressor"] = Field("", description="Only jobs of classifiers or of regressors.")
    sort: Literal[tuple(jobs.SORTS)] = Field(  # type: ignore[valid-type]
        "-created", description="Order: created, duration, model, dataset, target, state, or a main metric "
        "(accuracy, roc_auc, rmse, r2, from the stored results); a leading '-' sorts descending. Jobs without "
        "the value come last.")

class ResultsQuery(Query):
    format: Literal[tuple(results.MIMETYPES)] = "csv"  # type: ignore[valid-type]
    inputs: bool = Field(False, description="true: every column of the dataset with the predictions beside it "
                         "(streamed chunk by chunk); false: row, the passthrough columns (IDs), prediction, "
                         "probabilities and target.")


class RowQuery(Query):
    row: int = optional(ge=0, description="The row's number (from 0, in the dataset's order).")
    column: Text = optional(description="A passthrough column of the job (an ID) to find the row by, with value.")
    value: Text = optional(description="The ID to look for in column (its first row).")


class CompareQuery(Query):
    jobs: list[Text] = Field([], description=f"Job ids, the baseline first: 2 to {comparison.MAX_JOBS} finished "
                             "scoring jobs over one dataset, or one model's two jobs on two datasets (repeat the parameter, or separate the ids with commas).",
                             json_schema_extra={"style": "form", "explode": True, "examples": [[JOB_ID, JOB_ID[::-1]]]})


class DriftQuery(Query):
    window: Literal["hour", "day", "week"] = Field("hour", description=(
        "The windows' length: the base window (MONITOR_WINDOW_SECONDS, an hour by default), 24 or 168 of them."))
    last: Whole = Field(48, ge=1, le=500, description="How many of the latest windows.")
    version: Whole = optional(ge=1, description="Only this version's windows.")


class DriftCellQuery(Query):
    version: Whole = Field(ge=1, description="The window's model version.")
    start: IsoTime = Field(description="The window's start (ISO 8601), as the drift report gives it.")
    window: Literal["hour", "day", "week"] = Field("hour", description="The window's length.")
    column: Text = Field(min_length=1, max_length=255, description=(
        "An input column, or \\u0000prediction for the predictions."))


class LogQuery(Query):
    start: IsoTime = optional(description="From this time (ISO 8601; UTC when no offset is given).")
    end: IsoTime = optional(description="Before this time (ISO 8601; UTC when no offset is given).")
    version: Whole = optional(ge=1, description="Only this version's records.")
    format: Literal["parquet", "csv"] = Field("parquet", description="parquet (the inputs as one struct column) "
                                              "or csv (the inputs as columns input.<name>).")


class PredictQuery(Query):
    output: Literal["predict", "proba", "predict_proba"] = optional(
        description="proba adds classes and probabilities (classifiers with predict_proba).")
    strict: bool = optional(description="true: refuse (400) input the model would take only with warnings: "
                            "extra columns, unknown categories, missing values it imputes, empty rows.")
    explain: bool = optional(description="true: add each row's contributions per input column (explanations; "
                             "at most 100 rows).")


class V2Headers(BaseModel):
    inference_header_content_length: int = optional(
        alias="Inference-Header-Content-Length", ge=0,
        description="Binary tensor data extension: the length of the JSON header that starts the body.")


# --- JSON bodies ---------------------------------------------------------------------------------

class Body(BaseModel):
    """A JSON object; values are taken as JSON has them (no "true" for true, no "5" for 5), and a
    field the route does not know is refused (a typo is never silently ignored)."""

    model_config = ConfigDict(strict=True, extra="forbid")


_RANGES = {name: (low, high) for name, low, high in submission.IMPORTANCE_RANGES}


def _ranged(name: str, text: str) -> Any:
    """An importance option: its range is checked by the service (error_code bad_option), shown here."""
    low, high = _RANGES[name]
    return Field(None, description=f"importance: {text} ({low:,}-{high:,}).",
                 json_schema_extra={"minimum": low, "maximum": high})


class Condition(Body):
    model_config = ConfigDict(strict=True, extra="forbid")

    column: Annotated[str, Field(min_length=1, max_length=1000)]
    op: Literal["==", "!=", "<", "<=", ">", ">=", "in"]
    value: str | float | int | bool | list[str | float | int | bool] = Field(
        description="A number for <, <=, >, >=; a list for in; a value otherwise.")


class Segment(Body):
    model_config = ConfigDict(strict=True, extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=80)]
    conditions: list[Condition] = Field(min_length=1, max_length=4, description="All of them hold.")


class ScoreRequest(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [
        {"model": "iris@production", "dataset": DATASET_ID, "target": "species"},
        {"kind": "importance", "model": "iris@production", "dataset": DATASET_ID, "target": "species",
         "n_repeats": 5}]})

    model: str = Field(description="name, name@alias or name/version")
    dataset: str = Field(description="A dataset id.")
    target: str | None = Field(None, description="The column with true values; with it the job computes metrics.")
    force: bool = Field(False, description="Score again even when the same model version, dataset and target "
                        "were scored already.")
    strict: bool = Field(False, description="score: refuse input the model would take only with warnings (extra "
                         "columns, unknown categories, imputed values; README \"Schema policy\"): a 400 before "
                         "queueing when a sample shows them, else the job fails naming the column, rows and fix.")
    passthrough: list[str] | None = Field(None, description="score: dataset columns kept beside the predictions in "
                                          "the results (IDs, to join them back to your rows). Left out: the "
                                          "dataset's ID columns; [] keeps none.", examples=[["loan_id"]])
    segments: list[Segment] | None = Field(None, max_length=20, description=(
        "score, with a target: segments of your own, measured beside each column's categories and quantile bins "
        "(the job page's segment table)."), examples=[[{"name": "young students", "conditions": [
            {"column": "age", "op": "<", "value": 25}, {"column": "employment", "op": "==", "value": "student"}]}]])
    kind: Literal["score", "importance", "dependence"] = Field(
        "score", description="score: predictions (and metrics) for every row. importance: permutation feature "
        "importance on a sample of the rows with a target (target required); the job's result lists each "
        "feature's mean, std and per-repeat decrease in score, most important first. dependence: partial "
        "dependence and ICE curves of the chosen features (and a pair's heat map) on a sample of the rows.")
    features: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(
        None, max_length=12, description="dependence: the inputs to draw (the model's first five when left out).")
    pair: list[Annotated[str, Field(min_length=1, max_length=1000)]] | None = Field(
        None, min_length=2, max_length=2, description="dependence: two inputs for a two-feature heat map.")
    grid: int | None = Field(None, description="dependence: points per curve, 2 to 100 (20 when left out).")
    n_repeats: int | None = _ranged("n_repeats", "shuffles per feature, 5 when left out")
    max_rows: int | None = _ranged("max_rows", "at most this many rows with a target, drawn uniformly at "
                                   "random, 20,000 when left out")
    seed: int | None = _ranged("seed", "the random seed of the sample and the shuffles, 0 when left out")
    scoring: str | None = Field(None, description="importance: the scikit-learn scoring. Default by task: roc_auc "
                                "(binary with probabilities), neg_log_loss (multiclass with probabilities), accuracy "
                                "(classifiers without), r2 (regressors). Also balanced_accuracy, "
                                "neg_mean_absolute_error, neg_root_mean_squared_error.")


class CompareRequest(Body):
    model_config = ConfigDict(strict=True, extra="forbid",
                              json_schema_extra={"examples": [{"jobs": [JOB_ID, JOB_ID[::-1]]}]})

    jobs: list[str] = Field(description=f"Job ids, the baseline first: 2 to {comparison.MAX_JOBS} finished scoring "
                            "jobs over one dataset.")
    retry: bool = Field(False, description="Compute a failed or cancelled comparison again.")


class LogDeletion(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={
        "examples": [{"request_ids": ["0192f7a0-7b1c-7c3e-9a51-2f1d0c9e4b7a"]}]})

    request_ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=10_000, description="The requests whose records are deleted (every row).")


class LabelItem(Body):
    model_config = ConfigDict(strict=True, extra="forbid")

    request_id: str = Field(min_length=1, max_length=128, description="The prediction's request id.")
    row: int = Field(0, ge=0, description="The row's index in its request (0 for a one-row request).")
    label: StrictStr | StrictInt | StrictFloat | StrictBool = Field(description="The true class or value.")


class LabelBatch(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={
        "examples": [{"labels": [{"request_id": "0192f7a0-7b1c-7c3e-9a51-2f1d0c9e4b7a", "row": 0, "label": "yes"}]}]})

    labels: list[LabelItem] = Field(min_length=1, max_length=10_000, description="At most 10,000 labels.")


class LogSettings(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={
        "examples": [{"sample": 0.1, "hash": ["customer_id"], "retention_days": 90}]})

    enabled: bool = optional(description="Log this model's predictions (default true).")
    sample: float = optional(ge=0, le=1, description=(
        "Share of rows whose inputs are logged, 0 to 1 (default 1). Every row's id and outputs are logged."))
    exclude: list[str] = optional(description="Input columns never logged.")
    hash: list[str] = optional(description=(
        "Input columns logged as a keyed hash (HMAC-SHA256 with the deployment's key): equal values stay equal, "
        "the values cannot be read back."))
    retention_days: int = optional(ge=1, le=3650, description="Days records are kept (default 30).")


class MonitorSettings(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={
        "examples": [{"reference": JOB_ID, "thresholds": {"wasserstein": 0.2}}]})

    reference: str | None = optional(description=(
        "The reference dataset's id (a ready dataset of the model's project); null: the dataset of the model's "
        "first scoring job."))
    thresholds: dict[str, float] = optional(description=(
        "Drift thresholds changed from their defaults: wasserstein (0.1), psi_moderate (0.1), psi_major (0.25), "
        "jensen_shannon (0.1), dataset_share (0.5), min_rows_numeric (700), min_rows_categorical (50 per "
        "category beyond the first)."))


class ModelUpdate(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={
        "examples": [{"description": "Iris species, logistic regression"}]})

    monitor: MonitorSettings = optional(description="Monitoring: the reference dataset and the drift thresholds.")
    log: LogSettings = optional(description="The prediction log's settings (those given change).")
    description: str = optional(description="Kept up to 10,000 characters.")
    anonymous_predict: bool = optional(description="Predictions need no token (admins only).")
    serve_with: Literal["auto", "scikit-learn"] = optional(description=(
        "auto: a version's compiled runtime answers where it passed its parity check and is faster; "
        "scikit-learn: the model's own library always answers."))


class ThresholdBody(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"threshold": 0.35}]})

    threshold: float = Field(ge=0, le=1, description=(
        "The positive class's probability from which predictions decide for it (the job page slider's rule)."))


class AliasTarget(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"version": 1}]})

    version: int = Field(description="An existing version number.")


class MoveRequest(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"project": "team-b"}]})

    project: str = Field(description="The project to move it into: you need the admin role in both.")


# --- uploads (multipart/form-data) ---------------------------------------------------------------

def _file(value: Any) -> Any:
    if not getattr(value, "filename", None) or not hasattr(value, "stream"):
        raise ValueError("should be a file (a multipart file field with a file name)")
    return value


class Form(BaseModel):
    """A multipart form: each field once."""

    @model_validator(mode="before")
    @classmethod
    def _once(cls, values: Any) -> Any:
        return _given_once(cls, values)


UploadedFile = Annotated[Any, PlainValidator(_file), WithJsonSchema({"type": "string", "format": "binary"})]


class ModelUpload(Form):
    file: UploadedFile = Field(description=".joblib, .pkl or .skops file")
    name: str = Field(description="The model's name; a new version when it exists. Checked by the registry "
                      "(error_code bad_model_name).", json_schema_extra={"pattern": MODEL_NAME_PATTERN})
    description: str = Field("", description="What the model is for.")


class DatasetUpload(Form):
    file: UploadedFile = Field(description="CSV, Parquet or Excel .xlsx")
    name: str = Field("", description="Display name; the file's name by default.")
    delimiter: str = Field("", description="CSV: comma, semicolon, tab or pipe (sniffed by default).")
    decimal: str = Field("", description="CSV: '.' or ',' (sniffed by default: '1.234,5' means ',').")
    thousands: str = Field("", description="CSV: none, '.', ',', ' ' or \"'\" (sniffed by default).")
    encoding: str = Field("", description="CSV: e.g. utf-8, cp1252, latin-1 (detected by default).")
    sheet: str = Field("", description="xlsx: the sheet to read (the first by default).")
    allow_duplicate: bool = Field(False, description="Keep a second copy of a file already uploaded "
                                  "(otherwise 409 duplicate_dataset with the existing dataset's id).")


class DatasetDriftRequest(Body):
    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra={"examples": [{"reference": DATASET_ID}]})

    reference: str = Field(description="The dataset id this one is compared with (January, when this is February).")
    force: bool = Field(False, description="Compare again even when the same two datasets were compared already.")


class IdentifierFlag(BaseModel):
    column: str = Field(description="A column of the dataset.")
    identifier: StrictBool = Field(description="true: the column identifies rows (kept beside predictions).")


# --- predict bodies: documented here, read by core.payload / core.v2 -----------------------------

Scalar = StrictInt | StrictFloat | StrictStr | StrictBool | None


def _same_keys(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if any(row.keys() != rows[0].keys() for row in rows):
        raise ValueError("every row has the columns of row 0")
    return rows


Records = Annotated[list[dict[str, Any]], PlainValidator(lambda v: _same_keys(_list_of(v, dict))),
                    WithJsonSchema({"type": "array", "items": {"type": "object"},
                                    "description": "One object per row, column name to value; every row has the "
                                                   "columns of the first."})]


def _list_of(value: Any, kind: type) -> list:
    if not isinstance(value, list) or not all(isinstance(v, kind) for v in value):
        raise ValueError(f"a list of {kind.__name__}")
    return value


class Split(BaseModel):
    """pandas' ``to_dict('split')``: every row has one value per column."""

    columns: list[StrictStr | StrictInt] | None = None
    index: Any = Field(None, description="pandas' row labels; ignored (answers are in row order).")
    data: list[list[Any]]

    @model_validator(mode="after")
    def _row_width(self) -> Split:
        if self.columns is not None and any(len(row) != len(self.columns) for row in self.data):
            raise ValueError("every row has one value per column")
        return self


def _columns(value: Any) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or not all(isinstance(c, list) for c in value.values()):
        raise ValueError("an object of columns")
    if len({len(v) for v in value.values()}) > 1:
        raise ValueError("every column has as many values")
    return value


Columns = Annotated[dict[str, list[Any]], PlainValidator(_columns), WithJsonSchema({"type": "object", "additionalProperties": {"type": "array"},
                    "description": "Column name to its values, all columns of one length."})]
Rows = list[list[Any] | Scalar]
Instances = Annotated[Records | Rows | Columns, Field(
    description="Records, rows (lists of values, or one value per row), or an object of columns.")]


class MlflowParams(BaseModel):
    """Other keys are passed over; null is the same as leaving a key out."""

    model_config = ConfigDict(extra="allow")

    predict_method: Literal["predict", "predict_proba", "proba"] | None = None
    output: Literal["predict", "proba", "predict_proba"] | None = None


class MlflowRequest(BaseModel):
    """MLflow's scoring-server body: exactly one of dataframe_split, dataframe_records, instances or
    inputs, plus optional params. text/csv with a header row is also taken."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "oneOf": [{"required": [key]} for key in ("dataframe_split", "dataframe_records", "instances", "inputs")],
        "examples": [{"dataframe_split": {"columns": list(IRIS), "data": [list(IRIS.values())]}},
                     {"dataframe_records": [IRIS]}, {"instances": [list(IRIS.values())]},
                     {"inputs": {k: [v] for k, v in IRIS.items()}, "params": {"predict_method": "predict_proba"}}]})

    dataframe_split: Split = optional()
    dataframe_records: Records = optional()
    instances: Instances = optional()
    inputs: Instances = optional()
    params: MlflowParams | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> MlflowRequest:
        given = self.model_fields_set & {"dataframe_split", "dataframe_records", "instances", "inputs"}
        if len(given) != 1:
            raise ValueError("exactly one of dataframe_split, dataframe_records, instances or inputs")
        return self


INT_RANGES = {name: (int(np.iinfo(t).min), int(np.iinfo(t).max)) for name, t in DTYPES.items()
              if name.startswith(("INT", "UINT"))}


def _dims(data: Any) -> list[int] | None:
    """The shape of nested lists (a value is []); None when they are ragged."""
    if not isinstance(data, list):
        return []
    inner = [_dims(item) for item in data]
    if any(d is None or d != inner[0] for d in inner):
        return None
    return [len(data)] + (inner[0] if inner else [])


def _leaves(data: Any) -> list[Any]:
    return [leaf for item in data for leaf in (_leaves(item) if isinstance(item, list) else [item])]


def _fits(kind: str, value: Any) -> bool:
    """JSON values a datatype takes (core.v2._values): booleans count as 0 and 1 in the number
    types, null is a missing value in the float types; whole numbers must be in range."""
    if kind == "BYTES":
        return True
    if kind == "BOOL":
        return isinstance(value, bool)
    if kind.startswith("FP"):
        return value is None or isinstance(value, (int, float))
    low, high = INT_RANGES[kind]
    return isinstance(value, int) and low <= value <= high


class V2BinaryParameters(BaseModel):
    model_config = ConfigDict(extra="allow")

    binary_data_size: StrictInt = optional(ge=0, description="Binary tensor data extension: this input's bytes "
                                           "in the body after the JSON header.")


class V2RequestInput(BaseModel):
    """One [N, F] tensor in the model's feature order, or one [N] tensor per column named by feature.
    Values in data (row-major, flat or rectangular nested lists, as many as the shape holds) or in the
    binary section. Numbers for the FP types (null: missing), whole numbers in range for the integer
    types (booleans count as 0 and 1 in both), booleans for BOOL, strings for BYTES."""

    model_config = ConfigDict(extra="allow")

    name: StrictStr = optional(description="The feature, for one input per column; input-<i> when left out.")
    shape: list[Annotated[StrictInt, Field(ge=0)]] = Field(min_length=1, max_length=2)
    datatype: Literal[tuple(DTYPES)]  # type: ignore[valid-type]
    parameters: V2BinaryParameters = optional()
    data: list[Any] = optional()

    @model_validator(mode="after")
    def _data_fits(self) -> V2RequestInput:
        if self.parameters is not None and self.parameters.binary_data_size is not None:
            return self
        if self.data is None:
            raise ValueError("data, or parameters.binary_data_size with the binary extension")
        leaves = _leaves(self.data)
        if _dims(self.data) is None:
            raise ValueError("nested data must be rectangular")
        if len(leaves) != prod(self.shape):
            raise ValueError("as many values as the shape holds")
        if not all(_fits(self.datatype, v) for v in leaves):
            raise ValueError(f"values of {self.datatype}")
        return self


class V2RequestOutput(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Literal["predict", "predict_proba"]
    parameters: dict[str, Any] = optional()


class V2InferenceRequest(BaseModel):
    """An Open Inference Protocol request: JSON tensors (or the JSON header of the binary extension)."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"id": "42", "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": list(IRIS.values())}],
         "outputs": [{"name": "predict"}]}]})

    id: StrictStr = optional()
    parameters: dict[str, Any] = optional()
    inputs: list[V2RequestInput] = Field(min_length=1, description="One [N, F] tensor, or one [N] (or [N, 1]) "
                                         "tensor per column, named apart, all with N rows.")
    outputs: list[V2RequestOutput] = optional()

    @model_validator(mode="after")
    def _one_table(self) -> V2InferenceRequest:
        shapes = [i.shape for i in self.inputs]
        if len(shapes) == 1 and len(shapes[0]) == 2 and shapes[0][1] != 1:
            return self
        if any(len(s) == 2 and s[1] != 1 for s in shapes):
            raise ValueError("one [N, F] tensor, or one [N] tensor per column")
        names = [i.name if i.name is not None else f"input-{n}" for n, i in enumerate(self.inputs)]
        if len(set(names)) != len(names):
            raise ValueError("each input named apart")
        if len({prod(s) for s in shapes}) != 1:
            raise ValueError("every column with as many rows")
        return self
