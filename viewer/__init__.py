"""The model results viewer.

Importing the package loads nothing heavy (no Flask): a notebook or script that uses
``viewer.core``, ``viewer.plots`` or ``viewer.client`` never pays for the web app.
``viewer.create_app`` is ``viewer.app.create_app``, imported on first use.
"""

from __future__ import annotations

from typing import Any

from .infra.config import VERSION as __version__


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'viewer' has no attribute {name!r}")
