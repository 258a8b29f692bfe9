"""Arrow tables going into ClickHouse: column types for staging and struct -> Map conversion."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from metaxy_sql.compile.dialects.clickhouse import nullable
from metaxy_sql.engine.ingest import ACCEPTED_SYSTEM_COLUMNS
from metaxy_sql.errors import UnsupportedByDialectError
from metaxy_sql.model import names

_INTS = {8: "8", 16: "16", 32: "32", 64: "64"}
_TIME_PRECISION = {"s": 0, "ms": 3, "us": 6, "ns": 9}


def clickhouse_type(t: pa.DataType, column: str) -> str:
    """The ClickHouse type holding Arrow type ``t`` (values not wrapped in Nullable)."""
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "String"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return "String"
    if pa.types.is_boolean(t):
        return "Bool"
    if pa.types.is_signed_integer(t):
        return f"Int{_INTS[t.bit_width]}"
    if pa.types.is_unsigned_integer(t):
        return f"UInt{_INTS[t.bit_width]}"
    if pa.types.is_float32(t):
        return "Float32"
    if pa.types.is_float64(t):
        return "Float64"
    if pa.types.is_timestamp(t):
        return f"DateTime64({_TIME_PRECISION[t.unit]}, '{t.tz or 'UTC'}')"
    if pa.types.is_date(t):
        return "Date32"
    if pa.types.is_decimal(t):
        return f"Decimal({t.precision}, {t.scale})"
    if pa.types.is_dictionary(t):
        return clickhouse_type(t.value_type, column)
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"Array({nullable(clickhouse_type(t.value_type, column))})"
    if pa.types.is_map(t):
        key = clickhouse_type(t.key_type, column)
        return f"Map({key}, {nullable(clickhouse_type(t.item_type, column))})"
    if pa.types.is_struct(t):
        fields = ", ".join(
            f"{f.name} {nullable(clickhouse_type(f.type, column))}" for f in t)
        return f"Tuple({fields})"
    if pa.types.is_null(t):
        return "String"
    raise UnsupportedByDialectError(
        f"column {column!r} has Arrow type {t}, which has no ClickHouse counterpart here; "
        "cast it to a string, number, timestamp, list, map or struct first")


def prepare(table: pa.Table) -> tuple[pa.Table, list[tuple[str, str]]]:
    """The table as ClickHouse takes it, and its (column, ClickHouse type) pairs.

    Per-field columns given as structs become maps (the SQL reads them with ``mapContains``);
    dictionary columns are decoded.
    """
    arrays, schema = [], []
    for name, column in zip(table.column_names, table.columns, strict=True):
        if name in ACCEPTED_SYSTEM_COLUMNS and pa.types.is_struct(column.type):
            column = pa.chunked_array([struct_to_map(column)])
        elif pa.types.is_dictionary(column.type):
            column = column.cast(column.type.value_type)
        arrays.append(column)
        schema.append((name, nullable(clickhouse_type(column.type, name))))
    return pa.table(arrays, names=table.column_names), schema


def struct_to_map(column: pa.ChunkedArray) -> pa.MapArray:
    """A struct of strings as a ``map<string, string>`` with one entry per struct field (null
    values kept as null, which reads as absent)."""
    struct = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n, k = len(struct), struct.type.num_fields
    keys = pa.array([struct.type.field(i).name for i in range(k)], pa.string())
    children = [pc.cast(child, pa.string()) for child in struct.flatten()]
    items = pa.concat_arrays(children) if children else pa.array([], pa.string())
    row, field = np.divmod(np.arange(n * k, dtype=np.int64), max(k, 1))
    offsets = pa.array(np.arange(n + 1, dtype=np.int32) * k)
    return pa.MapArray.from_arrays(
        offsets, keys.take(pa.array(field)), items.take(pa.array(field * n + row)))


def naive_write_time(data: pa.Table) -> pa.Table:
    """``metaxy_created_at`` as naive UTC ``timestamp[us]``, as the other engines return it:
    ClickHouse reads a ``DateTime64(6, 'UTC')`` column back with the zone attached."""
    column = names.CREATED_AT
    if column not in data.column_names:
        return data
    typ = data.schema.field(column).type
    if not pa.types.is_timestamp(typ) or typ.tz is None:
        return data
    i = data.column_names.index(column)
    return data.set_column(i, column, data.column(i).cast(pa.timestamp(typ.unit)))
