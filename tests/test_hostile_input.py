"""Hostile values in URLs and forms: ids too large for the database's integers, NUL bytes
(PostgreSQL refuses them in text), path traversal in every id and name parameter, deeply nested
JSON. Each gets a clean 4xx and touches nothing outside the data dir."""

from __future__ import annotations

import io

import joblib
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

HUGE = str(2**70)


@pytest.mark.parametrize("method,path", [
    ("post", f"/account/tokens/{HUGE}/revoke"),
    ("post", f"/admin/users/{HUGE}"),
    ("get", f"/models/m/versions/{HUGE}"),
    ("get", f"/models/m/versions/{HUGE}/predict"),
    ("get", "/models/m/versions/2147483648"),
])
def test_ids_beyond_the_database_integer_are_404_on_pages(client, auth, method, path):
    auth.login("admin")
    token = auth.csrf_token("/account/")
    response = getattr(client, method)(path, data={"csrf_token": token, "role": "viewer"})
    assert response.status_code == 404, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("method,path", [
    ("delete", f"/api/v1/tokens/{HUGE}"),
    ("get", f"/api/v1/models/m/versions/{HUGE}"),
    ("delete", f"/api/v1/models/m/versions/{HUGE}"),
    ("post", f"/api/v1/models/m/versions/{HUGE}/predict"),
    ("get", f"/api/v1/jobs/{HUGE}"),
    ("get", f"/api/v1/datasets/{HUGE}"),
])
def test_ids_beyond_the_database_integer_are_404_in_the_api(client, auth, method, path):
    response = getattr(client, method)(path, headers=auth.bearer("admin"), json={"inputs": [[1]]})
    # 405 where werkzeug's matcher finds the path under another method (DELETE .../versions/<huge>)
    assert response.status_code in (404, 405), response.get_data(as_text=True)[:300]
    assert response.get_json()["error_code"]


def test_nul_byte_in_the_login_form_is_a_400_not_a_500(client, auth):
    token = auth.csrf_token("/login")
    response = client.post("/login", data={"username": "ad\x00min", "password": "x", "csrf_token": token})
    assert response.status_code == 400
    assert "NUL" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/models/a%00b", "/datasets/a%00b", "/jobs/a%00b", "/jobs/?model=a%00b",
                                  "/jobs/?model=a&model=b%00c", "/api/v1/jobs?state=done&state=%00"])
def test_nul_byte_in_urls_is_a_400(client, auth, path):
    auth.login("admin")
    assert client.get(path).status_code == 400


TRAVERSAL = ["..", "../..", "..%2f..%2fetc%2fpasswd", "%2e%2e", "%2e%2e%2f%2e%2e", "%252e%252e", "..\\..\\x",
             "..%5c..%5c", "a;b", ";", "%2f", "%00", " ", "%20"]


@pytest.mark.parametrize("template", ["/api/v1/models/{}", "/api/v1/datasets/{}", "/api/v1/jobs/{}",
                                      "/api/v1/jobs/{}/results?format=csv", "/api/v1/datasets/{}/preview",
                                      "/models/{}", "/datasets/{}", "/jobs/{}", "/jobs/{}/results.csv"])
def test_path_traversal_in_ids_and_names_is_refused(client, auth, template):
    from urllib.parse import urlsplit

    headers = auth.bearer("admin") if template.startswith("/api/") else {}
    if not headers:
        auth.login("admin")
    for name in TRAVERSAL:
        path = template.format(name)
        response = client.get(path, headers=headers)
        assert response.status_code in (404, 400, 308), (path, response.status_code)
        assert b"root:" not in response.data
        if response.status_code == 308:  # werkzeug merges the slashes of a decoded %2f: same app, same rules
            target = urlsplit(response.headers["Location"])
            assert target.netloc in ("", "localhost") and ".." not in target.path, response.headers["Location"]


def test_deeply_nested_json_is_a_400(client, auth):
    """To a model that exists, so the body is really read (a 404 would prove nothing)."""
    X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression().fit(X, [0, 0, 1, 1]), buffer)
    headers = auth.bearer("admin")
    assert client.post("/api/v1/models", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(buffer.getvalue()), "m.joblib"), "name": "m"}).status_code == 201
    body = "[" * 100_000 + "]" * 100_000
    response = client.post("/api/v1/models/m/predict", data=body, content_type="application/json", headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error_code"] == "MALFORMED_REQUEST"
