"""Integrations with other tools, each an optional extra the core never imports.

- :mod:`metaxy_sql.ext.dagster` (extra ``dagster``): features as Dagster assets.
- :mod:`metaxy_sql.ext.ibis` (extra ``ibis``): ``to_ibis()`` and ``Store.table()``, loaded by
  those methods on first use.
- :mod:`metaxy_sql.ext.ray` (extra ``ray``): increments as Ray datasets, datasets written back.
"""
