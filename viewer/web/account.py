"""A user's own account: password and API tokens."""

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_login import current_user

from ..http.auth import forget_token
from ..services import accounts
from ..services.errors import ServiceError
from .forms import ChangePasswordForm, ConfirmForm, TokenForm, offset_arg

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.route("/", methods=["GET", "POST"])
def tokens():
    form = TokenForm()
    new_token = None
    if form.validate_on_submit():
        _token, new_token = accounts.issue_token(current_user, form.label.data or "", form.expires_days.data)
        flash("Token created. Copy it now: it is shown only once.", "info")
    found = accounts.page_of_tokens(current_user.id, offset=offset_arg())
    more = url_for("account.tokens", offset=found.next_offset) if found.next_offset else None
    return render_template("account.html", form=form, tokens=found.items, more=more, new_token=new_token,
                           confirm=ConfirmForm(), password_form=ChangePasswordForm())


@bp.post("/tokens/<int:token_id>/revoke")
def revoke(token_id: int):
    token = accounts.own_token(current_user.id, token_id)
    if ConfirmForm().validate_on_submit() and token.revoked_at is None:
        accounts.revoke_token(current_user.id, token_id)
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
    else:
        try:
            accounts.change_password(current_user, form.current.data, form.new.data)
        except ServiceError as exc:
            flash(exc.message, "error")
        else:
            flash("Password changed.", "info")
    return redirect(url_for("account.tokens"))
