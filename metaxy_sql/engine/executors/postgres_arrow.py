"""Arrow <-> what ADBC's Postgres driver sends and receives, vectorized.

ADBC (``adbc-driver-postgresql``) moves Arrow over COPY BINARY both ways. What it does not map
is done here, with no per-row Python: lists, structs and maps travel as JSON text
(DuckDB's ``to_json``) into ``jsonb``; ``*_by_field`` jsonb comes back as
``map<string, string>`` with sorted keys (so results look like the DuckDB engine's), other JSON
as text (the store casts user columns back to their stored type); ``numeric(p, s)`` comes back
as ``decimal128(p, s)``, unconstrained ``numeric`` as ``float64``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

#: Suffix of the per-field map columns (``metaxy_provenance_by_field``...), read back as maps.
BY_FIELD_SUFFIX = "_by_field"
_PG_TYPE = b"POSTGRESQL:type"
_PG_TYPMOD = b"POSTGRESQL:typmod"
_MAX_DECIMAL = 38


def quote(name: str) -> str:
    """A double-quoted identifier (same rule in Postgres and DuckDB)."""
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Staging:
    """A table ready for ADBC ingest and the Postgres type each column must be cast to."""

    table: pa.Table
    casts: dict[str, str]


def _is_nested(t: pa.DataType) -> bool:
    return bool(pa.types.is_nested(t))


def _storage(column: pa.ChunkedArray) -> pa.ChunkedArray:
    if isinstance(column.type, pa.BaseExtensionType):
        return pa.chunked_array([c.storage for c in column.chunks], column.type.storage_type)
    return column


class ArrowCodec:
    """Conversions through a private in-memory DuckDB connection (thread-safe)."""

    def __init__(self) -> None:
        self._con = duckdb.connect()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._con.close()

    def _duck(self, table: pa.Table, select: str) -> pa.Table:
        with self._lock:
            self._con.register("metaxy_arrow", table)
            try:
                return self._con.sql(f"SELECT {select} FROM metaxy_arrow").to_arrow_table()
            finally:
                self._con.unregister("metaxy_arrow")

    def to_postgres(self, table: pa.Table) -> Staging:
        """``table`` in types ADBC ingests, and the casts that give the staged columns their
        Postgres types (nested -> ``jsonb``, decimals -> ``numeric(p, s)``)."""
        casts: dict[str, str] = {}
        select: list[str] = []
        for f in table.schema:
            q, t = quote(f.name), f.type
            if pa.types.is_dictionary(t):
                t = t.value_type
            if _is_nested(t):
                select.append(f"to_json({q})::VARCHAR AS {q}")
                casts[f.name] = "jsonb"
            elif pa.types.is_null(t) or pa.types.is_large_string(t) \
                    or pa.types.is_string_view(t):
                select.append(f"CAST({q} AS VARCHAR) AS {q}")
            elif pa.types.is_decimal(t):
                select.append(q)
                casts[f.name] = f"numeric({t.precision}, {t.scale})"
            elif pa.types.is_uint64(t):
                select.append(f"CAST({q} AS DECIMAL(20, 0)) AS {q}")
                casts[f.name] = "numeric(20, 0)"  # read back exactly, as decimal128(20, 0)
            elif pa.types.is_float16(t):
                select.append(f"CAST({q} AS FLOAT) AS {q}")
            else:
                select.append(q)
        if any(sel != quote(f.name) for sel, f in zip(select, table.schema, strict=True)):
            table = self._duck(table, ", ".join(select)) if table.num_columns else table
        return Staging(table, casts)

    def from_postgres(self, table: pa.Table) -> pa.Table:
        """A result as ADBC read it, in the Arrow types the store hands out."""
        by_field: list[str] = []
        for i, f in enumerate(table.schema):
            meta = f.metadata or {}
            pg_type = meta.get(_PG_TYPE, b"").decode()
            column = table.column(i)
            if pg_type == "numeric":
                column = _numeric(_storage(column), int(meta.get(_PG_TYPMOD, b"-1")))
            elif pg_type in ("json", "jsonb"):
                column = _storage(column)
                if f.name.endswith(BY_FIELD_SUFFIX):
                    by_field.append(f.name)
            elif isinstance(column.type, pa.BaseExtensionType):
                column = _storage(column)
            table = table.set_column(i, pa.field(f.name, column.type), column)
        table = table.replace_schema_metadata(None)
        if not by_field:
            return table
        # jsonb orders keys by length first: sort them so every engine's maps look alike.
        select = ", ".join(
            f"map_from_entries(list_sort(map_entries(CAST(CAST({quote(n)} AS JSON) AS "
            f"MAP(VARCHAR, VARCHAR))))) AS {quote(n)}" if n in by_field else quote(n)
            for n in table.column_names)
        return self._duck(table, select)


def _numeric(column: pa.ChunkedArray, typmod: int) -> pa.ChunkedArray:
    """``numeric(p, s)`` text as ``decimal128(p, s)``; unconstrained numeric as float64."""
    if typmod >= 4:
        precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
        if precision <= _MAX_DECIMAL:
            return column.cast(pa.decimal128(precision, scale))
    return pc.cast(column, pa.float64())
