"""Flask-WTF forms: every form carries a CSRF token."""

from typing import Callable

from flask import Response, abort, flash, redirect, request, url_for
from flask_wtf import FlaskForm
from wtforms import FloatField, IntegerField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp

from ..core.schema import needed_columns
from ..infra.records import PROJECT_NAME_PATTERN, ROLES
from ..services.errors import ServiceError

USERNAME = [DataRequired(), Length(max=80),
            Regexp(r"^[A-Za-z0-9_.@-]+$", message="Letters, digits and _ . @ - only.")]


class ThresholdForm(FlaskForm):
    """A job page's slider value, saved as its model version's decision threshold."""
    threshold = FloatField("Threshold", validators=[DataRequired(message="Choose a threshold."), NumberRange(0, 1)])


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


# --- the scoring form's choices: models that fit the dataset first, a target guessed by name ------

COMMON_TARGETS = ("target", "label", "labels", "y", "class", "outcome", "response")


def missing_inputs(columns: list[str], info: dict) -> list[str] | None:
    """The model's named inputs the dataset lacks ([] when it has them all; None when the model
    does not name its inputs)."""
    names = needed_columns(info)
    if not names:
        return None
    have = set(columns)
    return [str(c) for c in names if c not in have]


def order_model_groups(groups: dict[str, list[tuple[str, str]]], infos: dict[str, dict],
                       columns: list[str]) -> dict[str, list[tuple[str, str]]]:
    """The model <optgroup>s with those whose inputs the dataset has first, then those that do
    not name their inputs, then the others, labelled with what they lack ("churn · lacks income")."""
    ranked = []
    for name, options in groups.items():
        missing = missing_inputs(columns, infos.get(name) or {})
        if missing is None:
            ranked.append((1, name, name, options))
        elif not missing:
            ranked.append((0, name, name, options))
        else:
            lacks = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            ranked.append((2, name, f"{name} · lacks {lacks}", options))
    ranked.sort(key=lambda r: (r[0], r[1]))
    return {label: options for _, _, label, options in ranked}


def guess_target(columns: list[str], inputs: list[str] | None, ids: list[str] = (),
                 known: list[str] = ()) -> str:
    """The dataset column most likely to be the target: one the model was scored against before
    (``known``, newest first), else a common name (target, label, y, ...), else the only column
    that is neither a model input nor an ID; "" when none stands out."""
    for name in known:
        if name in columns and name not in (inputs or ()):
            return name
    lowered = {c.lower(): c for c in columns}
    for name in COMMON_TARGETS:
        if name in lowered and lowered[name] not in (inputs or ()):
            return lowered[name]
    if inputs:
        rest = [c for c in columns if c not in set(inputs) and c not in set(ids)]
        if len(rest) == 1:
            return rest[0]
    return ""
