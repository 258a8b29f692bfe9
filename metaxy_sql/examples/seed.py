"""The seed pipeline: a video split into an audio path and a frames path, joined again.

``video/full`` (root: audio, frames) feeds ``transcript/whisper`` (text <- audio only) and
``video/face_crop`` (frames <- frames). ``video/talking_head`` reads both children.
"""

from __future__ import annotations

import metaxy_sql as mx

video = mx.FeatureSpec(
    key="video/full",
    id_columns=["sample_uid"],
    fields=[
        mx.FieldSpec(key="audio", code_version="1"),
        mx.FieldSpec(key="frames", code_version="1"),
    ],
    description="Raw videos: an audio track and frames.",
)
transcript = mx.FeatureSpec(
    key="transcript/whisper",
    id_columns=["sample_uid"],
    deps=["video/full"],
    fields=[
        mx.FieldSpec(key="text", code_version="1",
                     deps=[mx.FieldDep(feature="video/full", fields=["audio"])]),
    ],
    description="Whisper transcripts of the audio track.",
)
face_crop = mx.FeatureSpec(
    key="video/face_crop",
    id_columns=["sample_uid"],
    deps=["video/full"],
    fields=[mx.FieldSpec(key="frames", code_version="1")],  # default mapping: <- video/full.frames
    description="Frames cropped around the face.",
)
talking_head = mx.FeatureSpec(
    key="video/talking_head",
    id_columns=["sample_uid"],
    deps=["transcript/whisper", "video/face_crop"],
    fields=[mx.FieldSpec(key="clip", code_version="1")],  # default: every upstream field
    description="Training clips: cropped face frames aligned with the transcript.",
)

graph = mx.FeatureGraph([video, transcript, face_crop, talking_head])
