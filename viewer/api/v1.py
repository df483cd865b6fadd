"""The ``/api/v1`` blueprint and the paging link its lists share."""

from __future__ import annotations

from flask import Blueprint, request, url_for

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def next_link(next_offset: int | None) -> str | None:
    """The URL of the following page: this request's own, with ``offset`` moved on."""
    if next_offset is None:
        return None
    args = {k: v for k, v in request.args.items() if k != "offset"}
    return url_for(request.endpoint, **(request.view_args or {}), **args, offset=next_offset)
