"""CLI commands that move metadata: ``copy`` between stores, ``rebase`` after a refactor.

Registered on the ``metaxy-sql`` group by :mod:`metaxy_sql.cli.main`.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import urlsplit

import click

from metaxy_sql.cli.options import check_store_url
from metaxy_sql.cli.progress import progress
from metaxy_sql.engine.store import Store
from metaxy_sql.errors import ConfigError
from metaxy_sql.warehouse.copy import copy, rows_to_copy


class _Obj(Protocol):
    def store(self, url: str | None, *, create: bool = True) -> Store: ...


def check_chdb_paths(source: str, target: str) -> None:
    """chdb opens one data path per process: two different chdb paths cannot both be open.

    Raises:
        ConfigError: both URLs are chdb with different data paths, naming the way around.
    """
    a, b = urlsplit(source), urlsplit(target)
    if a.scheme == b.scheme == "chdb" and (a.netloc, a.path) != (b.netloc, b.path):
        raise ConfigError(
            f"copy --from {source} --to {target}: chdb opens one data path per process, so "
            "two chdb paths cannot be open in one copy. Use one path with two databases "
            "(chdb:///path?database=a to chdb:///path?database=b), or copy through a DuckDB "
            "file in two runs (--from chdb:///a --to duckdb:///x.db, then --from "
            "duckdb:///x.db --to chdb:///b)")


@click.command("copy")
@click.argument("features", nargs=-1)
@click.option("--from", "source_url", required=True, metavar="URL",
              help="Store to copy from (never modified; must exist).")
@click.option("--to", "target_url", required=True, metavar="URL",
              help="Store to copy into (created when missing).")
@click.option("--where", help="Copy only these ids: a predicate over each feature's id "
                              "columns, e.g. \"sample_uid LIKE 'v1%'\".")
@click.option("--history", is_flag=True, help="Copy every row ever written (superseded rows "
                                              "and deletions too), not only the latest state.")
@click.pass_obj
def copy_cmd(obj: _Obj, features: tuple[str, ...], source_url: str, target_url: str,
             where: str | None, history: bool) -> None:
    """Copy FEATURE ... (default: every feature the source has) between two stores.

    \b
    Rows keep their hashes, feature version, write time and write position, so every
    increment on the target equals the one on the source. Both stores are read with the
    configured definitions. A feature the target already holds rows of is refused.
      metaxy-sql copy --from clickhouse://prod:8123/meta --to duckdb:///meta.db
      metaxy-sql copy --from duckdb:///meta.db --to postgresql://u@h/db --history
    """
    check_store_url(source_url, "--from")
    check_store_url(target_url, "--to")
    check_chdb_paths(source_url, target_url)
    wanted = list(features) or None
    with obj.store(source_url, create=False) as source:
        # Features and --where are checked (and counted) on the source before the target is
        # opened: a refused copy leaves no new, empty target store behind.
        total = rows_to_copy(source, wanted, where, history)
        with obj.store(target_url) as target, \
                progress(f"copy {source.url} -> {target.url}", total) as task:
            report = copy(source, target, wanted, where=where, history=history,
                          on_progress=task.advance)
    click.echo(report.summary())


@click.command("rebase")
@click.argument("feature")
@click.option("--where", help="Only these samples: a predicate over the increment's id "
                              "columns, e.g. \"sample_uid LIKE 'v1%'\".")
@click.option("--store", "url", help="Store URL (overrides the global --store, config and "
                                     "METAXY_SQL_STORE).")
@click.pass_obj
def rebase_cmd(obj: _Obj, feature: str, where: str | None, url: str | None) -> None:
    """Re-stamp FEATURE's stale samples with their expected provenance, recomputing nothing.

    \b
    For a code-version bump that did not change the outputs (a refactor, a comment): each
    stale sample gets a new row with the new provenance, its data and data versions as
    stored (so downstream features stay up to date); the old rows stay in the history.
      metaxy-sql plan                      # video/face_crop  changed  1000 samples stale now
      metaxy-sql rebase video/face_crop    # video/face_crop: rebased 1000 rows
    """
    if url is not None:
        check_store_url(url, "--store")
    with obj.store(url, create=False) as store:
        n = store.rebase(feature, where=where)
    click.echo(f"{feature}: rebased {n} rows (provenance re-stamped, data versions kept)")


COMMANDS = (copy_cmd, rebase_cmd)
