"""The ``/api/v1`` blueprint and the small helpers its views share."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from ..services.errors import ServiceError

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def json_body(hint: str) -> dict[str, Any]:
    """The request's JSON object, or a 400 that shows what to send."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ServiceError("invalid", "bad_request", hint)
    return body

