"""Benchmark: ``resolve_update('video/face_crop').counts()`` on ClickHouse (chdb) vs hand SQL.

Not a test. Run from the repository root::

    .venv/bin/python integration/benchmarks/bench_clickhouse.py --samples 1000000

For each N, in one process (chdb opens one data path per process):

1. a metaxy-sql store on chdb (temp dir, database ``bench_store``), through the public API:
   N root samples written to ``video/full``; ``video/face_crop`` resolved and written in full;
   then a second version of ``frames`` for 3% of the samples (history), a soft delete of 1%
   and 1% new samples. Resolving ``video/face_crop`` then yields all three categories
   (expected: new = orphaned = N/100, stale = 3N/100 minus the deleted overlap).
2. the same data as plain current-state tables (database ``bench_plain``): one row per
   sample, one column per field hash, no history, no tombstones.
3. best and median wall time and best CPU time (process user + system: chdb's threads
   included) of ``--repeat`` interleaved runs (after one warmup) of ours (end to end:
   planning, sqlglot rendering, execution) and of the fastest hand-written query we found
   over the plain tables, which computes the expected provenance with the same canonical
   input and digest and must give the same counts (asserted). Memory: ``tracemalloc`` peak
   of Python allocations during one ``counts()`` (Python-side memory, flat in N) and the
   process peak RSS (chdb runs in this process, so RSS is engine + Python).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import metaxy_sql as mx
from metaxy_sql.examples.seed import graph
from metaxy_sql.model import hashing

FEATURE = "video/face_crop"
CHANGED_PCT, DELETED_PCT, ADDED_PCT = 3, 1, 1
FRAMES_PREFIX = hashing.field_provenance_prefix("frames", "1") + hashing.parent_label(
    "video/full", "frames")


def _uid(i: str) -> str:
    return f"concat('s', leftPad(toString({i}), 10, '0'))"


def _frames(i: str, version: int) -> str:
    return f"lower(hex(MD5(concat('frames{version}/', toString({i})))))"


def _roots(where: str, lo: int, hi: int, version: int) -> str:
    return f"""
        SELECT {_uid('number')} AS sample_uid,
               map('audio', lower(hex(MD5(concat('audio', toString(number))))),
                   'frames', {_frames('number', version)}) AS metaxy_provenance_by_field
        FROM numbers({lo}, {hi - lo}) WHERE {where}"""


CHANGED = f"number % 100 < {CHANGED_PCT}"
DELETED = f"number % 100 >= 50 AND number % 100 < {50 + DELETED_PCT}"

# The fastest hand queries found (tried: hash FULL OUTER JOIN, NOT IN x2 + inner join, LEFT
# ANTI x2 + inner join): one sort-merge FULL JOIN on the sorting key; join_use_nulls tells the
# unmatched sides apart. The digest computed after the join, only for matched rows, or before
# it, on the upstream side: neither wins every run, so both run and the faster is the bar.
HAND_QUERY = f"""
SELECT
  countIf(c.sample_uid IS NULL) AS new,
  countIf(e.sample_uid IS NOT NULL AND c.sample_uid IS NOT NULL
          AND substring(lower(hex(SHA256(concat('{FRAMES_PREFIX}',
                toString(length(e.dv_frames)), ':', e.dv_frames)))), 1, 32) != c.prov_frames)
    AS stale,
  countIf(e.sample_uid IS NULL) AS orphaned
FROM bench_plain.video_full AS e
FULL OUTER JOIN bench_plain.face_crop AS c ON e.sample_uid = c.sample_uid
SETTINGS join_use_nulls = 1, join_algorithm = 'full_sorting_merge'
"""
HAND_QUERY_DIGEST_FIRST = f"""
SELECT
  countIf(c.sample_uid IS NULL) AS new,
  countIf(e.sample_uid IS NOT NULL AND c.sample_uid IS NOT NULL AND e.prov_frames != c.prov_frames)
    AS stale,
  countIf(e.sample_uid IS NULL) AS orphaned
FROM (SELECT sample_uid, substring(lower(hex(SHA256(concat('{FRAMES_PREFIX}',
             toString(length(dv_frames)), ':', dv_frames)))), 1, 32) AS prov_frames
      FROM bench_plain.video_full) AS e
FULL OUTER JOIN bench_plain.face_crop AS c ON e.sample_uid = c.sample_uid
SETTINGS join_use_nulls = 1, join_algorithm = 'full_sorting_merge'
"""


def setup(store: mx.Store, n: int) -> None:
    ex = store.executor
    added = n * ADDED_PCT // 100
    store.write("video/full", ex.fetch(_roots("1", 0, n, 1)))
    store.write(FEATURE, store.resolve_update(FEATURE).new.to_arrow())
    store.write("video/full", ex.fetch(_roots(CHANGED, 0, n, 2)))
    store.delete("video/full", ex.fetch(
        f"SELECT {_uid('number')} AS sample_uid FROM numbers({n}) WHERE {DELETED}"))
    store.write("video/full", ex.fetch(_roots("1", n, n + added, 1)))
    for stmt in (
        "CREATE DATABASE IF NOT EXISTS bench_plain",
        "DROP TABLE IF EXISTS bench_plain.video_full",
        "DROP TABLE IF EXISTS bench_plain.face_crop",
        "CREATE TABLE bench_plain.video_full (sample_uid String, dv_audio String, "
        "dv_frames String) ENGINE = MergeTree ORDER BY sample_uid",
        "CREATE TABLE bench_plain.face_crop (sample_uid String, prov_frames String) "
        "ENGINE = MergeTree ORDER BY sample_uid",
        f"""INSERT INTO bench_plain.video_full
            SELECT {_uid('number')}, lower(hex(MD5(concat('audio', toString(number))))),
                   if({CHANGED}, {_frames('number', 2)}, {_frames('number', 1)})
            FROM numbers({n + added}) WHERE number >= {n} OR NOT ({DELETED})""",
        f"""INSERT INTO bench_plain.face_crop
            SELECT {_uid('number')}, substring(lower(hex(SHA256(concat('{FRAMES_PREFIX}',
                   toString(length(f)), ':', f)))), 1, 32)
            FROM (SELECT number, {_frames('number', 1)} AS f FROM numbers({n}))""",
        "OPTIMIZE TABLE bench_plain.video_full FINAL",
        "OPTIMIZE TABLE bench_plain.face_crop FINAL",
    ):
        ex.execute(stmt)


def _cpu_s() -> float:
    """CPU seconds of this process, all threads (chdb runs in-process): user + system."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best_of(repeat: int, fns: list[Callable[[], Any]]) -> list[tuple[float, float, float, Any]]:
    """(best wall, median wall, best CPU, result) of each function; runs interleave so load
    affects all alike."""
    results = [fn() for fn in fns]  # warmup
    times: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            c0, t0 = _cpu_s(), time.perf_counter()
            again = fn()
            times[i].append(time.perf_counter() - t0)
            cpu[i].append(_cpu_s() - c0)
            assert again == results[i], (again, results[i])
    return [(min(t), sorted(t)[len(t) // 2], min(c), r)
            for t, c, r in zip(times, cpu, results, strict=True)]


def run(n: int, repeat: int, workdir: Path) -> None:
    url = f"chdb://{workdir}?database=bench_store"
    with mx.connect(url, graph=graph) as store:
        t0 = time.perf_counter()
        setup(store, n)
        print(f"N={n:,}: setup {time.perf_counter() - t0:.1f} s")

        def hand(sql: str) -> Callable[[], dict[str, int]]:
            def run() -> dict[str, int]:
                row = store.executor.fetch(sql).to_pylist()[0]
                return {k: int(v) for k, v in row.items()}
            return run

        (ours_s, ours_med, ours_cpu, ours), *hands = best_of(
            repeat, [lambda: store.resolve_update(FEATURE).counts(), hand(HAND_QUERY),
                     hand(HAND_QUERY_DIGEST_FIRST)])
        for *_, hand_counts in hands:
            assert hand_counts == ours, (hand_counts, ours)
        hand_s, hand_med, hand_cpu = (min(h[i] for h in hands) for i in range(3))
        tracemalloc.start()
        store.resolve_update(FEATURE).counts()
        py_peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
    print(f"  counts {ours}")
    print(f"  wall, best of {repeat}: ours {ours_s:.3f} s   hand {hand_s:.3f} s   "
          f"ratio {ours_s / hand_s:.2f}x")
    print(f"  wall, median:     ours {ours_med:.3f} s   hand {hand_med:.3f} s   "
          f"ratio {ours_med / hand_med:.2f}x")
    print(f"  CPU, best:        ours {ours_cpu:.3f} s   hand {hand_cpu:.3f} s   "
          f"ratio {ours_cpu / hand_cpu:.2f}x")
    print(f"  Python allocations during counts(): peak {py_peak:.2f} MB; "
          f"process peak RSS (chdb engine + Python): {rss:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores; "
          f"python {platform.python_version()}")
    for n in args.samples:
        workdir = Path(tempfile.mkdtemp(prefix="metaxy-sql-bench-ch-"))
        try:
            run(n, args.repeat, workdir)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
