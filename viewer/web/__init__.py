"""Blueprints for HTML pages: thin views over ``viewer.services`` (they query no table themselves)."""

from flask import Flask


def init_app(app: Flask) -> None:
    from . import account, admin, assets, compare, datasets, jobs, main, models, prediction, session

    app.register_blueprint(session.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(prediction.bp)
    app.register_blueprint(assets.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(datasets.bp)
    app.register_blueprint(compare.bp)  # /jobs/compare (a static rule: wins over /jobs/<job_id>)
    app.register_blueprint(jobs.bp)
