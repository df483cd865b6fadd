"""One set of error handlers: JSON for API clients, HTML pages for browsers (microblog's way)."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from .auth import is_api_request


def wants_json() -> bool:
    if is_api_request():
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_code(exc: HTTPException) -> str:
    return getattr(exc, "error_code", None) or (exc.name or "error").lower().replace(" ", "_")


def error_response(exc: HTTPException):
    status = exc.code or 500
    message = exc.description or exc.name
    # The exception's own headers (Allow on a 405, ...) but not its HTML Content-Type.
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    if wants_json():
        response = jsonify(error_code=error_code(exc), message=message)
        response.status_code = status
        response.headers.extend(headers)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="viewer"'
    else:
        response = render_template("error.html", status=status, title=exc.name, message=message), status, headers
    return response


def _csrf_error(exc: CSRFError):
    exc.error_code = "csrf_failed"  # type: ignore[attr-defined]
    exc.description = f"The form was missing a valid CSRF token ({exc.description}). Reload the page and try again."
    return error_response(exc)


log = logging.getLogger(__name__)


def _database_unreachable(exc: Exception):
    """The database is down, restarting or unreachable: a clean 503 the client can retry, not a
    500 with a traceback. The session is rolled back so the next request starts clean (the pool
    pre-pings, so a restarted server is picked up)."""
    from .extensions import db, login_manager

    log.warning("database unreachable: %s", str(exc).splitlines()[0][:300])
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001  (the connection is gone; nothing to roll back)
        pass
    # The page template shows who is logged in; loading the user would hit the database again.
    login_manager._update_request_context_with_user()
    return error_response(ServiceUnavailable("The database is not reachable right now. Try again in a few seconds.",
                                             retry_after=5))


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(OperationalError, _database_unreachable)
    app.register_error_handler(InterfaceError, _database_unreachable)
    # Unhandled exceptions reach this as InternalServerError after Flask has logged them, so
    # the client gets a 500 without a traceback.
    app.register_error_handler(HTTPException, error_response)
