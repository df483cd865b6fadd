"""Decision thresholds: a binary classifier version's threshold, saved by a scientist from a
job's threshold slider. Predictions that give probabilities then also give ``decision``: the
positive class where its probability is at least the threshold (the slider's rule), else the
other. Multiclass models and versions without a saved threshold decide by the argmax, as
``predictions`` always do; the monitoring pages' confusion matrices use the saved threshold.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..infra.extensions import db
from ..infra.records import ModelVersion, User, utcnow
from .errors import ServiceError
from .jobs import iso_time


def set_threshold(version: ModelVersion, value: float | None, user: User | None) -> dict[str, Any] | None:
    """Save (``value`` from 0 to 1) or clear (None) a binary classifier version's threshold;
    who and when are recorded beside it."""
    if value is None:
        version.threshold = None
    else:
        classes = version.info.get("classes")
        if classes is None or len(classes) != 2 or not version.info.get("has_predict_proba"):
            raise ServiceError("invalid", "not_binary", f"{version.ref} is not a binary classifier with "
                               "probabilities: only those have a decision threshold (others decide by the argmax).")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or not 0 <= value <= 1:
            raise ServiceError("invalid", "bad_request", "threshold must be a number from 0 to 1 (a probability of "
                               "the positive class).")
        version.threshold = {"value": float(value), "by": user.username if user is not None else None,
                             "at": iso_time(utcnow()), "positive": version.info["classes"][1]}
    db.session.commit()
    return version.threshold


def value_of(version: ModelVersion) -> float | None:
    return float(version.threshold["value"]) if version.threshold else None


def decide(class_labels: np.ndarray, probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Each row's decision: the positive (second) class where its probability is at least the
    threshold, else the first."""
    return class_labels[(probabilities[:, 1] >= threshold).astype(np.int64)]
