"""The ``metaxy-sql`` command line (click): :mod:`.main` (the group, graph, render),
:mod:`.store_cmds` (resolve, status, read, write, delete, drop, demo), :mod:`.warehouse`
(materialize, push, history, plan); :mod:`.options` holds what every command shares
(``--store``, ``-e``, ``--config`` before or after the command name)."""

from metaxy_sql.cli.main import cli, main

__all__ = ["cli", "main"]
