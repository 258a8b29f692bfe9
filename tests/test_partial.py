"""Partial resolution: for random subsets, ``resolve_update(where=..., ids=...)`` equals the
full resolve filtered to that subset, on every engine (identity and expansion lineage)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metaxy_sql as mx
from metaxy_sql.examples import lineage, seed
from metaxy_sql.model import names
from tests.conftest import examples
from tests.pipeline import samples, step

UIDS = [f"v{i}" for i in range(6)]
BASE = {uid: {"audio": f"a{uid}", "frames": f"f{uid}"} for uid in UIDS}


def rows(inc: mx.Increment, grain: list[str]) -> list[dict[str, Any]]:
    table: pa.Table = inc.to_arrow()
    table = table.drop_columns([names.CHANGED_FIELDS]).append_column(
        names.CHANGED_FIELDS, pa.array([sorted(x) for x in
                                        table.column(names.CHANGED_FIELDS).to_pylist()]))
    return sorted(table.to_pylist(), key=lambda r: tuple(str(r[c]) for c in grain))


def changed_state(store: mx.Store) -> dict[str, dict[str, str]]:
    """After a full write of BASE: v1 frames changed, v2 removed, v9 added (root written)."""
    step(store, samples(BASE))
    now = {**BASE, "v1": {"audio": "av1", "frames": "f1*"}, "v9": {"audio": "a9", "frames": "f9"}}
    del now["v2"]
    inc = store.resolve_update("video/full", samples=samples(now))
    store.write("video/full", inc.new.to_arrow())
    store.write("video/full", inc.stale.to_arrow())
    store.delete("video/full", inc.orphaned.to_arrow())
    return now


subsets = st.lists(st.sampled_from([*UIDS, "v9", "nope"]), unique=True, max_size=5)


@settings(max_examples=examples(8), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subsets, st.booleans())
def test_partial_equals_filtered_full(make_store: Any, subset: list[str], by_where: bool) -> None:
    store = make_store(seed.graph)
    for key in seed.graph.keys:
        store.drop(key)
    changed_state(store)
    for key in ("video/face_crop", "transcript/whisper"):
        full = [r for r in rows(store.resolve_update(key), ["sample_uid"])
                if r["sample_uid"] in subset]
        if by_where:
            quoted = ", ".join("'" + s + "'" for s in subset) or "'-'"
            part = store.resolve_update(key, where=f"sample_uid IN ({quoted})")
        else:
            part = store.resolve_update(key, ids=subset)
        assert rows(part, ["sample_uid"]) == full


def test_where_prefix_and_ids_combine(make_store: Any) -> None:
    store = make_store(seed.graph)
    changed_state(store)
    inc = store.resolve_update("video/face_crop", where="sample_uid LIKE 'v%'", ids=["v1", "v2"])
    assert inc.counts() == {"new": 0, "stale": 1, "orphaned": 1}
    assert "-- subset:" in inc.sql
    root = store.resolve_update("video/full", samples=samples(BASE), ids=["v2", "v3"])
    assert root.counts() == {"new": 1, "stale": 0, "orphaned": 0}


def test_partial_expansion_at_parent_grain(make_store: Any) -> None:
    store = make_store(lineage.graph)
    videos = {f"v{i}": {"audio": "a", "frames": f"f{i}"} for i in range(4)}
    inc = store.resolve_update("video/full", samples=samples(videos))
    store.write("video/full", inc.new.to_arrow())
    full = store.resolve_update("video/chunk").to_arrow().to_pylist()
    part = store.resolve_update("video/chunk", ids=["v1", "v3"]).to_arrow().to_pylist()
    assert sorted(r["sample_uid"] for r in part) == ["v1", "v3"]
    assert sorted(r["sample_uid"] for r in full) == ["v0", "v1", "v2", "v3"]


def test_partial_rejects_non_id_columns(make_store: Any) -> None:
    store = make_store(seed.graph)
    step(store, samples(BASE))
    with pytest.raises(mx.DefinitionError, match=r"where=.*unknown columns \['path'\]"):
        store.resolve_update("video/face_crop", where="path = 'x'")
    with pytest.raises(mx.DefinitionError, match=r"where=.*(IN takes literals|not allowed)"):
        store.resolve_update("video/face_crop", where="sample_uid IN (SELECT 1)")
