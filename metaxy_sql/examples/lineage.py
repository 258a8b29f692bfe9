"""Lineage beyond one-to-one: a video split into chunks, utterances grouped per speaker.

``video/full`` (root) expands into ``video/chunk`` (one parent, many chunks: increments at
video grain). ``audio/utterance`` (root, one row per speaker and utterance) aggregates into
``speaker/embedding`` (one row per speaker, hashed over its utterances in a defined order).
``video/captioned`` reads ``video/full`` and, optionally, ``subtitles/raw`` (left join: a video
without subtitles is still captioned, and the subtitles' later arrival makes it stale).
"""

from __future__ import annotations

import metaxy_sql as mx

video = mx.FeatureSpec(
    key="video/full", id_columns=["sample_uid"],
    fields=[mx.FieldSpec(key="audio"), mx.FieldSpec(key="frames")],
    description="Raw videos: an audio track and frames.",
)
chunk = mx.FeatureSpec(
    key="video/chunk", id_columns=["sample_uid", "chunk_id"],
    deps=[mx.FeatureDep(feature="video/full", lineage=mx.expansion(on=["sample_uid"]))],
    fields=[mx.FieldSpec(key="frames", code_version="1")],
    description="Fixed-length chunks of each video's frames (one video, many chunks).",
)
utterance = mx.FeatureSpec(
    key="audio/utterance", id_columns=["speaker_id", "utterance_id"],
    fields=[mx.FieldSpec(key="audio")],
    description="Single utterances, keyed by speaker.",
)
speaker = mx.FeatureSpec(
    key="speaker/embedding", id_columns=["speaker_id"],
    deps=[mx.FeatureDep(feature="audio/utterance", lineage=mx.aggregation(on=["speaker_id"]))],
    fields=[mx.FieldSpec(key="embedding", code_version="1")],
    description="One embedding per speaker, from all of the speaker's utterances.",
)
subtitles = mx.FeatureSpec(
    key="subtitles/raw", id_columns=["sample_uid"], fields=[mx.FieldSpec(key="text")],
    description="Subtitles shipped with some videos.",
)
captioned = mx.FeatureSpec(
    key="video/captioned", id_columns=["sample_uid"],
    deps=["video/full", mx.FeatureDep(feature="subtitles/raw", optional=True)],
    fields=[mx.FieldSpec(key="caption", code_version="1")],
    description="Captions from the frames, and from the subtitles when there are some.",
)

graph = mx.FeatureGraph([video, chunk, utterance, speaker, subtitles, captioned])
