"""Store paths (issue 12, kind 7): a relative path in a config file is relative to the file's
folder; from --store / METAXY_SQL_STORE to the working directory; read-only commands never
create a store (DuckDB files and chdb data paths/databases)."""

from __future__ import annotations

import gzip
import importlib
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.examples import seed

ROWS = [{"sample_uid": f"v{i}", "metaxy_provenance_by_field": {"audio": "a", "frames": "f"}}
        for i in range(3)]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with a config file naming a relative store; the shell in ``sub/``."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.metaxy-sql]\nentrypoints = ["metaxy_sql.examples.seed"]\n'
        'store = "duckdb:///meta.db"\n')
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    for var in ("METAXY_SQL_STORE", "METAXY_SQL_ENTRYPOINTS"):
        monkeypatch.delenv(var, raising=False)
    return tmp_path


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def _fill(path: Path) -> None:
    with mx.connect(f"duckdb:///{path}", graph=seed.graph) as store:
        store.write("video/full", store.resolve_update("video/full", samples=ROWS).new)


def test_config_store_path_is_relative_to_the_config_file(project: Path) -> None:
    _fill(project / "meta.db")
    code, out = _invoke("status")
    assert code == 0, out
    line = next(ln for ln in out.splitlines() if ln.startswith("video/full"))
    assert line.split()[1] == "3"  # the project's store, not a new one in sub/
    code, out = _invoke("resolve", "transcript/whisper")
    assert (code, out.splitlines()[0]) == (0, "transcript/whisper: new 3, stale 0, orphaned 0")
    assert not (project / "sub" / "meta.db").exists()


def test_store_from_env_or_flag_is_relative_to_the_working_directory(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(project / "sub" / "other.db")
    monkeypatch.setenv("METAXY_SQL_STORE", "duckdb:///other.db")
    code, out = _invoke("resolve", "transcript/whisper")
    assert (code, out.splitlines()[0]) == (0, "transcript/whisper: new 3, stale 0, orphaned 0")
    monkeypatch.delenv("METAXY_SQL_STORE")
    code, out = _invoke("--store", "duckdb:///other.db", "status")
    assert code == 0 and "video/full" in out


@pytest.mark.parametrize("command", [["status"], ["resolve", "transcript/whisper"], ["plan"],
                                     ["history"], ["materialize", "--all", "--dry-run"]])
def test_read_only_commands_never_create_a_duckdb_store(project: Path,
                                                        command: list[str]) -> None:
    code, out = _invoke(*command)
    assert code == 1
    assert out.startswith(f"error: store duckdb:///{project / 'meta.db'}: ")
    assert "does not exist" in out and "relative to its folder" in out
    assert len(out.strip().splitlines()) == 1
    assert not (project / "meta.db").exists() and not (project / "sub" / "meta.db").exists()


def test_writing_commands_still_create_the_store(project: Path) -> None:
    code, out = _invoke("push")
    assert code == 0, out
    assert (project / "meta.db").is_file() and not (project / "sub" / "meta.db").exists()


def test_connect_for_reading_never_creates_a_store(engine: str) -> None:
    """``create=False``: a DuckDB file, chdb database or Postgres schema that does not exist
    is an error naming it, and is still missing afterwards."""
    url = importlib.import_module(f"tests.engines.{engine}").fresh_url(
        f"ro{os.getpid()}_{engine}")
    for _ in range(2):
        with pytest.raises(mx.StoreConnectionError, match="does not exist"):
            mx.connect(url, graph=seed.graph, create=False)
    mx.connect(url, graph=seed.graph).close()  # writers create it
    mx.connect(url, graph=seed.graph, create=False).close()


def test_read_only_commands_never_create_a_chdb_store(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-store"
    code, out = _invoke("-e", "metaxy_sql.examples.seed", "--store", f"chdb://{missing}",
                        "status")
    assert code == 1 and f"data path {missing} does not exist" in out
    assert not missing.exists()


DATA_FILES = {
    "parquet": None,  # written with pyarrow below
    "csv": b"sample_uid,x\nv1,1\n",
    "tsv": b"sample_uid\tx\nv1\t1\n",
    "json": b'[{"sample_uid": "v1", "x": 1}]\n',
    "jsonl": b'{"sample_uid": "v1", "x": 1}\n',
    "ndjson": b'{"sample_uid": "v1", "x": 1}\n',
    "csv.gz": gzip.compress(b"sample_uid,x\nv1,1\n", mtime=0),
    "PARQUET": None,
}


def _data_file(tmp_path: Path, ext: str) -> Path:
    path = tmp_path / f"data.{ext}"
    content = DATA_FILES[ext]
    if content is None:
        pq.write_table(pa.table({"sample_uid": ["v1"], "x": [1]}), path)
    else:
        path.write_bytes(content)
    return path


@pytest.mark.parametrize("ext", sorted(DATA_FILES))
def test_a_data_file_is_not_a_duckdb_store(tmp_path: Path, ext: str) -> None:
    """DuckDB opens a data file (by its extension) as an in-memory database with views over
    it: a store there would lose every write at close. It is refused, naming the path, and
    the file is left as it was."""
    path = _data_file(tmp_path, ext)
    before = path.read_bytes()
    for create in (True, False):
        with pytest.raises(mx.ConfigError, match="not a valid DuckDB database file") as e:
            mx.connect(f"duckdb:///{path}", graph=seed.graph, create=create)
        assert str(path) in str(e.value) and "\n" not in str(e.value)
    code, out = _invoke("-e", "metaxy_sql.examples.seed", "--store", f"duckdb:///{path}",
                        "status")
    assert code == 1 and "not a valid DuckDB database file" in out
    assert path.read_bytes() == before


def test_a_new_duckdb_file_may_have_a_data_file_extension(tmp_path: Path) -> None:
    """Only an existing data file is refused: a store created at ``x.parquet`` is a DuckDB
    file and keeps its rows."""
    url = f"duckdb:///{tmp_path / 'meta.parquet'}"
    with mx.connect(url, graph=seed.graph) as store:
        store.write("video/full", store.resolve_update("video/full", samples=ROWS).new)
    with mx.connect(url, graph=seed.graph, create=False) as store:
        assert sorted(store.read("video/full").column("sample_uid").to_pylist()) == [
            "v0", "v1", "v2"]


def _with_param(url: str, param: str) -> str:
    return url + ("&" if "?" in url else "?") + param


def test_unknown_url_parameters_are_refused(engine: str) -> None:
    """A parameter a store URL does not take is an error listing the supported ones, and
    nothing is created (before, DuckDB made it part of the file name)."""
    url = importlib.import_module(f"tests.engines.{engine}").fresh_url(
        f"qp{os.getpid()}_{engine}")
    for param in ("read_only=true", "nope=1", "nope"):
        with pytest.raises(mx.ConfigError, match=r"unknown parameters \['(read_only|nope)'\]"
                           r".*supported"):
            mx.connect(_with_param(url, param), graph=seed.graph)
    with pytest.raises(mx.StoreConnectionError, match="does not exist"):
        mx.connect(url, graph=seed.graph, create=False)  # nothing was created
    if engine == "duckdb":
        folder = Path(url[len("duckdb:///"):]).parent
        assert not [p for p in folder.iterdir() if "?" in p.name]
        with pytest.raises(mx.ConfigError, match="unknown parameters"):
            mx.connect("duckdb://:memory:?read_only=true", graph=seed.graph)
        with pytest.raises(mx.ConfigError, match="fragment"):
            mx.connect(url + "#part", graph=seed.graph)
        assert not [p for p in folder.iterdir() if "?" in p.name or "#" in p.name]
    if engine == "postgres":  # libpq's own parameters are still passed on
        mx.connect(_with_param(url, "application_name=metaxy_test"), graph=seed.graph).close()
