"""The JSON API: ``/api/v1`` (ours), MLflow's scoring-server routes and KServe V2.

Authenticated by Bearer token only (``viewer.http.auth``): no cookie session, so neither CSRF
nor the login rate limiter applies to these blueprints. The views are thin: they read the
request, call a service and answer JSON; refusals are ``ServiceError`` / ``PayloadError``,
answered by ``viewer.http.errors``.
"""

from flask import Flask


def init_app(app: Flask) -> None:
    from ..infra.extensions import csrf
    from . import compare, datasets, docs, jobs, log, models, predict, spec, system, v2  # noqa: F401  (routes)
    from .v1 import bp

    for blueprint in (bp, predict.mlflow_bp, v2.bp, spec.bp):
        csrf.exempt(blueprint)
        app.register_blueprint(blueprint)
    app.register_blueprint(docs.bp)  # the API's documentation page (a page: session login)
