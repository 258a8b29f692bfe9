"""What a dialect must declare: a handful of expression builders and type names.

The SQL builder composes only these hooks and plain, portable sqlglot nodes; every engine quirk
lives in exactly one dialect module, with a comment saying why.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping, Sequence
from typing import NamedTuple

from sqlglot import exp

from metaxy_sql.errors import DataError, DefinitionError, UnsupportedByDialectError
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.model.hashing import ABSENT, DIGEST_HEX_CHARS, HashAlgorithm

#: Kinds of id column types, each with one canonical text (``hashing.id_text``).
IdKind = str
ID_KINDS = ("text", "int", "bool", "decimal", "date", "timestamp", "timestamptz")


def lit(value: str) -> exp.Literal:
    return exp.Literal.string(value)


def call(name: str, *args: exp.Expr) -> exp.Anonymous:
    """A function call rendered verbatim (for functions whose name differs by engine)."""
    return exp.Anonymous(this=name, expressions=list(args))


class DerivedColumn(NamedTuple):
    """A stored column computed by the engine from other columns of the row on insert."""

    name: str
    type: str
    expression: exp.Expr


def derived_column_def(d: Dialect, column: DerivedColumn) -> exp.ColumnDef:
    """``name type MATERIALIZED expression`` (ClickHouse's spelling of a stored computed
    column; sqlglot renders it per dialect)."""
    return exp.ColumnDef(
        this=exp.to_identifier(column.name, quoted=True), kind=d.type_(column.type),
        constraints=[exp.ColumnConstraint(kind=exp.ComputedColumnConstraint(
            this=column.expression.copy(), persisted=True))])


class Dialect:
    """Base dialect: portable defaults; subclasses override what their engine does differently."""

    #: Engine name used in URLs, CLI options and ``dialects/<name>/``.
    name: str = ""
    #: sqlglot dialect used to render.
    sqlglot_dialect: str = ""

    #: Longest identifier (UTF-8 bytes) the engine keeps, or ``None`` when no name the store
    #: makes of a feature could reach its limit: DuckDB keeps names of any length; ClickHouse
    #: refuses table names above about 200 bytes (its metadata file name, escaped; "The max
    #: length of table name for database ... is 204" on chdb 26.x), with that clear error of
    #: its own. Postgres: 63 (it truncates longer names silently, so two could collide).
    max_identifier_bytes: int | None = None

    #: False where a DELETE cannot correlate with the staged ids (it then uses ``ids IN``).
    correlated_delete: bool = True
    #: Session settings the executor applies to every statement on this engine.
    session_settings: dict[str, str] = {}
    #: A write marks the rows it replaces ``metaxy_superseded``, so the latest state is a
    #: plain filter. False: that UPDATE runs first, in the write's transaction. True (engines
    #: with no multi-statement transactions): rows are appended superseded, then one UPDATE
    #: settles every row of the written ids (``builder.settle_superseded``).
    supersede_after_insert: bool = False
    #: How write positions (``metaxy_write_seq``) are handed out. False: one counter row per
    #: feature table in ``metaxy_system__write_order``, incremented inside the write's
    #: transaction, which also makes concurrent writers of a table take turns (or conflict).
    #: True (no transactions): positions are appended to that table as a log; two concurrent
    #: writes may share one, and ``insert_order`` breaks the tie.
    write_order_log: bool = False
    #: Column whose value orders a table's rows by the time they became visible: the rows
    #: past a refresh's watermark are exactly those written since (``compile.incremental``).
    watermark_column: str = "metaxy_write_seq"
    #: An incremental refresh reads the rows past a table's watermark for the ids written to
    #: it since (their newest rows lie there), and looks up only the other touched ids by id
    #: (``builder.RecentSplit``). Worth it where a filter on the watermark column skips the
    #: older parts of a table for free (DuckDB: min-max index of tables kept in write order).
    splits_recent_rows: bool = False

    # -- types ------------------------------------------------------------------------------
    text_type = "TEXT"
    map_type = "MAP(TEXT, TEXT)"
    timestamp_type = "TIMESTAMP"
    bool_type = "BOOLEAN"
    text_array_type = "TEXT[]"
    write_seq_type = "BIGINT"

    #: Column type of a declared user or id column, by Python annotation (default: text).
    python_types: Mapping[object, str] = {
        str: "TEXT", int: "BIGINT", float: "DOUBLE", bool: "BOOLEAN", dt.datetime: "TIMESTAMP",
    }


    def staged_relations(self, name: str) -> tuple[str, ...]:
        """Names the executor creates to stage rows under ``name`` (``stage``)."""
        return (name,)

    def check_identifiers(self, graph: FeatureGraph) -> None:
        """Refuse features whose names would not fit :attr:`max_identifier_bytes`: every
        relation the store makes of a feature (``names.feature_relations``, with what the
        executor stages), per-field columns, id, declared and carried columns.

        Raises:
            DefinitionError: naming the feature, the longest name, its length in bytes, the
                limit and the fix (how many bytes the key, field or column may take).
        """
        limit = self.max_identifier_bytes
        if limit is None:
            return
        engine = self.name.capitalize() if self.name != "postgres" else "Postgres"
        for spec in graph:
            table = names.table(spec.key)
            relations = [(what, n) for what, base in names.feature_relations(
                             spec.key, root=graph.is_root(spec.key))
                         for n in (self.staged_relations(base)
                                   if base in (names.staged(spec.key), names.samples(spec.key))
                                   else (base,))]
            what, longest = max(relations, key=lambda r: len(r[1].encode()))
            size = len(longest.encode())
            if size > limit:
                room = limit - (size - len(table.encode()))
                raise DefinitionError(
                    f"feature {spec.key!r}: its table name {table!r} is {len(table.encode())} "
                    f"bytes, and the store names its {what} {longest!r} ({size} bytes), "
                    f"longer than {engine}'s {limit}-byte identifier limit; use a shorter "
                    f"feature key (a table name of at most {room} bytes; '/' becomes '__')")
            for field in spec.fields:
                what, longest = max(names.field_columns(field.key),
                                    key=lambda r: len(r[1].encode()))
                size = len(longest.encode())
                if size > limit:
                    room = limit - (size - len(field.key.encode()))
                    raise DefinitionError(
                        f"feature {spec.key!r}: field {field.key!r} makes the {what} "
                        f"{longest!r} ({size} bytes), longer than {engine}'s {limit}-byte "
                        f"identifier limit; use a field key of at most {room} bytes")
            columns = [*spec.id_columns, *graph.user_columns(spec.key),
                       *(target for dep in spec.deps for _, target in dep.carried())]
            for column in columns:
                if len(column.encode()) > limit:
                    raise DefinitionError(
                        f"feature {spec.key!r}: column {column!r} is {len(column.encode())} "
                        f"bytes, longer than {engine}'s {limit}-byte identifier limit; "
                        "rename it")
    def type_(self, sql_type: str) -> exp.DataType:
        return exp.DataType.build(sql_type, dialect=self.sqlglot_dialect)

    def python_type(self, annotation: object) -> str:
        return self.python_types.get(annotation, self.text_type)

    def nullable_type(self, sql_type: str) -> str:
        """The type of a column that may hold NULL (columns are nullable by default)."""
        return sql_type

    # -- DDL of feature tables ----------------------------------------------------------------
    @functools.cached_property
    def derives_field_columns(self) -> bool:
        """True where feature tables store per-field columns (``derived_columns``), named
        ``names.data_version_token_column(f)`` and ``names.provenance_column(f)``."""
        return bool(self.derived_columns(["field"]))

    def derived_columns(self, field_keys: Sequence[str]) -> list[DerivedColumn]:
        """Per-field columns the engine computes from the maps on insert and stores: resolve
        reads them instead of looking into the maps. None by default."""
        return []

    def column_schema(self, table: exp.Table, columns: Sequence[tuple[str, str]],
                      derived: Sequence[DerivedColumn] = ()) -> exp.Schema:
        """``table (name type, ..., derived type <computed> expression, ...)``."""
        return exp.Schema(this=table, expressions=[
            *[exp.ColumnDef(this=exp.to_identifier(name, quoted=True), kind=self.type_(typ))
              for name, typ in columns],
            *[derived_column_def(self, c) for c in derived]])

    def table_ddl(self, table: exp.Table, columns: Sequence[tuple[str, str]],
                  id_columns: Sequence[str], field_keys: Sequence[str] = ()) -> list[exp.Expr]:
        """``CREATE TABLE IF NOT EXISTS`` of a feature table."""
        return [exp.Create(kind="TABLE", exists=True, this=self.column_schema(
            table, columns, self.derived_columns(field_keys))), *self.write_seq_index(table)]

    def cluster_table_ddl(self, table: exp.Table, columns: Sequence[tuple[str, str]],
                          id_columns: Sequence[str], cluster: str,
                          field_keys: Sequence[str] = ()) -> list[exp.Expr]:
        """DDL of a feature table spread over a cluster."""
        raise UnsupportedByDialectError(
            f"--cluster is for ClickHouse; {self.name} has no ON CLUSTER DDL (drop --cluster)")

    # -- hashing ----------------------------------------------------------------------------
    def hex_digest(self, text: exp.Expr, algorithm: HashAlgorithm) -> exp.Expr:
        """Lowercase hex digest of the UTF-8 bytes of ``text`` (full length)."""
        raise NotImplementedError

    def digest(self, text: exp.Expr, algorithm: HashAlgorithm) -> exp.Expr:
        """The 32-hex-char digest the oracle computes (``hashing.digest``)."""
        full = self.hex_digest(text, algorithm)
        if algorithm == "md5":  # md5 hex is exactly 32 chars already
            return full
        return exp.Substring(
            this=full, start=exp.Literal.number(1), length=exp.Literal.number(DIGEST_HEX_CHARS))

    def byte_length(self, text: exp.Expr) -> exp.Expr:
        """Length of ``text`` in UTF-8 bytes."""
        raise NotImplementedError

    def int_to_text(self, value: exp.Expr) -> exp.Expr:
        return exp.Cast(this=value, to=self.type_(self.text_type))

    # -- canonical text of ids (``hashing.id_text``) -----------------------------------------
    def id_kind(self, engine_type: str) -> IdKind | None:
        """The kind (one of :data:`ID_KINDS`) of a column of ``engine_type`` (as the catalog
        spells it), or ``None`` for a type refused as an id (floats, binary, containers)."""
        raise NotImplementedError

    def id_text(self, value: exp.Expr, column: str, engine_type: str | None) -> exp.Expr:
        """``hashing.id_text`` in SQL for a column of ``engine_type`` (``None``: not known at
        compile time, e.g. ``render`` without a store: text and integers, cast to text).

        Raises:
            DataError: the column's type is refused as an id (e.g. a float).
        """
        if engine_type is None:
            return self.int_to_text(value)
        kind = self.id_kind(engine_type)
        if kind == "bool":
            return exp.Case(ifs=[exp.If(this=value, true=lit("true"))], default=lit("false"))
        if kind == "decimal":  # plain digits: drop trailing fractional zeros, then the point
            text = self.int_to_text(value)
            trimmed = call("rtrim", call("rtrim", text.copy(), lit("0")), lit("."))
            return exp.Case(ifs=[exp.If(this=exp.Like(this=text.copy(), expression=lit("%.%")),
                                        true=trimmed)], default=text)
        if kind == "date":
            return self.date_text(value)
        if kind in ("timestamp", "timestamptz"):
            return self.timestamp_text(value, kind == "timestamptz")
        if kind in ("text", "int"):
            return self.int_to_text(value)
        raise DataError(
            f"id column {column!r} is stored as {engine_type}, which has no canonical text on "
            "every engine (floats, binary and containers are refused as ids); store it as a "
            "string, integer, boolean, decimal, date or timestamp")

    def date_text(self, value: exp.Expr) -> exp.Expr:
        """``YYYY-MM-DD`` of a date."""
        return self.int_to_text(value)

    def timestamp_text(self, value: exp.Expr, with_zone: bool) -> exp.Expr:
        """``YYYY-MM-DD HH:MM:SS.ffffff`` of a timestamp in UTC (naive ones taken as UTC)."""
        raise NotImplementedError

    def typed_null(self, sql_type: str) -> exp.Expr:
        """A NULL of type ``sql_type`` (columns of the empty stand-in relations)."""
        return exp.Cast(this=exp.Null(), to=self.type_(sql_type))

    def concat_text(self, parts: Sequence[exp.Expr]) -> exp.Expr:
        """Concatenation of two or more text ``parts`` that are never NULL (hash inputs:
        literals and tokens). ``a || b || c`` by default."""
        result = parts[0]
        for part in parts[1:]:
            result = exp.DPipe(this=result, expression=part)
        return result

    def value_token(self, value: exp.Expr) -> exp.Expr:
        """``hashing.encode`` in SQL: ``<byte length>:<value>``, or ``~`` when NULL."""
        present = exp.DPipe(
            this=exp.DPipe(this=self.int_to_text(self.byte_length(value)), expression=lit(":")),
            expression=value.copy(),
        )
        return exp.Coalesce(this=present, expressions=[lit(ABSENT)])

    def map_token(self, mapping: exp.Expr, key: str) -> exp.Expr:
        """The hash-input token of ``mapping[key]`` (``~`` when the key is absent)."""
        # Parenthesized: Postgres gives ``||`` and ``->>`` the same precedence.
        return self.value_token(exp.paren(self.map_get(mapping, key), copy=False))

    # -- per-field maps ---------------------------------------------------------------------
    def map_get(self, mapping: exp.Expr, key: str) -> exp.Expr:
        """Value of ``key`` in a per-field map column, NULL when the key is absent."""
        return exp.Bracket(this=mapping, expressions=[lit(key)])

    def map_build(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        """A per-field map from compile-time keys (already sorted) and value expressions."""
        return exp.Map(
            keys=exp.Array(expressions=[lit(k) for k, _ in pairs]),
            values=exp.Array(expressions=[v for _, v in pairs]),
        )

    def non_null_array(self, items: list[exp.Expr]) -> exp.Expr:
        """An array of the non-NULL values among ``items``, in order."""
        raise NotImplementedError

    def ordered_concat(self, value: exp.Expr) -> exp.Expr:
        """Aggregate: the group's ``value`` strings concatenated in binary (UTF-8 byte) order,
        the order ``hashing.group_data_version_input`` sorts in."""
        return exp.GroupConcat(
            this=exp.Order(this=value.copy(), expressions=[exp.Ordered(this=value.copy())]),
            separator=lit(""))

    # -- statements -------------------------------------------------------------------------
    def order_desc(self, column: exp.Expr) -> exp.Ordered:
        """``column DESC`` in the latest-row order (its columns are never NULL where it
        matters: ``metaxy_data_version`` is NULL only on tombstones, which never tie with live
        rows because ``metaxy_deleted`` is ordered first)."""
        return exp.Ordered(this=column, desc=True)

    def insert_order(self) -> list[exp.Expr]:
        """Columns ordering rows by insertion, the last tie-break of the newest row per id
        where writes supersede after the append. None by default."""
        return []

    def latest_per_id(
        self, source: exp.Table, ids: Sequence[exp.Column], columns: Sequence[exp.Expr],
        order: Sequence[exp.Ordered],
    ) -> exp.Select:
        """``columns`` of the first row per id of ``source`` in ``order`` (the newest row of
        each id). Needed where writes supersede after the append (``supersede_after_insert``).
        """
        raise NotImplementedError(f"{self.name}: latest_per_id")

    def subset_rows(self, table: str, subset: exp.Expr) -> exp.Expr:
        """The predicate a partial resolve puts on its scan of feature table ``table``:
        ``subset`` (over the table's own columns) itself by default. Engines that read wide
        columns of every row before a semi join drops them rewrite it into a cheaper shape
        selecting the same rows."""
        return subset.copy()

    def parts_past(self, table: str, mark: int) -> exp.Expr | None:
        """A predicate keeping only the storage parts of feature table ``table`` that may
        hold rows past watermark ``mark``, decided from the catalog before any column is
        read, for scans that cannot filter on the watermark column itself; None (the
        default) where the engine has no such parts."""
        return None

    def watermark_reference(self, name: str, mark: int) -> exp.Expr:
        """The value ``mark`` of the watermark called ``name`` as it appears in a refresh's
        partial resolve: a literal by default. A dialect that reads it from a session
        variable instead (set by :meth:`watermark_settings` before the statement runs) keeps
        the statement's text the same from one refresh to the next, so it is compiled once."""
        return exp.Literal.number(mark)

    def watermark_settings(self, marks: Mapping[str, int]) -> list[exp.Expr]:
        """Statements giving the watermarks ``marks`` (name -> value) their values before a
        partial resolve reads them through :meth:`watermark_reference` (none by default)."""
        return []

    def predicate(self, predicate: exp.Expr) -> exp.Expr:
        """A checked user predicate (``model.filters.parse_filter``) as this engine must
        evaluate it to follow the one semantics of :mod:`metaxy_sql.model.filters` (NaN equal
        to itself and above every number, ``IN`` as ``=``). Itself by default: DuckDB and
        Postgres compare floats in that order natively. Applied wherever a predicate over
        user columns is embedded (dependency filters, ``read``/``delete`` ``where=``); not to
        partial-resolution subsets, which read id columns only (never floats)."""
        return predicate.copy()

    def write_lock(self, table: str) -> exp.Expr | None:
        """A statement run first in a write transaction to serialize writers of ``table``
        (superseding rows must see every row committed before it)."""
        return None

    def create_lock(self, table: str) -> exp.Expr | None:
        """A statement run in a transaction before creating ``table``, so that concurrent first
        writes do not race on ``CREATE TABLE IF NOT EXISTS``. None where that DDL is atomic."""
        return None

    def statement_settings(self) -> list[exp.Expr]:
        """Settings the resolve statement carries in its own text (``SETTINGS k = v``)."""
        return []

    def true(self) -> exp.Expr:
        return exp.true()

    def timestamp_literal(self, iso: str) -> exp.Expr:
        return exp.Cast(this=lit(iso), to=self.type_(self.timestamp_type))

    # -- materialized increments and system tables ------------------------------------------
    def current_schema(self) -> exp.Expr:
        """The schema (ClickHouse: database) unqualified names resolve to."""
        return call("current_schema")

    def catalog_condition(self, catalog_column: exp.Column) -> exp.Expr | None:
        """Restricts ``information_schema`` rows to the store's own catalog (database)."""
        return exp.EQ(this=catalog_column, expression=call("current_database"))

    def view_ddl(self, view: exp.Table, select: exp.Select) -> list[exp.Expr]:
        """Create or atomically replace ``view`` over ``select`` (its text kept verbatim)."""
        return [exp.Create(kind="VIEW", replace=True, this=view, expression=select)]

    def snapshot_ddl(self, table: exp.Table, select: exp.Select) -> list[exp.Expr]:
        """Create or atomically replace ``table`` with the rows of ``select`` (run in one
        transaction)."""
        return [exp.Create(kind="TABLE", replace=True, this=table, expression=select)]

    def temporary_table_as(self, table: exp.Table, select: exp.Select) -> exp.Create:
        """A session-local table holding the rows of ``select`` (dropped by the caller)."""
        return exp.Create(kind="TABLE", this=table, expression=select,
                          properties=exp.Properties(expressions=[exp.TemporaryProperty()]))

    #: Schema of session-local tables (DuckDB's ``temp``), so a drop never finds another table.
    temporary_schema: str = "temp"

    def drop_temporary(self, name: str) -> exp.Drop:
        """Drop the session-local table ``name`` (from ``temporary_table_as``) if it exists."""
        table = exp.Table(this=exp.to_identifier(name, quoted=True),
                          db=exp.to_identifier(self.temporary_schema, quoted=True))
        return exp.Drop(tables=[table], kind="TABLE", exists=True)

    def incremental_table_ddl(self, table: exp.Table, select: exp.Select,
                              grain: Sequence[str]) -> list[exp.Expr]:
        """Create or atomically replace an incremental increment table with the rows of
        ``select``; a refresh then deletes and inserts rows by ``grain`` (run in one
        transaction). DuckDB: rows stay in insertion order, and its zone maps prune
        ``grain IN (...)`` scans by row group; no index needed."""
        return self.snapshot_ddl(table, select)

    def write_seq_index(self, table: exp.Table) -> list[exp.Expr]:
        """Statements indexing a feature table's write positions (``rows written since W``).
        None by default: DuckDB appends in write order, so its zone maps (min/max per row
        group) already skip row groups written before W."""
        return []

    def system_table_ddl(self, table: exp.Table, columns: Sequence[tuple[str, str]],
                         order_by: Sequence[str]) -> exp.Create:
        """``CREATE TABLE IF NOT EXISTS`` of a small append-only system table."""
        return exp.Create(kind="TABLE", exists=True, this=exp.Schema(this=table, expressions=[
            exp.ColumnDef(this=exp.to_identifier(name, quoted=True), kind=self.type_(typ))
            for name, typ in columns]))

    def render(self, expression: exp.Expr, pretty: bool = True) -> str:
        return expression.sql(dialect=self.sqlglot_dialect, pretty=pretty, identify=True)

    def quote(self, name: str) -> str:
        """``name`` as one quoted identifier, for client APIs that take a name as text
        (SQL itself is built from sqlglot identifiers with ``quoted=True``)."""
        return self.render(exp.to_identifier(name, quoted=True), pretty=False)
