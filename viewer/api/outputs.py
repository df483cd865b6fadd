"""What the API's routes answer, for the OpenAPI document. Answers are not checked against these
models at run time (a schema slip must never turn an answer into a 500); the schemathesis run in
``tests/test_openapi.py`` checks the live app's answers against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, RootModel

from ..core.v2 import DTYPES
from ..infra.records import JOB_STATES, ROLES
from .inputs import optional

Time = str | None  # ISO 8601, UTC
NEXT = Field(description="The URL of the next page; null on the last.")
Datatype = Literal[tuple(DTYPES)]  # type: ignore[valid-type]


class Error(BaseModel):
    """Every refusal: 4xx and 5xx answers of the API have this body."""

    error_code: str = Field(description="Machine-readable, e.g. model_not_found.")
    message: str = Field(description="For people: the problem and what to do.")


class Me(BaseModel):
    """Who the token belongs to, and their role in the project of the request."""

    username: str
    role: Literal[ROLES] | None  # type: ignore[valid-type]
    project: str | None = Field(description="The project of the request: the project parameter, the "
                                "/p/<project>/ prefix, or the user's default project.")
    global_admin: bool


class Token(BaseModel):
    id: int
    label: str
    prefix: str
    state: Literal["active", "revoked", "expired"]
    created_at: Time
    last_used_at: Time
    expires_at: Time
    revoked_at: Time


class TokenList(BaseModel):
    tokens: list[Token] = Field(max_length=500)
    next: str | None = NEXT


class Progress(BaseModel):
    done: int | None
    total: int | None
    fraction: float | None = None


class Job(BaseModel):
    """A job's state. Scoring jobs fill model, dataset_id, metrics and the rates."""

    id: str
    kind: str = Field(description="score, importance, compare, drift, compile, ingest or ping")
    state: Literal[JOB_STATES]  # type: ignore[valid-type]
    params: dict[str, Any]
    model: str | None = None
    dataset_id: str | None = None
    progress: Progress
    rows_per_second: float | None = None
    elapsed_seconds: float | None = None
    remaining_seconds: float | None = None
    error: str | None
    metrics: dict[str, Any] | None = None
    main_metrics: dict[str, float] = Field(default_factory=dict, description="A finished scoring job's headline "
                                           "numbers: accuracy and roc_auc (classifiers), rmse and r2 (regressors).")
    duration_seconds: float | None = Field(None, description="From start to finish (null until it finished).")
    result: dict[str, Any] | None
    cancel_requested: bool
    attempts: int
    created_by: str | None
    created_at: Time
    started_at: Time
    finished_at: Time
    url: str = Field(description="Where to poll this job.")


class JobList(BaseModel):
    jobs: list[Job] = Field(max_length=500)
    next: str | None = NEXT


class ComparedJob(BaseModel):
    id: str
    label: str
    model: str | None
    model_name: str | None = None
    model_version: int | None = None
    dataset_id: str | None = None
    dataset: str | None = Field(None, description="The dataset this job scored.")
    url: str


class MetricRow(BaseModel):
    """One metric: the jobs' values in order, differences vs the first job, which direction is
    better and the verdict per job (better/worse/same)."""

    key: str
    label: str
    better: Literal["higher", "lower"]
    values: list[Any]
    differences: list[Any]
    verdicts: list[Any]


class ComparisonJob(BaseModel):
    """The compare job (bootstrap confidence intervals, disagreeing rows), started by
    POST /api/v1/compare. Poll GET /api/v1/compare (or job.url) until state is done."""

    state: Literal[(*JOB_STATES, "not_started")] = Field(  # type: ignore[valid-type]
        description="not_started: nobody has started the comparison job yet.")
    job: Job | None
    message: str | None
    result: dict[str, Any] | None = Field(description="When done: main_metric, metrics (estimate per job), "
                                          "differences (metric, job, difference vs the baseline, low, high: the 95 % "
                                          "bootstrap CI, verdict better/worse/unclear) and disagreement (measure, "
                                          "n_label_differ, pairs, top: the rows where the models disagree most).")


class Comparison(BaseModel):
    """Finished scoring jobs side by side; the first job is the baseline. mode "models": several
    models on one dataset; mode "datasets": one model (or models of one kind) on two datasets, where
    the rows differ, so the differences' intervals come from independent bootstraps of each job's
    rows and the result has no disagreement (no_disagreement says why)."""

    mode: Literal["models", "datasets"] = "models"
    dataset_id: str = Field(description="The (baseline's) dataset.")
    dataset: str = Field(description='The dataset\'s name; "jan.csv vs feb.csv" in mode datasets.')
    target: str | None
    task: Literal["binary", "multiclass", "regression"]
    classes: list[Any] | None
    jobs: list[ComparedJob] = Field(min_length=2)
    metrics: list[MetricRow]
    comparison: ComparisonJob


class Dataset(BaseModel):
    id: str
    name: str
    state: Literal["ingesting", "ready", "error"]
    error: str | None
    n_rows: int | None
    n_columns: int | None
    size_bytes: int | None
    uploaded_by: str | None
    created_at: Time
    columns: list[Any] | None = Field(None, description="Name and type of each column (full view).")
    preview: Any = Field(None, description="The first rows (full view).")
    source: dict[str, Any] = optional(description="How the file was read (full view).")
    id_columns: list[str] = optional(description="Identifier columns: detected, or flipped by a user (full view).")
    warnings: list[dict[str, Any]] = optional(description="Problems found when reading, e.g. a column of numbers "
                                              "stored as text, with examples and the fix (full view).")
    job: Job = optional(description="The ingest job of a large upload (202 only).")


class DatasetList(BaseModel):
    datasets: list[Dataset] = Field(max_length=500)
    next: str | None = NEXT


class FeatureSpec(BaseModel):
    name: str
    kind: Literal["numeric", "categorical", "unused"] = Field(
        description='"unused": the model\'s column transformer drops the column; it may be left out.')
    categories: list[Any] | None = None
    default: Any = None


class SavedWith(BaseModel):
    sklearn: str | None = None


class Quarantine(BaseModel):
    since: Time
    reason: str


class RuntimeSize(BaseModel):
    rows: int = Field(description="Batches up to this many rows (the largest: any larger batch).")
    runtime: Literal["compiled", "scikit-learn"]
    speedup: float | None = Field(description="scikit-learn's time over the compiled runtime's, measured "
                                  "when it was compiled.")


class Runtime(BaseModel):
    state: Literal["queued", "ready", "failed", "none"] | None = Field(description=(
        "queued: compiling; ready: passed its parity check; failed: did not (why_not says why); "
        "none: not a tree ensemble; null: not requested."))
    used: bool = Field(description="The compiled runtime answers (at the sizes where it is faster).")
    serve_with: Literal["auto", "scikit-learn"]
    why_not: str | None
    own: Literal["scikit-learn", "LightGBM"] = Field(description="The model's own library, which answers where "
                                                      "the compiled runtime does not.")
    compiling: str | None = Field(description="The compile job under way, if any.")
    sizes: list[RuntimeSize]
    parity: dict[str, Any] | None = Field(description="rows, threshold_rows, max_abs_diff, label_flips, "
                                          "missing_ok, reason, head_same (a pipeline's preprocessing computed "
                                          "directly was identical to scikit-learn's on head_rows rows), head_rows, trees_same (the "
                                          "trees walked directly for batches of a few rows gave scikit-learn's "
                                          "answers exactly on trees_rows rows), trees_rows.")
    rows: dict[str, Any] | None = Field(description="Where the parity check's rows came from.")
    direct_rows: int = Field(description="When parity.trees_same, batches up to this many rows are answered by "
                                         "walking the trees directly, without a round trip to the model's host.")
    library: dict[str, Any] | None
    checked_at: Time | None


class Version(BaseModel):
    """One registered version: its file, who uploaded it, and what the model is."""

    name: str
    version: int = Field(ge=1)
    ref: str = Field(description="name/version")
    aliases: list[str]
    format: str
    filename: str
    size_bytes: int
    sha256: str
    uploaded_by: str | None
    created_at: Time
    saved_with: SavedWith
    warnings: list[str]
    adjustments: list[str]  # settings the upload changed (n_jobs, memory), each with its reason
    quarantine: Quarantine | None = Field(description="Set when the model's host failed too often: "
                                          "predictions answer 409 until a project admin releases it.")
    runtime: Runtime = Field(description="What answers for the version: its compiled runtime per batch size, "
                             "with its speed-ups and parity check, or why scikit-learn does.")
    threshold: dict[str, Any] | None = Field(description=(
        "A binary classifier's saved decision threshold: value, positive (the class it decides for), by, at; null: "
        "none saved (decisions by the argmax)."))
    kind: Literal["classifier", "regressor", "clusterer", "other"]
    estimator_class: str
    steps: list[Any] = optional()
    classes: list[Any] | None
    feature_names: list[str] | None
    n_features: int | None
    hyperparameters: dict[str, Any] = optional()
    has_predict_proba: bool
    has_decision_function: bool = optional()
    input_schema: list[FeatureSpec] = optional()


class LogSettingsOut(BaseModel):
    enabled: bool
    sample: float = Field(description="Share of rows whose inputs are logged.")
    exclude: list[str] = Field(description="Input columns never logged.")
    hash: list[str] = Field(description="Input columns logged as a keyed hash.")
    retention_days: int


class ModelSummary(BaseModel):
    name: str
    description: str
    created_at: Time
    created_by: str | None
    latest_version: int | None
    kind: str | None
    aliases: dict[str, int] = Field(description="alias to version")
    anonymous_predict: bool = Field(description="Predictions need no token.")
    serve_with: Literal["auto", "scikit-learn"] = Field(description=(
        "auto: compiled runtimes answer where they passed their parity check and are faster; "
        "scikit-learn: never."))
    log: LogSettingsOut = Field(description="The prediction log's settings.")
    monitor: dict[str, Any] = Field(description="Monitoring: the chosen reference dataset (null: the dataset of "
                                    "the first scoring job) and the drift thresholds.")


class Model(ModelSummary):
    versions: list[Version]


class ModelList(BaseModel):
    models: list[ModelSummary] = Field(max_length=500)
    next: str | None = NEXT


class ModelOrVersion(RootModel[Model | Version]):
    """A model with its versions, or (for name@alias) one version."""


class Aggregates(RootModel[dict[str, Any] | None]):
    """A finished scoring job's plot aggregates; null when it computed none (no target)."""


class LabelsPosted(BaseModel):
    accepted: int = Field(description="Labels stored (a label sent again replaced the stored one).")
    matched: int = Field(description="Labels joined to their predictions.")
    unknown: list[str] = Field(description="Request ids (at most 1,000) whose records the log does not hold yet; "
                               "tried again for a day.")
    unknown_count: int
    rejected: list[dict[str, Any]] = Field(description="Labels (at most 1,000) not stored: request_id, row, label and "
                                           "the reason (not a class of the model; a regressor's label that is no "
                                           "number).")
    rejected_count: int


class LogDeleted(BaseModel):
    deleted: list[str] = Field(description="The request ids whose records were deleted.")
    not_found: list[str] = Field(description="The request ids the log does not hold (never logged, or purged).")


class ExplainedRow(BaseModel):
    class_: Any = Field(alias="class", description="The class explained (the positive one of two, the predicted "
                        "one of several); null for a regressor.")
    base: float = Field(description="The output at the background: the model's average over it (trees: its "
                        "training data).")
    output: float = Field(description="The model's raw output for this row: base + contributions + other.")
    contributions: dict[str, float | None] = Field(description="Input column -> its contribution to output.")
    other: float = optional(description="Features of the preprocessing no single input column could be given.")


class Explanations(BaseModel):
    method: Literal["linear", "tree", "sampling"] = Field(description=(
        "linear: exact (coefficients times the distance from the background's mean); tree: TreeSHAP, exact; "
        "sampling: permutations of the columns from background rows, additive, its shares estimated."))
    output: Literal["log-odds", "probability", "value", "decision score", "class score"] = Field(
        description="What the contributions add up to.")
    note: str = Field(description="Contributions describe the model, not causes.")
    background: dict[str, Any] = Field(description="Where the background rows came from: source (dataset or "
                                       "schema), dataset, rows.")
    rows: list[ExplainedRow]
    reason: str = optional(description="sampling: why the model is not explained exactly.")
    sampling: dict[str, float] = optional(description="sampling: walks, evaluations and seconds used, and the limits.")


class JobRow(BaseModel):
    row: int
    ids: dict[str, Any] = Field(description="The job's passthrough columns (IDs) for this row.")
    prediction: Any
    target: Any = Field(description="The row's label, when the job had a target.")
    probabilities: dict[str, float | None] = Field(description="Class -> probability, for classifiers.")
    inputs: dict[str, Any] | None = Field(description="The dataset's row (null when the dataset is gone).")
    explanations: Explanations | None = Field(description="Why the model predicted this (one row).")
    explanation_error: str | None = Field(description="Why there is no explanation, when there is none.")


class Prediction(BaseModel):
    model: str = Field(description="The version that answered, name/version.")
    request_id: str = Field(description=(
        "The request's id in the prediction log: the X-Request-ID header the client sent, or a generated "
        "time-ordered one (also in the answer's X-Request-ID header). Labels that arrive later name it."))
    predictions: list[Any]
    classes: list[Any] = optional(description="With output=proba.")
    probabilities: list[list[float | None]] = optional(
        description="With output=proba: one row per input row, one column per class.")
    decision: list[Any] = optional(description=(
        "With output=proba, for a binary classifier whose version has a saved threshold: the positive class where "
        "its probability is at least the threshold, else the other."))
    threshold: float = optional(description="The saved threshold the decisions used.")
    explanations: Explanations = optional(description="With explain=true.")
    warnings: list[dict[str, Any]] = Field(default_factory=list, description=(
        "The schema policy's warnings (README \"Schema policy\"): each has a code (extra_columns, "
        "unknown_category, missing_imputed, empty_rows, model_warning), the column, rows (how many), "
        "first_rows and a message naming the problem and the fix."))


class MlflowPredictions(BaseModel):
    predictions: list[Any] = Field(description="One value per row, or one list of probabilities per row with "
                                   "params.predict_method=predict_proba.")


class V2ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class V2Live(BaseModel):
    live: bool


class V2Ready(BaseModel):
    ready: bool


class V2ModelReady(BaseModel):
    name: str
    ready: bool


class V2TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]


class V2ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[V2TensorMetadata]
    outputs: list[V2TensorMetadata]


class V2Tensor(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int]
    data: list[Any]


class V2InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str = optional()
    parameters: dict[str, Any] = optional(description="warnings: the schema policy's (README \"Schema policy\"), "
                                          "when there are any.")
    outputs: list[V2Tensor]
