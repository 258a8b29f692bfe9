"""Views that read a feature's table, found before ``Store.drop`` runs any DDL.

Dropping a table that views read breaks them: DuckDB and ClickHouse drop it and the views fail
on their next read; Postgres refuses. So ``drop`` looks first, on every engine, in two places:
the store's own log of what ``materialize`` created (increment views of the feature and of
the features that read it) and the engine's catalog, for any other view reading the table,
directly or through other views (``Executor.view_reads``). It refuses while any exists, or
(``cascade=True``) drops those views first, and only views.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from metaxy_sql.compile.planner import tables_read
from metaxy_sql.engine import system
from metaxy_sql.engine.executors.base import UNPARSED, Executor
from metaxy_sql.errors import ConfigError
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph

_Key = tuple[str, str]  # (schema, relation)


@dataclass(frozen=True)
class DependentView:
    """A view reading a feature table, directly or through other views.

    ``feature``: the feature whose increment view ``materialize`` logged under this name
    (``""`` for a view metaxy-sql did not create). ``parsed``: false when sqlglot could not
    parse the view's text, so it may read the table (never dropped by ``cascade``).
    """

    schema: str
    name: str
    feature: str = ""
    parsed: bool = True

    @property
    def qualified(self) -> str:
        """``schema.name`` (ClickHouse: ``database.name``)."""
        return f"{self.schema}.{self.name}"

    def describe(self) -> str:
        """The qualified name and, where known, where the view comes from."""
        if self.feature:
            return f"{self.qualified} (increment view of {self.feature!r}, from materialize)"
        if not self.parsed:
            return f"{self.qualified} (its SQL does not parse: it may read the table)"
        return self.qualified


def dependent_views(executor: Executor, graph: FeatureGraph, feature: str
                    ) -> list[DependentView]:
    """The views that read the table of ``feature``, any schema, in drop order (a view
    before the views it reads). Empty when none does."""
    home = system.current_schema(executor)
    reads: dict[_Key, set[_Key]] = {}
    unparsed: set[_Key] = set()
    for r in executor.view_reads():
        view = (r.view_schema, r.view)
        reads.setdefault(view, set())
        if r.relation == UNPARSED:
            unparsed.add(view)
        else:  # an unqualified name resolves in the view's own schema
            reads[view].add((r.schema or r.view_schema, r.relation))
    logged = {k: f for k, f in _logged_views(executor, graph, feature).items() if k in reads}
    found = set(logged) | unparsed
    reached = found | {(home, names.table(feature))}
    while grown := {v for v, read in reads.items() if v not in found and read & reached}:
        found |= grown
        reached |= grown
    return [DependentView(s, n, logged.get((s, n), ""), (s, n) not in unparsed)
            for s, n in _drop_order(found, reads)]


def refuse(feature: str, views: list[DependentView]) -> ConfigError:
    """The error of a ``drop`` without ``cascade`` while ``views`` read the table."""
    listed = ", ".join(v.describe() for v in views)
    return ConfigError(
        f"drop {feature!r}: {len(views)} view(s) read its table {names.table(feature)!r} and "
        f"would break (Postgres refuses the drop): {listed}. Drop them first, or drop with "
        f"cascade=True (CLI: metaxy-sql drop {feature} --cascade) to drop these views with "
        "the table (re-create increment views with metaxy-sql materialize)")


def drop_views(executor: Executor, feature: str, views: list[DependentView]) -> None:
    """Drop ``views`` (only views: ``DROP VIEW``) in the given order and record each in the
    materialization log as dropped. Run inside the caller's transaction.

    Raises:
        ConfigError: a view's SQL does not parse (metaxy-sql cannot tell what it reads).
    """
    blind = [v.qualified for v in views if not v.parsed]
    if blind:
        raise ConfigError(
            f"drop {feature!r} --cascade: the SQL of view(s) {blind} does not parse, so "
            "metaxy-sql cannot tell whether they read its table; drop them yourself (or "
            "re-create them in plain SQL) and drop again")
    d = executor.dialect
    for v in views:
        relation = exp.Table(this=exp.to_identifier(v.name, quoted=True),
                             db=exp.to_identifier(v.schema, quoted=True))
        executor.execute(d.render(exp.Drop(kind="VIEW", exists=True, tables=[relation])))
    if not views:
        return
    system.ensure(executor, names.MATERIALIZATIONS, system.MATERIALIZATION_COLUMNS,
                  ["materialized_at"])
    for v in views:
        system.append(executor, names.MATERIALIZATIONS, system.MATERIALIZATION_COLUMNS, {
            "relation_schema": v.schema, "relation_name": v.name,
            "feature": v.feature or feature, "kind": system.DROPPED, "ddl_sha256": "",
            "materialized_at": system.now_iso()})


def _logged_views(executor: Executor, graph: FeatureGraph, feature: str) -> dict[_Key, str]:
    """Views ``materialize`` logged (and did not drop since) for ``feature`` and for the
    features whose resolve reads its table: (schema, name) -> the view's feature."""
    latest: dict[_Key, dict[str, object]] = {}
    for row in system.read_all(executor, names.MATERIALIZATIONS,
                               "materialized_at").to_pylist():
        latest[(str(row["relation_schema"]), str(row["relation_name"]))] = row
    table = names.table(feature)
    return {k: str(row["feature"]) for k, row in latest.items()
            if row["kind"] == "view" and str(row["feature"]) in graph
            and table in tables_read(graph, str(row["feature"]))}


def _drop_order(views: set[_Key], reads: dict[_Key, set[_Key]]) -> list[_Key]:
    """``views`` ordered so that each comes before the views it reads (sorted otherwise)."""
    order: list[_Key] = []
    left = set(views)
    while left:
        ready = sorted(v for v in left if not any(v in reads[w] for w in left - {v}))
        order += ready or sorted(left)  # views cannot read each other in a circle
        left -= set(ready or left)
    return order
