"""The members of the project at hand: its admins (and global admins) add, change and remove them."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..http.auth import forget_user, role_required
from ..infra.records import ROLES
from ..infra.scope import current
from ..services import accounts, projects
from ..services.errors import ServiceError
from . import root
from .forms import ConfirmForm, MemberForm

bp = Blueprint("members", __name__, url_prefix="/members")


@bp.before_request
@role_required("admin")
def _project_admins_only():
    return None


@bp.route("/", methods=["GET", "POST"])
def index():
    project = projects.get(current().project_id)
    form, status = MemberForm(), 200
    if form.validate_on_submit():
        user = accounts.by_name(form.username.data)
        if user is None:
            form.username.errors.append("No user of that name: an administrator adds users on the Users page.")
        else:
            try:
                projects.set_member(project, user, form.role.data)
            except ServiceError as exc:
                form.username.errors.append(exc.message)
            else:
                forget_user(user.id)  # their tokens see the new role at once
                flash(f"{user.username} is {form.role.data} in {project.name}.", "info")
                return redirect(url_for("members.index"))
    if form.errors:
        status = 400
    return render_template("members.html", project=project, members=projects.members(project),
                           unassigned=projects.unassigned(project), form=form, roles=ROLES,
                           confirm=ConfirmForm()), status


@bp.post("/<int:user_id>")
def member(user_id: int):
    project = projects.get(current().project_id)
    user = accounts.get_user(user_id)
    if user is None or user.id not in {u.id for u, _role in projects.members(project)}:
        abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    role = request.form.get("role") or None  # empty: out of the project
    try:
        projects.set_member(project, user, role)
    except ServiceError as exc:
        flash(exc.message, "error")
    else:
        forget_user(user.id)
        flash(f"{user.username} is {role} in {project.name}." if role else f"{user.username} left {project.name}.",
              "info")
        if user.id == current_user.id and not current().global_admin and role != "admin":
            return redirect(f"{root()}/")  # no longer this project's admin (or member): their own home
    return redirect(url_for("members.index"))
