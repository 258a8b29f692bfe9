from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Callable, Iterator

import pytest

import metaxy_sql as mx

ALL_ENGINES = ("duckdb", "clickhouse", "postgres")
ENGINES = tuple(
    e.strip() for e in os.environ.get("METAXY_SQL_TEST_ENGINES", ",".join(ALL_ENGINES)).split(",")
    if e.strip()
)
_counter = itertools.count()

StoreFactory = Callable[[mx.FeatureGraph], mx.Store]


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(engine: str) -> Iterator[StoreFactory]:
    """Open a fresh, empty store on ``engine`` for a graph (call again: same database)."""
    module = importlib.import_module(f"tests.engines.{engine}")
    url = module.fresh_url(f"t{os.getpid()}_{next(_counter)}")
    opened: list[mx.Store] = []

    def factory(graph: mx.FeatureGraph) -> mx.Store:
        if opened:
            return opened[0].with_graph(graph)
        store = mx.connect(url, graph=graph)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        store.close()
