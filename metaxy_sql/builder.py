"""SQL builder: sqlglot expressions for resolve, latest state and writes.

Only portable sqlglot nodes and the dialect's hooks are used here; names come from
:mod:`metaxy_sql.names`. The same expressions feed ``render`` (print), ``resolve`` (run) and
later ``materialize``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp

from metaxy_sql import hashing, names
from metaxy_sql.dialects.base import Dialect, lit
from metaxy_sql.hashing import HashAlgorithm
from metaxy_sql.planner import FeaturePlan, FieldPlan, UpstreamPlan


def table_ref(name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name, quoted=True))


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _and(conditions: Sequence[exp.Expr]) -> exp.Expr:
    return exp.and_(*conditions) if len(conditions) > 1 else conditions[0]


def ids_equal(left: str, right: str, ids: Sequence[str]) -> exp.Expr:
    return _and([exp.EQ(this=col(c, left), expression=col(c, right)) for c in ids])


# -- canonical hash inputs, mirrored from metaxy_sql.hashing ---------------------------------
def token(d: Dialect, value: exp.Expr) -> exp.Expr:
    """``hashing.encode`` in SQL: ``<byte length>:<value>``, or ``~`` when NULL."""
    present = exp.DPipe(
        this=exp.DPipe(this=d.int_to_text(d.byte_length(value)), expression=lit(":")),
        expression=value.copy(),
    )
    return exp.Coalesce(this=present, expressions=[lit(hashing.ABSENT)])


def concat(parts: Sequence[exp.Expr]) -> exp.Expr:
    """``a || b || c`` with adjacent string literals folded into one."""
    folded: list[exp.Expr] = []
    for part in parts:
        if folded and _is_str(part) and _is_str(folded[-1]):
            folded[-1] = lit(folded[-1].this + part.this)
        else:
            folded.append(part)
    result = folded[0]
    for part in folded[1:]:
        result = exp.DPipe(this=result, expression=part)
    return result


def _is_str(e: exp.Expr) -> bool:
    return isinstance(e, exp.Literal) and e.is_string


def field_provenance_expr(
    d: Dialect, f: FieldPlan, value_of: Mapping[tuple[str, str], exp.Expr],
    algorithm: HashAlgorithm,
) -> exp.Expr:
    parts: list[exp.Expr] = [lit(hashing.field_provenance_prefix(f.key, f.code_version))]
    for parent in f.parents:
        parts += [lit(hashing.parent_label(*parent)), token(d, value_of[parent])]
    return d.digest(concat(parts), algorithm)


def sample_digest_expr(
    d: Dialect, by_field: Sequence[tuple[str, exp.Expr]], algorithm: HashAlgorithm
) -> exp.Expr:
    parts: list[exp.Expr] = [lit(hashing.SAMPLE_TAG)]
    for key, value in sorted(by_field, key=lambda kv: kv[0]):
        parts += [lit(hashing.encode(key)), token(d, value)]
    return d.digest(concat(parts), algorithm)


# -- latest state -----------------------------------------------------------------------------
def latest_rows(
    table: str, ids: Sequence[str], columns: Sequence[str],
    projections: Sequence[exp.Expr] | None = None, *, dialect: Dialect | None = None,
) -> exp.Select:
    """Latest row per id of a feature table, soft-deleted ids hidden.

    ``columns`` are the stored columns read; ``projections`` (default: those columns) are
    computed from them. Where writes supersede (DuckDB, Postgres) the latest rows are those
    not superseded; elsewhere the newest row per id in ``metaxy_created_at`` order wins, ties
    resolved deterministically: a tombstone, then the greater data version.
    """
    d = dialect or Dialect()
    outputs = list(projections) if projections is not None else [col(c) for c in columns]
    live = exp.Not(this=col(names.DELETED))
    if d.supersede_on_write:
        return (exp.select(*[col(c) for c in ids], *outputs).from_(table_ref(table))
                .where(exp.Not(this=col(names.SUPERSEDED))).where(live))
    order = [d.order_desc(col(c)) for c in (names.CREATED_AT, names.DELETED, names.DATA_VERSION)]
    inner, first = d.latest_per_id(table_ref(table), [col(c) for c in ids],
                                   [col(c) for c in (*ids, *columns, names.DELETED)], order)
    select = exp.select(*[col(c) for c in ids], *outputs).from_(inner.subquery(table, copy=False))
    return (select.where(first) if first is not None else select).where(live)


# -- resolve ----------------------------------------------------------------------------------
def _empty(d: Dialect, ids: Sequence[str], nulls: Sequence[str],
           source: str | None) -> exp.Select:
    """An empty relation standing in for a table never written (ids typed like ``source``)."""
    id_cols: list[exp.Expr] = [
        col(c) if source else exp.alias_(d.typed_null(d.text_type), c, quoted=True)
        for c in ids]
    select = exp.select(
        *id_cols,
        *[exp.alias_(d.typed_null(d.text_type), n, quoted=True) for n in nulls],
    ).where(exp.false())
    return select.from_(table_ref(source)) if source else select


def _upstream_cte(d: Dialect, plan: FeaturePlan, u: UpstreamPlan,
                  missing: frozenset[str]) -> exp.Select:
    if u.relation in missing:
        source = None if plan.table in missing else plan.table
        return _empty(d, plan.id_columns, [names.data_version_column(f) for f in u.fields],
                      source)
    if u.is_samples:
        return exp.select(
            *[col(c) for c in plan.id_columns],
            *[exp.alias_(d.map_get(col(names.PROVENANCE_BY_FIELD), f), names.provenance_column(f),
                         quoted=True) for f in u.fields],
        ).from_(table_ref(u.relation))
    return latest_rows(u.relation, plan.id_columns, [names.DATA_VERSION_BY_FIELD], [
        exp.alias_(d.map_get(col(names.DATA_VERSION_BY_FIELD), f), names.data_version_column(f),
                   quoted=True) for f in u.fields], dialect=d)


def _expected_cte(d: Dialect, plan: FeaturePlan, algorithm: HashAlgorithm) -> exp.Select:
    first = plan.upstreams[0]
    if plan.is_root:
        return exp.select(
            *[col(c, first.cte) for c in plan.id_columns],
            *[col(names.provenance_column(f), first.cte) for f in plan.field_keys],
        ).from_(table_ref(first.cte))
    value_of = {
        (u.feature, f): col(names.data_version_column(f), u.cte)
        for u in plan.upstreams for f in u.fields
    }
    select = exp.select(
        *[col(c, first.cte) for c in plan.id_columns],
        *[
            exp.alias_(field_provenance_expr(d, f, value_of, algorithm),
                       names.provenance_column(f.key), quoted=True)
            for f in plan.fields
        ],
    ).from_(table_ref(first.cte))
    for u in plan.upstreams[1:]:
        select = select.join(table_ref(u.cte),
                             on=ids_equal(first.cte, u.cte, plan.id_columns), join_type="inner")
    return select


def _current_cte(d: Dialect, plan: FeaturePlan, missing: frozenset[str]) -> exp.Select:
    if plan.table in missing:
        return _empty(d, plan.id_columns, [names.provenance_column(f) for f in plan.field_keys],
                      names.EXPECTED)
    return latest_rows(plan.table, plan.id_columns, [names.PROVENANCE_BY_FIELD], [
        exp.alias_(d.map_get(col(names.PROVENANCE_BY_FIELD), f), names.provenance_column(f),
                   quoted=True) for f in plan.field_keys], dialect=d)


def _differs(f: str) -> exp.Expr:
    e, c = col(names.provenance_column(f), names.EXPECTED), col(names.provenance_column(f),
                                                                names.CURRENT)
    return exp.or_(exp.NEQ(this=e, expression=c.copy()), exp.Is(this=c, expression=exp.Null()))


def _increment_full_join(d: Dialect, plan: FeaturePlan) -> exp.Select:
    """The increment as one FULL OUTER JOIN: an id missing on the current side is new, on the
    expected side orphaned; matched ids with a differing field are stale."""
    ids, fields = plan.id_columns, plan.field_keys
    no_current = exp.Is(this=col(ids[0], names.CURRENT), expression=exp.Null())
    no_expected = exp.Is(this=col(ids[0], names.EXPECTED), expression=exp.Null())
    status = exp.Case(ifs=[exp.If(this=no_current, true=lit(names.STATUS_NEW)),
                           exp.If(this=no_expected.copy(), true=lit(names.STATUS_ORPHANED))],
                      default=lit(names.STATUS_STALE))

    def side(name: str) -> exp.Expr:  # orphaned rows carry the stored value, others expected
        return exp.Case(ifs=[exp.If(this=no_expected.copy(), true=col(name, names.CURRENT))],
                        default=col(name, names.EXPECTED))

    empty = exp.Cast(this=exp.Array(expressions=[]), to=d.type_(d.text_array_type))
    changed = exp.Case(
        ifs=[exp.If(this=exp.or_(no_current.copy(), no_expected.copy()), true=empty)],
        default=exp.Cast(this=d.non_null_array([
            exp.Case(ifs=[exp.If(this=_differs(f), true=lit(f))]) for f in fields]),
            to=d.type_(d.text_array_type)))
    return exp.select(
        exp.alias_(status, names.STATUS, quoted=True),
        *[exp.alias_(exp.Coalesce(this=col(c, names.EXPECTED), expressions=[
            col(c, names.CURRENT)]), c, quoted=True) for c in ids],
        *[exp.alias_(side(names.provenance_column(f)), names.provenance_column(f), quoted=True)
          for f in fields],
        exp.alias_(changed, names.CHANGED_FIELDS, quoted=True),
    ).from_(table_ref(names.EXPECTED)).join(
        table_ref(names.CURRENT), on=ids_equal(names.EXPECTED, names.CURRENT, ids),
        join_type="full outer",
    ).where(exp.or_(no_current.copy(), no_expected.copy(), *[_differs(f) for f in fields]))


def resolve_statement(
    d: Dialect, plan: FeaturePlan, algorithm: HashAlgorithm,
    missing: frozenset[str] = frozenset(),
) -> exp.Select:
    """The one statement yielding the whole increment of ``plan.feature``.

    ``missing`` names feature tables never written: they read as empty relations.

    Columns: ``metaxy_status`` (new/stale/orphaned), the id columns, the expected (for
    orphaned: stored) ``metaxy_provenance_by_field`` and ``metaxy_provenance``, and
    ``metaxy_changed_fields`` (stale samples: the fields whose provenance changed).
    """
    by_field = [(f, col(names.provenance_column(f))) for f in plan.field_keys]
    select = exp.select(
        col(names.STATUS),
        *[col(c) for c in plan.id_columns],
        exp.alias_(d.map_build(by_field), names.PROVENANCE_BY_FIELD, quoted=True),
        exp.alias_(sample_digest_expr(d, by_field, algorithm), names.PROVENANCE, quoted=True),
        col(names.CHANGED_FIELDS),
    ).from_(table_ref(names.INCREMENT))
    ctes: list[tuple[str, exp.Expr]] = [
        (u.cte, _upstream_cte(d, plan, u, missing)) for u in plan.upstreams]
    ctes += [
        (names.EXPECTED, _expected_cte(d, plan, algorithm)),
        (names.CURRENT, _current_cte(d, plan, missing)),
        (names.INCREMENT, _increment_full_join(d, plan)),
    ]
    for name, body in ctes:
        select = select.with_(exp.to_identifier(name, quoted=True), as_=body, copy=False)
    settings = d.statement_settings()
    if settings:
        select.set("settings", settings)
    return select


def category_query(statement: exp.Select, status: str, columns: Sequence[str]) -> exp.Select:
    """Rows of one category of the increment, from the resolve statement."""
    return (
        exp.select(*[col(c) for c in columns])
        .from_(statement.subquery(names.RESOLVED))
        .where(exp.EQ(this=col(names.STATUS), expression=lit(status)))
    )


def counts_query(statement: exp.Select) -> exp.Select:
    """Count of each category in one query, computed in the engine."""
    return (
        exp.select(col(names.STATUS), exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True))
        .from_(statement.subquery(names.RESOLVED))
        .group_by(col(names.STATUS))
    )


# -- writes -----------------------------------------------------------------------------------
def write_select(
    d: Dialect,
    *,
    staged: str,
    id_columns: Sequence[str],
    user_columns: Sequence[str],
    field_keys: Sequence[str],
    has_data_version: bool,
    feature_version: str,
    created_at: str,
    algorithm: HashAlgorithm,
) -> exp.Select:
    """Rows to append to a feature table, with every hash computed in the engine.

    The data version of a field is the writer's override when given, else its provenance.
    """
    passthrough = [col(c) for c in (*id_columns, *user_columns)]
    per_field: list[exp.Expr] = []
    for f in field_keys:
        prov = d.map_get(col(names.PROVENANCE_BY_FIELD), f)
        per_field.append(exp.alias_(prov, names.provenance_column(f), quoted=True))
        dv = (exp.Coalesce(this=d.map_get(col(names.DATA_VERSION_BY_FIELD), f),
                           expressions=[prov.copy()]) if has_data_version else prov.copy())
        per_field.append(exp.alias_(dv, names.data_version_column(f), quoted=True))
    inner = exp.select(*passthrough, *per_field).from_(table_ref(staged))
    prov_pairs = [(f, col(names.provenance_column(f))) for f in field_keys]
    dv_pairs = [(f, col(names.data_version_column(f))) for f in field_keys]
    return exp.select(
        *[col(c) for c in (*id_columns, *user_columns)],
        exp.alias_(d.map_build(prov_pairs), names.PROVENANCE_BY_FIELD, quoted=True),
        exp.alias_(sample_digest_expr(d, prov_pairs, algorithm), names.PROVENANCE, quoted=True),
        exp.alias_(d.map_build(dv_pairs), names.DATA_VERSION_BY_FIELD, quoted=True),
        exp.alias_(sample_digest_expr(d, dv_pairs, algorithm), names.DATA_VERSION, quoted=True),
        exp.alias_(lit(feature_version), names.FEATURE_VERSION, quoted=True),
        exp.alias_(d.timestamp_literal(created_at), names.CREATED_AT, quoted=True),
        exp.alias_(exp.false(), names.DELETED, quoted=True),
        exp.alias_(exp.false(), names.SUPERSEDED, quoted=True),
    ).from_(inner.subquery(staged, copy=False))


def insert(table: str, columns: Sequence[str], select: exp.Select) -> exp.Insert:
    return exp.insert(select, table_ref(table),
                      columns=[exp.to_identifier(c, quoted=True) for c in columns])


def tombstones_select(d: Dialect, staged: str, id_columns: Sequence[str],
                      created_at: str) -> exp.Select:
    """One soft-delete tombstone per distinct id in ``staged``."""
    return exp.select(
        *[col(c) for c in id_columns],
        exp.alias_(d.timestamp_literal(created_at), names.CREATED_AT, quoted=True),
        exp.alias_(exp.true(), names.DELETED, quoted=True),
        exp.alias_(exp.false(), names.SUPERSEDED, quoted=True),
    ).from_(table_ref(staged)).distinct()


def supersede(table: str, staged: str, id_columns: Sequence[str]) -> exp.Update:
    """Mark the live rows of the ids in ``staged`` superseded (before appending their new rows)."""
    sub = exp.select(exp.Literal.number(1)).from_(table_ref(staged)).where(
        ids_equal(staged, table, id_columns))
    return exp.update(
        table_ref(table), {names.SUPERSEDED: exp.true()},
        where=exp.and_(exp.Not(this=col(names.SUPERSEDED, table)), exp.Exists(this=sub)))


def hard_delete(table: str, staged: str, id_columns: Sequence[str], *,
                dialect: Dialect | None = None) -> exp.Delete:
    """Delete every row (history included) of the ids in ``staged``."""
    if dialect is not None and not dialect.correlated_delete:
        ids = (col(id_columns[0]) if len(id_columns) == 1
               else exp.Tuple(expressions=[col(c) for c in id_columns]))
        staged_ids = exp.select(*[col(c) for c in id_columns]).from_(table_ref(staged))
        return exp.delete(table_ref(table), where=exp.In(
            this=ids, query=exp.Subquery(this=staged_ids)))
    sub = exp.select(exp.Literal.number(1)).from_(table_ref(staged)).where(
        ids_equal(staged, table, id_columns))
    return exp.delete(table_ref(table), where=exp.Exists(this=sub))


def read_latest(table: str, id_columns: Sequence[str], columns: Sequence[str], *,
                dialect: Dialect | None = None) -> exp.Select:
    """Latest state of a feature table: the newest live row per id, ordered by id."""
    return latest_rows(table, id_columns, columns, dialect=dialect).order_by(
        *[col(c) for c in id_columns])


def read_history(table: str, id_columns: Sequence[str]) -> exp.Select:
    """Every row ever written (tombstones included), oldest first per id."""
    return exp.select(exp.Star()).from_(table_ref(table)).order_by(
        *[col(c) for c in id_columns], col(names.CREATED_AT))


def add_column(table: str, column: str, sql_type: str, d: Dialect) -> exp.Alter:
    """Add a user column first seen in a later write."""
    return exp.Alter(
        this=table_ref(table), kind="TABLE",
        actions=[exp.ColumnDef(this=exp.to_identifier(column, quoted=True),
                               kind=exp.DataType.build(sql_type, dialect=d.sqlglot_dialect))])


def count_query(select: exp.Select) -> exp.Select:
    """``SELECT COUNT(*)`` over a query, computed in the engine."""
    return exp.select(exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True)).from_(
        select.subquery("counted"))


def drop_table(table: str) -> exp.Drop:
    return exp.Drop(tables=[table_ref(table)], kind="TABLE", exists=True)
