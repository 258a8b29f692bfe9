"""DuckDB and ClickHouse (chdb) given the same samples, run after run: byte-identical
provenance strings, equal to an independent walk of the hashing oracle, and identical
increments (status, ids, provenance, changed fields)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

import pytest

import metaxy_sql as mx
from metaxy_sql.model import hashing, names
from tests.conftest import ENGINES
from tests.pipeline import as_dict, samples
from tests.test_scenarios import graph as scenario_graph

pytestmark = pytest.mark.skipif(
    not {"duckdb", "clickhouse"} <= set(ENGINES),
    reason="needs duckdb and clickhouse in METAXY_SQL_TEST_ENGINES")

BASE = {
    "v1": {"audio": "a1", "frames": "f1"},
    "v2": {"audio": "", "frames": "1:a|b~"},  # empty, separators, the absent marker
    "v3": {"audio": "🎧 ünï\n\"q\" 'x' \\", "frames": "f3"},  # unicode, quotes, backslash
    "v4": {"audio": "a4", "frames": "f4"},
}
RUNS: list[tuple[dict[str, dict[str, str]], dict[str, str]]] = [
    (BASE, {}),
    ({**BASE, "v1": {"audio": "a1'", "frames": "f1"}, "v5": {"audio": "é", "frames": "~"}}, {}),
    ({k: v for k, v in BASE.items() if k != "v4"}, {"crop_frames": "2"}),
]


def expected_provenance(graph: mx.FeatureGraph, root: Mapping[str, Mapping[str, str]]
                        ) -> dict[str, dict[str, dict[str, str]]]:
    """feature -> sample -> field -> provenance, walked in Python with the oracle only."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for key in graph.keys:
        if graph.is_root(key):
            out[key] = {uid: dict(v) for uid, v in root.items()}
            continue
        deps = [d.feature for d in graph.spec(key).deps]
        uids = set.intersection(*(set(out[d]) for d in deps))
        out[key] = {uid: {f: hashing.field_provenance(f, graph.code_version(key, f), {
            (p, pf): out[p][uid][pf] for p, pf in graph.field_parents(key, f)})
            for f in graph.field_keys(key)} for uid in uids}
    return out


def run(engine: str) -> list[tuple[int, str, list[dict[str, Any]], dict[str, Any]]]:
    """Per run and feature: increment rows (sorted) and the latest state's provenance."""
    url = importlib.import_module(f"tests.engines.{engine}").fresh_url(
        f"xch_{engine}_{os.getpid()}")
    out = []
    store = mx.connect(url, graph=scenario_graph())
    try:
        for i, (root, versions) in enumerate(RUNS):
            store = store.with_graph(scenario_graph(**versions))
            for key in store.graph.keys:
                inc = store.resolve_update(
                    key, samples=samples(root) if store.graph.is_root(key) else None)
                rows = sorted(
                    ({"status": r[names.STATUS], "uid": r["sample_uid"],
                      "pbf": as_dict(r[names.PROVENANCE_BY_FIELD]), "prov": r[names.PROVENANCE],
                      "changed": r[names.CHANGED_FIELDS]} for r in inc.to_arrow().to_pylist()),
                    key=lambda r: (r["status"], r["uid"]))
                store.write(key, inc.new.to_arrow())
                store.write(key, inc.stale.to_arrow())
                store.delete(key, inc.orphaned.to_arrow())
                latest = {r["sample_uid"]: (as_dict(r[names.PROVENANCE_BY_FIELD]),
                                            r[names.PROVENANCE], r[names.DATA_VERSION])
                          for r in store.read(key).to_pylist()}
                out.append((i, key, rows, latest))
    finally:
        store.close()
    return out


def test_duckdb_and_clickhouse_agree_byte_for_byte_with_the_oracle() -> None:
    duck, click = run("duckdb"), run("clickhouse")
    assert len(duck) == len(click) == len(RUNS) * 4
    changed_seen = 0
    for (i, key, d_rows, d_latest), (j, key2, c_rows, c_latest) in zip(duck, click, strict=True):
        assert (i, key) == (j, key2)
        assert c_rows == d_rows, (i, key)
        assert c_latest == d_latest, (i, key)
        graph = scenario_graph(**RUNS[i][1])
        want = expected_provenance(graph, RUNS[i][0])[key]
        assert {uid: pbf for uid, (pbf, _, _) in c_latest.items()} == want, (i, key)
        for pbf, prov, dv in c_latest.values():
            assert prov == dv == hashing.sample_digest(pbf)
        changed_seen += sum(1 for r in c_rows if r["status"] == "stale")
    assert changed_seen > 0  # the runs exercise stale samples, not only new ones
