"""The OpenAPI document: it is valid, it covers every JSON route, and the live app keeps to it.

The last part is a schemathesis run (one pytest test per operation) against the app served over
real HTTP, with a scientist's token and a registered model, so the predict routes answer for real.
"""

from __future__ import annotations

import io
import os
import re
import tempfile

import joblib
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from viewer.api.inputs import DATASET_ID, JOB_ID
from viewer.api.spec import build_spec

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

def test_the_document_is_valid_openapi(app):
    spec = build_spec(app)
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
    in_app, in_doc = routes(app), documented(build_spec(app))
    assert in_app - in_doc == set(), "routes without an OpenAPI entry (decorate them with viewer.api.spec.checks)"
    assert in_doc - in_app == set(), "documented operations that no route serves"


def test_security_public_routes_and_token_routes(app):
    spec = build_spec(app)
    assert spec["security"] == [{"bearerAuth": []}]
    scheme = spec["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
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


def test_the_document_is_served_to_token_holders_only(app, client, auth):
    assert client.get("/api/openapi.json").status_code == 401
    response = client.get("/api/openapi.json", headers=auth.bearer("viewer"))
    assert response.status_code == 200
    served = response.get_json()
    assert served["openapi"] == "3.1.0" and served["info"]["title"] == "Model results viewer API"
    assert documented(served) == routes(app)  # what the app serves, not the builder again


def test_the_docs_page_shows_every_operation_to_logged_in_users(app, client, auth):
    assert client.get("/docs/api").status_code == 302  # to the login page
    auth.login("viewer")
    response = client.get("/docs/api")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    spec = build_spec(app)
    for method, path in documented(spec):
        assert f'id="op-{spec["paths"][path][method]["operationId"]}"' in page, (method, path)
        assert f"<code>{path}</code>" in page, path
    for tag in spec["tags"]:
        assert f"<h2>{tag['name']}</h2>" in page
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert "<script" not in page.split("</header>", 1)[1]  # the CSP allows no inline script; none is needed
    assert "&#34;dataframe_split&#34;" in page or '"dataframe_split"' in page  # a request example
    assert 'href="/docs/api"' in page  # the nav link


# --- what the fuzzing found, kept fixed ----------------------------------------------------------

@pytest.fixture
def iris_api(client, auth):
    data = load_iris(as_frame=True)
    X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    headers = auth.bearer("scientist")
    for model in (LogisticRegression(max_iter=300).fit(X, data.target), LogisticRegression(C=0.5).fit(X, data.target)):
        buffer = io.BytesIO()
        joblib.dump(model, buffer)
        response = client.post("/api/v1/models", headers=headers, content_type="multipart/form-data",
                               data={"file": (io.BytesIO(buffer.getvalue()), "m.joblib"), "name": "iris"})
        assert response.status_code == 201
    return headers


ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}
V2_ROW = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [5.1, 3.5, 1.4, 0.2]}]}


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("trace", "/api/v1/me", {}, 405),  # with an Allow header (the JSON error dropped it)
    ("get", "/api/v1/models?sort=size", {}, 400),  # was silently sorted by name
    ("post", "/api/v1/models/iris/predict", {"json": {**ROW, "params": {"predict_method": "predict",
                                                                         "output": "bogus"}}}, 400),
    ("post", "/api/v1/models/iris/versions/0/predict", {"json": ROW}, 404),  # was the latest version
    ("get", "/v2/models/iris/versions/0", {}, 404),  # likewise
    ("get", "/v2/models/iris/versions/%C2%B2", {}, 400),  # "²".isdigit(), int("²") failed: 500
    ("put", "/api/v1/models/iris/aliases/prod%0A", {"json": {"version": 1}}, 400),  # "prod\n" was stored
    ("post", "/v2/models/iris/infer", {"json": V2_ROW, "headers": {"Inference-Header-Content-Length": ""}}, 400),
    ("post", "/v2/models/iris/infer", {"json": {**V2_ROW, "id": 5}}, 400),  # a non-string id was dropped
    ("post", "/v2/models/iris/infer", {"json": {**V2_ROW, "parameters": []}}, 400),
    # NUL bytes: PostgreSQL refuses them in text, which was a 500 (run with VIEWER_TEST_BACKEND=services)
    ("get", "/api/v1/models/ir%00is", {}, 400),  # NUL anywhere in the URL: 400 before any view runs
    ("get", "/api/v1/datasets/a%00b", {}, 400),
    ("get", "/api/v1/jobs/a%00b", {}, 400),
    ("delete", "/api/v1/tokens/879921580595", {}, 404),  # out of PostgreSQL's integer range: a 500
    ("post", "/api/v1/jobs", {"json": {"model": "iris", "dataset": "a\x00b"}}, 404),
])
def test_fixed_bugs(client, iris_api, method, path, kwargs, status):
    headers = {**iris_api, **kwargs.pop("headers", {})}
    response = getattr(client, method)(path, headers=headers, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)
    assert set(response.get_json()) == {"error_code", "message"}
    if status == 405:
        assert response.headers["Allow"]


def test_nul_bytes_are_dropped_from_text_and_match_nothing_in_searches(client, iris_api):
    response = client.patch("/api/v1/models/iris", headers=iris_api, json={"description": "a\x00b"})
    assert response.status_code == 200 and response.get_json()["description"] == "ab"
    assert client.get("/api/v1/models?q=%00", headers=iris_api).status_code == 400
    assert client.get("/api/v1/jobs?user=a%00", headers=iris_api).get_json()["error_code"] == "bad_request"
    assert client.get("/api/v1/jobs?state=", headers=iris_api).status_code == 200  # empty: any state


# --- the live app keeps to it --------------------------------------------------------------------

# Per operation and phase. VIEWER_TEST_FUZZ_EXAMPLES=500 explores deeper (and randomly) by hand.
MAX_EXAMPLES = int(os.environ.get("VIEWER_TEST_FUZZ_EXAMPLES", "25"))
# What a request the schema calls valid may still get when it carries content or asks for files: a
# prediction depends on the model's columns, an upload on the file, a scoring job on the dataset,
# a download on the files still being there. No schema says that.
CONTENT_DEPENDENT = sorted(["get_api_v1_compare", "post_api_v1_compare", "post_api_v1_datasets", "post_api_v1_jobs", "post_api_v1_models",
                            "post_api_v1_models_name_predict", "post_api_v1_models_name_versions_version_predict",
                            "post_invocations", "post_v2_models_name_infer", "post_v2_models_name_versions_version_infer",
                            "patch_api_v1_models_name", "put_api_v1_models_name_aliases_alias",
                            "get_api_v1_jobs_job_id_results", "get_api_v1_jobs_job_id_rows",
                            # a CSV of labels needs its header (request_id, label), which a text/csv schema cannot say
                            "post_api_v1_models_name_labels",
                            # a threshold needs a binary classifier (the fuzzed model, iris, has three classes)
                            "put_api_v1_models_name_versions_version_threshold",
                            # the project named must be one of the asker's, where they are an admin
                            "post_api_v1_models_name_move", "post_api_v1_datasets_dataset_id_move",
                            # two datasets compared need columns in common (and not the same dataset twice)
                            "post_api_v1_datasets_dataset_id_drift"])
CONFIG = SchemathesisConfig.from_dict({
    # The token comes from the fixture; generated Authorization values would replace it.
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": "VIEWER_TEST_FUZZ_EXAMPLES" not in os.environ,
                   "with-security-parameters": False},
    "phases": {"stateful": {"enabled": False}},
    # A request both malformed and too large may be refused for its size first.
    "checks": {"negative_data_rejection": {"expected-statuses": [
        "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]}},
    "operations": [{"include-operation-id": CONTENT_DEPENDENT, "checks": {"positive_data_acceptance": {
        "expected-statuses": ["2xx", "400", "401", "403", "404", "409", "410", "413", "422"]}}}],
})


def _document() -> dict:
    """The document of an app built only to read it: its routes and models are every app's."""
    from viewer import create_app

    return build_spec(create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": "sqlite://",
                                  "DATA_DIR": tempfile.mkdtemp(prefix="openapi-")}))


SPEC = _document()
schema = schemathesis.openapi.from_dict(SPEC, config=CONFIG)


class Target:
    """The app served over HTTP for the schemathesis run, and what its examples name: a scientist's
    token, model iris (alias production, served by /invocations), dataset and job openapi.DATASET_ID
    and openapi.JOB_ID."""

    MODEL = "iris"

    def __init__(self, app, url: str):
        self.app, self.url = app, url
        self.client = app.test_client()
        self.headers: dict[str, str] = {}
        data = load_iris(as_frame=True)
        X = data.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
        y = data.target_names[data.target]
        buffer = io.BytesIO()
        joblib.dump(LogisticRegression(max_iter=500).fit(X, y), buffer)
        self.model_bytes = buffer.getvalue()
        self.csv = X.assign(species=y).to_csv(index=False).encode()

    def restore(self) -> None:
        """Put back what an earlier operation's examples took away (a token, the model, an alias, the dataset)."""
        from sqlalchemy import update

        from viewer.infra.extensions import db
        from viewer.infra.records import ApiToken, Dataset, Job, User

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
            self.post("/api/v1/models", self.model_bytes, "iris.joblib", name=self.MODEL)
        response = self.client.put(f"/api/v1/models/{self.MODEL}/aliases/production", headers=self.headers,
                                   json={"version": 1})
        assert response.status_code == 200, response.get_json()
        if self.client.get(f"/api/v1/datasets/{DATASET_ID}", headers=self.headers).status_code == 404:
            created = self.post("/api/v1/datasets", self.csv, "iris.csv")
            with self.app.app_context():  # give it the id that the document's examples use
                db.session.execute(update(Dataset).where(Dataset.id == created["id"]).values(id=DATASET_ID))
                db.session.commit()
        with self.app.app_context():
            if db.session.get(Job, JOB_ID) is None:  # a finished scoring job whose result files are gone
                db.session.add(Job(id=JOB_ID, kind="score", state="done", dataset_id=DATASET_ID,
                                   params={"model": "iris/1", "model_name": "iris", "model_version": 1},
                                   result={"metrics": {"accuracy": 0.97}, "aggregates": {"confusion": [[1]]}},
                                   progress_done=150, progress_total=150, created_by=User.by_name("fuzzer")))
                db.session.commit()

    def post(self, path: str, content: bytes, filename: str, **fields) -> dict:
        response = self.client.post(path, headers=self.headers, content_type="multipart/form-data",
                                    data={"file": (io.BytesIO(content), filename), **fields})
        assert response.status_code in (200, 201), response.get_json()
        return response.get_json()


@pytest.fixture(scope="module")
def target(migrated, tmp_path_factory):
    """One app for the whole run (building one per operation costs more than the run itself), with
    a data dir of its own: the jobs it queues never reach the session's worker."""
    import threading

    from werkzeug.serving import make_server

    from viewer import create_app
    from tests.conftest import _empty_tables
    from viewer.infra.extensions import db
    from viewer.services import projects, serving

    app = create_app(migrated.config(SERVE_MODEL=Target.MODEL, DATA_DIR=str(tmp_path_factory.mktemp("fuzz"))))
    with app.app_context():
        _empty_tables()
    serving.forget()
    projects.forget()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Target(app, f"http://127.0.0.1:{server.server_port}")
    server.shutdown()
    thread.join(timeout=10)
    serving.forget()
    from viewer.services import predlog

    predlog.discard()  # the log's writer thread must not open a connection on an engine that goes
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def fuzz_target(target):
    target.restore()
    return target


def test_the_fuzzed_operations_that_depend_on_content_exist(app):
    operations = {op["operationId"] for item in build_spec(app)["paths"].values() for op in item.values()}
    assert set(CONTENT_DEPENDENT) <= operations
    assert build_spec(app) == SPEC  # the fuzzed document is the one a running app serves


@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # fuzz_target is reset per operation only
def test_the_app_keeps_to_its_openapi_document(case, fuzz_target):
    case.call_and_validate(base_url=fuzz_target.url, headers=fuzz_target.headers)
