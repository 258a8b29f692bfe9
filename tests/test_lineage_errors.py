"""Bad lineage, filter and rename definitions: typed errors naming the feature and the fix."""

from __future__ import annotations

from typing import Any

import pytest

import metaxy_sql as mx

VIDEO = mx.FeatureSpec(key="video/full", id_columns=["sample_uid"],
                       fields=[mx.FieldSpec(key="frames")])
UTTERANCE = mx.FeatureSpec(key="audio/utterance", id_columns=["speaker_id", "utterance_id"],
                           fields=[mx.FieldSpec(key="audio")])


class Clip(mx.BaseFeature, spec=mx.FeatureSpec(key="video/clip", id_columns=["sample_uid"])):
    path: str
    duration: float


def child(key: str, ids: list[str], *deps: Any) -> mx.FeatureSpec:
    return mx.FeatureSpec(key=key, id_columns=ids, deps=list(deps),
                          fields=[mx.FieldSpec(key="frames")])


def dep(feature: str = "video/full", **kw: Any) -> mx.FeatureDep:
    return mx.FeatureDep(feature=feature, **kw)


GRAPH_ERRORS = [
    ("expansion on columns missing from the parent ids",
     lambda: [VIDEO, child("video/chunk", ["sample_uid", "chunk_id"],
                           dep(lineage=mx.expansion(on=["video_id"])))],
     r"'video/chunk', dependency 'video/full': expansion on=\['video_id'\].*\['video_id'\] "
     r"missing from the parent ids\); use mx.expansion\(on=\['sample_uid'\]\)"),
    ("expansion without a child key",
     lambda: [VIDEO, child("video/chunk", ["sample_uid"],
                           dep(lineage=mx.expansion(on=["sample_uid"])))],
     r"'video/chunk'.*strict subset of the child's id_columns.*add .*chunk_id"),
    ("aggregation keys missing upstream",
     lambda: [UTTERANCE, child("speaker/embedding", ["speaker"],
                               dep("audio/utterance", lineage=mx.aggregation(on=["speaker"])))],
     r"'speaker/embedding', dependency 'audio/utterance': aggregation keys \['speaker'\] are "
     r"missing upstream"),
    ("aggregation keys differ from the child ids",
     lambda: [UTTERANCE, child("speaker/embedding", ["speaker_id", "x"], dep(
         "audio/utterance", lineage=mx.aggregation(on=["speaker_id"])))],
     r"'speaker/embedding'.*must equal the child's id_columns"),
    ("one-to-one with different ids suggests a lineage",
     lambda: [VIDEO, child("video/chunk", ["sample_uid", "chunk_id"], dep())],
     r"'video/chunk'.*one-to-one dependencies need the same id columns.*mx.expansion"),
    ("rename collides with an id column",
     lambda: [Clip, child("video/long", ["sample_uid"], dep(
         "video/clip", columns=["path"], rename={"path": "sample_uid"}))],
     r"'video/long', dependency 'video/clip': carried column 'path' -> 'sample_uid' collides "
     r"with an id or system column.*rename="),
    ("filter on an unknown column of a declared parent",
     lambda: [Clip, child("video/long", ["sample_uid"], dep(
         "video/clip", filters=["length > 1"]))],
     r"'video/long', dependency 'video/clip': filter \('length > 1'\) reads unknown columns "
     r"\['length'\]"),
    ("every dependency optional",
     lambda: [VIDEO, child("video/x", ["sample_uid"], dep(optional=True))],
     r"'video/x': every dependency is optional.*make at least one dependency required"),
    ("expansion mixed with identity",
     lambda: [VIDEO, mx.FeatureSpec(key="video/other", id_columns=["sample_uid", "chunk_id"]),
              child("video/chunk", ["sample_uid", "chunk_id"],
                    dep(lineage=mx.expansion(on=["sample_uid"])), dep("video/other"))],
     r"'video/chunk': an expansion cannot be mixed"),
]


@pytest.mark.parametrize(("name", "specs", "match"), GRAPH_ERRORS,
                         ids=[e[0] for e in GRAPH_ERRORS])
def test_bad_graph(name: str, specs: Any, match: str) -> None:
    with pytest.raises(mx.DefinitionError, match=match):
        mx.FeatureGraph(specs())


DEP_ERRORS = [
    ("a filter with a subquery", {"filters": ["duration > (SELECT max(d) FROM t)"]},
     r"FeatureDep 'video/full'.*filter.*(Subquery|Select) is not allowed; use only columns"),
    ("a filter calling a function", {"filters": ["lower(path) = 'x'"]},
     r"FeatureDep 'video/full'.*Lower is not allowed; use only columns, literals"),
    ("a filter with a cast", {"filters": ["CAST(duration AS INT) > 1"]},
     r"Cast is not allowed"),
    ("two statements", {"filters": ["duration > 1; DROP TABLE video__full"]},
     r"does not parse: give exactly one expression"),
    ("not a boolean", {"filters": ["duration + 1"]}, r"is not a boolean expression"),
    ("a qualified column", {"filters": ["t.duration > 1"]}, r"without a table qualifier"),
    ("rename of a column not carried", {"rename": {"path": "video_path"}},
     r"'path' is not among columns=\[\]; add it there"),
    ("rename into a system column", {"columns": ["path"], "rename": {"path": "metaxy_path"}},
     r"'metaxy_path' uses the reserved prefix"),
    ("optional expansion", {"optional": True, "lineage": mx.expansion(on=["sample_uid"])},
     r"an optional dependency must be one-to-one"),
]


@pytest.mark.parametrize(("name", "kwargs", "match"), DEP_ERRORS, ids=[e[0] for e in DEP_ERRORS])
def test_bad_dependency(name: str, kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(mx.DefinitionError, match=match):
        mx.FeatureDep(feature="video/full", **kwargs)


def test_lineage_needs_on() -> None:
    with pytest.raises(mx.DefinitionError, match="expansion lineage needs on="):
        mx.expansion(on=[])


def test_filter_on_a_column_the_parent_does_not_store(make_store: Any) -> None:
    graph = mx.FeatureGraph([VIDEO, child("video/long", ["sample_uid"],
                                          dep(filters=["duration > 1"]))])
    store = make_store(graph)
    inc = store.resolve_update("video/full", samples=[
        {"sample_uid": "v1", "metaxy_provenance_by_field": {"frames": "f"}}])
    store.write("video/full", inc.new.to_arrow())
    with pytest.raises(mx.DefinitionError,
                       match=r"'video/long', dependency 'video/full': filter.*\['duration'\]"):
        store.resolve_update("video/long")
