"""Helpers for the fixtures in the shape of Flask's tutorial (app, client, runner, auth), plus real backends.

The suite runs on one of two backends, chosen by ``VIEWER_TEST_BACKEND``:
- ``embedded`` (default): SQLite + kombu's filesystem broker, what ``make run`` uses;
- ``services``: PostgreSQL at 127.0.0.1:5432 and Redis at 127.0.0.1:6379.
A test that needs a service this machine should run fails under CI=true and skips elsewhere.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BACKEND = os.environ.get("VIEWER_TEST_BACKEND", "embedded")
IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get("VIEWER_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("VIEWER_TEST_REDIS", "redis://127.0.0.1:6379/15")
AMQP_URL = os.environ.get("VIEWER_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672//")
PASSWORD = "correct horse battery staple"


def service_missing(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({exc.__class__.__name__}: {exc})"
    if IN_CI:
        pytest.fail(f"{message}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(message)


def require_redis(url: str = REDIS_URL) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        service_missing(f"Redis at {url}", exc)


def require_amqp(url: str = AMQP_URL) -> None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001
        service_missing(f"RabbitMQ at {url}", exc)


@dataclass
class Backend:
    name: str
    data_dir: Path
    database_url: str
    broker_url: str

    def env(self) -> dict[str, str]:
        """The environment a subprocess (worker, server) needs to share this backend."""
        return {
            **os.environ,
            "VIEWER_DATA_DIR": str(self.data_dir),
            "VIEWER_DATABASE_URL": self.database_url,
            "VIEWER_BROKER_URL": self.broker_url,
            "VIEWER_SECRET_KEY": TEST_SECRET,
            "OMP_NUM_THREADS": "1",
            # Compiling every model the suite registers would cost minutes of gcc: the tests of
            # compiled runtimes turn it on (tests/test_runtimes.py).
            "VIEWER_COMPILE_MODELS": "false",
            # Every process of the session (its worker summarises any test's log) cuts monitoring
            # windows alike, short enough for a test to see several.
            "VIEWER_MONITOR_WINDOW_SECONDS": str(MONITOR_WINDOW_SECONDS),
        }

    def config(self, **extra) -> dict:
        return {
            "TESTING": True,
            "DATA_DIR": str(self.data_dir),
            "DATABASE_URL": self.database_url,
            "BROKER_URL": self.broker_url,
            "SECRET_KEY": TEST_SECRET,
            "COMPILE_MODELS": False,
            "MONITOR_WINDOW_SECONDS": MONITOR_WINDOW_SECONDS,
            **extra,
        }


TEST_SECRET = secrets.token_urlsafe(32)
MONITOR_WINDOW_SECONDS = 2


class WorkerProcess:
    """A real ``celery -A viewer.worker worker`` subprocess."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 1, queues: str = "viewer"):
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "viewer.worker", "worker", f"--concurrency={concurrency}",
             "--loglevel=INFO", f"--queues={queues}", "--without-gossip", "--without-mingle", f"--hostname=test-{uuid.uuid4().hex[:6]}@%h"],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log()}")
            if b" ready." in self.log_path.read_bytes():
                return
            time.sleep(0.2)
        raise TimeoutError(f"worker not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()
        self._log.close()



def upload_model(client, headers, model, name: str) -> dict:
    """Save ``model`` with joblib and register it as ``name`` through the API (201, or the test fails)."""
    import io

    import joblib

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    response = client.post("/api/v1/models", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(buffer.getvalue()), f"{name}.joblib"), "name": name})
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def poll(fetch, done, timeout: float = 60, interval: float = 0.1):
    """Call ``fetch()`` until ``done(value)`` holds; return that value, or raise TimeoutError with
    the last one."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not there after {timeout}s: {str(value)[:2000]}")
        time.sleep(interval)


FINAL_STATES = ("done", "error", "cancelled")


def post_form(client, auth, page: str, action: str, **fields):
    """A browser's form post: the fields with the CSRF token of the page that shows the form."""
    return client.post(action, data={"csrf_token": auth.csrf_token(page), **fields})


def wait_for_job(client, headers, job_id: str, timeout: float = 60) -> dict:
    """Poll the API until the job reaches a final state."""
    return poll(lambda: client.get(f"/api/v1/jobs/{job_id}", headers=headers).get_json(),
                lambda body: body["state"] in FINAL_STATES, timeout)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def alive(pid: int) -> bool:
    """The process runs (a zombie, killed and not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return "State:\tZ" not in status.read()
    except FileNotFoundError:
        return False


def wait_gone(pid: int, seconds: float = 5.0) -> bool:
    """Whether the process is gone within ``seconds`` (a killed one takes a moment)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(p) for p in out.stdout.split()]


def queued_ingest(app, content: bytes, name: str = "big.csv") -> tuple[str, str]:
    """An upload waiting for a worker, as ``datasets.upload`` leaves a large one: the scratch file,
    the "ingesting" dataset and its pending ingest job, with no message sent (the suite's worker
    must not take it)."""
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset, Job, User, new_id
    from viewer.services.artifacts import scratch_dir

    with app.app_context():
        upload = scratch_dir() / f"upload-{new_id()}"
        upload.write_bytes(content)
        user = User.by_name("scientist")
        dataset = Dataset(id=new_id(), name=name, uploaded_by=user, state="ingesting")
        job = Job(kind="ingest", params={"upload": upload.name, "filename": name}, created_by=user,
                  dataset_id=dataset.id)
        db.session.add_all([dataset, job])
        db.session.commit()
        return dataset.id, job.id


def ping_through(base: str, headers: dict[str, str]) -> dict:
    """POST a ping job to a server over HTTP and wait until it ends (the worker took it)."""
    import requests

    job = requests.post(f"{base}/api/v1/system/ping-worker", headers=headers, timeout=5).json()

    class Client:  # wait_for_job speaks the Flask test client's dialect
        def get(self, path, headers):
            response = requests.get(base + path, headers=headers, timeout=5)
            response.get_json = response.json
            return response

    return wait_for_job(Client(), headers, job["id"])


def interrupt(proc: subprocess.Popen, log, timeout: float = 30) -> int:
    """Ctrl-C for a process group (what `up` gets in a terminal); its exit code. SIGKILL and a
    failure when it does not stop within ``timeout``."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    finally:
        log.close()


def processes(marker: str, parent: int | None = None) -> list[int]:
    """Pids of the live processes whose command line holds ``marker`` (children of ``parent``
    only, when given), read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if marker.encode() not in cmdline.read():
                    continue
            if parent is not None:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) != parent:
                        continue
        except (OSError, ValueError, IndexError):
            continue
        found.append(int(entry))
    return found
