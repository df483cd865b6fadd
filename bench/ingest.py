"""Benchmark viewer.core.datasets.ingest: throughput and peak RSS for two CSV sizes.

    .venv/bin/python bench/ingest.py                 # 100 MB vs 1 GB (needs ~2.5 GB of disk)
    .venv/bin/python bench/ingest.py --sizes 20,200  # quicker
    .venv/bin/python bench/ingest.py --parquet       # also ingest the Parquet written from the CSV

Each ingest runs in a fresh subprocess, which reports its own peak RSS (VmHWM; getrusage's
ru_maxrss would include this parent's peak on Linux), so the figures are not polluted by the
generator or by earlier runs.  Memory is bounded if the peak
RSS barely changes while the file grows 10x.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

ROOT = Path(__file__).resolve().parent.parent

# ru_maxrss of a child started by fork/exec includes the parent's high-water mark on Linux, so
# the child reads its own VmHWM (reset by exec) and falls back to ru_maxrss without /proc.
PEAK = """
import resource

def peak_mb():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
"""

CHILD = PEAK + """
import json, sys, time
from viewer.core.datasets import ingest
t0 = time.perf_counter()
info = ingest(sys.argv[1], sys.argv[2], durable=sys.argv[3] == "1")
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "rows": info.n_rows, "row_groups": info.n_row_groups,
                  "bytes_on_disk": info.bytes_on_disk,
                  "peak_rss_mb": peak_mb()}))
"""

BASELINE = PEAK + """
import json
import viewer.core.datasets  # noqa: F401
print(json.dumps({"peak_rss_mb": peak_mb()}))
"""

CATEGORIES = np.array([f"category_{i}" for i in range(50)], dtype=object)
WORDS = np.array(["alpha", "beta, gamma", 'say "hi"', "line\nbreak", "été", "plain"], dtype=object)


def write_csv(path: Path, target_bytes: int, seed: int = 0, chunk_rows: int = 100_000) -> int:
    """Stream a mixed-type CSV of about ``target_bytes`` to ``path``; returns the row count."""
    rng = np.random.default_rng(seed)
    rows = 0
    with open(path, "wb") as fh:
        first = True
        while fh.tell() < target_bytes:
            n = chunk_rows
            table = pa.table({
                "id": np.arange(rows, rows + n, dtype=np.int64),
                "x": rng.normal(size=n).round(6),
                "y": rng.integers(0, 1000, size=n),
                "category": CATEGORIES[rng.integers(0, len(CATEGORIES), size=n)],
                "flag": rng.random(n) < 0.3,
                "text": WORDS[rng.integers(0, len(WORDS), size=n)],
                "when": (np.datetime64("2020-01-01") + rng.integers(0, 2000, size=n)).astype(
                    "datetime64[D]"),
            })
            sink = pa.BufferOutputStream()
            pacsv.write_csv(table, sink, write_options=pacsv.WriteOptions(include_header=first))
            fh.write(sink.getvalue().to_pybytes())
            first = False
            rows += n
    return rows


def run_child(code: str, *args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000", help="CSV sizes in MB (comma-separated)")
    parser.add_argument("--dir", default=None, help="scratch directory (default: a temp dir)")
    parser.add_argument("--parquet", action="store_true", help="also time Parquet -> Parquet")
    parser.add_argument("--fsync", action="store_true",
                        help="ingest(durable=True): fsync before the rename (on ext4 this also "
                             "flushes the freshly generated CSV, which dominates the timing)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        scratch_path = Path(scratch)
        base = run_child(BASELINE)
        print(f"baseline (imports only): peak RSS {base['peak_rss_mb']:.0f} MB")
        results = []
        for size in sizes:
            csv_path = scratch_path / f"data_{size}.csv"
            t0 = time.perf_counter()
            rows = write_csv(csv_path, size * 1_000_000)
            mb = csv_path.stat().st_size / 1e6
            print(f"generated {mb:.0f} MB, {rows:,} rows in {time.perf_counter() - t0:.1f}s")
            out = scratch_path / f"data_{size}.parquet"
            durable = "1" if args.fsync else "0"
            r = run_child(CHILD, str(csv_path), str(out), durable)
            print(f"  csv     {mb:7.0f} MB: {r['seconds']:6.1f}s  {mb / r['seconds']:6.1f} MB/s  "
                  f"peak RSS {r['peak_rss_mb']:6.0f} MB  -> {r['bytes_on_disk'] / 1e6:.0f} MB "
                  f"parquet, {r['row_groups']} row groups")
            results.append((mb, r))
            if args.parquet:
                p = run_child(CHILD, str(out), str(scratch_path / f"again_{size}.parquet"), durable)
                print(f"  parquet {mb:7.0f} MB csv-equivalent: {p['seconds']:6.1f}s  "
                      f"peak RSS {p['peak_rss_mb']:6.0f} MB")
            csv_path.unlink()
            out.unlink()
        if len(results) >= 2:
            (mb0, r0), (mb1, r1) = results[0], results[-1]
            print(f"file size x{mb1 / mb0:.1f}: peak RSS x{r1['peak_rss_mb'] / r0['peak_rss_mb']:.2f}"
                  f" ({r1['peak_rss_mb'] - r0['peak_rss_mb']:+.0f} MB)")


if __name__ == "__main__":
    main()
