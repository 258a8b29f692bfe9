"""The seed pipeline's four features as Dagster assets, each with a toy compute.

Every asset follows the same pattern: resolve its increment, summarize it (counts, taken before
processing), compute only the new and stale samples, delete the orphaned ones, and record what
it did as materialization metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagster as dg
import pyarrow as pa

import metaxy_sql as mx
from metaxy_sql.examples.demo import root_samples
from metaxy_sql.ext.dagster import (
    MetaxyStoreResource,
    materialize_result,
    metaxify,
    metaxy_checks,
    observation_job,
    summarize,
)

#: Size of the toy video collection the root asset "lists".
N_VIDEOS = 100
Compute = Callable[[pa.RecordBatch], pa.Table]


def list_videos() -> pa.Table:
    """The current video collection: ids and per-field provenance (pretend file hashes)."""
    return root_samples(N_VIDEOS)


def _with(batch: pa.RecordBatch, column: str, values: list[Any]) -> pa.Table:
    return pa.Table.from_batches([batch]).append_column(column, pa.array(values))


def _uids(batch: pa.RecordBatch) -> list[str]:
    return [str(u) for u in batch.column("sample_uid").to_pylist()]


def probe(batch: pa.RecordBatch) -> pa.Table:
    return _with(batch, "path", [f"videos/{u}.mp4" for u in _uids(batch)])


def transcribe(batch: pa.RecordBatch) -> pa.Table:
    return _with(batch, "text", [f"hello from {u}" for u in _uids(batch)])


def crop(batch: pa.RecordBatch) -> pa.Table:
    return _with(batch, "crop_path", [f"crops/{u}.mp4" for u in _uids(batch)])


def assemble(batch: pa.RecordBatch) -> pa.Table:
    return _with(batch, "clip_path", [f"clips/{u}.mp4" for u in _uids(batch)])


def process(store: MetaxyStoreResource, feature: str, compute: Compute,
            samples: Any = None) -> dg.MaterializeResult:
    """Compute exactly the new and stale samples of ``feature``; delete the orphaned ones."""
    with store.open() as s:
        inc = s.resolve_update(feature, samples=samples)
        summary = summarize(s, inc)  # before the writes: the increment is lazy
        with mx.BufferedMetadataWriter(s) as writer:
            for part in (inc.new, inc.stale):
                for batch in part.iter_batches(1000):
                    writer.put({feature: compute(batch)})
        deleted = s.delete(feature, inc.orphaned.to_arrow())
        return materialize_result(summary, rows_written=writer.rows_written,
                                  rows_deleted=deleted, row_count=s.count(feature))


def build_assets(graph: mx.FeatureGraph) -> list[dg.AssetsDefinition]:
    """The four assets, versioned by ``graph``."""

    @metaxify(graph)
    @dg.asset(metadata={"metaxy/feature": "video/full"}, group_name="seed")
    def video(store: MetaxyStoreResource) -> dg.MaterializeResult:
        return process(store, "video/full", probe, samples=list_videos())

    @metaxify(graph)
    @dg.asset(metadata={"metaxy/feature": "transcript/whisper"}, group_name="seed")
    def transcript(store: MetaxyStoreResource) -> dg.MaterializeResult:
        return process(store, "transcript/whisper", transcribe)

    @metaxify(graph)
    @dg.asset(metadata={"metaxy/feature": "video/face_crop"}, group_name="seed")
    def face_crop(store: MetaxyStoreResource) -> dg.MaterializeResult:
        return process(store, "video/face_crop", crop)

    @metaxify(graph)
    @dg.asset(metadata={"metaxy/feature": "video/talking_head"}, group_name="seed")
    def talking_head(store: MetaxyStoreResource) -> dg.MaterializeResult:
        return process(store, "video/talking_head", assemble)

    return [video, transcript, face_crop, talking_head]


def build_definitions(store: MetaxyStoreResource) -> dg.Definitions:
    """Assets, their ``metaxy_in_sync`` checks, the observation job, a job running every
    check (``metaxy_check``) and the store, for the graph the store defines (``graph=`` or its
    entrypoints)."""
    assets = build_assets(store.load_graph())
    roots = {"video/full": list_videos}
    checks = metaxy_checks(assets, root_samples=roots)
    observe = observation_job(assets, root_samples=roots)
    check_all = dg.define_asset_job("metaxy_check", selection=dg.AssetSelection.all_asset_checks(),
                                    description="Run every feature's metaxy_in_sync check.")
    # In-process: steps run one after another, so an embedded DuckDB file is never opened by
    # two processes at once.
    return dg.Definitions(assets=assets, asset_checks=checks, jobs=[observe, check_all],
                          resources={"store": store}, executor=dg.in_process_executor)
