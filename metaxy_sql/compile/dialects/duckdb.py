"""DuckDB dialect."""

from __future__ import annotations

from sqlglot import exp

from metaxy_sql.compile.dialects.base import Dialect, call
from metaxy_sql.model.hashing import HashAlgorithm


class DuckDBDialect(Dialect):
    name = "duckdb"
    sqlglot_dialect = "duckdb"

    def hex_digest(self, text: exp.Expr, algorithm: HashAlgorithm) -> exp.Expr:
        # DuckDB's sha256()/md5() return lowercase hex of the UTF-8 bytes.
        return call(algorithm, text)

    def byte_length(self, text: exp.Expr) -> exp.Expr:
        # length() counts characters; strlen() counts bytes.
        return call("strlen", text)

    def non_null_array(self, items: list[exp.Expr]) -> exp.Expr:
        # sqlglot's ArrayRemove(x, NULL) renders `_u <> NULL` (always NULL): filter explicitly.
        x = exp.to_identifier("x")
        return exp.ArrayFilter(
            this=exp.Array(expressions=items),
            expression=exp.Lambda(this=exp.Not(this=exp.Is(this=x, expression=exp.Null())),
                                  expressions=[x]),
        )
