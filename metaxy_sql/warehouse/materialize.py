"""Increments as relations in the warehouse, dbt-style: a live view or a snapshot table per feature.

A view's SELECT is the resolve statement, byte for byte (``render``'s text), so querying it
always shows the up-to-date increment. A table is a snapshot of the increment at
materialization time (created or replaced atomically).

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
from metaxy_sql.compile.dialects.base import Dialect
from metaxy_sql.compile.render import header, resolve_sql
from metaxy_sql.engine import system
from metaxy_sql.errors import ConfigError
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.model.hashing import HashAlgorithm

if TYPE_CHECKING:
    from metaxy_sql.engine.store import Store

Kind = Literal["view", "table"]
KINDS: tuple[Kind, ...] = ("view", "table")
DROPPED = "dropped"

LOG_COLUMNS = (
    ("relation_schema", system.TEXT), ("relation_name", system.TEXT), ("feature", system.TEXT),
    ("kind", system.TEXT), ("ddl_sha256", system.TEXT), ("materialized_at", system.TIMESTAMP))


@dataclass(frozen=True)
class Action:
    """What ``materialize`` did (or, with ``dry_run``, would do) for one relation.

    ``action``: ``created``, ``replaced``, ``unchanged``, ``skipped`` (``reason`` says why) or
    ``dropped`` (``prune``).
    """

    feature: str
    relation: str
    schema: str
    kind: str
    action: str
    ddl: str = ""
    reason: str = ""


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
            reason = f" ({a.reason})" if a.reason else ""
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


def materialize(store: Store, features: Sequence[str] | None = None, *, as_: Kind = "view",
                schema: str | None = None, prefix: str = "",
                suffix: str = names.INCREMENT_SUFFIX, dry_run: bool = False,
                prune: bool = False,
                on_progress: Callable[[int], None] | None = None) -> MaterializeReport:
    """Create or replace increment relations (``<feature>__increment``), dbt-style.

    ``as_="view"``: a live view whose SELECT is the resolve statement; ``"table"``: a
    snapshot of the increment now. Default features: every non-root feature (root
    features read a per-session sample set and are skipped). ``dry_run`` runs nothing;
    each action carries its DDL. ``prune`` drops increment relations this store created
    for features no longer defined. Existing relations not created here are never
    touched. ``on_progress(1)`` is called after each feature (skipped ones included).

    Raises:
        ConfigError: ``as_`` is not view/table, the schema does not exist, a relation of that
            name exists and was not created here, or an explicit feature cannot be
            materialized (a root, or an upstream table never written).
    """
    kind = as_
    if kind not in KINDS:
        raise ConfigError(f"materialize as {kind!r}: choose 'view' or 'table'")
    ex = store.executor
    home = system.current_schema(ex)
    target = schema or home
    if not system.schema_exists(ex, target):
        raise ConfigError(f"schema {target!r} does not exist in {store.url}; create it first "
                          f"(CREATE SCHEMA, on ClickHouse CREATE DATABASE) or pass another "
                          "--schema")
    explicit = features is not None
    keys = list(features) if features is not None else list(store.graph.keys)
    for key in keys:
        store.graph.spec(key)
    ctx = _Ctx(store, kind, target, home, prefix, suffix, dry_run,
               system.relations(ex, target), _logged(store, target))
    report = MaterializeReport(dry_run=dry_run)
    for key in sorted(keys, key=store.graph.keys.index):
        report.actions.append(_one(ctx, key, explicit))
        if on_progress is not None:
            on_progress(1)
    if prune:
        report.actions += _prune(ctx)
    return report


def _one(ctx: _Ctx, key: str, explicit: bool) -> Action:
    store, d = ctx.store, ctx.store.executor.dialect
    name = names.increment_relation(key, ctx.prefix, ctx.suffix)
    catalog = store.catalog(key)
    missing = catalog.missing(store.graph, key)
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
                "would freeze them as empty. Write them first, or materialize --as table")
    return None


def _prune(ctx: _Ctx) -> list[Action]:
    """Drop logged relations of features no longer in the graph (never anything unlogged)."""
    actions = []
    for name, row in sorted(ctx.ours.items()):
        feature, kind = str(row["feature"]), str(row["kind"])
        if feature in ctx.store.graph:
            continue
        if ctx.existing.get(name) not in (None, kind):
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
