"""The ``/api/v1`` blueprint and the small helpers its views share."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request, url_for

from ..services.errors import ServiceError
from ..services.paging import PAGE_SIZE

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def page_args() -> tuple[int, int]:
    """``limit`` (1-500, default 500) and ``offset`` (default 0) of a paged list."""
    values = {}
    for name, default, low, high in (("limit", PAGE_SIZE, 1, PAGE_SIZE), ("offset", 0, 0, 2**31 - 1)):
        raw = request.args.get(name, "")
        if raw == "":
            values[name] = default
        elif raw.isascii() and raw.isdigit() and low <= int(raw) <= high:
            values[name] = int(raw)
        else:
            raise ServiceError("invalid", "bad_request", f"'{name}' must be a whole number from {low} to {high}.")
    return values["limit"], values["offset"]


def next_link(next_offset: int | None) -> str | None:
    """The URL of the following page: this request's own, with ``offset`` moved on."""
    if next_offset is None:
        return None
    args = {k: v for k, v in request.args.items() if k != "offset"}
    return url_for(request.endpoint, **(request.view_args or {}), **args, offset=next_offset)


def json_body(hint: str) -> dict[str, Any]:
    """The request's JSON object, or a 400 that shows what to send."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ServiceError("invalid", "bad_request", hint)
    return body

