"""Who is asking: session login for pages, Bearer tokens for the API, roles for both.

Default deny: ``init_app`` installs a ``before_request`` that authenticates every request.
A view is reachable anonymously only when decorated with ``@public``. API routes accept only
``Authorization: Bearer`` (never the session cookie), so a page cannot be tricked into
calling the API with a browser's credentials.
"""

from __future__ import annotations

from datetime import timedelta
from functools import wraps
from typing import Callable

from flask import Flask, abort, current_app, g, request
from flask_login import current_user
from sqlalchemy import select

from .extensions import db, login_manager
from .records import ApiToken, User, hash_token, utcnow

API_PREFIXES = ("/api/", "/v2/", "/invocations")
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most once a minute per token


def public(view: Callable) -> Callable:
    """Mark a view as reachable without logging in."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIXES)


def requester() -> User | None:
    """The authenticated user of this request, whichever way they authenticated."""
    user = g.get("api_user")
    if user is not None:
        return user
    if not is_api_request() and current_user.is_authenticated:
        return current_user._get_current_object()  # type: ignore[attr-defined]
    return None


def role_required(role: str) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            user = requester()
            if user is None:
                abort(401)
            if not user.has_role(role):
                abort(403, description=f"This needs the {role} role.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def user_from_bearer() -> User:
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        abort(401, description="Send an API token: 'Authorization: Bearer <token>'.")
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw.strip())))
    if token is None:
        abort(401, description="Unknown API token.")
    state = token.state
    if state != "active":
        abort(401, description=f"This API token is {state}.")
    if not token.user.is_active:
        abort(401, description="This account is disabled.")
    now = utcnow()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        token.last_used_at = now
        db.session.commit()
    return token.user


def _authenticate():
    endpoint = request.endpoint
    if endpoint is None:  # no route matched: let the 404/405 handler answer
        return None
    view = current_app.view_functions.get(endpoint)
    if endpoint == "static" or getattr(view, "is_public", False):
        return None
    if is_api_request():
        g.api_user = user_from_bearer()
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    try:
        return db.session.get(User, int(user_id))
    except ValueError:
        return None


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.session_protection = "strong"
    app.before_request(_authenticate)
