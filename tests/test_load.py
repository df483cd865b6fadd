"""Load, bounded and on loopback: 32 connections of 1-row predictions against gunicorn (2 workers)
for LOAD_SECONDS (60 by default), while datasets are uploaded and scoring jobs submitted and run by
a real worker. Zero non-2xx answers, every job done, no memory growth in the web workers.
p50/p99 and the request count are printed (on the terminal, also without -s)."""

from __future__ import annotations

import http.client
import io
import json
import os
import threading
import time

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

from tests.support import children, rss_kib, wait_for_job

pytestmark = pytest.mark.chaos
SECONDS = float(os.environ.get("LOAD_SECONDS", "60"))
CONNECTIONS = 32


def test_predictions_under_load_while_uploads_and_jobs_run(app, client, auth, worker, gunicorn, capsys):
    proc, port = gunicorn
    X, y = make_classification(n_samples=2000, n_features=20, random_state=0)
    columns = [f"f{i}" for i in range(20)]
    model = LogisticRegression(max_iter=500).fit(pd.DataFrame(X, columns=columns), y)
    headers = auth.bearer("scientist")
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    assert client.post("/api/v1/models", headers=headers, content_type="multipart/form-data",
                       data={"file": (io.BytesIO(buffer.getvalue()), "m.joblib"), "name": "load"}).status_code == 201
    body = json.dumps({"dataframe_split": {"columns": columns, "data": [X[0].tolist()]}}).encode()
    expected = model.predict(pd.DataFrame(X[:1], columns=columns)).tolist()
    request_headers = {**headers, "Content-Type": "application/json"}

    stop = time.monotonic() + SECONDS
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def shooter() -> None:
        mine: list[float] = []
        conn = None
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                conn.request("POST", "/api/v1/models/load/predict", body=body, headers=request_headers)
                response = conn.getresponse()
                payload = response.read()
                if response.status != 200 or json.loads(payload)["predictions"] != expected:
                    with lock:
                        failures.append(f"{response.status} {payload[:200]!r}")
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            mine.append(time.perf_counter() - started)
        if conn is not None:
            conn.close()
        with lock:
            latencies.extend(mine)

    jobs: list[str] = []

    def side_work() -> None:
        import requests

        with requests.Session() as session:
            _side_work(session)

    def _side_work(session) -> None:
        base = f"http://127.0.0.1:{port}"
        i = 0
        while time.monotonic() < stop - 5:
            frame = pd.DataFrame(X[i * 100:(i + 1) * 100 + 400], columns=columns)
            answer = session.post(f"{base}/api/v1/datasets", headers=headers,
                                  files={"file": (f"part{i}.csv", frame.to_csv(index=False).encode())})
            if answer.status_code != 201:
                failures.append(f"upload {answer.status_code} {answer.text[:200]}")
                break
            job = session.post(f"{base}/api/v1/jobs", headers=headers,
                               json={"model": "load", "dataset": answer.json()["id"]})
            if job.status_code != 202:
                failures.append(f"job {job.status_code} {job.text[:200]}")
                break
            jobs.append(job.json()["id"])
            i += 1
            time.sleep(3)

    memory: list[tuple[float, int]] = []

    def sampler() -> None:
        while time.monotonic() < stop:
            memory.append((time.monotonic(), sum(rss_kib(p) for p in children(proc.pid))))
            time.sleep(2)

    threads = [threading.Thread(target=shooter) for _ in range(CONNECTIONS)]
    threads += [threading.Thread(target=side_work), threading.Thread(target=sampler)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not failures, f"{len(failures)} failures, first: {failures[:5]}"
    assert jobs, "no job was submitted during the run"
    for job_id in jobs:
        assert wait_for_job(client, headers, job_id, timeout=120)["state"] == "done"
    lat = np.array(latencies) * 1000
    warm = [kib for t, kib in memory if t > stop - SECONDS * 0.6]  # after the first 40 % (imports, caches, pools)
    growth = (warm[-1] - warm[0]) / 1024 if len(warm) >= 2 else 0.0
    with capsys.disabled():  # the figures belong in the CI log
        print(f"\nload: {len(lat)} requests in {SECONDS:.0f} s at {CONNECTIONS} connections "
              f"({len(lat) / SECONDS:.0f}/s), 0 non-2xx; p50 {np.percentile(lat, 50):.1f} ms, "
              f"p99 {np.percentile(lat, 99):.1f} ms, max {lat.max():.1f} ms; {len(jobs)} uploads + jobs done; "
              f"web workers RSS {warm[0] / 1024:.0f} -> {warm[-1] / 1024:.0f} MiB "
              f"(samples: {[round(k / 1024) for _t, k in memory]})")
    assert growth < 40, f"web workers grew {growth:.0f} MiB during the run"
