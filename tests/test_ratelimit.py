"""Login rate limiting (the limits library, checked by the login view): failed logins only, per address and per username, shared
across web processes through Redis on the services backend."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support import BACKEND, PASSWORD, ROOT


@pytest.fixture
def app_config() -> dict:
    return {"LOGIN_RATE_LIMIT": "3 per minute", "LOGIN_USER_RATE_LIMIT": "5 per hour"}


def _attempt(client, auth, username, password, addr="10.0.0.1"):
    token = auth.csrf_token("/login")
    return client.post("/login", data={"username": username, "password": password, "csrf_token": token},
                       environ_base={"REMOTE_ADDR": addr})


def test_failed_logins_are_limited_per_address(client, auth):
    for _ in range(3):
        assert _attempt(client, auth, "viewer", "wrong").status_code == 401
    blocked = _attempt(client, auth, "viewer", PASSWORD)  # even the right password waits now
    assert blocked.status_code == 429
    assert "Too many failed logins from your address" in blocked.get_data(as_text=True)
    assert int(blocked.headers["Retry-After"]) > 0
    # another address is not affected
    assert _attempt(client, auth, "scientist", PASSWORD, addr="10.0.0.2").status_code == 302


def test_api_clients_get_json_429(client, auth):
    for _ in range(3):
        _attempt(client, auth, "viewer", "wrong")
    token = auth.csrf_token("/login")
    answer = client.post("/login", data={"username": "viewer", "password": "x", "csrf_token": token},
                         headers={"Accept": "application/json"}, environ_base={"REMOTE_ADDR": "10.0.0.1"})
    assert answer.status_code == 429
    assert answer.get_json()["error_code"] == "too_many_requests"


def test_successful_logins_do_not_count(app, users):
    from tests.conftest import AuthActions

    for _ in range(6):  # a fresh browser each time, like six people behind one address
        client = app.test_client()
        assert _attempt(client, AuthActions(app, client), "viewer", PASSWORD).status_code == 302


def test_failed_logins_are_limited_per_username_from_any_address(client, auth):
    for i in range(5):
        assert _attempt(client, auth, "admin", "wrong", addr=f"10.1.0.{i}").status_code == 401
    blocked = _attempt(client, auth, "admin", PASSWORD, addr="10.1.0.99")
    assert blocked.status_code == 429
    assert "for this username" in blocked.get_data(as_text=True)
    assert _attempt(client, auth, "viewer", PASSWORD, addr="10.1.0.99").status_code == 302


@pytest.mark.skipif(BACKEND != "services", reason="the embedded default counts per process (memory storage)")
def test_limits_are_shared_across_web_processes(client, auth, migrated):
    for _ in range(3):
        assert _attempt(client, auth, "viewer", "wrong").status_code == 401
    # a second web process on the same backend (same Redis) sees the same counts
    script = f"""
import re, sys
from viewer import create_app
from tests.support import Backend
b = Backend({migrated.name!r}, __import__('pathlib').Path({str(migrated.data_dir)!r}), {migrated.database_url!r}, {migrated.broker_url!r})
app = create_app(b.config(LOGIN_RATE_LIMIT="3 per minute"))
c = app.test_client()
page = c.get("/login").get_data(as_text=True)
token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
r = c.post("/login", data={{"username": "viewer", "password": {PASSWORD!r}, "csrf_token": token}},
           environ_base={{"REMOTE_ADDR": "10.0.0.1"}})
print(r.status_code)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip().splitlines()[-1] == "429", out.stderr[-2000:]
