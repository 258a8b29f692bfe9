"""ClickHouse dialect (a server, or chdb in-process): every ClickHouse quirk lives here.

>>> from sqlglot import exp
>>> d = ClickHouseDialect()
>>> print(d.render(d.map_get(exp.column("m", quoted=True), "audio"), pretty=False))
CASE WHEN mapContains("m", 'audio') THEN "m"['audio'] ELSE NULL END
>>> d.render(d.typed_null("String"), pretty=False)
'CAST(NULL AS Nullable(String))'
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from sqlglot import exp

from metaxy_sql.compile.dialects.base import DerivedColumn, Dialect, IdKind, call, lit
from metaxy_sql.model import filters, names
from metaxy_sql.model.hashing import ABSENT, HashAlgorithm

#: Types whose values can be wrapped in ``Nullable(...)`` (composite types cannot).
_COMPOSITE = ("Array(", "Map(", "Tuple(", "Nullable(", "LowCardinality(")


class ClickHouseDialect(Dialect):
    name = "clickhouse"
    sqlglot_dialect = "clickhouse"

    text_type = "String"
    map_type = "Map(String, String)"
    timestamp_type = "DateTime64(6, 'UTC')"
    bool_type = "Bool"
    text_array_type = "Array(String)"
    write_seq_type = "Int64"
    # No transactions, so no counter row to lock: write positions are appended to a log.
    write_order_log = True
    # Write positions need not follow commit order here (no transactions): a refresh's
    # watermark is the insert block number instead, persisted per row by the table settings
    # below. A plain MergeTree numbers a part when it commits it, under the table's parts
    # lock, so parts become visible in block-number order (engine.incremental).
    watermark_column = names.BLOCK_NUMBER
    python_types = {
        str: "String", int: "Int64", float: "Float64", bool: "Bool",
        dt.datetime: "DateTime64(6, 'UTC')",
    }

    # Mutations (lightweight DELETE included) reject correlated subqueries (NOT_IMPLEMENTED).
    correlated_delete = False
    # Writes supersede through a lightweight UPDATE (a patch part holding only the flags it
    # changes, applied at read time until merged; 25.7+):
    # https://clickhouse.com/docs/sql-reference/statements/update
    # The latest state is then a filter: picking the newest row per id at read time
    # (ORDER BY ... LIMIT 1 BY) cost 0.2-0.3 s per 1M-row table on chdb. There is no
    # multi-statement transaction: rows are appended superseded (invisible) and one UPDATE
    # then flips the written ids' rows at once; a crash in between leaves the write unseen.
    supersede_after_insert = True
    session_settings = {
        # The default DELETE is a background mutation that cannot see the session's temporary
        # (staged) tables; patch-part deletes run in the session, synchronously (25.7+):
        # https://clickhouse.com/docs/sql-reference/statements/delete
        "lightweight_delete_mode": "lightweight_update_force",
        # Lightweight UPDATE is beta; 25.7 and 25.8 need it allowed (later: on by default).
        "allow_experimental_lightweight_update": "1",
        # A wide feature's statements outgrow the parser's limits (defaults 256 KiB of text,
        # 50k / 500k syntax-tree nodes): 300 fields each reading a parent's fields write
        # through an INSERT over 256 KiB. Raised, not removed (a runaway query still stops).
        # https://clickhouse.com/docs/operations/settings/settings#max_query_size
        "max_query_size": str(64 * 2**20),
        "max_ast_elements": str(5_000_000),
        "max_expanded_ast_elements": str(50_000_000),
    }
    #: Engine of feature tables. Plain MergeTree: a Replacing/Collapsing engine would merge
    #: away the history the store keeps; writes flag the rows they replace instead.
    table_engine = "MergeTree"
    #: Table settings: block number/offset columns enable the patch-part updates above (and
    #: order rows by insertion, ``insert_order``).
    table_settings: Sequence[tuple[str, int]] = (
        ("enable_block_number_column", 1), ("enable_block_offset_column", 1))

    def parts_past(self, table: str, mark: int) -> exp.Expr | None:
        # A part's rows have block numbers within its [min_block_number, max_block_number]
        # (merges keep each row's _block_number, persisted by the table settings), so the
        # parts wholly at or below ``mark`` hold no row past it. Excluding those (rather
        # than listing the others) stays exact when a merge replaces them during the read:
        # the merged part is not excluded. A filter on _part prunes parts before reading;
        # one on _block_number beside a patched column fails on chdb 26.x
        # (NOT_FOUND_COLUMN_IN_BLOCK), and reading that column applies the patch parts
        # to every row (at 1M rows: 87 ms for the whole table, 8 ms for the new parts).
        listed = exp.select(exp.column("name")).from_(
            exp.table_("parts", db="system")).where(exp.and_(
                exp.EQ(this=exp.column("database"), expression=call("currentDatabase")),
                exp.EQ(this=exp.column("table"), expression=exp.Literal.string(table)),
                exp.LTE(this=exp.column("max_block_number"),
                        expression=exp.Literal.number(mark))))
        return exp.Not(this=exp.In(this=exp.column("_part"), query=listed.subquery()))

    def typed_null(self, sql_type: str) -> exp.Expr:
        # CAST(NULL AS String) fails (CANNOT_CONVERT_TYPE): only Nullable types hold NULL.
        return exp.Cast(this=exp.Null(), to=self.type_(nullable(sql_type)))

    def hex_digest(self, text: exp.Expr, algorithm: HashAlgorithm) -> exp.Expr:
        # SHA256()/MD5() return raw bytes in ClickHouse (sqlglot's default keeps them raw);
        # the function names are case-sensitive (sha256() is UNKNOWN_FUNCTION).
        return call("lower", call("hex", call(algorithm.upper(), text)))

    def byte_length(self, text: exp.Expr) -> exp.Expr:
        # ClickHouse length() of a String counts bytes (sqlglot's Length renders CHAR_LENGTH).
        return call("length", text)

    def int_to_text(self, value: exp.Expr) -> exp.Expr:
        # CAST(x AS String) renders as Nullable(String) through sqlglot; toString is exact.
        return call("toString", value)

    def id_kind(self, engine_type: str) -> IdKind | None:
        t = non_nullable(engine_type)
        if t.startswith("LowCardinality("):
            t = non_nullable(t[len("LowCardinality("):-1])
        if t == "String" or t.startswith("FixedString("):
            return "text"
        if t.startswith(("Int", "UInt")):
            return "int"
        if t.startswith("Decimal"):
            return "decimal"
        if t.startswith("DateTime"):  # DateTime64(p, 'zone'): an instant, printed in UTC
            return "timestamp"
        return {"Bool": "bool", "Date": "date", "Date32": "date"}.get(t)

    def timestamp_text(self, value: exp.Expr, with_zone: bool) -> exp.Expr:
        # toString of a DateTime64(6, 'UTC') always prints 6 fractional digits, in UTC.
        return call("toString", call("toDateTime64", value, exp.Literal.number(6), lit("UTC")))

    def map_get(self, mapping: exp.Expr, key: str) -> exp.Expr:
        # m['k'] returns '' (not NULL) for a missing key:
        # https://clickhouse.com/docs/sql-reference/data-types/map
        return exp.If(
            this=call("mapContains", mapping, lit(key)),
            true=exp.Bracket(this=mapping, expressions=[lit(key)]),
            false=exp.Null(),
        )

    def map_token(self, mapping: exp.Expr, key: str) -> exp.Expr:
        # Built from the map without a Nullable intermediate: hashing a Nullable(String) token
        # costs ~3x the plain String one (1.0 s vs 0.36 s per 1M rows, chdb 26.9).
        value = exp.Bracket(this=mapping, expressions=[lit(key)])
        return exp.If(
            this=call("mapContains", mapping.copy(), lit(key)),
            true=call("concat", call("toString", call("length", value)), lit(":"),
                      value.copy()),
            false=lit(ABSENT),
        )

    def map_build(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        # sqlglot's exp.Map renders `MAP(...)` forms ClickHouse rejects; map(k1, v1, ...) is
        # native. Keys arrive sorted, so maps compare equal (Map equality is order-sensitive).
        args: list[exp.Expr] = []
        for k, v in pairs:
            args += [lit(k), v]
        return call("map", *args)

    def non_null_array(self, items: list[exp.Expr]) -> exp.Expr:
        # sqlglot's ArrayFilter/ArrayRemove do not render runnable ClickHouse: call it directly.
        x = exp.to_identifier("x")
        return call(
            "arrayFilter",
            exp.Lambda(this=call("isNotNull", x), expressions=[x]),
            exp.Array(expressions=items),
        )

    def ordered_concat(self, value: exp.Expr) -> exp.Expr:
        # No ordered string aggregate: sort the group's array (byte order) and join it.
        return call("arrayStringConcat", call("arraySort", call("groupArray", value.copy())))

    def insert_order(self) -> list[exp.Expr]:
        # Block number and offset within the block (enabled by the table settings): two
        # writers writing the same ids in the same microsecond still have a newest row.
        return [exp.column("_block_number"), exp.column("_block_offset")]

    def latest_per_id(
        self, source: exp.Table, ids: Sequence[exp.Column], columns: Sequence[exp.Expr],
        order: Sequence[exp.Ordered],
    ) -> exp.Select:
        # LIMIT 1 BY keeps the first row per id after the sort: no window state per row
        # (about 2x faster than ROW_NUMBER() on 1M ids). The order is total, so it is exact.
        limit = exp.Limit(expression=exp.Literal.number(1), expressions=[c.copy() for c in ids])
        select = exp.select(*columns).from_(source).order_by(*[c.copy() for c in ids], *order)
        select.set("limit", limit)
        return select

    def predicate(self, predicate: exp.Expr) -> exp.Expr:
        # ClickHouse compares floats by IEEE-754 (NaN > 1.0 and NaN = NaN false) and matches
        # IN lists by bit pattern (-0.0 not IN (0.0)); DuckDB and Postgres use the SQL total
        # order (NaN equal to itself, above every number). Each comparison gets the NaN cases
        # spelled out with ``x <> x`` (true only for NaN, valid for any column type), innermost
        # first, so a NaN row gets the status it gets on the other engines.
        tree = predicate.copy()
        nodes = list(tree.walk())  # pre-order: reversed, every node comes after its children
        for node in reversed(nodes):
            new = _total_order(node)
            if new is not node:
                if node is tree:
                    tree = new
                else:
                    node.replace(new)
        return tree

    def statement_settings(self) -> list[exp.Expr]:
        return [
            # Outer joins fill unmatched columns with ''/0 unless join_use_nulls = 1; the
            # FULL JOIN increment tells new/orphaned apart by NULL ids.
            exp.EQ(this=exp.var("join_use_nulls"), expression=exp.Literal.number(1)),
            # A sort-merge join beats the default hash join about 2x on 1M String ids (the
            # hash table of one side no longer has to be built and probed on 2 cores).
            exp.EQ(this=exp.var("join_algorithm"), expression=lit("full_sorting_merge,hash")),
        ]

    # -- DDL --------------------------------------------------------------------------------
    def current_schema(self) -> exp.Expr:
        return call("currentDatabase")

    def catalog_condition(self, catalog_column: exp.Column) -> exp.Expr | None:
        # information_schema's table_catalog is the database itself: no catalog above it.
        return None

    def snapshot_ddl(self, table: exp.Table, select: exp.Select) -> list[exp.Expr]:
        # CREATE TABLE AS needs an engine; ORDER BY tuple() accepts the Nullable columns that
        # join_use_nulls gives. OR REPLACE swaps atomically in Atomic databases (the default).
        props = exp.Properties(expressions=[
            exp.EngineProperty(this=exp.var(self.table_engine)),
            exp.Order(expressions=[exp.Ordered(this=exp.Tuple(expressions=[]))])])
        return [exp.Create(kind="TABLE", replace=True, this=table, expression=select,
                           properties=props)]

    def temporary_table_as(self, table: exp.Table, select: exp.Select) -> exp.Create:
        # A temporary table needs an engine; Memory lives in the session like staged rows.
        return exp.Create(kind="TABLE", this=table, expression=select,
                          properties=exp.Properties(expressions=[
                              exp.TemporaryProperty(), exp.EngineProperty(this=exp.var("Memory"))]))

    def drop_temporary(self, name: str) -> exp.Drop:
        # Temporary tables live outside every database: DROP TEMPORARY TABLE finds only them.
        return exp.Drop(tables=[exp.Table(this=exp.to_identifier(name, quoted=True))],
                        kind="TABLE", exists=True, temporary=True)

    def incremental_table_ddl(self, table: exp.Table, select: exp.Select,
                              grain: Sequence[str]) -> list[exp.Expr]:
        # Refreshes delete rows with lightweight DELETE, which (in the session's
        # lightweight_update_force mode) needs the block number and offset columns.
        # ORDER BY tuple(): join_use_nulls makes the increment's columns Nullable.
        props = exp.Properties(expressions=[
            exp.EngineProperty(this=exp.var(self.table_engine)),
            exp.Order(expressions=[exp.Ordered(this=exp.Tuple(expressions=[]))]),
            exp.SettingsProperty(expressions=[
                exp.EQ(this=exp.var(k), expression=exp.Literal.number(v))
                for k, v in self.table_settings])])
        return [exp.Create(kind="TABLE", replace=True, this=table, expression=select,
                           properties=props)]

    def system_table_ddl(self, table: exp.Table, columns: Sequence[tuple[str, str]],
                         order_by: Sequence[str]) -> exp.Create:
        return self.create_table_ddl(table, columns, order_by)

    def column_type(self, column: str, described: str, id_columns: Sequence[str]) -> str:
        """Stored type of ``column`` given the type ClickHouse infers for the write SELECT."""
        fixed = {
            names.PROVENANCE_BY_FIELD: self.map_type, names.DATA_VERSION_BY_FIELD: self.map_type,
            names.PROVENANCE: self.text_type, names.DATA_VERSION: self.text_type,
            names.FEATURE_VERSION: self.text_type, names.CREATED_AT: self.timestamp_type,
            names.DELETED: self.bool_type, names.WRITE_SEQ: self.write_seq_type,
        }
        if column in fixed:
            return fixed[column]
        if column in id_columns:  # sorting keys cannot be Nullable (allow_nullable_key = 0)
            return non_nullable(described)
        return described

    def nullable_type(self, sql_type: str) -> str:
        # ClickHouse columns are NOT NULL unless their type says Nullable(...).
        return nullable(sql_type)

    def derived_columns(self, field_keys: Sequence[str]) -> list[DerivedColumn]:
        # MATERIALIZED per-field columns: reading a Map(String, String) value costs ~1.6x a
        # plain String column (chdb 26.9, 1M rows; resolve 0.45 s -> 0.31 s with them). They
        # are computed on insert (and on the fly for parts written before they existed), are
        # not part of SELECT *, and equal the map lookups by definition.
        by_dv, by_prov = (exp.column(c, quoted=True) for c in (names.DATA_VERSION_BY_FIELD,
                                                               names.PROVENANCE_BY_FIELD))
        out: list[DerivedColumn] = []
        for f in field_keys:
            out.append(DerivedColumn(names.data_version_token_column(f), self.text_type,
                                     self.map_token(by_dv, f)))
            out.append(DerivedColumn(names.provenance_column(f), nullable(self.text_type),
                                     self.map_get(by_prov, f)))
        return out

    def create_table_ddl(
        self, table: exp.Table, columns: Sequence[tuple[str, str]], order_by: Sequence[str],
        *, cluster: str | None = None, engine: exp.Expr | None = None,
        derived: Sequence[DerivedColumn] = (),
    ) -> exp.Create:
        """``CREATE TABLE IF NOT EXISTS`` of a feature table, ordered by its id columns."""
        props: list[exp.Expr] = []
        keys: list[exp.Expr] = [exp.column(c, quoted=True) for c in order_by]
        if cluster:
            props.append(exp.OnCluster(this=exp.to_identifier(cluster, quoted=True)))
        props += [
            exp.EngineProperty(this=engine or exp.var(self.table_engine)),
            exp.Order(expressions=[exp.Ordered(this=keys[0] if len(keys) == 1
                                               else exp.Tuple(expressions=keys))]),
            exp.SettingsProperty(expressions=[
                exp.EQ(this=exp.var(k), expression=exp.Literal.number(v))
                for k, v in self.table_settings]),
        ]
        return exp.Create(kind="TABLE", exists=True,
                          this=self.column_schema(table, columns, derived),
                          properties=exp.Properties(expressions=props))

    def table_ddl(self, table: exp.Table, columns: Sequence[tuple[str, str]],
                  id_columns: Sequence[str], field_keys: Sequence[str] = ()) -> list[exp.Expr]:
        return [self.create_table_ddl(table, columns, id_columns,
                                      derived=self.derived_columns(field_keys))]

    def cluster_table_ddl(self, table: exp.Table, columns: Sequence[tuple[str, str]],
                          id_columns: Sequence[str], cluster: str,
                          field_keys: Sequence[str] = ()) -> list[exp.Expr]:
        # Every version of a sample must live on one shard (the latest row is picked per id):
        # a ReplicatedMergeTree <table>__local per node, a Distributed <table> sharded by ids.
        # https://clickhouse.com/docs/engines/table-engines/special/distributed
        local = f"{table.name}__local"
        replicated = call("ReplicatedMergeTree",
                          lit(f"/clickhouse/tables/{{shard}}/{{database}}/{local}"),
                          lit("{replica}"))
        sharding = call("cityHash64", *[exp.column(c, quoted=True) for c in id_columns])
        distributed = call("Distributed", lit(cluster), call("currentDatabase"), lit(local),
                           sharding)
        local_table = exp.Table(this=exp.to_identifier(local, quoted=True))
        derived = self.derived_columns(field_keys)
        return [
            self.create_table_ddl(local_table, columns, id_columns, cluster=cluster,
                                  engine=replicated, derived=derived),
            exp.Create(kind="TABLE", exists=True,
                       this=self.column_schema(table, columns, derived),
                       properties=exp.Properties(expressions=[
                           exp.OnCluster(this=exp.to_identifier(cluster, quoted=True)),
                           exp.EngineProperty(this=distributed)])),
        ]

    def temporary_table_ddl(self, table: exp.Table,
                            columns: Sequence[tuple[str, str]]) -> exp.Create:
        """A session-scoped Memory table holding staged rows (invisible to other sessions)."""
        return exp.Create(
            kind="TABLE", this=self.column_schema(table, columns),
            properties=exp.Properties(expressions=[
                exp.TemporaryProperty(), exp.EngineProperty(this=exp.var("Memory"))]),
        )


#: What is known at compile time of an operand being NaN: True/False for literals, else the
#: runtime test ``x <> x`` (true only for NaN under IEEE, NULL for NULL, false for text and
#: integers: valid for a column of any type).
_NaN = bool | exp.Expr


def _nan(operand: exp.Expr) -> _NaN:
    if isinstance(operand, exp.Literal | exp.Neg | exp.Boolean):
        value = filters.float_value(operand)
        return value is not None and math.isnan(value)
    return exp.paren(exp.NEQ(this=operand.copy(), expression=operand.copy()), copy=False)


def _not(value: _NaN) -> _NaN:
    return (not value) if isinstance(value, bool) else exp.Not(this=value)


def _and(left: _NaN, right: _NaN) -> _NaN:
    if isinstance(left, bool):
        return right if left else False
    if isinstance(right, bool):
        return left if right else False
    return exp.and_(left, right, copy=False)


def _or(base: exp.Expr, extra: _NaN) -> exp.Expr:
    if extra is False:
        return base
    if extra is True:
        return exp.true()
    return exp.paren(exp.or_(base, extra, copy=False), copy=False)


def _known(operand: exp.Expr) -> _NaN:
    """True when ``operand`` is not NULL (a literal), else ``operand IS NOT NULL``."""
    if isinstance(operand, exp.Literal | exp.Neg | exp.Boolean):
        return True
    return exp.Not(this=exp.Is(this=operand.copy(), expression=exp.Null()))


def _compare(kind: type[exp.Expr], a: exp.Expr, b: exp.Expr) -> exp.Expr:
    """``a <kind> b`` in the SQL total order (NaN = NaN, NaN above all) from ClickHouse's
    IEEE comparisons, which are false whenever a side is NaN; NULL stays NULL."""
    base = kind(this=a.copy(), expression=b.copy())
    if isinstance(a, exp.Null) or isinstance(b, exp.Null):
        return base  # NULL on every engine
    if kind is exp.EQ:    # both NaN
        return _or(base, _and(_nan(a), _nan(b)))
    if kind is exp.NEQ:   # IEEE: NaN <> NaN is true; here false
        extra = _and(_nan(a), _nan(b))
        if extra is False:
            return base
        return exp.paren(exp.and_(base, exp.Not(this=exp.paren(
            exp.true() if extra is True else extra, copy=False)), copy=False), copy=False)
    if kind is exp.GT:    # a NaN, b a number
        return _or(base, _and(_nan(a), _not(_nan(b))))
    if kind is exp.LT:
        return _or(base, _and(_nan(b), _not(_nan(a))))
    if kind is exp.GTE:   # a NaN, b anything not NULL
        return _or(base, _and(_nan(a), _known(b)))
    return _or(base, _and(_nan(b), _known(a)))  # LTE


def _risky_in(value: exp.Expr) -> bool:
    """An ``IN`` literal ClickHouse would match by bit pattern where ``=`` differs: a zero
    (``-0.0`` is not ``IN (0.0)``) or a NaN (``'-nan'`` is not ``IN ('nan')``)."""
    v = filters.float_value(value)
    return v is not None and (v == 0 or math.isnan(v))


def _text(value: exp.Expr) -> bool:
    """A text ``IN`` literal: ClickHouse converts an IN set to the column type strictly
    (``'2026-01-01 00:00:00Z'`` fails against a ``DateTime64``) and ``=`` leniently."""
    return isinstance(value, exp.Literal) and value.is_string


def _total_order(node: exp.Expr) -> exp.Expr:
    if isinstance(node, exp.EQ | exp.NEQ | exp.GT | exp.GTE | exp.LT | exp.LTE):
        return _compare(type(node), node.this, node.expression)
    if isinstance(node, exp.Between):
        return exp.paren(exp.and_(_compare(exp.GTE, node.this, node.args["low"]),
                                  _compare(exp.LTE, node.this, node.args["high"]),
                                  copy=False), copy=False)
    if isinstance(node, exp.In) and any(_risky_in(v) or _text(v) for v in node.expressions):
        return exp.paren(exp.or_(*[_compare(exp.EQ, node.this, v) for v in node.expressions],
                                 copy=False), copy=False)
    return node


def nullable(sql_type: str) -> str:
    """``Nullable(T)`` for scalar types; composite types stay as they are."""
    return sql_type if sql_type.startswith(_COMPOSITE) else f"Nullable({sql_type})"


def non_nullable(sql_type: str) -> str:
    """``T`` for ``Nullable(T)``."""
    if sql_type.startswith("Nullable(") and sql_type.endswith(")"):
        return sql_type[len("Nullable("):-1]
    return sql_type
