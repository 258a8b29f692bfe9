"""Superseding on write: a failure between the append and the supersede step loses nothing,
and the next write of the same ids leaves one live row per id (every engine)."""

from __future__ import annotations

from typing import Any

import pytest

import metaxy_sql as mx
from metaxy_sql.examples import seed
from tests.pipeline import as_dict, samples


class SupersedeFailed(Exception):
    pass


def fail_supersede_once(store: mx.Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """The next UPDATE ... metaxy_superseded statement raises (a crash at that point)."""
    execute = store.executor.execute
    armed = [True]

    def flaky(sql: Any, *args: Any, **kwargs: Any) -> Any:
        text = sql if isinstance(sql, str) else ""  # psycopg Composed: not a supersede
        if armed[0] and text.lstrip().upper().startswith("UPDATE") and "metaxy_superseded" in text:
            armed[0] = False
            raise SupersedeFailed(sql)
        return execute(sql, *args, **kwargs)

    monkeypatch.setattr(store.executor, "execute", flaky)


def live(store: mx.Store) -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    for r in store.read("video/full").to_pylist():
        rows.setdefault(r["sample_uid"], []).append(as_dict(r["metaxy_provenance_by_field"]))
    return rows


def test_failed_supersede_loses_nothing_and_the_next_write_converges(
        make_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(seed.graph)
    old = {"v1": {"audio": "a1", "frames": "f1"}, "v2": {"audio": "a2", "frames": "f2"}}
    new = {"v1": {"audio": "a1", "frames": "F1"}, "v2": {"audio": "a2", "frames": "F2"}}
    store.write("video/full", samples(old))

    fail_supersede_once(store, monkeypatch)
    with pytest.raises(SupersedeFailed):
        store.write("video/full", samples(new))
    after_crash = live(store)
    assert set(after_crash) == {"v1", "v2"}  # no sample lost its latest row
    for uid, versions in after_crash.items():
        # Transactional engines roll the write back; ClickHouse keeps the appended rows
        # beside the old ones until the next write of those ids.
        assert old[uid] in versions or new[uid] in versions
        assert all(v in (old[uid], new[uid]) for v in versions)

    store.write("video/full", samples(new))
    assert live(store) == {uid: [by_field] for uid, by_field in new.items()}
    assert store.count("video/full") == 2
    history = store.read("video/full", history=True)
    assert history.num_rows >= 4  # every version is kept
    assert store.resolve_update("video/full", samples=samples(new)).counts() == {
        "new": 0, "stale": 0, "orphaned": 0}


def test_failed_tombstone_supersede_still_hides_the_sample_after_a_retry(
        make_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(seed.graph)
    store.write("video/full", samples({"v1": {"audio": "a1", "frames": "f1"},
                                       "v2": {"audio": "a2", "frames": "f2"}}))
    fail_supersede_once(store, monkeypatch)
    with pytest.raises(SupersedeFailed):
        store.delete("video/full", [{"sample_uid": "v1"}])
    assert "v2" in live(store)
    store.delete("video/full", [{"sample_uid": "v1"}])
    assert set(live(store)) == {"v2"}
    assert store.count("video/full") == 1
