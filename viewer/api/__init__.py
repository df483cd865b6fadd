"""The JSON API. Authenticated by Bearer token only (see ``viewer.auth``); CSRF does not apply
because no cookie is accepted here."""

from flask import Flask, abort, request

from ..auth import is_api_request


def _refuse_nul() -> None:
    """PostgreSQL can neither store nor compare text holding NUL bytes (the query fails: a 500),
    so a NUL in an API path names nothing that exists. (Search filters holding one match nothing.)"""
    if "\x00" in request.path and is_api_request():
        abort(404)


def init_app(app: Flask) -> None:
    from ..extensions import csrf
    from . import compare, datasets, jobs, models, openapi, predict, v2  # noqa: F401  (most add routes to v1)
    from .v1 import bp

    csrf.exempt(bp)
    csrf.exempt(predict.mlflow_bp)
    csrf.exempt(v2.bp)
    app.register_blueprint(bp)
    app.register_blueprint(v2.bp)
    app.register_blueprint(openapi.bp)
    predict.init_app(app)
    app.before_request(_refuse_nul)
