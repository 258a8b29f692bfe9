"""Test helpers: run the example pipeline on a store, and check stored hashes with the oracle."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

import metaxy_sql as mx
from metaxy_sql.model import hashing, names


def as_dict(value: Any) -> dict[str, str]:
    """A per-field map as Python (Arrow maps come back as lists of pairs)."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    return dict(value)


def samples(versions: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """Root samples from ``{sample_uid: {field: provenance}}``."""
    return [{"sample_uid": uid, "metaxy_provenance_by_field": dict(by_field)}
            for uid, by_field in sorted(versions.items())]


def step(store: mx.Store, root_samples: Any, *, write: bool = True) -> dict[str, dict[str, Any]]:
    """Resolve every feature in topological order; when ``write``, apply each increment
    (write new and stale, delete orphaned) before resolving the next feature.

    Returns per feature: counts plus ``changed`` (field -> number of stale samples naming it).
    """
    report: dict[str, dict[str, Any]] = {}
    for key in store.graph.keys:
        is_root = store.graph.is_root(key)
        inc = store.resolve_update(key, samples=root_samples if is_root else None)
        counts: dict[str, Any] = inc.counts()
        stale = inc.stale.to_arrow()
        changed: dict[str, int] = {}
        for fields in stale.column(names.CHANGED_FIELDS).to_pylist():
            for f in fields:
                changed[f] = changed.get(f, 0) + 1
        counts["changed"] = changed
        report[key] = counts
        if write:
            store.write(key, inc.new.to_arrow())
            store.write(key, stale)
            store.delete(key, inc.orphaned.to_arrow())
    return report


def by_id(table: pa.Table, ids: tuple[str, ...]) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {tuple(r[c] for c in ids): r for r in table.to_pylist()}


def check_oracle(store: mx.Store) -> int:
    """Every stored hash equals the oracle's, given upstream data versions. Returns rows checked."""
    g = store.graph
    checked = 0
    for key in g.keys:
        spec = g.spec(key)
        rows = by_id(store.read(key), spec.id_columns)
        parents = {d.feature: by_id(store.read(d.feature), spec.id_columns) for d in spec.deps}
        for ident, row in rows.items():
            pbf = as_dict(row[names.PROVENANCE_BY_FIELD])
            dvbf = as_dict(row[names.DATA_VERSION_BY_FIELD])
            if not g.is_root(key) and all(ident in p for p in parents.values()):
                for f in g.field_keys(key):
                    upstream = {
                        (pf, pff): as_dict(parents[pf][ident][names.DATA_VERSION_BY_FIELD])
                        .get(pff) for pf, pff in g.field_parents(key, f)}
                    want = hashing.field_provenance(f, g.code_version(key, f), upstream,
                                                    store.hash_algorithm)
                    assert pbf[f] == want, (key, ident, f)
            assert row[names.PROVENANCE] == hashing.sample_digest(pbf, store.hash_algorithm)
            assert row[names.DATA_VERSION] == hashing.sample_digest(dvbf, store.hash_algorithm)
            assert row[names.FEATURE_VERSION] == g.feature_version(key)
            checked += 1
    return checked
