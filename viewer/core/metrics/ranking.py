"""One binary scoring problem sorted once (``_Ranked``): scikit-learn's ROC and precision-recall
curves, ROC AUC, average precision, counts at thresholds and cumulative gain, each derived block
by block from the sorted scores and the running count of positives.
"""

from __future__ import annotations

import numpy as np

from . import base
from .base import _LOW_BYTE


# ------------------------------------------------------------ sorted score curves


class _Ranked:
    """One binary scoring problem, sorted once; everything else is O(#thresholds).

    ``score`` is sorted in place (the caller hands over a float64 array it no longer
    needs; it becomes ``asc``, the scores ascending), ``positive`` is a bool array.
    Held: ``asc`` (8 bytes a row), ``cum_pos`` (positives among the top i scores, 4 bytes
    a row below 2**31 rows) and, only when some scores tie, ``ends`` (per tie group in
    descending score order, its last row in descending order: sklearn's threshold_idxs).
    The group arrays of sklearn's ``_binary_clf_curve`` are derived from them block by
    block: rows at or above group g's threshold ``cnt = ends + 1``, ``tps = cum_pos[cnt]``,
    ``fps = cnt - tps``, ``threshold = asc[n - cnt]``."""

    def __init__(self, score: np.ndarray, positive: np.ndarray):
        n = self.n = len(score)
        count_type = np.int32 if n < np.iinfo(np.int32).max else np.int64
        self.cum_pos = cum_pos = np.empty(n + 1, dtype=count_type)
        cum_pos[0] = 0
        if n and score.min() >= 0.0 and score.max() < 2.0:
            # Non-negative doubles below 2 order like their bit patterns, which stay below
            # 2**62: pack the label into the lowest bit and sort plain int64 in place,
            # several times faster than argsort and without an index array.
            np.add(score, 0.0, out=score)  # turns -0.0 into 0.0
            key = score.view(np.int64)
            key <<= 1
            key |= positive
            key.sort()
            low = key.view(np.uint8)[_LOW_BYTE::8] & 1
            np.cumsum(low[::-1], dtype=count_type, out=cum_pos[1:])
            del low
            key >>= 1
            self.asc = score
        else:
            order = np.argsort(score, kind="stable")
            self.asc = score[order]
            y_asc = positive[order]
            del order
            np.cumsum(y_asc[::-1], dtype=count_type, out=cum_pos[1:])
        self.p = int(cum_pos[-1])
        self.neg = n - self.p
        asc = self.asc
        changes = sum(int(np.count_nonzero(asc[a + 1:b + 1] != asc[a:b])) for a, b in base._blocks(n - 1))
        self.n_groups = groups = changes + 1 if n else 0
        self.ends = None  # every score distinct: group g is row g
        if groups != n:
            # tie groups start where the ascending scores change; in descending order the
            # last row of each group is n - 1 - start
            ends = np.empty(groups, dtype=count_type)
            w = groups - 1
            for a, b in base._blocks(n - 1):
                starts = np.flatnonzero(asc[a + 1:b + 1] != asc[a:b])
                starts += a
                ends[w - len(starts):w] = (n - 2 - starts)[::-1]
                w -= len(starts)
            ends[groups - 1] = n - 1
            self.ends = ends
        self._ap: float | None = None

    # per-group arrays, for a range of groups or at given groups
    def _cnt(self, a: int, b: int) -> np.ndarray:
        if self.ends is None:
            return np.arange(a + 1, b + 1, dtype=np.int64)
        return self.ends[a:b].astype(np.int64) + 1

    def _cnt_at(self, groups: np.ndarray) -> np.ndarray:
        if self.ends is None:
            return groups.astype(np.int64) + 1
        return self.ends[groups].astype(np.int64) + 1

    def _pos(self, cnt) -> np.ndarray:
        return self.cum_pos[cnt].astype(np.int64)

    def thresholds_at(self, groups: np.ndarray) -> np.ndarray:
        return self.asc[self.n - self._cnt_at(groups)]

    def count_ge(self, t) -> tuple[np.ndarray, np.ndarray]:
        """(rows, positives) with score >= t."""
        m = self.n - np.searchsorted(self.asc, t, side="left")
        return m, self._pos(m)

    def count_le(self, t) -> tuple[np.ndarray, np.ndarray]:
        """(rows, positives) with score <= t."""
        m = np.searchsorted(self.asc, t, side="right")
        return m, self.p - self._pos(self.n - m)

    def _kept(self, pr: bool) -> np.ndarray:
        """Groups that sklearn's drop_intermediate keeps: for ROC the points where the
        curve bends (second differences of fps or tps), for PR the ends of vertical runs."""
        groups = self.n_groups
        if groups <= 2:
            return np.arange(groups, dtype=self.cum_pos.dtype)
        parts = [np.zeros(1, dtype=self.cum_pos.dtype)]
        for a, b in base._blocks(groups - 2):  # inner groups a + 1 .. b, with one neighbour each side
            cnt = self._cnt(a, b + 2)
            tps = self._pos(cnt)
            if pr:
                keep = (tps[1:-1] != tps[:-2]) | (tps[2:] != tps[1:-1])
            else:
                fps = cnt - tps
                keep = (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0)
            kept = np.flatnonzero(keep)
            kept += a + 1
            parts.append(kept.astype(self.cum_pos.dtype))
        parts.append(np.array([groups - 1], dtype=self.cum_pos.dtype))
        return np.concatenate(parts)

    def roc(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """sklearn's roc_curve(drop_intermediate=True): (kept groups, fpr, tpr); fpr and tpr
        start with the (0, 0) point, whose threshold is +inf."""
        groups = self._kept(pr=False)
        m = len(groups)
        fpr, tpr = np.empty(m + 1), np.empty(m + 1)
        fpr[0] = tpr[0] = 0.0
        for a, b in base._blocks(m):
            cnt = self._cnt_at(groups[a:b])
            tps = self._pos(cnt)
            tpr[a + 1:b + 1] = tps / self.p
            cnt -= tps
            fpr[a + 1:b + 1] = cnt / self.neg
        return groups, fpr, tpr

    def roc_thresholds(self, groups: np.ndarray, points: np.ndarray) -> np.ndarray:
        out = np.full(len(points), np.inf)
        inner = points > 0
        out[inner] = self.thresholds_at(groups[points[inner] - 1])
        return out

    def auc(self) -> float:
        """Trapezoidal area under the ROC curve, in exact integer arithmetic."""
        twice_rect, triangles, last_fps, last_tps = 0, 0, 0, 0
        for a, b in base._blocks(self.n_groups):
            cnt = self._cnt(a, b)
            tps = self._pos(cnt)
            fps = cnt - tps
            d_fps = np.diff(fps, prepend=last_fps)
            twice_rect += int(np.dot(d_fps, tps))
            triangles += int(np.dot(d_fps, np.diff(tps, prepend=last_tps)))
            last_fps, last_tps = int(fps[-1]), int(tps[-1])
        return (2 * twice_rect - triangles) / (2 * self.p * self.neg)

    def pr(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """sklearn's precision_recall_curve(drop_intermediate=True): (kept groups, precision,
        recall), recall decreasing, ending with (recall 0, precision 1, no threshold)."""
        groups = self._kept(pr=True)
        m = len(groups)
        precision, recall = np.empty(m + 1), np.empty(m + 1)
        for a, b in base._blocks(m):
            cnt = self._cnt_at(groups[a:b])
            tps = self._pos(cnt)
            precision[m - b:m - a] = (tps / cnt)[::-1]
            recall[m - b:m - a] = (tps / self.p)[::-1]
        precision[m], recall[m] = 1.0, 0.0
        return groups, precision, recall

    def pr_thresholds(self, groups: np.ndarray, points: np.ndarray) -> np.ndarray:
        m = len(groups)
        out = np.full(len(points), np.nan)
        inner = points < m
        out[inner] = self.thresholds_at(groups[m - 1 - points[inner]])
        return out

    def average_precision(self) -> float:
        """sum_i (R_i - R_{i-1}) P_i over descending thresholds (sklearn's step integral)."""
        if self._ap is None:
            groups = self.n_groups
            d_tps, precision = np.empty(groups), np.empty(groups)
            last = 0
            for a, b in base._blocks(groups):
                cnt = self._cnt(a, b)
                tps = self._pos(cnt)
                d_tps[a:b] = np.diff(tps, prepend=last)
                precision[a:b] = tps / cnt
                last = int(tps[-1])
            self._ap = max(0.0, float(np.dot(d_tps, precision)) / self.p)
        return self._ap

    def gain(self, fraction: np.ndarray) -> np.ndarray:
        """np.interp(fraction, x, y) on the gain curve x = [0, cnt / n], y = [0, tps / p] (rows
        tied on a score count pro rata), from the few points around each fraction."""
        groups = self.n_groups
        near = fraction * self.n  # about the number of groups with cnt / n <= fraction
        if self.ends is None:
            j = np.clip(np.floor(near), 0, groups).astype(np.int64)
        else:
            j = np.searchsorted(self.ends, near - 1, side="right")
        points = np.unique(np.clip(j[:, None] + np.arange(-2, 4), 0, groups))  # indices into x and y
        inner = points[points > 0] - 1
        cnt = self._cnt_at(inner)
        tps = self._pos(cnt)
        lead = [0.0] if points[0] == 0 else []
        x = np.concatenate([lead, cnt / self.n])
        y = np.concatenate([lead, tps / self.p])
        return np.interp(fraction, x, y)


def _out_of_unit(score: np.ndarray) -> bool:
    return bool(len(score)) and (score.min() < 0.0 or score.max() > 1.0)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    """float(np.trapezoid(y, x)) with its terms computed block by block."""
    terms = np.empty(max(len(x) - 1, 0))
    for a, b in base._blocks(len(terms)):
        terms[a:b] = (x[a + 1:b + 1] - x[a:b]) * (y[a + 1:b + 1] + y[a:b]) / 2.0
    return float(terms.sum())
