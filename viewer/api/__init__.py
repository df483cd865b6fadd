"""The JSON API. Authenticated by Bearer token only (see ``viewer.auth``); CSRF does not apply
because no cookie is accepted here."""

from flask import Flask


def init_app(app: Flask) -> None:
    from ..extensions import csrf
    from .v1 import bp

    csrf.exempt(bp)
    app.register_blueprint(bp)
