"""Serving predictions: find a model version fast and answer with the one predict path.

On the request path there is no file read and at most one small query per few seconds:
- a reference (``name``, ``name@alias``, ``name/3``) is resolved through a short-lived cache
  (``REF_CACHE_SECONDS``; moving an alias takes effect within that time in other processes);
- the predictor (the input schema, and a model host that runs the model: ``services.hosts``) is
  cached per process by sha256.
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
from ..core.predictor import InputSchema, Predictor, labels_at, to_jsonable
from ..core.schema_policy import collecting, model_warnings, strict_refusal
from ..infra.host.pool import HostedPredictor
from ..infra.scope import current
from . import decisions, hosts, predlog, registry, runtimes
from . import explain as explaining
from .errors import ServiceError

REF_CACHE_SECONDS = 3.0
MAX_PREDICT_ROWS = 100_000


@dataclass(frozen=True)
class Served:
    name: str
    version: int
    sha256: str
    anonymous: bool
    predictor: InputSchema  # a HostedPredictor, or a Predictor with MODEL_HOSTS off
    quarantined: str | None = None  # why, when its host failed too often (services.hosts)
    project_id: int | None = None
    log: predlog.Target | None = None  # where its prediction log goes; None: not logged
    threshold: float | None = None  # a binary classifier's saved decision threshold (services.decisions)

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"

    @property
    def version_key(self) -> tuple[int, str] | None:
        return (self.project_id, self.sha256) if self.project_id is not None else None


# (project id, ref) -> (checked, generation, ...): the same name means another model in another project
_refs: dict[tuple[int | None, str], tuple[Any, ...]] = {}
_refs_lock = threading.Lock()
_predictors: LRUCache[InputSchema] = LRUCache(maxsize=16)


def forget(name: str | None = None) -> None:
    """Drop cached references (all, or those of one model), e.g. after an alias moved here; all of
    them drops the explanation backgrounds too."""
    if name is None:
        explaining.forget()
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
               version.model.anonymous_predict, version.quarantine_reason if version.quarantined_at else None,
               version.model.project_id, runtimes.for_host(version), predlog.Target.of(version),
               decisions.value_of(version))
        with _refs_lock:
            _refs[key] = hit
    _, _generation, sha, name, number, anonymous, quarantined, project_id, runtime, target, threshold = hit
    if quarantined is not None:  # no host is started for it
        return Served(name, number, sha, anonymous, None, quarantined, project_id, target, threshold)
    predictor = _predictors.get((project_id, sha, _tag(runtime)),
                                lambda: _build(registry.resolve(f"{name}/{number}"), runtime))
    return Served(name, number, sha, anonymous, predictor, None, project_id, target, threshold)


def _tag(runtime: dict[str, Any] | None) -> str:
    """Which runtime answers (its compiled library's key, or "" for the model's own library): part
    of the predictor cache's key, and the predictor is built with exactly that runtime, so one
    that passes, is rebuilt or is switched off takes effect within ``REF_CACHE_SECONDS``."""
    return runtime["library_key"] if runtime else ""


def serving(served: Served) -> InputSchema:
    """The served version's predictor; a quarantined version answers 409 with the reason."""
    if served.quarantined is not None:
        raise ServiceError("conflict", "model_quarantined",
                           f"{served.ref} is quarantined: {served.quarantined} A project admin can release it on "
                           "the model's page once the cause is fixed.", model=served.ref)
    return served.predictor


def predictor_for(version) -> InputSchema:
    """The predictor of an exact model version (by content hash): what jobs use, since a name
    and number can point at new content after a model is deleted and uploaded again. A job's
    chunk may take longer than a request: its deadline is ``JOB_HOST_TIMEOUT_SECONDS``."""
    runtime = runtimes.for_host(version)
    predictor = _predictors.get((version.model.project_id, version.sha256, _tag(runtime)),
                                lambda: _build(version, runtime))
    if isinstance(predictor, HostedPredictor):
        return predictor.with_timeout(float(current_app.config.get("JOB_HOST_TIMEOUT_SECONDS", 900)))
    return predictor


def _build(version, runtime: dict[str, Any] | None) -> InputSchema:
    """A hosted predictor, or with MODEL_HOSTS off the model loaded into this process; either
    answers with ``runtime`` (its compiled library) when given."""
    if hosts.enabled():
        return hosts.predictor(version, runtime=runtime)
    estimator = registry.load(version)
    # Threads: one BLAS/OpenMP thread per serving process (several processes share the cores).
    # threadpoolctl limits the libraries loaded so far, which by now includes scikit-learn's.
    threadpool_limits(limits=current_app.config.get("MATH_THREADS", 1))
    predictor = Predictor(estimator, version.info)
    if runtime is not None:
        runtimes.use_in_process(predictor, runtime)
    return predictor


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


def run(served: Served, table: Table, *, proba: bool, strict: bool = False,
        call: predlog.Call | None = None, explain: bool | str = False) -> dict[str, Any]:
    """The one predict path: validate, predict, JSON-safe result with the schema policy's
    ``warnings`` (``strict``: a warning about the input refuses it instead, a 400); with a
    ``call``, the answer (or the failure's code) goes into the prediction log (``services.predlog``);
    with ``explain``, each row's contributions (``services.explain``) as ``explanations``;
    ``explain="optional"`` (the prediction page) answers the prediction when they cannot be
    given, with the reason as ``explanation_error``."""
    try:
        return _run(served, table, proba=proba, strict=strict, call=call, explain=explain)
    except (PayloadError, ServiceError) as exc:
        if call is not None and not (isinstance(exc, ServiceError) and exc.code == "request_id_reused"):
            predlog.record_error(served.log, call, getattr(exc, "error_code", None) or exc.code)
        raise


def _run(served: Served, table: Table, *, proba: bool, strict: bool, call: predlog.Call | None,
         explain: bool | str = False) -> dict[str, Any]:
    check_size(table)
    if explain:
        explaining.check_rows(table.n_rows)
    predictor = serving(served)
    found: list[dict[str, Any]] = []
    columns: dict[str, Any] | None = {} if call is not None and served.log is not None else None
    X = predictor.prepare(table, found, columns)
    if strict and found:
        raise strict_refusal(found)
    probabilities = None
    with collecting() as raised:
        if proba:
            probabilities = hosts.guarded(lambda: predictor.predict_proba(X), served.ref, served.version_key)
            indices = probabilities.argmax(axis=1)
            if predictor.classes:
                predicted = predictor.class_labels[indices]
                labels, classes = labels_at(predictor.class_labels, indices), predictor.classes_json
            else:
                classes = list(range(probabilities.shape[1]))
                predicted = indices
                labels, classes = labels_at(classes, indices), to_jsonable(classes)
            result = {"predictions": labels, "classes": classes, "probabilities": to_jsonable(probabilities)}
            if served.threshold is not None and predictor.classes and len(predictor.classes) == 2:
                result["decision"] = labels_at(predictor.class_labels,
                                               (probabilities[:, 1] >= served.threshold).astype(int))
                result["threshold"] = served.threshold
        else:
            predicted = hosts.guarded(lambda: predictor.predict(X), served.ref, served.version_key)
            result = {"predictions": to_jsonable(predicted)}
    result["warnings"] = found + model_warnings(raised) if raised else found
    if explain == "optional":
        try:
            result["explanations"] = explaining.explain(served, predictor, X)
        except (PayloadError, ServiceError) as exc:
            result["explanation_error"] = exc.message
    elif explain:  # before the log records the answer: a refused explanation is one error record
        result["explanations"] = explaining.explain(served, predictor, X)
    if call is not None:
        predlog.record(served.log, call, predictor.info, X, columns, predicted, probabilities)
    return result


def infer_outputs(served: Served, table: Table, wanted: list[str] | None, strict: bool = False,
                  call: predlog.Call | None = None) -> tuple[list[tuple[str, Any]], list[dict[str, Any]]]:
    """KServe V2: the named outputs (``predict``, ``predict_proba``, ``decision``; all it offers
    when none are named) as (name, array) pairs, and the schema policy's warnings."""
    try:
        return _infer(served, table, wanted, strict, call)
    except (PayloadError, ServiceError) as exc:
        if call is not None:
            predlog.record_error(served.log, call, getattr(exc, "error_code", None) or exc.code)
        raise


def _infer(served: Served, table: Table, wanted: list[str] | None, strict: bool,
           call: predlog.Call | None) -> tuple[list[tuple[str, Any]], list[dict[str, Any]]]:
    predictor = serving(served)
    available = ["predict"] + (["predict_proba"] if predictor.has_proba else [])
    binary = predictor.has_proba and predictor.classes is not None and len(predictor.classes) == 2
    if served.threshold is not None and binary:
        available.append("decision")  # the saved threshold's decisions (services.decisions)
    wanted = wanted or available
    unknown = [w for w in wanted if w not in available]
    if unknown:
        raise PayloadError(f"Unknown output {unknown[0][:64]!r}; this model offers {', '.join(available)}.")
    check_size(table)
    found: list[dict[str, Any]] = []
    columns: dict[str, Any] | None = {} if call is not None and served.log is not None else None
    X = predictor.prepare(table, found, columns)
    if strict and found:
        raise strict_refusal(found)
    with collecting() as raised:
        computed: dict[str, Any] = {}
        for name in dict.fromkeys(["predict_proba" if n == "decision" else n for n in wanted]):
            computed[name] = hosts.guarded(lambda: predictor.predict(X) if name == "predict"
                                           else predictor.predict_proba(X), served.ref, served.version_key)
        if "decision" in wanted:
            computed["decision"] = decisions.decide(predictor.class_labels, computed["predict_proba"],
                                                    served.threshold)
        outputs = [(name, computed[name]) for name in wanted]
    if call is not None:
        named = computed
        probabilities = named.get("predict_proba")
        predicted = named["predict"] if "predict" in named else (
            predictor.class_labels[probabilities.argmax(axis=1)] if predictor.classes else probabilities.argmax(axis=1))
        predlog.record(served.log, call, predictor.info, X, columns, predicted, probabilities)
    return outputs, found + model_warnings(raised)


FLAGS = {"strict": "strict=true refuses input the model would take with warnings",
         "explain": "explain=true adds each row's contributions"}


def query_flag(value: str | None, name: str = "strict") -> bool:
    """A true/false query parameter (1/0, yes/no); anything else is a 400."""
    if value is None:
        return False
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    raise PayloadError(f"'{name}' must be true or false ({FLAGS[name]}).")


def versions_of(name: str) -> list[int]:
    return [v.version for v in registry.get_model(name).versions]
