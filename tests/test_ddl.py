"""Table DDL rendered from the definitions: it runs, and the store works on top of it."""

from __future__ import annotations

from typing import Any

import sqlglot

import metaxy_sql as mx
from metaxy_sql.compile.ddl import feature_table_ddl, render_ddl
from metaxy_sql.compile.dialects import get_dialect
from metaxy_sql.examples import seed
from metaxy_sql.model import names
from tests.pipeline import check_oracle, samples, step


def test_pre_created_tables_serve_the_store(make_store: Any, engine: str) -> None:
    store = make_store(seed.graph)
    d = get_dialect(engine)
    for key in seed.graph.keys:
        for stmt in feature_table_ddl(seed.graph, key, d):
            store.executor.execute(d.render(stmt))
    assert {names.table(k) for k in seed.graph.keys} <= store.executor.tables()
    report = step(store, samples({"v1": {"audio": "a", "frames": "f"},
                                  "v2": {"audio": "b", "frames": "g"}}))
    assert report["video/talking_head"]["new"] == 2
    assert check_oracle(store) == 8


def test_cluster_ddl_replicated_local_and_distributed() -> None:
    sql = render_ddl(seed.graph, ["video/face_crop"], get_dialect("clickhouse"), cluster="prod")
    # Two statements, each parseable as ClickHouse SQL; checked on the rendered text itself.
    assert len([s for s in sqlglot.parse(sql, read="clickhouse") if s is not None]) == 2
    local, distributed = sql.replace("\n", " ").replace("  ", " ").split(";")[:2]
    assert 'CREATE TABLE IF NOT EXISTS "video__face_crop__local" ON CLUSTER "prod"' in local
    assert "ReplicatedMergeTree(" in local and 'ORDER BY "sample_uid"' in local
    assert 'CREATE TABLE IF NOT EXISTS "video__face_crop" ON CLUSTER "prod"' in distributed
    assert ("Distributed('prod', currentDatabase(), 'video__face_crop__local', "
            'cityHash64("sample_uid"))') in distributed
    for statement in (local, distributed):  # the per-field columns resolve reads
        assert '"metaxy_dv_token__frames" String MATERIALIZED CASE' in statement
        assert '"metaxy_provenance__frames" Nullable(String) MATERIALIZED CASE' in statement


def test_cluster_is_clickhouse_only() -> None:
    try:
        render_ddl(seed.graph, ["video/full"], get_dialect("postgres"), cluster="prod")
    except mx.UnsupportedByDialectError as e:
        assert "--cluster is for ClickHouse" in str(e)
    else:
        raise AssertionError("expected UnsupportedByDialectError")


def test_cli_render_ddl_cluster() -> None:
    from click.testing import CliRunner

    from metaxy_sql.cli import cli

    result = CliRunner().invoke(cli, ["-e", "metaxy_sql.examples.seed", "render", "--ddl",
                                      "--cluster", "prod"])
    assert result.exit_code == 0, result.output
    expected = render_ddl(seed.graph, list(seed.graph.keys), get_dialect("clickhouse"), "prod")
    assert result.output == expected
    assert result.output.count("ON CLUSTER") == 2 * len(seed.graph.keys)
