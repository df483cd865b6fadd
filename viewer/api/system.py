"""``/api/v1``: who am I, my tokens, and a ping through the workers."""

from __future__ import annotations

from flask import jsonify

from ..http.auth import forget_token, identity, requester, role_required
from ..infra.records import ApiToken
from ..infra.scope import current
from ..services import accounts, health
from ..services.jobs import iso_time, serialize_job
from .inputs import PageQuery
from .outputs import Job, Me, Token, TokenList
from .spec import checks, valid
from .v1 import bp, next_link


def _token_dict(token: ApiToken) -> dict:
    return {
        "id": token.id, "label": token.label, "prefix": token.prefix, "state": token.state,
        "created_at": iso_time(token.created_at), "last_used_at": iso_time(token.last_used_at),
        "expires_at": iso_time(token.expires_at), "revoked_at": iso_time(token.revoked_at),
    }


@bp.get("/me")
@checks("Account", {200: Me}, (401,))
def me():
    """Who the token belongs to"""
    who, scope = identity(), current()
    return jsonify(username=who.username, role="admin" if who.global_admin else scope.role,
                   project=scope.project, global_admin=who.global_admin)


@bp.get("/tokens")
@checks("Account", {200: TokenList}, (400, 401), query=PageQuery)
def list_tokens():
    """Your API tokens, newest first, a page at a time"""
    query = valid("query")
    found = accounts.page_of_tokens(identity().user_id, query.limit, query.offset)
    return jsonify(tokens=[_token_dict(t) for t in found.items], next=next_link(found.next_offset))


@bp.delete("/tokens/<int:token_id>")
@checks("Account", {200: Token}, (401, 404))
def revoke_token(token_id: int):
    """Revoke one of your tokens

    Revoking an already revoked token is a no-op that returns it."""
    token = accounts.revoke_token(identity().user_id, token_id)
    forget_token(token.token_hash)
    return jsonify(_token_dict(token))


@bp.post("/system/ping-worker")
@role_required("scientist")
@checks("Jobs", {202: Job}, (401, 403, 503))
def ping_worker():
    """Enqueue a no-op job (web, broker, worker, database)

    Needs the scientist role. Poll the returned url: proves web -> broker -> worker -> database works."""
    return jsonify(serialize_job(health.submit_ping(requester()))), 202
