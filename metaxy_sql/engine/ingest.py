"""Turning what users pass (Arrow, polars, pandas, dicts, pydantic rows) into checked Arrow.

All checks are vectorized Arrow compute over the data the user already holds in memory.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel

from metaxy_sql.engine import by_field
from metaxy_sql.errors import DataError
from metaxy_sql.model import names
from metaxy_sql.model.definitions import SYSTEM_PREFIX, check_column

#: Columns a writer may pass; everything else with the system prefix is rejected.
ACCEPTED_SYSTEM_COLUMNS = (names.PROVENANCE_BY_FIELD, names.DATA_VERSION_BY_FIELD)
#: Columns the store computes from the row, which a written row may carry only with that value.
HASH_COLUMNS = (names.PROVENANCE, names.DATA_VERSION)
#: Columns describing the row a write appends (time, position, definitions), which a written row
#: may carry only as read from the store: equal to those of the id's latest stored row
#: (``metaxy_feature_version`` also: equal to the version of the definitions writing).
STORED_COLUMNS = (names.CREATED_AT, names.WRITE_SEQ, names.FEATURE_VERSION)
#: Staged column numbering the written rows (to name the first offending one).
ROW = "metaxy_row"
#: Columns recomputed by the engine (or increment-only) and therefore dropped on write.
DROPPED_SYSTEM_COLUMNS = (
    names.PROVENANCE, names.DATA_VERSION, names.FEATURE_VERSION, names.CREATED_AT,
    names.DELETED, names.WRITE_SEQ, *names.INCREMENT_ONLY_COLUMNS,
)


def to_arrow(data: Any, *, feature: str) -> pa.Table:
    """Convert rows to an Arrow table: Arrow, polars, pandas, dicts, pydantic models.

    The per-field columns come out as ``map<string, string>`` whatever form they were given in
    (mappings, structs, lists of ``(field, value)`` pairs or of ``{"key", "value"}`` dicts: see
    :mod:`metaxy_sql.engine.by_field`), so every form an increment is handed out in writes back.

    Raises:
        DataError: not rows, or a per-field column in none of the accepted forms.
    """
    return _by_field_as_maps(_table(data, feature), feature)


def id_rows(ids: Any, feature: str, id_columns: Sequence[str]) -> Any:
    """``ids`` as :func:`to_arrow` reads them: a list of plain id values (one id column) or of
    tuples (one value per id column, in ``id_columns`` order) becomes rows; rows and tables
    (what ``write`` accepts) are returned as they are.

    >>> id_rows(["v1", "v2"], "video/full", ["sample_uid"])
    [{'sample_uid': 'v1'}, {'sample_uid': 'v2'}]
    >>> id_rows([("v1", 0)], "video/chunk", ["sample_uid", "chunk"])
    [{'sample_uid': 'v1', 'chunk': 0}]

    Raises:
        DataError: a string or bytes instead of a list; a plain value for a feature with
            several id columns; a tuple of another length than ``id_columns``.
    """
    if isinstance(ids, str | bytes):
        raise DataError(f"feature {feature!r}: got one id {ids!r}; pass a list of ids, e.g. "
                        f"[{ids!r}]")
    if type(ids).__module__.startswith("pandas") and getattr(ids, "ndim", 2) == 1:
        ids = ids.tolist()  # a Series or Index of ids: its values, as a list would give them
    tabular = (pa.Table, pa.RecordBatch, Mapping)
    if isinstance(ids, tabular) or hasattr(ids, "to_arrow") or \
            type(ids).__module__.startswith("pandas") or not isinstance(ids, Iterable):
        return ids
    return [_id_row(item, feature, id_columns) for item in ids]


def _id_row(item: Any, feature: str, id_columns: Sequence[str]) -> Any:
    if isinstance(item, Mapping | BaseModel):
        return item
    if isinstance(item, tuple | list):
        if len(item) == len(id_columns):
            return dict(zip(id_columns, item, strict=True))
    elif len(id_columns) == 1:
        return {id_columns[0]: item}
    form = ("a plain value per id, or a row {...}" if len(id_columns) == 1 else
            f"a tuple of {len(id_columns)} values per id, in that order, or a row {{...}}")
    raise DataError(f"feature {feature!r}: ids are values of its id columns "
                    f"{list(id_columns)}: give {form}; got {item!r}")


def _table(data: Any, feature: str) -> pa.Table:
    if hasattr(data, "to_arrow") and not isinstance(data, pa.Table):
        data = data.to_arrow()  # polars DataFrame, increment parts
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        return data
    if type(data).__module__.startswith("pandas"):
        return from_pandas(data, feature)
    if isinstance(data, Mapping):
        raise DataError(
            f"feature {feature!r}: got a single mapping; pass a list of rows ([{{...}}]) or a "
            "table (Arrow, polars, pandas)")
    if isinstance(data, Iterable):
        rows = [r.model_dump() if isinstance(r, BaseModel) else r for r in data]
        if not all(isinstance(r, Mapping) for r in rows):
            raise DataError(f"feature {feature!r}: rows must be mappings of column -> value")
        return _from_rows(rows, feature)
    raise DataError(
        f"feature {feature!r}: cannot read rows from {type(data).__name__}; pass Arrow, "
        "polars, pandas or a list of dicts")


def from_pandas(frame: Any, feature: str) -> pa.Table:
    """A ``pandas.DataFrame`` as Arrow, with NULL only where pandas marks a value missing.

    ``pa.Table.from_pandas`` reads every float NaN as NULL, which would replace a value the
    user gave. Here a NaN is NULL only when it is pandas' missing marker:

    - numpy float columns (``float64``, ...): NaN is the float NaN (numpy has no NULL); so is
      it in ``Float64``/``Float32`` columns, whose NULL is ``pd.NA``;
    - ``object`` columns: ``None``, ``pd.NA`` and ``NaT`` are NULL; a NaN is the float NaN
      when every other value of the column is a float, and NULL otherwise (pandas puts NaN
      in rows it adds to an ``object`` column of text, bytes, decimals: a merge, a reindex);
      NaN inside lists and dicts stays NaN (and is refused: nested values hold no NaN);
    - other dtypes convert as pandas marks them (``pd.NA``, ``NaT``, the ``str`` dtype's NaN,
      a categorical's missing code).

    The index is not written.

    Raises:
        DataError: an ``object`` column whose values Arrow cannot hold as one type (names the
            column and first row); two columns of one name.
    """
    import pandas as pd

    names = [str(c) for c in frame.columns]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise DataError(f"feature {feature!r}: the pandas frame has columns named more than "
                        f"once: {twice}; rename or drop the copies (one column per name)")
    kinds = [getattr(dtype, "kind", "") if isinstance(dtype, np.dtype) else ""
             for dtype in frame.dtypes]
    exact = {i: _exact_array(pd, frame.iloc[:, i].to_numpy(), kind, feature, str(name))
             for i, (name, kind) in enumerate(zip(frame.columns, kinds, strict=True))
             if kind in ("f", "O")}
    rest = [i for i in range(frame.shape[1]) if i not in exact]
    converted = pa.Table.from_pandas(frame.iloc[:, rest], preserve_index=False)
    arrays = [exact[i] if i in exact else converted.column(rest.index(i))
              for i in range(frame.shape[1])]
    return pa.Table.from_arrays(arrays, names=[str(c) for c in frame.columns])


def _exact_array(pd: Any, values: Any, kind: str, feature: str, name: str) -> Any:
    if kind == "f":
        return pa.array(values, from_pandas=False)
    cells = list(values)
    nan_is_null = any(not (_is_missing(pd, v) or isinstance(v, float)) for v in cells)
    cells = [None if _is_missing(pd, v) or (nan_is_null and _is_nan(v)) else v for v in cells]
    try:
        return pa.array(cells, from_pandas=False)
    except (pa.ArrowException, UnicodeError, OverflowError, TypeError) as e:
        raise _locate([{name: v} for v in cells], feature, e) from None


def _is_missing(pd: Any, value: Any) -> bool:
    return value is None or value is pd.NA or value is pd.NaT


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


def _from_rows(rows: list[Mapping[str, Any]], feature: str) -> pa.Table:
    """Python rows as a table; per-field values are converted on their own (a row may hold a
    dict, another a list of pairs: Arrow's inference would refuse the mix)."""
    present = [c for c in ACCEPTED_SYSTEM_COLUMNS if any(c in r for r in rows)]
    maps = {c: _by_field_values(feature, c, [r.get(c) for r in rows]) for c in present}
    rest = [{k: v for k, v in r.items() if k not in maps} for r in rows]
    # Every key of every row (from_pylist reads the first row's keys only).
    keys = dict.fromkeys(k for r in rest for k in r)
    try:
        table = (pa.Table.from_pydict({k: [r.get(k) for r in rest] for k in keys}) if keys
                 else pa.Table.from_pylist(rest))
    except (pa.ArrowException, UnicodeError, OverflowError, TypeError) as e:
        raise _locate(rest, feature, e) from None
    if table.num_columns == 0 and maps:  # rows with nothing but per-field columns
        return pa.Table.from_arrays(list(maps.values()), names=list(maps))
    for c, column in maps.items():
        table = table.append_column(c, column)
    return table


def _by_field_values(feature: str, column: str, values: list[Any]) -> Any:
    """``by_field.python_values``, with text Arrow cannot hold named by column and row."""
    try:
        return by_field.python_values(feature, column, values)
    except (pa.ArrowException, UnicodeError) as e:
        for row, value in enumerate(values):
            try:
                by_field.python_values(feature, column, [value])
            except (pa.ArrowException, UnicodeError) as bad:
                raise DataError(f"feature {feature!r}: column {column!r} row {row}: {value!r} "
                                f"cannot be stored ({bad})") from None
        raise DataError(f"feature {feature!r}: column {column!r} cannot be stored ({e})") from None


def _by_field_as_maps(table: pa.Table, feature: str) -> pa.Table:
    for c in ACCEPTED_SYSTEM_COLUMNS:
        if c in table.column_names and table.schema.field(c).type != by_field.MAP_TYPE:
            table = table.set_column(table.column_names.index(c), c,
                                     by_field.to_map(table.column(c), feature, c))
    return table


def _locate(rows: list[Any], feature: str, error: BaseException) -> DataError:
    """The column and first row that ``pa.Table.from_pylist(rows)`` cannot convert."""
    for name in dict.fromkeys(k for r in rows for k in r):
        values = [r.get(name) for r in rows]
        if _converts(values):
            continue
        lo, hi = 0, len(values)  # the shortest failing prefix ends at the bad row
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if _converts(values[:mid]) else (lo, mid)
        row, detail = hi - 1, "unknown"
        try:
            pa.array(values[:hi])
        except (pa.ArrowException, UnicodeError, OverflowError, TypeError) as e:
            detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        kinds = sorted({type(v).__name__ for v in values if v is not None})
        hint = (f"values of several types ({', '.join(kinds)}) in one column; use one type"
                if len(kinds) > 1 else "fix the value")
        return DataError(f"feature {feature!r}: column {name!r} row {row}: {values[row]!r} "
                         f"cannot be stored ({detail}); {hint}")
    return DataError(f"feature {feature!r}: rows cannot be converted to Arrow: {error}")


def _converts(values: list[Any]) -> bool:
    try:
        pa.array(values)
    except (pa.ArrowException, UnicodeError, OverflowError, TypeError):
        return False
    return True


def check_ids(table: pa.Table, feature: str, id_columns: Sequence[str], *, unique: bool,
              operation: str = "one write") -> None:
    """Id columns present, never null and (with ``unique``) unique within the batch;
    ``operation`` names the batch in the message (``"one write"``, ``"the samples= of one
    resolve_update"``)."""
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
                f"feature {feature!r}: {dupes.num_rows} ids appear more than once in "
                f"{operation} (e.g. {example}); give one row per sample")


def check_by_field(table: pa.Table, feature: str, column: str, fields: Sequence[str], *,
                   complete: bool) -> pa.Table:
    """``table`` with the per-field ``column`` checked against ``fields`` and normalized (see
    :func:`metaxy_sql.engine.by_field.normalize`).

    Raises:
        DataError: unknown field keys, repeated keys, and with ``complete`` missing fields or
            null values.
    """
    normalized = by_field.normalize(table.column(column), feature, column, fields,
                                    complete=complete)
    return table.set_column(table.column_names.index(column), column, normalized)


def split_system_columns(table: pa.Table, feature: str) -> pa.Table:
    """Drop engine-computed columns; reject unknown reserved ones."""
    keep = []
    for name in table.column_names:
        if name in DROPPED_SYSTEM_COLUMNS:
            continue
        if name.lower().startswith(SYSTEM_PREFIX) and name not in ACCEPTED_SYSTEM_COLUMNS:
            raise _reserved(feature, name)
        keep.append(name)
    return table.select(keep)


def _reserved(feature: str, name: str) -> DataError:
    """A ``metaxy_*`` column no row may carry: a misspelling of a known one, or a user column
    under the reserved prefix."""
    known = sorted({*ACCEPTED_SYSTEM_COLUMNS, *DROPPED_SYSTEM_COLUMNS})
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.8)
    if name in names.SYSTEM_COLUMNS:
        fix = "it is the store's own and never written: drop it"
    elif close:
        fix = f"did you mean {close[0]!r}?"
    else:
        fix = "rename it if it is your column"
    return DataError(
        f"feature {feature!r}: column {name!r} uses the reserved prefix {SYSTEM_PREFIX!r} but "
        f"is no column rows may carry ({', '.join(known)}); {fix}")


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


def _is_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t))


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


def given_system_values(table: pa.Table, feature: str, id_columns: Sequence[str],
                        field_keys: Sequence[str]) -> dict[str, pa.ChunkedArray]:
    """The values of the checked system columns written rows carry (``HASH_COLUMNS``,
    ``STORED_COLUMNS``, ``metaxy_deleted``), for the store to check against what it records;
    columns holding only nulls are left out (a null is no value: the store fills it in).

    Checked here: types; ``metaxy_deleted`` false; the increment-only ``metaxy_status`` and
    ``metaxy_changed_fields`` hold what an increment hands out (they are not stored).

    Raises:
        DataError: naming feature, column, first offending row and id, and the fix.
    """
    given: dict[str, pa.ChunkedArray] = {}
    for name in table.column_names:
        column = table.column(name)
        if column.null_count == len(column):
            continue
        t = column.type
        if name in (*HASH_COLUMNS, names.FEATURE_VERSION, names.STATUS):
            if not (_is_string(t) or pa.types.is_dictionary(t)):
                raise _type_refused(feature, name, t, "text")
            given[name] = column.cast(pa.string())
        elif name == names.DELETED:
            if not pa.types.is_boolean(t):
                raise _type_refused(feature, name, t, "boolean")
            if pc.any(column).as_py():
                row = _first(pc.fill_null(column, False))
                raise DataError(
                    f"feature {feature!r}: column {name!r} row {row} "
                    f"({row_id(table, id_columns, row)}) is true: a write records live rows "
                    f"and never a deletion; use store.delete({feature!r}, ids) to delete, and "
                    f"drop the column {name!r} from written rows")
        elif name == names.WRITE_SEQ:
            if not pa.types.is_integer(t):
                raise _type_refused(feature, name, t, "integer")
            given[name] = column.cast(pa.int64())
        elif name == names.CREATED_AT:
            if not pa.types.is_timestamp(t):
                raise _type_refused(feature, name, t, "timestamp")
            given[name] = column
        elif name == names.CHANGED_FIELDS:
            _check_changed_fields(table, feature, id_columns, field_keys)
    if names.STATUS in given:
        status = given.pop(names.STATUS)
        bad = pc.invert(pc.fill_null(pc.is_in(status, pa.array(names.STATUSES)), True))
        if pc.any(bad).as_py():
            row = _first(bad)
            raise DataError(
                f"feature {feature!r}: column {names.STATUS!r} row {row} "
                f"({row_id(table, id_columns, row)}): {status[row].as_py()!r} is not a status "
                f"an increment hands out ({', '.join(names.STATUSES)}); drop the column (it "
                "is not stored)")
    return given


def _check_changed_fields(table: pa.Table, feature: str, id_columns: Sequence[str],
                          field_keys: Sequence[str]) -> None:
    column = table.column(names.CHANGED_FIELDS)
    t = column.type
    if not ((pa.types.is_list(t) or pa.types.is_large_list(t))
            and (_is_string(t.value_type) or pa.types.is_null(t.value_type))):
        raise _type_refused(feature, names.CHANGED_FIELDS, t, "list of field keys")
    for row, value in enumerate(column.to_pylist()):
        unknown = [f for f in value or () if f not in field_keys]
        if unknown:
            raise DataError(
                f"feature {feature!r}: column {names.CHANGED_FIELDS!r} row {row} "
                f"({row_id(table, id_columns, row)}) names {unknown}, which are not fields of "
                f"the feature ({list(field_keys)}); drop the column (it is not stored)")


def _type_refused(feature: str, column: str, t: pa.DataType, wanted: str) -> DataError:
    return DataError(f"feature {feature!r}: column {column!r} is given as {t}, where the store "
                     f"records {wanted}; drop the column: the store computes it")


def _first(mask: pa.ChunkedArray | pa.Array) -> int:
    """Index of the first true value of ``mask`` (which has one)."""
    return int(pc.index(mask, True).as_py())


def row_id(table: pa.Table, id_columns: Sequence[str], row: int) -> str:
    """``id {...}`` of ``row`` of ``table``, for messages."""
    return "id " + repr({c: table.column(c)[row].as_py() for c in id_columns
                         if c in table.column_names})
