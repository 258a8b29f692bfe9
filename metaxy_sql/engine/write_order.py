"""The store's write order: every write and soft delete of a feature table gets a position,
``metaxy_write_seq``, and the latest row of an id is the one with the greatest position.

Positions come from the store (``metaxy_system__write_order``), never from a writer's clock:

- DuckDB and Postgres: one counter row per feature table, incremented inside the write's
  transaction after the table's write lock. The row lock makes writers of one table take turns
  (Postgres) or conflict (DuckDB's optimistic concurrency: the store retries the loser), so
  positions increase in the order writes commit and each write supersedes every row before it.
- ClickHouse (no transactions): positions are appended to the same table as a log; two
  concurrent writes may draw one position, and the insertion order (block number and offset)
  breaks the tie, so every engine still has a total order.
"""

from __future__ import annotations

from metaxy_sql.compile import builder
from metaxy_sql.engine.executors.base import Executor
from metaxy_sql.model import names


def next_position(executor: Executor, table: str) -> int:
    """Take the next write position of feature table ``table`` (inside the write's
    transaction, after its write lock).

    Raises:
        ExecutionError: the engine failed the statement (``WriteConflictError`` when a
            concurrent writer won: retry the write).
    """
    d = executor.dialect
    ensure_table(executor)
    if d.write_order_log:
        last = executor.fetch(d.render(builder.last_logged_write_seq(table))).column(0)[0]
        position = int(last.as_py() or 0) + 1
        executor.execute(d.render(builder.log_write_seq(d, table, position)))
        return position
    return int(str(executor.returning(d.render(builder.next_write_seq(table)))))


def current_position(executor: Executor, table: str) -> int:
    """The last position handed out for feature table ``table`` (0 when none)."""
    if names.WRITE_ORDER not in executor.tables():
        return 0
    d = executor.dialect
    last = executor.fetch(d.render(builder.last_logged_write_seq(table))).column(0)[0]
    return int(last.as_py() or 0)


def advance_to(executor: Executor, table: str, position: int) -> None:
    """Make ``position`` the last one handed out for ``table`` when it is ahead (rows copied
    from another store keep their positions; the next write comes after them).

    Raises:
        ExecutionError: the engine failed the statement.
    """
    d = executor.dialect
    ensure_table(executor)
    if d.write_order_log:
        if current_position(executor, table) < position:
            executor.execute(d.render(builder.log_write_seq(d, table, position)))
        return
    executor.execute(d.render(builder.raise_write_seq(d, table, position)))


def ensure_table(executor: Executor) -> None:
    """Create the write-order table when missing (concurrent first writers take turns)."""
    if names.WRITE_ORDER in executor.tables():
        return
    d = executor.dialect
    lock = d.create_lock(names.WRITE_ORDER)
    if lock is not None:
        executor.execute(d.render(lock))
        if names.WRITE_ORDER in executor.tables():
            return
    executor.execute(d.render(builder.write_order_ddl(d)))
