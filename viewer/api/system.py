"""``/api/v1``: who am I, my tokens, and a ping through the workers."""

from __future__ import annotations

from flask import jsonify

from ..http.auth import forget_token, identity, requester, role_required
from ..infra.records import ApiToken
from ..services import accounts, health
from ..services.jobs import iso_time, serialize_job
from .v1 import bp, next_link, page_args


def _token_dict(token: ApiToken) -> dict:
    return {
        "id": token.id, "label": token.label, "prefix": token.prefix, "state": token.state,
        "created_at": iso_time(token.created_at), "last_used_at": iso_time(token.last_used_at),
        "expires_at": iso_time(token.expires_at), "revoked_at": iso_time(token.revoked_at),
    }


@bp.get("/me")
def me():
    who = identity()
    return jsonify(username=who.username, role=who.role)


@bp.get("/tokens")
def list_tokens():
    found = accounts.page_of_tokens(identity().user_id, *page_args())
    return jsonify(tokens=[_token_dict(t) for t in found.items], next=next_link(found.next_offset))


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int):
    token = accounts.revoke_token(identity().user_id, token_id)
    forget_token(token.token_hash)
    return jsonify(_token_dict(token))


@bp.post("/system/ping-worker")
@role_required("scientist")
def ping_worker():
    """Enqueue a no-op job and return it: proves web -> broker -> worker -> database works."""
    return jsonify(serialize_job(health.submit_ping(requester()))), 202
