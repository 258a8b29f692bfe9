"""What resolve hands out, write accepts (issue 12, kinds 5 and 6), on every engine.

Increment rows write back as they are in every form the README shows (Arrow, ``to_pylist()``
dicts whose maps come back as lists of pairs, pandas, polars, the 1:N chunk recipe, model
instances); root increments carry the columns passed in ``samples=``; a NULL aggregation key
belongs to no group; any subset of data-version overrides behaves alike on every engine.
Expected hashes come from the oracle (``metaxy_sql.model.hashing``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import metaxy_sql as mx
from metaxy_sql.model import hashing, names
from tests.conftest import StoreFactory
from tests.pipeline import as_dict, by_id, check_oracle

V, T, K = "video/full", "transcript/whisper", "video/chunk"
video = mx.FeatureSpec(key=V, id_columns=["sample_uid"],
                       fields=[mx.FieldSpec(key="audio", code_version="1"),
                               mx.FieldSpec(key="frames", code_version="1")])
transcript = mx.FeatureSpec(key=T, id_columns=["sample_uid"], deps=[V], fields=[
    mx.FieldSpec(key="text", code_version="1", deps=[mx.FieldDep(feature=V, fields=["audio"])])])
chunk = mx.FeatureSpec(key=K, id_columns=["sample_uid", "chunk_id"],
                       deps=[mx.FeatureDep(feature=V, lineage=mx.expansion(on=["sample_uid"]))],
                       fields=[mx.FieldSpec(key="frames", code_version="1")])
GRAPH = mx.FeatureGraph([video, transcript])
CHUNK_GRAPH = mx.FeatureGraph([video, transcript, chunk])
ROOT_ROWS = [{"sample_uid": f"v{i}",
              names.PROVENANCE_BY_FIELD: {"audio": f"a{i}", "frames": f"f{i}"}} for i in range(3)]


def _text_provenance(audio_dv: str) -> str:
    return hashing.field_provenance("text", "1", {(V, "audio"): audio_dv})


def _with_videos(make_store: StoreFactory, graph: mx.FeatureGraph = GRAPH) -> mx.Store:
    store = make_store(graph)
    store.write(V, store.resolve_update(V, samples=ROOT_ROWS).new)
    return store


def _pylist(inc: mx.Increment) -> Any:
    rows = inc.new.to_pylist()
    for r in rows:
        r["text"] = "hi"
    return rows


def _pandas(inc: mx.Increment) -> Any:
    df = inc.new.to_arrow().to_pandas()
    df["text"] = "hi"
    return df


def _polars(inc: mx.Increment) -> Any:
    return pl.from_arrow(inc.new.to_arrow()).with_columns(pl.lit("hi").alias("text"))


def _arrow(inc: mx.Increment) -> Any:
    table = inc.new.to_arrow()
    return table.append_column("text", pa.array(["hi"] * table.num_rows))


# -- kind 5: every form of an increment writes back ------------------------------------------
@pytest.mark.parametrize("form", [_pylist, _pandas, _polars, _arrow],
                         ids=["to_pylist", "pandas", "polars", "arrow"])
def test_increment_rows_write_back_in_every_form(make_store: StoreFactory, form: Any) -> None:
    store = _with_videos(make_store)
    inc = store.resolve_update(T)
    assert store.write(T, form(inc)) == 3
    rows = by_id(store.read(T), ("sample_uid",))
    for i in range(3):
        row = rows[(f"v{i}",)]
        assert row["text"] == "hi"
        assert as_dict(row[names.PROVENANCE_BY_FIELD]) == {"text": _text_provenance(f"a{i}")}
    assert store.resolve_update(T).counts() == {"new": 0, "stale": 0, "orphaned": 0}
    check_oracle(store)


@pytest.mark.parametrize("form", [
    {"audio": "a", "frames": "f"},
    [("audio", "a"), ("frames", "f")],
    [["frames", "f"], ["audio", "a"]],
    [{"key": "audio", "value": "a"}, {"key": "frames", "value": "f"}],
], ids=["dict", "tuples", "lists", "key_value_dicts"])
def test_per_field_maps_in_any_form(make_store: StoreFactory, form: Any) -> None:
    store = make_store(GRAPH)
    rows = [{"sample_uid": "x", names.PROVENANCE_BY_FIELD: form},
            {"sample_uid": "y", names.PROVENANCE_BY_FIELD: {"audio": "a", "frames": "f"}}]
    store.write(V, rows)
    for row in store.read(V).to_pylist():
        assert as_dict(row[names.PROVENANCE_BY_FIELD]) == {"audio": "a", "frames": "f"}
        assert row[names.PROVENANCE] == hashing.sample_digest({"audio": "a", "frames": "f"})


DV_FORMS = {
    "struct": pa.array([{"frames": "X"}], pa.struct([("frames", pa.string())])),
    "large_map": pa.array([[("frames", "X")]], pa.map_(pa.large_string(), pa.large_string())),
    "key_value_structs": pa.array([[{"key": "frames", "value": "X"}]], pa.large_list(
        pa.struct([("key", pa.large_string()), ("value", pa.large_string())]))),
    "pairs": pa.array([[["frames", "X"]]], pa.list_(pa.list_(pa.string()))),
    "struct_with_null": pa.array([{"audio": None, "frames": "X"}],
                                 pa.struct([("audio", pa.string()), ("frames", pa.string())])),
}


@pytest.mark.parametrize("form", sorted(DV_FORMS))
def test_arrow_forms_of_per_field_columns(make_store: StoreFactory, form: str) -> None:
    store = make_store(GRAPH)
    table = pa.table({"sample_uid": ["v1"],
                      names.PROVENANCE_BY_FIELD: pa.array([[("audio", "a"), ("frames", "f")]],
                                                          pa.map_(pa.string(), pa.string())),
                      names.DATA_VERSION_BY_FIELD: DV_FORMS[form]})
    store.write(V, table)
    row = store.read(V).to_pylist()[0]
    assert as_dict(row[names.DATA_VERSION_BY_FIELD]) == {"audio": "a", "frames": "X"}
    assert row[names.DATA_VERSION] == hashing.sample_digest({"audio": "a", "frames": "X"})


def test_pandas_records_with_array_values(make_store: StoreFactory) -> None:
    """``df.to_dict("records")`` of a polars-made frame holds numpy arrays of pairs."""
    store = make_store(GRAPH)
    pairs = np.array([np.array(["audio", "a"], dtype=object),
                      np.array(["frames", "f"], dtype=object)], dtype=object)
    store.write(V, [{"sample_uid": "v1", names.PROVENANCE_BY_FIELD: pairs}])
    row = store.read(V).to_pylist()[0]
    assert as_dict(row[names.PROVENANCE_BY_FIELD]) == {"audio": "a", "frames": "f"}


@pytest.mark.parametrize("bad", [
    [("audio", "a", "extra")], [("audio", 1), ("frames", "f")], "audio=a",
    [("audio", "a"), ("audio", "b"), ("frames", "f")],
], ids=["triple", "non_string", "text", "repeated_key"])
def test_per_field_maps_refused_clearly(make_store: StoreFactory, bad: Any) -> None:
    store = make_store(GRAPH)
    with pytest.raises(mx.DataError, match=names.PROVENANCE_BY_FIELD):
        store.write(V, [{"sample_uid": "x", names.PROVENANCE_BY_FIELD: bad}])


@pytest.mark.parametrize("form", ["to_pylist", "pandas", "polars"])
def test_readme_chunk_recipe_writes_back(make_store: StoreFactory, form: str) -> None:
    """README, "Lineage beyond one-to-one": expand each new parent row into its chunks, each
    written with the row's metaxy_provenance_by_field."""
    store = _with_videos(make_store, CHUNK_GRAPH)
    inc = store.resolve_update(K)
    assert inc.counts() == {"new": 3, "stale": 0, "orphaned": 0}
    chunks = [{**row, "chunk_id": c} for row in inc.new.to_pylist() for c in range(2)]
    data: Any = chunks
    if form == "pandas":
        data = pd.DataFrame(chunks)
    elif form == "polars":
        data = pl.from_arrow(pa.Table.from_pandas(pd.DataFrame(chunks), preserve_index=False))
    assert store.write(K, data) == 6
    stored = store.read(K).to_pylist()
    assert len(stored) == 6
    for row in stored:
        want = hashing.field_provenance("frames", "1", {(V, "frames"): f"f{row['sample_uid'][1]}"})
        assert as_dict(row[names.PROVENANCE_BY_FIELD]) == {"frames": want}
    assert store.resolve_update(K).counts() == {"new": 0, "stale": 0, "orphaned": 0}


# -- kind 5: root increments carry the sample columns ----------------------------------------
U, S = "audio/utterance", "speaker/embedding"
utterance = mx.FeatureSpec(key=U, id_columns=["utterance_id"], fields=[mx.FieldSpec(key="audio")])


class Utterance(mx.BaseFeature, spec=utterance):
    speaker_id: str | None


speaker = mx.FeatureSpec(key=S, id_columns=["speaker_id"], deps=[
    mx.FeatureDep(feature=U, lineage=mx.aggregation(on=["speaker_id"]))],
    fields=[mx.FieldSpec(key="embedding", code_version="1")])
SPEAKERS = mx.FeatureGraph([Utterance, speaker])


def _utterances(speakers: dict[str, str | None], audio: str = "a") -> list[dict[str, Any]]:
    return [{"utterance_id": u, "speaker_id": s, "lang": "en",
             names.PROVENANCE_BY_FIELD: {"audio": f"{audio}-{u}"}}
            for u, s in sorted(speakers.items())]


def test_root_increment_carries_sample_columns(make_store: StoreFactory) -> None:
    store = make_store(SPEAKERS)
    inc = store.resolve_update(U, samples=_utterances({"u1": "s1", "u2": "s2"}))
    new = inc.new.to_arrow()
    assert {"speaker_id", "lang"} <= set(new.column_names)
    assert store.write(U, inc.new) == 2  # declared speaker_id present: accepted as is
    stored = by_id(store.read(U), ("utterance_id",))
    assert {k[0]: (r["speaker_id"], r["lang"]) for k, r in stored.items()} == {
        "u1": ("s1", "en"), "u2": ("s2", "en")}
    inc = store.resolve_update(U, samples=_utterances({"u1": "s1", "u2": "s3"}, audio="b"))
    stale = by_id(inc.stale.to_arrow(), ("utterance_id",))
    assert {k[0]: r["speaker_id"] for k, r in stale.items()} == {"u1": "s1", "u2": "s3"}
    store.write(U, inc.stale.to_pylist())
    assert sorted(store.read(U).column("speaker_id").to_pylist()) == ["s1", "s3"]
    assert store.resolve_update(U, samples=_utterances({"u1": "s1", "u2": "s3"}, audio="b")
                                ).counts() == {"new": 0, "stale": 0, "orphaned": 0}


def test_null_aggregation_key_belongs_to_no_group(make_store: StoreFactory) -> None:
    store = make_store(SPEAKERS)
    store.write(U, store.resolve_update(
        U, samples=_utterances({"u1": "s1", "u2": None, "u3": "s1"})).new)
    inc = store.resolve_update(S)
    new = inc.new.to_pylist()
    assert [r["speaker_id"] for r in new] == ["s1"]
    group = hashing.group_data_version({("u1",): "a-u1", ("u3",): "a-u3"})
    assert as_dict(new[0][names.PROVENANCE_BY_FIELD]) == {
        "embedding": hashing.field_provenance("embedding", "1", {(U, "audio"): group})}
    assert store.write(S, inc.new) == 1
    assert store.resolve_update(S).counts() == {"new": 0, "stale": 0, "orphaned": 0}
    # A member without a key changing never makes a group stale.
    store.write(U, [{"utterance_id": "u2", "speaker_id": None,
                     names.PROVENANCE_BY_FIELD: {"audio": "changed"}}])
    assert store.resolve_update(S).counts() == {"new": 0, "stale": 0, "orphaned": 0}


# -- kind 5: model instances -----------------------------------------------------------------
class Video(mx.BaseFeature, spec=video):
    path: str


CLASS_GRAPH = mx.FeatureGraph([Video, transcript])


def test_model_instances_keep_ids_and_versions(make_store: StoreFactory) -> None:
    store = make_store(CLASS_GRAPH)
    rows = [Video(sample_uid="a", path="p", metaxy_provenance_by_field={"audio": "a1",
                                                                         "frames": "f1"},
                  metaxy_data_version_by_field={"frames": "content-X"})]
    assert store.write(V, rows) == 1
    with mx.BufferedMetadataWriter(store) as writer:
        writer.put({V: [Video(sample_uid="b", path="q",
                              metaxy_provenance_by_field={"audio": "a2", "frames": "f2"})]})
    stored = by_id(store.read(V), ("sample_uid",))
    a, b = stored[("a",)], stored[("b",)]
    assert (a["path"], b["path"]) == ("p", "q")
    assert as_dict(a[names.DATA_VERSION_BY_FIELD]) == {"audio": "a1", "frames": "content-X"}
    assert a[names.DATA_VERSION] == hashing.sample_digest({"audio": "a1", "frames": "content-X"})
    assert as_dict(b[names.DATA_VERSION_BY_FIELD]) == {"audio": "a2", "frames": "f2"}
    check_oracle(store)


def test_model_instances_refuse_unknown_columns() -> None:
    with pytest.raises(mx.DataError, match=r"unknown columns \['pth'\]"):
        Video(sample_uid="a", pth="p", path="p", metaxy_provenance_by_field={})


# -- kind 6: partial data-version overrides ---------------------------------------------------
@pytest.mark.parametrize("overrides", [
    {"frames": "content-X"}, {"audio": "content-A"}, {}, None,
    {"audio": None, "frames": "content-X"}, {"audio": "content-A", "frames": "content-F"},
], ids=["frames", "audio", "empty", "null", "null_value", "all"])
def test_partial_data_version_overrides(make_store: StoreFactory,
                                        overrides: dict[str, str | None] | None) -> None:
    store = make_store(GRAPH)
    prov = {"audio": "a1", "frames": "f1"}
    store.write(V, [{"sample_uid": "v1", names.PROVENANCE_BY_FIELD: prov,
                     names.DATA_VERSION_BY_FIELD: overrides}])
    want = {f: (overrides or {}).get(f) or p for f, p in prov.items()}
    row = store.read(V).to_pylist()[0]
    assert as_dict(row[names.DATA_VERSION_BY_FIELD]) == want
    assert row[names.DATA_VERSION] == hashing.sample_digest(want)
    new = store.resolve_update(T).new.to_pylist()
    assert as_dict(new[0][names.PROVENANCE_BY_FIELD]) == {"text": _text_provenance(want["audio"])}


def test_data_version_overrides_differ_per_row(make_store: StoreFactory) -> None:
    """One batch with different subsets per row (Arrow infers one struct for all of them)."""
    store = make_store(GRAPH)
    given = {"v1": {"frames": "X"}, "v2": {"audio": "Y"}, "v3": {}, "v4": None}
    store.write(V, [{"sample_uid": uid, names.PROVENANCE_BY_FIELD: {"audio": "a", "frames": "f"},
                     names.DATA_VERSION_BY_FIELD: dv} for uid, dv in given.items()])
    stored = by_id(store.read(V), ("sample_uid",))
    for uid, dv in given.items():
        want = {"audio": "a", "frames": "f", **(dv or {})}
        assert as_dict(stored[(uid,)][names.DATA_VERSION_BY_FIELD]) == want
    check_oracle(store)


def test_unknown_data_version_field_is_refused(make_store: StoreFactory) -> None:
    store = make_store(GRAPH)
    with pytest.raises(mx.DataError, match=r"unknown field keys \['nope'\]"):
        store.write(V, [{"sample_uid": "v1", names.PROVENANCE_BY_FIELD: {"audio": "a",
                                                                          "frames": "f"},
                         names.DATA_VERSION_BY_FIELD: {"nope": "x"}}])
    assert store.read(V).num_rows == 0


# -- the normalization itself (no engine): empty rows, null rows, many fields -----------------
def test_normalize_rows_of_any_shape() -> None:
    from metaxy_sql.engine import by_field

    rows = [[("a", "1"), ("b", None)], [], None, [("b", "2")], [], None]
    arr = pa.array(rows, by_field.MAP_TYPE)
    got = by_field.normalize(arr, "f", "dv", ["a", "b"], complete=False).to_pylist()
    assert got == [[("a", "1")], [], [], [("b", "2")], [], []]
    many = [f"x{i:02d}" for i in range(70)]  # more fields than bits in one integer
    full = pa.array([[(f, "v") for f in many]], by_field.MAP_TYPE)
    assert by_field.normalize(full, "f", "p", many, complete=True).to_pylist() == full.to_pylist()
    twice = pa.array([[("x00", "v"), ("x00", "w")]], by_field.MAP_TYPE)
    with pytest.raises(mx.DataError, match="twice"):
        by_field.normalize(twice, "f", "p", many, complete=False)
    with pytest.raises(mx.DataError, match=r"lacks fields \['b'\] in 1 rows"):
        by_field.normalize(pa.array([[("a", "1"), ("b", "2")], [("a", "3")]], by_field.MAP_TYPE),
                           "f", "p", ["a", "b"], complete=True)


def test_empty_inputs_are_no_ops_and_an_empty_sample_set_orphans_everything(
        make_store: Any) -> None:
    """An empty list of rows writes and deletes nothing (not 'rows lack id columns'); an
    empty sample set for a root feature says every stored sample is gone."""
    spec = mx.FeatureSpec(key="e/root", id_columns=["id"],
                          fields=[mx.FieldSpec(key="f", code_version="1")])
    store = make_store(mx.FeatureGraph([spec]))
    assert store.write("e/root", []) == 0 and store.delete("e/root", []) == 0
    assert store.resolve_update("e/root", samples=[]).counts() == {
        "new": 0, "stale": 0, "orphaned": 0}
    rows = [{"id": 5, "metaxy_provenance_by_field": {"f": "v"}}]
    store.write("e/root", store.resolve_update("e/root", samples=rows).new)
    gone = store.resolve_update("e/root", samples=[])
    assert gone.counts() == {"new": 0, "stale": 0, "orphaned": 1}
    assert gone.orphaned.to_arrow().column("id").to_pylist() == [5]


def test_a_feature_object_in_place_of_its_key_is_named(make_store: Any) -> None:
    spec = mx.FeatureSpec(key="e/root", id_columns=["id"],
                          fields=[mx.FieldSpec(key="f", code_version="1")])
    store = make_store(mx.FeatureGraph([spec]))
    with pytest.raises(mx.UnknownFeatureError, match="pass 'e/root'"):
        store.write(spec, [])  # type: ignore[arg-type]
