"""A refresh of an incremental increment killed at any statement leaves a table the next
refresh makes exact (DESIGN semantics 12), on every engine. Graphs and steps are drawn as in
``tests/test_incremental.py``; this file is apart so the two property tests run on two pytest
workers. ``METAXY_SQL_INCREMENTAL_EXAMPLES`` overrides the example count here too."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaxy_sql.engine import incremental
from tests.conftest import examples
from tests.test_incremental import (
    TIMEOUT,
    Node,
    apply,
    build,
    check,
    derived,
    index,
    reset,
    shapes,
    short_steps,
)


class Crash(Exception):
    pass


CRASH_N = int(os.environ.get("METAXY_SQL_INCREMENTAL_EXAMPLES", "0")) or examples(100)


@pytest.mark.timeout(TIMEOUT)
@settings(max_examples=CRASH_N, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(shapes(), short_steps, index, st.booleans(), st.integers(0, 15), short_steps)
def test_property_crash_mid_refresh_next_refresh_is_exact(
        make_store: Any, shape: tuple[Node, ...], before: list[tuple[tuple[Any, ...], list[int]]],
        which: int, bump: bool, at: int, after: list[tuple[tuple[Any, ...], list[int]]]) -> None:
    """A refresh killed before its ``at``-th statement (any statement it sends: reading
    watermarks, the touched ids, delete, insert, rebuild, recording watermarks; a refresh
    sends 4 to 14) leaves a table the next refresh makes exact, whatever happens in between."""
    bumps: dict[str, int] = {}
    first = build(shape, {})
    store = reset(make_store(first), first, getattr(make_store, "previous", None))
    make_store.previous = first
    key = derived(store)[which % len(derived(store))]
    incremental.refresh(store, key)
    for op, _ in before:
        store = apply(store, op, lambda: build(shape, bumps), bumps)
    if bump:  # the interrupted refresh is a full rebuild
        store = apply(store, ("bump", derived(store).index(key), which),
                      lambda: build(shape, bumps), bumps)
    ex = store.executor
    sent = [0]

    def dying(method: Callable[[str], Any]) -> Callable[[str], Any]:
        def run(sql: str) -> Any:
            sent[0] += 1
            if sent[0] > at:
                raise Crash(sql)
            return method(sql)
        return run

    ex.execute, ex.fetch = dying(ex.execute), dying(ex.fetch)  # type: ignore[method-assign]
    try:
        incremental.refresh(store, key)
    except Crash:
        pass
    finally:
        del ex.execute, ex.fetch
    for op, _ in after:
        store = apply(store, op, lambda: build(shape, bumps), bumps)
    check(store, key)


def test_refresh_reports_the_statement_that_failed(make_store: Any) -> None:
    """A refresh whose partial insert fails in the engine reports that statement's error, not
    the clean-up after it (DuckDB refuses every statement of an aborted transaction, which hid
    the cause), and the next refresh is exact."""
    from metaxy_sql.errors import ExecutionError
    from tests.test_incremental import graph, write_root

    g = graph({})
    store = reset(make_store(g), g, None)
    incremental.refresh(store, "video/cap")
    write_root(store, "video/full", "v1", 2, "s0")
    ex = store.executor
    execute = ex.execute
    failing = "SELECT CAST('not a number: planted' AS INTEGER)"

    def run(sql: str) -> Any:
        if sql.lstrip().upper().startswith("INSERT INTO") and "__INCREMENTAL" in sql.upper():
            return execute(failing)  # a real engine error, inside the refresh
        return execute(sql)

    ex.execute = run  # type: ignore[method-assign]
    try:
        with pytest.raises(ExecutionError, match="planted"):
            incremental.refresh(store, "video/cap")
    finally:
        del ex.execute
    check(store, "video/cap")
