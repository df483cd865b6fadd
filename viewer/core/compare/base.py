"""What the comparison modules share: the settings, the metrics a comparison knows (``METRICS``),
which one is the headline (``main_metric``) and the conversion of results to plain JSON.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


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


def main_metric(task: str, has_target: bool, all_proba: bool) -> str | None:
    if not has_target:
        return None
    if task == "regression":
        return "rmse"
    if task == "binary" and all_proba:
        return "roc_auc"
    return "accuracy"
