"""Incremental increments (DESIGN semantics 12): after any sequence of writes, soft and hard
deletes, code-version bumps and refreshes, the maintained increment equals the full resolve
exactly (same ids, statuses, changed fields, provenance), on every engine; a refresh
interrupted at any step leaves a table the next refresh makes exact.

Examples: ``examples(N)`` per engine (``METAXY_SQL_INCREMENTAL_EXAMPLES`` overrides N, e.g.
``METAXY_SQL_INCREMENTAL_EXAMPLES=10000 METAXY_SQL_TEST_ENGINES=duckdb pytest
tests/test_incremental.py -k property``).
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metaxy_sql as mx
from metaxy_sql.engine import incremental
from metaxy_sql.model import names
from tests.conftest import examples


class Utterance(mx.BaseFeature, spec=mx.FeatureSpec(
        key="audio/utt", id_columns=["utterance_id"], fields=[mx.FieldSpec(key="audio")])):
    speaker: str


VIDEO = mx.FeatureSpec(key="video/full", id_columns=["sample_uid"],
                       fields=[mx.FieldSpec(key="audio"), mx.FieldSpec(key="frames")])
SUBS = mx.FeatureSpec(key="subs/raw", id_columns=["sample_uid"], fields=[mx.FieldSpec(key="text")])
ROOTS = ("video/full", "subs/raw", "audio/utt")
CHILDREN = ("video/chunk", "video/cap", "speaker/emb")
IDS = ("v0", "v1", "v2", "v3")
SPEAKERS = ("s0", "s1", "s2")


def graph(bumps: dict[str, int]) -> mx.FeatureGraph:
    """1:1 with an optional dep (cap), expansion (chunk), aggregation on a user column (emb)."""
    def cv(key: str) -> str:
        return str(1 + bumps.get(key, 0))
    chunk = mx.FeatureSpec(
        key="video/chunk", id_columns=["sample_uid", "chunk_id"],
        deps=[mx.FeatureDep(feature="video/full", lineage=mx.expansion(on=["sample_uid"]))],
        fields=[mx.FieldSpec(key="frames", code_version=cv("video/chunk"))])
    cap = mx.FeatureSpec(
        key="video/cap", id_columns=["sample_uid"],
        deps=["video/full", mx.FeatureDep(feature="subs/raw", optional=True)],
        fields=[mx.FieldSpec(key="caption", code_version=cv("video/cap"))])
    emb = mx.FeatureSpec(
        key="speaker/emb", id_columns=["speaker"],
        deps=[mx.FeatureDep(feature="audio/utt", lineage=mx.aggregation(on=["speaker"]))],
        fields=[mx.FieldSpec(key="emb", code_version=cv("speaker/emb"))])
    return mx.FeatureGraph([VIDEO, SUBS, Utterance, chunk, cap, emb])


def rows(inc: mx.Increment) -> list[tuple[Any, ...]]:
    """Every increment row, order-free, maps and changed fields normalized."""
    table: pa.Table = inc.to_arrow()
    out = []
    for r in table.to_pylist():
        r[names.CHANGED_FIELDS] = sorted(r[names.CHANGED_FIELDS] or [])
        r[names.PROVENANCE_BY_FIELD] = sorted(dict(r[names.PROVENANCE_BY_FIELD]).items())
        out.append(tuple(sorted((k, repr(v)) for k, v in r.items())))
    return sorted(out)


def write_root(store: mx.Store, key: str, ident: str, value: int, speaker: str) -> None:
    fields = store.graph.field_keys(key)
    row: dict[str, Any] = {"metaxy_provenance_by_field": {f: f"{f}{value}" for f in fields}}
    if key == "audio/utt":
        row.update(utterance_id=ident, speaker=speaker)
    else:
        row["sample_uid"] = ident
    store.write(key, [row])


def write_child(store: mx.Store, key: str, half: bool) -> None:
    """Apply the full increment of ``key`` (every second row of each category when ``half``)."""
    inc = store.resolve_update(key, incremental=False)
    for part in (inc.new, inc.stale, inc.orphaned):
        table = part.to_arrow()
        if half:
            table = table.take(pa.array(range(0, table.num_rows, 2), pa.int64()))
        if not table.num_rows:
            continue
        if part is inc.orphaned:
            store.delete(key, table)
            continue
        if key == "video/chunk":  # children of each parent: two chunks
            table = pa.concat_tables([
                table.set_column(table.schema.get_field_index("chunk_id"), "chunk_id",
                                 pa.array([c] * table.num_rows, pa.string()))
                for c in ("c0", "c1")])
        store.write(key, table)


ids = st.sampled_from(IDS)
ops = st.one_of(
    st.tuples(st.just("root"), st.sampled_from(ROOTS), ids, st.integers(0, 2),
              st.sampled_from(SPEAKERS)),
    st.tuples(st.just("soft"), st.sampled_from(ROOTS + CHILDREN), ids),
    st.tuples(st.just("hard"), st.sampled_from(ROOTS + CHILDREN), ids),
    st.tuples(st.just("child"), st.sampled_from(CHILDREN), st.booleans()),
    st.tuples(st.just("bump"), st.sampled_from(CHILDREN)),
)
steps = st.lists(st.tuples(ops, st.lists(st.sampled_from(CHILDREN), unique=True)),
                 min_size=1, max_size=6)


def id_row(store: mx.Store, key: str, ident: str) -> dict[str, str]:
    cols = store.graph.spec(key).id_columns
    row = {c: ident for c in cols}
    if "speaker" in row:
        row["speaker"] = "s" + ident[1:]
    if "utterance_id" in row:
        row["utterance_id"] = ident
    return row


def apply(store: mx.Store, op: tuple[Any, ...], bumps: dict[str, int]) -> mx.Store:
    kind = op[0]
    if kind == "root":
        write_root(store, op[1], op[2], op[3], op[4])
    elif kind in ("soft", "hard"):
        store.delete(op[1], [id_row(store, op[1], op[2])], hard=kind == "hard")
    elif kind == "child":
        write_child(store, op[1], op[2])
    else:
        bumps[op[1]] = bumps.get(op[1], 0) + 1
        store = store.with_graph(graph(bumps))
    return store


def reset(store: mx.Store) -> mx.Store:
    store = store.with_graph(graph({}))
    for key in store.graph.keys:
        store.drop(key)
    for key in ROOTS:
        for i, ident in enumerate(IDS[:3]):
            write_root(store, key, ident, 0, SPEAKERS[i % 2])
    return store


def check(store: mx.Store, key: str) -> None:
    maintained = store.resolve_update(key, incremental=True)
    assert maintained.mode in ("incremental", "rebuilt")
    assert rows(maintained) == rows(store.resolve_update(key, incremental=False)), (
        key, maintained.refresh)


N = int(os.environ.get("METAXY_SQL_INCREMENTAL_EXAMPLES", "0")) or examples(12)


@settings(max_examples=N, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps)
def test_property_incremental_equals_full(make_store: Any,
                                          sequence: list[tuple[tuple[Any, ...], list[str]]]
                                          ) -> None:
    store = reset(make_store(graph({})))
    bumps: dict[str, int] = {}
    for op, refreshed in sequence:
        store = apply(store, op, bumps)
        for key in refreshed:  # the others keep their watermarks across several steps
            check(store, key)
    for key in CHILDREN:
        check(store, key)


def test_refresh_is_incremental_and_says_so(make_store: Any) -> None:
    store = reset(make_store(graph({})))
    first = incremental.refresh(store, "video/cap")
    assert first.mode == "full" and "first build" in first.reason
    write_root(store, "video/full", "v1", 2, "s0")
    inc = store.resolve_update("video/cap")
    assert inc.mode == "incremental" and inc.refresh is not None
    assert inc.refresh.touched == 1  # only v1 was written
    assert rows(inc) == rows(store.resolve_update("video/cap", incremental=False))
    assert store.resolve_update("video/cap", incremental=False).mode == "full"
    store.delete("subs/raw", [{"sample_uid": "v0"}], hard=True)
    rebuilt = store.resolve_update("video/cap")
    assert rebuilt.mode == "rebuilt" and "hard delete" in rebuilt.refresh.reason
    bumped_store = store.with_graph(graph({"video/cap": 1}))
    bumped = bumped_store.resolve_update("video/cap")
    assert bumped.mode == "rebuilt" and "statement changed" in bumped.refresh.reason
    assert rows(bumped) == rows(bumped_store.resolve_update("video/cap", incremental=False))


def test_aggregation_member_moving_groups(make_store: Any) -> None:
    store = reset(make_store(graph({})))
    write_child(store, "speaker/emb", half=False)
    incremental.refresh(store, "speaker/emb")
    write_root(store, "audio/utt", "v0", 0, "s1")  # v0 moves from s0 to s1: both change
    inc = store.resolve_update("speaker/emb")
    assert inc.mode == "incremental"
    assert rows(inc) == rows(store.resolve_update("speaker/emb", incremental=False))
    assert {r["speaker"] for r in inc.to_arrow().to_pylist()} == {"s0", "s1"}


STEPS = ("before rebuild", "before delete", "before insert", "before watermarks")


class Crash(Exception):
    pass


@pytest.mark.parametrize("step", STEPS)
def test_crash_mid_refresh_next_refresh_is_exact(make_store: Any, step: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    store = reset(make_store(graph({})))
    write_child(store, "video/chunk", half=True)
    incremental.refresh(store, "video/chunk")
    write_root(store, "video/full", "v0", 2, "s0")
    store.delete("video/full", [{"sample_uid": "v1"}])
    if step == "before rebuild":
        store = store.with_graph(graph({"video/chunk": 1}))

    def crash(at: str) -> None:
        if at == step:
            raise Crash(at)

    monkeypatch.setattr(incremental, "checkpoint", crash)
    with pytest.raises(Crash):
        incremental.refresh(store, "video/chunk")
    monkeypatch.setattr(incremental, "checkpoint", lambda at: None)
    write_root(store, "video/full", "v2", 1, "s0")
    assert rows(store.resolve_update("video/chunk")) == rows(
        store.resolve_update("video/chunk", incremental=False))


def test_materialized_increment_view_and_incremental_table_coexist(make_store: Any) -> None:
    """``materialize``'s view and the maintained incremental table have names of their own:
    neither replaces the other (the same name made DuckDB refuse and others replace)."""
    from metaxy_sql.examples import seed

    store = make_store(seed.graph)
    rows = [{"sample_uid": f"v{i}", "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}
            for i in range(3)]
    store.write("video/full", store.resolve_update("video/full", samples=rows).new)
    store.write("video/face_crop", store.resolve_update("video/face_crop").new.to_arrow()[:1])
    mx.materialize(store, ["video/face_crop"])
    inc = store.resolve_update("video/face_crop", incremental=True)
    assert inc.mode == "rebuilt" and inc.counts() == {"new": 2, "stale": 0, "orphaned": 0}
    assert incremental.relation_name("video/face_crop") != names.increment_relation(
        "video/face_crop")
    again = mx.materialize(store, ["video/face_crop"])
    assert [a.action for a in again.actions] == ["unchanged"]
