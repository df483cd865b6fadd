"""Browser tests: Debian's Chromium, headless, driven by Playwright against a live server.

- ``chromium`` (session): one browser for the whole run, launched from /usr/bin/chromium
  (``make install`` installs Debian's ``chromium``; ``playwright install`` is never used).
- ``site`` (package): one app on the session's backend, served over real HTTP on a loopback port,
  with users, models, datasets and finished jobs built on demand through the API (see site.py).
- ``ui`` (per test): a fresh browser context logged in through the real login form. It records
  console errors, uncaught page errors, dialogs and any request that leaves the live server, and
  fails the test on any of them.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from tests.browser.site import Site
from tests.browser.ui import UI
from tests.support import PASSWORD, ROOT, service_missing

CHROMIUM = os.environ.get("VIEWER_CHROMIUM", "/usr/bin/chromium")
# Flags for a machine with no network: without them Chromium keeps trying to reach Google's
# services (component updates, QUIC probes, sync) and page loads stall behind those connections.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("VIEWER_SCREENSHOTS") or ROOT / "tests" / "browser" / "screenshots")


@pytest.fixture(scope="session")
def chromium():
    if not os.access(CHROMIUM, os.X_OK):
        service_missing(f"Chromium at {CHROMIUM} (make install installs Debian's chromium)",
                        FileNotFoundError(CHROMIUM))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="package")
def site(migrated):
    """The app with its data, served on a free loopback port for the whole browser package."""
    import shutil

    from werkzeug.serving import make_server

    from tests.conftest import _empty_tables
    from viewer import create_app
    from viewer.services import serving
    from viewer.infra.extensions import db

    app = create_app(migrated.config())
    with app.app_context():
        _empty_tables()
    for stored in ("models", "datasets", "jobs", "scratch"):
        shutil.rmtree(migrated.data_dir / stored, ignore_errors=True)
    serving.forget()
    from viewer.services import projects

    projects.forget()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    built = Site(app, f"http://127.0.0.1:{server.server_port}")
    built.create_users(PASSWORD)
    try:
        yield built
    finally:
        server.shutdown()
        thread.join(timeout=10)
        from viewer.services import predlog

        predlog.discard()  # the log's writer thread must not open a connection on an engine that goes
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture(scope="package")
def logins() -> dict:
    """Cookies of each user's login (through the real form, once per package), for new contexts."""
    return {}


@pytest.fixture
def open_ui(chromium, site, logins):
    """Open more browser contexts in one test: ``open_ui(user="admin", bypass_csp=True)``
    (``user=None`` for an anonymous one). Each is checked for problems and closed after the test."""
    opened: list[UI] = []

    def factory(user: str | None = "scientist", *, bypass_csp: bool = False) -> UI:
        session = UI(chromium, site.base_url, SCREENSHOTS, bypass_csp=bypass_csp, storage_state=logins.get(user))
        opened.append(session)
        if user is not None and user not in logins:
            session.login(user, PASSWORD)
            logins[user] = session.context.storage_state()
        return session

    yield factory
    try:
        for session in opened:
            session.check()
    finally:
        for session in opened:
            session.close()


@pytest.fixture
def ui(open_ui) -> UI:
    """A page logged in as the scientist that fails the test on any console or page error."""
    return open_ui("scientist")


@pytest.fixture
def anon_ui(open_ui) -> UI:
    """A page with no login (for the login page itself)."""
    return open_ui(None)
