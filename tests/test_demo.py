"""``manage.py demo`` and ``make run``'s ``up --demo``: real models trained on scikit-learn's bundled
data, registered, uploaded and scored through the same paths as the API, run by a real worker;
loading again adds nothing twice and fills what was deleted."""

import os
import re
import subprocess
import sys
import time

import pytest
import requests
from sqlalchemy import func, select

from tests.support import BACKEND, PASSWORD, ROOT, interrupt
from tests.test_up import free_port
from viewer.cli import cli

# The demo command migrates first (like init-db), in this process here: Flask-Migrate's stock env.py
# tries Flask-SQLAlchemy's deprecated get_engine() before .engine (harmless; other tests run
# init-db in a subprocess).
pytestmark = pytest.mark.filterwarnings("ignore:'get_engine' is deprecated:DeprecationWarning")

DEMO_MODELS = ["breast-cancer-hgb", "breast-cancer-logreg", "diabetes-gbr", "diabetes-ridge", "wine-forest"]
DEMO_DATASETS = ["breast-cancer-test.csv", "diabetes-test.csv", "wine-test.csv"]


def counts(app) -> dict[str, int]:
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset, Job, ModelVersion, RegisteredModel

    with app.app_context():
        return {name: db.session.scalar(select(func.count()).select_from(table))
                for name, table in (("models", RegisteredModel), ("versions", ModelVersion),
                                    ("datasets", Dataset), ("jobs", Job))}


def finished_jobs(app, timeout: float = 180) -> dict[str, dict]:
    """Every scoring job once all jobs are final, keyed by model name (the latest job of each)."""
    from viewer.infra.extensions import db
    from viewer.services.jobs import serialize_job
    from viewer.infra.records import Job

    deadline = time.monotonic() + timeout
    with app.app_context():
        while True:
            db.session.expire_all()
            jobs = db.session.scalars(select(Job).order_by(Job.created_at)).all()
            if all(job.finished for job in jobs) or time.monotonic() > deadline:
                return {job.params["model_name"]: serialize_job(job) for job in jobs if job.kind == "score"}
            time.sleep(0.2)


def test_demo_loads_once_and_a_real_worker_scores_it(app, runner, worker, client):
    first = runner.invoke(cli, ["demo"])
    assert first.exit_code == 0, first.output
    assert "Registered breast-cancer-logreg/1" in first.output and "Queued 5 scoring jobs" in first.output
    loaded = counts(app)
    assert loaded == {"models": 5, "versions": 5, "datasets": 3, "jobs": 5}

    jobs = finished_jobs(app)
    assert sorted(jobs) == DEMO_MODELS
    assert {name: job["state"] for name, job in jobs.items()} == dict.fromkeys(DEMO_MODELS, "done"), \
        {name: job["error"] for name, job in jobs.items()} | {"worker log": worker.log()}

    second = runner.invoke(cli, ["demo"])
    assert second.exit_code == 0, second.output
    assert "Nothing added" in second.output
    assert counts(app) == loaded

    # The comparison: two models on the same breast-cancer test set, both with real metrics.
    logreg, hgb = jobs["breast-cancer-logreg"], jobs["breast-cancer-hgb"]
    assert logreg["dataset_id"] == hgb["dataset_id"]
    for job in (logreg, hgb):
        metrics = job["metrics"]
        assert (metrics["task"], metrics["n"], metrics["positive_label"]) == ("binary", 171, "malignant")
        assert metrics["accuracy"] > 0.9 and metrics["roc_auc"] > 0.95
    assert jobs["wine-forest"]["metrics"]["task"] == "multiclass"
    assert jobs["wine-forest"]["metrics"]["classes"] == ["class_0", "class_1", "class_2"]
    assert jobs["diabetes-ridge"]["metrics"]["task"] == "regression"

    from viewer.services import registry
    from viewer.infra.records import Dataset

    with app.app_context():
        models = {m.name: m for m in registry.search_models()}
        assert sorted(models) == DEMO_MODELS
        assert {m.created_by.username for m in models.values()} == {"demo"}
        assert all(m.description and m.latest.info["feature_names"] for m in models.values())
        assert "mean radius" in models["breast-cancer-hgb"].latest.info["feature_names"]
        # One champion per pair: the one the jobs found better on the held-out rows.
        champions = sorted(name for name, m in models.items() if any(a.alias == "champion" for a in m.aliases))
        accuracy = {n: jobs[n]["metrics"]["accuracy"] for n in ("breast-cancer-logreg", "breast-cancer-hgb")}
        r2 = {n: jobs[n]["metrics"]["r2"] for n in ("diabetes-ridge", "diabetes-gbr")}
        assert champions == sorted([max(accuracy, key=accuracy.get), max(r2, key=r2.get)])
        datasets = registry.db.session.scalars(select(Dataset)).all()
        assert sorted(d.name for d in datasets) == DEMO_DATASETS
        assert {d.state for d in datasets} == {"ready"}

    # What a new user sees after logging in: the models, a model card, a job with its metrics.
    from viewer.infra.extensions import db
    from viewer.infra.records import User

    with app.app_context():
        user = User(username="analyst", role="viewer")
        user.set_password(PASSWORD)
        db.session.add(user)
        db.session.commit()
    page = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": "analyst", "password": PASSWORD, "csrf_token": csrf})
    listing = client.get("/models/").get_data(as_text=True)
    assert all(name in listing for name in DEMO_MODELS)
    card = client.get("/models/breast-cancer-hgb/versions/1")
    assert card.status_code == 200 and "HistGradientBoostingClassifier" in card.get_data(as_text=True)
    assert client.get(f"/jobs/{hgb['id']}").status_code == 200
    # The command printed where to see the comparison (when this app has a compare page).
    link = re.search(r"compared on the same test set.*: (/\S+)", first.output)
    if "compare.page" in app.view_functions:
        assert link and f"jobs={logreg['id']}" in link.group(1) and f"jobs={hgb['id']}" in link.group(1)
        assert client.get(link.group(1)).status_code == 200
        finished_jobs(app)  # the comparison's own job, before the tables are emptied
    else:
        assert link is None


def test_demo_fills_what_was_deleted_and_nothing_else(app, runner, worker):
    assert runner.invoke(cli, ["demo"]).exit_code == 0
    finished_jobs(app)
    from viewer.services import datasets as dataset_service
    from viewer.services import registry
    from viewer.infra.records import Dataset

    with app.app_context():
        ridge_aliases = [a.alias for a in registry.get_model("diabetes-ridge").aliases]
        registry.delete_version(registry.resolve("diabetes-gbr/1"))
        wine = registry.db.session.scalar(select(Dataset).where(Dataset.name == "wine-test.csv"))
        dataset_service.delete(wine)
    again = runner.invoke(cli, ["demo"])
    assert again.exit_code == 0, again.output
    assert "Registered diabetes-gbr/1" in again.output and "wine-test.csv (54 rows)" in again.output
    assert "breast-cancer" not in again.output  # nothing else was touched
    assert {k: v for k, v in counts(app).items() if k != "jobs"} == {"models": 5, "versions": 5, "datasets": 3}
    # Every demo model version has exactly one finished job on its current test set (wine-forest a
    # new one, on the new dataset; diabetes-gbr, registered again, a new one for its new version).
    finished_jobs(app)
    from viewer.services import demo, submission
    from viewer.infra.records import Job

    with app.app_context():
        for item in demo.DEMO:
            dataset = registry.db.session.scalar(select(Dataset).where(Dataset.name == item.dataset_name))
            for spec in item.models:
                version = registry.resolve(spec.name)
                key = submission.fingerprint(version.sha256, dataset.id, item.target)
                states = registry.db.session.scalars(select(Job.state).where(
                    Job.fingerprint == key, Job.model_version_id == version.id)).all()
                assert states == ["done"], (spec.name, states)
        # A pair that was not trained afresh keeps its aliases as they were.
        assert [a.alias for a in registry.get_model("diabetes-ridge").aliases] == ridge_aliases
        assert registry.get_model("diabetes-gbr").aliases == []
    # another project gets a demo of its own (made on the way), the default project's is untouched
    other = runner.invoke(cli, ["demo", "--project", "team-b"])
    assert other.exit_code == 0, other.output
    assert "into project team-b" in other.output and "Registered breast-cancer-logreg/1," in other.output
    assert "(once their jobs ran): /p/team-b/jobs/compare?jobs=" in other.output
    from viewer.infra.records import Project, RegisteredModel

    with app.app_context():
        per_project = dict(registry.db.session.execute(
            select(Project.name, func.count(RegisteredModel.id)).join(RegisteredModel).group_by(Project.name)).all())
    assert per_project == {"default": 5, "team-b": 5}
    finished_jobs(app)


@pytest.mark.skipif(BACKEND != "embedded", reason="`make run` on a fresh clone uses the embedded default")
def test_make_run_loads_the_demo_on_a_fresh_install(tmp_path):
    """What `make run` does (`manage.py up --demo`), from an empty data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    env["VIEWER_DATA_DIR"] = str(tmp_path / "data")
    port = free_port()
    log = open(tmp_path / "up.log", "w+")
    proc = subprocess.Popen([sys.executable, "manage.py", "up", "--demo", f"--port={port}"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        password = None
        while time.monotonic() < deadline and password is None and proc.poll() is None:
            log.seek(0)
            found = re.search(r"Log in as 'admin' with password: (\S+)", log.read())
            password = found and found.group(1)
            time.sleep(0.3)
        output = (tmp_path / "up.log").read_text()
        assert password, output
        assert "Registered breast-cancer-logreg/1" in output and "Queued 5 scoring jobs" in output
        assert output.index("Queued 5 scoring jobs") < output.index("Log in as 'admin'")  # the password comes last
        assert "[queues]" not in output  # and Celery's banner does not push it out of sight

        token = subprocess.run([sys.executable, "manage.py", "create-token", "admin"], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < deadline:
            try:
                listed = requests.get(f"{base}/api/v1/models", headers=headers, timeout=5).json()["models"]
                jobs = requests.get(f"{base}/api/v1/jobs", headers=headers, timeout=5).json()["jobs"]
            except requests.ConnectionError:
                time.sleep(0.3)
                continue
            if len(jobs) == 5 and all(job["state"] in ("done", "error", "cancelled") for job in jobs):
                break
            time.sleep(0.3)
        assert sorted(m["name"] for m in listed) == DEMO_MODELS
        assert {job["state"] for job in jobs} == {"done"}, jobs
    finally:
        code = interrupt(proc, log)
    assert code == 0, (tmp_path / "up.log").read_text()

