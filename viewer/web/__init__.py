"""Blueprints for HTML pages."""

from flask import Flask


def init_app(app: Flask) -> None:
    from . import account, admin, main, session

    app.register_blueprint(session.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(admin.bp)
