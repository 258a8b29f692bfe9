"""Postgres dialect (15+; per-field maps are ``jsonb``).

The executor refuses non-UTF8 databases, so ``octet_length`` and ``md5`` of ``text`` see the
same UTF-8 bytes as the oracle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from sqlglot import exp

from metaxy_sql.compile.dialects.base import Dialect, IdKind, call, lit
from metaxy_sql.errors import UnsupportedByDialectError
from metaxy_sql.model import names
from metaxy_sql.model.hashing import HashAlgorithm

#: Longest identifier Postgres keeps; longer ones are silently truncated (NAMEDATALEN - 1).
MAX_IDENTIFIER_BYTES = 63


#: Most arguments Postgres functions take (FUNC_MAX_ARGS).
_CONCAT_ARGS = 100


def staged_raw(name: str) -> str:
    """The TEMP table the executor ingests for staged relation ``name`` (a view over it)."""
    return f"{name}__raw"


class PostgresDialect(Dialect):
    name = "postgres"
    sqlglot_dialect = "postgres"
    #: Identifiers are NAMEDATALEN - 1 bytes: a feature whose names do not fit is refused when
    #: a store is opened for its graph (``Dialect.check_identifiers``).
    max_identifier_bytes = MAX_IDENTIFIER_BYTES

    def staged_relations(self, name: str) -> tuple[str, ...]:
        return (name, staged_raw(name))

    map_type = "JSONB"
    temporary_schema = "pg_temp"
    timestamp_type = "TIMESTAMP"
    #: jit off: a wide resolve (many fields, each reading many upstream fields) spends most of
    #: its time in LLVM compiling the statement's expressions (30 fields x 30 upstream fields,
    #: 5k rows: 4.3 s with JIT, 2.0 s without); our statements are hash-bound, and JIT's cost
    #: grows with the expression count. https://www.postgresql.org/docs/15/jit-decision.html
    session_settings = {"jit": "off"}

    def write_lock(self, table: str) -> exp.Expr | None:
        # Under READ COMMITTED a concurrent writer's UPDATE would not see rows another writer
        # inserts meanwhile, leaving two live rows for one id: writers of a table take turns.
        return exp.Command(this="LOCK", expression=exp.Var(
            this=f"TABLE {exp.to_identifier(table, quoted=True).sql('postgres')} "
            "IN SHARE ROW EXCLUSIVE MODE"))

    def create_lock(self, table: str) -> exp.Expr | None:
        # CREATE TABLE IF NOT EXISTS is not atomic: concurrent creators fail on
        # pg_type_typname_nsp_index. A transaction-scoped advisory lock on the table's name
        # makes them take turns; the later ones then find the table.
        key = int.from_bytes(hashlib.sha256(table.encode()).digest()[:8], "big", signed=True)
        return exp.select(call("pg_advisory_xact_lock", exp.Literal.number(key)))

    def id_kind(self, engine_type: str) -> IdKind | None:
        # format_type() spellings, e.g. "numeric(10,2)", "timestamp(3) with time zone".
        t = engine_type.lower()
        if t.startswith(("text", "character", "varchar", "name")):
            return "text"
        if t in ("smallint", "integer", "bigint"):
            return "int"
        if t.startswith("numeric"):
            return "decimal"
        if t.startswith("timestamp"):
            return "timestamptz" if t.endswith("with time zone") else "timestamp"
        return {"boolean": "bool", "date": "date"}.get(t)

    def date_text(self, value: exp.Expr) -> exp.Expr:
        # date::text follows the session's DateStyle; to_char does not.
        return call("to_char", value, lit("YYYY-MM-DD"))

    def timestamp_text(self, value: exp.Expr, with_zone: bool) -> exp.Expr:
        utc = exp.AtTimeZone(this=value, zone=lit("UTC")) if with_zone else value
        return call("to_char", utc, lit("YYYY-MM-DD HH24:MI:SS.US"))

    def hex_digest(self, text: exp.Expr, algorithm: HashAlgorithm) -> exp.Expr:
        if algorithm == "md5":  # md5(text) is already lowercase hex of the text's bytes
            return call("md5", text)
        # sha256() takes bytea only (sqlglot's SHA2 renders sha256(text), which does not exist).
        return call("encode", call("sha256", call("convert_to", text, lit("UTF8"))), lit("hex"))

    def byte_length(self, text: exp.Expr) -> exp.Expr:
        # length() counts characters; octet_length() counts bytes.
        return call("octet_length", text)

    def concat_text(self, parts: Sequence[exp.Expr]) -> exp.Expr:
        # Variadic concat() instead of a || chain, which copies the growing text at every
        # step: a wide feature (50 fields each hashing 50 parents, 10k rows, jit off) spends
        # 20-23 s in hash inputs built with ||, 8.6-9.6 s with concat() (Postgres 15).
        # concat() takes at most 100 arguments, so longer lists nest; it skips NULL parts
        # where || yields NULL, and hash-input parts are never NULL (tokens).
        if len(parts) <= _CONCAT_ARGS:
            return call("concat", *parts)
        head = list(parts[:_CONCAT_ARGS - 1])
        return call("concat", *head, self.concat_text(parts[_CONCAT_ARGS - 1:]))

    def map_get(self, mapping: exp.Expr, key: str) -> exp.Expr:
        # jsonb ->> 'k' is text, NULL when the key is absent (sqlglot's JSONPath form renders
        # json_extract_path_text, which has no jsonb overload).
        return exp.JSONExtractScalar(this=mapping, expression=lit(key))

    def map_build(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        # sqlglot's MAP/struct transpile to invalid Postgres; jsonb_build_object is exact.
        # A function takes at most 100 arguments (FUNC_MAX_ARGS), i.e. 50 pairs: a wider map
        # joins objects of up to 50 pairs with || (jsonb keeps its keys in one canonical
        # order, so the result equals the single object).
        chunks: list[exp.Expr] = []
        for start in range(0, len(pairs), _CONCAT_ARGS // 2):
            args: list[exp.Expr] = []
            for k, v in pairs[start:start + _CONCAT_ARGS // 2]:
                args += [lit(k), v]
            chunks.append(call("jsonb_build_object", *args))
        if not chunks:
            return call("jsonb_build_object")
        out = chunks[0]
        for chunk in chunks[1:]:
            out = exp.DPipe(this=out, expression=chunk)
        # Parenthesized: || binds like ->> (left to right), and the map may be looked into.
        return out if len(chunks) == 1 else exp.Paren(this=out)

    def non_null_array(self, items: list[exp.Expr]) -> exp.Expr:
        # array_remove(a, NULL) drops NULLs (it compares with IS NOT DISTINCT FROM).
        return call("array_remove", exp.Array(expressions=items), exp.Null())

    def ordered_concat(self, value: exp.Expr) -> exp.Expr:
        # ORDER BY text follows the database collation (e.g. en_US): COLLATE "C" is byte order.
        ordered = exp.Collate(this=value.copy(), expression=exp.column("C", quoted=True))
        return exp.GroupConcat(
            this=exp.Order(this=value.copy(), expressions=[exp.Ordered(this=ordered)]),
            separator=lit(""))

    def table_ddl(self, table: exp.Table, columns: Sequence[tuple[str, str]],
                  id_columns: Sequence[str], field_keys: Sequence[str] = ()) -> list[exp.Expr]:
        # With the partial index on the ids of the latest rows that a first write creates
        # (executors.postgres), so a table created from the definitions serves resolve alike.
        latest = _index(table, id_columns, "latest")
        latest.this.args["params"].set("where", exp.Where(this=exp.not_(
            exp.column(names.SUPERSEDED, quoted=True))))
        return [*super().table_ddl(table, columns, id_columns, field_keys), latest]

    def write_seq_index(self, table: exp.Table) -> list[exp.Expr]:
        # A B-tree on the write position: a refresh reads only the rows written since its
        # watermark (an index range scan instead of a sequential scan of the table).
        return [_index(table, [names.WRITE_SEQ], "write_seq")]

    def incremental_table_ddl(self, table: exp.Table, select: exp.Select,
                              grain: Sequence[str]) -> list[exp.Expr]:
        # A refresh deletes the rows of the touched grain ids: a B-tree on them.
        return [*self.snapshot_ddl(table, select), _index(table, grain, "grain")]

    def snapshot_ddl(self, table: exp.Table, select: exp.Select) -> list[exp.Expr]:
        # No CREATE OR REPLACE TABLE; DDL is transactional, so drop + create in one
        # transaction replaces the snapshot atomically.
        return [exp.Drop(kind="TABLE", exists=True, tables=[table.copy()]),
                exp.Create(kind="TABLE", this=table, expression=select)]

    def render(self, expression: exp.Expr, pretty: bool = True) -> str:
        # Postgres truncates longer identifiers silently, so two long names could collide.
        for ident in expression.find_all(exp.Identifier):
            if len(ident.name.encode()) > MAX_IDENTIFIER_BYTES:
                raise UnsupportedByDialectError(
                    f"identifier {ident.name!r} is longer than Postgres's {MAX_IDENTIFIER_BYTES}"
                    " bytes; shorten the feature, field or column name")
        return super().render(expression, pretty)


def _index(table: exp.Table, columns: Sequence[str], role: str) -> exp.Create:
    """``CREATE INDEX IF NOT EXISTS <table>__<role> ON table (columns)``; names longer than
    Postgres keeps are shortened with a digest so they stay unique."""
    name = f"{table.name}__{role}"
    if len(name.encode()) > MAX_IDENTIFIER_BYTES:
        digest = hashlib.sha256(table.name.encode()).hexdigest()[:12]
        name = f"{table.name.encode()[:40].decode(errors='ignore')}__{digest}__{role}"
    return exp.Create(kind="INDEX", exists=True, this=exp.Index(
        this=exp.to_identifier(name, quoted=True), table=table.copy(),
        params=exp.IndexParameters(columns=[exp.Ordered(this=exp.column(c, quoted=True))
                                            for c in columns])))
