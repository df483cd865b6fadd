"""User management (admins only)."""

import secrets

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from ..auth import forget_user, role_required
from ..extensions import db
from ..records import ROLES, User
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
        if User.by_name(form.username.data):
            form.username.errors.append("That username is taken.")
        else:
            password = secrets.token_urlsafe(12)
            user = User(username=form.username.data, role=form.role.data)
            user.set_password(password)
            db.session.add(user)
            db.session.commit()
            created = (user.username, password)
            flash(f"User {user.username} created. Give them the password below; it is shown only once.", "info")
    everyone = db.session.scalars(select(User).order_by(User.username)).all()
    return render_template("admin_users.html", form=form, users=everyone, created=created,
                           roles=ROLES, confirm=ConfirmForm())


@bp.post("/users/<int:user_id>")
def update_user(user_id: int):
    user = db.session.get(User, user_id) or abort(404)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    if user.id == current_user.id:
        abort(409, description="You cannot change your own role or deactivate yourself.")
    role = request.form.get("role")
    if role is not None:
        if role not in ROLES:
            abort(400, description=f"Unknown role {role!r}.")
        user.role = role
    if "active" in request.form:
        user.active = request.form["active"] == "1"
    db.session.commit()
    forget_user(user.id)  # a new role or a disabled account applies to their tokens at once
    flash(f"{user.username} updated.", "info")
    return redirect(url_for("admin.users"))
