"""The command line, driven as a user would (DuckDB; the CLI is engine-agnostic)."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from metaxy_sql.cli import cli
from metaxy_sql.compile.dialects import get_dialect
from metaxy_sql.compile.render import resolve_sql
from metaxy_sql.examples import seed

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


def test_graph_text_and_mermaid(runner: CliRunner) -> None:
    out = run(runner, *SEED, "graph")
    assert "transcript/whisper" in out and ".text  code_version 1  <- video/full.audio" in out
    mermaid = run(runner, *SEED, "graph", "--format", "mermaid")
    assert mermaid.startswith("flowchart LR")
    assert 'video__full -- "audio → text" --> transcript__whisper' in mermaid


@pytest.mark.parametrize("dialect", ["duckdb", "clickhouse", "postgres"])
def test_render_prints_the_statement(runner: CliRunner, dialect: str) -> None:
    out = run(runner, *SEED, "render", "video/face_crop", "--dialect", dialect)
    assert out == resolve_sql(seed.graph, "video/face_crop", get_dialect(dialect))[0]


def test_config_file_store_resolve_and_status(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.metaxy-sql]\nentrypoints = ["metaxy_sql.examples.seed"]\n'
        'store = "duckdb:///meta.db"\n')
    rows = [{"sample_uid": f"v{i}", "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}
            for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "samples.parquet")
    run(runner, "push")  # read-only commands never create the store: a writer does
    out = run(runner, "resolve", "video/full", "--samples", "samples.parquet", "--show", "new",
              "--limit", "2")
    lines = out.splitlines()
    assert lines[0] == "video/full: new 3, stale 0, orphaned 0"
    assert len(lines) == 3 and json.loads(lines[1])["sample_uid"] == "v0"
    status = run(runner, "status")
    assert "video/full" in status and "transcript/whisper" in status
    partial = run(runner, "resolve", "video/full", "--samples", "samples.parquet",
                  "--where", "sample_uid IN ('v0', 'v2')")
    assert partial.splitlines()[0] == "video/full: new 2, stale 0, orphaned 0"


def test_status_after_demo(runner: CliRunner) -> None:
    out = run(runner, "demo", "--samples", "20", "--store", "duckdb:///demo.db")
    assert "video/face_crop        new      0  stale     20" in out
    assert "(changed fields: frames: 20)" in out
    status = run(runner, *SEED, "--store", "duckdb:///demo.db", "status")
    face = next(line for line in status.splitlines() if line.startswith("video/face_crop"))
    # rows, new, stale, orphaned: the seed graph (crop v1) sees the bumped rows as stale
    assert face.split()[1:] == ["20", "0", "20", "0"]


def test_errors_are_one_line_and_exit_nonzero(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["graph"])
    assert result.exit_code == 1
    assert result.output.startswith("error: no feature definitions")
    result = runner.invoke(cli, [*SEED, "resolve", "video/face_crop"])
    assert result.exit_code == 1 and "error: no store" in result.output
    result = runner.invoke(cli, [*SEED, "--store", "duckdb:///m.db", "resolve", "nope/x"])
    assert result.exit_code == 1 and "unknown feature 'nope/x'" in result.output


def test_environment_overrides(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METAXY_SQL_ENTRYPOINTS", "metaxy_sql.examples.seed")
    assert "video/full" in run(runner, "graph")


def test_entrypoint_with_feature_classes(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "my_features.py").write_text(
        "import metaxy_sql as mx\n"
        "class Video(mx.BaseFeature, spec=mx.FeatureSpec(key='v', id_columns=['id'])):\n"
        "    path: str\n"
        "crop = mx.FeatureSpec(key='c', id_columns=['id'], deps=['v'])\n")
    (tmp_path / "metaxy-sql.toml").write_text('entrypoints = ["my_features"]\n')
    out = run(runner, "graph")
    assert out.splitlines()[0].startswith("v  ids=['id']") and "c  ids=['id']  deps: v" in out


@pytest.mark.parametrize(("name", "content"), [
    ("broken.jsonl", b"{bad\n"), ("empty.jsonl", b""), ("broken.parquet", b"xx")])
def test_unreadable_samples_file_is_one_line(runner: CliRunner, tmp_path: Path, name: str,
                                             content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    run(runner, *SEED, "--store", "duckdb:///meta.db", "push")  # the store exists
    out = run(runner, *SEED, "--store", "duckdb:///meta.db", "resolve", "video/full",
              "--samples", str(path), code=1)
    assert out.count("\n") == 1 and out.startswith(f"error: --samples {path}: cannot read it")
    assert "Traceback" not in out


def test_chdb_path_held_by_another_process_says_so(tmp_path: Path) -> None:
    import subprocess
    import sys
    import time

    path = tmp_path / "chdb"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time, metaxy_sql as mx; from metaxy_sql.examples import seed; "
        f"s = mx.connect('chdb://{path}', graph=seed.graph); print('open', flush=True); "
        "time.sleep(60)")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        started = time.monotonic()
        second = subprocess.run([sys.executable, "-c", (
            "import sys; from metaxy_sql.cli import main; sys.argv = ['metaxy-sql', '-e', "
            f"'metaxy_sql.examples.seed', '--store', 'chdb://{path}', 'status']; main()")],
            capture_output=True, text=True, timeout=120)
        assert second.returncode == 1, (second.stdout, second.stderr, time.monotonic() - started)
        ours = [line for line in (second.stdout + second.stderr).splitlines()
                if line.startswith("error:")]
        assert len(ours) == 1 and "one process's at a time" in ours[0], second.stderr
    finally:
        holder.kill()
        holder.wait()
