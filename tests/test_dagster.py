"""The Dagster integration, told as stories: materialize, bump a code version, read the reason.

Every run is a real in-process ``dg.materialize`` of ``integration/dagster_example`` against a
real store; what each asset processed is read back from the recorded materialization metadata.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

dg = pytest.importorskip("dagster")

import pyarrow as pa  # noqa: E402

import metaxy_sql as mx  # noqa: E402
from integration.dagster_example import assets as example  # noqa: E402
from metaxy_sql.examples import seed  # noqa: E402
from metaxy_sql.ext.dagster import (  # noqa: E402
    MetaxyIOManager,
    MetaxyStoreResource,
    metaxify,
)

SEED = "metaxy_sql.examples.seed"
LITTLE_CHANGE = "integration.dagster_example.little_change"
V, T, C, H = "video/full", "transcript/whisper", "video/face_crop", "video/talking_head"
N = example.N_VIDEOS
ROOT = Path(__file__).resolve().parents[1]


def materialize(url: str, entrypoint: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Materialize every asset of the example; metadata per feature and the order they ran."""
    defs = example.build_definitions(MetaxyStoreResource(url=url, entrypoints=[entrypoint]))
    result = dg.materialize(defs.assets, resources=defs.resources)
    assert result.success
    events = result.get_asset_materialization_events()
    order = [e.asset_key.to_user_string() for e in events]
    metadata = {e.asset_key.to_user_string(): {k: v.value for k, v in
                                               e.materialization.metadata.items()}
                for e in events}
    return metadata, order


def processed(metadata: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {feature: m["metaxy/rows_written"] for feature, m in metadata.items()}


def the_little_change(url: str) -> None:
    first, order = materialize(url, SEED)
    assert processed(first) == {V: N, T: N, C: N, H: N}
    assert first[C]["metaxy/new"] == N
    assert order.index(V) < order.index(C) < order.index(H)
    assert order.index(T) < order.index(H)

    again, _ = materialize(url, SEED)
    assert processed(again) == {V: 0, T: 0, C: 0, H: 0}

    bumped, _ = materialize(url, LITTLE_CHANGE)
    assert processed(bumped) == {V: 0, T: 0, C: N, H: N}
    # face_crop: every sample is stale (not new), because of `frames`; transcript untouched
    assert (bumped[C]["metaxy/new"], bumped[C]["metaxy/stale"]) == (0, N)
    assert bumped[C]["metaxy/stale/frames"] == N
    assert (bumped[T]["metaxy/new"], bumped[T]["metaxy/stale"]) == (0, 0)
    assert bumped[H]["metaxy/stale/clip"] == N
    assert "video__face_crop" in bumped[C]["metaxy/resolve_sql"]
    assert bumped[C]["dagster/row_count"] == N


def test_little_change_on_duckdb(tmp_path: Any) -> None:
    the_little_change(f"duckdb:///{tmp_path / 'meta.db'}")


def test_little_change_on_chdb() -> None:
    """The same definitions, only the resource URL switched to embedded ClickHouse."""
    pytest.importorskip("clickhouse_connect")
    engine = importlib.import_module("tests.engines.clickhouse")
    the_little_change(engine.fresh_url(f"dagster_{os.getpid()}"))


def test_example_definitions_pass_dagster_validation() -> None:
    module = importlib.import_module("integration.dagster_example.definitions")
    defs = module.defs
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    crop = graph.get(dg.AssetKey(["video", "face_crop"]))
    assert crop.parent_keys == {dg.AssetKey(["video", "full"])}
    assert crop.code_version == seed.graph.feature_version(C)
    assert "metaxy" in crop.kinds
    lineage = crop.metadata["dagster/column_lineage"]
    assert lineage.deps_by_column["metaxy_provenance_by_field.frames"] == [
        dg.TableColumnDep(dg.AssetKey(["video", "full"]), "metaxy_data_version_by_field.frames")]
    head = graph.get(dg.AssetKey(["video", "talking_head"]))
    assert head.parent_keys == {dg.AssetKey(["transcript", "whisper"]), crop.key}
    assert defs.get_job_def("metaxy_observe") is not None


def test_code_versions_follow_field_lineage() -> None:
    """Dagster's own staleness agrees: the bump changes face_crop and talking_head only."""
    before = {a.key: a.code_versions_by_key[a.key] for a in example.build_assets(seed.graph)}
    bumped = importlib.import_module(LITTLE_CHANGE).graph
    after = {a.key: a.code_versions_by_key[a.key] for a in example.build_assets(bumped)}
    changed = sorted(k.to_user_string() for k in before if before[k] != after[k])
    assert changed == [C, H]


def test_observation_job_reports_increments_without_compute(tmp_path: Any) -> None:
    url = f"duckdb:///{tmp_path / 'meta.db'}"
    materialize(url, SEED)
    defs = example.build_definitions(MetaxyStoreResource(url=url, entrypoints=[LITTLE_CHANGE]))
    result = defs.get_job_def("metaxy_observe").execute_in_process()
    seen = {e.asset_key.to_user_string(): e.asset_observation_data.asset_observation.metadata
            for e in result.get_asset_observation_events()}
    assert seen[C]["metaxy/stale"].value == N
    assert seen[C]["metaxy/stale/frames"].value == N
    assert seen[T]["metaxy/stale"].value == 0
    assert seen[V]["dagster/row_count"].value == N
    with mx.connect(url, graph=seed.graph) as store:  # observing wrote nothing
        assert store.resolve_update(C).counts() == {"new": 0, "stale": 0, "orphaned": 0}


def test_unknown_feature_fails_at_definition_time() -> None:
    with pytest.raises(mx.DefinitionError, match=r"metaxy/feature='video/cropp'.*video/face_crop"):
        @metaxify(seed.graph)
        @dg.asset(metadata={"metaxy/feature": "video/cropp"})
        def crop() -> None: ...


def test_dependency_the_graph_does_not_declare_fails_at_definition_time() -> None:
    with pytest.raises(mx.DefinitionError,
                       match=r"'transcript/whisper'.*\['video/face_crop'\].*reads only"):
        @metaxify(seed.graph)
        @dg.asset(metadata={"metaxy/feature": T}, deps=[dg.AssetKey(["video", "face_crop"])])
        def transcript() -> None: ...


def test_asset_without_feature_metadata_fails() -> None:
    with pytest.raises(mx.DefinitionError, match="metaxy/feature"):
        @metaxify(seed.graph)
        @dg.asset
        def plain() -> None: ...


def test_multi_asset_and_custom_asset_keys() -> None:
    @metaxify(seed.graph, asset_key_for=lambda f: dg.AssetKey(["meta", *f.split("/")]))
    @dg.multi_asset(specs=[dg.AssetSpec("t", metadata={"metaxy/feature": T}),
                           dg.AssetSpec("c", metadata={"metaxy/feature": C}),
                           dg.AssetSpec("report")])
    def both():  # unannotated: Dagster misreads a postponed "None" as several outputs
        return None

    deps = {k.to_user_string(): {d.asset_key.to_user_string() for d in s.deps}
            for k, s in both.specs_by_key.items()}
    assert deps == {"meta/transcript/whisper": {"meta/video/full"},
                    "meta/video/face_crop": {"meta/video/full"}, "report": set()}


@pytest.mark.parametrize("fmt", ["arrow", "polars"])
def test_io_manager_writes_returned_rows_and_loads_upstream(tmp_path: Any, fmt: str) -> None:
    if fmt == "polars":
        pytest.importorskip("polars")
    graph = mx.FeatureGraph([seed.video, seed.transcript])
    samples = pa.table({"sample_uid": ["v1", "v2"],
                        "metaxy_provenance_by_field": [{"audio": "a1", "frames": "f1"},
                                                       {"audio": "a2", "frames": "f2"}]})
    url = f"duckdb:///{tmp_path / 'meta.db'}"

    @metaxify(graph)
    @dg.asset(metadata={"metaxy/feature": V}, io_manager_key="metaxy")
    def video() -> pa.Table:
        return samples

    @metaxify(graph)
    @dg.asset(metadata={"metaxy/feature": T},
              ins={"videos": dg.AssetIn(key=dg.AssetKey(["video", "full"]))})
    def transcript(videos: Any) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata={"seen": len(videos),
                                              "module": type(videos).__module__})

    store = MetaxyStoreResource(url=url, entrypoints=[SEED])
    result = dg.materialize([video, transcript], resources={
        "store": store, "metaxy": MetaxyIOManager(store=store, format=fmt)})
    metadata = result.asset_materializations_for_node("transcript")[0].metadata
    assert metadata["seen"].value == 2
    assert metadata["module"].value.startswith("pyarrow" if fmt == "arrow" else "polars")
    with mx.connect(url, graph=graph) as s:
        assert s.count(V) == 2


def test_dagster_cli_validates_the_example_code_location(tmp_path: Any) -> None:
    """What ``dagster dev`` loads: the module as a code location, checked by Dagster's CLI."""
    cli = Path(sys.executable).with_name("dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path),
           "METAXY_SQL_STORE": f"duckdb:///{tmp_path / 'meta.db'}"}
    done = subprocess.run(
        [str(cli), "definitions", "validate", "-m", "integration.dagster_example.definitions"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_core_never_imports_dagster() -> None:
    code = ("import sys, metaxy_sql, metaxy_sql.cli, metaxy_sql.engine.writer; "
            "sys.exit('dagster' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_issue_contract_materialize_result_of_the_increment(tmp_path: Any) -> None:
    """The usage contract as written: process the increment, return materialize_result(inc)."""
    from metaxy_sql.ext.dagster import materialize_result

    url = f"duckdb:///{tmp_path / 'meta.db'}"
    with mx.connect(url, graph=seed.graph) as s:
        root = s.resolve_update(V, samples=[
            {"sample_uid": f"v{i}", "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}
            for i in range(7)])
        s.write(V, root.new)

    @metaxify(graph=seed.graph)
    @dg.asset(metadata={"metaxy/feature": C})
    def face_crop(context, store: MetaxyStoreResource):  # type: ignore[no-untyped-def]
        with store.open() as s:
            inc = s.resolve_update(C)
            with mx.BufferedMetadataWriter(s) as writer:
                for batch in inc.new.iter_batches(3):
                    writer.put({C: batch})
        return materialize_result(inc)

    result = dg.materialize([face_crop], resources={
        "store": MetaxyStoreResource(url=url, entrypoints=[SEED])}, selection=[face_crop])
    meta = {k: v.value for k, v in
            result.get_asset_materialization_events()[0].materialization.metadata.items()}
    assert (meta["metaxy/new"], meta["metaxy/stale"], meta["metaxy/orphaned"]) == (7, 0, 0)
    assert "-- metaxy-sql resolve: video/face_crop" in meta["metaxy/resolve_sql"]
