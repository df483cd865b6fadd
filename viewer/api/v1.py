"""``/api/v1``: who am I, tokens, jobs."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify
from sqlalchemy import select

from .. import jobs, tasks
from ..auth import forget_token, identity, requester, role_required
from ..extensions import db
from ..records import ApiToken, utcnow

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _token_dict(token: ApiToken) -> dict:
    return {
        "id": token.id, "label": token.label, "prefix": token.prefix, "state": token.state,
        "created_at": jobs.iso_time(token.created_at), "last_used_at": jobs.iso_time(token.last_used_at),
        "expires_at": jobs.iso_time(token.expires_at), "revoked_at": jobs.iso_time(token.revoked_at),
    }


@bp.get("/me")
def me():
    who = identity()
    return jsonify(username=who.username, role=who.role)


@bp.get("/tokens")
def list_tokens():
    rows = db.session.scalars(select(ApiToken).where(ApiToken.user_id == identity().user_id)).all()
    return jsonify(tokens=[_token_dict(t) for t in rows])


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int):
    # Past PostgreSQL's integer range the lookup itself fails (a 500); no token has such an id.
    token = db.session.get(ApiToken, token_id) if token_id < 2**31 else None
    if token is None or token.user_id != identity().user_id:
        abort(404, description="No such token.")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        db.session.commit()
        forget_token(token.token_hash)
    return jsonify(_token_dict(token))


@bp.post("/system/ping-worker")
@role_required("scientist")
def ping_worker():
    """Enqueue a no-op job and return it: proves web -> broker -> worker -> database works."""
    try:
        job = jobs.submit(tasks.ping, "ping", {}, requester())
    except jobs.BrokerUnavailable as exc:
        abort(503, description=str(exc))
    return jsonify(jobs.serialize_job(job)), 202
