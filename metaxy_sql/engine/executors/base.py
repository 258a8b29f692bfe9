"""The interface every engine executor implements."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol

import pyarrow as pa
from sqlglot import exp

from metaxy_sql.compile.dialects.base import Dialect


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
