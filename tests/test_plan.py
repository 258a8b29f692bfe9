"""Graph snapshots (push, history) and plan: a change's impact before it runs, on every engine."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.examples import seed
from metaxy_sql.model import names
from tests.pipeline import samples, step
from tests.test_scenarios import graph

C, H, T, V = "video/face_crop", "video/talking_head", "transcript/whisper", "video/full"
BASE = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(5)}


def seeded(make_store: Any) -> mx.Store:
    """The seed pipeline run once, one talking_head sample deleted, definitions pushed."""
    store = make_store(seed.graph)
    step(store, samples(BASE))
    store.delete(H, [{"sample_uid": "v4"}])
    assert mx.push_graph(store).pushed
    return store


def test_plan_before_any_push_says_what_to_do(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.ConfigError, match=r"no graph snapshot .* run `metaxy-sql push`"):
        mx.plan(store)
    assert mx.graph_history(store) == []


def test_push_is_idempotent_and_history_lists_snapshots(make_store: Any) -> None:
    store = make_store(seed.graph)
    first = mx.push_graph(store)
    assert first.pushed and mx.push_graph(store).pushed is False
    tagged = mx.push_graph(store, {"git": "abc'123\\"})
    changed = mx.push_graph(store.with_graph(graph(crop_frames="2")))
    history = mx.graph_history(store)
    assert [s.version for s in history] == [changed.version, tagged.version, first.version]
    assert history[1].tags == {"git": "abc'123\\"} and first.version == tagged.version
    assert history[2].features[C]["fields"]["frames"]["code_version"] == "1"
    assert history[0].features[C]["fields"]["frames"]["code_version"] == "2"
    assert history[2].graph().feature_version(C) == seed.graph.feature_version(C)
    assert names.GRAPH_SNAPSHOTS in store.executor.tables()


def test_plan_frames_bump_matches_what_resolve_shows_after_applying(make_store: Any) -> None:
    store = seeded(make_store)
    bumped = store.with_graph(graph(crop_frames="2"))
    result = mx.plan(bumped)
    assert result.has_changes
    crop, head = result.impact(C), result.impact(H)
    assert (crop.status, crop.stale, crop.stale_by_field) == ("changed", 5, {"frames": 5})
    assert [c.describe() for c in crop.changes] == ["frames: code_version 1 -> 2"]
    assert result.impact(T).status == "unaffected" and result.impact(T).stale == 0
    assert result.impact(V).status == "unaffected"
    assert (head.status, head.follow) == ("downstream", 4)
    assert head.follow_via == ["clip <- video/face_crop.frames"]
    assert "video/face_crop" in result.to_text() and json.loads(result.to_json())["has_changes"]
    applied = step(bumped, samples(BASE))  # apply the change: resolve and write every feature
    assert applied[C]["stale"] == crop.stale and applied[C]["changed"] == {"frames": 5}
    assert applied[T] == {"new": 0, "stale": 0, "orphaned": 0, "changed": {}}
    assert applied[H]["stale"] == head.follow and applied[H]["new"] == 1


def test_plan_dependency_change_added_and_removed_features(make_store: Any) -> None:
    store = seeded(make_store)
    text = seed.transcript.fields[0].model_copy(update={"deps": (
        mx.FieldDep(feature=V, fields=("audio", "frames")),)})
    extra = mx.FeatureSpec(key="video/extra", id_columns=["sample_uid"], deps=[V],
                           fields=[mx.FieldSpec(key="frames")])
    changed = mx.FeatureGraph([seed.video, seed.transcript.model_copy(update={"fields": (text,)}),
                               seed.face_crop, extra])
    result = mx.plan(store.with_graph(changed))
    whisper = result.impact(T)
    assert [c.describe() for c in whisper.changes] == [
        "text: dependencies [video/full.audio] -> [video/full.audio, video/full.frames]"]
    assert whisper.stale_by_field == {"text": 5}
    assert (result.impact("video/extra").status, result.impact("video/extra").new) == ("added", 5)
    removed = result.impact(H)
    assert removed.status == "removed" and "4 stored samples" in removed.note
    assert result.impact(C).status == "unaffected"


def test_plan_without_changes(make_store: Any) -> None:
    store = seeded(make_store)
    result = mx.plan(store)
    assert not result.has_changes
    assert {f.status for f in result.features} == {"unaffected"}
    assert "no definition changes" in result.to_text()


# -- command line (DuckDB: the CLI is engine-agnostic) ----------------------------------------
SEED = ["-e", "metaxy_sql.examples.seed"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for var in ("METAXY_SQL_STORE", "METAXY_SQL_ENTRYPOINTS"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


def test_cli_push_history_plan(runner: CliRunner, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/meta.db"
    with mx.connect(url, graph=seed.graph) as store:
        step(store, samples(BASE))
    out = run(runner, *SEED, "plan", "--store", url, code=1)
    assert "no graph snapshot" in out
    assert run(runner, *SEED, "history", "--store", url).startswith("no graph snapshot")
    assert run(runner, *SEED, "push", "--store", url, "--tag", "git=abc").startswith("pushed")
    assert "already current" in run(runner, *SEED, "push", "--store", url, "--tag", "git=abc")
    assert '{"git": "abc"}' in run(runner, *SEED, "history", "--store", url)
    assert "no definition changes" in run(runner, *SEED, "plan", "--store", url,
                                          "--fail-on-changes")
    bumped = tmp_path / "bumped_defs.py"
    bumped.write_text("from tests.test_scenarios import graph\ngraph = graph(crop_frames='2')\n")
    runner_env = ["-e", "bumped_defs"]
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        out = run(runner, *runner_env, "plan", "--store", url, "--format", "json",
                  "--fail-on-changes", code=1)
    finally:
        sys.path.remove(str(tmp_path))
    doc = json.loads(out)
    crop = next(f for f in doc["features"] if f["feature"] == C)
    assert crop["stale_by_field"] == {"frames": 5} and doc["has_changes"]


def test_cli_materialize_dry_run_and_dbt_sources(runner: CliRunner, tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/meta.db"
    with mx.connect(url, graph=seed.graph) as store:
        step(store, samples(BASE))
    run(runner, *SEED, "materialize", "--store", url, code=2)  # neither FEATURE nor --all
    out = run(runner, *SEED, "materialize", "--store", url, C, "--dry-run")
    ddl = run(runner, *SEED, "render", C, "--ddl")
    assert out.startswith(ddl) and "would be created view main.video__face_crop__increment" in out
    out = run(runner, *SEED, "materialize", "--store", url, "--all", "--dbt-sources",
              "models/sources.yml")
    assert "created   view  main.video__talking_head__increment" in out
    assert "skipped" in out and (tmp_path / "models" / "sources.yml").exists()
    out = run(runner, *SEED, "materialize", "--store", url, "--all", "--schema", "nope", code=1)
    assert "schema 'nope' does not exist" in out
