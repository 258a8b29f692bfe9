"""DuckDB executor: an embedded database file (or memory), Arrow zero-copy both ways."""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from metaxy_sql.compile.builder import table_ref
from metaxy_sql.compile.dialects.base import Dialect
from metaxy_sql.compile.dialects.duckdb import DuckDBDialect
from metaxy_sql.engine.executors.base import UNPARSED, ViewRead, parsed_reads, view_body
from metaxy_sql.errors import (
    ConfigError,
    ExecutionError,
    StoreConnectionError,
    WriteConflictError,
)


class DuckDBExecutor:
    engine = "duckdb"

    def __init__(self, path: str) -> None:
        self.dialect: Dialect = DuckDBDialect()
        self.url = "duckdb://:memory:" if path == ":memory:" else f"duckdb:///{path}"
        if path != ":memory:":
            parent = Path(path).parent
            if not parent.exists():
                raise StoreConnectionError(
                    f"cannot open {self.url}: directory {parent} does not exist; create it first")
        try:
            self.con = duckdb.connect(path)
            # DuckDB draws its own progress bar on stdout for long statements, which would
            # corrupt what a caller prints there (``metaxy-sql ... --format json``).
            self.con.execute("SET enable_progress_bar = false")
        except duckdb.Error as e:
            raise StoreConnectionError(f"cannot open {self.url}: {_open_problem(e)}") from None
        if path != ":memory:":
            self._check_file_backed(path)
        # One connection serves the store; the lock lets a background writer share it.
        self.lock = threading.RLock()
        self._staged: dict[str, pa.Table] = {}

    def _check_file_backed(self, path: str) -> None:
        """Refuse a path DuckDB did not open as a database file of its own.

        DuckDB (since 1.3, duckdb/duckdb#17415) opens an existing data file it can read, by
        its extension (``.parquet``, ``.csv``, ``.tsv``, ``.json``, ``.jsonl``, compressed or
        not), as an *in-memory* database with views over the file: every write would vanish
        at close. Such a database has no path in ``duckdb_databases()``.
        """
        # fetchall: a result left unfinished would block the connection's next statements.
        rows = self.con.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()"
        ).fetchall()
        if not rows or rows[0][0] is None:
            self.con.close()
            raise ConfigError(
                f"store {self.url}: {Path(path).absolute()} exists, but it is not a valid "
                "DuckDB database file (DuckDB would open this data file as a read-only view "
                "in memory, and every write would be lost); point the store URL at a DuckDB "
                "file, e.g. duckdb:///meta.db, and load the data file with "
                "`metaxy-sql write FEATURE FILE`")

    def _error(self, e: duckdb.Error, sql: str) -> ExecutionError:
        # Optimistic concurrency: a transaction touching a row (or catalog entry) another
        # one changed and committed meanwhile fails; the store retries the write.
        kind = WriteConflictError if isinstance(e, duckdb.TransactionException) else ExecutionError
        return kind(str(e).splitlines()[0], sql=sql, engine=self.engine)

    @contextlib.contextmanager
    def _errors(self, sql: str) -> Iterator[None]:
        """DuckDB's errors as ours. A query interrupted by Ctrl-C (DuckDB handles SIGINT
        itself while a query runs, and raises ``InterruptException``, or a plain
        ``RuntimeError('Query interrupted')`` from a result's fetch) is a KeyboardInterrupt, as
        on the other engines, not an engine error."""
        try:
            yield
        except (duckdb.Error, RuntimeError) as e:
            if isinstance(e, duckdb.InterruptException) or "Query interrupted" in str(e):
                raise KeyboardInterrupt("query interrupted") from e
            if isinstance(e, duckdb.Error):
                raise self._error(e, sql) from e
            raise

    def _run(self, sql: str) -> duckdb.DuckDBPyConnection:
        with self._errors(sql), self.lock:
            return self.con.execute(sql)

    def execute(self, sql: str) -> None:
        self._run(sql)

    def returning(self, sql: str) -> object:
        with self.lock:
            row = self._run(sql).fetchone()
        return row[0] if row else None

    def fetch(self, sql: str) -> pa.Table:
        with self._errors(sql), self.lock:
            return self.con.sql(sql).to_arrow_table()

    def batches(self, sql: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        # A cursor (its own connection to the same database) keeps the stream alive while
        # the store writes on the main connection; staged relations are registered on it too.
        with self.lock:
            cursor = self.con.cursor()
            for name, table in self._staged.items():
                cursor.register(name, table)
        try:
            with self._errors(sql):
                reader = cursor.sql(sql).to_arrow_reader(batch_size)
        except BaseException:
            cursor.close()
            raise
        try:
            with self._errors(sql):
                yield from reader
        finally:
            cursor.close()

    def stage(self, name: str, table: pa.Table) -> None:
        with self.lock:
            self.con.register(name, table)
            self._staged[name] = table

    def unstage(self, name: str) -> None:
        with self.lock, contextlib.suppress(duckdb.Error):
            self._staged.pop(name, None)
            self.con.unregister(name)

    def tables(self) -> set[str]:
        with self.lock:  # fetching uses the connection too: another thread must wait
            rows = self._run(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
            ).fetchall()
        return {r[0] for r in rows}

    def columns(self, relation: str) -> dict[str, str]:
        describe = exp.Describe(this=exp.select("*").from_(table_ref(relation)))
        with self.lock:
            rows = self._run(self.dialect.render(describe, pretty=False)).fetchall()
        return {r[0]: r[1] for r in rows}

    def view_reads(self) -> list[ViewRead]:
        # duckdb_views() keeps each view's CREATE text, not what it depends on: parse it.
        with self.lock:
            rows = self._run(
                "SELECT schema_name, view_name, sql FROM duckdb_views() "
                "WHERE NOT internal AND database_name = current_database()").fetchall()
        out: list[ViewRead] = []
        for schema, view, sql in rows:
            reads = parsed_reads(schema, view, sql, self.dialect.sqlglot_dialect)
            if reads and reads[0].relation == UNPARSED:
                reads = self._native_reads(schema, view, sql)
            out += reads
        return out

    def _native_reads(self, schema: str, view: str, sql: str) -> list[ViewRead]:
        # sqlglot cannot parse all of DuckDB's own view text (DuckDB prints lambdas as
        # `lambda x: ...`, as in every increment view): DuckDB's parser reads the SELECT
        # (json_serialize_sql takes SELECT statements only).
        unparsed = [ViewRead(schema, view, None, UNPARSED)]
        body = view_body(sql, self.dialect.sqlglot_dialect)
        if body is None:
            return unparsed
        query = exp.select(exp.Anonymous(this="json_serialize_sql", expressions=[
            exp.Literal.string(body)]))
        with self.lock:
            row = self._run(self.dialect.render(query, pretty=False)).fetchone()
        tree = json.loads(row[0]) if row else {"error": True}
        if tree.get("error"):
            return unparsed
        ctes: set[str] = set()
        found: set[tuple[str, str]] = set()
        for node in _json_nodes(tree):
            ctes.update(str(e["key"]) for e in node.get("cte_map", {}).get("map", []))
            if node.get("type") == "BASE_TABLE":
                found.add((str(node.get("schema_name") or ""), str(node["table_name"])))
        return [ViewRead(schema, view, s or None, t) for s, t in sorted(found)
                if s or t not in ctes]

    def create_table(self, table: str, select: exp.Select, id_columns: list[str]) -> None:
        ddl = exp.Create(
            kind="TABLE", this=table_ref(table), exists=True,
            expression=select.limit(0))
        self.execute(self.dialect.render(ddl))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            self._run("BEGIN TRANSACTION")
            try:
                yield
            except BaseException:
                self._run("ROLLBACK")
                raise
            try:
                self._run("COMMIT")
            except ExecutionError:
                # A conflict found at commit: make sure the transaction is gone before a retry.
                with contextlib.suppress(duckdb.Error):
                    self.con.execute("ROLLBACK")
                raise

    def close(self) -> None:
        self.con.close()


def _open_problem(e: duckdb.Error) -> str:
    """One line saying why a database file cannot be opened, and what to do."""
    text = str(e)
    if "Could not set lock on file" in text:
        pid = re.search(r"\(PID (\d+)\)", text)
        who = f"another process (PID {pid.group(1)})" if pid else "another process"
        return (f"{who} holds this DuckDB file; a DuckDB file is one process's at a time: "
                "close that process (or its store) first, or use another file")
    return next((ln.strip() for ln in text.splitlines() if ln.strip()), type(e).__name__)


def _json_nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every object of a ``json_serialize_sql`` tree, depth first."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
