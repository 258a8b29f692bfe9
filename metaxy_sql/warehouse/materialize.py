"""Increments as relations in the warehouse, dbt-style: a live view, a snapshot table or an
incremental (maintained) table per feature.

A view's SELECT is the resolve statement, byte for byte (``render``'s text), so querying it
always shows the up-to-date increment. A table is a snapshot of the increment at
materialization time (created or replaced atomically). An incremental table
(``<feature table>__incremental``, see ``engine.incremental``) is refreshed in O(changes) by
each ``materialize --as incremental`` and each ``resolve_update`` of the feature.

Materializing every feature (``features=None``, CLI ``--all``) as views first creates the
feature tables never written, empty, from the definitions' DDL (``compile.ddl``), so every
non-root feature gets its view.

Root features are never materialized: their increment reads the sample set passed to
``resolve_update`` and staged in that session only, which a view cannot see (and a snapshot
would silently freeze). Views also need every table they read to exist: a stand-in for a
table never written would be frozen into the view.

Every relation created is logged in the system table ``metaxy_system__materializations``; only
relations logged there are ever replaced or dropped (``prune``): a user's table or view with
the same name is an error, never touched.

>>> from metaxy_sql.compile.dialects import get_dialect
>>> from metaxy_sql.examples.seed import graph
>>> text = increment_ddl_text(graph, "video/face_crop", get_dialect("duckdb"), "sha256", "view",
...                           relation_ref("video__face_crop__increment"))
>>> [line for line in text.splitlines() if line.startswith("CREATE")]
['CREATE OR REPLACE VIEW "video__face_crop__increment" AS']
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.compile import incremental as incremental_sql
from metaxy_sql.compile.ddl import feature_table_ddl
from metaxy_sql.compile.dialects.base import Dialect
from metaxy_sql.compile.planner import plan_feature, tables_read
from metaxy_sql.compile.render import header, resolve_sql
from metaxy_sql.engine import incremental, system
from metaxy_sql.errors import ConfigError
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.model.hashing import HashAlgorithm

if TYPE_CHECKING:
    from metaxy_sql.engine.store import Store

Kind = Literal["view", "table", "incremental"]
KINDS: tuple[Kind, ...] = ("view", "table", "incremental")
DROPPED = system.DROPPED
#: ``Action.kind`` of a feature table created empty from the definitions (``--all`` views).
FEATURE_TABLE = "feature"

LOG_COLUMNS = system.MATERIALIZATION_COLUMNS


@dataclass(frozen=True)
class Action:
    """What ``materialize`` did (or, with ``dry_run``, would do) for one relation.

    ``kind``: ``view``, ``table``, ``incremental`` or ``feature`` (a feature table created
    empty from the definitions). ``action``: ``created``, ``replaced``, ``unchanged``,
    ``skipped`` (``reason`` says why) or ``dropped`` (``prune``); incremental tables:
    ``created`` (first build), ``refreshed`` (O(changes); ``reason`` says how many grain ids
    were re-resolved) or ``rebuilt`` (full; ``reason`` says why). ``counts``: incremental
    tables, the increment's ``{"new": n, "stale": n, "orphaned": n}`` after the refresh.
    """

    feature: str
    relation: str
    schema: str
    kind: str
    action: str
    ddl: str = ""
    reason: str = ""
    counts: dict[str, int] | None = None


@dataclass
class MaterializeReport:
    """The actions of one ``materialize`` call, in topological order (prunes last)."""

    actions: list[Action] = field(default_factory=list)
    dry_run: bool = False

    def summary(self) -> str:
        """One line per relation: ``created view main.video__face_crop__increment``."""
        verb = "would be " if self.dry_run else ""
        lines = []
        for a in self.actions:
            where = f"{a.schema}.{a.relation}" if a.relation else a.feature
            about = [a.reason] if a.reason else []
            if a.counts is not None:
                about.append(", ".join(f"{k} {v}" for k, v in a.counts.items()))
            reason = f" ({'; '.join(about)})" if about else ""
            lines.append(f"{a.action:<9} {a.kind:<5} {where}{reason}"
                         if not verb or a.action in ("skipped", "unchanged")
                         else f"{verb}{a.action} {a.kind} {where}{reason}")
        return "\n".join(lines)


# -- DDL (pure) -----------------------------------------------------------------------------
def relation_ref(name: str, schema: str | None = None) -> exp.Table:
    db = exp.to_identifier(schema, quoted=True) if schema else None
    return exp.Table(this=exp.to_identifier(name, quoted=True), db=db)


def qualify(statement: exp.Select, tables: set[str], schema: str) -> exp.Select:
    """A copy of ``statement`` reading ``tables`` from ``schema`` (for a relation created in
    another schema: DuckDB resolves a view's unqualified names in the view's own schema)."""
    copy = statement.copy()
    for t in copy.find_all(exp.Table):
        if t.name in tables and not t.args.get("db"):
            t.set("db", exp.to_identifier(schema, quoted=True))
    return copy


def increment_ddl(graph: FeatureGraph, key: str, dialect: Dialect, algorithm: HashAlgorithm,
                  kind: Kind, relation: exp.Table, missing: frozenset[str] = frozenset(),
                  home_schema: str | None = None,
                  derived: builder.Derived = None,
                  id_types: builder.IdTypes = None) -> list[exp.Expr]:
    """Statements creating (or atomically replacing) the increment relation of ``key``."""
    statement = resolve_sql(graph, key, dialect, algorithm, missing, derived=derived,
                            id_types=id_types)[1]
    if home_schema is not None:
        statement = qualify(statement, {names.table(k) for k in graph.keys}, home_schema)
    if kind == "view":
        return dialect.view_ddl(relation, statement)
    return dialect.snapshot_ddl(relation, statement)


def ddl_text(graph: FeatureGraph, key: str, dialect: Dialect, algorithm: HashAlgorithm,
             kind: Kind, relation: exp.Table, statements: Sequence[exp.Expr]) -> str:
    """Reviewable text: a header naming relation, feature and versions, then the statements."""
    name = relation.sql(dialect=dialect.sqlglot_dialect, identify=True)
    head = f"-- metaxy-sql materialize: {kind} {name}\n" + header(graph, key, dialect, algorithm)
    return head + "\n\n".join(dialect.render(s) for s in statements) + "\n"


def increment_ddl_text(graph: FeatureGraph, key: str, dialect: Dialect,
                       algorithm: HashAlgorithm, kind: Kind, relation: exp.Table) -> str:
    """The DDL text ``render --ddl`` prints and the golden ``*__increment_view.sql`` holds."""
    check_materializable(graph, key)
    statements = increment_ddl(graph, key, dialect, algorithm, kind, relation)
    return ddl_text(graph, key, dialect, algorithm, kind, relation, statements)


def incremental_statements(graph: FeatureGraph, key: str, dialect: Dialect,
                           algorithm: HashAlgorithm, marks: dict[str, int] | None = None
                           ) -> tuple[list[exp.Expr], list[exp.Expr]]:
    """The two statements of the incremental increment table of ``key`` (definitions only,
    every table read assumed written), as ``engine.incremental.refresh`` composes them:

    - rebuild: create or atomically replace ``<feature table>__incremental`` with the full
      resolve, with its indexes (first build, or whenever incremental would not be exact);
    - refresh: the grain ids touched since ``marks`` (feature table -> watermark; default 0
      for every table read) into a session-local table, then their rows deleted and
      re-inserted from the partial resolve of those ids (one statement; on DuckDB after
      setting the watermarks it reads as session variables), then the session-local table
      dropped.

    Returns:
        (rebuild statements, refresh statements).

    Raises:
        ConfigError: ``key`` is a root feature.
    """
    incremental.check_feature(graph, key)
    relation = incremental.relation_name(key)
    plan = plan_feature(graph, key)
    grain = list(plan.grain or plan.id_columns)
    full = resolve_sql(graph, key, dialect, algorithm)[1]
    rebuild = dialect.incremental_table_ddl(builder.table_ref(relation), full, grain)
    marks = marks if marks is not None else dict.fromkeys(tables_read(graph, key), 0)
    touched = names.touched(relation)
    subset, splits = incremental_sql.partial_subset(dialect, plan, touched, marks)
    partial = resolve_sql(graph, key, dialect, algorithm, subset=subset, splits=splits)[1]
    refresh: list[exp.Expr] = [
        dialect.temporary_table_as(builder.table_ref(touched),
                                   incremental_sql.touched_select(dialect, plan, marks)),
        incremental_sql.delete_touched(relation, grain, touched),
        *incremental_sql.partial_settings(dialect, plan, marks),
        incremental_sql.insert_resolved(relation, partial),
        dialect.drop_temporary(touched)]
    return rebuild, refresh


def incremental_ddl_text(graph: FeatureGraph, key: str, dialect: Dialect,
                         algorithm: HashAlgorithm, *, refresh: bool = True) -> str:
    """Reviewable text of the incremental increment table of ``key`` (``render --incremental``;
    ``refresh=False``: only the table's DDL, ``render --ddl --incremental``).

    Raises:
        ConfigError: ``key`` is a root feature.
    """
    rebuild, statements = incremental_statements(graph, key, dialect, algorithm)
    name = builder.table_ref(incremental.relation_name(key)).sql(
        dialect=dialect.sqlglot_dialect, identify=True)
    parts = [f"-- metaxy-sql materialize: incremental {name}\n"
             + header(graph, key, dialect, algorithm).rstrip("\n"),
             "-- 1. full rebuild (first build, or when incremental would not be exact: "
             "definitions changed, a hard delete or drop, a missing or foreign watermark)\n"
             + ";\n".join(dialect.render(s) for s in rebuild) + ";"]
    if refresh:
        parts.append(
            "-- 2. refresh in O(changes): the grain ids written or deleted since the recorded "
            "watermarks\n-- (shown as 0 for every table read), their rows replaced by the "
            "partial resolve of those ids\n"
            + ";\n".join(dialect.render(s) for s in statements) + ";")
    return "\n\n".join(parts) + "\n"


def check_materializable(graph: FeatureGraph, key: str) -> None:
    if graph.is_root(key):
        raise ConfigError(
            f"feature {key!r} is a root feature: its increment reads the sample set given to "
            "resolve_update in one session, which a view cannot see; materialize its "
            "downstream features, or resolve it with --samples")


# -- running --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Ctx:
    store: Store
    kind: Kind
    schema: str
    home: str
    prefix: str
    suffix: str
    dry_run: bool
    existing: dict[str, str]  # relation name -> table/view in the target schema
    ours: dict[str, dict[str, object]]  # relation name -> latest log row (not dropped)
    created: frozenset[str] = frozenset()  # feature tables created empty (or, dry run, to be)


def materialize(store: Store, features: Sequence[str] | None = None, *, as_: Kind = "view",
                schema: str | None = None, prefix: str = "",
                suffix: str = names.INCREMENT_SUFFIX, dry_run: bool = False,
                prune: bool = False, create_tables: bool | None = None,
                on_progress: Callable[[int], None] | None = None) -> MaterializeReport:
    """Create or replace increment relations (``<feature>__increment``), dbt-style.

    ``as_="view"``: a live view whose SELECT is the resolve statement; ``"table"``: a
    snapshot of the increment now; ``"incremental"``: create or refresh the feature's
    incremental increment table ``<feature table>__incremental`` (O(changes) when exact, else
    rebuilt; each action says which, why, and the counts), the table ``resolve_update`` then
    reads. Default features: every non-root feature (root features read a per-session sample
    set and are skipped). ``dry_run`` runs nothing; each action carries its DDL (incremental:
    the rebuild and the refresh statements). ``prune`` drops relations this store created
    for features no longer defined. Existing relations not created here are never touched.
    ``create_tables`` (default: when materializing every feature as views): first create the
    feature tables never written, empty, from the definitions' DDL (an action of kind
    ``feature`` each), so every view can be created; their columns take the types the
    definitions declare (text unless a feature class annotates one).
    ``on_progress(1)`` is called after each feature (skipped ones included).

    Raises:
        ConfigError: ``as_`` is not view/table/incremental, the schema does not exist, a
            relation of that name exists and was not created here, ``as_="incremental"`` with
            another schema, prefix or suffix, or an explicit feature cannot be materialized
            (a root, or, for a view, an upstream table never written).
    """
    kind = as_
    if kind not in KINDS:
        raise ConfigError(f"materialize as {kind!r}: choose 'view', 'table' or 'incremental'")
    ex = store.executor
    home = system.current_schema(ex)
    target = schema or home
    if kind == "incremental" and (target != home or prefix or suffix != names.INCREMENT_SUFFIX):
        raise ConfigError(
            "materialize --as incremental keeps <feature table>__incremental in the store's "
            "own schema, where resolve_update reads it; drop --schema, --prefix and --suffix")
    if not system.schema_exists(ex, target):
        raise ConfigError(f"schema {target!r} does not exist in {store.url}; create it first "
                          f"(CREATE SCHEMA, on ClickHouse CREATE DATABASE) or pass another "
                          "--schema")
    explicit = features is not None
    keys = list(features) if features is not None else list(store.graph.keys)
    for key in keys:
        store.graph.spec(key)
    keys.sort(key=store.graph.keys.index)
    if create_tables is None:
        create_tables = not explicit and kind == "view"
    report = MaterializeReport(dry_run=dry_run)
    created: frozenset[str] = frozenset()
    if create_tables:
        report.actions += _create_tables(store, keys, home, dry_run)
        created = frozenset(a.relation for a in report.actions)
    ctx = _Ctx(store, kind, target, home, prefix, suffix, dry_run,
               system.relations(ex, target), _logged(store, target), created)
    for key in keys:
        report.actions.append(_incremental(ctx, key, explicit) if kind == "incremental"
                              else _one(ctx, key, explicit))
        if on_progress is not None:
            on_progress(1)
    if prune:
        report.actions += _prune(ctx)
    return report


def _create_tables(store: Store, keys: Sequence[str], home: str, dry_run: bool) -> list[Action]:
    """Create, empty and from the definitions' DDL, the feature tables never written that the
    views of the non-root ``keys`` read."""
    graph, ex = store.graph, store.executor
    d = ex.dialect
    needed = {t for k in keys if not graph.is_root(k) for t in tables_read(graph, k)}
    present = ex.tables()
    actions = []
    for key in graph.keys:
        table = names.table(key)
        if table not in needed or table in present:
            continue
        statements = feature_table_ddl(graph, key, d)
        if not dry_run:
            _run(store, statements)
        actions.append(Action(key, table, home, FEATURE_TABLE, "created",
                              "".join(d.render(s) + ";\n" for s in statements),
                              reason="never written: empty, from the definitions"))
    return actions


def _incremental(ctx: _Ctx, key: str, explicit: bool) -> Action:
    """Create or refresh the incremental increment table of ``key``."""
    store = ctx.store
    ex = store.executor
    if store.graph.is_root(key):
        skip = _skip_reason(ctx, key, "", frozenset())
        assert skip is not None
        if explicit:
            raise ConfigError(skip)
        return Action(key, "", ctx.schema, ctx.kind, "skipped", reason=skip)
    name = incremental.relation_name(key)
    kept = incremental.exists(ex, name)
    if name in ctx.existing and not kept and name not in ctx.ours:
        raise ConfigError(
            f"{ctx.schema}.{name} already exists and is not an incremental increment table "
            "of metaxy-sql; it is left untouched. Drop or rename it yourself")
    text = incremental_ddl_text(store.graph, key, ex.dialect, store.hash_algorithm)
    if ctx.dry_run:
        return Action(key, name, ctx.schema, ctx.kind, "refreshed" if kept else "created",
                      text)
    inc = store.resolve_update(key, incremental=True)
    done = inc.refresh
    assert isinstance(done, incremental.Refresh)
    if done.mode == "incremental":
        action, reason = "refreshed", f"incremental: {done.touched} grain id(s) re-resolved"
    else:
        action, reason = ("rebuilt" if kept else "created"), f"rebuilt: {done.reason}"
    _log(store, ctx.schema, name, key, ctx.kind, hashlib.sha256(text.encode()).hexdigest())
    return Action(key, name, ctx.schema, ctx.kind, action, text, reason, inc.counts())


def _one(ctx: _Ctx, key: str, explicit: bool) -> Action:
    store, d = ctx.store, ctx.store.executor.dialect
    name = names.increment_relation(key, ctx.prefix, ctx.suffix)
    catalog = store.catalog(key)
    missing = catalog.missing(store.graph, key) - ctx.created
    derived = dict(catalog.columns) if d.derives_field_columns else None
    skip = _skip_reason(ctx, key, name, missing)
    if skip is not None:
        if explicit:
            raise ConfigError(skip)
        return Action(key, "", ctx.schema, ctx.kind, "skipped", reason=skip)
    logged = ctx.ours.get(name)
    if name in ctx.existing and logged is None:
        raise ConfigError(
            f"{ctx.schema}.{name} already exists and was not created by metaxy-sql "
            f"materialize; it is left untouched. Pick another name with --prefix/--suffix "
            "or --schema, or drop it yourself")
    relation = relation_ref(name, None if ctx.schema == ctx.home else ctx.schema)
    statements = increment_ddl(store.graph, key, d, store.hash_algorithm, ctx.kind, relation,
                               missing, None if ctx.schema == ctx.home else ctx.home, derived,
                               catalog.id_types)
    old_kind = ctx.existing.get(name)
    if old_kind is not None and old_kind != ctx.kind:  # ours, switching view <-> table
        statements = [_drop(relation, old_kind), *statements]
    text = ddl_text(store.graph, key, d, store.hash_algorithm, ctx.kind, relation, statements)
    sha = hashlib.sha256(text.encode()).hexdigest()
    if (ctx.kind == "view" and old_kind == "view" and logged is not None
            and logged["kind"] == "view" and logged["ddl_sha256"] == sha):
        return Action(key, name, ctx.schema, ctx.kind, "unchanged", text)
    if not ctx.dry_run:
        _run(store, statements)
        _log(store, ctx.schema, name, key, ctx.kind, sha)
    return Action(key, name, ctx.schema, ctx.kind, "replaced" if old_kind else "created", text)


def _skip_reason(ctx: _Ctx, key: str, name: str, missing: frozenset[str]) -> str | None:
    graph = ctx.store.graph
    if graph.is_root(key):
        return (f"feature {key!r} is a root feature: its increment reads the sample set given "
                "to resolve_update in one session; materialize its downstream features")
    if name in {names.table(k) for k in graph.keys} or names.is_system_table(name):
        return (f"the increment relation of {key!r} would be named {name!r}, which is a "
                "feature or system table; pick another --prefix/--suffix")
    if ctx.kind == "view" and missing:
        return (f"feature {key!r}: table(s) {sorted(missing)} were never written; a view "
                "would freeze them as empty. Write them first, materialize --all (creates them "
                "empty), or materialize --as table")
    return None


def _prune(ctx: _Ctx) -> list[Action]:
    """Drop logged relations of features no longer in the graph (never anything unlogged)."""
    actions = []
    for name, row in sorted(ctx.ours.items()):
        feature, kind = str(row["feature"]), str(row["kind"])
        if feature in ctx.store.graph:
            continue
        if ctx.existing.get(name) not in (None, "view" if kind == "view" else "table"):
            continue  # replaced by something else since: not ours any more
        relation = relation_ref(name, None if ctx.schema == ctx.home else ctx.schema)
        drop = _drop(relation, kind)
        if not ctx.dry_run:
            if name in ctx.existing:
                _run(ctx.store, [drop])
            _log(ctx.store, ctx.schema, name, feature, DROPPED, "")
        actions.append(Action(feature, name, ctx.schema, kind, "dropped",
                              ctx.store.executor.dialect.render(drop) + "\n",
                              reason="feature no longer defined"))
    return actions


def _drop(relation: exp.Table, kind: str) -> exp.Drop:
    return exp.Drop(kind="VIEW" if kind == "view" else "TABLE", exists=True,
                    tables=[relation.copy()])


def _run(store: Store, statements: Sequence[exp.Expr]) -> None:
    ex = store.executor
    with ex.transaction():
        for s in statements:
            ex.execute(ex.dialect.render(s))


# -- the log of what we created ----------------------------------------------------------------
def _logged(store: Store, schema: str) -> dict[str, dict[str, object]]:
    """Relations of ``schema`` materialize created and has not dropped: name -> latest row."""
    latest: dict[str, dict[str, object]] = {}
    for row in system.read_all(store.executor, names.MATERIALIZATIONS,
                               "materialized_at").to_pylist():
        if row["relation_schema"] == schema:
            latest[str(row["relation_name"])] = row
    return {k: v for k, v in latest.items() if v["kind"] != DROPPED}


def _log(store: Store, schema: str, name: str, feature: str, kind: str, sha: str) -> None:
    ex = store.executor
    system.ensure(ex, names.MATERIALIZATIONS, LOG_COLUMNS, ["materialized_at"])
    system.append(ex, names.MATERIALIZATIONS, LOG_COLUMNS, {
        "relation_schema": schema, "relation_name": name, "feature": feature, "kind": kind,
        "ddl_sha256": sha, "materialized_at": system.now_iso()})
