"""The app factory, configuration, error pages and headers."""

import os
import stat

from viewer import create_app
from viewer.infra.config import from_environment, load_settings


def test_settings_order_defaults_env_then_test_config(tmp_path, monkeypatch):
    monkeypatch.setenv("VIEWER_MAX_MODEL_MB", "7")
    monkeypatch.setenv("VIEWER_DATA_DIR", str(tmp_path / "from-env"))
    settings = load_settings(str(tmp_path / "instance"), {"DATA_DIR": str(tmp_path / "from-test")})
    assert settings["MAX_MODEL_MB"] == 7
    assert settings["DATA_DIR"] == str(tmp_path / "from-test")
    assert settings["DATABASE_URL"] == f"sqlite:///{tmp_path / 'from-test' / 'viewer.sqlite3'}"
    assert settings["BROKER_URL"] == "filesystem://"


def test_bad_environment_value_names_the_variable(monkeypatch):
    monkeypatch.setenv("VIEWER_MAX_MODEL_MB", "lots")
    try:
        from_environment()
    except RuntimeError as exc:
        assert "VIEWER_MAX_MODEL_MB" in str(exc)
    else:
        raise AssertionError("expected an error")


def test_secret_key_is_generated_once_private_and_stable(tmp_path):
    first = create_app({"DATA_DIR": str(tmp_path)}).config["SECRET_KEY"]
    second = create_app({"DATA_DIR": str(tmp_path)}).config["SECRET_KEY"]
    assert first == second and len(first) >= 40
    mode = os.stat(tmp_path / "secret_key").st_mode
    assert stat.S_IMODE(mode) == 0o600
    assert create_app({"DATA_DIR": str(tmp_path / "other")}).config["SECRET_KEY"] != first


def test_unknown_page_is_html_for_browsers_and_json_for_the_api(client, auth):
    auth.login("viewer")
    page = client.get("/no/such/page", headers={"Accept": "text/html"})
    assert page.status_code == 404 and "<html" in page.get_data(as_text=True)
    api = client.get("/api/v1/no/such", headers=auth.bearer("viewer"))
    assert api.status_code == 404
    assert api.get_json()["error_code"] == "not_found"


def test_unknown_job_is_404(client, auth):
    response = client.get("/api/v1/jobs/0123456789abcdef", headers=auth.bearer("viewer"))
    assert response.status_code == 404
    assert "0123456789abcdef" in response.get_json()["message"]


def test_security_headers_and_no_external_assets(client, auth):
    auth.login("admin")
    for path in ("/login", "/", "/account/", "/admin/users"):
        response = client.get(path)
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        body = response.get_data(as_text=True)
        assert "http://" not in body and "https://" not in body, path


def test_static_css_is_public(client):
    response = client.get("/static/app.css")
    assert response.status_code == 200
    response.close()


def test_session_cookie_flags(client, auth):
    response = auth.login("viewer")
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_readme_documents_every_setting():
    from pathlib import Path

    from viewer.infra.config import ENV_PREFIX, SETTINGS

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [ENV_PREFIX + name for name in SETTINGS if f"`{ENV_PREFIX}{name}`" not in readme]
    assert not missing


def test_trusted_modules_may_not_open_the_standard_library(tmp_path):
    import pytest

    for bad in ("os", "subprocess", "sklearn", "viewer", "a b"):
        with pytest.raises(RuntimeError, match="VIEWER_TRUSTED_MODULES"):
            create_app({"DATA_DIR": str(tmp_path), "TRUSTED_MODULES": bad})
    create_app({"DATA_DIR": str(tmp_path), "TRUSTED_MODULES": "mycompany.models"})
