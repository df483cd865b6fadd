"""Who is asking: session login for pages, Bearer tokens for the API, roles for both.

Default deny: ``init_app`` installs a ``before_request`` that authenticates every request.
A view is reachable anonymously only when decorated with ``@public``. API routes accept only
``Authorization: Bearer`` (never the session cookie), so a page cannot be tricked into
calling the API with a browser's credentials.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Callable

from flask import Flask, abort, current_app, g, request
from flask_login import current_user
from sqlalchemy import select, update

from .extensions import db, login_manager
from .records import ROLES, ApiToken, User, hash_token, utcnow

API_PREFIXES = ("/api/", "/v2/", "/invocations")
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most once a minute per token


def public(view: Callable) -> Callable:
    """Mark a view as reachable without logging in."""
    view.is_public = True  # type: ignore[attr-defined]
    return view


def allow_anonymous_if(check: Callable[..., bool]) -> Callable:
    """Let an API view through without a token when ``check(**view_args)`` says so."""

    def decorator(view: Callable) -> Callable:
        view.allows_anonymous = check  # type: ignore[attr-defined]
        return view

    return decorator


def is_api_request() -> bool:
    return request.path.startswith(API_PREFIXES)


def pages_only(app: Flask, init_app: Callable[[Flask], None]) -> None:
    """``init_app(app)`` for an extension that serves pages only (the login rate limiter, the
    remember-me cookie), with the request hooks it adds to the whole app skipped on API requests,
    which authenticate by token and have no cookie session."""
    hook_lists = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    counts = [len(hooks.get(None, ())) for hooks in hook_lists]
    init_app(app)
    for hooks, count in zip(hook_lists, counts):
        added = hooks.get(None, [])[count:]
        wrap = _after_unless_api if hooks is app.after_request_funcs else _unless_api
        hooks[None][count:] = [wrap(hook) for hook in added]


def _unless_api(hook: Callable) -> Callable:
    @wraps(hook)
    def hook_for_pages(*args):
        return None if is_api_request() else hook(*args)

    return hook_for_pages


def _after_unless_api(hook: Callable) -> Callable:
    @wraps(hook)
    def after_request_for_pages(response):
        return response if is_api_request() else hook(response)

    return after_request_for_pages


@dataclass(frozen=True)
class Identity:
    """Who a token belongs to, as cached between requests (no database object outlives a request)."""

    user_id: int
    username: str
    role: str

    def has_role(self, role: str) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


def identity() -> Identity | None:
    """The authenticated caller of this request, without a database query for API calls."""
    found = g.get("api_identity")
    if found is not None:
        return found
    if not is_api_request() and current_user.is_authenticated:
        return Identity(current_user.id, current_user.username, current_user.role)
    return None


def requester() -> User | None:
    """The authenticated user of this request as a database object (for relationships)."""
    who = identity()
    if who is None:
        return None
    if not is_api_request():
        return current_user._get_current_object()  # type: ignore[attr-defined]
    if "api_user" not in g:
        g.api_user = db.session.get(User, who.user_id)
    return g.api_user


def role_required(role: str) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args, **kwargs):
            who = identity()
            if who is None:
                abort(401)
            if not who.has_role(role):
                abort(403, description=f"This needs the {role} role.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


@dataclass
class _CachedToken:
    identity: Identity
    token_id: int
    expires_at: datetime | None
    last_used_at: datetime | None
    checked_at: float


# token hash -> what the database said about it, for TOKEN_CACHE_SECONDS. A token revoked through
# this process is forgotten at once; other processes notice within TOKEN_CACHE_SECONDS.
_token_cache: dict[str, _CachedToken] = {}
_token_lock = threading.Lock()
TOKEN_CACHE_SECONDS = 5.0


def forget_token(token_hash: str) -> None:
    with _token_lock:
        _token_cache.pop(token_hash, None)


def forget_user(user_id: int) -> None:
    with _token_lock:
        for key in [k for k, v in _token_cache.items() if v.identity.user_id == user_id]:
            del _token_cache[key]


def _bearer_digest(header: str) -> str | None:
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    return hash_token(raw.strip())


def cached_identity(header: str) -> Identity | None:
    """Who sends this ``Authorization`` header, from the token cache alone (no request context
    needed): the identity that ``identity_from_bearer`` would return without touching the
    database, or None when it would touch it (an unknown or stale entry, a ``last_used_at``
    write due) or refuse the token (no Bearer token, expired)."""
    digest = _bearer_digest(header)
    cached = _token_cache.get(digest) if digest is not None else None
    if cached is None or time.monotonic() - cached.checked_at > TOKEN_CACHE_SECONDS:
        return None
    now = utcnow()
    if cached.expires_at is not None and cached.expires_at <= now:
        return None
    if cached.last_used_at is None or now - cached.last_used_at > LAST_USED_RESOLUTION:
        return None
    return cached.identity


def identity_from_bearer(header: str | None = None) -> Identity:
    if header is None:
        header = request.headers.get("Authorization", "")
    digest = _bearer_digest(header)
    if digest is None:
        abort(401, description="Send an API token: 'Authorization: Bearer <token>'.")
    now = utcnow()
    cached = _token_cache.get(digest)
    if cached is None or time.monotonic() - cached.checked_at > TOKEN_CACHE_SECONDS:
        cached = _check_token(digest)
    if cached.expires_at is not None and cached.expires_at <= now:
        abort(401, description="This API token is expired.")
    if cached.last_used_at is None or now - cached.last_used_at > LAST_USED_RESOLUTION:
        db.session.execute(update(ApiToken).where(ApiToken.id == cached.token_id).values(last_used_at=now))
        db.session.commit()
        cached.last_used_at = now
    return cached.identity


def _check_token(digest: str) -> _CachedToken:
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == digest))
    if token is None:
        forget_token(digest)
        abort(401, description="Unknown API token.")
    state = token.state
    if state != "active":
        forget_token(digest)
        abort(401, description=f"This API token is {state}.")
    if not token.user.is_active:
        forget_token(digest)
        abort(401, description="This account is disabled.")
    entry = _CachedToken(Identity(token.user.id, token.user.username, token.user.role), token.id,
                         token.expires_at, token.last_used_at, time.monotonic())
    with _token_lock:
        _token_cache[digest] = entry
    return entry


def _authenticate():
    endpoint = request.endpoint
    if endpoint is None:  # no route matched: let the 404/405 handler answer
        return None
    view = current_app.view_functions.get(endpoint)
    if endpoint == "static" or getattr(view, "is_public", False):
        return None
    if is_api_request():
        header = request.headers.get("Authorization")
        anonymous_ok = getattr(view, "allows_anonymous", None)
        if anonymous_ok is not None and header is None and anonymous_ok(**request.view_args):
            return None  # e.g. a model an admin opened to anonymous predictions
        g.api_identity = identity_from_bearer(header or "")
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
    pages_only(app, login_manager.init_app)  # its remember-me cookie hook has nothing to do on API requests
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.session_protection = "strong"
    app.before_request(_authenticate)
