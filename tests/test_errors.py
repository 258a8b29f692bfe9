"""Bad input gets a typed error naming the culprit and the fix."""

from __future__ import annotations

import importlib
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.cli.main import _Group
from metaxy_sql.examples import seed
from metaxy_sql.model import names

ROW = {"sample_uid": "v1", "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}


@pytest.mark.parametrize(("rows", "match"), [
    ([{"metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}],
     r"video/full.*lack id columns \['sample_uid'\]"),
    ([ROW | {"sample_uid": None}], r"id column 'sample_uid' is null in 1 rows"),
    ([ROW, ROW], r"appear more than once in one write \(e.g. \{'sample_uid': 'v1'\}\)"),
    ([ROW | {"metaxy_provenance_by_field": {"audio": "a", "frames": "f", "pixels": "p"}}],
     r"unknown field keys \['pixels'\]; the feature's fields are \['audio', 'frames'\]"),
    ([ROW | {"metaxy_provenance_by_field": {"audio": "a"}}], r"lacks fields \['frames'\]"),
    ([{"sample_uid": "v1"}], r"lack metaxy_provenance_by_field"),
    ([ROW | {"metaxy_secret": 1}], r"'metaxy_secret' uses the reserved prefix"),
    ([ROW, ROW | {"sample_uid": "v2", "metaxy_provenance_by_field": {"audio": "a", "frames": 1}}],
     r"^feature 'video/full': column 'metaxy_provenance_by_field' row 1 maps field 'frames' to "
     r"1 \(int\); give each field's value as a string \(e.g. '1'\)$"),
    ([ROW | {"metaxy_provenance_by_field": {"audio": "a", 7: "f"}}],
     r"column 'metaxy_provenance_by_field' row 0 has field name 7 \(int\)"),
])
def test_bad_writes(make_store: Any, rows: list[dict[str, Any]], match: str) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match=match):
        store.write("video/full", rows)


def test_duplicate_samples_name_resolve_update_not_a_write(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match=r"1 ids appear more than once in the samples= of one "
                                           r"resolve_update \(e.g. \{'sample_uid': 'v1'\}\)"):
        store.resolve_update("video/full", samples=[ROW, ROW])


def test_int_provenance_in_samples_names_column_row_and_field(make_store: Any) -> None:
    store = make_store(seed.graph)
    bad = ROW | {"sample_uid": "v2", "metaxy_provenance_by_field": {"audio": 1, "frames": "f"}}
    with pytest.raises(mx.DataError, match=r"column 'metaxy_provenance_by_field' row 1 maps "
                                           r"field 'audio' to 1 \(int\)"):
        store.resolve_update("video/full", samples=[ROW, bad])


def test_downstream_write_without_provenance_says_where_it_comes_from(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match=r"resolve_update\('video/face_crop'\).new"):
        store.write("video/face_crop", [{"sample_uid": "v1"}])


def test_unknown_feature(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.UnknownFeatureError, match=r"'video/nope'.*video/full"):
        store.resolve_update("video/nope")


def test_root_needs_samples_and_children_refuse_them(make_store: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.DataError, match="root feature: pass samples="):
        store.resolve_update("video/full")
    with pytest.raises(mx.DataError, match="without samples="):
        store.resolve_update("video/face_crop", samples=[ROW])


def spec(key: str, deps: list[str] = (), **kw: Any) -> mx.FeatureSpec:  # type: ignore[assignment]
    return mx.FeatureSpec(key=key, id_columns=["id"], deps=list(deps), **kw)


def test_cycle() -> None:
    with pytest.raises(mx.DefinitionError, match=r"\['a', 'b'\] depend on each other in a cycle"):
        mx.FeatureGraph([spec("a", ["b"]), spec("b", ["a"])])


def test_missing_feature_dep() -> None:
    with pytest.raises(mx.DefinitionError, match=r"'b' depends on 'a', which is not in the graph"):
        mx.FeatureGraph([spec("b", ["a"])])


def test_missing_field_dep() -> None:
    child = spec("b", ["a"], fields=[mx.FieldSpec(
        key="x", deps=[mx.FieldDep(feature="a", fields=["nope"])])])
    with pytest.raises(mx.DefinitionError, match=r"b.x depends on a fields \['nope'\]"):
        mx.FeatureGraph([spec("a"), child])


def test_field_dep_outside_feature_deps() -> None:
    child = spec("b", [], fields=[mx.FieldSpec(key="x", deps=[mx.FieldDep(feature="a")])])
    with pytest.raises(mx.DefinitionError, match=r"not among the deps of 'b'"):
        mx.FeatureGraph([spec("a"), child])


@pytest.mark.parametrize("key", ["a/b; DROP TABLE x", "", "a//b", "a/b c", "'x'"])
def test_bad_keys_rejected_at_definition(key: str) -> None:
    with pytest.raises(mx.DefinitionError, match="invalid feature key"):
        spec(key)


def test_bad_id_columns() -> None:
    with pytest.raises(mx.DefinitionError, match="reserved prefix"):
        mx.FeatureSpec(key="a", id_columns=["metaxy_id"])
    with pytest.raises(mx.DefinitionError, match="at least one column"):
        mx.FeatureSpec(key="a", id_columns=[])


def test_mismatched_ids_on_one_to_one_dep() -> None:
    child = mx.FeatureSpec(key="b", id_columns=["other"], deps=["a"])
    with pytest.raises(mx.DefinitionError, match=r"'b' has id_columns \['other'\]"):
        mx.FeatureGraph([spec("a"), child])


def test_bad_store_urls() -> None:
    with pytest.raises(mx.ConfigError, match="unsupported scheme 'mysql'"):
        mx.connect("mysql://x", graph=seed.graph)
    with pytest.raises(mx.StoreConnectionError, match="does not exist"):
        mx.connect("duckdb:////nonexistent/dir/x.db", graph=seed.graph)


def test_keys_sharing_a_table_name() -> None:
    with pytest.raises(mx.DefinitionError, match="would share the table 'a__b'"):
        mx.FeatureGraph([spec("a/b"), spec("a__b")])


# -- the command line: every error is one line on stderr, naming the cause and the fix -----------
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``metaxy-sql ARGS`` in a process of its own, as a shell would run it."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("METAXY_SQL_STORE", "METAXY_SQL_ENTRYPOINTS")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return subprocess.run([sys.executable, "-c", "from metaxy_sql.cli import main; main()", *args],
                          capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def _one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ") and "Traceback" not in done.stderr
    return lines[0]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_engine_error_is_one_line_naming_the_file_with_the_sql(engine: str,
                                                               tmp_path: Path) -> None:
    url = importlib.import_module(f"tests.engines.{engine}").fresh_url(
        f"cli_err_{os.getpid()}_{tmp_path.name}")
    with mx.connect(url, graph=seed.graph) as store:
        store.resolve_update("video/full", samples=[ROW])
        store.write("video/full", [ROW])
        # A table changed behind the store's back: every engine refuses the statement.
        store.executor.execute(
            f'ALTER TABLE "{names.table("video/full")}" DROP COLUMN "{names.SUPERSEDED}"')
    args = ["-e", "metaxy_sql.examples.seed", "--store", url, "resolve", "video/face_crop"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    shown = {"duckdb": "duckdb", "clickhouse": "clickhouse", "postgres": "postgres"}[engine]
    assert lines[0].startswith(f"error: {shown}: ")
    found = re.search(r"full message and SQL in (\S+\.sql); --debug shows the SQL\)$", lines[0])
    assert found, lines[0]
    saved = Path(found.group(1)).read_text()
    assert saved.startswith(f"-- {shown} refused this statement:\n")
    assert lines[0].removeprefix(f"error: {shown}: ").split(" (full message")[0] in saved
    assert "WITH" in saved and "metaxy_superseded" in saved and saved.count("\n") > 20
    Path(found.group(1)).unlink()
    debug = CliRunner().invoke(cli, ["--debug", *args])
    assert debug.exit_code == 1 and "Traceback" in debug.stderr
    assert debug.stderr.splitlines()[-1].startswith(f"error: {shown}: ")


def test_clickhouse_server_down_is_one_line(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"clickhouse://127.0.0.1:{port}/metaxy"
    line = _one_error_line(_cli("-e", "metaxy_sql.examples.seed", "--store", url, "status",
                                cwd=tmp_path))
    assert line == (f"error: cannot connect to {url}: no ClickHouse server answers at "
                    f"127.0.0.1:{port} (connection refused); start the server, or fix the "
                    "host and port in the store URL")
    with pytest.raises(mx.StoreConnectionError, match="connection refused"):
        mx.connect(url, graph=seed.graph)


def test_postgres_server_down_names_no_repository_file(tmp_path: Path) -> None:
    port = _closed_port()
    url = f"postgresql://metaxy:secret@127.0.0.1:{port}/metaxy"
    line = _one_error_line(_cli("-e", "metaxy_sql.examples.seed", "--store", url, "status",
                                cwd=tmp_path))
    assert line == (f"error: cannot connect to postgresql://metaxy:***@127.0.0.1:{port}/metaxy: "
                    f"no Postgres server answers at 127.0.0.1:{port}; start the server, or fix "
                    "the host and port in the store URL")
    with pytest.raises(mx.StoreConnectionError, match="no Postgres server answers"):
        mx.connect(url, graph=seed.graph)


def test_messages_name_no_repository_file() -> None:
    """A user has the package, not our repository: no message points at its CI scripts."""
    package = Path(mx.__file__).parent
    for path in package.rglob("*.py"):
        assert ".ci/" not in path.read_text(), f"{path.relative_to(package)} mentions .ci/"


def _hold(tmp_path: Path, code: str) -> subprocess.Popen[str]:
    holder = subprocess.Popen([sys.executable, "-c", code + "; print('open', flush=True); "
                               "import time; time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True, cwd=tmp_path,
                              env={**os.environ,
                                   "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    return holder


def test_chdb_path_held_by_another_process_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "chdb"
    holder = _hold(tmp_path, "import metaxy_sql as mx; from metaxy_sql.examples import seed; "
                             f"s = mx.connect('chdb://{path}', graph=seed.graph)")
    try:
        line = _one_error_line(_cli("-e", "metaxy_sql.examples.seed", "--store",
                                    f"chdb://{path}", "status", cwd=tmp_path))
    finally:
        holder.kill()
        holder.wait()
    assert line == (f"error: cannot open chdb://{path}: another process (PID {holder.pid}) "
                    f"holds this chdb data path ({path}/status is locked); a chdb data path is "
                    "one process's at a time: close that process (or its store) first, or give "
                    "this one another path")


def test_duckdb_file_held_by_another_process_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    holder = _hold(tmp_path, f"import duckdb; c = duckdb.connect('{path}')")
    try:
        line = _one_error_line(_cli("-e", "metaxy_sql.examples.seed", "--store",
                                    f"duckdb:///{path}", "status", cwd=tmp_path))
    finally:
        holder.kill()
        holder.wait()
    assert line == (f"error: cannot open duckdb:///{path}: another process (PID {holder.pid}) "
                    "holds this DuckDB file; a DuckDB file is one process's at a time: close "
                    "that process (or its store) first, or use another file")


def _group_raising(error: Exception) -> click.Group:
    """A command group of the CLI's own kind whose one command raises ``error``."""

    @click.group(cls=_Group)
    @click.option("--debug", is_flag=True)
    def group(debug: bool) -> None:
        pass

    @group.command()
    def fail() -> None:
        raise error

    return group


def test_a_long_message_prints_its_first_line() -> None:
    group = _group_raising(mx.DataError("feature 'a': bad rows; fix them\nrow 1: ...\nrow 2"))
    result = CliRunner().invoke(group, ["fail"])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == ("error: feature 'a': bad rows; fix them (--debug shows the full "
                             "message)\n")
    debug = CliRunner().invoke(group, ["--debug", "fail"])
    assert "row 2" in debug.stderr and "Traceback" in debug.stderr


def test_an_unexpected_error_is_one_line_calling_itself_a_bug() -> None:
    result = CliRunner().invoke(_group_raising(RuntimeError("went wrong\nat line 2")), ["fail"])
    assert result.exit_code == 1
    assert result.stderr == ("error: unexpected RuntimeError: went wrong (a bug in metaxy-sql: "
                             "--debug shows the traceback; please report it)\n")


def test_a_refused_file_operation_is_one_line_not_a_bug() -> None:
    error = FileNotFoundError(2, "No such file or directory", "samples.parquet")
    result = CliRunner().invoke(_group_raising(error), ["fail"])
    assert result.exit_code == 1
    assert result.stderr == "error: No such file or directory: samples.parquet\n"


def test_an_entrypoint_that_fails_on_import_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "broken_features.py").write_text("import metaxy_sql as mx\n\nratio = 1 / 0\n")
    env_path = f"{tmp_path}{os.pathsep}{Path(__file__).resolve().parent.parent}"
    done = subprocess.run(
        [sys.executable, "-c", "from metaxy_sql.cli import main; main()", "-e",
         "broken_features", "graph"], capture_output=True, text=True, cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": env_path}, timeout=120)
    line = _one_error_line(done)
    assert line == ("error: entrypoint 'broken_features' failed while importing: "
                    f"ZeroDivisionError: division by zero ({tmp_path / 'broken_features.py'}, "
                    "line 3); fix that module")
    with pytest.raises(mx.DefinitionError, match="failed while importing"):
        from metaxy_sql.model.config import _import

        sys.path.insert(0, str(tmp_path))
        try:
            _import("broken_features")
        finally:
            sys.path.remove(str(tmp_path))


@pytest.mark.parametrize("bad", [0, -1, "10", 2.5, True, None])
def test_batch_sizes_are_checked_at_the_call(make_store: Any, bad: Any) -> None:
    """Every ``batch_size`` is a whole number of rows, 1 or more: anything else is a
    ConfigError naming it, raised when called (not at the first batch), before any query."""
    store = make_store(seed.graph)
    rows = [{"sample_uid": f"v{i}", "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}
            for i in range(3)]
    inc = store.resolve_update("video/full", samples=rows)
    calls = {
        "increment": lambda: inc.new.iter_batches(bad),
        "lazy polars": lambda: inc.new.to_polars(lazy=True, batch_size=bad),
        "store": lambda: store.iter_batches("video/full", batch_size=bad),
        "rebase": lambda: store.rebase("video/face_crop", batch_size=bad),
    }
    for what, call in calls.items():
        with pytest.raises(mx.ConfigError, match="batch_size must be"):
            call()
            pytest.fail(f"{what}: batch_size={bad!r} accepted")
    with mx.connect("duckdb://:memory:", seed.graph) as target, \
            pytest.raises(mx.ConfigError, match="batch_size must be"):
        mx.copy(store, target, batch_size=bad)
    # batch_size=1 (the smallest): every row, at most one per batch
    sizes = [b.num_rows for b in inc.new.iter_batches(1)]
    assert sum(sizes) == 3 and max(sizes) == 1
    store.write("video/full", inc.new)
    sizes = [b.num_rows for b in store.iter_batches("video/full", batch_size=1)]
    assert sum(sizes) == 3 and max(sizes) == 1


@pytest.mark.parametrize("bad", ["nope", None, [seed.graph]])
def test_with_graph_needs_a_feature_graph(make_store: Any, bad: Any) -> None:
    store = make_store(seed.graph)
    with pytest.raises(mx.ConfigError, match=r"with_graph.*needs a FeatureGraph"):
        store.with_graph(bad)
    assert store.with_graph(seed.graph).graph is seed.graph
