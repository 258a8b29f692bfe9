"""The interface every engine executor implements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pyarrow as pa
from sqlglot import exp

from metaxy_sql.compile.dialects.base import Dialect

#: Query parameters of a store URL that hold secrets (masked wherever a URL is shown).
SECRET_PARAMS = frozenset(("password", "sslpassword"))


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***`` (also a ``?password=``/``sslpassword=``
    value), any scheme: what messages and ``Store.url`` show.

    >>> mask_url("postgresql://me:pw@host/db?sslmode=require&password=pw2")
    'postgresql://me:***@host/db?sslmode=require&password=***'
    """
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if any(k in SECRET_PARAMS for k, _ in parse_qsl(parts.query, keep_blank_values=True)):
        query = "&".join(f"{item.partition('=')[0]}=***"
                         if item.partition("=")[0] in SECRET_PARAMS else item
                         for item in parts.query.split("&"))
        parts = parts._replace(query=query)
    return urlunsplit(parts)


class Executor(Protocol):
    """Runs SQL on one engine. Arrow in (``stage``), Arrow out (``fetch``/``batches``)."""

    engine: str
    dialect: Dialect
    url: str  # with any password masked

    def execute(self, sql: str) -> None: ...

    def fetch(self, sql: str) -> pa.Table: ...

    def returning(self, sql: str) -> object:
        """Run a statement that returns one value (``INSERT ... RETURNING``); return it."""

    def batches(self, sql: str, batch_size: int) -> Iterator[pa.RecordBatch]: ...

    def stage(self, name: str, table: pa.Table) -> None:
        """Make ``table`` queryable under ``name`` until :meth:`unstage`."""

    def unstage(self, name: str) -> None: ...

    def tables(self) -> set[str]:
        """Names of the tables in the store's schema."""

    def columns(self, relation: str) -> dict[str, str]:
        """Column name -> engine type of a table or staged relation."""

    def create_table(self, table: str, select: exp.Select, id_columns: list[str]) -> None:
        """Create ``table`` with the columns (and types) of ``select``, empty."""

    def transaction(self) -> AbstractContextManager[None]:
        """A context manager making the enclosed statements atomic where the engine can."""

    def close(self) -> None: ...
