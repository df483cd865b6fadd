"""The shared shapes of the OpenAPI document (``SCHEMAS``) and the values its examples use;
``viewer.api.openapi`` lists the operations and builds the document."""

from __future__ import annotations

from typing import Any

from ..core.v2 import DTYPES
from ..infra.records import JOB_STATES, MODEL_NAME_PATTERN, ROLES

JSON = "application/json"
TEXT = "text/plain"


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {**schema, "type": [schema["type"], "null"]}


STRING, INTEGER, BOOLEAN, OBJECT = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}, {"type": "object"}
TIME = {"type": ["string", "null"], "format": "date-time"}
CELL = {"type": ["number", "string", "boolean", "null"], "description": "One value of one column."}
ROW = {"type": "array", "items": CELL}
RECORDS = {"type": "array", "items": {"type": "object", "additionalProperties": CELL},
           "description": "One object per row, column name to value."}
MLFLOW_INSTANCES = {
    "description": "Records, rows (lists of values, or one value per row), or an object of columns.",
    "anyOf": [
        RECORDS,
        {"type": "array", "items": {"anyOf": [ROW, CELL]}},
        {"type": "object", "additionalProperties": ROW},
    ],
}
# Job and dataset ids are 32 hex digits; these two are examples (tests create records with them).
JOB_ID = "9b2e4c6a8d0f4a1b3c5d7e9f1a2b3c4d"
DATASET_ID = "3f1c0a9e5b7d4e2f8a6b1c0d9e8f7a6b"
IRIS = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}

# --- shared schemas ------------------------------------------------------------------------------

NEXT = {"type": ["string", "null"], "description": "The URL of the next page; null on the last."}
PAGE_PARAMS = ({"name": "limit", "in": "query", "description": "Items per page (default and most: 500).",
                "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
               {"name": "offset", "in": "query", "description": "Where the page starts (as the 'next' link has it).",
                "schema": {"type": "integer", "minimum": 0, "maximum": 2**31 - 1}})

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": {
        "type": "object", "required": ["error_code", "message"],
        "properties": {"error_code": {**STRING, "description": "Machine-readable, e.g. model_not_found."},
                       "message": {**STRING, "description": "For people; never echoes input values."}},
    },
    "Me": {"type": "object", "required": ["username", "role"],
           "properties": {"username": STRING, "role": {"type": "string", "enum": list(ROLES)}}},
    "Token": {
        "type": "object",
        "required": ["id", "label", "prefix", "state", "created_at", "last_used_at", "expires_at", "revoked_at"],
        "properties": {"id": INTEGER, "label": STRING, "prefix": STRING,
                       "state": {"type": "string", "enum": ["active", "revoked", "expired"]},
                       "created_at": TIME, "last_used_at": TIME, "expires_at": TIME, "revoked_at": TIME},
    },
    "TokenList": {"type": "object", "required": ["tokens", "next"],
                  "properties": {"tokens": {"type": "array", "items": ref("Token"), "maxItems": 500},
                                 "next": NEXT}},
    "Job": {
        "type": "object",
        "description": "A job's state. Scoring jobs fill model, dataset_id, metrics and the rates.",
        "required": ["id", "kind", "state", "params", "progress", "error", "result", "cancel_requested",
                     "attempts", "created_by", "created_at", "started_at", "finished_at", "url"],
        "properties": {
            "id": STRING, "kind": {**STRING, "description": "score, importance, compare, ingest or ping"},
            "state": {"type": "string", "enum": list(JOB_STATES)},
            "params": OBJECT, "model": nullable(STRING), "dataset_id": nullable(STRING),
            "progress": {"type": "object", "required": ["done", "total"],
                         "properties": {"done": nullable(INTEGER), "total": nullable(INTEGER),
                                        "fraction": {"type": ["number", "null"]}}},
            "rows_per_second": {"type": ["number", "null"]}, "elapsed_seconds": {"type": ["number", "null"]},
            "remaining_seconds": {"type": ["number", "null"]},
            "error": nullable(STRING), "metrics": nullable(OBJECT), "result": nullable(OBJECT),
            "cancel_requested": BOOLEAN, "attempts": INTEGER, "created_by": nullable(STRING),
            "created_at": TIME, "started_at": TIME, "finished_at": TIME,
            "url": {**STRING, "description": "Where to poll this job."},
        },
    },
    "CompareRequest": {
        "type": "object", "required": ["jobs"], "additionalProperties": False,
        "properties": {
            "jobs": {"type": "array", "minItems": 2, "maxItems": 8, "uniqueItems": True,
                     "description": "Job ids, the baseline first.", "items": {"type": "string", "pattern": "^[0-9a-f]{32}$"}},
            "retry": {"type": "boolean", "default": False,
                      "description": "Compute a failed or cancelled comparison again."},
        },
    },
    "JobList": {"type": "object", "required": ["jobs", "next"],
                "properties": {"jobs": {"type": "array", "items": ref("Job"), "maxItems": 500},
                               "next": NEXT}},
    "Comparison": {
        "type": "object",
        "description": "Finished scoring jobs over one dataset side by side; the first job is the baseline.",
        "required": ["dataset_id", "dataset", "target", "task", "classes", "jobs", "metrics", "comparison"],
        "properties": {
            "dataset_id": STRING, "dataset": STRING, "target": nullable(STRING),
            "task": {"type": "string", "enum": ["binary", "multiclass", "regression"]},
            "classes": {"type": ["array", "null"]},
            "jobs": {"type": "array", "minItems": 2, "items": {
                "type": "object", "required": ["id", "label", "model", "url"],
                "properties": {"id": STRING, "label": STRING, "model": nullable(STRING),
                               "model_name": nullable(STRING), "model_version": nullable(INTEGER), "url": STRING}}},
            "metrics": {"type": "array", "description": "One row per metric: the jobs' values in order, "
                        "differences vs the first job, which direction is better (higher/lower) and the "
                        "verdict per job (better/worse/same).", "items": {
                "type": "object", "required": ["key", "label", "better", "values", "differences", "verdicts"],
                "properties": {"key": STRING, "label": STRING, "better": {"type": "string", "enum": ["higher", "lower"]},
                               "values": {"type": "array"}, "differences": {"type": "array"},
                               "verdicts": {"type": "array"}}}},
            "comparison": {
                "type": "object", "required": ["state", "job", "message", "result"],
                "description": "The compare job (bootstrap confidence intervals, disagreeing rows), started by "
                               "POST /api/v1/compare. Poll GET /api/v1/compare (or job.url) until state is done.",
                "properties": {
                    "state": {"type": "string", "enum": [*JOB_STATES, "not_started"],
                              "description": "not_started: nobody has started the comparison job yet."},
                    "job": {"anyOf": [ref("Job"), {"type": "null"}]},
                    "message": nullable(STRING),
                    "result": {"type": ["object", "null"], "description": "When done: main_metric, metrics "
                               "(estimate per job), differences (metric, job, difference vs the baseline, low, high: "
                               "the 95 % bootstrap CI, verdict better/worse/unclear) and disagreement (measure, "
                               "n_label_differ, pairs, top: the rows where the models disagree most)."},
                },
            },
        },
    },
    "ScoreRequest": {
        "type": "object", "required": ["model", "dataset"],
        "properties": {"model": {**STRING, "description": "name, name@alias or name/version"},
                       "dataset": {**STRING, "description": "A dataset id."},
                       "target": {"type": ["string", "null"], "description": "The column with true values; "
                                  "with it the job computes metrics."},
                       "force": {**BOOLEAN, "description": "Score again even when the same model version, "
                                 "dataset and target were scored already.", "default": False},
                       "kind": {"type": "string", "enum": ["score", "importance"], "default": "score",
                                "description": "score: predictions (and metrics) for every row. importance: "
                                "permutation feature importance on a sample of the rows with a target "
                                "(target required); the job's result lists each feature's mean, std and "
                                "per-repeat decrease in score, most important first."},
                       "n_repeats": {"type": ["integer", "null"], "minimum": 1, "maximum": 100, "description": "importance: shuffles per "
                                     "feature (1-100).", "default": 5},
                       "max_rows": {"type": ["integer", "null"], "minimum": 10, "maximum": 1_000_000, "description": "importance: at most this many "
                                    "rows with a target, drawn uniformly at random (10-1,000,000).",
                                    "default": 20000},
                       "seed": {"type": ["integer", "null"], "minimum": 0, "maximum": 2**32 - 1, "description": "importance: the random seed of the "
                                "sample and the shuffles.", "default": 0},
                       "scoring": {"type": ["string", "null"], "description": "importance: the scikit-learn "
                                   "scoring. Default by task: roc_auc (binary with probabilities), "
                                   "neg_log_loss (multiclass with probabilities), accuracy (classifiers "
                                   "without), r2 (regressors). Also balanced_accuracy, neg_mean_absolute_error, "
                                   "neg_root_mean_squared_error."}},
    },
    "Dataset": {
        "type": "object",
        "required": ["id", "name", "state", "error", "n_rows", "n_columns", "size_bytes", "uploaded_by",
                     "created_at"],
        "properties": {
            "id": STRING, "name": STRING, "state": {"type": "string", "enum": ["ingesting", "ready", "error"]},
            "error": nullable(STRING), "n_rows": nullable(INTEGER), "n_columns": nullable(INTEGER),
            "size_bytes": nullable(INTEGER), "uploaded_by": nullable(STRING), "created_at": TIME,
            "columns": {"type": ["array", "null"], "description": "Name and type of each column (full view)."},
            "preview": {"description": "The first rows (full view)."},
            "source": {"type": "object", "description": "How the file was read (full view)."},
            "job": {**ref("Job"), "description": "The ingest job of a large upload (202 only)."},
        },
    },
    "DatasetList": {"type": "object", "required": ["datasets", "next"],
                    "properties": {"datasets": {"type": "array", "items": ref("Dataset"), "maxItems": 500},
                                   "next": NEXT}},
    "DatasetUpload": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": "CSV or Parquet"},
                       "name": {**STRING, "description": "Display name; the file's name by default."}},
    },
    "FeatureSpec": {
        "type": "object", "required": ["name", "kind"],
        "properties": {"name": STRING, "kind": {"type": "string", "enum": ["numeric", "categorical"]},
                       "categories": {"type": ["array", "null"]}, "default": {}},
    },
    "Version": {
        "type": "object",
        "description": "One registered version: its file, who uploaded it, and what the model is.",
        "required": ["name", "version", "ref", "aliases", "format", "filename", "size_bytes", "sha256",
                     "uploaded_by", "created_at", "saved_with", "warnings", "kind", "estimator_class",
                     "classes", "feature_names", "n_features", "has_predict_proba"],
        "properties": {
            "name": STRING, "version": {"type": "integer", "minimum": 1},
            "ref": {**STRING, "description": "name/version"},
            "aliases": {"type": "array", "items": STRING}, "format": STRING, "filename": STRING,
            "size_bytes": INTEGER, "sha256": STRING, "uploaded_by": nullable(STRING), "created_at": TIME,
            "saved_with": {"type": "object", "properties": {"sklearn": nullable(STRING)}},
            "warnings": {"type": "array", "items": STRING},
            "kind": {"type": "string", "enum": ["classifier", "regressor", "clusterer", "other"]},
            "estimator_class": STRING, "steps": {"type": "array"},
            "classes": {"type": ["array", "null"]},
            "feature_names": {"type": ["array", "null"], "items": STRING},
            "n_features": nullable(INTEGER), "hyperparameters": OBJECT,
            "has_predict_proba": BOOLEAN, "has_decision_function": BOOLEAN,
            "input_schema": {"type": "array", "items": ref("FeatureSpec")},
        },
    },
    "ModelSummary": {
        "type": "object",
        "required": ["name", "description", "created_at", "created_by", "latest_version", "kind", "aliases",
                     "anonymous_predict"],
        "properties": {
            "name": STRING, "description": STRING, "created_at": TIME, "created_by": nullable(STRING),
            "latest_version": nullable(INTEGER), "kind": nullable(STRING),
            "aliases": {"type": "object", "additionalProperties": INTEGER, "description": "alias to version"},
            "anonymous_predict": {**BOOLEAN, "description": "Predictions need no token."},
        },
    },
    "Model": {"allOf": [ref("ModelSummary"), {
        "type": "object", "required": ["versions"],
        "properties": {"versions": {"type": "array", "items": ref("Version")}}}]},
    "ModelList": {"type": "object", "required": ["models", "next"],
                  "properties": {"models": {"type": "array", "items": ref("ModelSummary"), "maxItems": 500},
                                 "next": NEXT}},
    "ModelUpload": {
        "type": "object", "required": ["file", "name"],
        "properties": {
            "file": {"type": "string", "format": "binary", "description": ".joblib, .pkl or .skops file"},
            "name": {"type": "string", "pattern": MODEL_NAME_PATTERN},
            "description": STRING,
        },
    },
    "ModelUpdate": {
        "type": "object",
        "properties": {"description": {**STRING, "description": "Kept up to 10,000 characters."},
                       "anonymous_predict": {**BOOLEAN, "description": "Admins only."}},
    },
    "AliasTarget": {"type": "object", "required": ["version"],
                    "properties": {"version": {**INTEGER, "description": "An existing version number."}}},
    "MlflowRequest": {
        "type": "object",
        "description": "MLflow's scoring-server body: exactly one of dataframe_split, dataframe_records, "
                       "instances or inputs, plus optional params. text/csv with a header row is also accepted.",
        "properties": {
            "dataframe_split": {
                "type": "object", "required": ["data"],
                "description": "pandas' to_dict('split'); every row has one value per column.",
                "properties": {"columns": {"type": ["array", "null"], "items": {"type": ["string", "integer"]}},
                               "index": {"description": "pandas' row labels; ignored (answers are in row order)."},
                               "data": {"type": "array", "items": ROW}},
            },
            "dataframe_records": RECORDS,
            "instances": MLFLOW_INSTANCES,
            "inputs": MLFLOW_INSTANCES,
            "params": {
                "type": ["object", "null"],
                "description": "Other keys are passed over; null is the same as leaving a key out.",
                "properties": {"predict_method": {"enum": ["predict", "predict_proba", None]},
                               "output": {"enum": ["predict", "proba", "predict_proba", None]}},
            },
        },
        "additionalProperties": False,
        "oneOf": [{"required": [key]} for key in ("dataframe_split", "dataframe_records", "instances", "inputs")],
    },
    "Prediction": {
        "type": "object", "required": ["model", "predictions"],
        "properties": {
            "model": {**STRING, "description": "The version that answered, name/version."},
            "predictions": {"type": "array", "items": CELL},
            "classes": {"type": "array", "items": CELL, "description": "With output=proba."},
            "probabilities": {"type": "array", "items": {"type": "array", "items": {"type": ["number", "null"]}},
                              "description": "With output=proba: one row per input row, one column per class."},
        },
    },
    "MlflowPredictions": {
        "type": "object", "required": ["predictions"],
        "properties": {"predictions": {"type": "array", "description": "One value per row, or one list of "
                                       "probabilities per row with params.predict_method=predict_proba."}},
    },
    "V2ServerMetadata": {"type": "object", "required": ["name", "version", "extensions"],
                         "properties": {"name": STRING, "version": STRING,
                                        "extensions": {"type": "array", "items": STRING}}},
    "V2Live": {"type": "object", "required": ["live"], "properties": {"live": BOOLEAN}},
    "V2Ready": {"type": "object", "required": ["ready"], "properties": {"ready": BOOLEAN}},
    "V2ModelReady": {"type": "object", "required": ["name", "ready"], "properties": {"name": STRING, "ready": BOOLEAN}},
    "V2TensorMetadata": {
        "type": "object", "required": ["name", "datatype", "shape"],
        "properties": {"name": STRING, "datatype": {"type": "string", "enum": list(DTYPES)},
                       "shape": {"type": "array", "items": INTEGER}},
    },
    "V2ModelMetadata": {
        "type": "object", "required": ["name", "versions", "platform", "inputs", "outputs"],
        "properties": {"name": STRING, "versions": {"type": "array", "items": STRING}, "platform": STRING,
                       "inputs": {"type": "array", "items": ref("V2TensorMetadata")},
                       "outputs": {"type": "array", "items": ref("V2TensorMetadata")}},
    },
    "V2RequestInput": {
        "type": "object", "required": ["shape", "datatype"],
        "description": "One [N, F] tensor in the model's feature order, or one [N] tensor per column named "
                       "by feature. Values in data (flat, row-major) or in the binary section.",
        "properties": {
            "name": {**STRING, "description": "The feature, for one input per column; input-<i> when left out."},
            "shape": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": list(DTYPES)},
            "parameters": {"type": "object",
                           "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
            "data": {"type": "array"},
        },
    },
    "V2InferenceRequest": {
        "type": "object", "required": ["inputs"],
        "properties": {
            "id": STRING,
            "parameters": OBJECT,
            "inputs": {"type": "array", "minItems": 1, "items": ref("V2RequestInput")},
            "outputs": {"type": "array", "items": {
                "type": "object", "required": ["name"],
                "properties": {"name": {"type": "string", "enum": ["predict", "predict_proba"]},
                               "parameters": OBJECT}}},
        },
    },
    "V2Tensor": {
        "type": "object", "required": ["name", "datatype", "shape", "data"],
        "properties": {"name": STRING, "datatype": {"type": "string", "enum": list(DTYPES)},
                       "shape": {"type": "array", "items": INTEGER}, "data": {"type": "array"}},
    },
    "V2InferenceResponse": {
        "type": "object", "required": ["model_name", "model_version", "outputs"],
        "properties": {"model_name": STRING, "model_version": STRING, "id": STRING,
                       "outputs": {"type": "array", "items": ref("V2Tensor")}},
    },
}

# --- parameters and bodies -----------------------------------------------------------------------
