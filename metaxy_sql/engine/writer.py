"""BufferedMetadataWriter: collect rows per feature while computing, write them in blocks.

>>> import metaxy_sql as mx
>>> from metaxy_sql.examples.seed import graph
>>> with mx.connect("duckdb://:memory:", graph=graph) as store:
...     inc = store.resolve_update("video/full", samples=[
...         {"sample_uid": "v1", "metaxy_provenance_by_field": {"audio": "a1", "frames": "f1"}}])
...     with mx.BufferedMetadataWriter(store) as writer:
...         for batch in inc.new.iter_batches(1000):
...             writer.put({"video/full": batch})
...     writer.rows_written
{'video/full': 1}
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import pyarrow as pa

from metaxy_sql.engine import ingest
from metaxy_sql.engine.store import Store
from metaxy_sql.errors import DataError, MetaxySqlError


class WriterError(MetaxySqlError):
    """A background flush failed; raised to the caller on its next call."""


class BufferedMetadataWriter:
    """Buffers rows per feature and writes them when a buffer reaches ``max_rows``, every
    ``flush_interval`` seconds (from a background thread), on :meth:`flush` and on exit.

    Errors of a background flush are raised to the caller on the next ``put``/``flush``/exit;
    rows of a failed flush stay buffered, so nothing computed is dropped silently.
    """

    def __init__(self, store: Store, *, max_rows: int = 100_000,
                 flush_interval: float | None = 5.0) -> None:
        self.store = store
        self.max_rows = max_rows
        self.flush_interval = flush_interval
        self.rows_written: dict[str, int] = {}
        self._buffers: dict[str, list[pa.Table]] = {}
        self._lock = threading.RLock()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def __enter__(self) -> BufferedMetadataWriter:
        if self.flush_interval is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="metaxy-sql-writer",
                                            daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            self.close()
        except BaseException:
            if exc is None:
                raise  # never mask the caller's own exception

    def put(self, rows: Mapping[str, Any]) -> None:
        """Buffer ``{feature key: rows}`` (anything ``store.write`` accepts)."""
        self._raise_pending()
        if self._closed:
            raise WriterError("put() on a closed BufferedMetadataWriter")
        full = []
        with self._lock:
            for key, data in rows.items():
                self.store.graph.spec(key)
                table = ingest.to_arrow(data, feature=key)
                buffer = self._buffers.setdefault(key, [])
                buffer.append(table)
                if sum(t.num_rows for t in buffer) >= self.max_rows:
                    full.append(key)
            for key in full:
                self._flush_feature(key)

    def flush(self) -> None:
        """Write every buffered row now."""
        self._raise_pending()
        with self._lock:
            for key in list(self._buffers):
                self._flush_feature(key)

    def close(self) -> None:
        """Stop the background thread and flush what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if not self._closed:
            self._closed = True
            self.flush()

    def _flush_feature(self, key: str) -> None:
        tables = self._buffers.get(key)
        if not tables:
            return
        try:
            table = pa.concat_tables(tables, promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise _mixed_batches(key, tables, e) from None
        written = self.store.write(key, table)
        del self._buffers[key]
        self.rows_written[key] = self.rows_written.get(key, 0) + written

    def _run(self) -> None:
        assert self.flush_interval is not None
        last = time.monotonic()
        while not self._stop.wait(min(self.flush_interval, 0.5)):
            if time.monotonic() - last < self.flush_interval:
                continue
            last = time.monotonic()
            try:
                with self._lock:
                    for key in list(self._buffers):
                        self._flush_feature(key)
            except BaseException as e:  # handed to the caller's thread
                self._error = e
                return

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise WriterError(f"a background flush failed: {error}") from error


def _mixed_batches(feature: str, tables: list[pa.Table], error: Exception) -> DataError:
    """Which column the buffered batches of ``feature`` give in types that do not combine."""
    seen: dict[str, pa.DataType] = {}
    for table in tables:
        for f in table.schema:
            first = seen.setdefault(f.name, f.type)
            if not (pa.types.is_null(first) or pa.types.is_null(f.type) or first == f.type):
                return DataError(
                    f"feature {feature!r}: column {f.name!r} is given as {first} in one put() "
                    f"and as {f.type} in another; give it one type")
    return DataError(f"feature {feature!r}: buffered rows do not combine: {error}")
