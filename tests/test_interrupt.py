"""Ctrl-C during a query stops the command as an interrupt on every engine.

DuckDB handles SIGINT itself while a query runs and raises its own exception (or a plain
RuntimeError from a result's fetch): the DuckDB executor turns it into KeyboardInterrupt, so the
command line says "Aborted!" as on Postgres and ClickHouse, not "unexpected RuntimeError ... a
bug". ``DuckDBPyConnection.interrupt()`` is what DuckDB's SIGINT handler calls.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import metaxy_sql as mx
from metaxy_sql.examples.seed import graph

HEAVY = "SELECT sum(hash(i)) FROM range(100000000000) t(i)"  # minutes unless interrupted


def _interrupting(con: object, done: threading.Event) -> threading.Thread:
    def run() -> None:
        while not done.wait(0.05):
            con.interrupt()  # type: ignore[attr-defined]
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("how", ["execute", "fetch"])
def test_duckdb_query_interrupted_is_a_keyboard_interrupt(tmp_path: Path, how: str) -> None:
    with mx.connect(f"duckdb:///{tmp_path / 'i.db'}", graph=graph) as store:
        ex = store.executor
        done = threading.Event()
        thread = _interrupting(ex.con, done)
        try:
            with pytest.raises(KeyboardInterrupt):
                (ex.execute if how == "execute" else ex.fetch)(HEAVY)
        finally:
            done.set()
            thread.join()
        assert ex.fetch("SELECT 42 AS x").column(0).to_pylist() == [42]  # still usable
