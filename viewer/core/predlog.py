"""The prediction log's records: request ids, and served rows as Arrow tables (Parquet files).

Framework-free: the services buffer what the routes served (``Entry``) and hand a batch of one
model version to ``build_table``; a file holds one version's rows of one hour (UTC).

A record per row: ``request_id`` (the client's ``X-Request-ID``, or a generated time-ordered id),
``row`` (its index in the request), ``at`` (UTC, when the request arrived), ``latency_ms`` (the
request's), ``route`` (v1, mlflow, v2, page), ``prediction`` (the label as text for a classifier,
the value for a regressor), ``proba`` (the probabilities when the request asked for them), and
``inputs``: a struct of the model's input columns (numbers as float64, categories as text) for
the rows the model's sampling rate keeps, null for the others. Columns a model's log settings
exclude are not there; columns it hashes hold a keyed hash (HMAC-SHA256, 16 bytes as hex).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

ROUTES = ("v1", "mlflow", "v2", "page")
CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces: what a header carries


def new_request_id(now: float | None = None) -> str:
    """A UUID version 7 (RFC 9562): 48 bits of milliseconds since the epoch, then random bits, so
    ids sort by time and carry it (``request_time``)."""
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant
    return str(uuid.UUID(int=value))


def request_time(request_id: str) -> datetime | None:
    """When a generated id was made (UTC, naive), or None for an id that is not a UUID 7."""
    try:
        parsed = uuid.UUID(request_id)
    except (ValueError, AttributeError, TypeError):
        return None
    if parsed.version != 7 or str(parsed) != request_id:
        return None
    return datetime.fromtimestamp((parsed.int >> 80) / 1000, UTC).replace(tzinfo=None)


def client_id_problem(value: str) -> str | None:
    """Why a client's ``X-Request-ID`` cannot be used, or None when it can."""
    if CLIENT_ID.match(value):
        return None
    return ("X-Request-ID must be 1 to 128 printable ASCII characters without spaces "
            f"(got {len(value)} characters); send another id, or none and one is generated.")


@dataclass(frozen=True)
class Policy:
    """A model's log settings as the records need them (``services.predlog`` keeps the settings)."""

    sample: float = 1.0                 # share of rows whose inputs are kept
    exclude: frozenset[str] = frozenset()
    hashed: frozenset[str] = frozenset()
    key: bytes = b""                    # the deployment's key for the hashed columns


@dataclass
class Entry:
    """One served request, as the route left it: cheap to make (references, no copies)."""

    request_id: str
    at: float            # seconds since the epoch, when the request arrived
    latency_ms: float
    route: str
    n_rows: int
    inputs: Any          # a 2-D float array (columns ``names``) or a dict name -> 1-D array
    names: Sequence[str] | None
    prediction: Any      # 1-D array: labels or values
    proba: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Feature:
    name: str
    categorical: bool


def features_of(info: dict[str, Any]) -> list[Feature]:
    """A model version's logged input columns, from its stored description (unused ones left out)."""
    schema = info.get("input_schema") or []
    if schema:
        return [Feature(f["name"], f.get("kind") == "categorical") for f in schema if f.get("kind") != "unused"]
    names = info.get("feature_names") or [f"x{i}" for i in range(int(info.get("n_features") or 0))]
    return [Feature(str(n), False) for n in names]


def hour_of(at: float) -> datetime:
    """The start of the UTC hour of a time in seconds since the epoch (naive UTC, as the records)."""
    return datetime.fromtimestamp(at - at % 3600, UTC).replace(tzinfo=None)


def _keyed_hash(values: np.ndarray, key: bytes) -> list[str | None]:
    return [None if v is None or (isinstance(v, float) and v != v)
            else hmac.new(key, _text(v).encode(), hashlib.sha256).hexdigest()[:32] for v in values]


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 3.0 and 3 hash alike: the same category typed two ways
    return str(value)


def _column(entry: Entry, name: str, position: dict[str, int] | None) -> np.ndarray:
    inputs = entry.inputs
    if isinstance(inputs, dict):
        values = inputs.get(name)
        return np.full(entry.n_rows, None, dtype=object) if values is None else np.asarray(values)
    index = position.get(name) if position is not None else None
    if index is None:
        return np.full(entry.n_rows, np.nan)
    return inputs[:, index]


def _categories(values: np.ndarray) -> pa.Array:
    if values.dtype.kind in "US":
        return pa.array(values.astype(str), type=pa.string())
    text = [None if v is None or (isinstance(v, float) and v != v) else _text(v) for v in values.tolist()]
    return pa.array(text, type=pa.string())


def _numbers(values: np.ndarray) -> pa.Array:
    if values.dtype.kind in "fiub":
        return pa.array(values.astype(np.float64, copy=False), type=pa.float64())
    out = np.full(len(values), np.nan)
    for i, v in enumerate(values.tolist()):
        try:
            out[i] = float(v) if v is not None else np.nan
        except (TypeError, ValueError):
            pass
    return pa.array(out, type=pa.float64())


def build_table(entries: list[Entry], features: list[Feature], policy: Policy, *, classifier: bool,
                rng: np.random.Generator | None = None) -> pa.Table:
    """The records of ``entries`` (one model version), one row per served row."""
    n = sum(e.n_rows for e in entries)
    rows = np.concatenate([np.arange(e.n_rows, dtype=np.int32) for e in entries])
    ids = pa.array(np.repeat(np.array([e.request_id for e in entries], dtype=object),
                             [e.n_rows for e in entries]), type=pa.string())
    at = np.repeat(np.array([int(e.at * 1e6) for e in entries], dtype=np.int64), [e.n_rows for e in entries])
    latency = np.repeat(np.array([e.latency_ms for e in entries], dtype=np.float32), [e.n_rows for e in entries])
    route = np.repeat(np.array([e.route for e in entries], dtype=object), [e.n_rows for e in entries])
    predictions = np.concatenate([np.asarray(e.prediction).reshape(-1) for e in entries])
    prediction = _categories(predictions) if classifier else _numbers(predictions)
    proba = pa.nulls(n, type=pa.list_(pa.float64()))
    if any(e.proba is not None for e in entries):
        proba = pa.array([row for e in entries for row in (e.proba.tolist() if e.proba is not None
                                                            else [None] * e.n_rows)], type=pa.list_(pa.float64()))
    sampled = np.ones(n, dtype=bool) if policy.sample >= 1 else \
        (rng or np.random.default_rng()).random(n) < policy.sample
    columns: dict[str, pa.Array] = {}
    kept = [f for f in features if f.name not in policy.exclude]
    positions = [None if isinstance(e.inputs, dict) else
                 {str(c): i for i, c in enumerate(e.names if e.names is not None
                                                  else [f"x{j}" for j in range(e.inputs.shape[1])])}
                 for e in entries]
    for feature in kept:
        parts = [_column(e, feature.name, position) for e, position in zip(entries, positions)]
        values = np.concatenate(parts) if parts else np.empty(0)
        if feature.name in policy.hashed:
            columns[feature.name] = pa.array(_keyed_hash(values.astype(object), policy.key), type=pa.string())
        elif feature.categorical:
            columns[feature.name] = _categories(values)
        else:
            columns[feature.name] = _numbers(values)
    mask = pa.array(~sampled)
    inputs = pa.StructArray.from_arrays(list(columns.values()), names=list(columns), mask=mask) if columns else \
        pa.array([None] * n, type=pa.struct([]))
    table = {
        "request_id": ids,
        "row": pa.array(rows, type=pa.int32()),
        "at": pa.array(at, type=pa.timestamp("us", tz="UTC")),
        "latency_ms": pa.array(latency, type=pa.float32()),
        "route": pa.array(route, type=pa.string()).dictionary_encode(),
        "prediction": prediction,
        "proba": proba,
        "inputs": inputs,
    }
    return pa.table(table)
