"""Samples of a root feature whose provenance is unchanged but whose columns changed.

A root's increment compares provenance only: a sample whose ``metaxy_provenance_by_field``
is the stored one is neither new nor stale, whatever its other columns hold. Recording the
current sample set must still store a changed ``duration`` (filters and carried columns
downstream read it), so :func:`changed_rows` finds those samples by comparing the given
columns with the id's latest stored row, exactly: a NULL differs from every value, NaN equals
NaN, ``-0.0`` differs from ``0.0`` (the store keeps each as written), and map entries compare
regardless of their order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.engine import coltypes
from metaxy_sql.engine.executors.base import Executor
from metaxy_sql.model import names

_LEFT, _RIGHT = "__metaxy_left_row", "__metaxy_right_row"
_BITS = {32: pa.int32(), 64: pa.int64()}


def changed_rows(executor: Executor, feature: str, id_columns: Sequence[str],
                 field_keys: Sequence[str], samples: pa.Table,
                 stored_types: Mapping[str, pa.DataType],
                 subset: exp.Expr | None = None) -> pa.Table:
    """The rows of ``samples`` (staged as the sample set of root ``feature``) whose provenance
    equals the id's latest stored row's for every field while another column of ``samples``
    differs from that row's (a column the table lacks reads as NULL). Rows keep the order and
    columns of ``samples``; ``subset`` restricts the ids compared (partial resolution).

    Raises:
        DataError: a column of ``samples`` does not fit its stored type (as a write would).
    """
    table = names.table(feature)
    compared = [c for c in samples.column_names
                if c not in id_columns and c != names.PROVENANCE_BY_FIELD]
    if not compared or not samples.num_rows or table not in executor.tables():
        return samples.slice(0, 0)
    stored = _stored_rows(executor, table, id_columns, compared, stored_types, subset,
                          names.samples(feature))
    left, right = _matched(samples, stored, id_columns)
    same = _same_provenance(left.column(names.PROVENANCE_BY_FIELD),
                            right.column(names.PROVENANCE_BY_FIELD), field_keys)
    given, _ = coltypes.conform(left.select(compared), feature, compared, stored_types)
    differs = pa.array([False] * left.num_rows, pa.bool_())
    for c in given.column_names:
        other = (right.column(c) if c in right.column_names
                 else pa.nulls(left.num_rows, given.column(c).type))
        differs = pc.or_(differs, pc.invert(exact_equal(given.column(c), other)))
    return samples.take(pc.filter(left.column(_LEFT), pc.and_(same, differs)))


def _stored_rows(executor: Executor, table: str, id_columns: Sequence[str],
                 compared: Sequence[str], stored_types: Mapping[str, pa.DataType],
                 subset: exp.Expr | None, staged: str) -> pa.Table:
    """Latest live rows of ``table`` for the staged sample ids: ids, provenance map and those
    of ``compared`` the table has, in their stored types."""
    present = executor.columns(table)
    columns = [names.PROVENANCE_BY_FIELD, *[c for c in compared if c in present]]
    query = builder.latest_rows(table, id_columns, [builder.col(c) for c in columns]).where(
        builder.ids_in(id_columns, builder.ids_of(staged, id_columns)))
    if subset is not None:
        query = query.where(executor.dialect.predicate(subset))
    return coltypes.restore(executor.fetch(executor.dialect.render(query)), stored_types)


def _matched(samples: pa.Table, stored: pa.Table, id_columns: Sequence[str]
             ) -> tuple[pa.Table, pa.Table]:
    """The sample rows with a stored row of the same id and those stored rows, aligned; the
    left table carries each row's position in ``samples`` as ``_LEFT``."""
    keys = list(id_columns)
    left_ids = samples.select(keys).append_column(
        _LEFT, pa.array(range(samples.num_rows), pa.int64()))
    right_ids = stored.select(keys).cast(samples.select(keys).schema).append_column(
        _RIGHT, pa.array(range(stored.num_rows), pa.int64()))
    pairs = left_ids.join(right_ids, keys, join_type="inner").sort_by(_LEFT)
    left = samples.take(pairs.column(_LEFT)).append_column(_LEFT, pairs.column(_LEFT))
    return left, stored.take(pairs.column(_RIGHT))


def _same_provenance(given: pa.ChunkedArray, stored: pa.ChunkedArray,
                     field_keys: Sequence[str]) -> pa.Array:
    """Per row: every field's given provenance equals the stored one (as the increment
    decides "stale", which a NULL stored provenance is)."""
    same = pa.array([True] * len(given), pa.bool_())
    for key in field_keys:
        equal = pc.equal(pc.map_lookup(given, key, "first"), pc.map_lookup(stored, key, "first"))
        same = pc.and_(same, pc.fill_null(equal, False))
    return same


def exact_equal(left: pa.ChunkedArray | pa.Array, right: pa.ChunkedArray | pa.Array
                ) -> pa.Array:
    """Per row, whether two columns of one Arrow type hold the same value by the store's
    exact-value rules: NULL equals only NULL, NaN equals NaN, ``-0.0`` differs from ``0.0``
    (floats compare by bit pattern, NaNs aside), nested values compare item by item by the
    same rules, map entries regardless of order. Returns a boolean array without nulls."""
    a = left.combine_chunks() if isinstance(left, pa.ChunkedArray) else left
    b = right.combine_chunks() if isinstance(right, pa.ChunkedArray) else right
    t = a.type
    both_null = pc.and_(pc.is_null(a), pc.is_null(b))
    if pa.types.is_floating(t) and t.bit_width in _BITS:
        bits = pc.equal(a.view(_BITS[t.bit_width]), b.view(_BITS[t.bit_width]))
        equal = pc.or_(bits, pc.and_(pc.is_nan(a), pc.is_nan(b)))
    elif pa.types.is_nested(t) or pa.types.is_floating(t):
        equal = pa.array([_key(x, t) == _key(y, t)
                          for x, y in zip(a.to_pylist(), b.to_pylist(), strict=True)],
                         pa.bool_())
    else:
        equal = pc.equal(a, b)
    return pc.or_(pc.fill_null(equal, False), both_null)


def _key(value: Any, t: pa.DataType) -> Any:
    """A Python value comparing with ``==`` as :func:`exact_equal` compares ``value``."""
    if value is None:
        return ("null",)
    if pa.types.is_floating(t):
        return ("nan",) if math.isnan(value) else (value, math.copysign(1.0, value))
    if pa.types.is_map(t):
        pairs = [(_key(k, t.key_type), _key(v, t.item_type)) for k, v in value]
        return ("map", tuple(sorted(pairs, key=repr)))
    if pa.types.is_struct(t):
        return tuple(_key(value[f.name], f.type) for f in t)
    if (pa.types.is_list(t) or pa.types.is_large_list(t)
            or pa.types.is_fixed_size_list(t)):
        return tuple(_key(v, t.value_type) for v in value)
    return value
