"""The model results viewer: ``create_app`` builds the Flask app and its Celery app."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from flask import Flask
from werkzeug.routing import IntegerConverter
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


SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)
_SECURITY_HEADERS_LOWER = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS)


def _security_headers(response):
    """Each of ``SECURITY_HEADERS`` that the response does not set already: what four
    ``headers.setdefault`` calls do, in one pass over the headers (20 us less per request)."""
    headers = response.headers
    present = {key.lower() for key in headers.keys()}
    for lower, name, value in _SECURITY_HEADERS_LOWER:
        if lower not in present:
            headers.add(name, value)
    return response


class ApiAwareSessionInterface(SecureCookieSessionInterface):
    """API requests never use the cookie session (they authenticate by token only), so they
    neither open nor save one: less work per prediction, and no ``Vary: Cookie`` on API answers."""

    def open_session(self, app, request):
        from .auth import is_api_request

        if is_api_request():
            return self.make_null_session(app)
        return super().open_session(app, request)


class DatabaseIntConverter(IntegerConverter):
    """``<int:...>`` ids that fit the database's integer columns; a larger number is a 404 like
    any unknown id (PostgreSQL would refuse it with an error instead)."""

    def __init__(self, url_map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(url_map, *args, **kwargs)


def _reject_nul_bytes():
    """NUL bytes have no place in a URL or a form field, and PostgreSQL refuses them in text:
    answer 400 before any view passes one to the database (the same on SQLite)."""
    from flask import abort, request

    if "\x00" in request.path or any("\x00" in v for v in request.args.values()):
        abort(400, description="NUL bytes are not allowed in the URL.")
    if request.mimetype == "application/x-www-form-urlencoded" and any("\x00" in v for v in request.form.values()):
        abort(400, description="NUL bytes are not allowed in form fields.")


def _engine_options(url: str) -> dict[str, Any]:
    """Pre-ping pooled connections (a restarted database is picked up on the next request) and,
    for PostgreSQL, give up connecting after 5 s, so a request fails with a 503 instead of hanging."""
    options: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgresql"):
        options["connect_args"] = {"connect_timeout": 5}
    return options


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    from . import api, auth, errors, tasks, web  # noqa: F401  (tasks registers Celery tasks)
    from .config import celery_config, load_settings
    from .extensions import celery_init_app, csrf, db, limiter, migrate

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
        RATELIMIT_HEADERS_ENABLED=True,  # Retry-After on a 429
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,  # Redis down: limit per process rather than fail logins
        RATELIMIT_KEY_PREFIX="viewer",
    )
    if test_config:  # plain Flask keys (TESTING, WTF_CSRF_ENABLED, ...) from tests
        app.config.update({k: v for k, v in test_config.items() if k.isupper()})

    app.url_map.converters["int"] = DatabaseIntConverter
    app.session_interface = ApiAwareSessionInterface()
    app.before_request(_reject_nul_bytes)  # registered first: runs before authentication
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent / "migrations"))
    csrf.init_app(app)
    # No API route has a rate limit (only the login form does), so the limiter's per-request
    # hooks skip API requests: about 90 us of a 500 us one-row prediction.
    auth.pages_only(app, limiter.init_app)
    auth.init_app(app)
    errors.init_app(app)
    web.init_app(app)
    api.init_app(app)
    celery_init_app(app)

    # Keep JSON (jsonify and the templates' |tojson) in insertion order: Bokeh's json_item defines
    # each model where it first appears and refers to it by id after that; sorted keys put a
    # reference before its definition and BokehJS refuses the document ("reference p1027 isn't
    # known"), so no plot rendered.
    app.json.sort_keys = False
    app.jinja_env.policies["json.dumps_kwargs"] = {"sort_keys": False}

    app.after_request(_security_headers)
    return app
