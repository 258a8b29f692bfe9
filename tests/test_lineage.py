"""Lineage beyond one-to-one, as data, on every engine: expansion (1:N), aggregation (N:1),
optional deps, dependency filters with carried/renamed columns, and early cutoff.

Each scenario is a list of runs (root rows + chunking + definitions); after the last run's
resolves the per-feature counts must match. Every written run checks every stored hash
against the oracle (``hashing``), including group hashes and absent optional parents.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import metaxy_sql as mx
from metaxy_sql.compile.dialects import DIALECTS, get_dialect
from metaxy_sql.compile.render import resolve_sql
from metaxy_sql.examples import lineage, seed
from metaxy_sql.model import hashing, names
from metaxy_sql.warehouse.golden import golden_path
from tests.pipeline import as_dict, samples, step

V, K, U, S, SUB, CAP = ("video/full", "video/chunk", "audio/utterance", "speaker/embedding",
                        "subtitles/raw", "video/captioned")
LONG = "video/long"
Rows = dict[tuple[Any, ...], dict[str, Any]]  # id values -> {field: provenance, column: value}


def counts(new: int = 0, stale: int = 0, orphaned: int = 0, **changed: int) -> dict[str, Any]:
    return {"new": new, "stale": stale, "orphaned": orphaned, "changed": changed}


ZERO = counts()


def bump(graph: mx.FeatureGraph, key: str, field_key: str, code_version: str) -> mx.FeatureGraph:
    specs = []
    for spec in graph:
        if spec.key == key:
            fields = tuple(f.model_copy(update={"code_version": code_version})
                           if f.key == field_key else f for f in spec.fields)
            spec = spec.model_copy(update={"fields": fields})
        specs.append(spec)
    return mx.FeatureGraph(specs)


# -- running a pipeline with lineage ---------------------------------------------------------
def run(store: mx.Store, roots: Mapping[str, Rows], chunks: Mapping[str, list[int]],
        *, write: bool = True) -> dict[str, dict[str, Any]]:
    """Resolve every feature in order; when ``write``, apply each increment: roots write their
    rows, an expansion writes the chunks of each new/stale video (and deletes leftover chunks),
    others write new and stale rows; orphaned rows are deleted."""
    g = store.graph
    report: dict[str, dict[str, Any]] = {}
    for key in g.keys:
        spec = g.spec(key)
        fields = g.field_keys(key)
        root_rows = [{**dict(zip(spec.id_columns, ident, strict=True)),
                      names.PROVENANCE_BY_FIELD: {f: row[f] for f in fields},
                      **{c: v for c, v in row.items() if c not in fields}}
                     for ident, row in sorted(roots.get(key, {}).items())]
        inc = store.resolve_update(key, samples=sample_table(spec, root_rows)
                                   if g.is_root(key) else None)
        stale = inc.stale.to_arrow()
        changed: dict[str, int] = {}
        for fs in stale.column(names.CHANGED_FIELDS).to_pylist():
            for f in fs:
                changed[f] = changed.get(f, 0) + 1
        report[key] = {**inc.counts(), "changed": changed}
        if not write:
            continue
        new = inc.new.to_arrow()
        todo = new.to_pylist() + stale.to_pylist()
        if g.is_root(key):
            wanted = {tuple(r[c] for c in spec.id_columns) for r in todo}
            rows = [r for r in root_rows if tuple(r[c] for c in spec.id_columns) in wanted]
            if rows:
                store.write(key, rows)
        elif key == K:
            chunk_rows = expand(store, todo, chunks)
            if chunk_rows:
                store.write(key, chunk_rows)
        else:
            store.write(key, new)
            store.write(key, stale)
        store.delete(key, inc.orphaned.to_arrow())
    return report


def sample_table(spec: mx.FeatureSpec, rows: list[dict[str, Any]]) -> pa.Table:
    """Root samples as Arrow (typed even when empty)."""
    schema = pa.schema([*[(c, pa.string()) for c in spec.id_columns],
                        (names.PROVENANCE_BY_FIELD, pa.map_(pa.string(), pa.string()))])
    return pa.Table.from_pylist(
        [{c: r[c] for c in schema.names} | {names.PROVENANCE_BY_FIELD: list(
            r[names.PROVENANCE_BY_FIELD].items())} for r in rows], schema=schema)


def expand(store: mx.Store, parents: list[dict[str, Any]],
           chunks: Mapping[str, list[int]]) -> list[dict[str, Any]]:
    """Chunks of each (re)expanded video; chunks the new expansion no longer has are deleted."""
    rows, gone = [], []
    existing = store.read(K).to_pylist()
    for p in parents:
        uid = p["sample_uid"]
        keep = chunks.get(uid, [0])
        rows += [{"sample_uid": uid, "chunk_id": c,
                  names.PROVENANCE_BY_FIELD: as_dict(p[names.PROVENANCE_BY_FIELD])}
                 for c in keep]
        gone += [{"sample_uid": uid, "chunk_id": r["chunk_id"]} for r in existing
                 if r["sample_uid"] == uid and r["chunk_id"] not in keep]
    if gone:
        store.delete(K, gone)
    return rows


# -- the oracle over lineage -----------------------------------------------------------------
def parent_values(store: mx.Store, key: str, row: dict[str, Any],
                  tables: dict[str, list[dict[str, Any]]]) -> dict[tuple[str, str], str | None]:
    """Upstream (feature, field) -> data version as the oracle sees it for one child row."""
    g = store.graph
    values: dict[tuple[str, str], str | None] = {}
    for dep in g.spec(key).deps:
        pspec = g.spec(dep.feature)
        on = dep.lineage.on or g.spec(key).id_columns
        matches = [p for p in tables[dep.feature] if all(p[c] == row[c] for c in on)]
        for f in g.field_keys(dep.feature):
            if dep.lineage.kind == "aggregation":
                values[(dep.feature, f)] = hashing.group_data_version({
                    tuple(str(p[c]) for c in pspec.id_columns):
                        as_dict(p[names.DATA_VERSION_BY_FIELD]).get(f)
                    for p in matches}, store.hash_algorithm)
            else:
                assert len(matches) <= 1 and (matches or dep.optional), (key, row)
                values[(dep.feature, f)] = (
                    as_dict(matches[0][names.DATA_VERSION_BY_FIELD]).get(f) if matches else None)
    return values


def check_lineage_oracle(store: mx.Store) -> int:
    """Every stored hash equals the oracle's (expansion, aggregation, absent optional parents
    included). Returns rows checked."""
    g = store.graph
    tables = {key: store.read(key).to_pylist() for key in g.keys}
    checked = 0
    for key in g.keys:
        for row in tables[key]:
            pbf = as_dict(row[names.PROVENANCE_BY_FIELD])
            if not g.is_root(key):
                upstream = parent_values(store, key, row, tables)
                for f in g.field_keys(key):
                    parents = {p: upstream[p] for p in g.field_parents(key, f)}
                    assert pbf[f] == hashing.field_provenance(
                        f, g.code_version(key, f), parents, store.hash_algorithm), (key, row, f)
            assert row[names.PROVENANCE] == hashing.sample_digest(pbf, store.hash_algorithm)
            assert row[names.DATA_VERSION] == hashing.sample_digest(
                as_dict(row[names.DATA_VERSION_BY_FIELD]), store.hash_algorithm)
            assert row[names.FEATURE_VERSION] == g.feature_version(key)
            checked += 1
    return checked


# -- scenarios -------------------------------------------------------------------------------
VIDEOS: Rows = {("v1",): {"audio": "a1", "frames": "f1"}, ("v2",): {"audio": "a2", "frames": "f2"}}
UTTERANCES: Rows = {("s1", "u1"): {"audio": "x1"}, ("s1", "u2"): {"audio": "x2"},
                    ("s2", "u3"): {"audio": "x3"}}
SUBS: Rows = {("v1",): {"text": "t1"}}
BASE = {V: VIDEOS, U: UTTERANCES, SUB: SUBS}
CHUNKS = {"v1": [0, 1, 2], "v2": [0, 1]}


def with_(base: Mapping[str, Rows], key: str, **changes: Any) -> dict[str, Rows]:
    """``base`` with rows of ``key`` changed (``None`` removes a row); id parts joined by "__"."""
    out = {k: {i: dict(r) for i, r in rows.items()} for k, rows in base.items()}
    for ident, update in changes.items():
        i = tuple(ident.split("__"))
        if update is None:
            out[key].pop(i)
        else:
            out[key][i] = {**out[key].get(i, {}), **update}
    return out


@dataclass
class Scenario:
    name: str
    runs: list[tuple[Mapping[str, Rows], dict[str, list[int]]]]
    expect: dict[str, dict[str, Any]]
    graphs: list[mx.FeatureGraph] = field(default_factory=list)  # per run; default lineage
    write_last: bool = True


FIRST = {V: counts(new=2), K: counts(new=2), U: counts(new=3), S: counts(new=2),
         SUB: counts(new=1), CAP: counts(new=2)}
QUIET = {V: ZERO, K: ZERO, U: ZERO, S: ZERO, SUB: ZERO, CAP: ZERO}
SCENARIOS = [
    Scenario("first run: new at parent grain for chunks, one row per speaker",
             [(BASE, CHUNKS)], FIRST),
    Scenario("nothing changed: nothing to do", [(BASE, CHUNKS), (BASE, CHUNKS)], QUIET),
    Scenario("video frames change: all its chunks stale as one parent row",
             [(BASE, CHUNKS), (with_(BASE, V, v1={"frames": "f1'"}), CHUNKS)],
             {**QUIET, V: counts(stale=1, frames=1), K: counts(stale=1, frames=1),
              CAP: counts(stale=1, caption=1)}),
    Scenario("video removed: its chunks orphaned at child grain",
             [(BASE, CHUNKS), (with_(BASE, V, v1=None), CHUNKS)],
             {**QUIET, V: counts(orphaned=1), K: counts(orphaned=3), CAP: counts(orphaned=1)}),
    Scenario("re-expansion into fewer chunks leaves nothing stale",
             [(BASE, CHUNKS), (with_(BASE, V, v1={"frames": "f1'"}), {**CHUNKS, "v1": [0]}),
              (with_(BASE, V, v1={"frames": "f1'"}), CHUNKS)], QUIET),
    Scenario("chunk code bump: one stale row per video",
             [(BASE, CHUNKS), (BASE, CHUNKS)],
             {**QUIET, K: counts(stale=2, frames=2)},
             graphs=[lineage.graph, bump(lineage.graph, K, "frames", "2")]),
    Scenario("one utterance changes: exactly its speaker is stale",
             [(BASE, CHUNKS), (with_(BASE, U, s1__u2={"audio": "x2'"}), CHUNKS)],
             {**QUIET, U: counts(stale=1, audio=1), S: counts(stale=1, embedding=1)}),
    Scenario("an utterance is added: its speaker is stale",
             [(BASE, CHUNKS), (with_(BASE, U, s2__u9={"audio": "x9"}), CHUNKS)],
             {**QUIET, U: counts(new=1), S: counts(stale=1, embedding=1)}),
    Scenario("an utterance is removed: its speaker is stale",
             [(BASE, CHUNKS), (with_(BASE, U, s1__u1=None), CHUNKS)],
             {**QUIET, U: counts(orphaned=1), S: counts(stale=1, embedding=1)}),
    Scenario("a speaker's last utterance is removed: the speaker is orphaned",
             [(BASE, CHUNKS), (with_(BASE, U, s2__u3=None), CHUNKS)],
             {**QUIET, U: counts(orphaned=1), S: counts(orphaned=1)}),
    Scenario("a new speaker: new group",
             [(BASE, CHUNKS), (with_(BASE, U, s3__u1={"audio": "x1"}), CHUNKS)],
             {**QUIET, U: counts(new=1), S: counts(new=1)}),
    Scenario("subtitles arrive for v2: the captioned video is stale",
             [(BASE, CHUNKS), (with_(BASE, SUB, v2={"text": "t2"}), CHUNKS)],
             {**QUIET, SUB: counts(new=1), CAP: counts(stale=1, caption=1)}),
    Scenario("subtitles removed for v1: the captioned video is stale, not orphaned",
             [(BASE, CHUNKS), (with_(BASE, SUB, v1=None), CHUNKS)],
             {**QUIET, SUB: counts(orphaned=1), CAP: counts(stale=1, caption=1)}),
    Scenario("tricky ids and values in groups",
             [(with_(BASE, U, **{"s1__u:1|": {"audio": ""}, "s1__é🎧": {"audio": "~"}}),
               CHUNKS)],
             {**FIRST, U: counts(new=5)}),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_lineage_scenario(scenario: Scenario, make_store: Any) -> None:
    report: dict[str, dict[str, Any]] = {}
    for i, (roots, chunks) in enumerate(scenario.runs):
        store = make_store(scenario.graphs[i] if scenario.graphs else lineage.graph)
        last = i == len(scenario.runs) - 1
        report = run(store, roots, chunks, write=scenario.write_last or not last)
        assert check_lineage_oracle(store) > 0
    assert report == scenario.expect


def test_absent_optional_parent_hashes_as_the_marker(make_store: Any) -> None:
    store = make_store(lineage.graph)
    run(store, BASE, CHUNKS)
    rows = {r["sample_uid"]: r for r in store.read(CAP).to_pylist()}
    video = {r["sample_uid"]: as_dict(r[names.DATA_VERSION_BY_FIELD])
             for r in store.read(V).to_pylist()}
    parents: dict[tuple[str, str], str | None] = {
        (SUB, "text"): None, (V, "audio"): video["v2"]["audio"],
        (V, "frames"): video["v2"]["frames"]}
    text = hashing.field_provenance_input("caption", "1", parents)
    assert hashing.parent_label(SUB, "text") + hashing.ABSENT in text
    assert as_dict(rows["v2"][names.PROVENANCE_BY_FIELD])["caption"] == hashing.digest(text)


def test_group_hash_ignores_write_order(make_store: Any) -> None:
    store = make_store(lineage.graph)
    run(store, BASE, CHUNKS)
    before = store.read(S).to_pylist()
    other = make_store(lineage.graph)  # same database: rewrite utterances in reverse order
    for ident, row in sorted(UTTERANCES.items(), reverse=True):
        other.write(U, [{"speaker_id": ident[0], "utterance_id": ident[1],
                         names.PROVENANCE_BY_FIELD: row}])
    assert store.resolve_update(S).counts() == {"new": 0, "stale": 0, "orphaned": 0}
    assert store.read(S).to_pylist() == before


# -- filters, carried columns and renames ----------------------------------------------------
def filtered_graph(threshold: str = "1.0") -> mx.FeatureGraph:
    video = mx.FeatureSpec(key=V, id_columns=["sample_uid"], fields=[mx.FieldSpec(key="frames")])
    long = mx.FeatureSpec(key=LONG, id_columns=["sample_uid"], deps=[mx.FeatureDep(
        feature=V, filters=[f"duration > {threshold}"], columns=["path", "duration"],
        rename={"path": "video_path"})], fields=[mx.FieldSpec(key="frames")])
    return mx.FeatureGraph([video, long])


def clips(**durations: float) -> dict[str, Rows]:
    return {V: {(uid,): {"frames": f"f{uid}{d}", "duration": d, "path": f"/{uid}.mp4"}
                for uid, d in durations.items()}}


def test_filter_selects_parents_and_carries_renamed_columns(make_store: Any) -> None:
    store = make_store(filtered_graph())
    report = run(store, clips(v1=0.5, v2=2.0, v3=3.5), {}, write=False)
    assert report[V] == counts(new=3)
    run(store, clips(v1=0.5, v2=2.0, v3=3.5), {})
    assert sorted(r["sample_uid"] for r in store.read(LONG).to_pylist()) == ["v2", "v3"]
    assert check_lineage_oracle(store) == 5
    store.write(V, [{"sample_uid": u, "duration": d, "path": f"/{u}.mp4",
                     names.PROVENANCE_BY_FIELD: {"frames": f"f{u}{d}"}}
                    for u, d in (("v2", 0.25), ("v4", 9.0))])
    inc = store.resolve_update(LONG)
    assert inc.counts() == {"new": 1, "stale": 0, "orphaned": 1}
    new = inc.new.to_pylist()
    assert [(r["sample_uid"], r["video_path"], r["duration"]) for r in new] == [
        ("v4", "/v4.mp4", 9.0)]


# -- early cutoff ----------------------------------------------------------------------------
def test_early_cutoff_stops_propagation(make_store: Any) -> None:
    """face_crop recomputed after a frames change writes the same content hash as data
    version: talking_head stays up to date."""
    base = {"v1": {"audio": "a1", "frames": "f1"}, "v2": {"audio": "a2", "frames": "f2"}}
    store = make_store(seed.graph)
    step(store, samples(base))
    content = {r["sample_uid"]: as_dict(r[names.DATA_VERSION_BY_FIELD])
               for r in store.read("video/face_crop").to_pylist()}
    changed = {**base, "v1": {"audio": "a1", "frames": "f1 re-encoded"}}
    inc = store.resolve_update("video/full", samples=samples(changed))
    store.write("video/full", inc.stale.to_arrow())
    crop = store.resolve_update("video/face_crop")
    stale = crop.stale.to_pylist()
    assert [r["sample_uid"] for r in stale] == ["v1"]
    store.write("video/face_crop", [
        {"sample_uid": r["sample_uid"],
         names.PROVENANCE_BY_FIELD: as_dict(r[names.PROVENANCE_BY_FIELD]),
         names.DATA_VERSION_BY_FIELD: content[str(r["sample_uid"])]} for r in stale])
    assert store.resolve_update("video/face_crop").counts()["stale"] == 0
    assert store.resolve_update("video/talking_head").counts() == {
        "new": 0, "stale": 0, "orphaned": 0}
    assert store.resolve_update("transcript/whisper").counts()["stale"] == 0


def test_without_cutoff_change_propagates(make_store: Any) -> None:
    base = {"v1": {"audio": "a1", "frames": "f1"}}
    store = make_store(seed.graph)
    step(store, samples(base))
    report = step(store, samples({"v1": {"audio": "a1", "frames": "f1'"}}))
    assert report["video/talking_head"]["stale"] == 1


# -- golden SQL of the lineage example -------------------------------------------------------
ROOT = Path(__file__).resolve().parent.parent / "dialects"


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("key", lineage.graph.keys)
def test_lineage_golden_file_is_current(dialect: str, key: str) -> None:
    path = golden_path(ROOT, dialect, "lineage", key)
    assert path.read_text() == resolve_sql(lineage.graph, key, get_dialect(dialect))[0], (
        f"{path} is out of date: regenerate with "
        "`metaxy-sql -e metaxy_sql.examples.lineage render --golden dialects` and review it")


def test_store_runs_the_lineage_golden_sql(make_store: Any, engine: str) -> None:
    store = make_store(lineage.graph)
    run(store, BASE, CHUNKS)
    changed = with_(with_(BASE, V, v1={"frames": "f1'"}, v2=None), U, s1__u1=None)
    run(store, changed, CHUNKS, write=False)  # roots resolved (staged samples), nothing written
    for key in (K, S, CAP):
        inc = store.resolve_update(key)
        golden = golden_path(ROOT, engine, "lineage", key).read_text()
        assert inc.sql == golden
        assert store.executor.fetch(golden).num_rows == inc.to_arrow().num_rows
