"""Incremental increments: a table holding a feature's increment, kept equal to the full
resolve by re-resolving only the grain ids touched since its watermarks.

A refresh of ``<feature table>__incremental``:

1. reads the current watermark of every table the resolve reads (before any data);
2. if the table can be refreshed incrementally, stores the touched grain ids in a
   session-local table (``compile.incremental.touched_select``: rows past the old
   watermarks, mapped to the increment's grain), deletes those ids' rows and inserts their
   partial resolve (one statement, ``grain IN (touched)`` pushed into every upstream; where
   the dialect splits scans, a table's rows of the ids written to it since are read past its
   watermark and only the other touched ids are looked up by id: ``builder.RecentSplit``);
3. otherwise rebuilds the table from the full resolve, and says why (``Refresh.reason``);
4. records the new watermarks with a fingerprint of the full resolve statement.

Invariant: every row of the table is exact for the grain ids not written past the recorded
watermarks. Writes that land while a refresh runs are past the watermarks it records, so the
next refresh re-resolves them.

Atomicity: DuckDB and Postgres run a refresh in one transaction (Postgres: an advisory lock
makes concurrent refreshes of one table take turns). ClickHouse has no transactions: the
watermarks are recorded last, so a refresh interrupted anywhere leaves the old watermarks and
the next refresh re-resolves every id it touched; a full rebuild swaps the table atomically
(``CREATE OR REPLACE``). Readers of the table may see a partial refresh there.

Watermarks on ClickHouse: write positions are drawn from a log and need not follow commit
order, so they are not a safe watermark. The insert block number is: a plain MergeTree
numbers a part when it commits it, under the table's parts lock, so the parts visible at any
moment are exactly those numbered up to some value (from the engine's source,
``MergeTreeData::renameTempPartAndAdd``; ReplicatedMergeTree allocates numbers before commit,
so clusters are not supported here). A write appends rows of ids already stored superseded and
makes them visible by a later UPDATE without a new block: a refresh finding such unsettled
rows past its old watermark records a watermark below them, so the next one reads them again.

Full rebuild (``Refresh.mode == "full"``) happens when: no watermarks are recorded, the table
is missing, the full resolve statement changed (feature or field versions, digest, tables read
or their columns: the fingerprint), a table read was hard-deleted from or dropped since
(``metaxy_system__hard_deletes``), or a recorded watermark is ahead of its table (a foreign
watermark: the table was dropped and recreated, or restored).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.compile import incremental as sql
from metaxy_sql.compile.planner import Catalog, plan_feature
from metaxy_sql.engine import system
from metaxy_sql.engine.executors.base import Executor
from metaxy_sql.errors import ConfigError
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.model.hashing import HashAlgorithm

STATE_COLUMNS = (
    ("relation_name", system.TEXT), ("feature", system.TEXT), ("fingerprint", system.TEXT),
    ("watermarks", system.TEXT), ("refreshed_at", system.TIMESTAMP))
HARD_DELETE_COLUMNS = (
    ("table_name", system.TEXT), ("phase", system.TEXT), ("deleted_at", system.TIMESTAMP))

def _no_fault(step: str) -> None:
    return None


#: Test hook: called with the name of each step of a refresh (crash tests raise from it).
checkpoint: Callable[[str], None] = _no_fault


class StoreLike(Protocol):
    """What a refresh needs of a store (``engine.store.Store``)."""

    executor: Executor
    graph: FeatureGraph
    hash_algorithm: HashAlgorithm

    def catalog(self, feature: str, tables: set[str] | None = None) -> Catalog: ...

    def compiled(self, feature: str, catalog: Catalog, *, where: str | None = None,
                 ids: Any = None, subset: exp.Expr | None = None,
                 splits: builder.Splits = None) -> tuple[str, exp.Select]: ...


@dataclass(frozen=True)
class Refresh:
    """What one refresh did.

    ``mode``: ``incremental`` (``touched`` grain ids re-resolved) or ``full`` (``reason``
    says why the table was rebuilt from the full resolve).
    """

    feature: str
    relation: str
    mode: str
    reason: str = ""
    touched: int = 0

    def __str__(self) -> str:
        if self.mode == "full":
            return f"{self.relation}: full rebuild ({self.reason})"
        return f"{self.relation}: incremental refresh, {self.touched} grain id(s) re-resolved"


def relation_name(feature: str) -> str:
    """Name of the incremental increment table of ``feature``."""
    return names.increment_relation(feature, suffix=names.INCREMENTAL_SUFFIX)


def exists(executor: Executor, relation: str, tables: set[str] | None = None) -> bool:
    """True when ``relation`` is an incremental increment table with recorded watermarks."""
    present = executor.tables() if tables is None else tables
    return relation in present and _state(executor, relation, present) is not None


def check_feature(graph: FeatureGraph, feature: str) -> None:
    if graph.is_root(feature):
        raise ConfigError(
            f"feature {feature!r} is a root feature: its increment reads the sample set given "
            "to resolve_update, which a maintained table cannot follow; maintain its "
            "downstream features incrementally instead")


def refresh(store: StoreLike, feature: str, relation: str | None = None, *,
            full: bool = False) -> Refresh:
    """Bring the incremental increment table of ``feature`` up to date (create it first).

    Args:
        store: the store.
        feature: a non-root feature key.
        relation: table name (default ``<feature table>__incremental``).
        full: rebuild from the full resolve even when incremental would be exact.

    Returns:
        A :class:`Refresh` saying whether it was incremental (and how many grain ids it
        re-resolved) or a full rebuild (and why).

    Raises:
        ConfigError: ``feature`` is a root feature.
        ExecutionError: the engine failed a statement (the table stays as it was on
            DuckDB/Postgres; on ClickHouse the next refresh makes it exact).
    """
    check_feature(store.graph, feature)
    ex, d = store.executor, store.executor.dialect
    relation = relation or relation_name(feature)
    tables = ex.tables()
    catalog = store.catalog(feature, tables)
    text, statement = store.compiled(feature, catalog)
    fingerprint = hashlib.sha256(text.encode()).hexdigest()
    read = sorted(catalog.tables)
    with ex.transaction():
        lock = d.create_lock(relation)
        if lock is not None:  # concurrent refreshes of one table take turns
            ex.execute(d.render(lock))
        old = _state(ex, relation, tables)
        marks, pending = _marks(ex, read, tables, {} if old is None else old.marks)
        hard = _hard_deletes(ex, read, tables)
        reason = "forced" if full else _full_reason(old, relation, tables, fingerprint, marks,
                                                    hard)
        if reason:
            marks = _settled(store, feature, marks, {} if old is None else old.marks, pending)
            _checkpoint("before rebuild")
            for s in d.incremental_table_ddl(builder.table_ref(relation), statement,
                                             plan_feature(store.graph, feature).grain):
                ex.execute(d.render(s))
            result = Refresh(feature, relation, "full", reason)
        else:
            assert old is not None
            if marks == old.marks:
                # nothing written or deleted since (the touched ids are the rows past the old
                # watermarks): the table and its recorded state stay as they are
                return Refresh(feature, relation, "incremental", touched=0)
            marks = _settled(store, feature, marks, old.marks, pending)
            touched = _replace(store, feature, relation, catalog, old.marks)
            result = Refresh(feature, relation, "incremental", touched=touched)
        _checkpoint("before watermarks")
        _save(ex, relation, feature, fingerprint, marks, hard, tables)
    return result


def _replace(store: StoreLike, feature: str, relation: str, catalog: Catalog,
             old: Mapping[str, int]) -> int:
    """Re-resolve the grain ids touched since ``old``; returns how many."""
    ex, d = store.executor, store.executor.dialect
    plan = plan_feature(store.graph, feature)
    if not set(old) & sql.tables_touched(plan):
        # no table read exists, now as then (else it rebuilt): nothing was touched, and the
        # touched ids' statement would read the missing feature table
        return 0
    grain = plan.grain or plan.id_columns
    touched = names.touched(relation)
    ex.execute(d.render(d.drop_temporary(touched)))
    ex.execute(d.render(d.temporary_table_as(builder.table_ref(touched),
                                             sql.touched_select(d, plan, old))))
    try:
        n = int(str(_scalar(ex, builder.count_query(builder.ids_of(touched, grain)))))
        if n:
            _checkpoint("before delete")
            ex.execute(d.render(sql.delete_touched(relation, grain, touched)))
            subset, splits = sql.partial_subset(d, plan, touched, old)
            partial = store.compiled(feature, catalog, subset=subset, splits=splits)[1]
            for setting in sql.partial_settings(d, plan, old):
                ex.execute(d.render(setting))
            _checkpoint("before insert")
            ex.execute(_insert_text(d, relation, partial))
    except BaseException:
        # The statement's own error is the one to report: after it, DuckDB refuses any
        # statement in the aborted transaction (its rollback drops the temporary table), and
        # elsewhere the next refresh drops a leftover before it creates its own.
        with contextlib.suppress(Exception):
            ex.execute(d.render(d.drop_temporary(touched)))
        raise
    ex.execute(d.render(d.drop_temporary(touched)))
    return n


#: Rendered ``INSERT`` of a partial resolve per (dialect, table, statement): the statement
#: comes from the store's compiled cache (the same object while nothing it depends on
#: changes), so it is rendered once. The statement is held, so its id() is not reused.
_INSERTS: dict[tuple[str, str, int], tuple[exp.Select, str]] = {}
_INSERTS_SIZE = 64


def _insert_text(d: Any, relation: str, partial: exp.Select) -> str:
    key = (d.name, relation, id(partial))
    hit = _INSERTS.get(key)
    if hit is not None and hit[0] is partial:
        return hit[1]
    text = str(d.render(sql.insert_resolved(relation, partial)))
    if len(_INSERTS) >= _INSERTS_SIZE:
        _INSERTS.pop(next(iter(_INSERTS)))
    _INSERTS[key] = (partial, text)
    return text


def _scalar(ex: Executor, query: exp.Select) -> object:
    """The first value of ``query``'s result, None when it has no rows."""
    result = ex.fetch(ex.dialect.render(query))
    return result.column(0)[0].as_py() if result.num_rows else None


def _marks(ex: Executor, tables: list[str], present: set[str], old: Mapping[str, int]
           ) -> tuple[dict[str, int], dict[str, int]]:
    """Current watermark of each table (one statement): its write-order counter, or (where
    positions are a log) its greatest insert block number. ``present``: the store's tables.

    Where writes supersede after the append, also, per table, how many superseded rows lie
    past its ``old`` watermark (``pending``, same statement): none means no write there is
    appended but unsettled (see :func:`_settled`)."""
    d = ex.dialect
    marks = dict.fromkeys(tables, 0)
    pending: dict[str, int] = {}
    if not tables:
        return marks, pending
    if d.write_order_log:
        since = {t: old.get(t, 0) for t in tables} if d.supersede_after_insert else None
        query = sql.max_marks(d, [t for t in tables if t in present], since)
    elif names.WRITE_ORDER in present:
        query = sql.counters_select(tables)
    else:
        return marks, pending
    if query is not None:
        for row in ex.fetch(d.render(query)).to_pylist():
            marks[str(row["table_name"])] = int(row[names.WRITE_SEQ])
            if sql.PENDING in row:
                pending[str(row["table_name"])] = int(row[sql.PENDING])
    return marks, pending


def _settled(store: StoreLike, feature: str, marks: dict[str, int],
             old: Mapping[str, int], pending: Mapping[str, int]) -> dict[str, int]:
    """``marks`` lowered below any write appended but not yet settled (engines superseding
    after the append), so the next refresh reads it again once it is visible.

    An unsettled write's newest rows are superseded and lie past the old watermark (a
    refresh that saw them earlier kept its watermark below them), so a table with no
    superseded row past its old watermark (``pending`` 0, counted by :func:`_marks` on two
    small columns) has none, and its scan by id is skipped."""
    ex, d = store.executor, store.executor.dialect
    if not d.supersede_after_insert:
        return marks
    out = dict(marks)
    starts = {t: (0 if old.get(t, 0) > m else old.get(t, 0)) for t, m in marks.items()}
    query = sql.unsettled_marks(d, {
        t: (_id_columns(store.graph, t), starts[t]) for t in marks
        if starts[t] != old.get(t, 0) or pending.get(t, 1) > 0})
    if query is None:
        return out
    for row in ex.fetch(d.render(query)).to_pylist():
        table, least = str(row["table_name"]), int(row["mark"])
        if least <= marks[table]:
            out[table] = least - 1
    return out


def _id_columns(graph: FeatureGraph, table: str) -> list[str]:
    key = next(k for k in graph.keys if names.table(k) == table)
    return list(graph.spec(key).id_columns)


def _hard_deletes(ex: Executor, tables: list[str], present: set[str]) -> dict[str, list[int]]:
    """Per table read: [hard deletes begun, hard deletes ended] so far."""
    out = {t: [0, 0] for t in tables}
    if names.HARD_DELETES not in present:
        return out
    for row in ex.fetch(ex.dialect.render(sql.hard_delete_counts())).to_pylist():
        t = str(row["table_name"])
        if t in out:
            out[t][0 if row["phase"] == "begin" else 1] = int(row["n"])
    return out


def log_hard_delete(ex: Executor, table: str, phase: str) -> None:
    """Record that ``table`` loses rows without a write position (``begin`` before the hard
    delete or drop, ``end`` after): incremental increments reading it rebuild in full."""
    system.ensure(ex, names.HARD_DELETES, HARD_DELETE_COLUMNS, ["deleted_at"])
    system.append(ex, names.HARD_DELETES, HARD_DELETE_COLUMNS,
                  {"table_name": table, "phase": phase, "deleted_at": system.now_iso()})


def _full_reason(old: _State | None, relation: str, tables: set[str],
                 fingerprint: str, marks: Mapping[str, int],
                 hard: Mapping[str, list[int]]) -> str:
    """Why incremental would not be exact ("" when it would)."""
    if old is None:
        return "no watermarks recorded (first build)"
    if relation not in tables:
        return "the increment table is missing"
    if old.fingerprint != fingerprint:
        return "the resolve statement changed (definitions, digest or tables read)"
    if set(old.marks) != set(marks):
        return "the tables read changed"
    ahead = sorted(t for t, m in old.marks.items() if m > marks[t])
    if ahead:
        return f"watermark ahead of table(s) {ahead} (dropped and recreated, or restored)"
    deleted = sorted(t for t in hard if list(old.hard.get(t, [0, 0])) != hard[t])
    if deleted:
        return f"hard delete or drop of {deleted}"
    return ""


@dataclass(frozen=True)
class _State:
    fingerprint: str
    marks: dict[str, int]
    hard: dict[str, list[int]]


def _state(ex: Executor, relation: str, tables: set[str]) -> _State | None:
    """The latest recorded refresh of ``relation``: fingerprint, marks and hard deletes."""
    if names.INCREMENTAL_STATE not in tables:
        return None
    d = ex.dialect
    query = (exp.select(exp.Star()).from_(builder.table_ref(names.INCREMENTAL_STATE))
             .where(exp.EQ(this=builder.col("relation_name"),
                           expression=exp.Literal.string(relation)))
             .order_by(exp.Ordered(this=builder.col("refreshed_at"), desc=True)).limit(1))
    rows = ex.fetch(d.render(query)).to_pylist()
    if not rows:
        return None
    saved = json.loads(str(rows[0]["watermarks"]))
    return _State(str(rows[0]["fingerprint"]), saved["marks"], saved["hard"])


def _save(ex: Executor, relation: str, feature: str, fingerprint: str,
          marks: Mapping[str, int], hard: Mapping[str, list[int]], present: set[str]) -> None:
    system.ensure(ex, names.INCREMENTAL_STATE, STATE_COLUMNS, ["refreshed_at"], present)
    system.append(ex, names.INCREMENTAL_STATE, STATE_COLUMNS, {
        "relation_name": relation, "feature": feature, "fingerprint": fingerprint,
        "watermarks": json.dumps({"marks": dict(marks), "hard": dict(hard)}, sort_keys=True),
        "refreshed_at": system.now_iso()})


def read_statement(relation: str, subset: exp.Expr | None = None) -> exp.Select:
    """The rows of an incremental increment table (optionally a subset of its grain)."""
    select = exp.select(exp.Star()).from_(builder.table_ref(relation))
    return select.where(subset) if subset is not None else select


def _checkpoint(step: str) -> None:
    checkpoint(step)
