"""CLI commands for the warehouse side: ``materialize``, ``push``, ``history``, ``plan``.

Registered on the ``metaxy-sql`` group by :mod:`metaxy_sql.cli.main`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from metaxy_sql.cli.options import CliContext, common_options
from metaxy_sql.cli.progress import progress
from metaxy_sql.errors import ConfigError
from metaxy_sql.model import names
from metaxy_sql.warehouse.dbt import write_sources
from metaxy_sql.warehouse.materialize import materialize
from metaxy_sql.warehouse.plan import plan
from metaxy_sql.warehouse.snapshots import graph_history, push_graph


@click.command("materialize")
@click.argument("features", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Every non-root feature of the graph.")
@click.option("--as", "kind", type=click.Choice(["view", "table", "incremental"]),
              default="view", show_default=True,
              help="view: live increment; table: snapshot of it now; incremental: create or "
                   "refresh <feature table>__incremental in O(changes) (resolve reads it).")
@click.option("--schema", help="Schema (ClickHouse: database) to create the relations in; "
                               "must exist. Default: the store's own.")
@click.option("--prefix", default="", help="Prefix of relation names.")
@click.option("--suffix", default=names.INCREMENT_SUFFIX, show_default=True,
              help="Suffix of relation names.")
@click.option("--dry-run", is_flag=True, help="Print the DDL; run nothing.")
@click.option("--prune", is_flag=True, help="Also drop increment relations this store "
                                            "created for features no longer defined.")
@click.option("--dbt-sources", type=click.Path(path_type=Path, dir_okay=False),
              help="Write a dbt sources.yml describing the relations.")
@common_options
@click.pass_obj
def materialize_cmd(obj: CliContext, features: tuple[str, ...], all_: bool, kind: str,
                    schema: str | None, prefix: str, suffix: str, dry_run: bool, prune: bool,
                    dbt_sources: Path | None) -> None:
    """Create or replace increment views (or snapshot or incremental tables), dbt-style.

    \b
    Each relation (<feature with / as __>__increment) has metaxy_status (new/stale/orphaned),
    the id columns, the expected provenance and metaxy_changed_fields. A view's SELECT is
    the resolve statement `render` prints. Root features are skipped (their increment reads
    a per-session sample set). Existing relations not created here are never touched.
    --all with views first creates the feature tables never written, empty, from the
    definitions. --as incremental refreshes <feature table>__incremental (O(changes), or a
    full rebuild and why) and prints the counts; resolve_update then reads that table.
    """
    if bool(features) == all_:
        raise click.UsageError("give FEATURE ... or --all (not both)")
    with obj.store(None, create=not dry_run) as store:
        keys = list(features) or list(store.graph.keys)
        # A dry run prints DDL and runs nothing: no progress.
        with progress("materialize", len(keys), unit="features", quiet=dry_run) as task:
            report = materialize(store, list(features) or None, as_=kind,  # type: ignore[arg-type]
                                 schema=schema, prefix=prefix, suffix=suffix,
                                 dry_run=dry_run, prune=prune, on_progress=task.advance)
        if dry_run:
            for a in report.actions:
                if a.action not in ("skipped", "unchanged"):
                    click.echo(a.ddl)
        click.echo(report.summary())
        if dbt_sources is not None:
            # The refresh command loads the same definitions (entrypoints from -e, the
            # environment or the config file; that file's folder) from any directory.
            config = obj.config()
            path = write_sources(dbt_sources, store.graph, report.actions,
                                 store_url=store.url, entrypoints=config.entrypoints,
                                 config=config.source)
            click.echo(f"wrote {path}")


def _tags(values: tuple[str, ...]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise ConfigError(f"--tag {value!r}: use KEY=VALUE, e.g. --tag git=abc123")
        tags[key] = val
    return tags


@click.command("push")
@click.option("--tag", "tags", multiple=True, help="KEY=VALUE recorded with the snapshot "
                                                   "(repeatable).")
@common_options
@click.pass_obj
def push_cmd(obj: CliContext, tags: tuple[str, ...]) -> None:
    """Record the current definitions as a graph snapshot in the store."""
    with obj.store(None) as store:
        snap = push_graph(store, _tags(tags))
        state = "pushed" if snap.pushed else "already current:"
        click.echo(f"{state} snapshot {snap.version} ({len(snap.features)} features, "
                   f"{snap.pushed_at.isoformat(sep=' ')} UTC)")


@click.command("history")
@common_options
@click.pass_obj
def history_cmd(obj: CliContext) -> None:
    """List pushed graph snapshots, newest first."""
    with obj.store(None, create=False) as store:
        snaps = graph_history(store)
        if not snaps:
            click.echo("no graph snapshot pushed yet (run `metaxy-sql push`)")
        for s in snaps:
            tags = json.dumps(s.tags, sort_keys=True) if s.tags else ""
            click.echo(f"{s.version}  {s.pushed_at.isoformat(sep=' ')}  "
                       f"{len(s.features)} features  {tags}".rstrip())


@click.command("plan")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--fail-on-changes", is_flag=True,
              help="Exit 1 when the definitions differ from the last pushed snapshot (CI).")
@common_options
@click.pass_obj
def plan_cmd(obj: CliContext, fmt: str, fail_on_changes: bool) -> None:
    """Impact of the definitions against the last pushed snapshot, counted in the engine.

    Per feature and field: what changed, how many samples are stale now, and how many
    downstream samples will follow once those are rewritten. Nothing is written.
    """
    with obj.store(None, create=False) as store:
        result = plan(store)
    click.echo(result.to_json() if fmt == "json" else result.to_text())
    if fail_on_changes and result.has_changes:
        raise click.exceptions.Exit(1)


COMMANDS = (materialize_cmd, push_cmd, history_cmd, plan_cmd)
