"""Result pages at 1,000 vs 10,000,000 rows: server-side render time and the bytes shipped for plots.

    .venv/bin/python bench/pages.py                     # 1k vs 10M rows, binary + multiclass + regression (~3-5 min)
    .venv/bin/python bench/pages.py --big 1000000       # quicker: 1k vs 1M
    .venv/bin/python bench/pages.py --tasks binary --requests 31
    .venv/bin/python bench/pages.py --no-browser        # skip the Chromium check of what the page fetches

The issue's targets, per task type (exit code 0 only if every one passes):

1. a 10,000,000-row job's result page renders server-side in under 3x the time of a 1,000-row
   job's page (median of ``--requests`` GETs of each, interleaved);
2. the HTML + JSON shipped for its plots is under 2 MB (the page's bytes, which hold every plot as
   a json_item data block, plus any JSON the page fetches after loading; Chromium records those).

How the jobs are made: no worker runs. For each size the script draws synthetic scores (a
logistic model's probabilities for binary, 4 classes for multiclass, a noisy linear prediction for
regression), runs ``viewer.core.metrics`` on them exactly as a scoring job's finalise step does
(``classification_metrics`` + ``classification_aggregates``, ``regression_metrics`` +
``regression_aggregates``) and stores the result in a ``Job`` row (kind ``score``, state
``done``) of a fresh app in a temp dir (SQLite, ``manage.py init-db``). The page therefore draws
exactly what a real job of that size stores; the job's output files (the download buttons) do not
exist, which the page renders as "The output files are gone" for both sizes alike. Times are
measured through the WSGI app with Flask's test client (no HTTP server, no network), logged in as
a viewer, so they are the view + template + Bokeh ``json_item`` work and nothing else.

BokehJS itself (``/assets/bokeh/<version>/*.min.js``, about 1 MB, cached for a year) and the
static CSS/JS are the same for every page and are reported, not counted.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_RATIO = 3.0
TARGET_BYTES = 2 * 1000 * 1000  # 2 MB
CHROMIUM = os.environ.get("VIEWER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
MULTI_CLASSES = ["setosa", "versicolor", "virginica", "unknown"]


def synthetic(task: str, n: int, seed: int = 0) -> dict:
    """The stored result (metrics + aggregates) of a job over ``n`` synthetic rows, computed by
    ``viewer.core.metrics`` as a scoring job's finalise step computes it."""
    from viewer.core.metrics import (classification_aggregates, classification_metrics, regression_aggregates,
                                     regression_metrics)

    rng = np.random.default_rng(seed)
    if task == "binary":
        classes = ["stay", "churn"]
        latent = rng.normal(size=n)
        p1 = 1 / (1 + np.exp(-(1.6 * latent + rng.normal(scale=0.8, size=n))))
        truth = (rng.random(n) < 1 / (1 + np.exp(-2.0 * latent))).astype(np.int64)
        y_true = np.asarray(classes, dtype=object)[truth]
        proba = np.column_stack([1 - p1, p1])
        del latent, p1, truth
    elif task == "multiclass":
        classes = MULTI_CLASSES
        k = len(classes)
        truth = rng.integers(0, k, size=n)
        logits = rng.normal(size=(n, k))
        logits[np.arange(n), truth] += 1.5
        proba = np.exp(logits - logits.max(axis=1, keepdims=True))
        proba /= proba.sum(axis=1, keepdims=True)
        y_true = np.asarray(classes, dtype=object)[truth]
        del logits, truth
    else:
        y_true = rng.normal(50, 15, size=n)
        y_pred = 0.9 * y_true + 5 + rng.normal(scale=6, size=n)
        return {"metrics": regression_metrics(y_true, y_pred), "aggregates": regression_aggregates(y_true, y_pred)}
    y_pred = np.asarray(classes, dtype=object)[np.argmax(proba, axis=1)]
    metrics = classification_metrics(y_true, y_pred, proba, classes)
    aggregates = classification_aggregates(y_true, proba, y_pred, classes)
    return {"metrics": metrics, "aggregates": aggregates}


def store_job(app, task: str, n: int, result: dict) -> str:
    from viewer.infra.extensions import db
    from viewer.infra.records import Job, User, utcnow

    classes = {"binary": ["stay", "churn"], "multiclass": MULTI_CLASSES}.get(task)
    with app.app_context():
        now = utcnow()
        job = Job(kind="score", state="done", result=result, progress_done=n, progress_total=n,
                  params={"model": f"bench-{task}/1", "model_name": f"bench-{task}", "model_version": 1,
                          "dataset": f"synthetic {n:,} rows", "target": "y",
                          "kind": "regressor" if task == "regression" else "classifier", "classes": classes},
                  created_by=User.by_name("analyst"), created_at=now, started_at=now, finished_at=now)
        db.session.add(job)
        db.session.commit()
        return job.id


def data_blocks(html: str) -> tuple[int, int]:
    """How many ``<script type="application/json">`` blocks the page holds and their bytes."""
    blocks = re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', html, re.S)
    return len(blocks), sum(len(b.encode()) for b in blocks)


def time_pages(client, paths: dict[str, str], requests: int) -> dict[str, list[float]]:
    """Interleaved GETs: each round requests every page once, in rotating order."""
    times: dict[str, list[float]] = {label: [] for label in paths}
    labels = list(paths)
    for label in labels:  # warm-up: templates compiled, caches filled, first-request work done
        for _ in range(2):
            assert client.get(paths[label]).status_code == 200
    for r in range(requests):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        for label in order:
            t0 = time.perf_counter()
            response = client.get(paths[label])
            body = response.get_data()
            times[label].append(time.perf_counter() - t0)
            assert response.status_code == 200 and body
    return times


def browser_fetches(app, path: str, username: str, password: str) -> dict:
    """Load the page in Chromium: the bytes of every response by kind, plots rendered, errors."""
    from playwright.sync_api import sync_playwright
    from werkzeug.serving import make_server

    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    out = {"document": 0, "json": 0, "static": 0, "other": 0, "errors": [], "urls_json": []}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(base_url=base)
            page.on("console", lambda m: m.type == "error" and out["errors"].append(m.text))
            page.on("pageerror", lambda e: out["errors"].append(str(e)))
            page.goto("/login")
            page.fill("input[name=username]", username)
            page.fill("input[name=password]", password)
            with page.expect_navigation():
                page.click("button[type=submit]")
            responses = []
            page.on("response", lambda r: responses.append(r))
            t0 = time.perf_counter()
            page.goto(path, wait_until="load")
            page.wait_for_function("() => window.Bokeh && Bokeh.documents.length >= "
                                   "document.querySelectorAll('script[data-bokeh-target]').length", timeout=60_000)
            out["plots_ready_s"] = time.perf_counter() - t0
            out["documents"] = page.evaluate("() => Bokeh.documents.length")
            for response in responses:
                try:
                    size = len(response.body())
                except Exception:  # noqa: BLE001 - a redirect or aborted response has no body
                    size = 0
                kind = response.headers.get("content-type", "")
                if response.request.resource_type == "document":
                    out["document"] += size
                elif "json" in kind:
                    out["json"] += size
                    out["urls_json"].append(response.url)
                elif "/static/" in response.url or "/assets/" in response.url:
                    out["static"] += size
                else:
                    out["other"] += size
            browser.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--big", type=int, default=10_000_000)
    parser.add_argument("--tasks", default="binary,multiclass,regression")
    parser.add_argument("--requests", type=int, default=21, help="timed GETs of each page (median)")
    parser.add_argument("--no-browser", action="store_true", help="skip the Chromium check")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    started = time.monotonic()

    tmp = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    env = {**os.environ, "VIEWER_DATA_DIR": str(tmp), "VIEWER_SECRET_KEY": "bench-pages", "OMP_NUM_THREADS": "1"}
    try:
        subprocess.run([sys.executable, "manage.py", "init-db"], cwd=ROOT, env=env, check=True, capture_output=True)
        from viewer import create_app
        from viewer.infra.extensions import db
        from viewer.infra.records import User

        app = create_app({"DATA_DIR": str(tmp), "SECRET_KEY": "bench-pages",
                          "DATABASE_URL": f"sqlite:///{tmp / 'viewer.sqlite3'}", "BROKER_URL": "filesystem://"})
        password = "bench pages password"
        with app.app_context():
            user = User(username="analyst", role="viewer")
            user.set_password(password)
            db.session.add(user)
            db.session.commit()
        client = app.test_client()
        login_page = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', login_page).group(1)
        response = client.post("/login", data={"username": "analyst", "password": password, "csrf_token": token})
        assert response.status_code == 302, f"login failed: {response.status_code}"

        print(f"Result pages: {args.small:,} vs {args.big:,} rows; {args.requests} timed GETs per page, interleaved.")
        print("Jobs: synthetic scores -> viewer.core.metrics (as the finalise step) -> a done Job row; no worker.\n")
        paths: dict[str, str] = {}
        compute: dict[str, float] = {}
        stored: dict[str, int] = {}
        for task in tasks:
            for n in (args.small, args.big):
                t0 = time.perf_counter()
                result = synthetic(task, n)
                compute[f"{task}/{n}"] = time.perf_counter() - t0
                stored[f"{task}/{n}"] = len(json.dumps(result, allow_nan=False).encode())
                paths[f"{task}/{n}"] = f"/jobs/{store_job(app, task, n, result)}"
                del result
                gc.collect()
                print(f"  {task:<10} {n:>12,} rows: metrics + aggregates in {compute[f'{task}/{n}']:6.1f} s, "
                      f"stored result {stored[f'{task}/{n}'] / 1000:7.1f} kB")
        print()

        times = time_pages(client, paths, args.requests)
        pages = {label: client.get(path).get_data(as_text=True) for label, path in paths.items()}
        static = 0
        for url in sorted(set(re.findall(r'<script src="([^"]+)"', "".join(pages.values()))) |
                          set(re.findall(r'<link rel="stylesheet" href="([^"]+)"', "".join(pages.values())))):
            response = client.get(url)
            static += len(response.get_data())
            response.close()

        browser: dict[str, dict] = {}
        if not args.no_browser:
            if os.access(CHROMIUM, os.X_OK):
                for task in tasks:
                    label = f"{task}/{args.big}"
                    browser[label] = browser_fetches(app, paths[label], "analyst", password)
            else:
                print(f"(no Chromium at {CHROMIUM}: what the page fetches is read from its HTML only)\n")

        print(f"{'page':<22} {'median ms':>10} {'p10-p90 ms':>16} {'HTML kB':>9} {'plot data kB':>13} "
              f"{'blocks':>6} {'fetched JSON kB':>16}")
        for label in paths:
            t = sorted(times[label])
            html = pages[label]
            n_blocks, block_bytes = data_blocks(html)
            fetched = browser.get(label, {}).get("json")
            print(f"{label:<22} {statistics.median(t) * 1000:10.1f} "
                  f"{t[len(t) // 10] * 1000:7.1f}-{t[(len(t) * 9) // 10] * 1000:<8.1f} "
                  f"{len(html.encode()) / 1000:9.1f} {block_bytes / 1000:13.1f} {n_blocks:6d} "
                  f"{'-' if fetched is None else f'{fetched / 1000:.1f}':>16}")
        print(f"\nShared static files these pages load (BokehJS, CSS, page scripts; cached, not counted): "
              f"{static / 1e6:.2f} MB")
        for label, seen in browser.items():
            print(f"Chromium, {label}: {seen['documents']} Bokeh documents drawn in {seen['plots_ready_s']:.2f} s; "
                  f"document {seen['document'] / 1000:.1f} kB, JSON fetched {seen['json'] / 1000:.1f} kB "
                  f"{seen['urls_json'] or ''}, static {seen['static'] / 1e6:.2f} MB, other {seen['other'] / 1000:.1f} kB; "
                  f"console errors: {len(seen['errors'])} {seen['errors'][:3] if seen['errors'] else ''}")

        print(f"\nTargets ({time.monotonic() - started:.0f} s in all; load average now "
              f"{os.getloadavg()[0]:.1f}):")
        failed = 0
        for task in tasks:
            small, big = f"{task}/{args.small}", f"{task}/{args.big}"
            ratio = statistics.median(times[big]) / statistics.median(times[small])
            ok = ratio < TARGET_RATIO
            failed += not ok
            print(f"  {'PASS' if ok else 'FAIL'}  {task:<10} render {args.big:,} rows / {args.small:,} rows: "
                  f"{ratio:.2f}x ({statistics.median(times[big]) * 1000:.1f} vs "
                  f"{statistics.median(times[small]) * 1000:.1f} ms; target < {TARGET_RATIO:g}x)")
            shipped = len(pages[big].encode()) + browser.get(big, {}).get("json", 0)
            ok = shipped < TARGET_BYTES and not browser.get(big, {}).get("errors")
            failed += not ok
            print(f"  {'PASS' if ok else 'FAIL'}  {task:<10} HTML + JSON for the plots at {args.big:,} rows: "
                  f"{shipped / 1e6:.3f} MB (target < {TARGET_BYTES / 1e6:g} MB"
                  f"{'; console errors in Chromium' if browser.get(big, {}).get('errors') else ''})")
        return 1 if failed else 0
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
