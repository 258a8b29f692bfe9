"""The increment of a feature: new, stale and orphaned samples, lazily fetched from the engine."""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.engine import coltypes, frames
from metaxy_sql.errors import ConfigError, DataError
from metaxy_sql.model import names

if TYPE_CHECKING:
    from metaxy_sql.engine.executors.base import Executor


def check_batch_size(value: object, argument: str = "batch_size") -> int:
    """``value`` when it is a whole number of rows of at least 1.

    Raises:
        ConfigError: ``value`` is not an ``int`` (a ``bool`` is refused) or is below 1,
            naming ``argument``.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{argument} must be a whole number of rows (1 or more), got "
                          f"{value!r} ({type(value).__name__})")
    if value < 1:
        raise ConfigError(f"{argument} must be 1 or more rows, got {value}")
    return value


@dataclass
class IncrementPart:
    """One category of an increment. Nothing is fetched until asked.

    ``fetched`` counts the rows handed out so far (``to_arrow``/``iter_batches``), and
    ``fetched_changed_fields`` tallies, among them, the stale samples per changed field: what
    a step actually processed, still known after its writes made the increment empty.
    """

    status: str
    columns: tuple[str, ...]
    statement: exp.Select = field(repr=False)
    _executor: Executor = field(repr=False)
    fetched: int = 0
    fetched_changed_fields: dict[str, int] = field(default_factory=dict)
    #: Map column -> its keys (the feature's field keys): the maps ``to_polars`` makes structs.
    map_keys: frames.MapKeys = field(default_factory=dict, repr=False)
    #: The stored Arrow type of id and carried columns (read on first fetch): rows come back
    #: in the types ``write`` accepts, whatever the engine returns (Postgres numeric -> uint64).
    column_types: Callable[[], Mapping[str, pa.DataType]] = field(default=dict, repr=False)

    @functools.cached_property
    def _types(self) -> Mapping[str, pa.DataType]:
        return self.column_types()

    @functools.cached_property
    def query(self) -> exp.Select:
        """This category's rows, selected from the resolve statement (built on first use:
        copying the statement's expression tree costs a few ms)."""
        return builder.category_query(self.statement, self.status, self.columns)

    def _track(self, data: pa.Table | pa.RecordBatch) -> None:
        self.fetched += data.num_rows
        if names.CHANGED_FIELDS in data.schema.names and data.num_rows:
            flat = pc.list_flatten(data.column(names.CHANGED_FIELDS))
            for item in pc.value_counts(flat).to_pylist():
                key = str(item["values"])
                self.fetched_changed_fields[key] = (
                    self.fetched_changed_fields.get(key, 0) + int(item["counts"]))

    @property
    def sql(self) -> str:
        """The query this part runs (the resolve statement, filtered to this category)."""
        return self._executor.dialect.render(self.query)

    def count(self) -> int:
        """Number of samples in this category, counted in the engine."""
        sql = self._executor.dialect.render(builder.count_query(self.query))
        return int(self._executor.fetch(sql).column(0)[0].as_py())

    def to_arrow(self) -> pa.Table:
        """All rows of this category as one Arrow table."""
        table = coltypes.restore(self._executor.fetch(self.sql), self._types)
        self._track(table)
        return table

    def iter_batches(self, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        """Rows of this category as a stream of Arrow record batches of at most
        ``batch_size`` rows.

        Raises:
            ConfigError: ``batch_size`` is not a whole number of 1 or more (raised at the
                call, before any query runs).
        """
        return self._batches(check_batch_size(batch_size))

    def _batches(self, batch_size: int) -> Iterator[pa.RecordBatch]:
        for raw in self._executor.batches(self.sql, batch_size):
            for batch in coltypes.restore(pa.Table.from_batches([raw]), self._types).to_batches():
                self._track(batch)
                yield batch

    def to_pylist(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = self.to_arrow().to_pylist()
        return rows

    def to_polars(self, *, lazy: bool = False, batch_size: int = 65536) -> Any:
        """This category's rows as polars (needs ``polars``).

        ``lazy=False``: an eager ``polars.DataFrame``, fetched now (one query). ``lazy=True``:
        a ``polars.LazyFrame`` that runs the query when collected and streams its Arrow
        batches (``batch_size`` rows) through polars; each ``collect`` runs it anew. Either
        way ``metaxy_provenance_by_field`` is a ``Struct`` with one ``String`` field per field
        key of the feature (other map columns: ``List(Struct{key, value})``), and the frame
        writes back with ``store.write`` as it is.

        Raises:
            ConfigError: polars is not installed; ``batch_size`` is not a whole number of
                1 or more.
            ExecutionError: the engine failed to run the query.
        """
        check_batch_size(batch_size)
        if not lazy:
            return frames.to_polars(self.to_arrow(), self.map_keys)
        return frames.lazy_polars(self.arrow_schema, lambda: self.iter_batches(batch_size),
                                  self.map_keys)

    def to_pandas(self) -> Any:
        """This category's rows as an eager ``pandas.DataFrame`` (needs ``pandas``) that writes
        back exactly: ints, floats and bools in pandas' nullable dtypes (``Int64``,
        ``Float64`` with NaN apart from ``pd.NA``, ``boolean``), lists, structs and other maps as
        ``pd.ArrowDtype``, per-field maps (``metaxy_provenance_by_field``) as Python dicts (see
        :func:`metaxy_sql.engine.frames.to_pandas`).

        Raises:
            ConfigError: pandas is not installed.
            ExecutionError: the engine failed to run the query.
        """
        return frames.to_pandas(self.to_arrow())

    def to_ibis(self) -> Any:
        """A lazy ibis table over :attr:`sql`, on the store's own connection (needs the
        ``ibis`` extra). Nothing runs until the ibis expression executes; filters and
        projections added to it run in the engine. See :mod:`metaxy_sql.ext.ibis`.

        Raises:
            UnsupportedByDialectError: the engine has no ibis backend (chdb).
            ConfigError: ibis is not installed.
        """
        return load_extension("ibis").table(self._executor, self.query)

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of this category's rows, from the engine (a query with
        ``LIMIT 0``: no rows are read)."""
        sql = self._executor.dialect.render(self.query.limit(0))
        return coltypes.restore(self._executor.fetch(sql), self._types).schema


class Increment:
    """Result of ``store.resolve_update(feature)``.

    Attributes:
        feature: the feature key.
        sql: the resolve statement, exactly as the engine runs it (one statement, all three
            categories; each part and ``counts()`` select from it).
        new: samples expected but never written.
        stale: samples written whose expected provenance differs (``metaxy_changed_fields``
            names the fields that changed).
        orphaned: samples written that are no longer expected.
        mode: what ran: ``full`` (the full resolve statement), or the refresh of the
            feature's incremental increment table it was read from: ``incremental``
            (O(changes)) or ``rebuilt`` (the table was rebuilt in full; ``refresh.reason``
            says why).
        refresh: that refresh (``engine.incremental.Refresh``), or None.
    """

    def __init__(self, feature: str, statement: exp.Select, sql: str,
                 id_columns: tuple[str, ...], executor: Executor, *,
                 carried: tuple[str, ...] = (), field_keys: tuple[str, ...] = (),
                 mode: str = "full", refresh: object = None,
                 column_types: Callable[[], Mapping[str, pa.DataType]] = dict,
                 changed_columns: Callable[[], pa.Table] | None = None) -> None:
        self.feature = feature
        self._changed_columns = changed_columns
        self.mode = "rebuilt" if mode == "full" and refresh is not None else mode
        self.refresh = refresh
        self.statement = statement
        self._executor = executor
        self.sql = sql
        base = (*id_columns, names.PROVENANCE_BY_FIELD, names.PROVENANCE)
        self.new = IncrementPart(names.STATUS_NEW, (*base, *carried), statement, executor)
        self.stale = IncrementPart(names.STATUS_STALE, (*base, names.CHANGED_FIELDS, *carried),
                                   statement, executor)
        self.orphaned = IncrementPart(names.STATUS_ORPHANED, base, statement, executor)
        types = functools.cache(column_types)
        for part in (self.new, self.stale, self.orphaned):
            part.column_types = types
            if field_keys:
                part.map_keys = {names.PROVENANCE_BY_FIELD: field_keys}
        self._types = types

    def counts(self) -> dict[str, int]:
        """``{"new": n, "stale": n, "orphaned": n}`` from one query, computed in the engine."""
        sql = self._executor.dialect.render(builder.counts_query(self.statement))
        result = dict.fromkeys(names.STATUSES, 0)
        for row in self._executor.fetch(sql).to_pylist():
            result[row[names.STATUS]] = int(row["n"])
        return result

    def changed_columns(self) -> pa.Table:
        """Root features: the rows of ``samples=`` whose provenance is unchanged (neither new
        nor stale) but whose other columns differ from the id's latest stored row, as given.

        Only the columns of ``samples=`` are compared (a column the stored table lacks reads
        as NULL), by the store's exact-value rules: NULL differs from every value, NaN equals
        NaN, ``-0.0`` differs from ``0.0``, map entries compare regardless of order. Writing
        these rows (``store.write(root, inc.changed_columns())``) makes nothing downstream
        stale (their provenance is the stored one) while dependency filters and carried
        columns read the new values. Computed in Python on the stored rows of the samples'
        ids (one query); partial resolution (``where=``, ``ids=``) restricts it too.

        Returns:
            An Arrow table with the columns and types of ``samples=`` (id columns,
            ``metaxy_provenance_by_field``, your columns), in the order given.

        Raises:
            DataError: the increment is not a root feature's (other features are written by
                their step), or a given column does not fit its stored type (as the write
                would refuse it).
        """
        if self._changed_columns is None:
            raise DataError(f"feature {self.feature!r} is not a root feature: changed_columns() "
                            "compares the samples= of a root feature's increment with the store; "
                            "a computed feature's rows are written by its step (store.write)")
        return self._changed_columns()

    def to_arrow(self) -> pa.Table:
        """Every row of the increment, with its ``metaxy_status``."""
        return coltypes.restore(
            self._executor.fetch(self._executor.dialect.render(self.statement)), self._types())

    def __repr__(self) -> str:
        return f"Increment(feature={self.feature!r}, mode={self.mode!r})"


def load_extension(name: str) -> Any:
    """The integration module ``metaxy_sql.ext.<name>``, loaded on first use: the bridges to
    optional libraries live in ``ext`` (a later stage), which the core never imports when it
    loads, so a store works without them installed."""
    return importlib.import_module(f"metaxy_sql.ext.{name}")
