"""SQL dialects: one module per engine, each the single home of that engine's quirks."""

from __future__ import annotations

from metaxy_sql.compile.dialects.base import Dialect
from metaxy_sql.compile.dialects.clickhouse import ClickHouseDialect
from metaxy_sql.compile.dialects.duckdb import DuckDBDialect
from metaxy_sql.compile.dialects.postgres import PostgresDialect
from metaxy_sql.errors import UnsupportedByDialectError

DIALECTS: dict[str, type[Dialect]] = {
    "duckdb": DuckDBDialect,
    "clickhouse": ClickHouseDialect,
    "postgres": PostgresDialect,
}


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name`` (``duckdb``, ``clickhouse`` or ``postgres``)."""
    try:
        return DIALECTS[name]()
    except KeyError:
        raise UnsupportedByDialectError(
            f"unknown dialect {name!r}; choose one of {', '.join(DIALECTS)}") from None


__all__ = ["DIALECTS", "Dialect", "get_dialect"]
