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

import json
import math
import struct
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

TOP = 8            # categories of a column shown by name (the rest are "other")
QUANTILES = 5      # bins of a numeric column
MAX_COLUMNS = 16   # columns segmented, the model's inputs first (bench/segments.py: each costs ~1 % of a chunk)
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
    kinds = {c["name"]: c.get("kind") for c in columns if isinstance(c, dict)}
    return {"columns": planned, "defined": [check_defined(d, kinds) for d in defined][:MAX_SEGMENTS_DEFINED]}


def _column_plan(info: dict[str, Any]) -> dict[str, Any] | None:
    ranked = sorted(info.get("top_values") or [], key=lambda v: -(v.get("count") or 0))  # numbers come by value
    top = [v["value"] for v in ranked if v.get("value") is not None]
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


def check_defined(segment: dict[str, Any], names: dict[str, Any] | set[str]) -> dict[str, Any]:
    """A user-defined segment, checked: a name and 1 to 4 conditions on the dataset's columns
    (``names``: the columns, or column -> kind; a comparison of order needs a numeric column)."""
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
        if c["op"] in ("<", "<=", ">", ">=") and isinstance(names, dict) and names.get(c["column"]) not in (
                "numeric", None):
            raise SegmentError(f"Segment {name!r}: {c['column']!r} holds {names[c['column']]} values, which {c['op']} "
                               "cannot compare; use == or in.")
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
        textual = pa.types.is_string(column.type) or pa.types.is_large_string(column.type)
        text = column if textual else pc.cast(column, pa.string())
        found = pc.index_in(text, value_set=pc.cast(pc.cast(pa.array(values), pa.string()), text.type))
        out = found.fill_null(len(values)).to_numpy(zero_copy_only=False).astype(np.int32)
    else:
        x = column.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)
        out = np.zeros(n, dtype=np.int32)
        for edge in spec["edges"]:  # a few edges: counting comparisons beats searchsorted's branches (~15x)
            out += x >= edge
        out[np.isnan(x)] = len(spec["edges"]) + 1
        return out
    out[~column.is_valid().to_numpy(zero_copy_only=False)] = len(values) + 1
    return out if n else np.zeros(0, dtype=np.int32)


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
                values = [str(v).lower() if isinstance(v, bool) else str(v) for v in value]
                held = pc.is_in(pc.cast(column, pa.string()), value_set=pa.array(values, type=pa.string()))
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
    finder tests on the other half; confusion counts left at 0); for a binary classifier
    ``hist[s, 0 | 1]``: its negatives' and positives' log-odds histograms."""

    counts: np.ndarray
    even: np.ndarray
    hist: np.ndarray | None = None
    joint: np.ndarray | None = None  # binary: confusion counts per cell of ``joint_pairs`` (``count_joint``)

    def merge(self, other: "Counts") -> "Counts":
        hist = None if self.hist is None else self.hist + other.hist
        joint = None if self.joint is None else self.joint + other.joint
        return Counts(self.counts + other.counts, self.even + other.even, hist, joint)

    def to_bytes(self) -> bytes:
        """A small header (names, types, shapes) and the arrays, LZ4-compressed (pyarrow's codec: the
        histograms are mostly zeros; zlib took 12 ms a chunk, LZ4 about 1). Histograms of a chunk
        whose bins all hold fewer than 65,536 rows travel as uint16."""
        hist = self.hist
        if hist is not None and (not hist.size or hist.max() < 65536):
            hist = hist.astype(np.uint16)
        arrays = [("counts", self.counts), ("even", self.even)] + [
            (name, a) for name, a in (("hist", hist), ("joint", self.joint)) if a is not None]
        header = json.dumps([[name, str(a.dtype), list(a.shape)] for name, a in arrays]).encode()
        body = b"".join(np.ascontiguousarray(a).tobytes() for _, a in arrays)
        return struct.pack("<II", len(header), len(body)) + header + pa.compress(body, codec="lz4", asbytes=True)

    @staticmethod
    def from_bytes(data: bytes) -> "Counts":
        size, length = struct.unpack_from("<II", data)
        header = json.loads(data[8:8 + size])
        body = pa.decompress(data[8 + size:], decompressed_size=length, codec="lz4", asbytes=True)
        found, at = {}, 0
        for name, dtype, shape in header:
            if dtype not in ("int64", "int32", "uint16", "float64") or name not in ("counts", "even", "hist", "joint"):
                raise ValueError("not segment counts")
            count = int(np.prod(shape))
            found[name] = np.frombuffer(body, dtype=dtype, count=count, offset=at).reshape(shape)
            at += count * np.dtype(dtype).itemsize
        hist = found.get("hist")
        return Counts(found["counts"].copy(), found["even"].copy(),
                      None if hist is None else hist.astype(np.int32),
                      None if found.get("joint") is None else found["joint"].copy())


def ways(planned: dict[str, Any], table: pa.Table) -> list[tuple[np.ndarray, int, int, bool]]:
    """The ways the plan cuts a chunk's rows, each as (each row's bin, number of bins, the first
    bin's segment number, whether only the last bin is a segment): all rows (one bin), each
    column's bins, and each defined segment (out or in: only "in" is a segment)."""
    found = [(np.zeros(table.num_rows, dtype=np.int32), 1, 0, False)]
    offset = 1
    for spec in planned["columns"]:
        found.append((codes(spec, table.column(spec["column"])), len(spec["labels"]), offset, False))
        offset += len(spec["labels"])
    for segment in planned["defined"]:
        found.append((matches(segment, table).astype(np.int32), 2, offset - 1, True))
        offset += 1
    return found


@dataclass
class _Rows:
    """What each row of a chunk contributes, worked out once for all its segments."""

    kind: str
    parity: np.ndarray                 # 1 for an even row number
    cell: np.ndarray                   # classifier: 0 unlabelled, 1 right, 2 wrong; regressor: 1 labelled
    confusion: np.ndarray | None = None  # binary: 0 tp, 1 fp, 2 fn, 3 tn at the threshold; -1 unlabelled
    hist: np.ndarray | None = None     # binary: class * BINS + log-odds bin; -1 unlabelled
    error: np.ndarray | None = None    # regressor: prediction - target (0 unlabelled)


def _index(classes: Sequence[Any]) -> pd.Index:
    return pd.Index(list(classes)) if all(isinstance(c, (int, float, np.number)) and not isinstance(c, bool)
                                          for c in classes) else pd.Index(list(classes), dtype=object)


def _class_codes(classes: Sequence[Any], values: Any) -> np.ndarray:
    """Each value's position in ``classes`` (-1: none of them). Integer labels 0..k-1 (the usual
    case) are their own positions; anything else goes through a pandas index."""
    array = np.asarray(values)
    if array.dtype.kind in "iu" and list(classes) == list(range(len(classes))):
        return np.where((array >= 0) & (array < len(classes)), array, -1).astype(np.int64)
    return _index(classes).get_indexer(pd.Index(array))


def _rows_of(kind: str, y_true, y_pred, classes, score, threshold, start_row: int) -> _Rows:
    n = len(y_pred)
    parity = (np.arange(start_row, start_row + n) % 2 == 0).astype(np.int64)
    if kind != "classifier":
        pred = np.asarray(y_pred, dtype=np.float64)
        true = np.full(n, np.nan) if y_true is None else pd.to_numeric(
            pd.Series(y_true), errors="coerce").to_numpy(dtype=np.float64)
        labelled = np.isfinite(true) & np.isfinite(pred)
        return _Rows(kind, parity, labelled.astype(np.int64), error=np.where(labelled, pred - true, 0.0))
    pred = _class_codes(classes, y_pred)
    if y_true is not None:
        labelled = ~pd.isna(y_true)
        true = _class_codes(classes, y_true)
    else:
        labelled, true = np.zeros(n, dtype=bool), np.full(n, -1)
    wrong = labelled & ((true != pred) | (true < 0))
    rows = _Rows(kind, parity, np.where(labelled, np.where(wrong, 2, 1), 0).astype(np.int64))
    if len(classes) == 2 and score is not None:
        known = labelled & (true >= 0)
        decided = score >= (0.5 if threshold is None else threshold)
        positive = true == 1
        rows.confusion = np.where(known, np.where(decided, np.where(positive, 0, 1), np.where(positive, 2, 3)), -1)
        with np.errstate(divide="ignore", invalid="ignore"):
            logit = np.log(score) - np.log1p(-score)
        # a probability of exactly 0 or 1 (a forest's) is an infinite log-odds: the end bins, never a cast of inf
        logit = np.clip(np.nan_to_num(logit, nan=0.0, posinf=LOGIT_RANGE, neginf=-LOGIT_RANGE),
                        -LOGIT_RANGE, LOGIT_RANGE)
        bins = np.minimum(((logit + LOGIT_RANGE) / (2 * LOGIT_RANGE) * BINS).astype(np.int64), BINS - 1)
        rows.hist = np.where(known, positive.astype(np.int64) * BINS + bins, -1)
    return rows


def _accumulate(cut: list[tuple[np.ndarray, int, int, bool]], n_segments: int, rows: _Rows,
                with_hist: bool = True) -> Counts:
    """The counts of segments ``0..n_segments-1`` from ``cut`` (``ways``' form). Each way costs a
    few bincounts over the chunk's rows of a code per row that holds everything the row adds
    (a classifier's: right or wrong, and which half; its confusion cell; its histogram bin)."""
    classifier = rows.kind == "classifier"
    fields = CLASSIFIER_FIELDS if classifier else REGRESSOR_FIELDS
    counts = np.zeros((n_segments, len(fields)), dtype=np.int64 if classifier else np.float64)
    halves = np.zeros_like(counts)
    binary = classifier and rows.confusion is not None
    hist = np.zeros((n_segments, 2, BINS), dtype=np.int32) if binary and with_hist else None
    if classifier:
        # one code per row for one bincount: (right or wrong) x half x (confusion cell, or none)
        code = (rows.cell * 2 + rows.parity) * 5 + (rows.confusion + 1 if binary else 0)  # 0..29
        binned = rows.hist + 1 if hist is not None else None
    else:
        at_half = rows.parity
        weights = (rows.cell.astype(np.float64), rows.error, np.abs(rows.error), rows.error * rows.error)
    for local, width, offset, only_last in cut:
        keep = slice(1, None) if only_last else slice(None)
        target = slice(offset + (1 if only_last else 0), offset + width)
        if classifier:
            found = np.bincount(local * 30 + code, minlength=width * 30).reshape(width, 3, 2, 5)[keep]
            cells = found.sum(axis=3)
            counts[target, 0] = cells.sum(axis=(1, 2))
            counts[target, 1] = cells[:, 1:].sum(axis=(1, 2))
            counts[target, 2] = cells[:, 2].sum(axis=1)
            halves[target, 0] = cells[:, :, 1].sum(axis=1)
            halves[target, 1] = cells[:, 1:, 1].sum(axis=1)
            halves[target, 2] = cells[:, 2, 1]
            if binary:
                counts[target, 3:] = found.sum(axis=(1, 2))[:, 1:]
                if hist is not None:
                    hist[target] = np.bincount(local * (2 * BINS + 1) + binned, minlength=width * (2 * BINS + 1)) \
                        .reshape(width, 2 * BINS + 1)[keep, 1:].reshape(-1, 2, BINS)
        else:
            index = local * 2 + at_half
            both = np.empty((width * 2, len(fields)))
            both[:, 0] = np.bincount(index, minlength=width * 2)
            for k, w in enumerate(weights, start=1):
                both[:, k] = np.bincount(index, weights=w, minlength=width * 2)
            both = both.reshape(width, 2, -1)[keep]
            counts[target] = both.sum(axis=1)
            halves[target] = both[:, 1]
    return Counts(counts, halves, hist)


def count(planned: dict[str, Any], table: pa.Table, kind: str, *, y_true: np.ndarray | None,
          y_pred: np.ndarray, classes: Sequence[Any] | None = None, score: np.ndarray | None = None,
          threshold: float | None = None, start_row: int = 0) -> Counts:
    """One chunk's counts. ``table`` holds the plan's columns for the chunk's rows, the first of
    which is row ``start_row`` of the dataset; ``score``: a binary classifier's probability of
    its positive class (``classes[1]``)."""
    rows = _rows_of(kind, y_true, y_pred, classes or [], score, threshold, start_row)
    cut = ways(planned, table)
    found = _accumulate(cut, len(labels(planned)), rows)
    if rows.confusion is not None:  # a binary classifier: its intersections too, from the same codes
        found.joint = _joint(planned, joint_pairs(planned), {i: cut[1 + i][0] for i in range(len(planned["columns"]))},
                             rows)
    return found


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
    without confusion counts or histograms; under ``None``, the chunk's own totals (the pairs may
    be counted on some chunks only)."""
    if not chosen:
        return {}
    coded = _coded(planned, table, {s for pair in chosen for s in pair})
    cut = [(np.zeros(table.num_rows, dtype=np.int64), 1, 0, False)]  # under None: all the rows counted
    cut += [((coded[a] & coded[b]).astype(np.int64), 2, k, True) for k, (a, b) in enumerate(chosen)]
    rows = _rows_of(kind, y_true, y_pred, classes or [], None, None, start_row)
    found = _accumulate(cut, len(chosen) + 1, rows, with_hist=False)
    out: dict[Any, Counts] = {None: Counts(found.counts[:1], found.even[:1])}
    out.update({pair: Counts(found.counts[k + 1:k + 2], found.even[k + 1:k + 2]) for k, pair in enumerate(chosen)})
    return out


def _coded(planned: dict[str, Any], table: pa.Table, segments: set[int]) -> dict[int, np.ndarray]:
    """For each segment number asked (a column's bin), whether each row is in it."""
    where: dict[int, np.ndarray] = {}
    offset = 1
    for spec in planned["columns"]:
        width = len(spec["labels"])
        inside = [s for s in segments if offset <= s < offset + width]
        if inside:
            column = codes(spec, table.column(spec["column"])).astype(np.int32) + offset
            for s in inside:
                where[s] = column == s
        offset += width
    return where


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
    coded = {i: codes(planned["columns"][i], table.column(planned["columns"][i]["column"])).astype(np.int64)
             for i in {i for pair in chosen for i in pair}}
    joint = _joint(planned, chosen, coded, _rows_of("classifier", y_true, y_pred, classes, score, threshold, 0))
    out, offset = {}, 0
    for a, b in chosen:
        size = len(planned["columns"][a]["labels"]) * len(planned["columns"][b]["labels"])
        out[(a, b)] = joint[offset:offset + size]
        offset += size
    return out


def _joint(planned: dict[str, Any], chosen: Sequence[tuple[int, int]], coded: dict[int, np.ndarray],
           rows: _Rows) -> np.ndarray:
    """Confusion counts (tp, fp, fn, tn) per cell of each pair of columns, the pairs' cells one
    after another (``joint_cells`` names them)."""
    cut, offset = [], 0
    for a, b in chosen:
        width = len(planned["columns"][b]["labels"])
        cells = len(planned["columns"][a]["labels"]) * width
        cut.append((coded[a] * width + coded[b], cells, offset, False))
        offset += cells
    return _accumulate(cut, offset, rows, with_hist=False).counts[:, 3:7] if cut else np.zeros((0, 4), dtype=np.int64)


def joint_cells(planned: dict[str, Any], joint: np.ndarray) -> list[dict[str, Any]]:
    """The joint counts per pair of columns: columns, each cell's two labels and confusion counts
    (the cells with rows only)."""
    out, offset = [], 0
    for a, b in joint_pairs(planned):
        first, second = planned["columns"][a], planned["columns"][b]
        size = len(first["labels"]) * len(second["labels"])
        block = joint[offset:offset + size]
        offset += size
        kept = np.flatnonzero(block.sum(axis=1))
        names = [[x, y] for x in first["labels"] for y in second["labels"]]
        out.append({"columns": [first["column"], second["column"]], "labels": [names[k] for k in kept],
                    "confusion": block[kept].astype(int).tolist()})
    return out
