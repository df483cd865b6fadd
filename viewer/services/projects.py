"""Projects: every model, dataset and job belongs to one; a user's role is per project.

Rules:
- A user's role in a project is their membership's. A user who belongs to no project works in
  the default project (the first one, which the migration filled with everything that existed)
  with the role on their account; so does every user of a single-team install.
- A global admin (the account role "admin") may do anything in every project, and manages
  projects and users.
- Another project's object is "not found", never "forbidden": the services look only inside the
  scope (``infra.scope``) that the request layer entered, so nothing tells what exists elsewhere.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from ..infra.extensions import db
from ..infra.records import DEFAULT_PROJECT, PROJECT_NAME_PATTERN, ROLES, Dataset, Job, Membership, Project, \
    RegisteredModel, User
from ..infra.scope import NOWHERE, Scope, current
from .errors import ServiceError

_known: dict[object, int] = {}  # database URL -> the default project's id (ids never change; it cannot be deleted)
_names: dict[int, str] = {}  # id -> name, for display; a rename in this process refreshes it


def forget() -> None:
    """Drop what this process remembers of projects (tests empty the tables behind its back)."""
    _known.clear()
    _names.clear()


def default_id() -> int:
    """The default project's id (the oldest project), made on a database that has none."""
    found = _known.get(db.engine.url)
    if found is not None:
        return found
    found = db.session.scalar(select(func.min(Project.id)))
    if found is None:
        project = Project(name=DEFAULT_PROJECT)
        db.session.add(project)
        db.session.commit()
        found = project.id
    _known[db.engine.url] = found
    return found


def roles_of(user_id: int, account_role: str) -> dict[int, str]:
    """Project id -> role for a user (the default project with the account role when none)."""
    rows = db.session.execute(select(Membership.project_id, Membership.role)
                              .where(Membership.user_id == user_id)).all()
    return dict(rows) if rows else {default_id(): account_role}


def _not_found(name: str) -> ServiceError:
    return ServiceError("not_found", "project_not_found",
                        f"No project {name[:64]!r} of yours: see your projects on your account page.")


def by_name(name: str) -> Project | None:
    if not re.fullmatch(PROJECT_NAME_PATTERN, name or ""):
        return None
    return db.session.scalar(select(Project).where(Project.name == name))


def scope_for(user_id: int, account_role: str, roles: dict[int, str], requested: str | None) -> Scope:
    """The scope of a request by this user: the project asked for (by name), or their default one."""
    admin = account_role == "admin"
    if requested:
        project = by_name(requested)
        if project is None or not (admin or project.id in roles):
            raise _not_found(requested)
        return Scope(project.id, project.name, roles.get(project.id, "admin" if admin else None), user_id, admin,
                     roles)
    if not roles and not admin:
        return NOWHERE
    default = default_id()
    project_id = default if (default in roles or admin) else min(roles)
    return Scope(project_id, _name(project_id), roles.get(project_id, "admin" if admin else None), user_id, admin,
                 roles)


def anonymous_scope(requested: str | None) -> Scope:
    """The scope of a request without a token (a model opened to anonymous predictions)."""
    if requested:
        project = by_name(requested)
        if project is None:
            raise _not_found(requested)
        return Scope(project.id, project.name)
    project_id = default_id()
    return Scope(project_id, _name(project_id))


def _name(project_id: int) -> str:
    if project_id not in _names:
        _names[project_id] = db.session.scalar(select(Project.name).where(Project.id == project_id)) or DEFAULT_PROJECT
    return _names[project_id]


def current_id() -> int:
    """The project new objects go into: the scope's, or the default one when unscoped."""
    scope = current()
    if scope.project_id == NOWHERE.project_id:
        raise ServiceError("forbidden", "forbidden", "You belong to no project yet: ask an administrator.")
    return scope.project_id if scope.project_id is not None else default_id()


# --- managing projects (global admins) and members (project admins) ------------------------------

def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not re.fullmatch(PROJECT_NAME_PATTERN, name):
        raise ServiceError("invalid", "bad_project_name", "A project name is 1-63 lowercase letters, digits or '-', "
                           "starting with a letter or digit.")
    if by_name(name) is not None:
        raise ServiceError("conflict", "project_name_taken", f"There is a project {name!r} already.")
    return name


def _global_admin() -> None:
    if not current().global_admin and current().project_id is not None:
        raise ServiceError("forbidden", "forbidden", "Only an administrator manages projects.")


def create(name: str) -> Project:
    _global_admin()
    project = Project(name=_check_name(name))
    db.session.add(project)
    db.session.commit()
    return project


def rename(project: Project, name: str) -> Project:
    _global_admin()
    project.name = _check_name(name)
    db.session.commit()
    _names.pop(project.id, None)
    return project


def delete(project: Project) -> None:
    """Delete an empty project (not the default one)."""
    _global_admin()
    if project.id == default_id():
        raise ServiceError("conflict", "conflict", "The default project cannot be deleted.")
    for table in (RegisteredModel, Dataset, Job):
        if db.session.scalar(select(func.count()).select_from(table).where(table.project_id == project.id)):
            raise ServiceError("conflict", "project_not_empty", "The project still holds models, datasets or jobs: "
                               "move or delete them first.")
    db.session.delete(project)
    db.session.commit()


def set_member(project: Project, user: User, role: str | None) -> None:
    """Give ``user`` ``role`` in ``project`` (None: take them out). Project admins and global admins."""
    scope = current()
    if not (scope.global_admin or scope.project_id is None or (scope.project_id == project.id
                                                                and scope.allows("admin"))):
        raise ServiceError("forbidden", "forbidden", "Only the project's admins manage its members.")
    if role is not None and role not in ROLES:
        raise ServiceError("invalid", "bad_request", f"A role is one of {', '.join(ROLES)}.")
    membership = db.session.scalar(select(Membership).where(Membership.user_id == user.id,
                                                            Membership.project_id == project.id))
    if (membership is not None and membership.role == "admin" and role != "admin" and not scope.global_admin
            and scope.project_id is not None and _admins(project) == 1):
        raise ServiceError("conflict", "last_admin", f"{user.username} is the project's only admin: make someone "
                           "else admin first, or ask an administrator.")
    if role is None:
        if membership is not None:
            db.session.delete(membership)
    elif membership is None:
        db.session.add(Membership(user_id=user.id, project_id=project.id, role=role))
    else:
        membership.role = role
    db.session.commit()


def names_of(roles: dict[int, str], global_admin: bool) -> list[str]:
    """The names of the projects a user may switch to, in order."""
    statement = select(Project.name).order_by(Project.name)
    if not global_admin:
        statement = statement.where(Project.id.in_(list(roles)))
    return list(db.session.scalars(statement))


def get(project_id: int) -> Project:
    project = db.session.get(Project, project_id) if project_id < 2**31 else None
    if project is None:
        raise ServiceError("not_found", "project_not_found", "No such project.")
    return project


def overview() -> list[dict]:
    """Every project with its member and object counts (the administrators' projects page)."""
    def counts(table) -> dict[int, int]:
        return dict(db.session.execute(select(table.project_id, func.count()).group_by(table.project_id)).all())

    members, models, datasets, jobs = (counts(t) for t in (Membership, RegisteredModel, Dataset, Job))
    default = default_id()
    return [{"project": p, "default": p.id == default, "members": members.get(p.id, 0), "models": models.get(p.id, 0),
             "datasets": datasets.get(p.id, 0), "jobs": jobs.get(p.id, 0)}
            for p in db.session.scalars(select(Project).order_by(Project.name))]


def _admins(project: Project) -> int:
    return db.session.scalar(select(func.count()).select_from(Membership).where(
        Membership.project_id == project.id, Membership.role == "admin"))


def members(project: Project) -> list[tuple[User, str]]:
    return [(m.user, m.role) for m in db.session.scalars(
        select(Membership).join(User).where(Membership.project_id == project.id).order_by(User.username))]


def unassigned(project: Project) -> list[User]:
    """Users in no project, who work in the default one with their account role (none elsewhere)."""
    if project.id != default_id():
        return []
    return list(db.session.scalars(select(User).where(User.id.not_in(select(Membership.user_id)))
                                   .order_by(User.username)))


# --- moving objects between projects (a project admin of both) -----------------------------------

def move_targets() -> list[str]:
    """The projects the asker may move objects of the current project into (none unless admin here)."""
    scope = current()
    if scope.project_id is None or not scope.allows("admin"):
        return []
    statement = select(Project.name).where(Project.id != scope.project_id).order_by(Project.name)
    if not scope.global_admin:
        statement = statement.where(Project.id.in_([p for p, role in scope.roles.items() if role == "admin"]))
    return list(db.session.scalars(statement))


def move_target(name: str) -> Project:
    """The project ``name`` that the asker may move objects into from the current one."""
    scope = current()
    target = by_name(name)
    if target is None or not (scope.global_admin or scope.project_id is None or target.id in scope.roles):
        raise _not_found(name)
    if not scope.allows("admin") or not scope.allows_in(target.id, "admin"):
        raise ServiceError("forbidden", "forbidden", "Moving needs the admin role in both projects.")
    return target
