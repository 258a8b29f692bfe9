"""Postgres specifics: bad URLs, errors, transactions, column types, indexes, schemas."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import re
import socket
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa
import pytest
from sqlglot import exp

import metaxy_sql as mx
from metaxy_sql.compile.dialects.postgres import PostgresDialect
from metaxy_sql.examples import seed
from metaxy_sql.model import names
from tests.conftest import ENGINES
from tests.engines import postgres as pg_engine
from tests.pipeline import samples

_ids = itertools.count()
pytestmark = pytest.mark.skipif("postgres" not in ENGINES,
                                reason="postgres is not in METAXY_SQL_TEST_ENGINES")


def _replace(url: str, **parts: str) -> str:
    u = urlsplit(url)
    user, host = u.username or "", u.hostname or "127.0.0.1"
    password = parts.get("password", u.password or "")
    netloc = f"{user}:{password}@{host}:{parts.get('port', u.port or 5432)}"
    return urlunsplit(u._replace(netloc=netloc, path=parts.get("path", u.path)))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(("change", "reason"), [
    ({"port": "closed"}, r"no Postgres server answers at 127\.0\.0\.1:\d+; start the server"),
    ({"password": "not-the-password-x9"}, r"authentication failed for user '\w+'"),
    ({"path": "/metaxy_no_such_db"}, r"database 'metaxy_no_such_db' does not exist"),
])
def test_bad_url_gives_one_clear_error(change: dict[str, str], reason: str) -> None:
    if change.get("port") == "closed":
        change = {"port": str(_closed_port())}
    url = _replace(pg_engine.base_url(), **change)
    password = urlsplit(url).password or ""
    with pytest.raises(mx.StoreConnectionError) as info:
        mx.connect(url, graph=seed.graph)
    message = str(info.value)
    assert message.startswith("cannot connect to postgresql://")
    assert ":***@" in message and f":{password}@" not in message
    assert "\n" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert re.search(reason, message), message


@pytest.fixture
def pg_store() -> Any:
    store = mx.connect(pg_engine.fresh_url(f"pg{os.getpid()}_{next(_ids)}"), graph=seed.graph)
    yield store
    store.close()


def test_failed_statement_carries_sql_and_engine(pg_store: mx.Store) -> None:
    with pytest.raises(mx.ExecutionError) as info:
        pg_store.executor.fetch('SELECT * FROM "no_such_table"')
    assert info.value.engine == "postgres"
    assert info.value.sql == 'SELECT * FROM "no_such_table"'
    assert 'relation "no_such_table" does not exist' in info.value.reason


def test_transaction_makes_a_write_atomic(pg_store: mx.Store) -> None:
    pg_store.write("video/full", samples({"v1": {"audio": "a", "frames": "f"}}))
    with pytest.raises(RuntimeError, match="boom"), pg_store.executor.transaction():
        pg_store.write("video/full", samples({"v2": {"audio": "b", "frames": "g"}}))
        assert pg_store.count("video/full") == 2  # visible inside the transaction
        raise RuntimeError("boom")
    assert pg_store.read("video/full").column("sample_uid").to_pylist() == ["v1"]


def test_user_columns_round_trip_exactly(pg_store: mx.Store) -> None:
    when = dt.datetime(2024, 2, 29, 12, 34, 56, 789012)
    rows = pa.table({
        "sample_uid": ["v1", "v2", "v3"],
        "metaxy_provenance_by_field": pa.array(
            [[("audio", "a"), ("frames", "f")]] * 3, pa.map_(pa.string(), pa.string())),
        "note": ["", None, 'comma, "quote"\nnewline \\ é🎧'],
        "n": pa.array([1, None, -(2**62)], pa.int64()),
        "x": [0.1, 1e300, None],
        "ok": [True, False, None],
        "at": pa.array([when, None, when], pa.timestamp("us")),
    })
    pg_store.write("video/full", rows)
    back = pg_store.read("video/full")
    for name in ("sample_uid", "note", "n", "x", "ok", "at"):
        assert back.column(name).to_pylist() == rows.column(name).to_pylist(), name
    assert back.schema.field("metaxy_provenance_by_field").type == pa.map_(pa.string(),
                                                                           pa.string())
    cols = pg_store.executor.columns("video__full")
    assert cols["metaxy_provenance_by_field"] == "jsonb"
    assert (cols["n"], cols["x"], cols["ok"]) == ("bigint", "double precision", "boolean")


def test_changed_fields_come_back_as_a_list(pg_store: mx.Store) -> None:
    pg_store.write("video/full", samples({"v1": {"audio": "a", "frames": "f"}}))
    stale = pg_store.resolve_update("video/full", samples=samples({
        "v1": {"audio": "a2", "frames": "f2"}})).stale
    table = stale.to_arrow()
    assert pa.types.is_list(table.schema.field("metaxy_changed_fields").type)
    assert table.column("metaxy_changed_fields").to_pylist() == [["audio", "frames"]]
    batches = list(stale.iter_batches(10))
    assert pa.Table.from_batches(batches).to_pylist() == table.to_pylist()


def test_latest_row_index_is_created(pg_store: mx.Store) -> None:
    pg_store.write("video/full", samples({"v1": {"audio": "a", "frames": "f"}}))
    index = pg_store.executor.fetch(
        "SELECT indexdef FROM pg_indexes WHERE tablename = 'video__full' "
        "AND schemaname = current_schema()").to_pylist()
    # Issue 13 adds the B-tree on write positions (rows written since a refresh's watermark).
    assert sorted(r["indexdef"].split(" USING ")[1] for r in index) == [
        "btree (metaxy_write_seq)", "btree (sample_uid) WHERE (NOT metaxy_superseded)"]


def test_schemas_keep_stores_apart(pg_store: mx.Store) -> None:
    pg_store.write("video/full", samples({"v1": {"audio": "a", "frames": "f"}}))
    with mx.connect(pg_engine.fresh_url(f"pg{os.getpid()}_{next(_ids)}"),
                    graph=seed.graph) as other:
        assert other.executor.tables() == set()
        assert other.count("video/full") == 0
    assert {t for t in pg_store.executor.tables() if not names.is_system_table(t)} == {
        "video__full"}


def test_too_long_identifiers_are_refused() -> None:
    long = "f" * 70
    with pytest.raises(mx.UnsupportedByDialectError, match="longer than Postgres's 63 bytes"):
        PostgresDialect().render(exp.select(exp.column(long)))


def test_sessions_run_without_jit(pg_store: mx.Store) -> None:
    """Wide resolves spend their time in JIT compilation: the store's sessions turn it off
    (whatever the server's default), as the dialect declares."""
    assert PostgresDialect.session_settings["jit"] == "off"
    assert pg_store.executor.returning("SELECT current_setting('jit')") == "off"


def test_a_password_in_the_query_string_is_masked_too() -> None:
    """libpq takes ``?password=``: Store.url and messages hide it like a ``user:password@``."""
    parts = urlsplit(pg_engine.fresh_url(f"pgq{os.getpid()}_{next(_ids)}"))
    password = parts.password or ""
    netloc = f"{parts.username}@{parts.netloc.rsplit('@', 1)[1]}"
    url = urlunsplit(parts._replace(netloc=netloc, query=f"{parts.query}&password={password}"))
    with mx.connect(url, graph=seed.graph) as store:
        assert store.url.endswith("&password=***") and f"password={password}" not in store.url
    wrong = url.replace(f"password={password}", "password=not-the-password-x9")
    with pytest.raises(mx.StoreConnectionError) as info:
        mx.connect(wrong, graph=seed.graph)
    assert "password=***" in str(info.value) and "not-the-password-x9" not in str(info.value)
