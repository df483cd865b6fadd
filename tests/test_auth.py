"""Login, logout, CSRF, tokens and roles, through the real forms and headers."""

from datetime import timedelta

import pytest

from viewer.infra.extensions import db
from viewer.infra.records import ApiToken, User


def test_anonymous_sees_only_login_and_ping(client):
    assert client.get("/ping").status_code == 200
    assert client.get("/login").status_code == 200
    for path in ("/", "/account/", "/admin/users"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.headers["Location"].startswith("/login")
    assert client.get("/api/v1/me").status_code == 401


def test_login_and_logout(client, auth):
    response = auth.login("viewer")
    assert response.status_code == 302 and response.headers["Location"] == "/"
    page = client.get("/").get_data(as_text=True)
    assert "Welcome, viewer" in page
    assert auth.logout().status_code == 302
    assert client.get("/").status_code == 302


def test_wrong_password_is_refused_with_a_message(client, auth):
    response = auth.login("viewer", "not the password")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_unknown_user_gets_the_same_message(client, auth):
    response = auth.login("nobody", "whatever")
    assert response.status_code == 401
    assert "Wrong username or password" in response.get_data(as_text=True)


def test_disabled_user_cannot_log_in(app, client, auth):
    with app.app_context():
        User.by_name("viewer").active = False
        db.session.commit()
    assert auth.login("viewer").status_code == 401


def test_login_redirect_does_not_leave_the_site(client, auth):
    token = auth.csrf_token()
    response = client.post("/login?next=//evil.example/x", data={
        "username": "viewer", "password": "correct horse battery staple", "csrf_token": token})
    assert response.headers["Location"] == "/"


def test_form_post_without_csrf_token_is_400(client, auth):
    response = client.post("/login", data={"username": "viewer", "password": "correct horse battery staple"})
    assert response.status_code == 400
    assert "CSRF" in response.get_data(as_text=True)
    auth.login("admin")
    response = client.post("/admin/users", data={"username": "mallory", "role": "admin"})
    assert response.status_code == 400
    with client.application.app_context():
        assert User.by_name("mallory") is None


def test_bearer_token_authenticates_the_api(client, auth):
    response = client.get("/api/v1/me", headers=auth.bearer("scientist"))
    assert response.status_code == 200
    assert response.get_json() == {"username": "scientist", "role": "scientist", "project": "default",
                                   "global_admin": False}


@pytest.mark.parametrize("header", ["", "Bearer", "Bearer nope", "Basic dXNlcjpwYXNz", "Token abc"])
def test_bad_authorization_headers_are_401_json(client, users, header):
    response = client.get("/api/v1/me", headers={"Authorization": header} if header else {})
    assert response.status_code == 401
    body = response.get_json()
    assert body["error_code"] == "unauthorized" and body["message"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_revoked_token_is_401(client, auth):
    headers = auth.bearer("scientist")
    tokens = client.get("/api/v1/tokens", headers=headers).get_json()["tokens"]
    assert client.delete(f"/api/v1/tokens/{tokens[0]['id']}", headers=headers).status_code == 200
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.get_json()["message"]


def test_expired_token_is_401(app, client, auth):
    raw = auth.token("scientist", expires_in=timedelta(days=1))
    with app.app_context():
        token = db.session.query(ApiToken).one()
        token.expires_at = token.created_at - timedelta(seconds=1)
        db.session.commit()
    response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401
    assert "expired" in response.get_json()["message"]


def test_token_records_last_use_and_is_stored_hashed(app, client, auth):
    raw = auth.token("viewer")
    client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"})
    with app.app_context():
        token = db.session.query(ApiToken).one()
        assert token.last_used_at is not None
        assert raw not in (token.token_hash, token.prefix)


def test_session_cookie_does_not_authenticate_the_api(client, auth):
    auth.login("admin")
    assert client.get("/").status_code == 200
    assert client.get("/api/v1/me").status_code == 401


def test_cannot_revoke_another_users_token(app, client, auth):
    other = auth.token("viewer")
    with app.app_context():
        other_id = db.session.query(ApiToken).one().id
    response = client.delete(f"/api/v1/tokens/{other_id}", headers=auth.bearer("scientist"))
    assert response.status_code == 404
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {other}"}).status_code == 200


def test_role_checks_on_pages(client, auth):
    auth.login("scientist")
    assert client.get("/admin/users").status_code == 403
    auth.logout()
    auth.login("admin")
    assert client.get("/admin/users").status_code == 200


def test_role_checks_on_the_api(client, auth):
    response = client.post("/api/v1/system/ping-worker", headers=auth.bearer("viewer"))
    assert response.status_code == 403
    assert response.get_json()["error_code"] == "forbidden"


def test_admin_creates_a_user_who_can_log_in(app, client, auth):
    import re

    auth.login("admin")
    token = auth.csrf_token("/admin/users")
    page = client.post("/admin/users", data={"username": "newbie", "role": "scientist", "csrf_token": token})
    assert page.status_code == 200
    password = re.search(r'Password for newbie \(shown once\)<input type="text" readonly value="([^"]+)"',
                         page.get_data(as_text=True)).group(1)
    auth.logout()
    assert auth.login("newbie", password).status_code == 302
    with app.app_context():
        assert User.by_name("newbie").role == "scientist"


def test_admin_cannot_demote_themself(app, client, auth):
    auth.login("admin")
    with app.app_context():
        admin_id = User.by_name("admin").id
    token = auth.csrf_token("/admin/users")
    response = client.post(f"/admin/users/{admin_id}", data={"role": "viewer", "csrf_token": token})
    assert response.status_code == 409


def test_user_creates_and_revokes_a_token_on_the_account_page(app, client, auth):
    import re

    auth.login("viewer")
    token = auth.csrf_token("/account/")
    page = client.post("/account/", data={"label": "laptop", "csrf_token": token}).get_data(as_text=True)
    raw = re.search(r'value="(vwr_[^"]+)"', page).group(1)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    with app.app_context():
        token_id = db.session.query(ApiToken).one().id
    client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": auth.csrf_token("/account/")})
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 401
