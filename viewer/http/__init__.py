"""What pages and the API share about a request: who is asking (``auth``), how a refusal is
answered (``errors``), how JSON is written (``json``), and the app-wide guards installed by
``init_app``: security headers, NUL bytes refused, ids bounded, no cookie session for the API."""

from __future__ import annotations

from flask import Flask, abort, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from . import auth, errors
from .json import OrjsonProvider

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

SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)
_SECURITY_HEADERS_LOWER = tuple((name.lower(), name, value) for name, value in SECURITY_HEADERS)


def _security_headers(response):
    """Each of ``SECURITY_HEADERS`` that the response does not set already: what four
    ``headers.setdefault`` calls do, in one pass over the headers."""
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
        if auth.is_api_request():
            return self.make_null_session(app)
        return super().open_session(app, request)


class DatabaseIntConverter(IntegerConverter):
    """``<int:...>`` ids that fit the database's integer columns; a larger number is a 404 like
    any unknown id (PostgreSQL would refuse it with an error instead). The 404 is raised here, not
    by failing the match: werkzeug would then answer 405 when another method's rule has this path."""

    LARGEST = 2**31 - 1

    def to_python(self, value: str) -> int:
        number = super().to_python(value)
        if number > self.LARGEST:
            raise NotFound()
        return number


def _reject_nul_bytes():
    """NUL bytes have no place in a URL or a form field, and PostgreSQL refuses them in text:
    answer 400 before any view passes one to the database (the same on SQLite). Every value of
    a repeated parameter is checked: a query string decodes to a NUL only from "%00" (or a raw
    NUL), so the raw string tells without parsing it on every request."""
    environ = request.environ
    query = environ.get("QUERY_STRING", "")
    if "\x00" in request.path or "%00" in query or "\x00" in query:
        abort(400, description="NUL bytes are not allowed in the URL.")
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded") \
            and any("\x00" in v for _k, v in request.form.items(multi=True)):
        abort(400, description="NUL bytes are not allowed in form fields.")


class ProjectPrefix:
    """WSGI: ``/p/<project>/rest`` is ``/rest`` in that project. The prefix moves into the script
    root, so every route serves under it and every ``url_for`` keeps it: one set of routes, and a
    page's links stay in its project."""

    def __init__(self, app):
        self.app = app

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/p/"):
            name, slash, rest = path[3:].partition("/")
            if name:
                environ[auth.PROJECT_KEY] = name
                environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/p/" + name
                environ["PATH_INFO"] = slash + rest if slash else "/"
        return self.app(environ, start_response)


def init_app(app: Flask) -> None:
    """Install the guards; ``_reject_nul_bytes`` first, so it runs before authentication."""
    app.wsgi_app = ProjectPrefix(app.wsgi_app)
    app.json = OrjsonProvider(app)
    # Keep the templates' |tojson in insertion order too (Jinja's policy asks for sorted keys):
    # Bokeh's json_item defines each model where it first appears and refers to it by id after
    # that; sorted keys put a reference before its definition and BokehJS refuses the document
    # ("reference p1027 isn't known"), so no plot rendered.
    app.jinja_env.policies["json.dumps_kwargs"] = {"sort_keys": False}
    app.url_map.converters["int"] = DatabaseIntConverter
    app.session_interface = ApiAwareSessionInterface()
    app.before_request(_reject_nul_bytes)
    auth.init_app(app)
    errors.init_app(app)
    app.after_request(_security_headers)
