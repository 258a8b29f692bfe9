"""dbt ``sources.yml`` describing materialized increments, so a dbt project can ``source()`` them.

Written as YAML by hand (every scalar JSON-quoted, which YAML reads as-is): no YAML library
is needed at run time.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path

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


def refresh_command(feature: str, store_url: str | None = None,
                    entrypoints: Sequence[str] = ()) -> str:
    """The command line that refreshes the incremental table of ``feature`` in the store at
    ``store_url`` (as ``Store.url`` gives it: a password is masked) with the definitions of
    ``entrypoints`` (none: the configured ones)."""
    parts = ["metaxy-sql", "materialize", feature, "--as", "incremental"]
    for module in entrypoints:
        parts += ["-e", module]
    if store_url is not None:
        parts += ["--store", store_url]
    return shlex.join(parts)


def sources_yaml(graph: FeatureGraph, actions: Sequence[Action],
                 source: str = SOURCE_NAME, *, store_url: str | None = None,
                 entrypoints: Sequence[str] = ()) -> str:
    """``sources.yml`` text for the relations ``actions`` created, replaced or kept (one
    ``materialize`` call: one schema). ``store_url``/``entrypoints``: the store and
    definitions they were materialized with, named in an incremental table's refresh
    command (meta ``metaxy_refresh``; a masked password must be filled in)."""
    kept = [a for a in actions if a.action in ("created", "replaced", "unchanged", "refreshed",
                                               "rebuilt") and a.kind != FEATURE_TABLE]
    lines = ["# Written by `metaxy-sql materialize --dbt-sources`; regenerate, do not edit.",
             "version: 2", "sources:", f"  - name: {_q(source)}"]
    if kept:
        lines.append(f"    schema: {_q(kept[0].schema)}")
    lines += [f"    description: {_q('Increments of metaxy-sql features (materialize)')}",
              "    tables:" if kept else "    tables: []"]
    for a in kept:
        refresh = refresh_command(a.feature, store_url, entrypoints)
        text = f"Increment of {a.feature} ({a.kind}). "
        if a.kind == "incremental":
            # a table, not a view: writes since its last refresh are not in it
            text += f"As of its last refresh: run `{refresh}` (or resolve_update) first. "
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
                  store_url: str | None = None, entrypoints: Sequence[str] = ()) -> Path:
    """Write :func:`sources_yaml` to ``path`` (parents created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sources_yaml(graph, actions, store_url=store_url,
                                 entrypoints=entrypoints))
    return path
