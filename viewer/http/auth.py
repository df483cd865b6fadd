"""Who is asking: session login for pages, Bearer tokens for the API, roles for both.

Default deny: ``init_app`` installs a ``before_request`` that authenticates every request.
A view is reachable anonymously only when decorated with ``@public``. API routes accept only
``Authorization: Bearer`` (never the session cookie), so a page cannot be tricked into
calling the API with a browser's credentials.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import wraps
from typing import Callable

from flask import Flask, abort, current_app, g, request
from flask_login import current_user

from ..infra.extensions import login_manager
from ..infra.records import User, utcnow
from ..infra.scope import Scope, enter, leave
from ..services import accounts, projects
from ..services.accounts import Identity
from ..services.errors import ServiceError

API_PREFIXES = ("/api/", "/v2/", "/invocations")
PROJECT_KEY = "viewer.project"  # the WSGI environ key of a /p/<project>/ prefix (viewer.http.ProjectPrefix)
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
        g.api_user = accounts.get_user(who.user_id)
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


def global_admin_required(view: Callable) -> Callable:
    """Projects and users are managed by global admins (the account role "admin"), not project admins."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        who = identity()
        if who is None:
            abort(401)
        if not who.global_admin:
            abort(403, description="This needs an administrator.")
        return view(*args, **kwargs)

    return wrapped


@dataclass
class _CachedToken:
    check: accounts.TokenCheck
    last_used_at: datetime | None
    checked_at: float
    # requested project (None: the default) -> the token's scope there, for as long as the check
    scopes: dict[str | None, Scope] = field(default_factory=dict)


# token digest -> what the services said about it, for TOKEN_CACHE_SECONDS. A token revoked through
# this process is forgotten at once; other processes notice within TOKEN_CACHE_SECONDS.
_token_cache: dict[str, _CachedToken] = {}
_token_lock = threading.Lock()
TOKEN_CACHE_SECONDS = 5.0


def forget_token(token_hash: str) -> None:
    with _token_lock:
        _token_cache.pop(token_hash, None)


def forget_user(user_id: int) -> None:
    with _token_lock:
        for key in [k for k, v in _token_cache.items() if v.check.identity.user_id == user_id]:
            del _token_cache[key]


def _bearer_digest(header: str) -> str | None:
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    return accounts.digest(raw.strip())


def identity_from_bearer(header: str | None = None) -> Identity:
    """Who sends this ``Authorization`` header: from the cache when it is fresh, else from the
    services (and cached); a 401 when the token is missing, unknown, revoked, expired or its
    account disabled. ``last_used_at`` is written at most once a minute per token."""
    if header is None:
        header = request.headers.get("Authorization", "")
    digest = _bearer_digest(header)
    if digest is None:
        abort(401, description="Send an API token: 'Authorization: Bearer <token>'.")
    now = utcnow()
    cached = _token_cache.get(digest)
    if cached is None or time.monotonic() - cached.checked_at > TOKEN_CACHE_SECONDS:
        try:
            check = accounts.token_identity(digest)
        except ServiceError:
            forget_token(digest)
            raise
        cached = _CachedToken(check, check.last_used_at, time.monotonic())
        with _token_lock:
            _token_cache[digest] = cached
    if cached.check.expires_at is not None and cached.check.expires_at <= now:
        abort(401, description="This API token is expired.")
    if cached.last_used_at is None or now - cached.last_used_at > LAST_USED_RESOLUTION:
        accounts.touch_token(cached.check.token_id, now)
        cached.last_used_at = now
    g.api_token = cached
    return cached.check.identity


def requested_project() -> str | None:
    """The project a request names: the /p/<project>/ prefix, or (API) a ``project`` parameter."""
    named = request.environ.get(PROJECT_KEY)
    if named is None and is_api_request():
        named = request.args.get("project") or None
    return named


def _enter(scope: Scope) -> None:
    g.scope_token = enter(scope)


def _leave(_error=None) -> None:
    token = g.pop("scope_token", None)
    if token is not None:
        leave(token)


def _authenticate():
    """Who is asking, and in which project (``infra.scope``): the services see only that project.
    Without a project named, a request means the asker's default project (anonymous ones: the
    default project), so today's URLs and MLflow's and KServe's clients keep working unchanged."""
    endpoint = request.endpoint
    if endpoint is None:  # no route matched: let the 404/405 handler answer
        return None
    view = current_app.view_functions.get(endpoint)
    requested = requested_project()
    if endpoint == "static" or getattr(view, "is_public", False):
        if requested:
            _enter(projects.anonymous_scope(requested))
        return None
    if is_api_request():
        header = request.headers.get("Authorization")
        anonymous_ok = getattr(view, "allows_anonymous", None)
        if anonymous_ok is not None and header is None:
            _enter(projects.anonymous_scope(requested))
            if anonymous_ok(**request.view_args):
                return None  # e.g. a model an admin opened to anonymous predictions
            _leave()
        who = g.api_identity = identity_from_bearer(header or "")
        scopes = g.api_token.scopes  # on the predict path: computed once per token check, not per request
        scope = scopes.get(requested)
        if scope is None:
            scope = scopes[requested] = projects.scope_for(who.user_id, who.role, who.roles, requested)
        _enter(scope)
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    _enter(projects.scope_for(current_user.id, current_user.role,
                              projects.roles_of(current_user.id, current_user.role), requested))
    return None


@login_manager.user_loader
def _load_user(user_id: str) -> User | None:
    try:
        return accounts.get_user(int(user_id))
    except ValueError:
        return None


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see that page."
    login_manager.session_protection = "strong"
    app.before_request(_authenticate)
    app.teardown_request(_leave)
