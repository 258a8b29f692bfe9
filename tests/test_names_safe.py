"""Names reach every engine quoted, and names that would collide on some engine are refused
when the graph is built (definitions) or before a write appends anything (undeclared columns).

Issue 12, kind 2: a dotted feature key broke chdb's staging; ``Video``/``video``, fields
``A``/``a`` and columns ``x``/``X`` collide once an engine folds case; an undeclared ``_part``
column broke ClickHouse writes after their rows were appended.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

import metaxy_sql as mx
from metaxy_sql.model import hashing, names
from tests.pipeline import as_dict, check_oracle

RAW, CROP = "cam01/raw.v2", "cam01/crop-2.v1"


def _dotted_graph() -> mx.FeatureGraph:
    raw = mx.FeatureSpec(key=RAW, id_columns=["sample_uid"],
                         fields=[mx.FieldSpec(key="rgb.v2"), mx.FieldSpec(key="depth-map")])
    crop = mx.FeatureSpec(key=CROP, id_columns=["sample_uid"], deps=[RAW],
                          fields=[mx.FieldSpec(key="rgb.v2", code_version="3")])
    return mx.FeatureGraph([raw, crop])


def _root_rows() -> list[dict[str, Any]]:
    return [{"sample_uid": uid, names.PROVENANCE_BY_FIELD: {"rgb.v2": f"r{uid}",
                                                          "depth-map": f"d{uid}"}}
            for uid in ("a", "b")]


# -- names that work everywhere, quoted --------------------------------------------------------
def test_dotted_feature_and_field_keys_round_trip(make_store: Any) -> None:
    store = make_store(_dotted_graph())
    inc = store.resolve_update(RAW, samples=_root_rows())
    assert store.write(RAW, inc.new) == 2
    crop = store.resolve_update(CROP)
    assert crop.counts() == {"new": 2, "stale": 0, "orphaned": 0}
    expected = {
        uid: hashing.field_provenance("rgb.v2", "3", {(RAW, "rgb.v2"): f"r{uid}"})
        for uid in ("a", "b")}
    rows = crop.new.to_arrow().to_pylist()
    assert {r["sample_uid"]: as_dict(r[names.PROVENANCE_BY_FIELD])["rgb.v2"]
            for r in rows} == expected
    store.write(CROP, crop.new.to_arrow().append_column("note", pa.array(["x", "y"])))
    store.delete(RAW, [{"sample_uid": "b"}])
    assert store.read(RAW).column("sample_uid").to_pylist() == ["a"]
    assert store.resolve_update(CROP).counts() == {"new": 0, "stale": 0, "orphaned": 1}
    assert check_oracle(store) == 3


# -- refused when the graph is built -----------------------------------------------------------
def _spec(key: str, **kw: Any) -> mx.FeatureSpec:
    return mx.FeatureSpec(key=key, id_columns=kw.pop("id_columns", ["sample_uid"]), **kw)


@pytest.mark.parametrize(("first", "second"), [
    ("Video", "video"), ("video/Full", "VIDEO/full"), ("a/b", "a__b"), ("a/B__c", "A__b/c")])
def test_feature_keys_sharing_a_table_are_refused(first: str, second: str) -> None:
    with pytest.raises(mx.DefinitionError, match="would share the table") as e:
        mx.FeatureGraph([_spec(first), _spec(second)])
    assert repr(first) in str(e.value) and repr(second) in str(e.value)


@pytest.mark.parametrize("key", [
    "metaxy_system__graph_snapshots", "metaxy_system/materializations", "Metaxy_staged__x",
    "metaxy_samples/video"])
def test_feature_keys_on_store_tables_are_refused(key: str) -> None:
    with pytest.raises(mx.DefinitionError, match=r"kept for the store's own tables"):
        mx.FeatureGraph([_spec(key)])


def test_fields_differing_in_case_are_refused() -> None:
    with pytest.raises(mx.DefinitionError, match=r"fields 'A' and 'a' differ only in case"):
        mx.FeatureGraph([_spec("v", fields=[mx.FieldSpec(key="A"), mx.FieldSpec(key="a")])])


def test_declared_columns_differing_in_case_are_refused() -> None:
    class Video(mx.BaseFeature, spec=_spec("video")):
        x: str
        X: str

    with pytest.raises(mx.DefinitionError, match=r"columns 'x' and 'X' differ only in case"):
        mx.FeatureGraph([Video])


def test_id_and_declared_column_differing_in_case_are_refused() -> None:
    class Video(mx.BaseFeature, spec=_spec("video")):
        Sample_UID: str

    with pytest.raises(mx.DefinitionError, match=r"'sample_uid' and 'Sample_UID'"):
        mx.FeatureGraph([Video])


@pytest.mark.parametrize("column", ["_part", "_row_exists", "_block_number", "_PARTITION_ID",
                                    "xmin", "ctid", "rowid", "RowId"])
def test_engine_reserved_id_columns_are_refused(column: str) -> None:
    with pytest.raises(mx.DefinitionError, match="keeps for itself"):
        _spec("v", id_columns=[column])


def test_engine_reserved_declared_columns_are_refused() -> None:
    class Video(mx.BaseFeature, spec=_spec("video")):
        xmin: int

    with pytest.raises(mx.DefinitionError, match=r"feature 'video': column 'xmin' is a column "
                                                 "name an engine keeps for itself"):
        mx.FeatureGraph([Video])


# -- undeclared columns of a write: refused before anything is appended ----------------------
def _one_root() -> mx.FeatureGraph:
    return mx.FeatureGraph([_spec("video", fields=[mx.FieldSpec(key="audio")])])


def _rows(**columns: Any) -> list[dict[str, Any]]:
    return [{"sample_uid": "v1", names.PROVENANCE_BY_FIELD: {"audio": "a1"}, **columns}]


@pytest.mark.parametrize("column", ["_part", "_block_offset", "xmin", "rowid", "bad name",
                                    "1st", 'quo"te'])
def test_undeclared_bad_columns_are_refused_before_writing(make_store: Any, column: str) -> None:
    store = make_store(_one_root())
    with pytest.raises(mx.DataError, match=rf"column {column!r}"):
        store.write("video", _rows(**{column: 1}))
    assert names.table("video") not in store.executor.tables()
    store.write("video", _rows(path="p"))  # later writes of the feature work
    store.write("video", _rows(path="q"))
    assert store.read("video").column("path").to_pylist() == ["q"]


def test_undeclared_columns_differing_in_case_are_refused(make_store: Any) -> None:
    store = make_store(_one_root())
    with pytest.raises(mx.DataError, match=r"column 'X' differs only in case from 'x'"):
        store.write("video", _rows(x=1, X=2))
    assert names.table("video") not in store.executor.tables()


def test_column_differing_in_case_from_a_stored_one_is_refused(make_store: Any) -> None:
    store = make_store(_one_root())
    store.write("video", _rows(x=1))
    with pytest.raises(mx.DataError, match=r"'X' differs only in case from 'x', which the "
                                           "table stores"):
        store.write("video", _rows(X=2))
    latest = store.read("video")
    assert [c for c in latest.column_names if names.fold(c) == "x"] == ["x"]
    assert latest.column("x").to_pylist() == [1]
    assert store.read("video", history=True).num_rows == 1
