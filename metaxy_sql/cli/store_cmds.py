"""CLI commands on a store's samples: ``resolve``, ``status``, ``read``, ``write``, ``delete``,
``drop``, ``demo``. Each is a thin layer over the Python API (``Store.resolve_update``,
``read``, ``write``, ``delete``, ``drop``).

Registered on the ``metaxy-sql`` group by :mod:`metaxy_sql.cli.main`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pyarrow as pa

from metaxy_sql.cli.options import (
    CliContext,
    check_store_url,
    common_options,
    json_format_option,
)
from metaxy_sql.cli.progress import progress
from metaxy_sql.cli.rows import dumps, plain_rows, read_rows
from metaxy_sql.engine.store import Store
from metaxy_sql.errors import DataError
from metaxy_sql.model import names

_FILE = click.Path(path_type=Path, exists=True, dir_okay=False)


@click.command()
@click.argument("feature")
@click.option("--show", type=click.Choice(list(names.STATUSES)),
              help="Also print rows of one category.")
@click.option("--limit", type=click.IntRange(min=0, max=2**62), default=20, show_default=True,
              help="Rows to print with --show (0: all).")
@click.option("--samples", type=_FILE,
              help="Root features: the current sample set (.parquet, .jsonl or .csv) with the "
                   "id columns and metaxy_provenance_by_field.")
@click.option("--write", "write_", is_flag=True,
              help="Root features: record the sample set given with --samples (its new and "
                   "stale samples, and those whose other columns changed, in one write).")
@click.option("--sql", "show_sql", is_flag=True, help="Print the statement that ran.")
@click.option("--where", help="Partial resolution: a predicate over the id columns, e.g. "
                              "\"sample_uid LIKE 'v1%'\" (checked with sqlglot).")
@json_format_option
@common_options
@click.pass_obj
def resolve(obj: CliContext, feature: str, show: str | None, limit: int, samples: Path | None,
            write_: bool, show_sql: bool, where: str | None, fmt: str) -> None:
    """Count the new, stale and orphaned samples of FEATURE (computed in the engine).

    \b
    A root feature takes its current sample set from a file, and --write records it:
      metaxy-sql resolve video/full --samples samples.parquet --write
    """
    graph = obj.graph()
    spec = graph.spec(feature)  # an unknown feature is named before the store is looked for
    quiet = fmt == "json"
    if graph.is_root(feature) and samples is None:
        raise DataError(f"feature {feature!r} is a root feature: pass --samples FILE (.parquet, "
                        f".jsonl or .csv) with {list(spec.id_columns)} and "
                        f"{names.PROVENANCE_BY_FIELD} (field -> provenance) for every sample")
    if not graph.is_root(feature) and samples is not None:
        raise DataError(f"feature {feature!r} has upstream features; its samples come from "
                        "them: leave out --samples")
    if not graph.is_root(feature) and write_:
        raise DataError(f"feature {feature!r} has upstream features: --write records a root "
                        "feature's sample set only; write this feature's rows once computed "
                        f"(metaxy-sql write {feature} FILE, or store.write)")
    with obj.store(None, create=write_) as store:
        rows: Any = None
        if samples is not None:
            with progress(f"read {samples.name}", unit="rows", quiet=quiet) as task:
                rows = read_rows(samples, f"--samples {samples}", task.advance)
        inc = store.resolve_update(feature, samples=rows, where=where)
        counts = inc.counts()
        out: dict[str, Any] = {"feature": feature, "counts": counts}
        if not quiet:
            click.echo(f"{feature}: new {counts['new']}, stale {counts['stale']}, "
                       f"orphaned {counts['orphaned']}")
        if show:
            part = getattr(inc, show)
            shown: list[dict[str, Any]] = []
            for batch in part.iter_batches(limit or 65536):
                shown += plain_rows(batch.slice(0, limit - len(shown)) if limit else batch)
                if limit and len(shown) >= limit:
                    break
            out["rows"] = {show: shown}
            if not quiet:
                for row in shown:
                    click.echo(dumps(row))
        if write_:
            kinds = _write_increment(store, feature, inc, counts, quiet)
            out["written"] = sum(kinds.values())
            out["written_by_kind"] = kinds
            if not quiet:
                click.echo(f"wrote {out['written']} samples of {feature} (new {kinds['new']}, "
                           f"stale {kinds['stale']}, changed columns "
                           f"{kinds['changed_columns']})")
        if show_sql:
            out["sql"] = inc.sql
            if not quiet:
                click.echo(inc.sql)
        if quiet:
            click.echo(dumps(out, indent=2))


def _write_increment(store: Store, feature: str, inc: Any, counts: dict[str, int],
                     quiet: bool) -> dict[str, int]:
    """Write, in one write, the new and stale samples of root ``inc`` and the samples whose
    provenance is unchanged but whose other columns changed (``inc.changed_columns()``).
    Returns how many of each kind were written."""
    changed = inc.changed_columns()
    kinds = {"new": counts["new"], "stale": counts["stale"], "changed_columns": changed.num_rows}
    total = sum(kinds.values())
    if total == 0:
        return kinds
    with progress(f"write {feature}", total, unit="rows", quiet=quiet) as task:
        parts = [changed]  # the columns of --samples; increment rows carry them all
        for part in (inc.new, inc.stale):
            if counts[part.status]:
                rows = part.to_arrow()
                parts.append(rows.select(changed.column_names).cast(changed.schema))
        parts = [t for t in parts if t.num_rows]
        data = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        task.advance(store.write(feature, data))
    return kinds


@click.command()
@json_format_option
@common_options
@click.pass_obj
def status(obj: CliContext, fmt: str) -> None:
    """Every feature: stored samples and its increment (new, stale, orphaned).

    Root features show their stored samples only (their increment needs the current sample
    set: metaxy-sql resolve FEATURE --samples FILE).
    """
    quiet = fmt == "json"
    out: dict[str, dict[str, Any]] = {}
    with obj.store(None, create=False) as store:
        keys = store.graph.keys
        if not quiet:
            click.echo(f"{'feature':<28} {'rows':>10} {'new':>10} {'stale':>10} "
                       f"{'orphaned':>10}")
        with progress("status", len(keys), unit="features", quiet=quiet) as task:
            for key in keys:
                rows = store.count(key)
                if store.graph.is_root(key):
                    out[key] = {"rows": rows, "root": True, "new": None, "stale": None,
                                "orphaned": None}
                    if not quiet:
                        click.echo(f"{key:<28} {rows:>10}   (root: resolve it with "
                                   "--samples FILE)")
                else:
                    c = store.resolve_update(key).counts()
                    out[key] = {"rows": rows, "root": False, **c}
                    if not quiet:
                        click.echo(f"{key:<28} {rows:>10} {c['new']:>10} {c['stale']:>10} "
                                   f"{c['orphaned']:>10}")
                task.advance(1)
    if quiet:
        click.echo(dumps(out, indent=2))


@click.command("read")
@click.argument("feature")
@click.option("--history", is_flag=True,
              help="Every row ever written (tombstones included), per id in write order; "
                   "with --where, e.g. one sample's full history.")
@click.option("--where", help="A predicate over the feature's columns, e.g. "
                              "\"sample_uid = 'v1'\" (checked with sqlglot, run in the engine).")
@click.option("--limit", type=click.IntRange(min=0, max=2**62), default=20, show_default=True,
              help="At most N rows (0: all).")
@json_format_option
@common_options
@click.pass_obj
def read_cmd(obj: CliContext, feature: str, history: bool, where: str | None, limit: int,
             fmt: str) -> None:
    """Print the latest state of FEATURE (one row per sample), or its history.

    \b
    text: one JSON object per row; json: one JSON array. Maps are JSON objects.
      metaxy-sql read video/full --history --where "sample_uid = 'v1'"
    """
    obj.graph().spec(feature)
    with obj.store(None, create=False) as store:
        # One row more than shown tells whether --limit cut the output.
        batches = store.iter_batches(feature, history=history, where=where,
                                     limit=limit + 1 if limit else None)
        if fmt == "json":
            rows = [row for batch in batches for row in plain_rows(batch)]
            click.echo(dumps(rows[:limit] if limit else rows, indent=2))
            return
        shown = 0
        for batch in batches:  # streamed: --limit 0 prints any number of rows
            for row in plain_rows(batch):
                if not limit or shown < limit:
                    click.echo(dumps(row))
                shown += 1
    if limit and shown > limit:
        click.echo(f"(the first {limit} rows; --limit N shows more, --limit 0 all)", err=True)


@click.command("write")
@click.argument("feature")
@click.argument("file", type=_FILE)
@common_options
@click.pass_obj
def write_cmd(obj: CliContext, feature: str, file: Path) -> None:
    """Append the rows of FILE (.parquet, .jsonl or .csv) to FEATURE, in one write.

    \b
    Rows need the id columns and metaxy_provenance_by_field (in CSV: a JSON object per
    cell, e.g. {"audio": "a1"}); hashes are computed in the engine.
      metaxy-sql write video/full samples.parquet
    """
    obj.graph().spec(feature)
    with progress(f"read {file.name}", unit="rows") as task:
        data = read_rows(file, str(file), task.advance)
    with obj.store(None) as store, \
            progress(f"write {feature}", data.num_rows, unit="rows") as task:
        written = store.write(feature, data)
        task.advance(written)
    click.echo(f"wrote {written} rows to {feature}")


@click.command("delete")
@click.argument("feature")
@click.argument("file", type=_FILE, required=False)
@click.option("--where", help="Delete the samples whose latest row matches this predicate "
                              "(with --hard: any row ever written), e.g. \"sample_uid = 'v1'\".")
@click.option("--hard", is_flag=True, help="Remove every row of those samples, history "
                                           "included (default: a soft-delete tombstone).")
@common_options
@click.pass_obj
def delete_cmd(obj: CliContext, feature: str, file: Path | None, where: str | None,
               hard: bool) -> None:
    """Delete samples of FEATURE: the ids listed in FILE (.parquet, .jsonl, .csv), or those
    matching --where.

    \b
    Soft by default: the samples leave the latest state, their history stays.
      metaxy-sql delete video/full --where "sample_uid IN ('v1', 'v2')"
    """
    if (file is None) == (where is None):
        raise click.UsageError("give FILE or --where (not both)")
    spec = obj.graph().spec(feature)
    with obj.store(None, create=False) as store:
        if file is None:  # errors in --where name this command (delete), not read
            n = store.delete(feature, where=where, hard=hard)
        else:
            ids = read_rows(file, str(file))
            missing = [c for c in spec.id_columns if c not in ids.column_names]
            if missing:
                raise DataError(f"{file}: lacks the id columns {missing} of {feature!r}; "
                                "give one row per sample with its id columns")
            n = store.delete(feature, ids.select(list(spec.id_columns)), hard=hard) \
                if ids.num_rows else 0
    click.echo(f"deleted {n} samples of {feature} ({'hard' if hard else 'soft'})")


@click.command("drop")
@click.argument("feature")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--cascade", is_flag=True,
              help="Also drop the views reading the table (increment views from materialize, "
                   "your own views over it); only views, each one listed.")
@common_options
@click.pass_obj
def drop_cmd(obj: CliContext, feature: str, yes: bool, cascade: bool) -> None:
    """Drop FEATURE's table with all its history. Irreversible; asks first unless --yes.

    \b
    Refused while views read the table (materialize's increment views, or any other view,
    in any schema): they would break (Postgres refuses). --cascade drops those views first;
    increment tables (materialize --as table / incremental) stay and rebuild at their next
    refresh.
      metaxy-sql drop video/full --cascade --yes
    """
    obj.graph().spec(feature)
    with obj.store(None, create=False) as store:
        rows = store.count(feature)
        views = store.dependent_views(feature) if cascade else []
        if not yes:
            also = (f" and {len(views)} view(s) reading it "
                    f"({', '.join(v.qualified for v in views)})" if views else "")
            click.confirm(f"drop {feature} ({rows} live samples and all history){also} from "
                          f"{store.url}?", abort=True, err=True)
        dropped = store.drop(feature, cascade=cascade)
    for v in dropped:
        click.echo(f"dropped view {v.describe()}")
    click.echo(f"dropped {feature}")


@click.command()
@click.option("--samples", "n", type=int, default=1000, show_default=True,
              help="Number of videos in the example.")
@common_options
@click.pass_obj
def demo(obj: CliContext, n: int) -> None:
    """Run the bundled example end to end and show "the little change".

    Runs on duckdb:///metaxy-demo.db unless --store names another store (the config's and
    METAXY_SQL_STORE are not used); the example's tables there are dropped first.
    """
    from metaxy_sql.examples.demo import reset, run_demo, steps

    url = DEMO_STORE if obj.store_url is None else check_store_url(obj.store_url, "--store")
    reset(url, click.echo)
    with progress("demo", steps(), unit="steps") as task:
        run_demo(url, n, click.echo, on_progress=task.advance)


#: Where ``metaxy-sql demo`` runs without --store.
DEMO_STORE = "duckdb:///metaxy-demo.db"

COMMANDS = (resolve, status, read_cmd, write_cmd, delete_cmd, drop_cmd, demo)

