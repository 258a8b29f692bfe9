"""Copy between stores: for every ordered pair of engines, the increments on the target equal
those on the source (ids, statuses, changed fields, provenance), the latest state is equal, and
with ``history=True`` the whole history is equal (superseded rows and tombstones included)."""

from __future__ import annotations

import datetime as dt
import decimal
import importlib
import itertools
import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.examples import lineage, seed
from metaxy_sql.model import names
from tests.conftest import ENGINES
from tests.pipeline import samples, step
from tests.test_lineage import BASE, CHUNKS, bump, with_
from tests.test_lineage import run as run_lineage

_counter = itertools.count()
PAIRS = [(a, b) for a in ENGINES for b in ENGINES]  # 6 pairs of distinct engines, and same-engine

META = "media/meta"
meta = mx.FeatureSpec(key=META, id_columns=["sample_uid"], fields=[mx.FieldSpec(key="meta")],
                      description="Per-video metadata with nested column types.")
LINEAGE = mx.FeatureGraph([*lineage.graph, meta])
NESTED = pa.schema([
    ("sample_uid", pa.string()),
    ("boxes", pa.list_(pa.struct([("x", pa.int64()), ("y", pa.float64())]))),
    ("tags", pa.map_(pa.string(), pa.int64())),
    ("price", pa.decimal128(10, 2)),
    ("seen_at", pa.timestamp("us", tz="UTC")),
    ("n", pa.uint64()),
    (names.PROVENANCE_BY_FIELD, pa.map_(pa.string(), pa.string())),
])


def open_store(engine: str, graph: mx.FeatureGraph) -> mx.Store:
    module = importlib.import_module(f"tests.engines.{engine}")
    return mx.connect(module.fresh_url(f"c{os.getpid()}_{next(_counter)}"), graph=graph)


@pytest.fixture(params=PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    return request.param  # type: ignore[no-any-return]


def meta_rows(version: str, uids: list[str]) -> pa.Table:
    return pa.Table.from_pylist([{
        "sample_uid": u,
        "boxes": [{"x": i, "y": i / 2}, {"x": -i, "y": 0.25}],
        "tags": [("k", i), (f"é{version}", 2 ** 40)],
        "price": decimal.Decimal(f"{i}.{version}5"),
        "seen_at": dt.datetime(2026, 12, 1, i, tzinfo=dt.UTC),
        "n": 2 ** 63 + i,
        names.PROVENANCE_BY_FIELD: [("meta", f"m{u}{version}")],
    } for i, u in enumerate(uids)], schema=NESTED)


def build_seed(store: mx.Store) -> mx.Store:
    """Seed pipeline twice (changes, a removal), then the root rewritten again without its
    downstream and a code bump: every increment category has rows."""
    first = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(6)}
    step(store, samples(first))
    second = {**first, "v1": {"audio": "a1'", "frames": "f1"},
              "v6": {"audio": "a6", "frames": "f6"}}
    del second["v2"]
    step(store, samples(second))
    third = {**second, "v3": {"audio": "a3", "frames": "f3'"},
             "v7": {"audio": "a7", "frames": "f7"}}
    del third["v4"]
    inc = store.resolve_update("video/full", samples=samples(third))
    store.write("video/full", inc.new)
    store.write("video/full", inc.stale)
    store.delete("video/full", inc.orphaned.to_arrow())
    return store.with_graph(bump(seed.graph, "video/face_crop", "frames", "2"))


def build_lineage(store: mx.Store) -> mx.Store:
    """Lineage example (expansion, aggregation, optional dep) run twice with changes, plus a
    feature with nested column types rewritten (a data-version override) and deleted from."""
    run_lineage(store, BASE, CHUNKS)
    changed = with_(with_(BASE, lineage.video.key, v1={"frames": "f1'"}),
                    lineage.utterance.key, s1__u1={"audio": "u1'"})
    run_lineage(store, changed, {**CHUNKS, "v1": [0, 3]})
    store.delete(lineage.video.key, [{"sample_uid": "v2"}])  # downstream not rerun: orphaned
    s = store.with_graph(bump(LINEAGE, lineage.chunk.key, "frames", "2"))  # chunks stale
    s.write(META, meta_rows("1", ["v1", "v2", "v3"]))
    again = meta_rows("2", ["v2", "v3"]).append_column(
        names.DATA_VERSION_BY_FIELD,
        pa.array([[("meta", "content-hash")]] * 2, pa.map_(pa.string(), pa.string())))
    s.write(META, again)
    s.delete(META, [{"sample_uid": "v3"}])
    return s


def increments(store: mx.Store) -> dict[str, dict[str, Any]]:
    """Every non-root feature's increment as comparable values."""
    out: dict[str, dict[str, Any]] = {}
    for key in store.graph.keys:
        if store.graph.is_root(key):
            continue
        inc = store.resolve_update(key)
        parts: dict[str, Any] = {}
        for status in names.STATUSES:
            rows = getattr(inc, status).to_arrow().to_pylist()
            parts[status] = sorted(
                (tuple(r[c] for c in store.graph.spec(key).id_columns),
                 sorted(r[names.PROVENANCE_BY_FIELD] or []), r[names.PROVENANCE],
                 sorted(r.get(names.CHANGED_FIELDS) or []))
                for r in rows)
        out[key] = parts
    return out


def _norm(value: Any) -> Any:
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, dict):
        return {k: _norm(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_norm(v) for v in value)
    return value


def state(store: mx.Store, history: bool = False) -> dict[str, list[dict[str, Any]]]:
    """Rows of every feature (history: tombstones with only ids and write columns)."""
    out = {}
    for key in store.graph.keys:
        ids = store.graph.spec(key).id_columns
        rows = store.read(key, history=history).to_pylist()
        for r in rows:
            if r.get(names.DELETED):
                for c in list(r):
                    if c not in (*ids, names.CREATED_AT, names.DELETED, names.SUPERSEDED,
                                 names.WRITE_SEQ):
                        r[c] = None  # engines fill a tombstone's other columns differently
        out[key] = sorted((_norm(r) for r in rows), key=lambda r: (
            [str(r[c]) for c in ids], r.get(names.WRITE_SEQ, 0)))
    return out


def check_copy(source: mx.Store, target: mx.Store, history: bool) -> None:
    before = increments(source)
    assert any(p for parts in before.values() for p in parts.values())  # something to compare
    done: list[int] = []
    report = mx.copy(source, target, history=history, on_progress=done.append)
    assert sum(done) == sum(report.rows.values()) > 0
    assert increments(target) == before
    assert state(target) == state(source)
    for key in source.graph.keys:
        assert target.column_types(key) == source.column_types(key), key
    if history:
        assert state(target, history=True) == state(source, history=True)
        assert any(r[names.DELETED] for rows in state(target, True).values() for r in rows)
    # the target keeps working: a later write comes after the copied positions
    target.write("video/full", [{"sample_uid": "zz", names.PROVENANCE_BY_FIELD: {
        "audio": "za", "frames": "zf"}}])
    h = target.read("video/full", history=True).to_pylist()
    last = max(r[names.WRITE_SEQ] for r in h if r["sample_uid"] != "zz")
    assert [r[names.WRITE_SEQ] for r in h if r["sample_uid"] == "zz"] == [last + 1]


@pytest.mark.parametrize("history", [False, True], ids=["latest", "history"])
def test_copy_seed_pipeline(pair: tuple[str, str], history: bool) -> None:
    with open_store(pair[0], seed.graph) as a, open_store(pair[1], seed.graph) as b:
        bumped = bump(seed.graph, "video/face_crop", "frames", "2")
        check_copy(build_seed(a), b.with_graph(bumped), history)


@pytest.mark.parametrize("history", [False, True], ids=["latest", "history"])
def test_copy_lineage_and_nested_types(pair: tuple[str, str], history: bool) -> None:
    with open_store(pair[0], LINEAGE) as a, open_store(pair[1], LINEAGE) as b:
        source = build_lineage(a)
        check_copy(source, b.with_graph(source.graph), history)
        assert b.read(META).column("boxes").type == NESTED.field("boxes").type


def test_copy_subset_and_refusals(make_store: Any, engine: str) -> None:
    a = build_seed(make_store(seed.graph))
    before = state(a, history=True)
    with open_store(engine, a.graph) as b:
        report = mx.copy(a, b, ["video/full", "transcript/whisper"], where="sample_uid < 'v3'")
        assert set(report.rows) == {"video/full", "transcript/whisper"}
        assert sorted(b.read("video/full").column("sample_uid").to_pylist()) == ["v0", "v1"]
        assert b.read("transcript/whisper").num_rows == 2
        assert mx.copy(a, b, ["video/talking_head"], history=True).rows == {
            "video/talking_head": a.read("video/talking_head", history=True).num_rows}
        with pytest.raises(mx.DataError, match="already holds rows of it"):
            mx.copy(a, b, ["video/full"])
        with pytest.raises(mx.DefinitionError, match="feature version"):
            mx.copy(a, b.with_graph(seed.graph), ["video/face_crop"])
        with pytest.raises(mx.DefinitionError, match="id columns"):
            mx.copy(a, b, ["video/face_crop"], where="path = 'x'")
        with pytest.raises(mx.ConfigError, match="same store"):
            mx.copy(a, a.with_graph(a.graph))
    assert state(a, history=True) == before  # the source is never modified


def test_cli_copy(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    src, dst = f"duckdb:///{tmp_path}/a.db", f"duckdb:///{tmp_path}/b.db"
    with mx.connect(src, seed.graph) as a:
        step(a, samples({f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(5)}))
        want = increments(a)
    result = CliRunner().invoke(cli, ["-e", "metaxy_sql.examples.seed", "copy", "--from", src,
                                      "--to", dst, "--history"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "video/full" in result.output and "copied 5 rows (history)" in result.output
    with mx.connect(dst, seed.graph) as b:
        assert increments(b) == want
    again = CliRunner().invoke(cli, ["-e", "metaxy_sql.examples.seed", "copy", "--from", src,
                                     "--to", dst])
    assert again.exit_code == 1 and "already holds rows" in again.output


def test_cli_copy_refuses_two_chdb_paths(tmp_path: Any) -> None:
    result = CliRunner().invoke(cli, [
        "-e", "metaxy_sql.examples.seed", "copy", "--from", f"chdb://{tmp_path}/a",
        "--to", f"chdb://{tmp_path}/b"])
    assert result.exit_code == 1
    assert "one data path per process" in result.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_interrupted_copy_shows_nothing(make_store: Any, engine: str) -> None:
    """A copy that stops midway leaves the feature's latest state empty on the target (rolled
    back on DuckDB and Postgres; appended invisible on ClickHouse), so nothing half-copied is
    ever read; after `drop` the copy runs again."""
    with open_store("duckdb", seed.graph) as a:
        step(a, samples({f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(5)}))
        b = make_store(seed.graph)

        def stop(n: int) -> None:
            raise RuntimeError("interrupted")

        with pytest.raises(RuntimeError, match="interrupted"):
            mx.copy(a, b, ["video/full"], history=True, on_progress=stop, batch_size=2)
        assert b.read("video/full").num_rows == 0 and b.count("video/full") == 0
        assert b.resolve_update("video/face_crop").counts()["new"] == 0
        assert b.has_rows("video/full") == (engine == "clickhouse")
        b.drop("video/full")
        assert mx.copy(a, b, ["video/full"], history=True, batch_size=2).rows == {
            "video/full": 5}
        assert state(b) == {**state(a), **{k: [] for k in seed.graph.keys if k != "video/full"}}


@pytest.mark.parametrize("args", [
    ["no/such"],                                   # unknown feature
    ["--where", "no_such_column = 1"],             # not over the id columns
    ["--where", "sample_uid = = 1"],               # not SQL
    ["--where", "no_such_function(sample_uid)"],   # valid shape, fails in the engine
])
def test_refused_cli_copy_creates_no_target(tmp_path: Any, engine: str, args: list[str]) -> None:
    """A copy refused for its features or --where leaves no new store behind (DuckDB file,
    chdb database, Postgres schema): they are checked on the source before the target opens."""
    src = f"duckdb:///{tmp_path}/a.db"
    with mx.connect(src, seed.graph) as a:
        step(a, samples({f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(2)}))
    dst = importlib.import_module(f"tests.engines.{engine}").fresh_url(
        f"cp{os.getpid()}_{engine}_{abs(hash(tuple(args)))}")
    result = CliRunner().invoke(cli, ["-e", "metaxy_sql.examples.seed", "copy", "--from", src,
                                      "--to", dst, *args])
    assert result.exit_code == 1, result.output
    with pytest.raises(mx.StoreConnectionError, match="does not exist"):
        mx.connect(dst, seed.graph, create=False)


def test_refused_cli_copy_creates_no_chdb_data_path(tmp_path: Any) -> None:
    src = f"duckdb:///{tmp_path}/a.db"
    with mx.connect(src, seed.graph) as a:
        step(a, samples({"v1": {"audio": "a", "frames": "f"}}))
    result = CliRunner().invoke(cli, ["-e", "metaxy_sql.examples.seed", "copy", "--from", src,
                                      "--to", f"chdb://{tmp_path}/c", "--where", "nope = 1"])
    assert result.exit_code == 1, result.output
    assert not (tmp_path / "c").exists()
