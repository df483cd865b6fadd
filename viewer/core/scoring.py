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
    return selected.to_numpy(dtype=np.float64)


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


def write_part(table: pa.Table, output_dir: str | os.PathLike[str], index: int) -> Path:
    """Write to a temporary name and rename: a part is either whole or absent, and writing the
    same part twice (a redelivered task) leaves one identical file."""
    target = part_path(output_dir, index)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        pq.write_table(table, tmp)
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
    from, computed once over all rows so result pages never re-read them."""
    from .metrics import (classification_aggregates, classification_metrics, regression_aggregates,
                          regression_metrics)

    wanted = [PREDICTION_COLUMN] + ([TARGET_COLUMN] if has_target else [])
    if kind == "classifier" and classes is not None:
        wanted += [proba_column(c) for c in classes]
    schema_names = set(pq.read_schema(next(iter(sorted(Path(output_dir).glob("part-*.parquet"))))).names)
    table = read_outputs(output_dir, [c for c in wanted if c in schema_names])
    y_pred = table.column(PREDICTION_COLUMN).to_numpy(zero_copy_only=False)
    y_true = table.column(TARGET_COLUMN).to_numpy(zero_copy_only=False) if has_target else None
    if kind == "classifier" and classes is not None:
        proba_names = [proba_column(c) for c in classes]
        proba = (np.column_stack([table.column(c).to_numpy() for c in proba_names])
                 if all(c in table.column_names for c in proba_names) else None)
        del table
        aggregates = classification_aggregates(y_true, proba, y_pred, classes)
        metrics = classification_metrics(y_true, y_pred, proba, classes) if has_target else None
    else:
        del table
        y_pred = y_pred.astype(np.float64)
        aggregates = regression_aggregates(y_true.astype(np.float64) if has_target else None, y_pred)
        metrics = regression_metrics(y_true.astype(np.float64), y_pred) if has_target else None
    return {"metrics": metrics, "aggregates": aggregates}
