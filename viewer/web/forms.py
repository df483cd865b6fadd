"""Flask-WTF forms: every form carries a CSRF token."""

from typing import Callable

from flask import Response, abort, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from ..infra.records import PROJECT_NAME_PATTERN, ROLES
from ..services.errors import ServiceError

USERNAME = [DataRequired(), Length(max=80),
            Regexp(r"^[A-Za-z0-9_.@-]+$", message="Letters, digits and _ . @ - only.")]


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=80)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=512)])


class CreateUserForm(FlaskForm):
    username = StringField("Username", validators=USERNAME)
    role = SelectField("Role", choices=list(ROLES), default="viewer")


PROJECT_NAME = [DataRequired(), Regexp(PROJECT_NAME_PATTERN, message="1-63 lowercase letters, digits or '-', "
                                      "starting with a letter or digit.")]


class ProjectForm(FlaskForm):
    name = StringField("Name", validators=PROJECT_NAME)


class RenameProjectForm(FlaskForm):
    name = StringField("New name", validators=PROJECT_NAME)


class MemberForm(FlaskForm):
    username = StringField("Username", validators=USERNAME)
    role = SelectField("Role", choices=list(ROLES), default="viewer")


class TokenForm(FlaskForm):
    label = StringField("Label", validators=[Optional(), Length(max=120)])
    expires_days = IntegerField("Expires after (days)", validators=[Optional(), NumberRange(min=1, max=3650)])


class ChangePasswordForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired()])
    new = PasswordField("New password", validators=[DataRequired(), Length(min=10, max=512)])


class ConfirmForm(FlaskForm):
    """A bare POST form (revoke, delete, ...): only its CSRF token."""


def offset_arg() -> int:
    """Where a listed page starts (``?offset=``, as its "more" link has it); 0 when absent or not a
    whole number the database can take."""
    offset = request.args.get("offset", "0")
    return int(offset) if offset.isascii() and offset.isdigit() and int(offset) < 2**31 else 0


def move_form(action: Callable[[str], object], what: str, endpoint: str, **values) -> Response:
    """A "Move to project" form's POST: ``action(project)`` moves the object; then its page in the
    project it went to, or back here with the reason it could not."""
    from . import in_project

    project = request.form.get("project", "")
    if not ConfirmForm().validate_on_submit() or not project:
        abort(400, description="The form was incomplete; reload the page and try again.")
    try:
        action(project)
    except ServiceError as exc:
        flash(exc.message, "error")
        return redirect(url_for(endpoint, **values))
    flash(f"{what} moved to project {project}.", "info")
    return redirect(in_project(project, endpoint, **values))
