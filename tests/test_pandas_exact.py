"""pandas round trips are exact: what the store hands out as pandas writes back value for value.

NULL and NaN stay distinct both ways: reads use pandas' nullable dtypes (``Int64``, ``UInt64``,
``Float64``, ``boolean``) and ``pd.ArrowDtype`` for nested columns; writes store a float NaN as
NaN and only pandas' missing markers (``pd.NA``, ``None``, ``NaT``, NaN among non-floats in an
``object`` column) as NULL.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import metaxy_sql as mx
from metaxy_sql.examples import seed
from tests.conftest import StoreFactory

KEY = "video/full"
NAN, INF = float("nan"), float("inf")
BIG = 2**53 + 1  # the first int64 a float64 cannot hold
MAP = pa.map_(pa.string(), pa.string())
IDS = ["v0", "v1", "v2", "v3"]

#: Every stored type, with NULL (where a column may hold it), NaN, infinities and -0.0.
COLUMNS: dict[str, pa.Array] = {
    "n": pa.array([BIG, None, -(2**63), 0], pa.int64()),
    "u": pa.array([2**64 - 1, None, 0, BIG], pa.uint64()),
    "score": pa.array([NAN, None, INF, -0.0], pa.float64()),
    "ok": pa.array([True, None, False, True], pa.bool_()),
    "caption": pa.array(["a cat", None, "", "é"], pa.string()),
    "blob": pa.array([b"\x00\xff", None, b"", b"x"], pa.binary()),
    "price": pa.array([decimal.Decimal("12.300"), None, decimal.Decimal("-0.001"),
                       decimal.Decimal("999999999.999")], pa.decimal128(12, 3)),
    "at": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 6), None, dt.datetime(1970, 1, 1),
                    dt.datetime(2262, 4, 12)], pa.timestamp("us")),
    "at_tz": pa.array([dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC), None,
                       dt.datetime(1900, 1, 1, tzinfo=dt.UTC),
                       dt.datetime(2024, 1, 1, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC")),
    "day": pa.array([dt.date(2024, 1, 2), None, dt.date(1, 1, 1), dt.date(9999, 12, 31)],
                    pa.date32()),
    "tags": pa.array([[BIG, None], [], [1], [2, 3]], pa.list_(pa.int64())),
    "box": pa.array([{"x": BIG, "label": None}, {"x": None, "label": "cat"},
                     {"x": 0, "label": ""}, {"x": 1, "label": "dog"}],
                    pa.struct([("x", pa.int64()), ("label", pa.string())])),
    "attrs": pa.array([[("k", "v")], [], [("k", None), ("j", "w")], [("z", "")]], MAP),
}


def _table(columns: dict[str, pa.Array]) -> pa.Table:
    pbf = pa.array([[("audio", f"a{i}"), ("frames", f"f{i}")] for i in range(len(IDS))], MAP)
    return pa.table({"sample_uid": IDS, "metaxy_provenance_by_field": pbf, **columns})


def _exact(values: list[Any]) -> list[Any]:
    """Values compared exactly: a float by its text, so NaN equals NaN and -0.0 is not 0.0."""
    return [repr(v) if isinstance(v, float) else v for v in values]


def _by_id(table: pa.Table, column: str) -> list[Any]:
    table = table.sort_by("sample_uid")
    if pa.types.is_map(table.schema.field(column).type):
        # Entries as a dict: Postgres keeps maps as jsonb, which orders the keys its own way.
        return [dict(v) for v in table.column(column).to_pylist()]
    return _exact(table.column(column).to_pylist())


def test_read_pandas_write_round_trips_every_stored_type(make_store: StoreFactory) -> None:
    store = make_store(seed.graph)
    written = _table(COLUMNS)
    store.write(KEY, written)
    df = store.read_pandas(KEY)
    dtypes = {c: str(df[c].dtype) for c in ["n", "u", "score", "ok"]}
    assert dtypes == {"n": "Int64", "u": "UInt64", "score": "Float64", "ok": "boolean"}
    for name in ["tags", "box", "attrs"]:
        assert df[name].dtype == pd.ArrowDtype(written.schema.field(name).type), name
    row = df.set_index("sample_uid")
    assert row.loc["v0", "n"] == BIG and row.loc["v3", "u"] == BIG
    assert row.loc["v1", "n"] is pd.NA and row.loc["v1", "score"] is pd.NA
    assert math.isnan(row.loc["v0", "score"]) and row.loc["v2", "score"] == INF
    assert math.copysign(1, row.loc["v3", "score"]) == -1
    assert row.loc["v1", "ok"] is pd.NA
    assert row.loc["v0", "tags"] == [BIG, None] and row.loc["v0", "box"]["x"] == BIG
    assert store.write(KEY, df) == len(IDS)
    again = store.read(KEY)
    assert store.read(KEY, history=True).num_rows == 2 * len(IDS)  # really written again
    for name in COLUMNS:
        assert again.schema.field(name).type == written.schema.field(name).type, name
        assert _by_id(again, name) == _by_id(written, name), name


def test_nan_given_in_pandas_is_stored_as_nan(make_store: StoreFactory) -> None:
    """A NaN the user gives is a value; only pandas' missing markers are NULL."""
    store = make_store(seed.graph)
    pbf = [{"audio": f"a{i}", "frames": f"f{i}"} for i in range(3)]
    frame = pd.DataFrame({
        "sample_uid": IDS[:3], "metaxy_provenance_by_field": pbf,
        "plain": np.array([NAN, -0.0, INF]),                        # numpy float64: no NULL
        # NULL is pd.NA (pd.array([nan], dtype="Float64") would itself read NaN as NA)
        "masked": pd.arrays.FloatingArray(np.array([NAN, 0.0, 1.5]),
                                          np.array([False, True, False])),
        "loose": pd.Series([NAN, None, 2.5], dtype=object),         # floats: NaN is a value
        "blob": pd.Series([b"x", NAN, None], dtype=object),         # NaN among bytes: missing
        "count": pd.array([BIG, None, 1], dtype="Int64"),
        "at": pd.Series([pd.Timestamp("2024-01-02"), pd.NaT, pd.Timestamp("2024-01-03")]),
    })
    store.write(KEY, frame)
    table = store.read(KEY)
    assert _by_id(table, "plain") == ["nan", "-0.0", "inf"]
    assert _by_id(table, "masked") == ["nan", None, "1.5"]
    assert _by_id(table, "loose") == ["nan", None, "2.5"]
    assert _by_id(table, "blob") == [b"x", None, None]
    assert _by_id(table, "count") == [BIG, None, 1]
    assert _by_id(table, "at") == [dt.datetime(2024, 1, 2), None, dt.datetime(2024, 1, 3)]


def test_nan_in_an_object_column_of_text_names_the_column(make_store: StoreFactory) -> None:
    store = make_store(seed.graph)
    frame = pd.DataFrame({"sample_uid": IDS[:2],
                          "metaxy_provenance_by_field": [{"audio": "a", "frames": "f"}] * 2,
                          "caption": pd.Series(["a", 3], dtype=object)})
    with pytest.raises(mx.DataError, match=r"column 'caption' row 1.*several types"):
        store.write(KEY, frame)


def test_increment_to_pandas_writes_back_exactly(make_store: StoreFactory) -> None:
    store = make_store(seed.graph)
    samples = _table({name: COLUMNS[name] for name in ["n", "score", "ok"]})
    part = store.resolve_update(KEY, samples=samples).new
    df = part.to_pandas()
    assert [str(df[c].dtype) for c in ["n", "score", "ok"]] == ["Int64", "Float64", "boolean"]
    assert store.write(KEY, df) == len(IDS)
    for name in ["n", "score", "ok"]:
        assert _by_id(store.read(KEY), name) == _by_id(samples, name), name
    assert store.resolve_update(KEY, samples=samples).counts() == {
        "new": 0, "stale": 0, "orphaned": 0}


def test_pandas_shapes_a_user_meets(make_store: StoreFactory) -> None:
    """A Series of ids deletes like a list; a merge's float64 for an int column is refused
    with the nullable-dtype fix; two columns of one name are refused, naming it."""
    store = make_store(seed.graph)
    prov = {"audio": "a", "frames": "f"}
    rows = pd.DataFrame({"sample_uid": IDS, "n": pd.array([1, 2, 3, 4], dtype="Int64"),
                         "metaxy_provenance_by_field": [prov] * 4})
    assert store.write(KEY, rows) == 4
    # a left merge leaves the unmatched rows NaN and the column float64
    merged = rows.drop(columns="n").merge(pd.DataFrame({"sample_uid": ["v0"], "n": [7]}),
                                          how="left")
    assert str(merged["n"].dtype) == "float64"
    with pytest.raises(mx.DataError, match=r"column 'n' is stored as int64.*convert_dtypes"):
        store.write(KEY, merged)
    assert store.write(KEY, merged.convert_dtypes()) == 4
    assert _by_id(store.read(KEY), "n") == [7, None, None, None]
    twice = pd.concat([rows, rows[["n"]]], axis=1)
    with pytest.raises(mx.DataError, match=r"columns named more than once: \['n'\]"):
        store.write(KEY, twice)
    assert store.delete(KEY, pd.Series(["v2", "v3"])) == 2
    assert sorted(store.read(KEY).column("sample_uid").to_pylist()) == ["v0", "v1"]
