"""Per-field columns (``metaxy_provenance_by_field``, ``metaxy_data_version_by_field``) in every
form a writer may hold them, turned into one Arrow type: ``map<string, string>``.

Accepted forms, per row: a mapping ``{field: value}`` (Arrow struct or map), a list of
``(field, value)`` pairs (what ``to_pylist()`` and ``to_pandas()`` give for an Arrow map), a
list of ``{"key": field, "value": value}`` (polars and Arrow list-of-struct), or null. Every
conversion is vectorized over the Arrow buffers the caller already holds.

>>> rows = [{"m": {"audio": "a1"}}, {"m": [("audio", "a2")]},
...         {"m": [{"key": "audio", "value": "a3"}]}]
>>> column = python_values("f", "m", [r["m"] for r in rows])
>>> column.type, column.to_pylist()
(MapType(map<string, string>), [[('audio', 'a1')], [('audio', 'a2')], [('audio', 'a3')]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from metaxy_sql.errors import DataError

MAP_TYPE = pa.map_(pa.string(), pa.string())


@dataclass
class _Entries:
    """A per-field column as flat entries: row ``r`` owns ``keys[offsets[r]:offsets[r+1]]``."""

    offsets: np.ndarray  # int64, n + 1
    keys: pa.Array
    items: pa.Array
    row_valid: np.ndarray  # bool, n


def python_values(feature: str, column: str, values: Sequence[Any]) -> pa.Array:
    """Python per-row values (mappings, lists of pairs or key/value dicts, None) as a map array.

    Raises:
        DataError: a value is none of the accepted forms, or a key or value is not a string.
    """
    pairs: list[list[tuple[Any, Any]] | None] = []
    for row, value in enumerate(values):
        pairs.append(None if value is None else _pairs(feature, column, row, value))
    try:
        return pa.array(pairs, type=MAP_TYPE)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise _not_text(feature, column, pairs) or DataError(
            f"feature {feature!r}: column {column!r} must map field names to strings "
            f"({e})") from None


def _not_text(feature: str, column: str,
              pairs: Sequence[list[tuple[Any, Any]] | None]) -> DataError | None:
    """The first field name or value of ``pairs`` that is not a string, named by row."""
    for row, entries in enumerate(pairs):
        for key, value in entries or ():
            if not isinstance(key, str):
                return DataError(
                    f"feature {feature!r}: column {column!r} row {row} has field name {key!r} "
                    f"({type(key).__name__}); field names are strings")
            if value is not None and not isinstance(value, str):
                return DataError(
                    f"feature {feature!r}: column {column!r} row {row} maps field {key!r} to "
                    f"{value!r} ({type(value).__name__}); give each field's value as a string "
                    f"(e.g. {str(value)!r})")
    return None


def _pairs(feature: str, column: str, row: int, value: Any) -> list[tuple[Any, Any]]:
    if isinstance(value, Mapping):
        return list(value.items())
    if hasattr(value, "tolist") and not isinstance(value, str):
        value = value.tolist()  # numpy arrays (pandas rows of a list column)
    if isinstance(value, list | tuple):
        out = []
        for entry in value:
            if hasattr(entry, "tolist"):
                entry = entry.tolist()
            if isinstance(entry, Mapping) and set(entry) == {"key", "value"}:
                out.append((entry["key"], entry["value"]))
            elif isinstance(entry, list | tuple) and len(entry) == 2:
                out.append((entry[0], entry[1]))
            else:
                raise DataError(
                    f"feature {feature!r}: {column} in row {row} has entry {entry!r}; give a "
                    "mapping {field: value}, (field, value) pairs or {'key': .., 'value': ..}")
        return out
    raise DataError(f"feature {feature!r}: {column} in row {row} is a {type(value).__name__}; "
                    "give a mapping {field: value} or a list of (field, value) pairs")


def to_map(arr: pa.ChunkedArray | pa.Array, feature: str, column: str) -> pa.Array:
    """Any accepted Arrow form of a per-field column as ``map<string, string>`` (same rows,
    null rows and null values kept; a struct's null children are absent keys).

    Raises:
        DataError: the Arrow type is not an accepted form, or keys/values are not strings.
    """
    entries = _entries(arr, feature, column)
    return _build(entries, np.ones(len(entries.keys), dtype=bool), keep_null_rows=True)


def normalize(arr: pa.ChunkedArray | pa.Array, feature: str, column: str,
              fields: Sequence[str], *, complete: bool) -> pa.Array:
    """Check a per-field column against the feature's fields; return it as a map.

    ``complete`` (provenance): every row has a non-null value for every field. Otherwise
    (data-version overrides): any subset of fields; a null row, an empty map and a null value
    all mean "no override" and are dropped, so the engine falls back to the provenance.

    Raises:
        DataError: unknown field keys, a key given twice in one row, and with ``complete``
            null rows, null values or missing fields (naming feature, column and fields).
    """
    e = _entries(arr, feature, column)
    if e.keys.null_count:
        raise DataError(f"feature {feature!r}: {column} has {e.keys.null_count} null keys")
    index = pc.index_in(e.keys, value_set=pa.array(list(fields), pa.string()))
    if index.null_count:
        unknown = sorted(set(pc.filter(e.keys, pc.is_null(index)).to_pylist()))
        raise DataError(f"feature {feature!r}: {column} has unknown field keys {unknown}; the "
                        f"feature's fields are {list(fields)}")
    counts = np.diff(e.offsets)
    present = _fields_per_row(np.asarray(index.to_numpy(zero_copy_only=False), np.int64),
                              e.offsets, len(fields), feature, column)
    valid_items = np.asarray(pc.is_valid(e.items).to_numpy(zero_copy_only=False), bool)
    if complete:
        null_rows = int((~e.row_valid).sum())
        if null_rows:
            raise DataError(f"feature {feature!r}: {column} is null in {null_rows} rows; every "
                            f"row needs {list(fields)}")
        if not valid_items.all():
            raise DataError(f"feature {feature!r}: {column} has {int((~valid_items).sum())} "
                            "null values; give every field a string")
        short = int((counts < len(fields)).sum())
        if short:
            lacking = [f for i, f in enumerate(fields) if not present[:, i].all()]
            raise DataError(f"feature {feature!r}: {column} lacks fields {lacking} in {short} "
                            f"rows; every row needs {list(fields)}")
    if arr.type == MAP_TYPE and e.row_valid.all() and valid_items.all():
        return _combined(arr)  # already canonical: nothing to drop
    return _build(e, valid_items, keep_null_rows=False)


def _build(e: _Entries, keep: np.ndarray, *, keep_null_rows: bool) -> pa.Array:
    counts = np.diff(e.offsets)
    if (counts[~e.row_valid] > 0).any():  # a null row owns no entries, whatever its offsets say
        keep = keep & np.repeat(e.row_valid, counts)
    kept = _per_row(np.add, keep.astype(np.int64), e.offsets)
    offsets = np.concatenate([[0], np.cumsum(kept)]).astype(np.int32)
    mask = pa.array(~e.row_valid) if keep_null_rows and not e.row_valid.all() else None
    flags = pa.array(keep)
    return pa.MapArray.from_arrays(pa.array(offsets, pa.int32()), e.keys.filter(flags),
                                   e.items.filter(flags), type=MAP_TYPE, mask=mask)


def _per_row(ufunc: np.ufunc, values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``ufunc`` reduced over each row's entries (0 for a row without entries), without
    materializing a row number per entry."""
    counts = np.diff(offsets)
    if len(values) == 0:
        return np.zeros(len(counts), values.dtype)
    if counts.all():
        return np.asarray(ufunc.reduceat(values, offsets[:-1]), values.dtype)
    out = np.zeros(len(counts), values.dtype)
    filled = counts > 0  # reduceat over the rows owning entries: their starts increase strictly
    out[filled] = ufunc.reduceat(values, offsets[:-1][filled])
    return out


def _fields_per_row(index: np.ndarray, offsets: np.ndarray, n_fields: int, feature: str,
                    column: str) -> np.ndarray | _Bits:
    """Which fields each row names, indexable as ``[:, field]``. Raises on a field named
    twice in one row. One bit per field, summed and or-ed per row: they differ iff a bit
    repeats."""
    n = len(offsets) - 1
    if n_fields > 62:  # more fields than bits: count (row, field) slots instead
        slots = np.repeat(np.arange(n, dtype=np.int64), np.diff(offsets)) * n_fields + index
        per_slot = np.bincount(slots, minlength=n * n_fields).reshape(n, n_fields)
        twice = bool((per_slot > 1).any())
        present: np.ndarray | _Bits = np.asarray(per_slot > 0, bool)
    else:
        bits = np.left_shift(np.int64(1), index)
        ored = _per_row(np.bitwise_or, bits, offsets)
        twice = bool((_per_row(np.add, bits, offsets) != ored).any())
        present = _Bits(ored, n_fields)
    if twice:
        raise DataError(f"feature {feature!r}: {column} names a field twice in one row; give "
                        "each field once")
    return present


class _Bits:
    """Per-row field bit sets, read as a (rows x fields) boolean matrix only when needed."""

    def __init__(self, ored: np.ndarray, n_fields: int) -> None:
        self.ored, self.n_fields = ored, n_fields

    def __getitem__(self, key: tuple[slice, int]) -> np.ndarray:
        return np.asarray((self.ored >> np.int64(key[1])) & 1 == 1, bool)


def _combined(arr: pa.ChunkedArray | pa.Array) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        return arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    return arr


def _entries(arr: pa.ChunkedArray | pa.Array, feature: str, column: str) -> _Entries:
    arr = _combined(arr)
    typ, n = arr.type, len(arr)
    row_valid = np.asarray(pc.is_valid(arr).to_numpy(zero_copy_only=False), bool)
    if pa.types.is_null(typ):
        empty = pa.array([], pa.string())
        return _Entries(np.zeros(n + 1, np.int64), empty, empty, row_valid)
    if pa.types.is_struct(typ):
        return _struct_entries(arr, feature, column, row_valid)
    if pa.types.is_map(typ):
        start, end = arr.offsets[0].as_py(), arr.offsets[-1].as_py()
        return _Entries(_offsets(arr), _text(arr.keys[start:end], feature, column),
                        _text(arr.items[start:end], feature, column), row_valid)
    if pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_list_view(typ):
        arr = arr.cast(pa.large_list(typ.value_type)) if pa.types.is_list_view(typ) else arr
        values = arr.values[arr.offsets[0].as_py():arr.offsets[-1].as_py()]
        offsets = _offsets(arr)
        vtype = values.type
        if pa.types.is_struct(vtype) and sorted(vtype.field(i).name for i in range(
                vtype.num_fields)) == ["key", "value"]:
            return _Entries(offsets, _text(pc.struct_field(values, ["key"]), feature, column),
                            _text(pc.struct_field(values, ["value"]), feature, column),
                            row_valid)
        if pa.types.is_list(vtype) or pa.types.is_large_list(vtype) or \
                pa.types.is_fixed_size_list(vtype):
            return _pair_entries(values, offsets, feature, column, row_valid)
    raise DataError(f"feature {feature!r}: {column} must be a map of field -> string (or a "
                    f"struct, or a list of (field, value) pairs), got {typ}")


def _offsets(arr: pa.Array) -> np.ndarray:
    """Row offsets relative to the first entry (null rows own no entries)."""
    offsets = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), np.int64)
    return np.asarray(offsets - offsets[0], np.int64)


def _text(values: pa.Array, feature: str, column: str) -> pa.Array:
    if pa.types.is_string(values.type):
        return values
    if pa.types.is_large_string(values.type) or pa.types.is_string_view(values.type) or \
            pa.types.is_null(values.type):
        return values.cast(pa.string())
    raise DataError(f"feature {feature!r}: column {column!r} must map field names to strings, "
                    f"got {values.type} values; give each field's value as a string")


def _struct_entries(arr: pa.Array, feature: str, column: str,
                    row_valid: np.ndarray) -> _Entries:
    """Row-major entries of a struct: one per (row, struct field) whose value is not null."""
    typ, n = arr.type, len(arr)
    names = [typ.field(i).name for i in range(typ.num_fields)]
    if not names:
        empty = pa.array([], pa.string())
        return _Entries(np.zeros(n + 1, np.int64), empty, empty, row_valid)
    children = [_text(pc.struct_field(arr, [i]), feature, column) for i in range(len(names))]
    order = (np.arange(len(names))[None, :] * n + np.arange(n)[:, None]).ravel()
    items = pa.concat_arrays(children).take(pa.array(order))
    present = np.asarray(pc.is_valid(items).to_numpy(zero_copy_only=False), bool)
    present &= np.repeat(row_valid, len(names))
    keys = pa.array(np.tile(np.array(names, dtype=object), n), pa.string())
    counts = present.reshape(n, len(names)).sum(axis=1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flags = pa.array(present)
    return _Entries(offsets, keys.filter(flags), items.filter(flags), row_valid)


def _pair_entries(values: pa.Array, offsets: np.ndarray, feature: str, column: str,
                  row_valid: np.ndarray) -> _Entries:
    """Entries given as two-element lists ``[field, value]``."""
    lengths = pc.list_value_length(values)
    if values.null_count or pc.any(pc.not_equal(lengths, 2)).as_py():
        raise DataError(f"feature {feature!r}: {column} has entries that are not (field, value) "
                        "pairs")
    flat = pc.list_flatten(values)
    flat = _text(flat, feature, column)
    return _Entries(offsets, flat.take(pa.array(np.arange(0, len(flat), 2))),
                    flat.take(pa.array(np.arange(1, len(flat), 2))), row_valid)
