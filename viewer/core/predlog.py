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
``error``: null for an answered row; for a request the route refused or failed (bad input, a
quarantined model, a model host that failed), one record with its error code and no outputs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Sequence

import numpy as np
import pyarrow as pa

from .drift.sketch import label_text

ROUTES = ("v1", "mlflow", "v2", "page")
CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")  # printable ASCII, no spaces: what a header carries


class _Sequence:
    """The random part of this process's ids: 74 random bits drawn once per process, then counted
    up (RFC 9562's monotonic random method), so an id costs no system call."""

    def __init__(self) -> None:
        self.pid = -1
        self.next = 0

    def take(self) -> int:
        if self.pid != os.getpid():  # a forked child draws its own
            self.pid, self.next = os.getpid(), int.from_bytes(os.urandom(10), "big") >> 6
        value = self.next
        self.next = (value + 1) & ((1 << 74) - 1)
        return value


_sequence = _Sequence()


def new_request_id(now: float | None = None) -> str:
    """A UUID version 7 (RFC 9562): 48 bits of milliseconds since the epoch, then 74 bits unique
    to this process's ids, so ids sort by time and carry it (``request_time``)."""
    ms = int((time.time() if now is None else now) * 1000) & ((1 << 48) - 1)
    tail = _sequence.take()  # 12 bits after the version, 62 after the variant
    value = (ms << 80) | (0x7 << 76) | ((tail >> 62) << 64) | (0x2 << 62) | (tail & ((1 << 62) - 1))
    h = f"{value:032x}"  # str(uuid.UUID(int=value)), at a third of its cost
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


@dataclass(slots=True)
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
    error: str | None = None  # a request the route refused or failed: its error code (one record, no outputs)


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
            else hmac.new(key, label_text(v).encode(), hashlib.sha256).hexdigest()[:32] for v in values]



def _input_columns(entries: list[Entry], names: list[str]) -> dict[str, np.ndarray]:
    """Each named input as one array over the entries' rows. Consecutive entries of one layout
    (matrices with the same columns, or column dicts) are stacked at once: a second's 1-row
    requests cost one ``vstack``, not one slice per request and column."""
    out: dict[str, list[np.ndarray]] = {name: [] for name in names}
    i = 0
    while i < len(entries):
        first = entries[i]
        j = i + 1
        if not isinstance(first.inputs, np.ndarray):  # columns, or none (a failed request)
            while j < len(entries) and not isinstance(entries[j].inputs, np.ndarray):
                j += 1
            run = entries[i:j]
            for name in names:
                out[name].append(np.concatenate([
                    np.asarray(e.inputs[name]) if e.inputs and name in e.inputs else np.full(e.n_rows, None, dtype=object)
                    for e in run]))
        else:
            layout = first.names
            width = first.inputs.shape[1]
            while j < len(entries) and isinstance(entries[j].inputs, np.ndarray) \
                    and entries[j].inputs.shape[1] == width and (entries[j].names is layout or entries[j].names == layout):
                j += 1
            matrix = np.vstack([e.inputs for e in entries[i:j]]) if j - i > 1 else first.inputs
            position = {str(c): k for k, c in enumerate(layout if layout is not None else
                                                        [f"x{k}" for k in range(width)])}
            for name in names:
                k = position.get(name)
                out[name].append(matrix[:, k] if k is not None else np.full(len(matrix), np.nan))
        i = j
    return {name: (parts[0] if len(parts) == 1 else np.concatenate(parts)) for name, parts in out.items()}


def _probabilities(entries: list[Entry], counts: np.ndarray) -> pa.Array:
    """Each row's probabilities as a list (null where the request did not ask for them)."""
    n = int(counts.sum())
    given = [e.proba for e in entries if e.proba is not None]
    if not given:
        return pa.nulls(n, type=pa.list_(pa.float64()))
    widths = np.repeat(np.array([e.proba.shape[1] if e.proba is not None else 0 for e in entries], dtype=np.int32),
                       counts)
    values = (np.vstack(given) if len({g.shape[1] for g in given}) == 1 else
              np.concatenate([g.reshape(-1) for g in given])).reshape(-1).astype(np.float64, copy=False)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(widths, out=offsets[1:])
    missing = np.repeat(np.array([e.proba is None for e in entries]), counts)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), mask=pa.array(missing) if missing.any()
                                    else None)


def _categories(values: np.ndarray) -> pa.Array:
    if values.dtype.kind in "US":
        return pa.array(values.astype(str), type=pa.string())
    text = [None if v is None or (isinstance(v, float) and v != v) else label_text(v) for v in values.tolist()]
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
    counts = np.array([e.n_rows for e in entries], dtype=np.int64)
    n = int(counts.sum())
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    rows = (np.arange(n, dtype=np.int64) - starts).astype(np.int32)  # each row's index in its request
    ids = pa.array(np.repeat(np.array([e.request_id for e in entries], dtype=object), counts), type=pa.string())
    at = np.repeat(np.array([e.at for e in entries]) * 1e6, counts).astype(np.int64)
    latency = np.repeat(np.array([e.latency_ms for e in entries], dtype=np.float32), counts)
    route = np.repeat(np.array([e.route for e in entries], dtype=object), counts)
    answered = [np.asarray(e.prediction) for e in entries if e.error is None]
    shape = answered[0].shape[1:] if answered else ()
    parts = [np.asarray(e.prediction) if e.error is None else  # a failed request: no prediction
             np.full((e.n_rows, *shape), None if classifier and not shape else np.nan, dtype=object if
                     classifier and not shape else np.float64) for e in entries]
    predictions = np.concatenate(parts) if len(parts) > 1 else parts[0]
    if predictions.ndim == 2:  # several outputs per row (a multi-output regressor): a list each
        prediction = pa.array(predictions.astype(np.float64).tolist(), type=pa.list_(pa.float64()))
    else:
        prediction = _categories(predictions) if classifier else _numbers(predictions)
    proba = _probabilities(entries, counts)
    sampled = np.ones(n, dtype=bool) if policy.sample >= 1 else \
        (rng or np.random.default_rng()).random(n) < policy.sample
    errors = np.repeat(np.array([e.error for e in entries], dtype=object), counts)
    failed = np.array([e is not None for e in errors], dtype=bool)
    if failed.any():
        sampled &= ~failed  # a failed request's inputs are not kept
    columns: dict[str, pa.Array] = {}
    kept = [f for f in features if f.name not in policy.exclude]
    inputs_of = _input_columns(entries, [f.name for f in kept])
    for feature in kept:
        values = inputs_of[feature.name]
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
        "error": pa.array(errors, type=pa.string()),
    }
    return pa.table(table)
