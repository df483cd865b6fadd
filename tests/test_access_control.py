"""Every route x every kind of caller: the expected answer, from one table, on real objects.

A new route that is not in ACCESS fails ``test_every_route_is_in_the_table``, so nobody adds a
route without deciding who may call it. Each row says the lowest role that gets through:
``public`` (anyone), ``viewer`` < ``scientist`` < ``admin`` (roles in a project) < ``global`` (an
administrator of the whole server).

The routes are called with real objects of project red (model m, version 1, alias prod, a
dataset, a finished job, a member), so a 404 means "not yours", never "made-up id". The callers:
- anonymous, and a revoked token (of red's admin): 401 (API) or the login page (pages);
- red's viewer, scientist and admin: below the row's role 403, at or above it past the check;
- an admin of project blue (and nowhere else): 404 on every route that names one of red's
  objects, although every role check passes in blue; 403 on the administrators' routes;
- a global administrator: past every check.
"Past the check" means never 401/403 and never a 5xx; on a route that names one of red's objects
also never 404. Routes that would destroy what they name get a fresh object for each call, and a
refused call must leave it in place.
"""

from __future__ import annotations

import io
import itertools
import re

import bokeh
import joblib
import pytest
from sklearn.linear_model import LogisticRegression

from tests.support import PASSWORD, wait_for_job

ACCESS: dict[tuple[str, str], str] = {
    ("GET", "admin.projects_page"): "global",
    ("POST", "admin.projects_page"): "global",
    ("GET", "admin.project"): "global",
    ("GET", "members.index"): "admin",
    ("POST", "members.index"): "admin",
    ("POST", "members.member"): "admin",
    ("POST", "admin.rename_project"): "global",
    ("POST", "admin.delete_project"): "global",
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
    ("GET", "admin.users"): "global",
    ("POST", "admin.users"): "global",
    ("POST", "admin.update_user"): "global",
    ("GET", "docs.api"): "viewer",
    ("GET", "models.index"): "viewer",
    ("GET", "models.model"): "viewer",
    ("GET", "models.version"): "viewer",
    ("GET", "models.upload"): "scientist",
    ("POST", "models.upload"): "scientist",
    ("POST", "models.set_alias"): "scientist",
    ("POST", "models.remove_alias"): "scientist",
    ("POST", "models.delete"): "scientist",
    ("POST", "models.move"): "admin",
    ("POST", "models.release"): "admin",
    ("POST", "models.serve_with"): "scientist",
    ("POST", "models.start_importance"): "scientist",
    ("POST", "models.start_dependence"): "scientist",
    ("GET", "predict.page"): "viewer",
    ("POST", "predict.page"): "viewer",
    ("GET", "datasets.index"): "viewer",
    ("GET", "datasets.page"): "viewer",
    ("GET", "datasets.upload"): "scientist",
    ("POST", "datasets.upload"): "scientist",
    ("POST", "datasets.delete"): "scientist",
    ("POST", "datasets.move"): "admin",
    ("POST", "datasets.score"): "scientist",
    ("POST", "datasets.identifier"): "scientist",
    ("POST", "datasets.drift"): "scientist",
    ("GET", "jobs.index"): "viewer",
    ("GET", "jobs.page"): "viewer",
    ("GET", "jobs.status"): "viewer",
    ("POST", "jobs.cancel"): "scientist",
    ("GET", "jobs.download"): "viewer",
    ("GET", "jobs.plot_csv"): "viewer",
    ("GET", "jobs.row"): "viewer",
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
    ("PUT", "api.put_threshold"): "scientist",
    ("DELETE", "api.delete_threshold"): "scientist",
    ("POST", "jobs.save_threshold"): "scientist",
    ("GET", "api.export_log"): "viewer",
    ("GET", "api.drift"): "viewer",
    ("GET", "api.drift_cell"): "viewer",
    ("POST", "api.post_labels"): "scientist",
    ("GET", "monitoring.page"): "viewer",
    ("POST", "monitoring.reference"): "scientist",
    ("POST", "monitoring.log_settings"): "scientist",
    ("POST", "api.delete_from_log"): "scientist",
    ("PUT", "api.put_alias"): "scientist",
    ("DELETE", "api.delete_alias"): "scientist",
    ("GET", "api.get_version"): "viewer",
    ("POST", "api.move_model"): "admin",
    ("POST", "api.release_version"): "admin",
    ("POST", "api.move_dataset"): "admin",
    ("DELETE", "api.delete_version"): "scientist",
    ("POST", "api.predict"): "viewer",
    ("POST", "api.predict_version"): "viewer",
    ("GET", "api.list_datasets"): "viewer",
    ("POST", "api.upload_dataset"): "scientist",
    ("GET", "api.get_dataset"): "viewer",
    ("DELETE", "api.delete_dataset"): "scientist",
    ("POST", "api.flag_identifier"): "scientist",
    ("POST", "api.compare_datasets"): "scientist",
    ("GET", "api.list_jobs"): "viewer",
    ("POST", "api.create_job"): "scientist",
    ("GET", "api.get_job"): "viewer",
    ("DELETE", "api.cancel_job"): "scientist",
    ("GET", "api.job_aggregates"): "viewer",
    ("GET", "api.job_row"): "viewer",
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

LEVELS = ("viewer", "scientist", "admin", "global")
RED_ROLES = ("viewer", "scientist", "admin")  # the users red-viewer, red-scientist, red-admin
CALLERS = ("anonymous", *RED_ROLES, "outsider", "global", "revoked")
OBJECT_ARGS = {"name", "version", "job_id", "dataset_id", "alias"}  # a route naming one of red's objects
IN_PROJECT = {"members.member"}  # its user_id is a member of red
ARGS = {"key": "roc", "fmt": "csv", "token_id": 999_999, "filename": "app.css"}  # no token of that id is theirs
API_PREFIXES = ("/api/", "/v2", "/invocations")
BODIES = {"api.put_alias": {"version": 1}, "api.move_model": {"project": "red"},  # a move into red stays put
          "api.move_dataset": {"project": "red"}, "api.predict": {"instances": [[1, 2]]},
          "api.flag_identifier": {"column": "a", "identifier": True},
          "api.predict_version": {"instances": [[1, 2]]}, "v2.infer": {"inputs": [
              {"name": "input-0", "shape": [1, 2], "datatype": "FP64", "data": [1, 2]}]},
          "mlflow.invocations": {"instances": [[1, 2]]}, "api.delete_from_log": {"request_ids": ["r1"]},
          "api.post_labels": {"labels": [{"request_id": "r1", "label": 1}]}, "api.put_threshold": {"threshold": 0.5},
          "api.compare_datasets": lambda red: {"reference": red.dataset_id}}  # (callables: bodies naming red's objects)


QUERIES = {"api.drift_cell": lambda red: f"?version=1&start={red.window}&column=x0"}  # required query strings


def routes(app):
    for rule in app.url_map.iter_rules():
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, rule


def test_every_route_is_in_the_table(app):
    missing = [f"{m} {r.rule} ({r.endpoint})" for m, r in routes(app) if (m, r.endpoint) not in ACCESS]
    assert not missing, "routes with no access rule in tests/test_access_control.py: " + ", ".join(missing)
    stale = set(ACCESS) - {(m, r.endpoint) for m, r in routes(app)}
    assert not stale, f"table rows for routes that no longer exist: {sorted(stale)}"
    assert set(ACCESS.values()) <= {"public", *LEVELS}


class Caller:
    """A client of one kind: a logged-in session for the pages and a token for the API."""

    def __init__(self, app, auth, kind: str, username: str | None, prefix: str = "/p/red"):
        self.kind, self.prefix = kind, prefix
        self.client = app.test_client()
        self.headers: dict[str, str] = {}
        if username and kind != "revoked":
            self.headers = {"Authorization": f"Bearer {auth.token(username)}"}
            page = self.client.get("/login").get_data(as_text=True)
            csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
            assert self.client.post("/login", data={"username": username, "password": PASSWORD,
                                                    "csrf_token": csrf}).status_code == 302
        elif kind == "revoked":
            from viewer.infra.extensions import db
            from viewer.infra.records import ApiToken, hash_token

            raw = auth.token(username)
            with app.app_context():
                token = db.session.query(ApiToken).filter_by(token_hash=hash_token(raw)).one()
                token.revoked_at = token.created_at
                db.session.commit()
            self.headers = {"Authorization": f"Bearer {raw}"}
        page = self.client.get("/account/" if self.logged_in else "/login").get_data(as_text=True)
        self.csrf = re.search(r'name="csrf_token" (?:type="hidden" )?value="([^"]+)"', page).group(1)

    @property
    def logged_in(self) -> bool:
        return self.kind not in ("anonymous", "revoked")

    def call(self, method: str, url: str, body: dict | None = None):
        if url.startswith(API_PREFIXES):
            return self.client.open(self.prefix + url, method=method, headers=self.headers, json=body or {})
        return self.client.open(self.prefix + url, method=method,
                                data={"csrf_token": self.csrf} if method == "POST" else None)


def _model_file(seed: int) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression(C=1.0 + seed).fit([[0, 0], [1, 1], [2, 0], [3, 1]], [0, 0, 1, 1]), buffer)
    return buffer.getvalue()


CSV = b"a,b,label\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(40))


class Red:
    """Project red's real objects, made through the API as red's admin (and fresh ones on demand)."""

    def __init__(self, app, auth):
        from viewer.infra.extensions import db
        from viewer.infra.records import Project, User
        from viewer.infra.scope import EVERYWHERE, within
        from viewer.services import projects

        self.app, self.client, self.serial = app, app.test_client(), itertools.count(1)
        with app.app_context(), within(EVERYWHERE):
            red, blue = Project(name="red"), Project(name="blue")
            people = {name: User(username=name, role="viewer") for name in (*(f"red-{r}" for r in RED_ROLES), "blue-admin")}
            for user in people.values():
                user.set_password(PASSWORD)
            db.session.add_all([red, blue, *people.values()])
            db.session.commit()
            for role in RED_ROLES:
                projects.set_member(red, people[f"red-{role}"], role)
            projects.set_member(blue, people["blue-admin"], "admin")  # every role check passes in blue
            self.project_id, self.user_id = red.id, people["red-viewer"].id
        self.headers = auth.bearer("red-admin")
        self.auth = auth
        assert self.post("/api/v1/models", data={"file": (io.BytesIO(_model_file(0)), "m.joblib"), "name": "m"}) \
            .status_code == 201
        assert self.client.put("/p/red/api/v1/models/m/aliases/prod", headers=self.headers,
                               json={"version": 1}).status_code == 200
        self.dataset_id = self.fresh_dataset()
        job = self.client.post("/p/red/api/v1/jobs", headers=self.headers,
                               json={"model": "m", "dataset": self.dataset_id, "target": "label"}).get_json()
        assert wait_for_job(self.client, self.headers, job["id"])["state"] == "done"
        self.job_id = job["id"]
        self.window = self.monitoring_window()

    def monitoring_window(self) -> str:
        """A window of m's prediction log summarised for monitoring: its start."""
        from viewer.services import monitoring, predlog

        assert self.client.post("/p/red/api/v1/models/m/predict", headers=self.headers,
                                json={"instances": [[1, 2]]}).status_code == 200
        predlog.flush()
        with self.app.app_context():
            monitoring.maintain()
        report = self.client.get("/p/red/api/v1/models/m/drift", headers=self.headers).get_json()
        return report["windows"][-1]["start"]

    def post(self, path: str, **kwargs):
        return self.client.post("/p/red" + path, headers=self.headers, content_type="multipart/form-data", **kwargs)

    def values(self, rule) -> dict:
        """The URL values naming red's real objects."""
        known = {"name": "m", "version": 1, "alias": "prod", "dataset_id": self.dataset_id, "job_id": self.job_id,
                 "project_id": self.project_id, "user_id": self.user_id, **ARGS}
        if rule.endpoint == "assets.bokehjs":
            return {"version": bokeh.__version__, "name": "bokeh"}
        return {k: known[k] for k in rule.arguments}

    # what the destroying routes get: a fresh object per call, and whether it is still there

    def fresh_version(self) -> int:
        made = self.post("/api/v1/models", data={"file": (io.BytesIO(_model_file(next(self.serial))), "m.joblib"),
                                                "name": "m"})
        assert made.status_code == 201, made.get_json()
        return made.get_json()["version"]

    def fresh_alias(self) -> str:
        alias = f"spare{next(self.serial)}"
        assert self.client.put(f"/p/red/api/v1/models/m/aliases/{alias}", headers=self.headers,
                               json={"version": 1}).status_code == 200
        return alias

    def fresh_dataset(self) -> str:
        made = self.post("/api/v1/datasets", data={"file": (io.BytesIO(CSV), "d.csv"),
                                                   "allow_duplicate": "true"}).get_json()
        assert made["state"] == "ready", made
        return made["id"]

    def fresh_member(self) -> int:
        from viewer.infra.extensions import db
        from viewer.infra.records import Project, User
        from viewer.infra.scope import EVERYWHERE, within
        from viewer.services import projects

        with self.app.app_context(), within(EVERYWHERE):
            user = User(username=f"spare{next(self.serial)}", role="viewer")
            db.session.add(user)
            db.session.commit()
            projects.set_member(db.session.get(Project, self.project_id), user, "viewer")
            return user.id

    def exists(self, key: str, value) -> bool:
        if key == "user_id":
            from viewer.infra.extensions import db
            from viewer.infra.records import Membership

            with self.app.app_context():
                return db.session.query(Membership).filter_by(user_id=value, project_id=self.project_id).count() == 1
        path = {"version": f"/api/v1/models/m/versions/{value}", "alias": f"/api/v1/models/m@{value}",
                "dataset_id": f"/api/v1/datasets/{value}"}[key]
        return self.client.get("/p/red" + path, headers=self.headers).status_code == 200


FRESH = {"api.delete_version": "version", "models.delete": "version", "api.delete_alias": "alias",
         "models.remove_alias": "alias", "api.delete_dataset": "dataset_id", "datasets.delete": "dataset_id",
         "members.member": "user_id"}
MAKERS = {"version": Red.fresh_version, "alias": Red.fresh_alias, "dataset_id": Red.fresh_dataset,
          "user_id": Red.fresh_member}


@pytest.fixture
def red(app, auth, worker):
    return Red(app, auth)


def _refused(response, logged_in: bool) -> str | None:
    """'login' / 'forbidden' when the access check stopped the call, else None."""
    if response.status_code == 401:
        return "login"
    if response.status_code == 302 and "/login" in response.headers.get("Location", "") and not logged_in:
        return "login"
    if response.status_code == 403:
        return "forbidden"
    return None


def _expected(need: str, kind: str, names_red_object: bool) -> str:
    """'pass', 'login', 'forbidden' or 'not found' for this caller on a route of this level."""
    if need == "public":
        return "pass"
    if kind in ("anonymous", "revoked"):
        return "login"
    if kind == "global":
        return "pass"
    if kind == "outsider":
        return "forbidden" if need == "global" else "not found" if names_red_object else "pass"
    return "pass" if LEVELS.index(kind) >= LEVELS.index(need) else "forbidden"


def test_access_table(app, auth, red):
    callers = {"anonymous": Caller(app, auth, "anonymous", None),
               **{role: Caller(app, auth, role, f"red-{role}") for role in RED_ROLES},
               "outsider": Caller(app, auth, "outsider", "blue-admin", prefix=""),  # works in blue
               "global": Caller(app, auth, "global", "admin"),
               "revoked": Caller(app, auth, "revoked", "red-admin")}
    problems, calls = [], 0
    for method, rule in routes(app):
        if rule.endpoint == "auth.logout" or (method, rule.endpoint) not in ACCESS:
            continue
        need = ACCESS[(method, rule.endpoint)]
        names_red_object = bool(OBJECT_ARGS & set(rule.arguments)) or rule.endpoint in IN_PROJECT
        for kind, caller in callers.items():
            is_api = rule.rule.startswith(API_PREFIXES)
            if kind == "revoked" and not is_api:
                continue
            values = red.values(rule)
            fresh = FRESH.get(rule.endpoint)
            if fresh:
                values[fresh] = MAKERS[fresh](red)
            url = rule.build(values, append_unknown=False)[1] + QUERIES.get(rule.endpoint, lambda _red: "")(red)
            body = BODIES.get(rule.endpoint)
            response = caller.call(method, url, body(red) if callable(body) else body)
            response.close()  # file responses (BokehJS, static) hold their file open until closed
            calls += 1
            expected = _expected(need, kind, names_red_object)
            refused = _refused(response, logged_in=caller.logged_in and not is_api)
            status = response.status_code
            where = f"{kind:9} {method} {caller.prefix}{url}: {status}"
            if status >= 500:
                problems.append(f"{where}, a server error")
            elif expected == "pass" and (refused or (names_red_object and status == 404)):
                problems.append(f"{where}, expected to get through (the route needs {need})")
            elif expected in ("login", "forbidden") and refused != expected:
                problems.append(f"{where}, expected {expected} (the route needs {need})")
            elif expected == "not found" and status != 404:
                problems.append(f"{where}, expected 404: another project's object")
            if fresh and expected != "pass" and not red.exists(fresh, values[fresh]):
                problems.append(f"{where}, refused but {fresh} {values[fresh]} is gone")
    assert calls > 500 and not problems, "\n".join(problems)
    with app.app_context():  # nothing the callers sent changed red's objects
        assert red.exists("version", 1) and red.exists("dataset_id", red.dataset_id)
        assert red.client.get(f"/p/red/api/v1/jobs/{red.job_id}", headers=red.headers).get_json()["state"] == "done"


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
