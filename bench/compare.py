"""Benchmark the model comparison: the compare job's work over N rows, and the compare page's
request time and weight at N rows against 1,000 rows.

    .venv/bin/python bench/compare.py                  # 10M rows (about 3 minutes, ~2 GB of /tmp)
    .venv/bin/python bench/compare.py --rows 1000000   # quicker

Everything lives in a temporary directory (deleted at the end). Two scoring jobs' outputs are
generated as the workers write them (part files of 100k rows: row, prediction, proba_0, proba_1,
target for a binary task; row, prediction, target for regression), so no model runs here.

1. The compare job's body (``viewer.core.compare.compare_outputs``: paired bootstrap CIs, the 50
   most-disagreeing rows) runs in a fresh subprocess; its wall time, CPU time and peak RSS
   (VmHWM; ru_maxrss would include the parent's RSS at fork) are printed beside a baseline measured in the same run: a subprocess that only
   reads the same columns of the same parts batch by batch (what any streaming pass costs).
   Targets: a few seconds at 10M rows, and a peak RSS that does not grow with the rows (printed
   for N and for N/10).
2. The compare page (``GET /jobs/compare``) through the Flask test client on a fresh SQLite app:
   two finished jobs whose stored metrics and aggregates were computed from N rows by the real
   finalise step (``viewer.core.scoring.summarize``), against two over 1,000 rows. Target: the
   N-row page takes < 3x the 1,000-row page's time (median of 9) and ships < 2 MB.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PART_ROWS = 100_000

CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
mode, task, dirs = sys.argv[1], sys.argv[2], sys.argv[3:]
t0, c0 = time.perf_counter(), time.process_time()
if mode == "compare":
    from viewer.core import compare
    from viewer.core.scoring import parts_in
    classes = [0, 1] if task == "binary" else None
    result = compare.compare_outputs([compare.Source(parts_in(d)) for d in dirs], task, classes, True)
    extra = {{"main": [d for d in result["differences"] if d["metric"] == result["main_metric"]][0]}}
else:
    import pyarrow.parquet as pq
    from viewer.core.compare import BATCH_ROWS
    from viewer.core.scoring import parts_in
    cols = ["row", "prediction", "target"] + (["proba_0", "proba_1"] if task == "binary" else [])
    n = 0
    for d in dirs:
        for p in parts_in(d):
            for b in pq.ParquetFile(p).iter_batches(batch_size=BATCH_ROWS, columns=cols):
                n += b.num_rows
    extra = {{"rows": n}}
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({{"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0, "rss_mb": hwm / 1024, **extra}}))
"""


def write_job(directory: Path, rows: int, task: str, seed: int, strength: float) -> None:
    from viewer.core.scoring import part_path, write_part

    rng = np.random.default_rng(seed)
    y_rng = np.random.default_rng(0)  # the same target for every job
    for index, start in enumerate(range(0, rows, PART_ROWS)):
        n = min(PART_ROWS, rows - start)
        if task == "binary":
            y = y_rng.integers(0, 2, n)
            p = 1 / (1 + np.exp(-(rng.normal(size=n) + strength * (2 * y - 1))))
            table = pa.table({"row": np.arange(start, start + n, dtype=np.int64), "prediction": (p >= 0.5).astype(np.int64),
                              "proba_0": 1 - p, "proba_1": p, "target": y})
        else:
            y = y_rng.normal(size=n) * 10
            table = pa.table({"row": np.arange(start, start + n, dtype=np.int64), "prediction": y + rng.normal(size=n) / strength,
                              "target": y})
        write_part(table, part_path(directory, index))


def child(mode: str, task: str, dirs: list[Path]) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD.format(root=str(ROOT)), mode, task, *map(str, dirs)],
                         capture_output=True, text=True, check=True, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_job(tmp: Path, rows: int, task: str) -> dict:
    dirs = [tmp / f"{task}-{rows}-{i}" for i in range(2)]
    t0 = time.perf_counter()
    for i, d in enumerate(dirs):
        write_job(d, rows, task, seed=i + 1, strength=1.2 - 0.4 * i)
    print(f"  generated 2 x {rows:,} rows in {time.perf_counter() - t0:.0f} s", flush=True)
    read = child("read", task, dirs)
    cmp = child("compare", task, dirs)
    return {"dirs": dirs, "read": read, "compare": cmp}


def bench_page(tmp: Path, big_dirs: list[Path], big_rows: int) -> None:
    from viewer import create_app
    from viewer.core.scoring import parts_in, summarize
    from viewer.infra.extensions import db
    from viewer.infra.records import Dataset, Job, User

    small_dirs = [tmp / f"page-small-{i}" for i in range(2)]
    for i, d in enumerate(small_dirs):
        write_job(d, 1000, "binary", seed=i + 1, strength=1.2 - 0.4 * i)
    t0 = time.perf_counter()
    summaries = {"small": [summarize(parts_in(d), "classifier", [0, 1], True) for d in small_dirs],
                 "big": [summarize(parts_in(d), "classifier", [0, 1], True) for d in big_dirs]}
    print(f"  finalise step (metrics + aggregates) for the page's jobs: {time.perf_counter() - t0:.0f} s", flush=True)
    data_dir = tmp / "app"
    app = create_app({"TESTING": True, "WTF_CSRF_ENABLED": False, "DATA_DIR": str(data_dir),
                      "DATABASE_URL": f"sqlite:///{data_dir / 'viewer.sqlite3'}", "BROKER_URL": "filesystem://",
                      "SECRET_KEY": "bench", "LOGIN_RATE_LIMIT": "1000 per minute"})
    ids: dict[str, list[str]] = {}
    with app.app_context():
        from flask_migrate import upgrade

        upgrade(directory=str(ROOT / "viewer" / "migrations"))
        user = User(username="bench", role="viewer")
        user.set_password("bench-password-123")
        db.session.add(user)
        for size, results in summaries.items():
            dataset = Dataset(name=f"{size}.csv", state="ready", n_rows=big_rows if size == "big" else 1000)
            db.session.add(dataset)
            db.session.flush()
            ids[size] = []
            for i, result in enumerate(results):
                job = Job(kind="score", state="done", dataset_id=dataset.id, result=result,
                          params={"model": f"model{i}/1", "model_name": f"model{i}", "model_version": 1,
                                  "kind": "classifier", "classes": [0, 1], "target": "target"},
                          progress_done=dataset.n_rows, progress_total=dataset.n_rows)
                db.session.add(job)
                db.session.flush()
                ids[size].append(job.id)
        db.session.commit()
    client = app.test_client()
    assert client.post("/login", data={"username": "bench", "password": "bench-password-123"}).status_code == 302
    urls = {size: "/jobs/compare?" + "&".join(f"jobs={i}" for i in ids[size]) for size in ids}
    first: dict[str, float] = {}
    for size in ("small", "big"):  # the first view builds the bokeh figures (then cached per process)
        t0 = time.perf_counter()
        response = client.get(urls[size])
        first[size] = time.perf_counter() - t0
        assert response.status_code == 200, response.get_data(as_text=True)[:500]
    timings: dict[str, tuple[float, int]] = {}
    for size in ("small", "big", "small", "big"):  # measured interleaved, the second round kept
        times = []
        for _ in range(9):
            t0 = time.perf_counter()
            response = client.get(urls[size])
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.get_data(as_text=True)[:500]
        timings[size] = (statistics.median(times), len(response.data))
    small, big = timings["small"], timings["big"]
    ratio = big[0] / small[0]
    print(f"  page, 2 jobs x 1,000 rows:  first view {first['small'] * 1000:7.1f} ms, then {small[0] * 1000:6.1f} ms "
          f"(median of 9), {small[1] / 1024:7.1f} KiB")
    print(f"  page, 2 jobs x {big_rows:,} rows: first view {first['big'] * 1000:7.1f} ms, then {big[0] * 1000:6.1f} ms "
          f"(median of 9), {big[1] / 1024:7.1f} KiB")
    print(f"  ratio {ratio:.2f}x, first views {first['big'] / first['small']:.2f}x (target < 3x): "
          f"{'PASS' if max(ratio, first['big'] / first['small']) < 3 else 'FAIL'}; "
          f"weight {big[1] / 2**20:.2f} MB (target < 2 MB): {'PASS' if big[1] < 2 * 2**20 else 'FAIL'}")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--skip-page", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    try:
        for task in ("binary", "regression"):
            print(f"{task}: compare job over 2 jobs", flush=True)
            runs = {}
            for rows in (args.rows // 10, args.rows):
                runs[rows] = bench_job(tmp, rows, task)
                r, c = runs[rows]["read"], runs[rows]["compare"]
                main = c["main"]
                print(f"  {rows:>11,} rows: compare {c['wall']:6.2f} s wall, {c['cpu']:6.2f} s CPU, peak RSS "
                      f"{c['rss_mb']:6.0f} MB | baseline read {r['wall']:5.2f} s, {r['rss_mb']:4.0f} MB | "
                      f"{c['wall'] / r['wall']:.1f}x the read; {rows / c['wall'] / 1e6:.2f} M rows/s; "
                      f"{main['metric']} diff {main['difference']:+.4f} [{main['low']:+.4f}, {main['high']:+.4f}]",
                      flush=True)
            small, big = runs[args.rows // 10]["compare"], runs[args.rows]["compare"]
            print(f"  peak RSS at {args.rows:,} vs {args.rows // 10:,} rows: {big['rss_mb']:.0f} vs "
                  f"{small['rss_mb']:.0f} MB ({'bounded' if big['rss_mb'] < small['rss_mb'] * 1.5 else 'GROWS'})")
            if task == "binary" and not args.skip_page:
                bench_page(tmp, runs[args.rows]["dirs"], args.rows)
            for run in runs.values():
                for d in run["dirs"]:
                    shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
