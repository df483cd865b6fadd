"""Settings: defaults, then ``VIEWER_*`` environment variables, then the test config.

This is the one module that reads ``os.environ``. Nothing here runs at import time:
``load_settings`` is called by ``create_app``.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Mapping

# name -> (default, parser, help). ``None`` defaults are derived in ``load_settings``.
SETTINGS: dict[str, tuple[Any, Any, str]] = {
    "DATA_DIR": (None, str, "Where artifacts, the SQLite file, the embedded broker and the generated "
                 "secret key live. Default: the instance folder (a checkout's instance/; an installed "
                 "copy's <prefix>/var/viewer.app-instance, Flask's rule)."),
    "DATABASE_URL": (None, str, "SQLAlchemy URL. Default: SQLite file in the data dir. "
                     "Production: postgresql+psycopg://user:pass@host/db"),
    "BROKER_URL": (None, str, "Celery broker. Default: the embedded filesystem broker in the "
                   "data dir. Production: redis://host:6379/0 or amqp://user:pass@host//"),
    "SECRET_KEY": (None, str, "Session signing key. Default: generated once into "
                   "<instance>/secret_key (mode 0600)."),
    "MAX_UPLOAD_MB": (2048, int, "Largest request body accepted, in MiB (413 beyond)."),
    "MAX_MODEL_MB": (512, int, "Largest model file accepted, in MiB (413 beyond)."),
    "TRUSTED_MODULES": ("", str, "Comma-separated module prefixes whose classes the safe "
                        "model loader admits (your own trusted code). Empty by default."),
    "SERVE_MODEL": ("", str, "Model answered by the MLflow-compatible /invocations route "
                    "(name, name@alias or name/version)."),
    "SESSION_COOKIE_SECURE": (False, "bool", "Send the session cookie over HTTPS only "
                              "(set true behind TLS)."),
    "VISIBILITY_TIMEOUT": (3600, int, "Redis/SQS visibility timeout in seconds."),
    "LEASE_SECONDS": (60, int, "How long a worker holds a job chunk without a heartbeat before "
                      "another worker may take it over."),
    "CHUNK_TASK_SECONDS": (30, int, "How long one task of a scoring job goes on taking the job's next untried "
                           "chunk (0: one chunk per task)."),
    "MAX_ATTEMPTS": (3, int, "Tries per job chunk before the job ends in error."),
    "REAPER_SECONDS": (10, int, "How often each worker looks for chunks whose worker died."),
    "ROW_GROUP_ROWS": (100_000, int, "Rows per stored row group, which is one scoring chunk (one task)."),
    "RATELIMIT_STORAGE_URL": (None, str, "Where login attempt counts live, shared by every web "
                              "process. Default: the broker when it is Redis, else memory (one process)."),
    "LOGIN_RATE_LIMIT": ("10 per minute;100 per day", str, "Failed logins allowed per client address "
                         "(the limits library's syntax, e.g. '10 per minute;100 per day'); beyond it the login form answers 429."),
    "LOGIN_USER_RATE_LIMIT": ("30 per hour", str, "Failed logins allowed per username, from any address."),
    "MODEL_HOSTS": (True, "bool", "Run model code in sandboxed host processes (no network, no new "
                    "processes, no files outside a scratch folder, a memory limit and a deadline). "
                    "Off: models run inside the web and worker processes."),
    "HOSTS": (8, int, "Model hosts kept alive per app process (least recently used stop first)."),
    "PINNED_MODELS": ("", str, "Comma-separated model names whose hosts are never stopped to make room "
                      "(hot models; each counts toward HOSTS)."),
    "HOST_MEMORY_MB": (2048, int, "Memory a model host may allocate beyond what it starts with, in MiB."),
    "HOST_TIMEOUT_SECONDS": (30.0, float, "Deadline of one prediction request in a model host; past it "
                             "the host is stopped and the request answers 504."),
    "JOB_HOST_TIMEOUT_SECONDS": (900.0, float, "Deadline of one scoring chunk in a model host; past it the "
                                 "chunk counts as a failed attempt."),
    "QUARANTINE_FAILURES": (3, int, "Host failures (crash, deadline, malformed answer) after which a model "
                            "version is quarantined: predictions answer 409 until a project admin releases it. "
                            "0: never."),
    "QUARANTINE_MINUTES": (10.0, float, "The window in which QUARANTINE_FAILURES are counted."),
    "COMPILE_MODELS": (True, "bool", "Compile tree-ensemble models (Treelite/TL2cgen, in the compile sandbox) and "
                       "answer with the compiled code where it passed its parity check and is faster. A worker "
                       "must take the viewer-compile queue (manage.py up starts one)."),
    "COMPILE_TIMEOUT_SECONDS": (900.0, float, "Longest a model's compilation may take before it is stopped "
                                "(scikit-learn then serves it)."),
    "PREDICTION_LOG": (True, "bool", "Keep a log of every prediction served (per model it can be switched off "
                       "and its inputs sampled, excluded or hashed on the model card). Off: nothing is logged."),
    "PREDICTION_LOG_FLUSH_SECONDS": (1.0, float, "How often each web process writes the predictions it logged to "
                                     "the artifact store: a process killed with SIGKILL loses at most this long "
                                     "of its log (SIGTERM writes first)."),
    "PREDICTION_LOG_BUFFER_ROWS": (200_000, int, "Logged rows a web process holds before writing them; beyond "
                                   "it (a store slower than the traffic) records are dropped and counted."),
    "PREDICTION_LOG_KEY": ("", str, "Key of the keyed hash (HMAC-SHA256) of the columns a model's log hashes. "
                           "Default: derived from SECRET_KEY; set it to keep hashes stable across a key change."),
    "MONITOR_WINDOW_SECONDS": (3600, int, "The monitoring pages' shortest window in seconds (an hour); the longer "
                               "ones are 24 and 168 of them (a day, a week)."),
    "EXPLAIN_SECONDS": (2.0, float, "Time the model-agnostic explanation (for models that are neither linear nor "
                        "tree ensembles) may take per request; each row still gets one pair of walks."),
    "EXPLAIN_EVALUATIONS": (4096, int, "Model evaluations the model-agnostic explanation makes per row at most."),
    "EXPLAIN_BACKGROUND_ROWS": (100, int, "Rows of the model's reference dataset (a seeded sample) that "
                                "contributions are measured from."),
    "INLINE_INGEST_MB": (32, int, "Datasets up to this size are ingested inside the upload "
                         "request; larger ones by a worker (the upload answers 202 at once)."),
}

ENV_PREFIX = "VIEWER_"
VERSION = "0.1.0"  # the package's version (viewer.__version__)
PACKAGE = Path(__file__).resolve().parents[1]  # the ``viewer`` package, installed or in a checkout


def template_folder() -> Path:
    """The Jinja templates: ``viewer/templates`` in an installed copy (pyproject.toml maps the
    repository's top-level ``templates/`` there when it builds the wheel), else a checkout's
    top-level ``templates/`` beside the package."""
    installed = PACKAGE / "templates"
    return installed if installed.is_dir() else PACKAGE.parent / "templates"


def _parse(value: str, parser: Any) -> Any:
    if parser == "bool":
        lowered = value.strip().lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off", ""}:
            return False
        raise ValueError(f"not a boolean: {value!r}")
    return parser(value)


def from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``VIEWER_*`` variables that are set, parsed, without the prefix."""
    environ = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for name, (_default, parser, _help) in SETTINGS.items():
        raw = environ.get(ENV_PREFIX + name)
        if raw is not None and raw != "":
            try:
                found[name] = _parse(raw, parser)
            except ValueError as exc:
                raise RuntimeError(f"{ENV_PREFIX}{name}: {exc}") from exc
    return found


def secret_key_from(instance_dir: Path) -> str:
    """Read the instance's secret key, generating it (mode 0600) on first use."""
    path = instance_dir / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    instance_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process won the race: use its key
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(key)
    return key


def load_settings(instance_path: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then environment, then ``overrides`` (the test config)."""
    settings = {name: default for name, (default, _p, _h) in SETTINGS.items()}
    settings.update(from_environment())
    settings.update({k: v for k, v in (overrides or {}).items() if k in SETTINGS})

    data_dir = Path(settings["DATA_DIR"] or instance_path).resolve()
    settings["DATA_DIR"] = str(data_dir)
    if not settings["DATABASE_URL"]:
        settings["DATABASE_URL"] = f"sqlite:///{data_dir / 'viewer.sqlite3'}"
    if not settings["BROKER_URL"]:
        settings["BROKER_URL"] = "filesystem://"
    if not settings["RATELIMIT_STORAGE_URL"]:
        broker = settings["BROKER_URL"]
        settings["RATELIMIT_STORAGE_URL"] = broker if broker.startswith(("redis://", "rediss://")) else "memory://"
    if not settings["SECRET_KEY"]:
        settings["SECRET_KEY"] = secret_key_from(data_dir)
    return settings


def celery_config(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``CELERY`` dict for ``celery_init_app``.

    JSON only; late acknowledgement and prefetch 1, so a message is held by at most one busy
    worker and (on brokers that redeliver) returns if that worker dies. Task state lives in our
    database, so no result backend.
    """
    broker = settings["BROKER_URL"]
    options: dict[str, Any] = {"visibility_timeout": settings["VISIBILITY_TIMEOUT"]}
    if broker.startswith("filesystem://"):
        folder = Path(settings["DATA_DIR"]) / "broker"
        for sub in ("queue", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": str(folder / "queue"),
            "data_folder_out": str(folder / "queue"),
            "control_folder": str(folder / "control"),
            "store_processed": False,
            # kombu sleeps this long whenever a busy worker cannot take a message (1 s by default):
            # with prefetch 1 that was a 1 s gap after every chunk (bench/scoring.py: 0.55x -> 0.93x).
            "polling_interval": 0.01,
        }
    transport = None
    if broker.startswith("filesystem://"):
        from .broker import TRANSPORT

        transport = TRANSPORT  # kombu's transport, with atomic writes and claims (see viewer/infra/broker.py)
    return {
        "broker_url": broker,
        "broker_transport": transport,
        "broker_transport_options": options,
        "broker_connection_retry_on_startup": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "task_ignore_result": True,
        "result_backend": None,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        # Remote control (celery inspect/control) is unused: jobs are cancelled through the
        # database. On the filesystem broker its queue is polled like the task queue, every
        # polling_interval even while the worker is busy: ~5 % of a core per worker
        # (bench/scoring.py, "main" CPU). Message brokers push, so it stays on there.
        "worker_enable_remote_control": transport is None,
        "task_default_queue": "viewer",
        # Compiling a model (seconds to minutes of gcc) has its own queue and worker, so it never
        # holds up scoring (services.runtimes).
        "task_routes": {"viewer.compile": {"queue": "viewer-compile"}},
    }
