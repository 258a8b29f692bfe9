"""Graph snapshots: the definitions a store's data was written with, recorded by ``push``.

System table ``metaxy_system__graph_snapshots``, append-only, one row per push:

==================  =========  ===========================================================
column              type       meaning
==================  =========  ===========================================================
snapshot_version    text       sha256 (32 hex) of ``definitions``: equal graphs, equal value
pushed_at           timestamp  UTC push time; the newest row is the current snapshot
tags                text       JSON object of user tags (e.g. ``{"git": "abc123"}``)
definitions         text       JSON: per feature its spec, feature version and per field the
                               code version, field version and upstream fields
metaxy_sql_version  text       package version that pushed
==================  =========  ===========================================================
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from metaxy_sql.engine import system
from metaxy_sql.errors import ConfigError, MetaxySqlError
from metaxy_sql.model import names
from metaxy_sql.model.definitions import FeatureSpec
from metaxy_sql.model.graph import FeatureGraph

if TYPE_CHECKING:
    from metaxy_sql.engine.store import Store

COLUMNS = (
    ("snapshot_version", system.TEXT), ("pushed_at", system.TIMESTAMP), ("tags", system.TEXT),
    ("definitions", system.TEXT), ("metaxy_sql_version", system.TEXT))


@dataclass(frozen=True)
class Snapshot:
    """One pushed graph. ``pushed`` is False when ``push_graph`` found it already current."""

    version: str
    pushed_at: dt.datetime
    tags: dict[str, str]
    definitions: dict[str, Any] = field(repr=False)
    pushed: bool = True

    @property
    def features(self) -> dict[str, Any]:
        features: dict[str, Any] = self.definitions["features"]
        return features

    def graph(self) -> FeatureGraph:
        """The snapshot's definitions as a graph (specs only: no feature classes)."""
        try:
            return FeatureGraph([FeatureSpec.model_validate(f["spec"])
                                 for f in self.features.values()])
        except (MetaxySqlError, ValueError) as e:
            raise ConfigError(f"graph snapshot {self.version} cannot be read back with this "
                              f"version of metaxy-sql: {e}") from None


def definitions(graph: FeatureGraph) -> dict[str, Any]:
    """The JSON-able definitions of ``graph`` that a snapshot records."""
    return {"features": {key: {
        "feature_version": graph.feature_version(key),
        "spec": graph.spec(key).model_dump(mode="json"),
        "fields": {f: {"code_version": graph.code_version(key, f),
                       "field_version": graph.field_version(key, f),
                       "parents": [list(p) for p in graph.field_parents(key, f)]}
                   for f in graph.field_keys(key)},
    } for key in graph.keys}}


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def snapshot_version(graph: FeatureGraph) -> str:
    return hashlib.sha256(canonical(definitions(graph)).encode()).hexdigest()[:32]


def push_graph(store: Store, tags: Mapping[str, str] | None = None) -> Snapshot:
    """Record ``store.graph`` in ``metaxy_system__graph_snapshots`` unless the newest snapshot
    already has the same definitions and tags (then return that one with ``pushed=False``)."""
    tags = {str(k): str(v) for k, v in (tags or {}).items()}
    current = snapshot_version(store.graph)
    last = latest(store)
    if last is not None and last.version == current and last.tags == tags:
        return Snapshot(last.version, last.pushed_at, last.tags, last.definitions, pushed=False)
    system.ensure(store.executor, names.GRAPH_SNAPSHOTS, COLUMNS, ["pushed_at"])
    now = system.now_iso()
    defs = definitions(store.graph)
    system.append(store.executor, names.GRAPH_SNAPSHOTS, COLUMNS, {
        "snapshot_version": current, "pushed_at": now, "tags": canonical(tags),
        "definitions": canonical(defs), "metaxy_sql_version": _package_version()})
    return Snapshot(current, dt.datetime.fromisoformat(now), tags, defs)


def graph_history(store: Store) -> list[Snapshot]:
    """Every pushed snapshot (``metaxy_system__graph_snapshots``), newest first."""
    rows = system.read_all(store.executor, names.GRAPH_SNAPSHOTS, "pushed_at").to_pylist()
    return [_snapshot(r) for r in reversed(rows)]


def latest(store: Store) -> Snapshot | None:
    """The newest pushed snapshot, or None when nothing was pushed yet."""
    found = graph_history(store)
    return found[0] if found else None


def _snapshot(row: dict[str, Any]) -> Snapshot:
    pushed_at = row["pushed_at"]
    if pushed_at.tzinfo is not None:  # ClickHouse returns DateTime64('UTC') tz-aware
        pushed_at = pushed_at.astimezone(dt.UTC).replace(tzinfo=None)
    return Snapshot(str(row["snapshot_version"]), pushed_at, json.loads(row["tags"]),
                    json.loads(row["definitions"]))


def _package_version() -> str:
    try:
        return version("metaxy-sql")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"
