"""The interface every engine executor implements."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import pyarrow as pa
import sqlglot
from sqlglot import TokenType, exp
from sqlglot.errors import SqlglotError

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


#: ``ViewRead.relation`` of a view whose text sqlglot cannot parse: it may read anything.
UNPARSED = "*"


@dataclass(frozen=True)
class ViewRead:
    """One relation (table or view) that a view reads, from the engine's catalog.

    ``schema`` is None where the view's text leaves the name unqualified (the engine resolves
    it in the view's own schema); ``relation`` is :data:`UNPARSED` when the view's text could
    not be parsed.
    """

    view_schema: str
    view: str
    schema: str | None
    relation: str


def parsed_reads(view_schema: str, view: str, sql: str, read: str) -> list[ViewRead]:
    """The relations the view text ``sql`` (a ``SELECT`` or a ``CREATE VIEW``, in the sqlglot
    dialect ``read``) reads: its table references, parsed with sqlglot (never matched as text),
    CTE names and table functions left out.

    >>> [(r.schema, r.relation) for r in parsed_reads("main", "v",
    ...     "CREATE VIEW v AS WITH t AS (SELECT * FROM s.a) SELECT * FROM t, b", "duckdb")]
    [(None, 'b'), ('s', 'a')]
    """
    try:
        tree = sqlglot.parse_one(sql, read=read)
    except SqlglotError:
        return [ViewRead(view_schema, view, None, UNPARSED)]
    body = tree.expression if isinstance(tree, exp.Create) else tree
    if body is None:
        return [ViewRead(view_schema, view, None, UNPARSED)]
    ctes = {c.alias_or_name for c in body.find_all(exp.CTE)}
    found = set()
    for t in body.find_all(exp.Table):
        if not isinstance(t.this, exp.Identifier):
            continue  # a table function (read_parquet(...), numbers(...))
        schema = t.db or None
        if schema is None and t.name in ctes:
            continue
        found.add((schema or "", t.name))
    return [ViewRead(view_schema, view, schema or None, name) for schema, name in sorted(found)]


def view_body(sql: str, read: str) -> str | None:
    """The query of the view text ``CREATE VIEW name [(columns)] AS query``: the text after
    its first ``AS`` outside parentheses, found with sqlglot's tokenizer (None without one).

    >>> view_body('CREATE VIEW "v" (a) AS SELECT 1 AS a;', "duckdb")
    'SELECT 1 AS a;'
    """
    try:
        tokens = sqlglot.tokenize(sql, read=read)
    except SqlglotError:
        return None
    depth = 0
    for token, after in itertools.pairwise(tokens):
        depth += {TokenType.L_PAREN: 1, TokenType.R_PAREN: -1}.get(token.token_type, 0)
        if depth == 0 and token.token_type == TokenType.ALIAS:
            return sql[after.start:]
    return None


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

    def view_reads(self) -> list[ViewRead]:
        """What every view of the store's database (catalog) reads, any schema: one row per
        view and relation read (a view reading nothing has no row)."""

    def create_table(self, table: str, select: exp.Select, id_columns: list[str]) -> None:
        """Create ``table`` with the columns (and types) of ``select``, empty."""

    def transaction(self) -> AbstractContextManager[None]:
        """A context manager making the enclosed statements atomic where the engine can."""

    def close(self) -> None: ...
