"""Prediction routes: ``/api/v1/models/<ref>/predict`` and MLflow's scoring-server routes.

Both parse with ``core.predict.parse_mlflow`` and predict with ``serving.run``.

``FastLane`` (installed around the app's WSGI callable by ``init_app``) answers the most common
of these requests, a valid prediction with a token and a model that are in this process's
caches, without Flask's request machinery, which costs more than the prediction itself (about
0.3 ms of CPU per request in a gunicorn worker). It calls the same functions as the views and
answers with the same bytes and headers. Everything else, including every error, goes to Flask.
"""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any, Callable, Iterable

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, request
from flask.json.provider import DefaultJSONProvider

from .. import SECURITY_HEADERS, serving
from ..auth import allow_anonymous_if, cached_identity, public
from ..core.predict import PayloadError, dumps, parse_mlflow
from ..registry import Ref
from .v1 import bp

MAX_PREDICT_BYTES = 64 * 2**20

mlflow_bp = Blueprint("mlflow", __name__)


def _body() -> bytes:
    if (request.content_length or 0) > MAX_PREDICT_BYTES:
        raise PayloadError(f"The request body is over {MAX_PREDICT_BYTES // 2**20} MiB; score large inputs with "
                           "a scoring job (POST /api/v1/jobs).", "REQUEST_TOO_LARGE", 413)
    return request.get_data(cache=False)


def json_bytes(app: Flask, payload: dict) -> bytes | None:
    """The body ``jsonify(payload)`` answers (compact, keys sorted if the app's JSON provider sorts
    them, a final newline), written by orjson: a 10,000-row answer in about 2 ms instead of 26.
    None when the provider would write something else (indented in debug mode, or another
    provider)."""
    provider = app.json
    if type(provider) is not DefaultJSONProvider or provider.compact is False \
            or (provider.compact is None and app.debug):
        return None
    return dumps(payload, sort_keys=provider.sort_keys) + b"\n"


def json_response(payload: dict) -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    body = json_bytes(app, payload)
    if body is None:
        return jsonify(payload)
    return app.response_class(body, mimetype=app.json.mimetype)


def _predict(ref: str):
    served = serving.resolve(ref)
    table = parse_mlflow(_body(), request.content_type or "")
    result = serving.run(served, table, proba=serving.wants_proba(table.params, request.args.get("output")))
    return json_response({"model": served.ref, **result})


@bp.post("/models/<name>/predict")
@allow_anonymous_if(lambda name: serving.anonymous_allowed(name))
def predict(name: str):
    """Predict with the latest version, or ``name@alias``."""
    return _predict(name)


@bp.post("/models/<name>/versions/<int:version>/predict")
@allow_anonymous_if(lambda name, version: serving.anonymous_allowed(str(Ref(name, version=version))))
def predict_version(name: str, version: int):
    return _predict(str(Ref(name, version=version)))


# --- MLflow scoring server compatibility ---------------------------------------------------------

def _served_ref() -> str:
    ref = current_app.config.get("SERVE_MODEL")
    if not ref:
        abort(404, description="No model is served here: set VIEWER_SERVE_MODEL to name, name@alias or name/version.")
    return ref


@mlflow_bp.post("/invocations")
@allow_anonymous_if(lambda: serving.anonymous_allowed(current_app.config.get("SERVE_MODEL") or ""))
def invocations():
    served = serving.resolve(_served_ref())
    table = parse_mlflow(_body(), request.content_type or "")
    result = serving.run(served, table, proba=serving.wants_proba(table.params, None))
    # MLflow's shape: {"predictions": [...]}; with predict_method=predict_proba, one list per row.
    return json_response({"predictions": result.get("probabilities", result["predictions"])})


@mlflow_bp.get("/health")
@public
def health():
    """Ready when the served model (if any) loads."""
    ref = current_app.config.get("SERVE_MODEL")
    if ref:
        try:
            serving.resolve(ref)
        except Exception:  # noqa: BLE001
            return "The served model is not available.\n", 503, {"Content-Type": "text/plain"}
    return "\n", 200, {"Content-Type": "text/plain"}


@mlflow_bp.get("/version")
@public
def version():
    from .. import __version__

    return __version__, 200, {"Content-Type": "text/plain"}


def _payload_error(exc: PayloadError):
    response = jsonify(error_code=exc.error_code, message=exc.message)
    response.status_code = exc.status
    return response


# --- the fast lane ----------------------------------------------------------------------------

# The app-wide request hooks the fast lane does not run, each with why it has nothing to do for
# the requests the fast lane answers. If the app has any other hook, or a hook for the API
# blueprints, the fast lane turns itself off (and tests/test_predict_api.py says so): a new hook
# must be checked here before predictions skip it.
SKIPPED_HOOKS = {
    "viewer._reject_nul_bytes": "the path and query it takes are plain ASCII without NUL",
    "viewer.api._refuse_nul": "the path has no NUL",
    "flask_wtf.csrf.CSRFProtect.init_app.<locals>.csrf_protect": "the API blueprints are exempt from CSRF",
    "viewer.auth._authenticate": "the token is checked by auth.cached_identity, as _authenticate checks it",
    "flask_limiter._extension.Limiter._check_request_limit": "no API route has a rate limit",
    "flask_limiter._extension.Limiter.__inject_headers": "no API route has a rate limit",
    "flask_limiter._extension.Limiter.__release_context": "no API route has a rate limit",
    "flask_login.login_manager.LoginManager._update_remember_cookie": "API requests have no cookie session",
    "viewer._security_headers": "the fast lane sends SECURITY_HEADERS itself",
    "flask_sqlalchemy.extension.SQLAlchemy._teardown_session": "it opens no database session",
}
FAST_ENDPOINTS = ("api.predict", "mlflow.invocations")
FAST_MAX_BYTES = 1 << 20  # larger bodies gain little: Flask's overhead is fixed per request
_OUTPUT_QUERY = re.compile(r"output=[a-z_]{1,20}")


def hook_name(hook: Callable) -> str:
    hook = getattr(hook, "__wrapped__", hook)  # auth.pages_only wraps some
    hook = getattr(hook, "func", hook)  # a functools.partial
    return f"{getattr(hook, '__module__', '?')}.{getattr(hook, '__qualname__', repr(hook))}"


def fast_lane_blockers(app: Flask) -> list[str]:
    """Why the fast lane cannot answer for this app (empty when it can)."""
    from flask import signals

    blockers = []
    if app.config.get("SERVER_NAME") or app.config.get("TRUSTED_HOSTS") or app.debug:
        blockers.append("SERVER_NAME, TRUSTED_HOSTS or debug mode is set")
    if app.url_map.host_matching or app.subdomain_matching:
        blockers.append("the URL map matches hosts")
    if (app.config.get("MAX_CONTENT_LENGTH") or FAST_MAX_BYTES) < FAST_MAX_BYTES:
        blockers.append("MAX_CONTENT_LENGTH is below FAST_MAX_BYTES")
    hooks = [(scope, hook) for registry in (app.before_request_funcs, app.after_request_funcs,
                                            app.teardown_request_funcs, app.url_value_preprocessors)
             for scope, found in registry.items() for hook in found]
    hooks += [(None, hook) for hook in app.teardown_appcontext_funcs]
    for scope, hook in hooks:
        if scope in (None, "api", "mlflow") and hook_name(hook) not in SKIPPED_HOOKS:
            blockers.append(f"request hook {hook_name(hook)} is not in SKIPPED_HOOKS")
    for name in ("request_started", "request_finished", "got_request_exception", "request_tearing_down",
                 "appcontext_pushed", "appcontext_popped", "appcontext_tearing_down"):
        if getattr(signals, name).receivers:
            blockers.append(f"the {name} signal has receivers")
    if app.view_functions.get("api.predict") is not predict \
            or app.view_functions.get("mlflow.invocations") is not invocations:
        blockers.append("the predict or invocations view is wrapped or replaced")
    return blockers


class FastLane:
    """WSGI middleware: answers ``POST /api/v1/models/<name>/predict`` and ``POST /invocations``
    when the token and the model are in this process's caches (``auth.cached_identity``,
    ``serving.cached``), the body is JSON of at most ``FAST_MAX_BYTES`` and the prediction
    succeeds. Routing is the app's own URL map. Anything else, and any error (a 4xx included),
    is handed to the app with the body as it was read, and the app answers as it always does."""

    def __init__(self, app: Flask, wsgi_app: Callable):
        self.app = app
        self.wsgi_app = wsgi_app
        self.enabled: bool | None = None  # decided at the first request, once every hook is registered
        self._adapter = None

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        if self.enabled is None:
            self.enabled = not fast_lane_blockers(self.app)
            self._adapter = self.app.url_map.bind("localhost")
        if not self.enabled or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        try:
            answer = self._answer(environ)
        except Exception:  # noqa: BLE001  (a failure here is the app's to report, as for any request)
            answer = None
        if answer is None:
            return self.wsgi_app(environ, start_response)
        start_response("200 OK", answer[1])
        return [answer[0]]

    def _answer(self, environ: dict) -> tuple[bytes, list[tuple[str, str]]] | None:
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        header, length = environ.get("HTTP_AUTHORIZATION"), environ.get("CONTENT_LENGTH", "")
        if header is None or not length.isdigit() or int(length) > FAST_MAX_BYTES \
                or not path.isascii() or "\x00" in path or (query and not _OUTPUT_QUERY.fullmatch(query)):
            return None
        try:
            endpoint, args = self._adapter.match(path, method="POST")
        except Exception:  # noqa: BLE001  (404, 405, redirects: the app answers them)
            return None
        if endpoint not in FAST_ENDPOINTS:
            return None
        ref = args["name"] if endpoint == "api.predict" else self.app.config.get("SERVE_MODEL")
        if not ref or cached_identity(header) is None:
            return None
        served = serving.cached(ref)
        if served is None:
            return None
        body = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = BytesIO(body)  # for the app, if it answers after all
        try:
            table = parse_mlflow(body, environ.get("CONTENT_TYPE", ""))
            output = query[len("output="):] if query else None
            result = serving.run(served, table, proba=serving.wants_proba(
                table.params, output if endpoint == "api.predict" else None))
        except Exception:  # noqa: BLE001  (PayloadError and the rest: the app answers, as always)
            return None
        if endpoint == "api.predict":
            payload: dict[str, Any] = {"model": served.ref, **result}
        else:
            payload = {"predictions": result.get("probabilities", result["predictions"])}
        data = json_bytes(self.app, payload)
        if data is None:
            return None
        headers = [("Content-Type", self.app.json.mimetype), ("Content-Length", str(len(data))),
                   *SECURITY_HEADERS]
        return data, headers


def init_app(app: Flask) -> None:
    app.register_blueprint(mlflow_bp)
    app.register_error_handler(PayloadError, _payload_error)
    app.wsgi_app = FastLane(app, app.wsgi_app)  # type: ignore[method-assign]
