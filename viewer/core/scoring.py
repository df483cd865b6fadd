"""Score a model over a stored dataset, one row group at a time.

``score_chunk`` turns one row group into one output part (row index, prediction, one
probability column per class, and the target when there is one). ``score_dataset`` is the whole
loop with a progress callback and a cancel check, for notebooks and scripts; the Celery tasks call
``score_chunk`` per chunk so several workers can share a job.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .datasets import n_row_groups, read_row_group, to_frame
from .payload import PayloadError
from .predictor import InputSchema
from .schema_policy import MAX_WARNINGS, collecting, model_warnings, strict_refusal, text_column_error

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


def features(predictor: InputSchema, frame: pd.DataFrame, target: str | None,
             start_row: int = 0) -> np.ndarray | pd.DataFrame:
    """The model's input columns from a dataset chunk, checked against its schema."""
    names = predictor.feature_names
    if names is not None:
        missing = [c for c in names if c not in frame.columns and c not in predictor.unused]
        if missing:
            raise PayloadError(f"The dataset lacks columns the model needs: {', '.join(map(repr, missing[:5]))}"
                               + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                               + ". Upload a dataset that has them (named exactly so), or choose a model trained "
                               "on this dataset's columns.", "SCHEMA_MISMATCH")
        selected = frame.reindex(columns=list(names)) if predictor.unused else frame[list(names)]
    else:
        selected = frame.drop(columns=[target]) if target else frame
        if predictor.n_features is not None and selected.shape[1] != predictor.n_features:
            raise PayloadError(f"The model takes {predictor.n_features} unnamed columns; the dataset has "
                               f"{selected.shape[1]}" + (" besides the target" if target else "") + ".",
                               "SCHEMA_MISMATCH")
    if predictor.needs_frame:
        for name in predictor.missing_is_none & set(selected.columns):  # a read column's missing is NaN
            column = selected[name]
            if column.isna().any():
                selected = selected.assign(**{name: column.astype(object).where(column.notna(), None)})
        return selected
    non_numeric = [c for c in selected.columns if not pd.api.types.is_numeric_dtype(selected[c])
                   and not pd.api.types.is_bool_dtype(selected[c])]
    if non_numeric:
        for name in non_numeric:  # name the rows, and the fix when the text is decimal-comma numbers
            error = text_column_error(name, selected[name], start_row)
            if error is not None:
                raise error
        raise PayloadError("Non-numeric columns where the model takes numbers: "
                           + ", ".join(map(repr, non_numeric[:5])) + ". Convert them to numbers (or upload the file "
                           "again with the right decimal separator).", "INVALID_TYPE")
    # Row-major: a chunk's frame holds its columns in one (n_columns, n_rows) block, so to_numpy
    # gives a column-major view, and models that walk rows (trees, boosting) read it with a stride
    # of a whole column; the copy costs ~1 % of a HistGradientBoosting predict and saves ~4 %.
    return np.ascontiguousarray(selected.to_numpy(dtype=np.float64))


OUTPUT_COLUMNS = (ROW_COLUMN, PREDICTION_COLUMN, TARGET_COLUMN)


def is_output_name(name: str) -> bool:
    """Whether ``name`` is (or may be) one of the columns a scoring job writes itself."""
    return name in OUTPUT_COLUMNS or name.startswith("proba_")


def passthrough_columns(table: pa.Table, names: Sequence[str]) -> dict[str, pa.ChunkedArray]:
    """The ``names`` columns of a stored row group with their stored type (dictionary columns
    decoded), so every part of a job has one schema whatever values each chunk holds."""
    out = {}
    for name in names:
        column = table.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        out[name] = column
    return out


def numeric_features(predictor: InputSchema, table: pa.Table) -> np.ndarray | None:
    """The model's input straight from a stored chunk's Arrow columns, one copy as a plain loop
    makes it, when the model takes a numeric array and every column it needs is stored as
    numbers (the array ``features`` would make from ``to_frame``'s frame, without the frame's
    copies; bench/scoring.py). None otherwise: the frame's path then checks and explains."""
    names = predictor.feature_names
    if predictor.needs_frame or names is None:
        return None
    schema = table.schema
    for name in names:
        i = schema.get_field_index(name)
        if i < 0 or not (pa.types.is_floating(schema.field(i).type) or pa.types.is_integer(schema.field(i).type)):
            return None
    X = np.empty((table.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        X[:, j] = table.column(name).to_numpy()  # nulls become NaN, as to_frame makes them
    return X


def score_frame(predictor: InputSchema, frame: pd.DataFrame, start_row: int, target: str | None,
                passthrough: Sequence[str] | dict[str, Any] = (), report: list[dict[str, Any]] | None = None,
                strict: bool = False, X: np.ndarray | None = None) -> pa.Table:
    """One chunk's output: the row index, the ``passthrough`` columns (names of ``frame``'s
    columns, or the columns themselves) as they are, to join the predictions back to one's own
    rows by ID, then the prediction, one probability column per class and the target.

    The schema policy's checks run first (the predict API's): their warnings, with row numbers
    of the whole dataset, go to ``report``; ``strict`` refuses the chunk on any instead.
    ``X``: the model's input already made (``numeric_features``); ``frame`` then needs to hold
    only the target and the passthrough columns named."""
    names = predictor.feature_names
    found: list[dict[str, Any]] = []
    if X is not None:
        predictor.check_array(X, names, found, start_row)
    elif names is not None and all(c in frame.columns for c in names):
        predictor.check_frame(frame[list(names)], found, start_row)
    if strict and found:
        raise strict_refusal(found)
    if report is not None:
        report.extend(found)
    if X is None:
        X = features(predictor, frame, target, start_row)
    columns: dict[str, Any] = {ROW_COLUMN: np.arange(start_row, start_row + len(X), dtype=np.int64)}
    kept = (dict(passthrough) if isinstance(passthrough, dict)
            else {name: pa.Array.from_pandas(frame[name]) for name in passthrough})
    if predictor.has_proba:
        proba = predictor.predict_proba(X)
        classes = np.asarray(predictor.classes if predictor.classes is not None else range(proba.shape[1]))
        if predictor.final_kind in ARGMAX_CLASSIFIERS:
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
    arrays = {k: _arrow(v) for k, v in columns.items()}
    return pa.table({ROW_COLUMN: arrays.pop(ROW_COLUMN), **kept, **arrays})


def _arrow(values: Any) -> pa.Array:
    array = np.asarray(values)
    if array.dtype.kind == "O":
        return pa.array(array.tolist(), from_pandas=True)
    return pa.array(array)


def part_path(output_dir: str | os.PathLike[str], index: int) -> Path:
    """Where ``score_dataset`` puts chunk ``index``'s part in a plain folder."""
    return Path(output_dir) / f"part-{index:05d}.parquet"


def parts_in(output_dir: str | os.PathLike[str]) -> list[Path]:
    """The parts ``score_dataset`` wrote to a folder, in row order."""
    return sorted(Path(output_dir).glob("part-*.parquet"))


def _dictionary_columns(table: pa.Table) -> list[str]:
    """Dictionary-encode only the columns that can repeat (labels: predictions and targets of a
    classifier). The row index is unique and probabilities / regression values almost never
    repeat: trying a dictionary on them first made writing a part ~2.5x slower and the file larger."""
    return [name for name, column in zip(table.column_names, table.columns)
            if name in (PREDICTION_COLUMN, TARGET_COLUMN) and not pa.types.is_floating(column.type)]


def write_part(table: pa.Table, path: str | os.PathLike[str]) -> Path:
    """Write one output part to ``path``. Whoever reads it learns of it only afterwards (a job
    records the part's artifact key once it is written), so no temporary name is needed."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target, use_dictionary=_dictionary_columns(table))
    return target


def score_chunk(predictor: InputSchema, dataset_path: str | os.PathLike[str], index: int,
                part: str | os.PathLike[str], target: str | None = None, passthrough: Sequence[str] = (),
                strict: bool = False, segments: dict[str, Any] | None = None) -> int:
    """Score row group ``index`` into the output part at ``part``; returns the number of rows.
    Bad input raises PayloadError whose message starts with the rows ("Rows 100,000–199,999: ");
    the schema policy's warnings (and the model's own) are kept in the part's metadata
    (``part_warnings`` reads them back); ``strict`` refuses the rows on any instead. With a
    ``segments`` plan (and a target), the chunk's segment counts go into the metadata too
    (``part_segments`` merges them)."""
    start, table = read_row_group(dataset_path, index)
    X = numeric_features(predictor, table)
    frame = to_frame(table if X is None else table.select([target] if target else []))
    report: list[dict[str, Any]] = []
    try:
        with collecting() as raised:
            scored = score_frame(predictor, frame, start, target, passthrough_columns(table, passthrough),
                                 report, strict, X)
    except PayloadError as exc:
        raise PayloadError(f"{rows_label(start, table.num_rows)}: {exc.message}", exc.error_code,
                           exc.status) from None
    report += model_warnings(raised)
    metadata = dict(scored.schema.metadata or {})
    if report:
        metadata[WARNINGS_KEY] = json.dumps(report[:MAX_WARNINGS]).encode()
    if segments is not None and target:
        metadata[SEGMENTS_KEY] = _segment_counts(predictor, segments, table, scored, start).to_bytes()
    if metadata:
        scored = scored.replace_schema_metadata(metadata)
    write_part(scored, part)
    return table.num_rows


WARNINGS_KEY = b"viewer.warnings"
SEGMENTS_KEY = b"viewer.segments"


def _segment_counts(predictor: InputSchema, planned: dict[str, Any], table: pa.Table, scored: pa.Table,
                    start: int):
    from . import segments

    classes = predictor.classes
    kind = "classifier" if predictor.info.get("kind") == "classifier" and classes is not None else "regressor"
    score = None
    if kind == "classifier" and len(classes) == 2 and proba_column(classes[1]) in scored.column_names:
        score = scored.column(proba_column(classes[1])).to_numpy()
    try:
        return segments.count(planned, table, kind, y_true=scored.column(TARGET_COLUMN).to_numpy(zero_copy_only=False),
                              y_pred=scored.column(PREDICTION_COLUMN).to_numpy(zero_copy_only=False),
                              classes=classes, score=score, threshold=planned.get("threshold"), start_row=start)
    except segments.SegmentError as exc:
        raise PayloadError(str(exc), "INVALID_SEGMENT") from None


PAIR_ROWS = 500_000  # rows (of evenly spaced chunks) the weak-segment finder's pairs are counted on


def segment_summary(planned: dict[str, Any], parts: Sequence[str | os.PathLike[str]], kind: str,
                    classes: list[Any] | None, dataset_path: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """The segment table, the weak segments and a binary classifier's intersections of a finished
    job, from its parts' counts. The pairs the weak-segment finder tests need two columns at once:
    they are counted in one more pass over the few dataset columns they need, row group ``i``
    beside part ``i``, on at most ``PAIR_ROWS`` rows of evenly spaced chunks (skipped when the
    dataset is gone). None for a job whose parts have no counts."""
    from . import segments
    from .segments import report

    counts = part_segments(parts)
    if counts is None:
        return None
    kind = "classifier" if kind == "classifier" and classes is not None else "regressor"
    found = report.table(planned, counts, kind)
    chosen = report.pairs(planned, counts, kind)
    pair_counts: dict[tuple[int, int], Any] = {}
    tested_rows = 0
    if chosen and dataset_path is not None:
        names = segments.labels(planned)
        needed = list(dict.fromkeys(names[s][0] for pair in chosen for s in pair))
        sizes = [pq.read_metadata(p).num_rows for p in parts]
        average = max(1, sum(sizes) // max(len(sizes), 1))
        step = max(1, round(len(parts) / max(1, PAIR_ROWS // average)))
        for i in range(0, len(parts), step):
            start, columns = read_row_group(dataset_path, i, columns=needed)
            outputs = pq.read_table(parts[i], columns=[PREDICTION_COLUMN, TARGET_COLUMN])
            counted = segments.count_pairs(
                planned, chosen, columns, kind, y_true=outputs.column(TARGET_COLUMN).to_numpy(zero_copy_only=False),
                y_pred=outputs.column(PREDICTION_COLUMN).to_numpy(zero_copy_only=False), classes=classes,
                start_row=start)
            tested_rows += columns.num_rows
            for pair, value in counted.items():
                pair_counts[pair] = value if pair not in pair_counts else pair_counts[pair].merge(value)
    found["weak"] = report.weak(planned, counts, kind, pair_counts)
    found["weak"]["pair_rows"] = tested_rows
    found["joint"] = segments.joint_cells(planned, counts.joint) if counts.joint is not None else []
    found["threshold"] = planned.get("threshold")
    return found


def part_segments(parts: Sequence[str | os.PathLike[str]]):
    """The parts' segment counts merged (None when a part has none: a job from before segments)."""
    from . import segments

    total = None
    for path in parts:
        data = (pq.read_schema(path).metadata or {}).get(SEGMENTS_KEY)
        if data is None:
            return None
        found = segments.Counts.from_bytes(data)
        total = found if total is None else total.merge(found)
    return total


def chunk_rows(dataset_path: str | os.PathLike[str], index: int) -> str:
    """Row group ``index``'s rows as ``rows_label`` words them (from the footer, no data read)."""
    with pq.ParquetFile(dataset_path) as pf:
        meta = pf.metadata
        start = sum(meta.row_group(j).num_rows for j in range(index))
        return rows_label(start, meta.row_group(index).num_rows)


def rows_label(start: int, n_rows: int) -> str:
    """A chunk's rows as a user reads them: "Rows 100,000–199,999" (counted from 0, as results are)."""
    return f"Row {start:,}" if n_rows == 1 else f"Rows {start:,}–{start + max(n_rows, 1) - 1:,}"


def part_warnings(parts: Sequence[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """The warnings of every part, one per problem (code and column): row counts summed, the
    first part's message (its rows) with the total added when later parts had the same."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for part in parts:
        metadata = pq.read_schema(part).metadata or {}
        raw = metadata.get(WARNINGS_KEY)
        if not raw:
            continue
        for warning in json.loads(raw):
            key = (warning.get("code"), warning.get("column"), warning.get("category"))
            if key not in merged:
                if len(merged) < MAX_WARNINGS:
                    merged[key] = dict(warning, parts=1)
                continue
            seen = merged[key]
            seen["parts"] += 1
            for count in ("rows", "count"):
                if count in warning:
                    seen[count] = seen.get(count, 0) + warning[count]
    out = []
    for warning in merged.values():
        if warning.pop("parts") > 1 and "rows" in warning:
            warning["message"] += f" In all, {warning['rows']:,} rows of the dataset."
        out.append(warning)
    return out


def score_dataset(predictor: InputSchema, dataset_path: str | os.PathLike[str], output_dir: str | os.PathLike[str],
                  target: str | None = None, progress: Callable[[int, int], None] | None = None,
                  cancelled: Callable[[], bool] | None = None, passthrough: Sequence[str] = ()) -> int:
    """Score every row group in one process (a notebook's way); returns rows scored."""
    total_groups = n_row_groups(dataset_path)
    done = 0
    for index in range(total_groups):
        if cancelled is not None and cancelled():
            break
        done += score_chunk(predictor, dataset_path, index, part_path(output_dir, index), target, passthrough)
        if progress is not None:
            progress(done, index + 1)
    return done


def read_outputs(parts: Sequence[str | os.PathLike[str]], columns: list[str] | None = None) -> pa.Table:
    """Every part, in row order (only ``columns`` when given, so finalising reads little)."""
    if not parts:
        raise FileNotFoundError("no output parts")
    return pa.concat_tables(pq.read_table(p, columns=columns) for p in parts)


def summarize(parts: Sequence[str | os.PathLike[str]], kind: str, classes: list[Any] | None,
              has_target: bool) -> dict[str, Any]:
    """Metrics (when the target is known) and the compact aggregates every result plot draws
    from, computed once over all rows so result pages never re-read them.

    Memory (bench/finalise_memory.py): a classifier's labels are read part by part into 1-byte
    codes, and each probability column is read from the parts only when its class is ranked,
    so the full ``(n, k)`` probability matrix is never held; a regressor's two columns are read
    part by part into one float64 array each. The values are what reading each whole column
    gives (``ChunkedArray.to_numpy``, e.g. integers with a missing value in some part become
    floats everywhere)."""
    from .metrics import classification_summary, regression_summary

    if not parts:
        raise FileNotFoundError("no output parts")
    parts = [Path(p) for p in parts]
    rows = [pq.read_metadata(p).num_rows for p in parts]
    if kind == "classifier" and classes is not None:
        schema_names = set(pq.read_schema(parts[0]).names)
        proba_names = [proba_column(c) for c in classes]
        with_proba = all(c in schema_names for c in proba_names)
        columns = _PartColumns(parts, rows, proba_names if with_proba else [], has_target)
        metrics, aggregates = classification_summary(columns, classes, with_metrics=has_target)
    else:
        y_pred = _read_floats(parts, rows, PREDICTION_COLUMN)
        y_true = _read_floats(parts, rows, TARGET_COLUMN) if has_target else None
        metrics, aggregates = regression_summary(y_true, y_pred, with_metrics=has_target)
    return {"metrics": metrics, "aggregates": aggregates}


def _casts(dtypes: list[np.dtype]) -> list[list[np.dtype]]:
    """For each part of a column, the dtypes its values pass through when the whole column is
    converted at once (``ChunkedArray.to_numpy``, then numpy's concatenation): parts of one
    fixed-width numeric/bool dtype stay as they are, integers with a float part become float64
    (as an integer column with nulls), any other mix is concatenated to the common dtype."""
    casts: list[list[np.dtype]] = [[] for _ in dtypes]
    array, mixed = None, False
    for i, dtype in enumerate(dtypes):
        if not mixed and array is None and dtype.kind in "iufb":
            array = dtype
        if array is not None:
            if dtype == array or (dtype.kind in "iu" and array.kind == "f"):
                casts[i].append(array)
                continue
            if dtype.kind == "f" and array.kind in "iu":
                array = np.dtype(np.float64)
                for chain in casts[:i + 1]:
                    chain.append(array)
                continue
            array = None
        mixed = True
    if mixed:
        common = np.result_type(*[chain[-1] if chain else dtype for chain, dtype in zip(casts, dtypes)])
        for chain in casts:
            chain.append(common)
    return casts


def _cast(values: np.ndarray, chain: list[np.dtype]) -> np.ndarray:
    for dtype in chain:
        values = values.astype(dtype, copy=False)
    return values


def _label_casts(parts: list[Path], name: str) -> list[list[np.dtype]]:
    return _casts([_numpy_dtype(p, name) for p in parts])


def _numpy_dtype(part: Path, name: str) -> np.dtype:
    """The dtype ``to_numpy`` gives for a part's column, from its footer (its type and its null
    counts) instead of reading its values; read when the footer lacks the counts."""
    meta = pq.read_metadata(part)
    kind = meta.schema.to_arrow_schema().field(name).type
    # Statistics are per Parquet leaf column: find this column's leaf by its path (nested columns
    # before it have several leaves; a nested column itself has no single count).
    leaf = next((i for i in range(meta.num_columns) if meta.schema.column(i).path == name), None)
    nulls = 0
    for g in range(meta.num_row_groups):
        stats = meta.row_group(g).column(leaf).statistics if leaf is not None else None
        if stats is None or not stats.has_null_count:
            return pq.read_table(part, columns=[name]).column(0).to_numpy(zero_copy_only=False).dtype
        nulls += stats.null_count
    return pa.array([None] if nulls else [], type=kind).to_numpy(zero_copy_only=False).dtype


def _read_floats(parts: list[Path], rows: list[int], name: str) -> np.ndarray:
    """One column of every part as one float64 array."""
    out = np.empty(sum(rows), dtype=np.float64)
    start = 0
    for part, chain, n in zip(parts, _label_casts(parts, name), rows):
        out[start:start + n] = _cast(pq.read_table(part, columns=[name]).column(0).to_numpy(zero_copy_only=False),
                                     chain)
        start += n
    return out


class _PartColumns:
    """A classification job's output parts as ``metrics.ClassifierColumns``: one part per
    block, and one probability column at a time."""

    def __init__(self, parts: list[Path], rows: list[int], proba_names: list[str], has_target: bool):
        self.parts, self.rows, self.proba_names = parts, rows, proba_names
        self.n = sum(rows)
        self.has_target = has_target
        self.has_proba = bool(proba_names)
        self.label_names = [PREDICTION_COLUMN] + ([TARGET_COLUMN] if has_target else [])
        self.casts = {name: _label_casts(parts, name) for name in self.label_names}

    def blocks(self):
        for i, part in enumerate(self.parts):
            table = pq.read_table(part, columns=self.label_names + self.proba_names)
            labels = {name: _cast(table.column(name).to_numpy(zero_copy_only=False), self.casts[name][i])
                      for name in self.label_names}
            proba = None
            if self.proba_names:
                proba = np.empty((table.num_rows, len(self.proba_names)), dtype=np.float64)
                for k, name in enumerate(self.proba_names):
                    proba[:, k] = table.column(name).to_numpy()
            del table
            yield labels.get(TARGET_COLUMN), labels[PREDICTION_COLUMN], proba

    def proba_column(self, c: int, rows: np.ndarray | None) -> np.ndarray:
        out = np.empty(self.n if rows is None else int(np.count_nonzero(rows)), dtype=np.float64)
        start = pos = 0
        for part, n in zip(self.parts, self.rows):
            values = pq.read_table(part, columns=[self.proba_names[c]]).column(0).to_numpy()
            if rows is not None:
                values = values[rows[start:start + n]]
            out[pos:pos + len(values)] = values
            start, pos = start + n, pos + len(values)
        return out
