"""materialize --as incremental, materialize --all on a fresh store (empty feature tables from
the definitions) and render --incremental, on every engine."""

from __future__ import annotations

import importlib
import os
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from click.testing import CliRunner
from sqlglot import exp

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.compile.builder import table_ref
from metaxy_sql.compile.dialects import get_dialect
from metaxy_sql.engine import incremental
from metaxy_sql.examples import lineage, seed
from metaxy_sql.model import names
from metaxy_sql.warehouse.materialize import incremental_ddl_text, incremental_statements
from tests.pipeline import samples, step
from tests.test_scenarios import graph

BASE = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(4)}
C, H, T, V = "video/face_crop", "video/talking_head", "transcript/whisper", "video/full"
CHILDREN = (T, C, H)
SEED = ["-e", "metaxy_sql.examples.seed"]


def select_all(store: mx.Store, relation: str) -> list[dict[str, Any]]:
    sql = store.executor.dialect.render(exp.select("*").from_(table_ref(relation)))
    return list(store.executor.fetch(sql).to_pylist())


def full_counts(store: mx.Store, key: str) -> dict[str, int]:
    return store.resolve_update(key, incremental=False).counts()


def test_materialize_all_on_a_fresh_store_views_every_non_root_feature(make_store: Any) -> None:
    """Nothing written: the feature tables are created empty from the definitions, and every
    non-root feature's view exists and selects nothing (no samples anywhere). Once the root is
    written, the 1:1 children's views show every root sample as new, the others (their
    upstream children never written) stay empty; a first write to a created table works."""
    for g in (seed.graph, lineage.graph):
        store = make_store(g)  # the same database: the seed's tables exist for lineage's
        before = store.executor.tables()
        report = mx.materialize(store)
        tables = {a.relation for a in report.actions if a.kind == "feature"}
        assert tables == {names.table(k) for k in g.keys} - before
        assert tables <= store.executor.tables()
        views = [a for a in report.actions if a.kind == "view" and a.action != "skipped"]
        assert {a.feature for a in views} == {k for k in g.keys if not g.is_root(k)}
        assert {a.action for a in views} == {"created"}
        for a in views:
            assert select_all(store, a.relation) == [], a.feature
    store = make_store(lineage.graph)  # expansion and optional deps: at the parent's grain
    store.write(V, store.resolve_update(V, samples=samples(BASE)).new)
    chunks = select_all(store, names.increment_relation("video/chunk"))
    assert sorted((r["sample_uid"], r["chunk_id"], r[names.STATUS]) for r in chunks) == [
        (uid, None, "new") for uid in sorted(BASE)]
    captioned = select_all(store, names.increment_relation("video/captioned"))
    assert sorted(r["sample_uid"] for r in captioned) == sorted(BASE)  # subtitles optional
    assert select_all(store, names.increment_relation("speaker/embedding")) == []
    store = make_store(seed.graph)
    for key in CHILDREN:
        shown = select_all(store, names.increment_relation(key))
        expected = set(BASE) if key != H else set()  # H reads T and C, never written
        assert {r["sample_uid"] for r in shown} == expected, key
        assert {r[names.STATUS] for r in shown} <= {"new"}
    store.write(C, store.resolve_update(C).new)  # the first write into a created table
    assert select_all(store, names.increment_relation(C)) == []
    again = mx.materialize(store)
    assert [a.kind for a in again.actions] == ["view"] * 4  # nothing left to create


def test_materialize_all_dry_run_creates_nothing(make_store: Any) -> None:
    store = make_store(seed.graph)
    report = mx.materialize(store, dry_run=True)
    created = [a for a in report.actions if a.kind == "feature"]
    assert [a.relation for a in created] == [names.table(k) for k in seed.graph.keys]
    assert all("CREATE TABLE" in a.ddl for a in created)
    assert [a.action for a in report.actions if a.kind == "view"] == ["skipped"] + ["created"] * 3
    assert not {names.table(k) for k in seed.graph.keys} & store.executor.tables()


def test_materialize_as_incremental_reports_mode_reason_and_counts(make_store: Any) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    store.write(V, store.resolve_update(V, samples=samples(
        {**BASE, "v1": {"audio": "a1", "frames": "changed"}, "v9": {"audio": "a", "frames": "f"}}
    )).to_arrow().filter(exp_new_or_stale()))
    first = mx.materialize(store, as_="incremental")
    assert [(a.feature, a.action) for a in first.actions] == [
        (V, "skipped"), (T, "created"), (C, "created"), (H, "created")]
    for a in first.actions[1:]:
        assert a.relation == incremental.relation_name(a.feature)
        assert a.kind == "incremental" and "first build" in a.reason
        assert a.counts == full_counts(store, a.feature)
    # from the semantics: v9 is new everywhere; v1's frames changed, audio did not
    assert first.actions[1].counts == {"new": 1, "stale": 0, "orphaned": 0}  # T reads audio
    assert first.actions[2].counts == {"new": 1, "stale": 1, "orphaned": 0}
    assert "(rebuilt: no watermarks recorded (first build); new 1, stale 1, orphaned 0)" in (
        first.summary())
    store.delete(V, [{"sample_uid": "v2"}])
    again = mx.materialize(store, [C], as_="incremental")
    (a,) = again.actions
    assert (a.action, a.reason) == ("refreshed", "incremental: 1 grain id(s) re-resolved")
    assert a.counts == full_counts(store, C) == {"new": 1, "stale": 1, "orphaned": 1}
    assert store.resolve_update(C).mode == "incremental"  # resolve reads the table now
    bumped = store.with_graph(graph(crop_frames="2"))
    (b,) = mx.materialize(bumped, [C], as_="incremental").actions
    assert b.action == "rebuilt" and "statement changed" in b.reason
    assert b.counts == full_counts(bumped, C)


def exp_new_or_stale() -> Any:
    import pyarrow.compute as pc

    return pc.field(names.STATUS).isin(["new", "stale"])


def test_materialize_as_incremental_dry_run_and_refusals(make_store: Any) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    dry = mx.materialize(store, [C], as_="incremental", dry_run=True)
    (a,) = dry.actions
    assert a.action == "created" and a.relation not in store.executor.tables()
    d = store.executor.dialect
    assert a.ddl == incremental_ddl_text(seed.graph, C, d, "sha256")
    assert "1. full rebuild" in a.ddl and "2. refresh" in a.ddl
    with pytest.raises(mx.ConfigError, match="root feature"):
        mx.materialize(store, [V], as_="incremental")
    for option in ({"prefix": "x_"}, {"suffix": "__x"}):
        with pytest.raises(mx.ConfigError, match="own schema"):
            mx.materialize(store, [C], as_="incremental", **option)
    user = incremental.relation_name(T)  # a user's table of that name is never touched
    store.executor.execute(d.render(exp.Create(kind="TABLE", this=table_ref(user),
                                               expression=exp.select("*").from_(
                                                   table_ref(names.table(T))))))
    with pytest.raises(mx.ConfigError, match="not an incremental increment table"):
        mx.materialize(store, [T], as_="incremental")
    assert len(select_all(store, user)) == 4
    assert mx.materialize(store, [C], as_="incremental").actions[0].action == "created"
    assert mx.materialize(store, [C], as_="incremental").actions[0].action == "refreshed"


def test_prune_drops_incremental_tables_of_removed_features(make_store: Any) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    mx.materialize(store, as_="incremental")
    smaller = store.with_graph(mx.FeatureGraph([seed.video, seed.transcript, seed.face_crop]))
    report = mx.materialize(smaller, as_="incremental", prune=True)
    assert [(a.feature, a.action) for a in report.actions][-1] == (H, "dropped")
    assert incremental.relation_name(H) not in store.executor.tables()
    assert incremental.relation_name(C) in store.executor.tables()


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for var in ("METAXY_SQL_ENTRYPOINTS", "METAXY_SQL_STORE"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def test_cli_materialize_as_incremental(engine: str, runner: CliRunner,
                                        tmp_path: Path) -> None:
    url = importlib.import_module(f"tests.engines.{engine}").fresh_url(f"cli{os.getpid()}")
    store = mx.connect(url, graph=seed.graph)  # (store.url hides the password)
    step(store, samples(BASE))

    def run(*args: str) -> str:
        result = runner.invoke(cli, [*SEED, "materialize", *args, "--store", url],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout  # progress lines go to stderr

    dry = run("--all", "--as", "incremental", "--dry-run")
    assert "2. refresh" in dry and incremental.relation_name(C) not in store.executor.tables()
    out = run("--all", "--as", "incremental", "--dbt-sources", str(tmp_path / "s.yml"))
    assert "created   incremental" in out and "first build" in out
    assert "new 0, stale 0, orphaned 0" in out
    sources = yaml.safe_load((tmp_path / "s.yml").read_text())["sources"][0]["tables"]
    assert [t["name"] for t in sources] == [incremental.relation_name(k) for k in CHILDREN]
    # the store as given (these test URLs are absolute), unless it has a password: that is
    # never written out, the command reads it from $METAXY_SQL_STORE
    secret = urlsplit(url).password
    named = "$METAXY_SQL_STORE" if secret else url
    for t, k in zip(sources, CHILDREN, strict=True):  # a table only as fresh as its refresh
        # the command names the store and definitions it was built with
        assert shlex.split(t["meta"]["metaxy_refresh"]) == [
            "metaxy-sql", "materialize", k, "--as", "incremental", *SEED, "--store", named]
        assert "As of its last refresh" in t["description"]
    if secret:
        assert f":{secret}@" not in (tmp_path / "s.yml").read_text()
    store.write(V, store.resolve_update(V, samples=samples(
        {**BASE, "v7": {"audio": "a", "frames": "f"}})).new)
    out = run(C, "--as", "incremental")
    assert out.strip() == (f"refreshed incremental {_schema(store)}."
                           f"{incremental.relation_name(C)} (incremental: 1 grain id(s) "
                           "re-resolved; new 1, stale 0, orphaned 0)")
    store.close()


def test_dbt_refresh_command_runs_from_another_directory(
        engine: str, runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dbt runs a source's refresh command from its own project folder, with its own
    environment: the command opens the same store (a relative DuckDB path made absolute) with
    the same definitions (here from the config file's entrypoints, no -e given)."""
    project, dbt = tmp_path / "project", tmp_path / "dbt"
    project.mkdir()
    dbt.mkdir()
    (project / "pyproject.toml").write_text(
        '[tool.metaxy-sql]\nentrypoints = ["metaxy_sql.examples.seed"]\n')
    module = importlib.import_module(f"tests.engines.{engine}")
    url = module.fresh_url(f"dbt{os.getpid()}")
    given = "duckdb:///meta.db" if engine == "duckdb" else url  # relative to project/
    opened = f"duckdb:///{project / 'meta.db'}" if engine == "duckdb" else url
    store = mx.connect(opened, graph=seed.graph)
    step(store, samples(BASE))
    monkeypatch.chdir(project)
    result = runner.invoke(cli, ["materialize", C, "--as", "incremental", "--store", given,
                                 "--dbt-sources", str(dbt / "sources.yml")])
    assert result.exit_code == 0, result.output
    table = yaml.safe_load((dbt / "sources.yml").read_text())["sources"][0]["tables"][0]
    command = table["meta"]["metaxy_refresh"]
    named = "$METAXY_SQL_STORE" if urlsplit(url).password else opened
    assert shlex.split(command) == [
        "metaxy-sql", "materialize", C, "--as", "incremental",
        "--config", str(project / "pyproject.toml"), "-e", "metaxy_sql.examples.seed",
        "--store", named]
    store.write(V, store.resolve_update(V, samples=samples(
        {**BASE, "v7": {"audio": "a", "frames": "f"}})).new)
    # dbt's folder and environment: another working directory, other entrypoints set
    monkeypatch.chdir(dbt)
    monkeypatch.setenv("METAXY_SQL_ENTRYPOINTS", "metaxy_sql.examples.lineage")
    args = shlex.split(command)[1:]
    if urlsplit(url).password:  # unset, the command refuses to run (an empty --store)
        result = runner.invoke(cli, [a.replace("$METAXY_SQL_STORE", "") for a in args])
        assert result.exit_code == 1 and "--store is empty" in result.output
        monkeypatch.setenv("METAXY_SQL_STORE", url)
    result = runner.invoke(cli, [os.path.expandvars(a) for a in args])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"refreshed incremental {_schema(store)}.{incremental.relation_name(C)} (incremental: "
        "1 grain id(s) re-resolved; new 1, stale 0, orphaned 0)")
    assert list(dbt.iterdir()) == [dbt / "sources.yml"]  # no store opened here
    store.close()


def _schema(store: mx.Store) -> str:
    from metaxy_sql.engine import system

    return system.current_schema(store.executor)


@pytest.mark.parametrize("dialect", ["duckdb", "clickhouse", "postgres"])
def test_render_incremental_shows_both_statements(runner: CliRunner, dialect: str) -> None:
    def render(*args: str) -> str:
        result = runner.invoke(cli, [*SEED, "render", *args, "--dialect", dialect],
                               catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    d = get_dialect(dialect)
    relation = incremental.relation_name(C)
    both = render(C, "--incremental")
    rebuild, refresh = both.split("-- 2. refresh")
    plain = render(C)
    body = plain[plain.index("WITH"):].strip()  # the full resolve, as `render` prints it
    assert body in rebuild
    assert d.render(d.drop_temporary(names.touched(relation))) in refresh
    assert f'DELETE FROM "{relation}"' in refresh and f'INSERT INTO "{relation}"' in refresh
    assert '"metaxy_write_seq" > 0' in refresh or "_block_number" in refresh
    ddl = render(C, "--incremental", "--ddl")
    assert ddl.strip() == rebuild.strip()
    if dialect == "postgres":  # the grain index a refresh deletes by
        assert f'CREATE INDEX IF NOT EXISTS "{relation}__grain"' in ddl
    tables = render("--ddl")
    assert tables.count("CREATE TABLE IF NOT EXISTS") >= len(seed.graph.keys)
    if dialect == "postgres":
        assert 'CREATE INDEX IF NOT EXISTS "video__full__write_seq"' in tables
        assert 'CREATE INDEX IF NOT EXISTS "video__full__latest"' in tables
    result = runner.invoke(cli, [*SEED, "render", V, "--incremental"])
    assert result.exit_code == 1 and "root feature" in result.output


def test_rendered_refresh_is_what_runs(make_store: Any) -> None:
    """The refresh statements `render --incremental` shows are those a refresh sends (at the
    watermarks it started from; where the dialect reads derived per-field columns, the statements
    depend on the stored columns, so there only the delete and the drop are compared)."""
    store = make_store(seed.graph)
    step(store, samples(BASE))
    incremental.refresh(store, C)
    store.write(V, store.resolve_update(V, samples=samples(
        {**BASE, "v7": {"audio": "a", "frames": "f"}})).new)
    ex, d = store.executor, store.executor.dialect
    state = incremental._state(ex, incremental.relation_name(C), ex.tables())
    assert state is not None
    sent: list[str] = []
    run = ex.execute

    def recording(sql: str) -> None:
        sent.append(sql)
        run(sql)

    ex.execute = recording  # type: ignore[method-assign]
    try:
        assert incremental.refresh(store, C).mode == "incremental"
    finally:
        del ex.execute
    # rendered at the watermarks the refresh started from (a split scan names them)
    _, refresh = incremental_statements(seed.graph, C, d, "sha256", dict(state.marks))
    create, delete, *settings, insert, drop = (d.render(s) for s in refresh)
    assert delete in sent and drop in sent and all(s in sent for s in settings)
    assert create.split("WHERE")[0] in "".join(sent)
    if not d.derives_field_columns:
        assert insert in sent


@pytest.mark.parametrize("url", [
    "postgresql://me:s3cr3t@db.example.com/meta?schema=m",
    "postgresql://me@db.example.com/meta?sslmode=require&password=s3cr3t",
    "postgresql://me:***@db.example.com/meta",  # as Store.url shows it
    "clickhouse://me:s3cr3t@ch.example.com:8123/meta",
])
def test_refresh_command_never_writes_a_password(url: str, tmp_path: Path) -> None:
    from metaxy_sql.warehouse.dbt import refresh_command, sources_yaml
    from metaxy_sql.warehouse.materialize import Action

    command = refresh_command(C, url, ["my.features"])
    assert command.endswith(' -e my.features --store "$METAXY_SQL_STORE"')
    action = Action(feature=C, relation=incremental.relation_name(C), kind="incremental",
                    action="created", schema="meta", ddl="")
    text = sources_yaml(seed.graph, [action], store_url=url, entrypoints=["my.features"])
    assert "s3cr3t" not in text and "with METAXY_SQL_STORE set to the store URL" in text
    assert "db.example.com" in text or "ch.example.com" in text  # which store it is


def test_refresh_command_names_a_relative_duckdb_file_absolutely(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from metaxy_sql.warehouse.dbt import refresh_command

    monkeypatch.chdir(tmp_path)
    assert shlex.split(refresh_command(C, "duckdb:///sub/meta.db"))[-2:] == [
        "--store", f"duckdb:///{tmp_path / 'sub' / 'meta.db'}"]
    for as_given in ("duckdb:////abs/meta.db", "chdb:///abs/data?database=x",
                     "postgresql://me@db.example.com/meta?schema=m"):
        assert shlex.split(refresh_command(C, as_given))[-2:] == ["--store", as_given]
