"""Database tables. Named "records" so they cannot be confused with ML models.

Timestamps are naive UTC (the same on SQLite and PostgreSQL).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from flask_login import UserMixin
from sqlalchemy import JSON, ForeignKey, String, Text, func, select
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .extensions import db
from .scope import ROLE_ORDER, current as current_scope

ROLES = ROLE_ORDER  # each role can do everything the ones before it can
PROJECT_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
DEFAULT_PROJECT = "default"  # where data from before projects lives, and what today's URLs mean


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return uuid.uuid4().hex


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="viewer")
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user", cascade="all, delete-orphan")

    @property
    def is_active(self) -> bool:  # Flask-Login refuses inactive users
        return self.active

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    def has_role(self, role: str) -> bool:
        """In the project of the request at hand (a global admin: everywhere); the pages ask it."""
        scope = current_scope()
        return self.role == "admin" or (scope.user_id == self.id and scope.allows(role))

    @classmethod
    def by_name(cls, username: str) -> User | None:
        return db.session.scalar(select(cls).where(cls.username == username))


class Project(db.Model):
    """A team's space: its models, datasets and jobs, and who may do what in it."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    memberships: Mapped[list[Membership]] = relationship(back_populates="project", cascade="all, delete-orphan")


class Membership(db.Model):
    """A user's role in one project (viewer, scientist or admin: a project admin). A user's own
    ``role`` column says whether they are a global admin, who manages projects and users."""

    __tablename__ = "memberships"
    __table_args__ = (db.UniqueConstraint("user_id", "project_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20), default="viewer")

    user: Mapped[User] = relationship()
    project: Mapped[Project] = relationship(back_populates="memberships")


def _project_of_scope(context) -> int | None:
    """A new model's, dataset's or job's project when the code leaves it out: the scope's, else
    the default project (the oldest). The services set it explicitly; this serves direct inserts."""
    scope = current_scope()
    if scope.project_id is not None and scope.project_id >= 0:
        return scope.project_id
    return context.connection.scalar(select(func.min(Project.id)))


def hash_token(raw: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(db.Model):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))  # shown in lists so a user can tell tokens apart
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(back_populates="tokens")

    PREFIX = "vwr_"

    @classmethod
    def issue(cls, user: User, label: str = "", expires_in: timedelta | None = None) -> tuple[ApiToken, str]:
        """Create a token; the raw value is returned once and never stored."""
        raw = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls(user=user, label=label, token_hash=hash_token(raw), prefix=raw[:12],
                    expires_at=utcnow() + expires_in if expires_in else None)
        db.session.add(token)
        return token, raw

    @property
    def state(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= utcnow():
            return "expired"
        return "active"


JOB_STATES = ("pending", "running", "done", "error", "cancelled")
FINAL_STATES = ("done", "error", "cancelled")


class Job(db.Model):
    """One unit of background work. The database, not the broker, is the source of truth:
    a Celery message only carries the job id. Lease columns let a reaper find work whose
    worker died (``lease_expires_at`` in the past while ``state == "running"``)."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True, default=_project_of_scope)
    kind: Mapped[str] = mapped_column(String(40), index=True)
    state: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # small; large outputs live in files
    error: Mapped[str | None] = mapped_column(Text)
    progress_done: Mapped[int] = mapped_column(default=0)
    progress_total: Mapped[int | None]
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    attempts: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None]
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    # The model version a job uses: deleting that version is refused while the job is unfinished.
    model_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL"), index=True)
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id", ondelete="SET NULL"), index=True)
    # What makes two jobs the same work (model version + dataset + options): for deduplication.
    fingerprint: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    created_by: Mapped[User | None] = relationship()
    model_version: Mapped[ModelVersion | None] = relationship()
    dataset: Mapped[Dataset | None] = relationship()

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
ALIAS_PATTERN = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"


class RegisteredModel(db.Model):
    """A named model; each upload under the name is its next ``ModelVersion``."""

    __tablename__ = "registered_models"
    __table_args__ = (db.UniqueConstraint("project_id", "name"),)  # names are unique within a project

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True, default=_project_of_scope)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(Text, default="")
    anonymous_predict: Mapped[bool] = mapped_column(default=False)  # admins switch it on for demos
    # "auto": a version's compiled runtime answers where it passed its parity check and is faster
    # (services.runtimes); "scikit-learn": never (the per-model switch on the model card).
    serve_with: Mapped[str] = mapped_column(String(20), default="auto", server_default="auto")
    # The prediction log's settings (services.predlog.settings_of fills in the defaults): enabled,
    # sample (share of rows whose inputs are kept), exclude and hash (columns), retention_days.
    log_settings: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # Monitoring (services.monitoring): the reference dataset's id and the drift thresholds
    # changed from their defaults; empty: the defaults and the first scoring job's dataset.
    monitor: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    created_by: Mapped[User | None] = relationship()
    versions: Mapped[list[ModelVersion]] = relationship(
        back_populates="model", order_by="ModelVersion.version", cascade="all, delete-orphan")
    aliases: Mapped[list[ModelAlias]] = relationship(
        back_populates="model", order_by="ModelAlias.alias", cascade="all, delete-orphan")

    @property
    def latest(self) -> ModelVersion | None:
        return self.versions[-1] if self.versions else None


class ModelVersion(db.Model):
    __tablename__ = "model_versions"
    __table_args__ = (db.UniqueConstraint("model_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), index=True)
    version: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    # Where the file is in the artifact store. Versions with the same bytes share one key.
    artifact_key: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(db.BigInteger)
    format: Mapped[str] = mapped_column(String(16))  # "joblib" or "skops"
    filename: Mapped[str] = mapped_column(String(255), default="")  # display text only
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # core.introspect.describe_model
    saved_sklearn_version: Mapped[str | None] = mapped_column(String(40))
    load_warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set when its model host failed too often (services.hosts); predictions then answer 409.
    quarantined_at: Mapped[datetime | None] = mapped_column(default=None)
    quarantine_reason: Mapped[str | None] = mapped_column(Text, default=None)
    # Its compiled runtime (services.runtimes): state, the library's artifact key and digest, the
    # parity check and speed-ups, the versions it was built with; None before the first request.
    runtime: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # A binary classifier's saved decision threshold (services.registry.set_threshold): value, by, at.
    threshold: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)

    model: Mapped[RegisteredModel] = relationship(back_populates="versions")
    uploaded_by: Mapped[User | None] = relationship()
    aliases: Mapped[list[ModelAlias]] = relationship(back_populates="version", cascade="all, delete-orphan",
                                                     overlaps="aliases")

    @property
    def ref(self) -> str:
        return f"{self.model.name}/{self.version}"


class HostFailure(db.Model):
    """A model host that crashed, missed its deadline or answered nonsense (by model file)."""
    __tablename__ = "host_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int]  # no foreign key: the record outlives nothing it would need
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    model_ref: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(16))  # crashed, timeout, malformed
    at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelAlias(db.Model):
    __tablename__ = "model_aliases"
    __table_args__ = (db.UniqueConstraint("model_id", "alias"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id", ondelete="CASCADE"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id", ondelete="CASCADE"), index=True)

    model: Mapped[RegisteredModel] = relationship(back_populates="aliases", overlaps="aliases")
    version: Mapped[ModelVersion] = relationship(back_populates="aliases", overlaps="aliases")


DATASET_STATES = ("ingesting", "ready", "error")


class Dataset(db.Model):
    """An uploaded dataset, stored as Parquet in the artifact store (``path`` is its key). A large upload is ingested by a worker; until then its state is "ingesting"."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True, default=_project_of_scope)
    name: Mapped[str] = mapped_column(String(255))  # display text, from the uploaded filename
    state: Mapped[str] = mapped_column(String(20), default="ingesting", index=True)
    error: Mapped[str | None] = mapped_column(Text)
    path: Mapped[str | None] = mapped_column(String(255))
    n_rows: Mapped[int | None] = mapped_column(db.BigInteger)
    n_columns: Mapped[int | None]
    size_bytes: Mapped[int | None] = mapped_column(db.BigInteger)
    info: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # core.datasets.DatasetInfo.to_dict()
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    uploaded_by: Mapped[User | None] = relationship()

    @property
    def columns(self) -> list[str]:
        return [c["name"] for c in (self.info or {}).get("columns", [])]


CHUNK_STATES = ("pending", "running", "done", "error", "cancelled")


class JobChunk(db.Model):
    """One row group of a scoring job: its own task, its own output part, its own lease.

    A worker claims a chunk with a conditional UPDATE (pending, or running with an expired
    lease), renews ``lease_expires_at`` while it works, and records the output only while it
    still holds the lease. A reaper puts chunks with expired leases back to pending.
    """

    __tablename__ = "job_chunks"
    __table_args__ = (db.UniqueConstraint("job_id", "index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    index: Mapped[int]
    state: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    rows: Mapped[int | None]
    lease_owner: Mapped[str | None] = mapped_column(String(255))
    lease_expires_at: Mapped[datetime | None] = mapped_column(index=True)
    # When its message is due: sent then, or, for a failed chunk, when its retry's delayed message
    # is (claim_chunk refuses it before; the reaper sends it again when that is long past).
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # The artifact key of this chunk's output part, recorded only by the lease holder.
    output_key: Mapped[str | None] = mapped_column(String(255))


class PredictionLogFile(db.Model):
    """One Parquet file of the prediction log: a model version's records of one UTC hour
    (``core.predlog``). Readers find the log's files only here (the artifact store's protocol);
    compaction writes one file in place of several and swaps the records in one transaction."""

    __tablename__ = "prediction_log_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(index=True)  # no foreign key: purged with its model's retention
    model_id: Mapped[int] = mapped_column(index=True)
    model_version_id: Mapped[int] = mapped_column(index=True)
    version: Mapped[int]
    hour: Mapped[datetime] = mapped_column(index=True)  # the start of the UTC hour its records fall in
    key: Mapped[str] = mapped_column(String(255), unique=True)
    rows: Mapped[int] = mapped_column(db.BigInteger)
    size_bytes: Mapped[int] = mapped_column(db.BigInteger)
    first_at: Mapped[datetime]
    last_at: Mapped[datetime]
    compacted: Mapped[bool] = mapped_column(default=False)
    # Its records are in the monitoring windows' summaries (services.monitoring.aggregate).
    aggregated: Mapped[bool] = mapped_column(default=False, server_default=db.false(), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ClientRequestId(db.Model):
    """A request id a client sent (``X-Request-ID``): reused for the same model within the
    log's retention it is refused (409). Generated ids carry their time and need no row."""

    __tablename__ = "client_request_ids"

    model_id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    model_version_id: Mapped[int]
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class PredictionLogDrop(db.Model):
    """Records of a model version the log could not keep (store full or away, buffer full):
    counted, shown on the model's monitoring page; the predictions themselves were answered."""

    __tablename__ = "prediction_log_drops"

    model_version_id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(index=True)
    dropped: Mapped[int] = mapped_column(db.BigInteger, default=0)
    reason: Mapped[str | None] = mapped_column(Text)
    last_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitorGrid(db.Model):
    """The fixed grid of a model's numeric column (``core.drift.sketch.Grid``): set once, the
    first time the column is summarised, so every window and reference is binned alike."""

    __tablename__ = "monitor_grids"

    model_id: Mapped[int] = mapped_column(primary_key=True)
    column: Mapped[str] = mapped_column(String(255), primary_key=True)
    center: Mapped[float]
    scale: Mapped[float]


class MonitorWindow(db.Model):
    """A window's summary of one model version's served predictions (``core.drift.window``),
    and its drift against the model's reference, computed when either changes."""

    __tablename__ = "monitor_windows"
    __table_args__ = (db.UniqueConstraint("model_version_id", "seconds", "start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(index=True)
    model_version_id: Mapped[int] = mapped_column(index=True)
    version: Mapped[int]
    seconds: Mapped[int]  # the window's length: the base window, a day or a week of them
    start: Mapped[datetime] = mapped_column(index=True)
    rows: Mapped[int] = mapped_column(db.BigInteger, default=0)
    summary: Mapped[bytes] = mapped_column(db.LargeBinary)
    drift: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    reference: Mapped[str | None] = mapped_column(String(64))  # the reference the drift was computed against
    revision: Mapped[int] = mapped_column(default=0, server_default="0")  # one up per merge into the summary
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class MonitorReference(db.Model):
    """A model's reference dataset summarised on the model's grids."""

    __tablename__ = "monitor_references"

    model_id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(32))
    rows: Mapped[int] = mapped_column(db.BigInteger)
    summary: Mapped[bytes] = mapped_column(db.LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PredictionLabel(db.Model):
    """A label that arrived for a logged prediction (``services.labels``), joined to its record:
    the prediction's version, time and outputs are copied in, so realized performance per
    window is a few SQL aggregates over this table, never a read of the log."""

    __tablename__ = "prediction_labels"
    __table_args__ = (db.Index("ix_prediction_labels_window", "model_id", "model_version_id", "at"),)

    model_id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    row: Mapped[int] = mapped_column(primary_key=True)
    label: Mapped[str] = mapped_column(String(255))  # as text (a class), or the value's text (a regressor)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    # Filled in when the label meets its record (null until then):
    model_version_id: Mapped[int | None]
    at: Mapped[datetime | None]           # when the prediction was served
    predicted: Mapped[str | None] = mapped_column(String(255))
    score: Mapped[float | None]           # a binary classifier's positive-class probability
    score_bin: Mapped[int | None]         # its bin (core.drift.sketch.score_index)
    positive: Mapped[bool | None]         # the label is the positive class
    log_loss: Mapped[float | None]        # -log p(label), clipped as scikit-learn does
    error: Mapped[float | None]           # a regressor's prediction - label
