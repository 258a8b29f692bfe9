"""Integrations with other tools, each an optional extra the core never imports.

- :mod:`metaxy_sql.ext.dagster` (extra ``dagster``): features as Dagster assets.
"""
