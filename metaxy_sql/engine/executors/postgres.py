"""Postgres executor (psycopg 3): COPY in, COPY or a server-side cursor out, Arrow both ways.

URL: ``postgresql://user:password@host:port/database[?schema=name&<libpq options>]`` (also
``postgres://``). ``schema`` (default: the role's current schema, usually ``public``) holds the
feature tables; it is created when missing. Staged relations are session-local TEMP tables.

Index (created with each feature table): one partial b-tree on ``(<id columns>) WHERE NOT
metaxy_superseded``: the live rows of :func:`metaxy_sql.compile.builder.latest_rows`, which the
supersede step of each write and the joins of resolve look up by id.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import threading
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import sql as pgsql
from sqlglot import exp

from metaxy_sql.compile.builder import table_ref
from metaxy_sql.compile.dialects.base import Dialect
from metaxy_sql.compile.dialects.postgres import PostgresDialect
from metaxy_sql.engine.executors.postgres_arrow import ArrowCodec, ResultColumn, pg_type, quote
from metaxy_sql.errors import ConfigError, ExecutionError, StoreConnectionError
from metaxy_sql.model import names

_cursor_ids = itertools.count()
#: Seconds to wait for a server before giving up (unless the URL sets connect_timeout).
CONNECT_TIMEOUT = 10


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _split_url(url: str) -> tuple[str, str | None]:
    """(libpq connection URL, schema) from a store URL."""
    parts = urlsplit(url)
    if not parts.hostname and not parts.path.strip("/"):
        raise ConfigError(f"store URL {mask_url(url)!r}: use "
                          "postgresql://user:password@host:port/database[?schema=name]")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not 0 < len(schema.encode()) <= 63:
        raise ConfigError(f"store URL {mask_url(url)!r}: schema must be 1 to 63 bytes long")
    rest = [(k, v) for k, v in query if k != "schema"]
    if not any(k == "connect_timeout" for k, _ in rest):
        rest.append(("connect_timeout", str(CONNECT_TIMEOUT)))
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def _connection_problem(e: psycopg.Error, url: str) -> str:
    """One line saying what went wrong connecting and what to do."""
    text = str(e)
    parsed = urlsplit(url)
    where = f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}"
    if "password authentication failed" in text or "no password supplied" in text:
        return (f"authentication failed for user {parsed.username!r}; check the user and "
                "password in the URL")
    if "does not exist" in text and "database" in text:
        db = parsed.path.lstrip("/")
        return f"database {db!r} does not exist; create it (CREATE DATABASE) or fix the URL"
    if "Connection refused" in text or "timeout expired" in text:
        return (f"no Postgres server reachable at {where}; is it running? (for tests: "
                "`export METAXY_SQL_POSTGRES_URL=$(bash .ci/postgres.sh | tail -1)`)")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0] if lines else type(e).__name__


class PostgresExecutor:
    engine = "postgres"

    def __init__(self, conninfo: str, schema: str | None, url: str, *,
                 create: bool = True) -> None:
        self.dialect: Dialect = PostgresDialect()
        self.url = url
        try:
            self.conn = psycopg.connect(conninfo, autocommit=True, client_encoding="UTF8")
        except psycopg.Error as e:
            raise StoreConnectionError(
                f"cannot connect to {url}: {_connection_problem(e, conninfo)}") from None
        # One connection serves the store; the lock lets a background writer share it.
        self.lock = threading.RLock()
        self._codec = ArrowCodec()
        try:
            self.schema = self._setup(schema, create)
        except BaseException:
            self.close()
            raise

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> PostgresExecutor:
        """Open ``postgresql://user:password@host:port/database[?schema=name]``; a missing
        schema is created unless ``create`` is false (then it is a StoreConnectionError)."""
        conninfo, schema = _split_url(url)
        return cls(conninfo, schema, mask_url(url), create=create)

    def _setup(self, schema: str | None, create: bool = True) -> str:
        encoding = self._scalar("SHOW server_encoding")
        if encoding != "UTF8":
            # octet_length() and md5() see the database encoding's bytes, the oracle UTF-8's.
            raise StoreConnectionError(
                f"{self.url}: database encoding is {encoding}; metaxy-sql needs a UTF8 database "
                "(CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)")
        self.execute("SET TIME ZONE 'UTC'")  # metaxy_created_at is naive UTC
        if schema is None:
            return str(self._scalar("SELECT current_schema()"))
        if not self._scalar("SELECT count(*) FROM pg_namespace WHERE nspname = %s", schema):
            if not create:
                raise StoreConnectionError(
                    f"store {self.url}: schema {schema!r} does not exist; nothing was created "
                    "(only writing commands create a store); check ?schema=")
            self.execute(pgsql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                pgsql.Identifier(schema)))
        self.execute(pgsql.SQL("SET search_path TO {}").format(pgsql.Identifier(schema)))
        return schema

    # -- statements -------------------------------------------------------------------------
    def _text(self, query: str | pgsql.Composable) -> str:
        return query if isinstance(query, str) else query.as_string(self.conn)

    @contextlib.contextmanager
    def _errors(self, query: str | pgsql.Composable) -> Iterator[None]:
        try:
            yield
        except psycopg.Error as e:
            first = (str(e).splitlines() or [type(e).__name__])[0]
            raise ExecutionError(first, sql=self._text(query), engine=self.engine) from e

    def execute(self, sql: str | pgsql.Composed, *params: object) -> None:
        with self.lock, self._errors(sql):
            self.conn.execute(sql, params or None)

    def returning(self, sql: str) -> object:
        return self._scalar(sql)

    def _scalar(self, sql: str, *params: object) -> object:
        with self.lock, self._errors(sql):
            row = self.conn.execute(sql, params or None).fetchone()
        return row[0] if row else None

    def _describe(self, sql: str) -> list[ResultColumn]:
        probe = f"SELECT * FROM ({sql}\n) AS {quote('metaxy_probe')} LIMIT 0"
        with self.lock, self._errors(sql), self.conn.cursor() as cur:
            cur.execute(probe)
            return [ResultColumn(d.name, d.type_code, d.precision, d.scale)
                    for d in cur.description or []]

    @staticmethod
    def _as_text(sql: str, columns: list[ResultColumn]) -> str:
        select = ", ".join(f"{c.server_text()} AS {quote(c.name)}" for c in columns)
        return f"SELECT {select} FROM ({sql}\n) AS {quote('metaxy_result')}"

    def fetch(self, sql: str) -> pa.Table:
        columns = self._describe(sql)
        names_ = [c.name for c in columns]
        copy = f"COPY ({self._as_text(sql, columns)}) TO STDOUT (FORMAT csv)"
        with self.lock, self._errors(sql), self.conn.cursor() as cur, cur.copy(copy) as cp:
            data = _CopyReader(iter(cp))
            if data.at_end():
                text = pa.table({n: pa.array([], pa.string()) for n in names_})
            else:
                text = pacsv.read_csv(
                    io.BufferedReader(data, 1 << 20),
                    read_options=pacsv.ReadOptions(column_names=names_, block_size=1 << 22),
                    convert_options=_text_csv(names_))
        return self._codec.typed(text, columns)

    def batches(self, sql: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        # WITH HOLD: the cursor outlives transactions, so writes (and their commits) on this
        # connection may interleave with the stream, as the BufferedMetadataWriter does.
        columns = self._describe(sql)
        names_ = [c.name for c in columns]
        cursor = self.conn.cursor(f"metaxy_cursor_{next(_cursor_ids)}", withhold=True)
        try:
            with self.lock, self._errors(sql):
                cursor.execute(self._as_text(sql, columns))
            while True:
                with self.lock, self._errors(sql):
                    rows = cursor.fetchmany(batch_size)
                if not rows:
                    return
                text = pa.table([pa.array(c, pa.string()) for c in zip(*rows, strict=True)],
                                names=names_)
                yield from self._codec.typed(text, columns).to_batches()
        finally:
            with self.lock, contextlib.suppress(psycopg.Error):
                cursor.close()

    # -- staging ----------------------------------------------------------------------------
    def stage(self, name: str, table: pa.Table) -> None:
        ident = pgsql.Identifier(name)
        cols = pgsql.SQL(", ").join(
            pgsql.SQL("{} {}").format(pgsql.Identifier(f.name), pgsql.SQL(pg_type(f)))
            for f in table.schema)
        copy = pgsql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
            ident, pgsql.SQL(", ").join(pgsql.Identifier(n) for n in table.column_names))
        with self.lock:
            self.unstage(name)
            self.execute(pgsql.SQL("CREATE TEMP TABLE {} ({})").format(ident, cols))
            with self._errors(copy), self.conn.cursor() as cur, cur.copy(copy) as cp:
                for chunk in self._codec.csv_batches(table):
                    cp.write(chunk)
            if table.num_rows >= 10_000:  # autovacuum never analyzes TEMP tables
                self.execute(pgsql.SQL("ANALYZE {}").format(ident))

    def unstage(self, name: str) -> None:
        # pg_temp.: never touch a feature table of the same name; ignore an aborted transaction.
        with self.lock, contextlib.suppress(psycopg.Error):
            self.conn.execute(pgsql.SQL("DROP TABLE IF EXISTS pg_temp.{}").format(
                pgsql.Identifier(name)))

    # -- catalog ----------------------------------------------------------------------------
    def _rows(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with self.lock, self._errors(sql):
            return self.conn.execute(sql, params).fetchall()

    def tables(self) -> set[str]:
        return {str(r[0]) for r in self._rows(_TABLES, self.schema)}

    def columns(self, relation: str) -> dict[str, str]:
        # to_regclass resolves like the statements do: TEMP (staged) first, then the schema.
        return {str(r[0]): str(r[1]) for r in self._rows(_COLUMNS, quote(relation))}

    def create_table(self, table: str, select: exp.Select, id_columns: list[str]) -> None:
        if table in self.tables():
            return
        ddl = exp.Create(kind="TABLE", this=table_ref(table), exists=True,
                         expression=select.limit(0))
        self.execute(self.dialect.render(ddl))
        # Latest state = rows not superseded: a partial index on the ids of those rows serves
        # the supersede UPDATE of each write and the anti/full joins of resolve.
        self.execute(pgsql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} ({}) WHERE NOT {}").format(
            pgsql.Identifier(_index_name(table)), pgsql.Identifier(table),
            pgsql.SQL(", ").join(pgsql.Identifier(c) for c in id_columns),
            pgsql.Identifier(names.SUPERSEDED)))
        for index in self.dialect.write_seq_index(table_ref(table)):
            self.execute(self.dialect.render(index))

    # -- transactions -----------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock, self.conn.transaction():
            yield

    def close(self) -> None:
        with contextlib.suppress(psycopg.Error):
            self.conn.close()
        self._codec.close()


_TABLES = ("SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
           "WHERE n.nspname = %s AND c.relkind IN ('r', 'p')")
_COLUMNS = ("SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute AS a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum")


def _index_name(table: str) -> str:
    name = f"{table}__latest"
    if len(name.encode()) > 63:  # Postgres would truncate it: keep it unique instead
        digest = hashlib.sha256(table.encode()).hexdigest()[:12]
        name = f"{table.encode()[:40].decode(errors='ignore')}__{digest}__latest"
    return name


def _text_csv(columns: list[str]) -> pacsv.ConvertOptions:
    # Unquoted empty = NULL, "" = empty string: the COPY csv convention.
    return pacsv.ConvertOptions(column_types={n: pa.string() for n in columns},
                                strings_can_be_null=True, quoted_strings_can_be_null=False)


class _CopyReader(io.RawIOBase):
    """A readable file over psycopg's COPY TO chunks, so pyarrow.csv can stream from it."""

    def __init__(self, chunks: Iterator[bytes | bytearray | memoryview]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        return True

    def at_end(self) -> bool:
        return not self._fill()

    def _fill(self) -> bool:
        while not self._buf:
            try:
                self._buf = bytes(next(self._chunks))
            except StopIteration:
                return False
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        # COPY TO yields one row per chunk: fill the caller's buffer with as many as fit.
        filled = 0
        while filled < len(b) and self._fill():
            n = min(len(b) - filled, len(self._buf))
            b[filled:filled + n] = self._buf[:n]
            self._buf = self._buf[n:]
            filled += n
        return filled
