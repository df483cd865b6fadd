"""Failed-login limits, on the ``limits`` library (the engine under Flask-Limiter).

Only the login form is limited, so only the login view asks: no app-wide request hook runs for
the other requests (Flask-Limiter's three hooks cost every API request about 60 us of a 250 us
prediction, even on exempt blueprints). The rules are the same: each limit is tested before the
password is checked and counted only when the login fails, so a user who types the password
right is never slowed down. Counts live in ``RATELIMIT_STORAGE_URI`` (Redis shared by every web
process, or memory); when that storage is unreachable, this process counts in memory instead of
failing logins.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from flask import Flask, current_app
from limits import parse_many
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

log = logging.getLogger(__name__)
PREFIX = "viewer-login"


@dataclass(frozen=True)
class Rule:
    """Limits (Flask-Limiter syntax, "10 per minute;100 per day") on one key, and the message a
    refused person reads."""

    limits: str
    key: str
    message: str


class _State:
    def __init__(self, uri: str):
        self.primary = FixedWindowRateLimiter(storage_from_string(uri))
        self.memory = FixedWindowRateLimiter(MemoryStorage())
        self.primary_is_memory = uri.startswith("memory://")

    def run(self, call):
        """``call(limiter)`` on the shared storage, or on this process's memory while it is down."""
        try:
            return call(self.primary)
        except Exception:  # noqa: BLE001  (Redis away: limit per process rather than fail logins)
            if self.primary_is_memory:
                raise
            log.warning("login rate-limit storage unreachable; counting in this process's memory", exc_info=True)
            return call(self.memory)


class LoginLimiter:
    def init_app(self, app: Flask) -> None:
        app.extensions["login_limiter"] = _State(app.config["RATELIMIT_STORAGE_URI"])

    @staticmethod
    def _state() -> _State:
        return current_app.extensions["login_limiter"]

    def check(self, rules: list[Rule]) -> None:
        """Refuse (429 with Retry-After and the rule's message) when a rule's limit is used up."""
        state = self._state()
        for rule in rules:
            for item in parse_many(rule.limits):
                if not state.run(lambda limiter: limiter.test(item, PREFIX, rule.key)):
                    stats = state.run(lambda limiter: limiter.get_window_stats(item, PREFIX, rule.key))
                    raise TooManyRequests(rule.message, retry_after=max(1, int(stats.reset_time - time.time()) + 1))

    def failed(self, rules: list[Rule]) -> None:
        """Count one failed login against every rule."""
        state = self._state()
        for rule in rules:
            for item in parse_many(rule.limits):
                state.run(lambda limiter: limiter.hit(item, PREFIX, rule.key))

    def reset(self) -> None:
        """Forget every count (tests)."""
        state = self._state()
        for limiter in (state.primary, state.memory):
            limiter.storage.reset()
