"""``store.drop(feature)`` while views read the feature's table: one rule on every engine.

The views are found before any DDL runs (materialize's log, the engine's catalog); the drop is
refused while any exists, and ``cascade=True`` drops exactly those views (never a table) first.
In the seed example, transcript/whisper and video/face_crop read video/full, and
video/talking_head reads those two (not video/full).
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlglot import exp

import metaxy_sql as mx
from metaxy_sql.compile.builder import table_ref
from metaxy_sql.engine import system
from metaxy_sql.examples import seed
from metaxy_sql.model import names
from metaxy_sql.warehouse.materialize import relation_ref
from tests.pipeline import samples, step

BASE = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(4)}
C, H, T, V = "video/face_crop", "video/talking_head", "transcript/whisper", "video/full"
VIEW = {k: names.increment_relation(k) for k in (C, H, T)}


def _home(store: mx.Store) -> str:
    return system.current_schema(store.executor)


def _relations(store: mx.Store, schema: str | None = None) -> dict[str, str]:
    return system.relations(store.executor, schema or _home(store))


def _create_view(store: mx.Store, name: str, select: exp.Select,
                 schema: str | None = None) -> None:
    """A user's own view, created behind metaxy-sql's back."""
    d = store.executor.dialect
    store.executor.execute(d.render(exp.Create(kind="VIEW", this=relation_ref(name, schema),
                                               expression=select)))


def _count(store: mx.Store, relation: str) -> int:
    sql = store.executor.dialect.render(exp.select(exp.Count(this=exp.Star())).from_(
        table_ref(relation)))
    return int(store.executor.fetch(sql).column(0)[0].as_py())


def _written(store: mx.Store) -> mx.Store:
    step(store, samples(BASE))
    return store


def test_increment_views_refuse_the_drop(make_store: Any) -> None:
    store = _written(make_store(seed.graph))
    mx.materialize(store)
    home = _home(store)
    assert [v.qualified for v in store.dependent_views(V)] == [
        f"{home}.{VIEW[T]}", f"{home}.{VIEW[C]}"]
    with pytest.raises(mx.ConfigError) as refused:
        store.drop(V)
    message = str(refused.value)
    for key in (T, C):
        assert f"{home}.{VIEW[key]} (increment view of {key!r}, from materialize)" in message
    assert VIEW[H] not in message and "--cascade" in message
    # nothing ran: the table and every view are still there, and the views still read
    assert names.table(V) in store.executor.tables()
    assert {VIEW[k] for k in (C, H, T)} <= set(_relations(store))
    assert _count(store, VIEW[C]) == 0  # everything written: nothing new, stale or orphaned
    # face_crop's table is read by its own view and by talking_head's
    assert {v.name for v in store.dependent_views(C)} == {VIEW[C], VIEW[H]}
    with pytest.raises(mx.ConfigError, match=VIEW[H]):
        store.drop(C)
    assert [v.name for v in store.dependent_views(H)] == [VIEW[H]]


def test_users_views_refuse_the_drop(make_store: Any, engine: str) -> None:
    store = _written(make_store(seed.graph))
    home, full = _home(store), names.table(V)
    other = f"{home}_other"
    kind = "DATABASE" if engine == "clickhouse" else "SCHEMA"
    schema = exp.Table(this=exp.to_identifier(other, quoted=True))
    d = store.executor.dialect
    store.executor.execute(d.render(exp.Create(kind=kind, exists=True, this=schema)))
    try:
        _create_view(store, "mine", exp.select("*").from_(table_ref(full)))
        _create_view(store, "mine_on_mine", exp.select("sample_uid").from_(table_ref("mine")))
        _create_view(store, "reader", exp.select("*").from_(relation_ref(full, home)), other)
        # a CTE named like the table reads no table; a view over another feature's table
        # does not read video/full
        _create_view(store, "shadow", exp.select("x").from_(table_ref(full)).with_(
            full, as_=exp.select(exp.alias_(exp.Literal.number(1), "x"))))
        _create_view(store, "crop_only", exp.select("*").from_(table_ref(names.table(C))))
        found = [v.qualified for v in store.dependent_views(V)]
        assert sorted(found) == sorted([f"{home}.mine", f"{home}.mine_on_mine",
                                        f"{other}.reader"])
        assert found.index(f"{home}.mine_on_mine") < found.index(f"{home}.mine")
        with pytest.raises(mx.ConfigError, match="3 view") as refused:
            store.drop(V)
        assert "shadow" not in str(refused.value) and "crop_only" not in str(refused.value)
        assert _count(store, "mine_on_mine") == len(BASE)  # untouched, still reading

        dropped = store.drop(V, cascade=True)
        assert [v.qualified for v in dropped] == found
        assert all(v.feature == "" for v in dropped)
        relations = _relations(store)
        assert full not in relations and "mine" not in relations
        assert "mine_on_mine" not in relations and "reader" not in _relations(store, other)
        assert relations["shadow"] == relations["crop_only"] == "view"
        assert {names.table(k) for k in (C, H, T)} <= store.executor.tables()
        assert _count(store, "crop_only") == len(BASE)
    finally:
        store.executor.execute(d.render(exp.Drop(
            kind=kind, exists=True, tables=[schema], cascade=engine != "clickhouse")))


def test_cascade_drops_increment_views_and_materialize_recreates_them(make_store: Any) -> None:
    store = _written(make_store(seed.graph))
    mx.materialize(store)
    home = _home(store)
    dropped = store.drop(V, cascade=True)
    assert [(v.qualified, v.feature) for v in dropped] == [
        (f"{home}.{VIEW[T]}", T), (f"{home}.{VIEW[C]}", C)]
    relations = _relations(store)
    assert names.table(V) not in relations
    assert VIEW[T] not in relations and VIEW[C] not in relations
    assert relations[VIEW[H]] == "view"  # reads only the tables of transcript and face_crop
    assert _count(store, VIEW[H]) == 0
    log = system.read_all(store.executor, names.MATERIALIZATIONS, "materialized_at").to_pylist()
    latest = {r["relation_name"]: r for r in log if r["relation_schema"] == home}
    assert {k: latest[VIEW[k]]["kind"] for k in (C, H, T)} == {
        C: "dropped", H: "view", T: "dropped"}
    report = mx.materialize(store)  # re-creates video/full empty, then the two views
    actions = {a.relation: a.action for a in report.actions if a.action != "skipped"}
    assert actions == {names.table(V): "created", VIEW[T]: "created", VIEW[C]: "created",
                       VIEW[H]: "unchanged"}
    assert _count(store, VIEW[C]) == len(BASE)  # every written crop is now orphaned


def test_drop_without_views(make_store: Any) -> None:
    store = _written(make_store(seed.graph))
    assert store.dependent_views(V) == []
    assert store.drop(V) == []
    assert names.table(V) not in store.executor.tables()
    assert store.count(V) == 0
    assert store.drop(V) == []  # nothing left to drop: no error


def test_increment_tables_stay_and_rebuild(make_store: Any) -> None:
    store = _written(make_store(seed.graph))
    mx.materialize(store, [C], as_="incremental")
    mx.materialize(store, [T], as_="table")
    assert store.dependent_views(V) == []  # tables, not views
    assert store.drop(V) == []
    tables = store.executor.tables()
    assert {f"{names.table(C)}__incremental", VIEW[T]} <= tables
    assert _count(store, VIEW[T]) == 0  # the snapshot taken before the drop
    inc = store.resolve_update(C, incremental=True)
    assert inc.refresh is not None and inc.refresh.mode == "full"
    # video/full is gone: every written crop is orphaned, as the full resolve says
    assert inc.counts() == {"new": 0, "stale": 0, "orphaned": len(BASE)}
    assert inc.counts() == store.resolve_update(C).counts()
