"""`manage.py up` (what `make run` calls): starts web + a worker + a compile worker, prints a
working login, and stops them on Ctrl-C or SIGTERM."""

import os
import re
import signal
import socket
import subprocess
import sys
import time

import requests

from tests.support import ROOT, interrupt, ping_through, processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_up_serves_prints_the_password_and_stops_on_ctrl_c(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    env["VIEWER_DATA_DIR"] = str(tmp_path / "data")  # a fresh embedded install
    log = open(tmp_path / "up.log", "w+")
    proc = subprocess.Popen([sys.executable, "manage.py", "up", f"--port={port}"], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        password = None
        while time.monotonic() < deadline and password is None:
            log.seek(0)
            found = re.search(r"Log in as 'admin' with password: (\S+)", log.read())
            password = found and found.group(1)
            time.sleep(0.2)
        assert password, (tmp_path / "up.log").read_text()
        base = f"http://127.0.0.1:{port}"
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/ping", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                time.sleep(0.2)
        log.seek(0)
        assert f"is at {base}" in log.read()

        session = requests.Session()
        page = session.get(f"{base}/login", timeout=5).text
        csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        home = session.post(f"{base}/login", data={"username": "admin", "password": password, "csrf_token": csrf},
                            timeout=5)
        assert home.status_code == 200 and "Welcome, admin" in home.text

        # The worker is up too: a ping job goes through the embedded broker.
        token = subprocess.run([sys.executable, "manage.py", "create-token", "admin"], cwd=ROOT, env=env,
                               capture_output=True, text=True, check=True).stdout.strip()
        headers = {"Authorization": f"Bearer {token}"}
        assert ping_through(base, headers)["state"] == "done"
        # ... and a second worker takes only the compile queue (services.runtimes).
        assert processes("--queues=viewer-compile", proc.pid)
    finally:
        code = interrupt(proc, log)
    assert code == 0, (tmp_path / "up.log").read_text()
    leftover = subprocess.run(["pgrep", "-f", f"--port={port}"], capture_output=True, text=True).stdout
    assert not leftover.strip(), "web process left running"


def test_up_stops_its_web_app_and_workers_on_sigterm(tmp_path):
    """A service manager (or `kill`) sends SIGTERM to `up` alone: it stops its three children."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIEWER_")}
    env["VIEWER_DATA_DIR"] = str(tmp_path / "data")
    with open(tmp_path / "up.log", "w+") as log:
        proc = subprocess.Popen([sys.executable, "manage.py", "up", f"--port={port}"], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(processes("viewer", proc.pid)) < 3:
                time.sleep(0.2)
            children = processes("viewer", proc.pid)
            assert len(children) == 3, (tmp_path / "up.log").read_text()
            while time.monotonic() < deadline and "is at http" not in (tmp_path / "up.log").read_text():
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)  # to `up` only, not its group
            assert proc.wait(timeout=30) == 0, (tmp_path / "up.log").read_text()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(os.path.exists(f"/proc/{c}") for c in children):
                time.sleep(0.2)
            assert not [c for c in children if os.path.exists(f"/proc/{c}")], "children left running"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
