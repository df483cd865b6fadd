"""``Comparison``, the accumulator: one chunk of aligned rows at a time in, per-bucket sums, the
bottom-k AUC sample and the top-K disagreeing rows kept; ``result()`` draws the bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .base import (AUC_SAMPLE, BUCKETS, CONFIDENCE, METRICS, RESAMPLES, SEED, TASKS, TOP_K, VERSION, _BATCH,
                   _LOG_EPS, _json, main_metric)
from .bootstrap import _AucRanking, _poisson_weights, _splitmix64


# --------------------------------------------------------------------------- a chunk's columns


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

    min_models = 2

    def __init__(self, task: str, n_models: int, *, classes: Sequence[Any] | None = None,
                 has_proba: Sequence[bool] | None = None, has_target: bool = True, top_k: int = TOP_K,
                 resamples: int = RESAMPLES, auc_sample: int = AUC_SAMPLE, buckets: int = BUCKETS,
                 seed: int = SEED):
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}")
        if n_models < self.min_models:
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
        replicates = self._bootstrap(out, additive_seed, auc_seed)
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

    def _bootstrap(self, out: dict, additive_seed: Any, auc_seed: Any) -> dict[str, np.ndarray]:
        """Each metric's point estimates into ``out["metrics"]`` (or why not into
        ``out["unavailable"]``) and its (resamples, models) bootstrap replicates, returned."""
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
        return replicates

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
