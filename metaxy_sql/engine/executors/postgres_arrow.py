"""Arrow <-> Postgres text, vectorized: CSV for COPY in, typed Arrow from text rows out.

Both directions go through an in-memory DuckDB connection (a core dependency) so that no
per-row Python runs: ``to_json`` turns maps and structs into JSON text for ``jsonb``, and
casts turn the server's text back into typed Arrow (``*_by_field`` jsonb -> map<string,string>
with sorted keys, ``text[]`` -> list<string>), so results look like the DuckDB engine's.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

from metaxy_sql.errors import DataError

# Postgres type OIDs (pg_type.oid, stable across versions) -> how a result column comes back.
_BOOL, _BYTEA, _INT8, _INT2, _INT4, _TEXT, _JSON = 16, 17, 20, 21, 23, 25, 114
_FLOAT4, _FLOAT8, _BPCHAR, _VARCHAR, _DATE = 700, 701, 1042, 1043, 1082
_TIMESTAMP, _TIMESTAMPTZ, _NUMERIC, _JSONB, _NAME = 1114, 1184, 1700, 3802, 19
_TEXT_ARRAY, _VARCHAR_ARRAY = 1009, 1015
_STRINGS = {_TEXT, _VARCHAR, _BPCHAR, _NAME}
_DUCK_CASTS = {
    _BOOL: "BOOLEAN", _INT2: "SMALLINT", _INT4: "INTEGER", _INT8: "BIGINT",
    _FLOAT4: "FLOAT", _FLOAT8: "DOUBLE", _NUMERIC: "DOUBLE", _DATE: "DATE",
    _TIMESTAMP: "TIMESTAMP", _TIMESTAMPTZ: "TIMESTAMPTZ",
}
#: Suffix of the per-field map columns (``metaxy_provenance_by_field``...), read back as maps.
BY_FIELD_SUFFIX = "_by_field"


def quote(name: str) -> str:
    """A double-quoted identifier (same rule in Postgres and DuckDB)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class ResultColumn:
    """One result column: the server-side text expression and the DuckDB cast back."""

    name: str
    type_oid: int
    precision: int | None = None
    scale: int | None = None

    def server_text(self) -> str:
        """Expression over the query's column that yields text the reader can parse."""
        q = quote(self.name)
        if self.type_oid in _STRINGS:
            return q
        if self.type_oid in (_TEXT_ARRAY, _VARCHAR_ARRAY):
            return f"to_jsonb({q})::text"  # array literals '{a,"b c"}' need a parser; JSON not
        if self.type_oid == _BYTEA:
            return f"encode({q}, 'hex')"
        return f"{q}::text"  # bool::text is 'true'/'false'; float8::text is shortest-exact

    def duck_expr(self) -> str:
        q = quote(self.name)
        if self.type_oid == _NUMERIC and self.precision and self.precision <= 38:
            # numeric(p, s) holds exact decimals: never through DOUBLE.
            expr = f"CAST({q} AS DECIMAL({self.precision}, {self.scale or 0}))"
        elif self.type_oid in _DUCK_CASTS:
            expr = f"CAST({q} AS {_DUCK_CASTS[self.type_oid]})"
        elif self.type_oid in (_TEXT_ARRAY, _VARCHAR_ARRAY):
            expr = f"CAST(CAST({q} AS JSON) AS VARCHAR[])"
        elif self.type_oid == _BYTEA:
            expr = f"unhex({q})"
        elif self.type_oid in (_JSON, _JSONB) and self.name.endswith(BY_FIELD_SUFFIX):
            # jsonb orders keys by length first: sort them so every engine's maps look alike.
            expr = (f"map_from_entries(list_sort(map_entries("
                    f"CAST(CAST({q} AS JSON) AS MAP(VARCHAR, VARCHAR)))))")
        else:
            return q
        return f"{expr} AS {q}"


class ArrowCodec:
    """Conversions through a private in-memory DuckDB connection (thread-safe)."""

    def __init__(self) -> None:
        self._con = duckdb.connect()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._con.close()

    def typed(self, text: pa.Table, columns: Sequence[ResultColumn]) -> pa.Table:
        """Cast a table of text columns (as the server sent them) to the result's Arrow types."""
        if all(c.type_oid in _STRINGS for c in columns):
            return text
        select = ", ".join(c.duck_expr() for c in columns)
        with self._lock:
            self._con.register("metaxy_text", text)
            try:
                return self._con.sql(f"SELECT {select} FROM metaxy_text").to_arrow_table()
            finally:
                self._con.unregister("metaxy_text")

    def csv_batches(self, table: pa.Table, rows_per_batch: int = 131_072) -> Iterator[bytes]:
        """CSV (no header) of ``table``, every value as Postgres input text; NULL = empty field."""
        select = ", ".join(_to_text(f) for f in table.schema)
        with self._lock:
            self._con.register("metaxy_arrow", table)
            try:
                flat = self._con.sql(f"SELECT {select} FROM metaxy_arrow").to_arrow_table()
            finally:
                self._con.unregister("metaxy_arrow")
        # all_valid quotes every non-NULL value, so '' ("") and NULL (empty) stay distinct.
        options = pacsv.WriteOptions(include_header=False, quoting_style="all_valid")
        for batch in flat.to_batches(max_chunksize=rows_per_batch):
            buf = io.BytesIO()
            pacsv.write_csv(batch, buf, options)
            yield buf.getvalue()


def _to_text(f: pa.Field) -> str:
    q, t = quote(f.name), f.type
    if pa.types.is_map(t) or pa.types.is_struct(t) or _is_list(t):
        return f"to_json({q})::VARCHAR AS {q}"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return f"'\\x' || hex({q}) AS {q}"
    return f"CAST({q} AS VARCHAR) AS {q}"


def _is_list(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t)
                or pa.types.is_fixed_size_list(t))


def pg_type(field: pa.Field) -> str:
    """The Postgres column type a staged Arrow column gets."""
    t = field.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t) \
            or pa.types.is_null(t):
        return "text"
    if pa.types.is_map(t) or pa.types.is_struct(t) or _is_list(t):
        return "jsonb"
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return "smallint"
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return "integer"
    if pa.types.is_int64(t) or pa.types.is_uint32(t):
        return "bigint"
    if pa.types.is_decimal(t):
        return f"numeric({t.precision}, {t.scale})"
    if pa.types.is_uint64(t):
        return "numeric"
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return "real"
    if pa.types.is_float64(t):
        return "double precision"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        return "bytea"
    raise DataError(f"column {field.name!r} has Arrow type {t}, which the Postgres store cannot "
                    "hold; convert it to a string, number, boolean, timestamp, list or map")
