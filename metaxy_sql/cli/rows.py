"""Rows in and out of the command line: reading a file of rows (parquet, JSON lines, CSV)
and printing Arrow rows as JSON (maps as JSON objects, never lists of pairs)."""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa

from metaxy_sql.errors import ConfigError, DataError
from metaxy_sql.model import names

#: File suffixes read, and what each is read as.
FORMATS = {".parquet": "parquet", ".jsonl": "JSON lines", ".ndjson": "JSON lines",
           ".json": "JSON lines", ".csv": "CSV"}
#: Per-field map columns: in a CSV file, each cell is a JSON object (field -> value).
_BY_FIELD = (names.PROVENANCE_BY_FIELD, names.DATA_VERSION_BY_FIELD)


def read_rows(path: Path, label: str,
              on_progress: Callable[[int], None] | None = None) -> pa.Table:
    """Read a file of rows as an Arrow table.

    Args:
        path: a ``.parquet``, ``.jsonl`` (``.ndjson``, ``.json``: one JSON object per line)
            or ``.csv`` file. In a CSV file, ``metaxy_provenance_by_field`` and
            ``metaxy_data_version_by_field`` cells are JSON objects (``{"audio": "a1"}``).
        label: how errors name the file, e.g. ``--samples rows.parquet``.
        on_progress: told the number of rows read, batch by batch (parquet) or at the end.

    Raises:
        ConfigError: the suffix is none of the above.
        DataError: the file cannot be read in its format (names the file and the fix).
    """
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(f"{label}: use a .parquet, .jsonl or .csv file (got "
                          f"{path.suffix or 'no suffix'!r})")
    try:
        if kind == "parquet":
            table = _read_parquet(path, on_progress)
        elif kind == "CSV":
            table = _by_field_from_json(_read_csv(path), label)
        else:
            import pyarrow.json as pj

            table = pj.read_json(path)
    except (pa.ArrowException, OSError) as e:
        text = str(e).strip()
        first = text.splitlines()[0] if text else type(e).__name__
        fix = {"parquet": "write a parquet file (e.g. pyarrow.parquet.write_table)",
               "JSON lines": "write one JSON object per line",
               "CSV": "write a CSV file with a header line"}[kind]
        raise DataError(f"{label}: cannot read it as {kind} ({first}); {fix}") from None
    if kind != "parquet" and on_progress is not None:
        on_progress(table.num_rows)
    return table


def _read_parquet(path: Path, on_progress: Callable[[int], None] | None) -> pa.Table:
    import pyarrow.parquet as pq

    with pq.ParquetFile(path) as file:
        batches = []
        for batch in file.iter_batches(batch_size=65536):
            batches.append(batch)
            if on_progress is not None:
                on_progress(batch.num_rows)
        return pa.Table.from_batches(batches, schema=file.schema_arrow)


def _read_csv(path: Path) -> pa.Table:
    """A CSV file with Arrow's type inference, except where inference would change a value:
    a column inferred as a number keeps its text unless every cell is the number's own text
    (``0042``, ``1.50``, ``1e3`` stay strings: an id ``0042`` read as 42 is another sample;
    ``NaN``/``inf`` in a float column are those floats). Only an empty cell is NULL."""
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    # Only an empty cell is NULL: Arrow's default also reads NaN, NA, null, N/A... as NULL,
    # which silently turned a float NaN into NULL (and would turn a text "NA" into NULL).
    inferred = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(null_values=[""]))
    numeric = [f.name for f in inferred.schema
               if pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
               or pa.types.is_decimal(f.type)]
    if not numeric:
        return inferred
    text = pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
        null_values=[""], column_types={name: pa.string() for name in numeric}))
    for name in numeric:
        index = inferred.column_names.index(name)
        number, cells = inferred.column(index), text.column(name)
        same = pc.equal(pc.cast(number, pa.string()), cells)
        if pa.types.is_floating(number.type):  # NaN, inf, -inf: read from their own text
            same = pc.or_kleene(same, pc.or_(pc.is_nan(number), pc.is_inf(number)))
        if not pc.all(pc.or_kleene(same, pc.is_null(number))).as_py():
            inferred = inferred.set_column(index, name, cells)
    return inferred


def _by_field_from_json(table: pa.Table, label: str) -> pa.Table:
    """CSV cells of the per-field columns are JSON objects: parse them into maps."""
    for column in _BY_FIELD:
        if column not in table.column_names:
            continue
        index = table.column_names.index(column)
        if not pa.types.is_string(table.schema.field(index).type):
            continue
        maps: list[list[tuple[str, str]] | None] = []
        for row, cell in enumerate(table.column(index).to_pylist(), start=2):
            if cell is None or cell == "":
                maps.append(None)
                continue
            try:
                value = json.loads(cell)
            except json.JSONDecodeError:
                value = None
            if not isinstance(value, dict):
                raise DataError(
                    f"{label}: line {row}, column {column}: {cell!r} is not a JSON object; "
                    "write the field -> value map as JSON, e.g. \"{\"\"audio\"\": \"\"a1\"\"}\"")
            maps.append([(str(k), v) for k, v in value.items()])
        table = table.set_column(index, column,
                                 pa.array(maps, pa.map_(pa.string(), pa.string())))
    return table


# -- JSON out -----------------------------------------------------------------------------------
def plain(value: Any, type_: pa.DataType) -> Any:
    """A value of Arrow type ``type_`` (as ``to_pylist`` gives it) with every map as a dict,
    recursively (maps come out of Arrow as lists of ``(key, value)`` pairs)."""
    if value is None:
        return None
    if pa.types.is_map(type_):
        return {str(k): plain(v, type_.item_type) for k, v in value}
    if pa.types.is_struct(type_):
        return {f.name: plain(value.get(f.name), f.type) for f in type_}
    if (pa.types.is_list(type_) or pa.types.is_large_list(type_)
            or pa.types.is_fixed_size_list(type_)):
        return [plain(v, type_.value_type) for v in value]
    return value


def plain_rows(data: pa.Table | pa.RecordBatch) -> list[dict[str, Any]]:
    """Rows as dicts whose maps (at any depth) are dicts."""
    schema = data.schema
    return [{f.name: plain(row[f.name], f.type) for f in schema} for row in data.to_pylist()]


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat(sep=" ") if isinstance(value, dt.datetime) else value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float (at any depth) as ``None``: strict JSON has no
    such numbers (Python's ``json`` would print bare ``NaN``/``Infinity``, which other
    languages' parsers refuse)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any, *, indent: int | None = None) -> str:
    """Strict JSON text (RFC 8259) of a value made of rows: timestamps in ISO form
    (``2026-12-01 00:00:00``), decimals as strings, binary as base64, NaN and infinite floats
    as ``null``."""
    return json.dumps(_finite(value), default=_default, indent=indent, ensure_ascii=False,
                      allow_nan=False)


def json_lines(batches: Iterable[pa.RecordBatch | pa.Table]) -> Iterable[str]:
    """One JSON object per row."""
    for batch in batches:
        for row in plain_rows(batch):
            yield dumps(row)
