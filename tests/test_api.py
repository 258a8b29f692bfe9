"""The Python API contract, as users write it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import metaxy_sql as mx
from metaxy_sql.examples import seed
from metaxy_sql.model import hashing
from tests.pipeline import as_dict, samples, step


def test_issue_contract_verbatim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    video = mx.FeatureSpec(key="video/full", id_columns=["sample_uid"],
        fields=[mx.FieldSpec(key="audio", code_version="1"), mx.FieldSpec(key="frames", code_version="1")])  # noqa: E501
    transcript = mx.FeatureSpec(key="transcript/whisper", id_columns=["sample_uid"], deps=["video/full"],  # noqa: E501
        fields=[mx.FieldSpec(key="text", code_version="1", deps=[mx.FieldDep(feature="video/full", fields=["audio"])])])  # noqa: E501
    crop = mx.FeatureSpec(key="video/face_crop", id_columns=["sample_uid"], deps=["video/full"],
        fields=[mx.FieldSpec(key="frames", code_version="1")])
    graph = mx.FeatureGraph([video, transcript, crop])

    with mx.connect("duckdb:///meta.db", graph=graph) as store:
        inc = store.resolve_update("video/full", samples=[
            {"sample_uid": "v1", "metaxy_provenance_by_field": {"audio": "a1", "frames": "f1"}}])
        store.write("video/full", inc.new.to_arrow())
        inc = store.resolve_update("transcript/whisper")
        assert inc.counts() == {"new": 1, "stale": 0, "orphaned": 0}
        batch = inc.new.to_arrow()
        assert batch.column_names == ["sample_uid", "metaxy_provenance_by_field",
                                      "metaxy_provenance"]
        store.write("transcript/whisper", batch)
        assert inc.sql.startswith("-- metaxy-sql resolve: transcript/whisper")
        store.delete("video/full", [{"sample_uid": "v1"}])
        assert store.read("video/full").num_rows == 0
        assert store.resolve_update("transcript/whisper").counts()["orphaned"] == 1
    assert (tmp_path / "meta.db").exists()


def test_provenance_equals_oracle_by_hand(make_store: Any) -> None:
    store = make_store(seed.graph)
    inc = store.resolve_update("video/full", samples=samples({"v1": {"audio": "a1",
                                                                     "frames": "f1"}}))
    store.write("video/full", inc.new)
    row = store.resolve_update("transcript/whisper").new.to_pylist()[0]
    want = hashing.digest("mxs1|f4:text1:110:video/full5:audio2:a1")  # encoded by hand
    assert as_dict(row["metaxy_provenance_by_field"]) == {"text": want}
    assert row["metaxy_provenance"] == hashing.digest("mxs1|s4:text32:" + want)


def test_class_based_features_and_user_columns(make_store: Any) -> None:
    class Video(mx.BaseFeature, spec=seed.video):
        path: str
        duration: float

    graph = mx.FeatureGraph([Video, seed.face_crop])
    assert graph.user_columns("video/full") == {"path": str, "duration": float}
    store = make_store(graph)
    rows = [Video(path="s3://v1.mp4", duration=1.5).model_dump() | {
        "sample_uid": "v1", "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}]
    store.write("video/full", rows)
    latest = store.read("video/full").to_pylist()[0]
    assert (latest["path"], latest["duration"]) == ("s3://v1.mp4", 1.5)
    with pytest.raises(mx.DataError, match=r"declared columns \['duration'\]"):
        store.write("video/full", [{"sample_uid": "v2", "path": "p",
                                    "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}])


def test_feature_dep_long_form_is_the_same_graph() -> None:
    long = seed.face_crop.model_copy(update={"deps": (mx.FeatureDep(feature="video/full"),)})
    assert long == seed.face_crop
    g = mx.FeatureGraph([seed.video, long])
    assert g.feature_version("video/face_crop") == seed.graph.feature_version("video/face_crop")


@pytest.mark.parametrize("kind", ["arrow", "polars", "pandas", "dicts", "batch"])
def test_write_accepts_dataframes(make_store: Any, kind: str) -> None:
    store = make_store(seed.graph)
    rows = samples({"v1": {"audio": "a", "frames": "f"}, "v2": {"audio": "b", "frames": "g"}})
    table = pa.Table.from_pylist(rows)
    data = {"arrow": table, "polars": pl.from_arrow(table), "dicts": rows,
            "pandas": pd.DataFrame(rows), "batch": table.to_batches()[0]}[kind]
    assert store.write("video/full", data) == 2
    assert sorted(store.read("video/full").column("sample_uid").to_pylist()) == ["v1", "v2"]


def test_history_soft_and_hard_delete(make_store: Any) -> None:
    store = make_store(seed.graph)
    store.write("video/full", samples({"v1": {"audio": "a", "frames": "f"},
                                       "v2": {"audio": "b", "frames": "g"}}))
    store.write("video/full", samples({"v1": {"audio": "a2", "frames": "f"}}))
    latest = {r["sample_uid"]: as_dict(r["metaxy_provenance_by_field"])["audio"]
              for r in store.read("video/full").to_pylist()}
    assert latest == {"v1": "a2", "v2": "b"}
    assert store.delete("video/full", [{"sample_uid": "v1"}]) == 1
    assert store.read("video/full").column("sample_uid").to_pylist() == ["v2"]
    assert store.read("video/full", history=True).num_rows == 4  # 3 writes + 1 tombstone
    store.write("video/full", samples({"v1": {"audio": "a3", "frames": "f"}}))  # comes back
    assert store.count("video/full") == 2
    store.delete("video/full", [{"sample_uid": "v1"}], hard=True)
    history = store.read("video/full", history=True)
    assert history.column("sample_uid").to_pylist() == ["v2"]


def test_data_version_override_stops_propagation(make_store: Any) -> None:
    """Early cutoff: a transcript rewritten with the same content hash leaves downstream fresh."""
    store = make_store(seed.graph)
    step(store, samples({"v1": {"audio": "a1", "frames": "f1"}}))
    same_words = pa.array([[("text", "sha-of-the-words")]], pa.map_(pa.string(), pa.string()))

    def new_audio(audio: str) -> int:
        """Change the audio, rewrite the transcript with a content-hash data version."""
        root = store.resolve_update("video/full", samples=samples({"v1": {"audio": audio,
                                                                          "frames": "f1"}}))
        store.write("video/full", root.stale)
        stale = store.resolve_update("transcript/whisper").stale.to_arrow()
        store.write("transcript/whisper",
                    stale.append_column("metaxy_data_version_by_field", same_words))
        return stale.num_rows

    assert new_audio("a1, re-encoded") == 1
    # The data version changed (default -> content hash): downstream must follow once.
    assert store.resolve_update("video/talking_head").counts()["stale"] == 1
    step(store, samples({"v1": {"audio": "a1, re-encoded", "frames": "f1"}}))
    assert new_audio("a1, re-encoded again") == 1
    # Same words, same data version: nothing downstream to do.
    assert store.resolve_update("video/talking_head").counts() == {
        "new": 0, "stale": 0, "orphaned": 0}
    row = store.read("transcript/whisper").to_pylist()[0]
    assert as_dict(row["metaxy_data_version_by_field"]) == {"text": "sha-of-the-words"}
    assert row["metaxy_data_version"] == hashing.sample_digest({"text": "sha-of-the-words"})


def test_increment_is_lazy_and_streams(make_store: Any) -> None:
    store = make_store(seed.graph)
    many = {f"v{i:03d}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(250)}
    inc = store.resolve_update("video/full", samples=samples(many))
    assert inc.new.count() == 250
    sizes = [b.num_rows for b in inc.new.iter_batches(100)]
    assert sum(sizes) == 250 and max(sizes) <= 100


def test_buffered_writer_flushes_by_size_interval_and_exit(make_store: Any) -> None:
    store = make_store(seed.graph)
    rows = samples({f"v{i}": {"audio": "a", "frames": "f"} for i in range(10)})
    with mx.BufferedMetadataWriter(store, max_rows=4, flush_interval=None) as writer:
        for row in rows[:5]:
            writer.put({"video/full": [row]})
        assert store.count("video/full") == 4  # flushed by size
    assert store.count("video/full") == 5  # flushed on exit
    with mx.BufferedMetadataWriter(store, max_rows=1000, flush_interval=0.2) as writer:
        writer.put({"video/full": rows[5:]})
        deadline = time.monotonic() + 10
        while store.count("video/full") < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert store.count("video/full") == 10  # flushed by interval, before exit


def test_buffered_writer_raises_errors_to_caller(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match="lack id columns"), \
            mx.BufferedMetadataWriter(store, max_rows=1, flush_interval=None) as writer:
        writer.put({"video/full": [{"metaxy_provenance_by_field": {"audio": "a",
                                                                   "frames": "f"}}]})
    bad = [{"sample_uid": "x", "metaxy_provenance_by_field": {"audio": "a"}}]
    writer = mx.BufferedMetadataWriter(store, max_rows=100, flush_interval=0.05).__enter__()
    writer.put({"video/full": bad})
    time.sleep(0.5)
    with pytest.raises(mx.WriterError, match="lacks fields"):
        writer.put({"video/full": bad})


def test_latest_state_has_one_live_row_per_id(make_store: Any) -> None:
    store = make_store(seed.graph)
    for version in range(3):
        store.write("video/full", samples({f"v{i}": {"audio": f"a{version}", "frames": "f"}
                                           for i in range(4)}))
        store.delete("video/full", [{"sample_uid": "v0"}])
    latest = store.read("video/full")
    assert sorted(latest.column("sample_uid").to_pylist()) == ["v1", "v2", "v3"]
    assert {as_dict(m)["audio"] for m in latest.column("metaxy_provenance_by_field").to_pylist()
            } == {"a2"}
    history = store.read("video/full", history=True)
    assert history.num_rows == 15  # 12 rows written + 3 tombstones, nothing rewritten away


def test_declared_columns_defaulting_to_none_may_be_left_out(make_store: Any) -> None:
    """What resolve hands out, write accepts: samples without the optional declared columns
    (``x: T | None = None``) give a root increment without them, written as NULL, as an
    instance built without them holds None. A required declared column is still refused."""
    class Image(mx.BaseFeature, spec=seed.video):
        path: str | None = None
        album: str | None = None
        size: int

    graph = mx.FeatureGraph([Image, seed.face_crop])
    store = make_store(graph)
    samples = pa.table({"sample_uid": ["i1", "i2"], "size": [3, 4],
                        "metaxy_provenance_by_field": [{"audio": "a", "frames": "f"}] * 2})
    inc = store.resolve_update("video/full", samples=samples)
    assert store.write("video/full", inc.new) == 2
    rows = sorted(store.read("video/full").to_pylist(), key=lambda r: r["sample_uid"])
    assert [(r["sample_uid"], r["path"], r["album"], r["size"]) for r in rows] == [
        ("i1", None, None, 3), ("i2", None, None, 4)]
    assert Image(size=1).path is None  # the same reading as an instance's
    with pytest.raises(mx.DataError, match=r"declared columns \['size'\]"):
        store.write("video/full", [{"sample_uid": "i3", "path": "p",
                                    "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}])
