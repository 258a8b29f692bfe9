"""``plan``: what a definitions change will cost, before anything runs.

Compares the store's graph with the newest pushed snapshot. Per feature and field it lists
the changes (code version, upstream fields, added or removed fields and features) and counts,
in the engine:

- **stale now**: samples of a changed feature that are stale under the new definitions and
  name a changed field (the resolve statement of the new definitions, counted);
- **will follow**: live samples of downstream features whose provenance changes once those
  stale samples are rewritten, traced field by field (assuming a rewrite changes the data
  version, i.e. no early cutoff); these are what resolve shows stale after the upstream
  increments are applied.

Samples already stale for other reasons are included in *stale now* when they name a changed
field.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from metaxy_sql.compile import builder
from metaxy_sql.compile.dialects.base import lit
from metaxy_sql.compile.render import compile_resolve
from metaxy_sql.errors import ConfigError, MetaxySqlError
from metaxy_sql.model import names
from metaxy_sql.warehouse.snapshots import Snapshot, latest, snapshot_version

if TYPE_CHECKING:
    from metaxy_sql.engine.store import Store

FieldRef = tuple[str, str]


@dataclass(frozen=True)
class FieldChange:
    """One field's definition change: ``kind`` is code_version, dependencies, added, removed."""

    field: str
    kind: str
    old: str | None = None
    new: str | None = None

    def describe(self) -> str:
        if self.kind in ("added", "removed"):
            return f"{self.field}: field {self.kind}"
        return f"{self.field}: {self.kind} {self.old} -> {self.new}"


@dataclass
class FeatureImpact:
    """``status``: added, removed, changed, downstream (only upstream versions changed) or
    unaffected."""

    feature: str
    status: str
    changes: list[FieldChange] = field(default_factory=list)
    stale: int = 0
    stale_by_field: dict[str, int] = field(default_factory=dict)
    new: int = 0
    follow: int = 0
    follow_via: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Plan:
    """The impact of the current definitions against ``snapshot``."""

    snapshot_version: str
    snapshot_pushed_at: str
    current_version: str
    features: list[FeatureImpact]

    @property
    def has_changes(self) -> bool:
        return any(f.status in ("added", "removed", "changed") for f in self.features)

    def impact(self, feature: str) -> FeatureImpact:
        return next(f for f in self.features if f.feature == feature)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "has_changes": self.has_changes}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, allow_nan=False)  # counts: strict JSON

    def to_text(self) -> str:
        lines = [f"plan: definitions {self.current_version} vs snapshot {self.snapshot_version} "
                 f"(pushed {self.snapshot_pushed_at})"]
        if not self.has_changes:
            lines.append("no definition changes since the snapshot")
        for f in self.features:
            lines.append(f"{f.feature:<28} {f.status:<11} {_headline(f)}".rstrip())
            lines += [f"    {c.describe()}" + (f" ({f.stale_by_field[c.field]} stale)"
                                                 if c.field in f.stale_by_field else "")
                      for c in f.changes]
            lines += [f"    follows: {via}" for via in f.follow_via]
            if f.note:
                lines.append(f"    note: {f.note}")
        return "\n".join(lines)


def _headline(f: FeatureImpact) -> str:
    parts = []
    if f.status == "added":
        parts.append(f"{f.new} samples new")
    if f.status == "changed":
        parts.append(f"{f.stale} samples stale now")
    if f.follow:
        parts.append(f"{f.follow} samples will follow once upstream is rewritten")
    return ", ".join(parts)


def plan(store: Store) -> Plan:
    """Compare ``store.graph`` with the newest pushed snapshot; counts come from the engine."""
    snap = latest(store)
    if snap is None:
        raise ConfigError(
            f"no graph snapshot in {store.url} yet: run `metaxy-sql push` (mx.push_graph(store)) "
            "with the definitions the stored data was written with, then plan changes "
            "against it")
    return _Planner(store, snap).run()


class _Planner:
    def __init__(self, store: Store, snap: Snapshot) -> None:
        self.store, self.snap, self.graph = store, snap, store.graph
        self.old = snap.features
        self.tables = store.executor.tables()
        #: (feature, field) -> queries of the ids whose provenance of that field changes.
        self.affected: dict[FieldRef, list[exp.Query]] = {}

    def run(self) -> Plan:
        impacts = [self._feature(key) for key in self.graph.keys]
        impacts += [self._removed(key) for key in sorted(set(self.old) - set(self.graph.keys))]
        return Plan(self.snap.version, self.snap.pushed_at.isoformat(sep=" "),
                    snapshot_version(self.graph), impacts)

    def _feature(self, key: str) -> FeatureImpact:
        if key not in self.old:
            return self._added(key)
        changes = _field_changes(self.old[key]["fields"], self.graph, key)
        direct = {c.field for c in changes if c.kind != "removed"}
        impact = FeatureImpact(key, "changed" if changes else "unaffected", changes)
        if self.graph.is_root(key):
            if changes:
                impact.note = ("root feature: its provenance comes from its samples, so no "
                               "stored sample changes until they do")
            return impact
        if direct and names.table(key) in self.tables:
            self._count_stale(key, sorted(direct), impact)
        self._follow(key, direct, impact)
        if impact.status == "unaffected" and any(
                self.graph.field_version(key, f) != self.old[key]["fields"].get(f, {}).get(
                    "field_version") for f in self.graph.field_keys(key)):
            impact.status = "downstream"
        return impact

    def _count_stale(self, key: str, direct: Sequence[str], impact: FeatureImpact) -> None:
        d = self.store.executor.dialect
        statement = self._statement(key)
        stale = exp.EQ(this=builder.col(names.STATUS), expression=lit(names.STATUS_STALE))

        def names_field(f: str) -> exp.Expr:
            return exp.ArrayContains(this=builder.col(names.CHANGED_FIELDS), expression=lit(f))

        conditions = [names_field(f) for f in direct]
        any_direct = exp.or_(*conditions) if len(conditions) > 1 else conditions[0]
        sums = [_count_if(d, exp.and_(stale.copy(), c.copy())) for c in
                [*conditions, any_direct]]
        query = exp.select(*[exp.alias_(s, f"n{i}", quoted=True) for i, s in enumerate(sums)]
                           ).from_(statement.subquery(names.RESOLVED))
        row = self.store.executor.fetch(d.render(query)).to_pylist()[0]
        impact.stale_by_field = {f: int(row[f"n{i}"] or 0) for i, f in enumerate(direct)}
        impact.stale = int(row[f"n{len(direct)}"] or 0)
        for f in direct:
            ids = exp.select(*[builder.col(c) for c in self.graph.spec(key).id_columns]).from_(
                statement.subquery(names.RESOLVED)).where(
                exp.and_(stale.copy(), names_field(f)))
            self.affected.setdefault((key, f), []).append(ids)

    def _follow(self, key: str, direct: set[str], impact: FeatureImpact) -> None:
        """Trace upstream changes into ``key``'s live samples, field by field."""
        if names.table(key) not in self.tables:
            return
        ids = self.graph.spec(key).id_columns
        derived: list[exp.Query] = []
        for f in self.graph.field_keys(key):
            parents = self.graph.field_parents(key, f)
            sources = [q for p in parents for q in self.affected.get(p, [])]
            if not sources:
                continue
            impact.follow_via += [f"{f} <- {p}.{pf}" for p, pf in self.graph.field_parents(key, f)
                                  if (p, pf) in self.affected]
            live = builder.latest_rows(names.table(key), ids, [])
            src = _union(sources)
            query = exp.select(*[builder.col(c, "live") for c in ids]).distinct().from_(
                live.subquery("live")).join(src.subquery("src"),
                                            on=builder.ids_equal("live", "src", ids),
                                            join_type="inner")
            self.affected.setdefault((key, f), []).append(query)
            derived.append(query)
        if derived:
            counted = exp.select(exp.alias_(exp.Count(this=exp.Star()), "n", quoted=True)).from_(
                _union(derived).subquery("followed"))
            d = self.store.executor.dialect
            impact.follow = int(self.store.executor.fetch(d.render(counted)).column(0)[0].as_py())

    def _statement(self, key: str) -> exp.Select:
        return compile_resolve(self.graph, key, self.store.executor.dialect,
                               self.store.hash_algorithm, self.store.catalog(key, self.tables))[1]

    def _added(self, key: str) -> FeatureImpact:
        impact = FeatureImpact(key, "added", [FieldChange(f, "added")
                                              for f in self.graph.field_keys(key)])
        if self.graph.is_root(key):
            impact.note = "root feature: its samples come from resolve_update(samples=...)"
            return impact
        counts = self.store.resolve_update(key).counts()
        impact.new = counts[names.STATUS_NEW]
        return impact

    def _removed(self, key: str) -> FeatureImpact:
        impact = FeatureImpact(key, "removed", [FieldChange(f, "removed")
                                                for f in sorted(self.old[key]["fields"])])
        try:
            stored = self.store.with_graph(self.snap.graph()).count(key)
        except MetaxySqlError:
            stored = 0
        impact.note = f"{stored} stored samples; the table is kept (drop it with store.drop)"
        return impact


def _field_changes(old: dict[str, Any], graph: Any, key: str) -> list[FieldChange]:
    changes: list[FieldChange] = []
    for f in graph.field_keys(key):
        before = old.get(f)
        if before is None:
            changes.append(FieldChange(f, "added"))
            continue
        if before["code_version"] != graph.code_version(key, f):
            changes.append(FieldChange(f, "code_version", before["code_version"],
                                       graph.code_version(key, f)))
        parents = [list(p) for p in graph.field_parents(key, f)]
        if before["parents"] != parents:
            changes.append(FieldChange(f, "dependencies", _refs(before["parents"]),
                                       _refs(parents)))
    changes += [FieldChange(f, "removed") for f in sorted(set(old) - set(graph.field_keys(key)))]
    return changes


def _refs(parents: list[list[str]]) -> str:
    return "[" + ", ".join(f"{p}.{pf}" for p, pf in parents) + "]"


def _count_if(d: Any, condition: exp.Expr) -> exp.Expr:
    # SUM over no rows is NULL on Postgres and DuckDB: COALESCE keeps the count an integer.
    return exp.Coalesce(this=exp.Sum(this=exp.Case(
        ifs=[exp.If(this=condition, true=exp.Literal.number(1))],
        default=exp.Literal.number(0))), expressions=[exp.Literal.number(0)])


def _union(queries: Sequence[exp.Query]) -> exp.Query:
    result: exp.Query = queries[0]
    for q in queries[1:]:
        result = exp.union(result, q, distinct=True)
    return result
