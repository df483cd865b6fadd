"""What ``?explain=true`` adds to a 1-row prediction, through the app (issue 19's target).

    .venv/bin/python bench/explain.py                 # ~3 min
    .venv/bin/python bench/explain.py --rounds 7 --calls 300

A fresh app in a temp dir (SQLite, ``manage.py init-db``), model hosts on (the default), models
uploaded through ``POST /api/v1/models``; requests go through the WSGI app with Flask's test
client (no HTTP server: what explain adds is the same with one). Each model gets 1-row
``POST /api/v1/models/<name>/predict?output=proba`` calls with and without ``explain=true``,
``--calls`` of each per round, interleaved in ``--rounds`` rounds (the order alternating); each
row of the table is the median over rounds of that round's p50.

Models (20 float features, fitted on 5,000 rows of make_classification):

  hgb        HistGradientBoostingClassifier(max_iter=100)            boosted
  lightgbm   LGBMClassifier(n_estimators=100, num_leaves=31)         boosted
  forest     RandomForestClassifier(100 trees, max_leaf_nodes=1000)  a forest of at most 1,000 leaves per tree
  deep       RandomForestClassifier(100 trees, unbounded depth)      reported, not judged
  pipeline   ColumnTransformer (imputer + scaler, one-hot of 3 strings) -> HistGradientBoosting(100)

Target: explain adds at most 2 ms to the p50 of boosted ensembles and of forests of at most
1,000 leaves per tree.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import io  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import joblib  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
JUDGED = ("hgb", "lightgbm", "forest", "pipeline")
GOAL_MS = 2.0


def models() -> dict[str, tuple[object, pd.DataFrame]]:
    import lightgbm

    X, y = make_classification(n_samples=5000, n_features=20, n_informative=10, random_state=0)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(20)])
    mixed = frame.iloc[:, :17].copy()
    rng = np.random.default_rng(0)
    for name in ("region", "plan", "channel"):
        mixed[name] = rng.choice(["a", "b", "c", "d"], len(frame))
    pipeline = make_pipeline(ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(), StandardScaler()), list(mixed.columns[:17])),
        ("strings", OneHotEncoder(handle_unknown="ignore"), ["region", "plan", "channel"])]),
        HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0))
    return {
        "hgb": (HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0).fit(frame, y), frame),
        "lightgbm": (lightgbm.LGBMClassifier(n_estimators=100, num_leaves=31, n_jobs=1, verbose=-1).fit(frame, y), frame),
        "forest": (RandomForestClassifier(n_estimators=100, max_leaf_nodes=1000, n_jobs=1, random_state=0).fit(frame, y),
                   frame),
        "deep": (RandomForestClassifier(n_estimators=100, n_jobs=1, random_state=0).fit(frame, y), frame),
        "pipeline": (pipeline.fit(mixed, y), mixed),
    }


def p50(client, path: str, body: dict, headers: dict, calls: int) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        response = client.post(path, json=body, headers=headers)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.get_json()
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    env = {**os.environ, "VIEWER_DATA_DIR": str(tmp), "VIEWER_SECRET_KEY": "bench-explain"}
    try:
        subprocess.run([sys.executable, "manage.py", "init-db"], cwd=ROOT, env=env, check=True, capture_output=True)
        made = subprocess.run([sys.executable, "manage.py", "create-user", "bench", "--role", "admin"], cwd=ROOT,
                              env=env, check=True, capture_output=True, text=True).stdout
        assert re.search(r"password", made)
        token = subprocess.run([sys.executable, "manage.py", "create-token", "bench"], cwd=ROOT, env=env, check=True,
                               capture_output=True, text=True).stdout.strip().split()[-1]
        from viewer import create_app

        app = create_app({"DATA_DIR": str(tmp), "SECRET_KEY": "bench-explain", "PREDICTION_LOG": False,
                          "DATABASE_URL": f"sqlite:///{tmp / 'viewer.sqlite3'}", "BROKER_URL": "filesystem://"})
        client = app.test_client()
        headers = {"Authorization": f"Bearer {token}"}
        bodies = {}
        for name, (model, frame) in models().items():
            buffer = io.BytesIO()
            joblib.dump(model, buffer)
            response = client.post("/api/v1/models", headers=headers, content_type="multipart/form-data",
                                   data={"file": (io.BytesIO(buffer.getvalue()), f"{name}.joblib"), "name": name})
            assert response.status_code == 201, response.get_json()
            row = frame.iloc[[7]].to_dict("records")
            bodies[name] = {"dataframe_records": row}
            warm = client.post(f"/api/v1/models/{name}/predict?output=proba&explain=true", json=bodies[name],
                               headers=headers).get_json()
            print(f"[{name}] explained by {warm['explanations']['method']} in {warm['explanations']['output']}")
        table: dict[str, dict[bool, list[float]]] = {name: {False: [], True: []} for name in bodies}
        for r in range(args.rounds):
            for name, body in bodies.items():
                for explain in ((False, True) if r % 2 == 0 else (True, False)):
                    query = "?output=proba" + ("&explain=true" if explain else "")
                    table[name][explain].append(p50(client, f"/api/v1/models/{name}/predict{query}", body, headers,
                                                    args.calls))
        ok = True
        print(f"\n{'model':<10} {'p50 ms':>8} {'explain':>8} {'added':>8}  goal")
        for name, runs in table.items():
            plain, explained = statistics.median(runs[False]), statistics.median(runs[True])
            added = statistics.median([e - p for p, e in zip(runs[False], runs[True])])
            judged = name in JUDGED
            passed = added <= GOAL_MS
            ok &= passed or not judged
            print(f"{name:<10} {plain:8.3f} {explained:8.3f} {added:+8.3f}  "
                  + (f"<= {GOAL_MS} ms: {'PASS' if passed else 'FAIL'}" if judged else "reported"))
        return 0 if ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
