"""Benchmark: ``mx.copy`` of the seed pipeline between engines: rows per second and memory.

Not a test. Run from the repository root::

    .venv/bin/python integration/benchmarks/bench_copy.py --samples 200000 \\
        --postgres postgresql://metaxy:metaxy@127.0.0.1:5432/metaxy_test

A DuckDB source holds ``video/full`` (N samples) and ``video/face_crop`` (N samples plus a
second version of 10%: history). It is copied, latest state and then ``--history``, into a
fresh DuckDB file, a chdb database and (with ``--postgres``) a Postgres schema. Printed per
target: wall time, rows per second, and the peak of Arrow memory allocated while copying
(``pyarrow.total_allocated_bytes``, sampled every millisecond), which stays near one batch
(65,536 rows) whatever N: rows stream, they are never all held.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pyarrow as pa

import metaxy_sql as mx
from metaxy_sql.examples.seed import graph


def source(path: Path, n: int) -> mx.Store:
    store = mx.connect(f"duckdb:///{path}", graph)
    uids = [f"video_{i:08d}" for i in range(n)]
    store.write("video/full", pa.table({
        "sample_uid": uids,
        "metaxy_provenance_by_field": [{"audio": f"a{i}", "frames": f"f{i}"} for i in range(n)],
    }))
    store.write("video/face_crop", store.resolve_update("video/face_crop").new.to_arrow())
    tenth = store.read("video/face_crop").slice(0, n // 10)
    store.write("video/face_crop", tenth.select(["sample_uid", "metaxy_provenance_by_field"])
                .append_column("crop", pa.array(["again"] * tenth.num_rows)))
    return store


def bench(src: mx.Store, url: str, history: bool) -> None:
    peak = [0]
    base = pa.total_allocated_bytes()
    done = threading.Event()

    def sample() -> None:  # every millisecond while copying
        while not done.wait(0.001):
            peak[0] = max(peak[0], pa.total_allocated_bytes() - base)

    sampler = threading.Thread(target=sample, daemon=True)
    with mx.connect(url, graph) as target:
        sampler.start()
        started = time.perf_counter()
        report = mx.copy(src, target, history=history)
        took = time.perf_counter() - started
        done.set()
        sampler.join()
    rows = sum(report.rows.values())
    what = "history" if history else "latest"
    print(f"  -> {url.split(':')[0]:<10} {what:<7} {rows:>9,} rows  {took:6.2f} s  "
          f"{rows / took:>9,.0f} rows/s  Arrow peak {peak[0] / 2**20:6.1f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[100_000])
    parser.add_argument("--postgres", help="Postgres server URL (a schema per run is used)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, {os.cpu_count()} cores")
    for n in args.samples:
        work = Path(tempfile.mkdtemp(prefix="metaxy-bench-copy-"))
        try:
            with source(work / "src.db", n) as src:
                print(f"N = {n:,} (source: DuckDB, {n + n // 10:,} face_crop rows in history)")
                for history in (False, True):
                    tag = f"{'h' if history else 'l'}{n}"
                    urls = [f"duckdb:///{work / (tag + '.db')}",
                            f"chdb://{work / 'chdb'}?database=b{tag}"]
                    if args.postgres:
                        sep = "&" if "?" in args.postgres else "?"
                        urls.append(f"{args.postgres}{sep}schema=bench_copy_{tag}_{os.getpid()}")
                    for url in urls:
                        bench(src, url, history)
        finally:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
