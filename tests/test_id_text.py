"""Non-string ids enter hashes in one canonical text (``hashing.id_text``) on every engine,
or are refused as ids with a clear error.

Issue 12, kind 3: an aggregation member id ``t=1.0`` (float) hashed as ``1.0`` on DuckDB and
as ``1`` on chdb and Postgres: three engines, two hashes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import itertools
import os
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metaxy_sql as mx
from metaxy_sql.model import hashing, names
from tests.conftest import examples

PARENT, CHILD = "audio/utterance", "speaker/embedding"
D = decimal.Decimal
TOKYO = dt.timezone(dt.timedelta(hours=9))
_examples = itertools.count()


def aggregation_graph() -> mx.FeatureGraph:
    return mx.FeatureGraph([
        mx.FeatureSpec(key=PARENT, id_columns=["g", "t"], fields=[mx.FieldSpec(key="audio")]),
        mx.FeatureSpec(key=CHILD, id_columns=["g"],
                       deps=[mx.FeatureDep(feature=PARENT, lineage=mx.aggregation(on=["g"]))],
                       fields=[mx.FieldSpec(key="audio", code_version="2")]),
    ])


def expansion_graph() -> mx.FeatureGraph:
    return mx.FeatureGraph([
        mx.FeatureSpec(key=PARENT, id_columns=["g"], fields=[mx.FieldSpec(key="audio")]),
        mx.FeatureSpec(key=CHILD, id_columns=["g", "chunk"],
                       deps=[mx.FeatureDep(feature=PARENT, lineage=mx.expansion(on=["g"]))],
                       fields=[mx.FieldSpec(key="audio", code_version="2")]),
    ])


def _table(columns: dict[str, tuple[Sequence[Any], pa.DataType]],
           provenance: Sequence[dict[str, str]]) -> pa.Table:
    arrays = {c: pa.array(list(v), t) for c, (v, t) in columns.items()}
    arrays[names.PROVENANCE_BY_FIELD] = pa.array(
        [list(p.items()) for p in provenance], pa.map_(pa.string(), pa.string()))
    return pa.table(arrays)


def child_provenance(group_dv: str) -> str:
    return hashing.field_provenance("audio", "2", {(PARENT, "audio"): group_dv})


def check_aggregation(store: mx.Store, members: Sequence[tuple[Any, Any]],
                      typ: pa.DataType) -> None:
    """Write ``members`` ((g, t) of type ``typ``), resolve the child: every group's provenance
    equals the oracle's over the members' canonical id text; written back, nothing is left."""
    dvs = [f"dv{i}" for i in range(len(members))]
    store.write(PARENT, _table({"g": ([g for g, _ in members], typ),
                                "t": ([t for _, t in members], typ)},
                               [{"audio": dv} for dv in dvs]))
    groups: dict[Any, dict[tuple[str, ...], str]] = {}
    for (g, t), dv in zip(members, dvs, strict=True):
        groups.setdefault(g, {})[(hashing.id_text(g), hashing.id_text(t))] = dv
    expected = {g: child_provenance(hashing.group_data_version(m)) for g, m in groups.items()}
    inc = store.resolve_update(CHILD)
    got = inc.new.to_arrow().column(names.PROVENANCE_BY_FIELD).to_pylist()
    assert sorted(dict(p)["audio"] for p in got) == sorted(expected.values())
    keys = list(expected)
    store.write(CHILD, _table({"g": (keys, typ)}, [{"audio": expected[g]} for g in keys]))
    assert store.resolve_update(CHILD).counts() == {"new": 0, "stale": 0, "orphaned": 0}


def check_expansion(store: mx.Store, parents: Sequence[Any], typ: pa.DataType) -> None:
    """Expand parents (ids of type ``typ``) into two chunks each: provenance equals the
    oracle's; written back, nothing is left; a changed parent makes exactly its chunks stale."""
    store.write(PARENT, _table({"g": (parents, typ)},
                               [{"audio": f"p{i}"} for i in range(len(parents))]))
    expected = {hashing.id_text(g): child_provenance(f"p{i}") for i, g in enumerate(parents)}
    inc = store.resolve_update(CHILD)
    got = inc.new.to_arrow().column(names.PROVENANCE_BY_FIELD).to_pylist()
    assert sorted(dict(p)["audio"] for p in got) == sorted(expected.values())
    chunks = [(g, c) for g in parents for c in (0, 1)]
    store.write(CHILD, _table(
        {"g": ([g for g, _ in chunks], typ), "chunk": ([c for _, c in chunks], pa.int64())},
        [{"audio": expected[hashing.id_text(g)]} for g, _ in chunks]))
    assert store.resolve_update(CHILD).counts() == {"new": 0, "stale": 0, "orphaned": 0}
    store.write(PARENT, _table({"g": (parents[:1], typ)}, [{"audio": "changed"}]))
    assert store.resolve_update(CHILD).counts() == {"new": 0, "stale": 1, "orphaned": 0}


# -- the example: a float member id ------------------------------------------------------
def test_float_member_id_is_refused(make_store: Any) -> None:
    store = make_store(aggregation_graph())
    with pytest.raises(mx.DataError, match=r"id column 't' has Arrow type double, which is "
                                           "refused as an id type.*cast it to int64"):
        store.write(PARENT, [{"g": "s1", "t": 1.0, names.PROVENANCE_BY_FIELD: {"audio": "a"}}])
    assert names.table(PARENT) not in store.executor.tables()


@pytest.mark.parametrize("typ", [pa.float32(), pa.float64(), pa.binary(),
                                 pa.list_(pa.string())])
def test_id_types_without_canonical_text_are_refused(make_store: Any, typ: pa.DataType) -> None:
    store = make_store(aggregation_graph())
    value = {"binary": b"x", "list<item: string>": ["x"]}.get(str(typ), 1.5)
    with pytest.raises(mx.DataError, match=rf"id column 't' has Arrow type {typ}"):
        store.write(PARENT, _table({"g": (["s1"], pa.string()), "t": ([value], typ)},
                                   [{"audio": "a"}]))
    with pytest.raises(mx.DataError, match=rf"id column 't' has Arrow type {typ}"):
        store.delete(PARENT, _table({"g": (["s1"], pa.string()), "t": ([value], typ)},
                                    [{"audio": "a"}]))


def test_float_ids_declared_are_refused() -> None:
    class Utterance(mx.BaseFeature, spec=aggregation_graph().spec(PARENT)):
        t: float

    with pytest.raises(mx.DefinitionError, match=r"id column 't' is declared float"):
        mx.FeatureGraph([Utterance])

    class Clip(mx.BaseFeature, spec=mx.FeatureSpec(key=PARENT, id_columns=["clip_id"])):
        speaker: float

    child = mx.FeatureSpec(key=CHILD, id_columns=["speaker"], deps=[mx.FeatureDep(
        feature=PARENT, lineage=mx.aggregation(on=["speaker"]))])
    with pytest.raises(mx.DefinitionError, match=r"aggregation keys \['speaker'\] are declared "
                                                 "float"):
        mx.FeatureGraph([Clip, child])


# -- one example per id type, on every engine --------------------------------------------------
EXAMPLES: dict[str, tuple[pa.DataType, list[Any]]] = {
    "int8": (pa.int8(), [-128, 0, 127]),
    "uint64": (pa.uint64(), [0, 2**63, 2**64 - 1]),
    "int64": (pa.int64(), [-(2**63), 10, 2**63 - 1]),
    "bool": (pa.bool_(), [True, False]),
    "date": (pa.date32(), [dt.date(1900, 1, 1), dt.date(2026, 12, 1), dt.date(2299, 12, 31)]),
    "timestamp": (pa.timestamp("us"), [dt.datetime(2026, 12, 1), dt.datetime(
        2026, 12, 1, 9, 30, 0, 500000), dt.datetime(1901, 2, 3, 4, 5, 6, 7)]),
    "timestamp_ms": (pa.timestamp("ms"), [dt.datetime(2026, 12, 1, 0, 0, 0, 123000)]),
    "timestamp_tz": (pa.timestamp("us", tz="Asia/Tokyo"), [
        dt.datetime(2026, 12, 1, 9, 0, tzinfo=TOKYO),
        dt.datetime(2026, 12, 1, 8, 59, 59, 999999, tzinfo=TOKYO)]),
    "decimal": (pa.decimal128(12, 3), [D("1.500"), D("100.000"), D("-0.500"), D("0.000"),
                                       D("-12345678.901")]),
    "string": (pa.string(), ["1.0", "x.10", "é"]),
    "categorical": (pa.dictionary(pa.int32(), pa.string()), ["b", "a", "c"]),
}


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_aggregation_member_ids_hash_their_canonical_text(make_store: Any, kind: str) -> None:
    typ, values = EXAMPLES[kind]
    groups = values[:2]
    check_aggregation(make_store(aggregation_graph()),
                      [(groups[i % len(groups)], v) for i, v in enumerate(values)], typ)


@pytest.mark.parametrize("kind", sorted(EXAMPLES))
def test_expansion_keys_of_every_id_type(make_store: Any, kind: str) -> None:
    typ, values = EXAMPLES[kind]
    check_expansion(make_store(expansion_graph()), values, typ)


def test_canonical_text_of_the_oracle() -> None:
    assert [hashing.id_text(v) for v in (
        -5, True, False, D("1.50"), D("100"), D("-0.00"), D("1E+2"), dt.date(999, 1, 2),
        dt.datetime(2026, 12, 1), dt.datetime(2026, 12, 1, 9, tzinfo=TOKYO))] == [
        "-5", "true", "false", "1.5", "100", "0", "100", "0999-01-02",
        "2026-12-01 00:00:00.000000", "2026-12-01 00:00:00.000000"]
    for bad in (1.0, b"x", [1], D("NaN")):
        with pytest.raises(mx.DataError):
            hashing.id_text(bad)


# -- property: random id types, every engine equal to the oracle ---------------------------------
_DATES = {"min_value": dt.date(1900, 1, 2), "max_value": dt.date(2299, 12, 30)}
_TIMES = {"min_value": dt.datetime(1900, 1, 2), "max_value": dt.datetime(2299, 12, 30)}
ID_TYPES: list[tuple[pa.DataType, st.SearchStrategy[Any]]] = [
    (pa.int8(), st.integers(-128, 127)),
    (pa.int16(), st.integers(-(2**15), 2**15 - 1)),
    (pa.int32(), st.integers(-(2**31), 2**31 - 1)),
    (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    (pa.uint8(), st.integers(0, 255)),
    (pa.uint32(), st.integers(0, 2**32 - 1)),
    (pa.uint64(), st.integers(0, 2**64 - 1)),
    (pa.bool_(), st.booleans()),
    (pa.date32(), st.dates(**_DATES)),
    (pa.timestamp("us"), st.datetimes(**_TIMES)),
    (pa.timestamp("us", tz="UTC"), st.datetimes(**_TIMES, timezones=st.just(dt.UTC))),
    (pa.timestamp("us", tz="Asia/Tokyo"), st.datetimes(**_TIMES, timezones=st.just(TOKYO))),
    (pa.decimal128(18, 4), st.decimals(min_value=-(10**13), max_value=10**13, places=4,
                                       allow_nan=False, allow_infinity=False)),
    (pa.string(), st.text(alphabet="01.-:é aZ", max_size=5)),
]


@st.composite
def typed_ids(draw: st.DrawFn) -> tuple[pa.DataType, list[Any]]:
    typ, values = draw(st.sampled_from(ID_TYPES))
    return typ, draw(st.lists(values, min_size=1, max_size=5, unique_by=hashing.id_text))


def _fresh(engine: str, graph: mx.FeatureGraph) -> mx.Store:
    """A store of its own per example (id types change between examples)."""
    url = importlib.import_module(f"tests.engines.{engine}").fresh_url(
        f"idt{os.getpid()}_{next(_examples)}")
    return mx.connect(url, graph=graph)


@settings(max_examples=examples(15), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed_ids())
def test_aggregation_over_random_id_types_equals_oracle(
        engine: str, ids: tuple[pa.DataType, list[Any]]) -> None:
    typ, values = ids
    groups = values[:2]
    with _fresh(engine, aggregation_graph()) as store:
        check_aggregation(store, [(groups[i % len(groups)], v) for i, v in enumerate(values)],
                          typ)


@settings(max_examples=examples(15), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(typed_ids())
def test_expansion_over_random_id_types_equals_oracle(
        engine: str, ids: tuple[pa.DataType, list[Any]]) -> None:
    typ, values = ids
    with _fresh(engine, expansion_graph()) as store:
        check_expansion(store, values, typ)
