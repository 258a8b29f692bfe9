"""Warehouse operations, one layer above the store: each takes a :class:`Store`.

- :mod:`.materialize`: increment views and snapshot tables, dbt-style.
- :mod:`.snapshots`: graph snapshots (``push_graph``, ``graph_history``).
- :mod:`.plan`: the impact of changed definitions against the last snapshot.
- :mod:`.copy`: copy features between stores (latest state or full history).
- :mod:`.dbt`: dbt ``sources.yml`` for the materialized increments.
- :mod:`.golden`: the golden SQL files under ``dialects/``.
"""
