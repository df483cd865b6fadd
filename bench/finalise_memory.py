"""Peak memory of a scoring job's finalise step (``viewer.core.scoring.summarize``) at 10M rows.

    .venv/bin/python bench/finalise_memory.py                     # binary, multiclass (5), regression; ~5 min idle
    .venv/bin/python bench/finalise_memory.py --rows 1000000      # quicker
    .venv/bin/python bench/finalise_memory.py --tasks binary --compare none   # this tree only
    .venv/bin/python bench/finalise_memory.py --compare HEAD~1    # "before" = another commit

For each task it writes synthetic output parts to a temp dir under /tmp (100,000-row parts in the
format ``score_chunk`` writes: row, prediction, proba_<class>..., target; labels are int64 like
a model with integer classes), then runs ``summarize`` on them in a fresh subprocess per code
version: ``--compare REF`` (default HEAD: the committed ``viewer/`` extracted with
``git archive``, nothing in the work tree changes) and this work tree. Each subprocess imports
numpy, pandas, pyarrow and scikit-learn first (as a worker's pool process has), resets its
peak RSS (``/proc/self/clear_refs``), notes its RSS, runs ``summarize`` and reads ``VmHWM``.
Printed: the absolute peak, the peak over the RSS before ``summarize`` (what finalising adds),
and the time. The two versions' results must be identical (their JSON is compared); the script
exits 1 when they differ. A worker's pool process starts higher than this bare process (Flask,
Celery, SQLAlchemy and the model are loaded there): ``bench/scoring.py`` target 3a measures that.

Scores are synthetic: binary and multiclass probabilities are a softmax of noisy logits (almost
all distinct, like a boosted model's; about 40 % of the ROC vertices survive
``drop_intermediate``); regression is a gamma target with a noisy prediction.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
import json, os, sys, time
import numpy, pandas, pyarrow, pyarrow.parquet, sklearn.ensemble, sklearn.metrics  # a worker has these loaded
from viewer.core import scoring

def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024

out_dir, kind, classes, has_target, result_path = sys.argv[1:6]
classes = json.loads(classes)
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # resets VmHWM to the current RSS
before = status("VmRSS")
start = time.perf_counter()
summary = scoring.summarize(scoring.parts_in(out_dir), kind, classes, has_target == "1")
seconds = time.perf_counter() - start
peak = status("VmHWM")
with open(result_path, "w") as fh:
    json.dump(summary, fh, allow_nan=False)
print(json.dumps({"before": before, "peak": peak, "seconds": seconds, "file": scoring.__file__}))
"""


def write_parts(out_dir: Path, task: str, rows: int, seed: int = 7) -> tuple[str, list | None]:
    """Synthetic output parts for ``task``; returns (kind, classes)."""
    from viewer.core.scoring import part_path, write_part

    k = {"binary": 2, "multiclass": 5}.get(task, 0)
    done, index = 0, 0
    while done < rows:
        n = min(PART_ROWS, rows - done)
        rng = np.random.default_rng(seed + index)
        columns: dict = {"row": np.arange(done, done + n, dtype=np.int64)}
        if k:
            y = rng.integers(0, k, n)
            logits = rng.normal(size=(n, k)) * 1.3
            logits[np.arange(n), y] += 1.5
            proba = np.exp(logits)
            proba /= proba.sum(axis=1, keepdims=True)
            columns["prediction"] = proba.argmax(axis=1).astype(np.int64)
            for c in range(k):
                columns[f"proba_{c}"] = proba[:, c]
            columns["target"] = y.astype(np.int64)
        else:
            y = rng.gamma(2.0, 10.0, n)
            columns["prediction"] = y + rng.normal(0.0, 3.0, n)
            columns["target"] = y
        write_part(pa.table(columns), part_path(out_dir, index))
        done, index = done + n, index + 1
    return ("classifier", list(range(k))) if k else ("regressor", None)


def tree_of(ref: str, tmp: Path) -> Path:
    """``viewer/`` as committed at ``ref``, extracted under ``tmp`` (git archive changes nothing)."""
    target = tmp / f"tree-{ref.replace('/', '_')}"
    target.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "viewer"], check=True, capture_output=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    return target


def measure(tree: Path, out_dir: Path, kind: str, classes, result: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(out_dir), kind, json.dumps(classes), "1", str(result)],
                          env=env, capture_output=True, text=True, cwd=tree)
    if proc.returncode:
        raise SystemExit(f"summarize failed in {tree}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--tasks", default="binary,multiclass,regression")
    parser.add_argument("--compare", default="HEAD", help="git ref of the 'before' version, or 'none'")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="finalise-memory-", dir="/tmp"))
    failed = False
    try:
        versions = [] if args.compare == "none" else [(args.compare, tree_of(args.compare, tmp))]
        versions.append(("work tree", ROOT))
        load = os.getloadavg()[0]
        print(f"summarize() on {args.rows:,} rows; load average {load:.1f}")
        print(f"{'task':<12} {'version':<12} {'RSS before':>11} {'peak':>9} {'added':>9} {'seconds':>8}")
        for task in args.tasks.split(","):
            out_dir = tmp / task
            start = time.perf_counter()
            kind, classes = write_parts(out_dir, task, args.rows)
            print(f"  ({task}: wrote {args.rows:,} rows of parts in {time.perf_counter() - start:.0f}s)", flush=True)
            results = []
            for name, tree in versions:
                result = tmp / f"{task}-{len(results)}.json"
                m = measure(tree, out_dir, kind, classes, result)
                results.append(result.read_text())
                print(f"{task:<12} {name:<12} {m['before']:>7.0f} MiB {m['peak']:>5.0f} MiB "
                      f"{m['peak'] - m['before']:>5.0f} MiB {m['seconds']:>8.2f}", flush=True)
            if len(results) == 2:
                same = results[0] == results[1]
                failed |= not same
                print(f"{'':<12} results identical: {'yes' if same else 'NO'}")
            shutil.rmtree(out_dir)
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
