"""Projects: two teams on one server see only their own models, datasets and jobs.

Real objects in two projects (a 404 must mean "not yours", not "made-up id"); the services
enforce the project, not only the routes; the migration moves what existed into the default
project, on this backend's database.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import uuid

import joblib
import pytest
import sqlalchemy as sa
from sklearn.linear_model import LogisticRegression

from tests.support import PASSWORD, ROOT

CSV = b"a,b,label\n" + b"".join(f"{i},{i % 3},{i % 2}\n".encode() for i in range(40))


def model_bytes() -> bytes:
    buffer = io.BytesIO()
    joblib.dump(LogisticRegression().fit([[0, 0], [1, 1], [2, 0], [3, 1]], [0, 0, 1, 1]), buffer)
    return buffer.getvalue()


@pytest.fixture
def teams(app, auth):
    """Projects red and blue; alice is a scientist in red, bob in blue; carol a viewer in red and
    a scientist in blue. Red holds model "m" (one version), a dataset and a scoring job."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Project, User
    from viewer.infra.scope import EVERYWHERE, within
    from viewer.services import projects

    with app.app_context(), within(EVERYWHERE):
        red, blue = Project(name="red"), Project(name="blue")
        people = {name: User(username=name, role="viewer") for name in ("alice", "bob", "carol")}
        for person in people.values():
            person.set_password(PASSWORD)
        db.session.add_all([red, blue, *people.values()])
        db.session.commit()
        for user, project, role in ((people["alice"], red, "scientist"), (people["bob"], blue, "scientist"),
                                    (people["carol"], red, "viewer"), (people["carol"], blue, "scientist")):
            projects.set_member(project, user, role)
    headers = {name: auth.bearer(name) for name in ("alice", "bob", "carol")}
    client = app.test_client()
    made = client.post("/api/v1/models?project=red", headers=headers["alice"], content_type="multipart/form-data",
                       data={"file": (io.BytesIO(model_bytes()), "m.joblib"), "name": "m"})
    assert made.status_code == 201, made.get_json()
    dataset = client.post("/api/v1/datasets?project=red", headers=headers["alice"], content_type="multipart/form-data",
                          data={"file": (io.BytesIO(CSV), "d.csv")}).get_json()
    assert dataset["state"] == "ready", dataset
    return {"headers": headers, "dataset": dataset["id"], "client": client}


def test_another_projects_objects_are_not_found_through_the_api(app, teams):
    client, bob, dataset = teams["client"], teams["headers"]["bob"], teams["dataset"]
    alice = teams["headers"]["alice"]
    assert client.get("/api/v1/models/m?project=red", headers=alice).status_code == 200
    for path in ("/api/v1/models/m", "/api/v1/models/m/versions/1", f"/api/v1/datasets/{dataset}",
                 "/v2/models/m", "/api/v1/models/m/predict"):
        method = client.post if path.endswith("predict") else client.get
        response = method(path, headers=bob, json={"instances": [[1, 2]]})
        assert response.status_code == 404, (path, response.get_json())
    assert client.get("/api/v1/models", headers=bob).get_json()["models"] == []
    assert client.get("/api/v1/datasets", headers=bob).get_json()["datasets"] == []
    # naming red outright is "no project of yours", like a project that does not exist
    for project in ("red", "nope"):
        response = client.get(f"/api/v1/models?project={project}", headers=bob)
        assert response.status_code == 404 and response.get_json()["error_code"] == "project_not_found"
        assert client.get(f"/p/{project}/api/v1/models", headers=bob).status_code == 404


def test_another_projects_jobs_cannot_be_compared(app, teams):
    client, alice, bob = teams["client"], teams["headers"]["alice"], teams["headers"]["bob"]
    assert client.post("/api/v1/models?project=red", headers=alice, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(model_bytes()), "m.joblib"), "name": "m2"}).status_code == 201
    made = [client.post("/api/v1/jobs?project=red", headers=alice,
                        json={"model": name, "dataset": teams["dataset"], "target": "label"}) for name in ("m", "m2")]
    assert [m.status_code for m in made] == [202, 202], [m.get_json() for m in made]
    query = "&".join(f"jobs={m.get_json()['id']}" for m in made)
    mine = client.get(f"/api/v1/compare?project=red&{query}", headers=alice)
    assert mine.status_code == 400 and "only finished (done) jobs can be compared" in mine.get_json()["message"]
    for answer in (client.get(f"/api/v1/compare?{query}", headers=bob),
                   client.post("/api/v1/compare", headers=bob, json={"jobs": query.replace("jobs=", "").split("&")})):
        assert answer.status_code == 404, answer.get_json()


def test_another_projects_dataset_is_not_a_reference(app, teams):
    client, bob = teams["client"], teams["headers"]["bob"]
    mine = client.post("/api/v1/datasets?project=blue", headers=bob, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(CSV), "mine.csv")}).get_json()["id"]
    answer = client.post(f"/api/v1/datasets/{mine}/drift?project=blue", headers=bob, json={"reference": teams["dataset"]})
    assert answer.status_code == 404 and answer.get_json()["error_code"] == "dataset_not_found"


def test_a_moved_dataset_leaves_its_comparisons_with_datasets_that_stay(app, teams, auth):
    """A comparison describes both datasets: moved along, it would show the one that stays to the
    other project. It is deleted instead (and a running one refuses the move)."""
    client, alice, admin = teams["client"], teams["headers"]["alice"], auth.bearer("admin")
    other = client.post("/api/v1/datasets?project=red", headers=alice, content_type="multipart/form-data",
                        data={"file": (io.BytesIO(CSV.replace(b"label", b"label2")), "other.csv")}).get_json()["id"]
    from viewer.infra.extensions import db
    from viewer.infra.records import Job, Project
    with app.app_context():
        red = db.session.scalar(sa.select(Project.id).where(Project.name == "red"))
        running = Job(kind="drift", state="running", project_id=red, dataset_id=other,
                      params={"reference": teams["dataset"], "reference_name": "d.csv"})
        db.session.add(running)
        db.session.commit()
        running_id = running.id
    refused = client.post(f"/api/v1/datasets/{teams['dataset']}/move?project=red", headers=admin, json={"project": "blue"})
    assert refused.status_code == 409 and "being compared" in refused.get_json()["message"]
    with app.app_context():
        db.session.get(Job, running_id).state = "done"
        db.session.commit()
    moved = client.post(f"/api/v1/datasets/{teams['dataset']}/move?project=red", headers=admin, json={"project": "blue"})
    assert moved.status_code == 200, moved.get_json()
    with app.app_context():
        assert db.session.get(Job, running_id) is None


def test_a_name_taken_in_another_project_is_free(app, teams):
    client, bob = teams["client"], teams["headers"]["bob"]
    made = client.post("/api/v1/models", headers=bob, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(model_bytes()), "m.joblib"), "name": "m"})
    assert made.status_code == 201 and made.get_json()["version"] == 1  # blue's own m, not red's version 2
    red = client.get("/api/v1/models/m?project=red", headers=teams["headers"]["alice"]).get_json()
    assert [v["version"] for v in red["versions"]] == [1]


def test_roles_are_per_project(app, teams):
    client, carol = teams["client"], teams["headers"]["carol"]
    upload = {"file": (io.BytesIO(model_bytes()), "m.joblib"), "name": "n"}
    assert client.post("/api/v1/models?project=red", headers=carol, content_type="multipart/form-data",
                       data=upload).status_code == 403  # a viewer in red
    upload = {"file": (io.BytesIO(model_bytes()), "m.joblib"), "name": "n"}
    assert client.post("/api/v1/models?project=blue", headers=carol, content_type="multipart/form-data",
                       data=upload).status_code == 201  # a scientist in blue
    me = client.get("/api/v1/me?project=red", headers=carol).get_json()
    assert (me["project"], me["role"], me["global_admin"]) == ("red", "viewer", False)


def test_a_global_admin_sees_every_project(app, teams, auth):
    admin = auth.bearer("admin")
    assert teams["client"].get("/api/v1/models/m?project=red", headers=admin).status_code == 200
    assert teams["client"].get("/api/v1/models/m?project=blue", headers=admin).status_code == 404


def test_pages_take_the_project_from_the_url(app, teams, auth, client):
    auth.login("carol")  # red (viewer) and blue (scientist); her default is her first project, red
    page = client.get("/p/red/models/")
    assert page.status_code == 200 and 'href="/p/red/models/m"' in page.get_data(as_text=True)
    assert "/p/blue/models/m" not in client.get("/p/blue/models/").get_data(as_text=True)
    assert client.get("/p/blue/models/m").status_code == 404
    auth.logout()
    auth.login("bob")
    assert client.get("/p/red/models/").status_code == 404


def test_services_enforce_the_project(app, teams):
    """Called directly, in blue's scope, with red's names and ids: not found, every one."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Project, User
    from viewer.infra.scope import Scope, within
    from viewer.services import datasets, jobs, projects, registry, serving, submission
    from viewer.services.errors import ServiceError

    client, alice = teams["client"], teams["headers"]["alice"]
    job = client.post("/api/v1/jobs?project=red", headers=alice,
                      json={"model": "m", "dataset": teams["dataset"], "target": "label"})
    assert job.status_code in (200, 202, 503), job.get_json()
    with app.app_context():
        blue = db.session.scalar(sa.select(Project).where(Project.name == "blue"))
        with within(Scope(blue.id, "blue", "scientist")):
            calls = [lambda: registry.get_model("m"), lambda: registry.resolve("m/1"), lambda: serving.resolve("m"),
                     lambda: datasets.get(teams["dataset"]),
                     lambda: submission.submit("m", teams["dataset"], "label", None)]
            if job.status_code != 503:
                calls.append(lambda: jobs.get(job.get_json()["id"]))
            for call in calls:
                with pytest.raises(ServiceError) as refused:
                    call()
                assert refused.value.kind == "not_found"
            assert registry.page_of_models().items == [] and datasets.list_datasets().items == []
            assert jobs.search({}).items == [] and jobs.recent() == [] and jobs.counts_by_state() == {}
            assert not registry.exists("m")
        red = db.session.scalar(sa.select(Project).where(Project.name == "red"))
        with within(Scope(blue.id, "blue", "admin", roles={blue.id: "admin"})):  # blue's admin: not red's
            assert projects.move_targets() == []
            with pytest.raises(ServiceError) as refused:
                projects.set_member(red, User.by_name("alice"), None)
            assert refused.value.kind == "forbidden"
            with pytest.raises(ServiceError) as refused:
                projects.move_target("red")
            assert refused.value.kind == "not_found"


def _fresh_database(backend) -> tuple[str, callable]:
    """An empty database on this backend, and how to drop it."""
    if backend.name == "embedded":
        path = backend.data_dir / f"migrate-{uuid.uuid4().hex[:8]}.sqlite3"
        return f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)
    import psycopg

    from tests.support import POSTGRES_ADMIN_URL

    name = f"viewer_migrate_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return backend.database_url.rsplit("/", 1)[0] + "/" + name, drop


def _flask_db(backend, url: str, *args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "flask", "--app", "viewer:create_app()", "db", *args,
                             "-d", "viewer/migrations"], cwd=ROOT, env={**backend.env(), "VIEWER_DATABASE_URL": url},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_migration_moves_existing_data_into_the_default_project(migrated):
    url, drop = _fresh_database(migrated)
    engine = sa.create_engine(url)
    try:
        _flask_db(migrated, url, "upgrade", "0004")
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO users (id, username, role, active, created_at) VALUES "
                                 "(1, 'ann', 'scientist', true, CURRENT_TIMESTAMP), "
                                 "(2, 'root', 'admin', true, CURRENT_TIMESTAMP)"))
            conn.execute(sa.text("INSERT INTO registered_models (name, description, anonymous_predict, created_at)"
                                 " VALUES ('m', '', false, CURRENT_TIMESTAMP)"))
            conn.execute(sa.text("INSERT INTO datasets (id, name, state, created_at) VALUES "
                                 "('d1', 'd.csv', 'ready', CURRENT_TIMESTAMP)"))
            conn.execute(sa.text("INSERT INTO jobs (id, kind, state, params, progress_done, cancel_requested, "
                                 "attempts, created_at, updated_at) VALUES ('j1', 'ping', 'done', '{}', 0, false, 0, "
                                 "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
        _flask_db(migrated, url, "upgrade")
        with engine.begin() as conn:
            (default_id,) = conn.execute(sa.text("SELECT id FROM projects WHERE name = 'default'")).one()
            for table in ("registered_models", "datasets", "jobs"):
                assert conn.execute(sa.text(f"SELECT project_id FROM {table}")).scalars().all() == [default_id]
            assert sorted(conn.execute(sa.text("SELECT user_id, role FROM memberships")).all()) == \
                [(1, "scientist"), (2, "admin")]
            # names are unique per project now: another project may hold an "m"
            conn.execute(sa.text("INSERT INTO projects (id, name, created_at) VALUES (99, 'other', CURRENT_TIMESTAMP)"))
            conn.execute(sa.text("INSERT INTO registered_models (name, project_id, description, anonymous_predict, "
                                 "created_at) VALUES ('m', 99, '', false, CURRENT_TIMESTAMP)"))
            with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
                conn.execute(sa.text("INSERT INTO registered_models (name, project_id, description, "
                                     "anonymous_predict, created_at) VALUES ('m', 99, '', false, CURRENT_TIMESTAMP)"))
    finally:
        engine.dispose()  # before the database is dropped: no connection outlives the test
        drop()


def test_an_administrator_manages_projects_and_members_on_the_pages(app, teams, auth, client):
    import re

    auth.login("admin")
    token = auth.csrf_token("/admin/projects")
    made = client.post("/admin/projects", data={"name": "green", "csrf_token": token})
    assert made.status_code == 302
    page_url = made.headers["Location"]  # the new project's members page
    assert page_url.endswith("/p/green/members/")
    refused = client.post("/admin/projects", data={"name": "Green Team", "csrf_token": token})
    assert "lowercase letters" in refused.get_data(as_text=True)
    assert client.post(page_url, data={"username": "bob", "role": "viewer", "csrf_token": token}).status_code == 302
    assert client.post(page_url, data={"username": "nobody", "role": "viewer", "csrf_token": token}) \
        .get_data(as_text=True).count("No user of that name") == 1
    page = client.get(page_url).get_data(as_text=True)
    assert "bob" in page and 'value="viewer" selected' in page
    bob = teams["headers"]["bob"]
    assert teams["client"].get("/api/v1/models?project=green", headers=bob).status_code == 200  # at once
    project_id = int(re.search(r'/admin/projects/(\d+)">green<', client.get("/admin/projects").get_data(as_text=True))
                     .group(1))
    assert "bob (viewer)" in client.get(f"/admin/projects/{project_id}").get_data(as_text=True)
    assert client.post(f"/admin/projects/{project_id}/rename", data={"name": "lime", "csrf_token": token}) \
        .status_code == 302
    overview = client.get("/admin/projects").get_data(as_text=True)
    assert ">lime<" in overview and ">green<" not in overview
    # red holds a model: it stays; lime is empty: it goes
    red_id = int(re.search(r'/admin/projects/(\d+)">red<', overview).group(1))
    client.post(f"/admin/projects/{red_id}/delete", data={"csrf_token": token})
    assert ">red<" in client.get("/admin/projects").get_data(as_text=True)
    client.post(f"/admin/projects/{project_id}/delete", data={"csrf_token": token})
    assert ">lime<" not in client.get("/admin/projects").get_data(as_text=True)
    auth.logout()
    auth.login("alice")
    assert client.get("/admin/projects").status_code == 403  # a project's scientist manages no projects


def test_a_project_admin_manages_its_members_on_the_members_page(app, teams, auth, client):
    from viewer.infra.extensions import db
    from viewer.infra.records import Project, User
    from viewer.infra.scope import EVERYWHERE, within
    from viewer.services import projects

    with app.app_context(), within(EVERYWHERE):
        dave = User(username="dave", role="viewer")
        dave.set_password(PASSWORD)
        db.session.add(dave)
        db.session.commit()
        projects.set_member(db.session.scalar(sa.select(Project).where(Project.name == "red")), dave, "admin")
    auth.login("dave")
    home = client.get("/p/red/").get_data(as_text=True)
    assert 'href="/p/red/members/">Members of red<' in home  # in the project switcher
    token = auth.csrf_token("/p/red/members/")
    added = client.post("/p/red/members/", data={"username": "bob", "role": "viewer", "csrf_token": token})
    assert added.status_code == 302
    bob = teams["headers"]["bob"]
    assert teams["client"].get("/api/v1/models?project=red", headers=bob).get_json()["models"][0]["name"] == "m"
    page = client.get("/p/red/members/").get_data(as_text=True)
    for name, role in (("alice", "scientist"), ("bob", "viewer"), ("carol", "viewer"), ("dave", "admin")):
        assert re.search(rf"<td>{name}</td>.*?value=\"{role}\" selected", page, re.S), name
    with app.app_context():
        ids = {name: User.by_name(name).id for name in ("bob", "dave")}
    assert client.post(f"/p/red/members/{ids['bob']}", data={"role": "", "csrf_token": token}).status_code == 302
    assert teams["client"].get("/api/v1/models?project=red", headers=bob).status_code == 404  # out at once
    # the only admin cannot leave the project without one
    kept = client.post(f"/p/red/members/{ids['dave']}", data={"role": "viewer", "csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "dave is the project&#39;s only admin: make someone else admin first" in kept
    assert client.get("/p/red/members/").status_code == 200
    # another project's members page is not theirs; a removed user is not found here
    assert client.get("/p/blue/members/").status_code == 404
    assert client.post(f"/p/red/members/{ids['bob']}", data={"role": "viewer", "csrf_token": token}).status_code == 404
    # with a second admin, dave may step down: he lands on his home page, no longer on the members page
    assert client.post("/p/red/members/", data={"username": "carol", "role": "admin", "csrf_token": token}) \
        .status_code == 302
    stepped = client.post(f"/p/red/members/{ids['dave']}", data={"role": "viewer", "csrf_token": token})
    assert stepped.status_code == 302 and stepped.headers["Location"] == "/"
    assert client.get("/p/red/members/").status_code == 403
    auth.logout()
    auth.login("alice")  # a scientist of red
    assert client.get("/p/red/members/").status_code == 403
    assert "Members of red" not in client.get("/p/red/").get_data(as_text=True)


def test_the_client_works_in_a_project(app, teams, auth, live_server):
    from viewer.client import ApiError, Client

    alice = Client(live_server, teams["headers"]["alice"]["Authorization"].split()[1], project="red")
    assert [m["name"] for m in alice.models()] == ["m"] and alice.model("m")["name"] == "m"
    bob = Client(live_server, teams["headers"]["bob"]["Authorization"].split()[1])
    assert bob.models() == []
    with pytest.raises(ApiError) as refused:
        Client(live_server, teams["headers"]["bob"]["Authorization"].split()[1], project="red").models()
    assert refused.value.status == 404


def test_the_commands_make_projects_and_register_into_them(app, users, tmp_path):
    from viewer.cli import cli

    path = tmp_path / "m.joblib"
    path.write_bytes(model_bytes())
    runner = app.test_cli_runner()
    assert runner.invoke(cli, ["create-project", "ops"]).exit_code == 0
    assert "lowercase" in runner.invoke(cli, ["create-project", "Ops!"]).output
    assert runner.invoke(cli, ["add-member", "ops", "scientist", "--role", "admin"]).exit_code == 0
    result = runner.invoke(cli, ["register-model", str(path), "--name", "m", "--project", "ops"])
    assert result.exit_code == 0, result.output
    assert "No project 'nope'" in runner.invoke(cli, ["register-model", str(path), "--name", "m",
                                                      "--project", "nope"]).output
    client = app.test_client()
    from viewer.infra.extensions import db
    from viewer.infra.records import ApiToken, User

    with app.app_context():
        _t, raw = ApiToken.issue(User.by_name("scientist"), "t")
        db.session.commit()
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/models/m?project=ops", headers=headers).status_code == 200
    assert client.get("/api/v1/me?project=ops", headers=headers).get_json()["role"] == "admin"
    # in a project now, the scientist no longer falls back to the default project: ops is theirs
    assert client.get("/api/v1/models/m", headers=headers).status_code == 200
    assert client.get("/api/v1/models?project=default", headers=headers).status_code == 404
    # a user made straight into a project has that role there and is no administrator
    made = runner.invoke(cli, ["create-user", "olga", "--project", "ops", "--role", "admin"])
    assert made.exit_code == 0 and "Created admin 'olga' in project ops with password: " in made.output
    assert "No project 'nope'" in runner.invoke(cli, ["create-user", "pat", "--project", "nope"]).output
    with app.app_context():
        assert User.by_name("olga").role == "viewer" and User.by_name("pat") is None
        _t, raw = ApiToken.issue(User.by_name("olga"), "t")
        db.session.commit()
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).get_json()
    assert (me["project"], me["role"], me["global_admin"]) == ("ops", "admin", False)


def test_a_project_admin_of_both_moves_models_and_datasets(app, teams):
    from viewer.infra.extensions import db
    from viewer.infra.records import Project, User
    from viewer.infra.scope import EVERYWHERE, within
    from viewer.services import projects

    client, headers = teams["client"], teams["headers"]
    with app.app_context(), within(EVERYWHERE):
        red, blue = (db.session.scalar(sa.select(Project).where(Project.name == n)) for n in ("red", "blue"))
        projects.set_member(red, User.by_name("carol"), "admin")
        projects.set_member(blue, User.by_name("carol"), "admin")
    from viewer.http.auth import forget_user

    with app.app_context():
        forget_user(User.by_name("carol").id)
    alice, carol = headers["alice"], headers["carol"]
    # a scientist may not move; an admin of red only may not move into a project where they are not admin
    assert client.post("/api/v1/models/m/move?project=red", headers=alice, json={"project": "blue"}).status_code == 403
    assert client.post("/api/v1/models/m/move?project=red", headers=carol,
                       json={"project": "nope"}).get_json()["error_code"] == "project_not_found"
    moved = client.post("/api/v1/models/m/move?project=red", headers=carol, json={"project": "blue"})
    assert moved.status_code == 200, moved.get_json()
    assert client.get("/api/v1/models/m?project=red", headers=alice).status_code == 404
    assert client.get("/api/v1/models/m", headers=headers["bob"]).status_code == 200  # blue's now
    assert client.post("/api/v1/models/m/predict", headers=headers["bob"],
                       json={"instances": [[1, 2]]}).status_code == 200  # the serving cache followed
    dataset = teams["dataset"]
    assert client.post(f"/api/v1/datasets/{dataset}/move?project=red", headers=carol,
                       json={"project": "blue"}).status_code == 200
    assert client.get(f"/api/v1/datasets/{dataset}", headers=headers["bob"]).status_code == 200
    assert client.get(f"/api/v1/datasets/{dataset}?project=red", headers=alice).status_code == 404
    # a name taken in the target is a conflict
    upload = {"file": (io.BytesIO(model_bytes()), "m.joblib"), "name": "m"}
    assert client.post("/api/v1/models?project=red", headers=alice, content_type="multipart/form-data",
                       data=upload).status_code == 201
    clash = client.post("/api/v1/models/m/move?project=red", headers=carol, json={"project": "blue"})
    assert clash.status_code == 409 and clash.get_json()["error_code"] == "model_name_taken"


def test_a_project_admin_of_both_moves_from_the_pages(app, teams, auth, client):
    from viewer.infra.extensions import db
    from viewer.infra.records import Project, User
    from viewer.infra.scope import EVERYWHERE, within
    from viewer.services import projects

    with app.app_context(), within(EVERYWHERE):
        red, blue, green = (Project(name=n) if n == "green" else db.session.scalar(
            sa.select(Project).where(Project.name == n)) for n in ("red", "blue", "green"))
        db.session.add(green)
        db.session.commit()
        carol = User.by_name("carol")
        for project in (red, blue):
            projects.set_member(project, carol, "admin")
        projects.set_member(green, carol, "scientist")  # not admin there: not offered
    auth.login("carol")
    page = client.get("/p/red/models/m").get_data(as_text=True)
    assert re.search(r'<select name="project"><option>blue</option></select>', page)  # blue only, not green
    token = auth.csrf_token("/p/red/models/m")
    moved = client.post("/p/red/models/m/move", data={"project": "blue", "csrf_token": token})
    assert moved.status_code == 302 and moved.headers["Location"].endswith("/p/blue/models/m")
    assert "Model m moved to project blue." in client.get("/p/blue/models/m").get_data(as_text=True)
    assert client.get("/p/red/models/m").status_code == 404
    # refused (green: not an admin there): back on the page with the reason, nothing moved
    dataset = teams["dataset"]
    back = client.post(f"/p/red/datasets/{dataset}/move", data={"project": "green", "csrf_token": token},
                       follow_redirects=True)
    assert back.status_code == 200 and "Moving needs the admin role in both projects." in back.get_data(as_text=True)
    assert client.post(f"/p/red/datasets/{dataset}/move", data={"project": "blue", "csrf_token": token}) \
        .headers["Location"].endswith(f"/p/blue/datasets/{dataset}")
    assert client.get(f"/p/blue/datasets/{dataset}").status_code == 200
    auth.logout()
    auth.login("alice")  # a scientist of red sees no move form
    assert client.get("/p/blue/models/m").status_code == 404
    assert 'name="project"' not in client.get(f"/p/red/datasets").get_data(as_text=True)
