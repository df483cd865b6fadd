"""Log in and out."""

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from ..http.auth import public
from ..infra.extensions import limiter
from ..infra.ratelimit import Rule
from ..services import accounts
from .forms import ConfirmForm, LoginForm

bp = Blueprint("auth", __name__)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths: an open redirect would make a fine phishing link."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("main.index")


def _login_limits() -> list[Rule]:
    """Failed logins allowed per client address, and per username from any address. Only failed
    attempts count: a user who types the password right is never slowed down."""
    username = (request.form.get("username") or "").strip().lower()[:80]
    return [Rule(current_app.config["LOGIN_RATE_LIMIT"], f"addr:{request.remote_addr}",
                 "Too many failed logins from your address. Wait a minute and try again."),
            Rule(current_app.config["LOGIN_USER_RATE_LIMIT"], f"user:{username}",
                 "Too many failed logins for this username. Wait and try again, or ask an admin.")]


@bp.route("/login", methods=["GET", "POST"])
@public
def login():
    if request.method == "POST":
        limiter.check(_login_limits())  # a 429 before the password is even looked at
    if current_user.is_authenticated:
        return redirect(url_for("main.index"))
    form = LoginForm()
    if form.validate_on_submit():
        user = accounts.authenticate(form.username.data, form.password.data)
        if user is None:
            limiter.failed(_login_limits())
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
