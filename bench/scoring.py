"""Benchmark batch scoring through the real system against a plain single-process loop.

    .venv/bin/python bench/scoring.py                 # full: sweep, 1M rows x 3 rounds, 10M rows, 100 MB/1 GB CSV
    .venv/bin/python bench/scoring.py --quick         # ~2 min: 400k rows, 1 round, 50/250 MB CSV, no 10M run
    .venv/bin/python bench/scoring.py --chunk 100000 --rounds 3 --skip-big --skip-upload
    .venv/bin/python bench/scoring.py --chunk 100000 --skip-upload --skip-scaling   # targets 1 and 3 (~7 min)
    .venv/bin/python bench/scoring.py --rows 1000000 --big-rows 10000000 --what-if-polling 1
    .venv/bin/python bench/scoring.py --chunk 100000 --skip-upload --skip-scaling --skip-big --compiled   # target 1c

Everything runs in a temporary directory under /tmp (deleted at the end, also on Ctrl-C/error):
a fresh data dir on the embedded default (SQLite + kombu's filesystem broker), one gunicorn web
process (``-w 1``), a user with a token, and a HistGradientBoostingClassifier (20 float features,
fit on 20k rows, max_iter=100, no early stopping) registered through ``POST /api/v1/models``.
Datasets are generated as Parquet in 100k-row pieces (never whole in memory) and stored through
``viewer.services.datasets.upload`` (the upload path's own function: copy to scratch/, ``ingest`` to Parquet
with row groups of ``ROW_GROUP_ROWS``, record the row) in this process, with inline ingest forced
so no worker time is spent on it. Jobs are submitted with ``POST /api/v1/jobs`` (force=true) and
followed with ``GET /api/v1/jobs/<id>``; a job's time is its own rows' ``created_at`` (set by the
POST) to ``finished_at`` (set when the metrics are stored), the chunk phase ends at the last
chunk's ``finished_at``, the rest is the finalise phase. Workers are real
``celery -A viewer.worker worker`` processes with OMP_NUM_THREADS=1 (and the worker's own
threadpool_limits(1)); each is fresh for each measured job and first runs a small warm-up job so
its pool processes have imported scikit-learn and loaded the model (a long-running worker has;
the cold start is printed separately).

Targets (each printed as a ratio against a baseline measured in the same run, with PASS/FAIL):

  1 one worker (--concurrency=1) >= 0.9 x the plain loop's rows/s, submit -> done (metrics
    computed). The plain loop (a subprocess, one thread) is what a data scientist would write:
    pyarrow reads the same stored Parquet file row group by row group, predict_proba on a float64
    array, argmax for the label, a ParquetWriter writes row/prediction/proba columns. It computes
    no metrics; ours does (the finalise phase), so ours carries that extra work.
  2 two worker processes (--scale-mode processes, default; or one worker with --concurrency=2),
    each held to one thread, finish the same job >= 1.7 x faster than one.
  3 --big-rows rows (10M): the worker's peak memory < 1 GiB: a fresh worker's process tree (celery's
    main process and its pool process) sampled every 0.1 s for its summed PSS (shared pages
    counted once), split into chunk and finalise phases, and every process's exact VmHWM; the sum
    of the VmHWMs (an upper bound) is printed too. The web process must not grow (its VmHWM
    during the job vs its RSS before) while it answers the job's status polls.
  1c (--compiled; issue 17) the model compiled first (``manage.py compile``): one worker, whose
    model host answers with the compiled runtime, >= 1.5 x the plain scikit-learn loop's rows/s.
    Without --compiled the registered model is not compiled (no worker takes the compile queue).
  2' / 1' and the "plain loop, 2 processes at once" line are context, not targets: the latter
    says how much two processes can gain on this machine at that moment (the control for 2).
  4 uploading a CSV through the web process (a streamed multipart POST to gunicorn, Content-Length
    set, body read from disk in pieces, as a browser sends a file): its peak RSS for a ~1 GB file
    is within 50 MiB of the peak for a ~100 MB file. Both sizes should be above
    VIEWER_INLINE_INGEST_MB (32): those uploads are queued as an ingest job, which no worker runs
    here (bench/ingest.py measures ingest itself); smaller ones are ingested inside the request.

Lines marked "what-if" (not judged; off unless ``--what-if-polling S`` is given) repeat 1 and 2
with workers whose only difference is kombu's ``polling_interval``: the filesystem transport
sleeps that long whenever a worker is at its prefetch limit, so with acks_late + prefetch 1 every
chunk waits up to that long for its message. The shipped config (viewer/config.py) sets 0.01 s;
``--what-if-polling 1`` shows kombu's default (every chunk then waits up to 1 s).

This machine is small (2 cores) and shared: timing targets run --rounds interleaved rounds and
report medians, and CPU seconds (from /proc) are printed next to wall times: they hardly depend on
other load. Every measured process (plain loop, each worker) runs in its own session, because
with the kernel's autogroup scheduling a session, not a process, gets a fair share of a busy CPU
(two pool processes of one --concurrency=2 worker share one session's share).

Chunk size: unless --chunk is given, plain predict_proba speed is measured for several batch sizes,
then one-worker jobs are timed on a --sweep-rows dataset stored with each candidate row group size;
the fastest (within 3 %, larger preferred) of those that give two processes >= 4 chunks each of
--rows is used.
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # this process generates data and trains: keep it off the other core

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import secrets  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import sqlite3  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import requests  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # viewer.services.datasets.upload runs in this process
PYTHON = sys.executable
GUNICORN = str(Path(sys.executable).with_name("gunicorn"))
N_FEATURES = 20
FEATURES = [f"f{i}" for i in range(N_FEATURES)]
TARGET = "label"
MODEL_NAME = "bench-hgb"
PIECE_ROWS = 100_000          # generation piece: one row group of the source file
CLK_TCK = os.sysconf("SC_CLK_TCK")

# --- process bookkeeping ------------------------------------------------------------------------

_children: list[subprocess.Popen] = []


def spawn(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    _children.append(proc)
    return proc


def stop(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the process group we started (warm shutdown for celery), SIGKILL it if it lingers."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    # a pool process may outlive its parent for a moment: the group goes too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    if proc in _children:
        _children.remove(proc)


def stop_all() -> None:
    for proc in list(_children):
        stop(proc, timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- /proc --------------------------------------------------------------------------------------

def children_of(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as fh:
                found += [int(p) for p in fh.read().split()]
    return found


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += children_of(p)
    return out


def mem_kb(pid: int) -> dict[str, int]:
    out = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line[:5]] = int(line.split()[1])
    return out


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages (a forked pool process shares its parent's) count once."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime
    return 0.0


def reset_peak(pid: int) -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0, "5" > clear_refs)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as fh:
        fh.write("5")


class TreeWatch:
    """Samples process trees every ``interval`` s: peak sum of RSS, last VmHWM and CPU per pid."""

    def __init__(self, roots: list[int], interval: float = 0.05, pss: bool = False):
        self.roots, self.interval, self.pss = roots, interval, pss
        self.peak_sum_kb = self.peak_pss_kb = 0
        self.samples: list[tuple[float, int, int]] = []  # (epoch, summed RSS kB, summed PSS kB)
        self.hwm_kb: dict[int, int] = {}
        self.cpu: dict[int, float] = {}
        self.cpu0 = {p: cpu_seconds(p) for p in self.pids()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def pids(self) -> list[int]:
        return [p for root in self.roots for p in tree(root)]

    def sample(self) -> None:
        total = total_pss = 0
        for pid in self.pids():
            mem = mem_kb(pid)
            if not mem:
                continue
            total += mem.get("VmRSS", 0)
            if self.pss:
                total_pss += pss_kb(pid)
            self.hwm_kb[pid] = max(self.hwm_kb.get(pid, 0), mem.get("VmHWM", 0))
            self.cpu[pid] = cpu_seconds(pid)
        self.peak_sum_kb = max(self.peak_sum_kb, total)
        self.peak_pss_kb = max(self.peak_pss_kb, total_pss)
        self.samples.append((time.time(), total, total_pss))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> TreeWatch:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    @property
    def cpu_used(self) -> float:
        return sum(c - self.cpu0.get(p, 0.0) for p, c in self.cpu.items())

    @property
    def cpu_roots(self) -> float:
        """CPU of the root processes alone (celery's main process: consuming, acking, polling)."""
        return sum(c - self.cpu0.get(p, 0.0) for p, c in self.cpu.items() if p in self.roots)

    @property
    def max_hwm_mib(self) -> float:
        return max(self.hwm_kb.values(), default=0) / 1024


# --- data and model ------------------------------------------------------------------------------

_W = np.random.default_rng(12345).normal(size=N_FEATURES)


def make_piece(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    logit = X @ _W + 1.5 * np.sin(2 * X[:, 0]) * X[:, 1] + rng.normal(scale=1.0, size=n)
    return X, (logit > 0).astype(np.int64)


SCHEMA = pa.schema([(n, pa.float64()) for n in FEATURES] + [(TARGET, pa.int64())])


def write_parquet(path: Path, rows: int, seed: int = 1000) -> Path:
    """The dataset in PIECE_ROWS pieces: memory is one piece, whatever ``rows`` is."""
    with pq.ParquetWriter(path, SCHEMA) as writer:
        done, i = 0, 0
        while done < rows:
            n = min(PIECE_ROWS, rows - done)
            X, y = make_piece(seed + i, n)
            writer.write_table(pa.table([*X.T, y], schema=SCHEMA), row_group_size=PIECE_ROWS)
            done, i = done + n, i + 1
    return path


def write_csv(path: Path, target_bytes: int, seed: int = 5000, piece_rows: int = 20_000) -> int:
    rows, i = 0, 0
    with open(path, "wb") as fh:
        while fh.tell() < target_bytes:
            X, y = make_piece(seed + i, piece_rows)
            sink = pa.BufferOutputStream()
            pacsv.write_csv(pa.table([*X.round(6).T, y], schema=SCHEMA), sink,
                            write_options=pacsv.WriteOptions(include_header=i == 0))
            fh.write(sink.getvalue().to_pybytes())
            rows, i = rows + piece_rows, i + 1
    return rows


def train(path: Path) -> None:
    import joblib
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier

    X, y = make_piece(1, 20_000)
    model = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0)
    model.fit(pd.DataFrame(X, columns=FEATURES), y)
    joblib.dump(model, path)


# --- the plain loop and the predict batch sweep (subprocesses, one thread) ------------------------

PLAIN_LOOP = r"""
import os, sys, json, time, warnings
os.environ["OMP_NUM_THREADS"] = "1"
import numpy as np, pyarrow as pa, pyarrow.parquet as pq, joblib
from threadpoolctl import threadpool_limits
threadpool_limits(1)
warnings.filterwarnings("ignore", message="X does not have valid feature names")
model = joblib.load(sys.argv[1])
src, out = sys.argv[2], sys.argv[3]
features = [str(c) for c in model.feature_names_in_]
classes = model.classes_
share, shares = map(int, (sys.argv[4] if len(sys.argv) > 4 else "0/1").split("/"))  # row groups share::shares
t0, c0 = time.perf_counter(), time.process_time()
rows = 0
with pq.ParquetFile(src) as pf:
    writer = None
    for i in range(share, pf.metadata.num_row_groups, shares):
        table = pf.read_row_group(i, columns=features)
        X = np.column_stack([table.column(c).to_numpy() for c in features])
        proba = model.predict_proba(X)
        out_table = pa.table({"row": np.arange(rows, rows + len(X)), "prediction": classes.take(proba.argmax(1)),
                              **{f"proba_{c}": proba[:, k] for k, c in enumerate(classes.tolist())}})
        if writer is None:
            writer = pq.ParquetWriter(out, out_table.schema)
        writer.write_table(out_table)
        rows += len(X)
    writer.close()
print(json.dumps({"rows": rows, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}))
"""

BATCH_SWEEP = r"""
import os, sys, json, time, warnings
os.environ["OMP_NUM_THREADS"] = "1"
import numpy as np, pyarrow.parquet as pq, joblib
from threadpoolctl import threadpool_limits
threadpool_limits(1)
warnings.filterwarnings("ignore", message="X does not have valid feature names")
model = joblib.load(sys.argv[1])
features = [str(c) for c in model.feature_names_in_]
table = pq.read_table(sys.argv[2], columns=features)
X = np.column_stack([table.column(c).to_numpy() for c in features])
out = {}
for rep in range(int(sys.argv[4])):
    for size in [int(s) for s in sys.argv[3].split(",")]:
        t0, c0 = time.perf_counter(), time.process_time()
        for start in range(0, len(X), size):
            model.predict_proba(X[start:start + size])
        out.setdefault(size, []).append((len(X) / (time.perf_counter() - t0), len(X) / (time.process_time() - c0)))
print(json.dumps({k: [statistics_median([w for w, _ in v]), statistics_median([c for _, c in v])] for k, v in out.items()}))
""".replace("statistics_median", "__import__('statistics').median")


WHAT_IF_WORKER = """# written by bench/scoring.py: the real worker app with one broker option changed
import os
from viewer.worker import celery, flask_app  # noqa: F401
celery.conf.broker_transport_options = dict(celery.conf.broker_transport_options,
                                            polling_interval=float(os.environ["BENCH_POLLING_INTERVAL"]))
"""


def run_json_parallel(code: str, argvs: list[list[str]], env: dict[str, str]) -> list[dict]:
    """The same script several times at once (each its own session); their JSON results."""
    procs = [subprocess.Popen([PYTHON, "-c", code, *argv], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True) for argv in argvs]
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise RuntimeError(stderr[-3000:])
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def run_json(code: str, *args: str, env: dict[str, str]) -> dict:
    # its own session, like each worker: with the kernel's autogroup scheduling a session is
    # what gets a fair CPU share when the machine is busy
    out = subprocess.run([PYTHON, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=1800, start_new_session=True)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the system ------------------------------------------------------------------------------------

@dataclass
class System:
    tmp: Path
    env: dict[str, str]
    base: str = ""
    token: str = ""
    web: subprocess.Popen | None = None
    session: requests.Session = field(default_factory=requests.Session)
    apps: dict[int, object] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return Path(self.env["VIEWER_DATA_DIR"])

    def manage(self, *args: str) -> str:
        out = subprocess.run([PYTHON, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
                             text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stderr[-3000:]}")
        return out.stdout

    def setup(self) -> None:
        self.manage("init-db")
        self.manage("create-user", "bench", "--role", "scientist")
        self.token = self.manage("create-token", "bench", "--label", "bench").strip().splitlines()[-1].strip()
        self.session.headers["Authorization"] = f"Bearer {self.token}"
        self.start_web()

    def start_web(self) -> None:
        port = free_port()
        # one sync worker process: "the web process"; long timeout for 1 GB uploads
        self.web = spawn([GUNICORN, "-w", "1", "--timeout", "900", "-b", f"127.0.0.1:{port}", "viewer:create_app()"],
                         self.env, self.tmp / "web.log")
        self.base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                raise RuntimeError("gunicorn exited:\n" + (self.tmp / "web.log").read_text()[-3000:])
            with contextlib.suppress(requests.RequestException):
                if self.session.get(self.base + "/api/v1/jobs", timeout=5).status_code == 200 and self.web_pid():
                    return
            time.sleep(0.25)
        raise TimeoutError("gunicorn did not answer")

    def web_pid(self) -> int | None:
        """The gunicorn worker (the process that runs the app), not the arbiter."""
        kids = children_of(self.web.pid)
        return kids[0] if kids else None

    def register_model(self, model_path: Path) -> None:
        with open(model_path, "rb") as fh:
            r = self.session.post(self.base + "/api/v1/models", files={"file": ("hgb.joblib", fh)},
                                  data={"name": MODEL_NAME}, timeout=120)
        assert r.status_code in (200, 201), r.text

    def app(self, row_group_rows: int):
        """An in-process app on the same data dir, storing datasets with ``row_group_rows``."""
        if row_group_rows not in self.apps:
            from viewer import create_app

            self.apps[row_group_rows] = create_app({
                "DATA_DIR": self.env["VIEWER_DATA_DIR"], "DATABASE_URL": self.env["VIEWER_DATABASE_URL"],
                "BROKER_URL": self.env["VIEWER_BROKER_URL"], "SECRET_KEY": self.env["VIEWER_SECRET_KEY"],
                "ROW_GROUP_ROWS": row_group_rows, "INLINE_INGEST_MB": 1 << 30})
        return self.apps[row_group_rows]

    def store_dataset(self, path: Path, row_group_rows: int) -> tuple[str, Path, int]:
        """viewer.services.datasets.upload (copy + ingest inline); returns (id, stored file, row groups)."""
        from viewer.infra.records import User
        from viewer.services import datasets

        app = self.app(row_group_rows)
        with app.app_context(), open(path, "rb") as fh:
            dataset, job = datasets.upload(fh, path.name, User.by_name("bench"))
            assert job is None and dataset.state == "ready", dataset.state
            with datasets.get_file(dataset) as stored:
                return dataset.id, stored, int(dataset.info["n_row_groups"])

    def start_workers(self, processes: int, concurrency: int, polling: float | None = None) -> list[subprocess.Popen]:
        """``processes`` worker processes (each its own session, as separate services would be),
        started together; with ``polling``, a what-if: the same app with kombu's
        ``polling_interval`` set (bench_worker.py, written in the temp dir)."""
        procs = [self._spawn_worker(concurrency, polling) for _ in range(processes)]
        deadline = time.monotonic() + 120
        for proc in procs:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError("worker exited:\n" + proc.log_path.read_text()[-3000:])
                if len(tree(proc.pid)) >= concurrency + 1 and b" ready." in proc.log_path.read_bytes():
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("worker not ready")
                time.sleep(0.2)
        return procs

    def _spawn_worker(self, concurrency: int, polling: float | None) -> subprocess.Popen:
        log = self.tmp / f"worker-{uuid.uuid4().hex[:6]}.log"
        env, app = self.env, "viewer.worker"
        if polling is not None:
            shim = self.tmp / "shim"
            shim.mkdir(exist_ok=True)
            (shim / "bench_worker.py").write_text(WHAT_IF_WORKER)
            env = dict(self.env, PYTHONPATH=f"{shim}:{ROOT}", BENCH_POLLING_INTERVAL=str(polling))
            app = "bench_worker"
        proc = spawn([PYTHON, "-m", "celery", "-A", app, "worker", f"--concurrency={concurrency}",
                      "--loglevel=INFO", "--without-gossip", "--without-mingle",
                      f"--hostname=bench-{uuid.uuid4().hex[:6]}@%h"], env, log)
        proc.log_path = log  # type: ignore[attr-defined]
        return proc

    def submit(self, dataset_id: str) -> str:
        r = self.session.post(self.base + "/api/v1/jobs", json={"model": MODEL_NAME, "dataset": dataset_id,
                                                               "target": TARGET, "force": True}, timeout=60)
        assert r.status_code == 202, r.text
        return r.json()["id"]

    def wait(self, job_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.session.get(f"{self.base}/api/v1/jobs/{job_id}", timeout=30).json()
            if body["state"] in ("done", "error", "cancelled"):
                return body
            time.sleep(0.2)  # a light poll: the web process shares the two cores with the worker
        raise TimeoutError(f"job {job_id} not done after {timeout}s")

    def job_times(self, job_id: str) -> dict[str, float]:
        """Phases from the job's rows: submit (created_at) -> last chunk done -> finished."""
        with contextlib.closing(sqlite3.connect(self.data_dir / "viewer.sqlite3", timeout=30)) as con:
            created, started, finished = con.execute(
                "SELECT created_at, started_at, finished_at FROM jobs WHERE id = ?", (job_id,)).fetchone()
            chunks = con.execute("SELECT started_at, finished_at FROM job_chunks WHERE job_id = ? "
                                 "ORDER BY started_at", (job_id,)).fetchall()
        ts = datetime.fromisoformat
        last = max(ts(f) for _s, f in chunks)
        last_epoch = last.replace(tzinfo=timezone.utc).timestamp()
        first = chunks[0]
        return {"total_s": (ts(finished) - ts(created)).total_seconds(), "last_chunk_epoch": last_epoch,
                "chunks_s": (last - ts(created)).total_seconds(),
                "finalize_s": (ts(finished) - last).total_seconds(),
                "first_chunk_s": (ts(first[1]) - ts(first[0])).total_seconds(),
                "queue_s": (ts(first[0]) - ts(created)).total_seconds(),
                "busy_s": sum((ts(f) - ts(s)).total_seconds() for s, f in chunks),
                "n_chunks": len(chunks)}

    def run_job(self, workers: list[subprocess.Popen], dataset_id: str, rows: int, timeout: float = 1800,
                sample: float = 0.25, pss: bool = False) -> dict:
        """Submit, follow, and time from the job's own rows: created_at (set by POST /jobs) to
        finished_at (set when the metrics are stored), so the poll interval adds nothing."""
        with TreeWatch([w.pid for w in workers], sample, pss) as watch:
            t0 = time.perf_counter()
            job_id = self.submit(dataset_id)
            body = self.wait(job_id, timeout)
            observed = time.perf_counter() - t0
        assert body["state"] == "done", body
        assert body["progress"]["done"] == rows and body["metrics"], body
        times = self.job_times(job_id)
        seconds = times["total_s"]
        return {"seconds": seconds, "observed_s": observed, "rows_per_s": rows / seconds, "cpu": watch.cpu_used,
                "cpu_main": watch.cpu_roots, "samples": watch.samples, "peak_pss_mib": watch.peak_pss_kb / 1024, "peak_sum_mib": watch.peak_sum_kb / 1024, "hwm_mib": {p: kb / 1024 for p, kb in watch.hwm_kb.items()},
                **times, "metrics": body["metrics"]}


# --- multipart upload with a streamed body ---------------------------------------------------------

class MultipartFile:
    """A multipart/form-data body (one file field) read from disk in pieces: ``requests`` sends a
    body with ``read`` and ``__len__`` with a Content-Length, in blocks, never whole in memory."""

    def __init__(self, path: Path, field_name: str = "file"):
        self.boundary = secrets.token_hex(16)
        self.head = (f"--{self.boundary}\r\nContent-Disposition: form-data; name=\"{field_name}\"; "
                     f"filename=\"{path.name}\"\r\nContent-Type: text/csv\r\n\r\n").encode()
        self.tail = f"\r\n--{self.boundary}--\r\n".encode()
        self.size = len(self.head) + path.stat().st_size + len(self.tail)
        self._parts = [self.head, open(path, "rb"), self.tail]

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        while chunk := self.read(1 << 20):
            yield chunk

    def read(self, n: int = -1) -> bytes:
        n = 1 << 20 if n is None or n < 0 else n
        while self._parts:
            part = self._parts[0]
            if isinstance(part, bytes):
                self._parts.pop(0)
                if part:
                    if len(part) > n:
                        self._parts.insert(0, part[n:])
                        return part[:n]
                    return part
                continue
            chunk = part.read(n)
            if chunk:
                return chunk
            part.close()
            self._parts.pop(0)
        return b""


# --- reporting -------------------------------------------------------------------------------------

RESULTS: list[tuple[str, str, bool | None]] = []


def verdict(name: str, text: str, ok: bool | None) -> None:
    RESULTS.append((name, text, ok))
    print(f"  => {name}: {text}  {'PASS' if ok else 'FAIL' if ok is not None else 'n/a'}", flush=True)


def med(values: list[float]) -> float:
    return statistics.median(values)


def log(msg: str) -> None:
    print(msg, flush=True)


# --- the benchmark ---------------------------------------------------------------------------------

def choose_chunk(system: System, model_path: Path, args, env: dict[str, str]) -> int:
    candidates = [int(c) for c in args.chunk_candidates.split(",")]
    sweep_src = write_parquet(system.tmp / "sweep.parquet", args.sweep_rows, seed=7000)
    sizes = ",".join(str(c) for c in sorted(set(candidates + [2_000, 5_000])))
    plain = run_json(BATCH_SWEEP, str(model_path), str(sweep_src), sizes, "2", env=env)
    log(f"\n[chunk] plain predict_proba on {args.sweep_rows:,} rows, one thread, by batch size "
        "(median of 2; wall rows/s | rows per CPU-second):")
    for size, (wall, cpu) in sorted(plain.items(), key=lambda kv: int(kv[0])):
        log(f"    batch {int(size):>7,}: {wall:>9,.0f} | {cpu:>9,.0f}")
    stored = {c: system.store_dataset(sweep_src, c) for c in candidates}
    workers = system.start_workers(1, 1)
    try:
        system.run_job(workers, stored[candidates[-1]][0], args.sweep_rows)  # warm-up: model loaded
        timings: dict[int, list[dict]] = {c: [] for c in candidates}
        for _round in range(args.sweep_rounds):
            for c in candidates:
                timings[c].append(system.run_job(workers, stored[c][0], args.sweep_rows))
    finally:
        for w in workers:
            stop(w)
    sweep_src.unlink()
    log(f"[chunk] one worker, {args.sweep_rows:,} rows, by row group size (median of {args.sweep_rounds}; "
        "busy = claim to complete of a chunk, gap = the rest of the chunk phase per chunk):")
    speed = {}
    for c in candidates:
        runs = timings[c]
        speed[c] = med([r["rows_per_s"] for r in runs])
        log(f"    rows/group {c:>7,}: {stored[c][2]:>3} chunks  {speed[c]:>9,.0f} rows/s  "
            f"{args.sweep_rows / med([r['cpu'] for r in runs]):>9,.0f} rows/CPU-s  "
            f"chunks {med([r['chunks_s'] for r in runs]):5.2f}s  finalise {med([r['finalize_s'] for r in runs]):4.2f}s  "
            f"busy/chunk {med([r['busy_s'] / r['n_chunks'] for r in runs]) * 1000:6.0f} ms  "
            f"gap/chunk {med([(r['chunks_s'] - r['busy_s']) / r['n_chunks'] for r in runs]) * 1000:5.0f} ms")
    # Two processes need several chunks each to balance: at most rows / 8 per row group.
    allowed = [c for c in candidates if c <= max(args.rows // 8, min(candidates))]
    top = max(speed[c] for c in allowed)
    chosen = max(c for c in allowed if speed[c] >= 0.97 * top)
    log(f"[chunk] chosen: {chosen:,} rows per row group (fastest within 3 %, larger preferred, at most "
        f"--rows/8 = {args.rows // 8:,} so two processes get >= 4 chunks each)")
    return chosen


def describe(res: dict) -> str:
    return (f"{res['seconds']:6.2f}s  {res['rows_per_s']:>9,.0f} rows/s  cpu {res['cpu']:6.2f}s "
            f"(main {res['cpu_main']:.2f}s)  "
            f"(queue {res['queue_s']:.2f}s, chunks {res['chunks_s']:.2f}s, finalise {res['finalize_s']:.2f}s; "
            f"chunk busy {res['busy_s']:.2f}s in {res['n_chunks']} tasks; tree RSS peak {res['peak_sum_mib']:.0f} MiB)")


def bench_speed(system: System, model_path: Path, args, env: dict[str, str], chunk: int) -> None:
    src = write_parquet(system.tmp / "main.parquet", args.rows)
    dataset_id, stored, groups = system.store_dataset(src, chunk)
    src.unlink()
    warm_rows = 4 * min(chunk, 5_000)
    warm_src = write_parquet(system.tmp / "warm.parquet", warm_rows, seed=9000)
    warm_id = system.store_dataset(warm_src, min(chunk, 5_000))[0]
    log(f"\n[speed] {args.rows:,} rows x {N_FEATURES} floats, {groups} row groups of {chunk:,}; "
        f"{args.rounds} interleaved rounds")
    two = (2, 1) if args.scale_mode == "processes" else (1, 2)  # (processes, concurrency)
    two_name = "2 worker processes" if args.scale_mode == "processes" else "1 worker, --concurrency=2"
    variants = [("ours, 1 worker", (1, 1), None)]
    if not args.skip_scaling:
        variants.append((f"ours, {two_name}", two, None))
    if args.what_if_polling:
        variants += [(f"what-if polling {args.what_if_polling:g}s, 1 worker", (1, 1), args.what_if_polling)]
        if not args.skip_scaling:
            variants.append((f"what-if polling {args.what_if_polling:g}s, {two_name}", two, args.what_if_polling))
    base: list[dict] = []
    control: list[float] = []
    runs: dict[str, list[dict]] = {name: [] for name, _c, _p in variants}
    cold: list[float] = []
    for r in range(args.rounds):
        out = system.tmp / "plain-out.parquet"
        b = run_json(PLAIN_LOOP, str(model_path), str(stored), str(out), env=env)
        out.unlink(missing_ok=True)
        base.append(b)
        log(f"  round {r + 1}: plain loop{'':<30}{b['seconds']:6.2f}s  {b['rows'] / b['seconds']:>9,.0f} rows/s  "
            f"cpu {b['cpu']:6.2f}s")
        if not args.skip_scaling:
            # machine control: the plain loop as two processes at once, each on every other row group
            halves = run_json_parallel(PLAIN_LOOP, [[str(model_path), str(stored), str(system.tmp / f"half{i}.parquet"),
                                                     f"{i}/2"] for i in range(2)], env=env)
            for i in range(2):
                (system.tmp / f"half{i}.parquet").unlink(missing_ok=True)
            control.append(b["seconds"] / max(h["seconds"] for h in halves))
            log(f"  round {r + 1}: plain loop, 2 processes at once{'':<10}"
                f"{max(h['seconds'] for h in halves):6.2f}s  = {control[-1]:.2f}x faster than one (what this "
                "machine gives two processes right now)")
        for name, (processes, concurrency), polling in variants:
            workers = system.start_workers(processes, concurrency, polling)
            try:
                # the warm-up job loads the model into every pool process (4 small chunks)
                cold.append(system.run_job(workers, warm_id, warm_rows)["first_chunk_s"])
                res = system.run_job(workers, dataset_id, args.rows)
            finally:
                for w in workers:
                    stop(w)
            runs[name].append(res)
            log(f"  round {r + 1}: {name:<40}{describe(res)}")
    base_rps = med([b["rows"] / b["seconds"] for b in base])
    base_cpu = med([b["cpu"] for b in base])
    log(f"  medians: plain loop {base_rps:,.0f} rows/s, cpu {base_cpu:.2f}s; "
        f"cold start of a pool process (first warm-up chunk, imports + model load) ~{med(cold):.2f}s")
    for name, _c, _p in variants:
        rs = runs[name]
        log(f"    {name:<40} {med([x['rows_per_s'] for x in rs]):>9,.0f} rows/s end to end, "
            f"{med([args.rows / x['chunks_s'] for x in rs]):>9,.0f} rows/s in the chunk phase, "
            f"chunks {med([x['chunks_s'] for x in rs]):.2f}s, finalise {med([x['finalize_s'] for x in rs]):.2f}s, "
            f"cpu {med([x['cpu'] for x in rs]):.2f}s")
    one = runs["ours, 1 worker"]
    log(f"  metrics: {json.dumps({k: round(v, 4) for k, v in one[-1]['metrics'].items() if isinstance(v, float)})}")
    # Ratios are paired within a round (the runs of a round are minutes apart at most, so they met
    # about the same load) and the median over rounds is reported.

    def vs_plain(rs: list[dict], key: str = "seconds") -> float:
        return med([b["seconds"] / x[key] for b, x in zip(base, rs)])

    def speedup(r1: list[dict], r2: list[dict]) -> float:
        return med([x["seconds"] / y["seconds"] for x, y in zip(r1, r2)])

    ratio = vs_plain(one)
    goal, label = (1.5, "1c one worker, compiled, vs plain scikit-learn loop") if args.compiled else \
        (0.9, "1 one worker vs plain loop")
    verdict(label, f"{ratio:.2f}x rows/s (target >= {goal:.2f}; chunk phase alone "
            f"{vs_plain(one, 'chunks_s'):.2f}x; CPU-seconds ratio {med([b['cpu'] / x['cpu'] for b, x in zip(base, one)]):.2f}x)",
            ratio >= goal)
    if not args.skip_scaling:
        twos = runs[f"ours, {two_name}"]
        s2 = speedup(one, twos)
        verdict(f"2 {two_name} vs 1", f"{s2:.2f}x faster (chunk phase "
                f"{med([x['chunks_s'] / y['chunks_s'] for x, y in zip(one, twos)]):.2f}x; finalise "
                f"{med([x['finalize_s'] for x in twos]):.2f}s is serial; machine control: two plain loops "
                f"{med(control):.2f}x) (target >= 1.70)", s2 >= 1.7)
    if args.what_if_polling:
        w1 = runs[variants[2 if not args.skip_scaling else 1][0]]
        verdict(f"1' what-if polling_interval={args.what_if_polling:g}s, one worker vs plain loop",
                f"{vs_plain(w1):.2f}x rows/s (chunk phase alone {vs_plain(w1, 'chunks_s'):.2f}x) "
                "(not the shipped config)", None)
        if not args.skip_scaling:
            w2 = runs[variants[3][0]]
            verdict(f"2' what-if polling_interval={args.what_if_polling:g}s, {two_name} vs 1",
                    f"{speedup(w1, w2):.2f}x faster (not the shipped config)", None)


def bench_big(system: System, args, chunk: int) -> None:
    log(f"\n[big] {args.big_rows:,} rows")
    t0 = time.perf_counter()
    src = write_parquet(system.tmp / "big.parquet", args.big_rows, seed=20_000)
    log(f"  generated {src.stat().st_size / 1e9:.2f} GB Parquet in {time.perf_counter() - t0:.0f}s")
    t0 = time.perf_counter()
    dataset_id, stored, groups = system.store_dataset(src, chunk)
    src.unlink()
    log(f"  stored through viewer.services.datasets.upload in {time.perf_counter() - t0:.0f}s: {groups} row groups of {chunk:,}")
    web = system.web_pid()
    web_before = mem_kb(web)["VmRSS"] / 1024
    reset_peak(web)
    workers = system.start_workers(1, 1)  # fresh processes: their VmHWM covers this job only
    try:
        res = system.run_job(workers, dataset_id, args.big_rows, timeout=args.big_timeout, sample=0.1, pss=True)
    finally:
        stop(workers[0])
    hwm = res["hwm_mib"]
    web_after = mem_kb(web)
    log(f"  job: {res['seconds']:.1f}s ({res['rows_per_s']:,.0f} rows/s; chunks {res['chunks_s']:.1f}s, "
        f"finalise {res['finalize_s']:.1f}s), worker cpu {res['cpu']:.1f}s")
    log(f"  worker processes' peak RSS (VmHWM): " + ", ".join(f"{v:.0f} MiB" for v in sorted(hwm.values())))
    tree_peak = sum(hwm.values())
    split = res["last_chunk_epoch"]
    chunk_pss = max((p for t, _r, p in res["samples"] if t <= split), default=0) / 1024
    final_pss = max((p for t, _r, p in res["samples"] if t > split), default=0) / 1024
    log(f"  sampled peak of the tree's summed RSS {res['peak_sum_mib']:.0f} MiB, summed PSS {res['peak_pss_mib']:.0f} MiB "
        f"(chunk phase {chunk_pss:.0f} MiB, finalise {final_pss:.0f} MiB)")
    log(f"  web process: RSS {web_before:.0f} MiB before, {web_after['VmRSS'] / 1024:.0f} MiB after, "
        f"peak during the job {web_after['VmHWM'] / 1024:.0f} MiB")
    big_peak = max(hwm.values())
    verdict(f"3a worker peak memory at {args.big_rows:,} rows",
            f"tree PSS peak {res['peak_pss_mib']:.0f} MiB = {res['peak_pss_mib'] / 1024:.2f}x of 1 GiB, largest process "
            f"VmHWM {big_peak:.0f} MiB (sum of VmHWMs {tree_peak:.0f} MiB) (target: both < 1 GiB)",
            res["peak_pss_mib"] < 1024 and big_peak < 1024)
    growth = web_after["VmHWM"] / 1024 - web_before
    verdict(f"3b web process during the {args.big_rows:,}-row job", f"peak {growth:+.1f} MiB over its RSS before (target < +16 MiB)",
            growth < 16)


def bench_upload(system: System, args) -> None:
    log(f"\n[upload] CSV through the web process (streamed multipart POST /api/v1/datasets, gunicorn -w 1)")
    peaks = {}
    for mb in (args.csv_small_mb, args.csv_big_mb):
        path = system.tmp / f"upload-{mb}.csv"
        write_csv(path, mb * 1_000_000)
        web = system.web_pid()
        before = mem_kb(web)["VmRSS"] / 1024
        reset_peak(web)
        body = MultipartFile(path)
        t0 = time.perf_counter()
        r = system.session.post(system.base + "/api/v1/datasets", data=body,
                                headers={"Content-Type": body.content_type}, timeout=900)
        seconds = time.perf_counter() - t0
        assert r.status_code in (201, 202), r.text[:500]
        peak = mem_kb(web)["VmHWM"] / 1024
        peaks[mb] = peak
        log(f"  {path.stat().st_size / 1e6:6.0f} MB: {r.status_code} in {seconds:5.1f}s "
            f"({path.stat().st_size / 1e6 / seconds:5.0f} MB/s); web RSS before {before:.0f} MiB, peak {peak:.0f} MiB")
        path.unlink()
        # the upload is queued as an ingest job (larger than INLINE_INGEST_MB): remove its copy
        for leftover in (system.data_dir / "uploads").glob("upload-*"):
            leftover.unlink()
    small, big = peaks[args.csv_small_mb], peaks[args.csv_big_mb]
    verdict("4 web peak RSS, CSV upload", f"{big:.0f} MiB for {args.csv_big_mb} MB vs {small:.0f} MiB for "
            f"{args.csv_small_mb} MB = {big / small:.2f}x ({big - small:+.0f} MiB; target within +50 MiB)",
            big - small < 50)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--big-rows", type=int, default=10_000_000)
    parser.add_argument("--csv-small-mb", type=int, default=100)
    parser.add_argument("--csv-big-mb", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=None, help="row group size; default: chosen by the sweep")
    parser.add_argument("--chunk-candidates", default="25000,50000,100000,200000")
    parser.add_argument("--what-if-polling", type=float, default=0.0,
                        help="also time workers with kombu's polling_interval set to this (0: skip; the "
                             "shipped config sets 0.01)")
    parser.add_argument("--sweep-rows", type=int, default=400_000)
    parser.add_argument("--sweep-rounds", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--big-timeout", type=float, default=1200)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--skip-upload", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--compiled", action="store_true",
                        help="compile the model first (manage.py compile): target 1c instead of 1")
    parser.add_argument("--scale-mode", choices=("processes", "concurrency"), default="processes",
                        help="target 2 with two worker processes (default) or one with --concurrency=2")
    parser.add_argument("--quick", action="store_true",
                        help="--rows 400000 --skip-big, CSV 50/250 MB, --rounds 1, sweep 200k rows x 1 round over "
                             "25k/50k, no what-if")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (for inspection)")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.skip_big, args.rounds = min(args.rows, 400_000), True, 1
        args.csv_small_mb, args.csv_big_mb = 50, 250  # both above INLINE_INGEST_MB (32 MiB)
        args.sweep_rows, args.sweep_rounds = 200_000, 1
        args.chunk_candidates, args.what_if_polling = "25000,50000", 0.0

    tmp = Path(tempfile.mkdtemp(prefix="bench-scoring-", dir="/tmp"))
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", TMPDIR=str(tmp),
               VIEWER_DATA_DIR=str(tmp / "data"), VIEWER_DATABASE_URL=f"sqlite:///{tmp / 'data' / 'viewer.sqlite3'}",
               VIEWER_BROKER_URL="filesystem://", VIEWER_SECRET_KEY=secrets.token_urlsafe(32))
    (tmp / "data").mkdir()

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    started = time.perf_counter()
    try:
        import sklearn

        log(f"bench/scoring.py: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}, "
            f"scikit-learn {sklearn.__version__}, pyarrow {pa.__version__}; temp dir {tmp}")
        model_path = tmp / "hgb.joblib"
        train(model_path)
        system = System(tmp, env)
        system.setup()
        system.register_model(model_path)
        if args.compiled:
            log(system.manage("compile", MODEL_NAME).strip())
        chunk = args.chunk or choose_chunk(system, model_path, args, env)
        if args.chunk:
            log(f"[chunk] given: {chunk:,} rows per row group")
        env_chunk = dict(env, VIEWER_ROW_GROUP_ROWS=str(chunk))
        system.env = env_chunk
        bench_speed(system, model_path, args, env, chunk)
        if not args.skip_big:
            bench_big(system, args, chunk)
        if not args.skip_upload:
            bench_upload(system, args)
        log(f"\nSummary (load average now {os.getloadavg()[0]:.1f}; {time.perf_counter() - started:.0f}s in all):")
        for name, text, ok in RESULTS:
            log(f"  {'PASS' if ok else 'FAIL' if ok is not None else ' -- '}  {name}: {text}")
        return 0 if all(ok is not False for _n, _t, ok in RESULTS) else 1
    finally:
        stop_all()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
