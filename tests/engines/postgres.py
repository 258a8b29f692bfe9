"""Postgres: one server (``METAXY_SQL_POSTGRES_URL``), a fresh schema per test.

Start a local server and export its URL with::

    export METAXY_SQL_POSTGRES_URL=$(bash .ci/postgres.sh | tail -1)
"""

from __future__ import annotations

import atexit
import os
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV = "METAXY_SQL_POSTGRES_URL"
_created: list[str] = []


def base_url() -> str:
    """The server URL from the environment; a missing server fails the test (never skips)."""
    url = os.environ.get(ENV, "").strip()
    if not url:
        pytest.fail(
            f"{ENV} is not set, so the postgres engine cannot run. Start a local server with "
            f"`export {ENV}=$(bash .ci/postgres.sh | tail -1)` (or point {ENV} at "
            "postgresql://user:password@host:port/database), or leave postgres out of "
            "METAXY_SQL_TEST_ENGINES.", pytrace=False)
    return url


def with_schema(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&schema={schema}" if parts.query else f"schema={schema}"
    return urlunsplit(parts._replace(query=query))


def fresh_url(name: str) -> str:
    schema = f"metaxy_test_{name}"
    if not _created:
        atexit.register(_drop_schemas, base_url())
    _created.append(schema)
    return with_schema(base_url(), schema)


def _drop_schemas(url: str) -> None:
    import psycopg
    from psycopg import sql

    from metaxy_sql.engine.executors.postgres import _split_url

    try:
        with psycopg.connect(_split_url(url)[0], autocommit=True) as conn:
            for schema in _created:
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)))
    except psycopg.Error:
        pass  # the server went away: nothing left to clean
