"""Dagster entry point: ``dagster dev -m integration.dagster_example.definitions``.

The store URL comes from ``METAXY_SQL_STORE`` (default: ``duckdb:///metaxy-dagster.db`` in the
working directory) and the features from ``METAXY_SQL_ENTRYPOINTS`` (default: the seed graph).
"""

from __future__ import annotations

import os

from integration.dagster_example.assets import build_definitions
from metaxy_sql.ext.dagster import MetaxyStoreResource
from metaxy_sql.model.config import ENV_ENTRYPOINTS, ENV_STORE

store = MetaxyStoreResource(
    url=os.environ.get(ENV_STORE, "duckdb:///metaxy-dagster.db"),
    entrypoints=[e for e in os.environ.get(ENV_ENTRYPOINTS, "metaxy_sql.examples.seed").split(",")
                 if e],
)
defs = build_definitions(store)
