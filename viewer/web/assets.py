"""BokehJS served from the installed bokeh package under a versioned URL (Bokeh's own server does
the same), so pages work offline and no page refers to a CDN."""

from __future__ import annotations

from pathlib import Path

import bokeh
from bokeh.settings import settings
from flask import Blueprint, abort, send_from_directory, url_for

from ..http.auth import public

bp = Blueprint("assets", __name__)
BOKEH_JS = Path(settings.bokehjs_path()) / "js"
COMPONENTS = ("bokeh", "bokeh-widgets", "bokeh-tables", "bokeh-gl")


@bp.get("/assets/bokeh/<version>/<name>.min.js")
@public
def bokehjs(version: str, name: str):
    if version != bokeh.__version__ or name not in COMPONENTS:
        abort(404)
    response = send_from_directory(BOKEH_JS, f"{name}.min.js", max_age=365 * 24 * 3600)
    response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


def bokeh_urls(*extra: str) -> list[str]:
    """Script URLs for BokehJS and only the extra components a page uses (e.g. "widgets")."""
    names = ["bokeh", *(f"bokeh-{e}" for e in extra)]
    return [url_for("assets.bokehjs", version=bokeh.__version__, name=n) for n in names]
