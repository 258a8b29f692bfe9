"""Feature-table DDL from the definitions alone (no store needed), for review and clusters.

Stores create their tables on the first write, typed by the rows written. This module writes
the same tables ahead of time from the specs: id columns and declared user columns typed from
their annotations (``str`` unless a feature class says otherwise), then the system columns.
On ClickHouse, ``cluster=NAME`` gives the scale-out layout: a ``ReplicatedMergeTree`` table
``<table>__local`` on every node and a ``Distributed`` table under the feature's own table
name, sharded by a hash of the id columns so every version of a sample lives on one shard.
The resolve SQL reads only the feature tables by name, so it runs over the Distributed tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from sqlglot import exp

from metaxy_sql import names
from metaxy_sql.builder import table_ref
from metaxy_sql.dialects.base import Dialect, call, lit
from metaxy_sql.errors import UnsupportedByDialectError
from metaxy_sql.graph import FeatureGraph

_PYTHON_TYPES = {
    str: "TEXT", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN", dt.datetime: "TIMESTAMP",
}
_CLICKHOUSE_TYPES = {
    "TEXT": "String", "BIGINT": "Int64", "DOUBLE": "Float64", "BOOLEAN": "Bool",
    "TIMESTAMP": "DateTime64(6, 'UTC')",
}


def _sql_type(d: Dialect, annotation: object) -> str:
    generic: str = _PYTHON_TYPES.get(annotation, "TEXT")  # type: ignore[call-overload]
    if d.name == "clickhouse":
        return _CLICKHOUSE_TYPES[generic]
    if d.name == "postgres" and generic == "DOUBLE":
        return "DOUBLE PRECISION"
    return generic


def table_columns(graph: FeatureGraph, key: str, d: Dialect) -> list[tuple[str, str]]:
    """(name, engine type) of every column of the feature's table, in table order."""
    spec = graph.spec(key)
    user = graph.user_columns(key)
    columns = [(c, _sql_type(d, user.get(c, str))) for c in spec.id_columns]
    columns += [(c, _nullable(d, _sql_type(d, t))) for c, t in user.items()
                if c not in spec.id_columns]
    system = {
        names.PROVENANCE_BY_FIELD: d.map_type, names.PROVENANCE: d.text_type,
        names.DATA_VERSION_BY_FIELD: d.map_type, names.DATA_VERSION: d.text_type,
        names.FEATURE_VERSION: d.text_type, names.CREATED_AT: d.timestamp_type,
        names.DELETED: d.bool_type, names.SUPERSEDED: d.bool_type,
    }
    return columns + [(c, system[c]) for c in names.SYSTEM_COLUMNS]


def _nullable(d: Dialect, sql_type: str) -> str:
    return f"Nullable({sql_type})" if d.name == "clickhouse" else sql_type


def _schema(table: str, columns: Sequence[tuple[str, str]], d: Dialect) -> exp.Schema:
    return exp.Schema(this=table_ref(table), expressions=[
        exp.ColumnDef(this=exp.to_identifier(c, quoted=True), kind=d.type_(t)) for c, t in columns])


def feature_table_ddl(graph: FeatureGraph, key: str, d: Dialect,
                      cluster: str | None = None) -> list[exp.Expr]:
    """``CREATE TABLE`` statement(s) of feature ``key`` on dialect ``d``."""
    spec = graph.spec(key)
    table, columns = names.table(key), table_columns(graph, key, d)
    if cluster is None:
        if d.name == "clickhouse":
            return [d.create_table_ddl(table_ref(table), columns, spec.id_columns)]  # type: ignore[attr-defined]
        return [exp.Create(kind="TABLE", exists=True, this=_schema(table, columns, d))]
    if d.name != "clickhouse":
        raise UnsupportedByDialectError(
            f"--cluster is for ClickHouse; {d.name} has no ON CLUSTER DDL (drop --cluster)")
    local = f"{table}__local"
    replicated = (f"ReplicatedMergeTree('/clickhouse/tables/{{shard}}/{{database}}/{local}', "
                  "'{replica}')")
    ids = [exp.column(c, quoted=True) for c in spec.id_columns]
    sharding = call("cityHash64", *ids)
    distributed = call("Distributed", lit(cluster), call("currentDatabase"), lit(local), sharding)
    return [
        d.create_table_ddl(table_ref(local), columns, spec.id_columns,  # type: ignore[attr-defined]
                           cluster=cluster, engine=replicated),
        exp.Create(kind="TABLE", exists=True, this=_schema(table, columns, d),
                   properties=exp.Properties(expressions=[
                       exp.OnCluster(this=exp.to_identifier(cluster, quoted=True)),
                       exp.EngineProperty(this=distributed)])),
    ]


def render_ddl(graph: FeatureGraph, keys: Sequence[str], d: Dialect,
               cluster: str | None = None) -> str:
    """The DDL of ``keys`` as one reviewable SQL script."""
    parts = []
    for key in keys:
        where = f" on cluster {cluster}" if cluster else ""
        parts.append(f"-- metaxy-sql table: {key}{where}")
        parts += [d.render(stmt) + ";" for stmt in feature_table_ddl(graph, key, d, cluster)]
    return "\n".join(parts) + "\n"
