"""Rendering: the reviewable SQL text, identical to what the store runs."""

from __future__ import annotations

from pathlib import Path

from sqlglot import exp

from metaxy_sql import builder
from metaxy_sql.dialects import Dialect, get_dialect
from metaxy_sql.graph import FeatureGraph
from metaxy_sql.hashing import HashAlgorithm
from metaxy_sql.planner import plan_feature


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
    derived: builder.Derived = None,
) -> tuple[str, exp.Select]:
    """The resolve statement of ``key``: (full text with header, expression).

    ``subset``: a checked predicate over the increment's grain (partial resolution).
    ``missing``/``derived``: what the store has (see ``builder.resolve_statement``).
    """
    statement = builder.resolve_statement(dialect, plan_feature(graph, key), algorithm, missing,
                                          subset=subset, derived=derived)
    head = header(graph, key, dialect, algorithm)
    if subset is not None:
        head += f"-- subset: {subset.sql(identify=True)}\n"
    return head + dialect.render(statement) + "\n", statement


def golden_path(root: Path, dialect: str, example: str, key: str) -> Path:
    """``dialects/<engine>/<example>/<feature with / as __>.sql``."""
    return root / dialect / example / f"{key.replace('/', '__')}.sql"


def write_golden(root: Path, example: str, graph: FeatureGraph) -> list[Path]:
    """(Re)write the golden SQL of every feature of ``graph`` for every dialect."""
    written = []
    for name in ("duckdb", "clickhouse", "postgres"):
        dialect = get_dialect(name)
        for key in graph.keys:
            path = golden_path(root, name, example, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(resolve_sql(graph, key, dialect)[0])
            written.append(path)
            if not graph.is_root(key):  # the increment view materialize creates
                written.append(_write_view_ddl(path, graph, key, dialect))
    return written


def _write_view_ddl(resolve_path: Path, graph: FeatureGraph, key: str, dialect: Dialect) -> Path:
    from metaxy_sql import materialize, names  # materialize builds on this module

    path = resolve_path.with_name(f"{resolve_path.stem}__increment_view.sql")
    relation = materialize.relation_ref(names.increment_relation(key))
    path.write_text(materialize.increment_ddl_text(graph, key, dialect, "sha256", "view",
                                                   relation))
    return path
