"""The database unreachable: requests fail cleanly with a 503 (JSON for the API, a page for
browsers), quickly, with nothing half-done; the app recovers by itself when the database is back.
(`make chaos` stops the real PostgreSQL server mid-job: tests/test_faults.py.)"""

from __future__ import annotations

import time

import pytest

from tests.support import PASSWORD

# Nothing listens on port 9 (discard) of this machine: connections are refused at once.
UNREACHABLE = "postgresql+psycopg://viewer@127.0.0.1:9/viewer"


@pytest.fixture
def down(make_app):
    return make_app(DATABASE_URL=UNREACHABLE)


def test_api_answers_503_json_when_the_database_is_unreachable(down):
    client = down.test_client()
    started = time.monotonic()
    response = client.get("/api/v1/models", headers={"Authorization": "Bearer vwr_" + "x" * 40})
    assert time.monotonic() - started < 10
    assert response.status_code == 503
    body = response.get_json()
    assert body["error_code"] == "service_unavailable" and "database" in body["message"]
    assert response.headers["Retry-After"] == "5"
    assert "psycopg" not in response.get_data(as_text=True)  # no driver details leak


def test_login_page_answers_503_page(down):
    import re

    client = down.test_client()
    page = client.get("/login")
    assert page.status_code == 200  # the form itself needs no database
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True)).group(1)
    response = client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 503
    assert "database is not reachable" in response.get_data(as_text=True)


def test_sqlite_file_that_cannot_be_opened_is_a_503(make_app, tmp_path):
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite3'}")
    response = app.test_client().get("/api/v1/models", headers={"Authorization": "Bearer vwr_" + "x" * 40})
    assert response.status_code == 503


def test_readiness_fails_while_the_database_is_down_and_liveness_does_not(down, client):
    assert down.test_client().get("/v2/health/ready").status_code == 503
    assert down.test_client().get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").get_json() == {"ready": True}  # the real database
