"""Regression metrics and plot aggregates: ``regression_metrics``, ``regression_aggregates`` and
``regression_summary`` (both at once, sharing the residuals).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import base
from .base import DECILES, POINT_SIG_DIGITS, _EPS64, _bin_index, _bincount, _edges, _int_type, _jsonable


# -------------------------------------------------------------- regression metrics


def _regression_columns(y_true, y_pred) -> tuple[np.ndarray | None, np.ndarray, int]:
    yp = np.asarray(y_pred, dtype=np.float64)
    if yp.ndim != 1:
        raise ValueError(f"y_pred must be one-dimensional, got shape {yp.shape}")
    yt = None
    ok = np.isfinite(yp)
    if y_true is not None:
        yt = np.asarray(y_true, dtype=np.float64)
        if yt.shape != yp.shape:
            raise ValueError(f"y_true and y_pred have different shapes: {yt.shape} vs {yp.shape}")
        ok &= np.isfinite(yt)
    n_dropped = int(len(yp) - ok.sum())
    if n_dropped:
        yp = yp[ok]
        yt = None if yt is None else yt[ok]
    return yt, yp, n_dropped


def regression_metrics(y_true, y_pred) -> dict:
    """MAE, RMSE, R^2, median absolute error, MAPE and n; equal to scikit-learn's.

    Rows where the target or the prediction is not finite are dropped
    (``n_dropped``).  ``r2`` follows sklearn's ``force_finite``: with a constant
    target it is 1.0 for a perfect prediction, else 0.0 (noted); with fewer than two
    rows it is None.  ``mape`` is sklearn's ``mean_absolute_percentage_error``:
    |y - y_hat| / max(|y|, machine epsilon), so a row with ``y_true == 0`` and a
    non-zero error contributes about 4.5e15 x its error (a huge, finite value, not
    a percentage); ``n_zero_target`` counts them and ``mape_nonzero_target`` is the
    MAPE over the other rows.
    """
    yt, yp, n_dropped = _regression_columns(y_true, y_pred)
    if yt is None:
        raise ValueError("regression_metrics needs y_true")
    return _regression_metrics(yt, yp, n_dropped, None)


def _regression_metrics(yt: np.ndarray, yp: np.ndarray, n_dropped: int, err: np.ndarray | None) -> dict:
    """``err`` is ``yt - yp`` when the caller has it.  One full-length buffer of terms at a
    time; each mean is taken over it as numpy would over the plain expression."""
    n = len(yt)
    names = ("mae", "rmse", "r2", "median_absolute_error", "mape", "mape_nonzero_target")
    out: dict[str, Any] = {"task": "regression", "n": n, "n_dropped": n_dropped,
                           "n_zero_target": int(n - np.count_nonzero(yt))}
    out.update(dict.fromkeys(names))
    undefined: dict[str, str] = {}
    notes: list[str] = []
    out["undefined"] = undefined
    out["notes"] = notes
    if n == 0:
        undefined.update(dict.fromkeys(names, "no rows with a finite target and prediction"))
        return _jsonable(out, None)
    if err is None:
        err = yt - yp
    terms = np.abs(err)
    out["mae"] = float(np.mean(terms))
    for a, b in base._blocks(n):  # |err| / max(|y|, eps)
        terms[a:b] /= np.maximum(np.abs(yt[a:b]), _EPS64)
    out["mape"] = float(np.mean(terms))
    nonzero = n - out["n_zero_target"]
    if nonzero:
        m = 0
        for a, b in base._blocks(n):
            keep = yt[a:b] != 0
            part = np.abs(err[a:b][keep]) / np.abs(yt[a:b][keep])
            terms[m:m + len(part)] = part
            m += len(part)
        out["mape_nonzero_target"] = float(np.mean(terms[:m]))
    else:
        undefined["mape_nonzero_target"] = "every target is 0"
    if out["n_zero_target"]:
        notes.append(f"{out['n_zero_target']} rows have y_true == 0: sklearn's MAPE divides their error by "
                     "machine epsilon, which dominates 'mape'; see 'mape_nonzero_target'")
    np.multiply(err, err, out=terms)
    out["rmse"] = float(np.sqrt(np.mean(terms)))
    if n < 2:
        undefined["r2"] = "R^2 needs at least two rows"
    else:
        ss_res = float(np.sum(terms))
        np.subtract(yt, yt.mean(), out=terms)
        np.multiply(terms, terms, out=terms)
        ss_tot = float(np.sum(terms))
        if ss_tot == 0:
            out["r2"] = 1.0 if ss_res == 0 else 0.0
            notes.append("the target is constant: r2 is set to 1.0 (perfect) or 0.0 as scikit-learn does")
        else:
            out["r2"] = 1.0 - ss_res / ss_tot
    np.abs(err, out=terms)
    out["median_absolute_error"] = float(np.median(terms, overwrite_input=True))
    return _jsonable(out, None)


# ----------------------------------------------------------- regression aggregates


class _Column:
    """One numeric column: its plot range and quantiles from a single sort, and cached bin
    indices (compact integers, filled block by block)."""

    def __init__(self, values: np.ndarray, quantiles: np.ndarray | None = None):
        self.values = values
        ordered = np.sort(values)  # SIMD sort: as fast as one np.quantile call
        self.quantiles = None if quantiles is None else self._quantile(ordered, quantiles)
        full_lo, full_hi = float(ordered[0]), float(ordered[-1])
        q_lo, q_hi = (float(q) for q in self._quantile(ordered, np.array([0.001, 0.999])))
        del ordered
        width = q_hi - q_lo
        if full_hi - full_lo > 2 * width and width > 0:  # outliers would squash the plot
            self.range = (max(full_lo, q_lo - 0.05 * width), min(full_hi, q_hi + 0.05 * width))
        else:
            self.range = (full_lo, full_hi)
        self._bins: dict = {}

    @staticmethod
    def _quantile(ordered: np.ndarray, q: np.ndarray) -> np.ndarray:
        """np.quantile's default ("linear") method on sorted values."""
        h = (len(ordered) - 1) * q
        lo = np.floor(h)
        t = h - lo
        lo = lo.astype(np.intp)
        a, b = ordered[lo], ordered[np.minimum(lo + 1, len(ordered) - 1)]
        return np.where(t >= 0.5, b - (b - a) * (1 - t), a + (b - a) * t)

    def bins(self, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(bin index of each value, 0 outside; inside mask or None when all are inside); cached."""
        key = (float(edges[0]), float(edges[-1]), len(edges))
        if key not in self._bins:
            v = self.values
            idx = np.zeros(len(v), dtype=_int_type(len(edges)))
            inside = None
            for a, b in base._blocks(len(v)):
                block = v[a:b]
                ins = (block >= edges[0]) & (block <= edges[-1])
                if ins.all():
                    idx[a:b] = _bin_index(block, edges)
                    if inside is not None:
                        inside[a:b] = True
                    continue
                if inside is None:
                    inside = np.ones(len(v), dtype=bool)
                inside[a:b] = ins
                idx[a:b][ins] = _bin_index(block[ins], edges)
            self._bins[key] = (idx, inside)
        return self._bins[key]


def _padded(lo: float, hi: float) -> tuple[float, float]:
    if hi > lo:
        return lo, hi
    pad = abs(lo) * 0.05 if lo else 0.5
    return lo - pad, hi + pad


def _column_hist_part(col: _Column, bins: int) -> dict:
    edges = _edges(*_padded(*col.range), bins)
    idx, inside = col.bins(edges)
    n = len(col.values)
    counts = _bincount(idx, bins, inside)
    if inside is None:
        n_below, n_above = 0, 0
    else:
        n_below = sum(int(np.count_nonzero(col.values[a:b] < edges[0])) for a, b in base._blocks(n))
        n_above = n - int(np.count_nonzero(inside)) - n_below
    return {"exact": True, "n": n, "bin_edges": edges, "counts": counts, "n_below": n_below, "n_above": n_above}


def _grid_part(x: _Column, y: _Column, x_edges: np.ndarray, y_edges: np.ndarray, names: tuple[str, str]) -> dict:
    grid_x, grid_y = len(x_edges) - 1, len(y_edges) - 1
    ix, x_in = x.bins(x_edges)
    iy, y_in = y.bins(y_edges)
    n = len(x.values)
    counts = np.zeros(grid_x * grid_y, dtype=np.int64)
    n_inside = 0
    for a, b in base._blocks(n):
        cells = iy[a:b].astype(np.intp)
        cells *= grid_x
        cells += ix[a:b]
        inside = x_in if y_in is None else (y_in if x_in is None else None)
        if x_in is not None and y_in is not None:
            cells = cells[x_in[a:b] & y_in[a:b]]
        elif inside is not None:
            cells = cells[inside[a:b]]
        counts += np.bincount(cells, minlength=grid_x * grid_y)
        n_inside += len(cells)
    counts = counts.reshape(grid_y, grid_x)
    return {"exact": False, "n": n, "kind": "grid", "x_name": names[0], "y_name": names[1],
            "x_edges": x_edges, "y_edges": y_edges, "counts": counts, "counts_index": "counts[y_bin][x_bin]",
            "n_outside": n - n_inside}


def _points_part(x: np.ndarray, y: np.ndarray, names: tuple[str, str]) -> dict:
    """Raw points, rounded to POINT_SIG_DIGITS (invisible on a scatter; keeps 4 x 5,000 numbers < 200 KB)."""
    def rounded(values: np.ndarray) -> list[float]:
        return [float(f"{v:.{POINT_SIG_DIGITS}g}") for v in values.tolist()]
    return {"exact": True, "n": len(x), "kind": "points", "x_name": names[0], "y_name": names[1],
            "sig_digits": POINT_SIG_DIGITS, "x": rounded(x), "y": rounded(y)}


def regression_aggregates(y_true, y_pred, *, grid: int = 60, max_points: int = 5000) -> dict:
    """Everything a regression result page plots.

    * always: ``prediction_histogram`` (``grid`` bins).
    * with a target: ``predicted_vs_actual`` (x = actual, y = predicted) and
      ``residuals_vs_predicted`` (x = predicted, y = residual) as the raw points
      (``kind: "points"``, ``exact: true``, rounded to 4 significant digits) when
      n <= ``max_points``, else a
      ``grid`` x ``grid`` count grid (``kind: "grid"``, ``exact: false``,
      ``counts[y_bin][x_bin]``, bin edges, ``n_outside``; predicted-vs-actual uses
      one range for both axes so y = x is the diagonal); ``residual_histogram``;
      ``error_by_decile`` (deciles of the prediction, bins [from, to) with the
      last one closed: count, mean absolute error, mean error, RMSE; empty
      deciles, e.g. with constant predictions, have null means).
    Residual / error = ``y_true - y_pred`` (positive: the model under-predicts).
    Histograms use numpy.histogram's bins.  Ranges trim the 0.1 % tails only when
    outliers would squash the plot; ``n_below``/``n_above``/``n_outside`` count
    what falls outside.  Rows with a non-finite target or prediction are dropped
    (``n_dropped``).
    """
    if grid < 2:
        raise ValueError("grid must be at least 2")
    _, agg = regression_summary(y_true, y_pred, with_metrics=False, grid=grid, max_points=max_points)
    return agg


def regression_summary(y_true, y_pred, *, with_metrics: bool = True, grid: int = 60,
                       max_points: int = 5000) -> tuple[dict | None, dict]:
    """``(regression_metrics, regression_aggregates)``, sharing the residuals;
    ``with_metrics`` needs a target."""
    if grid < 2:
        raise ValueError("grid must be at least 2")
    yt, yp, n_dropped = _regression_columns(y_true, y_pred)
    if with_metrics and yt is None:
        raise ValueError("regression_metrics needs y_true")
    n = len(yp)
    out: dict[str, Any] = {"task": "regression", "has_target": yt is not None, "n": n, "n_dropped": n_dropped,
                           "residual_definition": "y_true - y_pred", "unavailable": {}}
    if n == 0:
        out["unavailable"]["plots"] = "no rows with a finite target and prediction"
        return (_regression_metrics(yt, yp, n_dropped, None) if with_metrics else None), _jsonable(out)
    decile_q = np.linspace(0.0, 1.0, DECILES + 1)
    pred = _Column(yp, decile_q if yt is not None else None)
    out["prediction_histogram"] = _column_hist_part(pred, grid)
    if yt is None:
        return None, _jsonable(out)
    resid = yt - yp
    if n <= max_points:
        out["predicted_vs_actual"] = _points_part(yt, yp, ("actual", "predicted"))
        out["residuals_vs_predicted"] = _points_part(yp, resid, ("predicted", "residual"))
        res = _Column(resid)
    else:
        actual = _Column(yt)
        shared = _edges(*_padded(min(actual.range[0], pred.range[0]), max(actual.range[1], pred.range[1])), grid)
        out["predicted_vs_actual"] = _grid_part(actual, pred, shared, shared, ("actual", "predicted"))
        del actual
        res = _Column(resid)
        out["residuals_vs_predicted"] = _grid_part(pred, res, _edges(*_padded(*pred.range), grid),
                                                   _edges(*_padded(*res.range), grid), ("predicted", "residual"))
    out["residual_histogram"] = _column_hist_part(res, grid)
    del res
    edges = pred.quantiles
    del pred
    # np.bincount with weights adds each bin's weights in row order; np.add.at block by block
    # does the same additions in the same order
    count = np.zeros(DECILES, dtype=np.int64)
    abs_sum, sum_, sq_sum = np.zeros(DECILES), np.zeros(DECILES), np.zeros(DECILES)
    for a, b in base._blocks(n):
        decile = np.searchsorted(edges[1:-1], yp[a:b], side="right")
        r = resid[a:b]
        count += np.bincount(decile, minlength=DECILES)
        np.add.at(abs_sum, decile, np.abs(r))
        np.add.at(sum_, decile, r)
        np.add.at(sq_sum, decile, r * r)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty deciles -> NaN -> None
        out["error_by_decile"] = {
            "exact": True, "n": n, "decile": np.arange(1, DECILES + 1), "pred_from": edges[:-1],
            "pred_to": edges[1:], "count": count, "mean_abs_error": abs_sum / count,
            "mean_error": sum_ / count, "rmse": np.sqrt(sq_sum / count)}
    metrics = _regression_metrics(yt, yp, n_dropped, resid) if with_metrics else None
    return metrics, _jsonable(out)
