"""Error types, named for who must act.

Every error raised for user input derives from :class:`MetaxySqlError`, names the feature or
field at fault and suggests a fix.
"""

from __future__ import annotations


class MetaxySqlError(Exception):
    """Base class of every error this package raises on purpose."""


class DefinitionError(MetaxySqlError):
    """A feature definition or graph is invalid: the author of the definitions must act."""


class DataError(MetaxySqlError):
    """Rows given to the store are invalid (missing ids, duplicates, unknown fields...)."""


class UnknownFeatureError(DefinitionError):
    """A feature key was asked for that the graph does not contain."""


class UnsupportedByDialectError(MetaxySqlError):
    """The requested construct cannot be expressed correctly in the target SQL dialect."""


class ConfigError(MetaxySqlError):
    """Configuration (store URL, entrypoints, config file) is missing or invalid."""


class StoreConnectionError(MetaxySqlError):
    """The store could not be reached (server down, wrong credentials, missing database)."""


class ExecutionError(MetaxySqlError):
    """The engine rejected or failed a statement; carries the SQL and the engine name."""

    def __init__(self, message: str, *, sql: str, engine: str) -> None:
        super().__init__(f"{message}\n-- engine: {engine}\n{sql}")
        self.sql = sql
        self.engine = engine
        self.reason = message


class WriteConflictError(ExecutionError):
    """A concurrent writer of the same table committed first (an engine with optimistic
    concurrency, e.g. DuckDB); the store retries the write, and raises this when it keeps
    losing."""


__all__ = [
    "ConfigError",
    "DataError",
    "DefinitionError",
    "ExecutionError",
    "MetaxySqlError",
    "StoreConnectionError",
    "UnknownFeatureError",
    "UnsupportedByDialectError",
    "WriteConflictError",
]
