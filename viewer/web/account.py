"""A user's own account: password and API tokens."""

from datetime import timedelta

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select

from ..auth import forget_token
from ..extensions import db
from ..records import ApiToken, utcnow
from .forms import ChangePasswordForm, ConfirmForm, TokenForm

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.route("/", methods=["GET", "POST"])
def tokens():
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        days = form.expires_days.data
        _token, new_token = ApiToken.issue(current_user, form.label.data or "",
                                           timedelta(days=days) if days else None)
        db.session.commit()
        flash("Token created. Copy it now: it is shown only once.", "info")
    mine = db.session.scalars(select(ApiToken).where(ApiToken.user_id == current_user.id)
                              .order_by(ApiToken.created_at.desc())).all()
    return render_template("account.html", form=form, tokens=mine, new_token=new_token,
                           confirm=ConfirmForm(), password_form=ChangePasswordForm())


@bp.post("/tokens/<int:token_id>/revoke")
def revoke(token_id: int):
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != current_user.id:
        abort(404)
    if ConfirmForm().validate_on_submit() and token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
        forget_token(token.token_hash)
        flash(f"Token {token.prefix}… revoked.", "info")
    return redirect(url_for("account.tokens"))


@bp.post("/password")
def change_password():
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        for errors in form.errors.values():
            for error in errors:
                flash(error, "error")
    elif not current_user.check_password(form.current.data):
        flash("The current password is wrong.", "error")
    else:
        current_user.set_password(form.new.data)
        db.session.commit()
        flash("Password changed.", "info")
    return redirect(url_for("account.tokens"))
