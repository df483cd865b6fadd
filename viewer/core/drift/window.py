"""A window's summary of served predictions (or of a dataset): one sketch per input column, the
predictions, scores and latencies. Built from the prediction log's records or a dataset's rows,
merged across files and windows, stored as an ``.npz`` without pickles.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .sketch import LATENCY_BINS, CategoricalSketch, Grid, NumericSketch, ScoreSketch, latency_index

PREDICTION = "\x00prediction"  # the key of the predictions' sketch among the columns'


@dataclass
class Summary:
    rows: int = 0
    requests: int = 0
    sampled: int = 0  # rows whose inputs were logged
    errors: int = 0   # requests refused or failed (one record each)
    columns: dict[str, NumericSketch | CategoricalSketch] = field(default_factory=dict)
    scores: ScoreSketch | None = None
    latency: np.ndarray = field(default_factory=lambda: np.zeros(LATENCY_BINS, dtype=np.int64))

    def merge(self, other: "Summary") -> "Summary":
        self.rows += other.rows
        self.requests += other.requests
        self.sampled += other.sampled
        self.errors += other.errors
        for name, sketch in other.columns.items():
            mine = self.columns.get(name)
            if mine is None:
                self.columns[name] = _copy(sketch)
            elif type(mine) is type(sketch) and (not isinstance(mine, NumericSketch) or mine.grid == sketch.grid):
                mine.merge(sketch)
        if other.scores is not None:
            self.scores = ScoreSketch().merge(other.scores) if self.scores is None else self.scores.merge(other.scores)
        self.latency += other.latency
        return self

    def to_bytes(self) -> bytes:
        arrays: dict[str, np.ndarray] = {"meta": np.array([self.rows, self.requests, self.sampled, self.errors],
                                                          dtype=np.int64),
                                         "latency.bins": np.flatnonzero(self.latency).astype(np.int32),
                                         "latency.counts": self.latency[self.latency > 0]}
        names = list(self.columns)
        arrays["columns"] = np.array(names, dtype=str) if names else np.zeros(0, dtype="<U1")
        arrays["kinds"] = np.array([isinstance(self.columns[n], NumericSketch) for n in names], dtype=bool)
        for i, name in enumerate(names):
            arrays.update(self.columns[name].to_arrays(f"c{i}"))
        if self.scores is not None:
            arrays.update(self.scores.to_arrays("scores"))
        out = io.BytesIO()
        np.savez_compressed(out, **arrays)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> "Summary":
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            arrays = dict(stored)
        rows, requests, sampled, errors = arrays["meta"].tolist()
        summary = cls(rows, requests, sampled, errors)
        summary.latency[arrays["latency.bins"]] = arrays["latency.counts"]
        for i, (name, numeric) in enumerate(zip(arrays["columns"].tolist(), arrays["kinds"].tolist())):
            summary.columns[name] = (NumericSketch if numeric else CategoricalSketch).from_arrays(arrays, f"c{i}")
        if "scores.rows" in arrays:
            summary.scores = ScoreSketch.from_arrays(arrays, "scores")
        return summary


def _copy(sketch):
    if isinstance(sketch, NumericSketch):
        return NumericSketch(sketch.grid).merge(sketch)
    return CategoricalSketch().merge(sketch)


def column_sketch(values: Any, *, categorical: bool, grid: Grid | None,
                  known: frozenset[str] | None = None) -> NumericSketch | CategoricalSketch:
    if categorical:
        return CategoricalSketch().add(values, known)
    return NumericSketch(grid).add(values)


def numbers(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column as float64 (null, and text that is no number: NaN)."""
    try:
        cast = pc.cast(array, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pd.to_numeric(pd.Series(array.to_pylist(), dtype=object), errors="coerce").to_numpy(np.float64)
    return np.asarray(pc.fill_null(cast, math.nan).to_numpy(zero_copy_only=False), dtype=np.float64)


def summarise_records(table: pa.Table, *, categorical: set[str], grids: dict[str, Grid],
                      known: dict[str, frozenset[str]], classifier: bool, positive: int | None,
                      window_seconds: int) -> dict[int, Summary]:
    """The prediction log's records (``core.predlog``'s columns) per window: window start (epoch
    seconds) -> Summary. ``grids`` must hold a grid for every numeric input column and, for a
    regressor, for PREDICTION. ``positive``: the index of a binary classifier's positive class
    in ``proba`` (its scores are sketched)."""
    at = table.column("at").cast(pa.int64()).to_numpy() // 1_000_000  # microseconds -> seconds
    starts = at - at % window_seconds
    out: dict[int, Summary] = {}
    for start in np.unique(starts).tolist():
        part = table.filter(pa.array(starts == start)) if len(np.unique(starts)) > 1 else table
        out[int(start)] = _summarise(part, categorical, grids, known, classifier, positive)
    return out


def _summarise(table: pa.Table, categorical: set[str], grids: dict[str, Grid], known: dict[str, frozenset[str]],
               classifier: bool, positive: int | None) -> Summary:
    errors = 0
    if "error" in table.column_names:  # failed requests: counted, then left out of everything else
        failed = pc.invert(pc.is_null(table.column("error")))
        errors = int(pc.sum(failed).as_py() or 0)
        if errors:
            table = table.filter(pc.invert(failed))
    summary = Summary(rows=table.num_rows, errors=errors)
    first = pc.equal(table.column("row"), 0)  # one row per request
    summary.requests = int(pc.sum(first).as_py() or 0)
    latency = table.column("latency_ms").filter(first).to_numpy(zero_copy_only=False)
    summary.latency += np.bincount(latency_index(latency), minlength=LATENCY_BINS)
    inputs = table.column("inputs")
    sampled = pc.invert(pc.is_null(inputs))
    summary.sampled = int(pc.sum(sampled).as_py() or 0)
    if summary.sampled:
        kept = inputs.filter(sampled)
        struct_type = kept.type
        for i in range(struct_type.num_fields):
            name = struct_type.field(i).name
            values = pc.struct_field(kept, [i])
            if name in categorical:
                summary.columns[name] = CategoricalSketch().add(values.to_numpy(zero_copy_only=False), known.get(name))
            elif name in grids:
                summary.columns[name] = NumericSketch(grids[name]).add(numbers(values))
    prediction = table.column("prediction")
    if classifier:
        summary.columns[PREDICTION] = CategoricalSketch().add(prediction.to_numpy(zero_copy_only=False))
    elif PREDICTION in grids and not pa.types.is_list(prediction.type):
        summary.columns[PREDICTION] = NumericSketch(grids[PREDICTION]).add(numbers(prediction))
    if positive is not None:
        proba = table.column("proba")
        given = pc.invert(pc.is_null(proba))
        if pc.any(given).as_py():
            scores = pc.list_element(proba.filter(given), positive).to_numpy(zero_copy_only=False)
            summary.scores = ScoreSketch().add(scores)
    return summary


def summarise_frame(columns: dict[str, np.ndarray], *, categorical: set[str], grids: dict[str, Grid],
                    known: dict[str, frozenset[str]]) -> Summary:
    """A dataset's rows (a reference): one sketch per model input column."""
    n = len(next(iter(columns.values()))) if columns else 0
    summary = Summary(rows=n, sampled=n)
    for name, values in columns.items():
        if name in categorical:
            summary.columns[name] = CategoricalSketch().add(values, known.get(name))
        elif name in grids:
            summary.columns[name] = NumericSketch(grids[name]).add(np.asarray(values, dtype=np.float64))
    return summary
