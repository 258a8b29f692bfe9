"""Entrypoint with "the little change": ``video/face_crop`` frames at code_version 2.

Point the example at it to see the change in Dagster::

    METAXY_SQL_ENTRYPOINTS=integration.dagster_example.little_change \
        dagster dev -m integration.dagster_example.definitions
"""

from __future__ import annotations

from metaxy_sql.examples.demo import bumped_graph

graph = bumped_graph()
