"""Turning what users pass (Arrow, polars, pandas, dicts, pydantic rows) into checked Arrow.

All checks are vectorized Arrow compute over the data the user already holds in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from metaxy_sql.errors import DataError
from metaxy_sql.model import names
from metaxy_sql.model.definitions import SYSTEM_PREFIX, check_column

#: Columns a writer may pass; everything else with the system prefix is rejected.
ACCEPTED_SYSTEM_COLUMNS = (names.PROVENANCE_BY_FIELD, names.DATA_VERSION_BY_FIELD)
#: Columns recomputed by the engine (or increment-only) and therefore dropped on write.
DROPPED_SYSTEM_COLUMNS = (
    names.PROVENANCE, names.DATA_VERSION, names.FEATURE_VERSION, names.CREATED_AT,
    names.DELETED, names.WRITE_SEQ, *names.INCREMENT_ONLY_COLUMNS,
)


def to_arrow(data: Any, *, feature: str) -> pa.Table:
    """Convert rows to an Arrow table: Arrow, polars, pandas, dicts, pydantic models."""
    if hasattr(data, "to_arrow") and not isinstance(data, pa.Table):
        data = data.to_arrow()  # polars DataFrame, increment parts
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return data
    if type(data).__module__.startswith("pandas"):
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, Mapping):
        raise DataError(
            f"feature {feature!r}: got a single mapping; pass a list of rows ([{{...}}]) or a "
            "table (Arrow, polars, pandas)")
    if isinstance(data, Iterable):
        rows = [r.model_dump() if isinstance(r, BaseModel) else r for r in data]
        if not all(isinstance(r, Mapping) for r in rows):
            raise DataError(f"feature {feature!r}: rows must be mappings of column -> value")
        return pa.Table.from_pylist(rows)
    raise DataError(
        f"feature {feature!r}: cannot read rows from {type(data).__name__}; pass Arrow, "
        "polars, pandas or a list of dicts")


def check_ids(table: pa.Table, feature: str, id_columns: Sequence[str], *, unique: bool) -> None:
    """Id columns present, never null and (for writes) unique within the batch."""
    missing = [c for c in id_columns if c not in table.column_names]
    if missing:
        raise DataError(
            f"feature {feature!r}: rows lack id columns {missing}; every row needs "
            f"{list(id_columns)}")
    for c in id_columns:
        nulls = table.column(c).null_count
        if nulls:
            raise DataError(f"feature {feature!r}: id column {c!r} is null in {nulls} rows; "
                            "ids must be set")
    if unique and table.num_rows:
        counts = table.select(list(id_columns)).group_by(list(id_columns)).aggregate(
            [([], "count_all")])
        dupes = counts.filter(pc.greater(counts.column("count_all"), 1))
        if dupes.num_rows:
            example = {c: dupes.column(c)[0].as_py() for c in id_columns}
            raise DataError(
                f"feature {feature!r}: {dupes.num_rows} ids appear more than once in one write "
                f"(e.g. {example}); write one row per sample")


def check_by_field(
    table: pa.Table, feature: str, column: str, fields: Sequence[str], *, complete: bool
) -> None:
    """A per-field column is a struct or a map of strings whose keys are known fields.

    ``complete``: every field must be present and non-null in every row.
    """
    arr = table.column(column)
    typ = arr.type
    if pa.types.is_struct(typ):
        keys = [typ.field(i).name for i in range(typ.num_fields)]
        _check_keys(feature, column, keys, fields, complete)
        for i, key in enumerate(keys):
            child = pc.struct_field(arr, [i])
            if not _is_string(child.type):
                raise DataError(f"feature {feature!r}: {column}[{key!r}] must be a string")
            if complete and child.null_count:
                raise DataError(f"feature {feature!r}: {column}[{key!r}] is null in "
                                f"{child.null_count} rows; give every field a value")
    elif pa.types.is_map(typ):
        if not (_is_string(typ.key_type) and _is_string(typ.item_type)):
            raise DataError(f"feature {feature!r}: {column} must map strings to strings")
        keys, items = _map_entries(arr)
        found = pc.unique(keys).to_pylist()
        _check_keys(feature, column, found, fields, complete=False)
        null_items = items.null_count
        if null_items:
            raise DataError(f"feature {feature!r}: {column} has {null_items} null values; "
                            "leave a field out instead of giving it null")
        if complete:
            short = sum(
                pc.sum(pc.less(pc.subtract(c.offsets[1:], c.offsets[:-1]), len(fields))).as_py()
                or 0 for c in arr.chunks)
            if short:
                raise DataError(f"feature {feature!r}: {column} misses fields in {short} rows; "
                                f"every row needs {list(fields)}")
    else:
        raise DataError(
            f"feature {feature!r}: {column} must be a map (or struct) of field -> string, got "
            f"{typ}")
    if arr.null_count:
        raise DataError(f"feature {feature!r}: {column} is null in {arr.null_count} rows")


def _map_entries(arr: pa.ChunkedArray) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """Keys and values of every entry of a map column (within each chunk's own slice)."""
    keys, items = [], []
    for chunk in arr.chunks:
        start, end = chunk.offsets[0].as_py(), chunk.offsets[-1].as_py()
        keys.append(chunk.keys.slice(start, end - start))
        items.append(chunk.items.slice(start, end - start))
    typ = arr.type
    return (pa.chunked_array(keys, type=typ.key_type),
            pa.chunked_array(items, type=typ.item_type))


def _check_keys(feature: str, column: str, keys: Sequence[str], fields: Sequence[str],
                complete: bool) -> None:
    unknown = sorted(set(keys) - set(fields))
    if unknown:
        raise DataError(
            f"feature {feature!r}: {column} has unknown field keys {unknown}; the feature's "
            f"fields are {list(fields)}")
    missing = sorted(set(fields) - set(keys))
    if complete and missing:
        raise DataError(f"feature {feature!r}: {column} lacks fields {missing}; every row "
                        f"needs {list(fields)}")


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t))


def split_system_columns(table: pa.Table, feature: str) -> pa.Table:
    """Drop engine-computed columns; reject unknown reserved ones."""
    keep = []
    for name in table.column_names:
        if name in DROPPED_SYSTEM_COLUMNS:
            continue
        if name.lower().startswith(SYSTEM_PREFIX) and name not in ACCEPTED_SYSTEM_COLUMNS:
            raise DataError(
                f"feature {feature!r}: column {name!r} uses the reserved prefix "
                f"{SYSTEM_PREFIX!r}; rename it")
        keep.append(name)
    return table.select(keep)


def check_column_names(columns: Sequence[str], feature: str, id_columns: Sequence[str],
                       stored: Iterable[str] = ()) -> None:
    """The columns of a write follow the naming rules of the definitions (before anything is
    staged or appended): user columns are valid names that no engine keeps for itself, and
    no two columns, written or already ``stored``, differ only in case.

    Raises:
        DataError: naming the column and the fix.
    """
    seen: dict[str, str] = {names.fold(c): c for c in stored}
    written: dict[str, str] = {}
    for name in columns:
        if name not in id_columns and name not in ACCEPTED_SYSTEM_COLUMNS:
            try:
                check_column("column", name)
            except ValueError as e:
                raise DataError(f"feature {feature!r}: {e}") from None
        folded = names.fold(name)
        other = written.get(folded) or seen.get(folded)
        if other is not None and other != name:
            where = "the rows have" if folded in written else "the table stores"
            raise DataError(
                f"feature {feature!r}: column {name!r} differs only in case from {other!r}, "
                f"which {where}; DuckDB would store them in one column, Postgres in two; "
                f"write it as {other!r} or rename it")
        written[folded] = name


#: Arrow timestamp units that hold an id exactly on every engine (Postgres keeps microseconds).
_ID_TIME_UNITS = ("s", "ms", "us")


def check_id_types(table: pa.Table, feature: str, id_columns: Sequence[str]) -> pa.Table:
    """Id columns are of a type with one canonical text on every engine
    (``hashing.id_text``): strings, integers, booleans, decimals, dates, timestamps.
    Dictionary-encoded ids (categoricals) are decoded; nanosecond timestamps are taken as
    microseconds when that is exact.

    Returns:
        ``table``, with those id columns converted.

    Raises:
        DataError: an id column is a float, binary, container... naming the column and fix.
    """
    for c in id_columns:
        if c not in table.column_names:
            continue  # reported by check_ids
        t = table.column(c).type
        if pa.types.is_dictionary(t):  # e.g. a pandas categorical: ids as their values
            t = t.value_type
            table = table.set_column(table.schema.get_field_index(c), c,
                                     table.column(c).cast(t))
        if pa.types.is_timestamp(t) and t.unit not in _ID_TIME_UNITS:
            try:
                column = pc.cast(table.column(c), pa.timestamp("us", t.tz))
            except pa.ArrowInvalid:
                raise DataError(
                    f"feature {feature!r}: id column {c!r} has timestamps finer than a "
                    "microsecond, which Postgres cannot hold; round them to microseconds"
                    ) from None
            table = table.set_column(table.schema.get_field_index(c), c, column)
        elif not (_is_string(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)
                  or pa.types.is_decimal(t) or pa.types.is_date(t)
                  or pa.types.is_timestamp(t)
                  or pa.types.is_null(t)):  # all null: check_ids says so
            hint = ("cast it to int64 or to a string" if pa.types.is_floating(t)
                    else "cast it to a string")
            raise DataError(
                f"feature {feature!r}: id column {c!r} has Arrow type {t}, which is refused as "
                "an id type (ids enter hashes as text, and only strings, integers, booleans, "
                f"decimals, dates and timestamps have one spelling on every engine); {hint}")
    return table
