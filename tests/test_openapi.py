"""The OpenAPI document: it is valid, it covers every JSON route, and the live app keeps to it.

The last part is a schemathesis run (one pytest test per operation) against the app served over
real HTTP, with a scientist's token and a registered model, so the predict routes answer for real.
"""

from __future__ import annotations

import io
import re

import joblib
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from viewer.api.openapi import build_spec

API_PREFIXES = ("/api/", "/v2", "/invocations", "/ping", "/health", "/version")
PUBLIC = {("get", p) for p in ("/ping", "/health", "/version", "/v2", "/v2/health/live", "/v2/health/ready")}


def openapi_path(rule: str) -> str:
    """/models/<name>/versions/<int:version> -> /models/{name}/versions/{version}"""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def routes(app) -> set[tuple[str, str]]:
    return {(method.lower(), openapi_path(rule.rule))
            for rule in app.url_map.iter_rules() if rule.rule.startswith(API_PREFIXES)
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def documented(spec) -> set[tuple[str, str]]:
    return {(method, path) for path, item in spec["paths"].items() for method in item}


# --- the document --------------------------------------------------------------------------------

def test_the_document_is_valid_openapi():
    spec = build_spec()
    schema = schemathesis.openapi.from_dict(spec, config=SchemathesisConfig())
    schema.validate()  # against the OpenAPI 3.1 meta-schema
    assert spec["openapi"].startswith("3.1")
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == set(re.findall(r"{(\w+)}", path)), (method, path)
            assert operation["responses"], (method, path)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path not in ("/health",):
                    body = response["content"]["application/json"]["schema"]
                    assert body == {"$ref": "#/components/schemas/Error"}, (method, path, status)


def test_every_json_route_is_documented_and_every_documented_path_exists(app):
    in_app, in_doc = routes(app), documented(build_spec())
    assert in_app - in_doc == set(), "routes without an OpenAPI entry (add them to viewer/api/openapi.py)"
    assert in_doc - in_app == set(), "documented operations that no route serves"


def test_security_public_routes_and_token_routes():
    spec = build_spec()
    assert spec["security"] == [{"bearerAuth": []}]
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearerAuth"]
        ["description"]}
    for method, path in documented(spec):
        operation = spec["paths"][path][method]
        if (method, path) in PUBLIC:
            assert operation["security"] == [], path
        elif path.startswith("/api/v1/models/") and path.endswith("/predict") or path.startswith("/v2/models") \
                or path == "/invocations":
            assert operation["security"] == [{"bearerAuth": []}, {}], path  # open when an admin says so
            assert "401" in operation["responses"], path
        else:
            assert "security" not in operation, path  # the global bearerAuth
            assert "401" in operation["responses"], path


def test_the_document_is_served_to_token_holders_only(client, auth):
    assert client.get("/api/openapi.json").status_code == 401
    response = client.get("/api/openapi.json", headers=auth.bearer("viewer"))
    assert response.status_code == 200
    assert response.get_json() == build_spec()


# --- the live app keeps to it --------------------------------------------------------------------

MAX_EXAMPLES = 25
# Statuses that a request the schema calls valid may still get: predictions depend on the model's
# columns and an upload on the file's content, which no schema can say.
MODEL_DEPENDENT = ["2xx", "400", "401", "403", "404", "409", "413", "422"]

CONFIG = SchemathesisConfig.from_dict({
    # The token comes from the fixture; generated Authorization values would replace it.
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "with-security-parameters": False},
    "phases": {"stateful": {"enabled": False}},
    "operations": [
        {"include-path-regex": r"/predict$|/infer$|^/invocations$|^/api/v1/models$",
         "checks": {"positive_data_acceptance": {"expected-statuses": MODEL_DEPENDENT}}},
    ],
})
schema = schemathesis.openapi.from_dict(build_spec(), config=CONFIG)


class Target:
    """The app served over HTTP for the schemathesis run, with what the fuzzer needs in place."""

    MODEL = "iris"

    def __init__(self, app, url: str):
        self.app, self.url = app, url
        self.client = app.test_client()
        self.headers: dict[str, str] = {}
        data = load_iris(as_frame=True)
        X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
        buffer = io.BytesIO()
        joblib.dump(LogisticRegression(max_iter=500).fit(X, data.target_names[data.target]), buffer)
        self.model_bytes = buffer.getvalue()

    def restore(self) -> None:
        """Undo what an earlier operation's examples did: revoked the token, deleted the model or alias."""
        from viewer.extensions import db
        from viewer.records import ApiToken, User

        with self.app.app_context():
            user = User.by_name("fuzzer")
            if user is None:
                user = User(username="fuzzer", role="scientist")
                db.session.add(user)
            if not any(t.state == "active" for t in user.tokens):
                _token, raw = ApiToken.issue(user, "schemathesis")
                self.headers["Authorization"] = f"Bearer {raw}"
            db.session.commit()
        if self.client.get(f"/api/v1/models/{self.MODEL}/versions/1", headers=self.headers).status_code == 404:
            response = self.client.post(
                "/api/v1/models", headers=self.headers, content_type="multipart/form-data",
                data={"file": (io.BytesIO(self.model_bytes), "iris.joblib"), "name": self.MODEL})
            assert response.status_code in (200, 201), response.get_json()
        response = self.client.put(f"/api/v1/models/{self.MODEL}/aliases/production", headers=self.headers,
                                   json={"version": 1})
        assert response.status_code == 200, response.get_json()


@pytest.fixture(scope="module")
def target(migrated):
    """One app for the whole run (building one per operation costs more than the run itself)."""
    import shutil
    import threading

    from werkzeug.serving import make_server

    from viewer import create_app, serving
    from viewer.extensions import db

    app = create_app(migrated.config(SERVE_MODEL=Target.MODEL))
    with app.app_context():
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
    shutil.rmtree(migrated.data_dir / "artifacts", ignore_errors=True)
    serving.forget()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Target(app, f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    thread.join(timeout=10)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def fuzz_target(target):
    target.restore()
    return target


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # fuzz_target is reset per operation only
def test_the_app_keeps_to_its_openapi_document(case, fuzz_target):
    case.call_and_validate(base_url=fuzz_target.url, headers=fuzz_target.headers)
