"""The JSON API. Authenticated by Bearer token only (see ``viewer.auth``); CSRF does not apply
because no cookie is accepted here."""

from flask import Flask


def init_app(app: Flask) -> None:
    from ..extensions import csrf
    from . import datasets, jobs, models, openapi, predict, v2  # noqa: F401  (most add routes to v1)
    from .v1 import bp

    csrf.exempt(bp)
    csrf.exempt(predict.mlflow_bp)
    csrf.exempt(v2.bp)
    app.register_blueprint(bp)
    app.register_blueprint(v2.bp)
    app.register_blueprint(openapi.bp)
    predict.init_app(app)
