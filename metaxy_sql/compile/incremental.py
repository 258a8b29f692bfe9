"""SQL of incremental increments: which grain ids changed since a set of watermarks, and the
statements that replace those ids' rows in a maintained increment table.

A *watermark* of a feature table is a position in its write order: ``metaxy_write_seq`` on
engines with transactions (positions follow commit order there), the insert block number on
ClickHouse (``Dialect.watermark_column``; see ``engine.incremental`` for why). Every write and
soft delete (tombstone) takes a position, so the rows past a watermark name every id whose
latest state may have changed since; hard deletes take none and force a full rebuild.

>>> from metaxy_sql.compile.dialects import get_dialect
>>> from metaxy_sql.compile.planner import plan_feature
>>> from metaxy_sql.examples.seed import graph
>>> plan = plan_feature(graph, "video/face_crop")
>>> marks = {"video__full": 3, "video__face_crop": 7}
>>> d = get_dialect("postgres")
>>> print(d.render(touched_select(d, plan, marks)))  # doctest: +NORMALIZE_WHITESPACE
SELECT "sample_uid" FROM "video__face_crop" WHERE "metaxy_write_seq" > 7
UNION
SELECT "sample_uid" FROM "video__full" WHERE "metaxy_write_seq" > 3

Where the dialect splits scans (DuckDB), each id also says which tables it was written to:

>>> d = get_dialect("duckdb")
>>> print(d.render(touched_select(d, plan, marks)))  # doctest: +NORMALIZE_WHITESPACE
SELECT "sample_uid", MAX("metaxy_recent_0") AS "metaxy_recent_0",
  MAX("metaxy_recent_1") AS "metaxy_recent_1"
FROM (
  SELECT "sample_uid", 1 AS "metaxy_recent_0", 0 AS "metaxy_recent_1"
  FROM "video__face_crop" WHERE "metaxy_write_seq" > 7
  UNION ALL
  SELECT "sample_uid", 0 AS "metaxy_recent_0", 1 AS "metaxy_recent_1"
  FROM "video__full" WHERE "metaxy_write_seq" > 3
) AS "touched"
GROUP BY "sample_uid"
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp

from metaxy_sql.compile.builder import RecentSplit, col, ids_in, ids_of, table_ref
from metaxy_sql.compile.dialects.base import Dialect, lit
from metaxy_sql.compile.planner import FeaturePlan
from metaxy_sql.model import names

#: Column of the write-order table naming the feature table (see ``builder.write_order_ddl``).
_TABLE_NAME = "table_name"


def _since(d: Dialect, mark: int) -> exp.Expr:
    return exp.GT(this=col(d.watermark_column), expression=exp.Literal.number(mark))


def tables_touched(plan: FeaturePlan) -> set[str]:
    """The feature tables :func:`touched_select` reads changes from (given their watermarks):
    the feature's own and its parents'."""
    return {plan.table, *(u.relation for u in plan.upstreams if not u.is_samples)}


def recent_flag(i: int) -> str:
    """Column of the touched-ids table: 1 when the id was written to the ``i``-th table of
    :func:`split_tables` since its watermark, else 0."""
    return f"metaxy_recent_{i}"


def split_tables(d: Dialect, plan: FeaturePlan, marks: Mapping[str, int]) -> list[str]:
    """The tables whose scan a refresh splits (``Dialect.splits_recent_rows``; see
    ``builder.RecentSplit``), in flag order: tables keyed by exactly the grain, so that an id
    written to one since its watermark has its newest row there: the feature's own table
    (not an expansion's: one child written says nothing of its siblings) and its identity
    and expansion parents, each with a watermark in ``marks``. Aggregation parents are not
    split (a group's other members lie anywhere)."""
    if not d.splits_recent_rows:
        return []
    grain = set(plan.grain or plan.id_columns)
    out = [plan.table] if plan.table in marks and not plan.is_expansion else []
    for u in plan.upstreams:
        if (not u.is_samples and u.lineage != "aggregation" and u.relation in marks
                and set(u.member_ids) == grain and u.relation not in out):
            out.append(u.relation)
    return out


def touched_select(d: Dialect, plan: FeaturePlan, marks: Mapping[str, int]) -> exp.Select:
    """Grain ids of ``plan.feature`` whose increment rows may differ from those computed at
    watermarks ``marks`` (feature table -> watermark; tables not listed are not read). When
    ``marks`` lists none of :func:`tables_touched`, the statement still names the feature's
    table (for the grain's column types): callers skip it then.

    - the feature's own rows written or deleted since (mapped to the grain: for an expansion,
      the parent ids of the children);
    - identity and expansion parents: the ids of their rows written since (the grain columns
      are among the parent's id columns);
    - aggregation parents: the group of *every* stored row of a member written since, so a
      member that moved contributes its old group (from its earlier rows) and its new one.

    Where the dialect splits scans (:func:`split_tables`), one row per grain id with a flag
    column per split table (:func:`recent_flag`): whether the id was written to it since.

    Rows written past the watermarks but before the statement runs are included too: a superset
    of the changed ids re-resolves exactly.
    """
    grain = plan.grain or plan.id_columns
    split = split_tables(d, plan, marks)
    parts: list[exp.Select] = []

    def flagged(select: exp.Select, table: str | None) -> exp.Select:
        return select.select(*[
            exp.alias_(exp.Literal.number(1 if t == table else 0), recent_flag(i), quoted=True)
            for i, t in enumerate(split)]) if split else select

    if plan.table in marks:
        parts.append(flagged(ids_of(plan.table, grain).where(_since(d, marks[plan.table])),
                             plan.table))
    for u in plan.upstreams:
        if u.is_samples or u.relation not in marks:
            continue
        since = _since(d, marks[u.relation])
        if u.lineage == "aggregation":
            moved = ids_of(u.relation, u.member_ids).where(since)
            parts.append(flagged(ids_of(u.relation, grain).where(ids_in(u.member_ids, moved)),
                                 None))
        else:
            parts.append(flagged(ids_of(u.relation, grain).where(since), u.relation))
    if not parts:
        return ids_of(plan.table, grain).where(exp.false())
    if not split and len(parts) == 1:
        return parts[0].distinct()  # one id per row, as the UNION of several parts gives
    result: exp.Select = parts[0]
    for p in parts[1:]:
        result = exp.union(result, p, distinct=not split)  # type: ignore[assignment]
    if not split:
        return result
    return exp.select(*[col(c) for c in grain], *[
        exp.alias_(exp.Max(this=col(recent_flag(i))), recent_flag(i), quoted=True)
        for i in range(len(split))]).from_(
        exp.Subquery(this=result, alias=exp.TableAlias(
            this=exp.to_identifier("touched", quoted=True)))).group_by(*[col(c) for c in grain])


def _mark_name(i: int) -> str:
    return f"metaxy_mark_{i}"


def partial_subset(d: Dialect, plan: FeaturePlan, touched: str, marks: Mapping[str, int]
                   ) -> tuple[exp.Expr, dict[str, RecentSplit]]:
    """The subset and scan splits of a refresh's partial resolve: the grain ids of the
    session-local table ``touched`` (built by :func:`touched_select` with the same ``marks``),
    and per :func:`split_tables` table, the ids written to it since (read past its
    watermark, ``Dialect.watermark_reference``: run :func:`partial_settings` first) apart
    from the others (read by id)."""
    grain = plan.grain or plan.id_columns
    splits: dict[str, RecentSplit] = {}
    for i, t in enumerate(split_tables(d, plan, marks)):
        def ids(flag: int, i: int = i) -> exp.Expr:
            return ids_in(grain, ids_of(touched, grain).where(exp.EQ(
                this=col(recent_flag(i)), expression=exp.Literal.number(flag))))
        since = exp.GT(this=col(d.watermark_column),
                       expression=d.watermark_reference(_mark_name(i), marks[t]))
        splits[t] = RecentSplit(since=since, recent=ids(1), rest=ids(0))
    return touched_subset(grain, touched), splits


def partial_settings(d: Dialect, plan: FeaturePlan, marks: Mapping[str, int]
                     ) -> list[exp.Expr]:
    """Statements to run before the partial resolve of :func:`partial_subset` (same
    ``marks``): the watermark values it reads (``Dialect.watermark_settings``)."""
    return d.watermark_settings({_mark_name(i): marks[t]
                                 for i, t in enumerate(split_tables(d, plan, marks))})


def touched_subset(grain: Sequence[str], relation: str) -> exp.Expr:
    """The partial-resolution predicate ``grain IN (SELECT grain FROM relation)``."""
    return ids_in(grain, ids_of(relation, grain))


def counters_select(tables: Sequence[str]) -> exp.Select:
    """The write-order counter of each of ``tables`` (engines with counter rows)."""
    return exp.select(col(_TABLE_NAME), col(names.WRITE_SEQ)).from_(
        table_ref(names.WRITE_ORDER)).where(
        exp.In(this=col(_TABLE_NAME), expressions=[lit(t) for t in tables]))


def max_mark(d: Dialect, table: str) -> exp.Select:
    """The greatest watermark-column value of ``table`` (0 when empty)."""
    return exp.select(_greatest_mark(d)).from_(table_ref(table))


def _greatest_mark(d: Dialect) -> exp.Expr:
    return exp.Coalesce(this=exp.Max(this=col(d.watermark_column)),
                        expressions=[exp.Literal.number(0)])


#: Column of :func:`max_marks` counting superseded rows past a watermark.
PENDING = "pending"


def max_marks(d: Dialect, tables: Sequence[str], since: Mapping[str, int] | None = None
              ) -> exp.Select | None:
    """One statement: per table of ``tables``, its greatest watermark-column value (0 when
    empty), as rows (``table_name``, ``metaxy_write_seq``); with ``since`` (table -> old
    watermark), also ``pending``: the number of superseded rows past the old watermark.
    None when ``tables`` is empty."""
    def one(t: str) -> exp.Select:
        greatest = exp.select(_greatest_mark(d)).from_(table_ref(t))
        if since is None:
            return exp.select(exp.alias_(lit(t), _TABLE_NAME, quoted=True),
                              exp.alias_(greatest.selects[0], names.WRITE_SEQ, quoted=True)
                              ).from_(table_ref(t))
        # Two scalar subqueries: the greatest mark reads one small column of every row; the
        # count reads the superseded flags only of the parts that may hold rows past the
        # old watermark (``Dialect.parts_past``).
        mark = since.get(t, 0)
        flagged = exp.and_(_since(d, mark), col(names.SUPERSEDED))
        pending = exp.select(exp.Coalesce(this=exp.Sum(this=exp.If(
            this=flagged, true=exp.Literal.number(1), false=exp.Literal.number(0))),
            expressions=[exp.Literal.number(0)])).from_(table_ref(t))
        parts = d.parts_past(t, mark)
        if parts is not None:
            pending = pending.where(parts)
        return exp.select(exp.alias_(lit(t), _TABLE_NAME, quoted=True),
                          exp.alias_(greatest.subquery(), names.WRITE_SEQ, quoted=True),
                          exp.alias_(pending.subquery(), PENDING, quoted=True))
    return _union_all([one(t) for t in tables])


def unsettled_marks(d: Dialect, tables: Mapping[str, tuple[Sequence[str], int]]
                    ) -> exp.Select | None:
    """One statement: :func:`unsettled_mark` of each table (``table -> (id columns, mark)``),
    as rows (``table_name``, ``mark``), a table without unsettled writes having no row.
    None when ``tables`` is empty."""
    return _union_all([
        exp.select(exp.alias_(lit(t), _TABLE_NAME, quoted=True), col("mark")).from_(
            unsettled_mark(d, t, ids, mark).subquery("unsettled"))
        for t, (ids, mark) in sorted(tables.items())])


def _union_all(parts: Sequence[exp.Select]) -> exp.Select | None:
    if not parts:
        return None
    result: exp.Select = parts[0]
    for p in parts[1:]:
        result = exp.union(result, p, distinct=False)  # type: ignore[assignment]
    return result


def unsettled_mark(d: Dialect, table: str, id_columns: Sequence[str], mark: int) -> exp.Select:
    """The least block past ``mark`` holding an id whose newest row is still superseded: a
    write appended but not yet settled (``builder.settle_superseded``). No row when none.

    Engines that supersede after the append (ClickHouse) show such a write only once settled,
    without a new block; the refresh keeps its watermark below it so the next one re-reads it.
    """
    ids = [col(c) for c in id_columns]
    order = [col(names.WRITE_SEQ), *d.insert_order(),
             *[col(c) for c in (names.CREATED_AT, names.DELETED, names.DATA_VERSION)]]
    recent = ids_of(table, id_columns).where(_since(d, mark))
    newest = d.latest_per_id(
        table_ref(table), ids, [*[c.copy() for c in ids], col(names.SUPERSEDED),
                                exp.alias_(col(d.watermark_column), "mark", quoted=True)],
        [d.order_desc(c.copy()) for c in order]).where(ids_in(id_columns, recent))
    # ORDER BY ... LIMIT 1, not MIN(): ClickHouse's MIN over no rows is 0, not NULL.
    return exp.select(col("mark")).from_(newest.subquery("newest")).where(
        col(names.SUPERSEDED)).order_by(col("mark")).limit(1)


def hard_delete_counts() -> exp.Select:
    """Per feature table and phase (``begin``/``end``): the number of hard deletes logged."""
    return exp.select(col(_TABLE_NAME), col("phase"),
                      exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True)).from_(
        table_ref(names.HARD_DELETES)).group_by(col(_TABLE_NAME), col("phase"))


def delete_touched(table: str, grain: Sequence[str], touched: str) -> exp.Delete:
    """Remove the rows of the touched grain ids from an increment table."""
    return exp.delete(table_ref(table), where=touched_subset(grain, touched))


def insert_resolved(table: str, statement: exp.Select) -> exp.Insert:
    """Append the rows of a (partial) resolve statement to an increment table."""
    return exp.insert(exp.select(exp.Star()).from_(statement.subquery(names.RESOLVED)),
                      table_ref(table))
