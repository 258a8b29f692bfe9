"""Rendering: the reviewable SQL text, identical to what the store runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.compile.dialects import Dialect
from metaxy_sql.compile.planner import Catalog, increment_grain, plan_feature
from metaxy_sql.model import filters, names
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.model.hashing import HashAlgorithm


def header(graph: FeatureGraph, key: str, dialect: Dialect, algorithm: HashAlgorithm) -> str:
    """SQL comment lines naming the feature, its versions, the dialect and the digest."""
    lines = [
        f"-- metaxy-sql resolve: {key}",
        f"-- feature_version: {graph.feature_version(key)}",
    ]
    for f in graph.field_keys(key):
        parents = ", ".join(f"{p}.{pf}" for p, pf in graph.field_parents(key, f)) or "(root)"
        lines.append(f"-- field {f} (code_version {graph.code_version(key, f)}, "
                     f"field_version {graph.field_version(key, f)}) <- {parents}")
    if dialect.derives_field_columns:
        lines.append("-- metaxy_dv_token__<field> and metaxy_provenance__<field> are columns the "
                     "tables derive from their maps (metaxy-sql render --ddl)")
    lines.append(f"-- dialect: {dialect.name}; digest: {algorithm}")
    return "\n".join(lines) + "\n"


def resolve_sql(
    graph: FeatureGraph, key: str, dialect: Dialect, algorithm: HashAlgorithm = "sha256",
    missing: frozenset[str] = frozenset(), *, subset: exp.Expr | None = None,
    derived: builder.Derived = None, id_types: builder.IdTypes = None,
    sample_columns: tuple[str, ...] = (), splits: builder.Splits = None,
) -> tuple[str, exp.Select]:
    """The resolve statement of ``key``: (full text with header, expression).

    ``subset``: a checked predicate over the increment's grain (partial resolution);
    ``splits``: how some tables' subset rows are read (``builder.RecentSplit``).
    ``missing``/``derived``/``id_types``: what the store has (see
    ``builder.resolve_statement``).
    ``sample_columns``: root features: user columns of the staged samples, carried.

    Raises:
        DataError: an aggregated parent stores an id column of a type refused as an id.
    """
    statement = builder.resolve_statement(dialect, plan_feature(graph, key, sample_columns),
                                          algorithm, missing, subset=subset, derived=derived,
                                          id_types=id_types, splits=splits)
    head = header(graph, key, dialect, algorithm)
    if subset is not None:
        head += f"-- subset: {subset.sql(identify=True)}\n"
        for table, split in sorted((splits or {}).items()):
            head += (f"-- subset rows of {table}: past {split.since.sql(identify=True)} for "
                     f"{split.recent.sql(identify=True)}, else {split.rest.sql(identify=True)}\n")
    return head + dialect.render(statement) + "\n", statement


def compile_resolve(graph: FeatureGraph, key: str, dialect: Dialect, algorithm: HashAlgorithm,
                    catalog: Catalog, *, where: str | None = None,
                    ids: Sequence[Any] | None = None,
                    subset: exp.Expr | None = None,
                    splits: builder.Splits = None) -> tuple[str, exp.Select]:
    """The one compile step of a resolve: (definitions, feature, options, what the store
    holds) -> (SQL text with header, statement). Nothing is read from the store here.

    ``subset``: a predicate over the increment's grain built by the caller (e.g. ``grain IN
    (SELECT ...)`` of an incremental refresh), AND-ed with ``where``/``ids``; ``splits``: how
    that refresh reads some tables (``builder.RecentSplit``; ignored without ``subset``).

    Raises:
        DefinitionError: ``where``/``ids`` are not a predicate over the increment's id
            columns, or a dependency filters on or carries a column its parent does not store.
        DataError: an aggregated parent stores an id column of a type refused as an id.
    """
    user = filters.subset_predicate(key, increment_grain(graph, key), where, ids)
    if user is not None and subset is not None:
        subset = exp.and_(user, subset)
        splits = {t: builder.RecentSplit(s.since, exp.and_(user, s.recent), exp.and_(user, s.rest))
                  for t, s in (splits or {}).items()}
    elif user is not None:
        subset = user
    graph.check_upstream_columns(
        key, lambda parent: catalog.columns.get(names.table(parent), frozenset()))
    derived = dict(catalog.columns) if dialect.derives_field_columns else None
    return resolve_sql(graph, key, dialect, algorithm, catalog.missing(graph, key),
                       subset=subset, derived=derived, id_types=catalog.id_types,
                       sample_columns=catalog.sample_columns,
                       splits=splits if subset is not None else None)
