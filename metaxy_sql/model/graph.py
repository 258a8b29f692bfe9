"""The feature graph: validation, topological order, field-level dependencies, versions.

>>> import metaxy_sql as mx
>>> g = mx.FeatureGraph([
...     mx.FeatureSpec(key="video/full", id_columns=["sample_uid"],
...                    fields=[mx.FieldSpec(key="audio"), mx.FieldSpec(key="frames")]),
...     mx.FeatureSpec(key="video/face_crop", id_columns=["sample_uid"], deps=["video/full"],
...                    fields=[mx.FieldSpec(key="frames")])])
>>> g.field_parents("video/face_crop", "frames")
(('video/full', 'frames'),)
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from typing import Any

from metaxy_sql.errors import DefinitionError, UnknownFeatureError
from metaxy_sql.model import filter_types, filters, hashing, names
from metaxy_sql.model.definitions import (
    SYSTEM_PREFIX,
    BaseFeature,
    FeatureDep,
    FeatureSpec,
    check_column,
    declared_kind,
    kind_fits,
)
from metaxy_sql.model.names import SYSTEM_COLUMNS

FieldRef = tuple[str, str]


class FeatureGraph:
    """An explicit, validated graph of features (no hidden global state).

    Args:
        features: feature specs and/or ``BaseFeature`` subclasses, in any order.
    """

    def __init__(self, features: Iterable[FeatureSpec | type[BaseFeature]]) -> None:
        self._specs: dict[str, FeatureSpec] = {}
        self._classes: dict[str, type[BaseFeature]] = {}
        for item in features:
            spec = _spec_of(item)
            if spec.key in self._specs and self._specs[spec.key] != spec:
                raise DefinitionError(
                    f"feature {spec.key!r} is defined twice with different specs; keep one")
            self._specs[spec.key] = spec
            if isinstance(item, type):
                self._classes[spec.key] = item
        self._check_table_names()
        for spec in self._specs.values():
            self._check_field_names(spec)
            self._check_column_names(spec)
        self._check_deps()
        self._order = self._toposort()
        self._parents = {
            (s.key, f.key): self._resolve_field_parents(s, f.key)
            for s in self._specs.values() for f in s.fields
        }

    # -- lookup -----------------------------------------------------------------------------
    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def __iter__(self) -> Iterator[FeatureSpec]:
        return (self._specs[k] for k in self._order)

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def keys(self) -> tuple[str, ...]:
        """Feature keys in topological order (ties broken by key)."""
        return self._order

    def spec(self, key: str) -> FeatureSpec:
        """The spec of feature ``key``; raises :class:`UnknownFeatureError` naming known keys."""
        if not isinstance(key, str):
            hint = getattr(key, "key", None) or getattr(getattr(key, "spec", None), "key", None)
            raise UnknownFeatureError(
                f"features are named by their key string, got {type(key).__name__}"
                + (f"; pass {hint!r}" if isinstance(hint, str) else ""))
        try:
            return self._specs[key]
        except KeyError:
            known = ", ".join(self._order) or "(none)"
            raise UnknownFeatureError(
                f"unknown feature {key!r}; the graph defines: {known}") from None

    def feature_class(self, key: str) -> type[BaseFeature] | None:
        """The ``BaseFeature`` subclass of ``key`` when it was defined as a class."""
        return self._classes.get(key)

    def user_columns(self, key: str) -> dict[str, Any]:
        """Declared user columns (name -> Python annotation) of a class-based feature."""
        cls = self._classes.get(key)
        return cls.user_columns() if cls else {}

    def optional_columns(self, key: str) -> frozenset[str]:
        """Declared user columns of ``key`` that rows may leave out (written as NULL)."""
        cls = self._classes.get(key)
        return cls.optional_columns() if cls else frozenset()

    def field_keys(self, key: str) -> tuple[str, ...]:
        """Sorted field keys of feature ``key``."""
        return tuple(sorted(f.key for f in self.spec(key).fields))

    def code_version(self, key: str, field: str) -> str:
        return next(f.code_version for f in self.spec(key).fields if f.key == field)

    def field_parents(self, key: str, field: str) -> tuple[FieldRef, ...]:
        """Sorted upstream ``(feature, field)`` pairs that field ``field`` of ``key`` reads."""
        return self._parents[(key, field)]

    def children(self, key: str) -> tuple[str, ...]:
        """Features that depend directly on ``key``, in topological order."""
        return tuple(k for k in self._order if any(d.feature == key for d in self._specs[k].deps))

    def is_root(self, key: str) -> bool:
        return not self.spec(key).deps

    # -- versions ---------------------------------------------------------------------------
    @cached_property
    def _field_versions(self) -> dict[FieldRef, str]:
        versions: dict[FieldRef, str] = {}
        for key in self._order:
            for f in self._specs[key].fields:
                parents = {p: versions[p] for p in self._parents[(key, f.key)]}
                versions[(key, f.key)] = hashing.field_version(key, f.key, f.code_version, parents)
        return versions

    def field_version(self, key: str, field: str) -> str:
        """Definition-level version of a field (code versions up the field-level lineage)."""
        self.spec(key)
        return self._field_versions[(key, field)]

    def feature_version(self, key: str) -> str:
        """Definition-level version of a feature (the versions of all its fields)."""
        return hashing.feature_version(
            key, {f: self.field_version(key, f) for f in self.field_keys(key)})

    # -- validation -------------------------------------------------------------------------
    def _check_table_names(self) -> None:
        """Feature tables stay apart on every engine: after ``/`` -> ``__`` and case folding
        (DuckDB matches names case-insensitively), and from the store's own relations."""
        by_table: dict[str, str] = {}
        for key in sorted(self._specs):
            table = names.table(key)
            if names.fold(table).startswith(names.STORE_PREFIX):
                raise DefinitionError(
                    f"feature {key!r} would be stored in the table {table!r}, whose prefix "
                    f"{names.STORE_PREFIX!r} is kept for the store's own tables (e.g. "
                    f"{names.GRAPH_SNAPSHOTS!r}, {names.staged(key)!r}); rename the feature")
            other = by_table.get(names.fold(table))
            if other is not None:
                raise DefinitionError(
                    f"features {other!r} and {key!r} would share the table "
                    f"{names.table(other)!r} (keys map '/' to '__', and DuckDB matches table "
                    "names ignoring case); rename one of them")
            by_table[names.fold(table)] = key

    def _check_field_names(self, spec: FeatureSpec) -> None:
        seen: dict[str, str] = {}
        for f in spec.fields:
            other = seen.get(names.fold(f.key))
            if other is not None:
                raise DefinitionError(
                    f"feature {spec.key!r}: fields {other!r} and {f.key!r} differ only in case; "
                    "their per-field columns would be one column on DuckDB; rename one of them")
            seen[names.fold(f.key)] = f.key

    def _check_column_names(self, spec: FeatureSpec) -> None:
        """Id and declared user columns: valid names, none an engine's own, and distinct in
        any case (Postgres keeps ``x`` and ``X`` apart, DuckDB merges them)."""
        seen: dict[str, str] = {}
        declared = self.user_columns(spec.key)
        for column in [*spec.id_columns, *[c for c in declared if c not in spec.id_columns]]:
            try:
                check_column("column", column)
            except ValueError as e:
                raise DefinitionError(f"feature {spec.key!r}: {e}") from None
            other = seen.get(names.fold(column))
            if other is not None:
                raise DefinitionError(
                    f"feature {spec.key!r}: columns {other!r} and {column!r} differ only in "
                    "case; DuckDB would store them in one column, Postgres in two; rename one")
            seen[names.fold(column)] = column
        for column in spec.id_columns:
            if declared.get(column) is float:
                raise DefinitionError(
                    f"feature {spec.key!r}: id column {column!r} is declared float; floats are "
                    "refused as ids (engines spell them differently in hash inputs); declare "
                    "it int, str, Decimal, date or datetime")

    def _check_deps(self) -> None:
        for spec in self._specs.values():
            for dep in spec.deps:
                if dep.feature not in self._specs:
                    raise DefinitionError(
                        f"feature {spec.key!r} depends on {dep.feature!r}, which is not in the "
                        f"graph; add its spec to the FeatureGraph or fix the key")
                self._check_lineage(spec, dep)
                self._check_dep_columns(spec, dep)
            self._check_grain(spec)

    def _check_lineage(self, spec: FeatureSpec, dep: FeatureDep) -> None:
        parent = self._specs[dep.feature]
        ids, pids, on = list(spec.id_columns), list(parent.id_columns), list(dep.lineage.on)
        where = f"feature {spec.key!r}, dependency {dep.feature!r}"
        if dep.lineage.kind == "identity":
            if pids != ids:
                raise DefinitionError(
                    f"feature {spec.key!r} has id_columns {ids} but its dependency "
                    f"{dep.feature!r} has {pids}; one-to-one dependencies need the same id "
                    "columns (for one-to-many use "
                    "lineage=mx.expansion(on=[parent ids]), for many-to-one "
                    "lineage=mx.aggregation(on=[child ids]))")
        elif dep.lineage.kind == "expansion":
            missing = [c for c in on if c not in pids]
            if missing or set(on) != set(pids):
                raise DefinitionError(
                    f"{where}: expansion on={on} must name exactly the parent's id columns "
                    f"{pids} ({missing or 'some'} missing from the parent ids); use "
                    f"mx.expansion(on={pids})")
            if not set(on) < set(ids):
                raise DefinitionError(
                    f"{where}: expansion on={on} must be a strict subset of the child's "
                    f"id_columns {ids}; add the parent ids and a child key (e.g. 'chunk_id') to "
                    "id_columns")
        else:
            upstream = [*pids, *self.user_columns(dep.feature)]
            missing = [c for c in on if c not in upstream]
            if missing:
                raise DefinitionError(
                    f"{where}: aggregation keys {missing} are missing upstream (parent ids "
                    f"{pids}, declared columns {sorted(self.user_columns(dep.feature))}); group "
                    "on parent id columns or declare the key on a class-based parent")
            if set(on) != set(ids):
                raise DefinitionError(
                    f"{where}: aggregation on={on} must equal the child's id_columns {ids} "
                    "(one row per group); set id_columns to the group keys")
            if set(on) == set(pids):
                raise DefinitionError(
                    f"{where}: aggregation on the parent's whole id {pids} is one-to-one; drop "
                    "the lineage")
            floats = [c for c in on if self.user_columns(dep.feature).get(c) is float]
            if floats:
                raise DefinitionError(
                    f"{where}: aggregation keys {floats} are declared float by "
                    f"{dep.feature!r}; floats are refused as ids (they become the child's id "
                    "columns); declare them int, str, Decimal, date or datetime")

    def _check_dep_columns(self, spec: FeatureSpec, dep: FeatureDep) -> None:
        parent = self._specs[dep.feature]
        where = f"feature {spec.key!r}, dependency {dep.feature!r}"
        declared = self.user_columns(dep.feature)
        if dep.columns and dep.lineage.kind == "aggregation":
            raise DefinitionError(
                f"{where}: columns= cannot be carried through an aggregation (many values per "
                "group); drop columns= and read them from the parent table")
        for source, target in dep.carried():
            if source in parent.id_columns:
                raise DefinitionError(
                    f"{where}: column {source!r} is a parent id column; ids are not carried, "
                    "drop it from columns=")
            if target in spec.id_columns or target.lower().startswith(SYSTEM_PREFIX):
                raise DefinitionError(
                    f"{where}: carried column {source!r} -> {target!r} collides with an id or "
                    f"system column of {spec.key!r}; rename it, e.g. rename={{{source!r}: "
                    f"'{dep.feature.split('/')[-1]}_{source}'}}")
            if declared and source not in declared:
                raise DefinitionError(
                    f"{where}: column {source!r} is not declared by {dep.feature!r} "
                    f"({sorted(declared)}); fix columns=")
            self._check_carried_type(spec, dep, source, target)
        for text in dep.filters:
            pred = filters.parse_filter(text, f"{where}: filter")
            if declared:
                filters.check_columns(pred, text, [*parent.id_columns, *declared],
                                      f"{where}: filter", "filter on parent columns")
                filter_types.check_types(pred, text, filter_types.declared_predicate_kinds(
                    {c: declared_kind(a) for c, a in declared.items()}), f"{where}: filter",
                    DefinitionError)

    def _check_carried_type(self, spec: FeatureSpec, dep: FeatureDep, source: str,
                            target: str) -> None:
        """A carried column lands in the child's increment under ``target``: when both the
        parent and the child declare its type (class-based features), the parent's values
        must be writable into the child's column (``kind_fits``), else the increment could
        not be written back. Spec-based features declare no types; their columns are
        checked at the write (``engine.coltypes``)."""
        given = declared_kind(self.user_columns(dep.feature).get(source))
        stored = declared_kind(self.user_columns(spec.key).get(target))
        if given is None or stored is None or kind_fits(given, stored):
            return
        carried = repr(source) + (f" (carried as {target!r})" if target != source else "")
        raise DefinitionError(
            f"feature {spec.key!r}, dependency {dep.feature!r}: column {carried} is declared "
            f"{given} by {dep.feature!r} but {spec.key!r} declares {target!r} as {stored}; the "
            f"increment's rows could not be written back to {spec.key!r}. Declare {target!r} "
            f"as {given} on {spec.key!r}, or carry it under another name, e.g. "
            f"rename={{{source!r}: '{dep.feature.split('/')[-1]}_{source}'}}")

    def _check_grain(self, spec: FeatureSpec) -> None:
        if spec.deps and all(d.optional for d in spec.deps):
            raise DefinitionError(
                f"feature {spec.key!r}: every dependency is optional, so no sample would be "
                "expected; make at least one dependency required")
        expansions = {d.lineage.on for d in spec.deps if d.lineage.kind == "expansion"}
        if expansions and (len(expansions) > 1 or any(
                d.lineage.kind != "expansion" for d in spec.deps)):
            raise DefinitionError(
                f"feature {spec.key!r}: an expansion cannot be mixed with other lineages or "
                "other expansion keys; split the feature or expand from one parent grain")
        names_seen: dict[str, str] = {}
        for dep in spec.deps:
            for _, target in dep.carried():
                if target in names_seen:
                    raise DefinitionError(
                        f"feature {spec.key!r}: carried column {target!r} comes from both "
                        f"{names_seen[target]!r} and {dep.feature!r}; rename one of them")
                names_seen[target] = dep.feature

    def check_upstream_columns(self, key: str, columns_of: Callable[[str], Iterable[str]]
                               ) -> None:
        """Check filters and carried columns of ``key`` against the stored parent tables
        (``columns_of(feature)``: its stored columns; empty when never written)."""
        spec = self.spec(key)
        for dep in spec.deps:
            if not dep.filters and not dep.columns:
                continue
            stored = set(columns_of(dep.feature))
            if not stored:
                continue
            where = f"feature {key!r}, dependency {dep.feature!r}"
            for text in dep.filters:
                filters.check_columns(filters.parse_filter(text, f"{where}: filter"), text,
                                      stored - set(SYSTEM_COLUMNS), f"{where}: filter",
                                      "filter on columns the parent stores")
            missing = sorted(c for c, _ in dep.carried() if c not in stored)
            if missing:
                raise DefinitionError(f"{where}: columns {missing} are not stored by "
                                      f"{dep.feature!r}; fix columns=")

    def _toposort(self) -> tuple[str, ...]:
        indegree = {k: len(s.deps) for k, s in self._specs.items()}
        ready = [k for k, n in indegree.items() if n == 0]
        heapq.heapify(ready)
        order: list[str] = []
        while ready:
            key = heapq.heappop(ready)
            order.append(key)
            for child, spec in self._specs.items():
                if any(d.feature == key for d in spec.deps):
                    indegree[child] -= 1
                    if indegree[child] == 0:
                        heapq.heappush(ready, child)
        if len(order) != len(self._specs):
            cycle = sorted(k for k, n in indegree.items() if n > 0)
            raise DefinitionError(
                f"the features {cycle} depend on each other in a cycle; remove one of the deps")
        return tuple(order)

    def _resolve_field_parents(self, spec: FeatureSpec, field: str) -> tuple[FieldRef, ...]:
        fspec = next(f for f in spec.fields if f.key == field)
        dep_keys = {d.feature for d in spec.deps}
        refs: set[FieldRef] = set()
        if fspec.deps is None:
            for dep in spec.deps:
                upstream = {f.key for f in self._specs[dep.feature].fields}
                chosen = [field] if field in upstream else sorted(upstream)
                refs.update((dep.feature, f) for f in chosen)
            return tuple(sorted(refs))
        for fdep in fspec.deps:
            if fdep.feature not in dep_keys:
                raise DefinitionError(
                    f"field {spec.key}.{field} depends on feature {fdep.feature!r}, which is not "
                    f"among the deps of {spec.key!r} ({sorted(dep_keys)}); add it to deps")
            upstream = {f.key for f in self._specs[fdep.feature].fields}
            wanted = sorted(upstream) if fdep.fields is None else list(fdep.fields)
            missing = sorted(set(wanted) - upstream)
            if missing:
                raise DefinitionError(
                    f"field {spec.key}.{field} depends on {fdep.feature} fields {missing}, which "
                    f"do not exist; {fdep.feature!r} has fields {sorted(upstream)}")
            refs.update((fdep.feature, f) for f in wanted)
        return tuple(sorted(refs))


def _spec_of(item: FeatureSpec | type[BaseFeature]) -> FeatureSpec:
    if isinstance(item, FeatureSpec):
        return item
    if isinstance(item, type) and issubclass(item, BaseFeature) and hasattr(item, "spec"):
        return item.spec
    raise DefinitionError(
        f"FeatureGraph takes FeatureSpec objects or BaseFeature subclasses with spec=..., "
        f"got {item!r}")
