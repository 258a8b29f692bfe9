"""Postgres dialect."""

from __future__ import annotations

from collections.abc import Sequence

from sqlglot import exp

from metaxy_sql.dialects.base import Dialect, call, lit
from metaxy_sql.hashing import HashAlgorithm


class PostgresDialect(Dialect):
    name = "postgres"
    sqlglot_dialect = "postgres"

    map_type = "JSONB"
    timestamp_type = "TIMESTAMP"

    def hex_digest(self, text: exp.Expr, algorithm: HashAlgorithm) -> exp.Expr:
        if algorithm == "md5":  # md5(text) hashes the text's bytes (UTF8 database) and is hex
            return call("md5", text)
        # sha256() takes bytea only: sqlglot's sha256(text) does not exist in Postgres.
        return call("encode", call("sha256", call("convert_to", text, lit("UTF8"))), lit("hex"))

    def byte_length(self, text: exp.Expr) -> exp.Expr:
        return call("octet_length", text)

    def map_get(self, mapping: exp.Expr, key: str) -> exp.Expr:
        # Per-field maps are jsonb; ->> yields text, NULL when the key is absent.
        return exp.JSONExtractScalar(this=mapping, expression=lit(key))

    def map_build(self, pairs: Sequence[tuple[str, exp.Expr]]) -> exp.Expr:
        args: list[exp.Expr] = []
        for k, v in pairs:
            args += [lit(k), v]
        return call("jsonb_build_object", *args)

    def non_null_array(self, items: list[exp.Expr]) -> exp.Expr:
        return call("array_remove", exp.Array(expressions=items), exp.Null())
