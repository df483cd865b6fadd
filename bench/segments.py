"""What segments cost a compiled scoring job, in this process, one thread (issue 19's target).

    .venv/bin/python bench/segments.py                      # 10,000,000 rows, 5 rounds (~25 min)
    .venv/bin/python bench/segments.py --rows 2000000 --rounds 5   # quicker

The data: ``--rows`` rows in 100,000-row row groups, stored by ``core.datasets.ingest`` (so the
plan comes from real ingest-time summaries): 20 float features (make_classification-like, a few
missing values), four categorical columns that are not features (region, segment, channel, plan;
3 to 12 values), a string ID column and the target. The model: HistGradientBoostingClassifier
(max_iter=100) on the 20 features, compiled by ``core.compiled.compile_trees`` and checked by
``check_parity``, answering through ``CompiledModel`` for every batch size, as a job's model host
does after issue 17.

A job is timed as the worker spends it, without the queue: ``core.scoring.score_chunk`` for every
row group (read, predict, write the part; with segments also their counts into the part's
metadata), then the finalise step (``summarize``; with segments also ``segment_summary``: the
table, the weak segments and the pass over the few columns the pairs and intersections need).
Rounds interleave the job with and without segments (the order alternating); the target is judged
on the median over rounds of each round's ratio: segments add at most 10 % to the job's time.
CPU seconds are printed beside (they hardly move with other load).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from sklearn.ensemble import HistGradientBoostingClassifier  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from viewer.core import scoring, segments  # noqa: E402
from viewer.core.compiled import CompiledModel, TreeRuntime, check_parity, compile_trees  # noqa: E402
from viewer.core.datasets.ingestion import ingest  # noqa: E402
from viewer.core.introspect import describe_model  # noqa: E402
from viewer.core.predictor import Predictor  # noqa: E402

FEATURES = [f"f{i}" for i in range(20)]
CATEGORIES = {"region": ["north", "south", "east", "west"], "segment": ["a", "b", "c"],
              "channel": [f"ch{i}" for i in range(12)], "plan": ["basic", "plus", "pro", "team", "free"]}
CHUNK = 100_000
TARGET = 0.10


def piece(rng, n: int, start: int) -> pd.DataFrame:
    X = rng.normal(size=(n, len(FEATURES)))
    logit = X[:, :5] @ np.array([1.2, -0.8, 0.6, 0.5, -0.4]) + 0.3 * X[:, 5] * X[:, 6]
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    X[rng.random(X.shape) < 0.01] = np.nan
    frame = pd.DataFrame(X, columns=FEATURES)
    for name, values in CATEGORIES.items():
        frame[name] = rng.choice(values, n)
    frame["id"] = [f"C{start + i:09d}" for i in range(n)]
    frame["y"] = y
    return frame


def dataset(folder: Path, rows: int) -> tuple[Path, dict]:
    rng = np.random.default_rng(0)
    source = folder / "source.parquet"
    writer = None
    for start in range(0, rows, CHUNK):
        table = pa.Table.from_pandas(piece(rng, min(CHUNK, rows - start), start), preserve_index=False)
        writer = writer or pq.ParquetWriter(source, table.schema)
        writer.write_table(table)
    writer.close()
    stored = folder / "data.parquet"
    info = ingest(source, stored, row_group_rows=CHUNK, durable=False)
    source.unlink()
    planned = segments.plan([c.to_dict() for c in info.columns], skip={"y", "id"}, first=FEATURES)
    planned["threshold"] = None
    return stored, planned


def model(folder: Path) -> Predictor:
    frame = piece(np.random.default_rng(1), 20_000, 0)
    est = HistGradientBoostingClassifier(max_iter=100, early_stopping=False, random_state=0).fit(frame[FEATURES],
                                                                                               frame["y"])
    predictor = Predictor(est, describe_model(est).to_dict())
    runtime = TreeRuntime(compile_trees(est, folder / "compiled"))
    parity = check_parity(est, runtime, frame[FEATURES].to_numpy()[:2000])
    assert parity.ok, parity.reason
    predictor.compiled = {False: CompiledModel(est, runtime, parity), True: CompiledModel(predictor.fast, runtime, parity)}
    return predictor


def job(predictor: Predictor, stored: Path, out: Path, planned: dict | None) -> tuple[float, float, float]:
    """(wall, CPU, finalise wall) seconds of one job: every chunk, then the finalise step."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir()
    wall, cpu = time.perf_counter(), time.process_time()
    n = pq.ParquetFile(stored).metadata.num_row_groups
    parts = []
    for i in range(n):
        part = out / f"part-{i:05d}.parquet"
        scoring.score_chunk(predictor, stored, i, part, "y", ("id",), False, planned)
        parts.append(part)
    chunks = time.perf_counter()
    scoring.summarize(parts, "classifier", [0, 1], True)
    if planned is not None:
        scoring.segment_summary(planned, parts, "classifier", [0, 1], stored)
    end = time.perf_counter()
    return end - wall, time.process_time() - cpu, end - chunks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    threadpool_limits(1)
    print(f"bench/segments.py: {args.rows:,} rows, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}, one thread")
    with tempfile.TemporaryDirectory(prefix="bench-segments-") as tmp:
        folder = Path(tmp)
        stored, planned = dataset(folder, args.rows)
        n_segments = len(segments.labels(planned))
        print(f"plan: {len(planned['columns'])} columns, {n_segments} segments")
        predictor = model(folder)
        job(predictor, stored, folder / "warm", planned)  # imports, page cache
        ratios, cpu_ratios = [], []
        for r in range(args.rounds):
            order = [None, planned] if r % 2 == 0 else [planned, None]
            timed = {}
            for plan in order:
                timed[plan is not None] = job(predictor, stored, folder / "out", plan)
            ratios.append(timed[True][0] / timed[False][0])
            cpu_ratios.append(timed[True][1] / timed[False][1])
            print(f"round {r + 1}: without {timed[False][0]:7.1f} s ({timed[False][1]:7.1f} s CPU; finalise "
                  f"{timed[False][2]:.1f} s), with segments {timed[True][0]:7.1f} s ({timed[True][1]:7.1f} s CPU; "
                  f"finalise {timed[True][2]:.1f} s): {ratios[-1]:.3f}x wall, {cpu_ratios[-1]:.3f}x CPU")
        ratio = statistics.median(ratios)
        ok = ratio <= 1 + TARGET
        print(f"segments / no segments, median of {args.rounds} rounds: {ratio:.3f}x wall "
              f"({statistics.median(cpu_ratios):.3f}x CPU); goal <= {1 + TARGET:.2f}x: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
