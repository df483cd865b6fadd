"""Metrics and compact plot aggregates for scored datasets.

Pure functions on numpy arrays; no web framework, no I/O.  The finalize step of a
scoring job calls them once with the full columns it needs (target, prediction,
class probabilities) and stores the returned dicts; result pages draw every plot
from those dicts and never touch the rows again.

Public API
----------
``classification_metrics(y_true, y_pred, proba, classes)``
``regression_metrics(y_true, y_pred)``
``classification_aggregates(y_true, proba, y_pred, classes, *, max_points=500)``
``regression_aggregates(y_true, y_pred, *, grid=60, max_points=5000)``
``classification_summary(columns, classes, *, with_metrics=True, max_points=500)``
  both classification dicts at once, from a ``ClassifierColumns`` that hands out the
  columns block by block (the finalize step reads them from the job's output parts)
``regression_summary(y_true, y_pred, *, with_metrics=True)`` both regression dicts

Every returned dict is JSON-safe: ``json.dumps(result, allow_nan=False)`` works,
there are no numpy types, and undefined numbers are ``None`` (the reason is in an
``"undefined"`` / ``"unavailable"`` mapping).  Aggregates round floats to
``SIG_DIGITS`` significant digits; metrics keep full float precision.

Conventions
-----------
* ``classes`` is the model's ``classes_``: column ``j`` of ``proba`` is the
  probability of ``classes[j]``; for a binary model the positive class is
  ``classes[1]`` (scikit-learn's convention), and a 1-D ``proba`` is accepted as
  the probability of ``classes[1]``.
* Rows whose target is missing (``None``/``NaN``) are left out of everything and
  counted in ``n_missing_target``.
* Target labels that are not among ``classes`` ("unknown labels") count as wrong
  predictions in the label metrics (accuracy, confusion matrix, ...) and appear as
  extra labels after the model's classes; the probability metrics and curves
  (AUC, AP, log loss, Brier, ROC, ...) cannot score them and use only the rows with
  a known label (``n_scored``).
* A part of an aggregate is ``"exact": true`` when it carries every value of the
  plot it describes (all curve vertices, all raw points, exact counts for its
  stated bins/thresholds), ``false`` when it was thinned (curves) or gridded
  (scatters).  ``"n"`` is the number of rows the part summarises.
* A prediction "at threshold t" is positive when ``score >= t`` (like
  ``roc_curve``).  Note ``predict`` of a binary scikit-learn classifier picks
  ``classes[1]`` only when its probability is ``> 0.5``.

Which functions need the full arrays, and memory
------------------------------------------------
Exact ROC/PR curves, AUC, average precision, the threshold table and gain/lift need
every (target, score) pair sorted (one O(n log n) sort per binary problem / per
class), the median absolute error and the robust ranges / deciles of the regression
aggregates need quantiles of the full column.  Only histograms with fixed edges, the
confusion matrix and the prediction shares could be merged from per-chunk partials.

Memory is kept to a few full-length arrays (bench/finalise_memory.py measures it at
10M rows): labels become 1-byte codes (``int8``; wider only past 127 labels), every
elementwise step runs in blocks of ``BLOCK`` rows, and one binary problem holds its
sorted scores (8 bytes a row, sorted in place in the column it was given) and the
running count of positives (4 bytes a row below 2**31 rows); its tie groups, true
and false positive counts and thresholds are derived from those two block by block.
``classification_summary`` reads each probability column only when it ranks that
class, and both dicts share one ranking per class.  Sums and means are still taken
over one full-length array of terms, in the same order as a plain numpy expression,
so the values do not depend on the block size.

Modules
-------
``base``            constants, JSON conversion, the blockwise helpers (``_blocks``), histogram bins
``encoding``        ``ClassifierColumns`` and the compact label codes
``ranking``         ``_Ranked``: one binary problem sorted once (ROC, PR, AUC, AP, gain)
``curves``          thinning long curves to ``max_points`` vertices
``probability``     the per-class ranking metrics and plot parts of a classifier
``classification``  ``classification_summary`` / ``_metrics`` / ``_aggregates``
``regression``      ``regression_summary`` / ``_metrics`` / ``_aggregates``
"""

from __future__ import annotations

from .base import (  # noqa: F401  (the constants, as the single module had them)
    BLOCK,
    CALIBRATION_BINS,
    DECILES,
    GAIN_PERCENTS,
    MAX_UNKNOWN_LABELS,
    POINT_SIG_DIGITS,
    SCORE_BINS,
    SIG_DIGITS,
    THRESHOLDS,
    _jsonable,  # noqa: F401  (the tests use it)
)
from .classification import classification_aggregates, classification_metrics, classification_summary
from .curves import _thin  # noqa: F401  (the tests use it)
from .encoding import ClassifierColumns
from .regression import regression_aggregates, regression_metrics, regression_summary

# ``_blocks`` is deliberately not re-exported: the passes look it up in ``base`` when they run, so
# a replacement (to try another block size) belongs there: ``monkeypatch.setattr(base, "_blocks", ...)``.

__all__ = [
    "SIG_DIGITS",
    "ClassifierColumns",
    "classification_aggregates",
    "classification_metrics",
    "classification_summary",
    "regression_aggregates",
    "regression_metrics",
    "regression_summary",
]
