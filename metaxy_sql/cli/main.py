"""The ``metaxy-sql`` command line."""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

import click
import pyarrow as pa

from metaxy_sql.compile.dialects import DIALECTS, get_dialect
from metaxy_sql.compile.render import resolve_sql
from metaxy_sql.engine.store import Store, connect
from metaxy_sql.errors import ConfigError, DataError, ExecutionError, MetaxySqlError
from metaxy_sql.model import names
from metaxy_sql.model.config import Config, load_config, load_graph
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.model.picture import FORMATS, Format, picture
from metaxy_sql.warehouse.golden import write_golden


class _Context:
    def __init__(self, config_path: Path | None, entrypoints: tuple[str, ...],
                 store: str | None, debug: bool) -> None:
        self.config_path, self.entrypoints, self.store_url = config_path, entrypoints, store
        self.debug = debug

    def config(self, store: str | None = None) -> Config:
        return load_config(self.config_path, entrypoints=self.entrypoints,
                           store=store or self.store_url)

    def graph(self) -> FeatureGraph:
        return load_graph(self.config())

    def store(self, url: str | None, *, create: bool = True) -> Store:
        """The configured store; ``create=False`` for read-only commands, which never
        create one (a missing DuckDB file is an error naming the path)."""
        config = self.config(url)
        if not config.store:
            raise ConfigError("no store: pass --store URL, set METAXY_SQL_STORE, or set "
                              "store = 'duckdb:///meta.db' under [tool.metaxy-sql]")
        return connect(config.store, graph=load_graph(config), create=create,
                       hash_algorithm=config.hash_algorithm)  # type: ignore[arg-type]


class _Group(click.Group):
    """Turns every error into one line on stderr and exit status 1 (traceback with --debug).

    Our errors print their first line (they name the feature and the fix); an engine error
    prints the engine's first line and the path of a file holding the full message and SQL;
    anything else is reported as a bug in one line.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit,
                click.exceptions.Abort, BrokenPipeError):
            raise  # click reports these (a closed pipe, `metaxy-sql graph | head`, quietly)
        except Exception as e:
            debug = bool(ctx.params.get("debug")) or "--debug" in sys.argv
            if debug:
                traceback.print_exc()
            click.echo(f"error: {_one_line(e, debug)}", err=True)
            ctx.exit(1)


def _first(text: str) -> tuple[str, bool]:
    """The first non-empty line of ``text`` and whether more lines follow."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[0] if lines else ""), len(lines) > 1


def _one_line(e: Exception, debug: bool) -> str:
    """What the CLI prints for ``e``: one line, naming where the rest is."""
    if isinstance(e, ExecutionError):
        reason, _ = _first(e.reason)
        if debug:
            return f"{e.engine}: {reason}"
        where = _save_statement(e)
        return (f"{e.engine}: {reason} (" + (f"full message and SQL in {where}; " if where
                                             else "") + "--debug shows the SQL)")
    if isinstance(e, MetaxySqlError):
        line, more = _first(str(e))
        return line + (" (--debug shows the full message)" if more and not debug else "")
    if isinstance(e, OSError) and e.strerror:  # the system refused: a file, a socket...
        return e.strerror + (f": {e.filename}" if e.filename else "")
    line, _ = _first(str(e))
    return (f"unexpected {type(e).__name__}" + (f": {line}" if line else "")
            + ("" if debug else " (a bug in metaxy-sql: --debug shows the traceback; please "
               "report it)"))


def _save_statement(e: ExecutionError) -> str | None:
    """Write the engine's full message and the statement to a new file under the system's
    temporary folder; its path (``None`` when it cannot be written)."""
    import tempfile

    detail = str(e.__cause__) if e.__cause__ is not None else e.reason
    header = "".join(f"-- {line}\n" for line in
                     [f"{e.engine} refused this statement:", *detail.splitlines()])
    try:
        fd, path = tempfile.mkstemp(prefix="metaxy-sql-failed-", suffix=".sql")
        with open(fd, "w", encoding="utf-8") as out:
            out.write(f"{header}\n{e.sql.rstrip()}\n")
    except OSError:
        return None
    return path


@click.group(cls=_Group)
@click.option("--config", "config_path", type=click.Path(path_type=Path, dir_okay=False),
              help="Config file (default: nearest metaxy-sql.toml or pyproject.toml with "
                   "[tool.metaxy-sql]).")
@click.option("-e", "--entrypoint", "entrypoints", multiple=True,
              help="Module defining features (repeatable); overrides the config's entrypoints "
                   "and METAXY_SQL_ENTRYPOINTS.")
@click.option("--store", "store", help="Store URL; overrides config and METAXY_SQL_STORE.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, entrypoints: tuple[str, ...],
        store: str | None, debug: bool) -> None:
    """Sample-level, field-level data versioning, compiled to SQL.

    \b
    Definitions come from the modules named by `entrypoints` in [tool.metaxy-sql]
    (pyproject.toml) or metaxy-sql.toml, METAXY_SQL_ENTRYPOINTS, or -e MODULE.
    Store URLs: duckdb:///meta.db, duckdb://:memory:, chdb:///abs/path,
    clickhouse://user:pw@host:8123/db, postgresql://user:pw@host/db.

    \b
    Try it:  metaxy-sql demo
             metaxy-sql -e metaxy_sql.examples.seed graph
             metaxy-sql -e metaxy_sql.examples.seed render video/face_crop
    """
    ctx.obj = _Context(config_path, entrypoints, store, debug)


@cli.command("graph")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="text",
              show_default=True,
              help="text; mermaid (paste into Markdown); dot (Graphviz source); svg (drawn by "
                   "Graphviz's `dot` program, which must be installed).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the picture to FILE instead of printing it.")
@click.pass_obj
def graph_cmd(obj: _Context, fmt: Format, output: Path | None) -> None:
    """Show features, fields, field-level dependencies and lineage kinds.

    \b
    Every format shows each dependency's lineage: one-to-one, expansion (1:N),
    aggregation (N:1), optional (left join), filters and carried columns.
      metaxy-sql graph --format mermaid
      metaxy-sql graph --format svg --output graph.svg
    """
    text = picture(obj.graph(), fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--output {output}: cannot write it ({e.strerror or e}); "
                          "check the folder exists and is writable") from None
    click.echo(f"wrote {output}")


@cli.command()
@click.argument("feature", required=False)
@click.option("--dialect", type=click.Choice(sorted(DIALECTS)), default="duckdb",
              show_default=True)
@click.option("--hash", "algorithm", type=click.Choice(["sha256", "md5"]), default="sha256",
              show_default=True)
@click.option("--golden", type=click.Path(path_type=Path, file_okay=False),
              help="Write every feature's SQL for every dialect to "
                   "DIR/<dialect>/<example>/<feature>.sql (the reviewed golden files).")
@click.option("--ddl", is_flag=True,
              help="Print the CREATE VIEW of FEATURE's increment (what materialize runs); with "
                   "--cluster, the feature tables' DDL for a ClickHouse cluster.")
@click.option("--cluster", metavar="NAME",
              help="With --ddl: ON CLUSTER DDL of FEATURE's table (every feature's without "
                   "FEATURE): a ReplicatedMergeTree <table>__local on each node and a "
                   "Distributed <table> sharded by the id columns. Implies --dialect clickhouse.")
@click.pass_obj
def render(obj: _Context, feature: str | None, dialect: str, algorithm: str,
           golden: Path | None, ddl: bool, cluster: str | None) -> None:
    """Print the one resolve statement of FEATURE, exactly as the store runs it.

    \b
    Regenerate the golden SQL of the bundled example:
      metaxy-sql -e metaxy_sql.examples.seed render --golden dialects
    DDL for a ClickHouse cluster named prod:
      metaxy-sql -e metaxy_sql.examples.seed render --ddl --cluster prod
    """
    config = obj.config()
    g = load_graph(config)
    if golden is not None:
        example = config.entrypoints[-1].rsplit(".", 1)[-1]
        for path in write_golden(golden, example, g):
            click.echo(f"wrote {path}")
        return
    if cluster is not None:
        if not ddl:
            raise click.UsageError("--cluster goes with --ddl")
        from metaxy_sql.compile.ddl import render_ddl

        keys = [feature] if feature else list(g.keys)
        click.echo(render_ddl(g, keys, get_dialect("clickhouse"), cluster), nl=False)
        return
    if feature is None:
        raise click.UsageError("give a FEATURE (or --golden DIR)")
    if ddl:
        from metaxy_sql.warehouse.materialize import increment_ddl_text, relation_ref

        click.echo(increment_ddl_text(g, feature, get_dialect(dialect), algorithm,  # type: ignore[arg-type]
                                      "view", relation_ref(names.increment_relation(feature))),
                   nl=False)
        return
    click.echo(resolve_sql(g, feature, get_dialect(dialect), algorithm)[0], nl=False)  # type: ignore[arg-type]


def _read_samples(path: Path) -> pa.Table:
    import pyarrow.json as pj
    import pyarrow.parquet as pq

    if path.suffix not in (".parquet", ".jsonl", ".json", ".ndjson"):
        raise ConfigError(f"--samples {path}: use a .parquet or .jsonl file")
    try:
        return pq.read_table(path) if path.suffix == ".parquet" else pj.read_json(path)
    except (pa.ArrowException, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"--samples {path}: cannot read it as "
                        f"{'parquet' if path.suffix == '.parquet' else 'JSON lines'} "
                        f"({first}); write one JSON object per line, or a parquet file") from None


@cli.command()
@click.argument("feature")
@click.option("--show", type=click.Choice(list(names.STATUSES)),
              help="Also print rows of one category.")
@click.option("--limit", type=int, default=20, show_default=True, help="Rows to print.")
@click.option("--samples", type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Root features: the current sample set (.parquet or .jsonl) with the id "
                   "columns and metaxy_provenance_by_field.")
@click.option("--sql", "show_sql", is_flag=True, help="Print the statement that ran.")
@click.option("--where", help="Partial resolution: a predicate over the id columns, e.g. "
                              "\"sample_uid LIKE 'v1%'\" (checked with sqlglot).")
@click.pass_obj
def resolve(obj: _Context, feature: str, show: str | None, limit: int, samples: Path | None,
            show_sql: bool, where: str | None) -> None:
    """Count the new, stale and orphaned samples of FEATURE (computed in the engine)."""
    obj.graph().spec(feature)  # an unknown feature is named before the store is looked for
    with obj.store(None, create=False) as store:
        inc = store.resolve_update(feature, samples=_read_samples(samples) if samples else None,
                                   where=where)
        counts = inc.counts()
        click.echo(f"{feature}: new {counts['new']}, stale {counts['stale']}, "
                   f"orphaned {counts['orphaned']}")
        if show:
            part = getattr(inc, show)
            shown = 0
            for batch in part.iter_batches(max(limit, 1)):
                for row in batch.to_pylist()[: limit - shown]:
                    click.echo(json.dumps(row, default=str))
                    shown += 1
                if shown >= limit:
                    break
        if show_sql:
            click.echo(inc.sql)


@cli.command()
@click.pass_obj
def status(obj: _Context) -> None:
    """Every feature: stored samples and its increment (new, stale, orphaned)."""
    with obj.store(None, create=False) as store:
        click.echo(f"{'feature':<28} {'rows':>10} {'new':>10} {'stale':>10} {'orphaned':>10}")
        for key in store.graph.keys:
            rows = store.count(key)
            if store.graph.is_root(key):
                click.echo(f"{key:<28} {rows:>10} {'(root: resolve with --samples)':>32}")
                continue
            c = store.resolve_update(key).counts()
            click.echo(f"{key:<28} {rows:>10} {c['new']:>10} {c['stale']:>10} "
                       f"{c['orphaned']:>10}")


@cli.command()
@click.option("--samples", "n", type=int, default=1000, show_default=True,
              help="Number of videos in the example.")
@click.option("--store", "url", default="duckdb:///metaxy-demo.db", show_default=True,
              help="Store to run on (its example tables are dropped first).")
def demo(n: int, url: str) -> None:
    """Run the bundled example end to end and show "the little change"."""
    from metaxy_sql.examples.demo import reset, run_demo

    reset(url)
    run_demo(url, n, click.echo)


def _register_warehouse_commands() -> None:
    from metaxy_sql.cli.warehouse import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_register_warehouse_commands()


def _register_bridge_commands() -> None:
    from metaxy_sql.cli.bridges import COMMANDS

    for command in COMMANDS:
        cli.add_command(command)


_register_bridge_commands()


def main() -> None:
    cli(prog_name="metaxy-sql")
