"""The increment of a feature: new, stale and orphaned samples, lazily fetched from the engine."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.model import names

if TYPE_CHECKING:
    from metaxy_sql.engine.executors.base import Executor


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
        table = self._executor.fetch(self.sql)
        self._track(table)
        return table

    def iter_batches(self, batch_size: int = 65536) -> Iterator[pa.RecordBatch]:
        """Rows of this category as a stream of Arrow record batches."""
        for batch in self._executor.batches(self.sql, batch_size):
            self._track(batch)
            yield batch

    def to_pylist(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = self.to_arrow().to_pylist()
        return rows


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
    """

    def __init__(self, feature: str, statement: exp.Select, sql: str,
                 id_columns: tuple[str, ...], executor: Executor, *,
                 carried: tuple[str, ...] = ()) -> None:
        self.feature = feature
        self.statement = statement
        self._executor = executor
        self.sql = sql
        base = (*id_columns, names.PROVENANCE_BY_FIELD, names.PROVENANCE)
        self.new = IncrementPart(names.STATUS_NEW, (*base, *carried), statement, executor)
        self.stale = IncrementPart(names.STATUS_STALE, (*base, names.CHANGED_FIELDS, *carried),
                                   statement, executor)
        self.orphaned = IncrementPart(names.STATUS_ORPHANED, base, statement, executor)

    def counts(self) -> dict[str, int]:
        """``{"new": n, "stale": n, "orphaned": n}`` from one query, computed in the engine."""
        sql = self._executor.dialect.render(builder.counts_query(self.statement))
        result = dict.fromkeys(names.STATUSES, 0)
        for row in self._executor.fetch(sql).to_pylist():
            result[row[names.STATUS]] = int(row["n"])
        return result

    def to_arrow(self) -> pa.Table:
        """Every row of the increment, with its ``metaxy_status``."""
        return self._executor.fetch(self._executor.dialect.render(self.statement))

    def __repr__(self) -> str:
        return f"Increment(feature={self.feature!r})"
