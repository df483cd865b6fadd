"""The model results viewer: ``create_app`` builds the Flask app and its Celery app."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

__version__ = "0.1.0"

ROOT = Path(__file__).resolve().parent.parent

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    # BokehJS attaches <style> elements at run time; no page has inline scripts.
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])


def _check_trusted_modules(raw: str) -> None:
    """Refuse to start with a VIEWER_TRUSTED_MODULES that would open the loader to stdlib code."""
    from .core.safe_load import is_admitted_global

    modules = tuple(p.strip() for p in raw.split(",") if p.strip())
    try:
        is_admitted_global("builtins", "len", trusted_modules=modules)
    except ValueError as exc:
        raise RuntimeError(f"VIEWER_TRUSTED_MODULES: {exc}") from None


class ApiAwareSessionInterface(SecureCookieSessionInterface):
    """API requests never use the cookie session (they authenticate by token only), so they
    neither open nor save one: less work per prediction, and no ``Vary: Cookie`` on API answers."""

    def open_session(self, app, request):
        from .auth import is_api_request

        if is_api_request():
            return self.make_null_session(app)
        return super().open_session(app, request)


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    from . import api, auth, errors, tasks, web  # noqa: F401  (tasks registers Celery tasks)
    from .config import celery_config, load_settings
    from .extensions import celery_init_app, csrf, db, migrate

    app = Flask(
        __name__,
        instance_path=str(ROOT / "instance"),
        template_folder=str(ROOT / "templates"),
        static_folder="static",
    )
    settings = load_settings(app.instance_path, test_config)
    _check_trusted_modules(settings["TRUSTED_MODULES"])
    Path(settings["DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    app.config.update(settings)
    app.config.update(
        SECRET_KEY=settings["SECRET_KEY"],
        SQLALCHEMY_DATABASE_URI=settings["DATABASE_URL"],
        SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
        MAX_CONTENT_LENGTH=settings["MAX_UPLOAD_MB"] * 2**20,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings["SESSION_COOKIE_SECURE"],
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings["SESSION_COOKIE_SECURE"],
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session instead of a clock
        CELERY=celery_config(settings),
    )
    if test_config:  # plain Flask keys (TESTING, WTF_CSRF_ENABLED, ...) from tests
        app.config.update({k: v for k, v in test_config.items() if k.isupper()})

    app.session_interface = ApiAwareSessionInterface()
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)
    auth.init_app(app)
    errors.init_app(app)
    web.init_app(app)
    api.init_app(app)
    celery_init_app(app)

    @app.after_request
    def security_headers(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    return app
