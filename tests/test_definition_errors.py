"""Definitions and values that cannot work fail early, as the project's own errors.

Each input here was accepted and then failed late (at the first write, with the engine's or
pydantic's error): a carried column whose declared type the child's column cannot take, a
feature key too long for Postgres's identifiers, ``fields=[]``, a wrong-typed value in a
class-based feature's row. Where an engine is involved, every engine runs the case.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pydantic
import pytest

import metaxy_sql as mx
from metaxy_sql.errors import DataError, DefinitionError
from metaxy_sql.model import names

#: Postgres keeps identifiers of NAMEDATALEN - 1 = 63 bytes
#: (https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS).
PG_LIMIT = 63
#: The longest name the store makes of a feature's table on Postgres: the raw rows of a staged
#: sample set, ``metaxy_samples__<table>__raw`` (the touched ids of a refresh are named by a
#: digest, ``names.touched``, so they never are the longest).
LONGEST_OVERHEAD = len("metaxy_samples__") + len("__raw")
#: The longest per-field column prefix: ``metaxy_data_version__<field>``.
FIELD_OVERHEAD = len("metaxy_data_version__")


def by_field(**values: str) -> dict[str, Any]:
    return {"metaxy_provenance_by_field": values}


# -- 1. a carried column into a declared column of another type --------------------------------
def _carry(parent_type: Any, child_type: Any, rename: dict[str, str] | None = None
           ) -> list[type[mx.BaseFeature]]:
    class Parent(mx.BaseFeature, spec=mx.FeatureSpec(key="clip/raw", id_columns=["sample_uid"])):
        x: parent_type  # type: ignore[valid-type]

    target = (rename or {}).get("x", "x")
    child_spec = mx.FeatureSpec(
        key="clip/crop", id_columns=["sample_uid"],
        deps=[mx.FeatureDep(feature="clip/raw", columns=["x"], rename=rename or {})])
    child = type("Child", (mx.BaseFeature,), {"__annotations__": {target: child_type}},
                 spec=child_spec)
    return [Parent, child]


@pytest.mark.parametrize(("parent_type", "child_type", "rename", "given", "stored"), [
    (str, int, None, "str", "int"),
    (float, int, None, "float", "int"),               # narrowing: values would be cut
    (int, bool, None, "int", "bool"),
    (list[int], list[str], None, "list[int]", "list[str]"),
    (str | None, int | None, None, "str", "int"),     # optional is the same column type
    (dt.date, str, {"x": "taken"}, "date", "str"),    # carried under another name
])
def test_carried_column_of_another_type_is_refused_at_graph_build(
        parent_type: Any, child_type: Any, rename: dict[str, str] | None, given: str,
        stored: str) -> None:
    with pytest.raises(DefinitionError) as e:
        mx.FeatureGraph(_carry(parent_type, child_type, rename))
    msg = str(e.value)
    target = (rename or {}).get("x", "x")
    assert "feature 'clip/crop'" in msg and "dependency 'clip/raw'" in msg
    assert "column 'x'" in msg and f"declared {given} by 'clip/raw'" in msg
    assert f"declares {target!r} as {stored}" in msg
    assert f"Declare {target!r} as {given}" in msg and "rename={'x': 'raw_x'}" in msg


@pytest.mark.parametrize(("parent_type", "child_type", "value", "expected"), [
    (int, float, 3, 3.0),                  # the one lossless widening a class can declare
    (str, str | None, "a", "a"),
    (list[int], list[float], [1, 2], [1.0, 2.0]),
])
def test_carried_column_of_a_fitting_type_writes_back(
        make_store: Any, parent_type: Any, child_type: Any, value: Any, expected: Any) -> None:
    graph = mx.FeatureGraph(_carry(parent_type, child_type))
    store = make_store(graph)
    store.write("clip/raw", [{"sample_uid": "s1", "x": value, **by_field(default="h")}])
    inc = store.resolve_update("clip/crop")
    assert store.write("clip/crop", inc.new.to_arrow()) == 1
    assert store.read("clip/crop").column("x").to_pylist() == [expected]


def test_carried_column_types_unknown_at_definition_are_checked_at_the_write(
        make_store: Any) -> None:
    """A spec-based parent declares no types: the graph cannot know them, so the write of
    the increment refuses the mismatch (a DataError naming feature, column and both types)."""
    parent = mx.FeatureSpec(key="clip/raw", id_columns=["sample_uid"])

    class Child(mx.BaseFeature, spec=mx.FeatureSpec(
            key="clip/crop", id_columns=["sample_uid"],
            deps=[mx.FeatureDep(feature="clip/raw", columns=["x"])])):
        x: int

    store = make_store(mx.FeatureGraph([parent, Child]))
    store.write("clip/raw", [{"sample_uid": "s1", "x": "text", **by_field(default="h")}])
    inc = store.resolve_update("clip/crop")
    with pytest.raises(DataError, match=r"feature 'clip/crop': column 'x' is stored as int64, "
                                        r"given string"):
        store.write("clip/crop", inc.new.to_arrow())


# -- 2. names longer than Postgres keeps ------------------------------------------------------
def _chain(child_key: str, field: str = "default", column: str | None = None
           ) -> mx.FeatureGraph:
    root = mx.FeatureSpec(key="r", id_columns=["sample_uid"], fields=[mx.FieldSpec(key=field)])
    child = mx.FeatureSpec(
        key=child_key, id_columns=["sample_uid"],
        deps=[mx.FeatureDep(feature="r", columns=[column] if column else [])],
        fields=[mx.FieldSpec(key=field)])
    return mx.FeatureGraph([root, child])


def _write_and_refresh(store: mx.Store, child: str, field: str = "default") -> None:
    """Every relation of ``child``: table, staged rows, the incremental increment and the
    touched ids of its refresh (``names.feature_relations``)."""
    store.write("r", [{"sample_uid": "s1", **by_field(**{field: "h1"})}])
    store.write(child, store.resolve_update(child).new.to_arrow())
    assert store.resolve_update(child, incremental=True).mode == "rebuilt"  # first build
    store.write("r", [{"sample_uid": "s1", **by_field(**{field: "h2"})},
                      {"sample_uid": "s2", **by_field(**{field: "h3"})}])
    again = store.resolve_update(child)
    assert again.mode == "incremental" and again.refresh is not None
    assert again.counts() == {"new": 1, "stale": 1, "orphaned": 0}


def test_the_longest_name_postgres_takes_works_on_every_engine(make_store: Any) -> None:
    key = "k" * (PG_LIMIT - LONGEST_OVERHEAD)      # 42 bytes: the raw sample set is 63
    assert len(f"{names.samples(key)}__raw".encode()) == PG_LIMIT
    assert max(len(n.encode()) for _, n in names.feature_relations(key)) < PG_LIMIT
    field = "f" * (PG_LIMIT - FIELD_OVERHEAD)
    store = make_store(_chain(key, field))
    _write_and_refresh(store, key, field)


@pytest.mark.parametrize(("key", "table_bytes"), [
    ("k" * (PG_LIMIT - LONGEST_OVERHEAD + 1), PG_LIMIT - LONGEST_OVERHEAD + 1),
    ("v" * 20 + "/" + "w" * 21, 43),               # a 42-character key: '/' becomes '__'
    ("a" * 40 + "/" + "b" * 30, 72),               # longer than 63 itself
])
def test_a_feature_key_too_long_for_postgres(make_store: Any, engine: str, key: str,
                                             table_bytes: int) -> None:
    graph = _chain(key)
    if engine != "postgres":
        # DuckDB keeps names of any length; ClickHouse's limit (~200 bytes) is far off
        _write_and_refresh(make_store(graph), key)
        return
    with pytest.raises(DefinitionError) as e:
        make_store(graph)
    msg = str(e.value)
    longest = f"metaxy_samples__{names.table(key)}__raw"
    assert f"feature {key!r}" in msg and f"table name {names.table(key)!r}" in msg
    assert f"is {table_bytes} bytes" in msg and f"{longest!r} ({len(longest.encode())} bytes)"\
        in msg
    assert "63-byte identifier limit" in msg
    assert f"a table name of at most {PG_LIMIT - LONGEST_OVERHEAD} bytes" in msg


def test_root_features_make_no_increments_so_take_longer_keys(make_store: Any) -> None:
    key = "k" * (PG_LIMIT - len("metaxy_samples__") - len("__raw"))   # its staged sample set
    store = make_store(mx.FeatureGraph([mx.FeatureSpec(key=key, id_columns=["sample_uid"])]))
    inc = store.resolve_update(key, samples=[{"sample_uid": "s1", **by_field(default="h")}])
    assert store.write(key, inc.new.to_arrow()) == 1
    longer = key + "k"
    graph = mx.FeatureGraph([mx.FeatureSpec(key=longer, id_columns=["sample_uid"])])
    if store.executor.engine == "postgres":
        with pytest.raises(DefinitionError, match=r"sample set 'metaxy_samples__k+__raw' "
                                                  r"\(64 bytes\)"):
            store.with_graph(graph)
    else:
        store.with_graph(graph).write(longer, [{"sample_uid": "s1", **by_field(default="h")}])


def test_field_and_column_names_too_long_for_postgres(make_store: Any, engine: str) -> None:
    field = "f" * (PG_LIMIT - FIELD_OVERHEAD + 1)
    column = "c" * (PG_LIMIT + 1)
    for graph, where, expected in (
            (_chain("child", field=field), "feature 'r'",     # the root has the field first
             f"field {field!r} makes the per-field data version column "
             f"'metaxy_data_version__{field}' (64 bytes), longer than Postgres's 63-byte "
             f"identifier limit; use a field key of at most {PG_LIMIT - FIELD_OVERHEAD} bytes"),
            (_chain("child", column=column), "feature 'child'",
             f"column {column!r} is 64 bytes, longer than Postgres's 63-byte identifier limit"
             "; rename it")):
        if engine == "postgres":
            with pytest.raises(DefinitionError) as e:
                make_store(graph)
            assert str(e.value).startswith(f"{where}: ") and expected in str(e.value)
        else:
            make_store(graph)  # DuckDB and ClickHouse take these names
    if engine != "postgres":
        _write_and_refresh(make_store(_chain("child", field=field)), "child", field)


# -- 3. fields=[] -------------------------------------------------------------------------------
def test_empty_fields_are_refused_and_omitted_fields_are_one_default_field() -> None:
    with pytest.raises(DefinitionError) as e:
        mx.FeatureSpec(key="video/full", id_columns=["sample_uid"], fields=[])
    msg = str(e.value)
    assert "'video/full'" in msg and "fields=[] defines no field" in msg
    assert "omit fields= to get one field named 'default'" in msg
    spec = mx.FeatureSpec(key="video/full", id_columns=["sample_uid"])
    assert [f.key for f in spec.fields] == ["default"]
    # a spec read back from its JSON form keeps its field
    assert mx.FeatureSpec.model_validate(spec.model_dump(mode="json")) == spec


# -- 4. wrong-typed values of class-based features ----------------------------------------------
class Clip(mx.BaseFeature, spec=mx.FeatureSpec(key="video/clip", id_columns=["sample_uid"])):
    frames: int
    tags: list[str] | None = None


@pytest.mark.parametrize(("values", "expected"), [
    ({"frames": "many"}, "column 'frames', declared int, got a str 'many'"),
    ({"frames": 1.5}, "column 'frames', declared int, got a float 1.5"),
    ({"frames": 2, "tags": ["a", 3]}, "column 'tags' (at [1]), declared "
                                      "list[str] | None, got a int 3"),
    ({}, "column 'frames', declared int, is missing"),
])
def test_a_wrong_typed_value_is_our_data_error(values: dict[str, Any], expected: str) -> None:
    with pytest.raises(DataError) as e:
        Clip(sample_uid="s1", **values)
    msg = str(e.value)
    assert msg.startswith("Clip (feature 'video/clip'): ") and expected in msg
    assert "pass values of the declared types" in msg
    assert isinstance(e.value.__cause__, pydantic.ValidationError)
    with pytest.raises(DataError, match="feature 'video/clip'"):
        Clip.model_validate({"sample_uid": "s1", **values})


def test_values_pydantic_converts_are_still_taken() -> None:
    assert Clip(sample_uid="s1", frames="3").frames == 3
