"""The columns a classification summary reads, and the compact codes of their labels.

``ClassifierColumns`` is what ``classification_summary`` reads (``_ArrayColumns`` wraps the public
functions' in-memory arguments); ``_LabelCoder`` turns target and predicted labels into 1-byte
codes block by block, unknown labels after the model's classes.
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple, Protocol

import numpy as np
import pandas as pd

from . import base
from .base import MAX_UNKNOWN_LABELS, _int_type, _label


# ----------------------------------------------------------------------- encoding


class ClassifierColumns(Protocol):
    """The columns of a scored classification dataset, as ``classification_summary`` reads them.

    ``blocks()`` yields ``(y_true, y_pred, proba)`` for consecutive row ranges in row order,
    each a 1-D array (``proba``: a C-contiguous float64 ``(rows, n_classes)`` array), or None
    for a column the dataset does not have (``y_pred`` None: argmax of ``proba``).
    ``proba_column(c, rows)`` returns a new, writable, contiguous float64 array with column
    ``c`` of the probabilities at the rows where the boolean mask ``rows`` (over all ``n``
    rows) is true, or of every row when ``rows`` is None; the caller may overwrite it."""

    n: int
    has_target: bool
    has_proba: bool

    def blocks(self) -> Iterator[tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]]: ...

    def proba_column(self, c: int, rows: np.ndarray | None) -> np.ndarray: ...


def _column(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    return arr


def _text_as_object(arr: np.ndarray) -> np.ndarray:
    return arr.astype(object) if arr.dtype.kind in "US" else arr  # pandas factorizes object arrays much faster


def _classes_array(classes) -> np.ndarray:
    classes_arr = np.asarray(classes)
    if classes_arr.ndim != 1 or len(classes_arr) == 0:
        raise ValueError("classes must be a non-empty 1-D sequence")
    if not pd.Index(classes_arr, dtype=object).is_unique:
        raise ValueError("classes must be unique")
    return classes_arr


class _ArrayColumns:
    """``ClassifierColumns`` over in-memory arrays (the public functions' arguments)."""

    def __init__(self, y_true, y_pred, proba, classes_arr: np.ndarray):
        k = len(classes_arr)
        yt = None if y_true is None else _column(y_true, "y_true")
        yp = None if y_pred is None else _column(y_pred, "y_pred")
        pr = None
        if proba is not None:
            pr = np.asarray(proba, dtype=np.float64)
            if pr.ndim == 1 and k == 2:
                pr = np.column_stack([1.0 - pr, pr])
            if pr.ndim != 2 or pr.shape[1] != k:
                raise ValueError(f"proba must have shape (n, {k}), got {pr.shape}")
            if not all(np.isfinite(pr[a:b]).all() for a, b in base._blocks(len(pr))):
                raise ValueError("proba contains NaN or infinite values")
        lengths = {len(a) for a in (yt, yp, pr) if a is not None}
        if len(lengths) > 1:
            raise ValueError(f"y_true, y_pred and proba have different lengths: {sorted(lengths)}")
        if yp is None and pr is None:
            raise ValueError("need y_pred or proba")
        self.yt, self.yp, self.pr = yt, yp, pr
        self.n = lengths.pop()
        self.has_target = yt is not None
        self.has_proba = pr is not None

    def blocks(self):
        for a, b in base._blocks(self.n):
            yield (None if self.yt is None else self.yt[a:b], None if self.yp is None else self.yp[a:b],
                   None if self.pr is None else self.pr[a:b])

    def proba_column(self, c: int, rows: np.ndarray | None) -> np.ndarray:
        return self.pr[:, c].copy() if rows is None else self.pr[rows, c]


class _Encoded(NamedTuple):
    labels: list              # JSON labels: the model's classes, then unknown labels
    k: int                    # number of model classes
    true: np.ndarray | None   # compact int codes into labels, rows with a target
    pred: np.ndarray          # compact int codes into labels, the same rows
    present: np.ndarray | None  # bool mask over all rows: the rows with a target (None: all)
    n_missing: int            # rows dropped because the target is missing


class _LabelCoder:
    """Codes of target and predicted labels, filled block by block.

    The result is what factorizing the whole columns gives: unknown target labels get
    codes after the model's classes in order of first appearance, then unknown predicted
    labels not already among them, then ``None`` when a prediction is missing.  While the
    blocks come in, the prediction's unknown labels have temporary codes above
    ``pred_base`` (the target's unknown labels may still grow); ``finish`` renumbers."""

    def __init__(self, classes_arr: np.ndarray, n: int, with_target: bool):
        self.index = pd.Index(classes_arr, dtype=object)
        self.classes_arr = classes_arr
        self.k = k = len(classes_arr)
        self.pred_base = k + MAX_UNKNOWN_LABELS + 1
        self.missing_code = self.pred_base + MAX_UNKNOWN_LABELS + 1
        work = _int_type(self.missing_code)
        self.true = np.empty(n, dtype=work) if with_target else None
        self.pred = np.empty(n, dtype=work)
        self.n = n
        self.present: np.ndarray | None = None
        self.row = 0   # rows seen
        self.pos = 0   # rows kept (with a target)
        self.true_extras: list = []
        self.true_index: dict = {}
        self.pred_unknown: list = []
        self.pred_index: dict = {}
        self.pred_missing = False

    def _codes(self, values: np.ndarray, extras: list, extra_index: dict, base: int,
               others: int) -> tuple[np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(_text_as_object(values))  # missing values -> -1
        mapping = self.index.get_indexer(pd.Index(uniques, dtype=object))
        unknown = np.flatnonzero(mapping < 0)
        if others + len(extras) + len(unknown) > MAX_UNKNOWN_LABELS:
            new = [uniques[i] for i in unknown if uniques[i] not in extra_index]
            if others + len(extras) + len(new) > MAX_UNKNOWN_LABELS:
                raise ValueError(f"more than {MAX_UNKNOWN_LABELS} distinct labels are not among the model's classes "
                                 f"(e.g. {(extras + new)[:5]}); is this the right target column?")
        for i in unknown:
            key = uniques[i]
            if key not in extra_index:
                extra_index[key] = base + len(extras)
                extras.append(key)
            mapping[i] = extra_index[key]
        missing = codes < 0
        mapping = mapping.astype(self.pred.dtype)
        if not len(mapping):
            out = np.zeros(len(codes), dtype=mapping.dtype)
        elif missing.any():
            out = mapping[np.where(missing, 0, codes)]
        else:
            out = mapping[codes]
        return out, missing

    def add(self, yt: np.ndarray | None, yp: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Code one block; returns (mask of the block's rows with a target or None for all,
        the target codes of those rows or None)."""
        keep, true = None, None
        rows = len(yp)
        if yt is not None:
            true, missing = self._codes(yt, self.true_extras, self.true_index, self.k, 0)
            if missing.any():
                keep = ~missing
                if self.present is None:
                    self.present = np.ones(self.n, dtype=bool)
                self.present[self.row:self.row + rows] = keep
                true, yp = true[keep], yp[keep]
            self.true[self.pos:self.pos + len(true)] = true
        pred, pred_missing = self._codes(yp, self.pred_unknown, self.pred_index, self.pred_base,
                                         len(self.true_extras))
        if pred_missing.any():  # a missing prediction is its own (unknown) label
            self.pred_missing = True
            pred[pred_missing] = self.missing_code
        self.pred[self.pos:self.pos + len(pred)] = pred
        self.pos += len(pred)
        self.row += rows
        return keep, true

    def finish(self) -> _Encoded:
        k = self.k
        extras = list(self.true_extras)
        lut = None
        if self.pred_unknown or self.pred_missing:
            final = dict(self.true_index)
            lut = np.arange(self.missing_code + 1, dtype=np.int64)
            for j, key in enumerate(self.pred_unknown):
                if key not in final:
                    final[key] = k + len(extras)
                    extras.append(key)
                lut[self.pred_base + j] = final[key]
            if self.pred_missing:
                lut[self.missing_code] = k + len(extras)
                extras.append(None)
        labels = [_label(c) for c in self.classes_arr] + [_label(e) for e in extras]
        dtype = _int_type(len(labels))
        true = None if self.true is None else self.true[:self.pos].astype(dtype)
        pred = self.pred[:self.pos]
        pred = pred.astype(dtype) if lut is None else lut.astype(dtype)[pred]
        self.true = self.pred = None
        n_missing = 0 if self.present is None else self.n - int(np.count_nonzero(self.present))
        return _Encoded(labels, k, true, pred, self.present, n_missing)
