"""Ray Data integration: increments in as datasets, processed batches back through the store.

Install with ``pip install 'metaxy-sql[ray]'``; the core package never imports this module.

Two ways in and out, by what the engine allows:

- **Through the driver's store** (every engine; the only way for DuckDB and chdb, which one
  process owns): :func:`read_increment` / :func:`read_feature` stream the rows from the
  engine in Arrow batches and put them into Ray's object store one at a time (the driver's
  Python heap holds one batch; the object store holds the dataset and spills to disk when
  full); :func:`write_dataset` pulls the processed batches as Ray produces them and writes
  them with ``store.write`` in batches of ``batch_size`` rows, one writer at a time.
- **From the workers** (Postgres and a ClickHouse server, which accept many connections):
  :class:`StoreDatasource` reads in a Ray task that opens its own store from the URL (nothing
  passes through the driver), and :class:`StoreDatasink` writes from every write task over
  its own connection, concurrently.

>>> import ray, metaxy_sql as mx                                          # doctest: +SKIP
>>> from metaxy_sql.ext.ray import read_increment, write_dataset          # doctest: +SKIP
>>> inc = store.resolve_update("video/face_crop")                         # doctest: +SKIP
>>> ds = read_increment(inc.new).map_batches(crop, batch_format="pyarrow")  # doctest: +SKIP
>>> write_dataset(ds, store, "video/face_crop")                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Literal

import pyarrow as pa

from metaxy_sql.engine.increment import IncrementPart, check_batch_size
from metaxy_sql.engine.store import Store, connect
from metaxy_sql.errors import ConfigError, UnsupportedByDialectError
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph

try:
    import ray
    import ray.data
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasink, Datasource, ReadTask
except ImportError as e:  # pragma: no cover - depends on the installed extras
    raise ConfigError("metaxy_sql.ext.ray needs the ray extra: "
                      "pip install 'metaxy-sql[ray]'") from e

#: Rows per ``store.write`` call when writing a dataset back (one statement per flush).
WRITE_BATCH_ROWS = 100_000
Status = Literal["new", "stale", "orphaned"]


def _dataset(batches: Iterable[pa.RecordBatch], schema: pa.Schema) -> ray.data.Dataset:
    refs: list[Any] = [ray.put(pa.Table.from_batches([b])) for b in batches if b.num_rows]
    if not refs:
        return ray.data.from_arrow(schema.empty_table())
    return ray.data.from_arrow_refs(refs)


def read_increment(part: IncrementPart, *, batch_size: int = 65536) -> ray.data.Dataset:
    """One category of an increment (``inc.new``, ``inc.stale``, ``inc.orphaned``) as a Ray
    dataset, one block per Arrow batch of ``batch_size`` rows, streamed from the engine.

    The columns are those of ``part.to_arrow()`` (``metaxy_provenance_by_field`` stays an Arrow
    map); the rows count as fetched by ``part`` (``part.fetched``).

    Raises:
        ConfigError: ``batch_size`` is not a whole number of 1 or more.
        ExecutionError: the engine failed to run the query.
    """
    return _dataset(part.iter_batches(batch_size), part.arrow_schema())


def read_feature(store: Store, feature: str, *, history: bool = False,
                 batch_size: int = 65536) -> ray.data.Dataset:
    """The latest state of ``feature`` (``history=True``: every row) as a Ray dataset,
    streamed from the engine like :func:`read_increment`.

    Raises:
        ConfigError: ``batch_size`` is not a whole number of 1 or more.
        UnknownFeatureError: ``feature`` is not in the store's graph.
    """
    batches = iter(store.iter_batches(feature, history=history, batch_size=batch_size))
    first = next(batches, None)
    if first is None:
        return ray.data.from_arrow(store.read(feature, history=history))
    return _dataset(_chain(first, batches), first.schema)


def _chain(first: pa.RecordBatch, rest: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    yield first
    yield from rest


def write_dataset(ds: ray.data.Dataset, store: Store, feature: str, *,
                  batch_size: int = WRITE_BATCH_ROWS) -> int:
    """Write the rows of ``ds`` to ``feature`` through ``store`` (the driver's connection),
    ``batch_size`` rows per ``store.write``, as Ray produces them. Returns rows written.

    One writer at a time: the way to write to DuckDB and chdb from Ray. Each flush is one
    write (a failure leaves the earlier flushes written; rerun: the increment is what is left).

    Raises:
        ConfigError: ``batch_size`` is not a whole number of 1 or more.
        DataError: a batch is not writable (see ``Store.write``).
    """
    check_batch_size(batch_size)
    written = 0
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="pyarrow"):
        written += store.write(feature, batch)
    return written


def _require_shared(url: str, what: str, instead: str) -> None:
    scheme = url.split(":", 1)[0]
    if scheme in ("duckdb", "chdb"):
        raise UnsupportedByDialectError(
            f"{what}: {scheme} is opened by one process at a time, so Ray workers cannot open "
            f"{url!r}; use {instead} (through the driver's store), or a Postgres or ClickHouse "
            "server store")


class StoreDatasource(Datasource):
    """Reads a feature's latest state (``status=None``) or one category of its increment, in
    a Ray task that opens its own store from ``url`` (Postgres, ClickHouse server).

    The increment is resolved in the task, so ``status`` needs a feature with upstream
    features (a root's samples are passed by the process that resolves it: use
    :func:`read_increment` there). Use with ``ray.data.read_datasource(source)``.

    Raises:
        ConfigError: ``batch_size`` is not a whole number of 1 or more.
        UnsupportedByDialectError: ``url`` is a DuckDB or chdb store.
        UnknownFeatureError: ``feature`` is not in ``graph``.
    """

    def __init__(self, url: str, graph: FeatureGraph, feature: str, *,
                 status: Status | None = None, batch_size: int = 65536) -> None:
        _require_shared(url, f"StoreDatasource({feature!r})", "read_increment()/read_feature()")
        check_batch_size(batch_size)
        graph.spec(feature)
        if status is not None and graph.is_root(feature):
            raise ConfigError(f"StoreDatasource({feature!r}, status={status!r}): a root "
                              "feature's increment needs its samples; resolve it in the "
                              "driver and use read_increment(inc.new)")
        if status is not None and status not in names.STATUSES:
            raise ConfigError(f"status must be one of {list(names.STATUSES)}, got {status!r}")
        self.url, self.graph, self.feature = url, graph, feature
        self.status, self.batch_size = status, batch_size

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                       data_context: Any = None) -> list[ReadTask]:
        metadata = BlockMetadata(num_rows=None, size_bytes=None, input_files=None,
                                 exec_stats=None)
        return [ReadTask(self._read, metadata, per_task_row_limit=per_task_row_limit)]

    def _read(self) -> Iterator[pa.Table]:
        with connect(self.url, self.graph) as store:
            if self.status is None:
                batches: Iterable[pa.RecordBatch] = store.iter_batches(
                    self.feature, batch_size=self.batch_size)
            else:
                inc = store.resolve_update(self.feature)
                batches = getattr(inc, self.status).iter_batches(self.batch_size)
            for batch in batches:
                yield pa.Table.from_batches([batch])


class StoreDatasink(Datasink[int]):
    """Writes a dataset to ``feature`` from each Ray write task over its own connection to
    ``url`` (Postgres, ClickHouse server: concurrent writers), ``batch_size`` rows per write.
    Use with ``ds.write_datasink(sink)``; ``sink.written`` is the number of rows written.

    Raises:
        ConfigError: ``batch_size`` is not a whole number of 1 or more.
        UnsupportedByDialectError: ``url`` is a DuckDB or chdb store (use
            :func:`write_dataset`).
    """

    def __init__(self, url: str, graph: FeatureGraph, feature: str, *,
                 batch_size: int = WRITE_BATCH_ROWS) -> None:
        _require_shared(url, f"StoreDatasink({feature!r})", "write_dataset()")
        check_batch_size(batch_size)
        graph.spec(feature)
        self.url, self.graph, self.feature, self.batch_size = url, graph, feature, batch_size
        self.written = 0

    @property
    def min_rows_per_write(self) -> int | None:
        return self.batch_size

    def write(self, blocks: Iterable[Any], ctx: Any) -> int:
        written = 0
        with connect(self.url, self.graph) as store:
            for block in blocks:
                table = block if isinstance(block, pa.Table) else pa.table(block)
                written += store.write(self.feature, table)
        return written

    def on_write_complete(self, write_result: Any) -> None:
        self.written = sum(write_result.write_returns)
