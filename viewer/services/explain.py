"""Why a prediction: each input column's contribution (``core.explain``), computed where the
model runs (its host), measured from a background of typical rows.

The background is a seeded sample of ``EXPLAIN_BACKGROUND_ROWS`` rows of the model's reference
dataset (``monitoring.reference_of``: the chosen one, else its first scoring job's), else of a
dataset it was scored on or that has its columns, prepared exactly as a scoring job prepares a
chunk; rows with missing values are left out when enough others remain. A model with no such
dataset is measured from one row of typical values from its schema (the model card's example),
and the answer says so. Backgrounds are cached per process for ``BACKGROUND_SECONDS``.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Any

import numpy as np
from flask import current_app

from ..core.explain import NOTE, Background, Budget, Explained, columns_of
from ..core.payload import PayloadError, Table
from ..core.predictor import InputSchema, to_jsonable
from . import hosts, monitoring, registry
from .errors import ServiceError

MAX_EXPLAIN_ROWS = 100
MIN_COMPLETE_ROWS = 10
BACKGROUND_SECONDS = 60.0
SEED = 0

_cache: dict[tuple[Any, str], tuple[float, str, Background, dict[str, Any]]] = {}
_lock = threading.Lock()


def budget() -> Budget:
    config = current_app.config
    return Budget(max_evaluations=int(config.get("EXPLAIN_EVALUATIONS", 4096)),
                  seconds=float(config.get("EXPLAIN_SECONDS", 2.0)))


def check_rows(n_rows: int) -> None:
    if n_rows > MAX_EXPLAIN_ROWS:
        raise PayloadError(f"explain=true takes at most {MAX_EXPLAIN_ROWS} rows per request; this one has "
                           f"{n_rows}. Send fewer rows, or leave explain out to predict them all.", "TOO_MANY_ROWS", 413)


def explain(served, predictor: InputSchema, X: Any) -> dict[str, Any]:
    """The ``explanations`` field of a prediction's answer for the rows ``X`` (prepared)."""
    return explain_version((served.project_id, served.sha256), lambda: registry.resolve(served.ref), predictor, X,
                           served.ref)


def explain_version(key: tuple[Any, str], version_of, predictor: InputSchema, X: Any, label: str) -> dict[str, Any]:
    """The same for the model version ``version_of()`` returns (called only when its background
    is not cached), ``key`` its (project id, sha256)."""
    if predictor.info.get("kind") not in ("classifier", "regressor"):
        raise PayloadError("Only classifiers' and regressors' predictions can be explained.", "UNSUPPORTED_OUTPUT")
    background, source = background_for(key, version_of, predictor)
    # An explanation that outruns its host's deadline is not the model failing its predictions: it
    # does not count toward the version's quarantine (no version key).
    explained = hosts.guarded(lambda: predictor.explain(X, background, budget()), label, None)
    return as_json(explained, predictor, columns_of(predictor, X.frame if hasattr(X, "frame") else X), source)


def as_json(explained: Explained, predictor: InputSchema, columns: list[str], source: dict[str, Any]) -> dict[str, Any]:
    """The explanations in the API's terms; the columns the model drops (its column transformer
    never reads them: their contribution is 0) are left out."""
    labels = predictor.classes_json
    kept = [j for j, name in enumerate(columns) if name not in predictor.unused]
    names = [columns[j] for j in kept]
    rows = []
    for i in range(len(explained.values)):
        k = int(explained.classes[i])
        row: dict[str, Any] = {
            "class": labels[k] if labels is not None and k >= 0 else None,
            "base": float(explained.base[i]), "output": float(explained.output[i]),
            "contributions": dict(zip(names, to_jsonable(explained.values[i][kept]))),
        }
        if explained.other[i] != 0:
            row["other"] = float(explained.other[i])  # features no single input column could be given
        rows.append(row)
    out: dict[str, Any] = {"method": explained.method, "output": explained.output_kind, "note": NOTE,
                           "background": source, "rows": rows}
    if explained.method == "sampling":
        out["reason"] = explained.reason
        out["sampling"] = explained.sampling
    return out


# --- the background ------------------------------------------------------------------------------

def background_for(key: tuple[Any, str], version_of, predictor: InputSchema) -> tuple[Background, dict[str, Any]]:
    now = time.monotonic()
    hit = _cache.get(key)
    if hit is not None and now - hit[0] < BACKGROUND_SECONDS:
        return hit[2], hit[3]
    version = version_of()
    found = _from_datasets(version, predictor)
    identity = found[0] if found is not None else f"schema:{version.sha256}"
    if hit is not None and hit[1] == identity:  # the same rows: keep them (and the hosts' explainers)
        background, source = hit[2], hit[3]
    elif found is not None:
        background, source = found[1], found[2]
    else:
        background, source = _from_schema(version, predictor)
    with _lock:
        _cache[key] = (now, identity, background, source)
        while len(_cache) > 64:
            _cache.pop(next(iter(_cache)))
    return background, source


def forget() -> None:
    with _lock:
        _cache.clear()


def _from_datasets(version, predictor: InputSchema) -> tuple[str, Background, dict[str, Any]] | None:
    from ..core.datasets import DatasetError
    from ..core.datasets.reading import sample_rows, to_frame
    from ..core.scoring import features
    from . import datasets

    columns = registry.input_columns(version.info or {})
    reference = monitoring.reference_of(version.model)
    candidates = ([reference] if reference is not None else []) + list(
        registry.candidate_datasets(version, columns) if columns else [])
    wanted = int(current_app.config.get("EXPLAIN_BACKGROUND_ROWS", 100))
    for dataset in candidates:
        if dataset.state != "ready" or not dataset.path or dataset.project_id != version.model.project_id:
            continue
        try:
            with datasets.get_file(dataset) as path:
                table, _rows = sample_rows(path, wanted, columns=_present(columns, dataset), seed=SEED)
            X = features(predictor, to_frame(table), None)
        except (DatasetError, PayloadError, ServiceError, OSError, ValueError):
            continue
        X = _complete(X)
        if len(X):
            identity = f"{dataset.id}:{dataset.path}:{wanted}"
            key = hashlib.sha256(f"{version.sha256}:{identity}".encode()).hexdigest()[:32]
            return identity, Background(key, X), {"source": "dataset", "dataset": dataset.name, "rows": len(X)}
    return None


def _present(columns: list[str] | None, dataset) -> list[str] | None:
    """The model's columns the dataset has (a column the model drops may be absent)."""
    if columns is None:
        return None
    names = {c.get("name") for c in (dataset.info or {}).get("columns") or [] if isinstance(c, dict)}
    return [c for c in columns if c in names]


def _complete(X: Any) -> Any:
    """The rows without a missing value, when at least ``MIN_COMPLETE_ROWS`` are (a model may not
    take missing values, and the request's row is compared with these)."""
    if isinstance(X, np.ndarray):
        mask = np.isfinite(X).all(axis=1)
        return X[mask] if mask.sum() >= MIN_COMPLETE_ROWS else X
    mask = X.notna().all(axis=1).to_numpy()
    return X[mask].reset_index(drop=True) if mask.sum() >= MIN_COMPLETE_ROWS else X


def _from_schema(version, predictor: InputSchema) -> tuple[Background, dict[str, Any]]:
    """One row of typical values from the model's schema (its recorded defaults, else its first
    category): never a real row of a dataset, whose values an explanation would give away."""
    info = version.info or {}
    columns = registry.input_columns(info)
    if columns is None:
        n = int(info.get("n_features") or 1)
        specs = [s for s in (info.get("input_schema") or [])[:n] if isinstance(s, dict)]
        row = [s["default"] if isinstance(s.get("default"), (int, float)) else 0.0 for s in specs] + [0.0] * (n - len(specs))
        table = Table(columns=None, rows=[row])
    else:
        values = registry.row_from_schema(info, columns)
        table = Table(columns=list(columns), rows=[[values[c] for c in columns]])
    return Background(f"schema:{version.sha256}", predictor.prepare(table)), {"source": "schema", "rows": 1}
