"""``python -m metaxy_sql.cli``: the ``metaxy-sql`` command."""

from metaxy_sql.cli.main import main

main()
