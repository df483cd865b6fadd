"""``DatasetError``: every problem with the *data*, phrased for the person who uploaded it, and
the helpers that name things in its messages (shortened, never a whole value or row)."""

from __future__ import annotations

MESSAGE_SNIPPET_CHARS = 60


class DatasetError(Exception):
    """A problem with the uploaded data, phrased for the person who uploaded it.

    ``line`` is the 1-based physical line of a CSV file (the header is line 1) when known.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def __str__(self) -> str:
        return self.message


def _snippet(text: str, limit: int = MESSAGE_SNIPPET_CHARS * 2) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _quote(name: str) -> str:
    return repr(_snippet(name, MESSAGE_SNIPPET_CHARS))
