"""The statistics under the paired bootstrap: reproducible hashed keys of row indices, Poisson(1)
resampling weights, and the weighted ROC AUC of many weight vectors from one sort.
"""

from __future__ import annotations

import functools
import math

import numpy as np


# ------------------------------------------------------------- hashed keys and Poisson weights


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


# ---------------------------------------------------------------------------- weighted ROC AUC


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
