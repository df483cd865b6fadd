"""Users and API tokens: who may log in, with which role, and what a token says about its owner.

Token checks are on every API request's path, so ``token_identity`` returns a small frozen
``Identity`` that the request layer may cache (``viewer.http.auth``), never a database object.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from ..infra.extensions import db
from ..infra.records import ROLES, ApiToken, User, hash_token, utcnow
from ..infra.scope import current
from . import projects
from .errors import ServiceError
from .paging import PAGE_SIZE, Page, page


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to, as cached between requests (no database object outlives a request):
    ``role`` is the account's ("admin": a global admin), ``roles`` the role in each project."""

    user_id: int
    username: str
    role: str
    roles: dict[int, str] = field(default_factory=dict)

    @property
    def global_admin(self) -> bool:
        return self.role == "admin"

    def has_role(self, role: str) -> bool:
        """In the project of the request at hand (a global admin: everywhere)."""
        return self.global_admin or current().allows(role)


@dataclass(frozen=True)
class TokenCheck:
    identity: Identity
    token_id: int
    expires_at: datetime | None
    last_used_at: datetime | None


def digest(raw: str) -> str:
    return hash_token(raw)


def token_identity(token_digest: str) -> TokenCheck:
    """What the token with this digest says, or a 401 ServiceError saying why it is refused."""
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest))
    if token is None:
        raise ServiceError("unauthorized", "unauthorized", "Unknown API token.")
    state = token.state
    if state != "active":
        raise ServiceError("unauthorized", "unauthorized", f"This API token is {state}.")
    if not token.user.is_active:
        raise ServiceError("unauthorized", "unauthorized", "This account is disabled.")
    user = token.user
    return TokenCheck(Identity(user.id, user.username, user.role, projects.roles_of(user.id, user.role)), token.id,
                      token.expires_at, token.last_used_at)


def touch_token(token_id: int, when: datetime) -> None:
    db.session.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=when))
    db.session.commit()


def get_user(user_id: int) -> User | None:
    return db.session.get(User, user_id)


def by_name(username: str) -> User | None:
    return User.by_name(username)


def authenticate(username: str, password: str) -> User | None:
    """The active user with this name and password, with the login recorded; else None."""
    user = User.by_name(username.strip())
    if user is None or not user.check_password(password) or not user.is_active:
        return None
    user.last_login_at = utcnow()
    db.session.commit()
    return user


def users() -> list[User]:
    return list(db.session.scalars(select(User).order_by(User.username)))


def usernames() -> list[str]:
    return list(db.session.scalars(select(User.username).order_by(User.username)))


def create_user(username: str, role: str) -> tuple[User, str]:
    """A new user with a generated password, returned once."""
    if role not in ROLES:
        raise ServiceError("invalid", "bad_request", f"Unknown role {role!r}.")
    if User.by_name(username):
        raise ServiceError("conflict", "username_taken", "That username is taken.")
    password = secrets.token_urlsafe(12)
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user, password


def ensure_admin() -> tuple[str, str] | None:
    """Create the first admin with a generated password; returns it once, or None if users exist."""
    if db.session.scalar(select(func.count()).select_from(User)):
        return None
    user, password = create_user("admin", "admin")
    return user.username, password


def update_user(actor_id: int, user_id: int, *, role: str | None = None, active: bool | None = None) -> User:
    user = db.session.get(User, user_id)
    if user is None:
        raise ServiceError("not_found", "not_found", "No such user.")
    if user.id == actor_id:
        raise ServiceError("conflict", "conflict", "You cannot change your own role or deactivate yourself.")
    if role is not None:
        if role not in ROLES:
            raise ServiceError("invalid", "bad_request", f"Unknown role {role!r}.")
        user.role = role
    if active is not None:
        user.active = active
    db.session.commit()
    return user


def reset_password(username: str) -> str:
    user = User.by_name(username)
    if user is None:
        raise ServiceError("not_found", "not_found", f"No user {username!r}.")
    password = secrets.token_urlsafe(12)
    user.set_password(password)
    db.session.commit()
    return password


def change_password(user: User, current: str, new: str) -> None:
    if not user.check_password(current):
        raise ServiceError("invalid", "wrong_password", "The current password is wrong.")
    user.set_password(new)
    db.session.commit()


def issue_token(user: User, label: str = "", expires_days: int | None = None) -> tuple[ApiToken, str]:
    """A new token; the raw value is returned once and never stored."""
    token, raw = ApiToken.issue(user, label, timedelta(days=expires_days) if expires_days else None)
    db.session.commit()
    return token, raw


def _tokens(user_id: int):
    return select(ApiToken).where(ApiToken.user_id == user_id).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())


def page_of_tokens(user_id: int, limit: int = PAGE_SIZE, offset: int = 0) -> Page:
    return page(_tokens(user_id), limit, offset)


def own_token(user_id: int, token_id: int) -> ApiToken:
    """One of the user's own tokens (another user's token is "not found")."""
    token = db.session.get(ApiToken, token_id) if token_id < 2**31 else None
    if token is None or token.user_id != user_id:
        raise ServiceError("not_found", "not_found", "No such token.")
    return token


def revoke_token(user_id: int, token_id: int) -> ApiToken:
    """Revoke one of the user's own tokens."""
    token = own_token(user_id, token_id)
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
    return token
