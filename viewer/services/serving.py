"""Serving predictions: find a model version fast and answer with the one predict path.

On the request path there is no file read and at most one small query per few seconds:
- a reference (``name``, ``name@alias``, ``name/3``) is resolved through a short-lived cache
  (``REF_CACHE_SECONDS``; moving an alias takes effect within that time in other processes);
- the ``Predictor`` (loaded estimator + schema + fast path) is cached per process by sha256.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from flask import current_app
from threadpoolctl import threadpool_limits

from ..core.cache import LRUCache
from ..core.payload import PayloadError, Table
from ..core.predictor import Predictor, labels_at, to_jsonable
from ..infra.scope import current
from . import registry

REF_CACHE_SECONDS = 3.0
MAX_PREDICT_ROWS = 100_000


@dataclass(frozen=True)
class Served:
    name: str
    version: int
    sha256: str
    anonymous: bool
    predictor: Predictor

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


# (project id, ref) -> (checked, generation, ...): the same name means another model in another project
_refs: dict[tuple[int | None, str], tuple[float, int, str, str, int, bool]] = {}
_refs_lock = threading.Lock()
_predictors: LRUCache[Predictor] = LRUCache(maxsize=16)


def forget(name: str | None = None) -> None:
    """Drop cached references (all, or those of one model), e.g. after an alias moved here."""
    with _refs_lock:
        for key in [k for k in _refs if name is None or k[1].split("@")[0].split("/")[0] == name]:
            del _refs[key]


def resolve(ref: str) -> Served:
    now = time.monotonic()
    key = (current().project_id, ref)
    hit = _refs.get(key)
    if hit is None or now - hit[0] > REF_CACHE_SECONDS or hit[1] != registry.generation:
        version = registry.resolve(ref)
        hit = (now, registry.generation, version.sha256, version.model.name, version.version,
               version.model.anonymous_predict)
        with _refs_lock:
            _refs[key] = hit
        if version.sha256 not in _predictors:
            _predictors.get(version.sha256, lambda: _build(version))
    _, _generation, sha, name, number, anonymous = hit
    predictor = _predictors.get(sha, lambda: _build(registry.resolve(f"{name}/{number}")))
    return Served(name, number, sha, anonymous, predictor)


def predictor_for(version) -> Predictor:
    """The predictor of an exact model version (by content hash): what jobs use, since a name
    and number can point at new content after a model is deleted and uploaded again."""
    return _predictors.get(version.sha256, lambda: _build(version))


def _build(version) -> Predictor:
    estimator = registry.load(version)
    # Threads: one BLAS/OpenMP thread per serving process (several processes share the cores).
    # threadpoolctl limits the libraries loaded so far, which by now includes scikit-learn's.
    threadpool_limits(limits=current_app.config.get("MATH_THREADS", 1))
    return Predictor(estimator, version.info)


def anonymous_allowed(ref: str) -> bool:
    try:
        return resolve(ref).anonymous
    except Exception:  # noqa: BLE001  (unknown model: let the token check answer 401 first)
        return False


def check_size(table: Table) -> None:
    if table.n_rows > MAX_PREDICT_ROWS:
        raise PayloadError(f"{table.n_rows} rows is more than the {MAX_PREDICT_ROWS} a request may carry; "
                           "score large inputs with a scoring job (POST /api/v1/jobs).", "TOO_MANY_ROWS", 413)


def wants_proba(params: dict[str, Any], query_output: str | None) -> bool:
    # Every value given must be valid (a bad one is not hidden behind a good one); the first wins.
    given = [v for v in (params.get("predict_method"), params.get("output"), query_output) if v is not None]
    if any(v not in ("predict", "predict_proba", "proba") for v in given):
        raise PayloadError("'output' must be 'predict' or 'proba' (MLflow: params.predict_method "
                           "'predict' or 'predict_proba').")
    return bool(given) and given[0] in ("predict_proba", "proba")


def run(served: Served, table: Table, *, proba: bool) -> dict[str, Any]:
    """The one predict path: validate, predict, JSON-safe result."""
    check_size(table)
    predictor = served.predictor
    X = predictor.prepare(table)
    if proba:
        probabilities = predictor.predict_proba(X)
        indices = probabilities.argmax(axis=1)
        if predictor.classes:
            labels, classes = labels_at(predictor.class_labels, indices), predictor.classes_json
        else:
            classes = list(range(probabilities.shape[1]))
            labels, classes = labels_at(classes, indices), to_jsonable(classes)
        return {"predictions": labels, "classes": classes, "probabilities": to_jsonable(probabilities)}
    return {"predictions": to_jsonable(predictor.predict(X))}


def infer_outputs(served: Served, table: Table, wanted: list[str] | None) -> list[tuple[str, Any]]:
    """KServe V2: the named outputs (``predict``, ``predict_proba``; all it offers when none are
    named) as (name, array) pairs."""
    predictor = served.predictor
    available = ["predict"] + (["predict_proba"] if predictor.has_proba else [])
    wanted = wanted or available
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise PayloadError(f"Unknown output {unknown[0][:64]!r}; this model offers {', '.join(available)}.")
    check_size(table)
    X = predictor.prepare(table)
    return [(name, predictor.predict(X) if name == "predict" else predictor.predict_proba(X)) for name in wanted]


def versions_of(name: str) -> list[int]:
    return [v.version for v in registry.get_model(name).versions]
