"""Partial dependence and ICE on a bounded sample of a dataset: how the model's output moves when
one input (or a pair) takes other values, all else as each row has it.

The sample: at most ``max_rows`` rows drawn uniformly (seeded) and read only from the row groups
that hold them (``datasets.reading.sample_rows``), so the job's time hardly grows with the
dataset. The curves: scikit-learn's ``partial_dependence`` (``method="brute"``), on the model as
the app serves it (``importance._as_estimator``: the model runs where the predictor runs it),
categorical inputs included (their grid is their values in the sample). Per feature: the average
(PD), ``ICE_LINES`` individual lines (ICE) drawn from the sample, and the feature's distribution
in the sample; for a chosen pair, the average over a two-feature grid.

The output: the probability of the positive class for a binary classifier (one curve), each
class's probability for several classes (ICE for the first class only: they sum to one), the
prediction for a regressor.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from .datasets import DatasetError
from .datasets.reading import sample_rows, to_frame
from .importance import Cancelled, _as_estimator
from .payload import PayloadError
from .predictor import InputSchema
from .scoring import features as model_input

DEFAULT_MAX_ROWS = 1_000
MAX_SAMPLE_ROWS = 20_000
DEFAULT_GRID = 20
MAX_GRID = 100
MAX_FEATURES = 12
ICE_LINES = 50
HISTOGRAM_BINS = 20
MAX_CATEGORIES = 30
PAIR_GRID = 25       # points per input of a pair's heat map (the pair costs grid^2 predictions per row)
PAIR_ROWS = 2_000    # rows of the sample the pair is averaged over


def dependence(predictor: InputSchema, path: str | os.PathLike[str], columns: list[str], chosen: Sequence[str],
               pair: Sequence[str] | None = None, *, max_rows: int = DEFAULT_MAX_ROWS, grid: int = DEFAULT_GRID,
               seed: int = 0, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """``columns``: the model's input columns in the dataset; ``chosen``: those to draw (at most
    ``MAX_FEATURES``); ``pair``: two of the model's inputs for the heat map (or None)."""
    from sklearn.inspection import partial_dependence

    chosen = list(dict.fromkeys(chosen))
    if not chosen or len(chosen) > MAX_FEATURES:
        raise PayloadError(f"Choose 1 to {MAX_FEATURES} of the model's inputs.", "BAD_OPTION")
    unknown = [c for c in [*chosen, *(pair or [])] if c not in columns]
    if unknown:
        raise PayloadError(f"{unknown[0][:100]!r} is not one of the model's inputs.", "UNKNOWN_FEATURE")
    if pair is not None and (len(pair) != 2 or pair[0] == pair[1]):
        raise PayloadError("A pair is two different inputs of the model.", "BAD_OPTION")
    import pyarrow.parquet as pq

    present = set(pq.read_schema(path).names)  # a column the model drops may be absent
    table, rows = sample_rows(path, max_rows, columns=[c for c in columns if c in present], seed=seed)
    if table.num_rows < 2:
        raise DatasetError("The dataset has fewer than 2 rows.")
    frame = to_frame(table)
    X = model_input(predictor, frame, None)
    est = _as_estimator(predictor)
    kind = predictor.info.get("kind")
    classes = predictor.classes
    by_name = isinstance(X, pd.DataFrame)
    position = {name: i for i, name in enumerate(columns)}
    rng = np.random.default_rng(seed)
    ice_rows = np.sort(rng.choice(len(frame), size=min(ICE_LINES, len(frame)), replace=False))
    out: dict[str, Any] = {"rows": int(table.num_rows), "sampled_from": int(rows.max() + 1) if len(rows) else 0,
                           "grid": grid, "seed": seed, "output": _output(kind, classes), "features": []}
    steps = len(chosen) + (1 if pair else 0)
    for done, name in enumerate(chosen):
        key = name if by_name else position[name]
        categorical = _categorical(frame[name])
        found = partial_dependence(est, X, [key], kind="both", method="brute",
                                   categorical_features=[key] if categorical else None,
                                   custom_values=_values(X, key, frame[name], categorical, grid))
        values = found["grid_values"][0]
        average = np.asarray(found["average"])
        individual = np.asarray(found["individual"])[0][ice_rows]  # the first output's lines
        out["features"].append({
            "name": name, "categorical": categorical, "grid": _plain(values),
            "average": [_floats(a) for a in average],
            "ice": [_floats(line) for line in individual], "ice_rows": [int(rows[i]) for i in ice_rows],
            "distribution": _distribution(frame[name], categorical)})
        if progress is not None:
            progress(done + 1, steps)
    if pair:
        keys = [p if by_name else position[p] for p in pair]
        categorical = [k for k, p in zip(keys, pair) if _categorical(frame[p])]
        custom = {}
        for k, p in zip(keys, pair):
            custom.update(_values(X, k, frame[p], k in categorical, min(grid, PAIR_GRID)))
        rows_used = X.iloc[:PAIR_ROWS] if isinstance(X, pd.DataFrame) else X[:PAIR_ROWS]
        found = partial_dependence(est, rows_used, keys, kind="average", method="brute",
                                   categorical_features=categorical or None, custom_values=custom)
        out["pair"] = {"names": list(pair), "grids": [_plain(v) for v in found["grid_values"]],
                       "average": [[_floats(r) for r in a] for a in np.asarray(found["average"])]}
        if progress is not None:
            progress(steps, steps)
    return out


def _output(kind: str | None, classes: list[Any] | None) -> dict[str, Any]:
    if kind == "classifier" and classes is not None:
        if len(classes) == 2:
            return {"what": "probability", "classes": [_plain([classes[1]])[0]]}
        return {"what": "probability", "classes": _plain(list(classes))}
    return {"what": "prediction", "classes": None}


def _values(X: Any, key: Any, column: pd.Series, categorical: bool, grid: int) -> dict[Any, np.ndarray]:
    """An input's grid, missing values left out (scikit-learn's own grid sorts NaN among the
    values, or makes every point NaN): a categorical input's most common values in the sample, in
    the model's input's own type; a numeric one's distinct values when there are at most ``grid``,
    else ``grid`` points evenly from its 5th to its 95th percentile."""
    source = X[key] if isinstance(X, pd.DataFrame) else (X[:, key] if isinstance(X, np.ndarray) else column)
    source = pd.Series(source)
    if categorical:
        counts = source.dropna().value_counts().head(MAX_CATEGORIES)
        return {key: np.asarray(counts.index.tolist(), dtype=object)}
    values = pd.to_numeric(source, errors="coerce").to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        raise PayloadError(f"{str(column.name)[:100]!r} has no values in the sample.", "BAD_OPTION")
    distinct = np.unique(values)
    if len(distinct) <= grid:
        return {key: distinct}
    low, high = np.percentile(values, [5, 95])
    return {key: np.linspace(low, high, grid) if high > low else distinct[:grid]}


def _categorical(column: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column))


def _distribution(column: pd.Series, categorical: bool) -> dict[str, Any]:
    present = column.dropna()
    if categorical:
        counts = present.astype(str).value_counts().head(MAX_CATEGORIES)
        return {"values": counts.index.tolist(), "counts": counts.astype(int).tolist(),
                "missing": int(column.isna().sum())}
    values = present.to_numpy(dtype=np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return {"edges": [], "counts": [], "missing": int(column.isna().sum())}
    counts, edges = np.histogram(values, bins=HISTOGRAM_BINS)
    return {"edges": _floats(edges), "counts": counts.astype(int).tolist(), "missing": int(column.isna().sum())}


def _floats(values: Any) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=np.float64).ravel()]


def _plain(values: Any) -> list[Any]:
    out = []
    for v in np.asarray(values, dtype=object).ravel().tolist():
        if isinstance(v, (np.generic,)):
            v = v.item()
        if isinstance(v, float) and not np.isfinite(v):
            v = None
        out.append(v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
    return out


__all__ = ["Cancelled", "dependence"]
