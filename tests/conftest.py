"""Fixtures in the shape of Flask's tutorial (app, client, runner, auth), plus real backends.
See tests/support.py for how the backend is chosen."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
import uuid

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support import (BACKEND, PASSWORD, POSTGRES_ADMIN_URL, REDIS_URL, ROOT, Backend,
                           WorkerProcess, require_redis, service_missing)


class ClosingClient(FlaskClient):
    """werkzeug's test client spools request bodies over 500 KB to a temp file it never closes."""

    def open(self, *args, **kwargs):
        response = super().open(*args, **kwargs)
        stream = response.request.environ.get("wsgi.input") if response.request is not None else None
        if stream is not None and hasattr(stream, "close"):
            stream.close()
        return response


Flask.test_client_class = ClosingClient


@pytest.fixture(scope="session")
def backend(tmp_path_factory) -> Backend:
    data_dir = tmp_path_factory.mktemp("data")
    if BACKEND == "embedded":
        yield Backend("embedded", data_dir, f"sqlite:///{data_dir / 'viewer.sqlite3'}", "filesystem://")
        return
    if BACKEND != "services":
        raise pytest.UsageError(f"VIEWER_TEST_BACKEND must be embedded or services, not {BACKEND!r}")
    import psycopg
    import redis

    require_redis()  # every service is checked before anything is created, so a refusal leaks nothing
    name = f"viewer_test_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except Exception as exc:  # noqa: BLE001
        service_missing(f"PostgreSQL at {POSTGRES_ADMIN_URL}", exc)
    try:
        redis.Redis.from_url(REDIS_URL).flushdb()
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        yield Backend("services", data_dir, f"{base}/{name}", REDIS_URL)
    finally:  # whatever happened after the database was made
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated(backend: Backend) -> Backend:
    """Apply the migrations once per session, the way ``manage.py init-db`` does."""
    result = subprocess.run([sys.executable, "manage.py", "init-db"], cwd=ROOT, env=backend.env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return backend


def _empty_tables() -> None:
    """Every table emptied, then the default project made again (as the migration makes it)."""
    from viewer.infra.extensions import db
    from viewer.infra.records import DEFAULT_PROJECT, Project

    for table in reversed(db.metadata.sorted_tables):
        db.session.execute(table.delete())
    db.session.add(Project(name=DEFAULT_PROJECT))
    db.session.commit()


@pytest.fixture
def app_config() -> dict:
    """Extra settings for the ``app`` fixture; a test module overrides this fixture to change them."""
    return {}


@pytest.fixture
def app(migrated: Backend, app_config: dict):
    import shutil

    from viewer import create_app

    from viewer.services import predlog

    predlog.discard()  # records an earlier test buffered belong to its tables, emptied below
    app = create_app(migrated.config(**app_config))
    with app.app_context():
        _empty_tables()
    for stored in ("models", "datasets", "jobs", "runtimes", "scratch", "predlog"):
        shutil.rmtree(migrated.data_dir / stored, ignore_errors=True)  # files go with their rows
    from viewer.services import serving

    serving.forget()  # the tables were emptied behind the caches' back
    from viewer.services import projects

    projects.forget()
    from viewer.infra.extensions import limiter

    with app.app_context():
        limiter.reset()  # login attempt counts (Redis keys on the services backend) start at zero
    yield app
    predlog.discard()  # before the engine goes: the log's writer thread must not open a connection on it
    with app.app_context():
        from viewer.infra.extensions import db

        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def users(app):
    """One user per role, all with PASSWORD."""
    from viewer.infra.extensions import db
    from viewer.infra.records import ROLES, User

    with app.app_context():
        for role in ROLES:
            user = User(username=role, role=role)
            user.set_password(PASSWORD)
            db.session.add(user)
        db.session.commit()
    return {role: role for role in ROLES}


class AuthActions:
    """Log in through the real form (CSRF token included) and issue tokens."""

    def __init__(self, app, client):
        self._app = app
        self._client = client

    def csrf_token(self, path: str = "/login") -> str:
        import re

        page = self._client.get(path).get_data(as_text=True)
        match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or \
            re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert match, f"no CSRF token on {path}"
        return match.group(1)

    def login(self, username: str, password: str = PASSWORD):
        token = self.csrf_token("/login")
        return self._client.post("/login", data={"username": username, "password": password,
                                                 "csrf_token": token})

    def logout(self):
        token = self.csrf_token("/account/")
        return self._client.post("/logout", data={"csrf_token": token})

    def token(self, username: str, **kwargs) -> str:
        from viewer.infra.extensions import db
        from viewer.infra.records import ApiToken, User

        with self._app.app_context():
            _t, raw = ApiToken.issue(User.by_name(username), "test", **kwargs)
            db.session.commit()
        return raw

    def bearer(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(username)}"}


@pytest.fixture
def auth(app, client, users):
    return AuthActions(app, client)


@pytest.fixture(scope="session")
def worker(migrated: Backend, tmp_path_factory):
    # It trusts tests.poison (the hostile and poisoned models' module) and tests.realistic (a user's
    # custom step), as the apps of the tests that upload those models do: any job of the session
    # may land on this worker.
    proc = WorkerProcess({**migrated.env(), "VIEWER_TRUSTED_MODULES": "tests.poison,tests.realistic"},
                         tmp_path_factory.mktemp("logs") / "worker.log")
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()




@pytest.fixture
def make_app(migrated: Backend):
    """Build extra apps on the session's backend with overrides; their connections close after."""
    from viewer import create_app
    from viewer.infra.extensions import db

    made = []

    def factory(**overrides):
        made.append(create_app(migrated.config(**overrides)))
        return made[-1]

    yield factory
    from viewer.services import predlog

    predlog.discard()  # the log's writer thread must not open a connection on an engine that goes
    for extra in made:
        with extra.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def live_server(app):
    """The test app served over real HTTP on a free loopback port (for real clients and browsers)."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_gunicorn(env: dict[str, str], log_path, workers: int = 2) -> tuple[subprocess.Popen, int]:
    """The app under gunicorn (sync workers, one maths thread each) with ``env``: (process, port),
    in its own process group, once it answers /ping."""
    port = _free_port()
    env = {**env, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    log = open(log_path, "wb")
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}",
                             "--backlog", "256", "viewer:create_app()"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            try:
                conn.request("GET", "/ping")
                if conn.getresponse().status == 200:
                    break
            finally:
                conn.close()
        except OSError:
            time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        raise TimeoutError(open(log_path).read()[-3000:])
    return proc, port


def stop_gunicorn(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture
def gunicorn(migrated, app, tmp_path):
    """The app under gunicorn (2 sync workers) on the session's backend: (process, port).
    Stopped with SIGTERM to its process group."""
    proc, port = start_gunicorn(migrated.env(), tmp_path / "gunicorn.log")
    yield proc, port
    stop_gunicorn(proc)
