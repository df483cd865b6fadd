"""Monitoring: the prediction log summarised per window, and drift against a reference dataset.

The workers' reaper round calls ``maintain``:

1. each model's reference (the dataset chosen on its card, else the dataset of its first
   scoring job) is summarised once on the model's grids, streamed by row group;
2. each log file not yet summarised is claimed (a conditional UPDATE: one worker wins) and its
   records are merged into the summaries of their windows, at three lengths: the base window
   (``MONITOR_WINDOW_SECONDS``, an hour by default), a day and a week of them;
3. each window whose summary or reference changed gets its drift computed again.

Pages and the API read the stored drift (a few numbers per column and window), never records;
a changed reference re-bins summaries, never re-reads the log.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pyarrow.parquet as pq
from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from ..core.datasets.reading import iter_chunks
from ..core.drift import stats
from ..core.drift.sketch import CategoricalSketch, Grid, NumericSketch, label_text, latency_quantile
from ..core.drift.window import PREDICTION, Summary, numbers, summarise_records
from ..core.predlog import features_of
from ..infra.extensions import db
from ..infra.records import (Dataset, Job, ModelVersion, MonitorGrid, MonitorReference, MonitorWindow,
                             PredictionLogFile, RegisteredModel, utcnow)
from . import decisions, labels
from .artifacts import store
from .errors import ServiceError
from .predlog import settings_of

log = logging.getLogger(__name__)
SPANS = (1, 24, 168)  # window lengths in base windows: hour, day, week with the default base
SPAN_NAMES = {1: "hour", 24: "day", 168: "week"}
MAX_FILES_PER_ROUND = 200
REFERENCE_SAMPLE_ROWS = 100_000  # the grid of a numeric column comes from this many reference rows


def window_seconds() -> int:
    return int(current_app.config.get("MONITOR_WINDOW_SECONDS", 3600))


def thresholds_of(model: RegisteredModel) -> stats.Thresholds:
    chosen = (model.monitor or {}).get("thresholds") or {}
    return stats.Thresholds(**{f.name: chosen[f.name] for f in fields(stats.Thresholds) if f.name in chosen})


def reference_of(model: RegisteredModel) -> Dataset | None:
    """The chosen reference dataset, else the dataset of the model's first scoring job."""
    chosen = (model.monitor or {}).get("reference")
    if chosen:
        return db.session.get(Dataset, chosen)
    first = db.session.scalar(
        select(Job.dataset_id).join(ModelVersion, ModelVersion.id == Job.model_version_id)
        .where(ModelVersion.model_id == model.id, Job.kind == "score", Job.dataset_id.is_not(None))
        .order_by(Job.created_at).limit(1))
    return db.session.get(Dataset, first) if first else None


def set_monitor(model: RegisteredModel, changes: dict[str, Any]) -> dict[str, Any]:
    """Choose the reference dataset (an id of this project; null: the default) and change
    thresholds (names of ``stats.Thresholds``)."""
    monitor = dict(model.monitor or {})
    if "reference" in changes:
        reference = changes["reference"]
        if reference is not None:
            dataset = db.session.get(Dataset, reference) if isinstance(reference, str) else None
            if dataset is None or dataset.project_id != model.project_id or dataset.state != "ready":
                raise ServiceError("invalid", "bad_request", "reference must be the id of a ready dataset of this "
                                   "model's project (or null for the dataset of its first scoring job).")
        monitor["reference"] = reference
    if "thresholds" in changes:
        given = changes["thresholds"] or {}
        names = {f.name: f.type for f in fields(stats.Thresholds)}
        unknown = set(given) - set(names)
        if unknown:
            raise ServiceError("invalid", "bad_request", f"Unknown threshold {sorted(unknown)[0]!r}; the thresholds "
                               "are " + ", ".join(names) + ".")
        for name, value in given.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ServiceError("invalid", "bad_request", f"Threshold {name} must be a number of at least 0.")
        monitor["thresholds"] = {**monitor.get("thresholds", {}), **given}
    model.monitor = monitor or None
    db.session.commit()
    return monitor


# --- grids ------------------------------------------------------------------------------------------

def grids_of(model_id: int) -> dict[str, Grid]:
    return {g.column: Grid(g.center, g.scale) for g in db.session.scalars(
        select(MonitorGrid).where(MonitorGrid.model_id == model_id))}


def _fix_grids(model_id: int, wanted: dict[str, np.ndarray]) -> dict[str, Grid]:
    """The grids of these columns, made from these values where a column has none yet (the
    first summary wins: a concurrent worker's grid is read back)."""
    grids = grids_of(model_id)
    for column, values in wanted.items():
        if column in grids:
            continue
        grid = Grid.for_values(values)
        try:
            db.session.add(MonitorGrid(model_id=model_id, column=column, center=grid.center, scale=grid.scale))
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
    return grids_of(model_id)


def _kinds(info: dict[str, Any]) -> tuple[list[str], set[str], dict[str, frozenset[str]]]:
    features = features_of(info)
    categorical = {f.name for f in features if f.categorical}
    known = {f["name"]: frozenset(label_text(c) for c in f["categories"] if c is not None)
             for f in info.get("input_schema") or [] if f.get("kind") == "categorical" and f.get("categories")}
    return [f.name for f in features], categorical, known



# --- references -------------------------------------------------------------------------------------

def refresh_reference(model: RegisteredModel) -> MonitorReference | None:
    """The model's reference summary, made now if the reference changed (streamed by row group)."""
    dataset = reference_of(model)
    stored = db.session.get(MonitorReference, model.id)
    if dataset is None or dataset.state != "ready" or not dataset.path:
        return stored if stored is not None and dataset is None and not (model.monitor or {}).get("reference") \
            else None
    if stored is not None and stored.dataset_id == dataset.id:
        return stored
    latest = model.latest
    if latest is None:
        return None
    names, categorical, known = _kinds(latest.info)
    present = [n for n in names if n in dataset.columns]
    with store().reader(dataset.path) as path:
        summary, _grids = summarise_dataset(path, present, categorical, known,
                                            lambda sample: _fix_grids(model.id, sample))
    if stored is None:
        stored = MonitorReference(model_id=model.id)
        db.session.add(stored)
    stored.dataset_id, stored.rows, stored.summary, stored.created_at = dataset.id, summary.rows, summary.to_bytes(), \
        utcnow()
    try:
        db.session.commit()
    except IntegrityError:  # another worker summarised it at the same time: theirs stands
        db.session.rollback()
        return db.session.get(MonitorReference, model.id)
    return stored


def summarise_dataset(path, columns: list[str], categorical: set[str], known: dict[str, frozenset[str]],
                      grids_for, progress=None) -> tuple[Summary, dict[str, Grid]]:
    """A dataset's summary on fixed grids, streamed by row group: ``grids_for`` gets the first
    rows' numbers per numeric column (at most REFERENCE_SAMPLE_ROWS) and returns the grids;
    ``progress`` (if given) the rows of each row group done."""
    summary, grids = Summary(), None
    numeric = [n for n in columns if n not in categorical]
    for _start, table in iter_chunks(path, columns=columns):
        if grids is None:
            grids = grids_for({n: numbers(table.column(n))[:REFERENCE_SAMPLE_ROWS] for n in numeric})
        part = Summary(rows=table.num_rows, sampled=table.num_rows)
        for name in columns:
            column = table.column(name)
            part.columns[name] = CategoricalSketch().add(column.to_numpy(zero_copy_only=False), known.get(name)) \
                if name in categorical else NumericSketch(grids[name]).add(numbers(column))
        summary.merge(part)
        if progress is not None:
            progress(table.num_rows)
    return summary, grids or {}


def _reference_key(reference: MonitorReference | None) -> str | None:
    return f"{reference.dataset_id}@{reference.created_at:%Y%m%dT%H%M%S%f}" if reference is not None else None


# --- aggregation ----------------------------------------------------------------------------------

def aggregate(limit: int = MAX_FILES_PER_ROUND) -> int:
    """Summarise log files not yet in their windows; returns the files summarised."""
    pending = list(db.session.execute(select(PredictionLogFile.id, PredictionLogFile.model_id)
                                      .where(PredictionLogFile.aggregated.is_(False))
                                      .order_by(PredictionLogFile.id).limit(limit)))
    done = 0
    for file_id, model_id in pending:
        # (a deleted model's files are marked done by _aggregate_file, then purged with their records)
        done += _aggregate_file(file_id, db.session.get(RegisteredModel, model_id))
    return done


def _aggregate_file(file_id: int, model: RegisteredModel | None) -> int:
    found = db.session.get(PredictionLogFile, file_id)
    if found is None:  # compacted or deleted meanwhile
        return 0
    version = db.session.get(ModelVersion, found.model_version_id) if model is not None else None
    try:
        if version is None:  # the version (or model) was deleted: its records have no windows to go to
            raise FileNotFoundError(found.key)
        with store().reader(found.key) as path:
            table = pq.read_table(path)
    except FileNotFoundError:
        # Marked done, never retried: a file nothing can summarise must not hold the queue up
        # (``aggregate`` takes the oldest files first). Compaction and retention still see it.
        db.session.rollback()
        db.session.execute(update(PredictionLogFile).where(PredictionLogFile.id == file_id)
                           .values(aggregated=True).execution_options(synchronize_session=False))
        db.session.commit()
        return 0
    names, categorical, known = _kinds(version.info)
    classifier = version.info.get("classes") is not None
    classes = version.info.get("classes") or []
    positive = 1 if classifier and len(classes) == 2 else None
    wanted: dict[str, np.ndarray] = {}
    inputs = table.column("inputs")
    for i in range(inputs.type.num_fields):
        name = inputs.type.field(i).name
        if name not in categorical:
            wanted[name] = numbers(inputs.combine_chunks().field(i) if hasattr(inputs, "combine_chunks")
                                   else inputs.field(i))
    if not classifier:
        wanted[PREDICTION] = numbers(table.column("prediction"))
    grids = _fix_grids(model.id, wanted)
    base = window_seconds()
    # Claim the file: only one worker's UPDATE moves it, and its windows change in the same transaction.
    claimed = db.session.execute(update(PredictionLogFile).where(
        PredictionLogFile.id == file_id, PredictionLogFile.aggregated.is_(False)).values(aggregated=True)
        .execution_options(synchronize_session=False))
    if claimed.rowcount != 1:
        db.session.rollback()
        return 0
    for span in SPANS:
        seconds = base * span
        for start, summary in summarise_records(table, categorical=categorical, grids=grids, known=known,
                                                classifier=classifier, positive=positive,
                                                window_seconds=seconds).items():
            _merge_window(model, version, seconds, datetime.fromtimestamp(start, UTC).replace(tzinfo=None), summary)
    db.session.commit()
    return 1


def _merge_window(model, version, seconds: int, start: datetime, summary: Summary) -> None:
    window = db.session.scalar(select(MonitorWindow).where(
        MonitorWindow.model_version_id == version.id, MonitorWindow.seconds == seconds,
        MonitorWindow.start == start).with_for_update())
    if window is None:
        window = MonitorWindow(model_id=model.id, model_version_id=version.id, version=version.version,
                               seconds=seconds, start=start, rows=0, summary=summary.to_bytes(), revision=0)
        db.session.add(window)
        merged = summary
    else:
        merged = Summary.from_bytes(window.summary).merge(summary)
        window.summary = merged.to_bytes()
    window.revision += 1  # (also where labels or settings make it stale: ``_store_drift`` checks it)
    window.rows = merged.rows
    window.reference = None  # its drift is computed again (``refresh_drift``)
    window.drift = None
    db.session.flush()


# --- drift ------------------------------------------------------------------------------------------

def drift_of(summary: Summary, reference: Summary | None, thresholds: stats.Thresholds,
             categorical: set[str]) -> dict[str, Any]:
    """A window's figures: traffic, latency, and per column its missing and unknown shares and
    drift against the reference (None where there is no reference or too few rows to judge)."""
    columns: dict[str, Any] = {}
    judged = drifted = 0
    for name, current in summary.columns.items():
        ref = reference.columns.get(name) if reference is not None else None
        figures: dict[str, Any] = {"kind": "categorical" if isinstance(current, CategoricalSketch) else "numeric",
                                   "rows": current.n + current.missing, "missing": current.missing}
        if isinstance(current, CategoricalSketch):
            figures["unknown"] = current.unknown
        if ref is not None and type(ref) is type(current) and \
                (not isinstance(current, NumericSketch) or ref.grid == current.grid):
            enough = stats.enough_rows(ref, current, thresholds)
            if isinstance(current, NumericSketch):
                w, p = stats.wasserstein(ref, current), stats.psi(ref, current)
                figures.update(wasserstein=w, psi=p)
                flagged = w is not None and w > thresholds.wasserstein
                figures["psi_level"] = None if p is None else (
                    "major" if p > thresholds.psi_major else "moderate" if p > thresholds.psi_moderate else "none")
            else:
                js = stats.jensen_shannon(ref, current)
                figures.update(jensen_shannon=js, chi_square_p=stats.chi_square_p(ref, current))
                flagged = js is not None and js > thresholds.jensen_shannon
            figures["drift"] = bool(flagged) if enough else None
            figures["enough_rows"] = enough
            if enough and name != PREDICTION:
                judged += 1
                drifted += bool(flagged)
        columns[name] = figures
    prediction = columns.pop(PREDICTION, None)
    cells = sum(f["rows"] for f in columns.values())
    return {
        "rows": summary.rows, "requests": summary.requests, "sampled": summary.sampled, "errors": summary.errors,
        "error_rate": summary.errors / (summary.requests + summary.errors) if summary.requests + summary.errors
        else None,
        "missing_share": sum(f["missing"] for f in columns.values()) / cells if cells else None,
        "unknown_share": sum(f.get("unknown", 0) for f in columns.values()) / cells if cells else None,
        "latency_p50_ms": latency_quantile(summary.latency, 0.5),
        "latency_p99_ms": latency_quantile(summary.latency, 0.99),
        "columns": columns, "prediction": prediction,
        "judged": judged, "drifted": drifted,
        "dataset_drift": (drifted >= thresholds.dataset_share * judged) if judged else None,
    }


def _with_baseline(reference: Summary | None, model_id: int, version_id: int, seconds: int,
                   min_rows: int) -> Summary | None:
    """The reference plus the predictions to compare a window's with: those of the version's
    first window of this length with at least ``min_rows`` rows (the reference dataset has
    inputs, not served predictions)."""
    first = db.session.scalar(select(MonitorWindow).where(
        MonitorWindow.model_id == model_id, MonitorWindow.model_version_id == version_id,
        MonitorWindow.seconds == seconds, MonitorWindow.rows >= min_rows).order_by(MonitorWindow.start).limit(1))
    baseline = Summary.from_bytes(first.summary).columns.get(PREDICTION) if first is not None else None
    if baseline is None:
        return reference
    combined = Summary(columns=dict(reference.columns) if reference is not None else {})
    combined.columns[PREDICTION] = baseline
    return combined


def _classes(version_id: int) -> list[str]:
    version = db.session.get(ModelVersion, version_id)
    return [label_text(c) for c in (version.info.get("classes") or [])] if version is not None else []


def refresh_drift(model: RegisteredModel, limit: int = 2000) -> int:
    """Compute the drift of windows whose summary or reference changed; returns how many."""
    reference_row = refresh_reference(model)
    key = _reference_key(reference_row) or "none"
    reference = Summary.from_bytes(reference_row.summary) if reference_row is not None else None
    thresholds = thresholds_of(model)
    stale = list(db.session.scalars(select(MonitorWindow).where(  # (a JSON column's None is JSON null, not NULL)
        MonitorWindow.model_id == model.id, MonitorWindow.reference.is_(None) | (MonitorWindow.reference != key))
        .order_by(MonitorWindow.start).limit(limit)))
    if not stale:
        return 0
    categorical: dict[int, set[str]] = {}
    classes: dict[int, list[str]] = {}
    references: dict[tuple[int, int], Summary | None] = {}
    for window in stale:
        if window.model_version_id not in categorical:
            version = db.session.get(ModelVersion, window.model_version_id)
            categorical[window.model_version_id] = _kinds(version.info)[1] if version is not None else set()
        against = (window.model_version_id, window.seconds)
        if against not in references:
            references[against] = _with_baseline(reference, model.id, window.model_version_id, window.seconds,
                                                 thresholds.min_rows_numeric)
        figures = drift_of(Summary.from_bytes(window.summary), references[against], thresholds,
                           categorical[window.model_version_id])
        version = db.session.get(ModelVersion, window.model_version_id)
        figures["performance"] = labels.performance(
            model.id, window.model_version_id, window.start, window.start + timedelta(seconds=window.seconds),
            classes.setdefault(window.model_version_id, _classes(window.model_version_id)), rows=window.rows,
            threshold=decisions.value_of(version) if version is not None else None)
        _store_drift(window.id, window.revision, figures, key)
    db.session.commit()
    return len(stale)


def _store_drift(window_id: int, revision: int, figures: dict[str, Any], key: str) -> bool:
    """Store a window's drift only over the summary it was computed from (``revision``): after a
    merge by another worker meanwhile the window stays stale for the next round. False then."""
    return db.session.execute(update(MonitorWindow).where(
        MonitorWindow.id == window_id, MonitorWindow.revision == revision)
        .values(drift=figures, reference=key).execution_options(synchronize_session=False)).rowcount == 1


def maintain() -> dict[str, int]:
    """One round of the workers' upkeep: summarise new log files, then compute stale drift."""
    counts = {"summarised": aggregate(), "labels_joined": labels.retry(), "drift": 0}
    # Every model with windows: a reference can change without a setting (the default is the dataset
    # of the first scoring job, which may run after the first predictions).
    for model in db.session.scalars(select(RegisteredModel).where(RegisteredModel.id.in_(
            select(MonitorWindow.model_id).distinct()))).all():
        counts["drift"] += refresh_drift(model)
    return counts


def settings_changed(model: RegisteredModel) -> None:
    """A new reference or thresholds: every window's drift is computed again."""
    db.session.execute(update(MonitorWindow).where(MonitorWindow.model_id == model.id)
                       .values(reference=None, revision=MonitorWindow.revision + 1)
                       .execution_options(synchronize_session=False))
    db.session.commit()


def purge(now: datetime | None = None) -> int:
    """Window summaries older than their model's log retention go with the records."""
    now = now or utcnow()
    removed = 0
    for model in db.session.scalars(select(RegisteredModel)):
        cutoff = now - timedelta(days=settings_of(model)["retention_days"])
        removed += db.session.execute(delete(MonitorWindow).where(
            MonitorWindow.model_id == model.id, MonitorWindow.start < cutoff - timedelta(days=7))).rowcount
        labels.purge(model, cutoff)
    db.session.commit()
    return removed


# --- reading ----------------------------------------------------------------------------------------

def report(model: RegisteredModel, *, span: int = 1, last: int = 48, version: int | None = None) -> dict[str, Any]:
    """The drift report of a model: its last ``last`` windows of ``span`` base windows, per
    version (an alias that moved shows both versions' windows), newest last."""
    if span not in SPANS:
        raise ServiceError("invalid", "bad_request", "window must be hour, day or week.")
    seconds = window_seconds() * span
    statement = select(MonitorWindow).where(MonitorWindow.model_id == model.id, MonitorWindow.seconds == seconds)
    if version is not None:
        statement = statement.where(MonitorWindow.version == version)
    windows = list(db.session.scalars(statement.order_by(MonitorWindow.start.desc(), MonitorWindow.version)
                                      .limit(last * 4)))
    starts = sorted({w.start for w in windows})[-last:]
    windows = sorted([w for w in windows if w.start in set(starts)], key=lambda w: (w.start, w.version))
    reference = db.session.get(MonitorReference, model.id)
    dataset = reference_of(model)
    thresholds = thresholds_of(model)
    return {
        "model": model.name,
        "window": SPAN_NAMES[span], "window_seconds": seconds,
        "reference": None if dataset is None else {
            "dataset": dataset.id, "name": dataset.name, "rows": reference.rows if reference is not None
            and reference.dataset_id == dataset.id else None,
            "chosen": bool((model.monitor or {}).get("reference"))},
        "thresholds": asdict(thresholds),
        "windows": [{"start": _iso(w.start), "end": _iso(w.start + timedelta(seconds=w.seconds)),
                     "label": _label(w.start, seconds),
                     "version": w.version, "pending": w.reference is None, **(w.drift or {"rows": w.rows})}
                    for w in windows],
    }


def _label(start: datetime, seconds: int) -> str:
    """A window's start as its length needs: the day, the hour, the minute or the second."""
    return start.strftime("%Y-%m-%d" if seconds % 86400 == 0 else "%m-%d %H:%M" if seconds % 60 == 0
                          else "%m-%d %H:%M:%S")


def _iso(value: datetime) -> str:
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


HIDDEN = "(other values, seen only in the log)"


def cell(model: RegisteredModel, version: int, start: datetime, seconds: int, column: str, *,
         raw: bool = False) -> dict[str, Any]:
    """One window's distribution of one column beside the reference's (``distribution``): what
    the heat map's cell opens. Without ``raw`` (a project's viewers, who may
    not see logged inputs) a categorical column shows only values the model or the reference
    dataset knows; any other value the log holds is counted under HIDDEN."""
    window = db.session.scalar(select(MonitorWindow).where(
        MonitorWindow.model_id == model.id, MonitorWindow.version == version, MonitorWindow.seconds == seconds,
        MonitorWindow.start == start))
    if window is None:
        raise ServiceError("not_found", "not_found", "No such window: it may be past the log's retention.")
    current = Summary.from_bytes(window.summary).columns.get(column)
    if current is None:
        raise ServiceError("not_found", "not_found", f"The window has no column {column[:100]!r}.")
    reference_row = db.session.get(MonitorReference, model.id)
    reference = Summary.from_bytes(reference_row.summary).columns.get(column) if reference_row is not None else None
    out: dict[str, Any] = {"column": column, "version": version, "start": _iso(start), "seconds": seconds,
                           "figures": (window.drift or {}).get("columns", {}).get(column)}
    if isinstance(current, CategoricalSketch):
        if not raw:
            stored = db.session.get(ModelVersion, window.model_version_id)
            info = stored.info if stored is not None else {}
            allowed = set(reference.counts) if isinstance(reference, CategoricalSketch) else set()
            allowed |= _kinds(info)[2].get(column, frozenset())
            allowed |= {label_text(c) for c in (info.get("classes") or [])} if column == PREDICTION else set()
            hidden = sum(n for k, n in current.counts.items() if k not in allowed)
            current = CategoricalSketch({k: n for k, n in current.counts.items() if k in allowed}
                                        | ({HIDDEN: hidden} if hidden else {}), current.missing, current.unknown)
    out.update(distribution(current, reference))
    return out


def distribution(current, reference) -> dict[str, Any]:
    """One column's two distributions as shares on shared bins (numeric: up to 60 between the
    0.5 % and 99.5 % quantiles of both; categorical: the 30 most common categories of each, at
    most 40); the reference's None when it has none of that kind."""
    if isinstance(current, CategoricalSketch):
        labels = [k for k, _ in sorted(current.counts.items(), key=lambda kv: -kv[1])[:30]]
        if isinstance(reference, CategoricalSketch):
            labels = list(dict.fromkeys(labels + [k for k, _ in sorted(reference.counts.items(),
                                                                        key=lambda kv: -kv[1])[:30]]))[:40]
        return {"kind": "categorical", "labels": labels,
                "current": [current.counts.get(k, 0) / max(current.n, 1) for k in labels],
                "reference": [reference.counts.get(k, 0) / max(reference.n, 1) for k in labels]
                if isinstance(reference, CategoricalSketch) else None}
    both = [s for s in (current, reference) if isinstance(s, NumericSketch) and s.n]
    if not both:
        return {"kind": "numeric", "edges": [], "current": [], "reference": None}
    low = min(stats.quantiles(s, [0.005])[0] for s in both)
    high = max(stats.quantiles(s, [0.995])[0] for s in both)
    edges = np.linspace(low, high, 61) if high > low else np.array([low - 0.5, low + 0.5])

    def shares(sketch: NumericSketch) -> list[float]:
        values, weights = sketch.points()
        counts, _ = np.histogram(np.clip(values, edges[0], edges[-1]), bins=edges, weights=weights)
        return (counts / max(weights.sum(), 1)).tolist()

    return {"kind": "numeric", "edges": edges.tolist(),
            "current": shares(current) if current.n else [0.0] * (len(edges) - 1),
            "reference": shares(reference) if isinstance(reference, NumericSketch) and reference.n else None}
