"""Ray Data in and out: the seed pipeline's crop step as ``ds.map_batches`` on a local Ray.

The step reads ``video/face_crop``'s new and stale samples as a dataset, crops in Ray workers,
and writes the results back through the store. Expected counts come from the semantics: the
first run crops every video, the second none; an upstream recut of v1's frames makes exactly v1
stale; a crop code_version bump makes every sample stale, and each is cropped exactly once more.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import ray
import ray.data

import metaxy_sql as mx
from metaxy_sql.examples import seed
from metaxy_sql.ext.ray import (
    StoreDatasink,
    StoreDatasource,
    read_feature,
    read_increment,
    write_dataset,
)
from tests.conftest import ENGINES
from tests.engines import postgres as postgres_engine
from tests.pipeline import samples

CROP = "video/face_crop"
VIDEOS = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(6)}


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


def _crop(version: str) -> Any:
    def crop(batch: pa.Table) -> pa.Table:
        paths = pc.binary_join_element_wise("crops/", batch.column("sample_uid"), ".mp4", "")
        return (batch.append_column("crop_path", paths)
                .append_column("crop_version", pa.array([version] * batch.num_rows)))
    return crop


def _run(store: mx.Store, version: str) -> int:
    """One run of the crop step; returns the samples processed."""
    inc = store.resolve_update(CROP)
    done = 0
    for part in (inc.new, inc.stale):
        ds = read_increment(part, batch_size=2).map_batches(_crop(version),
                                                            batch_format="pyarrow")
        done += write_dataset(ds, store, CROP, batch_size=4)
    return done


def _versions(store: mx.Store) -> dict[str, str]:
    rows = store.read(CROP).to_pylist()
    return {r["sample_uid"]: r["crop_version"] for r in rows}


@pytest.mark.parametrize("engine", [e for e in ENGINES if e in ("duckdb", "clickhouse")])
def test_crop_step_as_ray_map_batches(make_store: Any, engine: str) -> None:
    store: mx.Store = make_store(seed.graph)
    store.write("video/full", store.resolve_update("video/full", samples=samples(VIDEOS)).new)

    assert _run(store, "1") == 6
    assert _versions(store) == dict.fromkeys(VIDEOS, "1")
    assert _run(store, "1") == 0

    recut = {**VIDEOS, "v1": {"audio": "a1", "frames": "f1-recut"}}
    store.write("video/full", store.resolve_update("video/full", samples=samples(recut)).stale)
    assert _run(store, "1b") == 1
    assert _versions(store) == {**dict.fromkeys(VIDEOS, "1"), "v1": "1b"}

    bumped = mx.FeatureGraph([
        seed.video, seed.transcript,
        mx.FeatureSpec(key=CROP, id_columns=["sample_uid"], deps=["video/full"],
                       fields=[mx.FieldSpec(key="frames", code_version="2")]),
        seed.talking_head])
    store2 = store.with_graph(bumped)
    assert store2.resolve_update(CROP).counts() == {"new": 0, "stale": 6, "orphaned": 0}
    assert _run(store2, "2") == 6
    assert _versions(store2) == dict.fromkeys(VIDEOS, "2")
    assert _run(store2, "2") == 0
    # Each sample written once per run that processed it (history keeps every version).
    history = store2.read(CROP, history=True)
    assert history.num_rows == 6 + 1 + 6

    ds = read_feature(store2, CROP, batch_size=4)
    assert sorted(r["sample_uid"] for r in ds.take_all()) == sorted(VIDEOS)


@pytest.mark.parametrize("engine", [e for e in ENGINES if e in ("duckdb", "clickhouse")])
def test_workers_cannot_open_single_process_engines(make_store: Any, engine: str) -> None:
    store: mx.Store = make_store(seed.graph)
    url = "duckdb:///x.db" if engine == "duckdb" else "chdb:///tmp/x"
    with pytest.raises(mx.UnsupportedByDialectError, match="write_dataset"):
        StoreDatasink(url, seed.graph, CROP)
    with pytest.raises(mx.UnsupportedByDialectError, match="read_increment"):
        StoreDatasource(url, seed.graph, CROP, status="new")
    store.close()


@pytest.mark.parametrize("engine", [e for e in ENGINES if e == "postgres"])
def test_postgres_reads_and_writes_from_the_workers(engine: str) -> None:
    """On Postgres the read task and the write tasks open their own connections."""
    url = postgres_engine.fresh_url(f"ray{os.getpid()}")
    with mx.connect(url, graph=seed.graph) as store:
        _read_and_write_from_workers(store, url)


def _read_and_write_from_workers(store: mx.Store, url: str) -> None:
    store.write("video/full", store.resolve_update("video/full", samples=samples(VIDEOS)).new)

    ds = ray.data.read_datasource(StoreDatasource(url, seed.graph, CROP, status="new"))
    sink = StoreDatasink(url, seed.graph, CROP, batch_size=4)
    ds.map_batches(_crop("1"), batch_format="pyarrow").write_datasink(sink)
    assert sink.written == 6
    assert _versions(store) == dict.fromkeys(VIDEOS, "1")
    assert store.resolve_update(CROP).counts() == {"new": 0, "stale": 0, "orphaned": 0}
    latest = ray.data.read_datasource(StoreDatasource(url, seed.graph, CROP))
    assert sorted(r["sample_uid"] for r in latest.take_all()) == sorted(VIDEOS)


@pytest.mark.parametrize("bad", [0, -1, "10"])
def test_batch_sizes_are_checked(make_store: Any, engine: str, bad: Any) -> None:
    """A batch size that is not a whole number of 1 or more is a ConfigError naming it,
    before Ray (or the engine) sees it."""
    store: mx.Store = make_store(seed.graph)
    store.write("video/full", store.resolve_update("video/full", samples=samples(VIDEOS)).new)
    calls = [
        lambda: read_increment(store.resolve_update(CROP).new, batch_size=bad),
        lambda: read_feature(store, "video/full", batch_size=bad),
        lambda: write_dataset(ray.data.from_items([{"x": 1}]), store, CROP, batch_size=bad),
    ]
    if engine == "postgres":  # worker-side readers and writers: only on a shared server
        url = postgres_engine.fresh_url(f"raybs{os.getpid()}")
        calls += [lambda: StoreDatasource(url, seed.graph, CROP, batch_size=bad),
                  lambda: StoreDatasink(url, seed.graph, CROP, batch_size=bad)]
    for call in calls:
        with pytest.raises(mx.ConfigError, match="batch_size must be"):
            call()
    assert store.read(CROP).num_rows == 0  # nothing was written
