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

#: Other names of the dialects, in any case: the store URL schemes of each engine.
ALIASES: dict[str, str] = {
    "postgresql": "postgres",
    "chdb": "clickhouse",
    "clickhouses": "clickhouse",
}


def dialect_name(name: str) -> str:
    """The canonical name of a dialect given by name or store URL scheme, in any case:
    ``ClickHouse``, ``chdb`` -> ``clickhouse``; ``postgresql``, ``Postgres`` -> ``postgres``.

    Raises:
        UnsupportedByDialectError: no dialect has that name.
    """
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in DIALECTS:
        known = ", ".join([*DIALECTS, *ALIASES])
        raise UnsupportedByDialectError(f"unknown dialect {name!r}; choose one of {known}")
    return key


def get_dialect(name: str) -> Dialect:
    """The dialect called ``name`` (``duckdb``, ``clickhouse`` or ``postgres``; any case, or
    a store URL scheme such as ``postgresql`` or ``chdb``).

    Raises:
        UnsupportedByDialectError: no dialect has that name.
    """
    return DIALECTS[dialect_name(name)]()


__all__ = ["ALIASES", "DIALECTS", "Dialect", "dialect_name", "get_dialect"]
