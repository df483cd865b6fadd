"""Where a 1-row predict request spends its time inside our app (no HTTP server, no network).

    .venv/bin/python bench/phases.py            # ~40 s
    .venv/bin/python bench/phases.py --iterations 5000

Sets up the same model and data dir as bench/predict.py, builds the app in this process and
times, interleaved in every iteration so noise hits all of them alike:

  - one whole request through the WSGI callable (what a gunicorn worker calls): ours (through
    Flask's machinery, as every request) and bare;
  - each phase of ours on the Flask path, called one by one inside a request context:
    before_request hooks (token check, ...), model resolve, body read, JSON parse,
    validation/preparation, predict_proba, building the result, the JSON response,
    after_request hooks + session save;
  - the bare app's phases (json.loads, numpy row, predict_proba, json.dumps);
  - the maths alone (X @ coef.T + intercept, expit), what sklearn's checks wrap.

Medians in microseconds over --iterations. Nothing here is a pass/fail: it explains predict.py.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before numpy

import argparse  # noqa: E402
import importlib  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import predict as bench  # noqa: E402  (bench/predict.py)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=3000, help="1-row requests (default 3000)")
    parser.add_argument("--big-iterations", type=int, default=15, help="10k-row requests (default 15)")
    args = parser.parse_args()
    iterations = max(100, min(args.iterations, 50_000))
    args.big_iterations = max(3, min(args.big_iterations, 100))

    tmp = Path(tempfile.mkdtemp(prefix="bench-phases-"))
    try:
        model, frame, model_path = bench.train(tmp)
        env, token = bench.setup_ours(tmp, model_path)
        os.environ.update({k: v for k, v in env.items() if k.startswith("VIEWER_")})
        path = f"/api/v1/models/{bench.MODEL_NAME}/predict"
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        app, bare = build_apps(model_path)
        run(app, bare, model, bench.body_for(frame.iloc[:1]), path, headers, iterations, "1-row")
        big = frame.sample(bench.BIG_ROWS, replace=True, random_state=1)
        run(app, bare, model, bench.body_for(big), path, headers, args.big_iterations, f"{bench.BIG_ROWS}-row")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def build_apps(model_path):
    from viewer import create_app

    app = create_app()
    os.environ["BENCH_MODEL"] = str(model_path)
    return app, importlib.import_module("bare_app")


def run(app, bare_module, model, one: bytes, path: str, headers: dict[str, str], iterations: int,
        label: str) -> None:
    from flask import jsonify, request
    from werkzeug.test import EnvironBuilder

    from viewer.api.predict import body as read_body
    from viewer.core.payload import parse_mlflow
    from viewer.core.predictor import labels_at, to_jsonable
    from viewer.services import serving

    bare = bare_module.app
    warmup = min(50, iterations)

    def environ_for(p: str, hdrs: dict[str, str]) -> dict:
        return EnvironBuilder(path=p, method="POST", data=one, headers=hdrs).get_environ()

    ours_env, bare_env = environ_for(path, headers), environ_for("/predict", {"Content-Type": "application/json"})

    def wsgi(application, base) -> None:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(one)
        status = []
        body = application(environ, lambda s, h, exc_info=None: status.append(s))
        b"".join(body)
        getattr(body, "close", lambda: None)()
        assert status[0].startswith("200"), status

    coef, intercept = model.coef_, model.intercept_
    fast = bare_module.model  # the bare app's copy without feature_names_in_

    timings: dict[str, list[int]] = {}

    def tick(name: str, t0: int) -> int:
        t1 = time.perf_counter_ns()
        timings.setdefault(name, []).append(t1 - t0)
        return time.perf_counter_ns()

    for i in range(iterations + warmup):
        t = time.perf_counter_ns()
        wsgi(app, ours_env)
        t = tick("ours: whole request (WSGI, through Flask)", t)
        wsgi(bare, bare_env)
        t = tick("bare: whole request (WSGI)", t)

        ctx = app.test_request_context(path, method="POST", data=one, headers=headers)
        ctx.push()
        try:
            t = tick("ours: request context build+push", t)
            rv = app.preprocess_request()
            assert rv is None
            t = tick("ours: before_request hooks (token check, ...)", t)
            served = serving.resolve(bench.MODEL_NAME)
            t = tick("ours: serving.resolve (model ref cache)", t)
            body = read_body()
            t = tick("ours: read body", t)
            table = parse_mlflow(body, request.content_type or "")
            t = tick("ours: parse_mlflow (orjson, checks, float matrix)", t)
            proba_wanted = serving.wants_proba(table.params, request.args.get("output"))
            serving.check_size(table)
            predictor = served.predictor
            X = predictor.prepare(table)
            t = tick("ours: prepare (schema check)", t)
            probabilities = predictor.predict_proba(X)
            t = tick("ours: predict_proba (linear path)" if predictor.linear else "ours: predict_proba (sklearn)", t)
            result = {"predictions": labels_at(predictor.class_labels, probabilities.argmax(axis=1)),
                      "classes": predictor.classes_json, "probabilities": to_jsonable(probabilities)}
            t = tick("ours: labels + to_jsonable", t)
            response = jsonify({"model": served.ref, **result})
            t = tick("ours: jsonify (orjson provider)", t)
            response = app.process_response(response)
            t = tick("ours: after_request hooks + session save", t)
            assert proba_wanted
        finally:
            ctx.pop()
        t = tick("ours: request context pop (teardown)", t)

        payload = json.loads(one)
        t = tick("bare: json.loads", t)
        rows = np.array(payload["dataframe_split"]["data"], dtype=np.float64)
        t = tick("bare: np.array", t)
        proba = fast.predict_proba(rows)
        t = tick("bare: predict_proba (sklearn)", t)
        json.dumps({"predictions": proba.tolist()})
        t = tick("bare: json.dumps", t)
        scores = rows @ coef.T + intercept
        p1 = 1.0 / (1.0 + np.exp(-scores))
        maths = np.hstack([1 - p1, p1])
        tick("maths alone: X @ coef.T + intercept, expit", t)
        if i == warmup - 1:
            timings.clear()  # warm-up

    assert np.allclose(maths, proba)
    print(f"{label} requests: medians over {iterations} interleaved iterations, microseconds "
          f"(load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs)\n")
    print(f"{'phase':<52} {'median':>8} {'p10':>8}")
    ours_sum = 0.0
    for name, values in timings.items():
        arr = np.asarray(values) / 1e3
        med, p10 = float(np.median(arr)), float(np.percentile(arr, 10))
        if name.startswith("ours:") and "whole" not in name:
            ours_sum += med
        print(f"{name:<52} {med:8.1f} {p10:8.1f}")
        if name == "ours: request context pop (teardown)":
            print(f"{'ours: sum of the phases above':<52} {ours_sum:8.1f}")
    print()
    print("The phases run inside app.test_request_context, whose build costs more than the WSGI "
          "environ gunicorn hands over; the whole-request rows are the ones to compare.\n")


if __name__ == "__main__":
    sys.exit(main())
