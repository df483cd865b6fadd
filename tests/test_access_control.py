"""Every route x every kind of caller: the expected answer, from one table.

A new route that is not in ACCESS fails ``test_every_route_is_in_the_table``, so nobody adds a
route without deciding who may call it. Each row says the lowest role that gets through:
``public`` (anyone), ``viewer`` < ``scientist`` < ``admin``. Callers below it get 401 (API, no
or a revoked token) / a redirect to the login page (pages), or 403 (logged in, role too low).
Callers at or above it get past the check: whatever the route then answers (200, 404 for the
made-up ids used here, 400 for an empty form), never 401/403 and never a 5xx.
"""

from __future__ import annotations

import re

import bokeh
import pytest

from tests.support import PASSWORD

ACCESS: dict[tuple[str, str], str] = {
    ("GET", "admin.projects_page"): "admin",
    ("POST", "admin.projects_page"): "admin",
    ("GET", "admin.project"): "admin",
    ("POST", "admin.project"): "admin",
    ("POST", "admin.member"): "admin",
    ("POST", "admin.rename_project"): "admin",
    ("POST", "admin.delete_project"): "admin",
    # pages
    ("GET", "main.index"): "viewer",
    ("GET", "mlflow.ping"): "public",
    ("GET", "static"): "public",
    ("GET", "assets.bokehjs"): "public",
    ("GET", "auth.login"): "public",
    ("POST", "auth.login"): "public",
    ("POST", "auth.logout"): "viewer",
    ("GET", "account.tokens"): "viewer",
    ("POST", "account.tokens"): "viewer",
    ("POST", "account.change_password"): "viewer",
    ("POST", "account.revoke"): "viewer",
    ("GET", "admin.users"): "admin",
    ("POST", "admin.users"): "admin",
    ("POST", "admin.update_user"): "admin",
    ("GET", "docs.api"): "viewer",
    ("GET", "models.index"): "viewer",
    ("GET", "models.model"): "viewer",
    ("GET", "models.version"): "viewer",
    ("GET", "models.upload"): "scientist",
    ("POST", "models.upload"): "scientist",
    ("POST", "models.set_alias"): "scientist",
    ("POST", "models.remove_alias"): "scientist",
    ("POST", "models.delete"): "scientist",
    ("POST", "models.start_importance"): "scientist",
    ("GET", "predict.page"): "viewer",
    ("POST", "predict.page"): "viewer",
    ("GET", "datasets.index"): "viewer",
    ("GET", "datasets.page"): "viewer",
    ("GET", "datasets.upload"): "scientist",
    ("POST", "datasets.upload"): "scientist",
    ("POST", "datasets.delete"): "scientist",
    ("POST", "datasets.score"): "scientist",
    ("GET", "jobs.index"): "viewer",
    ("GET", "jobs.page"): "viewer",
    ("GET", "jobs.status"): "viewer",
    ("POST", "jobs.cancel"): "scientist",
    ("GET", "jobs.download"): "viewer",
    ("GET", "jobs.plot_csv"): "viewer",
    ("GET", "compare.page"): "viewer",
    ("POST", "compare.start"): "viewer",
    ("POST", "api.start_comparison"): "viewer",
    # JSON API (Bearer token only)
    ("GET", "document.openapi_json"): "viewer",
    ("GET", "api.me"): "viewer",
    ("GET", "api.list_tokens"): "viewer",
    ("DELETE", "api.revoke_token"): "viewer",
    ("GET", "api.list_models"): "viewer",
    ("POST", "api.upload_model"): "scientist",
    ("GET", "api.get_model"): "viewer",
    ("PATCH", "api.update_model"): "scientist",
    ("PUT", "api.put_alias"): "scientist",
    ("DELETE", "api.delete_alias"): "scientist",
    ("GET", "api.get_version"): "viewer",
    ("POST", "api.move_model"): "admin",
    ("POST", "api.move_dataset"): "admin",
    ("DELETE", "api.delete_version"): "scientist",
    ("POST", "api.predict"): "viewer",
    ("POST", "api.predict_version"): "viewer",
    ("GET", "api.list_datasets"): "viewer",
    ("POST", "api.upload_dataset"): "scientist",
    ("GET", "api.get_dataset"): "viewer",
    ("DELETE", "api.delete_dataset"): "scientist",
    ("GET", "api.list_jobs"): "viewer",
    ("POST", "api.create_job"): "scientist",
    ("GET", "api.get_job"): "viewer",
    ("DELETE", "api.cancel_job"): "scientist",
    ("GET", "api.job_aggregates"): "viewer",
    ("GET", "api.job_results"): "viewer",
    ("GET", "api.compare_jobs"): "viewer",
    ("POST", "api.ping_worker"): "scientist",
    # MLflow scoring-server and Open Inference Protocol routes
    ("GET", "mlflow.health"): "public",
    ("GET", "mlflow.version"): "public",
    ("POST", "mlflow.invocations"): "viewer",
    ("GET", "v2.server_metadata"): "public",
    ("GET", "v2.live"): "public",
    ("GET", "v2.ready"): "public",
    ("GET", "v2.model_metadata"): "viewer",
    ("GET", "v2.model_ready"): "viewer",
    ("POST", "v2.infer"): "viewer",
}

ROLES = ("viewer", "scientist", "admin")
MEMBERS = ("rs", "bs")  # users with project memberships (see two_projects)
ARGS = {"name": "nosuch", "version": 1, "job_id": "nosuch", "dataset_id": "nosuch", "alias": "prod",
        "key": "roc", "fmt": "csv", "token_id": 999_999, "user_id": 999_999, "project_id": 999_999, "filename": "app.css"}
API_PREFIXES = ("/api/", "/v2", "/invocations")


def routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, rule


def url_for_rule(rule) -> str:
    values = {k: ARGS[k] for k in rule.arguments}
    if rule.endpoint == "assets.bokehjs":
        values = {"version": bokeh.__version__, "name": "bokeh"}
    return rule.build(values, append_unknown=False)[1]


def test_every_route_is_in_the_table(app):
    missing = [f"{m} {r.rule} ({r.endpoint})" for m, r in routes(app) if (m, r.endpoint) not in ACCESS]
    assert not missing, "routes with no access rule in tests/test_access_control.py: " + ", ".join(missing)
    stale = set(ACCESS) - {(m, r.endpoint) for m, r in routes(app)}
    assert not stale, f"table rows for routes that no longer exist: {sorted(stale)}"


class Caller:
    def __init__(self, app, kind: str, auth):
        self.kind = kind
        self.client = app.test_client()
        self.headers: dict[str, str] = {}
        if kind in ROLES or kind in MEMBERS:
            self.headers = {"Authorization": f"Bearer {auth.token(kind)}"}
            page = self.client.get("/login").get_data(as_text=True)
            csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
            assert self.client.post("/login", data={"username": kind, "password": PASSWORD,
                                                    "csrf_token": csrf}).status_code == 302
        elif kind == "revoked":
            from viewer.infra.extensions import db
            from viewer.infra.records import ApiToken

            from viewer.infra.records import hash_token

            raw = auth.token("admin")
            with app.app_context():
                token = db.session.query(ApiToken).filter_by(token_hash=hash_token(raw)).one()
                token.revoked_at = token.created_at
                db.session.commit()
            self.headers = {"Authorization": f"Bearer {raw}"}
        page = self.client.get("/account/" if kind in ROLES or kind in MEMBERS else "/login").get_data(as_text=True)
        self.csrf = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)

    def call(self, method: str, url: str, body: dict | None = None):
        if url.startswith(API_PREFIXES):
            return self.client.open(url, method=method, headers=self.headers, json=body or {})
        return self.client.open(url, method=method, data={"csrf_token": self.csrf} if method == "POST" else None)


@pytest.fixture
def callers(app, auth):
    made = {kind: Caller(app, kind, auth) for kind in ("anonymous", *ROLES)}
    made["revoked"] = Caller(app, "revoked", auth)  # an admin's token, revoked
    return made


def _refused(response, url: str, logged_in: bool) -> str | None:
    """'login' / 'forbidden' when the access check stopped the call, else None."""
    if response.status_code == 401:
        return "login"
    if response.status_code == 302 and "/login" in response.headers.get("Location", "") and not logged_in:
        return "login"
    if response.status_code == 403:
        return "forbidden"
    return None


def test_access_table(app, callers):
    problems = []
    for method, rule in routes(app):
        if rule.endpoint == "auth.logout" or (method, rule.endpoint) not in ACCESS:
            continue
        need = ACCESS[(method, rule.endpoint)]
        url = url_for_rule(rule)
        is_api = url.startswith(API_PREFIXES)
        for kind, caller in callers.items():
            if kind == "revoked" and not is_api:
                continue
            response = caller.call(method, url)
            response.close()  # file responses (BokehJS, static) hold their file open until closed
            if response.status_code >= 500:
                problems.append(f"{kind:9} {method} {url}: {response.status_code}")
                continue
            refused = _refused(response, url, logged_in=kind in ROLES and not is_api)
            if need == "public":
                allowed = True
            elif kind in ("anonymous", "revoked"):
                allowed = False
            else:
                allowed = ROLES.index(kind) >= ROLES.index(need)
            if allowed and refused:
                problems.append(f"{kind:9} {method} {url}: refused ({response.status_code}), table says {need}")
            elif not allowed:
                expected = "login" if kind in ("anonymous", "revoked") else "forbidden"
                if refused != expected:
                    problems.append(f"{kind:9} {method} {url}: {response.status_code}, expected {expected} "
                                    f"(needs {need})")
    assert not problems, "\n".join(problems)


def test_a_token_cannot_touch_another_users_tokens(client, auth, app):
    from viewer.infra.extensions import db
    from viewer.infra.records import ApiToken, User

    theirs = auth.token("scientist")
    with app.app_context():
        their_id = db.session.query(ApiToken).filter_by(user_id=User.by_name("scientist").id).one().id
    mine = {"Authorization": f"Bearer {auth.token('viewer')}"}
    listed = client.get("/api/v1/tokens", headers=mine).get_json()
    assert their_id not in {t["id"] for t in (listed["tokens"] if isinstance(listed, dict) else listed)}
    assert client.delete(f"/api/v1/tokens/{their_id}", headers=mine).status_code == 404
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {theirs}"}).status_code == 200


def test_the_api_ignores_the_session_cookie(client, auth):
    auth.login("admin")
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/account/").status_code == 200


# --- two projects: "not yours" is a 404 --------------------------------------------------------

OBJECT_ARGS = {"name", "version", "job_id", "dataset_id", "alias"}
VALID_BODIES = {"api.put_alias": {"version": 1}, "api.move_model": {"project": "blue"},
                "api.move_dataset": {"project": "blue"}, "api.predict": {"instances": [[1, 2]]},
                "api.predict_version": {"instances": [[1, 2]]}}
# GETs on red's real objects that a red member gets with 200 (what the 404s are compared with)
OK_FOR_MEMBERS = {"api.get_model", "api.get_version", "api.get_dataset", "api.get_job", "api.job_aggregates",
                  "v2.model_metadata", "v2.model_ready", "models.model", "models.version", "predict.page",
                  "datasets.page", "jobs.page", "jobs.status"}


@pytest.fixture
def two_projects(app, auth, worker):
    """Project red holds model m (version 1, alias prod), a dataset and a finished scoring job of
    them; rs is a scientist in red, bs an admin of blue (and nowhere else)."""
    import io

    import joblib
    from sklearn.linear_model import LogisticRegression

    from tests.support import wait_for_job
    from viewer.infra.extensions import db
    from viewer.infra.records import Project, User
    from viewer.infra.scope import EVERYWHERE, within
    from viewer.services import projects

    with app.app_context(), within(EVERYWHERE):
        red, blue = Project(name="red"), Project(name="blue")
        rs, bs = User(username="rs", role="viewer"), User(username="bs", role="viewer")
        for user in (rs, bs):
            user.set_password(PASSWORD)
        db.session.add_all([red, blue, rs, bs])
        db.session.commit()
        projects.set_member(red, rs, "scientist")
        projects.set_member(blue, bs, "admin")  # every role check passes in blue: only the project stops them
    client = app.test_client()
    headers = auth.bearer("rs")
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression().fit([[0, 0], [1, 1], [2, 0], [3, 1]], [0, 0, 1, 1]), buffer)
    assert client.post("/api/v1/models?project=red", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(buffer.getvalue()), "m.joblib"), "name": "m"}).status_code == 201
    assert client.put("/api/v1/models/m/aliases/prod?project=red", headers=headers,
                      json={"version": 1}).status_code == 200
    csv = b"a,b,label\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(40))
    dataset = client.post("/api/v1/datasets?project=red", headers=headers, content_type="multipart/form-data",
                          data={"file": (io.BytesIO(csv), "d.csv")}).get_json()["id"]
    job = client.post("/api/v1/jobs?project=red", headers=headers,
                      json={"model": "m", "dataset": dataset, "target": "label"}).get_json()
    assert wait_for_job(client, headers, job["id"])["state"] == "done"
    return {"name": "m", "version": 1, "alias": "prod", "dataset_id": dataset, "job_id": job["id"]}


def test_another_projects_objects_answer_404_on_every_route(app, auth, two_projects):
    """Every route that names a model, version, alias, dataset or job, called with red's real
    ones: an admin of blue gets 404 (and nothing changes); a scientist of red gets past it."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset, Job, RegisteredModel

    outsider, member = Caller(app, "bs", auth), Caller(app, "rs", auth)
    checked, problems = 0, []
    for method, rule in routes(app):
        if not OBJECT_ARGS & set(rule.arguments) or ACCESS.get((method, rule.endpoint)) in (None, "public"):
            continue
        values = {k: two_projects.get(k, ARGS.get(k)) for k in rule.arguments}
        if rule.endpoint == "assets.bokehjs":
            continue
        url = rule.build(values, append_unknown=False)[1]
        answer = outsider.call(method, url, VALID_BODIES.get(rule.endpoint))  # a valid body: the answer is about the object
        answer.close()
        checked += 1
        if answer.status_code != 404:
            problems.append(f"bs {method} {url}: {answer.status_code}, expected 404")
        if method == "GET" and rule.endpoint in OK_FOR_MEMBERS:
            mine = member.call(method, url)
            mine.close()
            if mine.status_code != 200:
                problems.append(f"rs {method} {url}: {mine.status_code}, expected 200")
    assert checked >= 30 and not problems, "\n".join(problems)
    with app.app_context():  # nothing the outsider sent changed red's objects
        assert db.session.get(Dataset, two_projects["dataset_id"]) is not None
        assert db.session.get(Job, two_projects["job_id"]).state == "done"
        assert db.session.scalar(db.select(RegisteredModel).where(RegisteredModel.name == "m")) is not None
