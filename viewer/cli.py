"""Commands that ``manage.py``, ``python -m viewer`` and the installed ``viewer`` command expose
(``python manage.py --help``).

They are defined here on a plain group, ``commands``; ``viewer.__main__`` gives them the app
(Flask's ``FlaskGroup`` with ``create_app``), so this module, like the pages and the API, sits
below the app factory and calls the services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from .infra.records import ROLES
from .services import accounts
from .services.errors import ServiceError

THREAD_LIMITS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

cli = AppGroup("viewer", help="The model results viewer.")


def _invoked_as() -> str:
    """How these commands were run, for the hints they print: ``viewer`` (the installed command),
    ``python -m viewer`` or ``python manage.py``."""
    name = click.get_current_context().find_root().info_name or "viewer"
    return f"python {name}" if name.endswith(".py") else name


def _upgrade() -> None:
    from flask_migrate import upgrade

    upgrade(directory=current_app.extensions["migrate"].directory)


def _init_db() -> None:
    _upgrade()
    created = accounts.ensure_admin()
    click.echo(f"Database ready: {current_app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}")
    if created:
        click.echo(f"Created user {created[0]!r} with password: {created[1]}  (shown once)")


@cli.command("init-db")
@with_appcontext
def init_db() -> None:
    """Apply database migrations and create the first admin if there is none."""
    _init_db()


def _load_demo(indent: str = "", project: str | None = None):
    from .services import demo

    click.echo(f"{indent}Loading the demo (models trained on scikit-learn's bundled datasets)"
               f"{' into project ' + project if project else ''}...")
    try:
        report = demo.load(project)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    for line in report.lines():
        click.echo(f"{indent}{line}")
    return report


def _comparison_path(job_ids: list[str], project: str | None = None) -> str | None:
    """The compare page of these jobs, in ``project`` (None if this app has no compare page)."""
    from flask import url_for
    from werkzeug.routing import BuildError

    with current_app.test_request_context():
        try:
            return (f"/p/{project}" if project else "") + url_for("compare.page", jobs=job_ids)
        except BuildError:
            return None


@cli.command("demo")
@click.option("--project", default=None, help="The project it goes into (made when missing; default: the "
              "default project).")
@with_appcontext
def demo_command(project: str | None) -> None:
    """Load the demo: models trained on scikit-learn's bundled datasets, their held-out test sets,
    and scoring jobs for a worker to run. Running it again adds nothing twice."""
    _init_db()
    report = _load_demo(project=project)
    if report.queued:
        command = _invoked_as()
        click.echo(f"(`{command} up` runs the web app and a worker; `{command} worker` only a worker.)")
    for path in filter(None, (_comparison_path(jobs, project) for jobs in report.comparisons[:1])):
        click.echo(f"Two models compared on the same test set (once their jobs ran): {path}")
    if report.problems:
        raise click.ClickException("The demo is incomplete: see the problems above.")


@cli.command("create-user")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="viewer", show_default=True,
              help="Without --project: the account's role (admin: an administrator of the whole server).")
@click.option("--project", default=None, help="Make them a member of this project with --role (and nothing more).")
@with_appcontext
def create_user(username: str, role: str, project: str | None) -> None:
    """Create a user and print a generated password once."""
    from .services import projects

    if accounts.by_name(username):
        raise click.ClickException(f"User {username!r} exists already.")
    found = projects.by_name(project) if project else None
    if project and found is None:
        raise click.ClickException(f"No project {project!r}: create it with `create-project {project}`.")
    user, password = accounts.create_user(username, "viewer" if found else role)
    if found:
        projects.set_member(found, user, role)
    click.echo(f"Created {role} {username!r}{' in project ' + found.name if found else ''} with password: "
               f"{password}  (shown once)")


@cli.command("reset-password")
@click.argument("username")
@with_appcontext
def reset_password(username: str) -> None:
    """Give a user a new generated password, printed once."""
    try:
        password = accounts.reset_password(username)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"New password for {username!r}: {password}  (shown once)")


@cli.command("create-token")
@click.argument("username")
@click.option("--label", default="cli", show_default=True)
@click.option("--expires-days", type=click.IntRange(min=1), default=None, help="Default: never.")
@with_appcontext
def create_token(username: str, label: str, expires_days: int | None) -> None:
    """Issue an API token for USERNAME and print it once (it is stored only as a hash)."""
    user = accounts.by_name(username)
    if user is None:
        raise click.ClickException(f"No user {username!r}.")
    _token, raw = accounts.issue_token(user, label, expires_days)
    click.echo(raw)


@cli.command("register-model")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--name", required=True, help="Model name; an existing name gets its next version.")
@click.option("--description", default="")
@click.option("--user", "username", default=None, help="Record this user as the uploader.")
@click.option("--project", default=None, help="The project it goes into (default: the default project).")
@with_appcontext
def register_model(path: str, name: str, description: str, username: str | None, project: str | None) -> None:
    """Register a model file (joblib/pickle or skops) through the safe loader."""
    from pathlib import Path

    from .services import registry

    user = accounts.by_name(username) if username else None
    if username and user is None:
        raise click.ClickException(f"No user {username!r}.")
    try:
        with in_project(project), open(path, "rb") as fh:
            version, created = registry.register(fh, name=name, filename=Path(path).name,
                                                 description=description, user=user)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"{'Registered' if created else 'Already registered as'} {version.ref} "
               f"({version.info.get('estimator_class')}, sha256 {version.sha256[:12]}…)")


@cli.command("compile")
@click.argument("ref")
@click.option("--project", default=None, help="The model's project (default: the default project).")
@with_appcontext
def compile_model(ref: str, project: str | None) -> None:
    """Compile a model version now, in this process (NAME, NAME/3 or NAME@alias), and check it;
    workers on the viewer-compile queue do the same for every version registered."""
    from .services import registry, runtimes

    try:
        with in_project(project):
            version = registry.resolve(ref)
            record = runtimes.compile_now(version)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    if record.get("state") != "ready":
        raise click.ClickException(f"{version.ref}: {record.get('reason') or 'not compiled'}")
    sizes = ", ".join(f"{size} rows {t['speedup']:.1f}x" for size, t in (record.get("timings") or {}).items())
    parity = record["parity"]
    click.echo(f"Compiled {version.ref}: parity on {parity['rows']:,} rows, largest difference "
               f"{parity['max_abs_diff']:.2g}, {parity['label_flips']} label flips; speed-up {sizes}")


def in_project(name: str | None):
    """The scope of a command: the project named, or every project (names mean the default one)."""
    from .infra.scope import EVERYWHERE, Scope, within
    from .services import projects

    if name is None:
        return within(EVERYWHERE)
    found = projects.by_name(name)
    if found is None:
        raise click.ClickException(f"No project {name!r}: create it with `create-project {name}`.")
    return within(Scope(found.id, found.name, "admin", global_admin=True))


@cli.command("create-project")
@click.argument("name")
@with_appcontext
def create_project(name: str) -> None:
    """Create a project (lowercase letters, digits and '-')."""
    from .services import projects

    try:
        projects.create(name)
    except ServiceError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Created project {name!r}. Add members with `add-member {name} <username> --role scientist`.")


@cli.command("add-member")
@click.argument("project")
@click.argument("username")
@click.option("--role", type=click.Choice([*ROLES, "none"]), default="viewer", show_default=True,
              help="none: take the user out of the project.")
@with_appcontext
def add_member(project: str, username: str, role: str) -> None:
    """Give USERNAME a role in PROJECT (a user in no project works in the default one)."""
    from .services import projects

    found, user = projects.by_name(project), accounts.by_name(username)
    if found is None or user is None:
        raise click.ClickException(f"No project {project!r}." if found is None else f"No user {username!r}.")
    projects.set_member(found, user, None if role == "none" else role)
    click.echo(f"{username} is {role} in {project}." if role != "none" else f"{username} left {project}.")


@cli.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@with_appcontext
def run(host: str, port: int) -> None:
    """Serve the web app (development server; see README for gunicorn)."""
    from werkzeug.serving import run_simple

    def stop(_signum, _frame):  # SIGTERM ends the server as Ctrl-C does, so exit handlers (the
        raise KeyboardInterrupt  # prediction log's last write) run

    signal.signal(signal.SIGTERM, stop)
    try:
        run_simple(host, port, current_app._get_current_object(), threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass


def _worker_argv(concurrency: int, loglevel: str, quiet: bool = False, queues: str = "viewer") -> list[str]:
    return [*(["--quiet"] if quiet else []), "worker", f"--concurrency={concurrency}", f"--loglevel={loglevel}",
            f"--queues={queues}", "--without-gossip", "--without-mingle"]


@cli.command("worker", context_settings={"ignore_unknown_options": True})
@click.option("--concurrency", default=1, show_default=True, help="Worker processes.")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--quiet", is_flag=True, help="No startup banner.")
@click.option("--queues", default="viewer", show_default=True,
              help="Queues to take: viewer (jobs), viewer-compile (compiling models; give it a worker of its own).")
@with_appcontext
def worker(concurrency: int, loglevel: str, quiet: bool, queues: str) -> None:
    """Start a Celery worker for this app (one thread per process; see README)."""
    os.environ.update({k: os.environ.get(k, v) for k, v in THREAD_LIMITS.items()})
    current_app.extensions["celery"].worker_main(_worker_argv(concurrency, loglevel, quiet, queues))


@cli.command("up")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True)
@click.option("--concurrency", default=1, show_default=True, help="Worker processes.")
@click.option("--demo", is_flag=True, help="On a fresh database (no users yet), also load the demo.")
@with_appcontext
def up(host: str, port: int, concurrency: int, demo: bool) -> None:
    """Migrate, then run the web app and a worker together until Ctrl-C."""
    _upgrade()
    created = accounts.ensure_admin()
    env = {**os.environ, **{k: os.environ.get(k, v) for k, v in THREAD_LIMITS.items()}}
    manage = [sys.executable, "-m", "viewer"]
    children = [
        # --quiet: Celery's banner would print after ours and push the password out of sight.
        subprocess.Popen([*manage, "worker", f"--concurrency={concurrency}", "--loglevel=WARNING", "--quiet"],
                         env=env),
        # Compiling models: one process of its own, so it never holds up the jobs above.
        subprocess.Popen([*manage, "worker", "--concurrency=1", "--loglevel=WARNING", "--quiet",
                          "--queues=viewer-compile"], env=env),
        subprocess.Popen([*manage, "run", f"--host={host}", f"--port={port}"], env=env),
    ]
    url = f"http://{host}:{port}"

    def stop(_signum, _frame):  # SIGTERM (a service manager, `kill`) stops the children as Ctrl-C does
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        report = None
        if demo and created:  # the worker started above runs the demo's scoring jobs
            click.echo("")
            report = _load_demo(indent="  ")
        click.echo("")
        click.echo(f"  The model results viewer is at {url}")
        if created:
            click.echo(f"  Log in as {created[0]!r} with password: {created[1]}")
            click.echo(f"  (shown once; '{_invoked_as()} reset-password admin' makes a new one)")
        else:
            click.echo(f"  Log in with your account ('{_invoked_as()} reset-password NAME' if you forgot it).")
        if report is not None:
            click.echo(f"  The demo's models: {url}/models/")
            for path in filter(None, (_comparison_path(jobs) for jobs in report.comparisons[:1])):
                click.echo(f"  Two of them compared on the same test set: {url}{path}")
        click.echo("  Ctrl-C stops the web app and the workers.")
        click.echo("")
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
    failed = [c for c in children if c.returncode not in (0, -signal.SIGTERM, -signal.SIGINT)]
    if failed:
        raise SystemExit(1)



@cli.command("sweep")
@click.option("--grace-hours", default=6.0, show_default=True,
              help="Keep unrecorded objects younger than this (a writer may be about to record them).")
@with_appcontext
def sweep(grace_hours: float) -> None:
    """Delete stored objects that no model version, dataset or job records (workers also run
    this once an hour)."""
    from .services import artifacts

    counts = artifacts.sweep(grace_hours * 3600)
    click.echo(f"Removed {counts['objects']} unrecorded object(s) and {counts['scratch']} scratch file(s).")
