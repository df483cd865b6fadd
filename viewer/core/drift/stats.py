"""Drift and performance figures computed from sketches (``core.drift.sketch``), never from rows.

The definitions follow Evidently's and NannyML's, with their defaults:

- numeric columns: the Wasserstein distance between reference and current, divided by the
  reference's standard deviation (``scipy.stats.wasserstein_distance(ref, cur) / std(ref)``,
  Evidently's ``wasserstein`` stattest; flagged above 0.1), and the population stability index
  on the reference's deciles (flagged above 0.1 as moderate, above 0.25 as major);
- categorical columns: the Jensen-Shannon distance of the two category distributions (scipy's,
  natural logarithm; flagged above 0.1), with the chi-square test's p-value shown, not used to
  flag;
- a dataset drifts when at least half of its columns do.

Binning error, stated: a value counts at its bin's midpoint, so a Wasserstein distance is off by
at most half a bin width per unit of mass: ``STEP / 2`` scales near the grid's center (0.25 %
of the scale), relatively more in the far tails, whose bins are wider in the same proportion.
PSI's decile edges are snapped to grid edges, so its bins differ from exact deciles by at most
one grid bin. Jensen-Shannon and chi-square are exact (counts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.spatial import distance

from .sketch import BINS, OTHER, SCORE_BINS, CategoricalSketch, NumericSketch, ScoreSketch

PSI_FLOOR = 1e-4  # a bin's share when it is empty (Evidently's)


@dataclass(frozen=True)
class Thresholds:
    wasserstein: float = 0.1
    psi_moderate: float = 0.1
    psi_major: float = 0.25
    jensen_shannon: float = 0.1
    dataset_share: float = 0.5
    min_rows_numeric: int = 700     # fewer current rows: "too few rows to judge"
    min_rows_categorical: int = 50  # per category of the reference beyond the first


def wasserstein(reference: NumericSketch, current: NumericSketch) -> float | None:
    """Wasserstein distance / the reference's standard deviation (None without values)."""
    if not reference.n or not current.n:
        return None
    ref_values, ref_weights = reference.points()
    cur_values, cur_weights = current.points()
    raw = stats.wasserstein_distance(ref_values, cur_values, ref_weights, cur_weights)
    return float(raw / max(reference.std, 0.001))


def decile_edges(reference: NumericSketch) -> np.ndarray:
    """Indices (into the grid's BINS + 1 edges) closest to the reference's deciles, distinct."""
    cumulative = reference.cumulative() / max(reference.n, 1)
    wanted = np.arange(1, 10) / 10
    edges = np.unique(np.searchsorted(cumulative, wanted, side="left"))
    return edges[(edges > 0) & (edges < BINS)]


def psi(reference: NumericSketch, current: NumericSketch) -> float | None:
    if not reference.n or not current.n:
        return None
    edges = decile_edges(reference)
    shares = []
    for sketch in (reference, current):
        cumulative = sketch.cumulative()
        at_edges = np.concatenate([[0.0], cumulative[edges], [float(sketch.n)]])
        shares.append(np.maximum(np.diff(at_edges) / sketch.n, PSI_FLOOR))
    ref, cur = shares
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _aligned(reference: CategoricalSketch, current: CategoricalSketch) -> tuple[list[str], np.ndarray, np.ndarray]:
    keys = sorted(set(reference.counts) | set(current.counts))
    return keys, np.array([reference.counts.get(k, 0) for k in keys], dtype=np.float64), \
        np.array([current.counts.get(k, 0) for k in keys], dtype=np.float64)


def jensen_shannon(reference: CategoricalSketch, current: CategoricalSketch) -> float | None:
    if not reference.n or not current.n:
        return None
    _keys, ref, cur = _aligned(reference, current)
    return float(distance.jensenshannon(ref / ref.sum(), cur / cur.sum()))


def chi_square_p(reference: CategoricalSketch, current: CategoricalSketch) -> float | None:
    """The chi-square goodness-of-fit p-value of the current counts against the reference's
    shares (Evidently's ``chisquare`` stattest); 0 when the current window has a category the
    reference never had."""
    if not reference.n or not current.n:
        return None
    _keys, ref, cur = _aligned(reference, current)
    expected = ref / ref.sum() * cur.sum()
    if np.any((expected == 0) & (cur > 0)):
        return 0.0
    keep = expected > 0
    if keep.sum() < 2:
        return 1.0
    return float(stats.chisquare(cur[keep], expected[keep] * cur[keep].sum() / expected[keep].sum()).pvalue)


def categories_of(sketch: CategoricalSketch) -> int:
    return len([k for k in sketch.counts if k != OTHER])


def enough_rows(reference, current, thresholds: Thresholds) -> bool:
    """Whether a column has rows enough to judge (a reference without values judges nothing)."""
    if not reference.n:
        return False
    if isinstance(current, CategoricalSketch):
        return current.n >= thresholds.min_rows_categorical * max(categories_of(reference) - 1, 1)
    return current.n >= thresholds.min_rows_numeric


# --- performance from labelled score bins ---------------------------------------------------------

def roc_auc(scores: ScoreSketch) -> float | None:
    """ROC AUC from the labelled score bins: the Mann-Whitney statistic with rows of one bin
    counted as ties (half). The exact value differs by at most the share of positive-negative
    pairs that fall in one bin, which ``SCORE_BINS`` logit bins keep below 1e-3 for a model
    whose scores spread over more than a few bins."""
    pos, neg = scores.positives.astype(np.float64), scores.negatives.astype(np.float64)
    n_pos, n_neg = pos.sum(), neg.sum()
    if not n_pos or not n_neg:
        return None
    below = np.concatenate([[0.0], np.cumsum(neg)[:-1]])
    return float(np.sum(pos * (below + neg / 2)) / (n_pos * n_neg))


def bin_centers() -> np.ndarray:
    """Each score bin's probability at its middle (0 and 1 for the exact end bins)."""
    logit = -16.0 + (np.arange(SCORE_BINS) + 0.5) * (32.0 / SCORE_BINS)
    return np.concatenate([[0.0], 1 / (1 + np.exp(-logit)), [1.0]])


def quantiles(sketch: NumericSketch, qs) -> list[float | None]:
    """Quantiles of a numeric sketch (bin midpoints; overflow bins at their mean)."""
    if not sketch.n:
        return [None for _ in qs]
    values, weights = sketch.points()
    order = np.argsort(values)
    values, cumulative = values[order], np.cumsum(weights[order])
    return [float(values[min(int(np.searchsorted(cumulative, q * cumulative[-1], side="left")), len(values) - 1)])
            for q in qs]


def is_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
