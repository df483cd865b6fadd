"""Responses that pages and the API build alike."""

from __future__ import annotations

from flask import Response, stream_with_context

from ..services.results import Download


def download_response(download: Download) -> Response:
    """A streamed download (a job's results): memory bounded by one part."""
    return Response(stream_with_context(download.chunks), mimetype=download.mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{download.filename}"'})
