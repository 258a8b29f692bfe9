"""Copy features between stores (DuckDB, ClickHouse, chdb, Postgres, any direction).

>>> import metaxy_sql as mx
>>> from metaxy_sql.examples.seed import graph
>>> with mx.connect("duckdb://:memory:", graph) as a, mx.connect("duckdb://:memory:", graph) as b:
...     a.write("video/full", [{"sample_uid": "v1",
...                             "metaxy_provenance_by_field": {"audio": "a1", "frames": "f1"}}])
...     mx.copy(a, b).rows
1
{'video/full': 1}

Rows stream from the source in Arrow batches (memory bounded by one batch) and are appended
to the target **as they were written**: hashes (byte-identical on every engine), feature
version, write time and write position are kept, so every increment on the target equals
the one on the source. What is copied, per feature:

- default: the **latest state** (one live row per id, at its source write position);
- ``history=True``: **every row**, superseded rows and tombstones included, in write order:
  the target's ``read(feature, history=True)`` equals the source's.

Rules: the target's definitions must define each feature with the same feature version
(:class:`~metaxy_sql.errors.DefinitionError` otherwise), both stores use one digest, and a
feature the target already holds rows of is refused (copy never merges histories: drop it
there first). The recorded column types (``metaxy_system__column_types``) are carried over.
``where`` (over the id columns) copies a subset, every row of the ids it selects. Features the
source never wrote are skipped. On DuckDB and Postgres targets a feature is copied in one
transaction; on ClickHouse its rows stay invisible until its last statement.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.engine import coltypes
from metaxy_sql.engine.increment import check_batch_size
from metaxy_sql.errors import ConfigError, DataError, DefinitionError
from metaxy_sql.model import filter_types, filters, names

if TYPE_CHECKING:
    from metaxy_sql.engine.store import Store

#: Rows per Arrow batch streamed from the source (and appended to the target).
BATCH_ROWS = 65_536


@dataclass(frozen=True)
class CopyReport:
    """What :func:`copy` did: rows copied per feature, and features skipped with why."""

    rows: dict[str, int]
    skipped: dict[str, str]
    history: bool

    def summary(self) -> str:
        """One line per feature, e.g. ``video/full  copied 1000 rows (latest state)``."""
        what = "history" if self.history else "latest state"
        lines = [f"{k:<28} copied {n} rows ({what})" for k, n in self.rows.items()]
        lines += [f"{k:<28} skipped: {why}" for k, why in self.skipped.items()]
        return "\n".join(lines)


def copy(source: Store, target: Store, features: Sequence[str] | None = None,
         where: str | None = None, history: bool = False,
         on_progress: Callable[[int], None] | None = None,
         batch_size: int = BATCH_ROWS) -> CopyReport:
    """Copy the rows of ``features`` (default: every feature the source has written, in
    topological order) from ``source`` to ``target``.

    Args:
        source: the store read from (never modified).
        target: the store written to; must hold no row of the copied features.
        features: feature keys; default every feature of the source's definitions.
        where: a predicate over each feature's id columns, e.g. ``"sample_uid LIKE 'v1%'"``:
            only those ids are copied (with all their rows when ``history``).
        history: ``False`` (default): the latest state; ``True``: every row ever written,
            superseded rows and tombstones included, in write order.
        on_progress: called with the number of rows appended after each batch.
        batch_size: rows per Arrow batch (bounds the memory used).

    Returns:
        A :class:`CopyReport` (rows copied per feature; features skipped and why).

    Raises:
        ConfigError: source and target are one store, or use different digests;
            ``batch_size`` is not a whole number of 1 or more.
        DefinitionError: the target's definitions lack a feature or define it with another
            feature version; ``where`` is not over a feature's id columns.
        UnknownFeatureError: a feature the source's definitions do not define.
        DataError: the target already holds rows of a feature; ``where`` compares an id
            column with a literal of another type.
    """
    check_batch_size(batch_size)
    keys = _features(source, target, features)
    queries = {k: _query(source, k, where, history) for k in keys}
    for k, query in queries.items():
        if query is not None and target.has_rows(k):  # refused before anything is copied
            raise DataError(
                f"feature {k!r}: {target.url} already holds rows of it; copy never merges "
                "into a feature's history. Drop it there first (store.drop(feature)), or "
                "leave the feature out of the copy")
    rows: dict[str, int] = {}
    skipped: dict[str, str] = {}
    for k, query in queries.items():
        if query is None:
            skipped[k] = f"not in {source.url}"
            continue
        types = source.column_types(k)
        copied = 0
        with target.copy_into(k, types) as append:
            for batch in source.executor.batches(source.executor.dialect.render(query),
                                                 batch_size):
                n = append(coltypes.restore(pa.Table.from_batches([batch]), types))
                copied += n
                if on_progress is not None:
                    on_progress(n)
        rows[k] = copied
    return CopyReport(rows, skipped, history)


def rows_to_copy(source: Store, features: Sequence[str] | None = None, where: str | None = None,
                 history: bool = False) -> int:
    """How many rows :func:`copy` would append (counted in the source engine), for progress.

    Raises:
        UnknownFeatureError: a feature the source's definitions do not define.
        DefinitionError: ``where`` is not over a feature's id columns.
        DataError: ``where`` compares an id column with a literal of another type.
    """
    total = 0
    for k in _features(source, None, features):
        query = _query(source, k, where, history)
        if query is not None:
            sql = source.executor.dialect.render(builder.count_query(query.copy()))
            total += int(source.executor.fetch(sql).column(0)[0].as_py())
    return total


def _features(source: Store, target: Store | None, features: Sequence[str] | None
              ) -> list[str]:
    """The features to copy, in topological order, checked against the target's definitions
    (``target`` None: only against the source's)."""
    if target is None:
        keys = [k for k in dict.fromkeys(features or source.graph.keys) if source.graph.spec(k)]
        order = {k: i for i, k in enumerate(source.graph.keys)}
        return sorted(keys, key=order.__getitem__)
    if source.executor is target.executor or (
            source.url == target.url and not source.url.startswith("duckdb://:memory:")):
        raise ConfigError(f"copy: source and target are the same store ({source.url})")
    if source.hash_algorithm != target.hash_algorithm:
        raise ConfigError(
            f"copy: the source hashes with {source.hash_algorithm}, the target with "
            f"{target.hash_algorithm}; open both with one hash_algorithm")
    source.check_hash_algorithm()  # the rows keep their hashes: the target's must match
    wanted: Iterable[str] = features or source.graph.keys
    keys = []
    for k in dict.fromkeys(wanted):
        source.graph.spec(k)
        if k not in target.graph.keys:
            raise DefinitionError(
                f"copy: the target's definitions do not define feature {k!r}; load the same "
                "feature modules for both stores, or leave it out")
        mine, theirs = source.graph.feature_version(k), target.graph.feature_version(k)
        if mine != theirs:
            raise DefinitionError(
                f"copy: feature {k!r} has feature version {mine} in the source's definitions "
                f"and {theirs} in the target's; copied rows would not match the target's "
                "definitions. Copy with the same definitions, then change them on the target")
        keys.append(k)
    order = {k: i for i, k in enumerate(source.graph.keys)}
    return sorted(keys, key=order.__getitem__)


def _query(store: Store, feature: str, where: str | None, history: bool) -> exp.Select | None:
    """The rows to copy of ``feature`` (None when the store has no table of it)."""
    spec = store.graph.spec(feature)
    subset = filters.subset_predicate(feature, spec.id_columns, where, None)
    table = names.table(feature)
    if table not in store.executor.tables():
        return None
    if where is not None:
        what = f"feature {feature!r}: where="
        filter_types.check_types(filters.parse_filter(where, what), where,
                                 store.predicate_kinds(feature), what, DataError)
    columns = [c for c in store.executor.columns(table) if not names.is_per_field_column(c)]
    if history:
        query = builder.read_history(table, spec.id_columns, store.executor.dialect)
        query.set("expressions", [builder.col(c) for c in columns])
    else:
        query = builder.latest_rows(
            table, spec.id_columns, [builder.col(c) for c in columns if c not in spec.id_columns])
    return query.where(subset) if subset is not None else query
