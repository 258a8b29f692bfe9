"""dbt ``sources.yml`` describing materialized increments, so a dbt project can ``source()`` them.

Written as YAML by hand (every scalar JSON-quoted, which YAML reads as-is): no YAML library
is needed at run time.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

from metaxy_sql.engine.executors.base import SECRET_PARAMS, mask_url
from metaxy_sql.model import names
from metaxy_sql.model.graph import FeatureGraph
from metaxy_sql.warehouse.materialize import FEATURE_TABLE, Action

#: The ``source`` name in dbt: ``{{ source('metaxy_sql', 'video__face_crop__increment') }}``.
SOURCE_NAME = "metaxy_sql"


def _q(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _columns(graph: FeatureGraph, key: str) -> list[tuple[str, str]]:
    fields = ", ".join(graph.field_keys(key))
    return [
        (names.STATUS, "new (expected, never written), stale (written, expected provenance "
                       "differs) or orphaned (written, no longer expected)"),
        *[(c, f"id column of {key}") for c in graph.spec(key).id_columns],
        (names.PROVENANCE_BY_FIELD, f"field -> expected provenance ({fields}); orphaned rows: "
                                    "the stored provenance"),
        (names.PROVENANCE, "hash of metaxy_provenance_by_field"),
        (names.CHANGED_FIELDS, "stale rows: the fields whose provenance changed"),
    ]


#: The environment variable a refresh command reads a store URL with a password from.
STORE_ENV = "METAXY_SQL_STORE"


def refresh_store(url: str) -> str | None:
    """How a refresh command names the store at ``url``, so it opens the same store from any
    directory (dbt runs commands from its project folder): a DuckDB file by its absolute
    path (a relative one is resolved against the working directory, where it was opened);
    ``None`` for a URL carrying a password, even masked (the command then reads
    ``$METAXY_SQL_STORE``: a password is never written out); any other URL as it is.

    >>> refresh_store("postgresql://me:***@db.example.com/meta")
    >>> refresh_store("clickhouse://db.example.com:8123/meta")
    'clickhouse://db.example.com:8123/meta'
    """
    parts = urlsplit(url)
    if parts.password is not None or any(
            k in SECRET_PARAMS for k, _ in parse_qsl(parts.query, keep_blank_values=True)):
        return None
    prefix = "duckdb:///"
    if url.startswith(prefix) and url[len(prefix):] not in ("", ":memory:"):
        return prefix + str(Path(url[len(prefix):]).absolute())
    return url


def refresh_command(feature: str, store_url: str | None = None,
                    entrypoints: Sequence[str] = (), config: Path | None = None) -> str:
    """The command line that refreshes the incremental table of ``feature``, from any
    directory, with the definitions that made it.

    Args:
        feature: feature key.
        store_url: the store (as given, or as ``Store.url`` shows it): named as
            :func:`refresh_store` says; one with a password as ``--store "$METAXY_SQL_STORE"``
            (unset, that is an empty ``--store``: an error, never another store).
        entrypoints: the modules the definitions were loaded from (``-e`` each).
        config: the config file they were loaded with (``--config``, absolute): its folder
            is where the modules import from, and it sets the hash algorithm.
    """
    parts = ["metaxy-sql", "materialize", feature, "--as", "incremental"]
    if config is not None:
        parts += ["--config", str(config.absolute())]
    for module in entrypoints:
        parts += ["-e", module]
    store = None if store_url is None else refresh_store(store_url)
    if store is not None:
        parts += ["--store", store]
    command = shlex.join(parts)
    if store_url is not None and store is None:
        command += f' --store "${STORE_ENV}"'  # expanded by the shell that runs it
    return command


def sources_yaml(graph: FeatureGraph, actions: Sequence[Action],
                 source: str = SOURCE_NAME, *, store_url: str | None = None,
                 entrypoints: Sequence[str] = (), config: Path | None = None) -> str:
    """``sources.yml`` text for the relations ``actions`` created, replaced or kept (one
    ``materialize`` call: one schema). ``store_url``, ``entrypoints`` and ``config``: the
    store and definitions they were materialized with, named in an incremental table's
    refresh command (meta ``metaxy_refresh``; see :func:`refresh_command`)."""
    kept = [a for a in actions if a.action in ("created", "replaced", "unchanged", "refreshed",
                                               "rebuilt") and a.kind != FEATURE_TABLE]
    lines = ["# Written by `metaxy-sql materialize --dbt-sources`; regenerate, do not edit.",
             "version: 2", "sources:", f"  - name: {_q(source)}"]
    if kept:
        lines.append(f"    schema: {_q(kept[0].schema)}")
    lines += [f"    description: {_q('Increments of metaxy-sql features (materialize)')}",
              "    tables:" if kept else "    tables: []"]
    secret = store_url is not None and refresh_store(store_url) is None
    for a in kept:
        refresh = refresh_command(a.feature, store_url, entrypoints, config)
        text = f"Increment of {a.feature} ({a.kind}). "
        if a.kind == "incremental":
            # a table, not a view: writes since its last refresh are not in it
            text += f"As of its last refresh: run `{refresh}` (or resolve_update) first"
            text += (f", with {STORE_ENV} set to the store URL ({mask_url(store_url or '')}). "
                     if secret else ". ")
        text += graph.spec(a.feature).description or ""
        lines += [
            f"      - name: {_q(a.relation)}",
            f"        description: {_q(text.strip())}",
            "        meta:",
            f"          metaxy_feature: {_q(a.feature)}",
            f"          metaxy_feature_version: {_q(graph.feature_version(a.feature))}",
            f"          materialized: {_q(a.kind)}",
            *([f"          metaxy_refresh: {_q(refresh)}"] if a.kind == "incremental" else []),
            "        columns:",
        ]
        for column, about in _columns(graph, a.feature):
            lines += [f"          - name: {_q(column)}", f"            description: {_q(about)}"]
    return "\n".join(lines) + "\n"


def write_sources(path: Path, graph: FeatureGraph, actions: Sequence[Action], *,
                  store_url: str | None = None, entrypoints: Sequence[str] = (),
                  config: Path | None = None) -> Path:
    """Write :func:`sources_yaml` to ``path`` (parents created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sources_yaml(graph, actions, store_url=store_url,
                                 entrypoints=entrypoints, config=config))
    return path
