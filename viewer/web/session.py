"""Log in and out."""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..http.auth import public
from ..infra.extensions import limiter
from ..services import accounts
from .forms import ConfirmForm, LoginForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: an open redirect would make a fine phishing link."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("main.index")


def _failed(response) -> bool:
    """Only failed attempts count against the limits: a user who types the password right is
    never slowed down."""
    return response.status_code == 401


def _username_key() -> str:
    return "user:" + (request.form.get("username") or "").strip().lower()[:80]


@bp.route("/login", methods=["GET", "POST"])
@public
@limiter.limit(lambda: current_app.config["LOGIN_RATE_LIMIT"], methods=["POST"], deduct_when=_failed,
               error_message="Too many failed logins from your address. Wait a minute and try again.")
@limiter.limit(lambda: current_app.config["LOGIN_USER_RATE_LIMIT"], methods=["POST"], deduct_when=_failed,
               key_func=_username_key,
               error_message="Too many failed logins for this username. Wait and try again, or ask an admin.")
def login():
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.username.data, form.password.data)
        if user is None:
            flash("Wrong username or password.", "error")
            return render_template("login.html", form=form), 401
        login_user(user)
        return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", form=form)


@bp.post("/logout")
@login_required
def logout():
    form = ConfirmForm()
    if form.validate_on_submit():
        logout_user()
        flash("You are logged out.", "info")
    return redirect(url_for("auth.login"))
