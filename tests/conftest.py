from __future__ import annotations

import importlib
import itertools
import os
from collections.abc import Callable, Iterator

import pytest
from hypothesis import HealthCheck, settings

import metaxy_sql as mx

# Hypothesis profiles: ``ci`` (default) is derandomized, so a CI run is reproducible; ``dev``
# draws fewer, random examples for a quick local loop (METAXY_SQL_HYPOTHESIS_PROFILE=dev).
# Tests that set max_examples themselves scale it with ``examples(n)``.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, suppress_health_check=[HealthCheck.too_slow])
PROFILE = os.environ.get("METAXY_SQL_HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """``n`` examples under the ``ci`` profile, a quarter (at least 2) under ``dev``."""
    return n if PROFILE == "ci" else max(2, n // 4)

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
