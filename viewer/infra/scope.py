"""Which project the work at hand sees: a ``Scope`` per request (or per command), held in a
context variable so that the services and the records' role checks read the same one.

The web and API layers enter a scope for each request (``viewer.http.projects``); workers and
commands run unscoped (``EVERYWHERE``): they act on ids that a scoped request already checked.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Iterator, Mapping

ROLE_ORDER = ("viewer", "scientist", "admin")


@dataclass(frozen=True)
class Scope:
    """``project_id`` None: every project (unscoped). ``role``: the asker's role in the project
    (None: none); ``user_id``: the asker; ``global_admin``: may do anything anywhere."""

    project_id: int | None
    project: str | None = None
    role: str | None = None
    user_id: int | None = None
    global_admin: bool = False
    roles: Mapping[int, str] = field(default_factory=dict)  # the asker's role in each of their projects

    def allows_in(self, project_id: int, role: str) -> bool:
        """Whether the asker has ``role`` in another project (moving objects there, say)."""
        if self.global_admin or self.project_id is None:
            return True
        held = self.roles.get(project_id)
        return held is not None and ROLE_ORDER.index(held) >= ROLE_ORDER.index(role)

    def allows(self, role: str) -> bool:
        if self.global_admin:
            return True
        return self.role is not None and ROLE_ORDER.index(self.role) >= ROLE_ORDER.index(role)


EVERYWHERE = Scope(project_id=None)
NOWHERE = Scope(project_id=-1)  # an asker in no project: every lookup finds nothing

_current: ContextVar[Scope] = ContextVar("viewer_scope", default=EVERYWHERE)


def current() -> Scope:
    return _current.get()


def enter(scope: Scope) -> Token:
    return _current.set(scope)


def leave(token: Token) -> None:
    _current.reset(token)


@contextmanager
def within(scope: Scope) -> Iterator[Scope]:
    token = enter(scope)
    try:
        yield scope
    finally:
        leave(token)


def only_mine(statement, column):
    """``statement`` limited to the scope's project (unchanged when unscoped)."""
    scope = current()
    return statement if scope.project_id is None else statement.where(column == scope.project_id)


def is_mine(project_id: int | None) -> bool:
    scope = current()
    return scope.project_id is None or project_id == scope.project_id
