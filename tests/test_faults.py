"""Jobs survive broken workers: SIGKILL mid-job, two workers sharing, a poison chunk, cancel.

Workers here use a 3 s lease and a 1 s reaper so recovery is quick; every run is bounded.
"""

from __future__ import annotations

import io
import os
import signal
import time

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import make_classification
from sklearn.neighbors import KNeighborsClassifier

from tests.support import WorkerProcess, poll, processes, upload_model

pytestmark = pytest.mark.chaos  # slow: `make chaos` runs these (and .ci/run calls it)
ROWS, CHUNK = 12_000, 1000
FAST_RECOVERY = {"VIEWER_LEASE_SECONDS": "3", "VIEWER_REAPER_SECONDS": "1", "VIEWER_TRUSTED_MODULES": "tests.poison"}


@pytest.fixture
def app_config():
    return {"ROW_GROUP_ROWS": CHUNK, "TRUSTED_MODULES": "tests.poison"}


@pytest.fixture
def workers(migrated, tmp_path):
    started: list[WorkerProcess] = []

    def start(name: str) -> WorkerProcess:
        proc = WorkerProcess({**migrated.env(), **FAST_RECOVERY}, tmp_path / f"{name}.log")
        proc.wait_ready()
        started.append(proc)
        return proc

    start.started = started  # type: ignore[attr-defined]
    yield start
    for proc in started:
        proc.stop()


@pytest.fixture(scope="module")
def slow_problem():
    """k-NN over 30k training rows: ~0.2 s per 1000-row chunk, so a job is reliably mid-flight."""
    X, y = make_classification(n_samples=30_000, n_features=8, random_state=0)
    model = KNeighborsClassifier(n_neighbors=15, algorithm="brute").fit(pd.DataFrame(X, columns=[f"f{i}" for i in range(8)]), y)
    frame = pd.DataFrame(X[:ROWS], columns=[f"f{i}" for i in range(8)])
    return frame, model


def start_job(client, headers, frame, model_name):
    response = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(frame.to_csv(index=False).encode()), "d.csv")})
    assert response.status_code == 201, response.get_json()
    job = client.post("/api/v1/jobs", headers=headers, json={"model": model_name, "dataset": response.get_json()["id"]})
    assert job.status_code == 202, job.get_json()
    return job.get_json()["id"]


def wait(client, headers, job_id, predicate, timeout=120):
    return poll(lambda: client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json(), predicate, timeout)


def knn_job(client, auth, workers, slow_problem, *worker_names: str, until=None):
    """Register the slow k-NN model, start the given workers, submit a job over the slow problem's
    rows, and wait until ``until(job)`` holds (by default: mid-flight, some rows done, not all).
    Returns (headers, workers started, job id)."""
    frame, model = slow_problem
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "knn")
    started = [workers(name) for name in worker_names]
    job_id = start_job(client, headers, frame, "knn")
    wait(client, headers, job_id, until or (lambda j: 0 < j["progress"]["done"] < ROWS))
    return headers, started, job_id


def chunks(app, job_id):
    from viewer.infra.extensions import db
    from viewer.infra.records import JobChunk

    with app.app_context():
        return db.session.query(JobChunk).filter_by(job_id=job_id).order_by(JobChunk.index).all()


def assert_every_row_once(client, headers, job_id, frame, model):
    response = client.get(f"/api/v1/jobs/{job_id}/results?format=parquet", headers=headers)
    out = pq.read_table(io.BytesIO(response.data)).to_pandas()
    assert out["row"].tolist() == list(range(len(frame)))
    np.testing.assert_allclose(out[["proba_0", "proba_1"]].to_numpy(), model.predict_proba(frame))


def test_sigkilled_worker_mid_job_another_finishes_every_row_once(app, client, auth, workers, slow_problem):
    frame, model = slow_problem
    headers, (first,), job_id = knn_job(client, auth, workers, slow_problem, "first")
    os.killpg(first.proc.pid, signal.SIGKILL)  # the worker and its pool child, mid-chunk
    first.proc.wait()
    stalled = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert stalled["state"] == "running" and stalled["progress"]["done"] < ROWS
    workers("second")
    done = wait(client, headers, job_id, lambda j: j["state"] in ("done", "error", "cancelled"))
    assert done["state"] == "done", done
    assert done["progress"]["done"] == ROWS
    assert_every_row_once(client, headers, job_id, frame, model)
    assert all(c.state == "done" for c in chunks(app, job_id))


def test_two_workers_share_one_job(app, client, auth, workers, slow_problem):
    frame, model = slow_problem
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "knn")
    workers("a")
    workers("b")
    job_id = start_job(client, headers, frame, "knn")
    done = wait(client, headers, job_id, lambda j: j["state"] in ("done", "error", "cancelled"))
    assert done["state"] == "done", done
    pids = {c.lease_owner.split(":")[1] for c in chunks(app, job_id)}
    assert len(pids) >= 2, f"one process did every chunk: {pids}"
    assert_every_row_once(client, headers, job_id, frame, model)


def test_poison_chunk_ends_the_job_in_error_after_n_tries(app, client, auth, workers):
    from tests.poison import PoisonModel

    frame = pd.DataFrame({"a": np.linspace(-3, 3, 3000), "b": 1.0})
    frame.loc[1500, "a"] = 999  # row group 1 of 3
    headers = auth.bearer("scientist")
    upload_model(client, headers, PoisonModel().fit(frame, [0, 1] * 1500), "poison")
    workers("w")
    job_id = start_job(client, headers, frame, "poison")
    done = wait(client, headers, job_id, lambda j: j["state"] in ("done", "error", "cancelled"), timeout=90)
    assert done["state"] == "error"
    assert done["error"].startswith("The model failed 3 times on the same rows, so the job stopped. Last error: "
                                    "Rows 1,000–1,999: "), done["error"]
    assert "poisoned row" in done["error"] and "Chunk" not in done["error"]
    poisoned = chunks(app, job_id)[1]
    assert poisoned.attempts == 3 and poisoned.state == "error"


def test_cancel_a_running_job_stops_it_and_removes_its_output(app, client, auth, workers, slow_problem):
    headers, _, job_id = knn_job(client, auth, workers, slow_problem, "w", until=lambda j: j["progress"]["done"] > 0)
    response = client.delete(f"/api/v1/jobs/{job_id}", headers=headers)
    assert response.get_json()["state"] == "cancelled"
    time.sleep(1.5)  # longer than one chunk
    settled = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    time.sleep(1.0)
    later = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert later["state"] == "cancelled" and later["progress"]["done"] == settled["progress"]["done"] < ROWS
    assert not (app.config["DATA_DIR"] and os.path.exists(os.path.join(app.config["DATA_DIR"], "jobs", job_id)))


def finished(job):
    return job["state"] in ("done", "error", "cancelled")


def test_sigterm_mid_job_finishes_the_chunk_and_another_worker_finishes_the_job(app, client, auth, workers,
                                                                                 slow_problem):
    frame, model = slow_problem
    headers, (first,), job_id = knn_job(client, auth, workers, slow_problem, "first")
    first.proc.send_signal(signal.SIGTERM)  # Celery's warm shutdown: finish the running task, take no more
    assert first.proc.wait(timeout=60) == 0, first.log()
    stopped = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert stopped["state"] == "running" and stopped["progress"]["done"] < ROWS
    assert all(c.state in ("done", "pending") for c in chunks(app, job_id)), "a chunk was left half-done"
    workers("second")
    done = wait(client, headers, job_id, finished)
    assert done["state"] == "done" and done["progress"]["done"] == ROWS, done
    assert_every_row_once(client, headers, job_id, frame, model)


def test_cancel_while_no_worker_runs_survives_a_worker_restart(app, client, auth, workers, slow_problem):
    headers, (first,), job_id = knn_job(client, auth, workers, slow_problem, "first")
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()
    assert client.delete(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["state"] == "cancelled"
    before = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()["progress"]["done"]
    workers("second")
    time.sleep(5)  # longer than the lease + reaper round: the reaper must not revive the job
    after = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert after["state"] == "cancelled" and after["progress"]["done"] == before
    assert all(c.state != "running" or c.lease_expires_at is not None for c in chunks(app, job_id))
    assert not os.path.exists(os.path.join(app.config["DATA_DIR"], "jobs", job_id))


def test_a_late_copy_never_overwrites_a_done_job(app, client, auth, workers, slow_problem):
    """A chunk message delivered again after the job is done (Redis redelivers an unacknowledged
    message after the visibility timeout, and a task can outlive it) changes nothing."""
    frame, model = slow_problem
    headers = auth.bearer("scientist")
    upload_model(client, headers, model, "knn")
    workers("w")
    job_id = start_job(client, headers, frame, "knn")
    done = wait(client, headers, job_id, finished)
    assert done["state"] == "done"
    from viewer.tasks import finalize_job, score_chunk

    worker = workers.started[-1]
    with app.app_context():
        # late duplicates through the real broker and worker
        sent = [score_chunk.delay(job_id, index).id for index in range(3)] + [finalize_job.delay(job_id).id]
    # proof that the worker ran every one of them (not only that time passed)
    poll(worker.log, lambda log: all(f"[{task_id}] succeeded" in log for task_id in sent), timeout=30)
    again = client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json()
    assert again["state"] == "done" and again["progress"] == done["progress"]
    assert again["finished_at"] == done["finished_at"]
    assert_every_row_once(client, headers, job_id, frame, model)


@pytest.fixture
def services_only(migrated):
    if migrated.name != "services":
        pytest.skip("restarts a server: the embedded default has none")


REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(socket_connect_timeout=1).ping())
    except Exception:  # noqa: BLE001
        return False


def test_redis_restart_mid_job_loses_no_row(app, client, auth, workers, slow_problem, services_only):
    """Redis on this machine keeps nothing on disk: a restart drops every queued message. The
    database's chunk records bring the work back (the reaper re-enqueues what was lost)."""
    import subprocess

    frame, model = slow_problem
    headers, _, job_id = knn_job(client, auth, workers, slow_problem, "w")
    subprocess.run(["redis-cli", "shutdown", "nosave"], capture_output=True, timeout=20)
    deadline = time.monotonic() + 20
    while _redis_up() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1)
    subprocess.run(REDIS_START, check=True, timeout=30)
    while not _redis_up():
        time.sleep(0.1)
    done = wait(client, headers, job_id, finished, timeout=180)
    assert done["state"] == "done" and done["progress"]["done"] == ROWS, done
    assert_every_row_once(client, headers, job_id, frame, model)


def _pg(action: str) -> None:
    import subprocess

    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action]
                   + (["-m", "fast"] if action == "stop" else []), check=True, timeout=60)


def test_database_down_mid_job_requests_fail_cleanly_and_the_job_resumes(app, client, auth, workers, slow_problem,
                                                                          services_only):
    frame, model = slow_problem
    headers, _, job_id = knn_job(client, auth, workers, slow_problem, "w")
    _pg("stop")
    try:
        started = time.monotonic()
        response = client.get(f"/api/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 503 and response.get_json()["error_code"] == "service_unavailable"
        assert time.monotonic() - started < 10, "a request hung on the dead database"
        time.sleep(3)
    finally:
        _pg("start")
    done = wait(client, headers, job_id, finished, timeout=180)
    assert done["state"] == "done" and done["progress"]["done"] == ROWS, done
    assert_every_row_once(client, headers, job_id, frame, model)


def _raw_upload(port: int, path: str, token: str, field: str, filename: str, payload_size: int, send: int,
                extra_fields: dict[str, str] | None = None):
    """Start a multipart upload of ``payload_size`` bytes and send only ``send`` of them; return the
    open socket (the caller kills the server while the request is in flight)."""
    import socket as _socket

    boundary = "xxBOUNDARYxx"
    head = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
                   for k, v in (extra_fields or {}).items())
    head += (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
             f"Content-Type: application/octet-stream\r\n\r\n")
    tail = f"\r\n--{boundary}--\r\n"
    length = len(head) + payload_size + len(tail)
    sock = _socket.create_connection(("127.0.0.1", port))
    sock.sendall((f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                  f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {length}\r\n\r\n"
                  + head).encode())
    line = b"a,b,c\n" + b"1.5,2.5,x\n" * ((send - 6) // 10)
    sock.sendall(line[:send])
    return sock


def _stored_files(data_dir: str) -> set[str]:
    """Files where stored datasets and model objects live (not scratch folders)."""
    return {os.path.join(r, f) for r, _d, files in os.walk(data_dir) for f in files
            if any(f"{os.sep}{part}{os.sep}" in os.path.join(r, f) for part in ("datasets", "models"))}


@pytest.mark.parametrize("what", ["dataset", "model"])
def test_web_process_killed_mid_upload_leaves_nothing_visible(app, client, auth, gunicorn, what):
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset, ModelVersion

    proc, port = gunicorn
    before = _stored_files(app.config["DATA_DIR"])
    token = auth.token("scientist")
    path, field, extra = (("/api/v1/datasets", "file", None) if what == "dataset"
                          else ("/api/v1/models", "file", {"name": "half"}))
    sock = _raw_upload(port, path, token, field, f"big.{'csv' if what == 'dataset' else 'joblib'}",
                       payload_size=200 * 2**20, send=20 * 2**20, extra_fields=extra)
    time.sleep(1.0)  # the worker is inside the request, copying the body
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    sock.close()
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/datasets", headers=headers).get_json()["datasets"] == []
    assert client.get("/api/v1/models", headers=headers).get_json()["models"] == []
    with app.app_context():
        assert db.session.query(Dataset).count() == 0 and db.session.query(ModelVersion).count() == 0
    new = _stored_files(app.config["DATA_DIR"]) - before
    assert not new, new  # only scratch files under scratch/ may remain


def test_web_process_killed_during_inline_ingest_leaves_no_row(app, client, auth, gunicorn):
    """The whole body arrived and the (inline) ingest is running when the process dies."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset

    proc, port = gunicorn
    token = auth.token("scientist")
    size = 24 * 2**20  # under INLINE_INGEST_MB: ingested inside the request
    sock = _raw_upload(port, "/api/v1/datasets", token, "file", "big.csv", payload_size=size, send=size)
    sock.sendall(b"\r\n--xxBOUNDARYxx--\r\n")
    time.sleep(1.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    sock.close()
    with app.app_context():
        rows = db.session.query(Dataset).all()
        assert all(d.state == "ready" for d in rows), [(d.state, d.error) for d in rows]  # done, or never there


def test_single_task_jobs_survive_a_dead_worker_and_a_lost_message(app, client, auth, workers, migrated):
    """An ingest job claimed by a worker that then died (its lease expires) and an ingest job whose
    message was lost (the broker restarted) both end done, through the reaper and a live worker."""
    from viewer.services import jobs
    from viewer.infra.extensions import db
    from viewer.infra.records import Job

    headers = auth.bearer("scientist")
    csv = pd.DataFrame({"a": np.arange(5000), "b": np.arange(5000) * 0.5}).to_csv(index=False).encode()
    app.config["INLINE_INGEST_MB"] = 0  # every upload becomes an ingest job
    ids = []
    for name in ("claimed.csv", "lost.csv"):
        answer = client.post("/api/v1/datasets", headers=headers, content_type="multipart/form-data",
                             data={"file": (io.BytesIO(csv), name), "allow_duplicate": "true"})
        assert answer.status_code == 202, answer.get_json()
        ids.append(answer.get_json()["job"]["id"])
    # no worker runs yet: drop every queued message (what a Redis restart does) ...
    if migrated.name == "services":
        import redis

        redis.Redis.from_url(migrated.broker_url).flushdb()
    else:
        queue = os.path.join(app.config["DATA_DIR"], "broker", "queue")
        for name in os.listdir(queue):
            os.unlink(os.path.join(queue, name))
    # ... and let a "worker" claim the first job and die at once (the state SIGKILL leaves)
    with app.app_context():
        app.config["LEASE_SECONDS"] = 3
        assert jobs.claim(ids[0], "dead-worker:1")
        for job in db.session.query(Job).filter(Job.id.in_(ids)):  # old enough for the reaper
            job.updated_at = job.created_at = job.created_at.replace(year=job.created_at.year - 1)
        db.session.commit()
    workers("w")
    for job_id in ids:
        done = wait(client, headers, job_id, finished, timeout=90)
        assert done["state"] == "done", done
    with app.app_context():
        assert db.session.get(Job, ids[0]).attempts == 2  # the dead claim, then the real run


def compilers_running() -> list[int]:
    return processes("viewer.infra.host.compiler")


def test_a_compile_worker_killed_mid_compile_leaves_no_compiler_and_another_worker_compiles(
        app, client, auth, migrated, tmp_path):
    """SIGKILL the worker that compiles a forest (gcc running in the compile sandbox): the
    sandbox dies with it, the job's lease expires, and a second compile worker compiles the model,
    which then passes its parity check and answers (services.runtimes)."""
    from sklearn.ensemble import RandomForestClassifier

    app.config["COMPILE_MODELS"] = True
    env = {**migrated.env(), **FAST_RECOVERY, "VIEWER_COMPILE_MODELS": "true"}
    first = WorkerProcess(env, tmp_path / "compiler-1.log", queues="viewer-compile")
    second = None
    try:
        first.wait_ready()
        X, y = make_classification(n_samples=3000, n_features=10, random_state=0)
        forest = RandomForestClassifier(n_estimators=60, random_state=0).fit(X, y)
        headers = auth.bearer("scientist")
        upload_model(client, headers, forest, "forest")
        job = poll(lambda: client.get("/api/v1/jobs?kind=compile", headers=headers).get_json()["jobs"],
                   lambda found: found and found[0]["state"] == "running", timeout=60)[0]
        poll(compilers_running, bool, timeout=30)
        time.sleep(2)  # gcc is at work
        os.killpg(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=10)
        poll(compilers_running, lambda found: not found, timeout=10)  # the sandbox died with its worker

        second = WorkerProcess(env, tmp_path / "compiler-2.log", queues="viewer-compile")
        second.wait_ready()
        done = poll(lambda: client.get(f"/api/v1/jobs/{job['id']}", headers=headers).get_json(),
                    lambda body: body["state"] in ("done", "error", "cancelled"), timeout=240, interval=0.5)
        assert done["state"] == "done", done
        runtime = client.get("/api/v1/models/forest", headers=headers).get_json()["versions"][0]["runtime"]
        assert runtime["state"] == "ready" and runtime["used"], runtime
        rows = X[:50]
        body = client.post("/api/v1/models/forest/predict?output=proba", headers=headers,
                           json={"inputs": rows.tolist()}).get_json()
        assert np.abs(np.array(body["probabilities"]) - forest.predict_proba(rows)).max() <= 1e-9
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.stop()
