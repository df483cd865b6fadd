"""``create_app``: the Flask app and its Celery app, from the layers below.

Settings come from ``viewer.infra.config`` (defaults, then ``VIEWER_*`` environment, then the test
config); the request guards, authentication, errors and JSON from ``viewer.http``; the pages
(``viewer.web``) and the API (``viewer.api``) are blueprints over ``viewer.services``; the Celery
tasks (``viewer.tasks``) fill the registry of job kinds that the services enqueue through.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from flask import Flask

from . import api, http, tasks, web
from .infra.config import celery_config, load_settings, template_folder
from .infra.extensions import celery_init_app, csrf, db, limiter, migrate


def _check_trusted_modules(raw: str) -> None:
    """Refuse to start with a VIEWER_TRUSTED_MODULES that would open the loader to stdlib code."""
    from .core.safe_load import is_admitted_global

    modules = tuple(p.strip() for p in raw.split(",") if p.strip())
    try:
        is_admitted_global("builtins", "len", trusted_modules=modules)
    except ValueError as exc:
        raise RuntimeError(f"VIEWER_TRUSTED_MODULES: {exc}") from None


def _engine_options(url: str) -> dict[str, Any]:
    """Pre-ping pooled connections (a restarted database is picked up on the next request) and,
    for PostgreSQL, give up connecting after 5 s, so a request fails with a 503 instead of hanging."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        options["connect_args"] = {"connect_timeout": 5}
    return options


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    # The instance folder (the default data dir) is Flask's own: a checkout's instance/, an
    # installed copy's <prefix>/var/viewer.app-instance. Templates ship inside an installed copy.
    app = Flask(__name__, template_folder=str(template_folder()), static_folder="static")
    settings = load_settings(app.instance_path, test_config)
    _check_trusted_modules(settings["TRUSTED_MODULES"])
    Path(settings["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    app.config.update(settings)
    app.config.update(
        SECRET_KEY=settings["SECRET_KEY"],
        SQLALCHEMY_DATABASE_URI=settings["DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS=_engine_options(settings["DATABASE_URL"]),
        MAX_CONTENT_LENGTH=settings["MAX_UPLOAD_MB"] * 2**20,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings["SESSION_COOKIE_SECURE"],
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings["SESSION_COOKIE_SECURE"],
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session instead of a clock
        CELERY=celery_config(settings),
        RATELIMIT_STORAGE_URI=settings["RATELIMIT_STORAGE_URL"],
    )
    if test_config:  # plain Flask keys (TESTING, WTF_CSRF_ENABLED, ...) from tests
        app.config.update({k: v for k, v in test_config.items() if k.isupper()})

    http.init_app(app)  # first: its NUL guard runs before authentication
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)
    limiter.init_app(app)  # only the login view asks it (no app-wide request hook)
    web.init_app(app)
    api.init_app(app)
    celery_init_app(app)
    tasks.register_kinds()
    return app
