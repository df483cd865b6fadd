"""The embedded broker delivers every message exactly once with a sender and two competing
receivers in separate processes (kombu's own filesystem transport lost ~5 % of them here)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.support import ROOT

N = 1500

SCRIPT = """
import json, sys, time
from kombu import Connection
from viewer.infra.broker import TRANSPORT
role, folder, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
opts = {"data_folder_in": folder + "/q", "data_folder_out": folder + "/q", "control_folder": folder + "/c",
        "store_processed": False, "polling_interval": 0.001}
with Connection("filesystem://", transport=TRANSPORT, transport_options=opts) as conn:
    queue = conn.SimpleQueue("t")
    if role == "put":
        for i in range(n):
            queue.put({"i": i})
        print(json.dumps([]))
    else:
        got, idle = [], 0
        while idle < 30:
            try:
                message = queue.get(timeout=0.1)
            except queue.Empty:
                idle += 1
                continue
            idle = 0
            got.append(message.payload["i"])
            message.ack()
        print(json.dumps(got))
"""


def test_every_message_exactly_once_across_processes(tmp_path):
    for sub in ("q", "c"):
        (tmp_path / sub).mkdir()
    argv = [sys.executable, "-c", SCRIPT]
    receivers = [subprocess.Popen(argv + ["get", str(tmp_path), str(N)], cwd=ROOT, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
    sender = subprocess.run(argv + ["put", str(tmp_path), str(N)], cwd=ROOT, capture_output=True, text=True,
                            timeout=120)
    assert sender.returncode == 0, sender.stderr[-2000:]
    received: list[int] = []
    for proc in receivers:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err[-2000:]
        assert "Error" not in err, err[-2000:]
        received += json.loads(out)
    assert sorted(received) == list(range(N)), (f"{N - len(set(received))} lost, "
                                                f"{len(received) - len(set(received))} duplicated")


def test_remote_control_is_off_on_the_embedded_broker_only(tmp_path):
    """The filesystem transport polls every queue a worker consumes, its remote-control queue too,
    even while the worker is busy (~5 % of a core per worker); nothing uses remote control (jobs
    are cancelled through the database), so the embedded broker's workers do without it."""
    from viewer.infra.config import celery_config

    embedded = celery_config({"BROKER_URL": "filesystem://", "DATA_DIR": str(tmp_path), "VISIBILITY_TIMEOUT": 60})
    redis = celery_config({"BROKER_URL": "redis://127.0.0.1:6379/0", "DATA_DIR": str(tmp_path),
                           "VISIBILITY_TIMEOUT": 60})
    assert embedded["worker_enable_remote_control"] is False and redis["worker_enable_remote_control"] is True
