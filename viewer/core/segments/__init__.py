"""Metrics per segment of a scored dataset, merged from per-chunk counts (no second pass).

A *plan* (``plan``) is made once per job from the dataset's ingest-time summaries: for each
categorical column its top values, then "other" and "missing"; for each numeric column five
quantile bins of its histogram, then "missing"; and the segments a user defined (conditions on
columns, all of which hold). Each chunk's rows are coded by the plan (``codes``) and counted
(``count``): per segment the rows, the labelled rows and the wrong predictions (classifiers; for
two classes also the confusion counts at the job's decision threshold and histograms of the
positive class's log-odds in ``BINS`` bins, for ROC AUC), or the sums of errors, absolute
errors and squared errors (regressors). Chunks' counts add up (``Counts.merge``).

``report.table`` turns the merged counts into the segment table: each segment's metric with a 95 %
interval and its gap to the whole dataset, worst first. ROC AUC comes from the histograms: a
positive and a negative row in one bin count half, as tied scores do in scikit-learn (bins of
1/32 of a log-odds unit: within 2e-4 of scikit-learn's on HistGradientBoosting scores, the
tests check 1e-3).
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

TOP = 8            # categories of a column shown by name (the rest are "other")
QUANTILES = 5      # bins of a numeric column
MAX_COLUMNS = 24   # columns segmented, the model's inputs first
MAX_SEGMENTS_DEFINED = 20
BINS = 2048        # log-odds histogram bins per segment and class (binary classifiers)
LOGIT_RANGE = 8.0
Z95 = 1.959963984540054
CLASSIFIER_FIELDS = ("rows", "labelled", "errors", "tp", "fp", "fn", "tn")
REGRESSOR_FIELDS = ("rows", "labelled", "sum_error", "sum_abs", "sum_sq")
OPS = ("==", "!=", "<", "<=", ">", ">=", "in")


class SegmentError(ValueError):
    """A user-defined segment that cannot be evaluated (its sentence says why)."""


# --- the plan ------------------------------------------------------------------------------------

def plan(columns: Sequence[dict[str, Any]], *, skip: Iterable[str] = (), first: Sequence[str] = (),
         defined: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The segments of a job from its dataset's column summaries (``DatasetInfo.columns``):
    ``skip`` (the target, ID columns) left out, ``first`` (the model's inputs) first, at most
    ``MAX_COLUMNS`` columns; then the ``defined`` segments ({"name", "conditions"})."""
    skipped = set(skip)
    by_name = {c["name"]: c for c in columns if isinstance(c, dict) and c.get("name") not in skipped
               and not c.get("identifier")}
    order = [n for n in first if n in by_name] + [n for n in by_name if n not in set(first)]
    planned = []
    for name in order:
        info = by_name[name]
        spec = _column_plan(info)
        if spec is not None:
            planned.append(spec)
        if len(planned) == MAX_COLUMNS:
            break
    names = {c["name"] for c in columns if isinstance(c, dict)}
    return {"columns": planned, "defined": [check_defined(d, names) for d in defined][:MAX_SEGMENTS_DEFINED]}


def _column_plan(info: dict[str, Any]) -> dict[str, Any] | None:
    top = [v["value"] for v in info.get("top_values") or [] if v.get("value") is not None]
    if info.get("kind") in ("categorical", "boolean") or (info.get("kind") == "numeric" and top):
        if len(top) < 2 and not info.get("nulls"):
            return None
        values = top[:TOP]
        return {"column": info["name"], "kind": "categorical", "values": values,
                "labels": [str(v) for v in values] + ["other", "missing"]}
    histogram = info.get("histogram") or {}
    if info.get("kind") != "numeric" or not histogram.get("counts"):
        return None
    edges = _quantile_edges(np.asarray(histogram["edges"], dtype=float), np.asarray(histogram["counts"], dtype=float))
    if not edges:
        return None
    labels = [f"< {_num(edges[0])}"] + [f"{_num(a)} to < {_num(b)}" for a, b in zip(edges, edges[1:])] \
        + [f"≥ {_num(edges[-1])}", "missing"]
    return {"column": info["name"], "kind": "numeric", "edges": edges, "labels": labels}


def _quantile_edges(edges: np.ndarray, counts: np.ndarray) -> list[float]:
    """Interior edges near the column's quintiles (read off its histogram), rounded to 3
    significant digits, without repeats."""
    total = counts.sum()
    if total <= 0:
        return []
    cumulative = np.concatenate([[0.0], np.cumsum(counts)]) / total
    found = []
    for q in np.arange(1, QUANTILES) / QUANTILES:
        i = int(np.clip(np.searchsorted(cumulative, q, side="right") - 1, 0, len(counts) - 1))
        share = (q - cumulative[i]) / max(cumulative[i + 1] - cumulative[i], 1e-12)
        found.append(float(_round(edges[i] + share * (edges[i + 1] - edges[i]))))
    return sorted(set(v for v in found if edges[0] < v <= edges[-1]))


def _round(value: float) -> float:
    return 0.0 if value == 0 else round(value, 2 - int(math.floor(math.log10(abs(value)))))


def _num(value: float) -> str:
    return f"{value:,.6g}"


def check_defined(segment: dict[str, Any], names: set[str]) -> dict[str, Any]:
    """A user-defined segment, checked: a name and 1 to 4 conditions on the dataset's columns."""
    name = str(segment.get("name") or "").strip()[:80]
    conditions = segment.get("conditions")
    if not name or not isinstance(conditions, list) or not 1 <= len(conditions) <= 4:
        raise SegmentError("A segment needs a name and 1 to 4 conditions, e.g. {\"name\": \"young students\", "
                           "\"conditions\": [{\"column\": \"age\", \"op\": \"<\", \"value\": 25}]}.")
    checked = []
    for c in conditions:
        if not isinstance(c, dict) or c.get("column") not in names:
            raise SegmentError(f"Segment {name!r}: each condition names a column of the dataset "
                               f"({str(c.get('column') if isinstance(c, dict) else c)[:60]!r} is not one).")
        if c.get("op") not in OPS:
            raise SegmentError(f"Segment {name!r}: op must be one of {', '.join(OPS)}.")
        value = c.get("value")
        if c["op"] == "in" and not (isinstance(value, list) and 0 < len(value) <= 100):
            raise SegmentError(f"Segment {name!r}: 'in' takes a list of 1 to 100 values.")
        if c["op"] in ("<", "<=", ">", ">=") and not (isinstance(value, (int, float)) and not isinstance(value, bool)
                                                      and math.isfinite(value)):
            raise SegmentError(f"Segment {name!r}: {c['op']} compares with a number.")
        checked.append({"column": c["column"], "op": c["op"], "value": value})
    return {"name": name, "conditions": checked}


ALL = "all rows"


def labels(planned: dict[str, Any]) -> list[tuple[str | None, str]]:
    """(column, label) of every segment in count order: all rows first, then each column's bins,
    then the defined segments (whose column is None)."""
    out = [(None, ALL)] + [(c["column"], label) for c in planned["columns"] for label in c["labels"]]
    return out + [(None, d["name"]) for d in planned["defined"]]


def columns_needed(planned: dict[str, Any]) -> list[str]:
    names = [c["column"] for c in planned["columns"]]
    for d in planned["defined"]:
        names += [c["column"] for c in d["conditions"]]
    return list(dict.fromkeys(names))


# --- coding rows ---------------------------------------------------------------------------------

def codes(spec: dict[str, Any], column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Each row's bin in one column's plan: a value's index, then other, then missing."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    n = len(column)
    if spec["kind"] == "categorical":
        values = spec["values"]
        text = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
        found = pc.index_in(text, value_set=pc.cast(pa.array(values), pa.string()))
        out = found.fill_null(len(values)).to_numpy(zero_copy_only=False).astype(np.int16)
    else:
        x = column.to_numpy(zero_copy_only=False).astype(np.float64)
        out = np.searchsorted(np.asarray(spec["edges"]), x, side="right").astype(np.int16)
        missing = np.isnan(x)
        out[missing] = len(spec["edges"]) + 1
        return out
    out[~column.is_valid().to_numpy(zero_copy_only=False)] = len(values) + 1
    return out if n else np.zeros(0, dtype=np.int16)


def matches(segment: dict[str, Any], table: pa.Table) -> np.ndarray:
    """The rows of ``table`` where every condition of a user-defined segment holds."""
    mask = np.ones(table.num_rows, dtype=bool)
    for c in segment["conditions"]:
        column = table.column(c["column"]).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        value = c["value"]
        try:
            if c["op"] == "in":
                values = [v for v in value]
                held = pc.is_in(pc.cast(column, pa.string()), value_set=pc.cast(pa.array(values), pa.string()))
            elif c["op"] in ("==", "!="):
                held = pc.equal(pc.cast(column, pa.string()), pa.scalar(str(value) if not isinstance(value, bool)
                                                                        else str(value).lower()))
                held = pc.invert(held) if c["op"] == "!=" else held
            else:
                compare = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal}[c["op"]]
                held = compare(pc.cast(column, pa.float64()), pa.scalar(float(value)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise SegmentError(f"Segment {segment['name']!r}: column {c['column']!r} cannot be compared with "
                               f"{str(value)[:40]!r}.") from None
        mask &= held.fill_null(False).to_numpy(zero_copy_only=False)
    return mask


# --- counting ------------------------------------------------------------------------------------

@dataclass
class Counts:
    """Per segment (rows of ``counts``): ``CLASSIFIER_FIELDS`` or ``REGRESSOR_FIELDS``; ``even``: the
    same of the rows with an even row number (the half that chooses the pairs the weak-segment
    finder tests on the other half); for a binary classifier ``hist[s, 0 | 1]``: its negatives'
    and positives' log-odds histograms."""

    counts: np.ndarray
    even: np.ndarray
    hist: np.ndarray | None = None

    def merge(self, other: "Counts") -> "Counts":
        hist = None if self.hist is None else self.hist + other.hist
        return Counts(self.counts + other.counts, self.even + other.even, hist)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        arrays = {"counts": self.counts, "even": self.even}
        if self.hist is not None:
            arrays["hist"] = self.hist
        np.savez_compressed(buffer, **arrays)
        return buffer.getvalue()

    @staticmethod
    def from_bytes(data: bytes) -> "Counts":
        with np.load(io.BytesIO(data), allow_pickle=False) as loaded:
            return Counts(loaded["counts"], loaded["even"], loaded["hist"] if "hist" in loaded.files else None)


def segment_index(planned: dict[str, Any], table: pa.Table) -> list[tuple[np.ndarray, int]]:
    """(each row's segment number, or -1 for none) per column plan and per defined segment."""
    found, offset = [(np.zeros(table.num_rows, dtype=np.int32), 0)], 1
    for spec in planned["columns"]:
        found.append((codes(spec, table.column(spec["column"])).astype(np.int32) + offset, offset))
        offset += len(spec["labels"])
    for segment in planned["defined"]:
        found.append((np.where(matches(segment, table), offset, -1).astype(np.int32), offset))
        offset += 1
    return found


def count(planned: dict[str, Any], table: pa.Table, kind: str, *, y_true: np.ndarray | None,
          y_pred: np.ndarray, classes: Sequence[Any] | None = None, score: np.ndarray | None = None,
          threshold: float | None = None, start_row: int = 0) -> Counts:
    """One chunk's counts. ``table`` holds the plan's columns for the chunk's rows, the first of
    which is row ``start_row`` of the dataset; ``score``: a binary classifier's probability of
    its positive class (``classes[1]``)."""
    n_segments = len(labels(planned))
    rows = segment_index(planned, table)
    even = (np.arange(start_row, start_row + table.num_rows) % 2 == 0)
    if kind == "classifier":
        return _count_classifier(rows, n_segments, y_true, y_pred, classes or [], score, threshold, even)
    return _count_regressor(rows, n_segments, y_true, y_pred, even)


def _count_classifier(rows, n_segments, y_true, y_pred, classes, score, threshold, even=None) -> Counts:
    index = pd.Index(list(classes), dtype=object)
    pred = index.get_indexer(pd.Index(np.asarray(y_pred, dtype=object)))
    n = len(pred)
    if y_true is not None:
        true_values = pd.Series(np.asarray(y_true, dtype=object))
        labelled = true_values.notna().to_numpy()
        true = index.get_indexer(pd.Index(true_values.to_numpy()))
    else:
        labelled, true = np.zeros(n, dtype=bool), np.full(n, -1)
    wrong = labelled & ((true != pred) | (true < 0))
    binary = len(classes) == 2 and score is not None
    # one cell per row: 0 unlabelled, 1 right, 2 wrong; binary: then tp, fp, fn, tn at the threshold
    cell = np.where(labelled, np.where(wrong, 2, 1), 0).astype(np.int32)
    if binary:
        decided = score >= (0.5 if threshold is None else threshold)
        positive = true == 1
        confusion = np.where(decided, np.where(positive, 0, 1), np.where(positive, 2, 3)) + 3
        known = labelled & (true >= 0)
        cells = np.stack([cell, np.where(known, confusion, -1)])
    else:
        cells = cell[None]
    counts = np.zeros((n_segments, len(CLASSIFIER_FIELDS)), dtype=np.int64)
    halves = np.zeros((n_segments, len(CLASSIFIER_FIELDS)), dtype=np.int64)
    parity = np.zeros(n, dtype=np.int64) if even is None else even.astype(np.int64)
    hist = np.zeros((n_segments, 2, BINS), dtype=np.int32) if binary else None
    if binary:
        with np.errstate(divide="ignore"):
            logit = np.log(score) - np.log1p(-score)
        bins = np.clip(((logit + LOGIT_RANGE) / (2 * LOGIT_RANGE) * BINS).astype(np.int64), 0, BINS - 1)
        scored = labelled & (true >= 0)
        hist_cell = np.where(scored, (true == 1).astype(np.int64) * BINS + bins, -1)
    for segment, _offset in rows:
        keep = segment >= 0
        s = segment[keep].astype(np.int64)
        both = np.bincount((s * 3 + cells[0][keep]) * 2 + parity[keep], minlength=n_segments * 6).reshape(-1, 3, 2)
        counts[:, 0] += both.sum(axis=(1, 2))
        counts[:, 1:3] += both[:, 1:, :].sum(axis=2)
        halves[:, 0] += both[:, :, 1].sum(axis=1)
        halves[:, 1:3] += both[:, 1:, 1]
        if binary:
            known = cells[1][keep]
            ok = known >= 0
            counts[:, 3:] += np.bincount(s[ok] * 4 + known[ok] - 3, minlength=n_segments * 4).reshape(-1, 4)
            h = hist_cell[keep]
            ok = h >= 0
            hist += np.bincount(s[ok] * 2 * BINS + h[ok], minlength=n_segments * 2 * BINS).reshape(-1, 2, BINS)
    counts[:, 1] += counts[:, 2]  # labelled = right + wrong
    halves[:, 1] += halves[:, 2]
    return Counts(counts, halves, hist)


def _count_regressor(rows, n_segments, y_true, y_pred, even=None) -> Counts:
    pred = np.asarray(y_pred, dtype=np.float64)
    true = np.full(len(pred), np.nan) if y_true is None else pd.to_numeric(
        pd.Series(y_true), errors="coerce").to_numpy(dtype=np.float64)
    labelled = np.isfinite(true) & np.isfinite(pred)
    error = np.where(labelled, pred - true, 0.0)
    both = np.zeros((n_segments * 2, len(REGRESSOR_FIELDS)), dtype=np.float64)
    parity = np.zeros(len(pred), dtype=np.int64) if even is None else even.astype(np.int64)
    for segment, _offset in rows:
        keep = segment >= 0
        s = segment[keep].astype(np.int64) * 2 + parity[keep]
        e = error[keep]
        size = n_segments * 2
        both[:, 0] += np.bincount(s, minlength=size)
        both[:, 1] += np.bincount(s, weights=labelled[keep], minlength=size)
        both[:, 2] += np.bincount(s, weights=e, minlength=size)
        both[:, 3] += np.bincount(s, weights=np.abs(e), minlength=size)
        both[:, 4] += np.bincount(s, weights=e * e, minlength=size)
    both = both.reshape(n_segments, 2, -1)
    return Counts(both.sum(axis=1), both[:, 1].copy())


# --- the table -----------------------------------------------------------------------------------

def wilson(k: float, n: float) -> tuple[float | None, float | None]:
    if n <= 0:
        return None, None
    p = k / n
    denominator = 1 + Z95 ** 2 / n
    centre = (p + Z95 ** 2 / (2 * n)) / denominator
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def auc_from(hist: np.ndarray) -> float | None:
    """ROC AUC from a (2, BINS) histogram (negatives, positives)."""
    neg, pos = hist[0].astype(np.float64), hist[1].astype(np.float64)
    n_neg, n_pos = neg.sum(), pos.sum()
    if n_neg == 0 or n_pos == 0:
        return None
    below = np.cumsum(neg) - neg
    return float(((pos * below).sum() + 0.5 * (pos * neg).sum()) / (n_pos * n_neg))


def count_pairs(planned: dict[str, Any], chosen: Sequence[tuple[int, int]], table: pa.Table, kind: str, *,
                y_true: np.ndarray | None, y_pred: np.ndarray, classes: Sequence[Any] | None = None,
                start_row: int = 0) -> dict[tuple[int, int], Counts]:
    """One chunk's counts of the rows in both segments of each pair (segment numbers as in
    ``labels``; each of a column's bins), of all rows and (``even``) of the even-numbered ones,
    without confusion counts or histograms."""
    even = (np.arange(start_row, start_row + table.num_rows) % 2 == 0)
    if not chosen:
        return {}
    needed = {s for pair in chosen for s in pair}
    where: dict[int, np.ndarray] = {}
    offset = 1
    for spec in planned["columns"]:
        width = len(spec["labels"])
        if any(offset <= s < offset + width for s in needed):
            coded = codes(spec, table.column(spec["column"])).astype(np.int32) + offset
            for s in needed:
                if offset <= s < offset + width:
                    where[s] = coded == s
        offset += width
    out = {}
    for a, b in chosen:
        inside = [(np.where(where[a] & where[b], 0, -1).astype(np.int32), 0)]
        if kind == "classifier":
            out[(a, b)] = _count_classifier(inside, 1, y_true, y_pred, classes or [], None, None, even)
        else:
            out[(a, b)] = _count_regressor(inside, 1, y_true, y_pred, even)
    return out


JOINT_COLUMNS = 6  # categorical columns whose pairs get joint confusion counts (intersectional fairness)


def joint_pairs(planned: dict[str, Any]) -> list[tuple[int, int]]:
    """Pairs of column plans (indices into ``planned["columns"]``) counted jointly: among the first
    ``JOINT_COLUMNS`` categorical ones."""
    chosen = [i for i, c in enumerate(planned["columns"]) if c["kind"] == "categorical"][:JOINT_COLUMNS]
    return [(a, b) for k, a in enumerate(chosen) for b in chosen[k + 1:]]


def count_joint(planned: dict[str, Any], chosen: Sequence[tuple[int, int]], table: pa.Table, *,
                y_true: np.ndarray, y_pred: np.ndarray, classes: Sequence[Any], score: np.ndarray,
                threshold: float | None) -> dict[tuple[int, int], np.ndarray]:
    """A binary classifier's confusion counts (tp, fp, fn, tn) per cell of each pair of columns:
    ``[len(a's labels) * len(b's labels), 4]``, cell ``i * len(b's labels) + j``."""
    out = {}
    coded = {}
    for a, b in chosen:
        for i in (a, b):
            if i not in coded:
                spec = planned["columns"][i]
                coded[i] = codes(spec, table.column(spec["column"])).astype(np.int32)
        width = len(planned["columns"][b]["labels"])
        cells = len(planned["columns"][a]["labels"]) * width
        found = _count_classifier([(coded[a] * width + coded[b], 0)], cells, y_true, y_pred, classes, score, threshold)
        out[(a, b)] = found.counts[:, 3:7]
    return out
