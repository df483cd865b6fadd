"""Benchmark our prediction API against MLflow's scoring server, a bare Flask app and the model itself.

    .venv/bin/python bench/predict.py                  # ~3-4 minutes (first run: + ~1 min to build the MLflow venv)
    .venv/bin/python bench/predict.py --rounds 1 --duration 3   # quicker, noisier
    .venv/bin/python bench/predict.py --client python           # without wrk

    .venv/bin/python bench/predict.py --model hgb      # compiled HistGradientBoosting against scikit-learn
    .venv/bin/python bench/predict.py --model zoo      # four models behind ours and MLflow (~12 minutes)

One trained model (LogisticRegression, 20 features, make_classification, fitted on a DataFrame
with named columns; ``--model hgb``: HistGradientBoostingClassifier) behind five targets (six
with ``--model hgb``; ``--model zoo`` is described at ``run_zoo``: LogisticRegression,
HistGradientBoosting, RandomForest and a loan-style pipeline, each behind ours and MLflow):

  ours      gunicorn -w 2, OMP_NUM_THREADS=1, Bearer token, POST /api/v1/models/<name>/predict
            (after the warm-up requests the token and model are cached; every request goes
            through Flask's own machinery); the model runs in a sandboxed model host
  hosts-off the same with VIEWER_MODEL_HOSTS=false: the model runs in the web process (the
            same-run switch that prices the hosts)
  log-off   the same as ours with VIEWER_PREDICTION_LOG=false: nothing is logged (the same-run switch
            that prices the prediction log; ours logs every row with its inputs, the default)
  ours-sklearn  (--model hgb) ours with compiling off: scikit-learn answers in the host, where
            ours answers with the model's compiled runtime (``manage.py compile``, issue 17)
  mlflow    mlflow models serve -m <dir> --env-manager local, POST /invocations
            (mlflow lives only in bench/.mlflow-venv, created on the first run and reused)
  bare      bench/bare_app.py: json.loads + numpy row + predict_proba, gunicorn -w 2, no auth
  in-proc   model.predict_proba on a 1-row numpy array in this process: the latency floor

Every HTTP target gets the same body, {"dataframe_split": {...}, "params": {"predict_method":
"predict_proba"}}, and answers with predict_proba of the same model (checked against the model
before measuring). Measurements, interleaved over the targets in rounds so machine noise hits
all of them alike, medians over rounds reported:

  throughput  requests/s with 8 concurrent connections, 1-row requests
  latency     p50/p90/p99 with 1 connection, 1-row requests
  10k rows    seconds for one 10,000-row request (median of --big-reps per round)
  CPU/req     user+system CPU of the server's processes per request (from /proc), a figure that
              other load on the machine disturbs much less than requests/s

The client keeps connections alive; gunicorn's sync workers answer "Connection: close", so
against ours and bare each request opens a new loopback connection (uvicorn, under MLflow,
keeps them). The goals of the issue are printed with PASS/FAIL, each judged on the median over
rounds of the per-round figure (the targets of one round ran back to back).

The load client is wrk (Debian package ``wrk``) when it is on PATH, else a Python client
(http.client, one thread per connection). Every loop is bounded by --duration and a request
count; every server started here is stopped on exit, Ctrl-C or error.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
VENV_PY = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
MLFLOW_VENV = BENCH / ".mlflow-venv"
# The newest mlflow whose dependencies the package index serves in full (3.18.0 is listed, but
# its mlflow-skinny==3.18.0 is not there yet). scikit-learn is pinned to ours so the model file
# loads there exactly as here.
MLFLOW_VERSION = "3.17.2"
MODEL_NAME = "bench"
N_FEATURES = 20
BIG_ROWS = 10_000
MAX_REQUESTS = 500_000  # per measurement, on top of the time bound

GOALS = {  # the targets every issue keeps (issue 12 set them; earlier ones kept)
    "throughput ours/mlflow": 8.0,
    "server CPU/request ours/bare": 1.1,
    "p50 ours - in-process (ms)": 1.0,
    "10k rows mlflow/ours": 2.0,
    # issue 15: model hosts on (ours) against the same server with VIEWER_MODEL_HOSTS=false
    "p50 ours - hosts off (ms)": 0.15,
    "server CPU/request ours - hosts off (ms)": 0.1,
    # issue 17 (--model hgb): the compiled runtime against scikit-learn in the same host
    "server CPU/request ours/ours-sklearn": 0.75,
    "p50 ours - ours-sklearn (ms)": -0.3,
    # issue 17 (--model zoo): four models side by side, trees compiled
    "throughput ours/mlflow per model": 10.0,
    "p50 tree model - logistic (ms)": 0.3,
    "p50 pipeline - logistic (ms)": 1.0,
    # issue 18: the prediction log on (ours) against the same server with VIEWER_PREDICTION_LOG=false
    "server CPU/request ours/log-off": 1.05,
    "p50 ours - log-off (ms)": 0.1,
}
ZOO = ("logistic", "hgb", "forest", "pipeline")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- processes: started in their own session, always stopped ----------------------------------

_children: list[subprocess.Popen] = []


def spawn(argv: list[str], *, env: dict[str, str], cwd: Path, log_path: Path) -> subprocess.Popen:
    out = open(log_path, "wb")
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    out.close()
    _children.append(proc)
    return proc


def stop_all() -> None:
    for proc in _children:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for proc in _children:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # the group may hold workers that outlived the master
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    _children.clear()


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def session_cpu_seconds(sid: int) -> float:
    """user+system CPU of every live process in session ``sid`` (a server and its workers)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid:  # field 6 of stat (session), counted after "pid (comm)"
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def wait_ready(proc: subprocess.Popen, port: int, path: str, log_path: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log:\n{log_path.read_text()[-3000:]}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            status = conn.getresponse().status
            conn.close()
            if status == 200:
                return
        time.sleep(0.25)
    raise RuntimeError(f"server on port {port} not ready after {timeout}s; log:\n{log_path.read_text()[-3000:]}")


# --- setup -------------------------------------------------------------------------------------

def train(tmp: Path, kind: str = "logistic"):
    """(fitted model, its training frame, its joblib file). ``pipeline``: a loan-style table (17
    numbers with 2% missing, 3 text columns with missing values) through a ColumnTransformer
    (imputer + scaler, imputer + one-hot) into HistGradientBoosting."""
    X, y = make_classification(n_samples=5000, n_features=N_FEATURES, n_informative=10, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(N_FEATURES)])
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        model = HistGradientBoostingClassifier(random_state=0).fit(frame, y)
    elif kind == "forest":
        from sklearn.ensemble import RandomForestClassifier

        model = RandomForestClassifier(n_estimators=100, max_depth=12, random_state=0, n_jobs=1).fit(frame, y)
    elif kind == "pipeline":
        from sklearn.compose import ColumnTransformer
        from sklearn.ensemble import HistGradientBoostingClassifier
        from sklearn.impute import SimpleImputer
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder, StandardScaler

        rng = np.random.default_rng(0)
        frame = frame.mask(rng.random(frame.shape) < 0.02)
        strings = [f"f{i}" for i in range(17, 20)]
        for column in strings:
            frame[column] = pd.cut(X[:, int(column[1:])], 4, labels=["low", "mid", "high", "top"]).astype(object)
            frame.loc[rng.random(len(frame)) < 0.02, column] = None
        numbers = [c for c in frame.columns if c not in strings]
        model = make_pipeline(ColumnTransformer([
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), numbers),
            ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
             strings)]), HistGradientBoostingClassifier(random_state=0)).fit(frame, y)
    else:
        model = LogisticRegression(max_iter=1000).fit(frame, y)
    path = tmp / f"model-{kind}.joblib"
    joblib.dump(model, path)
    return model, frame, path


def ensure_mlflow_venv() -> Path:
    """bench/.mlflow-venv with mlflow==MLFLOW_VERSION (created once, reused while the pins match)."""
    import sklearn

    pins = [f"mlflow=={MLFLOW_VERSION}", f"scikit-learn=={sklearn.__version__}"]
    marker = MLFLOW_VENV / "bench-installed.txt"
    python = MLFLOW_VENV / "bin" / "python"
    if marker.exists() and marker.read_text().split() == pins and python.exists():
        return python
    log(f"creating {MLFLOW_VENV.relative_to(ROOT)} with {' '.join(pins)} (once; about a minute)")
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(MLFLOW_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins],
                   check=True, timeout=1200)
    marker.write_text("\n".join(pins) + "\n")
    return python


SAVE_MLFLOW = """
import sys, joblib, mlflow, mlflow.sklearn, pandas as pd
from mlflow.models import infer_signature
model = joblib.load(sys.argv[1])
example = pd.read_json(sys.argv[3], orient="split")
# The same body goes to every target, with params.predict_method; MLflow's sklearn flavor takes
# the method from pyfunc_predict_fn at save time, and the params schema lets the body through.
signature = infer_signature(example, model.predict_proba(example), params={"predict_method": "predict"})
# MLflow 3 saves with skops, which asks which types of the model to trust: all of them (we built it).
import skops.io
trusted = skops.io.get_untrusted_types(data=skops.io.dumps(model)) or None
mlflow.sklearn.save_model(model, sys.argv[2], signature=signature, pyfunc_predict_fn="predict_proba",
                          skops_trusted_types=trusted)
"""


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(VENV_PY), "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class Target:
    name: str
    port: int
    path: str
    headers: dict[str, str]
    proc: subprocess.Popen | None = None
    results: dict[str, list[float]] = field(default_factory=dict)

    def add(self, key: str, value: float) -> None:
        self.results.setdefault(key, []).append(value)


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    return env


def setup_ours(tmp: Path, model_path: Path, name: str = "ours") -> tuple[dict[str, str], str]:
    """A fresh data dir with the model registered; returns the VIEWER_* env and a Bearer token."""
    data = tmp / f"viewer-data-{name}"
    data.mkdir()
    env = base_env()
    env.update(VIEWER_DATA_DIR=str(data), VIEWER_DATABASE_URL=f"sqlite:///{data / 'viewer.sqlite3'}",
               VIEWER_BROKER_URL="filesystem://", VIEWER_SECRET_KEY=secrets.token_urlsafe(32))
    manage(env, "init-db")
    manage(env, "create-user", "bench", "--role", "scientist")
    manage(env, "register-model", str(model_path), "--name", MODEL_NAME, "--user", "bench")
    token = manage(env, "create-token", "bench", "--label", "bench").strip().splitlines()[-1].strip()
    return env, token


def start_ours(tmp: Path, model_path: Path, workers: int, *, hosts: bool = True, compiled: bool = False,
               name: str | None = None, logged: bool = True) -> Target:
    """Our server; ``hosts``: models in sandboxed model hosts (the default) or in the web process;
    ``compiled``: the model compiled first (``manage.py compile``), else compiling is off;
    ``logged``: the prediction log on (the default) or off."""
    name = name or ("ours" if hosts else "hosts-off")
    env, token = setup_ours(tmp, model_path, name)
    if compiled:
        log(f"{name}: {manage(env, 'compile', MODEL_NAME).strip()}")
    env["VIEWER_COMPILE_MODELS"] = "true" if compiled else "false"
    env["VIEWER_MODEL_HOSTS"] = "true" if hosts else "false"
    env["VIEWER_PREDICTION_LOG"] = "true" if logged else "false"
    port = free_port()
    log_path = tmp / f"{name}.log"
    proc = spawn([str(GUNICORN), "-w", str(workers), "-b", f"127.0.0.1:{port}", "viewer:create_app()"],
                 env=env, cwd=ROOT, log_path=log_path)
    wait_ready(proc, port, "/ping", log_path)
    return Target(name, port, f"/api/v1/models/{MODEL_NAME}/predict",
                  {"Authorization": f"Bearer {token}"}, proc)


def start_mlflow(tmp: Path, model_path: Path, example: pd.DataFrame, workers: int | None,
                 name: str = "mlflow") -> Target:
    python = ensure_mlflow_venv()
    model_dir = tmp / f"{name}-model"
    example_path = tmp / f"{name}-example.json"
    example.to_json(example_path, orient="split")
    subprocess.run([str(python), "-c", SAVE_MLFLOW, str(model_path), str(model_dir), str(example_path)],
                   check=True, timeout=300, env=base_env(), capture_output=True)
    port = free_port()
    log_path = tmp / f"{name}.log"
    env = base_env()
    env["PATH"] = f"{MLFLOW_VENV / 'bin'}:{env.get('PATH', '')}"
    env["MLFLOW_TRACKING_URI"] = f"file://{tmp / 'mlruns'}"
    argv = [str(MLFLOW_VENV / "bin" / "mlflow"), "models", "serve", "-m", str(model_dir),
            "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    if workers:
        argv += ["-w", str(workers)]
    proc = spawn(argv, env=env, cwd=tmp, log_path=log_path)
    wait_ready(proc, port, "/ping", log_path)
    return Target(name, port, "/invocations", {}, proc)


def start_bare(tmp: Path, model_path: Path, workers: int) -> Target:
    env = base_env()
    env["BENCH_MODEL"] = str(model_path)
    port = free_port()
    log_path = tmp / "bare.log"
    proc = spawn([str(GUNICORN), "-w", str(workers), "-b", f"127.0.0.1:{port}", "--chdir", str(BENCH),
                  "bare_app:app"], env=env, cwd=BENCH, log_path=log_path)
    # the bare app has no GET route: readiness is the port answering at all (405 is fine)
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/predict")
            conn.getresponse().read()
            conn.close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bare app did not start; log:\n{log_path.read_text()[-3000:]}") from None
            time.sleep(0.25)
    return Target("bare", port, "/predict", {}, proc)


# --- requests ------------------------------------------------------------------------------------

def body_for(frame: pd.DataFrame) -> bytes:
    values = frame.astype(object).where(frame.notna(), None).to_numpy().tolist()  # missing: JSON null
    split = {"columns": list(frame.columns), "data": values}
    return json.dumps({"dataframe_split": split, "params": {"predict_method": "predict_proba"}}).encode()


def post(conn: http.client.HTTPConnection, target: Target, body: bytes) -> tuple[int, bytes]:
    headers = {"Content-Type": "application/json", **target.headers}
    conn.request("POST", target.path, body, headers)
    response = conn.getresponse()
    return response.status, response.read()


def probabilities(target: Target, payload: dict) -> np.ndarray:
    """Ours answers {"predictions": labels, "probabilities": ...}; MLflow and bare {"predictions": proba}."""
    return np.asarray(payload["probabilities"] if "probabilities" in payload else payload["predictions"])


def check(target: Target, body: bytes, expected: np.ndarray) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
    for _ in range(20):  # warm up both workers (model load, first-request caches)
        status, data = post(conn, target, body)
        if status != 200:
            raise RuntimeError(f"{target.name}: HTTP {status}: {data[:500]!r}")
    conn.close()
    got = probabilities(target, json.loads(data))
    if not np.allclose(got, expected, rtol=1e-6, atol=1e-9):
        raise RuntimeError(f"{target.name} answered {got[:2]} instead of {expected[:2]}")


WRK_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
{headers}
local f = assert(io.open({body_path}, "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  io.write(string.format(
    "BENCHJSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"errors\\": %d, \\"p50\\": %f, \\"p90\\": %f, \\"p99\\": %f}}\\n",
    summary.requests, summary.duration,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.status + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


def lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Load:
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    requests: int
    cpu_ms: float = float("nan")  # the server's CPU per request


def load_wrk(target: Target, body_path: Path, connections: int, duration: float, tmp: Path) -> Load:
    script = tmp / f"wrk-{target.name}.lua"
    headers = "\n".join(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in target.headers.items())
    script.write_text(WRK_LUA.format(headers=headers, body_path=lua_string(str(body_path))))
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--timeout", "10s",
            "-s", str(script), f"http://127.0.0.1:{target.port}{target.path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30)
    found = re.search(r"^BENCHJSON (.*)$", done.stdout, re.M)
    if done.returncode != 0 or not found:
        raise RuntimeError(f"wrk failed on {target.name}:\n{done.stdout}\n{done.stderr}")
    stats = json.loads(found.group(1))
    if stats["errors"]:
        raise RuntimeError(f"{target.name}: {stats['errors']} failed requests under wrk:\n{done.stdout}")
    return Load(stats["requests"] / (stats["duration_us"] / 1e6), stats["p50"] / 1e3, stats["p90"] / 1e3,
                stats["p99"] / 1e3, stats["requests"])


def load_python(target: Target, body: bytes, connections: int, duration: float) -> Load:
    latencies: list[list[float]] = [[] for _ in range(connections)]
    errors: list[str] = []
    start = threading.Barrier(connections + 1)
    deadline = [0.0]
    per_thread = MAX_REQUESTS // connections

    def worker(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=30)
        record = latencies[i].append
        start.wait()
        try:
            for _ in range(per_thread):
                t0 = time.perf_counter()
                if t0 >= deadline[0]:
                    break
                status, data = post(conn, target, body)
                record(time.perf_counter() - t0)
                if status != 200:
                    errors.append(f"HTTP {status}: {data[:200]!r}")
                    break
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    deadline[0] = time.perf_counter() + duration
    t0 = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(duration + 60)
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{target.name}: {errors[0]}")
    every = np.concatenate([np.asarray(x) for x in latencies]) * 1e3
    p50, p90, p99 = np.percentile(every, [50, 90, 99])
    return Load(len(every) / elapsed, p50, p90, p99, len(every))


def measured_load(target: Target, connections: int, *, client: str, body: bytes, body_path: Path,
                  duration: float, tmp: Path) -> Load:
    """One load measurement of ``target`` with the server's CPU per request."""
    cpu0 = session_cpu_seconds(target.proc.pid)
    result = load_wrk(target, body_path, connections, duration, tmp) if client == "wrk" \
        else load_python(target, body, connections, duration)
    result.cpu_ms = (session_cpu_seconds(target.proc.pid) - cpu0) * 1e3 / max(1, result.requests)
    return result


def load_round(r: int, order: list[Target], measured) -> None:
    """Round ``r``: every target at 8 connections, then every target at 1 connection."""
    for target in order:
        result = measured(target, 8)
        target.add("rps8", result.rps)
        target.add("cpu8", result.cpu_ms)
        log(f"round {r + 1}: {target.name:<16} 8 conn: {result.rps:8.0f} req/s ({result.requests} requests, "
            f"server CPU {result.cpu_ms:.2f} ms/request)")
    for target in order:
        result = measured(target, 1)
        for key in ("p50", "p90", "p99"):
            target.add(key, getattr(result, f"{key}_ms"))
        log(f"round {r + 1}: {target.name:<16} 1 conn: p50 {result.p50_ms:.3f} ms, p99 {result.p99_ms:.3f} ms")


def big_request(target: Target, body: bytes, reps: int, n_rows: int) -> list[float]:
    times = []
    conn = http.client.HTTPConnection("127.0.0.1", target.port, timeout=120)
    for _ in range(reps):
        t0 = time.perf_counter()
        status, data = post(conn, target, body)
        times.append(time.perf_counter() - t0)
        if status != 200:
            raise RuntimeError(f"{target.name}: HTTP {status} on the {n_rows}-row request: {data[:300]!r}")
    conn.close()
    if len(probabilities(target, json.loads(data))) != n_rows:
        raise RuntimeError(f"{target.name}: wrong number of rows in the {n_rows}-row answer")
    return times


def in_process(model, row: np.ndarray, big: np.ndarray, duration: float, big_reps: int) -> tuple[np.ndarray, list[float]]:
    times = []
    deadline = time.perf_counter() + duration
    for _ in range(MAX_REQUESTS):
        t0 = time.perf_counter()
        model.predict_proba(row)
        t1 = time.perf_counter()
        times.append(t1 - t0)
        if t1 >= deadline:
            break
    big_times = []
    for _ in range(big_reps):
        t0 = time.perf_counter()
        model.predict_proba(big)
        big_times.append(time.perf_counter() - t0)
    return np.asarray(times) * 1e3, big_times


# --- report --------------------------------------------------------------------------------------

def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: list[float]) -> str:
    if len(values) < 2:
        return ""
    return f" ({min(values):.4g}..{max(values):.4g})"


def type_name(kind: str) -> str:
    return "HistGradientBoostingClassifier" if kind == "hgb" else "LogisticRegression"


def judge(checks: list[tuple[str, str, list[float], str]]) -> bool:
    """Print each (label, goal in GOALS, per-round values, ">=" or "<=") as PASS or FAIL; True if all pass."""
    all_pass = True
    print("Goals (median over rounds of the per-round figure; min-max over rounds):")
    for label, goal_name, values, op in checks:
        goal, value = GOALS[goal_name], med(values)
        ok = value >= goal if op == ">=" else value <= goal
        all_pass &= ok
        unit = " ms" if "(ms)" in label else "x"
        print(f"  {'PASS' if ok else 'FAIL'}  {label:<40} {value:8.3f}{unit}{spread(values):<18} (goal {op} {goal:g}{unit})")
    return all_pass


def report(targets: list[Target], inproc: dict[str, list[float]], args, client: str) -> bool:
    names = [t.name for t in targets] + ["in-process"]
    rows = {t.name: t.results for t in targets}
    rows["in-process"] = inproc
    print()
    print(f"Prediction benchmark: {type_name(args.model)}, {N_FEATURES} features; client {client}; "
          f"{args.rounds} round(s) x {args.duration:g} s per measurement; medians over rounds (min-max)")
    print()
    header = (f"{'target':<13} {'req/s @8 conn':>20} {'CPU ms/req':>11} {'p50 ms @1':>20} {'p90 ms @1':>10} "
              f"{'p99 ms @1':>10} {'10k rows s':>22}")
    print(header)
    print("-" * len(header))
    for name in names:
        r = rows[name]
        rps = f"{med(r['rps8']):.0f}{spread(r['rps8'])}" if r.get("rps8") else "-"
        p50 = f"{med(r['p50']):.3f}{spread(r['p50'])}"
        big = f"{med(r['big']):.4f}{spread(r['big'])}"
        cpu = f"{med(r['cpu8']):.2f}" if r.get("cpu8") else "-"
        print(f"{name:<13} {rps:>20} {cpu:>11} {p50:>20} {med(r['p90']):>10.3f} {med(r['p99']):>10.3f} {big:>22}")
    print()
    mlflow = (f"MLflow {MLFLOW_VERSION}: mlflow models serve, {args.mlflow_workers or 1} uvicorn worker(s). "
              if "mlflow" in rows else "")
    print(f"{mlflow}ours and bare: gunicorn -w {args.workers} (sync). OMP_NUM_THREADS=1 for all. {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at the end.")
    print("CPU ms/req: user+system CPU of the server's processes per request in the 8-connection runs. "
          "in-process: predict_proba on a 1-row (10k-row) numpy array.")
    print()
    # Each figure is computed per round (the targets of a round ran back to back) and the median
    # over rounds is judged, so a slow stretch of the machine hits both sides of a ratio alike.
    ours = rows["ours"]

    def per_round(a: list[float], b: list[float], op) -> list[float]:
        return [op(x, y) for x, y in zip(a, b)]

    checks = []
    if "mlflow" in rows:
        checks.append(("throughput ours/mlflow", per_round(ours["rps8"], rows["mlflow"]["rps8"], float.__truediv__), ">="))
    checks.append(("server CPU/request ours/bare", per_round(ours["cpu8"], rows["bare"]["cpu8"], float.__truediv__), "<="))
    checks.append(("p50 ours - in-process (ms)", per_round(ours["p50"], inproc["p50"], float.__sub__), "<="))
    if "mlflow" in rows:
        checks.append(("10k rows mlflow/ours", per_round(rows["mlflow"]["big"], ours["big"], float.__truediv__), ">="))
    off = rows["hosts-off"]
    # Issue 15's goals price the model host for the LogisticRegression run, whose arithmetic the
    # web process does itself; a tree model's every request crosses to its host and back (--model
    # hgb shows that cost as context).
    hosts_checks = [("p50 ours - hosts off (ms)", per_round(ours["p50"], off["p50"], float.__sub__), "<="),
                    ("server CPU/request ours - hosts off (ms)", per_round(ours["cpu8"], off["cpu8"], float.__sub__),
                     "<=")]
    if args.model == "logistic":
        checks.extend(hosts_checks)
    unlogged = rows["log-off"]
    checks.append(("server CPU/request ours/log-off", per_round(ours["cpu8"], unlogged["cpu8"], float.__truediv__), "<="))
    checks.append(("p50 ours - log-off (ms)", per_round(ours["p50"], unlogged["p50"], float.__sub__), "<="))
    if "ours-sklearn" in rows:
        theirs = rows["ours-sklearn"]
        checks.append(("server CPU/request ours/ours-sklearn", per_round(ours["cpu8"], theirs["cpu8"], float.__truediv__),
                       "<="))
        checks.append(("p50 ours - ours-sklearn (ms)", per_round(ours["p50"], theirs["p50"], float.__sub__), "<="))
    all_pass = judge([(label, label, values, op) for label, values, op in checks])
    print("Context (no goal):")
    context = [("p50 bare - in-process (ms)", per_round(rows["bare"]["p50"], inproc["p50"], float.__sub__), " ms")]
    cpu_rounds = len(ours.get("cpu8", []))
    if "mlflow" in rows and cpu_rounds:
        context.append(("server CPU/request mlflow/ours", per_round(rows["mlflow"]["cpu8"], ours["cpu8"], float.__truediv__), "x"))
    if cpu_rounds:
        context.append(("throughput ours/bare", per_round(ours["rps8"], rows["bare"]["rps8"], float.__truediv__), "x"))
        context.append(("throughput ours/hosts off", per_round(ours["rps8"], off["rps8"], float.__truediv__), "x"))
        context.append(("10k rows ours/hosts off", per_round(ours["big"], off["big"], float.__truediv__), "x"))
    if "ours-sklearn" in rows and cpu_rounds:
        context.append(("throughput ours/ours-sklearn", per_round(ours["rps8"], rows["ours-sklearn"]["rps8"],
                                                                  float.__truediv__), "x"))
        context.append(("10k rows ours-sklearn/ours", per_round(rows["ours-sklearn"]["big"], ours["big"],
                                                                float.__truediv__), "x"))
    if args.model != "logistic":
        context.extend((label, values, " ms") for label, values, _op in hosts_checks)
    for label, values, unit in context:
        print(f"        {label:<40} {med(values):8.3f}{unit}{spread(values)}")
    print()
    print("ALL PASS" if all_pass else "NOT ALL PASS")
    return all_pass


def run_zoo(args, client: str, tmp: Path) -> bool:
    """``--model zoo``: LogisticRegression, HistGradientBoosting, RandomForest (100 trees, depth 12)
    and the loan-style pipeline, each behind ours (trees compiled by ``manage.py compile``) and
    MLflow, measured in the same interleaved rounds: requests/s at 8 connections, server CPU per
    request, latency at 1 connection, all with 1-row requests."""
    pairs: list[tuple[str, Target, Target | None]] = []
    bodies: dict[str, tuple[bytes, Path]] = {}
    for kind in ZOO:
        model, frame, model_path = train(tmp, kind)
        row = frame.dropna().iloc[:1]
        body = body_for(row)
        (tmp / f"one-{kind}.json").write_bytes(body)
        log(f"{kind}: starting ours" + ("" if args.skip_mlflow else " and MLflow"))
        ours = start_ours(tmp, model_path, args.workers, compiled=kind != "logistic", name=f"ours-{kind}")
        mlflow = None if args.skip_mlflow else start_mlflow(tmp, model_path, frame.dropna().iloc[:5],
                                                            args.mlflow_workers, name=f"mlflow-{kind}")
        expected = model.predict_proba(row)
        for target in (ours, mlflow):
            if target is not None:
                check(target, body, expected)
                bodies[target.name] = (body, tmp / f"one-{kind}.json")
        pairs.append((kind, ours, mlflow))
    targets = [t for _, ours, mlflow in pairs for t in (ours, mlflow) if t is not None]
    log("all targets answer predict_proba of their model; measuring")

    def measured(target: Target, connections: int) -> Load:
        body, body_path = bodies[target.name]
        return measured_load(target, connections, client=client, body=body, body_path=body_path,
                             duration=args.duration, tmp=tmp)

    for r in range(args.rounds):
        load_round(r, targets[r % len(targets):] + targets[:r % len(targets)], measured)

    print()
    print(f"Prediction benchmark, four models (--model zoo), {N_FEATURES} features, 1-row requests; client {client}; "
          f"{args.rounds} round(s) x {args.duration:g} s per measurement; medians over rounds (min-max)")
    print()
    header = f"{'target':<17} {'req/s @8 conn':>20} {'CPU ms/req':>11} {'p50 ms @1':>20} {'p90 ms @1':>10} {'p99 ms @1':>10}"
    print(header)
    print("-" * len(header))
    for target in targets:
        r = target.results
        print(f"{target.name:<17} {med(r['rps8']):>8.0f}{spread(r['rps8']):>12} {med(r['cpu8']):>11.2f} "
              f"{med(r['p50']):>8.3f}{spread(r['p50']):>12} {med(r['p90']):>10.3f} {med(r['p99']):>10.3f}")
    print()
    print(f"ours: gunicorn -w {args.workers}, model hosts, trees compiled; MLflow {MLFLOW_VERSION}: "
          f"{args.mlflow_workers or 1} uvicorn worker(s). OMP_NUM_THREADS=1. {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f} at the end.")
    print()
    checks = []
    linear = pairs[0][1].results
    for kind, ours, mlflow in pairs:
        if mlflow is not None:
            checks.append((f"throughput ours/mlflow ({kind})", "throughput ours/mlflow per model",
                           [a / b for a, b in zip(ours.results["rps8"], mlflow.results["rps8"])], ">="))
        if kind != "logistic":
            goal = "p50 pipeline - logistic (ms)" if kind == "pipeline" else "p50 tree model - logistic (ms)"
            checks.append((f"p50 {kind} - logistic (ms)", goal,
                           [a - b for a, b in zip(ours.results["p50"], linear["p50"])], "<="))
    all_pass = judge(checks)
    print("Context (no goal):")
    for kind, ours, mlflow in pairs:
        if mlflow is not None:
            values = [a / b for a, b in zip(mlflow.results["cpu8"], ours.results["cpu8"])]
            print(f"        {'server CPU/request mlflow/ours (' + kind + ')':<40} {med(values):8.3f}x{spread(values)}")
    print()
    print("ALL PASS" if all_pass else "NOT ALL PASS")
    return all_pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per load measurement (default 5)")
    parser.add_argument("--big-reps", type=int, default=3, help="10k-row requests per target per round (default 3)")
    parser.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers for ours and bare (default 2)")
    parser.add_argument("--mlflow-workers", type=int, default=None,
                        help="mlflow models serve -w (default: mlflow's own default, 1)")
    parser.add_argument("--skip-mlflow", action="store_true")
    parser.add_argument("--model", choices=["logistic", "hgb", "zoo"], default="logistic",
                        help="hgb: HistGradientBoosting, served compiled (ours) and by scikit-learn (ours-sklearn); "
                             "zoo: four models (logistic, hgb, forest, pipeline) behind ours and MLflow")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args()
    if not (1 <= args.rounds <= 10 and 1 <= args.duration <= 30 and 1 <= args.big_reps <= 20):
        parser.error("bounded runs only: rounds 1-10, duration 1-30 s, big-reps 1-20")

    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not on PATH (apt-get install -y wrk)")
    log(f"load client: {client}")

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    atexit.register(stop_all)
    tmp = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    try:
        if args.model == "zoo":
            return 0 if run_zoo(args, client, tmp) else 1
        model, frame, model_path = train(tmp, args.model)
        row_frame, big_frame = frame.iloc[:1], frame.sample(BIG_ROWS, replace=True, random_state=1)
        one, big = body_for(row_frame), body_for(big_frame)
        (tmp / "one.json").write_bytes(one)
        expected = model.predict_proba(row_frame)

        log("starting our server, the bare app" + ("" if args.skip_mlflow else " and MLflow's scoring server"))
        hgb = args.model == "hgb"
        targets = [start_ours(tmp, model_path, args.workers, compiled=hgb),
                   start_ours(tmp, model_path, args.workers, hosts=False, compiled=hgb),
                   start_ours(tmp, model_path, args.workers, compiled=hgb, name="log-off", logged=False)]
        if hgb:
            targets.append(start_ours(tmp, model_path, args.workers, name="ours-sklearn"))
        if not args.skip_mlflow:
            targets.append(start_mlflow(tmp, model_path, frame.iloc[:5], args.mlflow_workers))
        targets.append(start_bare(tmp, model_path, args.workers))
        for target in targets:
            check(target, one, expected)
        log("all targets answer predict_proba of the model; measuring")

        # in-process floor: the same row as numpy, through a copy without feature_names_in_
        # (what our fast path and the bare app call; the fitted model would warn on numpy input)
        fast = joblib.load(model_path)
        del fast.feature_names_in_
        row, big_array = row_frame.to_numpy(), big_frame.to_numpy()
        inproc: dict[str, list[float]] = {}

        def measured(target: Target, connections: int) -> Load:
            return measured_load(target, connections, client=client, body=one, body_path=tmp / "one.json",
                                 duration=args.duration, tmp=tmp)

        log(f"load average before: {os.getloadavg()[0]:.2f}")
        for r in range(args.rounds):
            order = targets[r % len(targets):] + targets[:r % len(targets)]
            load_round(r, order, measured)
            for target in order:
                times = big_request(target, big, args.big_reps, BIG_ROWS)
                target.add("big", med(times))
                log(f"round {r + 1}: {target.name:<7} {BIG_ROWS} rows: {med(times):.4f} s")
            latencies, big_times = in_process(fast, row, big_array, min(args.duration, 3.0), args.big_reps)
            for key, q in (("p50", 50), ("p90", 90), ("p99", 99)):
                inproc.setdefault(key, []).append(float(np.percentile(latencies, q)))
            inproc.setdefault("big", []).append(med(big_times))

        log(f"load average after: {os.getloadavg()[0]:.2f}")
        all_pass = report(targets, inproc, args, client)
        return 0 if all_pass else 1
    finally:
        stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("interrupted; servers stopped")
        sys.exit(130)
