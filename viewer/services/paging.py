"""One page of a sorted list, taken in the database: the items and where the next page starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select

from ..infra.extensions import db

PAGE_SIZE = 500  # a page holds this many unless the caller asks for fewer (the first page is what lists gave before)


@dataclass(frozen=True)
class Page:
    items: list[Any]
    next_offset: int | None  # None on the last page


def page(statement: Select, limit: int = PAGE_SIZE, offset: int = 0) -> Page:
    """``statement`` (already filtered and sorted, with a unique tie-breaker) from ``offset``."""
    rows = list(db.session.scalars(statement.offset(offset).limit(limit + 1)))
    return Page(rows[:limit], offset + limit if len(rows) > limit else None)
