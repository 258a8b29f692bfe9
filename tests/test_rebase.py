"""Rebase: after a code-version bump that did not change the outputs, the stale samples are
re-stamped with their expected provenance (a write like any other), nothing is recomputed,
data and data versions are kept, and only stale samples are touched."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.examples import lineage, seed
from metaxy_sql.model import hashing, names
from tests.pipeline import as_dict, samples
from tests.test_lineage import BASE, CHUNKS, bump
from tests.test_lineage import run as run_lineage

V, CROP, HEAD = "video/full", "video/face_crop", "video/talking_head"
ROOTS = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(8)}


def crop_rows(rows: list[dict[str, Any]]) -> pa.Table:
    """Face-crop outputs (data columns, one nested) for increment rows."""
    uids = [r["sample_uid"] for r in rows]
    return pa.table({
        "sample_uid": uids,
        "crop_path": [f"/crops/{u}.png" for u in uids],
        "boxes": pa.array([[len(u), 7] for u in uids], pa.list_(pa.int64())),
        names.PROVENANCE_BY_FIELD: pa.array(
            [list(as_dict(r[names.PROVENANCE_BY_FIELD]).items()) for r in rows],
            pa.map_(pa.string(), pa.string())),
    })


def run_all(store: mx.Store, roots: dict[str, dict[str, str]]) -> None:
    for key in store.graph.keys:
        inc = store.resolve_update(key, samples=samples(roots) if key == V else None)
        rows = inc.new.to_arrow().to_pylist() + inc.stale.to_arrow().to_pylist()
        if rows:
            store.write(key, crop_rows(rows) if key == CROP else rows)
        store.delete(key, inc.orphaned.to_arrow())


def latest(store: mx.Store, key: str) -> dict[str, dict[str, Any]]:
    return {r["sample_uid"]: r for r in store.read(key).to_pylist()}


def test_rebase_restamps_exactly_the_stale_samples(make_store: Any) -> None:
    store = make_store(seed.graph)
    run_all(store, ROOTS)
    before = latest(store, CROP)
    # a new video and a removed one: new and orphaned samples, which rebase leaves alone
    roots = {k: v for k, v in ROOTS.items() if k != "v0"} | {"v9": {"audio": "a9", "frames": "f9"}}
    inc = store.resolve_update(V, samples=samples(roots))
    store.write(V, inc.new)
    store.delete(V, inc.orphaned.to_arrow())
    bumped = store.with_graph(bump(seed.graph, CROP, "frames", "2"))
    assert bumped.resolve_update(CROP, incremental=True).counts() == {
        "new": 1, "stale": 7, "orphaned": 1}

    assert bumped.rebase(CROP, where="sample_uid < 'v4'") == 3      # v1, v2, v3
    assert bumped.resolve_update(CROP).counts() == {"new": 1, "stale": 4, "orphaned": 1}
    assert bumped.rebase(CROP) == 4
    inc = bumped.resolve_update(CROP)                               # the incremental table
    assert inc.mode == "incremental"                                # followed the writes
    assert inc.counts() == {"new": 1, "stale": 0, "orphaned": 1}
    assert bumped.resolve_update(CROP, incremental=False).counts() == inc.counts()
    assert bumped.rebase(CROP) == 0
    # data versions kept: the features downstream stay up to date (v9 and v0 wait for the
    # transcript, which was not rerun)
    assert bumped.resolve_update(HEAD).counts() == {"new": 0, "stale": 0, "orphaned": 0}

    after = latest(bumped, CROP)
    videos = latest(bumped, V)
    for uid in [f"v{i}" for i in range(1, 8)]:
        old, new = before[uid], after[uid]
        assert (new["crop_path"], new["boxes"]) == (old["crop_path"], old["boxes"])
        assert as_dict(new[names.DATA_VERSION_BY_FIELD]) == as_dict(
            old[names.DATA_VERSION_BY_FIELD])
        want = hashing.field_provenance("frames", "2", {
            (V, "frames"): as_dict(videos[uid][names.DATA_VERSION_BY_FIELD])["frames"]})
        assert as_dict(new[names.PROVENANCE_BY_FIELD]) == {"frames": want}
        assert new[names.PROVENANCE] == hashing.sample_digest({"frames": want})
        assert new[names.FEATURE_VERSION] == bumped.graph.feature_version(CROP)
    assert "v0" in after and after["v0"] == before["v0"]            # orphaned: untouched

    history = bumped.read(CROP, history=True).to_pylist()
    rows = {uid: [r for r in history if r["sample_uid"] == uid] for uid in after}
    for uid in [f"v{i}" for i in range(1, 8)]:
        old_row, new_row = rows[uid]
        assert old_row[names.SUPERSEDED] and not new_row[names.SUPERSEDED]
        assert old_row[names.PROVENANCE] == before[uid][names.PROVENANCE]  # the old row kept
        assert new_row[names.WRITE_SEQ] > old_row[names.WRITE_SEQ]
    assert len(rows["v0"]) == 1


def test_rebase_expansion_restamps_every_child(make_store: Any) -> None:
    store = make_store(lineage.graph)
    run_lineage(store, BASE, CHUNKS)
    chunk = lineage.chunk.key
    ids = ["sample_uid", "chunk_id"]
    before = sorted(tuple(r[c] for c in [*ids, names.DATA_VERSION])
                    for r in store.read(chunk).to_pylist())
    bumped = store.with_graph(bump(lineage.graph, chunk, "frames", "2"))
    assert bumped.resolve_update(chunk).counts()["stale"] == 2       # one row per video
    children = sum(len(c) for c in CHUNKS.values())
    assert bumped.rebase(chunk) == children                          # every chunk row
    assert bumped.resolve_update(chunk).counts() == {"new": 0, "stale": 0, "orphaned": 0}
    assert sorted(tuple(r[c] for c in [*ids, names.DATA_VERSION])
                  for r in bumped.read(chunk).to_pylist()) == before   # same rows, same data
    assert len(bumped.read(chunk, history=True)) == 2 * children      # old rows kept


def test_rebase_refuses_a_root_feature(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match="root feature"):
        store.rebase(V)


def test_cli_little_change_story(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README story: bump, `plan` says N stale, rebase, 0 stale."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("METAXY_SQL_STORE", raising=False)
    monkeypatch.delenv("METAXY_SQL_ENTRYPOINTS", raising=False)
    (tmp_path / "bumped_pipeline.py").write_text(textwrap.dedent("""
        from metaxy_sql.examples.demo import bumped_graph
        graph = bumped_graph()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    url = f"duckdb:///{tmp_path}/meta.db"
    with mx.connect(url, seed.graph) as store:
        run_all(store, ROOTS)
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--store", url, *args], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.output

    run("-e", "metaxy_sql.examples.seed", "push")
    bumped = ["-e", "bumped_pipeline"]
    assert "8 samples stale now" in run(*bumped, "plan")
    assert "video/face_crop: rebased 8 rows" in run(*bumped, "rebase", CROP)
    status = run(*bumped, "status")
    crop_line = next(line for line in status.splitlines() if line.startswith(CROP))
    assert crop_line.split()[1:] == ["8", "0", "0", "0"]
    assert "0 samples stale now" in run(*bumped, "plan")
    sys.modules.pop("bumped_pipeline", None)
