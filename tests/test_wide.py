"""Wide features: more fields than one SQL function call or one default-sized statement holds
(Postgres functions take at most 100 arguments; ClickHouse parses 256 KiB by default)."""

from __future__ import annotations

from typing import Any

import metaxy_sql as mx
from metaxy_sql.model import hashing

N = 120  # > 50 map pairs and > 100 concat() parts on Postgres
IDS = ["a", "b"]


def _graph() -> mx.FeatureGraph:
    keys = [f"f{i}" for i in range(N)]
    root = mx.FeatureSpec(key="r", id_columns=["id"], fields=[mx.FieldSpec(key=k) for k in keys])
    child = mx.FeatureSpec(
        key="c", id_columns=["id"], deps=["r"],
        # Default mapping: c.f<i> reads r.f<i>; "all" reads every field of r.
        fields=[*(mx.FieldSpec(key=k) for k in keys),
                mx.FieldSpec(key="all", deps=[mx.FieldDep(feature="r")])])
    return mx.FeatureGraph([root, child])


def _root_rows(values: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    return [{"id": i, "metaxy_provenance_by_field": values[i]} for i in sorted(values)]


def _as_dict(m: Any) -> dict[str, str]:
    return dict(m) if isinstance(m, dict) else {k: v for k, v in m}


def _expected(root: dict[str, str]) -> dict[str, str]:
    """c's provenance by field from the oracle (a root's data version is its provenance)."""
    out = {k: hashing.field_provenance(k, "1", {("r", k): v}) for k, v in root.items()}
    out["all"] = hashing.field_provenance("all", "1", {("r", k): v for k, v in root.items()})
    return out


def test_wide_feature_resolves_and_writes(make_store: Any) -> None:
    store = make_store(_graph())
    values = {i: {f"f{n}": f"{i}-{n}" for n in range(N)} for i in IDS}
    store.write("r", _root_rows(values))
    inc = store.resolve_update("c")
    assert inc.counts() == {"new": len(IDS), "stale": 0, "orphaned": 0}
    new = inc.new.to_arrow().to_pylist()
    got = {row["id"]: _as_dict(row["metaxy_provenance_by_field"]) for row in new}
    assert got == {i: _expected(values[i]) for i in IDS}
    for row in new:
        by_field = _as_dict(row["metaxy_provenance_by_field"])
        assert row["metaxy_provenance"] == hashing.sample_digest(by_field)

    store.write("c", inc.new.to_arrow())
    assert store.resolve_update("c").counts() == {"new": 0, "stale": 0, "orphaned": 0}

    # One upstream field of one sample changes: that sample's f7 and "all" go stale.
    values["b"]["f7"] = "changed"
    store.write("r", _root_rows({"b": values["b"]}))
    inc = store.resolve_update("c")
    assert inc.counts() == {"new": 0, "stale": 1, "orphaned": 0}
    (stale,) = inc.stale.to_arrow().to_pylist()
    assert stale["id"] == "b"
    assert _as_dict(stale["metaxy_provenance_by_field"]) == _expected(values["b"])
    store.write("c", inc.stale.to_arrow())
    assert store.resolve_update("c").counts() == {"new": 0, "stale": 0, "orphaned": 0}


def test_statement_longer_than_256_kib_runs(make_store: Any) -> None:
    # ClickHouse parses at most 256 KiB of statement text by default (max_query_size); a wide
    # feature's INSERT is longer (300 fields). The store's session allows longer statements.
    store = make_store(_graph())
    text = "x" * 300_000
    got = store.executor.fetch(f"SELECT '{text}' AS t").to_pylist()
    assert got == [{"t": text}]
