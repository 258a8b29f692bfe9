"""Column types of feature tables: declared or fixed by the first real write, then recorded.

Every id and user column has one *stored type*, an Arrow type from a small canonical set
(``int64``, ``uint64``, ``float64``, ``bool``, ``string``, ``binary``, ``decimal128(p, s)``,
``timestamp[us]``, ``timestamp[us, tz=UTC]``, ``date32``, and ``list``/``struct``/``map`` of
those). It comes from the feature class's annotation when there is one, else from the first
write whose column has a real type (an all-null column, Arrow ``null``, leaves it open), and is
recorded in the system table :data:`metaxy_sql.model.names.COLUMN_TYPES`.

A later write is cast to the stored type only along the widenings of :data:`WIDENINGS`, each
checked value by value (pyarrow's safe cast), so nothing is rounded, truncated or nulled;
anything else is refused with a :class:`~metaxy_sql.errors.DataError` naming the feature, the
column, both types and the fix. Reads cast back to the stored type (engines that keep nested
values as JSON text, Postgres, are parsed back here).
"""

from __future__ import annotations

import base64
import re
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from metaxy_sql.errors import DataError
from metaxy_sql.model import definitions, names

#: Given type family -> stored type families it widens into (checked value by value).
#: (one table for the model's definition-time checks and the writes: model.definitions)
WIDENINGS = definitions.WIDENINGS
#: Declared kinds (``model.definitions.declared_kind``) as stored types.
_DECLARED: dict[str, pa.DataType] = {
    "int": pa.int64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_(),
    "bytes": pa.binary(), "date": pa.date32(),
}
_MAX_DECIMAL_PRECISION = 38  # DuckDB's limit; ClickHouse and Postgres hold more


_STRUCT_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class TypeRefused(Exception):
    """A type outside the canonical set."""


def canonical(t: pa.DataType) -> pa.DataType | None:
    """The stored type of a given Arrow type; ``None`` for ``null`` (no type yet).

    Raises:
        TypeRefused: the type has no stored form (time, duration, union, nested null...).
    """
    if pa.types.is_null(t):
        return None
    if pa.types.is_dictionary(t):
        return canonical(t.value_type)
    if pa.types.is_boolean(t):
        return pa.bool_()
    if pa.types.is_uint64(t):
        return pa.uint64()  # values above 2**63 - 1 fit no int64
    if pa.types.is_integer(t):
        return pa.int64()
    if pa.types.is_floating(t):
        return pa.float64()
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t) \
            or pa.types.is_fixed_size_binary(t):
        return pa.binary()
    if pa.types.is_decimal(t):
        if t.precision > _MAX_DECIMAL_PRECISION:
            raise TypeRefused(f"{t} (at most {_MAX_DECIMAL_PRECISION} digits)")
        return pa.decimal128(t.precision, t.scale)
    if pa.types.is_timestamp(t):
        return pa.timestamp("us", tz="UTC" if t.tz else None)
    if pa.types.is_date(t):
        return pa.date32()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) \
            or pa.types.is_list_view(t):
        return pa.list_(_nested(t.value_type, t))
    if pa.types.is_struct(t):
        if t.num_fields == 0:
            raise TypeRefused(f"{t} (a struct needs fields)")
        names_ = [t.field(i).name for i in range(t.num_fields)]
        bad = [n for n in names_ if not _STRUCT_FIELD_RE.match(n)]
        if bad or len({n.lower() for n in names_}) != len(names_):
            # Engines spell struct field names inside type text (ClickHouse Tuple(...),
            # DuckDB STRUCT(...)): quotes, spaces, empty or case-twin names were dropped or
            # refused differently per engine. One rule, the column-name rule, everywhere.
            raise TypeRefused(f"{t} (struct field names must be letters, digits and '_', not "
                              "starting with a digit, distinct ignoring case; got "
                              f"{bad or names_})")
        return pa.struct([pa.field(t.field(i).name, _nested(t.field(i).type, t))
                          for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(_nested(t.key_type, t), _nested(t.item_type, t))
    raise TypeRefused(str(t))


def _nested(child: pa.DataType, parent: pa.DataType) -> pa.DataType:
    stored = canonical(child)
    if stored is None:
        raise TypeRefused(f"{parent} (a nested value has no type: every one is null)")
    return stored


def _family(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_decimal(t):
        return "decimal"
    return str(t)


def fits(given: pa.DataType, stored: pa.DataType) -> bool:
    """True when values of (canonical) type ``given`` may be cast into ``stored``."""
    if given == stored:
        return True
    if pa.types.is_list(given) and pa.types.is_list(stored):
        return fits(given.value_type, stored.value_type)
    if pa.types.is_map(given) and pa.types.is_map(stored):
        return fits(given.key_type, stored.key_type) and fits(given.item_type, stored.item_type)
    if pa.types.is_struct(given) and pa.types.is_struct(stored):
        names_ = [given.field(i).name for i in range(given.num_fields)]
        if names_ != [stored.field(i).name for i in range(stored.num_fields)]:
            return False
        return all(fits(given.field(i).type, stored.field(i).type)
                   for i in range(given.num_fields))
    return _family(stored) in WIDENINGS.get(_family(given), ())


def declared_type(annotation: Any) -> pa.DataType | None:
    """The stored type a feature class annotation fixes (``None``: the first write decides).

    ``int``, ``float``, ``str``, ``bool``, ``bytes``, ``datetime.date``, ``list[X]`` of those and
    ``X | None``. Other annotations (``datetime``, whose zone is not known, ``Decimal``, whose
    scale is not known, models, ``Any``) leave the type to the first real write.
    """
    kind = definitions.declared_kind(annotation)
    if kind is None:
        return None
    depth = 0
    while kind.startswith("list["):
        kind, depth = kind[5:-1], depth + 1
    t = _DECLARED[kind]
    for _ in range(depth):
        t = pa.list_(t)
    return t


def encode(t: pa.DataType) -> str:
    """A stored type as text that :func:`decode` reads back exactly (Arrow IPC schema)."""
    return base64.b64encode(pa.schema([pa.field("t", t)]).serialize().to_pybytes()).decode()


def decode(text: str) -> pa.DataType:
    """The stored type written by :func:`encode`."""
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(text)))
    return schema.field("t").type


def conform(table: pa.Table, feature: str, columns: Sequence[str],
            stored: Mapping[str, pa.DataType]) -> tuple[pa.Table, dict[str, pa.DataType]]:
    """Cast ``columns`` of ``table`` to their stored types; fix the types of new columns.

    Returns the table to write (open columns, all-null and never typed, left out) and the
    types to record (columns written with a real type for the first time).

    Raises:
        DataError: a column's type does not fit its stored type, a value does not survive
            the widening, or the type has no stored form.
    """
    new: dict[str, pa.DataType] = {}
    for name in columns:
        given = table.column(name).type
        try:
            target = canonical(given)
        except TypeRefused as e:
            raise DataError(
                f"feature {feature!r}: column {name!r} has Arrow type {e}, which no store "
                "holds; convert it to a number, string, boolean, binary, decimal, timestamp, "
                "date, or a list, struct or map of those") from None
        if name in stored:
            if target is not None and not fits(target, stored[name]):
                raise _mismatch(feature, name, stored[name], given)
            target = stored[name]
        elif target is None:
            table = table.drop_columns([name])
            continue
        else:
            new[name] = target
        if table.column(name).type != target:
            table = table.set_column(table.column_names.index(name), name,
                                     _cast(table.column(name), target, feature, name, stored))
        _check_no_null_list(table.column(name), feature, name)
        _check_finite_nested(table.column(name), feature, name)
    return table, new


def check_nested_floats(table: pa.Table, feature: str, columns: Sequence[str]) -> None:
    """Refuse NaN, infinity and -0.0 inside the list, struct and map values of ``columns``
    of ``table``, before any engine sees them (rows staged for a resolve, as written rows).

    Raises:
        DataError: naming the column and the first row holding one.
    """
    for name in columns:
        _check_finite_nested(table.column(name), feature, name)


def _check_finite_nested(column: pa.ChunkedArray, feature: str, name: str) -> None:
    # Postgres keeps nested values as jsonb, whose numbers are numeric: no NaN, no infinity,
    # and -0.0 reads back 0.0 (scalar float columns are double precision and keep all three).
    # Refused alike on every engine; every other float64 and int64 round-trips exactly.
    if not pa.types.is_nested(column.type):
        return
    for rows, leaf in _leaves(column, _is_float, map_keys=False):
        values = np.asarray(leaf.to_numpy(zero_copy_only=False), np.float64)
        valid = np.asarray(leaf.is_valid().to_numpy(zero_copy_only=False), bool)
        negative_zero = valid & (values == 0) & np.signbit(values)
        not_finite = valid & ~np.isfinite(values)
        for bad, (what, fix) in ((not_finite, _NOT_FINITE), (negative_zero, _NEGATIVE_ZERO)):
            if bad.any():
                raise DataError(
                    f"feature {feature!r}: column {name!r} row {rows(int(np.argmax(bad)))} "
                    f"holds {what} inside a list, struct or map, which not every store can "
                    f"hold there; {fix}")


_NOT_FINITE = ("NaN or infinity", "use NULL, or a scalar float column")
_NEGATIVE_ZERO = ("-0.0 (Postgres jsonb reads it back as 0.0)",
                  "write 0.0 (adding 0.0 to a float turns -0.0 into 0.0), or use a scalar "
                  "float column")


def _is_float(t: pa.DataType) -> bool:
    return bool(pa.types.is_floating(t))


def _check_no_null_list(column: pa.ChunkedArray, feature: str, name: str) -> None:
    # ClickHouse arrays, maps and tuples are never NULL (a NULL comes back as [] or a tuple
    # of NULLs): refused alike on every engine.
    if pa.types.is_nested(column.type) and column.null_count:
        row = pc.index(column.is_null(), True).as_py()
        raise DataError(f"feature {feature!r}: column {name!r} row {row} is NULL; a list, map or "
                        "struct value cannot be NULL on every engine; write an empty list or "
                        "map, or a struct of NULLs, instead")


def _cast(column: pa.ChunkedArray, target: pa.DataType, feature: str, name: str,
          stored: Mapping[str, pa.DataType]) -> pa.ChunkedArray:
    if pa.types.is_timestamp(column.type) and column.type.tz and target.tz:
        column = column.cast(pa.timestamp(column.type.unit, tz=target.tz))  # same instants
    try:
        return column.cast(target, safe=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        detail = str(e).splitlines()[0]
        if name in stored:
            raise DataError(
                f"feature {feature!r}: column {name!r} is stored as {target}; a value given as "
                f"{column.type} does not fit exactly ({detail}); write values of {target}"
            ) from None
        raise DataError(f"feature {feature!r}: column {name!r} ({column.type}) cannot be "
                        f"stored as {target} exactly: {detail}") from None


def _mismatch(feature: str, name: str, stored: pa.DataType, given: pa.DataType) -> DataError:
    hint = ""
    if pa.types.is_integer(stored) and pa.types.is_floating(given):
        # pandas turns an int column holding a missing value (a merge, a reindex) into float64
        hint = ("; from pandas, an int column with a missing value becomes float64: keep it "
                "in the nullable Int64 dtype (e.g. frame.convert_dtypes())")
    return DataError(
        f"feature {feature!r}: column {name!r} is stored as {stored}, given {given}; write "
        f"values of {stored} (widening is only lossless: int -> float/decimal, "
        f"narrower -> wider) or store this data under another column name{hint}")


def check_text(table: pa.Table, feature: str) -> None:
    """Every string, nested ones included, is valid UTF-8 without NUL (U+0000).

    Postgres text cannot hold NUL, so it is refused on every engine alike.

    Raises:
        DataError: naming the column and the first bad row.
    """
    for name in table.column_names:
        column = table.column(name)
        for chunk_rows, values in _leaves(column, _is_text):
            try:
                values.validate(full=True)
            except pa.ArrowInvalid:
                raise DataError(f"feature {feature!r}: column {name!r} holds text that is not "
                                "valid UTF-8; fix the encoding") from None
            bad = pc.match_substring(values, "\x00")
            if pc.any(bad).as_py():
                index = pc.index(bad, True).as_py()
                raise DataError(
                    f"feature {feature!r}: column {name!r} row {chunk_rows(index)} contains a "
                    "NUL character (U+0000), which stores cannot hold; remove it")


def _leaves(column: pa.ChunkedArray, is_leaf: Any, *,
             map_keys: bool = True) -> list[tuple[Any, pa.Array]]:
    """(position -> row, values) for every array of a type ``is_leaf`` accepts inside
    ``column``, nested ones included (map keys only with ``map_keys``)."""
    out: list[tuple[Any, pa.Array]] = []
    offset = 0
    for chunk in column.chunks:
        out.extend((_shift(offset, rows), values)
                   for rows, values in _walk(chunk, is_leaf, map_keys))
        offset += len(chunk)
    return out


def _shift(offset: int, rows: Any) -> Any:
    return lambda i: offset + rows(i)


def _walk(arr: pa.Array, is_leaf: Any, map_keys: bool) -> list[tuple[Any, pa.Array]]:
    t = arr.type
    if is_leaf(t):
        return [(lambda i: i, arr)]
    if pa.types.is_struct(t):
        return [x for i in range(t.num_fields) for x in _walk(arr.field(i), is_leaf, map_keys)]
    if pa.types.is_map(t):  # as list<struct<key, value>> (or list<value>), which flattens
        entries = (pa.StructArray.from_arrays([arr.keys, arr.items], ["key", "value"])
                   if map_keys else arr.items)
        arr = pa.ListArray.from_arrays(arr.offsets, entries, mask=arr.is_null())
        t = arr.type
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        parents = arr.value_parent_indices()
        return [(_via(parents, rows), v) for rows, v in _walk(arr.flatten(), is_leaf, map_keys)]
    return []


def _via(parents: pa.Array, rows: Any) -> Any:
    return lambda i: parents[rows(i)].as_py()


# -- reads --------------------------------------------------------------------------------
_json = threading.local()


def restore(table: pa.Table, stored: Mapping[str, pa.DataType]) -> pa.Table:
    """``table`` (read from an engine) with each recorded column cast to its stored type."""
    for i, name in enumerate(table.column_names):
        target = stored.get(name)
        column = table.column(name)
        if target is None or column.type == target:
            continue
        if _is_text(column.type) and (pa.types.is_nested(target)):
            column = _from_json(column, target)
        elif pa.types.is_timestamp(column.type) and pa.types.is_timestamp(target) \
                and column.type.tz and target.tz:
            column = column.cast(pa.timestamp(column.type.unit, tz=target.tz))
        table = table.set_column(i, name, column.cast(target))
    return _canonical_schema(table)


def _canonical_schema(table: pa.Table) -> pa.Table:
    """``table`` in the one schema every engine hands out: every field nullable, list
    children named ``item``, no metadata (DuckDB names list children ``l``; ClickHouse marks
    ids, lists, structs and maps ``not null``)."""
    schema = pa.schema([pa.field(f.name, canonical_arrow(f.type)) for f in table.schema])
    if table.schema.to_string(show_schema_metadata=True) == schema.to_string() \
            and not table.schema.metadata:
        return table
    return table.cast(schema)


def canonical_arrow(t: pa.DataType) -> pa.DataType:
    """``t`` spelled as every read hands it out: nested fields nullable (map keys excepted,
    Arrow requires them), list children named ``item``.

    >>> canonical_arrow(pa.list_(pa.field("l", pa.int64(), nullable=False)))
    ListType(list<item: int64>)
    """
    if pa.types.is_list(t):
        return pa.list_(canonical_arrow(t.value_type))
    if pa.types.is_large_list(t):
        return pa.large_list(canonical_arrow(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(t.field(i).name, canonical_arrow(t.field(i).type))
                          for i in range(t.num_fields)])
    if pa.types.is_map(t):
        return pa.map_(canonical_arrow(t.key_type), canonical_arrow(t.item_type))
    return t


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t))


def _from_json(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    """Parse JSON text (as written from the same Arrow type by DuckDB's ``to_json``)."""
    con = getattr(_json, "con", None)
    if con is None:
        con = _json.con = duckdb.connect()
    con.register("metaxy_type", pa.table({"v": pa.array([], target)}))
    try:
        duck_type = con.sql("DESCRIBE metaxy_type").fetchall()[0][1]
    finally:
        con.unregister("metaxy_type")
    con.register("metaxy_json", pa.table({"v": column}))
    try:
        out = con.sql(f"SELECT CAST(CAST(v AS JSON) AS {duck_type}) AS v FROM metaxy_json")
        return restore(out.to_arrow_table(), {"v": target}).column("v")
    finally:
        con.unregister("metaxy_json")


#: Kinds of the system columns a ``where=`` may read (``metaxy_created_at`` is a UTC wall
#: clock on every engine).
SYSTEM_PREDICATE_KINDS: dict[str, tuple[str, str]] = {
    **{c: ("text", "string") for c in (names.PROVENANCE, names.DATA_VERSION,
                                        names.FEATURE_VERSION)},
    **{c: ("nested", "map<string, string>") for c in (names.PROVENANCE_BY_FIELD,
                                                      names.DATA_VERSION_BY_FIELD)},
    names.CREATED_AT: ("timestamp", "timestamp[us]"),
    names.DELETED: ("bool", "bool"), names.SUPERSEDED: ("bool", "bool"),
    names.WRITE_SEQ: ("int", "int64"),
}


def predicate_kinds(types: Mapping[str, pa.DataType]) -> dict[str, tuple[str, str]]:
    """What a ``where=`` or filter may compare each column with (``model.filter_types``):
    column -> (kind, stored type text), from the stored Arrow types, plus the system
    columns."""
    return {**SYSTEM_PREDICATE_KINDS,
            **{column: (_predicate_kind(t), str(t)) for column, t in types.items()}}


def _predicate_kind(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_list(t) or pa.types.is_struct(t) or pa.types.is_map(t):
        return "nested"
    simple = {"float": "float", "decimal": "decimal"}.get(_family(t))
    if simple is not None:
        return simple
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_date(t):
        return "date"
    return "binary"
