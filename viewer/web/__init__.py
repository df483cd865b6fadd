"""Blueprints for HTML pages: thin views over ``viewer.services`` (they query no table themselves)."""

from flask import Flask, request
from flask_login import current_user


def _project_menu() -> dict:
    """The project switcher: the project of this page, and links to the others of the user's."""
    from ..http.auth import PROJECT_KEY
    from ..infra.scope import current
    from ..services import projects

    scope = current()
    if scope.user_id is None or not current_user.is_authenticated:
        return {"project_menu": None}
    root = request.script_root
    named = request.environ.get(PROJECT_KEY)
    if named:
        root = root[: -len("/p/" + named)]
    names = projects.names_of(projects.roles_of(current_user.id, current_user.role), current_user.role == "admin")
    return {"project_menu": {"current": scope.project, "role": "admin" if scope.global_admin else scope.role,
                             "others": [(name, f"{root}/p/{name}/") for name in names if name != scope.project]}}


def init_app(app: Flask) -> None:
    from . import account, admin, assets, compare, datasets, jobs, main, models, prediction, session

    app.context_processor(_project_menu)

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
