"""A root sample whose provenance is unchanged but whose other columns changed: found by
``Increment.changed_columns()`` with the store's exact-value rules, written without making
anything downstream stale, read by dependency filters. Every test runs on every engine."""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pytest

import metaxy_sql as mx
from tests.conftest import StoreFactory

PROV = {"frames": "f1", "audio": "a1"}
FIELDS = [mx.FieldSpec(key="frames", code_version="1"), mx.FieldSpec(key="audio", code_version="1")]
VIDEOS = mx.FeatureSpec(key="videos", id_columns=["sample_uid"], fields=FIELDS)
CAPT = mx.FeatureSpec(key="capt", id_columns=["sample_uid"], deps=[
    mx.FeatureDep(feature="videos", filters=["dur > 1.0"], columns=["dur"])])
GRAPH = mx.FeatureGraph([VIDEOS, CAPT])


def rows(**columns: dict[str, Any]) -> list[dict[str, Any]]:
    """Sample rows, all with provenance ``PROV``: ``rows(dur={"v1": 2.0})``."""
    ids = sorted({k for values in columns.values() for k in values})
    return [{"sample_uid": i, "metaxy_provenance_by_field": PROV,
             **{c: values[i] for c, values in columns.items() if i in values}} for i in ids]


def record(store: mx.Store, samples: list[dict[str, Any]]) -> list[str]:
    """What ``resolve --write`` writes: new, stale and changed-column samples; returns the
    ids whose columns changed."""
    inc = store.resolve_update("videos", samples=samples)
    assert inc.counts()["stale"] == 0  # provenance never changes in these tests
    changed = inc.changed_columns()
    store.write("videos", inc.new)
    store.write("videos", changed)
    return [str(v) for v in changed.column("sample_uid").to_pylist()]


def history(store: mx.Store) -> int:
    return store.read("videos", history=True).num_rows


def test_changed_column_reaches_filters_not_staleness(make_store: StoreFactory) -> None:
    store = make_store(GRAPH)
    assert record(store, rows(dur={"v1": 2.0, "v2": 0.5, "v3": 3.0})) == []
    inc = store.resolve_update("capt")
    assert sorted(inc.new.to_arrow().to_pydict()["sample_uid"]) == ["v1", "v3"]  # dur > 1.0
    store.write("capt", inc.new)
    # v1 and v2 swap durations, v3 grows; same provenance: nothing is new or stale
    inc = store.resolve_update("videos", samples=rows(dur={"v1": 0.5, "v2": 2.0, "v3": 4.0}))
    assert inc.counts() == {"new": 0, "stale": 0, "orphaned": 0}
    changed = inc.changed_columns()
    assert changed.column_names == ["sample_uid", "metaxy_provenance_by_field", "dur"]
    assert changed.select(["sample_uid", "dur"]).to_pylist() == [
        {"sample_uid": "v1", "dur": 0.5}, {"sample_uid": "v2", "dur": 2.0},
        {"sample_uid": "v3", "dur": 4.0}]
    assert store.write("videos", changed) == 3
    assert history(store) == 6
    child = store.resolve_update("capt")
    # the filter reads the new values: v1 leaves, v2 enters; v3's provenance is unchanged,
    # so it is not stale, and its stored copy of the carried column keeps the old value
    assert child.counts() == {"new": 1, "stale": 0, "orphaned": 1}
    assert child.new.to_arrow().select(["sample_uid", "dur"]).to_pylist() == [
        {"sample_uid": "v2", "dur": 2.0}]
    assert child.orphaned.to_arrow().to_pydict()["sample_uid"] == ["v1"]
    assert store.read("capt", where="sample_uid = 'v3'").column("dur").to_pylist() == [3.0]


def test_null_and_value_differ_absent_columns_are_not_compared(make_store: StoreFactory
                                                              ) -> None:
    store = make_store(GRAPH)
    record(store, rows(dur={"v1": 1.5, "v2": 1.5, "v3": 1.5},
                       note={"v1": None, "v2": "x", "v3": "x"}))
    assert history(store) == 3
    # NULL -> value, value -> NULL, unchanged
    assert record(store, rows(dur={"v1": 1.5, "v2": 1.5, "v3": 1.5},
                              note={"v1": "y", "v2": None, "v3": "x"})) == ["v1", "v2"]
    assert history(store) == 5
    got = {r["sample_uid"]: r["note"] for r in store.read("videos").to_pylist()}
    assert got == {"v1": "y", "v2": None, "v3": "x"}
    # a file without `note`: only `dur` is compared, and it is unchanged
    assert record(store, rows(dur={"v1": 1.5, "v2": 1.5, "v3": 1.5})) == []
    # a column the store has never seen: a value differs from its (NULL) absence
    assert record(store, rows(dur={"v1": 1.5, "v2": 1.5, "v3": 1.5},
                              lang={"v1": None, "v2": "en", "v3": None})) == ["v2"]
    assert history(store) == 6


def test_nan_equals_nan_and_signed_zeros_differ(make_store: StoreFactory) -> None:
    store = make_store(GRAPH)
    nan = float("nan")
    record(store, rows(dur={"v1": nan, "v2": 0.0, "v3": 1.0}, emb={
        "v1": [1.0, 2.0], "v2": [0.0], "v3": [1.0]}))
    assert history(store) == 3
    assert record(store, rows(dur={"v1": nan, "v2": 0.0, "v3": 1.0}, emb={
        "v1": [1.0, 2.0], "v2": [0.0], "v3": [1.0]})) == []
    assert history(store) == 3  # NaN unchanged: not rewritten
    assert record(store, rows(dur={"v1": nan, "v2": -0.0, "v3": 1.0}, emb={
        "v1": [1.0, 2.0], "v2": [0.0], "v3": [1.0, 3.0]})) == ["v2", "v3"]
    got = {r["sample_uid"]: r for r in store.read("videos").to_pylist()}
    assert math.isnan(got["v1"]["dur"])
    assert math.copysign(1.0, got["v2"]["dur"]) == -1.0
    assert got["v3"]["emb"] == [1.0, 3.0]
    # read back as stored, the same values compare equal: nothing to rewrite
    assert record(store, rows(dur={"v1": nan, "v2": -0.0, "v3": 1.0}, emb={
        "v1": [1.0, 2.0], "v2": [0.0], "v3": [1.0, 3.0]})) == []
    assert history(store) == 5


def test_signed_zero_inside_a_list_is_refused_not_rewritten(make_store: StoreFactory) -> None:
    """A ``-0.0`` inside a list cannot be kept by every store (Postgres jsonb reads it back
    as 0.0), so it is refused on every engine, by resolve --write as by write; otherwise
    ``changed_columns`` would find the sample changed on every call there."""
    store = make_store(GRAPH)
    with pytest.raises(mx.DataError, match=r"-0\.0"):
        record(store, rows(emb={"v1": [-0.0]}))
    assert store.read("videos").num_rows == 0


def test_whole_numbers_for_a_float_column_and_partial_resolution(make_store: StoreFactory
                                                                 ) -> None:
    store = make_store(GRAPH)
    record(store, rows(dur={"v1": 2.0, "v2": 3.0}))
    # 2 and 3 as int64 are the stored floats 2.0 and 3.0 (the write widens them alike)
    same = pa.table({"sample_uid": ["v1", "v2"], "dur": pa.array([2, 4], pa.int64()),
                     "metaxy_provenance_by_field": [PROV, PROV]})
    inc = store.resolve_update("videos", samples=same)
    assert inc.changed_columns().column("sample_uid").to_pylist() == ["v2"]
    inc = store.resolve_update("videos", samples=same, where="sample_uid = 'v1'")
    assert inc.changed_columns().num_rows == 0


def test_changed_columns_is_for_root_features(make_store: StoreFactory) -> None:
    store = make_store(GRAPH)
    record(store, rows(dur={"v1": 2.0}))
    with pytest.raises(mx.DataError, match="'capt' is not a root feature"):
        store.resolve_update("capt").changed_columns()
