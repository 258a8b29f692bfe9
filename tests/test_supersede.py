"""Superseding on write, on every engine: a write is seen whole or not at all (a failure
between its statements leaves the previous state, as a rollback would), every id keeps
exactly one live row, and ties in write time still have one newest row."""

from __future__ import annotations

from typing import Any

import pytest

import metaxy_sql as mx
from metaxy_sql.examples import seed
from tests.pipeline import as_dict, samples, step


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


def live(store: mx.Store, feature: str = "video/full") -> dict[str, list[dict[str, str]]]:
    rows: dict[str, list[dict[str, str]]] = {}
    for r in store.read(feature).to_pylist():
        rows.setdefault(r["sample_uid"], []).append(as_dict(r["metaxy_provenance_by_field"]))
    return rows


OLD = {"v1": {"audio": "a1", "frames": "f1"}, "v2": {"audio": "a2", "frames": "f2"}}
NEW = {"v1": {"audio": "a1", "frames": "F1"}, "v2": {"audio": "a2", "frames": "F2"}}


def test_a_write_failing_before_it_supersedes_leaves_the_previous_state(
        make_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(seed.graph)
    step(store, samples(OLD))
    fail_supersede_once(store, monkeypatch)
    with pytest.raises(SupersedeFailed):
        store.write("video/full", samples(NEW))
    assert live(store) == {uid: [by_field] for uid, by_field in OLD.items()}
    assert store.count("video/full") == 2
    # Downstream sees one consistent upstream state: nothing to do yet.
    for key in ("video/face_crop", "transcript/whisper", "video/talking_head"):
        assert store.resolve_update(key).counts() == {"new": 0, "stale": 0, "orphaned": 0}

    store.write("video/full", samples(NEW))  # the retry
    assert live(store) == {uid: [by_field] for uid, by_field in NEW.items()}
    assert store.read("video/full", history=True).num_rows >= 4  # every version is kept
    assert store.resolve_update("video/face_crop").counts() == {
        "new": 0, "stale": 2, "orphaned": 0}
    assert store.resolve_update("transcript/whisper").counts() == {
        "new": 0, "stale": 0, "orphaned": 0}


def test_a_delete_failing_before_it_supersedes_hides_nothing_until_retried(
        make_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(seed.graph)
    store.write("video/full", samples(OLD))
    fail_supersede_once(store, monkeypatch)
    with pytest.raises(SupersedeFailed):
        store.delete("video/full", [{"sample_uid": "v1"}])
    assert live(store) == {uid: [by_field] for uid, by_field in OLD.items()}
    store.delete("video/full", [{"sample_uid": "v1"}])
    assert live(store) == {"v2": [OLD["v2"]]}
    assert store.count("video/full") == 1


def test_writes_with_the_same_write_time_still_leave_one_live_row(
        make_store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = make_store(seed.graph)
    # Two writers in the same microsecond (one store's clock never repeats; two stores' can).
    monkeypatch.setattr(store, "_now", lambda: "2026-01-01 00:00:00.000000")
    store.write("video/full", samples(OLD))
    store.write("video/full", samples(OLD))  # identical rows: only insertion order differs
    assert live(store) == {uid: [by_field] for uid, by_field in OLD.items()}
    store.write("video/full", samples(NEW))
    rows = live(store)
    assert sorted(rows) == ["v1", "v2"] and all(len(v) == 1 for v in rows.values())
    assert store.count("video/full") == 2
    assert store.read("video/full", history=True).num_rows == 6
