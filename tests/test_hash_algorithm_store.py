"""The store's hash algorithm is recorded at its first write; opening it with another one is
refused on every operation that hashes (resolve, write, copy) with a ConfigError naming both
and the fix, instead of every sample silently looking stale."""

from __future__ import annotations

from typing import Any

import pytest

import metaxy_sql as mx
from metaxy_sql.model import hashing
from tests.test_copy import open_store

R = mx.FeatureSpec(key="r", id_columns=["id"], fields=[mx.FieldSpec(key="a")])
C = mx.FeatureSpec(key="c", id_columns=["id"], deps=["r"], fields=[mx.FieldSpec(key="a")])
GRAPH = mx.FeatureGraph([R, C])


def root(ident: str) -> list[dict[str, Any]]:
    return [{"id": ident, "metaxy_provenance_by_field": {"a": f"p{ident}"}}]


def refused(other: str, recorded: str) -> Any:
    return pytest.raises(mx.ConfigError, match=(
        rf"(?s)hashes with {recorded}.*hash_algorithm='{other}'.*"
        rf"Open it with hash_algorithm='{recorded}'"))


@pytest.mark.parametrize("first,other", [("sha256", "md5"), ("md5", "sha256")])
def test_mismatch_refused_on_resolve_and_write(make_store: Any, first: str, other: str
                                               ) -> None:
    store = mx.Store(make_store(GRAPH).executor, GRAPH, first)  # type: ignore[arg-type]
    store.resolve_update("c")  # an empty store: nothing recorded, nothing refused
    store.write("r", root("x"))
    store.write("c", store.resolve_update("c").new)
    assert store.resolve_update("c").counts() == {"new": 0, "stale": 0, "orphaned": 0}
    wrong = mx.Store(store.executor, GRAPH, other)  # type: ignore[arg-type]
    with refused(other, first):
        wrong.resolve_update("c")
    with refused(other, first):
        wrong.resolve_update("c", incremental=True)
    with refused(other, first):
        wrong.write("r", root("y"))
    with refused(other, first):
        wrong.with_graph(GRAPH).write("c", [{"id": "x", "metaxy_provenance_by_field": {"a": "q"}}])
    assert store.read("r").column("id").to_pylist() == ["x"]  # the refused write wrote nothing
    # the stored hashes are those of the first write's algorithm (oracle: model.hashing)
    assert store.resolve_update("c").counts() == {"new": 0, "stale": 0, "orphaned": 0}
    assert hashing.digest("x", first) != hashing.digest("x", other)


def test_empty_store_takes_the_first_writes_algorithm(make_store: Any) -> None:
    default = make_store(GRAPH)  # sha256, but writes nothing
    assert default.resolve_update("c").counts()["new"] == 0
    md5 = mx.Store(default.executor, GRAPH, "md5")
    md5.write("r", root("x"))
    with refused("sha256", "md5"):
        default.resolve_update("c")
    with refused("sha256", "md5"):
        default.write("r", root("y"))
    md5.write("c", md5.resolve_update("c").new)
    assert md5.resolve_update("c").counts() == {"new": 0, "stale": 0, "orphaned": 0}
    md5.write("r", root("y"))
    assert md5.resolve_update("c").counts() == {"new": 1, "stale": 0, "orphaned": 0}


def test_copy_refuses_a_store_opened_with_another_algorithm(make_store: Any) -> None:
    source = make_store(GRAPH)
    source.write("r", root("x"))  # records sha256
    with open_store("duckdb", GRAPH) as target:
        target_md5 = mx.Store(target.executor, GRAPH, "md5")
        with refused("md5", "sha256"):  # the source opened with the other algorithm
            mx.copy(mx.Store(source.executor, GRAPH, "md5"), target_md5, ["r"])
        assert not target.has_rows("r")
        target.write("c", [{"id": "z", "metaxy_provenance_by_field": {"a": "q"}}])
        md5_source = mx.Store(open_store("duckdb", GRAPH).executor, GRAPH, "md5")
        md5_source.write("r", root("x"))
        with refused("md5", "sha256"):  # the target records sha256, opened with md5
            mx.copy(md5_source, target_md5, ["r"])
        assert not target.has_rows("r")
        md5_source.close()
        assert mx.copy(source, target, ["r"]).rows == {"r": 1}
