"""Postgres executor (ADBC's Postgres driver): Arrow in and out over COPY BINARY.

URL: ``postgresql://user:password@host:port/database[?schema=name&<libpq options>]`` (also
``postgres://``). ``schema`` (default: the role's current schema, usually ``public``) holds the
feature tables; it is created when missing. Staged relations are session-local TEMP views over
TEMP tables that ADBC ingests (the view gives nested columns their ``jsonb`` type).

Index (created with each feature table): one partial b-tree on ``(<id columns>) WHERE NOT
metaxy_superseded``: the live rows of :func:`metaxy_sql.compile.builder.latest_rows`, which the
supersede step of each write and the joins of resolve look up by id.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import adbc_driver_manager
import adbc_driver_postgresql.dbapi as adbc
import pyarrow as pa
from sqlglot import exp

from metaxy_sql.compile.builder import table_ref
from metaxy_sql.compile.dialects.base import Dialect
from metaxy_sql.compile.dialects.postgres import PostgresDialect, staged_raw
from metaxy_sql.engine.executors.base import ViewRead, mask_url
from metaxy_sql.engine.executors.postgres_arrow import ArrowCodec, quote
from metaxy_sql.errors import ConfigError, ExecutionError, StoreConnectionError
from metaxy_sql.model import names

_cursor_ids = itertools.count()
#: Seconds to wait for a server before giving up (unless the URL sets connect_timeout).
CONNECT_TIMEOUT = 10


#: The connection parameters libpq (18) takes in a URL's query string ("Parameter Key Words" of
#: the PostgreSQL manual); a store URL takes these and ``schema``.
LIBPQ_PARAMS = frozenset((
    "service", "user", "password", "passfile", "channel_binding", "connect_timeout", "dbname",
    "host", "hostaddr", "port", "client_encoding", "options", "application_name",
    "fallback_application_name", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "sslmode", "sslnegotiation", "sslcompression",
    "sslcert", "sslkey", "sslcertmode", "sslpassword", "sslrootcert", "sslcrl", "sslcrldir",
    "sslsni", "requirepeer", "require_auth", "min_protocol_version", "max_protocol_version",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "gssencmode", "krbsrvname",
    "gsslib", "gssdelegation", "replication", "target_session_attrs", "load_balance_hosts",
    "scram_client_key", "scram_server_key", "oauth_issuer", "oauth_client_id",
    "oauth_client_secret", "oauth_scope", "sslkeylogfile",
))


def _split_url(url: str) -> tuple[str, str | None]:
    """(libpq connection URL, schema) from a store URL."""
    parts = urlsplit(url)
    if not parts.hostname and not parts.path.strip("/"):
        raise ConfigError(f"store URL {mask_url(url)!r}: use "
                          "postgresql://user:password@host:port/database[?schema=name]")
    query = parse_qsl(parts.query, keep_blank_values=True)
    unknown = sorted({k for k, _ in query} - LIBPQ_PARAMS - {"schema"})
    if unknown:
        raise ConfigError(
            f"store URL {mask_url(url)!r}: unknown parameters {unknown}; supported: "
            "['schema'] and libpq's connection parameters (e.g. sslmode, connect_timeout, "
            "application_name; see the PostgreSQL manual, 'Parameter Key Words')")
    schema = next((v for k, v in query if k == "schema"), None)
    if schema is not None and not 0 < len(schema.encode()) <= 63:
        raise ConfigError(f"store URL {mask_url(url)!r}: schema must be 1 to 63 bytes long")
    rest = [(k, v) for k, v in query if k != "schema"]
    if not any(k == "connect_timeout" for k, _ in rest):
        rest.append(("connect_timeout", str(CONNECT_TIMEOUT)))
    rest.append(("client_encoding", "UTF8"))
    return urlunsplit(parts._replace(query=urlencode(rest))), schema


def _connection_problem(e: Exception, url: str) -> str:
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
        return (f"no Postgres server answers at {where}; start the server, or fix the host "
                "and port in the store URL")
    return _first_line(e)


def _first_line(e: Exception) -> str:
    """The server's message without the driver's prefixes (``NOT_FOUND: [libpq] ...``)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if not lines:
        return type(e).__name__
    line = lines[0]
    for marker in ("ERROR:", "FATAL:"):
        if marker in line:
            return line.split(marker, 1)[1].strip()
    return line


class PostgresExecutor:
    engine = "postgres"

    def __init__(self, conninfo: str, schema: str | None, url: str, *,
                 create: bool = True) -> None:
        self.dialect: Dialect = PostgresDialect()
        self.url = url
        try:
            self.conn = adbc.connect(conninfo, autocommit=True)
        except adbc_driver_manager.Error as e:
            raise StoreConnectionError(
                f"cannot connect to {url}: {_connection_problem(e, conninfo)}") from None
        # One connection serves the store; the lock lets a background writer share it.
        self.lock = threading.RLock()
        self._codec = ArrowCodec()
        self._depth = 0
        self._conninfo = conninfo
        self._psycopg: Any = None
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
        encoding = self._scalar("SELECT current_setting('server_encoding')")
        if encoding != "UTF8":
            # octet_length() and md5() see the database encoding's bytes, the oracle UTF-8's.
            raise StoreConnectionError(
                f"{self.url}: database encoding is {encoding}; metaxy-sql needs a UTF8 database "
                "(CREATE DATABASE ... ENCODING 'UTF8' TEMPLATE template0)")
        self.execute("SET TIME ZONE 'UTC'")  # metaxy_created_at is naive UTC
        for name, value in self.dialect.session_settings.items():
            self.execute(self._render(exp.Set(expressions=[exp.SetItem(this=exp.EQ(
                this=exp.var(name), expression=exp.var(value)))])))
        if schema is None:
            return str(self._scalar("SELECT current_schema()"))
        if not self._scalar("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema):
            if not create:
                raise StoreConnectionError(
                    f"store {self.url}: schema {schema!r} does not exist; nothing was created "
                    "(only writing commands create a store); check ?schema=")
            self.execute(self._render(exp.Create(
                kind="SCHEMA", this=exp.Table(db=exp.to_identifier(schema, quoted=True)),
                exists=True)))
        self.execute(self._render(exp.Set(expressions=[exp.SetItem(this=exp.EQ(
            this=exp.var("search_path"), expression=exp.to_identifier(schema, quoted=True)))])))
        return schema

    def _render(self, expression: exp.Expr) -> str:
        return self.dialect.render(expression, pretty=False)

    # -- statements -------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, sql: str) -> Iterator[None]:
        try:
            yield
        except adbc_driver_manager.Error as e:
            raise ExecutionError(_first_line(e), sql=sql, engine=self.engine) from e

    def _run(self, sql: str, params: Sequence[object] = ()) -> pa.Table | None:
        with self.lock, self._errors(sql), self.conn.cursor() as cur:
            cur.execute(sql, tuple(params) or None)
            if not cur.description:
                return None
            return cur.fetch_arrow_table()

    def execute(self, sql: str, *params: object) -> None:
        self._run(sql, params)

    def returning(self, sql: str) -> object:
        return self._scalar(sql)

    def _scalar(self, sql: str, *params: object) -> object:
        result = self._run(sql, params)
        return result.column(0)[0].as_py() if result is not None and result.num_rows else None

    def fetch(self, sql: str) -> pa.Table:
        result = self._run(sql)
        if result is None:
            raise ExecutionError("the statement returns no rows", sql=sql, engine=self.engine)
        return self._codec.from_postgres(result)

    def batches(self, sql: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        # The result is kept in a TEMP table and read in block ranges (TID range scans), so
        # writes (and their commits) on this connection may interleave with the stream, as the
        # BufferedMetadataWriter does; ADBC's own stream holds the connection until it ends.
        name = f"metaxy_cursor_{next(_cursor_ids)}"
        # ``sql`` is already rendered for Postgres: wrapped as is, never parsed again.
        self.execute(f"CREATE TEMP TABLE {quote(name)} AS {sql}")
        try:
            pages = int(str(self._scalar(
                "SELECT pg_relation_size($1::regclass) / current_setting('block_size')::bigint",
                quote(name))))
            step = 64
            pending: list[pa.RecordBatch] = []
            rows = 0
            for first in range(0, pages + 1, step):
                part = self.fetch(self._render(_block_range(name, first, first + step)))
                for batch in part.to_batches():
                    pending.append(batch)
                    rows += batch.num_rows
                while rows >= batch_size:
                    table = pa.Table.from_batches(pending)
                    yield from table.slice(0, batch_size).combine_chunks().to_batches()
                    rest = table.slice(batch_size)
                    pending, rows = rest.to_batches(), rest.num_rows
            if rows:
                yield from pa.Table.from_batches(pending).combine_chunks().to_batches()
        finally:
            self._drop_temp(name, "TABLE")

    # -- staging ----------------------------------------------------------------------------
    def stage(self, name: str, table: pa.Table) -> None:
        staging = self._codec.to_postgres(table)
        raw = _raw(name)
        with self.lock:
            self.unstage(name)
            with self._errors(f"COPY {quote(raw)} FROM STDIN (FORMAT binary)"), \
                    self.conn.cursor() as cur:
                cur.adbc_ingest(raw, staging.table, mode="create", temporary=True)
            columns = [exp.alias_(exp.cast(exp.column(c, quoted=True), staging.casts[c],
                                           dialect="postgres"), c, quoted=True)
                       if c in staging.casts else exp.column(c, quoted=True)
                       for c in table.column_names]
            view = exp.Create(kind="VIEW", this=exp.to_table(quote(name), dialect="postgres"),
                              properties=exp.Properties(expressions=[exp.TemporaryProperty()]),
                              expression=exp.select(*columns).from_(
                                  exp.to_table(quote(raw), dialect="postgres")))
            self.execute(self._render(view))
            if table.num_rows >= 10_000:  # autovacuum never analyzes TEMP tables
                self.execute(self._render(exp.Command(this="ANALYZE", expression=quote(raw))))

    def unstage(self, name: str) -> None:
        # pg_temp.: never touch a feature table of the same name.
        with self.lock:
            self._drop_temp(name, "VIEW")
            self._drop_temp(_raw(name), "TABLE")

    def _drop_temp(self, name: str, kind: str) -> None:
        drop = exp.Drop(kind=kind, exists=True,
                        tables=[exp.Table(this=exp.to_identifier(name, quoted=True),
                                          db=exp.to_identifier("pg_temp"))])
        # ignore an aborted transaction (the rollback drops it anyway)
        with self.lock, contextlib.suppress(ExecutionError):
            self.execute(self._render(drop))

    # -- catalog ----------------------------------------------------------------------------
    def _rows(self, sql: str, *params: object) -> list[dict[str, Any]]:
        result = self._run(sql, params)
        return [] if result is None else result.to_pylist()

    def tables(self) -> set[str]:
        return {str(r["relname"]) for r in self._rows(_TABLES, self.schema)}

    def view_reads(self) -> list[ViewRead]:
        return [ViewRead(str(r["view_schema"]), str(r["view_name"]), str(r["table_schema"]),
                         str(r["table_name"])) for r in self._rows(_VIEW_READS)]

    def columns(self, relation: str) -> dict[str, str]:
        # to_regclass resolves like the statements do: TEMP (staged) first, then the schema.
        return {str(r["attname"]): str(r["type"]) for r in self._rows(_COLUMNS, quote(relation))}

    def create_table(self, table: str, select: exp.Select, id_columns: list[str]) -> None:
        if table in self.tables():
            return
        ddl = exp.Create(kind="TABLE", this=table_ref(table), exists=True,
                         expression=select.limit(0))
        self.execute(self.dialect.render(ddl))
        # Latest state = rows not superseded: a partial index on the ids of those rows serves
        # the supersede UPDATE of each write and the anti/full joins of resolve.
        index = exp.Create(
            kind="INDEX", exists=True,
            this=exp.Index(this=exp.to_identifier(_index_name(table), quoted=True),
                           table=table_ref(table),
                           params=exp.IndexParameters(
                               columns=[exp.column(c, quoted=True) for c in id_columns],
                               where=exp.Where(this=exp.not_(
                                   exp.column(names.SUPERSEDED, quoted=True))))))
        self.execute(self._render(index))
        for write_seq_index in self.dialect.write_seq_index(table_ref(table)):
            self.execute(self._render(write_seq_index))

    # -- transactions -----------------------------------------------------------------------
    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            if self._depth:  # nested: part of the enclosing transaction
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.execute("BEGIN")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                with contextlib.suppress(ExecutionError):
                    self.execute("ROLLBACK")
                raise
            self._depth = 0
            self.execute("COMMIT")

    def psycopg_connection(self) -> Any:
        """A psycopg connection to the same database and schema (opened once), for ibis's
        Postgres backend, which speaks psycopg only. It does not see this connection's TEMP
        (staged) relations or uncommitted writes."""
        if self._psycopg is None:
            import psycopg

            conn = psycopg.connect(self._conninfo, autocommit=True)
            conn.execute(self._render(exp.Set(expressions=[exp.SetItem(this=exp.EQ(
                this=exp.var("search_path"),
                expression=exp.to_identifier(self.schema, quoted=True)))])))
            conn.execute("SET TIME ZONE 'UTC'")
            self._psycopg = conn
        return self._psycopg

    def close(self) -> None:
        if self._psycopg is not None:
            with contextlib.suppress(Exception):
                self._psycopg.close()
        with contextlib.suppress(adbc_driver_manager.Error):
            self.conn.close()
        self._codec.close()


_TABLES = ("SELECT c.relname FROM pg_class AS c JOIN pg_namespace AS n ON n.oid = c.relnamespace "
           "WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')")
# Postgres records what each view reads (its rules' dependencies), schema by schema; listed
# here for tables (and views) the current role owns, which the store's tables are.
_VIEW_READS = ("SELECT view_schema, view_name, table_schema, table_name "
               "FROM information_schema.view_table_usage WHERE view_catalog = current_database()")
_COLUMNS = ("SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type "
            "FROM pg_attribute AS a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 "
            "AND NOT a.attisdropped ORDER BY a.attnum")


def _index_name(table: str) -> str:
    name = f"{table}__latest"
    if len(name.encode()) > 63:  # Postgres would truncate it: keep it unique instead
        digest = hashlib.sha256(table.encode()).hexdigest()[:12]
        name = f"{table.encode()[:40].decode(errors='ignore')}__{digest}__latest"
    return name


def _raw(name: str) -> str:
    """The TEMP table ADBC ingests for staged relation ``name`` (a view over it)."""
    return staged_raw(name)


def _block_range(table: str, first: int, end: int) -> exp.Select:
    """Rows of ``table`` in heap blocks [first, end): a TID range scan."""
    ctid = exp.column("ctid")

    def tid(block: int) -> exp.Expr:
        return exp.cast(exp.Literal.string(f"({block},0)"), exp.DataType.build("tid",
                                                                                udt=True))

    return exp.select(exp.Star()).from_(table_ref(table)).where(
        exp.and_(exp.GTE(this=ctid, expression=tid(first)), exp.LT(this=ctid,
                                                                     expression=tid(end))))
