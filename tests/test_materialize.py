"""Increments as views and tables in the warehouse (materialize), on every engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from sqlglot import exp

import metaxy_sql as mx
from metaxy_sql.compile.builder import table_ref
from metaxy_sql.compile.dialects import DIALECTS, get_dialect
from metaxy_sql.engine import system
from metaxy_sql.examples import seed
from metaxy_sql.model import names
from metaxy_sql.warehouse.golden import golden_path
from metaxy_sql.warehouse.materialize import increment_ddl_text, relation_ref
from tests.pipeline import samples, step
from tests.test_scenarios import SCENARIOS, Scenario, graph

ROOT = Path(__file__).resolve().parent.parent / "dialects"
BASE = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(4)}
C, H, T, V = "video/face_crop", "video/talking_head", "transcript/whisper", "video/full"
VIEWS = [names.increment_relation(k) for k in (T, C, H)]


def rows(store: mx.Store, relation: str) -> list[dict[str, Any]]:
    """Rows of a relation (or an increment table), in a deterministic order."""
    sql = store.executor.dialect.render(
        exp.select("*").from_(table_ref(relation)))
    return _sorted(store.executor.fetch(sql))


def _sorted(table: pa.Table) -> list[dict[str, Any]]:
    return table.sort_by([("sample_uid", "ascending"), (names.STATUS, "ascending")]).to_pylist()


def step_checking_views(store: mx.Store, root_samples: Any) -> None:
    """``step`` (write every increment), checking before each write that every feature's view
    shows exactly the increment resolve computes."""
    for key in store.graph.keys:
        inc = store.resolve_update(key, samples=root_samples if key == V else None)
        if key != V:
            assert rows(store, names.increment_relation(key)) == _sorted(inc.to_arrow()), key
        store.write(key, inc.new.to_arrow())
        store.write(key, inc.stale.to_arrow())
        store.delete(key, inc.orphaned.to_arrow())


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if len(s.runs) > 1],
                         ids=[s.name for s in SCENARIOS if len(s.runs) > 1])
def test_view_rows_equal_resolve(scenario: Scenario, make_store: Any) -> None:
    root_samples, versions = scenario.runs[0]
    store = make_store(graph(**versions))
    step(store, samples(root_samples))
    for root_samples, versions in scenario.runs[1:]:
        store = make_store(graph(**versions))
        report = mx.materialize(store)
        assert [a.relation for a in report.actions if a.action != "skipped"] == VIEWS
        step_checking_views(store, samples(root_samples))


def test_view_is_live_and_table_is_a_snapshot(make_store: Any) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    mx.materialize(store, [C])
    mx.materialize(store, [T], as_="table")
    assert rows(store, names.increment_relation(C)) == []
    changed = {**BASE, "v1": {"audio": "a1*", "frames": "f1*"}}
    inc = store.resolve_update(V, samples=samples(changed))
    store.write(V, inc.stale.to_arrow())
    view = rows(store, names.increment_relation(C))  # no re-materialize
    assert [(r[names.STATUS], r["sample_uid"], r[names.CHANGED_FIELDS]) for r in view] == [
        ("stale", "v1", ["frames"])]
    assert view == _sorted(store.resolve_update(C).to_arrow())
    assert rows(store, names.increment_relation(T)) == []  # the snapshot did not change
    report = mx.materialize(store, [T], as_="table")
    assert report.actions[0].action == "replaced"
    assert [r["sample_uid"] for r in rows(store, names.increment_relation(T))] == ["v1"]


def test_idempotent_rerun_and_dry_run(make_store: Any) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    first = mx.materialize(store)
    assert [(a.feature, a.action) for a in first.actions] == [
        (V, "skipped"), (T, "created"), (C, "created"), (H, "created")]
    assert "root feature" in first.actions[0].reason
    again = mx.materialize(store)
    assert [a.action for a in again.actions] == ["skipped", "unchanged", "unchanged", "unchanged"]
    dry = mx.materialize(store.with_graph(graph(crop_frames="2")), dry_run=True)
    assert [a.action for a in dry.actions] == ["skipped", "unchanged", "replaced", "replaced"]
    d = store.executor.dialect
    assert dry.actions[2].ddl == increment_ddl_text(
        graph(crop_frames="2"), C, d, "sha256", "view", relation_ref(VIEWS[1]))
    assert mx.materialize(store).actions[2].action == "unchanged"  # dry run changed nothing


def test_prune_drops_only_our_relations_of_removed_features(make_store: Any) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    mx.materialize(store)
    smaller = store.with_graph(mx.FeatureGraph([seed.video, seed.transcript, seed.face_crop]))
    dry = mx.materialize(smaller, prune=True, dry_run=True)
    assert [(a.feature, a.action) for a in dry.actions][-1] == (H, "dropped")
    assert names.increment_relation(H) in _relations(store)
    report = mx.materialize(smaller, prune=True)
    assert [(a.feature, a.action) for a in report.actions][-1] == (H, "dropped")
    assert names.increment_relation(H) not in _relations(store)
    assert names.table(H) in store.executor.tables()  # the feature table stays
    assert [a.action for a in mx.materialize(smaller, prune=True).actions] == [
        "skipped", "unchanged", "unchanged"]


def test_name_collision_with_user_table_is_never_touched(make_store: Any) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    user = names.increment_relation(C)
    store.executor.execute(store.executor.dialect.render(exp.Create(
        kind="TABLE", this=table_ref(user),
        expression=exp.select("*").from_(table_ref(names.table(C))))))
    for kind in ("view", "table"):
        with pytest.raises(mx.ConfigError, match="not created by metaxy-sql"):
            mx.materialize(store, [C], as_=kind)  # type: ignore[arg-type]
    assert len(rows_plain(store, user)) == 4
    report = mx.materialize(store, [C], prefix="mx_")
    assert report.actions[0].relation == "mx_" + user


def rows_plain(store: mx.Store, relation: str) -> list[dict[str, Any]]:
    sql = store.executor.dialect.render(
        exp.select("*").from_(table_ref(relation)))
    return list(store.executor.fetch(sql).to_pylist())


def test_bad_input_is_a_clear_error(make_store: Any) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    with pytest.raises(mx.ConfigError, match="schema 'no_such_schema' does not exist"):
        mx.materialize(store, schema="no_such_schema")
    with pytest.raises(mx.ConfigError, match="root feature"):
        mx.materialize(store, [V])
    with pytest.raises(mx.UnknownFeatureError):
        mx.materialize(store, ["video/nope"])
    fresh = store.with_graph(mx.FeatureGraph([*seed.graph, mx.FeatureSpec(
        key="video/extra", id_columns=["sample_uid"], deps=[V],
        fields=[mx.FieldSpec(key="frames")])]))
    with pytest.raises(mx.ConfigError, match="never written"):
        mx.materialize(fresh, ["video/extra"])
    table = mx.materialize(fresh, ["video/extra"], as_="table")  # a snapshot: all new
    assert table.actions[0].action == "created"
    assert len(rows(store, "video__extra__increment")) == 4


def test_other_schema(make_store: Any, engine: str) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    other = f"{system.current_schema(store.executor)}_inc"
    kind = "DATABASE" if engine == "clickhouse" else "SCHEMA"
    schema = exp.Table(this=exp.to_identifier(other, quoted=True))
    store.executor.execute(store.executor.dialect.render(
        exp.Create(kind=kind, exists=True, this=schema)))
    try:
        report = mx.materialize(store, [C], schema=other)
        assert report.actions[0].schema == other
        changed = {**BASE, "v0": {"audio": "a", "frames": "f"}}
        inc = store.resolve_update(V, samples=samples(changed))
        store.write(V, inc.stale.to_arrow())
        sql = store.executor.dialect.render(exp.select("*").from_(
            relation_ref(names.increment_relation(C), other)))
        assert _sorted(store.executor.fetch(sql)) == _sorted(store.resolve_update(C).to_arrow())
    finally:
        store.executor.execute(store.executor.dialect.render(exp.Drop(
            kind=kind, exists=True, tables=[schema], cascade=engine != "clickhouse")))


def test_dbt_sources(make_store: Any, tmp_path: Path) -> None:
    from metaxy_sql.warehouse.dbt import write_sources

    store = make_store(seed.graph)
    step(store, samples(BASE))
    report = mx.materialize(store)
    path = write_sources(tmp_path / "models" / "sources.yml", store.graph, report.actions)
    doc = yaml.safe_load(path.read_text())
    (source,) = doc["sources"]
    assert doc["version"] == 2 and source["name"] == "metaxy_sql"
    assert [t["name"] for t in source["tables"]] == VIEWS
    crop = source["tables"][1]
    assert crop["description"].startswith("Increment of video/face_crop (view). Frames cropped")
    assert crop["meta"]["metaxy_feature"] == C
    assert [c["name"] for c in crop["columns"]] == [
        names.STATUS, "sample_uid", names.PROVENANCE_BY_FIELD, names.PROVENANCE,
        names.CHANGED_FIELDS]


def _relations(store: mx.Store) -> dict[str, str]:
    return system.relations(store.executor, system.current_schema(store.executor))


# -- golden DDL -------------------------------------------------------------------------------
@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("key", [k for k in seed.graph.keys if not seed.graph.is_root(k)])
def test_golden_view_ddl_is_current(dialect: str, key: str) -> None:
    path = golden_path(ROOT, dialect, "seed", key).with_name(
        f"{names.table(key)}__increment_view.sql")
    want = increment_ddl_text(seed.graph, key, get_dialect(dialect), "sha256", "view",
                              relation_ref(names.increment_relation(key)))
    assert path.read_text() == want, (
        f"{path} is out of date: regenerate with "
        "`metaxy-sql -e metaxy_sql.examples.seed render --golden dialects` and review the diff")


def test_golden_view_ddl_is_what_runs(make_store: Any, engine: str) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    report = mx.materialize(store)
    for action in report.actions[1:]:
        path = golden_path(ROOT, engine, "seed", action.feature).with_name(
            f"{names.table(action.feature)}__increment_view.sql")
        assert action.ddl == path.read_text()
        statement = golden_path(ROOT, engine, "seed", action.feature).read_text()
        body = statement.split("\n-- dialect: ", 1)[1].split("\n", 1)[1]
        assert body in action.ddl  # the view's SELECT is the resolve statement, byte for byte
