"""Column types: declared or fixed by the first real write, recorded, never coerced silently."""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import os
import struct
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.examples import seed

KEY = "video/full"
PBF = {"audio": "a", "frames": "f"}


def row(uid: Any, **user: Any) -> dict[str, Any]:
    return {"sample_uid": uid, "metaxy_provenance_by_field": PBF, **user}


def live(store: mx.Store, column: str) -> dict[Any, Any]:
    table = store.read(KEY)
    return dict(zip(table.column("sample_uid").to_pylist(), table.column(column).to_pylist(),
                    strict=True))


def test_string_into_int_column_is_refused_not_nulled(make_store: Any) -> None:
    store = make_store(seed.graph)
    store.write(KEY, [row("v1", n=5)])
    with pytest.raises(mx.DataError, match=r"video/full.*column 'n'.*stored as int64.*"
                                           r"given string"):
        store.write(KEY, [row("v2", n="five")])
    assert live(store, "n") == {"v1": 5}


def test_float_into_int_column_is_refused_not_rounded(make_store: Any) -> None:
    store = make_store(seed.graph)
    store.write(KEY, [row("v1", n=5)])
    with pytest.raises(mx.DataError, match=r"column 'n'.*stored as int64.*given double"):
        store.write(KEY, [row("v2", n=5.7)])
    store.write(KEY, [row("v2", n=7)])
    assert live(store, "n") == {"v1": 5, "v2": 7}


def test_narrower_ints_widen_losslessly(make_store: Any) -> None:
    store = make_store(seed.graph)
    store.write(KEY, [row("v1", n=5)])
    store.write(KEY, pa.table({"sample_uid": ["v2"], "metaxy_provenance_by_field": [PBF],
                               "n": pa.array([-3], pa.int8())}))
    table = store.read(KEY)
    assert table.schema.field("n").type == pa.int64()
    assert live(store, "n") == {"v1": 5, "v2": -3}


def test_all_null_first_write_leaves_the_type_open(make_store: Any) -> None:
    store = make_store(seed.graph)
    store.write(KEY, [row("v1", caption=None), row("v2", caption=None)])
    store.write(KEY, [row("v3", caption="a cat")])
    table = store.read(KEY)
    assert table.schema.field("caption").type == pa.string()
    assert live(store, "caption") == {"v1": None, "v2": None, "v3": "a cat"}
    # Now fixed: a later write of another type is refused.
    with pytest.raises(mx.DataError, match=r"column 'caption'.*stored as string.*given int64"):
        store.write(KEY, [row("v4", caption=3)])


def test_drop_forgets_the_types(make_store: Any) -> None:
    store = make_store(seed.graph)
    store.write(KEY, [row("v1", n=5)])
    store.drop(KEY)
    store.write(KEY, [row("v1", n="five")])
    assert live(store, "n") == {"v1": "five"}


def test_id_type_change_is_one_typed_line(make_store: Any) -> None:
    store = make_store(seed.graph)
    store.write(KEY, [row(5)])
    with pytest.raises(mx.DataError) as info:
        store.write(KEY, [row("x")])
    message = str(info.value)
    assert "\n" not in message
    assert "'sample_uid'" in message and "int64" in message and "string" in message
    assert live(store, "sample_uid") == {5: 5}


def test_resolve_where_on_int_ids_is_one_line(make_store: Any, tmp_path: Any) -> None:
    store = make_store(seed.graph)
    store.write(KEY, [row(5)])
    with pytest.raises(mx.DataError):
        store.write(KEY, [row("x")])
    inc = store.resolve_update("video/face_crop", where="sample_uid = 5")
    assert inc.counts() == {"new": 1, "stale": 0, "orphaned": 0}


@pytest.mark.parametrize(("rows", "match"), [
    ([row("v\ud800")], r"column 'sample_uid'.*row 0.*surrogate"),
    ([row("v1"), row("v2", caption="x\udfff")], r"column 'caption'.*row 1.*surrogate"),
    ([row("v1", n=1), row("v2", n="two")], r"column 'n'.*row 1"),
    ([{"sample_uid": "v1", "metaxy_provenance_by_field": {"audio": "a\ud800", "frames": "f"}}],
     r"column 'metaxy_provenance_by_field'.*row 0.*surrogate"),
    ([row("v\x001")], r"column 'sample_uid'.*row 0.*NUL"),
    ([row("v1", caption="a\x00b")], r"column 'caption'.*row 0.*NUL"),
])
def test_invalid_values_are_data_errors(make_store: Any, rows: list[dict[str, Any]],
                                        match: str) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match=match):
        store.write(KEY, rows)


def test_reads_return_the_written_types(make_store: Any) -> None:
    store = make_store(seed.graph)
    schema = pa.schema([
        ("sample_uid", pa.string()),
        ("metaxy_provenance_by_field", pa.map_(pa.string(), pa.string())),
        ("price", pa.decimal128(12, 3)),
        ("box", pa.struct([("x", pa.int64()), ("label", pa.string())])),
        ("tags", pa.list_(pa.string())),
        ("at", pa.timestamp("us")),
        ("at_tz", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()),
        ("ok", pa.bool_()),
        ("score", pa.float64()),
    ])
    data = pa.Table.from_pylist([{
        "sample_uid": "v1", "metaxy_provenance_by_field": list(PBF.items()),
        "price": decimal.Decimal("12.345"), "box": {"x": 3, "label": "cat"},
        "tags": ["a", "b"], "at": dt.datetime(2024, 1, 2, 3, 4, 5, 6),
        "at_tz": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC),
        "day": dt.date(2024, 1, 2), "ok": True, "score": 0.1}], schema=schema)
    store.write(KEY, data)
    table = store.read(KEY)
    for name in ["price", "box", "tags", "at", "at_tz", "day", "ok", "score"]:
        assert table.schema.field(name).type == schema.field(name).type, name
        assert table.column(name).to_pylist() == data.column(name).to_pylist(), name


def test_decimals_keep_every_digit(make_store: Any) -> None:
    store = make_store(seed.graph)
    value = decimal.Decimal("1234567890123456789012345678.0123456789")
    store.write(KEY, pa.table({"sample_uid": ["v1"], "metaxy_provenance_by_field": [PBF],
                               "amount": pa.array([value], pa.decimal128(38, 10))}))
    table = store.read(KEY)
    assert table.schema.field("amount").type == pa.decimal128(38, 10)
    assert table.column("amount").to_pylist() == [value]


def test_declared_type_decides_before_any_write(make_store: Any) -> None:
    class Clip(mx.BaseFeature, spec=mx.FeatureSpec(
            key="clip", id_columns=["sample_uid"], fields=[mx.FieldSpec(key="audio")])):
        sample_uid: str
        frames: int | None

    graph = mx.FeatureGraph([Clip])
    store = make_store(graph)
    rows = [{"sample_uid": "c1", "frames": None,
             "metaxy_provenance_by_field": {"audio": "a"}}]
    store.write("clip", rows)
    assert store.read("clip").schema.field("frames").type == pa.int64()
    with pytest.raises(mx.DataError, match=r"clip.*column 'frames'.*stored as int64.*given string"):
        store.write("clip", [rows[0] | {"sample_uid": "c2", "frames": "many"}])


@pytest.mark.parametrize("kwargs", [{"where": "sample_uid = 'a\x00b'"}, {"ids": ["a\x00b"]}])
def test_nul_in_where_or_ids_is_refused(make_store: Any, kwargs: dict[str, Any]) -> None:
    store = make_store(seed.graph)
    store.write(KEY, [row("v1")])
    with pytest.raises(mx.DefinitionError, match=r"video/face_crop.*NUL"):
        store.resolve_update("video/face_crop", **kwargs)


def test_nul_in_code_version_is_refused() -> None:
    with pytest.raises(Exception, match=r"code_version.*NUL"):
        mx.FieldSpec(key="audio", code_version="1\x00")


def test_cli_resolve_on_int_ids_prints_one_line(engine: str) -> None:
    url = importlib.import_module(f"tests.engines.{engine}").fresh_url(
        f"cli_types_{os.getpid()}")
    with mx.connect(url, graph=seed.graph) as store:
        store.write(KEY, [row(5)])
        with pytest.raises(mx.DataError):
            store.write(KEY, [row("x")])
    runner = CliRunner()
    base = ["-e", "metaxy_sql.examples.seed", "--store", url]
    ok = runner.invoke(cli, [*base, "resolve", "video/face_crop", "--where", "sample_uid = 5"])
    assert ok.exit_code == 0, ok.output
    assert ok.output.splitlines()[0] == "video/face_crop: new 1, stale 0, orphaned 0"
    bad = runner.invoke(cli, [*base, "resolve", "video/face_crop", "--where", "sample_uid = 'x'"])
    assert bad.exit_code != 0 and len(bad.output.strip().splitlines()) == 1, bad.output


def test_buffered_batches_of_mixed_types_name_the_column(make_store: Any) -> None:
    store = make_store(seed.graph)
    match = r"column 'n' is given as int64 .* and as string"
    with pytest.raises(mx.DataError, match=match), \
            mx.BufferedMetadataWriter(store, flush_interval=None) as writer:
        writer.put({KEY: [row("v1", n=1)]})
        writer.put({KEY: [row("v2", n="two")]})


@pytest.mark.parametrize(("arrow_type", "value"), [
    (pa.uint64(), 2**64 - 1),
    (pa.decimal128(20, 3), decimal.Decimal("12345678901234567.123")),
    (pa.timestamp("us", tz="UTC"), dt.datetime(2024, 5, 1, 8, 30, tzinfo=dt.UTC)),
])
def test_increments_hand_out_the_stored_id_and_carried_types(
        make_store: Any, arrow_type: pa.DataType, value: Any) -> None:
    """What resolve hands out, write accepts: ids and carried columns come out of an
    increment in the type they were stored with, on every engine, so they write back."""
    parent = mx.FeatureSpec(key="t/parent", id_columns=["k"],
                            fields=[mx.FieldSpec(key="f", code_version="1")])
    child = mx.FeatureSpec(key="t/child", id_columns=["k"],
                           deps=[mx.FeatureDep(feature="t/parent", columns=["extra"])],
                           fields=[mx.FieldSpec(key="f", code_version="1")])
    store = make_store(mx.FeatureGraph([parent, child]))
    rows = pa.table({"k": pa.array([value], arrow_type), "extra": pa.array([value], arrow_type),
                     "metaxy_provenance_by_field": pa.array([[("f", "p")]],
                                                            pa.map_(pa.string(), pa.string()))})
    store.write("t/parent", store.resolve_update("t/parent", samples=rows).new.to_arrow())
    new = store.resolve_update("t/child").new
    table = new.to_arrow()
    assert table.schema.field("k").type == arrow_type
    assert table.schema.field("extra").type == arrow_type
    assert table.column("k").to_pylist() == [value]
    assert [b.schema.field("k").type for b in new.iter_batches()] == [arrow_type]
    store.write("t/child", table)
    assert store.resolve_update("t/child").counts() == {"new": 0, "stale": 0, "orphaned": 0}
    # The child's own stored type decides from now on: a stale row writes back too.
    bumped = mx.FeatureSpec(key="t/child", id_columns=["k"], deps=child.deps,
                            fields=[mx.FieldSpec(key="f", code_version="2")])
    again = store.with_graph(mx.FeatureGraph([parent, bumped]))
    stale = again.resolve_update("t/child").stale.to_arrow()
    assert stale.schema.field("k").type == arrow_type and stale.num_rows == 1
    again.write("t/child", stale)


@pytest.mark.parametrize("name", ['"q"', "`t`", "it's", "a b", "a,b", "", "q\x00", "1a", "é"])
def test_struct_field_names_any_engine_could_lose_are_refused(make_store: Any, name: str) -> None:
    """Engines spell struct field names inside type text: names with quotes, spaces or NUL,
    empty names, were silently dropped (values read back NULL) or refused differently."""
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match=r"column 'meta'.*struct field names"):
        store.write(KEY, [row("v1", meta={name: 1})])
    with pytest.raises(mx.DataError, match="struct field names"):
        store.write(KEY, [row("v1", meta={"A": 1, "a": 2})])
    store.write(KEY, [row("v1", meta={"ok_1": 1})])
    assert live(store, "meta") == {"v1": {"ok_1": 1}}


@pytest.mark.parametrize("value", [[float("nan")], [1.5, float("inf")], {"x": float("-inf")},
                                   [{"x": float("nan")}]])
def test_nan_inside_nested_values_is_refused_on_every_engine(make_store: Any,
                                                               value: Any) -> None:
    """Postgres keeps nested values as jsonb, which has no NaN or infinity: refused alike."""
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match="column 'nested' row 0 holds NaN or infinity"):
        store.write(KEY, [row("v1", nested=value)])
    store.write(KEY, [row("v1", score=float("nan"))])  # a scalar float keeps NaN
    assert str(live(store, "score")["v1"]) == "nan"


def bits(values: list[Any]) -> list[Any]:
    """Floats as their IEEE-754 bit patterns (``-0.0 != 0.0`` here); other values as they are."""
    return [struct.pack("<d", v) if isinstance(v, float) else v for v in values]


FLOAT_MAP = pa.map_(pa.string(), pa.float64())


@pytest.mark.parametrize(("good", "bad"), [
    (pa.array([[1.5, 0.0]]), pa.array([[1.5, -0.0]])),
    (pa.array([{"x": 0.0}]), pa.array([{"x": -0.0}])),
    (pa.array([[{"x": 2.0}]]), pa.array([[{"x": 2.0}, {"x": -0.0}]])),
    (pa.array([[("k", 0.0)]], FLOAT_MAP), pa.array([[("k", -0.0)]], FLOAT_MAP)),
])
def test_negative_zero_inside_nested_values_is_refused_on_every_engine(
        make_store: Any, good: pa.Array, bad: pa.Array) -> None:
    """Postgres jsonb numbers have no -0 (it reads back 0.0), DuckDB and ClickHouse keep it:
    refused alike, naming the column and the row."""
    store = make_store(seed.graph)
    rows = pa.table({"sample_uid": ["v1", "v2"],
                     "metaxy_provenance_by_field": pa.array([list(PBF.items())] * 2,
                                                            pa.map_(pa.string(), pa.string())),
                     "nested": pa.concat_arrays([good, bad])})
    with pytest.raises(mx.DataError, match=r"column 'nested' row 1 holds -0.0 .*write 0.0"):
        store.write(KEY, rows)
    store.write(KEY, [row("v1", score=-0.0)])  # a scalar float keeps -0.0
    assert bits([live(store, "score")["v1"]]) == bits([-0.0])


NESTED_FLOATS = [0.1 + 0.2, 1e308, 5e-324, 1.7976931348623157e308, 2.2250738585072014e-308,
                 1 / 3, -1.5, 0.0, 123456789.12345679]


def test_nested_numbers_read_back_bit_for_bit_on_every_engine(make_store: Any) -> None:
    """Floats with 17 significant digits, the extremes of float64 and ints above 2**53 survive
    Postgres jsonb (numeric) exactly, as on the other engines."""
    store = make_store(seed.graph)
    ints = [2**53 + 1, 2**63 - 1, -(2**63)]
    rows = pa.table({
        "sample_uid": ["v1"],
        "metaxy_provenance_by_field": pa.array([list(PBF.items())],
                                               pa.map_(pa.string(), pa.string())),
        "floats": pa.array([NESTED_FLOATS], pa.list_(pa.float64())),
        "ints": pa.array([ints], pa.list_(pa.int64())),
        "big": pa.array([[2**64 - 1]], pa.list_(pa.uint64())),
        "box": pa.array([{"x": 5e-324, "n": 2**63 - 1}],
                        pa.struct([("x", pa.float64()), ("n", pa.int64())])),
    })
    store.write(KEY, rows)
    got = store.read(KEY).to_pylist()[0]
    assert bits(got["floats"]) == bits(NESTED_FLOATS)
    assert got["ints"] == ints
    assert got["big"] == [2**64 - 1]
    assert bits([got["box"]["x"]]) == bits([5e-324]) and got["box"]["n"] == 2**63 - 1


def test_reads_hand_out_one_arrow_schema_on_every_engine(make_store: Any) -> None:
    """read, iter_batches and increments: list children named ``item``, every field nullable,
    whatever the engine (DuckDB named list children ``l``; ClickHouse marked ids, lists,
    structs and maps ``not null``)."""
    store = make_store(seed.graph)
    by_field = pa.map_(pa.string(), pa.string())
    written = pa.schema([
        ("sample_uid", pa.string()), ("metaxy_provenance_by_field", by_field),
        ("tags", pa.list_(pa.string())), ("box", pa.struct([("x", pa.int64())])),
        ("weights", pa.map_(pa.string(), pa.float64())),
        ("deep", pa.list_(pa.struct([("y", pa.list_(pa.int64()))]))),
        ("price", pa.decimal128(12, 3)), ("at", pa.timestamp("us", tz="UTC")),
        ("day", pa.date32()), ("ok", pa.bool_()), ("score", pa.float64()), ("n", pa.int64()),
        ("blob", pa.binary()), ("u", pa.uint64()),
    ])
    data = pa.Table.from_pylist([{
        "sample_uid": "v1", "metaxy_provenance_by_field": list(PBF.items()), "tags": ["a"],
        "box": {"x": 1}, "weights": [("k", 1.5)], "deep": [{"y": [1]}],
        "price": decimal.Decimal("1.5"), "at": dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
        "day": dt.date(2024, 1, 2), "ok": True, "score": 0.5, "n": 1, "blob": b"x",
        "u": 2**64 - 1}], schema=written)
    expected = pa.schema([*written, ("metaxy_provenance", pa.string()),
                          ("metaxy_data_version_by_field", by_field),
                          ("metaxy_data_version", pa.string()),
                          ("metaxy_feature_version", pa.string()),
                          ("metaxy_created_at", pa.timestamp("us"))])
    inc = store.resolve_update(KEY, samples=data)
    samples = pa.schema([written.field(n) for n in written.names
                         if n != "metaxy_provenance_by_field"])
    assert _fields(inc.new.to_arrow().schema, samples.names) == _fields(samples)
    assert [_fields(b.schema, samples.names) for b in inc.new.iter_batches()] == [
        _fields(samples)]
    store.write(KEY, data)
    assert _fields(store.read(KEY).schema) == _fields(expected)
    assert [_fields(b.schema) for b in store.iter_batches(KEY)] == [_fields(expected)]
    gone = store.resolve_update(KEY, samples=data.slice(0, 0)).orphaned.to_arrow()
    assert _fields(gone.schema, ["sample_uid"]) == _fields(pa.schema([written.field(0)]))


def _fields(schema: pa.Schema, only: list[str] | None = None) -> dict[str, str]:
    """Each field as text: child names and ``not null`` included (Arrow's ``==`` ignores
    list child names)."""
    return {f.name: str(f) + " " + str(f.type) for f in schema
            if only is None or f.name in only} | {"nullable": str(all(
                _nullable(f) for f in schema if only is None or f.name in only))}


def _nullable(field: pa.Field) -> bool:
    t = field.type
    if not field.nullable:
        return False
    if pa.types.is_list(t):
        return _nullable(t.value_field)
    if pa.types.is_struct(t):
        return all(_nullable(t.field(i)) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _nullable(t.item_field)
    return True
