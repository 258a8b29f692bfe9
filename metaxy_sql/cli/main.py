"""The ``metaxy-sql`` command line."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Any

import click

import metaxy_sql
from metaxy_sql.cli.options import (
    CONFIG_HELP,
    ENTRYPOINT_HELP,
    STORE_HELP,
    CliContext,
    add_common_options,
)
from metaxy_sql.compile.dialects import ALIASES, DIALECTS, dialect_name, get_dialect
from metaxy_sql.compile.render import resolve_sql
from metaxy_sql.errors import (
    ConfigError,
    ExecutionError,
    MetaxySqlError,
    UnsupportedByDialectError,
)
from metaxy_sql.model import names
from metaxy_sql.model.config import load_graph
from metaxy_sql.model.picture import FORMATS, Format, picture
from metaxy_sql.warehouse.golden import write_golden

#: The old name of the invocation context (kept for command modules that use it).
_Context = CliContext


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
            debug = (bool(ctx.params.get("debug")) or getattr(ctx.obj, "debug", False)
                     or "--debug" in sys.argv)
            if debug:
                traceback.print_exc()
            click.echo(f"error: {_one_line(e, debug)}", err=True)
            ctx.exit(1)


def _dialect(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """A dialect by name or store URL scheme, in any case (``PostgreSQL``, ``chdb``)."""
    try:
        return dialect_name(value)
    except UnsupportedByDialectError as e:
        raise click.BadParameter(str(e), ctx, param) from None


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
              help=CONFIG_HELP)
@click.option("-e", "--entrypoint", "entrypoints", multiple=True, help=ENTRYPOINT_HELP)
@click.option("--store", "store", help=STORE_HELP)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(metaxy_sql.__version__, "--version", package_name="metaxy-sql",
                      prog_name="metaxy-sql")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, entrypoints: tuple[str, ...],
        store: str | None, debug: bool) -> None:
    """Sample-level, field-level data versioning, compiled to SQL.

    --store, -e and --config go before or after the command name.

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
    ctx.obj = CliContext(config_path, entrypoints, store, debug)


@cli.command("graph")
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), default="text",
              show_default=True,
              help="text; mermaid (paste into Markdown); dot (Graphviz source); svg (drawn by "
                   "Graphviz's `dot` program, which must be installed).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the picture to FILE instead of printing it.")
@click.pass_obj
def graph_cmd(obj: CliContext, fmt: Format, output: Path | None) -> None:
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
@click.option("--dialect", default="duckdb", show_default=True, callback=_dialect,
              metavar="[" + "|".join(DIALECTS) + "]",
              help="duckdb, clickhouse or postgres, in any case; the store URL schemes "
                   f"({', '.join(ALIASES)}) name them too.")
@click.option("--hash", "algorithm", type=click.Choice(["sha256", "md5"]), default="sha256",
              show_default=True)
@click.option("--golden", type=click.Path(path_type=Path, file_okay=False),
              help="Write every feature's SQL for every dialect to "
                   "DIR/<dialect>/<example>/<feature>.sql (the reviewed golden files).")
@click.option("--ddl", is_flag=True,
              help="Print the CREATE VIEW of FEATURE's increment (what materialize runs); "
                   "with --incremental, the incremental table's DDL and indexes; without "
                   "FEATURE, every feature table's DDL and indexes; with --cluster, the "
                   "feature tables' DDL for a ClickHouse cluster.")
@click.option("--incremental", is_flag=True,
              help="FEATURE's incremental increment table: the full rebuild and the "
                   "O(changes) refresh (touched ids, then their partial re-resolve).")
@click.option("--cluster", metavar="NAME",
              help="With --ddl: ON CLUSTER DDL of FEATURE's table (every feature's without "
                   "FEATURE): a ReplicatedMergeTree <table>__local on each node and a "
                   "Distributed <table> sharded by the id columns. Implies --dialect clickhouse.")
@click.pass_obj
def render(obj: CliContext, feature: str | None, dialect: str, algorithm: str,
           golden: Path | None, ddl: bool, incremental: bool, cluster: str | None) -> None:
    """Print the one resolve statement of FEATURE, exactly as the store runs it.

    \b
    Both statements of FEATURE's incremental increment table (materialize --as incremental):
      metaxy-sql render video/face_crop --incremental
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
    if feature is None and ddl and not incremental:
        from metaxy_sql.compile.ddl import render_ddl

        click.echo(render_ddl(g, list(g.keys), get_dialect(dialect)), nl=False)
        return
    if feature is None:
        raise click.UsageError("give a FEATURE (or --golden DIR)")
    if incremental:
        from metaxy_sql.warehouse.materialize import incremental_ddl_text

        click.echo(incremental_ddl_text(g, feature, get_dialect(dialect), algorithm,  # type: ignore[arg-type]
                                        refresh=not ddl), nl=False)
        return
    if ddl:
        from metaxy_sql.warehouse.materialize import increment_ddl_text, relation_ref

        click.echo(increment_ddl_text(g, feature, get_dialect(dialect), algorithm,  # type: ignore[arg-type]
                                      "view", relation_ref(names.increment_relation(feature))),
                   nl=False)
        return
    click.echo(resolve_sql(g, feature, get_dialect(dialect), algorithm)[0], nl=False)  # type: ignore[arg-type]


def _register_commands() -> None:
    from metaxy_sql.cli import bridges, store_cmds, warehouse

    for command in (*store_cmds.COMMANDS, *warehouse.COMMANDS, *bridges.COMMANDS):
        cli.add_command(command)
    # --store, -e, --config and --debug after the name, on every command (idempotent).
    for command in cli.commands.values():
        add_common_options(command)


_register_commands()


def main() -> None:
    cli(prog_name="metaxy-sql")
