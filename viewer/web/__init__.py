"""Blueprints for HTML pages."""

from flask import Flask


def init_app(app: Flask) -> None:
    from . import account, admin, assets, compare, datasets, docs, jobs, main, models, predict, session

    app.register_blueprint(session.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(predict.bp)
    app.register_blueprint(assets.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(datasets.bp)
    app.register_blueprint(compare.bp)  # /jobs/compare (a static rule: wins over /jobs/<job_id>)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(docs.bp)
