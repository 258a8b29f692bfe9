"""The ``metaxy-sql`` command line (click): :mod:`.main` (definitions, store, demo) and
:mod:`.warehouse` (materialize, push, history, plan)."""

from metaxy_sql.cli.main import cli, main

__all__ = ["cli", "main"]
