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

from dataclasses import dataclass

from metaxy_sql import names
from metaxy_sql.graph import FeatureGraph, FieldRef


@dataclass(frozen=True)
class UpstreamPlan:
    """One upstream relation: a parent feature's latest state, or a root's sample set."""

    feature: str
    relation: str  # table of the parent feature, or the staged sample set of a root
    cte: str
    fields: tuple[str, ...]  # sorted upstream fields that some field of the feature reads
    is_samples: bool = False


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

    @property
    def field_keys(self) -> tuple[str, ...]:
        return tuple(f.key for f in self.fields)


def plan_feature(graph: FeatureGraph, key: str) -> FeaturePlan:
    """Plan the resolution of feature ``key``."""
    spec = graph.spec(key)
    fields = tuple(
        FieldPlan(f, graph.code_version(key, f), graph.field_parents(key, f))
        for f in graph.field_keys(key)
    )
    if graph.is_root(key):
        upstreams: tuple[UpstreamPlan, ...] = (
            UpstreamPlan(key, names.samples(key), names.upstream(key), graph.field_keys(key),
                         is_samples=True),
        )
    else:
        used: dict[str, set[str]] = {d.feature: set() for d in spec.deps}
        for f in fields:
            for parent, parent_field in f.parents:
                used[parent].add(parent_field)
        upstreams = tuple(
            UpstreamPlan(dep, names.table(dep), names.upstream(dep), tuple(sorted(used[dep])))
            for dep in sorted(used)
        )
    return FeaturePlan(
        feature=key,
        table=names.table(key),
        id_columns=tuple(spec.id_columns),
        fields=fields,
        upstreams=upstreams,
        feature_version=graph.feature_version(key),
        is_root=graph.is_root(key),
    )
