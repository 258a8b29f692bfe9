"""The command line, driven as a user would: every command and flag, on DuckDB and on the
other engines where a command touches a store (the ``engine`` fixture)."""

from __future__ import annotations

import datetime as dt
import importlib
import importlib.metadata
import itertools
import json
import math
import os
import re
from pathlib import Path
from typing import Any

import click
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.cli import progress as progress_mod
from metaxy_sql.cli.options import add_common_options
from metaxy_sql.compile.dialects import dialect_name, get_dialect
from metaxy_sql.compile.render import resolve_sql
from metaxy_sql.engine import system
from metaxy_sql.examples import seed

SEED = ["-e", "metaxy_sql.examples.seed"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    for var in ("METAXY_SQL_STORE", "METAXY_SQL_ENTRYPOINTS"):
        monkeypatch.delenv(var, raising=False)
    return CliRunner()


def run(runner: CliRunner, *args: str, code: int = 0) -> str:
    """stdout of a successful command; stdout and stderr of a failing one."""
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout if code == 0 else result.output


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


@pytest.mark.parametrize("text", [
    'entrypoints = ["metaxy_sql.examples.seed"]\n',                       # top-level keys
    '[tool.metaxy-sql]\nentrypoints = ["metaxy_sql.examples.seed"]\n',    # pyproject's table
    'entrypoints = "metaxy_sql.examples.seed"\n',                         # one module, a string
])
def test_metaxy_sql_toml_forms(runner: CliRunner, tmp_path: Path, text: str) -> None:
    (tmp_path / "metaxy-sql.toml").write_text(text)
    assert "video/face_crop" in run(runner, "graph")


def test_config_entrypoints_not_module_names(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "metaxy-sql.toml").write_text("entrypoints = [1, 2]\n")
    out = run(runner, "graph", code=1)
    assert "entrypoints must be a list of module names" in out and out.count("\n") == 1


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


# -- store commands on every engine --------------------------------------------------------------
_counter = itertools.count()


@pytest.fixture
def url(engine: str) -> str:
    """A fresh store URL on ``engine`` (nothing created yet)."""
    module = importlib.import_module(f"tests.engines.{engine}")
    return str(module.fresh_url(f"cli{os.getpid()}_{next(_counter)}"))


def samples(n: int, frames: str = "f") -> list[dict[str, Any]]:
    return [{"sample_uid": f"v{i}",
             "metaxy_provenance_by_field": {"audio": f"a{i}", "frames": f"{frames}{i}"}}
            for i in range(n)]


def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What the CLI's JSON must hold for Arrow rows: maps as objects, times as ISO text."""
    def value(v: Any) -> Any:
        if isinstance(v, list) and v and all(isinstance(x, tuple) and len(x) == 2 for x in v):
            return {k: value(x) for k, x in v}
        if isinstance(v, dt.datetime):
            return v.isoformat(sep=" ")
        return v
    return [{k: value(v) for k, v in row.items()} for row in rows]


def test_write_read_and_history(runner: CliRunner, url: str, tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(samples(3)), tmp_path / "first.parquet")
    out = run(runner, *SEED, "write", "video/full", "first.parquet", "--store", url)
    assert out == "wrote 3 rows to video/full\n"
    (tmp_path / "second.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in samples(2, frames="g")))
    run(runner, "write", "video/full", "second.jsonl", *SEED, "--store", url)
    lines = run(runner, "read", "video/full", *SEED, "--store", url).splitlines()
    rows = [json.loads(line) for line in lines]
    # the latest state: one row per sample, v0 and v1 from the second write
    assert [r["sample_uid"] for r in rows] == ["v0", "v1", "v2"]
    assert [r["metaxy_provenance_by_field"] for r in rows] == [
        {"audio": "a0", "frames": "g0"}, {"audio": "a1", "frames": "g1"},
        {"audio": "a2", "frames": "f2"}]
    history = run(runner, "read", "video/full", "--history", "--where", "sample_uid = 'v1'",
                  *SEED, "--store", url)
    hist = [json.loads(line) for line in history.splitlines()]
    assert [(r["metaxy_provenance_by_field"]["frames"], r["metaxy_superseded"]) for r in hist] \
        == [("f1", True), ("g1", False)]
    cut = runner.invoke(cli, ["read", "video/full", "--limit", "2", *SEED, "--store", url])
    assert len(cut.stdout.splitlines()) == 2
    assert cut.stderr.startswith("(the first 2 rows; --limit N shows more")
    whole = runner.invoke(cli, ["read", "video/full", "--limit", "3", *SEED, "--store", url])
    assert len(whole.stdout.splitlines()) == 3 and whole.stderr == ""  # nothing was cut
    # --format json parses and equals the Python API's answer
    for args, kwargs in ((["--limit", "0"], {}),
                         (["--history", "--where", "sample_uid <> 'v2'"],
                          {"history": True, "where": "sample_uid <> 'v2'"})):
        got = json.loads(run(runner, "read", "video/full", *args, "--format", "json", *SEED,
                             "--store", url))
        with mx.connect(url, graph=seed.graph, create=False) as store:
            assert got == as_json(store.read("video/full", **kwargs).to_pylist())
    assert len(got) == 4


def test_csv_numbers_keep_their_text(runner: CliRunner, url: str, tmp_path: Path) -> None:
    """CSV has no types: a column is read as numbers only when every cell is the number's own
    text. An id ``0042`` is another sample than ``42``, so it stays the string it was written
    as; ``1.50`` stays text too; ``7`` and ``2.5`` are numbers."""
    (tmp_path / "rows.csv").write_text(
        'sample_uid,path,metaxy_provenance_by_field\n'
        '0042,1.50,"{""audio"": ""a1"", ""frames"": ""f1""}"\n'
        '7,2.5,"{""audio"": ""a2"", ""frames"": ""f2""}"\n')
    run(runner, *SEED, "--store", url, "write", "video/full", "rows.csv")
    rows = [json.loads(line) for line in
            run(runner, *SEED, "--store", url, "read", "video/full").splitlines()]
    assert sorted((r["sample_uid"], r["path"]) for r in rows) == [("0042", "1.50"), ("7", "2.5")]
    (tmp_path / "n.csv").write_text('n,x\n42,2.5\n-3,0.25\n')
    from metaxy_sql.cli.rows import read_rows

    numbers = read_rows(tmp_path / "n.csv", "n.csv")
    assert numbers.to_pylist() == [{"n": 42, "x": 2.5}, {"n": -3, "x": 0.25}]


def test_csv_nan_and_text_na_are_kept(runner: CliRunner, url: str, tmp_path: Path) -> None:
    """Only an empty cell is NULL: ``NaN``/``inf`` in a float column are those floats (Arrow's
    CSV reader read them as NULL by default, a silently changed value) and a text ``NA`` or
    ``null`` is that text."""
    (tmp_path / "rows.csv").write_text(
        'sample_uid,score,name,metaxy_provenance_by_field\n'
        'v1,NaN,NA,"{""audio"": ""a1"", ""frames"": ""f1""}"\n'
        'v2,,null,"{""audio"": ""a2"", ""frames"": ""f2""}"\n'
        'v3,-inf,x,"{""audio"": ""a3"", ""frames"": ""f3""}"\n'
        'v4,1.5,y,"{""audio"": ""a4"", ""frames"": ""f4""}"\n')
    run(runner, *SEED, "--store", url, "write", "video/full", "rows.csv")
    with mx.connect(url, graph=seed.graph) as store:
        rows = {r["sample_uid"]: r for r in store.read("video/full").to_pylist()}
    assert math.isnan(rows["v1"]["score"]) and rows["v2"]["score"] is None
    assert (rows["v3"]["score"], rows["v4"]["score"]) == (-math.inf, 1.5)
    assert [rows[k]["name"] for k in ("v1", "v2", "v3", "v4")] == ["NA", "null", "x", "y"]


def test_write_csv_and_unreadable_files(runner: CliRunner, url: str, tmp_path: Path) -> None:
    (tmp_path / "rows.csv").write_text(
        'sample_uid,path,metaxy_provenance_by_field\n'
        'v1,v1.mp4,"{""audio"": ""a1"", ""frames"": ""f1""}"\n')
    run(runner, *SEED, "--store", url, "write", "video/full", "rows.csv")
    row = json.loads(run(runner, *SEED, "--store", url, "read", "video/full"))
    assert row["path"] == "v1.mp4"
    assert row["metaxy_provenance_by_field"] == {"audio": "a1", "frames": "f1"}
    for name, content, kind in (("bad.parquet", "xx", "parquet"),
                                ("bad.jsonl", "{oops\n", "JSON lines"),
                                ("bad.csv", 'sample_uid,metaxy_provenance_by_field\nv1,"[1]"\n',
                                 "")):
        (tmp_path / name).write_text(content)
        out = run(runner, *SEED, "--store", url, "write", "video/full", name, code=1)
        assert out.count("\n") == 1 and out.startswith(f"error: {name}"), out
        assert (f"cannot read it as {kind}" if kind else "is not a JSON object") in out
    (tmp_path / "rows.txt").write_text("x")
    out = run(runner, *SEED, "--store", url, "write", "video/full", "rows.txt", code=1)
    assert "use a .parquet, .jsonl or .csv file" in out


def test_resolve_samples_write_records_the_increment(runner: CliRunner, url: str,
                                                     tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(samples(4)), tmp_path / "s.parquet")
    out = run(runner, *SEED, "resolve", "video/full", "--samples", "s.parquet", "--write",
              "--store", url)
    assert out.splitlines() == ["video/full: new 4, stale 0, orphaned 0",
                                "wrote 4 samples of video/full (new 4, stale 0, changed columns 0)"]
    # one sample's frames changed, one sample added: stale 1 + new 1, written in one go
    changed = samples(5)
    changed[2]["metaxy_provenance_by_field"]["frames"] = "new-frames"
    pq.write_table(pa.Table.from_pylist(changed), tmp_path / "s2.parquet")
    out = run(runner, *SEED, "resolve", "video/full", "--samples", "s2.parquet", "--write",
              "--store", url)
    assert out.splitlines() == ["video/full: new 1, stale 1, orphaned 0",
                                "wrote 2 samples of video/full (new 1, stale 1, changed columns 0)"]
    again = run(runner, *SEED, "resolve", "video/full", "--samples", "s2.parquet",
                "--store", url)
    assert again == "video/full: new 0, stale 0, orphaned 0\n"
    with mx.connect(url, graph=seed.graph, create=False) as store:
        assert store.count("video/full") == 5
        frames = {r["sample_uid"]: dict(r["metaxy_provenance_by_field"])["frames"]
                  for r in store.read("video/full").to_pylist()}
        assert frames["v2"] == "new-frames" and frames["v4"] == "f4"
    # downstream of the written root: every transcript is new
    assert run(runner, *SEED, "resolve", "transcript/whisper", "--store", url) == \
        "transcript/whisper: new 5, stale 0, orphaned 0\n"
    # a computed feature is written by its step, never marked done by resolve
    out = run(runner, *SEED, "resolve", "transcript/whisper", "--write", "--store", url, code=1)
    assert "--write records a root feature's sample set only" in out
    with mx.connect(url, graph=seed.graph, create=False) as store:
        assert store.count("transcript/whisper") == 0


def test_resolve_write_records_changed_user_columns(runner: CliRunner, url: str,
                                                    tmp_path: Path) -> None:
    """A root sample whose provenance is unchanged but whose ``dur`` changed is recorded by
    ``resolve --write``: the child's filter and carried column then read the new value."""
    module = f"pipe2_{next(_counter)}"
    (tmp_path / f"{module}.py").write_text(
        "import metaxy_sql as mx\n"
        "class Videos(mx.BaseFeature, spec=mx.FeatureSpec(key='videos', "
        "id_columns=['sample_uid'], fields=[mx.FieldSpec(key='frames', code_version='1'), "
        "mx.FieldSpec(key='audio', code_version='1')])):\n"
        "    dur: float\n"
        "capt = mx.FeatureSpec(key='capt', id_columns=['sample_uid'], deps=[mx.FeatureDep("
        "feature='videos', filters=['dur > 1.0'], columns=['dur'])])\n")
    prov = {"frames": "f1", "audio": "a1"}

    def jsonl(name: str, durs: dict[str, float]) -> None:
        (tmp_path / name).write_text("".join(
            json.dumps({"sample_uid": k, "dur": d, "metaxy_provenance_by_field": prov}) + "\n"
            for k, d in durs.items()))

    jsonl("s1.jsonl", {"v1": 2.0, "v2": 0.5, "v3": 3.0})
    jsonl("s2.jsonl", {"v1": 0.5, "v2": 2.0, "v3": 3.0})
    e = ["-e", module, "--store", url]
    assert run(runner, *e, "resolve", "videos", "--samples", "s1.jsonl", "--write") == (
        "videos: new 3, stale 0, orphaned 0\n"
        "wrote 3 samples of videos (new 3, stale 0, changed columns 0)\n")
    assert run(runner, *e, "resolve", "videos", "--samples", "s2.jsonl", "--write") == (
        "videos: new 0, stale 0, orphaned 0\n"
        "wrote 2 samples of videos (new 0, stale 0, changed columns 2)\n")
    rows = [json.loads(line) for line in run(runner, *e, "read", "videos").splitlines()]
    assert [(r["sample_uid"], r["dur"]) for r in rows] == [("v1", 0.5), ("v2", 2.0), ("v3", 3.0)]
    shown = json.loads(run(runner, *e, "resolve", "capt", "--show", "new", "--format", "json"))
    assert sorted((r["sample_uid"], r["dur"]) for r in shown["rows"]["new"]) == \
        [("v2", 2.0), ("v3", 3.0)]
    # the same file again: nothing differs, nothing is written
    out = json.loads(run(runner, *e, "resolve", "videos", "--samples", "s2.jsonl", "--write",
                         "--format", "json"))
    assert (out["written"], out["written_by_kind"]) == \
        (0, {"new": 0, "stale": 0, "changed_columns": 0})
    assert len(run(runner, *e, "read", "videos", "--history", "--limit", "0").splitlines()) == 5


def test_root_feature_hint_names_the_samples_file(runner: CliRunner, url: str) -> None:
    run(runner, *SEED, "--store", url, "push")
    out = run(runner, *SEED, "--store", url, "resolve", "video/full", code=1)
    assert out.count("\n") == 1 and "pass --samples FILE" in out and "samples=" not in out
    status = run(runner, *SEED, "--store", url, "status")
    assert "resolve it with --samples FILE" in status


def test_format_json_equals_the_python_api(runner: CliRunner, url: str, tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(samples(3)), tmp_path / "s.parquet")
    run(runner, *SEED, "--store", url, "resolve", "video/full", "--samples", "s.parquet",
        "--write")
    run(runner, *SEED, "--store", url, "push")
    result = runner.invoke(cli, [*SEED, "status", "--format", "json", "--store", url],
                           catch_exceptions=False)
    assert result.exit_code == 0 and result.stderr == ""  # no progress with --format json
    status = json.loads(result.stdout)
    shown = json.loads(run(runner, *SEED, "resolve", "transcript/whisper", "--show", "new",
                           "--limit", "2", "--sql", "--format", "json", "--store", url))
    every = json.loads(run(runner, *SEED, "resolve", "transcript/whisper", "--show", "new",
                           "--limit", "0", "--format", "json", "--store", url))
    plan_out = json.loads(run(runner, *SEED, "plan", "--format", "json", "--store", url))
    with mx.connect(url, graph=seed.graph, create=False) as store:
        expected: dict[str, Any] = {}
        for key in seed.graph.keys:
            if seed.graph.is_root(key):
                expected[key] = {"rows": store.count(key), "root": True, "new": None,
                                 "stale": None, "orphaned": None}
            else:
                expected[key] = {"rows": store.count(key), "root": False,
                                 **store.resolve_update(key).counts()}
        assert status == expected
        assert status["transcript/whisper"] == {"rows": 0, "root": False, "new": 3, "stale": 0,
                                                "orphaned": 0}
        inc = store.resolve_update("transcript/whisper")
        assert shown == {"feature": "transcript/whisper", "counts": inc.counts(),
                         "rows": {"new": as_json(inc.new.to_pylist())[:2]}, "sql": inc.sql}
        assert shown["rows"]["new"][0]["metaxy_provenance_by_field"].keys() == {"text"}
        assert every["rows"]["new"] == as_json(inc.new.to_pylist())  # --limit 0: all 3
        assert len(every["rows"]["new"]) == 3
        assert plan_out == json.loads(mx.plan(store).to_json())


def test_delete_and_drop(runner: CliRunner, url: str, tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(samples(5)), tmp_path / "s.parquet")
    run(runner, *SEED, "--store", url, "write", "video/full", "s.parquet")
    (tmp_path / "ids.jsonl").write_text('{"sample_uid": "v0"}\n')
    assert run(runner, *SEED, "--store", url, "delete", "video/full", "ids.jsonl") == \
        "deleted 1 samples of video/full (soft)\n"
    assert run(runner, *SEED, "--store", url, "delete", "video/full", "--where",
               "sample_uid IN ('v1', 'v2')") == "deleted 2 samples of video/full (soft)\n"
    # v3 hard-deleted: its history goes too; v0's tombstone and history stay
    run(runner, *SEED, "--store", url, "delete", "video/full", "--where", "sample_uid = 'v3'",
        "--hard")
    with mx.connect(url, graph=seed.graph, create=False) as store:
        assert store.read("video/full").column("sample_uid").to_pylist() == ["v4"]
        history = store.read("video/full", history=True)
        assert sorted(set(history.column("sample_uid").to_pylist())) == ["v0", "v1", "v2", "v4"]
    out = run(runner, *SEED, "--store", url, "delete", "video/full", code=2)
    assert "give FILE or --where" in out
    out = runner.invoke(cli, [*SEED, "--store", url, "drop", "video/full"], input="n\n")
    assert out.exit_code == 1 and "Aborted" in out.output
    with mx.connect(url, graph=seed.graph, create=False) as store:
        assert store.count("video/full") == 1  # nothing dropped without a yes
    assert run(runner, *SEED, "--store", url, "drop", "video/full", "--yes") == \
        "dropped video/full\n"
    with mx.connect(url, graph=seed.graph, create=False) as store:
        assert store.count("video/full") == 0
        assert store.read("video/full", history=True).num_rows == 0


def test_drop_with_views(runner: CliRunner, url: str, tmp_path: Path) -> None:
    assert "--cascade" in run(runner, "drop", "--help")
    pq.write_table(pa.Table.from_pylist(samples(3)), tmp_path / "s.parquet")
    run(runner, *SEED, "--store", url, "write", "video/full", "s.parquet")
    run(runner, *SEED, "--store", url, "materialize", "--all")
    with mx.connect(url, graph=seed.graph, create=False) as store:
        home = system.current_schema(store.executor)
    out = run(runner, *SEED, "--store", url, "drop", "video/full", "--yes", code=1)
    assert "transcript__whisper__increment" in out and "--cascade" in out
    out = runner.invoke(cli, [*SEED, "--store", url, "drop", "video/full", "--cascade"],
                        input="n\n")
    assert out.exit_code == 1 and f"2 view(s) reading it ({home}.transcript__whisper__increment" \
        in out.output
    assert run(runner, *SEED, "--store", url, "drop", "video/full", "--cascade", "--yes") == (
        f"dropped view {home}.transcript__whisper__increment (increment view of "
        "'transcript/whisper', from materialize)\n"
        f"dropped view {home}.video__face_crop__increment (increment view of "
        "'video/face_crop', from materialize)\n"
        "dropped video/full\n")


# -- options after the command name, version, dialects ---------------------------------------------
def test_store_and_entrypoint_after_every_command(runner: CliRunner) -> None:
    for name, command in cli.commands.items():
        opts = {o for p in command.params for o in p.opts}
        assert {"--store", "-e", "--entrypoint", "--config", "--debug"} <= opts, name
    # a command from another module gets them too, once
    extra = click.command("extra")(lambda: None)
    assert add_common_options(add_common_options(extra)) is extra
    assert sorted(o for p in extra.params for o in p.opts) == [
        "--config", "--debug", "--entrypoint", "--store", "-e"]


def test_options_after_the_command_win(runner: CliRunner, url: str, tmp_path: Path) -> None:
    (tmp_path / "metaxy-sql.toml").write_text(
        'entrypoints = ["metaxy_sql.examples.lineage"]\nstore = "duckdb:///elsewhere.db"\n')
    pq.write_table(pa.Table.from_pylist(samples(2)), tmp_path / "s.parquet")
    other = tmp_path / "other.toml"
    other.write_text('entrypoints = ["metaxy_sql.examples.seed"]\n')
    # config, entrypoints and store all given after the command name
    run(runner, "write", "video/full", "s.parquet", "--config", str(other), "--store", url)
    out = run(runner, "--store", "duckdb:///wrong.db", "status", "-e",
              "metaxy_sql.examples.seed", "--store", url)
    assert out.splitlines()[1].split()[:2] == ["video/full", "2"]
    for args in (["push", "--debug"], ["history"], ["plan"],
                 ["materialize", "--all", "--dry-run"],
                 ["read", "video/full"], ["graph"], ["render", "video/full"]):
        run(runner, *args, "-e", "metaxy_sql.examples.seed", "--store", url)
    assert not (tmp_path / "wrong.db").exists() and not (tmp_path / "elsewhere.db").exists()


def test_version() -> None:
    assert mx.__version__ == importlib.metadata.version("metaxy-sql")
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.stdout == f"metaxy-sql, version {mx.__version__}\n"


@pytest.mark.parametrize(("given", "canonical"), [
    ("PostgreSQL", "postgres"), ("postgresql", "postgres"), ("POSTGRES", "postgres"),
    ("ClickHouse", "clickhouse"), ("chdb", "clickhouse"), ("clickhouses", "clickhouse"),
    ("DuckDB", "duckdb")])
def test_dialect_names_accept_schemes_and_any_case(runner: CliRunner, given: str,
                                                   canonical: str) -> None:
    assert dialect_name(given) == canonical
    assert type(get_dialect(given)) is type(get_dialect(canonical))
    out = run(runner, *SEED, "render", "video/face_crop", "--dialect", given)
    assert out == resolve_sql(seed.graph, "video/face_crop", get_dialect(canonical))[0]


def test_unknown_dialect_lists_the_names(runner: CliRunner) -> None:
    out = run(runner, *SEED, "render", "video/face_crop", "--dialect", "pg", code=2)
    assert "unknown dialect 'pg'" in out and "postgresql" in out
    with pytest.raises(mx.UnsupportedByDialectError, match="unknown dialect 'oracle'"):
        get_dialect("oracle")


# -- progress --------------------------------------------------------------------------------------
def test_progress_plain_lines_on_stderr(runner: CliRunner, url: str, tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(samples(3)), tmp_path / "s.parquet")
    result = runner.invoke(cli, [*SEED, "--store", url, "resolve", "video/full", "--samples",
                                 "s.parquet", "--write"], catch_exceptions=False)
    assert result.exit_code == 0
    assert re.fullmatch(r"read s\.parquet: 3 rows in [\d.]+ s\n"
                        r"write video/full: 3/3 rows in [\d.]+ s\n", result.stderr)
    assert "read s.parquet" not in result.stdout
    for args, line in ((["status"], r"status: 4/4 features"),
                       (["materialize", "--all"], r"materialize: 4/4 features"),
                       (["write", "video/full", "s.parquet"], r"write video/full: 3/3 rows")):
        result = runner.invoke(cli, [*SEED, "--store", url, *args], catch_exceptions=False)
        assert result.exit_code == 0 and re.search(line + r" in [\d.]+ s\n", result.stderr), \
            (args, result.stderr)
        assert line.split(":")[0] + ":" not in result.stdout
    result = runner.invoke(cli, ["demo", "--samples", "5", "--store", "duckdb:///demo.db"],
                           catch_exceptions=False)
    assert re.search(r"^demo: 12/12 steps in [\d.]+ s$", result.stderr, re.M), result.stderr


def test_progress_rich_on_a_terminal(runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_mod, "is_terminal", lambda: True)
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws on the captured stderr as on a tty
    result = runner.invoke(cli, ["demo", "--samples", "5", "--store", "duckdb:///demo.db"],
                           catch_exceptions=False)
    assert result.exit_code == 0
    assert "━" in result.stderr  # rich's bar was drawn (plain mode has none)
    assert re.search(r"demo: 12/12 steps in [\d.]+ s", result.stderr), result.stderr
    # While the bar is drawn, command output is printed above it, each line whole and on a
    # line of its own (click.echo would otherwise write under the bar, onto its line).
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", result.output)
    lines = [part for line in screen.split("\n") for part in line.split("\r")]
    assert "  video/face_crop        new      0  stale      5  orphaned      0   " \
           "(changed fields: frames: 5)" in lines
    assert "3. the little change: video/face_crop frames code_version 1 -> 2" in lines


# -- what `read --where --limit` runs: Store.read(where=, limit=) -----------------------------
def test_store_read_where_and_limit(make_store: Any) -> None:
    store = make_store(seed.graph)
    store.write("video/full", [r | {"path": f"p{i}"} for i, r in enumerate(samples(4))])
    store.write("video/full", [samples(2, frames="g")[1] | {"path": "p1b"}])
    got = store.read("video/full", where="sample_uid IN ('v1', 'v3') OR path = 'p0'")
    assert got.column("sample_uid").to_pylist() == ["v0", "v1", "v3"]
    assert got.column("path").to_pylist() == ["p0", "p1b", "p3"]
    assert store.read("video/full", limit=2).column("sample_uid").to_pylist() == ["v0", "v1"]
    assert store.read("video/full", limit=0).num_rows == 0
    history = store.read("video/full", history=True, where="sample_uid = 'v1'")
    assert history.column("path").to_pylist() == ["p1", "p1b"]
    batches = list(store.iter_batches("video/full", where="path LIKE 'p1%'", batch_size=1))
    assert [b.column("sample_uid").to_pylist() for b in batches] == [["v1"]]
    with pytest.raises(mx.DefinitionError, match=r"reads unknown columns \['nope'\]"):
        store.read("video/full", where="nope = 1")
    with pytest.raises(mx.DefinitionError, match="Lower is not allowed"):
        store.read("video/full", where="lower(path) = 'p0'")
    with pytest.raises(mx.ConfigError, match="limit must be 0 or more"):
        store.read("video/full", limit=-1)
    # a feature never written: nothing to read, but a bad predicate is still refused
    assert store.read("transcript/whisper", where="sample_uid = 'v1'").num_rows == 0
    with pytest.raises(mx.DefinitionError, match="does not parse"):
        store.read("transcript/whisper", where="sample_uid = = 'v1'")


def test_duckdb_draws_no_progress_bar_of_its_own(tmp_path: Path) -> None:
    # DuckDB's bar goes to stdout on long statements and would corrupt `--format json`.
    with mx.connect(f"duckdb:///{tmp_path}/m.db", graph=seed.graph) as store:
        setting = store.executor.fetch("SELECT current_setting('enable_progress_bar') AS on_")
        assert setting.column("on_").to_pylist() == [False]


def test_plain_progress_prints_no_interim_line_once_done(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(progress_mod, "PLAIN_INTERVAL_S", 0.0)
    with progress_mod.progress("write x", 2) as task:
        task.advance(1)  # an interim line: not done yet
        task.advance(1)  # done: only the summary follows
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" in ")[0] for line in lines] == ["write x: 1/2 rows", "write x: 2/2 rows"]
    assert lines[0].endswith(" ...") and not lines[1].endswith(" ...")


def test_store_url_schemes_in_any_case(runner: CliRunner, url: str) -> None:
    scheme, rest = url.split("://", 1)
    shouted = f"{scheme.upper()}://{rest}"
    (Path.cwd() / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in samples(2)))
    run(runner, *SEED, "write", "video/full", "s.jsonl", "--store", shouted)
    with mx.connect(url, graph=seed.graph, create=False) as store:
        assert store.count("video/full") == 2


def test_debug_after_the_command_shows_the_traceback(runner: CliRunner) -> None:
    args = [*SEED, "status", "--store", "duckdb:///missing.db"]
    plain = runner.invoke(cli, args)
    assert plain.exit_code == 1 and "Traceback" not in plain.stderr
    debug = runner.invoke(cli, [*args, "--debug"])
    assert debug.exit_code == 1 and "Traceback" in debug.stderr
    assert debug.stderr.rstrip().splitlines()[-1].startswith("error: store duckdb:///missing.db")


def _strict(text: str) -> Any:
    """``text`` parsed as strict JSON (RFC 8259): bare NaN/Infinity refused, as other
    languages' parsers (JavaScript's JSON.parse, Go's encoding/json) refuse them."""
    def refuse(token: str) -> Any:
        raise ValueError(f"not strict JSON: bare {token}")
    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict_with_nan_and_infinity(runner: CliRunner, url: str,
                                                      tmp_path: Path) -> None:
    """NaN and infinite floats (a scalar float column keeps them on every engine) are printed
    as null in every JSON output: ``read`` (text lines and --format json) and ``resolve --show``
    of carried columns."""
    module = f"nan_features_{next(_counter)}"
    (tmp_path / f"{module}.py").write_text(
        "import metaxy_sql as mx\n"
        "video = mx.FeatureSpec(key='video/full', id_columns=['sample_uid'])\n"
        "crop = mx.FeatureSpec(key='video/crop', id_columns=['sample_uid'], deps=[\n"
        "    mx.FeatureDep(feature='video/full', columns=['score'])])\n")
    scores = [float("nan"), float("inf"), float("-inf"), 1.5]
    pq.write_table(pa.table({
        "sample_uid": [f"v{i}" for i in range(4)], "score": scores,
        "metaxy_provenance_by_field": pa.array([[("default", f"h{i}")] for i in range(4)],
                                               pa.map_(pa.string(), pa.string()))}),
        tmp_path / "s.parquet")
    e = ["-e", module, "--store", url]
    run(runner, *e, "write", "video/full", "s.parquet")
    expected = [None, None, None, 1.5]  # the README: NaN and +-infinity print as null
    lines = run(runner, *e, "read", "video/full").splitlines()
    assert [_strict(line)["score"] for line in lines] == expected
    rows = _strict(run(runner, *e, "read", "video/full", "--format", "json"))
    assert [r["score"] for r in rows] == expected
    shown = _strict(run(runner, *e, "resolve", "video/crop", "--show", "new", "--limit", "0",
                        "--format", "json"))
    assert sorted((r["sample_uid"], r["score"]) for r in shown["rows"]["new"]) == \
        [(f"v{i}", s) for i, s in enumerate(expected)]
    text = run(runner, *e, "resolve", "video/crop", "--show", "new", "--limit", "0")
    assert sorted(_strict(line)["score"] is None for line in text.splitlines()[1:]) == \
        [False, True, True, True]


def test_dumps_is_strict_json_at_any_depth() -> None:
    from metaxy_sql.cli.rows import dumps

    value = {"a": float("nan"), "b": [1.0, float("inf"), {"c": (float("-inf"), 2)}],
             "d": "NaN", "e": 0.1}
    assert _strict(dumps(value)) == {"a": None, "b": [1.0, None, {"c": [None, 2]}], "d": "NaN",
                                     "e": 0.1}


def test_empty_store_url_is_an_error_not_the_default_store(runner: CliRunner, url: str,
                                                          tmp_path: Path) -> None:
    (tmp_path / "metaxy-sql.toml").write_text(
        f'entrypoints = ["metaxy_sql.examples.seed"]\nstore = "{url}"\n')
    pq.write_table(pa.Table.from_pylist(samples(2)), tmp_path / "two.parquet")
    pq.write_table(pa.Table.from_pylist(samples(3, frames="g")), tmp_path / "three.parquet")
    run(runner, "write", "video/full", "two.parquet")  # into the config's store
    empty = "--store is empty: give a store URL, e.g. --store duckdb:///meta.db"
    for args in (["write", "video/full", "three.parquet", "--store", ""],
                 ["--store", "", "write", "video/full", "three.parquet"],
                 ["--store", " ", "status"], ["rebase", "video/face_crop", "--store", ""],
                 ["demo", "--store", ""]):
        out = run(runner, *args, code=1)
        assert out.startswith(f"error: {empty}") and out.count("\n") == 1, args
    out = run(runner, "copy", "--from", "", "--to", "duckdb:///copy.db", code=1)
    assert out == "error: --from is empty: give a store URL, e.g. --from duckdb:///meta.db\n"
    assert "--to is empty" in run(runner, "copy", "--from", url, "--to", "", code=1)
    assert not (tmp_path / "copy.db").exists() and not (tmp_path / "metaxy-demo.db").exists()
    with mx.connect(url, graph=seed.graph, create=False) as store:  # nothing written to it
        assert store.read("video/full", history=True).num_rows == 2


def test_delete_where_errors_name_delete(runner: CliRunner, url: str, tmp_path: Path) -> None:
    pq.write_table(pa.Table.from_pylist(samples(2)), tmp_path / "s.parquet")
    run(runner, *SEED, "--store", url, "write", "video/full", "s.parquet")
    for hard in ([], ["--hard"]):
        out = run(runner, *SEED, "--store", url, "delete", "video/full", *hard, "--where",
                  "nope = 1", code=1)
        assert out.startswith("error: delete 'video/full': where= ('nope = 1') reads unknown "
                              "columns ['nope']"), out
        assert "read 'video" not in out
    with mx.connect(url, graph=seed.graph, create=False) as store:
        assert store.read("video/full").num_rows == 2
