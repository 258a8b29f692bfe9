"""DuckDB dialect."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlglot import exp

from metaxy_sql.compile.dialects.base import Dialect, IdKind, call, lit
from metaxy_sql.model import names
from metaxy_sql.model.hashing import HashAlgorithm

_INTS = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
         "UINTEGER", "UBIGINT", "UHUGEINT"}
_ID_KINDS = {"VARCHAR": "text", "BOOLEAN": "bool", "DATE": "date", "TIMESTAMP": "timestamp",
             "TIMESTAMP_S": "timestamp", "TIMESTAMP_MS": "timestamp",
             "TIMESTAMP WITH TIME ZONE": "timestamptz", **{t: "int" for t in _INTS}}


class DuckDBDialect(Dialect):
    name = "duckdb"
    sqlglot_dialect = "duckdb"
    # Feature tables are appended in write order, so ``metaxy_write_seq > W`` skips every
    # older row group by its min-max index: the rows of 1000 ids written since, of a 1M-row
    # table, read in ~2 ms instead of ~14 ms for their id lookup (DuckDB 2.0.1).
    splits_recent_rows = True

    def hex_digest(self, text: exp.Expr, algorithm: HashAlgorithm) -> exp.Expr:
        # DuckDB's sha256()/md5() return lowercase hex of the UTF-8 bytes.
        return call(algorithm, text)

    def concat_text(self, parts: Sequence[exp.Expr]) -> exp.Expr:
        # One variadic concat(): a chain a || b || c ... evaluates as nested binary concats,
        # quadratic in the parts (a wide feature, 20 fields each hashing 20 parents, 2k rows:
        # 2.8 s -> 0.34 s to build the hash inputs, DuckDB 2.0.1). concat() skips NULL parts
        # where || yields NULL; hash-input parts are never NULL (tokens), so both agree.
        return call("concat", *parts)

    def subset_rows(self, table: str, subset: exp.Expr) -> exp.Expr:
        # ``rowid IN (SELECT rowid FROM t WHERE subset)``: the inner scan reads only the
        # subset's columns and DuckDB fetches the matched rows by row id (late
        # materialization), instead of decoding the map columns of every row before the semi
        # join drops them: 1000 ids of 1M, partial resolve 160 ms -> ~50 ms (DuckDB 2.0.1).
        # Row ids are stable within a statement. A user column named ``rowid`` would shadow
        # the pseudo-column: feature tables refuse it (``names.ENGINE_RESERVED_COLUMNS``).
        rowid = exp.column(names.DUCKDB_ROWID, quoted=True)
        inner = exp.select(rowid.copy()).from_(exp.Table(this=exp.to_identifier(
            table, quoted=True))).where(subset.copy())
        return exp.In(this=rowid, query=exp.Subquery(this=inner))

    def watermark_reference(self, name: str, mark: int) -> exp.Expr:
        # getvariable() is folded to a constant when the statement is planned, so the
        # min-max index still skips older row groups (as with a literal), and the statement's
        # text stays the same across refreshes (compiled and rendered once).
        return call("getvariable", lit(name))

    def watermark_settings(self, marks: Mapping[str, int]) -> list[exp.Expr]:
        return [exp.Set(expressions=[exp.SetItem(
            this=exp.EQ(this=exp.column(name, quoted=True), expression=exp.Literal.number(v)),
            kind="VARIABLE")]) for name, v in sorted(marks.items())]

    def byte_length(self, text: exp.Expr) -> exp.Expr:
        # length() counts characters; strlen() counts bytes.
        return call("strlen", text)

    def id_kind(self, engine_type: str) -> IdKind | None:
        t = engine_type.upper()
        if t.startswith("ENUM("):  # Arrow dictionaries (pandas categoricals) become ENUMs
            return "text"
        return "decimal" if t.startswith("DECIMAL") else _ID_KINDS.get(t)

    def timestamp_text(self, value: exp.Expr, with_zone: bool) -> exp.Expr:
        # A TIMESTAMPTZ prints in the session's TimeZone: take its UTC wall clock first.
        # CAST(TIMESTAMP AS VARCHAR) drops a zero fraction; strftime's %f always has 6 digits.
        utc = call("timezone", lit("UTC"), value) if with_zone else value
        return call("strftime", utc, lit("%Y-%m-%d %H:%M:%S.%f"))

    def non_null_array(self, items: list[exp.Expr]) -> exp.Expr:
        # sqlglot's ArrayRemove(x, NULL) renders `_u <> NULL` (always NULL): filter explicitly.
        x = exp.to_identifier("x")
        return exp.ArrayFilter(
            this=exp.Array(expressions=items),
            expression=exp.Lambda(this=exp.Not(this=exp.Is(this=x, expression=exp.Null())),
                                  expressions=[x]),
        )
