"""Job submission: check that a model fits a dataset, deduplicate, record the job and enqueue it.

Scoring jobs (one chunk per stored row group) and permutation importance jobs (one task each)
share the checks and the deduplication. Running them is ``services.scoring`` and
``services.importance``; this module only submits.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..core import importance
from ..core import segments as core_segments
from ..core.payload import PayloadError
from ..core.schema import needed_columns
from ..infra.records import Dataset, Job, ModelVersion, User
from . import datasets, decisions, jobs, registry
from .errors import ServiceError


def fingerprint(sha256: str, dataset_id: str, target: str | None, passthrough: list[str] | None = None) -> str:
    kept = "|" + ",".join(passthrough) if passthrough else ""  # no passthrough: the fingerprint as before
    return hashlib.sha256(f"score|{sha256}|{dataset_id}|{target or ''}{kept}".encode()).hexdigest()


def passthrough_columns(dataset: Dataset, chosen: list[str] | None) -> list[str]:
    """The dataset columns a scoring job keeps beside its predictions: ``chosen`` (checked), or
    by default the dataset's ID columns (those whose names a job's own output columns do not take)."""
    from ..core.scoring import is_output_name

    columns = dataset.columns
    if chosen is None:
        detect = getattr(datasets, "id_columns", None)
        found = detect(dataset) if detect is not None else []
        return [c for c in found if c in columns and not is_output_name(c)]
    kept: list[str] = []
    for name in chosen:
        if name not in columns:
            raise ServiceError("invalid", "unknown_column", f"passthrough names {str(name)[:100]!r}, which is not a "
                               "column of the dataset; choose among its columns.")
        if is_output_name(name):
            raise ServiceError("invalid", "bad_option", f"The column {name[:100]!r} cannot be kept beside the predictions: "
                               "its name is one the results use (row, prediction, target, proba_...); rename it in "
                               "the dataset or leave it out of passthrough.")
        if name not in kept:
            kept.append(name)
    return kept


def check_fit(model_ref: str, dataset_id: str, target: str | None) -> tuple[ModelVersion, Dataset]:
    """The model version and the dataset, when the dataset is ready, has the target column and
    the columns the model needs; a ServiceError (4xx) saying what is wrong otherwise."""
    version = registry.resolve(model_ref)
    dataset = datasets.get(dataset_id)
    if dataset.state != "ready":
        raise ServiceError("conflict", "dataset_not_ready", f"The dataset is {dataset.state}, not ready for scoring.")
    columns = dataset.columns
    if target and target not in columns:
        raise ServiceError("invalid", "unknown_target", f"The dataset has no column {target[:100]!r}.")
    names = needed_columns(version.info)
    if names:
        missing = [c for c in names if c not in columns]
        if missing:
            raise ServiceError("invalid", "schema_mismatch", "The dataset lacks columns the model needs: "
                                + ", ".join(repr(c) for c in missing[:5])
                                + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
                                + ". Upload a dataset that has them (named exactly so), or choose a model trained "
                                "on this dataset's columns.")
    else:
        width = len(columns) - (1 if target else 0)
        if version.info.get("n_features") not in (None, width):
            raise ServiceError("invalid", "schema_mismatch", f"The model takes {version.info['n_features']} unnamed "
                                f"columns; the dataset has {width}" + (" besides the target" if target else "") + ".")
    return version, dataset


SAMPLE_ROWS = 2000  # rows of the first part that the checks before queueing read


def precheck(version: ModelVersion, dataset: Dataset, target: str | None, strict: bool = False,
             used: list[str] = ()) -> list[dict[str, Any]]:
    """The predict API's checks, run before a scoring job is queued, on the dataset's columns and
    a sample of its first rows: input the model cannot take (text in a column of numbers, a
    category its encoder refuses) is a 400 naming the column, rows and fix; the warnings (extra
    columns, a target among the inputs, unknown categories and imputed values in the sample) are
    returned for the job to show. ``strict``: any warning is a 400 instead. ``used``: columns the
    job keeps beside its predictions (IDs), which are not ignored."""
    from ..core.datasets import read_row_group, to_frame
    from ..core.predictor import InputSchema
    from ..core.schema_policy import extra_columns_warning, strict_refusal

    info = version.info
    names = info.get("feature_names")
    found: list[dict[str, Any]] = []
    if names and target and target in names:
        found.append({"code": "target_in_inputs", "column": target[:200], "message": (
            f"The target {target[:64]!r} is one of the model's inputs: the model sees the answer (leakage), so its "
            "metrics here say nothing about new data. Score with the model trained without it, or choose another "
            "target.")})
    if names:
        extra = [c for c in dataset.columns if c not in set(names) and c != target and c not in used]
        if extra:
            found.append(extra_columns_warning(extra, names))
        schema = InputSchema(info, needs_frame=True)
        try:
            with datasets.get_file(dataset) as source:
                _start, table = read_row_group(source, 0, columns=needed_columns(info))
            frame = to_frame(table.slice(0, SAMPLE_ROWS))
            sampled: list[dict[str, Any]] = []
            schema.check_frame(frame, sampled)
        except PayloadError as exc:
            raise ServiceError("invalid", exc.error_code.lower(), exc.message) from None
        for warning in sampled:
            warning["message"] = f"In the first {len(frame):,} rows: {warning['message']}"
        found += sampled
    if strict and found:
        error = strict_refusal(found)
        raise ServiceError("invalid", error.error_code.lower(), error.message, warnings=found)
    return found


def same_work(key: str, version: ModelVersion) -> Job | None:
    """The newest pending, running or done job with this fingerprint for this model version (a
    version deleted and registered again with the same bytes gets jobs of its own, so its model
    card lists them)."""
    return jobs.same_work(key, model_version_id=version.id)


def submit(model_ref: str, dataset_id: str, target: str | None, user: User | None,
           force: bool = False, passthrough: list[str] | None = None, strict: bool = False,
           segments: list[dict[str, Any]] | None = None) -> tuple[Job, bool]:
    """Returns (job, created). The same model version + dataset + target (+ passthrough
    columns, + segments) already pending, running or done returns that job instead, unless
    ``force``. ``passthrough``: dataset columns kept beside the predictions (None: the ID
    columns). With a target, the job also counts its metrics per segment (``core.segments``):
    each column's top categories or quantile bins, and the ``segments`` the user defined."""
    version, dataset = check_fit(model_ref, dataset_id, target)
    kept = passthrough_columns(dataset, passthrough)
    planned = segment_plan(version, dataset, target, kept, segments or [])
    found = precheck(version, dataset, target, strict, used=kept)
    extra = ["\0strict"] if strict else []
    if segments:
        extra.append("\0segments:" + json.dumps(planned["defined"], sort_keys=True))
    key = fingerprint(version.sha256, dataset.id, target, [*kept, *extra])
    if not force:
        existing = same_work(key, version)
        if existing is not None:
            return existing, False
    params = {"model": version.ref, "model_name": version.model.name, "model_version": version.version,
              "dataset": dataset.name, "target": target or None, "kind": version.info.get("kind"),
              "classes": version.info.get("classes"), "passthrough": kept}
    if found:  # the schema policy's checks before queueing (job page and API show them)
        params["warnings"] = found
    if strict:
        params["strict"] = True
    if planned is not None:
        params["segments"] = planned
    n_chunks = int(dataset.info.get("n_row_groups") or 1)
    job = jobs.submit("score", params, user, chunks=n_chunks, model_version_id=version.id,
                      dataset_id=dataset.id, fingerprint=key, progress_total=dataset.n_rows)
    return job, True


def segment_plan(version: ModelVersion, dataset: Dataset, target: str | None, kept: list[str],
                 defined: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The job's segments, or None without a target (nothing to measure); the saved decision
    threshold (0.5 when none) decides a binary classifier's confusion counts."""
    if not target:
        if defined:
            raise ServiceError("invalid", "target_required", "Segments are measured against a target: give the "
                               "column with the true values.")
        return None
    columns = (dataset.info or {}).get("columns") or []
    try:
        planned = core_segments.plan(columns, skip={target, *kept}, first=version.info.get("feature_names") or (),
                                     defined=defined)
    except core_segments.SegmentError as exc:
        raise ServiceError("invalid", "bad_segment", str(exc)) from None
    planned["threshold"] = decisions.value_of(version)
    return planned


# --- permutation importance: one task per job ----------------------------------------------------

def importance_options(version: ModelVersion, n_repeats: int | None, max_rows: int | None, seed: int | None,
                       scoring_name: str | None) -> dict[str, Any]:
    """The options of an importance job with defaults filled in (the scoring by task), checked
    against the model; a ServiceError (400) names what is wrong."""
    info = version.info
    try:
        chosen = scoring_name or importance.default_scoring(info.get("kind"), info.get("classes"),
                                                            bool(info.get("has_predict_proba")))
        importance.check_scoring(chosen, info.get("kind"), info.get("classes"), bool(info.get("has_predict_proba")))
    except PayloadError as exc:
        raise ServiceError("invalid", exc.error_code.lower(), exc.message) from None
    options = {"n_repeats": importance.DEFAULT_REPEATS if n_repeats is None else n_repeats,
               "max_rows": importance.DEFAULT_MAX_ROWS if max_rows is None else max_rows,
               "seed": 0 if seed is None else seed, "scoring": chosen}
    check_importance_ranges(options)
    return options


IMPORTANCE_RANGES = (("n_repeats", 1, importance.MAX_REPEATS),
                     ("max_rows", importance.MIN_ROWS, importance.MAX_SAMPLE_ROWS), ("seed", 0, 2**32 - 1))


def check_importance_ranges(options: dict[str, Any]) -> None:
    """n_repeats, max_rows and seed, when given, within their bounds (ServiceError 400 if not)."""
    for name, low, high in IMPORTANCE_RANGES:
        if options.get(name) is not None and not low <= options[name] <= high:
            raise ServiceError("invalid", "bad_option", f"{name} must be between {low:,} and {high:,}.")


def submit_importance(model_ref: str, dataset_id: str, target: str | None, user: User | None, *,
                      n_repeats: int | None = None, max_rows: int | None = None, seed: int | None = None,
                      scoring: str | None = None, force: bool = False) -> tuple[Job, bool]:
    """Start a permutation importance job; (job, created). The same model version, dataset,
    target and options already pending, running or done returns that job, unless ``force``."""
    if not target:
        raise ServiceError("invalid", "target_required", "Permutation importance needs a target column.")
    version, dataset = check_fit(model_ref, dataset_id, target)
    if target in (version.info.get("feature_names") or ()):
        raise ServiceError("invalid", "target_is_feature", f"{target[:100]!r} is one of the model's inputs, not a target.")
    options = importance_options(version, n_repeats, max_rows, seed, scoring)
    key = hashlib.sha256("|".join(["importance", version.sha256, dataset.id, target]
                                  + [str(options[k]) for k in sorted(options)]).encode()).hexdigest()
    if not force:
        existing = same_work(key, version)
        if existing is not None:
            return existing, False
    params = {"model": version.ref, "model_name": version.model.name, "model_version": version.version,
              "dataset": dataset.name, "target": target, "kind": version.info.get("kind"), **options}
    job = jobs.submit("importance", params, user, model_version_id=version.id,
                      dataset_id=dataset.id, fingerprint=key, progress_total=None)
    return job, True
