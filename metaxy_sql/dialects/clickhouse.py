"""ClickHouse dialect."""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from metaxy_sql.dialects.base import Dialect, call, lit
from metaxy_sql.hashing import HashAlgorithm


class ClickHouseDialect(Dialect):
    name = "clickhouse"
    sqlglot_dialect = "clickhouse"

    text_type = "String"
    map_type = "Map(String, String)"
    timestamp_type = "DateTime64(6, 'UTC')"
    bool_type = "Bool"
    text_array_type = "Array(String)"

    def hex_digest(self, text: exp.Expr, algorithm: HashAlgorithm) -> exp.Expr:
        # SHA256()/MD5() return raw bytes in ClickHouse (sqlglot's default keeps them raw).
        return call("lower", call("hex", call(algorithm.upper(), text)))

    def byte_length(self, text: exp.Expr) -> exp.Expr:
        # ClickHouse length() of a String counts bytes.
        return call("length", text)

    def int_to_text(self, value: exp.Expr) -> exp.Expr:
        # CAST(x AS String) renders as Nullable(String) through sqlglot; toString is exact.
        return call("toString", value)

    def map_get(self, mapping: exp.Expr, key: str) -> exp.Expr:
        # m['k'] returns '' (not NULL) for a missing key:
        # https://clickhouse.com/docs/sql-reference/data-types/map
        return exp.If(
            this=call("mapContains", mapping, lit(key)),
            true=exp.Bracket(this=mapping, expressions=[lit(key)]),
            false=exp.Null(),
        )

    def map_build(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        args: list[exp.Expr] = []
        for k, v in pairs:
            args += [lit(k), v]
        return call("map", *args)

    def non_null_array(self, items: list[exp.Expr]) -> exp.Expr:
        x = exp.to_identifier("x")
        return call(
            "arrayFilter",
            exp.Lambda(this=call("isNotNull", x), expressions=[x]),
            exp.Array(expressions=items),
        )
