"""Memory and cold starts of model hosts, with the five demo models served.

    .venv/bin/python bench/hosts.py            # ~1 minute
    .venv/bin/python bench/hosts.py --cold 60  # more cold-start samples

A fresh data dir gets the demo (``manage.py demo``: five models) and one gunicorn worker serves
it (``-w 1``, hosts on, the defaults). After one prediction per model it prints the PSS (from
``/proc/<pid>/smaps_rollup``: shared pages divided among the processes that share them) of the
web worker, the fork server and each host, and the same figure with hosts off (models in the web
worker) for comparison. Then the server restarts with ``VIEWER_HOSTS=2`` and requests cycle
through three models, so every request finds its model's host stopped (least recently used) and
starts one: the cold start's p50/p99 against warm requests (the same server, one model).

No goal is judged here: these are figures for the issue's note (bench/predict.py judges speed).
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from predict import GUNICORN, ROOT, base_env, free_port, manage, spawn, stop_all, wait_ready  # noqa: E402

DEMO_MODELS = ["breast-cancer-logreg", "breast-cancer-hgb", "wine-forest", "diabetes-ridge", "diabetes-gbr"]


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    text = stat.read()
            except OSError:
                continue
            if int(text[text.rindex(")") + 2:].split()[1]) == pid:
                found.append(int(entry))
    return found


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as raw:
        return raw.read().replace(b"\0", b" ").decode(errors="replace")


class Server:
    def __init__(self, tmp: Path, env: dict[str, str], name: str, **settings: str):
        self.env = {**env, **{f"VIEWER_{k}": v for k, v in settings.items()}}
        self.port = free_port()
        log_path = tmp / f"{name}.log"
        self.proc = spawn([str(GUNICORN), "-w", "1", "-b", f"127.0.0.1:{self.port}", "viewer:create_app()"],
                          env=self.env, cwd=ROOT, log_path=log_path)
        wait_ready(self.proc, self.port, "/ping", log_path)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def predict(self, token: str, model: str, row: dict) -> float:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        body = json.dumps({"dataframe_records": [row]})
        started = time.perf_counter()
        conn.request("POST", f"/api/v1/models/{model}/predict", body=body,
                     headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        elapsed = time.perf_counter() - started
        conn.close()
        if response.status != 200:
            raise RuntimeError(f"{model}: {response.status} {payload[:300]!r}")
        return elapsed * 1e3

    def row_of(self, token: str, model: str) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", f"/api/v1/models/{model}", headers={"Authorization": f"Bearer {token}"})
        info = json.loads(conn.getresponse().read())
        conn.close()
        names = info["latest"]["feature_names"] if "latest" in info else info["versions"][-1]["feature_names"]
        return {name: 0.5 for name in names}

    def memory(self) -> list[tuple[str, int]]:
        """(role, PSS KiB) of the web worker and the processes under it."""
        rows = []
        for worker in children(self.proc.pid):
            rows.append(("web worker", pss_kib(worker)))
            for child in children(worker):
                if "viewer.infra.host.server" in cmdline(child):
                    rows.append(("fork server", pss_kib(child)))
                    rows += [("host", pss_kib(host)) for host in children(child)]
        return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", type=int, default=30, help="cold-start samples (default 30)")
    args = parser.parse_args()
    atexit.register(stop_all)
    tmp = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
    try:
        data = tmp / "data"
        data.mkdir()
        env = base_env()
        env.update(VIEWER_DATA_DIR=str(data), VIEWER_DATABASE_URL=f"sqlite:///{data / 'viewer.sqlite3'}",
                   VIEWER_BROKER_URL="filesystem://")
        manage(env, "init-db")
        manage(env, "demo")
        manage(env, "create-user", "bench", "--role", "scientist")
        token = manage(env, "create-token", "bench", "--label", "bench").strip().splitlines()[-1].strip()

        print("PSS with the five demo models served (one prediction each), MiB:")
        for hosts in ("true", "false"):
            server = Server(tmp, env, f"memory-{hosts}", MODEL_HOSTS=hosts)
            rows = {m: server.row_of(token, m) for m in DEMO_MODELS}
            for model in DEMO_MODELS:
                server.predict(token, model, rows[model])
            time.sleep(0.5)
            memory = server.memory()
            total = sum(kib for _role, kib in memory)
            label = "hosts on " if hosts == "true" else "hosts off"
            parts = ", ".join(f"{role} {kib / 1024:.0f}" for role, kib in memory)
            print(f"  {label}: total {total / 1024:.0f} ({parts})")
            server.stop()

        server = Server(tmp, env, "cold", HOSTS="2")
        rows = {m: server.row_of(token, m) for m in DEMO_MODELS}
        cycle = DEMO_MODELS[:3]
        for model in cycle:
            server.predict(token, model, rows[model])
        cold = [server.predict(token, cycle[i % 3], rows[cycle[i % 3]]) for i in range(args.cold)]
        server.predict(token, cycle[0], rows[cycle[0]])  # its host was stopped by the cycle: start it
        warm = [server.predict(token, cycle[0], rows[cycle[0]]) for _ in range(args.cold)]
        server.stop()

        def q(values: list[float], p: float) -> float:
            return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]

        print(f"Cold start after eviction (VIEWER_HOSTS=2, 3 models in turn, {args.cold} requests), ms: "
              f"p50 {statistics.median(cold):.1f}, p99 {q(cold, 99):.1f}; warm (same server, one model): "
              f"p50 {statistics.median(warm):.2f}, p99 {q(warm, 99):.2f}")
        return 0
    finally:
        stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
