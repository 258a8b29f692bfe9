"""Bad input gets a typed error naming the culprit and the fix."""

from __future__ import annotations

from typing import Any

import pytest

import metaxy_sql as mx
from metaxy_sql.examples import seed

ROW = {"sample_uid": "v1", "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}


@pytest.mark.parametrize(("rows", "match"), [
    ([{"metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}],
     r"video/full.*lack id columns \['sample_uid'\]"),
    ([ROW | {"sample_uid": None}], r"id column 'sample_uid' is null in 1 rows"),
    ([ROW, ROW], r"appear more than once in one write \(e.g. \{'sample_uid': 'v1'\}\)"),
    ([ROW | {"metaxy_provenance_by_field": {"audio": "a", "frames": "f", "pixels": "p"}}],
     r"unknown field keys \['pixels'\]; the feature's fields are \['audio', 'frames'\]"),
    ([ROW | {"metaxy_provenance_by_field": {"audio": "a"}}], r"lacks fields \['frames'\]"),
    ([{"sample_uid": "v1"}], r"lack metaxy_provenance_by_field"),
    ([ROW | {"metaxy_secret": 1}], r"'metaxy_secret' uses the reserved prefix"),
])
def test_bad_writes(make_store: Any, rows: list[dict[str, Any]], match: str) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match=match):
        store.write("video/full", rows)


def test_downstream_write_without_provenance_says_where_it_comes_from(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match=r"resolve_update\('video/face_crop'\).new"):
        store.write("video/face_crop", [{"sample_uid": "v1"}])


def test_unknown_feature(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.UnknownFeatureError, match=r"'video/nope'.*video/full"):
        store.resolve_update("video/nope")


def test_root_needs_samples_and_children_refuse_them(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match="root feature: pass samples="):
        store.resolve_update("video/full")
    with pytest.raises(mx.DataError, match="without samples="):
        store.resolve_update("video/face_crop", samples=[ROW])


def spec(key: str, deps: list[str] = (), **kw: Any) -> mx.FeatureSpec:  # type: ignore[assignment]
    return mx.FeatureSpec(key=key, id_columns=["id"], deps=list(deps), **kw)


def test_cycle() -> None:
    with pytest.raises(mx.DefinitionError, match=r"\['a', 'b'\] depend on each other in a cycle"):
        mx.FeatureGraph([spec("a", ["b"]), spec("b", ["a"])])


def test_missing_feature_dep() -> None:
    with pytest.raises(mx.DefinitionError, match=r"'b' depends on 'a', which is not in the graph"):
        mx.FeatureGraph([spec("b", ["a"])])


def test_missing_field_dep() -> None:
    child = spec("b", ["a"], fields=[mx.FieldSpec(
        key="x", deps=[mx.FieldDep(feature="a", fields=["nope"])])])
    with pytest.raises(mx.DefinitionError, match=r"b.x depends on a fields \['nope'\]"):
        mx.FeatureGraph([spec("a"), child])


def test_field_dep_outside_feature_deps() -> None:
    child = spec("b", [], fields=[mx.FieldSpec(key="x", deps=[mx.FieldDep(feature="a")])])
    with pytest.raises(mx.DefinitionError, match=r"not among the deps of 'b'"):
        mx.FeatureGraph([spec("a"), child])


@pytest.mark.parametrize("key", ["a/b; DROP TABLE x", "", "a//b", "a/b c", "'x'"])
def test_bad_keys_rejected_at_definition(key: str) -> None:
    with pytest.raises(mx.DefinitionError, match="invalid feature key"):
        spec(key)


def test_bad_id_columns() -> None:
    with pytest.raises(mx.DefinitionError, match="reserved prefix"):
        mx.FeatureSpec(key="a", id_columns=["metaxy_id"])
    with pytest.raises(mx.DefinitionError, match="at least one column"):
        mx.FeatureSpec(key="a", id_columns=[])


def test_mismatched_ids_on_one_to_one_dep() -> None:
    child = mx.FeatureSpec(key="b", id_columns=["other"], deps=["a"])
    with pytest.raises(mx.DefinitionError, match=r"'b' has id_columns \['other'\]"):
        mx.FeatureGraph([spec("a"), child])


def test_bad_store_urls() -> None:
    with pytest.raises(mx.ConfigError, match="unsupported scheme 'mysql'"):
        mx.connect("mysql://x", graph=seed.graph)
    with pytest.raises(mx.StoreConnectionError, match="does not exist"):
        mx.connect("duckdb:////nonexistent/dir/x.db", graph=seed.graph)


def test_keys_sharing_a_table_name() -> None:
    with pytest.raises(mx.DefinitionError, match="would share the table 'a__b'"):
        mx.FeatureGraph([spec("a/b"), spec("a__b")])
