"""The versioning story as data, run on every engine.

Each scenario: a sequence of pipeline runs (root samples + definitions); after the last run's
resolves, the per-feature counts and changed fields must match. Every run also checks every
stored hash against the Python oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

import metaxy_sql as mx
from metaxy_sql.examples import seed
from tests.pipeline import check_oracle, samples, step

V = "video/full"
T = "transcript/whisper"
C = "video/face_crop"
H = "video/talking_head"

BASE = {
    "v1": {"audio": "a1", "frames": "f1"},
    "v2": {"audio": "a2", "frames": "f2"},
    "v3": {"audio": "a3", "frames": "f3"},
}


def bump(spec: mx.FeatureSpec, field_key: str, code_version: str) -> mx.FeatureSpec:
    fields = [f.model_copy(update={"code_version": code_version}) if f.key == field_key else f
              for f in spec.fields]
    return spec.model_copy(update={"fields": tuple(fields)})


def graph(*, crop_frames: str = "1", transcript_text: str = "1") -> mx.FeatureGraph:
    return mx.FeatureGraph([
        seed.video, bump(seed.transcript, "text", transcript_text),
        bump(seed.face_crop, "frames", crop_frames), seed.talking_head])


def with_(base: dict[str, dict[str, str]], **changes: dict[str, str] | None) -> dict[str, Any]:
    out = {k: dict(v) for k, v in base.items()}
    for uid, by_field in changes.items():
        if by_field is None:
            out.pop(uid)
        else:
            out[uid] = {**out.get(uid, {}), **by_field}
    return out


def counts(new: int = 0, stale: int = 0, orphaned: int = 0, **changed: int) -> dict[str, Any]:
    return {"new": new, "stale": stale, "orphaned": orphaned, "changed": changed}


ZERO = counts()


@dataclass
class Scenario:
    name: str
    runs: list[tuple[dict[str, Any], dict[str, str]]]  # (root samples, code versions)
    expect: dict[str, dict[str, Any]]
    write_last: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


SCENARIOS = [
    Scenario("first run: everything is new", [(BASE, {})],
             {V: counts(new=3), T: counts(new=3), C: counts(new=3), H: counts(new=3)}),
    Scenario("second resolve right after: nothing to do", [(BASE, {}), (BASE, {})],
             {V: ZERO, T: ZERO, C: ZERO, H: ZERO}),
    Scenario("audio change: transcript stale, face_crop untouched",
             [(BASE, {}), (with_(BASE, v2={"audio": "a2'"}), {})],
             {V: counts(stale=1, audio=1), T: counts(stale=1, text=1), C: ZERO,
              H: counts(stale=1, clip=1)}),
    Scenario("frames change: face_crop stale, transcript untouched",
             [(BASE, {}), (with_(BASE, v1={"frames": "f1'"}), {})],
             {V: counts(stale=1, frames=1), T: ZERO, C: counts(stale=1, frames=1),
              H: counts(stale=1, clip=1)}),
    Scenario("the little change: crop code bump is stale (not new), transcript untouched",
             [(BASE, {}), (BASE, {"crop_frames": "2"})],
             {V: ZERO, T: ZERO, C: counts(stale=3, frames=3), H: counts(stale=3, clip=3)}),
    Scenario("transcript code bump leaves face_crop alone",
             [(BASE, {}), (BASE, {"transcript_text": "2"})],
             {V: ZERO, T: counts(stale=3, text=3), C: ZERO, H: counts(stale=3, clip=3)}),
    Scenario("code bump before rewriting upstream: downstream waits",
             [(BASE, {}), (BASE, {"crop_frames": "2"})],
             {V: ZERO, T: ZERO, C: counts(stale=3, frames=3), H: ZERO}, write_last=False),
    Scenario("removed upstream sample: orphaned downstream",
             [(BASE, {}), (with_(BASE, v3=None), {})],
             {V: counts(orphaned=1), T: counts(orphaned=1), C: counts(orphaned=1),
              H: counts(orphaned=1)}),
    Scenario("added upstream sample: new downstream",
             [(BASE, {}), (with_(BASE, v4={"audio": "a4", "frames": "f4"}), {})],
             {V: counts(new=1), T: counts(new=1), C: counts(new=1), H: counts(new=1)}),
    Scenario("removed then re-added sample: new again",
             [(BASE, {}), (with_(BASE, v3=None), {}), (BASE, {})],
             {V: counts(new=1), T: counts(new=1), C: counts(new=1), H: counts(new=1)}),
    Scenario("tricky provenance strings: separators, empty, unicode",
             [(with_(BASE, v1={"audio": "", "frames": "1:a|b"},
                     v2={"audio": "🎧 ünï", "frames": ""}), {})],
             {V: counts(new=3), T: counts(new=3), C: counts(new=3), H: counts(new=3)}),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_scenario(scenario: Scenario, make_store: Any) -> None:
    report: dict[str, dict[str, Any]] = {}
    for i, (root_samples, versions) in enumerate(scenario.runs):
        store = make_store(graph(**versions))
        last = i == len(scenario.runs) - 1
        report = step(store, samples(root_samples), write=scenario.write_last or not last)
        if scenario.write_last or not last:
            assert check_oracle(store) > 0
    assert report == scenario.expect
