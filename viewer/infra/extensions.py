"""Unbound extension objects and ``celery_init_app``: nothing here touches an app at import."""

from __future__ import annotations

from celery import Celery, Task
from flask import Flask, has_app_context
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

from .ratelimit import LoginLimiter

# Stable constraint names, so Alembic migrations work the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
# Only the login form is limited; the view asks (no app-wide hook). Storage comes from
# RATELIMIT_STORAGE_URI (Redis shared by every web process, or memory when embedded).
limiter = LoginLimiter()


@event.listens_for(Engine, "connect")
def _sqlite_pragmas(dbapi_connection, _record):
    """Web and worker processes share the SQLite file: WAL lets readers run beside a writer,
    and a busy timeout makes a writer wait instead of failing at once."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()


def celery_init_app(app: Flask) -> Celery:
    """Flask's official pattern: every task runs inside the app context."""

    class FlaskTask(Task):
        def __call__(self, *args, **kwargs):
            if has_app_context():  # Superset's guard: never push a second context
                return self.run(*args, **kwargs)
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(app.config["CELERY"])
    celery_app.set_default()
    celery_app.flask_app = app  # for worker signals (the reaper) that need an app context
    app.extensions["celery"] = celery_app
    return celery_app
