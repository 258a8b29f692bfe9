"""The store: one table per feature in a database addressed by URL.

>>> import metaxy_sql as mx
>>> from metaxy_sql.examples.seed import graph
>>> with mx.connect("duckdb://:memory:", graph=graph) as store:
...     inc = store.resolve_update("video/full", samples=[
...         {"sample_uid": "v1", "metaxy_provenance_by_field": {"audio": "a1", "frames": "f1"}}])
...     store.write("video/full", inc.new)
...     store.resolve_update("transcript/whisper").counts()
1
{'new': 1, 'stale': 0, 'orphaned': 0}
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import random
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa
import pyarrow.compute as pc
from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.compile.planner import (
    Catalog,
    increment_grain,
    tables_needing_columns,
    tables_needing_id_types,
    tables_read,
)
from metaxy_sql.compile.render import compile_resolve
from metaxy_sql.engine import coltypes, column_changes, frames, ingest, system, write_order
from metaxy_sql.engine import incremental as incremental_mod
from metaxy_sql.engine import views as views_mod
from metaxy_sql.engine.executors.base import Executor
from metaxy_sql.engine.increment import Increment, check_batch_size, load_extension
from metaxy_sql.engine.views import DependentView
from metaxy_sql.errors import (
    ConfigError,
    DataError,
    DefinitionError,
    StoreConnectionError,
    WriteConflictError,
)
from metaxy_sql.model import filter_types, filters, names
from metaxy_sql.model.definitions import SYSTEM_PREFIX
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.model.hashing import HashAlgorithm

#: Times a write is tried when concurrent writers keep making it conflict (DuckDB).
WRITE_ATTEMPTS = 30


class Store:
    """Feature tables plus resolution, on one engine. Use :func:`connect` to open one."""

    def __init__(self, executor: Executor, graph: FeatureGraph,
                 hash_algorithm: HashAlgorithm = "sha256") -> None:
        if hash_algorithm not in ("sha256", "md5"):
            raise ConfigError(f"hash_algorithm must be 'sha256' or 'md5', got {hash_algorithm!r}")
        executor.dialect.check_identifiers(graph)
        self.executor = executor
        self.graph = graph
        self.hash_algorithm: HashAlgorithm = hash_algorithm
        self._last_time: dt.datetime | None = None
        self._compiled: dict[tuple[object, ...], tuple[str, exp.Select]] = {}
        self._algorithm_checked = False

    def with_graph(self, graph: FeatureGraph) -> Store:
        """The same store (same connection) seen through other definitions, e.g. after a
        code-version bump. Closing either closes both.

        Raises:
            ConfigError: ``graph`` is not a :class:`FeatureGraph`.
            DefinitionError: a name of ``graph`` does not fit the engine (see :func:`connect`).
        """
        if not isinstance(graph, FeatureGraph):
            raise ConfigError(f"with_graph(graph) needs a FeatureGraph, got {type(graph).__name__}"
                              "; build one with FeatureGraph([...features]) or load_graph(config)")
        store = Store(self.executor, graph, self.hash_algorithm)
        store._algorithm_checked = self._algorithm_checked
        return store

    @property
    def url(self) -> str:
        """The store URL, password masked."""
        return self.executor.url

    def __enter__(self) -> Store:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.executor.close()

    # -- resolution -------------------------------------------------------------------------
    def resolve_update(self, feature: str, samples: Any = None, *, where: str | None = None,
                       ids: Any = None, incremental: bool | None = None) -> Increment:
        """The increment of ``feature``: new, stale and orphaned samples (lazy).

        Args:
            feature: feature key.
            samples: root features only: the full current sample set, rows with the id columns
                and ``metaxy_provenance_by_field`` (field -> provenance string), in any form
                ``write`` accepts. The increment reads these rows until the next
                ``resolve_update`` of the same feature; its new and stale rows carry every
                other column of ``samples`` (declared or not), so they write back as they are.
            where: partial resolution: a predicate over the increment's id columns (the
                parent ids of an expansion), e.g. ``"sample_uid LIKE 'v1%'"``.
            ids: partial resolution: an explicit list of ids (scalars for one id column, else
                dicts or tuples). The result equals the full increment filtered to the subset.
            incremental: ``None`` (default): when the feature has an incremental increment
                table (``materialize --as incremental``), refresh it (O(changes)) and read
                it; else run the full statement. ``False``: always the full statement.
                ``True``: refresh (create on first use) the incremental table and read it.
                The result is the same either way; ``Increment.mode`` says which ran.

        Raises:
            DataError: ``samples`` missing for a root feature, or given for another.
            DefinitionError: ``where``/``ids`` are not over the increment's id columns; a
                dependency filter compares a parent column with a literal of another type.
            DataError: ``where`` compares an id column with a literal of another type
                (e.g. ``"sample_uid = 1"`` for a text id: quote it).
            ConfigError: ``incremental=True`` for a root feature.
        """
        spec = self.graph.spec(feature)
        sample_columns: tuple[str, ...] = ()
        given: dict[str, pa.DataType] = {}
        if self.graph.is_root(feature):
            if samples is None:
                raise DataError(
                    f"feature {feature!r} is a root feature: pass samples=[{{...}}] with "
                    f"{list(spec.id_columns)} and {names.PROVENANCE_BY_FIELD} for every sample")
            table = ingest.split_system_columns(ingest.to_arrow(samples, feature=feature),
                                                feature)
            if table.num_rows == 0 and table.num_columns == 0:
                table = self._no_samples(feature)  # an empty sample set: every sample is gone
            ingest.check_column_names(table.column_names, feature, spec.id_columns)
            table = ingest.check_id_types(table, feature, spec.id_columns)
            ingest.check_ids(table, feature, spec.id_columns, unique=True,
                             operation="the samples= of one resolve_update")
            self._require_by_field(table, feature)
            table = ingest.check_by_field(table, feature, names.PROVENANCE_BY_FIELD,
                                          self.graph.field_keys(feature), complete=True)
            sample_columns = tuple(c for c in table.column_names if c not in spec.id_columns
                                   and c not in ingest.ACCEPTED_SYSTEM_COLUMNS)
            table = table.select([*spec.id_columns, names.PROVENANCE_BY_FIELD, *sample_columns])
            # Values a write would refuse are refused before staging: an engine could change
            # them on the way in (Postgres jsonb: -0.0 inside a list reads back 0.0).
            coltypes.check_nested_floats(table, feature, sample_columns)
            table = self._conform_ids(feature, table)
            given = {f.name: f.type for f in table.schema if f.name != names.PROVENANCE_BY_FIELD}
            self.executor.stage(names.samples(feature), table)
        elif samples is not None:
            raise DataError(
                f"feature {feature!r} has upstream features; its samples come from them. "
                "Call resolve_update without samples=")
        self._check_where(feature, where, increment_grain(self.graph, feature), given)
        self._check_filter_types(feature)
        if incremental is not False and not self.graph.is_root(feature):
            relation = incremental_mod.relation_name(feature)
            if incremental or incremental_mod.exists(self.executor, relation):
                return self._resolve_incremental(
                    feature, relation, where, ids,
                    tuple(t for d in spec.deps for _, t in d.carried()),
                    lambda: self._increment_types(feature, given))
        elif incremental:
            incremental_mod.check_feature(self.graph, feature)
        catalog = dataclasses.replace(self.catalog(feature), sample_columns=sample_columns)
        sql, statement = self.compiled(feature, catalog, where=where, ids=ids)
        carried = sample_columns or tuple(t for d in spec.deps for _, t in d.carried())
        changed = None
        if self.graph.is_root(feature):
            changed = self._changed_columns(feature, table, where, ids)
        return Increment(feature, statement, sql, spec.id_columns, self.executor,
                         carried=carried, field_keys=self.graph.field_keys(feature),
                         column_types=lambda: self._increment_types(feature, given),
                         changed_columns=changed)

    def _changed_columns(self, feature: str, samples: pa.Table, where: str | None,
                         ids: Any) -> Callable[[], pa.Table]:
        """What :meth:`Increment.changed_columns` of root ``feature`` computes, on call."""
        subset = filters.subset_predicate(feature, increment_grain(self.graph, feature),
                                          where, ids)
        spec = self.graph.spec(feature)
        return lambda: column_changes.changed_rows(
            self.executor, feature, spec.id_columns, self.graph.field_keys(feature), samples,
            self.column_types(feature), subset)

    def _no_samples(self, feature: str) -> pa.Table:
        """An empty sample set of root ``feature`` (``samples=[]``), its id columns in their
        stored types (text when never written)."""
        stored = self.column_types(feature)
        columns = {c: pa.array([], stored.get(c, pa.string()))
                   for c in self.graph.spec(feature).id_columns}
        columns[names.PROVENANCE_BY_FIELD] = pa.array([], pa.map_(pa.string(), pa.string()))
        return pa.table(columns)

    def _increment_types(self, feature: str, given: Mapping[str, pa.DataType]
                         ) -> dict[str, pa.DataType]:
        """Stored types of an increment's id and carried columns, so its rows write back as
        they are: the feature's own recorded types first, then its parents' (ids by name,
        carried columns by their renamed names), then those of the ``samples=`` given."""
        spec = self.graph.spec(feature)
        types = dict(given)
        for dep in spec.deps:
            parent = self.column_types(dep.feature)
            types |= {c: parent[c] for c in spec.id_columns if c in parent}
            types |= {target: parent[source] for source, target in dep.carried()
                      if source in parent}
        own = self.column_types(feature)
        return types | {c: own[c] for c in spec.id_columns if c in own}

    def _resolve_incremental(self, feature: str, relation: str, where: str | None, ids: Any,
                             carried: tuple[str, ...],
                             column_types: Callable[[], Mapping[str, pa.DataType]]
                             ) -> Increment:
        report = incremental_mod.refresh(self, feature, relation)
        subset = filters.subset_predicate(feature, increment_grain(self.graph, feature),
                                          where, ids)
        statement = incremental_mod.read_statement(relation, subset)
        sql = (f"-- metaxy-sql resolve: {feature} ({report})\n"
               + self.executor.dialect.render(statement) + "\n")
        return Increment(feature, statement, sql, self.graph.spec(feature).id_columns,
                         self.executor, carried=carried, field_keys=self.graph.field_keys(feature),
                         mode=report.mode, refresh=report, column_types=column_types)

    def compiled(self, feature: str, catalog: Catalog, *, where: str | None = None,
                 ids: Any = None, subset: exp.Expr | None = None,
                 splits: builder.Splits = None) -> tuple[str, exp.Select]:
        """``compile_resolve`` of ``feature`` against ``catalog``: (SQL text with header,
        statement), reused while nothing it depends on changes.

        The statement is a function of the definitions (fixed per store object: a new graph
        is a new :meth:`with_graph` store), the dialect, the digest, the catalog (tables
        present, their columns and id types, sample columns: read from the store by the
        caller on every call) and the subset (``where``, ``subset``, ``splits``: see
        ``compile_resolve``); so a cached statement
        is reused only when all of these are equal. Calls with ``ids`` are compiled afresh.
        Callers must not modify the returned statement in place.

        Raises:
            DefinitionError, DataError: as ``compile_resolve``.
        """
        key: tuple[object, ...] | None = None
        if ids is None:
            key = (feature, _catalog_key(catalog), where,
                   None if subset is None else subset.sql(identify=True),
                   None if not splits else tuple(
                       (t, s.since.sql(identify=True), s.recent.sql(identify=True),
                        s.rest.sql(identify=True)) for t, s in sorted(splits.items())))
            hit = self._compiled.get(key)
            if hit is not None:
                return hit
        result = compile_resolve(self.graph, feature, self.executor.dialect,
                                 self.hash_algorithm, catalog, where=where, ids=ids,
                                 subset=subset, splits=splits)
        if key is not None:
            if len(self._compiled) >= _COMPILED_CACHE_SIZE:
                self._compiled.pop(next(iter(self._compiled)))  # the oldest entry
            self._compiled[key] = result
        return result

    def catalog(self, feature: str, tables: set[str] | None = None) -> Catalog:
        """What the resolve of ``feature`` reads, as stored now: which of its tables exist
        and the columns of those whose columns matter (see ``planner.tables_needing_columns``).
        ``tables``: the store's tables, when the caller already listed them."""
        present = self.executor.tables() if tables is None else tables
        self.check_hash_algorithm(present)
        existing = frozenset(tables_read(self.graph, feature)) & frozenset(present)
        needed = tables_needing_columns(self.graph, feature,
                                        self.executor.dialect.derives_field_columns)
        typed = tables_needing_id_types(self.graph, feature)
        stored = {t: self.executor.columns(t) for t in {*needed, *typed} if t in existing}
        return Catalog(existing, {t: frozenset(stored[t]) for t in needed if t in stored},
                       {t: stored[t] for t in typed if t in stored})

    def check_hash_algorithm(self, tables: set[str] | None = None, *,
                             record: bool = False) -> None:
        """Refuse to hash with another algorithm than the store's: it is recorded at the first
        write (``metaxy_system__store_settings``), and a mismatch would make every sample look
        stale (a full recompute). An empty store takes the algorithm of its first write
        (``record=True``: record it when none is). ``tables``: the store's tables, when the
        caller listed them. Checked once per store object once a recorded one matched.

        Raises:
            ConfigError: the store records another hash algorithm than ``hash_algorithm``.
        """
        if self._algorithm_checked:
            return
        present = self.executor.tables() if tables is None else tables
        recorded = None
        if names.STORE_SETTINGS in present:
            query = (exp.select(builder.col("value"))
                     .from_(builder.table_ref(names.STORE_SETTINGS))
                     .where(exp.EQ(this=builder.col("setting"),
                                   expression=exp.Literal.string(_HASH_SETTING)))
                     .order_by(builder.col("recorded_at")).limit(1))
            rows = self.executor.fetch(self.executor.dialect.render(query))
            recorded = str(rows.column(0)[0].as_py()) if rows.num_rows else None
        if recorded is None:
            if record:  # checked again on the next call, once the write is committed
                system.ensure(self.executor, names.STORE_SETTINGS, _SETTING_COLUMNS,
                              ["recorded_at"], present if tables is not None else None)
                system.append(self.executor, names.STORE_SETTINGS, _SETTING_COLUMNS, {
                    "setting": _HASH_SETTING, "value": self.hash_algorithm,
                    "recorded_at": system.now_iso()})
            return
        if recorded != self.hash_algorithm:
            raise ConfigError(
                f"store {self.url} hashes with {recorded} (recorded at its first write) but "
                f"was opened with hash_algorithm={self.hash_algorithm!r}: every sample would "
                f"look stale. Open it with hash_algorithm={recorded!r} (connect(..., "
                f"hash_algorithm={recorded!r}), or hash_algorithm = \"{recorded}\" in "
                "metaxy-sql.toml / [tool.metaxy-sql])")
        self._algorithm_checked = True

    # -- writes -----------------------------------------------------------------------------
    def write(self, feature: str, data: Any) -> int:
        """Append rows to ``feature``; hashes are computed in the engine. Returns rows written.

        Rows need the id columns and ``metaxy_provenance_by_field`` (rows of an increment carry
        it). A writer may add ``metaxy_data_version_by_field`` to override the data version of
        some fields (e.g. a content hash), which stops propagation when the output is unchanged.

        Exact writes: a value the rows give is stored as given or refused, never replaced.
        Other ``metaxy_*`` columns are taken only when each (non-null) value is what the store
        records for that row, so rows of an increment or of :meth:`read` write back as they
        are:

        - ``metaxy_provenance``, ``metaxy_data_version``: equal to the hash the engine computes
          from the row's per-field maps.
        - ``metaxy_deleted``: false (a write never deletes: use :meth:`delete`).
        - ``metaxy_created_at``, ``metaxy_write_seq``: equal to those of the id's latest
          stored row (the row was read from this store; the new row gets the write's own time
          and position, the row read keeps its own in the history).
        - ``metaxy_feature_version``: the version of the definitions writing, or that of the
          id's latest stored row.
        - ``metaxy_status``, ``metaxy_changed_fields`` (increment annotations, not stored): a
          status an increment hands out, field keys of the feature.
        - ``metaxy_superseded`` and unknown ``metaxy_*`` names: refused.

        Args:
            feature: feature key.
            data: rows: Arrow table or batch, polars, pandas, a list of dicts or pydantic
                models, an increment part.

        Returns:
            The number of rows written.

        Raises:
            DataError: rows lack ids or provenance, a type does not fit the stored one, or a
                ``metaxy_*`` value differs from what the store records (naming feature,
                column, first offending row and id, and the fix).
        """
        spec = self.graph.spec(feature)
        rows = ingest.to_arrow(data, feature=feature)
        table = ingest.split_system_columns(rows, feature)
        if table.num_rows == 0 and table.num_columns == 0:
            return 0  # no rows at all (an empty list): nothing to write
        table = ingest.check_id_types(table, feature, spec.id_columns)
        ingest.check_ids(table, feature, spec.id_columns, unique=True)
        ingest.check_column_names(table.column_names, feature, spec.id_columns)
        fields = self.graph.field_keys(feature)
        given = ingest.given_system_values(rows, feature, spec.id_columns, fields)
        self._require_by_field(table, feature)
        table = ingest.check_by_field(table, feature, names.PROVENANCE_BY_FIELD, fields,
                                      complete=True)
        has_dv = names.DATA_VERSION_BY_FIELD in table.column_names
        if has_dv:
            table = ingest.check_by_field(table, feature, names.DATA_VERSION_BY_FIELD, fields,
                                          complete=False)
        table = self._check_user_columns(feature, table)
        if table.num_rows == 0:
            return 0
        coltypes.check_text(table, feature)
        table, new_types = coltypes.conform(
            table, feature, [c for c in table.column_names
                             if c not in ingest.ACCEPTED_SYSTEM_COLUMNS],
            self.column_types(feature))
        user_columns = [c for c in table.column_names
                        if c not in spec.id_columns and c not in ingest.ACCEPTED_SYSTEM_COLUMNS]
        d = self.executor.dialect

        def select(write_seq: int, created_at: str) -> exp.Select:
            return builder.write_select(
                d, staged=names.staged(feature), id_columns=spec.id_columns,
                user_columns=user_columns, field_keys=fields, has_data_version=has_dv,
                feature_version=self.graph.feature_version(feature), created_at=created_at,
                write_seq=write_seq, algorithm=self.hash_algorithm)

        columns = [*spec.id_columns, *user_columns, *names.SYSTEM_COLUMNS]
        staged = table
        if given:  # numbered, with the given hashes, for _check_given
            staged = staged.append_column(ingest.ROW, pa.array(range(table.num_rows), pa.int64()))
            for c in ingest.HASH_COLUMNS:
                if c in given:
                    staged = staged.append_column(_given(c), given[c])

        def attempt() -> None:
            with self.executor.transaction(), self._staged(feature, staged):
                if given:  # before anything is created or appended
                    self.check_hash_algorithm()
                    self._check_given(feature, rows, given, has_dv)
                self.check_hash_algorithm(record=True)
                self._ensure_table(feature, select(0, self._now()), user_columns)
                self._record_types(feature, new_types)
                position = self._begin_write(feature)
                self._supersede(feature, after_insert=False)
                self.executor.execute(d.render(builder.insert(
                    names.table(feature), columns,
                    self._pending(feature, select(position, self._now())))))
                self._supersede(feature, after_insert=True)

        self._retrying(attempt)
        return int(table.num_rows)

    def _check_given(self, feature: str, rows: pa.Table, given: Mapping[str, pa.ChunkedArray],
                     has_dv: bool) -> None:
        """Each value of a checked system column in written ``rows`` (staged, numbered) is what
        the store records for its row: hashes as the engine computes them from the staged row;
        write time, position and an older feature version as the id's latest stored row has
        them (the row was read from this store). Nulls are no value.

        Raises:
            DataError: naming feature, column, first offending row and id, and the fix.
        """
        spec, d = self.graph.spec(feature), self.executor.dialect
        hashes = [c for c in ingest.HASH_COLUMNS if c in given]
        if hashes:
            computed = builder.write_select(
                d, staged=names.staged(feature), id_columns=spec.id_columns,
                user_columns=[ingest.ROW, *[_given(c) for c in hashes]],
                field_keys=self.graph.field_keys(feature), has_data_version=has_dv,
                feature_version="", created_at=_EPOCH, write_seq=0,
                algorithm=self.hash_algorithm)
            differs = [exp.and_(exp.Not(this=exp.Is(this=builder.col(_given(c)),
                                                    expression=exp.Null())),
                                exp.NEQ(this=builder.col(_given(c)), expression=builder.col(c)))
                       for c in hashes]
            query = (exp.select(builder.col(ingest.ROW), *[builder.col(c) for c in hashes])
                     .from_(computed.subquery("computed", copy=False))
                     .where(exp.or_(*differs)).order_by(builder.col(ingest.ROW)).limit(1))
            found = self.executor.fetch(d.render(query)).to_pylist()
            if found:
                row = int(found[0][ingest.ROW])
                for c in hashes:
                    value = given[c][row].as_py()
                    if value is not None and value != found[0][c]:
                        raise DataError(
                            f"feature {feature!r}: column {c!r} row {row} "
                            f"({ingest.row_id(rows, spec.id_columns, row)}) is {value!r}, but "
                            f"the store computes {found[0][c]!r} from the row's "
                            f"{_SOURCE[c]}; drop the column {c!r}: the store computes it")
        described = {c: given[c] for c in ingest.STORED_COLUMNS if c in given}
        if names.FEATURE_VERSION in described:  # the version of the definitions writing: as is
            current = pa.scalar(self.graph.feature_version(feature))
            version = described[names.FEATURE_VERSION]
            if not pc.any(pc.not_equal(version, current)).as_py():
                del described[names.FEATURE_VERSION]
        if not described:
            return
        table, staged = names.table(feature), names.staged(feature)
        latest = pa.table({ingest.ROW: pa.array([], pa.int64())})
        if table in self.executor.tables():
            query = exp.select(
                builder.col(ingest.ROW, "s"), *[builder.col(c, "t") for c in described]
            ).from_(exp.alias_(builder.table_ref(staged), "s", table=True)).join(
                builder.latest_rows(table, spec.id_columns, [builder.col(c) for c in described]
                                    ).subquery("t", copy=False),
                on=builder.ids_equal("s", "t", spec.id_columns))
            latest = self.executor.fetch(d.render(query))
        numbered = pa.table({ingest.ROW: pa.array(range(rows.num_rows), pa.int64())})
        latest = latest.set_column(0, ingest.ROW, latest.column(0).cast(pa.int64()))
        latest = numbered.join(latest, ingest.ROW, join_type="left outer").sort_by(ingest.ROW)
        for c, values in described.items():
            stored = latest.column(c) if c in latest.column_names else pa.nulls(rows.num_rows)
            left, right = _comparable(c, values, stored, feature)
            differs = pc.and_(pc.is_valid(left), pc.invert(pc.fill_null(
                pc.equal(left, right), False)))
            if c == names.FEATURE_VERSION:
                differs = pc.and_(differs, pc.not_equal(
                    left, pa.scalar(self.graph.feature_version(feature))))
            if pc.any(differs).as_py():
                row = int(pc.index(differs, True).as_py())
                what = {names.CREATED_AT: "stamps each write with its own time",
                        names.WRITE_SEQ: "gives each write its position in the write order",
                        names.FEATURE_VERSION: "records the feature version of the definitions "
                                               "writing"}[c]
                was = right[row].as_py()
                raise DataError(
                    f"feature {feature!r}: column {c!r} row {row} "
                    f"({ingest.row_id(rows, spec.id_columns, row)}) is {left[row].as_py()!r}, "
                    + (f"but the id's latest stored row has {was!r}" if was is not None
                       else "and the store holds no live row of that id")
                    + f"; the store {what}, and takes this column only as read back from the "
                    f"id's latest row. Drop the column {c!r} (use copy to move rows between "
                    "stores with their write columns)")

    def delete(self, feature: str, ids: Any = None, *, where: str | None = None,
               hard: bool = False) -> int:
        """Delete samples by id, or those matching ``where``.

        Soft by default: a tombstone hides the samples from the latest state and keeps their
        history. ``hard=True`` removes every row of those ids, history included.

        Only ids the delete changes are touched: a tombstone goes only to an id whose latest
        row is live (an id never written or already deleted gets none), a hard delete only
        to ids with rows; an id listed twice counts once. A delete of nothing appends nothing
        and takes no write position.

        Args:
            feature: feature key.
            ids: the ids: anything ``write`` accepts (only the id columns are read), a list of
                plain id values when the feature has one id column (``["v1", "v2"]``), or a
                list of tuples, one value per id column in ``id_columns`` order.
            where: instead of ``ids``: a predicate over the rows' columns, as in
                :meth:`read`: the samples whose latest row matches (``hard``: any row ever
                written), e.g. ``"sample_uid LIKE 'tmp%'"``.
            hard: remove every row of those ids, history included.

        Returns:
            The number of distinct ids deleted: tombstoned (soft) or whose rows were
            removed (``hard``); 0 when none was.

        Raises:
            DataError: the ids lack an id column, hold nulls or ids of a refused type; a
                plain value or tuple that does not fit the id columns; both or neither of
                ``ids`` and ``where``.
            DefinitionError: ``where`` does not parse, is not allowed or reads unknown
                columns (the message names ``delete``).
        """
        spec = self.graph.spec(feature)
        if (ids is None) == (where is None):
            raise DataError(f"delete {feature!r}: give ids or where= (one of them), e.g. "
                            f"store.delete({feature!r}, where=\"{spec.id_columns[0]} = 'v1'\")")
        if where is not None:
            ids = self._ids_where(feature, where, hard)
        table = ingest.to_arrow(ingest.id_rows(ids, feature, spec.id_columns), feature=feature)
        if table.num_rows == 0 and table.num_columns == 0:
            return 0  # no ids at all (an empty list): nothing to delete
        table = ingest.check_id_types(table, feature, spec.id_columns)
        ingest.check_ids(table, feature, spec.id_columns, unique=False)
        table = table.select(list(spec.id_columns))
        if table.num_rows == 0 or names.table(feature) not in self.executor.tables():
            return 0
        table = self._conform_ids(feature, table)
        table = table.append_column(ingest.ROW, pa.array(range(table.num_rows), pa.int64()))
        d = self.executor.dialect
        deleted = [0]

        def attempt() -> None:
            with self.executor.transaction(), self._staged(feature, table):
                # Only ids the delete changes: a tombstone for an id whose latest row is live,
                # a hard delete for an id with rows. Nothing to delete touches nothing.
                targets = self._deletable(feature, table, hard)
                deleted[0] = 0
                if not targets.num_rows:
                    return
                if not hard:  # again after the write lock: a concurrent write may have won
                    self._ensure_write_seq_column(feature)
                    position = self._begin_write(feature)
                    targets = self._deletable(feature, table, hard)
                deleted[0] = targets.num_rows
                self.executor.stage(names.staged(feature), targets)
                if not targets.num_rows:
                    return
                if hard:  # no write position: incremental increments rebuild in full
                    incremental_mod.log_hard_delete(self.executor, names.table(feature), "begin")
                    stmt: Any = builder.hard_delete(names.table(feature), names.staged(feature),
                                                    spec.id_columns, dialect=d)
                else:
                    self._supersede(feature, after_insert=False)
                    stmt = builder.insert(
                        names.table(feature),
                        [*spec.id_columns, names.CREATED_AT, names.DELETED, names.SUPERSEDED,
                         names.WRITE_SEQ],
                        self._pending(feature, builder.tombstones_select(
                            d, names.staged(feature), spec.id_columns, self._now(), position)))
                self.executor.execute(d.render(stmt))
                if hard:
                    incremental_mod.log_hard_delete(self.executor, names.table(feature), "end")
                else:
                    self._supersede(feature, after_insert=True)

        self._retrying(attempt)
        return deleted[0]

    def _ids_where(self, feature: str, where: str, hard: bool) -> pa.Table:
        """The distinct ids of the rows ``where`` matches: in the latest state, or (``hard``)
        in the history."""
        id_columns = list(self.graph.spec(feature).id_columns)
        query = self._read_query(feature, hard, where, what=f"delete {feature!r}: where=")
        if query is None:
            return pa.table({c: pa.array([], pa.string()) for c in id_columns})
        rows = coltypes.restore(self.executor.fetch(self.executor.dialect.render(query)),
                                self.column_types(feature)).select(id_columns)
        return rows.group_by(id_columns).aggregate([]) if hard else rows

    def _deletable(self, feature: str, ids: pa.Table, hard: bool) -> pa.Table:
        """The rows of staged, numbered ``ids`` (one per distinct id) that a delete changes:
        ids whose latest row is live (soft), ids with any row (``hard``)."""
        spec, d = self.graph.spec(feature), self.executor.dialect
        table, staged = names.table(feature), names.staged(feature)
        of_table = (builder.latest_rows(table, spec.id_columns, []) if not hard
                    else builder.ids_of(table, spec.id_columns))
        query = (exp.select(exp.Min(this=builder.col(ingest.ROW)).as_(ingest.ROW, quoted=True))
                 .from_(builder.table_ref(staged))
                 .where(builder.ids_in(spec.id_columns, of_table))
                 .group_by(*[builder.col(c) for c in spec.id_columns]))
        rows = self.executor.fetch(d.render(query)).column(0).cast(pa.int64())
        return ids.take(pc.take(rows, pc.sort_indices(rows)))

    # -- copy and rebase --------------------------------------------------------------------
    @contextlib.contextmanager
    def copy_into(self, feature: str, source_types: Mapping[str, pa.DataType]
                  ) -> Iterator[Callable[[pa.Table], int]]:
        """Append rows read from another store's table of ``feature`` as they were written
        (the engine of :func:`metaxy_sql.warehouse.copy.copy`).

        Yields a function taking an Arrow table of source rows (id and user columns and every
        ``metaxy_*`` column of the feature table, ``metaxy_write_seq`` included) and returning
        the rows appended. Rows keep their hashes, feature version, write time and write
        position (shifted by the positions this store already handed out for the table: none
        on a fresh store); tombstones keep only ids and the write columns. The write order's
        counter moves past the last copied position. DuckDB and Postgres append everything in
        one transaction; ClickHouse appends rows invisible (superseded) and makes the newest
        row of each id visible in one last ``UPDATE``, so a copy that stops midway shows nothing.

        ``source_types``: the source's stored column types (:meth:`column_types`); types this
        store does not fix yet are recorded, the others must match or widen losslessly.

        Raises:
            DataError: this store already holds rows of ``feature`` (history included), or a
                source type does not fit a type this store fixed.
        """
        spec = self.graph.spec(feature)
        table, d = names.table(feature), self.executor.dialect
        if self.has_rows(feature):
            raise _target_not_empty(feature, self.url)
        stored = self.column_types(feature)
        for column, t in source_types.items():
            if column in stored and not coltypes.fits(t, stored[column]):
                raise DataError(
                    f"feature {feature!r}: column {column!r} is {t} in the source store and "
                    f"{stored[column]} in {self.url}; copy into a store whose definitions "
                    "declare the same type")
        to_record = {c: t for c, t in source_types.items() if c not in stored}
        target_types = {**source_types, **stored}
        state: dict[str, int] = {}

        def append(rows: pa.Table) -> int:
            if rows.num_rows == 0:
                return 0
            rows = _tombstones_bare(coltypes.restore(rows, target_types), spec.id_columns)
            user_columns = [c for c in rows.column_names
                            if c not in spec.id_columns and c not in names.SYSTEM_COLUMNS]
            with self._staged(feature, rows):
                if "base" not in state:
                    self.check_hash_algorithm(record=True)
                    self._ensure_table(feature, builder.write_select(
                        d, staged=names.staged(feature), id_columns=spec.id_columns,
                        user_columns=user_columns, field_keys=self.graph.field_keys(feature),
                        has_data_version=True, feature_version="", created_at=self._now(),
                        write_seq=0, algorithm=self.hash_algorithm), user_columns)
                    lock = d.write_lock(table)
                    if lock is not None:
                        self.executor.execute(d.render(lock))
                    if self.has_rows(feature):  # a writer came first
                        raise _target_not_empty(feature, self.url)
                    self._record_types(feature, to_record)
                    state["base"] = write_order.current_position(self.executor, table)
                columns = [*spec.id_columns, *user_columns, *names.SYSTEM_COLUMNS]
                select = builder.copied_select(d, names.staged(feature), columns, state["base"],
                                               hidden=d.supersede_after_insert)
                self.executor.execute(d.render(builder.insert(table, columns, select)))
            last = pc.max(rows.column(names.WRITE_SEQ)).as_py()
            state["last"] = max(state.get("last", 0), int(last or 0) + state["base"])
            return int(rows.num_rows)

        with self.executor.transaction():
            yield append
            if "base" in state:
                write_order.advance_to(self.executor, table, state["last"])
                if d.supersede_after_insert:
                    self.executor.execute(d.render(builder.settle_superseded(
                        table, spec.id_columns, d, table)))

    def has_rows(self, feature: str) -> bool:
        """True when the table of ``feature`` has any row, tombstones and history included
        (rows a copy left invisible on ClickHouse too).

        Raises:
            UnknownFeatureError: ``feature`` is not defined.
        """
        self.graph.spec(feature)
        table = names.table(feature)
        if table not in self.executor.tables():
            return False
        query = exp.select(exp.Literal.number(1)).from_(builder.table_ref(table)).limit(1)
        return bool(self.executor.fetch(self.executor.dialect.render(query)).num_rows > 0)

    def rebase(self, feature: str, where: str | None = None, *,
               batch_size: int = 100_000) -> int:
        """Re-stamp the stale samples of ``feature`` with their expected provenance, without
        recomputing them: for a code-version bump that did not change the outputs (a
        refactor, a comment). Returns the rows written (for an expansion: every child row
        of each stale parent).

        Each stale sample gets a new row (a write like any other, in the write order; the
        old rows stay in the history) with the expected ``metaxy_provenance_by_field``, its
        user columns as stored and its **data versions kept** (the outputs did not change, so
        the features downstream stay up to date). New and orphaned samples are left alone.
        Rebase trusts you: a sample stale because its *upstream data* changed is re-stamped
        too; restrict it with ``where`` when only some samples are unchanged.

        Args:
            feature: a non-root feature key.
            where: a predicate over the increment's id columns (as in ``resolve_update``).
            batch_size: stale samples per write.

        Raises:
            ConfigError: ``batch_size`` is not a whole number of 1 or more.
            DataError: ``feature`` is a root feature (it has no expected provenance).
            DefinitionError: ``where`` is not over the increment's id columns.
        """
        check_batch_size(batch_size)
        spec = self.graph.spec(feature)
        if self.graph.is_root(feature):
            raise DataError(f"feature {feature!r} is a root feature: its provenance is what you "
                            "write, there is no expected one to rebase on; write its samples")
        grain = increment_grain(self.graph, feature)
        part = self.resolve_update(feature, where=where).stale
        # Only the grain ids and the expected provenance are held, not the carried columns.
        stale = dataclasses.replace(part, columns=(*grain, names.PROVENANCE_BY_FIELD)).to_arrow()
        if stale.num_rows == 0:
            return 0
        table = names.table(feature)
        keep = [c for c in self.executor.columns(table)
                if c not in spec.id_columns and not names.is_per_field_column(c)
                and (c == names.DATA_VERSION_BY_FIELD or not c.startswith(SYSTEM_PREFIX))]
        written = 0
        for start in range(0, stale.num_rows, batch_size):
            chunk = stale.slice(start, batch_size)
            with self._staged(feature, chunk.select(list(grain))):
                query = builder.latest_rows(table, spec.id_columns, [
                    builder.col(c) for c in keep]).where(builder.ids_in(
                        grain, builder.ids_of(names.staged(feature), grain)))
                current = self.executor.fetch(self.executor.dialect.render(query))
            current = coltypes.restore(current, self.column_types(feature))
            expected = {tuple(r): i for i, r in enumerate(
                zip(*[chunk.column(c).to_pylist() for c in grain], strict=True))}
            index = [expected[k] for k in zip(
                *[current.column(c).to_pylist() for c in grain], strict=True)]
            provenance = chunk.column(names.PROVENANCE_BY_FIELD).take(
                pa.array(index, pa.int64()))
            written += self.write(feature, current.append_column(
                names.PROVENANCE_BY_FIELD, provenance))
        return written

    # -- reads ------------------------------------------------------------------------------
    def read(self, feature: str, *, history: bool = False, where: str | None = None,
             limit: int | None = None) -> pa.Table:
        """Latest state of ``feature`` (one live row per id, ordered by id); ``history=True``:
        every row, tombstones included, per id in write order.

        Args:
            feature: feature key.
            history: every row ever written instead of the latest state.
            where: a predicate over the rows' columns (ids, your columns, ``metaxy_*``), e.g.
                ``"sample_uid = 'v1'"``, checked with sqlglot and run in the engine.
            limit: at most this many rows (the first ones in the order above).

        Returns:
            An Arrow table; :meth:`read_polars`, :meth:`read_pandas`, :meth:`table` (ibis)
            and :meth:`iter_batches` give the same rows in other forms.

        Raises:
            DefinitionError: ``where`` does not parse, is not allowed or reads unknown columns.
            DataError: ``where`` compares a column with a literal (or column) of another type,
                which engines answer differently (e.g. ``"score > '1.5'"`` for a float
                column: write ``score > 1.5``); see README, "Filters".
            ConfigError: ``limit`` is negative.
        """
        query = self._read_query(feature, history, where, limit)
        if query is None:
            spec = self.graph.spec(feature)
            return pa.table({c: pa.array([], pa.string()) for c in spec.id_columns})
        result = self.executor.fetch(self.executor.dialect.render(query))
        return coltypes.restore(result, self.column_types(feature))

    def iter_batches(self, feature: str, *, history: bool = False,
                     batch_size: int = 65536, where: str | None = None,
                     limit: int | None = None) -> Iterator[pa.RecordBatch]:
        """The rows of :meth:`read` (same arguments) as a stream of Arrow record batches of
        at most ``batch_size`` rows (none when the feature was never written).

        Raises:
            ConfigError: ``batch_size`` is not a whole number of 1 or more (raised at the
                call, before any query runs); ``limit`` is negative.
            DefinitionError, DataError: ``where`` as in :meth:`read` (at the first batch).
        """
        check_batch_size(batch_size)
        return self._iter_batches(feature, history, where, limit, batch_size)

    def _iter_batches(self, feature: str, history: bool, where: str | None, limit: int | None,
                      batch_size: int) -> Iterator[pa.RecordBatch]:
        query = self._read_query(feature, history, where, limit)
        if query is not None:
            types = self.column_types(feature)
            for batch in self.executor.batches(self.executor.dialect.render(query), batch_size):
                yield from coltypes.restore(pa.Table.from_batches([batch]), types).to_batches()

    def read_polars(self, feature: str, *, history: bool = False) -> Any:
        """:meth:`read` as an eager ``polars.DataFrame``; the by-field maps are structs with
        one field per field key (see :meth:`IncrementPart.to_polars`).

        Raises:
            ConfigError: polars is not installed.
        """
        by_field = (names.PROVENANCE_BY_FIELD, names.DATA_VERSION_BY_FIELD)
        return frames.to_polars(self.read(feature, history=history),
                                dict.fromkeys(by_field, self.graph.field_keys(feature)))

    def read_pandas(self, feature: str, *, history: bool = False) -> Any:
        """:meth:`read` as a ``pandas.DataFrame`` that writes back exactly: nullable dtypes
        (``Int64``, ``UInt64``, ``Float64`` with NaN apart from ``pd.NA``, ``boolean``),
        ``pd.ArrowDtype`` for lists, structs and maps, per-field map cells as Python dicts
        (see :func:`metaxy_sql.engine.frames.to_pandas`).

        Raises:
            ConfigError: pandas is not installed.
        """
        return frames.to_pandas(self.read(feature, history=history))

    def table(self, feature: str, *, history: bool = False) -> Any:
        """A lazy ibis table over the query of :meth:`read`, on the store's own connection
        (needs the ``ibis`` extra; see :mod:`metaxy_sql.ext.ibis`).

        Raises:
            DataError: ``feature`` was never written (it has no table yet).
            UnsupportedByDialectError: the engine has no ibis backend (chdb).
        """
        query = self._read_query(feature, history)
        if query is None:
            raise DataError(f"feature {feature!r} has no table yet: write it first "
                            f"(store.write({feature!r}, ...))")
        return load_extension("ibis").table(self.executor, query)

    def _read_query(self, feature: str, history: bool, where: str | None = None,
                    limit: int | None = None, what: str | None = None) -> exp.Select | None:
        """The query of :meth:`read`, or None when the feature has no table. ``what``: how
        errors name ``where`` (default: ``read 'feature': where=``)."""
        spec = self.graph.spec(feature)
        what = what or f"read {feature!r}: where="
        if limit is not None and limit < 0:
            raise ConfigError(f"read {feature!r}: limit must be 0 or more, got {limit}")
        table = names.table(feature)
        if table not in self.executor.tables():
            if where is not None:  # still refuse what would never run
                filters.parse_filter(where, what)
            return None
        stored = self.executor.columns(table)
        if history:
            query = builder.read_history(table, spec.id_columns, self.executor.dialect)
            available = [c for c in stored if not names.is_per_field_column(c)]
        else:
            columns = [c for c in stored
                       if c not in spec.id_columns and not names.is_per_field_column(c)
                       and c not in (names.DELETED, names.SUPERSEDED, names.WRITE_SEQ)]
            query = builder.read_latest(table, spec.id_columns, columns)
            available = [*spec.id_columns, *columns]
        if where is not None:
            predicate = filters.parse_filter(where, what)
            filters.check_columns(predicate, where, available, what,
                                  "filter on the feature's columns")
            filter_types.check_types(predicate, where, self.predicate_kinds(feature), what,
                                     DataError)
            query = query.where(self.executor.dialect.predicate(predicate))
        if limit is not None:
            query = query.limit(limit)
        return query

    def predicate_kinds(self, feature: str) -> dict[str, tuple[str, str]]:
        """What a ``where=`` may compare each column of ``feature`` with (see
        ``model.filter_types``): its stored types and the system columns'."""
        return coltypes.predicate_kinds(self.column_types(feature))

    def _check_where(self, feature: str, where: str | None, grain: Sequence[str],
                     given: Mapping[str, pa.DataType]) -> None:
        """Refuse a ``where=`` over ``grain`` (columns of ``feature`` or of its parents)
        that compares a column with a literal of another type.

        Raises:
            DefinitionError: ``where`` does not parse or reads other columns than ``grain``.
            DataError: a comparison engines would answer differently (names the column, its
                stored type, the literal and the fix).
        """
        if where is None:
            return
        what = f"feature {feature!r}: where="
        predicate = filters.parse_filter(where, what)
        filters.check_columns(predicate, where, grain, what,
                              "partial resolution filters on the increment's id columns")
        kinds = coltypes.predicate_kinds(self._increment_types(feature, given))
        filter_types.check_types(predicate, where, kinds, what, DataError)

    def _check_filter_types(self, feature: str) -> None:
        """Refuse dependency filters of ``feature`` comparing a parent column with a literal
        of another type, against the parents' stored column types.

        Raises:
            DefinitionError: names the dependency, the column, its type, the literal and the
                fix.
        """
        for dep in self.graph.spec(feature).deps:
            if not dep.filters:
                continue
            kinds = self.predicate_kinds(dep.feature)
            where = f"feature {feature!r}, dependency {dep.feature!r}: filter"
            for text in dep.filters:
                filter_types.check_types(filters.parse_filter(text, where), text, kinds, where,
                                         DefinitionError)

    def column_types(self, feature: str) -> dict[str, pa.DataType]:
        """Stored Arrow type of each id and user column whose type is fixed (see README,
        "Column types"): recorded, else declared by the feature class, else (tables written
        before types were recorded) as the engine reads the column back."""
        types: dict[str, pa.DataType] = {}
        for column, annotation in self.graph.user_columns(feature).items():
            declared = coltypes.declared_type(annotation)
            if declared is not None:
                types[column] = declared
        records = system.read_all(self.executor, names.COLUMN_TYPES, "recorded_at")
        if records.num_rows:
            recorded: dict[str, pa.DataType] = {}
            for r in records.filter(pc.equal(records.column("feature"), feature)).to_pylist():
                if r["column"] == _DROPPED:
                    recorded.clear()  # the table was dropped: its types went with it
                else:
                    recorded.setdefault(str(r["column"]), coltypes.decode(str(r["arrow_type"])))
            types.update(recorded)
        table = names.table(feature)
        if table in self.executor.tables():
            unknown = [c for c in self.executor.columns(table)
                       if c not in types and not c.startswith(SYSTEM_PREFIX)
                       and not names.is_per_field_column(c)]
            if unknown:
                types |= _engine_types(self.executor, table, unknown)
        return types

    def count(self, feature: str) -> int:
        """Number of live samples of ``feature`` (latest state), counted in the engine."""
        spec = self.graph.spec(feature)
        if names.table(feature) not in self.executor.tables():
            return 0
        query = builder.count_query(builder.latest_rows(names.table(feature), spec.id_columns, []))
        return int(self.executor.fetch(self.executor.dialect.render(query)).column(0)[0].as_py())

    def dependent_views(self, feature: str) -> list[DependentView]:
        """The views, any schema, that read the table of ``feature`` directly or through other
        views, in drop order: increment views ``materialize`` logged for it and for the
        features reading it, and any other view the engine's catalog shows reading it."""
        self.graph.spec(feature)
        return views_mod.dependent_views(self.executor, self.graph, feature)

    def drop(self, feature: str, *, cascade: bool = False) -> list[DependentView]:
        """Drop the table of ``feature`` with all its history. Irreversible.

        Views reading the table (:meth:`dependent_views`) are found before any DDL runs. A
        table never written is not there to drop: nothing happens.
        Incremental increment tables and snapshot tables of downstream features are tables:
        they stay, and rebuild in full at their next refresh (a drop is a hard delete).

        Args:
            feature: the feature key.
            cascade: drop the views reading the table first (only views, never another
                feature's table), recorded in the materialization log as dropped.

        Returns:
            The views dropped (empty without ``cascade``).

        Raises:
            ConfigError: views read the table and ``cascade`` is false (the message lists
                them), or, with ``cascade``, a view's SQL does not parse.
        """
        self.graph.spec(feature)
        table = names.table(feature)
        tables = self.executor.tables()
        views = (views_mod.dependent_views(self.executor, self.graph, feature)
                 if table in tables else [])
        if views and not cascade:
            raise views_mod.refuse(feature, views)
        if table in tables:
            with self.executor.transaction():
                views_mod.drop_views(self.executor, feature, views)
                incremental_mod.log_hard_delete(self.executor, table, "begin")
                self.executor.execute(self.executor.dialect.render(builder.drop_table(table)))
                incremental_mod.log_hard_delete(self.executor, table, "end")
        if names.COLUMN_TYPES in tables:
            system.append(self.executor, names.COLUMN_TYPES, _TYPE_COLUMNS, {
                "feature": feature, "column": _DROPPED, "arrow_type": "", "type": "",
                "recorded_at": self._now()})
        return views

    def render(self, feature: str) -> str:
        """The resolve SQL of ``feature`` as this store would run it."""
        self._check_filter_types(feature)
        return self.compiled(feature, self.catalog(feature))[0]

    # -- helpers ----------------------------------------------------------------------------
    def _begin_write(self, feature: str) -> int:
        """Serialize with the other writers of ``feature`` where the engine locks, then take
        the write's position in the table's write order (``engine.write_order``)."""
        d, table = self.executor.dialect, names.table(feature)
        lock = d.write_lock(table)
        if lock is not None:
            self.executor.execute(d.render(lock))
        return write_order.next_position(self.executor, table)

    def _retrying(self, attempt: Callable[[], None]) -> None:
        """Run a write transaction, again when a concurrent writer made it conflict."""
        for n in itertools.count():
            try:
                attempt()
                return
            except WriteConflictError:
                if n + 1 >= WRITE_ATTEMPTS:
                    raise
                time.sleep(random.uniform(0, 0.005 * 2 ** min(n, 7)))

    def _supersede(self, feature: str, *, after_insert: bool) -> None:
        """Mark the replaced rows of the staged ids superseded: before the append in its
        transaction, or after it where the engine has no transactions (ClickHouse)."""
        d = self.executor.dialect
        if d.supersede_after_insert != after_insert:
            return
        table, ids = names.table(feature), self.graph.spec(feature).id_columns
        if after_insert:
            self.executor.execute(d.render(builder.settle_superseded(
                table, ids, d, names.staged(feature))))
            return
        self.executor.execute(d.render(builder.supersede(table, names.staged(feature), ids)))

    def _pending(self, feature: str, select: exp.Select) -> exp.Select:
        """Rows to append, as the engine appends them: where writes supersede after the
        append, rows of ids already written go in pending (superseded) until settled."""
        if not self.executor.dialect.supersede_after_insert:
            return select
        return builder.pending_where_written(select, names.table(feature), names.staged(feature),
                                             self.graph.spec(feature).id_columns)

    def _require_by_field(self, table: pa.Table, feature: str) -> None:
        if names.PROVENANCE_BY_FIELD in table.column_names:
            return
        if self.graph.is_root(feature):
            hint = "give each sample its field -> provenance map, e.g. {'audio': '<hash>'}"
        else:
            hint = (f"write rows from store.resolve_update({feature!r}).new or .stale, which "
                    "carry the expected provenance")
        raise DataError(f"feature {feature!r}: rows lack {names.PROVENANCE_BY_FIELD}; {hint}")

    def _check_user_columns(self, feature: str, table: pa.Table) -> pa.Table:
        """``table`` with the declared columns it lacks that default to None added as NULL
        (an instance built without them holds None; a root increment carries only the
        columns its samples had).

        Raises:
            DataError: a declared column without a None default is missing.
        """
        declared = self.graph.user_columns(feature)
        optional = self.graph.optional_columns(feature)
        missing = [c for c in declared if c not in table.column_names]
        required = [c for c in missing if c not in optional]
        if required:
            raise DataError(
                f"feature {feature!r}: rows lack the declared columns {required}; give them, "
                "or declare them with a None default (x: str | None = None) to write NULL")
        for c in missing:
            table = table.append_column(c, pa.nulls(table.num_rows))
        return table

    def _conform_ids(self, feature: str, table: pa.Table) -> pa.Table:
        """Id columns cast to their stored types (rows compared with stored ids)."""
        stored = {c: t for c, t in self.column_types(feature).items()
                  if c in self.graph.spec(feature).id_columns}
        coltypes.check_text(table, feature)
        return coltypes.conform(table, feature, list(stored), stored)[0]

    def _record_types(self, feature: str, types: dict[str, pa.DataType]) -> None:
        if not types:
            return
        system.ensure(self.executor, names.COLUMN_TYPES, _TYPE_COLUMNS, ["feature", "column"])
        for column, t in sorted(types.items()):
            system.append(self.executor, names.COLUMN_TYPES, _TYPE_COLUMNS, {
                "feature": feature, "column": column, "arrow_type": coltypes.encode(t),
                "type": str(t), "recorded_at": self._now()})

    def _ensure_table(self, feature: str, select: Any, user_columns: list[str]) -> None:
        table, d = names.table(feature), self.executor.dialect
        created = table not in self.executor.tables()
        if created:
            lock = d.create_lock(table)
            if lock is not None:  # concurrent first writers take turns; later ones find it
                self.executor.execute(d.render(lock))
                created = table not in self.executor.tables()
        if created:
            self.executor.create_table(table, select, list(self.graph.spec(feature).id_columns))
        existing = self.executor.columns(table)
        # Before any column is added or row appended: X next to a stored x is refused.
        ingest.check_column_names(user_columns, feature, (), existing)
        self._ensure_write_seq_column(feature, existing)
        new = [c for c in user_columns if c not in existing]
        if new:
            staged_types = self.executor.columns(names.staged(feature))
            for c in new:
                self.executor.execute(d.render(builder.add_column(table, c, staged_types[c], d)))
        # Per-field derived columns: on a new table, and for fields added to the definition.
        added = [c for c in d.derived_columns(self.graph.field_keys(feature))
                 if c.name not in existing]
        if added:
            self.executor.execute(d.render(builder.add_derived_columns(table, added, d)))
        if added and not created and not any(names.is_per_field_column(c) for c in existing):
            # A table written before per-field columns, when writes did not supersede yet:
            # settle the flags of every id with more than one live row, once.
            self.executor.execute(d.render(builder.settle_superseded(
                table, self.graph.spec(feature).id_columns, d, None)))

    def _ensure_write_seq_column(self, feature: str,
                                 existing: dict[str, str] | None = None) -> None:
        """A table written before write positions existed gets the column; its rows are at
        position 0, before every later write. ``existing``: the table's columns, if known."""
        table, d = names.table(feature), self.executor.dialect
        if existing is None:
            existing = self.executor.columns(table)
        if names.WRITE_SEQ not in existing:
            self.executor.execute(d.render(builder.add_column(
                table, names.WRITE_SEQ, d.write_seq_type, d, default=0)))

    def _staged(self, feature: str, table: pa.Table) -> _Staged:
        return _Staged(self.executor, names.staged(feature), table)

    def _now(self) -> str:
        """UTC write time, strictly increasing within this store."""
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        if self._last_time is not None and now <= self._last_time:
            now = self._last_time + dt.timedelta(microseconds=1)
        self._last_time = now
        return now.isoformat(sep=" ", timespec="microseconds")


def _given(column: str) -> str:
    """The staged name of a checked system column a write was given (``_check_given``)."""
    return f"{ingest.ROW}__{column}"


#: What each hash column is computed from (messages).
_SOURCE = {names.PROVENANCE: names.PROVENANCE_BY_FIELD,
           names.DATA_VERSION: f"data versions ({names.DATA_VERSION_BY_FIELD}, else provenance)"}
#: The write time of the statement computing a write's hashes for a check (never stored).
_EPOCH = "1970-01-01 00:00:00.000000"


def _comparable(column: str, given: pa.ChunkedArray, stored: pa.ChunkedArray | pa.Array,
                feature: str) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """``given`` and ``stored`` values of ``column`` in one Arrow type (times in naive UTC
    microseconds, positions int64, versions text).

    Raises:
        DataError: a given time finer than a microsecond (the store never holds one).
    """
    target = {names.CREATED_AT: pa.timestamp("us"), names.WRITE_SEQ: pa.int64()}.get(
        column, pa.string())
    out = []
    for values in (given, stored):
        if isinstance(values, pa.Array):
            values = pa.chunked_array([values])
        try:
            if pa.types.is_timestamp(values.type) and values.type.tz is not None:
                values = values.cast(pa.timestamp(values.type.unit))
            out.append(values.cast(target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(
                f"feature {feature!r}: column {column!r} holds values the store never records "
                f"({values.type}); drop the column: the store records it") from None
    return out[0], out[1]


#: Compiled resolve statements kept per store (``Store.compiled``), oldest evicted first.
_COMPILED_CACHE_SIZE = 256


def _catalog_key(catalog: Catalog) -> tuple[object, ...]:
    """Everything of ``catalog`` a compiled statement depends on, hashable."""
    return (catalog.tables,
            tuple(sorted((t, frozenset(c)) for t, c in catalog.columns.items())),
            tuple(sorted((t, tuple(sorted(c.items()))) for t, c in catalog.id_types.items())),
            catalog.sample_columns)


#: The ``column`` of a record saying the feature's table was dropped (no column has this name).
_DROPPED = ""
_HASH_SETTING = "hash_algorithm"
_SETTING_COLUMNS = (("setting", system.TEXT), ("value", system.TEXT),
                    ("recorded_at", system.TIMESTAMP))
_TYPE_COLUMNS = (("feature", system.TEXT), ("column", system.TEXT), ("arrow_type", system.TEXT),
                 ("type", system.TEXT), ("recorded_at", system.TIMESTAMP))


def _target_not_empty(feature: str, url: str) -> DataError:
    return DataError(
        f"feature {feature!r}: {url} already holds rows of it; copy never merges into a "
        "feature's history. Drop it there first (store.drop(feature)), or leave the feature "
        "out of the copy")


def _tombstones_bare(rows: pa.Table, id_columns: tuple[str, ...] | list[str]) -> pa.Table:
    """Tombstone rows with only ids and write columns (engines fill the rest differently:
    NULL on DuckDB and Postgres, empty values on ClickHouse)."""
    deleted = rows.column(names.DELETED)
    if not pc.any(deleted).as_py():
        return rows
    keep = {*id_columns, names.CREATED_AT, names.DELETED, names.SUPERSEDED, names.WRITE_SEQ}
    for i, name in enumerate(rows.column_names):
        if name not in keep:
            column = rows.column(name)
            rows = rows.set_column(i, name, pc.if_else(
                deleted, pa.nulls(len(column), column.type), column))
    return rows


def _engine_types(executor: Executor, table: str, columns: list[str]) -> dict[str, pa.DataType]:
    """Stored types of columns no record covers, as the engine reads them back."""
    query = exp.select(*[builder.col(c) for c in columns]).from_(builder.table_ref(table))
    schema = executor.fetch(executor.dialect.render(query.limit(0))).schema
    out = {}
    for f in schema:
        try:
            t = coltypes.canonical(f.type)
        except coltypes.TypeRefused:
            continue
        if t is not None:
            out[f.name] = t
    return out


class _Staged:
    def __init__(self, executor: Executor, name: str, table: pa.Table) -> None:
        self.executor, self.name, self.table = executor, name, table

    def __enter__(self) -> None:
        self.executor.stage(self.name, self.table)

    def __exit__(self, *exc: object) -> None:
        self.executor.unstage(self.name)


def _open_executor(url: str, create: bool) -> Executor:
    scheme = urlsplit(url).scheme
    if scheme == "duckdb":
        from metaxy_sql.engine.executors.duckdb import DuckDBExecutor

        rest, asked, query = url[len("duckdb://"):].partition("?")
        if asked:
            unknown = sorted(parse_qs(query, keep_blank_values=True)) or [query]
            raise ConfigError(
                f"store URL {url!r}: unknown parameters {unknown}; supported: [] (a DuckDB "
                "store URL is the file path alone: duckdb:///path/to/file.db or "
                "duckdb://:memory:)")
        if "#" in rest:
            raise ConfigError(
                f"store URL {url!r}: '#' starts a URL fragment, which a store URL does not "
                "take; give the file a name without '#'")
        if rest in (":memory:", "/:memory:", ""):
            return DuckDBExecutor(":memory:")
        if not rest.startswith("/"):
            raise ConfigError(f"store URL {url!r}: use duckdb:///path/to/file.db (three slashes "
                              "and a path) or duckdb://:memory:")
        path = rest[1:]  # duckdb:///rel.db -> rel.db; duckdb:////abs.db
        if not create and not Path(path).is_file():
            raise StoreConnectionError(_missing(url, Path(path).absolute()))
        return DuckDBExecutor(path)
    if scheme in ("clickhouse", "clickhouses", "chdb"):
        from metaxy_sql.engine.executors.clickhouse import ClickHouseExecutor

        return ClickHouseExecutor.from_url(url, create=create)
    if scheme in ("postgresql", "postgres"):
        from metaxy_sql.engine.executors.postgres import PostgresExecutor

        return PostgresExecutor.from_url(url, create=create)
    raise ConfigError(
        f"store URL {url!r}: unsupported scheme {scheme!r}; use duckdb:///path.db, "
        "duckdb://:memory:, clickhouse://host:8123/db, chdb:///abs/path or "
        "postgresql://user@host/db")


def _missing(url: str, path: Path) -> str:
    return (f"store {url}: {path} does not exist; nothing was created (only writing commands "
            "create a store). Check the path: relative paths in a config file are relative to "
            "its folder, from --store or METAXY_SQL_STORE to the working directory")


def connect(url: str, graph: FeatureGraph, *, hash_algorithm: HashAlgorithm = "sha256",
            create: bool = True) -> Store:
    """Open the store at ``url`` for the features of ``graph``.

    URLs: ``duckdb:///relative/or/absolute/path.db``... see the README's store table.

    Args:
        url: the store URL (a relative DuckDB path is relative to the working directory).
        graph: the feature definitions.
        hash_algorithm: ``"sha256"`` (default) or ``"md5"``.
        create: ``True`` (default, for writers): a store that does not exist yet (DuckDB
            file, chdb data path and database, Postgres ``?schema=``) is created. ``False``
            (readers): it must exist, nothing is created.

    Raises:
        ConfigError: a malformed URL or unknown scheme.
        StoreConnectionError: the store cannot be reached, or with ``create=False`` does
            not exist (naming the path).
        DefinitionError: a name the store would make of a feature (its table, staged rows,
            increments, per-field columns...) is longer than the engine keeps (Postgres: 63
            bytes; ``Dialect.check_identifiers``).
    """
    if not isinstance(graph, FeatureGraph):
        raise ConfigError("connect(url, graph=...) needs a FeatureGraph")
    executor = _open_executor(url, create)
    try:
        return Store(executor, graph, hash_algorithm)
    except BaseException:
        executor.close()
        raise
