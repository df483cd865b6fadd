"""One set of error handlers: JSON for API clients, HTML pages for browsers (microblog's way).

Every refusal reaches the client through ``error_response``: werkzeug's HTTP errors (``abort``),
the services' ``ServiceError`` and core's ``PayloadError`` (a bad prediction body), each as
``{"error_code", "message"}`` with its status, or as the error page.
"""

from __future__ import annotations

import logging

from flask import Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException, ServiceUnavailable

from ..core.payload import PayloadError
from ..infra.extensions import db
from ..services.errors import ServiceError
from .auth import is_api_request

log = logging.getLogger(__name__)


def wants_json() -> bool:
    if is_api_request():
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_code(exc: HTTPException) -> str:
    return getattr(exc, "error_code", None) or (exc.name or "error").lower().replace(" ", "_")


def render_error(status: int, code: str, title: str, message: str, headers=(), *, database_down: bool = False):
    """The one error answer: JSON for API clients, the error page for browsers."""
    if wants_json():
        response = jsonify(error_code=code, message=message)
        response.status_code = status
        response.headers.extend(headers)
        if status == 401:
            response.headers["WWW-Authenticate"] = 'Bearer realm="viewer"'
        return response
    context = {"status": status, "title": title, "message": message, "database_down": database_down}
    if database_down:
        # Straight from the Jinja environment, without the context processors: Flask-Login's
        # would load the logged-in user from the database that is down.
        return current_app.jinja_env.get_template("error.html").render(context), status, list(headers)
    return render_template("error.html", **context), status, list(headers)


def error_response(exc: HTTPException, *, database_down: bool = False):
    # The exception's own headers (Allow on a 405, ...) but not its HTML Content-Type.
    headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
    return render_error(exc.code or 500, error_code(exc), exc.name, exc.description or exc.name, headers,
                        database_down=database_down)


def service_error_response(exc: ServiceError):
    from werkzeug.http import HTTP_STATUS_CODES

    return render_error(exc.status, exc.code, HTTP_STATUS_CODES.get(exc.status, "Error"), exc.message)


def payload_error_response(exc: PayloadError):
    # MLflow's clients read these codes (BAD_REQUEST, MALFORMED_REQUEST, ...) as they are.
    response = jsonify(error_code=exc.error_code, message=exc.message)
    response.status_code = exc.status
    return response


def _csrf_error(exc: CSRFError):
    exc.error_code = "csrf_failed"  # type: ignore[attr-defined]
    exc.description = f"The form was missing a valid CSRF token ({exc.description}). Reload the page and try again."
    return error_response(exc)


def _database_unreachable(exc: Exception):
    """The database is down, restarting or unreachable: a clean 503 the client can retry, not a
    500 with a traceback. The session is rolled back so the next request starts clean (the pool
    pre-pings, so a restarted server is picked up). The error page does not show who is logged
    in: that would ask the database again."""
    log.warning("database unreachable: %s", str(exc).splitlines()[0][:300])
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001  (the connection is gone; nothing to roll back)
        pass
    return error_response(ServiceUnavailable("The database is not reachable right now. Try again in a few seconds.",
                                             retry_after=5), database_down=True)


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, _csrf_error)
    app.register_error_handler(OperationalError, _database_unreachable)
    app.register_error_handler(InterfaceError, _database_unreachable)
    app.register_error_handler(ServiceError, service_error_response)
    app.register_error_handler(PayloadError, payload_error_response)
    # Unhandled exceptions reach this as InternalServerError after Flask has logged them, so
    # the client gets a 500 without a traceback.
    app.register_error_handler(HTTPException, error_response)
