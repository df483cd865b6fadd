"""Users and projects (global admins only; a project's members are managed on its members page)."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..http.auth import forget_user, global_admin_required
from ..infra.records import ROLES
from ..services import accounts, projects
from ..services.errors import ServiceError
from . import in_project
from .forms import ConfirmForm, CreateUserForm, ProjectForm, RenameProjectForm

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@global_admin_required
def _admins_only():
    return None


@bp.route("/users", methods=["GET", "POST"])
def users():
    form = CreateUserForm()
    created = None
    if form.validate_on_submit():
        try:
            user, password = accounts.create_user(form.username.data, form.role.data)
        except ServiceError as exc:
            form.username.errors.append(exc.message)
        else:
            created = (user.username, password)
            flash(f"User {user.username} created. Give them the password below; it is shown only once.", "info")
    return render_template("admin_users.html", form=form, users=accounts.users(), created=created,
                           roles=ROLES, confirm=ConfirmForm())


@bp.post("/users/<int:user_id>")
def update_user(user_id: int):
    if accounts.get_user(user_id) is None:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    user = accounts.update_user(current_user.id, user_id, role=request.form.get("role"),
                                active=request.form["active"] == "1" if "active" in request.form else None)
    forget_user(user.id)  # a new role or a disabled account applies to their tokens at once
    flash(f"{user.username} updated.", "info")
    return redirect(url_for("admin.users"))


# --- projects -------------------------------------------------------------------------------------

@bp.route("/projects", methods=["GET", "POST"])
def projects_page():
    form = ProjectForm()
    if form.validate_on_submit():
        try:
            project = projects.create(form.name.data)
        except ServiceError as exc:
            form.name.errors.append(exc.message)
        else:
            flash(f"Project {project.name} created. Add its members below.", "info")
            return redirect(in_project(project.name, "members.index"))
    return render_template("admin_projects.html", form=form, rows=projects.overview(), confirm=ConfirmForm())


@bp.get("/projects/<int:project_id>")
def project(project_id: int):
    found = projects.get(project_id)
    return render_template("admin_project.html", project=found, members=projects.members(found),
                           rename=RenameProjectForm(name=found.name), confirm=ConfirmForm())


@bp.post("/projects/<int:project_id>/rename")
def rename_project(project_id: int):
    found = projects.get(project_id)
    form = RenameProjectForm()
    if form.validate_on_submit():
        try:
            projects.rename(found, form.name.data)
            flash(f"Renamed to {found.name}.", "info")
        except ServiceError as exc:
            flash(exc.message, "error")
    return redirect(url_for("admin.project", project_id=found.id))


@bp.post("/projects/<int:project_id>/delete")
def delete_project(project_id: int):
    found = projects.get(project_id)
    if ConfirmForm().validate_on_submit():
        try:
            projects.delete(found)
            flash(f"Project {found.name} deleted.", "info")
        except ServiceError as exc:
            flash(exc.message, "error")
            return redirect(url_for("admin.project", project_id=found.id))
    return redirect(url_for("admin.projects_page"))
