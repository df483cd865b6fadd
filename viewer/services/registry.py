"""The model registry: register, address, load and delete model versions.

One place for the rules that the pages, the API and the CLI share. Uploaded bytes are staged in
a scratch file, loaded through the restricted loader (``core.safe_load``), and only then written
to the artifact store under a new key and recorded, so a refused file is never stored and no row
ever points at a missing file. Versions with the same bytes share one stored object.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, BinaryIO

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ..core.cache import LRUCache
from ..core import predlog as predlog_core
from ..core.introspect import describe_model
from ..core.schema import needed_columns
from ..core.safe_load import ADJUSTED, ModelLoadError, UnsafeModelError, load_model
from ..infra.artifacts import TooLarge, new_key, stage
from ..infra.extensions import db
from ..infra.records import ALIAS_PATTERN, MODEL_NAME_PATTERN, ModelAlias, ModelVersion, RegisteredModel, User
from ..infra.scope import only_mine
from . import hosts, jobs, monitoring, predlog, projects, runtimes
from .artifacts import library_keys, scratch_dir, store
from .errors import ServiceError
from .jobs import iso_time
from .paging import PAGE_SIZE, Page, page

_cache: LRUCache[Any] = LRUCache(maxsize=16)  # per process, keyed by sha256
# Bumped by every change this process makes to the registry, so caches of references (serving's)
# drop what they hold at once here; other processes notice within their cache's lifetime.
generation = 0


def changed() -> None:
    global generation
    generation += 1


def trusted_modules() -> tuple[str, ...]:
    raw = current_app.config.get("TRUSTED_MODULES") or ""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


# --- addressing: "name", "name@alias", "name/3" -------------------------------------------------

@dataclass(frozen=True)
class Loaded:
    """What a host's loader reports about an uploaded file (the estimator stays in the host)."""
    format: str
    saved_sklearn_version: str | None
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class Ref:
    name: str
    version: int | None = None
    alias: str | None = None

    def __str__(self) -> str:
        if self.alias:
            return f"{self.name}@{self.alias}"
        return f"{self.name}/{self.version}" if self.version is not None else self.name


def parse_ref(text: str) -> Ref:
    text = (text or "").strip()
    if "@" in text:
        name, _, alias = text.partition("@")
        return Ref(name, alias=alias)
    if "/" in text:
        name, _, version = text.partition("/")
        if not (version.isascii() and version.isdigit()):
            raise ServiceError("invalid", "bad_model_reference", f"'{text}' is not name, name@alias or name/version.")
        return Ref(name, version=int(version))
    return Ref(text)


def _named(name: str):
    """The model called ``name`` in the current project (names are unique within a project)."""
    return select(RegisteredModel).where(RegisteredModel.project_id == projects.current_id(),
                                         RegisteredModel.name == name)


def get_model(name: str) -> RegisteredModel:
    # A name that registering would refuse names no model (and a NUL byte would make PostgreSQL fail).
    valid = re.fullmatch(MODEL_NAME_PATTERN, name or "")
    model = db.session.scalar(_named(name)) if valid else None
    if model is None:
        raise ServiceError("not_found", "model_not_found", f"No model named '{str(name)[:100]}'.")
    return model


def exists(name: str) -> bool:
    return db.session.scalar(_named(name)) is not None


def resolve(ref: str | Ref) -> ModelVersion:
    """The version a reference names; the latest when it names only the model."""
    ref = parse_ref(ref) if isinstance(ref, str) else ref
    model = get_model(ref.name)
    if ref.alias:
        for alias in model.aliases:
            if alias.alias == ref.alias:
                return alias.version
        raise ServiceError("not_found", "alias_not_found", f"Model '{model.name}' has no alias '{ref.alias}'.")
    if ref.version is not None:
        for version in model.versions:
            if version.version == ref.version:
                return version
        raise ServiceError("not_found", "version_not_found", f"Model '{model.name}' has no version {ref.version}.")
    if model.latest is None:
        raise ServiceError("not_found", "version_not_found", f"Model '{model.name}' has no versions.")
    return model.latest


SORTS = {
    "name": RegisteredModel.name.asc(),
    "-name": RegisteredModel.name.desc(),
    "created": RegisteredModel.created_at.asc(),
    "-created": RegisteredModel.created_at.desc(),
}


def _models(query: str, sort: str):
    statement = only_mine(select(RegisteredModel), RegisteredModel.project_id)
    if query:
        like = f"%{query.lower()}%"
        statement = statement.where(db.func.lower(RegisteredModel.name).like(like)
                                    | db.func.lower(RegisteredModel.description).like(like))
    return statement.order_by(SORTS.get(sort, SORTS["name"]), RegisteredModel.id)


def search_models(query: str = "", sort: str = "name") -> list[RegisteredModel]:
    """Every model whose name or description contains ``query`` (the forms' choices)."""
    if "\x00" in query:  # no stored text has one (PostgreSQL cannot even compare with it)
        return []
    return list(db.session.scalars(_models(query, sort)))


def page_of_models(query: str = "", sort: str = "name", limit: int = PAGE_SIZE, offset: int = 0) -> Page:
    """One page of the models list (the models page and ``GET /api/v1/models``)."""
    if "\x00" in query:
        return Page([], None)
    return page(_models(query, sort), limit, offset)


# --- registering ---------------------------------------------------------------------------------

def validate_name(name: str) -> str:
    name = (name or "").strip()
    if not re.match(MODEL_NAME_PATTERN, name):
        raise ServiceError("invalid", "bad_model_name",
                            "A model name is 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit.")
    return name


def clean_text(value: str) -> str:
    """Text to store, without NUL bytes (PostgreSQL refuses them; nobody means them)."""
    return (value or "").replace("\x00", "")


def register(source: BinaryIO, *, name: str, filename: str = "", description: str = "",
             user: User | None = None) -> tuple[ModelVersion, bool]:
    """Store an uploaded model as the next version of ``name``.

    Returns (version, created). Uploading the same bytes as the latest version again returns that
    version with created=False instead of adding a duplicate.
    """
    name = validate_name(name)
    description = clean_text(description)
    limit = current_app.config["MAX_MODEL_MB"] * 2**20
    try:
        staged = stage(source, scratch_dir(), max_bytes=limit)
    except TooLarge as exc:
        raise ServiceError("too_large", "model_too_large",
                            f"The model file is {exc}. Set VIEWER_MAX_MODEL_MB to allow larger models.") from None
    host = None  # the upload's model host, once it has loaded the file
    try:
        if staged.size == 0:
            raise ServiceError("unprocessable", "model_unreadable", "The file is empty.")
        if hosts.enabled():  # the file is read, checked and described in a sandboxed host
            host = hosts.inspect(str(staged.path), f"{name} (uploaded)")
            loaded = Loaded(host.reply["format"], host.reply.get("saved_sklearn_version"),
                            tuple(host.reply.get("warnings") or ()))
            info = host.reply["info"]
        else:
            try:
                loaded = load_model(staged.path, trusted_modules=trusted_modules(), max_decompressed_bytes=4 * limit)
            except UnsafeModelError as exc:
                raise ServiceError("unprocessable", "model_unsafe", str(exc), offenders=list(exc.offenders)) from None
            except ModelLoadError as exc:
                raise ServiceError("unprocessable", "model_unreadable", str(exc)) from None
            info = describe_model(loaded.estimator).to_dict()

        model = db.session.scalar(_named(name))
        if model is not None and model.latest is not None and model.latest.sha256 == staged.sha256:
            if host is not None:
                hosts.adopt(model.latest, host)
                host = None
            return model.latest, False
        key = db.session.scalar(select(ModelVersion.artifact_key).where(ModelVersion.sha256 == staged.sha256)
                                .limit(1))
        written = key is None
        if written:
            key = f"{new_key('models')}/{staged.sha256}"  # a new folder; the file keeps its digest as name
            store().put_file(key, staged.path, move=True)
        try:
            version = _record(name, description, user, staged, key, loaded, info, filename)
        except BaseException:
            db.session.rollback()
            if written:
                store().delete(key)  # recorded by nobody (and the sweep would find it anyway)
            raise
        if not written and not store().exists(key):
            # The version whose object we share was deleted, with its object, meanwhile.
            store().put_file(key, staged.path)
        if host is not None:  # warm: the first predict is fast
            hosts.adopt(version, host)
            host = None
        else:
            _cache.get(staged.sha256, lambda: loaded.estimator)
        runtimes.request(version)  # scikit-learn serves it until its compiled runtime passes
        return version, True
    finally:
        staged.path.unlink(missing_ok=True)  # gone already when moved into the store
        if host is not None:
            host.close()  # refused after loading (a name taken meanwhile, a failed write)


def _record(name, description, user, staged, key, loaded, info, filename) -> ModelVersion:
    for attempt in range(3):  # two concurrent uploads may race for a name or a version number
        model = db.session.scalar(_named(name))
        if model is None:
            model = RegisteredModel(project_id=projects.current_id(), name=name, description=description or "",
                                    created_by=user)
            db.session.add(model)
        elif description:
            model.description = description
        number = (db.session.scalar(select(func.max(ModelVersion.version))
                                    .where(ModelVersion.model_id == model.id)) or 0) if model.id else 0
        version = ModelVersion(
            model=model, version=number + 1, sha256=staged.sha256, artifact_key=key, size_bytes=staged.size,
            format=loaded.format, filename=clean_text(filename)[:255], info=info,
            saved_sklearn_version=loaded.saved_sklearn_version, load_warnings=list(loaded.warnings),
            uploaded_by=user)
        db.session.add(version)
        try:
            db.session.commit()
            changed()
            return version
        except IntegrityError:
            db.session.rollback()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


# --- loading -------------------------------------------------------------------------------------

def load(version: ModelVersion) -> Any:
    """The fitted estimator, from the per-process cache or through the restricted loader."""
    key = version.artifact_key

    def read() -> Any:
        try:
            with store().reader(key) as path:
                return load_model(path, trusted_modules=trusted_modules()).estimator
        except FileNotFoundError:
            raise ServiceError("gone", "model_file_missing",
                                f"The file of {version.ref} is missing from the artifact store.") from None

    return _cache.get(version.sha256, read)


def update_model(model: RegisteredModel, *, description: str | None = None,
                 anonymous_predict: bool | None = None, serve_with: str | None = None,
                 log: dict[str, Any] | None = None, monitor: dict[str, Any] | None = None) -> RegisteredModel:
    """Change a model's description, whether anyone may predict with it without a token (the
    caller checks that only admins open models to anonymous predictions), whether its
    compiled runtimes may answer (``runtimes.SERVE_WITH``), and its prediction log's settings
    (``predlog.update_settings``; they take effect within ``serving.REF_CACHE_SECONDS``)."""
    if log:
        latest = model.latest
        predlog.update_settings(model, log, [f.name for f in predlog_core.features_of(latest.info)] if latest else [])
    if monitor:
        monitoring.set_monitor(model, monitor)
        monitoring.settings_changed(model)
    if description is not None:
        model.description = clean_text(description)[:10_000]
    if anonymous_predict is not None:
        model.anonymous_predict = anonymous_predict
    if serve_with is not None:
        if serve_with not in runtimes.SERVE_WITH:
            raise ServiceError("invalid", "bad_request",
                               f"serve_with must be one of {', '.join(runtimes.SERVE_WITH)}.")
        model.serve_with = serve_with
    db.session.commit()
    changed()
    return model


def move(model: RegisteredModel, project: str) -> RegisteredModel:
    """Move a model (its versions and aliases) into ``project`` (an admin of both). Its past jobs
    stay where they ran, with their datasets; a model of the same name there is a conflict."""
    target = projects.move_target(project)
    taken = db.session.scalar(select(RegisteredModel.id).where(RegisteredModel.project_id == target.id,
                                                               RegisteredModel.name == model.name))
    if taken is not None and taken != model.id:
        raise ServiceError("conflict", "model_name_taken", f"Project {target.name!r} has a model {model.name!r} "
                           "already: rename or delete one of them first.")
    model.project_id = target.id
    db.session.commit()
    changed()
    return model


# --- aliases and deletion ------------------------------------------------------------------------

def set_alias(model: RegisteredModel, alias: str, version_number: int) -> ModelAlias:
    if not re.fullmatch(ALIAS_PATTERN, alias or ""):  # re.match's $ would let "prod\n" through
        raise ServiceError("invalid", "bad_alias", "An alias is 1-64 letters, digits, '_' or '-', starting with a letter.")
    version = next((v for v in model.versions if v.version == version_number), None)
    if version is None:
        raise ServiceError("not_found", "version_not_found", f"Model '{model.name}' has no version {version_number}.")
    existing = next((a for a in model.aliases if a.alias == alias), None)
    if existing:
        existing.version = version
    else:
        existing = ModelAlias(model=model, alias=alias, version=version)
        db.session.add(existing)
    db.session.commit()
    changed()
    return existing


def remove_alias(model: RegisteredModel, alias: str) -> None:
    existing = next((a for a in model.aliases if a.alias == alias), None)
    if existing is None:
        raise ServiceError("not_found", "alias_not_found", f"Model '{model.name}' has no alias '{alias}'.")
    db.session.delete(existing)
    db.session.commit()
    changed()


def delete_version(version: ModelVersion) -> None:
    """Delete a version (and its model when it was the last); refused while a job uses it (its
    compile job is cancelled)."""
    unfinished = jobs.unfinished(model_version_id=version.id)
    busy = [j for j in unfinished if j.kind != runtimes.KIND]
    if busy:
        raise ServiceError("conflict", "model_in_use",
                            f"{version.ref} is used by {len(busy)} unfinished job(s); cancel them or wait.",
                            jobs=[job.id for job in busy])
    for job in unfinished:  # only its compile job is left: it stops
        jobs.cancel(job)
    model, sha, key = version.model, version.sha256, version.artifact_key
    library = (version.runtime or {}).get("library_key")
    db.session.delete(version)
    db.session.flush()
    db.session.expire(model, ["versions", "aliases"])
    if not model.versions:
        db.session.delete(model)
    db.session.commit()
    changed()
    still_used = db.session.scalar(select(func.count()).select_from(ModelVersion)
                                   .where(ModelVersion.artifact_key == key))
    if library and library not in library_keys():
        store().delete(library)
    if not still_used:
        store().delete(key)
        _cache.discard(sha)
        hosts.discard(sha)


def runtime_versions() -> dict[str, str]:
    import numpy
    import sklearn

    return {"sklearn": sklearn.__version__, "numpy": numpy.__version__}


def version_dict(version: ModelVersion) -> dict[str, Any]:
    """The facts of one version, as the API returns them and the model card shows them."""
    return {
        "name": version.model.name,
        "version": version.version,
        "ref": version.ref,
        "aliases": [a.alias for a in version.aliases],
        "format": version.format,
        "filename": version.filename,
        "size_bytes": version.size_bytes,
        "sha256": version.sha256,
        "uploaded_by": version.uploaded_by.username if version.uploaded_by else None,
        "created_at": iso_time(version.created_at),
        "saved_with": {"sklearn": version.saved_sklearn_version},
        "warnings": [w for w in version.load_warnings if not w.startswith(ADJUSTED)],
        "adjustments": [w for w in version.load_warnings if w.startswith(ADJUSTED)],
        "quarantine": ({"since": iso_time(version.quarantined_at), "reason": version.quarantine_reason}
                       if version.quarantined_at else None),
        "runtime": runtimes.summary(version),
        "threshold": version.threshold,
        **version.info,
    }


def parameter_groups(info: dict[str, Any]) -> list[dict[str, Any]]:
    """The model card's hyperparameters, one group per step (scikit-learn's double-underscore
    path: ``prep__num__imputer``), each parameter with its full name (``clf__C``), its value, its
    class default and whether it differs from it (None when not known).

    From the host's ``parameters`` (every nested step, with defaults); a version described before
    those were recorded has only its top-level ``hyperparameters``, shown without defaults."""
    groups: dict[str, dict[str, Any]] = {}
    detailed = info.get("parameters")
    if isinstance(detailed, list) and detailed:
        for item in detailed:
            step = str(item.get("step") or "")
            group = groups.setdefault(step, {"step": step, "class": str(item.get("class") or "").rsplit(".", 1)[-1],
                                             "params": [], "changed": 0})
            group["params"].append({"name": str(item.get("name")), "value": item.get("value"),
                                    "default": item.get("default"), "changed": item.get("changed")})
            group["changed"] += bool(item.get("changed"))
        return list(groups.values())
    root_class = str(info.get("estimator_class") or "").rsplit(".", 1)[-1]
    for name, value in (info.get("hyperparameters") or {}).items():
        step = name.rpartition("__")[0]
        group = groups.setdefault(step, {"step": step, "class": "" if step else root_class, "params": [],
                                         "changed": 0})
        group["params"].append({"name": name, "value": value, "default": None, "changed": None})
    return list(groups.values())


def input_columns(info: dict[str, Any]) -> list[str] | None:
    """The named columns a model takes (None when it takes unnamed features)."""
    if info.get("feature_names"):
        return needed_columns(info)
    names = [str(f["name"]) for f in info.get("input_schema") or [] if isinstance(f, dict) and f.get("name")]
    if names and names != [f"x{i}" for i in range(len(names))]:  # x0, x1...: introspect's stand-ins
        return names
    return None


def plain(value: Any) -> Any:
    """One cell as JSON has it: missing values as null, times as ISO text, numpy scalars unwrapped."""
    import math

    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            value = value.item()
        except (ValueError, TypeError):
            pass
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if hasattr(value, "isoformat"):
        try:
            import pandas as pd

            if pd.isna(value):
                return None
        except (TypeError, ValueError):
            pass
        return value.isoformat()
    if isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def candidate_datasets(version: ModelVersion, columns: list[str]):
    """Datasets to take an example row from: those of this version's latest finished scoring
    jobs, then the newest ready datasets that have every column the model takes."""
    from . import datasets

    seen: set[str] = set()
    for job in jobs.of_model_version(version.id, kind="score", state="done", limit=5):
        if job.dataset is not None and job.dataset.id not in seen:
            seen.add(job.dataset.id)
            yield job.dataset
    for dataset in datasets.ready(limit=50):
        names = {c.get("name") for c in (dataset.info or {}).get("columns") or [] if isinstance(c, dict)}
        if dataset.id not in seen and set(columns) <= names:
            yield dataset


def _row_from_dataset(version: ModelVersion, columns: list[str]) -> tuple[dict[str, Any], Any] | None:
    """The first row (the model's columns only) of a dataset it was scored on or that fits it,
    with that dataset; None when there is none. Reads one row."""
    from ..core.datasets import DatasetError
    from ..core.datasets.reading import iter_chunks, to_frame
    from . import datasets

    for dataset in candidate_datasets(version, columns):
        if dataset.state != "ready" or not dataset.path:
            continue
        try:
            with datasets.get_file(dataset) as path:
                chunks = iter_chunks(path, columns=columns, batch_rows=1)
                try:
                    _start, table = next(chunks)
                finally:
                    chunks.close()
        except (DatasetError, ServiceError, StopIteration, OSError, ValueError):
            continue
        frame = to_frame(table)
        if len(frame):
            return {column: plain(frame[column].iloc[0]) for column in columns}, dataset
    return None


def typical(value: Any) -> Any:
    """A column's typical value as people write it: 6 significant digits, not an imputer's 17."""
    return float(f"{value:.6g}") if isinstance(value, float) else value


def row_from_schema(info: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """A row of typical values: each column's recorded default, else its first category, else 0."""
    specs = {f["name"]: f for f in info.get("input_schema") or [] if isinstance(f, dict)}
    row: dict[str, Any] = {}
    for column in columns:
        spec = specs.get(column) or {}
        value = spec.get("default")
        if value is None and spec.get("categories"):
            value = next((c for c in spec["categories"] if c is not None), None)
        value = typical(value)
        row[column] = value if value is not None else 0
    return row


def example_input(version: ModelVersion) -> dict[str, Any]:
    """One realistic input for the model card's usage snippet: ``payload`` (an MLflow body the
    predict API takes), ``row`` (column -> value, or a list for unnamed features), and where the
    values came from (``source``: "dataset" with ``dataset`` its name, or "schema")."""
    info = version.info or {}
    columns = input_columns(info)
    if columns is None:
        n = int(info.get("n_features") or 1)
        values = [0.0] * n
        for i, spec in enumerate((info.get("input_schema") or [])[:n]):
            if isinstance(spec, dict) and isinstance(spec.get("default"), (int, float)):
                values[i] = spec["default"]
        return {"payload": {"inputs": [values]}, "row": values, "columns": None, "source": "schema",
                "dataset": None}
    found = _row_from_dataset(version, columns)
    if found is not None:
        row, dataset = found
        return {"payload": {"dataframe_records": [row]}, "row": row, "columns": columns, "source": "dataset",
                "dataset": dataset.name}
    row = row_from_schema(info, columns)
    return {"payload": {"dataframe_records": [row]}, "row": row, "columns": columns, "source": "schema",
            "dataset": None}


def model_dict(model: RegisteredModel, *, with_versions: bool = True) -> dict[str, Any]:
    latest = model.latest
    out = {
        "name": model.name,
        "description": model.description,
        "created_at": iso_time(model.created_at),
        "created_by": model.created_by.username if model.created_by else None,
        "latest_version": latest.version if latest else None,
        "kind": latest.info.get("kind") if latest else None,
        "aliases": {a.alias: a.version.version for a in model.aliases},
        "anonymous_predict": model.anonymous_predict,
        "serve_with": model.serve_with,
        "log": predlog.settings_of(model),
        "monitor": {"reference": (model.monitor or {}).get("reference"),
                    "thresholds": asdict(monitoring.thresholds_of(model))},
    }
    if with_versions:
        out["versions"] = [version_dict(v) for v in model.versions]
    return out
