"""The scenario suite against a real ClickHouse server (HTTP), when one is configured.

    docker compose -f docker/compose.yaml up -d --wait clickhouse
    export METAXY_SQL_CLICKHOUSE_URL=clickhouse://metaxy:metaxy@127.0.0.1:8123/metaxy_test
    .venv/bin/python -m pytest integration/test_clickhouse_server.py

Each test gets a fresh database (created and dropped by the test through the same user), so
the user needs CREATE/DROP DATABASE rights. Skipped only when the variable is unset.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

import metaxy_sql as mx
from metaxy_sql.examples import seed
from tests.pipeline import check_oracle, samples, step
from tests.test_scenarios import SCENARIOS, Scenario, graph

ENV = "METAXY_SQL_CLICKHOUSE_URL"
URL = os.environ.get(ENV, "").strip()
pytestmark = pytest.mark.skipif(
    not URL, reason=f"{ENV} is not set: no ClickHouse server to test against (see the README)")
_counter = itertools.count()


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


@pytest.fixture
def server_url() -> Iterator[str]:
    """A fresh, empty database on the server, dropped afterwards."""
    from metaxy_sql.engine.executors.clickhouse import ClickHouseExecutor

    admin = ClickHouseExecutor.from_url(_with_database(URL, "default"))
    database = f"metaxy_it_{os.getpid()}_{next(_counter)}"
    admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield _with_database(URL, database)
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" SYNC')
        admin.close()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario_on_server(scenario: Scenario, server_url: str) -> None:
    store = mx.connect(server_url, graph=graph())
    try:
        report: dict[str, dict[str, Any]] = {}
        for i, (root_samples, versions) in enumerate(scenario.runs):
            store = store.with_graph(graph(**versions))
            last = i == len(scenario.runs) - 1
            report = step(store, samples(root_samples), write=scenario.write_last or not last)
            if scenario.write_last or not last:
                assert check_oracle(store) > 0
        assert report == scenario.expect
    finally:
        store.close()


def test_hard_delete_and_streaming_on_server(server_url: str) -> None:
    with mx.connect(server_url, graph=seed.graph) as store:
        many = {f"v{i:03d}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(250)}
        inc = store.resolve_update("video/full", samples=samples(many))
        sizes = [b.num_rows for b in inc.new.iter_batches(100)]
        assert sum(sizes) == 250 and max(sizes) <= 100
        store.write("video/full", inc.new)
        store.delete("video/full", [{"sample_uid": "v001"}], hard=True)
        assert store.read("video/full", history=True).num_rows == 249


def test_wrong_password_is_one_clear_error() -> None:
    parts = urlsplit(URL)
    bad = urlunsplit(parts._replace(
        netloc=f"{parts.username or 'default'}:wrong-Pa55@{parts.hostname}:{parts.port or 8123}"))
    with pytest.raises(mx.StoreConnectionError) as info:
        mx.connect(bad, graph=seed.graph)
    assert ":***@" in str(info.value) and "wrong-Pa55" not in str(info.value)
    assert "password" in str(info.value)
