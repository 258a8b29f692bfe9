"""Golden SQL: the reviewable files under ``dialects/<engine>/<example>/``, written from the
same compile step the store runs (resolve statements and the increment views of
``materialize``)."""

from __future__ import annotations

from pathlib import Path

from metaxy_sql.compile.dialects import Dialect, get_dialect
from metaxy_sql.compile.render import resolve_sql
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.warehouse import materialize


def golden_path(root: Path, dialect: str, example: str, key: str) -> Path:
    """``dialects/<engine>/<example>/<feature with / as __>.sql``."""
    return root / dialect / example / f"{key.replace('/', '__')}.sql"


def write_golden(root: Path, example: str, graph: FeatureGraph) -> list[Path]:
    """(Re)write the golden SQL of every feature of ``graph`` for every dialect."""
    written = []
    for name in ("duckdb", "clickhouse", "postgres"):
        dialect = get_dialect(name)
        for key in graph.keys:
            path = golden_path(root, name, example, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(resolve_sql(graph, key, dialect)[0])
            written.append(path)
            if not graph.is_root(key):  # the increment view materialize creates
                written.append(_write_view_ddl(path, graph, key, dialect))
    return written


def _write_view_ddl(resolve_path: Path, graph: FeatureGraph, key: str, dialect: Dialect) -> Path:
    path = resolve_path.with_name(f"{resolve_path.stem}__increment_view.sql")
    relation = materialize.relation_ref(names.increment_relation(key))
    path.write_text(materialize.increment_ddl_text(graph, key, dialect, "sha256", "view",
                                                   relation))
    return path
