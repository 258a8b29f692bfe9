"""Benchmark: maintained incremental increments (O(changes) resolve) against the full resolve.

Not a test. Run from the repository root (the script imports its neighbours
``bench_duckdb``, ``bench_clickhouse`` and ``bench_postgres`` for data generation and the
hand-written queries, so run it as a file, not with ``-m``)::

    .venv/bin/python integration/benchmarks/bench_incremental.py \\
        --engines duckdb chdb postgres --samples 1000000

Postgres needs a server: ``--postgres-url`` (default ``$METAXY_SQL_POSTGRES_URL``); the script
uses the schemas ``bench_inc_<N>`` (store) and ``bench_inc_plain_<N>`` (flat tables) and drops
them at the end.

For each engine and N, in one child process (chdb opens one data path per process; each engine
gets its own process so their memory does not mix):

1. Setup, through the public API, seed graph (``metaxy_sql/examples/seed.py``): N root samples
   written to ``video/full`` (frames version 1); ``video/face_crop`` resolved and written in
   full. The same data as *flat current-state tables* (one row per sample, one column per field
   hash, no history, no tombstones) for the hand-written query of that engine (the query of
   ``bench_<engine>.py``: DuckDB file ``plain.db``; chdb database ``bench_plain``; Postgres
   schema ``bench_inc_plain_<N>`` with primary keys). Postgres: ``VACUUM ANALYZE`` of every
   table after setup (the state autovacuum reaches), as ``bench_postgres.py`` does.
2. ``resolve_update(face_crop, incremental=True)``: creates the increment table (a full
   build, ``mode == 'rebuilt'``; timed as "build"); then one refresh with nothing written
   ("noop": the fixed cost of a refresh), one full resolve and one hand query as warmups.
3. For each touched fraction f in ``--touched``, ``--repeat`` rounds. A round:
   - writes a *fresh* change: the root samples with ``i % round(1/f) == r`` (spread over the
     id range, like hashed ids; r differs per round) rewritten through ``store.write`` with a
     new frames version (a new provenance, so face_crop goes stale for them), and the same
     update applied to the flat tables (untimed);
   - (a) ``store.resolve_update(face_crop, incremental=False).counts()``: the full statement,
     end to end (planning, rendering, execution); it does not touch the increment table;
   - (b) ``store.resolve_update(face_crop, incremental=True).counts()``: the *first* refresh
     after that change (a refresh consumes the changes, so it cannot be repeated on the same
     change: each of the ``--repeat`` rounds times one first refresh over a fresh change),
     then the counts read from the increment table. Asserted: ``inc.mode == 'incremental'``
     (no fallback to a rebuild), ``inc.refresh.touched`` equals the rows rewritten, counts
     equal (a)'s exactly;
   - (c) the hand-written full query on the flat tables (chdb: both of
     ``bench_clickhouse.py``'s shapes, the faster counts); counts must equal (a)'s.
   Seconds: best of the rounds (the median is printed too). (a) and (c) see the same data as
   (b) in each round; the change grows the store's history round after round (superseded
   rows), as production writes do.
4. Memory: per measurement, the peak RSS of the measuring process, by resetting the kernel's
   high-water mark (``/proc/self/clear_refs`` = 5) just before and reading ``VmHWM`` just
   after: the process's peak during that call, *including* what was resident before it
   (engine caches, Python, the other engine connection of the same process). DuckDB and chdb
   run in-process, so that is engine + Python; Postgres: the client only (the server is
   another process). Plus one untimed extra round at the end under ``tracemalloc`` (Python
   allocations during (a) and (b): the "flat in N" check).

The machine is shared (2 cores, other work running): wall times are noisy, so process CPU
seconds (user + sys, all threads; not the Postgres server) are recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import bench_clickhouse as bch  # neighbours: data generation and hand-written queries
import bench_duckdb as bdd
import bench_postgres as bpg
import duckdb

FEATURE = "video/face_crop"
ROOT = "video/full"
PG_ENV = "METAXY_SQL_POSTGRES_URL"


# -- memory and CPU -------------------------------------------------------------------------
def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1e3
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _measure(fn: Callable[[], Any]) -> dict[str, Any]:
    _reset_peak()
    c0, t0 = _cpu_s(), time.perf_counter()
    result = fn()
    return {"s": time.perf_counter() - t0, "cpu": _cpu_s() - c0, "rss": _peak_mb(),
            "result": result}


# -- engines: store URL, root rows, flat tables, hand query ----------------------------------
def _i_pg(col: str) -> str:
    return f"substr({col}, 2)::bigint"


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, workdir: Path, n: int) -> None:
        self.workdir, self.n = workdir, n
        self.url = f"duckdb:///{workdir / 'store.db'}"
        self.gen = duckdb.connect()
        self.plain: duckdb.DuckDBPyConnection | None = None

    def roots(self, store: Any, where: Callable[[str], str], version: int,
              lo: int = 0, hi: int | None = None) -> Any:
        return bdd._gen(self.gen, where("i"), lo, self.n if hi is None else hi, version)

    def flat_setup(self, store: Any) -> None:
        con = self.plain = duckdb.connect(str(self.workdir / "plain.db"))
        con.execute(f"""
            CREATE TABLE video_full AS
            SELECT {bdd._uid('i')} AS sample_uid, {bdd._audio('i')} AS dv_audio,
                   {bdd._frames('i', 1)} AS dv_frames
            FROM range(0, {self.n}) t(i)""")
        con.execute(f"""
            CREATE TABLE face_crop AS
            SELECT {bdd._uid('i')} AS sample_uid,
                   substr(sha256({bdd._sql_str(bdd.FRAMES_PREFIX)} || strlen(f)::VARCHAR
                                 || ':' || f), 1, 32) AS prov_frames
            FROM (SELECT i, {bdd._frames('i', 1)} AS f FROM range(0, {self.n}) t(i))""")

    def flat_change(self, store: Any, where: Callable[[str], str], version: int) -> None:
        i = "CAST(substr(sample_uid, 2) AS BIGINT)"
        assert self.plain is not None
        self.plain.execute(f"UPDATE video_full SET dv_frames = {bdd._frames(i, version)} "
                           f"WHERE {where(i)}")

    def hands(self, store: Any) -> list[Callable[[], dict[str, int]]]:
        def run() -> dict[str, int]:
            assert self.plain is not None
            row = self.plain.sql(bdd.HAND_QUERY).fetchall()[0]
            return dict(zip(("new", "stale", "orphaned"), map(int, row), strict=True))
        return [run]

    def after_setup(self) -> None:
        pass

    def cleanup(self) -> None:
        if self.plain is not None:
            self.plain.close()


class ChdbEngine:
    name = "chdb"

    def __init__(self, workdir: Path, n: int) -> None:
        self.workdir, self.n = workdir, n
        self.url = f"chdb://{workdir}?database=bench_store"

    def roots(self, store: Any, where: Callable[[str], str], version: int,
              lo: int = 0, hi: int | None = None) -> Any:
        return store.executor.fetch(bch._roots(where("number"), lo,
                                               self.n if hi is None else hi, version))

    def flat_setup(self, store: Any) -> None:
        ex = store.executor
        for stmt in (
            "CREATE DATABASE IF NOT EXISTS bench_plain",
            "DROP TABLE IF EXISTS bench_plain.video_full",
            "DROP TABLE IF EXISTS bench_plain.face_crop",
            "CREATE TABLE bench_plain.video_full (sample_uid String, dv_audio String, "
            "dv_frames String) ENGINE = MergeTree ORDER BY sample_uid",
            "CREATE TABLE bench_plain.face_crop (sample_uid String, prov_frames String) "
            "ENGINE = MergeTree ORDER BY sample_uid",
            f"""INSERT INTO bench_plain.video_full
                SELECT {bch._uid('number')}, lower(hex(MD5(concat('audio', toString(number))))),
                       {bch._frames('number', 1)}
                FROM numbers({self.n})""",
            f"""INSERT INTO bench_plain.face_crop
                SELECT {bch._uid('number')}, substring(lower(hex(SHA256(concat(
                       '{bch.FRAMES_PREFIX}', toString(length(f)), ':', f)))), 1, 32)
                FROM (SELECT number, {bch._frames('number', 1)} AS f FROM numbers({self.n}))""",
            "OPTIMIZE TABLE bench_plain.video_full FINAL",
            "OPTIMIZE TABLE bench_plain.face_crop FINAL",
        ):
            ex.execute(stmt)

    def flat_change(self, store: Any, where: Callable[[str], str], version: int) -> None:
        i = "toUInt64(substring(sample_uid, 2))"
        store.executor.execute(
            f"ALTER TABLE bench_plain.video_full UPDATE dv_frames = {bch._frames(i, version)} "
            f"WHERE {where(i)} SETTINGS mutations_sync = 2")

    def hands(self, store: Any) -> list[Callable[[], dict[str, int]]]:
        def hand(query: str) -> Callable[[], dict[str, int]]:
            def run() -> dict[str, int]:
                row = store.executor.fetch(query).to_pylist()[0]
                return {k: int(v) for k, v in row.items()}
            return run
        return [hand(bch.HAND_QUERY), hand(bch.HAND_QUERY_DIGEST_FIRST)]

    def after_setup(self) -> None:
        pass

    def cleanup(self) -> None:
        pass


class PostgresEngine:
    name = "postgres"

    def __init__(self, workdir: Path, n: int, base_url: str) -> None:
        import psycopg

        from metaxy_sql.engine.executors.postgres import _split_url

        self.n = n
        self.schema, self.plain_schema = f"bench_inc_{n}", f"bench_inc_plain_{n}"
        self.url = base_url + ("&" if "?" in base_url else "?") + f"schema={self.schema}"
        self.gen = duckdb.connect()
        self.conn = psycopg.connect(_split_url(base_url)[0], autocommit=True)
        self._drop()

    def _drop(self) -> None:
        for schema in (self.schema, self.plain_schema):
            self.conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def roots(self, store: Any, where: Callable[[str], str], version: int,
              lo: int = 0, hi: int | None = None) -> Any:
        return bpg._gen(self.gen, where("i"), lo, self.n if hi is None else hi, version)

    def flat_setup(self, store: Any) -> None:
        c, n = self.conn, self.n
        c.execute(f'CREATE SCHEMA "{self.plain_schema}"')
        c.execute(f'SET search_path TO "{self.plain_schema}"')
        c.execute(f"""
            CREATE TABLE video_full AS
            SELECT {bpg._uid('i')} AS sample_uid, {bpg._md5('audio', 'i')} AS dv_audio,
                   {bpg._md5('frames1/', 'i')} AS dv_frames
            FROM generate_series(0, {n - 1}) AS t(i)""")
        c.execute(f"""
            CREATE TABLE face_crop AS
            SELECT {bpg._uid('i')} AS sample_uid, {bpg._prov(bpg._md5('frames1/', 'i'))}
                     AS prov_frames
            FROM generate_series(0, {n - 1}) AS t(i)""")
        c.execute("ALTER TABLE video_full ADD PRIMARY KEY (sample_uid)")
        c.execute("ALTER TABLE face_crop ADD PRIMARY KEY (sample_uid)")

    def after_setup(self) -> None:
        """VACUUM ANALYZE every table of both schemas (the state autovacuum reaches)."""
        rows = self.conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname IN (%s, %s) AND c.relkind = 'r'",
            (self.schema, self.plain_schema)).fetchall()
        for schema, table in rows:
            self.conn.execute(f'VACUUM ANALYZE "{schema}"."{table}"')

    def flat_change(self, store: Any, where: Callable[[str], str], version: int) -> None:
        i = _i_pg("sample_uid")
        self.conn.execute(f"UPDATE video_full SET dv_frames = "
                          f"{bpg._md5(f'frames{version}/', i)} WHERE {where(i)}")
        self.conn.execute("VACUUM ANALYZE video_full")  # keep (c) a best case

    def hands(self, store: Any) -> list[Callable[[], dict[str, int]]]:
        def run() -> dict[str, int]:
            row = self.conn.execute(bpg.HAND_QUERY).fetchone()
            assert row is not None
            return dict(zip(("new", "stale", "orphaned"), map(int, row), strict=True))
        return [run]

    def cleanup(self) -> None:
        self._drop()
        self.conn.close()


# -- fixed costs of a full resolve ----------------------------------------------------------
def breakdown(mx: Any, graph: Any, url: str, store: Any, repeat: int = 5) -> dict[str, float]:
    """Seconds of each step of ``resolve_update(FEATURE, incremental=False).counts()``, best of
    ``repeat``: connect (a new store on ``url``; not on chdb), catalog (tables and columns
    read from the store), compile cold (plan, build, render the statement:
    ``compile_resolve``), compile warm (the store's cached statement, ``Store.compiled``),
    render (the counts query's text) and execute (the engine running it). ``call`` is the
    whole call on ``store``."""
    from metaxy_sql.compile import builder
    from metaxy_sql.compile.render import compile_resolve

    ex, d = store.executor, store.executor.dialect
    steps: dict[str, list[float]] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        t = time.perf_counter()
        result = fn()
        steps.setdefault(name, []).append(time.perf_counter() - t)
        return result

    for _ in range(repeat):
        if not url.startswith("chdb"):  # chdb: one engine per process, already open
            timed("connect", lambda: mx.connect(url, graph=graph, create=False)).close()
        cat = timed("catalog", lambda: store.catalog(FEATURE))
        timed("compile cold", lambda c=cat: compile_resolve(graph, FEATURE, d,
                                                            store.hash_algorithm, c))
        statement = timed("compile warm", lambda c=cat: store.compiled(FEATURE, c))[1]
        text = timed("render", lambda s=statement: d.render(builder.counts_query(s)))
        timed("execute", lambda t=text: ex.fetch(t))
        timed("call", lambda: store.resolve_update(FEATURE, incremental=False).counts())
    return {k: min(v) for k, v in steps.items()}


# -- one engine, one N (child process) --------------------------------------------------------
def _uid_text(i: int) -> str:
    """The ``sample_uid`` of root sample ``i`` (``bench_*._uid``: 's' + 10 digits)."""
    return f"s{i:010d}"


def run_engine(engine_name: str, n: int, touched: list[float], repeat: int,
               pg_url: str, chunk: int = 10_000_000, breakdown_repeat: int = 5,
               memory_limit: str = "") -> dict[str, Any]:
    import metaxy_sql as mx
    from metaxy_sql.examples.seed import graph

    workdir = Path(tempfile.mkdtemp(prefix=f"mxs-bench-inc-{engine_name}-{n}-"))
    eng: Any = (DuckDBEngine(workdir, n) if engine_name == "duckdb"
                else ChdbEngine(workdir, n) if engine_name == "chdb"
                else PostgresEngine(workdir, n, pg_url))
    out: dict[str, Any] = {"engine": engine_name, "n": n, "rounds": [],
                           "peak_reset": _reset_peak()}
    try:
        with mx.connect(eng.url, graph=graph) as store:
            t0 = time.perf_counter()
            if engine_name == "duckdb" and memory_limit:
                store.executor.execute(f"SET memory_limit = '{memory_limit}'")
            # In chunks of ``chunk`` ids (a write each), so Python holds one chunk at a time.
            for lo in range(0, n, chunk):
                store.write(ROOT, eng.roots(store, lambda i: "true", 1, lo, min(n, lo + chunk)))
            for lo in range(0, n, chunk):
                subset = (f"sample_uid >= '{_uid_text(lo)}' AND "
                          f"sample_uid < '{_uid_text(min(n, lo + chunk))}'")
                store.write(FEATURE, store.resolve_update(FEATURE, where=subset).new.to_arrow())
            eng.flat_setup(store)
            out["setup_s"] = time.perf_counter() - t0
            eng.after_setup()
            hands = eng.hands(store)

            def full() -> dict[str, int]:
                return store.resolve_update(FEATURE, incremental=False).counts()

            def incremental() -> tuple[dict[str, int], str, int, float]:
                t = time.perf_counter()
                inc = store.resolve_update(FEATURE, incremental=True)
                refresh_s = time.perf_counter() - t
                touched = inc.refresh.touched if inc.refresh is not None else -1
                return inc.counts(), inc.mode, touched, refresh_s

            build = _measure(incremental)
            out["build"] = {"s": build["s"], "mode": build["result"][1], "rss": build["rss"]}
            if engine_name == "postgres":
                eng.after_setup()  # the increment table analyzed too
            noop = _measure(incremental)
            out["noop"] = {"s": noop["s"], "mode": noop["result"][1],
                           "touched": noop["result"][2]}
            base = full()
            assert base == {"new": 0, "stale": 0, "orphaned": 0}, base
            out["breakdown"] = breakdown(mx, graph, eng.url, store, breakdown_repeat)
            for h in hands:
                assert h() == base
            assert build["result"][0] == noop["result"][0] == base

            version = 1
            for fi, frac in enumerate(touched):
                m = max(1, round(1 / frac))
                for rep in range(repeat):
                    version += 1
                    r = (fi * 7 + rep) % m

                    def where(i: str, m: int = m, r: int = r) -> str:
                        return f"({i}) % {m} = {r}"

                    rows = eng.roots(store, where, version)
                    store.write(ROOT, rows)
                    eng.flat_change(store, where, version)
                    a = _measure(full)
                    b = _measure(incremental)
                    cs = [_measure(h) for h in hands]
                    c = min(cs, key=lambda x: x["s"])
                    b_counts, mode, ntouched, refresh_s = b["result"]
                    assert mode == "incremental", (engine_name, n, frac, mode, b_counts)
                    assert b_counts == a["result"], (b_counts, a["result"])
                    for x in cs:
                        assert x["result"] == a["result"], (x["result"], a["result"])
                    assert ntouched == rows.num_rows, (ntouched, rows.num_rows)
                    out["rounds"].append({
                        "frac": frac, "rows": rows.num_rows, "touched": ntouched,
                        "counts": a["result"], "refresh_s": refresh_s,
                        **{f"{k}_{f}": x[f] for k, x in (("a", a), ("b", b), ("c", c))
                           for f in ("s", "cpu", "rss")}})

            # Python allocations (tracemalloc) during (a) and (b), one extra untimed round.
            m = max(1, round(1 / 0.001))
            version += 1

            def where_last(i: str) -> str:
                return f"({i}) % {m} = {m - 1}"

            store.write(ROOT, eng.roots(store, where_last, version))
            for label, fn in (("a", full), ("b", incremental)):
                tracemalloc.start()
                fn()
                out[f"py_peak_kb_{label}"] = tracemalloc.get_traced_memory()[1] / 1e3
                tracemalloc.stop()
    finally:
        eng.cleanup()
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def _child(engine: str, n: int, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--_child", engine, "--samples", str(n),
           "--repeat", str(args.repeat), "--postgres-url", args.postgres_url or "",
           "--touched", *map(str, args.touched), "--chunk", str(args.chunk),
           "--breakdown-repeat", str(args.breakdown_repeat),
           "--duckdb-memory-limit", args.duckdb_memory_limit]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{engine} N={n} failed")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def _fmt_pct(frac: float) -> str:
    return f"{frac * 100:g}%"


def report(results: list[dict[str, Any]], repeat: int) -> None:
    for res in results:
        print(f"\n{res['engine']} N={res['n']:,}: setup {res['setup_s']:.1f} s; increment table "
              f"build {res['build']['s']:.2f} s (mode {res['build']['mode']}, peak RSS "
              f"{res['build']['rss']:.0f} MB); refresh with nothing written "
              f"{res['noop']['s'] * 1e3:.0f} ms (mode {res['noop']['mode']}, touched "
              f"{res['noop']['touched']}); Python tracemalloc peak: full counts "
              f"{res['py_peak_kb_a']:.0f} kB, refresh + counts {res['py_peak_kb_b']:.0f} kB"
              + ("" if res["peak_reset"] else "; RSS = process peak (clear_refs unavailable)"))
    print("\nfixed costs of a full resolve (seconds, best of --breakdown-repeat; call = the whole "
          "resolve_update(incremental=False).counts(), the steps after connect as it runs them):")
    for res in results:
        b = res["breakdown"]
        print(f"{res['engine']:>8} N={res['n']:,}: " + ", ".join(
            f"{k} {v * 1e3:.1f} ms" for k, v in b.items()))
    head = (f"{'engine':>8} | {'N':>10} | {'touched':>7} | {'ids':>7} | {'(a) full':>8} | "
            f"{'(b) incr':>8} | {'refresh':>7} | {'(c) hand':>8} | {'b/a':>6} | {'a/c':>5} | "
            f"{'cpu b/a':>7} | {'cpu a/c':>7} | {'RSS a/b/c MB':>14} | {'b med':>6} | "
            f"counts new/stale/orph (last)")
    print("\n" + head)
    print("-" * len(head))
    for res in results:
        fracs = list(dict.fromkeys(r["frac"] for r in res["rounds"]))
        for frac in fracs:
            rs = [r for r in res["rounds"] if r["frac"] == frac]

            def best(key: str, rs: list[dict[str, Any]] = rs) -> float:
                return min(r[key] for r in rs)

            a, b, c = best("a_s"), best("b_s"), best("c_s")
            last = rs[-1]["counts"]
            # Postgres: the client's CPU says nothing of the server's work.
            cpu_ba, cpu_ac = (("n/a", "n/a") if res["engine"] == "postgres" else
                              (f"{best('b_cpu') / best('a_cpu'):.1%}",
                               f"{best('a_cpu') / best('c_cpu'):.2f}x"))
            print(f"{res['engine']:>8} | {res['n']:>10,} | {_fmt_pct(frac):>7} | "
                  f"{rs[0]['touched']:>7,} | {a:>8.3f} | {b:>8.3f} | {best('refresh_s'):>7.3f} | "
                  f"{c:>8.3f} | {b / a:>5.1%} | {a / c:>4.2f}x | "
                  f"{cpu_ba:>7} | {cpu_ac:>7} | "
                  f"{max(r['a_rss'] for r in rs):>4.0f}/{max(r['b_rss'] for r in rs):>4.0f}/"
                  f"{max(r['c_rss'] for r in rs):>4.0f} | "
                  f"{statistics.median(r['b_s'] for r in rs):>6.3f} | "
                  f"{last['new']}/{last['stale']}/{last['orphaned']}")
    print(f"seconds = best of {repeat} rounds, each over a fresh change (b = the first refresh "
          "after it, incl. counts; refresh = the refresh alone); (a) full = resolve_update("
          "incremental=False).counts(); (c) hand = fastest hand-written full query on flat "
          "tables; cpu = ratio of process CPU s (user+sys, all threads; n/a on Postgres, whose "
          "work is in the server); RSS = "
          "peak RSS of the measuring process during the call (resident baseline included; "
          "Postgres: client only), max over rounds; b med = median of (b); every round "
          "asserted: mode incremental, touched = rows rewritten, counts a == b == c")
    print(f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())} on "
          f"{os.cpu_count()} cores (shared machine: other processes inflate wall times)")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--engines", nargs="+", default=["duckdb", "chdb", "postgres"],
                    choices=["duckdb", "chdb", "postgres"])
    ap.add_argument("--samples", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--touched", type=float, nargs="+", default=[0.0001, 0.001, 0.01, 0.1],
                    help="fractions of root samples rewritten per change")
    ap.add_argument("--repeat", type=int, default=3,
                    help="rounds per fraction, each a fresh change (best is reported)")
    ap.add_argument("--postgres-url", default=os.environ.get(PG_ENV),
                    help=f"Postgres server URL without schema (default ${PG_ENV})")
    ap.add_argument("--chunk", type=int, default=10_000_000,
                    help="setup writes the root samples and the first face_crop rows in "
                         "chunks of this many ids (one write each), so Python memory stays "
                         "bounded at 100M")
    ap.add_argument("--breakdown-repeat", type=int, default=5,
                    help="rounds of the fixed-cost breakdown (each runs the full statement "
                         "twice; 1 at 100M)")
    ap.add_argument("--duckdb-memory-limit", default="",
                    help="DuckDB's memory_limit for the store (e.g. 12GB; default: DuckDB's "
                         "80%% of RAM); above it DuckDB spills to disk")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args._child:  # one engine, one N: JSON on the last stdout line
        print(json.dumps(run_engine(args._child, args.samples[0], args.touched, args.repeat,
                                    args.postgres_url, args.chunk, args.breakdown_repeat,
                                    args.duckdb_memory_limit)))
        return
    if "postgres" in args.engines and not args.postgres_url:
        raise SystemExit(f"postgres: pass --postgres-url or set {PG_ENV}")

    import chdb
    import psycopg

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores (shared), python "
          f"{platform.python_version()}; duckdb {duckdb.__version__}, chdb {chdb.__version__}, "
          f"psycopg {psycopg.__version__}; load average at start: "
          f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = []
    for engine in args.engines:
        for n in args.samples:
            t0 = time.perf_counter()
            results.append(_child(engine, n, args))
            print(f"{engine} N={n:,}: done in {time.perf_counter() - t0:.0f} s", flush=True)
    report(results, args.repeat)


if __name__ == "__main__":
    main()
