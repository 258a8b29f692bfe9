"""Benchmark: a wide feature (many fields, each reading every upstream field) on each engine.

Not a test. Run from the repository root::

    .venv/bin/python integration/benchmarks/bench_wide.py --engines duckdb chdb postgres \\
        --fields 50 --samples 10000

Graph: root ``wide/root`` with F fields ``f00..``; ``wide/child`` with F fields ``g00..``,
each declaring *all* F root fields as its parents (F x F field-level edges: the resolve
statement hashes F tokens into each of F provenances). N root samples written through the
public API. Measured per engine, in one child process each (chdb: one data path per process):

- ``new``: ``resolve_update(child).counts()`` with the child never written (every sample new);
- ``current``: the same after the child was written in full (every sample up to date: the
  statement still hashes F x F tokens per sample and compares F provenances);
- ``stale``: after a code-version bump of one child field (every sample stale in one field).

Seconds: best of ``--repeat`` calls; also the statement's length. Postgres runs with the
dialect's session settings (``jit = off``); ``--postgres-jit on`` measures with JIT on, to
show what the setting saves. Prints one table; load average at start and end (shared
machine: wall times are noisy).
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
from typing import Any

PG_ENV = "METAXY_SQL_POSTGRES_URL"


def make_graph(n_fields: int, bump: bool = False) -> Any:
    import metaxy_sql as mx

    root_fields = [f"f{i:02d}" for i in range(n_fields)]
    root = mx.FeatureSpec(key="wide/root", id_columns=["sample_uid"],
                          fields=[mx.FieldSpec(key=f, code_version="1") for f in root_fields])
    child = mx.FeatureSpec(
        key="wide/child", id_columns=["sample_uid"], deps=["wide/root"],
        fields=[mx.FieldSpec(key=f"g{i:02d}", code_version="2" if bump and i == 0 else "1",
                             deps=[mx.FieldDep(feature="wide/root", fields=root_fields)])
                for i in range(n_fields)])
    return mx.FeatureGraph([root, child])


def run_engine(engine: str, n: int, n_fields: int, repeat: int, pg_url: str,
               pg_jit: str) -> dict[str, Any]:
    import metaxy_sql as mx

    workdir = Path(tempfile.mkdtemp(prefix=f"mxs-bench-wide-{engine}-"))
    schema = f"bench_wide_{n}_{n_fields}"
    if engine == "duckdb":
        url = f"duckdb:///{workdir / 'store.db'}"
    elif engine == "chdb":
        url = f"chdb://{workdir}?database=bench_wide"
    else:
        url = pg_url + ("&" if "?" in pg_url else "?") + f"schema={schema}"
    graph = make_graph(n_fields)
    out: dict[str, Any] = {"engine": engine, "n": n, "fields": n_fields}
    try:
        with mx.connect(url, graph=graph) as store:
            if engine == "postgres":
                store.executor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
                store.executor.execute(f'CREATE SCHEMA "{schema}"')
                if pg_jit == "on":
                    store.executor.execute("SET jit = on")
            samples = [{"sample_uid": f"s{i:07d}",
                        "metaxy_provenance_by_field": {f"f{j:02d}": f"v{i}-{j}"
                                                       for j in range(n_fields)}}
                       for i in range(n)]
            store.write("wide/root", samples)
            out["sql_chars"] = len(store.render("wide/child"))

            def best(s: Any) -> tuple[float, dict[str, int]]:
                times, counts = [], {}
                for _ in range(repeat):
                    t = time.perf_counter()
                    counts = s.resolve_update("wide/child").counts()
                    times.append(time.perf_counter() - t)
                return min(times), counts

            out["new"] = best(store)
            store.write("wide/child", store.resolve_update("wide/child").new.to_arrow())
            out["current"] = best(store)
            out["stale"] = best(store.with_graph(make_graph(n_fields, bump=True)))
            if engine == "postgres":
                store.executor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--engines", nargs="+", default=["duckdb", "chdb", "postgres"],
                    choices=["duckdb", "chdb", "postgres"])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--fields", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--postgres-url", default=os.environ.get(PG_ENV))
    ap.add_argument("--postgres-jit", choices=["off", "on"], default="off",
                    help="on: override the dialect's jit = off (to measure what it saves)")
    ap.add_argument("--_child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        print(json.dumps(run_engine(args._child, args.samples, args.fields, args.repeat,
                                    args.postgres_url or "", args.postgres_jit)))
        return
    if "postgres" in args.engines and not args.postgres_url:
        raise SystemExit(f"postgres: pass --postgres-url or set {PG_ENV}")
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in os.getloadavg())}; "
          f"{os.cpu_count()} cores (shared)")
    head = (f"{'engine':>8} | {'N':>7} | {'fields':>6} | {'SQL chars':>9} | {'new s':>7} | "
            f"{'current s':>9} | {'stale s':>7} | counts new / current / stale")
    print(head)
    print("-" * len(head), flush=True)
    for engine in args.engines:  # one row per engine as soon as it is measured
        cmd = [sys.executable, __file__, "--_child", engine, "--samples", str(args.samples),
               "--fields", str(args.fields), "--repeat", str(args.repeat),
               "--postgres-url", args.postgres_url or "", "--postgres-jit", args.postgres_jit]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.stderr.write(proc.stdout + proc.stderr)
            raise SystemExit(f"{engine} failed")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"{r['engine']:>8} | {r['n']:>7,} | {r['fields']:>6} | {r['sql_chars']:>9,} | "
              f"{r['new'][0]:>7.2f} | {r['current'][0]:>9.2f} | {r['stale'][0]:>7.2f} | "
              f"{r['new'][1]} / {r['current'][1]} / {r['stale'][1]}", flush=True)
    jit = f"; Postgres jit {args.postgres_jit}" if "postgres" in args.engines else ""
    print(f"seconds = best of {args.repeat} resolve_update(child).counts() calls{jit}; "
          f"load average at end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
