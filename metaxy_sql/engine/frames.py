"""Arrow results as polars and pandas frames: exact values, per-field maps as dicts or structs.

Arrow's ``map<string, string>`` (``metaxy_provenance_by_field``, ``metaxy_data_version_by_field``)
has no polars type and becomes a list of ``{key, value}`` pairs under ``pl.from_arrow``, and a
list of tuples under ``to_pandas()``. Here:

- **pandas**: every by-field map cell is a Python ``dict``; other maps keep their Arrow type
  (``pd.ArrowDtype``), as do lists and structs, and numbers and booleans use pandas' nullable
  dtypes, so that every value and NULL comes back exactly (see :func:`to_pandas`).
- **polars**: a map column whose keys are known (the feature's field keys, for the by-field
  columns) becomes a ``Struct`` with one ``String`` field per key, in the given order (a key
  absent from a row is null); any other map column stays a ``List(Struct{key, value})``
  (polars has no map type, and a struct needs its keys before the first row is read).

polars and pandas are optional: they are imported when a conversion is asked for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from metaxy_sql.errors import ConfigError
from metaxy_sql.model import names

#: Map column -> its keys, in order (the columns converted to polars structs).
MapKeys = Mapping[str, Sequence[str]]
#: Map columns handed to pandas as Python dicts (every other map keeps its Arrow type).
BY_FIELD_COLUMNS = (names.PROVENANCE_BY_FIELD, names.DATA_VERSION_BY_FIELD)


def _struct_type(value_type: pa.DataType, keys: Sequence[str]) -> pa.StructType:
    return pa.struct([pa.field(k, value_type) for k in keys])


def structs_from_maps(data: pa.Table, map_keys: MapKeys) -> pa.Table:
    """``data`` with each map column named in ``map_keys`` turned into a struct of those keys
    (columns absent or not maps are left as they are)."""
    for name, keys in map_keys.items():
        if name not in data.column_names or not pa.types.is_map(data.schema.field(name).type):
            continue
        column = data.column(name)
        chunks = [_struct_chunk(chunk, keys) for chunk in column.chunks]
        target = _struct_type(column.type.item_type, keys)
        data = data.set_column(data.column_names.index(name), pa.field(name, target),
                               pa.chunked_array(chunks, target))
    return data


def _struct_chunk(chunk: pa.MapArray, keys: Sequence[str]) -> pa.StructArray:
    children = [pc.map_lookup(chunk, pa.scalar(k, chunk.type.key_type), "first") for k in keys]
    return pa.StructArray.from_arrays(
        children, fields=list(_struct_type(chunk.type.item_type, keys)),
        mask=chunk.is_null())


def arrow_schema_for_polars(schema: pa.Schema, map_keys: MapKeys) -> pa.Schema:
    """The schema :func:`structs_from_maps` gives tables of ``schema``."""
    for name, keys in map_keys.items():
        i = schema.get_field_index(name)
        if i >= 0 and pa.types.is_map(schema.field(i).type):
            schema = schema.set(i, pa.field(name, _struct_type(schema.field(i).type.item_type,
                                                                keys)))
    return schema


def _polars() -> Any:
    try:
        import polars as pl
    except ImportError as e:  # pragma: no cover - depends on the installed packages
        raise ConfigError("to_polars needs polars: pip install polars") from e
    return pl


def to_polars(data: pa.Table, map_keys: MapKeys) -> Any:
    """An eager ``polars.DataFrame`` of ``data`` (maps as described in the module docstring)."""
    return _polars().from_arrow(structs_from_maps(data, map_keys), rechunk=False)


def lazy_polars(schema: Callable[[], pa.Schema], batches: Callable[[], Iterator[pa.RecordBatch]],
                map_keys: MapKeys) -> Any:
    """A ``polars.LazyFrame`` that streams ``batches()`` when collected, each time anew.

    ``schema`` is called when polars needs the schema (``collect_schema``, ``collect``).
    Projections, filters and ``head`` apply batch by batch as the rows arrive: nothing is
    held beyond the batch being converted unless the query itself needs it (a sort, a join).
    """
    pl = _polars()
    from polars.io.plugins import register_io_source

    def polars_schema() -> Any:
        empty = arrow_schema_for_polars(schema(), map_keys).empty_table()
        return pl.from_arrow(empty).schema

    def source(with_columns: list[str] | None, predicate: Any, n_rows: int | None,
               batch_size: int | None) -> Iterator[Any]:
        left = n_rows
        for batch in _on_one_thread(batches):
            if left is not None and left <= 0:
                break
            frame = pl.from_arrow(structs_from_maps(pa.Table.from_batches([batch]), map_keys))
            if with_columns is not None:
                frame = frame.select(with_columns)
            if predicate is not None:
                frame = frame.filter(predicate)
            if left is not None:
                frame = frame.head(left)
                left -= frame.height
            yield frame

    return register_io_source(source, schema=polars_schema)


def _on_one_thread(make: Callable[[], Iterator[pa.RecordBatch]]) -> Iterator[pa.RecordBatch]:
    """The items of ``make()``, produced on a thread of their own, at most two ahead.

    polars may resume its source from different threads; an executor's stream can hold a
    lock (ClickHouse holds its client's), which only the thread that took it may release.
    """
    handoff: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                handoff.put((kind, value), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            stream = make()
            try:
                for item in stream:
                    if not put("item", item):
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
        except BaseException as e:
            put("error", e)
        else:
            put("end", None)

    worker = threading.Thread(target=produce, name="metaxy-sql-batches", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "error":
                raise value
            if kind == "end":
                return
            yield value
    finally:
        stop.set()
        worker.join()


def _pandas() -> Any:
    try:
        import pandas as pd
    except ImportError as e:  # pragma: no cover - depends on the installed packages
        raise ConfigError("to_pandas needs pandas: pip install pandas") from e
    return pd


def _nullable_dtype(pd: Any, t: pa.DataType) -> Any:
    """The pandas dtype that holds every value of Arrow type ``t`` and its NULLs, or ``None``
    for pyarrow's default (floats and maps are converted apart: see :func:`to_pandas`)."""
    if pa.types.is_integer(t):
        return pd.api.types.pandas_dtype(
            f"{'U' if pa.types.is_unsigned_integer(t) else ''}Int{t.bit_width}")
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) \
            or pa.types.is_list_view(t) or pa.types.is_struct(t):
        return pd.ArrowDtype(t)  # numpy arrays and dicts of Python values lose int64 and NULL
    return None


def _float_array(pd: Any, column: pa.ChunkedArray) -> Any:
    """A ``Float64``/``Float32`` array keeping NaN apart from NULL (``pd.NA``): pandas'
    ``Float64Dtype.__from_arrow__`` masks NaN as missing, the constructor keeps it a value."""
    if pa.types.is_float16(column.type):
        column = column.cast(pa.float32())
    values = np.asarray(column.fill_null(0).to_numpy())
    mask = np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return pd.arrays.FloatingArray(values, mask)


def to_pandas(data: pa.Table) -> Any:
    """A ``pandas.DataFrame`` of ``data`` in dtypes that keep every value and every NULL.

    - ``int8``…``int64``, ``uint8``…``uint64``: ``Int8``…``Int64``, ``UInt8``…``UInt64``
      (NULL is ``pd.NA``; no float detour, so ids above 2**53 keep every digit);
    - ``float32``/``float64``: ``Float32``/``Float64``, NULL is ``pd.NA`` and NaN stays NaN;
    - ``bool``: ``boolean`` (NULL is ``pd.NA``);
    - ``list``, ``struct``, and ``map`` other than the per-field columns:
      ``pd.ArrowDtype`` of the Arrow type (cells read as Python lists, dicts, lists of pairs);
    - per-field maps (``metaxy_provenance_by_field``, ``metaxy_data_version_by_field``):
      Python ``dict`` cells;
    - the rest as pyarrow gives them: ``string`` as pandas' string dtype, ``timestamp[us]``
      (zoned or not) as ``datetime64[us]`` with NaT for NULL, ``decimal128`` as
      ``decimal.Decimal``, ``date32`` as ``datetime.date``, ``binary`` as ``bytes`` (NULL:
      ``None``).

    :func:`metaxy_sql.engine.ingest.from_pandas` turns such a frame back into the same Arrow
    values.

    Raises:
        ConfigError: pandas is not installed.
    """
    pd = _pandas()
    frame = data.to_pandas(types_mapper=lambda t: _nullable_dtype(pd, t),
                           maps_as_pydicts="strict")
    for i, field in enumerate(data.schema):
        if pa.types.is_floating(field.type):
            frame.isetitem(i, _float_array(pd, data.column(i)))
        elif pa.types.is_map(field.type) and field.name not in BY_FIELD_COLUMNS:
            frame.isetitem(i, pd.array(data.column(i), dtype=pd.ArrowDtype(field.type)))
    return frame
