"""Compiled resolve statements are reused per store (``Store.compiled``) only while nothing
they depend on changed: the definitions, the digest, the catalog (tables present, their
columns and id types) and the subset. Expected counts follow from the semantics."""

from __future__ import annotations

from typing import Any

import pytest

import metaxy_sql as mx
from metaxy_sql.examples.seed import graph as seed

FACE = "video/face_crop"


def _roots(*uids: str, frames: str = "f1", **extra: Any) -> list[dict[str, Any]]:
    return [{"sample_uid": u, "metaxy_provenance_by_field": {"audio": "a", "frames": frames},
             **extra} for u in uids]


def test_same_inputs_reuse_one_statement_other_inputs_do_not() -> None:
    with mx.connect("duckdb://:memory:", graph=seed) as store:
        catalog = store.catalog(FACE)
        first = store.compiled(FACE, catalog)
        assert store.compiled(FACE, catalog) is first
        partial = store.compiled(FACE, catalog, where="sample_uid = 'v1'")
        assert partial is not first and "'v1'" in partial[0]
        assert store.compiled(FACE, catalog, where="sample_uid = 'v2'")[0] != partial[0]
        assert store.compiled(FACE, catalog, ids=["v1"]) is not store.compiled(
            FACE, catalog, ids=["v1"])  # explicit ids: compiled afresh


def test_a_table_appearing_changes_the_statement(make_store: Any) -> None:
    store = make_store(seed)
    assert store.resolve_update(FACE).counts() == {"new": 0, "stale": 0, "orphaned": 0}
    store.write("video/full", _roots("v1", "v2"))
    # A statement compiled while video__full was missing would still read it as empty.
    assert store.resolve_update(FACE).counts() == {"new": 2, "stale": 0, "orphaned": 0}
    store.write(FACE, store.resolve_update(FACE).new)
    assert store.resolve_update(FACE).counts() == {"new": 0, "stale": 0, "orphaned": 0}
    assert store.resolve_update(FACE, where="sample_uid = 'v1'").counts()["new"] == 0
    store.write("video/full", _roots("v1", frames="f2"))
    assert store.resolve_update(FACE).counts() == {"new": 0, "stale": 1, "orphaned": 0}
    assert store.resolve_update(FACE, where="sample_uid = 'v2'").counts()["stale"] == 0


def test_a_column_appearing_changes_the_statement(make_store: Any) -> None:
    root = mx.FeatureSpec(key="clip", id_columns=["sample_uid"],
                          fields=[mx.FieldSpec(key="audio"), mx.FieldSpec(key="frames")])
    child = mx.FeatureSpec(key="crop", id_columns=["sample_uid"],
                           deps=[mx.FeatureDep(feature="clip", filters=["lang = 'en'"])],
                           fields=[mx.FieldSpec(key="frames")])
    store = make_store(mx.FeatureGraph([root, child]))
    store.write("clip", _roots("v1"))
    with pytest.raises(mx.DefinitionError, match="lang"):
        store.resolve_update("crop")
    store.write("clip", _roots("v2", "v3", lang="en"))
    # The parent now stores lang: the statement is compiled again, with the filter.
    assert store.resolve_update("crop").counts() == {"new": 2, "stale": 0, "orphaned": 0}
