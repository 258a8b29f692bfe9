"""End-to-end run of the seed pipeline on a store, showing "the little change".

Run: ``metaxy-sql demo`` (embedded DuckDB file ``metaxy-demo.db`` by default).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

import metaxy_sql as mx
from metaxy_sql.examples import seed

Echo = Callable[[str], None]
#: Told ``1`` each time the pipeline finishes a feature (``metaxy-sql demo`` shows progress).
OnProgress = Callable[[int], None] | None

#: Pipeline runs of :func:`run_demo`: first run, rerun, the little change.
RUNS = 3


def root_samples(n: int) -> pa.Table:
    """``n`` videos whose audio and frames provenance come from (pretend) file hashes."""
    uids = [f"video_{i:06d}" for i in range(n)]
    by_field = [{"audio": f"audio-sha-{i}", "frames": f"frames-sha-{i}"} for i in range(n)]
    return pa.table({"sample_uid": uids, "metaxy_provenance_by_field": by_field})


def steps() -> int:
    """The number of feature steps :func:`run_demo` takes (its progress total)."""
    return RUNS * len(seed.graph.keys)


def run_pipeline(store: mx.Store, samples: pa.Table, echo: Echo,
                 on_progress: OnProgress = None) -> dict[str, dict[str, int]]:
    """Resolve every feature in order, 'compute' what is new or stale, write it back;
    ``on_progress(1)`` after each feature."""
    report = {}
    for key in store.graph.keys:
        inc = store.resolve_update(key, samples=samples if store.graph.is_root(key) else None)
        counts = inc.counts()
        report[key] = counts
        changed: dict[str, int] = {}
        with mx.BufferedMetadataWriter(store) as writer:
            for part in (inc.new, inc.stale):
                for batch in part.iter_batches(10_000):
                    if part is inc.stale:
                        for fields in batch.column("metaxy_changed_fields").to_pylist():
                            for f in fields:
                                changed[f] = changed.get(f, 0) + 1
                    writer.put({key: batch})  # a real step would run its model here
        store.delete(key, inc.orphaned.to_arrow())
        why = ", ".join(f"{f}: {n}" for f, n in sorted(changed.items()))
        echo(f"  {key:<22} new {counts['new']:>6}  stale {counts['stale']:>6}  "
             f"orphaned {counts['orphaned']:>6}" + (f"   (changed fields: {why})" if why else ""))
        if on_progress is not None:
            on_progress(1)
    return report


def bumped_graph() -> mx.FeatureGraph:
    """The seed graph after the little change: a new crop resolution (frames code_version 2)."""
    crop = seed.face_crop.model_copy(
        update={"fields": (mx.FieldSpec(key="frames", code_version="2"),)})
    return mx.FeatureGraph([seed.video, seed.transcript, crop, seed.talking_head])


def run_demo(url: str, n: int, echo: Echo, on_progress: OnProgress = None
             ) -> dict[str, dict[str, dict[str, int]]]:
    """First run, a no-op rerun, then the little change (:func:`steps` features in all,
    ``on_progress(1)`` after each). Returns every step's counts."""
    samples = root_samples(n)
    with mx.connect(url, graph=seed.graph) as store:
        echo(f"1. first run on {store.url}: every sample is new")
        first = run_pipeline(store, samples, echo, on_progress)
        echo("2. run again: nothing to do")
        again = run_pipeline(store, samples, echo, on_progress)
        echo("3. the little change: video/face_crop frames code_version 1 -> 2")
        little = run_pipeline(store.with_graph(bumped_graph()), samples, echo, on_progress)
        echo("   face_crop is stale (not new) because of `frames`; transcript/whisper only reads"
             " audio, so it has nothing to do.")
    return {"first": first, "again": again, "little_change": little}


def reset(url: str, echo: Callable[[str], None] | None = None) -> None:
    """Drop the example's tables so the demo starts from an empty store, with the views
    reading them (each one passed to ``echo``)."""
    with mx.connect(url, graph=seed.graph) as store:
        for key in store.graph.keys:
            for view in store.drop(key, cascade=True):
                if echo is not None:
                    echo(f"dropped view {view.describe()}")
