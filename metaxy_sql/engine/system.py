"""The store's own small tables (graph snapshots, materialization log) and catalog lookups.

System tables are append-only and tiny (one row per push or per materialization), so they are
read whole; no feature data ever passes through here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import pyarrow as pa
from sqlglot import exp

from metaxy_sql.compile.builder import col, table_ref
from metaxy_sql.compile.dialects.base import lit
from metaxy_sql.engine.executors.base import Executor

#: Logical column types of system tables, mapped to each dialect's type names.
TEXT, TIMESTAMP = "text", "timestamp"

#: Columns of the materialization log (``names.MATERIALIZATIONS``): one row per relation
#: ``materialize`` created, and one of kind :data:`DROPPED` per relation dropped since.
MATERIALIZATION_COLUMNS = (
    ("relation_schema", TEXT), ("relation_name", TEXT), ("feature", TEXT),
    ("kind", TEXT), ("ddl_sha256", TEXT), ("materialized_at", TIMESTAMP))
DROPPED = "dropped"


_last: list[dt.datetime] = []


def now_iso() -> str:
    """UTC now as ISO text, strictly increasing within the process (rows order by it)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if _last and now <= _last[0]:
        now = _last[0] + dt.timedelta(microseconds=1)
    _last[:] = [now]
    return now.isoformat(sep=" ", timespec="microseconds")


def _sql_type(executor: Executor, logical: str) -> str:
    d = executor.dialect
    return d.timestamp_type if logical == TIMESTAMP else d.text_type


def ensure(executor: Executor, table: str, columns: Sequence[tuple[str, str]],
           order_by: Sequence[str], present: set[str] | None = None) -> None:
    """Create the system table ``table`` when it does not exist yet. ``present``: the store's
    tables, when the caller listed them (the DDL is ``IF NOT EXISTS`` either way). Where that
    DDL is not atomic (Postgres), concurrent creators take turns on ``Dialect.create_lock``:
    called inside a transaction, the lock is held to its end."""
    if table in (executor.tables() if present is None else present):
        return
    lock = executor.dialect.create_lock(table)
    if lock is not None:  # concurrent first writers take turns; later ones find the table
        executor.execute(executor.dialect.render(lock))
        if table in executor.tables():
            return
    typed = [(name, _sql_type(executor, logical)) for name, logical in columns]
    ddl = executor.dialect.system_table_ddl(table_ref(table), typed, order_by)
    executor.execute(executor.dialect.render(ddl))


def append(executor: Executor, table: str, columns: Sequence[tuple[str, str]],
           row: Mapping[str, str]) -> None:
    """Append one row (``row``: column -> text; timestamps as ISO text, UTC)."""
    d = executor.dialect
    values: list[exp.Expr] = [
        exp.alias_(d.timestamp_literal(row[name]) if logical == TIMESTAMP else lit(row[name]),
                   name, quoted=True)
        for name, logical in columns]
    insert = exp.insert(exp.select(*values), table_ref(table),
                        columns=[exp.to_identifier(n, quoted=True) for n, _ in columns])
    executor.execute(d.render(insert))


def read_all(executor: Executor, table: str, order_by: str) -> pa.Table:
    """Every row of a system table in ``order_by`` order (empty when it does not exist)."""
    if table not in executor.tables():
        return pa.table({})
    query = exp.select(exp.Star()).from_(table_ref(table)).order_by(col(order_by))
    return executor.fetch(executor.dialect.render(query))


def scalar(executor: Executor, expression: exp.Expr) -> object:
    """The single value of ``SELECT <expression>``."""
    result = executor.fetch(executor.dialect.render(exp.select(expression)))
    return result.column(0)[0].as_py()


def _information_schema(executor: Executor, view: str, schema_column: str,
                        catalog_column: str, schema: str, *columns: str) -> pa.Table:
    d = executor.dialect
    where: exp.Expr = exp.EQ(this=exp.column(schema_column), expression=lit(schema))
    catalog = d.catalog_condition(exp.column(catalog_column))
    if catalog is not None:
        where = exp.and_(where, catalog)
    query = exp.select(*[exp.column(c) for c in columns]).from_(
        exp.table_(view, db="information_schema")).where(where)
    return executor.fetch(d.render(query, pretty=False))


def current_schema(executor: Executor) -> str:
    """The schema (ClickHouse: database) holding the store's feature tables."""
    return str(scalar(executor, executor.dialect.current_schema()))


def schema_exists(executor: Executor, schema: str) -> bool:
    rows = _information_schema(executor, "schemata", "schema_name", "catalog_name", schema,
                               "schema_name")
    return bool(rows.num_rows > 0)


def relations(executor: Executor, schema: str) -> dict[str, str]:
    """Tables and views of ``schema``: name -> ``table`` or ``view``."""
    rows = _information_schema(executor, "tables", "table_schema", "table_catalog", schema,
                               "table_name", "table_type")
    return {str(r["table_name"]): "view" if "VIEW" in str(r["table_type"]).upper() else "table"
            for r in rows.to_pylist()}
