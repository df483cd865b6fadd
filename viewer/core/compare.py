"""Comparing scoring jobs over the same dataset, streamed chunk by chunk with bounded memory.

Two things need the rows themselves (everything else on the compare page comes from each job's
stored metrics and aggregates):

* a 95 % bootstrap confidence interval for the difference in a metric between two models, paired
  (every resample weights the same rows for every model);
* the rows where the models disagree most, and how often their predicted labels differ.

``Comparison`` is the accumulator: ``add(rows, target, outputs)`` takes one chunk of aligned rows
(any chunking; the result does not depend on it) and ``result()`` returns a small JSON-safe dict.
``compare_outputs`` streams the scoring jobs' output parts into it, aligned by row index.
``present`` turns a stored result into the view of one baseline job (differences vs it).

How each part stays bounded and chunking-independent
----------------------------------------------------
* Additive metrics (accuracy, log loss, MAE, RMSE = sqrt(mean squared error)) are ratios of sums.
  Every row is hashed by its row index (splitmix64, a bijection) into one of ``BUCKETS`` = 65,536
  buckets, and only per-bucket sums are kept (65,536 x a few numbers per model). At the end, each
  of ``RESAMPLES`` replicates gives every bucket a Poisson(1) weight (fixed seed): the replicate's
  metric is sum_g w_g S_g / sum_g w_g N_g. Because the buckets are random subsets of the rows
  (independent of their order in the file) they are exchangeable, and this bootstrap over buckets
  estimates the same sampling variance as the per-row Poisson bootstrap, while drawing 65,536 x 200
  weights instead of n x 200 (at 10M rows: 13M draws instead of 2 billion). With fewer rows than
  buckets nearly every row has a bucket of its own: the ordinary per-row Poisson bootstrap.
* ROC AUC is not additive. It is bootstrapped on a uniform random sample of at most
  ``AUC_SAMPLE`` rows: the rows with the smallest hashed keys (a bottom-k sketch, which is what
  reservoir sampling keeps, but mergeable and the same whatever the chunking). Each replicate gives
  each sampled row a Poisson(1) weight and computes the weighted AUC (ties count one half) from one
  sort per model, in O(sample) per replicate. With at most ``AUC_SAMPLE`` rows the sample is every
  row and the point estimate equals the job's exact AUC.
* The top-K rows are kept in a running list of K; a chunk only contributes rows that beat its
  worst entry. Ties are broken by the smaller row index, so the result equals sorting every row by
  (disagreement descending, row ascending) and taking the first K.

Disagreement measures (``disagreement["measure"]``)
---------------------------------------------------
* regression: max - min of the models' predictions;
* binary with probabilities: max - min of the models' probabilities of the positive class
  (``classes[1]``), which is also the spread of the probability of the true class;
* multiclass with probabilities and a target: max - min of the probabilities of the row's true
  class (rows without a known target label are left out of the ranking);
* multiclass with probabilities, no target: the largest max - min over the classes' probabilities;
* without probabilities (any model lacks them): 1 where the predicted labels differ, else 0.
With two models "max - min" is simply |a - b|.

Main metric (``main_metric``): ROC AUC for a binary task when every model has probabilities (it
is threshold-free and is what the overlaid ROC plot shows; accuracy depends on the 0.5 threshold),
else accuracy for classification and RMSE for regression. The result carries CIs for the others too.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .scoring import PREDICTION_COLUMN, ROW_COLUMN, TARGET_COLUMN, proba_column

__all__ = [
    "AUC_SAMPLE", "BUCKETS", "CONFIDENCE", "METRICS", "RESAMPLES", "TOP_K", "Cancelled", "ChunkOutput",
    "Comparison", "Source", "aligned_chunks", "compare_outputs", "main_metric", "present", "side_by_side",
    "weighted_auc",
]

VERSION = 1
RESAMPLES = 200
CONFIDENCE = 0.95
BUCKETS = 1 << 16
AUC_SAMPLE = 200_000
TOP_K = 50
SEED = 20240611
BATCH_ROWS = 1 << 16          # rows read from a part at a time
_BATCH = 25                   # replicates computed together (memory: batch x sample or buckets)
_LOG_EPS = float(np.finfo(np.float64).eps)

# metric -> (label, which direction is better). Shared by the side-by-side table and the CIs.
METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("Accuracy", "higher"), "balanced_accuracy": ("Balanced accuracy", "higher"),
    "f1_macro": ("F1 (macro)", "higher"), "precision_macro": ("Precision (macro)", "higher"),
    "recall_macro": ("Recall (macro)", "higher"), "roc_auc": ("ROC AUC", "higher"),
    "average_precision": ("Average precision", "higher"), "log_loss": ("Log loss", "lower"),
    "brier_score": ("Brier score", "lower"),
    "mae": ("MAE", "lower"), "rmse": ("RMSE", "lower"), "r2": ("R²", "higher"),
    "median_absolute_error": ("Median absolute error", "lower"), "mape": ("MAPE", "lower"),
    "mape_nonzero_target": ("MAPE (rows with y ≠ 0)", "lower"),
}
TASKS = ("binary", "multiclass", "regression")


# ------------------------------------------------------------------------------------- helpers


def _splitmix64(values: np.ndarray, salt: int) -> np.ndarray:
    """A bijective 64-bit mix of each value (row index) with ``salt``: uniform, reproducible keys."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) ^ np.uint64(salt)
        z = z + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


@functools.lru_cache(maxsize=1)
def _poisson_table() -> np.ndarray:
    """Poisson(1) by inversion of a uniform 16-bit integer: each value's probability is exact to
    1/65,536 (values of 9 and more, probability 1e-6 together, are never drawn)."""
    cdf, term, k = [], math.exp(-1.0), 0
    total = 0.0
    while k < 20:
        total += term
        cdf.append(total)
        k += 1
        term /= k
    return np.searchsorted(np.array(cdf) * 65536, np.arange(65536) + 0.5, side="left").astype(np.uint8)


def _poisson_weights(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Poisson(1) weights as uint8, about 20x faster than ``rng.poisson`` (a table lookup)."""
    return _poisson_table()[rng.integers(0, 65536, size=shape, dtype=np.uint16)]


def _json(value: Any) -> Any:
    """Plain JSON values: numpy scalars to Python, NaN/inf to None (labels are kept as they are)."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return [_json(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _label_codes(values: Any, index: pd.Index) -> np.ndarray:
    """Position of each value in ``index`` (the models' classes); -1 for a label not among them,
    -2 for a missing value (null or NaN). Each distinct value is hashed once (Arrow's dictionary
    encoding, or pandas' factorize for numpy input), so strings cost about what integers do."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        array = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        if not pa.types.is_dictionary(array.type):
            array = pc.dictionary_encode(array)
        uniques = array.dictionary.to_numpy(zero_copy_only=False)
        indices = pc.fill_null(array.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    else:
        indices, uniques = pd.factorize(np.asarray(values, dtype=object))  # None / NaN -> -1
    uniques = pd.Index(uniques, dtype=object)
    mapping = index.get_indexer(uniques) if len(uniques) else np.empty(0, np.intp)
    mapping = np.where(uniques.isna(), -2, mapping).astype(np.int64)
    out = np.full(len(indices), -2, dtype=np.int64)
    present = indices >= 0
    out[present] = mapping[indices[present]]
    return out


def _floats(values: Any) -> np.ndarray:
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        values = values.to_numpy(zero_copy_only=False)
    return np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=np.float64)


def weighted_auc(score: np.ndarray, positive: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray | float:
    """ROC AUC with row weights (ties count one half), equal to sklearn's ``roc_auc_score(...,
    sample_weight=w)``. ``weights`` may be (n,) or (replicates, n): one AUC per row of weights."""
    prepared = _AucRanking(np.asarray(score, dtype=np.float64), np.asarray(positive, dtype=bool))
    if weights is None:
        return float(prepared.auc(np.ones((1, len(prepared.order))))[0])
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 1:
        return float(prepared.auc(w[None, :])[0])
    return prepared.auc(w)


class _AucRanking:
    """One sort of the scores; weighted AUCs for many weight vectors in O(n) each."""

    def __init__(self, score: np.ndarray, positive: np.ndarray):
        order = np.argsort(score, kind="stable")
        self.order = order
        ordered = score[order]
        pos = positive[order]
        n = len(order)
        # tie groups: [start, end) in sorted order; each positive row needs its group's bounds
        starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]])) if n else np.empty(0, np.intp)
        group = np.cumsum(np.concatenate([[True], ordered[1:] != ordered[:-1]])) - 1 if n else np.empty(0, np.intp)
        ends = np.append(starts[1:], n)
        self.pos_rows = np.flatnonzero(pos)       # positions (in sorted order) of positive rows
        self.neg_mask = ~pos
        self.pos_start = starts[group[self.pos_rows]]
        self.pos_end = ends[group[self.pos_rows]]
        self.ties = len(starts) < n

    def auc(self, weights: np.ndarray) -> np.ndarray:
        """weights: (r, n) in the original row order; returns r AUCs (NaN when a class has no weight).

        AUC = sum over positives i of w_i (W_neg below i's score + W_neg tied with it / 2), over
        W_pos W_neg. Integer weights (the bootstrap's Poisson counts, uint8) stay integers: the
        gather moves one byte per weight and the sums are exact."""
        w = weights[:, self.order]
        n = w.shape[1]
        if w.dtype.kind in "ui":  # exact integer sums; int32 when they cannot overflow (3x faster)
            small = int(w.max(initial=0)) * (n + 1) * 2 < 2**31
            kind = np.int32 if small else np.int64
            neg = w * self.neg_mask.astype(w.dtype)
        else:
            kind = np.float64
            neg = w * self.neg_mask
        cum = np.zeros((w.shape[0], n + 1), dtype=kind)
        np.cumsum(neg, axis=1, dtype=kind, out=cum[:, 1:])
        wpos = w[:, self.pos_rows]
        if self.ties:
            below = cum[:, self.pos_start]
            twice = 2 * below + (cum[:, self.pos_end] - below)
        else:  # no ties: a positive row's group is itself, and it adds no negative weight
            twice = 2 * cum[:, self.pos_rows]
        total = np.int64 if kind != np.float64 else np.float64
        numerator = np.einsum("ij,ij->i", wpos, twice, dtype=total)
        denominator = 2 * wpos.sum(axis=1, dtype=total) * cum[:, -1].astype(total)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


def main_metric(task: str, has_target: bool, all_proba: bool) -> str | None:
    if not has_target:
        return None
    if task == "regression":
        return "rmse"
    if task == "binary" and all_proba:
        return "roc_auc"
    return "accuracy"


# ---------------------------------------------------------------------------------- accumulator


@dataclass
class ChunkOutput:
    """One model's columns for one chunk: the predictions and, for a classifier with
    ``predict_proba``, the (n, n_classes) probabilities in ``classes`` order."""

    prediction: Any
    proba: np.ndarray | None = None


@dataclass
class _TopRows:
    k: int
    columns: dict[str, np.ndarray] = field(default_factory=dict)

    def worst(self) -> float | None:
        if not self.columns or len(self.columns["score"]) < self.k:
            return None
        return float(self.columns["score"][-1])

    def offer(self, candidate: dict[str, np.ndarray]) -> None:
        if not len(candidate["score"]):
            return
        merged = candidate if not self.columns else {
            key: np.concatenate([self.columns[key], candidate[key]]) for key in candidate}
        order = np.lexsort((merged["row"], -merged["score"]))[: self.k]
        self.columns = {key: value[order] for key, value in merged.items()}


class Comparison:
    """Accumulates the comparison of ``n_models`` models, chunk by chunk.

    ``task`` is "binary", "multiclass" or "regression"; ``classes`` the models' shared classes
    (classifiers); ``has_proba[m]`` whether model m's chunks carry probabilities.
    """

    def __init__(self, task: str, n_models: int, *, classes: Sequence[Any] | None = None,
                 has_proba: Sequence[bool] | None = None, has_target: bool = True, top_k: int = TOP_K,
                 resamples: int = RESAMPLES, auc_sample: int = AUC_SAMPLE, buckets: int = BUCKETS,
                 seed: int = SEED):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}")
        if n_models < 2:
            raise ValueError("a comparison needs at least two models")
        if task != "regression" and (classes is None or len(classes) < 2):
            raise ValueError("classification needs the models' classes (at least two)")
        self.task, self.m, self.has_target = task, n_models, has_target
        self.classes = list(classes) if classes is not None else None
        self.index = pd.Index(self.classes, dtype=object) if self.classes is not None else None
        self.has_proba = list(has_proba) if has_proba is not None else [False] * n_models
        self.all_proba = task != "regression" and all(self.has_proba)
        self.top = _TopRows(top_k)
        self.resamples, self.auc_sample, self.buckets, self.seed = resamples, auc_sample, buckets, seed
        self.n_rows = 0
        self.main = main_metric(task, has_target, self.all_proba)
        # additive metrics: name -> (numerator sums (buckets, m), denominator sums (buckets, m))
        self.additive: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for name in self._additive_names():
            self.additive[name] = (np.zeros((buckets, self.m)), np.zeros((buckets, self.m)))
        # label agreement: pairs (i < j) -> counts
        self.n_label_differ = 0
        self.pair_differ = np.zeros((self.m, self.m), dtype=np.int64)
        self.pair_only_right = np.zeros((self.m, self.m), dtype=np.int64)  # [i, j]: i right, j wrong
        self.pair_abs_diff = np.zeros((self.m, self.m))                     # regression: sum |pred_i - pred_j|
        self.n_paired = 0
        # AUC sample (bottom-k by hashed key)
        self.sample: dict[str, np.ndarray] | None = None
        self.sample_seen = 0
        self.sample_pending: list[dict[str, np.ndarray]] = []
        self.sample_pending_rows = 0
        self.sample_threshold: np.uint64 | None = None
        if self.main == "roc_auc":
            self.sample = {"key": np.empty(0, np.uint64), "row": np.empty(0, np.int64),
                           "positive": np.empty(0, bool), "score": np.empty((0, self.m))}

    def _additive_names(self) -> list[str]:
        if not self.has_target:
            return []
        if self.task == "regression":
            return ["mae", "rmse"]
        return ["accuracy", "log_loss"] if self.all_proba else ["accuracy"]

    # --- one chunk

    def add(self, rows: Any, target: Any, outputs: Sequence[ChunkOutput]) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        n = len(rows)
        if len(outputs) != self.m:
            raise ValueError(f"expected {self.m} model outputs, got {len(outputs)}")
        if n == 0:
            return
        self.n_rows += n
        bucket = (_splitmix64(rows, self.seed) % np.uint64(self.buckets)).astype(np.intp)
        if self.task == "regression":
            self._add_regression(rows, bucket, target, outputs)
        else:
            self._add_classification(rows, bucket, target, outputs)

    def _accumulate(self, name: str, bucket: np.ndarray, values: np.ndarray, valid: np.ndarray) -> None:
        """Add per-row values (n, m) of the rows in ``valid`` to the bucket sums of metric ``name``."""
        num, den = self.additive[name]
        in_bucket = bucket[valid]
        den += np.bincount(in_bucket, minlength=self.buckets)[:, None]
        for j in range(self.m):
            num[:, j] += np.bincount(in_bucket, weights=values[valid, j], minlength=self.buckets)

    def _add_regression(self, rows, bucket, target, outputs) -> None:
        preds = np.column_stack([_floats(o.prediction) for o in outputs])
        finite = np.isfinite(preds).all(axis=1)
        y = _floats(target) if self.has_target and target is not None else None
        if y is not None:
            valid = finite & np.isfinite(y)
            err = y[:, None] - preds
            self._accumulate("mae", bucket, np.abs(err), valid)
            self._accumulate("rmse", bucket, err * err, valid)
        self.n_paired += int(finite.sum())
        for i in range(self.m):
            for j in range(i + 1, self.m):
                self.pair_abs_diff[i, j] += float(np.abs(preds[finite, i] - preds[finite, j]).sum())
        score = np.where(finite, preds.max(axis=1) - preds.min(axis=1), np.nan)
        self._offer(rows, score, {"prediction": preds, "target": y if y is not None else np.full(len(rows), np.nan)})

    def _add_classification(self, rows, bucket, target, outputs) -> None:
        n = len(rows)
        pred = np.column_stack([_label_codes(o.prediction, self.index) for o in outputs])
        differ = (pred != pred[:, :1]).any(axis=1)
        self.n_label_differ += int(differ.sum())
        for i in range(self.m):
            for j in range(i + 1, self.m):
                self.pair_differ[i, j] += int((pred[:, i] != pred[:, j]).sum())
        truth = _label_codes(target, self.index) if self.has_target and target is not None else np.full(n, -2)
        has_truth = truth > -2            # the target is present (a known or unknown label)
        known = truth >= 0                # ... and the model's classes include it
        proba = [o.proba for o in outputs] if self.all_proba else None
        if self.has_target:
            correct = (pred == truth[:, None]) & known[:, None]
            self._accumulate("accuracy", bucket, correct.astype(np.float64), has_truth)
            for i in range(self.m):
                for j in range(self.m):
                    if i != j:
                        self.pair_only_right[i, j] += int((correct[:, i] & ~correct[:, j] & has_truth).sum())
            if proba is not None:
                safe = np.where(known, truth, 0)
                p_true = np.column_stack([p[np.arange(n), safe] for p in proba])
                loss = -np.log(np.clip(p_true, _LOG_EPS, 1 - _LOG_EPS))
                self._accumulate("log_loss", bucket, np.where(known[:, None], loss, 0.0), known)
        # disagreement score
        p_show = None
        if proba is not None:
            if self.task == "binary":
                p_show = np.column_stack([p[:, 1] for p in proba])
                score = p_show.max(axis=1) - p_show.min(axis=1)
            elif self.has_target:
                safe = np.where(known, truth, 0)
                p_show = np.column_stack([p[np.arange(n), safe] for p in proba])
                score = np.where(known, p_show.max(axis=1) - p_show.min(axis=1), np.nan)
            else:
                stacked = np.stack(proba)                       # (m, n, k)
                spread = stacked.max(axis=0) - stacked.min(axis=0)
                best = spread.argmax(axis=1)
                score = spread[np.arange(n), best]
                p_show = stacked[:, np.arange(n), best].T
        else:
            score = differ.astype(np.float64)
        extra = {"prediction": pred, "target": truth, "differ": differ}
        if p_show is not None:
            extra["p"] = p_show
        self._offer(rows, score, extra)
        if self.sample is not None:
            self._sample(rows, truth, proba)

    def _offer(self, rows: np.ndarray, score: np.ndarray, extra: dict[str, np.ndarray]) -> None:
        keep = np.isfinite(score)
        worst = self.top.worst()
        if worst is not None:
            keep &= score >= worst  # a tie may still win on its smaller row index
        idx = np.flatnonzero(keep)
        if len(idx) > self.top.k:
            idx = idx[np.lexsort((rows[idx], -score[idx]))[: self.top.k]]
        self.top.offer({"row": rows[idx], "score": score[idx], **{key: v[idx] for key, v in extra.items()}})

    def _sample(self, rows: np.ndarray, truth: np.ndarray, proba: list[np.ndarray]) -> None:
        """Offer this chunk's rows (with a known target) to the bottom-k sample; candidates are
        buffered and merged when they reach half the sample, so a chunk costs O(its rows)."""
        ok = truth >= 0
        self.sample_seen += int(ok.sum())
        if not ok.any():
            return
        key = _splitmix64(rows[ok], self.seed + 1)
        idx = np.flatnonzero(ok)
        if self.sample_threshold is not None:
            below = key < self.sample_threshold
            idx, key = idx[below], key[below]
            if not len(idx):
                return
        self.sample_pending.append({"key": key, "row": rows[idx], "positive": truth[idx] == 1,
                                    "score": np.column_stack([p[idx, 1] for p in proba])})
        self.sample_pending_rows += len(idx)
        if self.sample_pending_rows >= max(self.auc_sample // 2, 1):
            self._merge_sample()

    def _merge_sample(self) -> None:
        if not self.sample_pending:
            return
        parts = [self.sample, *self.sample_pending]
        merged = {name: np.concatenate([part[name] for part in parts]) for name in self.sample}
        if len(merged["key"]) > self.auc_sample:
            keep = np.argpartition(merged["key"], self.auc_sample - 1)[: self.auc_sample]
            merged = {name: value[keep] for name, value in merged.items()}
        if len(merged["key"]) >= self.auc_sample:
            self.sample_threshold = merged["key"].max()  # later rows must beat the largest kept key
        self.sample = merged
        self.sample_pending, self.sample_pending_rows = [], 0

    # --- the result

    def result(self) -> dict[str, Any]:
        additive_seed, auc_seed = np.random.SeedSequence(self.seed).spawn(2)
        out: dict[str, Any] = {
            "version": VERSION, "task": self.task, "n_models": self.m, "n_rows": self.n_rows,
            "has_target": self.has_target, "main_metric": self.main, "resamples": self.resamples,
            "confidence": CONFIDENCE, "seed": self.seed,
            "method": {
                "additive": f"Poisson bootstrap ({self.resamples} resamples) over {self.buckets:,} buckets of "
                            "rows hashed by row index",
                "roc_auc": f"Poisson bootstrap ({self.resamples} resamples) of the weighted AUC on a uniform "
                           f"random sample of at most {self.auc_sample:,} rows with a target",
            },
            "metrics": {}, "unavailable": {},
        }
        replicates: dict[str, np.ndarray] = {}
        if self.additive:
            # every metric's bucket sums side by side: one (resamples x buckets) @ (buckets x 2m) product
            names = list(self.additive)
            sums = np.hstack([np.hstack(self.additive[name]) for name in names])
            rng = np.random.default_rng(additive_seed)
            weighted = np.vstack([_poisson_weights(rng, (min(_BATCH, self.resamples - start), self.buckets))
                                  .astype(np.float64) @ sums for start in range(0, self.resamples, _BATCH)])
            totals = sums.sum(axis=0)
            for k, name in enumerate(names):
                lo = 2 * self.m * k
                total_num, total_den = totals[lo:lo + self.m], totals[lo + self.m:lo + 2 * self.m]
                if not (total_den > 0).all():
                    out["unavailable"][name] = "no rows with a target the models know"
                    continue
                with np.errstate(invalid="ignore", divide="ignore"):
                    rep = weighted[:, lo:lo + self.m] / weighted[:, lo + self.m:lo + 2 * self.m]
                    estimate = total_num / total_den
                if name == "rmse":
                    rep, estimate = np.sqrt(rep), np.sqrt(estimate)
                replicates[name] = rep
                out["metrics"][name] = {"estimate": estimate, "n": int(total_den.max()), "sample": None}
        if self.sample is not None:
            self._auc(out, replicates, np.random.default_rng(auc_seed))
        differences = []
        for name, rep in replicates.items():
            better = METRICS[name][1]
            estimate = out["metrics"][name]["estimate"]
            for i in range(self.m):
                for j in range(i + 1, self.m):
                    diff = rep[:, j] - rep[:, i]
                    diff = diff[np.isfinite(diff)]
                    if not len(diff):
                        continue
                    alpha = (1 - CONFIDENCE) / 2
                    low, high = np.percentile(diff, [100 * alpha, 100 * (1 - alpha)])
                    differences.append({"metric": name, "better": better, "a": i, "b": j,
                                        "difference": float(estimate[j] - estimate[i]),
                                        "low": float(low), "high": float(high),
                                        "share_positive": float((diff > 0).mean()),
                                        "resamples": int(len(diff))})
        out["differences"] = differences
        for entry in out["metrics"].values():
            entry["estimate"] = [float(v) for v in entry["estimate"]]
        out["disagreement"] = self._disagreement()
        return _json(out)

    def _auc(self, out: dict, replicates: dict, rng: np.random.Generator) -> None:
        self._merge_sample()
        s = self.sample
        order = np.argsort(s["row"])  # a fixed order, independent of the chunking
        positive, score = s["positive"][order], s["score"][order]
        n = len(order)
        if n == 0 or positive.all() or not positive.any():
            out["unavailable"]["roc_auc"] = "the rows with a target hold only one class"
            return
        rankings = [_AucRanking(score[:, j], positive) for j in range(self.m)]
        estimate = np.array([r.auc(np.ones((1, n)))[0] for r in rankings])
        rep = np.empty((self.resamples, self.m))
        for start in range(0, self.resamples, _BATCH):
            stop = min(start + _BATCH, self.resamples)
            weights = _poisson_weights(rng, (stop - start, n))
            for j, ranking in enumerate(rankings):
                rep[start:stop, j] = ranking.auc(weights)
        replicates["roc_auc"] = rep
        out["metrics"]["roc_auc"] = {"estimate": estimate, "n": n, "sample": n,
                                     "exact": n == self.sample_seen}

    def _disagreement(self) -> dict[str, Any]:
        top = self.top.columns
        measure = self._measure()
        rows = []
        if top:
            for i in range(len(top["row"])):
                row: dict[str, Any] = {"row": int(top["row"][i]), "score": float(top["score"][i])}
                if self.task == "regression":
                    preds = top["prediction"][i]
                    y = float(top["target"][i])
                    row["predictions"] = [float(v) for v in preds]
                    row["target"] = y if self.has_target and math.isfinite(y) else None
                    row["errors"] = [y - float(v) for v in preds] if row["target"] is not None else None
                else:
                    codes = top["prediction"][i]
                    row["predictions"] = [self.classes[c] if c >= 0 else None for c in codes]
                    t = int(top["target"][i])
                    row["target"] = self.classes[t] if t >= 0 else None
                    row["target_known"] = t >= 0
                    row["labels_differ"] = bool(top["differ"][i])
                    if "p" in top:
                        row["p"] = [float(v) for v in top["p"][i]]
                rows.append(row)
        pairs = []
        for i in range(self.m):
            for j in range(i + 1, self.m):
                pair: dict[str, Any] = {"a": i, "b": j}
                if self.task == "regression":
                    pair["mean_abs_difference"] = self.pair_abs_diff[i, j] / self.n_paired if self.n_paired else None
                else:
                    pair["n_label_differ"] = int(self.pair_differ[i, j])
                    if self.has_target:
                        pair["only_a_right"] = int(self.pair_only_right[i, j])
                        pair["only_b_right"] = int(self.pair_only_right[j, i])
                pairs.append(pair)
        out: dict[str, Any] = {"measure": measure, "k": self.top.k, "top": rows, "pairs": pairs}
        if self.task != "regression":
            out["n_label_differ"] = self.n_label_differ
            out["p_is"] = ("positive" if self.task == "binary" else
                           "true" if self.has_target else "most_different") if self.all_proba else None
        return out

    def _measure(self) -> str:
        if self.task == "regression":
            return "spread of the predictions (max - min)"
        if not self.all_proba:
            return "predicted labels differ (1) or agree (0)"
        if self.task == "binary":
            return f"spread of the probability of the positive class {self.classes[1]!r} (max - min)"
        if self.has_target:
            return "spread of the probability of the row's true class (max - min)"
        return "largest spread of any class's probability (max - min)"


# ----------------------------------------------------------------------------- reading outputs


class Cancelled(Exception):
    """Raised by a progress callback to stop ``compare_outputs``."""



@dataclass
class Source:
    """One scoring job's outputs: the folder of its part files."""

    output_dir: str | Path

    def parts(self) -> list[Path]:
        return sorted(Path(self.output_dir).glob("part-*.parquet"))


def _batches(parts: list[Path], columns: list[str]) -> Iterator[pa.Table]:
    for path in parts:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=BATCH_ROWS, columns=columns):
            yield pa.Table.from_batches([batch])


def aligned_chunks(sources: Sequence[Source], columns: Sequence[list[str]]) -> Iterator[tuple[np.ndarray, list[pa.Table]]]:
    """Yield (row indices, one table per source) over the rows every source holds, in row order.

    The parts of jobs over one dataset are cut alike (part i is the dataset's row group i), but
    nothing here relies on it: batches of any size are matched by row index, and a source missing
    a row (or holding another) is an error."""
    iterators = [_batches(s.parts(), [ROW_COLUMN, *cols]) for s, cols in zip(sources, columns)]
    buffers: list[pa.Table | None] = [None] * len(sources)
    while True:
        for i, it in enumerate(iterators):
            while buffers[i] is None or buffers[i].num_rows == 0:
                nxt = next(it, None)
                if nxt is None:
                    buffers[i] = None
                    break
                buffers[i] = nxt
        live = [b is not None for b in buffers]
        if not any(live):
            return
        if not all(live):
            raise ValueError("the jobs' outputs do not hold the same rows (one ends early)")
        n = min(b.num_rows for b in buffers)
        heads = [b.slice(0, n) for b in buffers]
        rows = heads[0].column(ROW_COLUMN).to_numpy()
        for head in heads[1:]:
            if not np.array_equal(head.column(ROW_COLUMN).to_numpy(), rows):
                raise ValueError("the jobs' outputs do not hold the same rows in the same order")
        yield rows, heads
        buffers = [b.slice(n) for b in buffers]


def compare_outputs(sources: Sequence[Source], task: str, classes: Sequence[Any] | None, has_target: bool,
                    progress: Callable[[int], None] | None = None, **options: Any) -> dict[str, Any]:
    """Stream the scoring outputs of ``sources`` (same dataset, same task) into a ``Comparison``
    and return its result. ``progress(rows_done)`` is called after each batch; it may raise
    ``Cancelled`` to stop. FileNotFoundError when a job's parts are gone, ValueError when the
    outputs do not hold the same rows."""
    if len(sources) < 2:
        raise ValueError("a comparison needs at least two jobs")
    for source in sources:
        if not source.parts():
            raise FileNotFoundError(f"a job's output files are gone ({Path(source.output_dir).name})")
    proba_names = [proba_column(c) for c in classes] if task != "regression" and classes else []
    has_proba = []
    for source in sources:
        names = set(pq.read_schema(source.parts()[0]).names)
        has_proba.append(bool(proba_names) and all(c in names for c in proba_names))
    all_proba = task != "regression" and all(has_proba)
    columns = []
    for i in range(len(sources)):
        cols = [PREDICTION_COLUMN] + (proba_names if all_proba else [])
        if i == 0 and has_target:
            cols.append(TARGET_COLUMN)
        columns.append(cols)
    comparison = Comparison(task, len(sources), classes=classes, has_proba=has_proba, has_target=has_target,
                            **options)
    done = 0
    for rows, tables in aligned_chunks(sources, columns):
        target = tables[0].column(TARGET_COLUMN) if has_target else None
        outputs = []
        for table in tables:
            proba = None
            if all_proba:
                proba = np.column_stack([table.column(c).to_numpy() for c in proba_names]).astype(np.float64)
            outputs.append(ChunkOutput(table.column(PREDICTION_COLUMN), proba))
        comparison.add(rows, target, outputs)
        done += len(rows)
        if progress is not None:
            progress(done)
    return comparison.result()


# ---------------------------------------------------------------------------------- presenting


def side_by_side(metrics: Sequence[dict[str, Any] | None]) -> list[dict[str, Any]]:
    """The headline metrics of several jobs as rows: values, differences vs the first job, which
    direction is better and whether each job is better or worse than the first on it."""
    present_keys = [key for key in METRICS if any(m and m.get(key) is not None for m in metrics)]
    rows = []
    for key in present_keys:
        label, better = METRICS[key]
        values = [(m or {}).get(key) for m in metrics]
        base = values[0]
        differences, verdicts = [None], [None]
        for value in values[1:]:
            if isinstance(base, (int, float)) and isinstance(value, (int, float)):
                d = value - base
                differences.append(d)
                verdicts.append("same" if d == 0 else "better" if (d > 0) == (better == "higher") else "worse")
            else:
                differences.append(None)
                verdicts.append(None)
        rows.append({"key": key, "label": label, "better": better, "values": values,
                     "differences": differences, "verdicts": verdicts})
    return _json(rows)


def present(result: dict[str, Any], stored_order: Sequence[str], order: Sequence[str]) -> dict[str, Any]:
    """A stored result (models in ``stored_order``) as seen from ``order[0]``, the baseline: every
    difference is "other - baseline" with its CI, and per-model lists follow ``order``."""
    position = {job: i for i, job in enumerate(stored_order)}
    if sorted(position) != sorted(order):
        raise ValueError("the jobs do not match the stored comparison")
    perm = [position[job] for job in order]
    base = perm[0]
    differences = []
    for entry in result.get("differences", []):
        for other_pos, other in enumerate(perm[1:], start=1):
            if {entry["a"], entry["b"]} != {base, other}:
                continue
            flip = entry["a"] == other
            item = {"metric": entry["metric"], "label": METRICS[entry["metric"]][0], "better": entry["better"],
                    "job": order[other_pos], "baseline": order[0], "resamples": entry["resamples"]}
            if flip:
                item.update(difference=-entry["difference"], low=-entry["high"], high=-entry["low"],
                            share_positive=1.0 - entry["share_positive"])
            else:
                item.update(difference=entry["difference"], low=entry["low"], high=entry["high"],
                            share_positive=entry["share_positive"])
            if item["low"] > 0 or item["high"] < 0:
                positive = item["low"] > 0
                item["verdict"] = "better" if positive == (entry["better"] == "higher") else "worse"
            else:
                item["verdict"] = "unclear"
            item["main"] = entry["metric"] == result.get("main_metric")
            differences.append(item)
    differences.sort(key=lambda d: (not d["main"], list(METRICS).index(d["metric"]), order.index(d["job"])))
    metrics = {name: {**entry, "estimate": [entry["estimate"][p] for p in perm]}
               for name, entry in result.get("metrics", {}).items()}
    disagreement = dict(result.get("disagreement") or {})
    top = []
    for row in disagreement.get("top", []):
        row = dict(row)
        for key in ("predictions", "p", "errors"):
            if row.get(key) is not None:
                row[key] = [row[key][p] for p in perm]
        top.append(row)
    disagreement["top"] = top
    pairs = []
    for pair in disagreement.get("pairs", []):
        for other_pos, other in enumerate(perm[1:], start=1):
            if {pair["a"], pair["b"]} != {base, other}:
                continue
            flip = pair["a"] == other
            item = {"job": order[other_pos], "baseline": order[0]}
            for key, value in pair.items():
                if key in ("a", "b"):
                    continue
                if flip and key == "only_a_right":
                    key = "only_b_right"
                elif flip and key == "only_b_right":
                    key = "only_a_right"
                item[{"only_a_right": "only_baseline_right", "only_b_right": "only_job_right"}.get(key, key)] = value
            pairs.append(item)
    disagreement["pairs"] = sorted(pairs, key=lambda p: order.index(p["job"]))
    return _json({**{k: v for k, v in result.items() if k not in ("differences", "metrics", "disagreement")},
                  "jobs": list(order), "metrics": metrics, "differences": differences,
                  "disagreement": disagreement})
