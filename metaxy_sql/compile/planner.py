"""Planner: for one feature, what to join and which upstream fields feed which field. No SQL.

>>> import metaxy_sql as mx
>>> from metaxy_sql.examples.seed import graph
>>> plan = plan_feature(graph, "transcript/whisper")
>>> [(u.feature, u.fields) for u in plan.upstreams]
[('video/full', ('audio',))]
>>> plan.fields[0].parents
(('video/full', 'audio'),)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from metaxy_sql.model import names
from metaxy_sql.model.definitions import FeatureDep
from metaxy_sql.model.graph import FeatureGraph, FieldRef


@dataclass(frozen=True)
class UpstreamPlan:
    """One upstream relation: a parent feature's latest state, or a root's sample set.

    ``keys`` are the columns the relation is joined on (the feature's grain);
    ``member_ids`` the parent's id columns (its latest row per id, and the member order of an
    aggregation).
    """

    feature: str
    relation: str  # table of the parent feature, or the staged sample set of a root
    cte: str
    fields: tuple[str, ...]  # sorted upstream fields that some field of the feature reads
    is_samples: bool = False
    lineage: str = "identity"  # identity | expansion | aggregation
    keys: tuple[str, ...] = ()
    member_ids: tuple[str, ...] = ()
    optional: bool = False
    filters: tuple[str, ...] = ()
    carried: tuple[tuple[str, str], ...] = ()  # (parent column, name in the increment)
    key_columns: tuple[str, ...] = ()  # aggregation keys read from parent user columns


@dataclass(frozen=True)
class FieldPlan:
    """How one field's expected provenance is computed."""

    key: str
    code_version: str
    parents: tuple[FieldRef, ...]


@dataclass(frozen=True)
class FeaturePlan:
    """Everything the SQL builder needs to resolve one feature."""

    feature: str
    table: str
    id_columns: tuple[str, ...]
    fields: tuple[FieldPlan, ...]  # sorted by key
    upstreams: tuple[UpstreamPlan, ...]  # sorted by feature key
    feature_version: str
    is_root: bool
    #: Columns of one increment row for new and stale samples: the id columns, or for an
    #: expansion the parent's ids (children are (re)created per parent).
    grain: tuple[str, ...] = ()

    @property
    def field_keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields)

    @property
    def is_expansion(self) -> bool:
        return bool(self.grain) and self.grain != self.id_columns

    @property
    def carried(self) -> tuple[str, ...]:
        """Upstream columns carried into new and stale rows (their names in the increment)."""
        return tuple(target for u in self.upstreams for _, target in u.carried)


def increment_grain(graph: FeatureGraph, key: str) -> tuple[str, ...]:
    """Columns identifying one new/stale increment row of ``key`` (parent ids for expansions)."""
    spec = graph.spec(key)
    for dep in spec.deps:
        if dep.lineage.kind == "expansion":
            return tuple(c for c in spec.id_columns if c in dep.lineage.on)
    return tuple(spec.id_columns)


def plan_feature(graph: FeatureGraph, key: str,
                 sample_columns: tuple[str, ...] = ()) -> FeaturePlan:
    """Plan the resolution of feature ``key``.

    ``sample_columns``: root features: the user columns of the staged sample set, carried
    into the increment's new and stale rows (so they write back as they are).
    """
    spec = graph.spec(key)
    fields = tuple(
        FieldPlan(f, graph.code_version(key, f), graph.field_parents(key, f))
        for f in graph.field_keys(key)
    )
    grain = increment_grain(graph, key)
    if graph.is_root(key):
        upstreams: tuple[UpstreamPlan, ...] = (
            UpstreamPlan(key, names.samples(key), names.upstream(key), graph.field_keys(key),
                         is_samples=True, keys=grain, member_ids=grain,
                         carried=tuple((c, c) for c in sample_columns)),
        )
    else:
        used: dict[str, set[str]] = {d.feature: set() for d in spec.deps}
        for f in fields:
            for parent, parent_field in f.parents:
                used[parent].add(parent_field)
        upstreams = tuple(
            _upstream(graph, dep, grain, tuple(sorted(used[dep.feature])))
            for dep in sorted(spec.deps, key=lambda d: d.feature)
        )
    return FeaturePlan(
        feature=key,
        table=names.table(key),
        id_columns=tuple(spec.id_columns),
        fields=fields,
        upstreams=upstreams,
        feature_version=graph.feature_version(key),
        is_root=graph.is_root(key),
        grain=grain,
    )


def _upstream(graph: FeatureGraph, dep: FeatureDep, grain: tuple[str, ...],
              fields: tuple[str, ...]) -> UpstreamPlan:
    parent_ids = tuple(graph.spec(dep.feature).id_columns)
    key_columns = tuple(c for c in dep.lineage.on if c not in parent_ids)
    return UpstreamPlan(
        dep.feature, names.table(dep.feature), names.upstream(dep.feature), fields,
        lineage=dep.lineage.kind, keys=grain, member_ids=parent_ids, optional=dep.optional,
        filters=dep.filters, carried=dep.carried(), key_columns=key_columns)


@dataclass(frozen=True)
class Catalog:
    """What the store holds now, for the tables one resolve reads.

    ``tables``: the tables read (see :func:`tables_read`) that exist. ``columns``: the stored
    columns of the existing tables listed by :func:`tables_needing_columns`. ``id_types``:
    column -> engine type of the existing tables listed by :func:`tables_needing_id_types`.
    """

    tables: frozenset[str]
    columns: Mapping[str, frozenset[str]] = field(default_factory=dict)
    id_types: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    #: Root features: the user columns of the sample set staged by ``resolve_update``.
    sample_columns: tuple[str, ...] = ()

    def missing(self, graph: FeatureGraph, key: str) -> frozenset[str]:
        """Tables the resolve of ``key`` reads that were never written (read as empty)."""
        return frozenset(tables_read(graph, key)) - self.tables


def tables_read(graph: FeatureGraph, key: str) -> tuple[str, ...]:
    """The feature tables the resolve of ``key`` reads: its own and its parents' (sorted)."""
    return tuple(sorted({names.table(key)} | {names.table(d.feature)
                                              for d in graph.spec(key).deps}))


def tables_needing_columns(graph: FeatureGraph, key: str, derives_field_columns: bool
                           ) -> tuple[str, ...]:
    """Tables whose stored columns the resolve of ``key`` depends on: every table read where
    the dialect derives per-field columns, else the parents with filters or carried columns."""
    if derives_field_columns:
        return tables_read(graph, key)
    return tuple(sorted({names.table(d.feature) for d in graph.spec(key).deps
                         if d.filters or d.columns}))


def tables_needing_id_types(graph: FeatureGraph, key: str) -> tuple[str, ...]:
    """Tables whose id column types the resolve of ``key`` depends on: aggregated parents,
    whose member ids enter the group hash as canonical text (``hashing.id_text``)."""
    return tuple(sorted({names.table(d.feature) for d in graph.spec(key).deps
                         if d.lineage.kind == "aggregation"}))
