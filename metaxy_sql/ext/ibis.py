"""ibis integration: increments and latest states as lazy ibis tables over our own SQL.

Install with ``pip install 'metaxy-sql[ibis]'``; the core imports this module only when
``IncrementPart.to_ibis()`` or ``Store.table()`` is called.

The table is ``backend.sql(<our statement>)`` on the store's own connection (so it sees what
the store sees, staged root samples included): DuckDB through ``ibis.duckdb.from_connection``,
Postgres through ``ibis.postgres.from_connection`` (psycopg 3), a ClickHouse server through
``ibis.clickhouse.from_connection`` (clickhouse-connect). Building it asks the engine for the
statement's schema only; filters, projections and aggregations a user adds compile into one
query around our statement and run in the engine when the expression executes
(``to_pyarrow()``, ``execute()``, ``to_polars()``...).

Side effects on the store's connection: ibis's Postgres backend sets the session time zone to
UTC when it attaches (the store writes no time-zone-dependent values).

chdb (embedded ClickHouse) has no ibis backend: use ``to_arrow()``, ``iter_batches()`` or
``to_polars(lazy=True)`` there.
"""

from __future__ import annotations

import weakref
from typing import Any

import pyarrow as pa
from sqlglot import exp

from metaxy_sql.engine.executors.base import Executor
from metaxy_sql.errors import ConfigError, UnsupportedByDialectError

try:
    import ibis
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ConfigError("to_ibis needs the ibis extra: pip install 'metaxy-sql[ibis]'") from e

#: One ibis backend per store connection (attaching runs a few setup statements).
_backends: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def backend(executor: Executor) -> Any:
    """The ibis backend over ``executor``'s own connection (Postgres: a psycopg connection of
    its own to the same schema, as ibis speaks psycopg and the store ADBC).

    Raises:
        UnsupportedByDialectError: the engine has no ibis backend (chdb).
    """
    found = _backends.get(executor)
    if found is None:
        found = _attach(executor)
        _backends[executor] = found
    return found


def _attach(executor: Executor) -> Any:
    connection: Any = executor
    if executor.engine == "duckdb":
        return ibis.duckdb.from_connection(connection.con)
    if executor.engine == "postgres":
        return ibis.postgres.from_connection(connection.psycopg_connection())
    if executor.engine == "clickhouse" and not connection.embedded:
        return ibis.clickhouse.from_connection(connection.client)
    raise UnsupportedByDialectError(
        f"store {executor.url}: ibis has no backend for embedded ClickHouse (chdb); use "
        "to_arrow(), iter_batches() or to_polars(lazy=True) instead, or a ClickHouse server "
        "URL (clickhouse://host:8123/db)")


def table(executor: Executor, query: exp.Select) -> Any:
    """A lazy ibis table over ``query`` rendered in the store's dialect, on ``executor``.

    The schema comes from our own executor (the query with ``LIMIT 0``: no rows), not from
    ibis's probe, which with DuckDB 2 and sqlglot 30 fails (a removed ``fetch_arrow_table``;
    a ``DROP VIEW`` rendered without its name) and on a ClickHouse server creates a view.
    Postgres per-field maps are ``jsonb``: ibis sees them as ``json`` (Arrow: JSON text).

    Raises:
        UnsupportedByDialectError: the engine has no ibis backend (chdb).
    """
    con = backend(executor)
    arrow = executor.fetch(executor.dialect.render(query.limit(0))).schema
    schema = ibis.Schema.from_pyarrow(arrow)
    if executor.engine == "postgres":
        schema = ibis.schema({name: "json" if pa.types.is_map(arrow.field(name).type) else kind
                              for name, kind in schema.items()})
    return con.sql(executor.dialect.render(query), schema=schema)
