"""ClickHouse executor: a server over HTTP(S), or chdb in-process, both via clickhouse-connect.

Store URLs::

    clickhouse://user:password@host:8123/database     (HTTP; https with clickhouses://)
    chdb:///absolute/data/path?database=name           (embedded engine, on disk)
    chdb://memory?database=name                        (embedded engine, in memory)

Rows go in as Arrow into session-scoped temporary tables and come out as Arrow; every other
step runs server-side.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import pyarrow as pa
from sqlglot import exp

from metaxy_sql.compile.builder import table_ref
from metaxy_sql.compile.dialects.base import Dialect
from metaxy_sql.compile.dialects.clickhouse import ClickHouseDialect
from metaxy_sql.engine.executors.base import ViewRead, parsed_reads
from metaxy_sql.engine.executors.clickhouse_arrow import naive_write_time, prepare
from metaxy_sql.errors import ConfigError, ExecutionError, StoreConnectionError

try:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import ClickHouseError
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ConfigError(
        "ClickHouse stores need the clickhouse extra: pip install 'metaxy-sql[clickhouse]'"
    ) from e

_URL_PARAMS = ("database",)


@dataclass(frozen=True)
class Target:
    """Where a store URL points: client arguments, database and the URL with password masked."""

    client_args: dict[str, Any]
    database: str
    masked_url: str
    embedded: bool
    secret: str = field(default="", repr=False)


def parse_url(url: str) -> Target:
    """Split a ``clickhouse://``, ``clickhouses://`` or ``chdb://`` store URL."""
    parts = urlsplit(url)
    params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = sorted(set(params) - set(_URL_PARAMS))
    if unknown:
        raise ConfigError(f"store URL {_mask(url, parts.password)!r}: unknown parameters "
                          f"{unknown}; supported: {list(_URL_PARAMS)}")
    if parts.scheme == "chdb":
        return _chdb_target(url, parts.netloc, parts.path, params)
    if not parts.hostname:
        raise ConfigError(f"store URL {_mask(url, parts.password)!r}: name a host, e.g. "
                          "clickhouse://user:password@localhost:8123/database")
    secure = parts.scheme == "clickhouses"
    try:
        port = parts.port or (8443 if secure else 8123)
    except ValueError:
        raise ConfigError(f"store URL {_mask(url, parts.password)!r}: bad port") from None
    password = unquote(parts.password or "")
    database = params.get("database") or unquote(parts.path.strip("/")) or "default"
    args = {"host": parts.hostname, "port": port, "username": unquote(parts.username or "default"),
            "password": password, "secure": secure, "interface": "https" if secure else "http"}
    return Target(args, database, _mask(url, parts.password), embedded=False, secret=password)


def _chdb_target(url: str, netloc: str, path: str, params: dict[str, str]) -> Target:
    if netloc in ("memory", ":memory:") or (not netloc and path in ("", "/")):
        database = params.get("database") or unquote(path.strip("/")) or "default"
        return Target({"dsn": "chdb://memory"}, database, url, embedded=True)
    if netloc or not path.startswith("/"):
        raise ConfigError(f"store URL {url!r}: use chdb:///absolute/path (three slashes) or "
                          "chdb://memory, with ?database=name to pick a database")
    return Target({"dsn": f"chdb://{quote(path)}"}, params.get("database") or "default", url,
                  embedded=True)


class _DriverNoise(logging.Filter):
    """Drops clickhouse-connect's warning that precedes the exception it raises for a failed
    HTTP request: the exception becomes our one-line error (StoreConnectionError or
    ExecutionError), so the warning would only repeat it, with a traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg != "Unexpected Http Driver Exception"


logging.getLogger("clickhouse_connect.driver._backend.http_sync").addFilter(_DriverNoise())


@contextlib.contextmanager
def _native_stderr(capture: bool) -> Iterator[list[str]]:
    """Capture what native code writes to file descriptor 2 in the block: the yielded list
    holds it once the block ends (empty when ``capture`` is false or fd 2 cannot be moved).

    chdb's engine prints the real cause of a failed start there (``Cannot lock file
    <path>/status. Another server instance in same directory is already running``) and
    raises a vaguer error (``Error initializing EmbeddedServer``).
    """
    said: list[str] = []
    try:
        if capture:
            sys.stderr.flush()
        saved = os.dup(2) if capture else -1
    except (OSError, ValueError):  # no file descriptor 2 (e.g. an embedded interpreter)
        saved = -1
    if saved < 0:
        yield said
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            said.append(sink.read().decode("utf-8", errors="replace"))


def _held_path(said: str, path: str) -> str | None:
    """The message for a chdb data path another process holds (``None`` for other errors)."""
    if "Cannot lock file" not in said:
        return None
    holder = _lock_holder(Path(path) / "status")
    who = f"another process (PID {holder})" if holder else "another process"
    return (f"{who} holds this chdb data path ({path}/status is locked); a chdb data path is "
            "one process's at a time: close that process (or its store) first, or give this "
            "one another path")


def _lock_holder(locked: Path) -> int | None:
    """The process holding a lock on ``locked`` (Linux ``/proc/locks``), when it can be read."""
    try:
        st = locked.stat()
        # "1: FLOCK  ADVISORY  WRITE 5608 fe:00:5799949 0 EOF": pid, device (hex) and inode
        wanted = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
        for line in Path("/proc/locks").read_text().splitlines():
            fields = [f for f in line.split() if f != "->"]  # "->": a waiter, same layout
            where = fields[5].split(":") if len(fields) > 5 else []
            if len(where) == 3 and (int(where[0], 16), int(where[1], 16),
                                    int(where[2])) == wanted:
                return int(fields[4])
    except (OSError, ValueError):
        return None
    return None


def _transport_problem(e: ClickHouseError, target: Target) -> str | None:
    """One line for a server that cannot be reached over HTTP (``None`` for other errors)."""
    if target.embedded:
        return None
    text = " ".join(str(x) for x in (e, e.__cause__, e.__context__) if x is not None)
    where = f"{target.client_args['host']}:{target.client_args['port']}"
    if "Connection refused" in text:
        return (f"no ClickHouse server answers at {where} (connection refused); start the "
                "server, or fix the host and port in the store URL")
    if any(m in text for m in ("Name or service not known", "Failed to resolve",
                               "Temporary failure in name resolution", "nodename nor servname")):
        return (f"the host {target.client_args['host']!r} is not found; fix the host in the "
                "store URL")
    if "timed out" in text or "Timeout" in text:
        return (f"no answer from {where} in time; check the server is up and reachable from "
                "here (firewall, VPN)")
    if any(m in text for m in ("RemoteDisconnected", "Connection aborted", "BadStatusLine",
                               "Connection reset")):
        return (f"{where} closed the connection without an HTTP answer; is it ClickHouse's "
                "HTTP port (8123, or 8443 for clickhouses://)? fix the port in the store URL")
    return None


def _mask(url: str, password: str | None) -> str:
    return url.replace(f":{password}@", ":***@", 1) if password else url


def _reason(e: BaseException, secret: str = "") -> str:
    """The engine's message without the driver's preamble (and never the password)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    line = next((ln for ln in lines if "Code:" in ln), lines[0] if lines else repr(e))
    if "Code:" in line:  # "HTTP driver received HTTP status 401, server response: Code: ..."
        line = line[line.index("Code:"):]
    line = line.split(" Stack trace", 1)[0]
    if not secret:
        return line
    # Whole occurrences only: a short password must not mangle words that contain it.
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", "***", line)


class ClickHouseExecutor:
    engine = "clickhouse"

    def __init__(self, client: Any, target: Target) -> None:
        self.ch_dialect = ClickHouseDialect()
        self.dialect: Dialect = self.ch_dialect
        self.client = client
        self.url = target.masked_url
        self.target = target
        self.database = target.database
        self.embedded = target.embedded  # chdb in-process (no ibis backend, one process)
        # One client (one session: its temporary tables) serves the store; the lock lets a
        # background writer share it.
        self.lock = threading.RLock()

    @classmethod
    def from_url(cls, url: str, *, create: bool = True) -> ClickHouseExecutor:
        """Connect to the store at ``url``; chdb data paths and databases are created when
        missing, unless ``create`` is false (then a missing one is a StoreConnectionError)."""
        target = parse_url(url)
        path = target.client_args.get("dsn", "").removeprefix("chdb://")
        if not create and target.embedded and path != "memory" and not Path(unquote(path)).is_dir():
            raise StoreConnectionError(
                f"store {target.masked_url}: data path {unquote(path)} does not exist; nothing "
                "was created (only writing commands create a store); check the path")
        settings = dict(ClickHouseDialect.session_settings)
        on_disk = target.embedded and path != "memory"
        with _native_stderr(on_disk) as captured:
            try:
                client = clickhouse_connect.get_client(**target.client_args, settings=settings)
            except ClickHouseError as e:
                error: ClickHouseError | None = e
            else:
                error = None
        said = "".join(captured)
        if error is not None:
            held = _held_path(said, unquote(path)) if on_disk else None
            if held is not None:
                raise StoreConnectionError(f"cannot open {target.masked_url}: {held}") from None
            problem = (_transport_problem(error, target)
                       or _reason(error, target.secret) + _hint(target, error))
            raise StoreConnectionError(
                f"cannot connect to {target.masked_url}: {problem}") from None
        if said:  # chdb's own output of a successful start: not ours to hide
            sys.stderr.write(said)
        try:
            check_version(client.query("SELECT version()").result_rows[0][0], target.masked_url)
            _use_database(client, target, create)
        except ClickHouseError as e:
            client.close()
            raise StoreConnectionError(
                f"cannot open {target.masked_url}: {_reason(e, target.secret)}") from None
        except BaseException:
            client.close()
            raise
        return cls(client, target)

    # -- statements -------------------------------------------------------------------------
    def _error(self, e: ClickHouseError, sql: str) -> ExecutionError | StoreConnectionError:
        # A server gone away mid-session is the operator's to fix, not the statement's.
        problem = _transport_problem(e, self.target)
        if problem is not None:
            return StoreConnectionError(f"lost {self.url}: {problem}")
        return ExecutionError(_reason(e, self.target.secret), sql=sql, engine=self.engine)

    def execute(self, sql: str) -> None:
        try:
            with self.lock:
                self.client.command(sql)
        except ClickHouseError as e:
            raise self._error(e, sql) from e

    def fetch(self, sql: str) -> pa.Table:
        try:
            with self.lock:
                return naive_write_time(self.client.query_arrow(sql, use_strings=True))
        except ClickHouseError as e:
            raise self._error(e, sql) from e

    def returning(self, sql: str) -> object:
        # No RETURNING in ClickHouse: only SELECTs return values.
        return self.fetch(sql).column(0)[0].as_py()

    def batches(self, sql: str, batch_size: int) -> Iterator[pa.RecordBatch]:
        settings = {"max_block_size": batch_size}
        with self.lock:
            try:
                stream = self.client.query_arrow_stream(sql, settings=settings, use_strings=True)
                with stream:
                    for block in stream:
                        table = naive_write_time(pa.Table.from_batches([block]))
                        yield from table.to_batches(batch_size)
            except ClickHouseError as e:
                raise self._error(e, sql) from e

    # -- staged relations -------------------------------------------------------------------
    def stage(self, name: str, table: pa.Table) -> None:
        table, columns = prepare(table)
        ddl = self.dialect.render(self.ch_dialect.temporary_table_ddl(table_ref(name), columns))
        with self.lock:
            self.unstage(name)
            self.execute(ddl)
            if table.num_rows:
                # The client splits an unquoted name at '.' (database.table): pass it quoted.
                quoted = self.dialect.quote(name)
                try:
                    self.client.insert_arrow(quoted, table)
                except ClickHouseError as e:
                    raise self._error(e, f"INSERT INTO {quoted} FORMAT Arrow") from e

    def unstage(self, name: str) -> None:
        drop = exp.Drop(tables=[table_ref(name)], kind="TABLE", exists=True, temporary=True)
        self.execute(self.dialect.render(drop))

    # -- catalog ----------------------------------------------------------------------------
    def tables(self) -> set[str]:
        rows = self.fetch(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND NOT is_temporary AND engine NOT LIKE '%View'")
        return set(rows.column("name").to_pylist())

    def view_reads(self) -> list[ViewRead]:
        # system.tables keeps a view's SELECT (``as_select``, names qualified at creation);
        # its dependencies_* columns stay empty for plain views: parse the SELECT.
        rows = self.fetch("SELECT database, name, as_select FROM system.tables "
                          "WHERE engine = 'View' AND NOT is_temporary").to_pylist()
        return [r for row in rows for r in parsed_reads(
            str(row["database"]), str(row["name"]), str(row["as_select"]),
            self.dialect.sqlglot_dialect)]

    def columns(self, relation: str) -> dict[str, str]:
        sql = ("SELECT name, type FROM system.columns WHERE database IN (currentDatabase(), '') "
               "AND table = {relation:String} ORDER BY database = '' DESC, position")
        try:
            with self.lock:
                rows = self.client.query_arrow(sql, parameters={"relation": relation})
        except ClickHouseError as e:
            raise self._error(e, sql) from e
        out: dict[str, str] = {}
        for name, typ in zip(rows.column("name").to_pylist(), rows.column("type").to_pylist(),
                             strict=True):
            out.setdefault(name, typ)
        return out

    def create_table(self, table: str, select: exp.Select, id_columns: list[str]) -> None:
        described = self.fetch(self.dialect.render(exp.Describe(this=select.subquery()),
                                                   pretty=False))
        columns = [
            (name, self.ch_dialect.column_type(name, typ, id_columns))
            for name, typ in zip(described.column("name").to_pylist(),
                                 described.column("type").to_pylist(), strict=True)]
        ddl = self.ch_dialect.create_table_ddl(table_ref(table), columns, id_columns)
        self.execute(self.dialect.render(ddl))

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # ClickHouse has no multi-statement transactions; each INSERT ... SELECT is one block
        # write. The lock keeps a background writer's statements from interleaving.
        with self.lock:
            yield

    def close(self) -> None:
        with contextlib.suppress(ClickHouseError):
            self.client.close()


#: Writes supersede and hard-delete through lightweight UPDATE (patch parts): 25.7 and later.
MIN_VERSION = (25, 7)


def check_version(version: str, masked_url: str) -> None:
    """Refuse servers older than :data:`MIN_VERSION`, naming the version and the fix."""
    try:
        found = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        return  # an unusual build string: let the statements speak for themselves
    if found < MIN_VERSION:
        need = ".".join(map(str, MIN_VERSION))
        raise StoreConnectionError(
            f"cannot use {masked_url}: ClickHouse {version} is older than {need}, which "
            "metaxy-sql needs for lightweight UPDATE and DELETE (patch parts); upgrade the "
            "server")


def _use_database(client: Any, target: Target, create: bool = True) -> None:
    quoted = ClickHouseDialect().quote(target.database)
    try:
        if target.embedded and create:
            client.command(f"CREATE DATABASE IF NOT EXISTS {quoted}")
        found = client.query("SELECT count() FROM system.databases WHERE name = {db:String}",
                             parameters={"db": target.database}).result_rows[0][0]
    except ClickHouseError as e:
        raise StoreConnectionError(
            f"cannot open {target.masked_url}: {_reason(e, target.secret)}") from None
    if not found:
        raise StoreConnectionError(
            f"cannot open {target.masked_url}: database {target.database!r} does not exist on "
            f"the server; create it with CREATE DATABASE {quoted}")
    client.database = target.database


#: Authentication failures: AUTHENTICATION_FAILED (516) on current servers, WRONG_PASSWORD
#: (193) and UNKNOWN_USER (192) on old ones; HTTP answers them with status 401.
_AUTH_FAILED = ("AUTHENTICATION_FAILED", "Code: 516", "Code: 193", "Code: 192",
                "HTTP status 401")


def _hint(target: Target, e: ClickHouseError) -> str:
    text = str(e)
    if any(marker in text for marker in _AUTH_FAILED):
        return "; check the user name and password in the URL"
    if "already initialized with path" in text:
        return ("; chdb opens one data path per process: close the other chdb stores first "
                "(or use the same path with another ?database=)")
    if target.embedded and "EmbeddedServer" in text:
        # chdb locks its data directory: a second process gets this (DESIGN.md engine facts).
        return ("; the chdb data path is probably held by another process (a chdb path is one "
                "process's at a time): close that process, or give this one another path")
    if target.embedded:
        return ""
    if "server response" in text:  # it answered, but refused the driver's first queries
        need = ".".join(map(str, MIN_VERSION))
        return (f"; the server answered but refused the client's first query: metaxy-sql "
                f"needs ClickHouse {need} or newer")
    return "; is the server running and reachable on that host and port?"
