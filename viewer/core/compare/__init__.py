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

Modules
-------
``base``          the settings, ``METRICS``, ``main_metric`` and plain-JSON conversion
``bootstrap``     hashed row keys, Poisson(1) weights, ``weighted_auc``
``accumulator``   ``Comparison`` (and ``ChunkOutput``, one model's columns for a chunk)
``streaming``     ``Source``, ``aligned_chunks``, ``compare_outputs``, ``Cancelled``
``presentation``  ``side_by_side`` and ``present``
``datasets``      one model on two datasets: ``DatasetComparison``, ``compare_datasets`` (independent
                  bootstraps of each job's rows, no paired rows and so no disagreement table)
"""

from __future__ import annotations

from .accumulator import ChunkOutput, Comparison
from .base import (  # noqa: F401  (the settings, as the single module had them)
    AUC_SAMPLE,
    BATCH_ROWS,
    BUCKETS,
    CONFIDENCE,
    METRICS,
    RESAMPLES,
    SEED,
    TASKS,
    TOP_K,
    VERSION,
    main_metric,
)
from .bootstrap import _poisson_weights, weighted_auc  # noqa: F401  (the tests use _poisson_weights)
from .datasets import NOT_PAIRED, DatasetComparison, compare_datasets
from .presentation import present, side_by_side
from .streaming import Cancelled, Source, aligned_chunks, compare_outputs

__all__ = [
    "AUC_SAMPLE", "BUCKETS", "CONFIDENCE", "METRICS", "RESAMPLES", "TOP_K", "Cancelled", "ChunkOutput",
    "Comparison", "DatasetComparison", "NOT_PAIRED", "Source", "compare_datasets", "aligned_chunks", "compare_outputs", "main_metric", "present", "side_by_side",
    "weighted_auc",
]
