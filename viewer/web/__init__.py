"""Blueprints for HTML pages: thin views over ``viewer.services`` (they query no table themselves)."""

from flask import Flask, request, url_for
from flask_login import current_user


def root() -> str:
    """The application's root without this request's /p/<project>/ prefix."""
    from ..http.auth import PROJECT_KEY

    named = request.environ.get(PROJECT_KEY)
    return request.script_root[: -len("/p/" + named)] if named else request.script_root


def in_project(project: str, endpoint: str, /, **values) -> str:
    """The URL of ``endpoint`` in ``project`` (a page of another project than this request's)."""
    return f"{root()}/p/{project}{url_for(endpoint, **values)[len(request.script_root):]}"


def _project_menu() -> dict:
    """The project switcher: the project of this page, and links to the others of the user's."""
    from ..infra.scope import current
    from ..services import projects

    scope = current()
    if scope.user_id is None or not current_user.is_authenticated:
        return {"project_menu": None}
    names = projects.names_of(projects.roles_of(current_user.id, current_user.role), current_user.role == "admin")
    return {"project_menu": {"current": scope.project, "role": "admin" if scope.global_admin else scope.role,
                             "others": [(name, in_project(name, "main.index")) for name in names
                                        if name != scope.project]}}


def _sandbox_notice() -> dict:
    """A banner on every page when model code runs with fewer guards than it should."""
    from ..services import hosts

    return {"sandbox_notice": hosts.sandbox_notice() if current_user.is_authenticated else None}


def init_app(app: Flask) -> None:
    from . import account, admin, assets, compare, datasets, jobs, main, members, models, monitoring, prediction, session

    app.context_processor(_project_menu)
    app.context_processor(_sandbox_notice)
    app.jinja_env.globals["in_project"] = in_project

    app.register_blueprint(session.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(models.bp)
    app.register_blueprint(prediction.bp)
    app.register_blueprint(monitoring.bp)
    app.register_blueprint(assets.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(members.bp)
    app.register_blueprint(datasets.bp)
    app.register_blueprint(compare.bp)  # /jobs/compare (a static rule: wins over /jobs/<job_id>)
    app.register_blueprint(jobs.bp)
