"""Thinning long curves: at most ``max_points`` vertices whose polyline still follows the curve
(always the first and the last), and the JSON part of a thinned ROC / PR curve.
"""

from __future__ import annotations

import heapq

import numpy as np

from . import base


# ----------------------------------------------------------------------- thinning


def _rdp_top(x: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """Ramer-Douglas-Peucker by priority: keep the ends, then repeatedly the point
    farthest from its current chord, until ``k`` points or the chords are exact."""
    n = len(x)
    if n <= k:
        return np.arange(n)
    heap: list = []

    def push(i: int, j: int) -> None:
        if j - i < 2:
            return
        px = x[i + 1:j] - x[i]
        py = y[i + 1:j] - y[i]
        dx = x[j] - x[i]
        dy = y[j] - y[i]
        length2 = dx * dx + dy * dy
        if length2 > 0:
            t = np.clip((px * dx + py * dy) / length2, 0.0, 1.0)
            px = px - t * dx
            py = py - t * dy
        d2 = px * px + py * py
        m = int(np.argmax(d2))
        if d2[m] > 1e-24:  # farther than 1e-12: not just rounding on a straight run
            heapq.heappush(heap, (-float(d2[m]), i + 1 + m, i, j))

    keep = [0, n - 1]
    push(0, n - 1)
    while heap and len(keep) < k:
        _, m, i, j = heapq.heappop(heap)
        keep.append(m)
        push(i, m)
        push(m, j)
    return np.array(sorted(keep), dtype=np.int64)

def _path_length(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """[0, cumsum(|diff(x)| + |diff(y)|)], block by block (cumsum adds in order, so the
    running total carried over from block to block gives the same sums)."""
    path = np.empty(len(x))
    path[0] = total = 0.0
    for a, b in base._blocks(len(x) - 1):
        d = np.abs(x[a + 1:b + 1] - x[a:b])
        d += np.abs(y[a + 1:b + 1] - y[a:b])
        d[0] += total
        np.cumsum(d, out=path[a + 1:b + 1])
        total = float(path[b])
    return path


def _thin(x: np.ndarray, y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` vertices (always the first and the last)
    whose polyline follows the curve (x, y).

    Stage 1 (only for long curves) keeps, at ``fine`` evenly spaced positions along
    the L1 path length, the vertices on both sides of each position: every dropped
    vertex then lies in a box of L1 size < path_length / fine around its chord.
    Stage 2 picks the final vertices by Ramer-Douglas-Peucker priority.
    """
    n = len(x)
    if n <= max_points:
        return np.arange(n)
    fine = max(16 * max_points, 4096)
    if n > fine:
        path = _path_length(x, y)
        positions = np.searchsorted(path, np.linspace(0.0, path[-1], fine // 2), side="left")
        del path
        positions = np.minimum(positions, n - 1)
        candidates = np.unique(np.concatenate([[0, n - 1], positions, np.maximum(positions - 1, 0)]))
    else:
        candidates = np.arange(n)
    keep = _rdp_top(x[candidates], y[candidates], max_points)
    return candidates[keep]


def _curve_part(n_rows: int, max_points: int, xs: tuple[str, np.ndarray], ys: tuple[str, np.ndarray],
                thresholds, **extra) -> dict:
    """``thresholds``: the thresholds of the curve's points, or a function giving those at
    the indices it is passed (long curves: only the kept points' are looked up)."""
    (xname, x), (yname, y) = xs, ys
    keep = _thin(x, y, max_points)
    thr = thresholds(keep) if callable(thresholds) else thresholds[keep]
    return {"exact": len(keep) == len(x), "n": n_rows, "n_points_exact": len(x), "n_points": len(keep),
            **extra, xname: x[keep], yname: y[keep], "thresholds": thr}
