"""The same samples on every selected engine (DuckDB, Postgres, and ClickHouse when it runs):
byte-identical provenance strings, equal to an independent walk of the oracle, and identical
increments, run after run."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

import metaxy_sql as mx
from metaxy_sql.model import hashing, names
from tests.conftest import ENGINES
from tests.pipeline import as_dict, samples
from tests.test_scenarios import graph as scenario_graph

CROSS = [e for e in ("duckdb", "clickhouse", "postgres") if e in ENGINES]
pytestmark = pytest.mark.skipif(
    "postgres" not in ENGINES or len(CROSS) < 2,
    reason="needs postgres and another engine in METAXY_SQL_TEST_ENGINES")

BASE = {
    "v1": {"audio": "a1", "frames": "f1"},
    "v2": {"audio": "", "frames": "1:a|b~"},  # separators, the absent marker, empty
    "v3": {"audio": "🎧 ünï\n\"q\" 'x' \\", "frames": "f3"},  # unicode, quotes, escapes
    "v4": {"audio": "a4", "frames": "f4"},
}
# (root samples, code versions) per run
RUNS: list[tuple[dict[str, dict[str, str]], dict[str, str]]] = [
    (BASE, {}),
    ({**BASE, "v1": {"audio": "a1'", "frames": "f1"}, "v2": {"audio": "", "frames": ""},
      "v5": {"audio": "é", "frames": "~"}}, {}),
    ({k: v for k, v in BASE.items() if k != "v4"}, {"crop_frames": "2"}),
]

Oracle = dict[str, dict[str, dict[str, str]]]  # feature -> sample -> field -> provenance


def oracle(graph: mx.FeatureGraph, root: Mapping[str, Mapping[str, str]]) -> Oracle:
    """Expected provenance of every feature, walked in Python with the hashing oracle only."""
    out: Oracle = {}
    for key in graph.keys:
        if graph.is_root(key):
            out[key] = {uid: dict(v) for uid, v in root.items()}
            continue
        deps = [d.feature for d in graph.spec(key).deps]
        uids = set.intersection(*(set(out[d]) for d in deps))
        out[key] = {uid: {
            f: hashing.field_provenance(f, graph.code_version(key, f), {
                (p, pf): out[p][uid][pf] for p, pf in graph.field_parents(key, f)})
            for f in graph.field_keys(key)} for uid in uids}
    return out


def _rows(part: Any, status: str) -> list[dict[str, Any]]:
    rows = []
    for r in part.to_arrow().to_pylist():
        rows.append({"status": status, "uid": r["sample_uid"],
                     "pbf": as_dict(r[names.PROVENANCE_BY_FIELD]),
                     "prov": r[names.PROVENANCE], "changed": r.get(names.CHANGED_FIELDS)})
    return sorted(rows, key=lambda r: r["uid"])


def run_engine(engine: str) -> Iterator[tuple[int, str, list[dict[str, Any]], list[Any]]]:
    """Run every run on ``engine``; yield (run, feature, increment rows, latest state)."""
    url = importlib.import_module(f"tests.engines.{engine}").fresh_url(
        f"cross_{engine}_{os.getpid()}")
    store = mx.connect(url, graph=scenario_graph())
    try:
        for i, (root, versions) in enumerate(RUNS):
            store = store.with_graph(scenario_graph(**versions))
            for key in store.graph.keys:
                root_samples = samples(root) if store.graph.is_root(key) else None
                inc = store.resolve_update(key, samples=root_samples)
                rows = [r for status in names.STATUSES
                        for r in _rows(getattr(inc, status), status)]
                store.write(key, inc.new.to_arrow())
                store.write(key, inc.stale.to_arrow())
                store.delete(key, inc.orphaned.to_arrow())
                latest = sorted(
                    (r["sample_uid"], as_dict(r[names.PROVENANCE_BY_FIELD]), r[names.PROVENANCE],
                     as_dict(r[names.DATA_VERSION_BY_FIELD]), r[names.DATA_VERSION],
                     r[names.FEATURE_VERSION]) for r in store.read(key).to_pylist())
                yield i, key, rows, latest
    finally:
        store.close()


def test_same_samples_same_bytes_on_every_engine() -> None:
    results = {engine: list(run_engine(engine)) for engine in CROSS}
    first, *others = CROSS
    for other in others:
        assert results[other] == results[first], f"{other} differs from {first}"

    previous: Oracle = {}
    for i, (root, versions) in enumerate(RUNS):
        g = scenario_graph(**versions)
        want = oracle(g, root)
        for run, key, rows, latest in results[first]:
            if run != i:
                continue
            by_status = {s: {r["uid"]: r for r in rows if r["status"] == s}
                         for s in names.STATUSES}
            old = previous.get(key, {})
            assert set(by_status["new"]) == set(want[key]) - set(old), (i, key)
            assert set(by_status["orphaned"]) == set(old) - set(want[key]), (i, key)
            stale = {u for u in set(want[key]) & set(old) if want[key][u] != old[u]}
            assert set(by_status["stale"]) == stale, (i, key)
            for status, source in (("new", want), ("stale", want), ("orphaned", previous)):
                for uid, r in by_status[status].items():
                    assert r["pbf"] == source[key][uid], (i, key, uid)
                    assert r["prov"] == hashing.sample_digest(source[key][uid])
            for uid, r in by_status["stale"].items():
                assert r["changed"] == [f for f in g.field_keys(key)
                                        if want[key][uid][f] != old[uid][f]]
            assert [(row[0], row[1], row[2]) for row in latest] == [
                (uid, want[key][uid], hashing.sample_digest(want[key][uid]))
                for uid in sorted(want[key])], (i, key)
        previous = want
    # The story the runs tell, so the comparison above is not vacuous.
    run1 = {key: rows for run, key, rows, _ in results[first] if run == 1}
    assert {r["uid"]: r["changed"] for r in run1["video/full"] if r["status"] == "stale"} == {
        "v1": ["audio"], "v2": ["frames"]}
    run2 = {key: rows for run, key, rows, _ in results[first] if run == 2}
    assert sorted((r["status"], r["uid"]) for r in run2["video/face_crop"]) == [
        ("orphaned", "v4"), ("orphaned", "v5"), ("stale", "v1"), ("stale", "v2"),
        ("stale", "v3")]
