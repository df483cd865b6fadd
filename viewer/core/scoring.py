"""Score a model over a stored dataset, one row group at a time.

``score_chunk`` turns one row group into one output part (row index, prediction, one
probability column per class, and the target when there is one). ``score_dataset`` is the whole
loop with a progress callback and a cancel check, for notebooks and scripts; the Celery tasks call
``score_chunk`` per chunk so several workers can share a job.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .datasets import n_row_groups, read_row_group, to_frame
from .predict import PayloadError, Predictor

TARGET_COLUMN = "target"
ROW_COLUMN = "row"
PREDICTION_COLUMN = "prediction"

# Classifiers whose ``predict`` is, by construction, ``classes_[argmax(predict_proba)]``: for
# them the prediction is derived from the probabilities instead of computing the model twice.
# (SVC, for one, is not: its predict uses the decision function.)
ARGMAX_CLASSIFIERS = {
    "LogisticRegression", "HistGradientBoostingClassifier", "RandomForestClassifier", "ExtraTreesClassifier",
    "DecisionTreeClassifier", "ExtraTreeClassifier", "GradientBoostingClassifier", "KNeighborsClassifier",
    "MLPClassifier", "GaussianNB", "MultinomialNB", "BernoulliNB", "ComplementNB", "CategoricalNB",
}


def proba_column(label: Any) -> str:
    return f"proba_{label}"


def final_estimator(estimator: Any) -> Any:
    while hasattr(estimator, "steps"):
        estimator = estimator.steps[-1][1]
    return estimator


def features(predictor: Predictor, frame: pd.DataFrame, target: str | None) -> np.ndarray | pd.DataFrame:
    """The model's input columns from a dataset chunk, checked against its schema."""
    names = predictor.feature_names
    if names is not None:
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise PayloadError(f"The dataset lacks columns the model needs: {', '.join(map(repr, missing[:5]))}"
                               + (f" and {len(missing) - 5} more" if len(missing) > 5 else "") + ".",
                               "SCHEMA_MISMATCH")
        selected = frame[list(names)]
    else:
        selected = frame.drop(columns=[target]) if target else frame
        if predictor.n_features is not None and selected.shape[1] != predictor.n_features:
            raise PayloadError(f"The model takes {predictor.n_features} unnamed columns; the dataset has "
                               f"{selected.shape[1]}" + (" besides the target" if target else "") + ".",
                               "SCHEMA_MISMATCH")
    if predictor.needs_frame:
        return selected
    non_numeric = [c for c in selected.columns if not pd.api.types.is_numeric_dtype(selected[c])
                   and not pd.api.types.is_bool_dtype(selected[c])]
    if non_numeric:
        raise PayloadError("Non-numeric columns where the model takes numbers: "
                           + ", ".join(map(repr, non_numeric[:5])) + ".", "INVALID_TYPE")
    # Row-major: a chunk's frame holds its columns in one (n_columns, n_rows) block, so to_numpy
    # gives a column-major view, and models that walk rows (trees, boosting) read it with a stride
    # of a whole column; the copy costs ~1 % of a HistGradientBoosting predict and saves ~4 %.
    return np.ascontiguousarray(selected.to_numpy(dtype=np.float64))


def score_frame(predictor: Predictor, frame: pd.DataFrame, start_row: int, target: str | None) -> pa.Table:
    X = features(predictor, frame, target)
    columns: dict[str, Any] = {ROW_COLUMN: np.arange(start_row, start_row + len(frame), dtype=np.int64)}
    if predictor.has_proba:
        proba = predictor.predict_proba(X)
        classes = np.asarray(predictor.classes if predictor.classes is not None else range(proba.shape[1]))
        if type(final_estimator(predictor.estimator)).__name__ in ARGMAX_CLASSIFIERS:
            prediction = classes.take(np.argmax(proba, axis=1))
        else:
            prediction = predictor.predict(X)
        columns[PREDICTION_COLUMN] = prediction
        for k, label in enumerate(classes.tolist()):
            columns[proba_column(label)] = proba[:, k]
    else:
        columns[PREDICTION_COLUMN] = predictor.predict(X)
    if target:
        columns[TARGET_COLUMN] = frame[target].to_numpy()
    return pa.table({k: _arrow(v) for k, v in columns.items()})


def _arrow(values: Any) -> pa.Array:
    array = np.asarray(values)
    if array.dtype.kind == "O":
        return pa.array(array.tolist(), from_pandas=True)
    return pa.array(array)


def part_path(output_dir: str | os.PathLike[str], index: int) -> Path:
    return Path(output_dir) / f"part-{index:05d}.parquet"


def _dictionary_columns(table: pa.Table) -> list[str]:
    """Dictionary-encode only the columns that can repeat (labels: predictions and targets of a
    classifier). The row index is unique and probabilities / regression values almost never
    repeat: trying a dictionary on them first made writing a part ~2.5x slower and the file larger."""
    return [name for name, column in zip(table.column_names, table.columns)
            if name != ROW_COLUMN and not pa.types.is_floating(column.type)]


def write_part(table: pa.Table, output_dir: str | os.PathLike[str], index: int) -> Path:
    """Write to a temporary name and rename: a part is either whole or absent, and writing the
    same part twice (a redelivered task) leaves one identical file."""
    target = part_path(output_dir, index)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp, use_dictionary=_dictionary_columns(table))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def score_chunk(predictor: Predictor, dataset_path: str | os.PathLike[str], index: int,
                output_dir: str | os.PathLike[str], target: str | None = None) -> int:
    """Score row group ``index`` into its output part; returns the number of rows."""
    start, table = read_row_group(dataset_path, index)
    frame = to_frame(table)
    write_part(score_frame(predictor, frame, start, target), output_dir, index)
    return table.num_rows


def score_dataset(predictor: Predictor, dataset_path: str | os.PathLike[str], output_dir: str | os.PathLike[str],
                  target: str | None = None, progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None) -> int:
    """Score every row group in one process (a notebook's way); returns rows scored."""
    total_groups = n_row_groups(dataset_path)
    done = 0
    for index in range(total_groups):
        if cancelled is not None and cancelled():
            break
        done += score_chunk(predictor, dataset_path, index, output_dir, target)
        if progress is not None:
            progress(done, index + 1)
    return done


def read_outputs(output_dir: str | os.PathLike[str], columns: list[str] | None = None) -> pa.Table:
    """Every part, in row order (only ``columns`` when given, so finalising reads little)."""
    parts = sorted(Path(output_dir).glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no output parts in {output_dir}")
    return pa.concat_tables(pq.read_table(p, columns=columns) for p in parts)


def summarize(output_dir: str | os.PathLike[str], kind: str, classes: list[Any] | None,
              has_target: bool) -> dict[str, Any]:
    """Metrics (when the target is known) and the compact aggregates every result plot draws
    from, computed once over all rows so result pages never re-read them.

    The columns are read part by part straight into one numpy array each (probabilities into one
    ``(n, k)`` matrix), so the only full-length copies held are the ones the metrics take, not an
    Arrow table of every part plus its numpy conversions (at 10M rows that was ~1 GB more)."""
    from .metrics import (classification_aggregates, classification_metrics, regression_aggregates,
                          regression_metrics)

    parts = sorted(Path(output_dir).glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"no output parts in {output_dir}")
    schema_names = set(pq.read_schema(parts[0]).names)
    proba_names = [proba_column(c) for c in classes] if kind == "classifier" and classes is not None else []
    with_proba = bool(proba_names) and all(c in schema_names for c in proba_names)
    wanted = [PREDICTION_COLUMN] + ([TARGET_COLUMN] if has_target else []) + (proba_names if with_proba else [])
    n = sum(pq.read_metadata(p).num_rows for p in parts)
    y_pred_out, y_true_out = _ColumnReader(n), _ColumnReader(n)
    proba = np.empty((n, len(proba_names)), dtype=np.float64) if with_proba else None
    start = 0
    for part in parts:
        table = pq.read_table(part, columns=wanted)
        stop = start + table.num_rows
        y_pred_out.add(table.column(PREDICTION_COLUMN), start, stop)
        if has_target:
            y_true_out.add(table.column(TARGET_COLUMN), start, stop)
        if proba is not None:
            for k, name in enumerate(proba_names):
                proba[start:stop, k] = table.column(name).to_numpy()
        start = stop
        del table
    y_pred = y_pred_out.result()
    y_true = y_true_out.result() if has_target else None
    del y_pred_out, y_true_out
    if kind == "classifier" and classes is not None:
        aggregates = classification_aggregates(y_true, proba, y_pred, classes)
        metrics = classification_metrics(y_true, y_pred, proba, classes) if has_target else None
    else:
        y_pred = np.asarray(y_pred, dtype=np.float64)
        y_true = np.asarray(y_true, dtype=np.float64) if has_target else None
        aggregates = regression_aggregates(y_true, y_pred)
        metrics = regression_metrics(y_true, y_pred) if has_target else None
    return {"metrics": metrics, "aggregates": aggregates}


class _ColumnReader:
    """One output column, filled part by part into a preallocated array, with the result pyarrow's
    ``ChunkedArray.to_numpy(zero_copy_only=False)`` of the whole column gives: integers with a
    missing value anywhere become float64 (NaN), anything not fixed-width numeric/bool is
    concatenated from the parts (object arrays)."""

    def __init__(self, n: int):
        self.n = n
        self.array: np.ndarray | None = None
        self.pieces: list[np.ndarray] | None = None

    def add(self, column: pa.ChunkedArray, start: int, stop: int) -> None:
        values = column.to_numpy(zero_copy_only=False)
        if self.pieces is None and self.array is None and values.dtype.kind in "iufb":
            self.array = np.empty(self.n, dtype=values.dtype)
        if self.array is not None:
            if values.dtype == self.array.dtype or (values.dtype.kind in "iu" and self.array.dtype.kind == "f"):
                self.array[start:stop] = values
                return
            if values.dtype.kind == "f" and self.array.dtype.kind in "iu":  # an int column with nulls here
                self.array = self.array.astype(np.float64)
                self.array[start:stop] = values
                return
            self.pieces = [self.array[:start]]  # bool with nulls (object), mixed kinds: concatenate
            self.array = None
        if self.pieces is None:
            self.pieces = []
        self.pieces.append(values)

    def result(self) -> np.ndarray:
        if self.array is not None:
            return self.array
        return np.concatenate(self.pieces) if self.pieces else np.empty(0)
