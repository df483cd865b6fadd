"""A real worker process runs a job end to end on each broker."""

import pytest

from tests.support import AMQP_URL, REDIS_URL, WorkerProcess, require_amqp, require_redis, wait_for_job


def test_ping_job_runs_on_the_sessions_worker(client, auth, worker):
    headers = auth.bearer("scientist")
    response = client.post("/api/v1/system/ping-worker", headers=headers)
    assert response.status_code == 202
    job = response.get_json()
    assert job["state"] == "pending"
    done = wait_for_job(client, headers, job["id"])
    assert done["state"] == "done", done
    assert done["result"]["pong"] is True
    assert done["created_by"] == "scientist"


@pytest.mark.services
@pytest.mark.parametrize("broker", ["redis", "amqp"])
def test_ping_job_runs_through_each_server_broker(migrated, make_app, tmp_path, broker):
    from viewer.infra.extensions import db
    from viewer.infra.records import ApiToken, User

    if broker == "redis":
        require_redis()
        url = REDIS_URL.rsplit("/", 1)[0] + "/14"
    else:
        require_amqp()
        url = AMQP_URL
    app = make_app(BROKER_URL=url)
    with app.app_context():
        user = User.by_name("broker-test") or User(username="broker-test", role="scientist")
        db.session.add(user)
        _t, raw = ApiToken.issue(user)
        db.session.commit()
    env = {**migrated.env(), "VIEWER_BROKER_URL": url}
    proc = WorkerProcess(env, tmp_path / "worker.log")
    try:
        proc.wait_ready()
        client = app.test_client()
        headers = {"Authorization": f"Bearer {raw}"}
        job = client.post("/api/v1/system/ping-worker", headers=headers).get_json()
        done = wait_for_job(client, headers, job["id"])
        assert done["state"] == "done", proc.log()
    finally:
        proc.stop()
        with app.app_context():
            db.session.delete(User.by_name("broker-test"))
            db.session.commit()


def test_submitting_while_the_broker_is_down_is_503_and_leaves_no_row(make_app, users):
    from viewer.infra.extensions import db
    from viewer.infra.records import ApiToken, Job, User

    app = make_app(BROKER_URL="redis://127.0.0.1:1/0")  # nothing listens on port 1
    with app.app_context():
        _t, raw = ApiToken.issue(User.by_name("scientist"))
        db.session.commit()
    response = app.test_client().post("/api/v1/system/ping-worker", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 503
    assert "queue" in response.get_json()["message"]
    with app.app_context():
        assert db.session.query(Job).count() == 0


def test_cancel_a_pending_job(client, auth):
    from viewer import tasks
    from viewer.services import jobs
    from viewer.infra.records import User

    headers = auth.bearer("scientist")
    with client.application.app_context():
        # Recorded but not enqueued: exactly the state of a job waiting behind others.
        from viewer.infra.extensions import db
        from viewer.infra.records import Job

        job = Job(kind="ping", params={}, created_by=User.by_name("scientist"))
        db.session.add(job)
        db.session.commit()
        job_id = job.id
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=auth.bearer("viewer")).status_code == 403
    response = client.delete(f"/api/v1/jobs/{job_id}", headers=headers)
    assert response.status_code == 202
    assert response.get_json()["state"] == "cancelled"
    # A late message for it does nothing.
    with client.application.app_context():
        tasks.ping.run(job_id)
        assert jobs.serialize_job(db.session.get(Job, job_id))["state"] == "cancelled"
