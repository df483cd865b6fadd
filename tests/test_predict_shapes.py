"""Predict bodies are read by core's own parsers (``core.payload.parse_mlflow``, ``core.v2.decode_request``)
and documented by pydantic models (``api.inputs.MlflowRequest``, ``V2InferenceRequest``), which the
OpenAPI document shows. These tests hold the two to each other: for bodies generated around every
documented shape (and just outside it), the parser accepts a body exactly when the model does."""

from __future__ import annotations

import json

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from viewer.api.inputs import MlflowRequest, V2InferenceRequest
from viewer.core.payload import MLFLOW_KEYS, PayloadError, parse_mlflow
from viewer.core.v2 import DTYPES, decode_request
from viewer.services.serving import wants_proba

SETTINGS = settings(max_examples=600, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

names = st.sampled_from(["a", "b", "c"])
scalars = st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) \
    | st.text(max_size=3)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=2),
                      max_leaves=6)
rows = st.lists(st.lists(scalars, min_size=2, max_size=2) | st.lists(scalars, max_size=3) | scalars | values,
                max_size=4)
records = st.lists(st.dictionaries(names, scalars, min_size=2, max_size=2) | st.dictionaries(names, scalars)
                   | values, max_size=4)
columns = st.dictionaries(names, st.lists(scalars, min_size=2, max_size=2) | st.lists(scalars, max_size=3) | values,
                          max_size=3)
column_names = st.lists(names | st.integers(0, 3) | st.booleans() | st.floats(0, 1) | st.none(), max_size=3)
split = st.fixed_dictionaries({"data": rows}, optional={"columns": column_names | st.none() | values,
                                                        "index": values, "orient": values}) | values
params = st.none() | st.fixed_dictionaries({}, optional={
    "predict_method": st.sampled_from(["predict", "predict_proba", "proba", "bogus", None, 1]),
    "output": st.sampled_from(["predict", "proba", "predict_proba", "bogus", None]), "other": values}) | values
shapes = {"dataframe_split": split, "dataframe_records": records, "instances": rows | records | columns | values,
          "inputs": rows | records | columns | values}
mlflow_bodies = st.one_of(
    st.sampled_from(MLFLOW_KEYS).flatmap(lambda key: st.fixed_dictionaries({key: shapes[key]},
                                                                           optional={"params": params})),
    st.fixed_dictionaries({}, optional={**shapes, "params": params, "extra": values}),
    values,
)


def parser_takes_mlflow(body: bytes) -> bool:
    try:
        table = parse_mlflow(body, "application/json")
        wants_proba(table.params, None)  # the route checks params next, before any model is asked
    except PayloadError:
        return False
    return True


def documented(model, payload) -> bool:
    try:
        model.model_validate(payload)
    except ValidationError:
        return False
    return True


@SETTINGS
@given(mlflow_bodies)
@example({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2], [3, 4]]}})
@example({"dataframe_split": {"columns": [True], "data": [[1]]}})  # a boolean is no column name
@example({"dataframe_records": [{"a": 1}, {"b": 2}]})
@example({"instances": [[1, 2], 3, None]})
@example({"inputs": {"a": [1, 2], "b": [3]}, "params": {"predict_method": "predict_proba"}})
@example({"instances": [], "params": None})
def test_the_mlflow_parser_takes_exactly_the_documented_bodies(payload):
    body = orjson.dumps(payload)
    assert parser_takes_mlflow(body) == documented(MlflowRequest, orjson.loads(body)), payload


def test_the_generated_mlflow_bodies_reach_both_answers():
    """Not a vacuous comparison: a fair share of the generated bodies is taken, a fair share refused."""
    seen = []

    @settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(mlflow_bodies)
    def collect(payload):
        seen.append(parser_takes_mlflow(orjson.dumps(payload)))

    collect()
    assert 0.1 < sum(seen) / len(seen) < 0.9


datatypes = st.sampled_from([*DTYPES, "FP99"])
tensor_values = st.none() | st.booleans() | st.integers(-300, 300) | st.integers(-2**63, 2**64 - 1) \
    | st.floats(-1e6, 1e6) | st.text(max_size=2)


@st.composite
def v2_inputs(draw):
    shape = draw(st.lists(st.integers(0, 3), min_size=1, max_size=2) if draw(st.integers(0, 4))
                 else st.lists(st.integers(-1, 3) | st.booleans(), max_size=3))
    n = 1
    for d in shape:
        n *= max(int(d), 0)
    datatype = draw(datatypes)
    typed = {"BOOL": st.booleans(), "BYTES": st.text(max_size=2), "INT8": st.integers(-128, 127)}.get(
        datatype, st.integers(0, 255) if datatype.startswith("UINT") else st.integers(-1000, 1000)
        if datatype.startswith("INT") else st.floats(-1e3, 1e3) | st.integers(-9, 9) | st.none())
    leaf = draw(st.sampled_from([typed, typed, typed, tensor_values]))
    flat = draw(st.lists(leaf, min_size=n, max_size=n) if draw(st.integers(0, 3)) else st.lists(leaf, max_size=4))
    nested = [flat[i:i + 2] for i in range(0, len(flat), 2)]
    spec = {"datatype": datatype, "shape": shape, "data": draw(st.sampled_from([flat, nested]))}
    if draw(st.booleans()):
        spec["name"] = draw(st.text(max_size=3) | st.integers())
    if draw(st.integers(0, 9)) == 0:
        del spec[draw(st.sampled_from(["datatype", "shape", "data"]))]
    if draw(st.integers(0, 9)) == 0:
        spec["parameters"] = draw(st.just({}) | st.just([]) | values)  # binary_data_size: tritonclient's tests
    return spec


v2_bodies = st.fixed_dictionaries(
    {"inputs": st.lists(v2_inputs(), min_size=1, max_size=1) | st.lists(v2_inputs(), min_size=2, max_size=2)
     | st.just([]) | values},
    optional={"id": st.text(max_size=3), "parameters": st.just({}),
              "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["predict", "predict_proba"])}),
                                  max_size=2)}) \
    | st.fixed_dictionaries({"inputs": st.lists(v2_inputs(), min_size=1, max_size=1)}, optional={
        "id": st.integers() | values, "parameters": values,
        "outputs": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["predict", "x"])}) | values, max_size=2)}) \
    | values


def parser_takes_v2(body: bytes) -> bool:
    try:
        _table, wanted, _id = decode_request(body, None)
    except PayloadError:
        return False
    return set(wanted or ()) <= {"predict", "predict_proba"}  # the outputs a model may offer


@SETTINGS
@given(v2_bodies)
@example({"inputs": [{"datatype": "INT8", "shape": [1], "data": [300]}]})  # out of INT8's range
@example({"inputs": [{"datatype": "FP64", "shape": [2], "data": ["1.5", 2]}]})  # a string is no number
@example({"inputs": [{"datatype": "FP64", "shape": [2], "data": [None, 2.5]}]})  # null: a missing value
@example({"inputs": [{"datatype": "FP32", "shape": [3], "data": [[1, 2], [3]]}]})  # ragged
@example({"inputs": [{"datatype": "BYTES", "shape": [2, 1], "data": [["a"], ["b"]]}]})
@example({"inputs": [{"datatype": "INT64", "shape": [2], "data": [1.5, 2]}]})
@example({"inputs": [{"datatype": "FP64", "shape": [1], "data": [1]}], "id": None})  # null is no id
@example({"inputs": [{"datatype": "FP64", "shape": [1], "data": [1]}], "outputs": None})
def test_the_v2_parser_takes_exactly_the_documented_json_bodies(payload):
    body = _dumps(payload)  # json, for integers beyond 64 bits
    assert parser_takes_v2(body) == documented(V2InferenceRequest, json.loads(body)), payload


def _dumps(payload) -> bytes:
    return json.dumps(payload).encode()


def test_the_generated_v2_bodies_reach_both_answers():
    seen = []

    @settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(v2_bodies)
    def collect(payload):
        seen.append(parser_takes_v2(_dumps(payload)))

    collect()
    assert 0.1 < sum(seen) / len(seen) < 0.9


@pytest.mark.parametrize("model, key", [(MlflowRequest, "MlflowRequest"), (V2InferenceRequest, "V2InferenceRequest")])
def test_the_document_shows_these_models_for_the_predict_bodies(app, model, key):
    from viewer.api.spec import build_spec

    spec = build_spec(app)
    predict = "/v2/models/{name}/infer" if key.startswith("V2") else "/api/v1/models/{name}/predict"
    body = spec["paths"][predict]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": f"#/components/schemas/{key}"}
    assert set(spec["components"]["schemas"][key]["properties"]) == set(model.model_fields)
