"""Increments and latest states where users already work: ibis tables, polars and pandas frames.

One increment of the seed pipeline's ``video/face_crop`` (frames <- video/full.frames), known
from the semantics: v0, v2 written and unchanged; v1 written, its upstream frames changed
(stale, ``frames``); v3 written, gone upstream (orphaned); v4, v5 never written (new).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlglot

import metaxy_sql as mx
from metaxy_sql.examples import seed
from metaxy_sql.model import names
from tests.conftest import ENGINES
from tests.pipeline import samples

CROP = "video/face_crop"
EXPECTED = {"new": {"v4", "v5"}, "stale": {"v1"}, "orphaned": {"v3"}}
#: Root provenance per sample: frames of v1 change between the two runs, v3 disappears.
FIRST = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(4)}
SECOND = {**{f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in (0, 2, 4, 5)},
          "v1": {"audio": "a1", "frames": "f1-recut"}}


def _increment(store: mx.Store) -> mx.Increment:
    inc = store.resolve_update("video/full", samples=samples(FIRST))
    store.write("video/full", inc.new)
    store.write(CROP, store.resolve_update(CROP).new)
    inc = store.resolve_update("video/full", samples=samples(SECOND))
    store.write("video/full", inc.new)
    store.write("video/full", inc.stale)
    store.delete("video/full", inc.orphaned)
    return store.resolve_update(CROP)


@pytest.fixture
def store(make_store: Any) -> mx.Store:
    s: mx.Store = make_store(seed.graph)
    return s


def _ids(table: pa.Table) -> set[str]:
    return set(table.column("sample_uid").to_pylist())


def _sorted(table: pa.Table) -> pa.Table:
    return table.sort_by("sample_uid")


# -- ibis ------------------------------------------------------------------------------------
#: Engines with an ibis backend here (chdb has none: test_to_ibis_on_chdb_names_what_to_use).
IBIS_ENGINES = pytest.mark.parametrize("engine", [e for e in ENGINES if e != "clickhouse"])
CHDB = pytest.mark.parametrize("engine", [e for e in ENGINES if e == "clickhouse"])


@IBIS_ENGINES
@pytest.mark.parametrize("status", ["new", "stale", "orphaned"])
def test_to_ibis_filters_and_projects_in_the_engine(store: mx.Store, engine: str,
                                                    status: str) -> None:
    import ibis

    inc = _increment(store)
    part = getattr(inc, status)
    t = part.to_ibis()
    expr = t.filter(t.sample_uid != "v5").select("sample_uid", names.PROVENANCE)
    sql = ibis.to_sql(expr)
    # Our statement (the category query) is inside, with the user's filter around it.
    dialect = store.executor.dialect.sqlglot_dialect
    ours = sqlglot.parse_one(part.sql, read=dialect)
    theirs = sqlglot.parse_one(sql, read=dialect)
    assert any(node == ours for node in theirs.find_all(sqlglot.exp.Select)), sql
    assert "'v5'" in sql

    got = _sorted(expr.to_pyarrow())
    arrow = part.to_arrow()
    want = _sorted(arrow.filter(pc.not_equal(arrow.column("sample_uid"), "v5"))
                   .select(["sample_uid", names.PROVENANCE]))
    assert got.to_pylist() == want.to_pylist()
    assert _ids(got) == EXPECTED[status] - {"v5"}


@IBIS_ENGINES
def test_to_ibis_is_lazy_it_runs_when_executed(store: mx.Store, engine: str) -> None:
    """Built before a write, executed after it: the rows are those of execution time."""
    inc = _increment(store)
    t = inc.new.to_ibis()
    expr = t.select("sample_uid")
    store.write(CROP, inc.new.to_arrow().filter(pc.equal(inc.new.to_arrow()["sample_uid"], "v4")))
    assert _ids(expr.to_pyarrow()) == {"v5"}
    assert expr.count().execute() == 1


@IBIS_ENGINES
def test_store_table_is_the_latest_state_as_ibis(store: mx.Store, engine: str) -> None:
    _increment(store)
    t = store.table("video/full")
    got = _sorted(t.filter(t.sample_uid.isin(["v1", "v3"])).select("sample_uid").to_pyarrow())
    # v3 was deleted: the latest state hides it.
    assert got.column("sample_uid").to_pylist() == ["v1"]
    assert t.count().execute() == store.count("video/full") == 5
    with pytest.raises(mx.DataError, match=r"video/talking_head.*no table yet"):
        store.table("video/talking_head")


@CHDB
def test_to_ibis_on_chdb_names_what_to_use(store: mx.Store, engine: str) -> None:
    inc = _increment(store)
    with pytest.raises(mx.UnsupportedByDialectError, match=r"chdb.*to_arrow\(\)"):
        inc.new.to_ibis()
    with pytest.raises(mx.UnsupportedByDialectError, match="chdb"):
        store.table("video/full")


# -- polars and pandas -----------------------------------------------------------------------
def _expected_maps(part: mx.IncrementPart) -> dict[str, dict[str, str]]:
    return {r["sample_uid"]: dict(r[names.PROVENANCE_BY_FIELD])
            for r in part.to_arrow().to_pylist()}


@pytest.mark.parametrize("status", ["new", "stale", "orphaned"])
def test_to_polars_eager_maps_are_structs_of_the_field_keys(store: mx.Store,
                                                            status: str) -> None:
    inc = _increment(store)
    part = getattr(inc, status)
    df = part.to_polars()
    assert isinstance(df, pl.DataFrame)
    assert df.schema[names.PROVENANCE_BY_FIELD] == pl.Struct({"frames": pl.String})
    assert set(df["sample_uid"]) == EXPECTED[status]
    got = {r["sample_uid"]: r[names.PROVENANCE_BY_FIELD] for r in df.to_dicts()}
    assert got == _expected_maps(part)


def test_to_polars_lazy_streams_batches_when_collected(store: mx.Store) -> None:
    inc = _increment(store)
    lf = inc.new.to_polars(lazy=True, batch_size=1)
    assert isinstance(lf, pl.LazyFrame)
    fetched = inc.new.fetched
    assert lf.collect_schema()[names.PROVENANCE_BY_FIELD] == pl.Struct({"frames": pl.String})
    assert inc.new.fetched == fetched  # nothing read for the schema
    out = lf.filter(pl.col("sample_uid") == "v5").select("sample_uid", names.PROVENANCE).collect()
    assert out["sample_uid"].to_list() == ["v5"]
    assert inc.new.fetched == fetched + 2  # both rows streamed, one batch each
    assert lf.collect().sort("sample_uid").equals(inc.new.to_polars().sort("sample_uid"))


def test_to_pandas_maps_are_dicts(store: mx.Store) -> None:
    inc = _increment(store)
    df = inc.stale.to_pandas()
    assert isinstance(df, pd.DataFrame)
    [row] = df.to_dict("records")
    assert row["sample_uid"] == "v1"
    assert row[names.PROVENANCE_BY_FIELD] == _expected_maps(inc.stale)["v1"]
    assert isinstance(row[names.PROVENANCE_BY_FIELD], dict)
    assert list(row[names.CHANGED_FIELDS]) == ["frames"]


def test_frames_write_back_as_they_are(store: mx.Store) -> None:
    inc = _increment(store)
    assert store.write(CROP, inc.new.to_polars()) == 2
    assert store.write(CROP, inc.stale.to_pandas()) == 1
    assert store.resolve_update(CROP).counts() == {"new": 0, "stale": 0, "orphaned": 1}


def test_read_polars_and_pandas_are_the_latest_state(store: mx.Store) -> None:
    _increment(store)
    arrow = _sorted(store.read("video/full"))
    df = store.read_polars("video/full").sort("sample_uid")
    assert df["sample_uid"].to_list() == ["v0", "v1", "v2", "v4", "v5"]
    assert df.schema[names.PROVENANCE_BY_FIELD] == pl.Struct(
        {"audio": pl.String, "frames": pl.String})
    assert df[names.PROVENANCE_BY_FIELD].to_list() == [
        SECOND[u] for u in df["sample_uid"].to_list()]
    assert df[names.PROVENANCE].to_list() == arrow.column(names.PROVENANCE).to_pylist()
    pdf = store.read_pandas("video/full").sort_values("sample_uid")
    assert pdf[names.PROVENANCE_BY_FIELD].tolist() == [SECOND[u] for u in pdf["sample_uid"]]
    streamed = pa.Table.from_batches(list(store.iter_batches("video/full", batch_size=2)))
    assert _sorted(streamed).equals(arrow)


def test_to_polars_lazy_collected_again_and_again(store: mx.Store) -> None:
    """Each collect streams anew, whichever polars thread resumes the source."""
    inc = _increment(store)
    lf = inc.new.to_polars(lazy=True, batch_size=1)
    want = inc.new.to_polars().sort("sample_uid")
    for _ in range(20):
        assert lf.collect().sort("sample_uid").equals(want)
        assert lf.head(1).collect().height == 1
