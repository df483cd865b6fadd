"""A model host's explanations: the background rows the app sent (by key, at most two kept) and
each request's contributions (``core.explain``, whose explainer the predictor keeps per background).

shap is imported on the first explanation, inside the host's guards; its numba cache goes to
the host's scratch folder (``run`` sets NUMBA_CACHE_DIR), the only place a host may write.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core import hostproto
from ...core.explain import Budget, to_wire
from ...core.hostproto import ProtocolError

KEPT = 2
MAX_KEY = 128


class UnknownBackground(Exception):
    """The app asked for a background this host has not received (it resends it)."""


class Explaining:
    def __init__(self, predictor: Any):
        self.predictor = predictor
        self.backgrounds: dict[str, Any] = {}

    def background(self, request: hostproto.Frame, rows: Any) -> None:
        key = _key(request.meta)
        self.backgrounds.pop(key, None)
        self.backgrounds[key] = rows
        while len(self.backgrounds) > KEPT:
            self.backgrounds.pop(next(iter(self.backgrounds)))

    def explain(self, request: hostproto.Frame, X: Any) -> tuple[np.ndarray, dict[str, Any]]:
        from ...core.explain import Background

        key = _key(request.meta)
        if key not in self.backgrounds:
            raise UnknownBackground(key)
        budget = request.meta.get("budget") or {}
        try:
            budget = Budget(max_evaluations=max(1, int(budget.get("max_evaluations", 4096))),
                            seconds=max(0.0, float(budget.get("seconds", 2.0))))
        except (TypeError, ValueError, AttributeError):
            raise ProtocolError("The explanation's budget is not two numbers.") from None
        explained = self.predictor.explain(X, Background(key, self.backgrounds[key]), budget)
        return to_wire(explained)


def _key(meta: dict[str, Any]) -> str:
    key = meta.get("background")
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY:
        raise ProtocolError("The background's key is missing.")
    return key
