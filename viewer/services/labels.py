"""Labels that arrive later: joined to the logged predictions they belong to, then realized
performance per window from SQL aggregates over the joined pairs.

``post`` takes a batch (the API's JSON, a CSV upload, the client) and is idempotent: a label
sent again replaces the one stored. Each label is looked up in the prediction log by its
request id (a generated id carries its time; a client's id was recorded with it) and row; the
prediction's version, time, label, positive-class probability (and its score bin) and log loss
are copied beside it. A label whose record is not found yet (its process has not written it:
within ``PREDICTION_LOG_FLUSH_SECONDS``) is kept and tried again for ``RETRY_HOURS``, and listed
in the answer as ``unknown``.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from flask import current_app
from sqlalchemy import and_, case, delete, func, or_, select, tuple_, update

from ..core import predlog as predlog_core
from ..core.drift import stats
from ..core.drift.sketch import ScoreSketch, label_text, score_index
from ..infra.extensions import db
from ..infra.records import (ClientRequestId, MonitorWindow, PredictionLabel, PredictionLogFile, RegisteredModel,
                             utcnow)
from .artifacts import store
from .errors import ServiceError

MAX_LABELS = 10_000
RETRY_HOURS = 24
EPS = float(np.finfo(np.float64).eps)  # scikit-learn's log_loss clips probabilities to [eps, 1 - eps]



def _checked(items: list[Any]) -> list[tuple[str, int, str]]:
    if not isinstance(items, list) or not items:
        raise ServiceError("invalid", "bad_request", "labels must be a non-empty list of {request_id, row, label}.")
    if len(items) > MAX_LABELS:
        raise ServiceError("too_large", "too_many_labels", f"{len(items):,} labels is more than the {MAX_LABELS:,} a "
                           "request may carry; send them in batches.")
    out: dict[tuple[str, int], str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or "request_id" not in item or "label" not in item:
            raise ServiceError("invalid", "bad_request", f"Label {i}: give request_id and label (row defaults to 0).")
        rid, row, label = item["request_id"], item.get("row", 0), item["label"]
        if not isinstance(rid, str) or not 1 <= len(rid) <= 128:
            raise ServiceError("invalid", "bad_request", f"Label {i}: request_id must be the text of a request id "
                               "(1 to 128 characters), as the prediction's answer gave it.")
        if isinstance(row, bool) or not isinstance(row, int) or row < 0:
            raise ServiceError("invalid", "bad_request", f"Label {i}: row must be a whole number from 0 (the row's "
                               "index in its request).")
        if label is None or isinstance(label, (list, dict)) or (isinstance(label, float) and not math.isfinite(label)):
            raise ServiceError("invalid", "bad_request", f"Label {i}: label must be a class or a finite number.")
        out[(rid, row)] = label_text(label)[:255]
    return [(rid, row, label) for (rid, row), label in out.items()]


def post(model: RegisteredModel, items: list[Any]) -> dict[str, Any]:
    """Store a batch of labels (a label sent again replaces the stored one) and join them. A label
    that is no class of the model (a regressor's: no number) is not stored; it is listed in
    ``rejected`` with the reason, and the batch's others are kept."""
    labels = _checked(items)
    rejected: list[dict[str, Any]] = []
    latest = model.latest
    if latest is not None and latest.info.get("classes") is not None:
        classes = {label_text(c) for v in model.versions for c in v.info.get("classes") or []}
        message = f"not a class of {model.name} (its classes are {', '.join(sorted(classes)[:20])})"
        rejected = [{"request_id": rid, "row": row, "label": label, "reason": message}
                    for rid, row, label in labels if label not in classes]
    else:
        for rid, row, label in labels:
            try:
                if not math.isfinite(float(label)):
                    raise ValueError
            except ValueError:
                rejected.append({"request_id": rid, "row": row, "label": label,
                                 "reason": f"not a number ({model.name} is a regressor)"})
    if rejected:
        bad = {(r["request_id"], r["row"]) for r in rejected}
        labels = [item for item in labels if (item[0], item[1]) not in bad]
    keys = [(rid, row) for rid, row, _label in labels]
    if not keys:
        return {"accepted": 0, "matched": 0, "unknown": [], "unknown_count": 0, "rejected": rejected[:1000],
                "rejected_count": len(rejected)}
    for start in range(0, len(keys), 500):
        db.session.execute(delete(PredictionLabel).where(
            PredictionLabel.model_id == model.id,
            tuple_(PredictionLabel.request_id, PredictionLabel.row).in_(keys[start:start + 500])))
    now = utcnow()
    db.session.add_all([PredictionLabel(model_id=model.id, request_id=rid, row=row, label=label, received_at=now)
                        for rid, row, label in labels])
    db.session.commit()
    matched = join(model, {rid for rid, _row, _label in labels})
    unknown = sorted({rid for rid, row, _label in labels if (rid, row) not in matched})
    return {"accepted": len(labels), "matched": len(labels) - sum(1 for k in keys if k not in matched),
            "unknown": unknown[:1000], "unknown_count": len(unknown), "rejected": rejected[:1000],
            "rejected_count": len(rejected)}


def _hours(model_id: int, request_ids: set[str]) -> set:
    hours = set()
    for rid in request_ids:
        made = predlog_core.request_time(rid)
        if made is not None:
            hours.add(made.replace(minute=0, second=0, microsecond=0))
    ids = list(request_ids)
    for start in range(0, len(ids), 500):
        for (at,) in db.session.execute(select(ClientRequestId.at).where(
                ClientRequestId.model_id == model_id, ClientRequestId.request_id.in_(ids[start:start + 500]))):
            hours.add(at.replace(minute=0, second=0, microsecond=0))
    return hours | {h - timedelta(hours=1) for h in hours} | {h + timedelta(hours=1) for h in hours}


def join(model: RegisteredModel, request_ids: set[str]) -> set[tuple[str, int]]:
    """Join the stored, unjoined labels of these requests to their records; returns the keys
    (request id, row) joined, now or before."""
    hours = _hours(model.id, request_ids)
    files = list(db.session.scalars(select(PredictionLogFile).where(
        PredictionLogFile.model_id == model.id, PredictionLogFile.hour.in_(hours)))) if hours else []
    versions = {v.id: v for v in model.versions}
    wanted = pa.array(sorted(request_ids), pa.string())
    found: dict[tuple[str, int], tuple[int, Any, str, list | None]] = {}
    artifacts = store()
    for f in files:
        try:
            with artifacts.reader(f.key) as path:
                table = pq.read_table(path)
        except FileNotFoundError:  # compacted meanwhile: the next round finds the new file
            continue
        if "error" in table.column_names:  # a failed request has no prediction to label
            table = table.filter(pc.is_null(table.column("error")))
        table = table.filter(pc.is_in(table.column("request_id"), value_set=wanted))
        for rid, row, at, predicted, proba in zip(*(table.column(c).to_pylist() for c in
                                                    ("request_id", "row", "at", "prediction", "proba"))):
            found[(rid, row)] = (f.model_version_id, at.replace(tzinfo=None), predicted, proba)
    joined: set[tuple[str, int]] = set()
    pending = list(db.session.scalars(select(PredictionLabel).where(
        PredictionLabel.model_id == model.id, PredictionLabel.request_id.in_(list(request_ids)))))
    touched: set[tuple[int, Any]] = set()
    for label in pending:
        key = (label.request_id, label.row)
        if label.model_version_id is not None:
            joined.add(key)
            continue
        hit = found.get(key)
        if hit is None:
            continue
        version_id, at, predicted, proba = hit
        version = versions.get(version_id)
        classes = [label_text(c) for c in (version.info.get("classes") or [])] if version is not None else []
        label.model_version_id, label.at = version_id, at
        if classes:
            label.predicted = None if predicted is None else label_text(predicted)
            if proba is not None and len(proba) == len(classes) and label.label in classes:
                p = min(max(proba[classes.index(label.label)], EPS), 1 - EPS)
                label.log_loss = -math.log(p)
            if len(classes) == 2:
                label.positive = label.label == classes[1]
                if proba is not None and len(proba) == 2:
                    label.score = float(proba[1])
                    label.score_bin = int(score_index(np.array([proba[1]]))[0])
        else:
            label.predicted = None if predicted is None else repr(float(predicted))
            if predicted is not None:
                label.error = float(predicted) - float(label.label)
        joined.add(key)
        touched.add((version_id, at))
    longest = timedelta(seconds=int(current_app.config.get("MONITOR_WINDOW_SECONDS", 3600)) * 168)
    for version_id, at in touched:  # the windows holding them: their figures are computed again
        db.session.execute(update(MonitorWindow).where(
            MonitorWindow.model_version_id == version_id, MonitorWindow.start <= at, MonitorWindow.start > at - longest)
            .values(reference=None, revision=MonitorWindow.revision + 1).execution_options(synchronize_session=False))
    db.session.commit()
    return joined


def retry() -> int:
    """Join labels that arrived before their records were written (for RETRY_HOURS)."""
    since = utcnow() - timedelta(hours=RETRY_HOURS)
    waiting = db.session.execute(select(PredictionLabel.model_id, PredictionLabel.request_id).where(
        PredictionLabel.model_version_id.is_(None), PredictionLabel.received_at >= since).limit(MAX_LABELS)).all()
    by_model: dict[int, set[str]] = {}
    for model_id, rid in waiting:
        by_model.setdefault(model_id, set()).add(rid)
    joined = 0
    for model_id, ids in by_model.items():
        model = db.session.get(RegisteredModel, model_id)
        if model is not None:
            joined += len(join(model, ids))
    return joined


def performance(model_id: int, version_id: int, start, end, classes: list[str], threshold: float | None = None,
                rows: int = 0) -> dict[str, Any] | None:
    """Realized performance of a window from its joined labels: counts-based metrics exact,
    ROC AUC from the score bins (``stats.roc_auc``), calibration per tenth of probability."""
    where = and_(PredictionLabel.model_id == model_id, PredictionLabel.model_version_id == version_id,
                 PredictionLabel.at >= start, PredictionLabel.at < end)
    labelled = db.session.scalar(select(func.count()).select_from(PredictionLabel).where(where)) or 0
    if not labelled:
        return None
    out: dict[str, Any] = {"labelled": labelled, "labelled_share": labelled / rows if rows else None}
    if not classes:
        count, abs_sum, sq_sum = db.session.execute(select(
            func.count(PredictionLabel.error), func.sum(func.abs(PredictionLabel.error)),
            func.sum(PredictionLabel.error * PredictionLabel.error)).where(where)).one()
        if count:
            out.update(mae=abs_sum / count, rmse=math.sqrt(sq_sum / count))
        return out
    if len(classes) == 2 and threshold is not None:  # the saved threshold decides
        decided = case((PredictionLabel.score >= threshold, classes[1]), else_=classes[0])
        predicted = case((PredictionLabel.score.is_(None), PredictionLabel.predicted), else_=decided)
    else:
        predicted = PredictionLabel.predicted
    pairs = db.session.execute(select(PredictionLabel.label, predicted, func.count()).where(where)
                               .group_by(PredictionLabel.label, predicted)).all()
    confusion = {(str(t), str(p)): int(n) for t, p, n in pairs}
    total = sum(confusion.values())
    out["accuracy"] = sum(n for (t, p), n in confusion.items() if t == p) / total
    out["confusion"] = {"classes": classes, "counts": [[confusion.get((t, p), 0) for p in classes] for t in classes]}
    per_class = {}
    for c in classes:
        tp = confusion.get((c, c), 0)
        predicted_c = sum(n for (_t, p), n in confusion.items() if p == c)
        actual_c = sum(n for (t, _p), n in confusion.items() if t == c)
        precision = tp / predicted_c if predicted_c else 0.0
        recall = tp / actual_c if actual_c else 0.0
        per_class[c] = {"precision": precision, "recall": recall,
                        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0}
    if len(classes) == 2:
        out.update(per_class[classes[1]])  # the positive class, as scikit-learn's binary average
    else:
        for name in ("precision", "recall", "f1"):
            out[name] = float(np.mean([m[name] for m in per_class.values()]))  # macro
    count, total_loss = db.session.execute(select(func.count(PredictionLabel.log_loss),
                                                  func.sum(PredictionLabel.log_loss)).where(where)).one()
    if count:
        out["log_loss"] = total_loss / count
    if len(classes) == 2:
        scores = ScoreSketch()
        for bin_, positive, n in db.session.execute(select(PredictionLabel.score_bin, PredictionLabel.positive,
                                                           func.count()).where(where, PredictionLabel.score_bin
                                                                               .is_not(None))
                                                    .group_by(PredictionLabel.score_bin, PredictionLabel.positive)):
            (scores.positives if positive else scores.negatives)[bin_] += n
        out["roc_auc"] = stats.roc_auc(scores)
        tenth = case((PredictionLabel.score >= 0.9, 9), else_=func.floor(PredictionLabel.score * 10))  # 1.0: the last
        out["calibration"] = [
            {"bin": int(b), "rows": int(n), "mean_probability": s / n, "positive_share": float(pos or 0) / n}
            for b, n, s, pos in db.session.execute(
                select(tenth, func.count(), func.sum(PredictionLabel.score),
                       func.sum(case((PredictionLabel.positive.is_(True), 1), else_=0)))
                .where(where, PredictionLabel.score.is_not(None)).group_by(tenth).order_by(tenth))]
    return out


def purge(model: RegisteredModel, cutoff) -> int:
    return db.session.execute(delete(PredictionLabel).where(
        PredictionLabel.model_id == model.id,
        or_(PredictionLabel.at < cutoff, and_(PredictionLabel.at.is_(None), PredictionLabel.received_at < cutoff))
    )).rowcount

