"""ClickHouse-specific behaviour: store URLs, connection errors, staging, history on MergeTree."""

from __future__ import annotations

import socket
from typing import Any

import pyarrow as pa
import pytest

import metaxy_sql as mx
from metaxy_sql.examples import seed
from tests.conftest import ENGINES
from tests.engines import clickhouse as ch_engine
from tests.pipeline import as_dict, samples, step

pytestmark = pytest.mark.skipif("clickhouse" not in ENGINES,
                                reason="clickhouse is not in METAXY_SQL_TEST_ENGINES")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is


@pytest.mark.parametrize("scheme", ["clickhouse", "clickhouses"])
def test_server_down_is_one_clear_error_with_the_password_masked(scheme: str) -> None:
    port = closed_port()
    url = f"{scheme}://alice:s3cr%21t@127.0.0.1:{port}/metaxy"
    with pytest.raises(mx.StoreConnectionError) as info:
        mx.connect(url, graph=seed.graph)
    message = str(info.value)
    assert f"{scheme}://alice:***@127.0.0.1:{port}/metaxy" in message
    assert "s3cr" not in message
    assert f"no ClickHouse server answers at 127.0.0.1:{port} (connection refused)" in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(("url", "match"), [
    ("chdb://relative/path", "three slashes"),
    ("clickhouse://u:pw@localhost:8123/db?sslmode=x", r"unknown parameters \['sslmode'\]"),
    ("clickhouse://:8123/db", "name a host"),
])
def test_bad_urls_are_config_errors(url: str, match: str) -> None:
    with pytest.raises(mx.ConfigError, match=match) as info:
        mx.connect(url, graph=seed.graph)
    assert "pw@" not in str(info.value)


def test_parse_url_reads_database_from_path_or_parameter() -> None:
    from metaxy_sql.engine.executors.clickhouse import parse_url

    server = parse_url("clickhouses://bob:p%40ss@ch.example:9443/prod")
    assert (server.database, server.client_args["password"], server.client_args["port"],
            server.client_args["secure"]) == ("prod", "p@ss", 9443, True)
    assert server.masked_url == "clickhouses://bob:***@ch.example:9443/prod"
    assert parse_url("clickhouse://ch.example").client_args["port"] == 8123
    assert parse_url("chdb:///data/mx?database=feat").database == "feat"
    assert parse_url("chdb://memory/feat").database == "feat"


def test_databases_on_one_chdb_path_are_separate_stores() -> None:
    rows = samples({"v1": {"audio": "a", "frames": "f"}})
    with mx.connect(ch_engine.fresh_url("sep_a"), graph=seed.graph) as a, \
            mx.connect(ch_engine.fresh_url("sep_b"), graph=seed.graph) as b:
        a.write("video/full", rows)
        assert a.count("video/full") == 1
        assert b.count("video/full") == 0
        assert b.executor.tables() == set()


def test_another_chdb_path_while_one_is_open_says_why() -> None:
    with mx.connect(ch_engine.fresh_url("path_a"), graph=seed.graph), \
            pytest.raises(mx.StoreConnectionError, match="one data path per process"):
        mx.connect("chdb://memory", graph=seed.graph)


def test_failed_statement_carries_sql_and_engine() -> None:
    with mx.connect(ch_engine.fresh_url("errors"), graph=seed.graph) as store, \
            pytest.raises(mx.ExecutionError) as info:
        store.executor.fetch('SELECT * FROM "no_such_table"')
    assert info.value.engine == "clickhouse"
    assert info.value.sql == 'SELECT * FROM "no_such_table"'
    assert "UNKNOWN_TABLE" in info.value.reason


def test_read_shapes_match_duckdb(make_store: Any, engine: str) -> None:
    """Per-field maps come back as map<string, string> and text as string, on both engines."""
    store = make_store(seed.graph)
    store.write("video/full", samples({"v1": {"audio": "a", "frames": "f"}}))
    schema = store.read("video/full").schema
    for name in ("metaxy_provenance_by_field", "metaxy_data_version_by_field"):
        typ = schema.field(name).type
        assert pa.types.is_map(typ), typ
        assert (typ.key_type, typ.item_type) == (pa.string(), pa.string())
    for name in ("sample_uid", "metaxy_provenance", "metaxy_feature_version"):
        assert schema.field(name).type == pa.string()


def test_history_survives_merges_and_partial_data_versions() -> None:
    """Plain MergeTree keeps every version even after OPTIMIZE FINAL; a data-version struct
    with a null field falls back to the provenance for that field."""
    with mx.connect(ch_engine.fresh_url("merges"), graph=seed.graph) as store:
        _merges_keep_history(store)


def _merges_keep_history(store: mx.Store) -> None:
    store.write("video/full", samples({"v1": {"audio": "a", "frames": "f"}}))
    by_field = pa.struct([("audio", pa.string()), ("frames", pa.string())])
    store.write("video/full", pa.table({
        "sample_uid": ["v1"],
        "metaxy_provenance_by_field": pa.array([{"audio": "a2", "frames": "f"}], by_field),
        "metaxy_data_version_by_field": pa.array([{"audio": "A", "frames": None}], by_field)}))
    store.executor.execute('OPTIMIZE TABLE "video__full" FINAL')
    assert store.read("video/full", history=True).num_rows == 2
    latest = store.read("video/full").to_pylist()[0]
    assert as_dict(latest["metaxy_provenance_by_field"]) == {"audio": "a2", "frames": "f"}
    assert as_dict(latest["metaxy_data_version_by_field"]) == {"audio": "A", "frames": "f"}
    engine_ddl = store.executor.fetch(
        "SELECT engine, sorting_key FROM system.tables WHERE database = currentDatabase() "
        "AND name = 'video__full'").to_pylist()
    assert engine_ddl == [{"engine": "MergeTree", "sorting_key": "sample_uid"}]


def test_tables_without_derived_columns_resolve_through_the_maps() -> None:
    """A table written before its per-field derived columns existed (or a field added to the
    definition since) is read through its maps, with the same increment; the next write of
    the feature adds the columns back."""
    derived = ("metaxy_dv_token__frames", "metaxy_provenance__frames")
    with mx.connect(ch_engine.fresh_url("derived"), graph=seed.graph) as store:
        base = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(4)}
        step(store, samples(base))
        store.write("video/full", samples({**base, "v1": {"audio": "a1", "frames": "f1*"}}))
        store.delete("video/full", [{"sample_uid": "v2"}])

        def increment() -> list[dict[str, Any]]:
            rows = store.resolve_update("video/face_crop").to_arrow().to_pylist()
            return sorted(rows, key=lambda r: (r["metaxy_status"], r["sample_uid"]))

        with_columns = increment()
        assert [(r["metaxy_status"], r["sample_uid"]) for r in with_columns] == [
            ("orphaned", "v2"), ("stale", "v1")]
        assert "mapContains" not in store.render("video/face_crop")
        for table in ("video__full", "video__face_crop"):
            for column in derived:
                store.executor.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')
        sql = store.render("video/face_crop")
        assert "mapContains(\"metaxy_data_version_by_field\", 'frames')" in sql
        assert "mapContains(\"metaxy_provenance_by_field\", 'frames')" in sql
        assert increment() == with_columns

        store.write("video/full", samples({"v9": {"audio": "a9", "frames": "f9"}}))
        assert set(derived) <= set(store.executor.columns("video__full"))
        sql = store.render("video/face_crop")  # video__full has them again; face_crop not yet
        assert "mapContains(\"metaxy_data_version_by_field\", 'frames')" not in sql
        assert "mapContains(\"metaxy_provenance_by_field\", 'frames')" in sql
        assert store.read("video/full").column_names == [
            "sample_uid", "metaxy_provenance_by_field", "metaxy_provenance",
            "metaxy_data_version_by_field", "metaxy_data_version", "metaxy_feature_version",
            "metaxy_created_at"]


def test_servers_older_than_lightweight_updates_are_refused_clearly() -> None:
    from metaxy_sql.engine.executors.clickhouse import check_version

    with pytest.raises(mx.StoreConnectionError, match=r"ClickHouse 25\.3\.2\.1 is older than "
                       r"25\.7.*upgrade the server") as info:
        check_version("25.3.2.1", "clickhouse://u:***@h:8123/db")
    assert "clickhouse://u:***@h:8123/db" in str(info.value)
    check_version("25.7.1.1", "x")
    check_version("26.9.2.1", "x")


# Answers of a real server (Debian's clickhouse-server 18.16 over HTTP, as clickhouse-connect
# reports them): the password is wrong, the user is unknown, the server is too old.
_SEEN = {
    "wrong password": "HTTP driver received HTTP status 401, server response: Code: 193, "
                      "e.displayText() = DB::Exception: Wrong password for user default, "
                      "e.what() = DB::Exception (for url http://127.0.0.1:8123)",
    "unknown user": "HTTP driver received HTTP status 401, server response: Code: 192, "
                    "e.displayText() = DB::Exception: Unknown user nobody, "
                    "e.what() = DB::Exception (for url http://127.0.0.1:8123)",
    "too old": "HTTP driver received HTTP status 404, server response: Code: 47, "
               "e.displayText() = DB::Exception: Unknown identifier: readonly, "
               "e.what() = DB::Exception (for url http://127.0.0.1:8123)",
}


@pytest.mark.parametrize(("case", "hint"), [
    ("wrong password", "check the user name and password in the URL"),
    ("unknown user", "check the user name and password in the URL"),
    ("too old", "needs ClickHouse 25.7 or newer"),
])
def test_server_answers_become_one_line_with_the_right_hint(case: str, hint: str) -> None:
    from clickhouse_connect.driver.exceptions import DatabaseError

    from metaxy_sql.engine.executors.clickhouse import _hint, _reason, parse_url

    target = parse_url("clickhouse://nobody:x@127.0.0.1:8123/default")
    error = DatabaseError(_SEEN[case])
    reason = _reason(error, target.secret)
    assert reason.startswith("Code: ") and "HTTP driver" not in reason
    assert "displayText" in reason and "e.what()" in reason  # a 1-char password mangles nothing
    assert hint in _hint(target, error)
    assert _reason(DatabaseError("Code: 516. bad password s3cr!t given"), "s3cr!t") == (
        "Code: 516. bad password *** given")


def test_a_table_from_before_superseding_writes_is_settled_by_the_next_write() -> None:
    """Tables written by versions that chose the latest row at read time have every row live
    and no per-field columns; the first write adds the columns and settles the flags."""
    with mx.connect(ch_engine.fresh_url("legacy"), graph=seed.graph) as store:
        store.write("video/full", samples({"v1": {"audio": "a", "frames": "f"},
                                           "v2": {"audio": "b", "frames": "g"}}))
        store.write("video/full", samples({"v1": {"audio": "a", "frames": "f2"}}))
        store.delete("video/full", [{"sample_uid": "v2"}])
        ex = store.executor
        for column in ("audio", "frames"):
            for name in (f"metaxy_dv_token__{column}", f"metaxy_provenance__{column}"):
                ex.execute(f'ALTER TABLE "video__full" DROP COLUMN "{name}"')
        ex.execute('ALTER TABLE "video__full" UPDATE "metaxy_superseded" = false WHERE 1 '
                   "SETTINGS mutations_sync = 2")
        assert store.count("video/full") == 3  # the old layout read as a filter: wrong

        store.write("video/full", samples({"v3": {"audio": "c", "frames": "h"}}))
        assert {r["sample_uid"]: as_dict(r["metaxy_provenance_by_field"])["frames"]
                for r in store.read("video/full").to_pylist()} == {"v1": "f2", "v3": "h"}
        assert store.count("video/full") == 2


def test_read_hides_the_per_field_columns_of_a_removed_field() -> None:
    def video(*fields: str) -> mx.FeatureGraph:
        return mx.FeatureGraph([mx.FeatureSpec(
            key="video/full", id_columns=["sample_uid"],
            fields=[mx.FieldSpec(key=f, code_version="1") for f in fields])])

    with mx.connect(ch_engine.fresh_url("removed"), graph=video("audio", "gone")) as store:
        store.write("video/full", [{"sample_uid": "v1",
                                    "metaxy_provenance_by_field": {"audio": "a", "gone": "g"}}])
        assert "metaxy_provenance__gone" in store.executor.columns("video__full")
        columns = store.with_graph(video("audio")).read("video/full").column_names
        assert [c for c in columns if c.startswith(("metaxy_dv_token__", "metaxy_provenance__"))
                ] == []
