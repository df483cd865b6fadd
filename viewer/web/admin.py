"""User management (admins only)."""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..http.auth import forget_user, role_required
from ..infra.records import ROLES
from ..services import accounts
from ..services.errors import ServiceError
from .forms import ConfirmForm, CreateUserForm

bp = Blueprint("admin", __name__, url_prefix="/admin")


@bp.before_request
@role_required("admin")
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
