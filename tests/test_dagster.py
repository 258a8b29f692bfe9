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


# -- one source of truth for the graph -------------------------------------------------------
@pytest.fixture
def store_url(engine: str) -> str:
    """A fresh store on ``engine`` (the suite's engine parametrization)."""
    module = importlib.import_module(f"tests.engines.{engine}")
    return str(module.fresh_url(f"dg{os.getpid()}_{next(_names)}"))


_names = iter(range(10**6))


@pytest.fixture
def no_env_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("METAXY_SQL_ENTRYPOINTS", raising=False)


def live(url: str, graph: mx.FeatureGraph, feature: str) -> int:
    with mx.connect(url, graph=graph) as s:
        return s.count(feature)


@pytest.mark.usefixtures("no_env_graph")
def test_graph_object_needs_no_entrypoints(store_url: str) -> None:
    resource = MetaxyStoreResource(url=store_url, graph=seed.graph)
    assert resource.entrypoints == []
    defs = example.build_definitions(resource)
    assert dg.materialize(defs.assets, resources=defs.resources).success
    assert live(store_url, seed.graph, H) == N


@pytest.mark.usefixtures("no_env_graph")
def test_resource_without_a_graph_uses_the_one_given_to_metaxify(store_url: str) -> None:
    resource = MetaxyStoreResource(url=store_url)
    result = dg.materialize(example.build_assets(seed.graph), resources={"store": resource})
    assert result.success
    assert live(store_url, seed.graph, C) == N
    with pytest.raises(mx.ConfigError, match=r"no feature graph.*graph=.*entrypoints=.*@metaxify"):
        resource.load_graph()


@pytest.mark.usefixtures("no_env_graph")
def test_graph_and_entrypoints_that_disagree_fail_naming_both() -> None:
    resource = MetaxyStoreResource(url="duckdb://:memory:", graph=seed.graph,
                                   entrypoints=[LITTLE_CHANGE])
    bumped = importlib.import_module(LITTLE_CHANGE).graph
    with pytest.raises(mx.ConfigError) as err:
        resource.load_graph()
    message = str(err.value)
    assert "MetaxyStoreResource(graph=...)" in message
    assert f"MetaxyStoreResource(entrypoints=...) ['{LITTLE_CHANGE}']" in message
    assert f"'{C}' has feature version {seed.graph.feature_version(C)}" in message
    assert bumped.feature_version(C) in message
    assert "not both" in message
    # the same graph from both sources is one source of truth, not a conflict
    agreeing = MetaxyStoreResource(url="duckdb://:memory:", graph=seed.graph, entrypoints=[SEED])
    assert agreeing.load_graph() is seed.graph


@pytest.mark.usefixtures("no_env_graph")
def test_metaxify_graph_that_disagrees_with_the_resource_fails_the_step(store_url: str) -> None:
    bumped = importlib.import_module(LITTLE_CHANGE).graph
    assets = example.build_assets(bumped)
    resource = MetaxyStoreResource(url=store_url, graph=seed.graph)
    result = dg.materialize(assets, resources={"store": resource}, raise_on_error=False)
    assert not result.success
    failures = {e.step_key: e.event_specific_data.error.to_string() for e in result.all_events
                if e.event_type_value == "STEP_FAILURE"}
    # video/full and transcript agree (same feature versions); face_crop does not
    assert set(failures) == {"face_crop"}
    message = failures["face_crop"]
    assert "@metaxify(graph) of asset video/face_crop" in message
    assert "MetaxyStoreResource(graph=...)" in message
    assert bumped.feature_version(C) in message and seed.graph.feature_version(C) in message
    assert live(store_url, seed.graph, C) == 0  # nothing written under the wrong definitions


# -- partitions ------------------------------------------------------------------------------
DAYS = ["2026-01-01", "it's", "2026-01-03"]  # a quote in a key: quoted as a literal, not pasted
CLIPS = 4
raw = mx.FeatureSpec(key="clips/raw", id_columns=["day", "clip"],
                     fields=[mx.FieldSpec(key="audio", code_version="1")])
loud = mx.FeatureSpec(key="clips/loud", id_columns=["day", "clip"], deps=["clips/raw"],
                      fields=[mx.FieldSpec(key="audio", code_version="1")])
CLIP_GRAPH = mx.FeatureGraph([raw, loud])
BY_DAY = dg.StaticPartitionsDefinition(DAYS)


def clip_samples(day: str | None = None) -> pa.Table:
    rows = [{"day": d, "clip": f"c{i}", "metaxy_provenance_by_field": {"audio": f"{d}/{i}"}}
            for d in DAYS for i in range(CLIPS) if day in (None, d)]
    return pa.Table.from_pylist(rows)


def partitioned_assets() -> list[dg.AssetsDefinition]:
    from metaxy_sql.ext.dagster import partition_where, row_count, summarize

    def step(store: MetaxyStoreResource, context: Any, feature: str,
             samples: pa.Table | None) -> dg.MaterializeResult:
        where = partition_where(context)
        with store.open() as s:
            inc = s.resolve_update(feature, samples=samples, where=where)
            summary = summarize(s, inc)
            written = s.write(feature, inc.new.to_arrow()) + s.write(feature,
                                                                      inc.stale.to_arrow())
            return materialize_result(summary, rows_written=written,
                                      row_count=row_count(s, feature, where))

    from metaxy_sql.ext.dagster import materialize_result

    @metaxify(CLIP_GRAPH)
    @dg.asset(metadata={"metaxy/feature": "clips/raw", "metaxy/partition_column": "day"},
              partitions_def=BY_DAY)
    def clips(context, store: MetaxyStoreResource) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]
        return step(store, context, "clips/raw", clip_samples(context.partition_key))

    @metaxify(CLIP_GRAPH)
    @dg.asset(metadata={"metaxy/feature": "clips/loud", "metaxy/partition_column": "day"},
              partitions_def=BY_DAY)
    def loudness(context, store: MetaxyStoreResource) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]
        return step(store, context, "clips/loud", None)

    return [clips, loudness]


def test_partitioned_asset_materializes_one_partition_others_stay_pending(store_url: str) -> None:
    from metaxy_sql.ext.dagster import metaxy_checks

    instance = dg.DagsterInstance.ephemeral()
    assets = partitioned_assets()
    checks = metaxy_checks(assets, root_samples={"clips/raw": clip_samples})
    resource = MetaxyStoreResource(url=store_url)  # the graph comes from @metaxify
    day = DAYS[1]
    result = dg.materialize([*assets, *checks], resources={"store": resource},
                            partition_key=day, instance=instance)
    assert result.success
    # each asset's check ran after it, over the run's partition: in sync
    assert {(e.asset_key.to_user_string(), e.passed, e.metadata["metaxy/partitions"].value[0])
            for e in result.get_asset_check_evaluations()} == {("clips/raw", True, day),
                                                               ("clips/loud", True, day)}
    meta = {e.asset_key.to_user_string(): {k: v.value for k, v in
                                           e.materialization.metadata.items()}
            for e in result.get_asset_materialization_events()}
    for feature in ("clips/raw", "clips/loud"):  # this partition's samples only
        assert (meta[feature]["metaxy/new"], meta[feature]["metaxy/rows_written"],
                meta[feature]["dagster/row_count"]) == (CLIPS, CLIPS, CLIPS)
        assert instance.get_materialized_partitions(feature_key(feature)) == {day}
    with mx.connect(store_url, graph=CLIP_GRAPH) as s:
        assert s.count("clips/loud") == CLIPS
        assert set(s.read("clips/loud").column("day").to_pylist()) == {day}
        pending = s.resolve_update("clips/raw", samples=clip_samples()).counts()
        assert pending == {"new": CLIPS * (len(DAYS) - 1), "stale": 0, "orphaned": 0}

    # the next partition: its own samples; the first partition's are not orphaned by it
    result = dg.materialize(assets, resources={"store": resource}, partition_key=DAYS[0],
                            instance=instance)
    raw_meta = next(e.materialization.metadata for e in result.get_asset_materialization_events()
                    if e.asset_key == feature_key("clips/raw"))
    assert (raw_meta["metaxy/new"].value, raw_meta["metaxy/orphaned"].value,
            raw_meta["dagster/row_count"].value) == (CLIPS, 0, CLIPS)
    assert instance.get_materialized_partitions(feature_key("clips/loud")) == {day, DAYS[0]}
    with mx.connect(store_url, graph=CLIP_GRAPH) as s:
        assert s.count("clips/raw") == 2 * CLIPS
        assert s.resolve_update("clips/raw", samples=clip_samples()).counts()["new"] == CLIPS

    # the checks alone (no partition): the whole asset, one partition still pending
    defs = dg.Definitions(assets=assets, asset_checks=checks, resources={"store": resource},
                          jobs=[dg.define_asset_job("check", dg.AssetSelection.all_asset_checks())])
    alone = {e.asset_key.to_user_string(): (e.passed, e.metadata["metaxy/new"].value)
             for e in defs.resolve_job_def("check").execute_in_process(
                 instance=instance).get_asset_check_evaluations()}
    # clips/loud expects only what clips/raw holds, so it is in sync
    assert alone == {"clips/raw": (False, CLIPS), "clips/loud": (True, 0)}


def feature_key(feature: str) -> Any:
    return dg.AssetKey(feature.split("/"))


def test_partition_where_quotes_keys_and_ranges() -> None:
    """The predicate as built for one key and for a range run as one step."""
    from metaxy_sql.ext.dagster import partition_where

    seen: dict[str, str | None] = {}

    @metaxify(CLIP_GRAPH)
    @dg.asset(metadata={"metaxy/feature": "clips/raw", "metaxy/partition_column": "day"},
              partitions_def=BY_DAY, backfill_policy=dg.BackfillPolicy.single_run())
    def clips(context) -> None:  # type: ignore[no-untyped-def]
        seen[",".join(context.partition_keys)] = partition_where(context)

    dg.materialize([clips], partition_key="it's")
    dg.materialize([clips], tags={"dagster/asset_partition_range_start": DAYS[0],
                                  "dagster/asset_partition_range_end": DAYS[1]})
    assert seen == {"it's": "\"day\" = 'it''s'",
                    f"{DAYS[0]},it's": f"\"day\" IN ('{DAYS[0]}', 'it''s')"}


def test_partitioned_asset_needs_a_partition_id_column() -> None:
    with pytest.raises(mx.DefinitionError,
                       match=r"clips/raw.*partitioned.*metaxy/partition_column.*\['day', 'clip'\]"):
        @metaxify(CLIP_GRAPH)
        @dg.asset(metadata={"metaxy/feature": "clips/raw"}, partitions_def=BY_DAY)
        def no_column() -> None: ...

    with pytest.raises(mx.DefinitionError, match=r"\['hour'\].*\['day', 'clip'\]"):
        @metaxify(CLIP_GRAPH)
        @dg.asset(metadata={"metaxy/feature": "clips/raw", "metaxy/partition_column": "hour"},
                  partitions_def=BY_DAY)
        def not_an_id() -> None: ...


# -- asset checks ----------------------------------------------------------------------------
def run_checks(defs: dg.Definitions) -> dict[str, tuple[bool, dict[str, Any]]]:
    """Run the ``metaxy_check`` job: the checks alone; outcome and metadata per feature."""
    result = defs.resolve_job_def("metaxy_check").execute_in_process()
    assert result.get_asset_materialization_events() == []  # checks only: nothing computed
    return {e.asset_key.to_user_string(): (e.passed, {k: v.value for k, v in e.metadata.items()})
            for e in result.get_asset_check_evaluations()}


@pytest.mark.usefixtures("no_env_graph")
def test_in_sync_check_fails_before_processing_and_passes_after(store_url: str) -> None:
    defs = example.build_definitions(MetaxyStoreResource(url=store_url, graph=seed.graph))
    video = next(a for a in defs.assets if a.key == feature_key(V))  # type: ignore[union-attr]
    assert dg.materialize([video], resources=defs.resources).success

    before = run_checks(defs)
    assert set(before) == {V, T, C, H}
    assert before[V][0] is True
    assert before[C][0] is False
    assert (before[C][1]["metaxy/new"], before[C][1]["metaxy/stale"],
            before[C][1]["metaxy/orphaned"]) == (N, 0, 0)
    assert before[H][1]["metaxy/new"] == 0  # its parents are not written yet: nothing expected

    assert dg.materialize(defs.assets, resources=defs.resources).success
    after = run_checks(defs)
    assert {f: passed for f, (passed, _) in after.items()} == {V: True, T: True, C: True, H: True}

    bumped = importlib.import_module(LITTLE_CHANGE).graph
    changed = run_checks(example.build_definitions(MetaxyStoreResource(url=store_url,
                                                                       graph=bumped)))
    # face_crop's frames changed; talking_head follows once face_crop's data versions do
    assert {f: passed for f, (passed, _) in changed.items()} == {V: True, T: True, C: False,
                                                                 H: True}
    assert (changed[C][1]["metaxy/new"], changed[C][1]["metaxy/stale"]) == (0, N)
    assert changed[C][1]["metaxy/stale/frames"] == N
    assert changed[C][1]["metaxy/changed_fields"] == ["frames"]


def test_headless_materialize_and_check_from_any_directory(tmp_path: Any) -> None:
    """The README's headless route, run by Dagster's CLI from a directory outside the repo."""
    cli = str(Path(sys.executable).with_name("dagster"))
    store = tmp_path / "meta.db"
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "METAXY_SQL_STORE": f"duckdb:///{store}"}
    env.pop("METAXY_SQL_ENTRYPOINTS", None)
    env.pop("PYTHONPATH", None)
    where = ["-d", str(ROOT), "-m", "integration.dagster_example.definitions"]
    for command in (["asset", "materialize", *where, "--select", "*"],
                    ["job", "execute", *where, "-j", "metaxy_check"]):
        done = subprocess.run([cli, *command], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300, check=False)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "metaxy_in_sync" in done.stderr + done.stdout
    assert live(f"duckdb:///{store}", seed.graph, H) == N


class Shot(mx.BaseFeature, spec=mx.FeatureSpec(
        key="shots/raw", id_columns=["region", "hour", "shot"],
        fields=[mx.FieldSpec(key="frames", code_version="1")])):
    region: str
    hour: int
    shot: str


SHOT_GRAPH = mx.FeatureGraph([Shot])
REGION_HOUR = dg.MultiPartitionsDefinition({
    "region": dg.StaticPartitionsDefinition(["eu", "us"]),
    "hour": dg.StaticPartitionsDefinition(["7", "8"])})


def test_multi_partitioned_asset_writes_its_cell_only(store_url: str) -> None:
    """One partition of two dimensions: an AND of both columns; an int column gets a number."""
    from metaxy_sql.ext.dagster import partition_where, row_count

    everything = [{"region": r, "hour": h, "shot": f"s{i}",
                   "metaxy_provenance_by_field": {"frames": f"{r}{h}{i}"}}
                  for r in ("eu", "us") for h in (7, 8) for i in range(3)]
    seen: list[str | None] = []

    @metaxify(SHOT_GRAPH)
    @dg.asset(metadata={"metaxy/feature": "shots/raw",
                        "metaxy/partition_column": {"region": "region", "hour": "hour"}},
              partitions_def=REGION_HOUR)
    def shots(context, store: MetaxyStoreResource) -> dg.MaterializeResult:  # type: ignore[no-untyped-def]
        where = partition_where(context)
        seen.append(where)
        key = context.partition_key.keys_by_dimension
        mine = [r for r in everything if (r["region"], str(r["hour"])) ==
                (key["region"], key["hour"])]
        with store.open() as s:
            inc = s.resolve_update("shots/raw", samples=mine, where=where)
            written = s.write("shots/raw", inc.new.to_arrow())
            return dg.MaterializeResult(metadata={"written": written,
                                                  "count": row_count(s, "shots/raw", where)})

    result = dg.materialize([shots], resources={"store": MetaxyStoreResource(url=store_url)},
                            partition_key=dg.MultiPartitionKey({"region": "us", "hour": "8"}))
    assert result.success
    assert seen == ["\"hour\" = 8 AND \"region\" = 'us'"]
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert (meta["written"].value, meta["count"].value) == (3, 3)
    with mx.connect(store_url, graph=SHOT_GRAPH) as s:
        rows = s.read("shots/raw").to_pylist()
    assert sorted((r["region"], r["hour"], r["shot"]) for r in rows) == [
        ("us", 8, "s0"), ("us", 8, "s1"), ("us", 8, "s2")]
