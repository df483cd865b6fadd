"""The one error the services raise: what went wrong (``kind``), a machine-readable ``code``,
and a message a person can act on. Adapters choose the status: ``viewer.http.errors`` renders
it as JSON for API clients and as a page for browsers; the CLI prints the message."""

from __future__ import annotations

from typing import Any

# kind -> HTTP status, for the adapters that speak HTTP.
STATUS = {
    "invalid": 400,        # the request is wrong: a bad value, a missing field
    "unauthorized": 401,   # no valid credentials
    "forbidden": 403,      # valid credentials, not allowed
    "not_found": 404,
    "conflict": 409,       # the state forbids it now (in use, not ready, taken)
    "gone": 410,           # it existed, its file is gone
    "too_large": 413,
    "unsupported": 415,    # a body of a media type the route does not take
    "unprocessable": 422,  # the upload is well-formed but refused (unsafe model, bad CSV)
    "bad_gateway": 502,    # a process we depend on (a model host) answered nonsense
    "unavailable": 503,    # a service we depend on (the queue, a model host) is down: try again
    "timeout": 504,        # a process we depend on (a model host) did not answer in time
}


class ServiceError(Exception):
    def __init__(self, kind: str, code: str, message: str, **details: Any):
        if kind not in STATUS:
            raise ValueError(f"unknown ServiceError kind {kind!r}")
        super().__init__(message)
        self.kind = kind
        self.code = code
        self.message = message
        self.details = details

    @property
    def status(self) -> int:
        return STATUS[self.kind]

    def __repr__(self) -> str:
        return f"ServiceError({self.kind!r}, {self.code!r}, {self.message!r})"
