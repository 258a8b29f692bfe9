"""Store paths (issue 12, kind 7): a relative path in a config file is relative to the file's
folder; from --store / METAXY_SQL_STORE to the working directory; read-only commands never
create a store (DuckDB files and chdb data paths/databases)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

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
