"""SQL builder: sqlglot expressions for resolve, latest state and writes.

Only portable sqlglot nodes and the dialect's hooks are used here; names come from
:mod:`metaxy_sql.model.names`. The same expressions feed ``render`` (print), ``resolve`` (run) and
later ``materialize``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from metaxy_sql.compile.dialects.base import DerivedColumn, Dialect, derived_column_def, lit
from metaxy_sql.compile.planner import FeaturePlan, FieldPlan, UpstreamPlan
from metaxy_sql.model import filters, hashing, names
from metaxy_sql.model.hashing import HashAlgorithm

#: Per table: the columns it has (``None``: every derived column exists).
Derived = Mapping[str, frozenset[str]] | None
#: Per table: column -> engine type as the catalog spells it, for the id columns whose text
#: enters a hash (aggregation members); a table absent here has ids of unknown type.
IdTypes = Mapping[str, Mapping[str, str]] | None


@dataclass(frozen=True)
class RecentSplit:
    """How a partial resolve reads one feature table whose latest rows of some subset ids are
    known to lie past a watermark (an incremental refresh: the ids the table was written
    since).

    The rows read are those matching ``since`` (a predicate on the table: past the watermark)
    and ``recent`` (a predicate on the grain: the ids written since), plus those of the other
    subset ids, ``rest`` (a predicate on the grain), read like any subset. Exact when every id
    of ``recent`` has its latest row past the watermark: an id written past a watermark has
    its newest row there (write positions follow commit order on engines that split).
    Engines keeping tables in write order (DuckDB) then skip the older row groups for those
    ids by their min-max index instead of scanning the table's id column.
    """

    since: exp.Expr
    recent: exp.Expr
    rest: exp.Expr


#: Per feature table read by a partial resolve: how to split its scan (see RecentSplit).
Splits = Mapping[str, RecentSplit] | None


def table_ref(name: str) -> exp.Table:
    return exp.Table(this=exp.to_identifier(name, quoted=True))


def col(name: str, table: str | None = None) -> exp.Column:
    return exp.column(name, table=table, quoted=True)


def _and(conditions: Sequence[exp.Expr]) -> exp.Expr:
    return exp.and_(*conditions) if len(conditions) > 1 else conditions[0]


def ids_equal(left: str, right: str, ids: Sequence[str]) -> exp.Expr:
    return _and([exp.EQ(this=col(c, left), expression=col(c, right)) for c in ids])


def ids_of(relation: str, ids: Sequence[str]) -> exp.Select:
    """``SELECT <ids> FROM relation``."""
    return exp.select(*[col(c) for c in ids]).from_(table_ref(relation))


def ids_in(ids: Sequence[str], query: exp.Select) -> exp.In:
    """``id IN (query)``, or ``(id1, id2) IN (query)`` for several id columns (uncorrelated:
    usable where a correlated EXISTS is not, e.g. in ClickHouse mutations)."""
    key = col(ids[0]) if len(ids) == 1 else exp.Tuple(expressions=[col(c) for c in ids])
    return exp.In(this=key, query=exp.Subquery(this=query))


# -- canonical hash inputs, mirrored from metaxy_sql.model.hashing ---------------------------------
def token(d: Dialect, value: exp.Expr) -> exp.Expr:
    """``hashing.encode`` in SQL: ``<byte length>:<value>``, or ``~`` when NULL."""
    return d.value_token(value)


def concat(d: Dialect, parts: Sequence[exp.Expr]) -> exp.Expr:
    """The concatenation of hash-input ``parts`` (literals and tokens, never NULL), adjacent
    string literals folded into one, in the dialect's cheapest form (``Dialect.concat_text``).
    """
    folded: list[exp.Expr] = []
    for part in parts:
        if folded and _is_str(part) and _is_str(folded[-1]):
            folded[-1] = lit(folded[-1].this + part.this)
        else:
            folded.append(part)
    return folded[0] if len(folded) == 1 else d.concat_text(folded)


def _is_str(e: exp.Expr) -> bool:
    return isinstance(e, exp.Literal) and e.is_string


def field_provenance_expr(
    d: Dialect, f: FieldPlan, token_of: Mapping[tuple[str, str], exp.Expr],
    algorithm: HashAlgorithm,
) -> exp.Expr:
    """Expected provenance of field ``f`` from its parents' data-version *tokens*."""
    parts: list[exp.Expr] = [lit(hashing.field_provenance_prefix(f.key, f.code_version))]
    for parent in f.parents:
        parts += [lit(hashing.parent_label(*parent)), token_of[parent]]
    return d.digest(concat(d, parts), algorithm)


def sample_digest_expr(
    d: Dialect, by_field: Sequence[tuple[str, exp.Expr]], algorithm: HashAlgorithm
) -> exp.Expr:
    parts: list[exp.Expr] = [lit(hashing.SAMPLE_TAG)]
    for key, value in sorted(by_field, key=lambda kv: kv[0]):
        parts += [lit(hashing.encode(key)), token(d, value)]
    return d.digest(concat(d, parts), algorithm)


# -- latest state -----------------------------------------------------------------------------
def latest_rows(table: str, ids: Sequence[str], outputs: Sequence[exp.Expr]) -> exp.Select:
    """The ids and ``outputs`` (computed from each row) of the latest row per id of a feature
    table: the rows not superseded, soft-deleted ids hidden. Writes keep one row per id not
    superseded (see ``supersede`` and ``supersede_older``), so this is a filter."""
    return (exp.select(*[col(c) for c in ids], *outputs).from_(table_ref(table))
            .where(exp.Not(this=col(names.SUPERSEDED))).where(exp.Not(this=col(names.DELETED))))


# -- resolve ----------------------------------------------------------------------------------
def _empty(d: Dialect, ids: Sequence[str], nulls: Sequence[str],
           source: str | None, source_ids: Sequence[str] | None = None) -> exp.Select:
    """An empty relation standing in for a table never written (ids typed like ``source``;
    ids the source lacks, i.e. not in ``source_ids``, are typed text)."""
    from_source = set(ids if source_ids is None else source_ids) if source else set()
    id_cols: list[exp.Expr] = [
        col(c) if c in from_source else exp.alias_(d.typed_null(d.text_type), c, quoted=True)
        for c in ids]
    select = exp.select(
        *id_cols,
        *[exp.alias_(d.typed_null(d.text_type), n, quoted=True) for n in nulls],
    ).where(exp.false())
    return select.from_(table_ref(source)) if source else select


def _filters(d: Dialect, u: UpstreamPlan) -> list[exp.Expr]:
    """The dependency's filters, as ``d`` evaluates them alike on every engine."""
    where = f"feature dependency {u.feature!r}: filter"
    return [d.predicate(filters.parse_filter(text, where)) for text in u.filters]


def _stored_or(d: Dialect, derived: Derived, table: str, name: str,
               computed: exp.Expr) -> exp.Expr:
    """``computed`` aliased ``name``, or the same value read from the column the engine
    derived and stored in ``table`` (``Dialect.derived_columns``) when it has one."""
    if d.derives_field_columns and (derived is None or name in derived.get(table, frozenset())):
        return col(name)
    return exp.alias_(computed, name, quoted=True)


def _subset_scan(d: Dialect, select: exp.Select, table: str, subset: exp.Expr | None,
                 splits: Splits) -> exp.Select | exp.Union:
    """``select`` (a scan of feature ``table``) restricted to ``subset``: one filter, or, with a
    split for ``table``, the rows past its watermark of the recent ids UNION ALL the rows of
    the others (disjoint id sets, so no row is read twice)."""
    if subset is None:
        return select
    split = (splits or {}).get(table)
    if split is None:
        return select.where(d.subset_rows(table, subset))
    recent = select.copy().where(split.since.copy()).where(split.recent.copy())
    rest = select.where(d.subset_rows(table, split.rest))
    return exp.union(recent, rest, distinct=False)


def _upstream_cte(d: Dialect, plan: FeaturePlan, u: UpstreamPlan, missing: frozenset[str],
                  subset: exp.Expr | None = None, algorithm: HashAlgorithm = "sha256",
                  derived: Derived = None, id_types: IdTypes = None,
                  splits: Splits = None) -> exp.Select | exp.Union:
    keys = u.keys or plan.id_columns
    if u.relation in missing:
        source = None if plan.table in missing else plan.table
        return _empty(d, keys, [*[names.data_version_token_column(f) for f in u.fields],
                                *[t for _, t in u.carried]], source)
    if u.is_samples:
        select = exp.select(
            *[col(c) for c in plan.id_columns],
            *[exp.alias_(d.map_get(col(names.PROVENANCE_BY_FIELD), f), names.provenance_column(f),
                         quoted=True) for f in u.fields],
            *[exp.alias_(col(c), t, quoted=True) for c, t in u.carried],
        ).from_(table_ref(u.relation))
        return select.where(subset.copy()) if subset is not None else select
    if u.lineage == "aggregation":
        return _aggregated_cte(d, u, subset, algorithm, (id_types or {}).get(u.relation, {}))
    preds = _filters(d, u)
    ids = u.member_ids or keys
    carried = [exp.alias_(col(c), t, quoted=True) for c, t in u.carried]
    select = latest_rows(u.relation, ids, [
        *[_stored_or(d, derived, u.relation, names.data_version_token_column(f),
                     d.map_token(col(names.DATA_VERSION_BY_FIELD), f)) for f in u.fields],
        *carried])
    for p in preds:
        select = select.where(p.copy())
    return _subset_scan(d, select, u.relation, subset, splits)


def _aggregated_cte(d: Dialect, u: UpstreamPlan, subset: exp.Expr | None,
                    algorithm: HashAlgorithm, types: Mapping[str, str]) -> exp.Select:
    """One row per group: per upstream field, the digest of the group's member entries
    (``hashing.group_data_version``), concatenated in an engine-independent order. Member
    ids are spelled in their canonical text (``hashing.id_text``) by their stored ``types``."""
    preds = _filters(d, u)
    member = [token(d, d.id_text(col(c), c, types.get(c))) for c in u.member_ids]
    entries = [
        exp.alias_(concat(d, [*[m.copy() for m in member],
                           token(d, exp.paren(d.map_get(col(names.DATA_VERSION_BY_FIELD), f),
                                              copy=False))]),
                   names.member_entry_column(f), quoted=True)
        for f in u.fields]
    members = latest_rows(u.relation, u.member_ids, [*[col(c) for c in u.key_columns],
                                                      *entries])
    # A member whose group key (a parent user column) is NULL belongs to no group: a NULL
    # group could never be written (ids are never NULL), so it would stay new forever.
    no_null_key = [exp.Not(this=exp.Is(this=col(c), expression=exp.Null()))
                   for c in u.key_columns]
    for p in [*preds, *no_null_key,
              *([d.subset_rows(u.relation, subset)] if subset is not None else [])]:
        members = members.where(p.copy())
    return exp.select(
        *[col(c) for c in u.keys],
        *[exp.alias_(token(d, d.digest(concat(d, [lit(hashing.GROUP_TAG), d.ordered_concat(
            col(names.member_entry_column(f)))]), algorithm)),
            names.data_version_token_column(f), quoted=True) for f in u.fields],
    ).from_(members.subquery(names.MEMBERS, copy=False)).group_by(*[col(c) for c in u.keys])


def _expected_cte(d: Dialect, plan: FeaturePlan, algorithm: HashAlgorithm) -> exp.Select:
    first = next(u for u in plan.upstreams if not u.optional)
    keys = first.keys or plan.id_columns
    if plan.is_root:
        return exp.select(
            *[col(c, first.cte) for c in plan.id_columns],
            *[col(names.provenance_column(f), first.cte) for f in plan.field_keys],
            *[col(t, first.cte) for _, t in first.carried],
        ).from_(table_ref(first.cte))
    # An optional parent that is absent (LEFT JOIN) has NULL tokens: encoded as absent.
    token_of: dict[tuple[str, str], exp.Expr] = {
        (u.feature, f): (exp.Coalesce(this=col(names.data_version_token_column(f), u.cte),
                                      expressions=[lit(hashing.ABSENT)]) if u.optional
                         else col(names.data_version_token_column(f), u.cte))
        for u in plan.upstreams for f in u.fields
    }
    select = exp.select(
        *[col(c, first.cte) for c in keys],
        *[
            exp.alias_(field_provenance_expr(d, f, token_of, algorithm),
                       names.provenance_column(f.key), quoted=True)
            for f in plan.fields
        ],
        *[col(t, u.cte) for u in plan.upstreams for _, t in u.carried],
    ).from_(table_ref(first.cte))
    for u in plan.upstreams:
        if u is not first:
            select = select.join(table_ref(u.cte), on=ids_equal(first.cte, u.cte, keys),
                                 join_type="left" if u.optional else "inner")
    return select


def _current_cte(d: Dialect, plan: FeaturePlan, missing: frozenset[str],
                 subset: exp.Expr | None = None, derived: Derived = None,
                 splits: Splits = None) -> exp.Select | exp.Union:
    if plan.table in missing:
        return _empty(d, plan.id_columns, [names.provenance_column(f) for f in plan.field_keys],
                      names.EXPECTED, plan.grain or plan.id_columns)
    select = latest_rows(plan.table, plan.id_columns, [
        _stored_or(d, derived, plan.table, names.provenance_column(f),
                   d.map_get(col(names.PROVENANCE_BY_FIELD), f)) for f in plan.field_keys])
    return _subset_scan(d, select, plan.table, subset, splits)


def _differs(f: str) -> exp.Expr:
    e, c = col(names.provenance_column(f), names.EXPECTED), col(names.provenance_column(f),
                                                                names.CURRENT)
    return exp.or_(exp.NEQ(this=e, expression=c.copy()), exp.Is(this=c, expression=exp.Null()))


def _carried_side(plan: FeaturePlan) -> list[exp.Expr]:
    return [exp.alias_(col(t, names.EXPECTED), t, quoted=True) for t in plan.carried]


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

    empty = _empty_array(d)
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
        *_carried_side(plan),
    ).from_(table_ref(names.EXPECTED)).join(
        table_ref(names.CURRENT), on=ids_equal(names.EXPECTED, names.CURRENT, ids),
        join_type="full outer",
    ).where(exp.or_(no_current.copy(), no_expected.copy(), *[_differs(f) for f in fields]))


def _empty_array(d: Dialect) -> exp.Expr:
    return exp.Cast(this=exp.Array(expressions=[]), to=d.type_(d.text_array_type))


def _flag(condition: exp.Expr) -> exp.Expr:
    """``MAX(CASE WHEN condition THEN 1 ELSE 0 END) = 1``: the condition holds for some row."""
    return exp.EQ(this=exp.Max(this=exp.Case(ifs=[exp.If(this=condition, true=exp.Literal.number(
        1))], default=exp.Literal.number(0))), expression=exp.Literal.number(1))


def _increment_expansion(d: Dialect, plan: FeaturePlan) -> exp.Union:
    """The increment of an expansion: new and stale at parent grain (a parent without children
    is new; a parent with some child whose provenance differs is stale, naming the fields),
    children whose parent is no longer expected orphaned at child grain."""
    grain, fields = plan.grain, plan.field_keys
    matched = exp.Count(this=col(grain[0], names.CURRENT))
    childless = exp.EQ(this=matched, expression=exp.Literal.number(0))
    group = [*[col(c, names.EXPECTED) for c in grain],
             *[col(names.provenance_column(f), names.EXPECTED) for f in fields],
             *[col(t, names.EXPECTED) for t in plan.carried]]
    changed = exp.Case(ifs=[exp.If(this=childless.copy(), true=_empty_array(d))],
                       default=exp.Cast(this=d.non_null_array([
                           exp.Case(ifs=[exp.If(this=_flag(_differs(f)), true=lit(f))])
                           for f in fields]), to=d.type_(d.text_array_type)))
    parents = exp.select(
        exp.alias_(exp.Case(ifs=[exp.If(this=childless, true=lit(names.STATUS_NEW))],
                            default=lit(names.STATUS_STALE)), names.STATUS, quoted=True),
        *[exp.alias_(col(c, names.EXPECTED) if c in grain else exp.Null(), c, quoted=True)
          for c in plan.id_columns],
        *[exp.alias_(col(names.provenance_column(f), names.EXPECTED),
                     names.provenance_column(f), quoted=True) for f in fields],
        exp.alias_(changed, names.CHANGED_FIELDS, quoted=True),
        *_carried_side(plan),
    ).from_(table_ref(names.EXPECTED)).join(
        table_ref(names.CURRENT), on=ids_equal(names.EXPECTED, names.CURRENT, grain),
        join_type="left").group_by(*group).having(
        exp.or_(childless.copy(), *[_flag(_differs(f)) for f in fields]))
    orphans = exp.select(
        exp.alias_(lit(names.STATUS_ORPHANED), names.STATUS, quoted=True),
        *[col(c, names.CURRENT) for c in plan.id_columns],
        *[col(names.provenance_column(f), names.CURRENT) for f in fields],
        exp.alias_(_empty_array(d), names.CHANGED_FIELDS, quoted=True),
        *[exp.alias_(exp.Null(), t, quoted=True) for t in plan.carried],
    ).from_(table_ref(names.CURRENT)).join(
        table_ref(names.EXPECTED), on=ids_equal(names.CURRENT, names.EXPECTED, grain),
        join_type="left").where(exp.Is(this=col(grain[0], names.EXPECTED), expression=exp.Null()))
    return exp.union(parents, orphans, distinct=False)


def resolve_statement(
    d: Dialect, plan: FeaturePlan, algorithm: HashAlgorithm,
    missing: frozenset[str] = frozenset(), *, subset: exp.Expr | None = None,
    derived: Derived = None, id_types: IdTypes = None, splits: Splits = None,
) -> exp.Select:
    """The one statement yielding the whole increment of ``plan.feature``.

    ``missing`` names feature tables never written: they read as empty relations.
    ``derived`` maps each table read to the columns it has; a per-field column the dialect
    derives (``Dialect.derived_columns``) is read where the table has it, else computed from
    the map. ``None``: every table has them (as the store creates tables).
    ``id_types`` gives the stored types of aggregated parents' id columns, spelled in their
    canonical text (``None``: unknown, cast to text: right for string and integer ids).
    ``subset`` (a checked predicate over ``plan.grain``, see :mod:`metaxy_sql.model.filters`)
    restricts the resolve to those samples: it is pushed into every upstream and the current
    state, so the result is the full increment filtered to the subset. ``splits`` (with
    ``subset`` only; table -> :class:`RecentSplit`) read some tables' subset rows in two
    parts: an incremental refresh's shape, same rows.

    Columns: ``metaxy_status`` (new/stale/orphaned), the id columns, the expected (for
    orphaned: stored) ``metaxy_provenance_by_field`` and ``metaxy_provenance``, and
    ``metaxy_changed_fields`` (stale samples: the fields whose provenance changed), then the
    carried upstream columns (new and stale rows). For an expansion, new and stale rows are
    one per parent: the child-only id columns are NULL.
    """
    by_field = [(f, col(names.provenance_column(f))) for f in plan.field_keys]
    select = exp.select(
        col(names.STATUS),
        *[col(c) for c in plan.id_columns],
        exp.alias_(d.map_build(by_field), names.PROVENANCE_BY_FIELD, quoted=True),
        exp.alias_(sample_digest_expr(d, by_field, algorithm), names.PROVENANCE, quoted=True),
        col(names.CHANGED_FIELDS),
        *[col(t) for t in plan.carried],
    ).from_(table_ref(names.INCREMENT))
    ctes: list[tuple[str, exp.Expr]] = [
        (u.cte, _upstream_cte(d, plan, u, missing, subset, algorithm, derived, id_types,
                              splits))
        for u in plan.upstreams]
    ctes += [
        (names.EXPECTED, _expected_cte(d, plan, algorithm)),
        (names.CURRENT, _current_cte(d, plan, missing, subset, derived, splits)),
        (names.INCREMENT, _increment_expansion(d, plan) if plan.is_expansion
         else _increment_full_join(d, plan)),
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
    write_seq: int,
    algorithm: HashAlgorithm,
) -> exp.Select:
    """Rows to append to a feature table, with every hash computed in the engine.

    The data version of a field is the writer's override when given, else its provenance.
    ``write_seq``: the write's position in the table's write order (``metaxy_write_seq``).
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
        exp.alias_(write_seq_literal(d, write_seq), names.WRITE_SEQ, quoted=True),
    ).from_(inner.subquery(staged, copy=False))


def copied_select(d: Dialect, staged: str, columns: Sequence[str], base: int, *,
                  hidden: bool) -> exp.Select:
    """Rows copied from another store, as they were written: every column of ``staged``
    as is, except positions shifted by ``base`` and, with ``hidden``, every row superseded
    (made visible afterwards by ``settle_superseded``, on engines without transactions)."""
    out: list[exp.Expr] = []
    for c in columns:
        if c == names.WRITE_SEQ:
            out.append(exp.alias_(exp.Cast(
                this=exp.Add(this=col(c), expression=exp.Literal.number(base)),
                to=d.type_(d.write_seq_type)), c, quoted=True))
        elif c == names.SUPERSEDED and hidden:
            out.append(exp.alias_(exp.true(), c, quoted=True))
        else:
            out.append(col(c))
    return exp.select(*out).from_(table_ref(staged))


def write_seq_literal(d: Dialect, write_seq: int) -> exp.Expr:
    """A write position, typed (an untyped literal would create a 32-bit column)."""
    return exp.Cast(this=exp.Literal.number(write_seq), to=d.type_(d.write_seq_type))


def insert(table: str, columns: Sequence[str], select: exp.Select) -> exp.Insert:
    return exp.insert(select, table_ref(table),
                      columns=[exp.to_identifier(c, quoted=True) for c in columns])


def tombstones_select(d: Dialect, staged: str, id_columns: Sequence[str],
                      created_at: str, write_seq: int) -> exp.Select:
    """One soft-delete tombstone per distinct id in ``staged``, at position ``write_seq``."""
    return exp.select(
        *[col(c) for c in id_columns],
        exp.alias_(d.timestamp_literal(created_at), names.CREATED_AT, quoted=True),
        exp.alias_(exp.true(), names.DELETED, quoted=True),
        exp.alias_(exp.false(), names.SUPERSEDED, quoted=True),
        exp.alias_(write_seq_literal(d, write_seq), names.WRITE_SEQ, quoted=True),
    ).from_(table_ref(staged)).distinct()


# -- write order ------------------------------------------------------------------------------
_TABLE_NAME = "table_name"


def write_order_ddl(d: Dialect) -> exp.Expr:
    """``CREATE TABLE IF NOT EXISTS`` of the write-order table: one counter row per feature
    table (keyed by its name), or a log of positions where ``d.write_order_log``."""
    columns = [(_TABLE_NAME, d.text_type), (names.WRITE_SEQ, d.write_seq_type)]
    if d.write_order_log:
        return d.system_table_ddl(table_ref(names.WRITE_ORDER), columns, [_TABLE_NAME])
    key = exp.ColumnDef(this=exp.to_identifier(_TABLE_NAME, quoted=True),
                        kind=d.type_(d.text_type),
                        constraints=[exp.ColumnConstraint(kind=exp.PrimaryKeyColumnConstraint())])
    seq = exp.ColumnDef(this=exp.to_identifier(names.WRITE_SEQ, quoted=True),
                        kind=d.type_(d.write_seq_type),
                        constraints=[exp.ColumnConstraint(kind=exp.NotNullColumnConstraint())])
    return exp.Create(kind="TABLE", exists=True, this=exp.Schema(
        this=table_ref(names.WRITE_ORDER), expressions=[key, seq]))


def next_write_seq(table: str) -> exp.Insert:
    """Take the next position of ``table`` from its counter row, returning it (the row stays
    locked until the write's transaction ends)."""
    counter = col(names.WRITE_SEQ, names.WRITE_ORDER)
    insert = exp.insert(exp.values([(lit(table), exp.Literal.number(1))]),
                        table_ref(names.WRITE_ORDER),
                        columns=[exp.to_identifier(c, quoted=True)
                                 for c in (_TABLE_NAME, names.WRITE_SEQ)])
    insert.set("conflict", exp.OnConflict(
        conflict_keys=[exp.to_identifier(_TABLE_NAME, quoted=True)], action=exp.var("DO UPDATE"),
        expressions=[exp.EQ(this=col(names.WRITE_SEQ), expression=exp.Add(
            this=counter, expression=exp.Literal.number(1)))]))
    insert.set("returning", exp.Returning(expressions=[col(names.WRITE_SEQ)]))
    return insert


def raise_write_seq(d: Dialect, table: str, position: int) -> exp.Insert:
    """Move the counter row of ``table`` up to ``position`` (never down): rows copied from
    another store keep their positions, and the next write comes after them."""
    counter = col(names.WRITE_SEQ, names.WRITE_ORDER)
    value = write_seq_literal(d, position)
    insert = exp.insert(exp.values([(lit(table), value)]), table_ref(names.WRITE_ORDER),
                        columns=[exp.to_identifier(c, quoted=True)
                                 for c in (_TABLE_NAME, names.WRITE_SEQ)])
    insert.set("conflict", exp.OnConflict(
        conflict_keys=[exp.to_identifier(_TABLE_NAME, quoted=True)], action=exp.var("DO UPDATE"),
        expressions=[exp.EQ(this=col(names.WRITE_SEQ), expression=exp.Greatest(
            this=counter, expressions=[value.copy()]))]))
    return insert


def last_logged_write_seq(table: str) -> exp.Select:
    """The greatest position logged for ``table`` (0 when none), where positions are a log."""
    return exp.select(exp.Coalesce(
        this=exp.Max(this=col(names.WRITE_SEQ)), expressions=[exp.Literal.number(0)])).from_(
        table_ref(names.WRITE_ORDER)).where(exp.EQ(this=col(_TABLE_NAME), expression=lit(table)))


def log_write_seq(d: Dialect, table: str, write_seq: int) -> exp.Insert:
    """Append position ``write_seq`` of ``table`` to the write-order log."""
    return exp.insert(
        exp.select(exp.alias_(lit(table), _TABLE_NAME, quoted=True),
                   exp.alias_(write_seq_literal(d, write_seq), names.WRITE_SEQ, quoted=True)),
        table_ref(names.WRITE_ORDER),
        columns=[exp.to_identifier(c, quoted=True) for c in (_TABLE_NAME, names.WRITE_SEQ)])


def pending_where_written(select: exp.Select, table: str, staged: str,
                          id_columns: Sequence[str]) -> exp.Select:
    """``select`` (rows to append from ``staged``) with ``metaxy_superseded`` true for the
    ids ``table`` already has: those rows stay invisible until ``settle_superseded`` flips
    them and the rows they replace at once. Rows of new ids go in live: nothing to replace,
    and a first write of many ids leaves no flag to update."""
    # The set holds only the staged ids the table has (the primary key finds them), not
    # every id of the table.
    written = ids_in(id_columns, ids_of(table, id_columns).where(
        ids_in(id_columns, ids_of(staged, id_columns))))
    out = select.copy()
    out.set("expressions", [
        exp.alias_(written.copy(), names.SUPERSEDED, quoted=True)
        if e.alias_or_name == names.SUPERSEDED else e for e in out.expressions])
    return out


def supersede(table: str, staged: str, id_columns: Sequence[str]) -> exp.Update:
    """Mark the live rows of the ids in ``staged`` superseded (before appending their new rows)."""
    sub = exp.select(exp.Literal.number(1)).from_(table_ref(staged)).where(
        ids_equal(staged, table, id_columns))
    return exp.update(
        table_ref(table), {names.SUPERSEDED: exp.true()},
        where=exp.and_(exp.Not(this=col(names.SUPERSEDED, table)), exp.Exists(this=sub)))


def settle_superseded(table: str, id_columns: Sequence[str], d: Dialect,
                      staged: str | None) -> exp.Update:
    """Set ``metaxy_superseded`` of every row of some ids to "not the newest row of its id".

    For engines without multi-statement transactions (``Dialect.supersede_after_insert``):
    a write appends the rows of ids already written superseded (``pending_where_written``),
    then this one UPDATE makes them live and supersedes the rows they replace at once, so a
    reader sees each id before or after the write, never both; a crash between the two
    statements leaves those rows unseen, as a rollback would.

    The newest row per id is the first in write order: ``metaxy_write_seq``, then
    ``Dialect.insert_order`` (two concurrent writes may share a position), all descending,
    over every row of the id; writer clocks never decide. Rows written before positions
    existed (position 0) fall back to ``metaxy_created_at``, tombstone and data version.
    Only rows whose flag is wrong are updated. Concurrent writers of the same ids converge:
    each run computes the same answer from all rows present.

    ``staged``: the ids of that staged relation (a write); ``None``: the ids that have more
    than one live row (repairs a table written before writes superseded).
    """
    ids = [col(c) for c in id_columns]
    if staged is not None:
        scope = ids_of(staged, id_columns)
    else:
        scope = (ids_of(table, id_columns).where(exp.Not(this=col(names.SUPERSEDED)))
                 .group_by(*[c.copy() for c in ids])
                 .having(exp.GT(this=exp.Count(this=exp.Star()),
                                expression=exp.Literal.number(1))))
    in_scope = ids_in(id_columns, scope)
    order = [col(names.WRITE_SEQ), *d.insert_order(),
             *[col(c) for c in (names.CREATED_AT, names.DELETED, names.DATA_VERSION)]]
    row = exp.Tuple(expressions=[*[c.copy() for c in ids], *[c.copy() for c in order]])
    newest = d.latest_per_id(table_ref(table), ids, [e.copy() for e in row.expressions],
                             [d.order_desc(c.copy()) for c in order]).where(in_scope.copy())
    is_newest = exp.paren(exp.In(this=row, query=exp.Subquery(this=newest)), copy=False)
    return exp.update(table_ref(table), {names.SUPERSEDED: exp.Not(this=is_newest)},
                      where=exp.and_(in_scope, exp.EQ(this=col(names.SUPERSEDED),
                                                      expression=is_newest.copy())))


def hard_delete(table: str, staged: str, id_columns: Sequence[str], *,
                dialect: Dialect | None = None) -> exp.Delete:
    """Delete every row (history included) of the ids in ``staged``."""
    if dialect is not None and not dialect.correlated_delete:
        return exp.delete(table_ref(table), where=ids_in(id_columns, ids_of(staged, id_columns)))
    sub = exp.select(exp.Literal.number(1)).from_(table_ref(staged)).where(
        ids_equal(staged, table, id_columns))
    return exp.delete(table_ref(table), where=exp.Exists(this=sub))


def read_latest(table: str, id_columns: Sequence[str], columns: Sequence[str]) -> exp.Select:
    """Latest state of a feature table: the newest live row per id, ordered by id."""
    return latest_rows(table, id_columns, [col(c) for c in columns]).order_by(
        *[col(c) for c in id_columns])


def read_history(table: str, id_columns: Sequence[str],
                 d: Dialect | None = None) -> exp.Select:
    """Every row ever written (tombstones included), per id in write order (oldest first)."""
    tie_break = d.insert_order() if d is not None else []
    return exp.select(exp.Star()).from_(table_ref(table)).order_by(
        *[col(c) for c in id_columns], col(names.WRITE_SEQ), *tie_break, col(names.CREATED_AT))


def add_column(table: str, column: str, sql_type: str, d: Dialect,
               default: int | None = None) -> exp.Alter:
    """Add a user column first seen in a later write (``IF NOT EXISTS``: a concurrent writer
    may add it first); ``default``: the value existing rows get."""
    constraints = ([] if default is None else [exp.ColumnConstraint(
        kind=exp.DefaultColumnConstraint(this=exp.Literal.number(default)))])
    return exp.Alter(
        this=table_ref(table), kind="TABLE",
        actions=[exp.ColumnDef(this=exp.to_identifier(column, quoted=True),
                               kind=exp.DataType.build(sql_type, dialect=d.sqlglot_dialect),
                               exists=True, constraints=constraints)])


def add_derived_columns(table: str, columns: Sequence[DerivedColumn],
                        d: Dialect) -> exp.Alter:
    """Add per-field columns the engine derives from the maps (``Dialect.derived_columns``),
    in one statement (each ALTER is a metadata change: one per column cost ~0.3 s on chdb);
    rows written before them are computed on read, by the same expressions."""
    definitions = [derived_column_def(d, c) for c in columns]
    for definition in definitions:
        definition.set("exists", True)
    return exp.Alter(this=table_ref(table), kind="TABLE", actions=definitions)


def count_query(select: exp.Select) -> exp.Select:
    """``SELECT COUNT(*)`` over a query, computed in the engine."""
    return exp.select(exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True)).from_(
        select.subquery("counted"))


def drop_table(table: str) -> exp.Drop:
    return exp.Drop(tables=[table_ref(table)], kind="TABLE", exists=True)
