"""Feature-table DDL from the definitions alone (no store needed), for review and clusters.

Stores create their tables on the first write, typed by the rows written. This module writes
the same tables ahead of time from the specs: id columns and declared user columns typed from
their annotations (text unless a feature class says otherwise), then the system columns. The
engine specifics (types, table engines, the cluster layout) come from the dialect's
``table_ddl`` / ``cluster_table_ddl``; the resolve SQL reads only the feature tables by name.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from metaxy_sql.compile.builder import table_ref
from metaxy_sql.compile.dialects.base import Dialect
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph


def table_columns(graph: FeatureGraph, key: str, d: Dialect) -> list[tuple[str, str]]:
    """(name, engine type) of every column of the feature's table, in table order."""
    spec = graph.spec(key)
    user = graph.user_columns(key)
    columns = [(c, d.python_type(user.get(c, str))) for c in spec.id_columns]
    columns += [(c, d.nullable_type(d.python_type(t))) for c, t in user.items()
                if c not in spec.id_columns]
    system = {
        names.PROVENANCE_BY_FIELD: d.map_type, names.PROVENANCE: d.text_type,
        names.DATA_VERSION_BY_FIELD: d.map_type, names.DATA_VERSION: d.text_type,
        names.FEATURE_VERSION: d.text_type, names.CREATED_AT: d.timestamp_type,
        names.DELETED: d.bool_type, names.SUPERSEDED: d.bool_type,
        names.WRITE_SEQ: d.write_seq_type,
    }
    return columns + [(c, system[c]) for c in names.SYSTEM_COLUMNS]


def feature_table_ddl(graph: FeatureGraph, key: str, d: Dialect,
                      cluster: str | None = None) -> list[exp.Expr]:
    """``CREATE TABLE`` statement(s) of feature ``key`` on dialect ``d``."""
    table, ids = table_ref(names.table(key)), graph.spec(key).id_columns
    columns, fields = table_columns(graph, key, d), graph.field_keys(key)
    if cluster is None:
        return d.table_ddl(table, columns, ids, fields)
    return d.cluster_table_ddl(table, columns, ids, cluster, fields)


def render_ddl(graph: FeatureGraph, keys: Sequence[str], d: Dialect,
               cluster: str | None = None) -> str:
    """The DDL of ``keys`` as one reviewable SQL script."""
    parts = []
    for key in keys:
        where = f" on cluster {cluster}" if cluster else ""
        parts.append(f"-- metaxy-sql table: {key}{where}")
        parts += [d.render(stmt) + ";" for stmt in feature_table_ddl(graph, key, d, cluster)]
    return "\n".join(parts) + "\n"
