"""Benchmark monitoring: the prediction log at scale, its pages, and drift against Evidently.

    .venv/bin/python bench/monitoring.py                        # 100,000,000 records (~40 minutes)
    .venv/bin/python bench/monitoring.py --records 10000000     # quicker
    .venv/bin/python bench/monitoring.py --skip-evidently       # without Evidently's venv

1. **The log at scale.** A generator (not HTTP) writes ``--records`` records of a loan-style model
   (8 numeric inputs and a text category, LogisticRegression after a ColumnTransformer) straight
   into the log format through ``services.predlog.write_entries``: requests of 20,000 rows spread
   over 7 days, two inputs drifting in the second half. Then the real upkeep: the workers'
   summaries (``services.monitoring.aggregate``, all windows: hour, day, week), compaction
   (``services.logfiles.compact``) and the drift against a 200,000-row reference. Reported: the
   time of each step, records per second, and the log's size on disk before and after compaction.
2. **The page.** ``/models/<name>/monitoring`` (hours, the default) over those records, and over a
   model with 10,000 records in the same windows: bytes, and the median time of 5 renders of each.
   Goals: under 2 MB, and within 3x the small one's time.
3. **Against Evidently.** The same 1,000,000-row reference and current data (2 of 9 columns
   drifted) through our summaries and figures (``viewer.core.drift``), and through Evidently's
   ``DataDriftPreset`` (Evidently ``EVIDENTLY_VERSION`` in ``bench/.evidently-venv``, telemetry off),
   each in its own process: time and peak memory as ratios, and both sides' values against the
   exact ones on the rows (scipy's Wasserstein distance / the reference's standard deviation;
   the Jensen-Shannon distance of the counts). Goal: ours within the stated binning error
   (``STEP / 2`` scales, with 20 % slack for the tails: 0.003).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
EVIDENTLY_VENV = ROOT / "bench" / ".evidently-venv"
EVIDENTLY_VERSION = "0.7.23"
EVIDENTLY_PANDAS = "2.3.3"  # Evidently 0.7.23 imports a pandas 2 internal that pandas 3 removed
NUMERIC = [f"x{i}" for i in range(8)]
BATCH = 20_000
DAYS = 7
GOALS = {"page bytes": 2 * 2**20, "page time / small page time": 3.0, "our drift error": 0.003}


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def rows(n: int, seed: int, drift: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data = {name: rng.normal(10 * i, 1 + i, n) for i, name in enumerate(NUMERIC)}
    if drift:  # two inputs move: a shift of half a standard deviation, and a wider spread
        data["x1"] = data["x1"] + 1.0
        data["x4"] = 40 + (data["x4"] - 40) * 1.5
    data["region"] = rng.choice(["north", "south", "east", "west"], n, p=[0.4, 0.3, 0.2, 0.1] if not drift
                                else [0.25, 0.25, 0.25, 0.25])
    return pd.DataFrame(data)


def fitted_model():
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = rows(5_000, 0)
    y = (X["x0"] + X["x1"] / 10 + (X["region"] == "north") > 2).astype(int)
    return make_pipeline(ColumnTransformer([("num", "passthrough", NUMERIC),
                                            ("cat", OneHotEncoder(handle_unknown="ignore"), ["region"])]),
                         LogisticRegression(max_iter=1000)).fit(X, y)


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def app_for(data_dir: Path):
    env = {**os.environ, "VIEWER_DATA_DIR": str(data_dir), "VIEWER_MODEL_HOSTS": "false",
           "VIEWER_COMPILE_MODELS": "false"}
    subprocess.run([str(VENV_PY), "manage.py", "init-db"], cwd=ROOT, env=env, check=True, capture_output=True)
    from viewer import create_app

    return create_app({"DATA_DIR": str(data_dir), "MODEL_HOSTS": False, "COMPILE_MODELS": False,
                       "WTF_CSRF_ENABLED": False})


def register(app, model, name: str, user):
    import joblib

    from viewer.services import registry

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    buffer.seek(0)
    return registry.register(buffer, name=name, filename=f"{name}.joblib", description="", user=user)[0]


def generate(version, model, records: int, start: float, seconds: float) -> float:
    """Write ``records`` records in requests of BATCH rows spread over ``seconds``; returns the time."""
    from viewer.core.predlog import Entry, new_request_id
    from viewer.services import predlog

    batch = max(1, min(BATCH, records // (DAYS * 24)))  # every hour gets requests, however few the records
    batches = max(1, records // batch)
    pool = [rows(BATCH + batch, 1000 + k, drift=k >= 4) for k in range(8)]  # 4 plain, 4 drifted frames reused
    probas = [model.predict_proba(frame) for frame in pool]
    columns = [{c: f[c].to_numpy(dtype=object if c == "region" else float) for c in f.columns} for f in pool]
    labels = np.array(["0", "1"], dtype=object)
    began = time.perf_counter()
    for b in range(batches):
        at = start + seconds * b / batches
        k = (b % 4) + (4 if b >= batches // 2 else 0)
        n = records - b * batch if b == batches - 1 else batch
        entry = Entry(new_request_id(at), at, 2.0, "v1", n, {c: v[:n] for c, v in columns[k].items()}, None,
                      labels[probas[k][:n].argmax(1)], probas[k][:n])
        predlog.write_entries(version, [entry])
        if b and b % 500 == 0:
            log(f"  {b * batch:,} records written")
    return time.perf_counter() - began


def page_time(client, path: str) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(5):
        began = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - began)
        assert response.status_code == 200, response.status_code
        size = len(response.data)
    return statistics.median(times), size


def run_scale(args, tmp: Path) -> dict:
    from viewer.infra.extensions import db
    from viewer.infra.records import User
    from viewer.services import logfiles, monitoring

    app = app_for(tmp / "data")
    out: dict = {}
    with app.app_context():
        user = User(username="bench", role="admin")
        user.set_password("bench-password-1")
        db.session.add(user)
        db.session.commit()
        model = fitted_model()
        big, small = register(app, model, "big", user), register(app, model, "small", user)
        reference = rows(200_000, 7)
        path = tmp / "reference.parquet"
        reference.to_parquet(path, index=False)
        from viewer.services import datasets

        with path.open("rb") as fh:
            dataset, _job = datasets.upload(fh, "reference.parquet", user)
        for name in ("big", "small"):
            from viewer.services import registry
            monitoring.set_monitor(registry.get_model(name), {"reference": dataset.id})
        now = time.time()
        start = now - now % 3600 - DAYS * 86400
        log(f"writing {args.records:,} records")
        out["write_s"] = generate(big, model, args.records, start, DAYS * 86400)
        generate(small, model, 10_000, start, DAYS * 86400)
        predlog_dir = tmp / "data" / "predlog"
        out["disk_before"] = du(predlog_dir)
        log("summarising (the workers' upkeep)")
        began = time.perf_counter()
        while monitoring.aggregate(limit=500):
            pass
        out["aggregate_s"] = time.perf_counter() - began
        began = time.perf_counter()
        out["drift_windows"] = sum(monitoring.refresh_drift(m) for m in
                                   [registry.get_model("big"), registry.get_model("small")])
        out["drift_s"] = time.perf_counter() - began
        log("compacting")
        began = time.perf_counter()
        from datetime import timedelta
        from viewer.infra.records import utcnow
        out["compacted_files"] = logfiles.compact(now=utcnow() + timedelta(hours=1))
        out["compact_s"] = time.perf_counter() - began
        out["disk_after"] = du(predlog_dir)
    client = app.test_client()
    client.post("/login", data={"username": "bench", "password": "bench-password-1"})
    page_time(client, "/models/small/monitoring")  # warm
    out["small_page_s"], out["small_page_bytes"] = page_time(client, "/models/small/monitoring")
    out["page_s"], out["page_bytes"] = page_time(client, "/models/big/monitoring")
    return out


OURS = r'''
import json, resource, sys, time
import numpy as np, pandas as pd
from viewer.core.drift import stats
from viewer.core.drift.sketch import CategoricalSketch, Grid, NumericSketch
began = time.perf_counter()
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
out = {}
for column in ref.columns:
    if column == "region":
        r, c = CategoricalSketch().add(ref[column].to_numpy(object)), CategoricalSketch().add(cur[column].to_numpy(object))
        out[column] = stats.jensen_shannon(r, c)
    else:
        grid = Grid.for_values(ref[column].to_numpy()[:100_000])
        r = NumericSketch(grid).add(ref[column].to_numpy())
        c = NumericSketch(grid).add(cur[column].to_numpy())
        out[column] = stats.wasserstein(r, c)
print(json.dumps({"seconds": time.perf_counter() - began, "values": out,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
'''

THEIRS = r'''
import json, resource, sys, time
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
began = time.perf_counter()
ref, cur = pd.read_parquet(sys.argv[1]), pd.read_parquet(sys.argv[2])
result = Report([DataDriftPreset()]).run(cur, ref).dict()
seconds = time.perf_counter() - began
values = {}
for metric in result["metrics"]:
    name = metric.get("metric_name") or metric.get("metric_id") or ""
    if "ValueDrift" in name and "column=" in name:
        column = name.split("column=")[1].split(",")[0].split(")")[0]
        values[column] = metric["value"]
print(json.dumps({"seconds": seconds, "values": values,
                  "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
'''


def ensure_evidently() -> Path:
    python = EVIDENTLY_VENV / "bin" / "python"
    marker = EVIDENTLY_VENV / "bench-installed.txt"
    pins = [f"evidently=={EVIDENTLY_VERSION}", f"pandas=={EVIDENTLY_PANDAS}",
            f"pyarrow=={__import__('pyarrow').__version__}"]
    if marker.exists() and marker.read_text().split() == pins and python.exists():
        return python
    log(f"creating {EVIDENTLY_VENV.relative_to(ROOT)} with {' '.join(pins)} (once)")
    base = getattr(sys, "_base_executable", None) or sys.executable
    subprocess.run([base, "-m", "venv", "--clear", str(EVIDENTLY_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *pins], check=True,
                   timeout=1800)
    marker.write_text("\n".join(pins) + "\n")
    return python


def run_evidently(tmp: Path) -> dict:
    from scipy import stats as sp
    from scipy.spatial import distance

    ref, cur = rows(1_000_000, 11), rows(1_000_000, 12, drift=True)
    ref_path, cur_path = tmp / "ref.parquet", tmp / "cur.parquet"
    ref.to_parquet(ref_path, index=False)
    cur.to_parquet(cur_path, index=False)
    exact = {c: float(sp.wasserstein_distance(ref[c], cur[c]) / np.std(ref[c])) for c in NUMERIC}
    keys = sorted(set(ref["region"]) | set(cur["region"]))
    counts = [np.array([(frame["region"] == k).sum() for k in keys], float) for frame in (ref, cur)]
    exact["region"] = float(distance.jensenshannon(counts[0] / counts[0].sum(), counts[1] / counts[1].sum()))
    env = {**os.environ, "DO_NOT_TRACK": "1", "EVIDENTLY_DISABLE_TELEMETRY": "1", "OMP_NUM_THREADS": "1"}
    ours = json.loads(subprocess.run([str(VENV_PY), "-c", OURS, str(ref_path), str(cur_path)], cwd=ROOT, env=env,
                                     check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1])
    theirs = json.loads(subprocess.run([str(ensure_evidently()), "-c", THEIRS, str(ref_path), str(cur_path)],
                                       cwd=tmp, env=env, check=True, capture_output=True, text=True
                                       ).stdout.strip().splitlines()[-1])
    return {"exact": exact, "ours": ours, "theirs": theirs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000_000)
    parser.add_argument("--skip-evidently", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    ok = True
    try:
        if not args.skip_scale:
            s = run_scale(args, tmp)
            print(f"\nThe log at scale: {args.records:,} records, 9 inputs, over {DAYS} days")
            print(f"  write (straight into the log format)  {s['write_s']:8.1f} s  {args.records / s['write_s']:,.0f} records/s")
            print(f"  summaries (hour, day, week windows)   {s['aggregate_s']:8.1f} s  {args.records / s['aggregate_s']:,.0f} records/s")
            print(f"  drift of {s['drift_windows']} windows                 {s['drift_s']:8.1f} s")
            print(f"  compaction ({s['compacted_files']} files merged)        {s['compact_s']:8.1f} s")
            print(f"  on disk: {s['disk_before'] / 2**20:,.0f} MiB written, {s['disk_after'] / 2**20:,.0f} MiB compacted "
                  f"({s['disk_after'] / args.records:.1f} bytes a record)")
            ratio = s["page_s"] / s["small_page_s"]
            print(f"  monitoring page: {s['page_bytes'] / 1024:,.0f} KiB, {s['page_s'] * 1000:.0f} ms; over 10,000 records "
                  f"{s['small_page_bytes'] / 1024:,.0f} KiB, {s['small_page_s'] * 1000:.0f} ms: {ratio:.2f}x")
            for label, value, goal in (("page bytes", s["page_bytes"], GOALS["page bytes"]),
                                       ("page time / small page time", ratio, GOALS["page time / small page time"])):
                passed = value <= goal
                ok &= passed
                print(f"  {'PASS' if passed else 'FAIL'}  {label:<32} {value:,.2f} (goal <= {goal:,})")
        if not args.skip_evidently:
            e = run_evidently(tmp)
            ours, theirs, exact = e["ours"], e["theirs"], e["exact"]
            print("\nAgainst Evidently's DataDriftPreset, 1,000,000 reference and current rows, 9 columns")
            print(f"  time: ours {ours['seconds']:.1f} s, Evidently {theirs['seconds']:.1f} s: "
                  f"{theirs['seconds'] / ours['seconds']:.1f}x faster")
            print(f"  peak memory: ours {ours['peak_kib'] / 1024:,.0f} MiB, Evidently {theirs['peak_kib'] / 1024:,.0f} MiB: "
                  f"{theirs['peak_kib'] / ours['peak_kib']:.1f}x less")
            print(f"  {'column':<8} {'exact':>9} {'ours':>9} {'ours-exact':>11} {'Evidently':>10} {'Ev-exact':>10}")
            worst = 0.0
            for column, value in exact.items():
                mine, their = ours["values"][column], theirs["values"].get(column)
                worst = max(worst, abs(mine - value))
                their_text = f"{their:10.4f} {their - value:+10.4f}" if isinstance(their, (int, float)) else f"{'-':>10}"
                print(f"  {column:<8} {value:9.4f} {mine:9.4f} {mine - value:+11.5f} {their_text}")
            passed = worst <= GOALS["our drift error"]
            ok &= passed
            print(f"  {'PASS' if passed else 'FAIL'}  our largest error {worst:.5f} (goal <= {GOALS['our drift error']})")
        print("\nALL PASS" if ok else "\nNOT ALL PASS")
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
