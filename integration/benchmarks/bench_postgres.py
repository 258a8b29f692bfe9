"""Benchmark: ``resolve_update('video/face_crop').counts()`` on Postgres vs a hand-written query.

Not a test. Needs a server (``export METAXY_SQL_POSTGRES_URL=$(bash .ci/postgres.sh | tail -1)``).
Run from the repository root::

    .venv/bin/python integration/benchmarks/bench_postgres.py --samples 100000 1000000

For each N the script

1. builds a metaxy-sql Postgres store (schema ``metaxy_bench_<N>``) with the seed graph, through
   the public API only: N root samples written to ``video/full``, ``video/face_crop`` resolved
   and written in full; then a second version of ``frames`` for 3% of the samples (history), a
   soft delete of 1%, and 1% new samples. Resolving ``video/face_crop`` then yields new, stale
   and orphaned rows (expected: new = stale/3 = orphaned = N/100).
2. builds the equivalent *plain current-state* tables in schema ``metaxy_bench_plain_<N>``,
   generated independently in SQL: one row per sample, one column per field hash, no history,
   no tombstones, a primary key on ``sample_uid``:
   ``video_full(sample_uid, dv_audio, dv_frames)`` and ``face_crop(sample_uid, prov_frames)``.
3. ``VACUUM ANALYZE`` on every table (the state autovacuum reaches after a write), then times,
   each in a fresh process, best of ``--repeat`` after one warmup:
   - ours: ``store.resolve_update('video/face_crop').counts()`` end to end (planning, sqlglot
     compilation, rendering, the catalog look-up and the query);
   - hand: the fastest hand-written Postgres query we found over the plain tables; it computes
     the expected provenance with the same canonical input and digest as
     ``metaxy_sql/hashing.py``; its counts must equal ours (asserted).
   Memory: peak RSS of the measuring process (client only: the server is another process), and
   the ``tracemalloc`` peak of Python allocations during one ``counts()`` call: compare it
   across N for "flat in N".

Server settings are the server's own (``.ci/postgres.sh``: Debian defaults, work_mem 4MB);
client and server share the machine. The schemas are dropped at exit unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import duckdb
import psycopg
from psycopg import sql

from metaxy_sql.engine.executors.postgres import _split_url
from metaxy_sql.model import hashing

FEATURE = "video/face_crop"
CHANGED_PCT = 3
DELETED_PCT = 1
ADDED_PCT = 1
ENV = "METAXY_SQL_POSTGRES_URL"

# Compile-time head of face_crop.frames (code_version 1) <- video/full.frames (hashing.py).
FRAMES_PREFIX = hashing.field_provenance_prefix("frames", "1") + hashing.parent_label(
    "video/full", "frames")


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _prov(value: str) -> str:
    """Provenance of face_crop.frames from the parent's data version, in Postgres SQL."""
    token = f"coalesce(octet_length({value})::text || ':' || {value}, '~')"
    return (f"substr(encode(sha256(convert_to({_lit(FRAMES_PREFIX)} || {token}, 'UTF8')), "
            "'hex'), 1, 32)")


# Hand-written counts over the plain tables. Shapes tried (see the report printed by --explain):
# FULL JOIN + FILTER counts (below, one hash full join, the digest computed only for matched
# rows); NOT EXISTS x2 + inner join (three scans of each table); a LEFT JOIN + NOT EXISTS.
HAND_QUERY = f"""
SELECT
  count(*) FILTER (WHERE c.sample_uid IS NULL) AS new,
  count(*) FILTER (WHERE e.sample_uid IS NOT NULL AND c.sample_uid IS NOT NULL
                   AND {_prov('e.dv_frames')} <> c.prov_frames) AS stale,
  count(*) FILTER (WHERE e.sample_uid IS NULL) AS orphaned
FROM video_full AS e
FULL OUTER JOIN face_crop AS c ON e.sample_uid = c.sample_uid
"""


def _uid(i: str) -> str:
    return f"'s' || lpad(({i})::text, 10, '0')"


def _md5(tag: str, i: str) -> str:
    return f"md5('{tag}' || ({i})::text)"  # same text in DuckDB and Postgres: same hex


def _changed(i: str) -> str:
    return f"({i}) % 100 < {CHANGED_PCT}"


def _deleted(i: str) -> str:
    return f"({i}) % 100 >= 50 AND ({i}) % 100 < {50 + DELETED_PCT}"


def _gen(con: duckdb.DuckDBPyConnection, where: str, lo: int, hi: int, version: int) -> Any:
    return con.sql(f"""
        SELECT {_uid('i')} AS sample_uid,
               MAP {{'audio': {_md5('audio', 'i')}, 'frames': {_md5(f'frames{version}/', 'i')}}}
                 AS metaxy_provenance_by_field
        FROM range({lo}, {hi}) AS t(i) WHERE {where}
    """).to_arrow_table()


def _store_url(n: int) -> str:
    base = os.environ[ENV]
    return base + ("&" if "?" in base else "?") + f"schema=metaxy_bench_{n}"


def _admin(n: int) -> psycopg.Connection[Any]:
    return psycopg.connect(_split_url(os.environ[ENV])[0], autocommit=True)


# -- phases (each runs in its own process) ----------------------------------------------------
def phase_setup(n: int) -> dict[str, Any]:
    import metaxy_sql as mx
    from metaxy_sql.examples.seed import graph

    with _admin(n) as conn:
        for schema in (f"metaxy_bench_{n}", f"metaxy_bench_plain_{n}"):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    gen = duckdb.connect()
    added = n * ADDED_PCT // 100
    out: dict[str, Any] = {}
    with mx.connect(_store_url(n), graph=graph) as store:
        t = _gen(gen, "true", 0, n, 1)
        t0 = time.perf_counter()
        store.write("video/full", t)
        out["write_root_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch = store.resolve_update(FEATURE).new.to_arrow()
        out["fetch_new_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        store.write(FEATURE, batch)
        out["write_child_s"] = time.perf_counter() - t0
        del batch, t
        t = _gen(gen, _changed("i"), 0, n, 2)
        store.write("video/full", t)
        out["changed_rows"] = t.num_rows
        ids = gen.sql(f"SELECT {_uid('i')} AS sample_uid FROM range(0, {n}) t(i) "
                      f"WHERE {_deleted('i')}").to_arrow_table()
        store.delete("video/full", ids)
        out["deleted_rows"] = ids.num_rows
        t = _gen(gen, "true", n, n + added, 1)
        store.write("video/full", t)
        out["added_rows"] = t.num_rows
    with _admin(n) as conn:
        _plain_tables(conn, n, added)
        for table in ("video__full", "video__face_crop"):
            conn.execute(sql.SQL("VACUUM ANALYZE {}.{}").format(
                sql.Identifier(f"metaxy_bench_{n}"), sql.Identifier(table)))
        out["history_rows"] = conn.execute(sql.SQL("SELECT count(*) FROM {}.video__full").format(
            sql.Identifier(f"metaxy_bench_{n}"))).fetchone()[0]  # type: ignore[index]
        out["store_mb"] = _schema_mb(conn, f"metaxy_bench_{n}")
        out["plain_mb"] = _schema_mb(conn, f"metaxy_bench_plain_{n}")
    return out


def _plain_tables(conn: psycopg.Connection[Any], n: int, added: int) -> None:
    schema = f"metaxy_bench_plain_{n}"
    conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    frames = (f"CASE WHEN {_changed('i')} THEN {_md5('frames2/', 'i')} "
              f"ELSE {_md5('frames1/', 'i')} END")
    conn.execute(f"""
        CREATE TABLE video_full AS
        SELECT {_uid('i')} AS sample_uid, {_md5('audio', 'i')} AS dv_audio, {frames} AS dv_frames
        FROM generate_series(0, {n + added - 1}) AS t(i)
        WHERE i >= {n} OR NOT ({_deleted('i')})""")
    conn.execute(f"""
        CREATE TABLE face_crop AS
        SELECT {_uid('i')} AS sample_uid, {_prov(_md5('frames1/', 'i'))} AS prov_frames
        FROM generate_series(0, {n - 1}) AS t(i)""")
    conn.execute("ALTER TABLE video_full ADD PRIMARY KEY (sample_uid)")
    conn.execute("ALTER TABLE face_crop ADD PRIMARY KEY (sample_uid)")
    conn.execute("VACUUM ANALYZE video_full")
    conn.execute("VACUUM ANALYZE face_crop")


def _schema_mb(conn: psycopg.Connection[Any], schema: str) -> float:
    row = conn.execute(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'",
        (schema,)).fetchone()
    return float(row[0]) / 1e6 if row else 0.0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3  # KiB on Linux


def phase_measure(n: int, repeat: int) -> dict[str, Any]:
    """Ours and hand, interleaved (the machine's load hits both alike), best of ``repeat``."""
    import metaxy_sql as mx
    from metaxy_sql.compile import builder
    from metaxy_sql.examples.seed import graph

    with mx.connect(_store_url(n), graph=graph) as store, _admin(n) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(
            sql.Identifier(f"metaxy_bench_plain_{n}")))
        counts = store.resolve_update(FEATURE).counts()  # warmups
        row = conn.execute(HAND_QUERY).fetchone()
        hand_counts = dict(zip(("new", "stale", "orphaned"), row or (), strict=True))
        ours_t, hand_t = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            assert store.resolve_update(FEATURE).counts() == counts
            ours_t.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            assert conn.execute(HAND_QUERY).fetchone() == row
            hand_t.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(20):
            inc = store.resolve_update(FEATURE)
            store.executor.dialect.render(builder.counts_query(inc.statement))
        compile_s = (time.perf_counter() - t0) / 20
        tracemalloc.start()
        store.resolve_update(FEATURE).counts()
        _, py_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        sql_text = store.executor.dialect.render(
            builder.counts_query(store.resolve_update(FEATURE).statement))
    return {"counts": counts, "hand_counts": hand_counts, "ours_s": min(ours_t),
            "hand_s": min(hand_t), "ours_times": ours_t, "hand_times": hand_t,
            "compile_s": compile_s, "py_peak_kb": py_peak / 1e3, "peak_rss_mb": _peak_rss_mb(),
            "sql": sql_text}


def phase_explain(n: int) -> dict[str, Any]:
    """EXPLAIN ANALYZE of both queries (for tuning; printed with --explain)."""
    out = {}
    ours = phase_measure(n, 1)["sql"]
    with _admin(n) as conn:
        for label, schema, query in (("ours", f"metaxy_bench_{n}", ours),
                                     ("hand", f"metaxy_bench_plain_{n}", HAND_QUERY)):
            conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
            rows = conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + query).fetchall()
            out[label] = "\n".join(r[0] for r in rows)
    return out


def _drop(n: int) -> None:
    with _admin(n) as conn:
        for schema in (f"metaxy_bench_{n}", f"metaxy_bench_plain_{n}"):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _child(phase: str, n: int, *args: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--_phase", phase, "--_n", str(n), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"phase {phase} failed")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _report(n: int, setup: dict[str, Any], setup_s: float, m: dict[str, Any]) -> None:
    print(f"\nN={n:,}: counts {m['counts']} (ours == hand == expected)")
    if setup:
        print(f"  setup {setup_s:.1f}s; store.write video/full "
              f"{n / setup['write_root_s']:,.0f} rows/s, video/face_crop "
              f"{n / setup['write_child_s']:,.0f} rows/s (resolve + fetch of {n:,} new rows: "
              f"{setup['fetch_new_s']:.2f}s); history rows {setup['history_rows']:,}; store "
              f"{setup['store_mb']:.0f} MB, plain {setup['plain_mb']:.0f} MB")
    print(f"  ours {m['ours_s']:.3f}s (runs {', '.join(f'{t:.3f}' for t in m['ours_times'])}; "
          f"compile {m['compile_s'] * 1e3:.1f} ms)  hand {m['hand_s']:.3f}s (runs "
          f"{', '.join(f'{t:.3f}' for t in m['hand_times'])})  "
          f"ratio {m['ours_s'] / m['hand_s']:.2f}x (target <= 1.5x)")
    print(f"  client peak RSS {m['peak_rss_mb']:.0f} MB; Python tracemalloc peak during one "
          f"counts(): {m['py_peak_kb']:.0f} kB")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--samples", type=int, nargs="+", default=[100_000, 1_000_000])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs after one warmup (best)")
    ap.add_argument("--keep", action="store_true", help="keep the schemas")
    ap.add_argument("--reuse", action="store_true", help="skip setup: reuse kept schemas")
    ap.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE of both")
    ap.add_argument("--_phase", help=argparse.SUPPRESS)
    ap.add_argument("--_n", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if not os.environ.get(ENV):
        raise SystemExit(f"set {ENV}: export {ENV}=$(bash .ci/postgres.sh | tail -1)")

    if args._phase:  # child process: one phase, JSON on the last stdout line
        phases = {"setup": lambda: phase_setup(args._n),
                  "measure": lambda: phase_measure(args._n, args.repeat),
                  "explain": lambda: phase_explain(args._n)}
        print(json.dumps(phases[args._phase]()))
        return

    with psycopg.connect(_split_url(os.environ[ENV])[0]) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
        work_mem = conn.execute("SHOW work_mem").fetchone()[0]  # type: ignore[index]
    print(f"Postgres {version} (work_mem {work_mem}), psycopg {psycopg.__version__}, "
          f"{os.cpu_count()} cores shared by client and server, best of {args.repeat} after 1 "
          "warmup, each phase in a fresh process")
    rows = []
    for n in args.samples:
        try:
            t0 = time.perf_counter()
            setup = {} if args.reuse else _child("setup", n)
            setup_s = time.perf_counter() - t0
            m = _child("measure", n, "--repeat", str(args.repeat))
            explain = _child("explain", n) if args.explain else {}
        finally:
            if not args.keep:
                _drop(n)
        expected = {"new": n * ADDED_PCT // 100, "stale": n * CHANGED_PCT // 100,
                    "orphaned": n * DELETED_PCT // 100}
        assert m["counts"] == m["hand_counts"] == expected, (m["counts"], m["hand_counts"])
        _report(n, setup, setup_s, m)
        for label, plan in explain.items():
            print(f"\n-- EXPLAIN ANALYZE {label}:\n{plan}")
        rows.append((n, m))
    print("\n" + f"{'N':>11} | {'ours s':>7} | {'hand s':>7} | {'ratio':>6} | {'client RSS':>10} | "
          f"{'py peak':>8} | counts new/stale/orph")
    for n, m in rows:
        c = m["counts"]
        print(f"{n:>11,} | {m['ours_s']:>7.3f} | {m['hand_s']:>7.3f} | "
              f"{m['ours_s'] / m['hand_s']:>5.2f}x | {m['peak_rss_mb']:>7.0f} MB | "
              f"{m['py_peak_kb']:>5.0f} kB | {c['new']}/{c['stale']}/{c['orphaned']}")
    print("ours = store.resolve_update('video/face_crop').counts() end to end; hand = the query "
          "above over plain current-state tables; runs interleaved in one client process; "
          "client RSS = peak RSS of that process (the server is separate); py peak = "
          "tracemalloc peak during one counts()")


if __name__ == "__main__":
    main()
