"""Per-engine test setup: each module exposes ``fresh_url(name) -> str`` giving an empty store.

The engine-parametrized suite runs on every engine listed in ``METAXY_SQL_TEST_ENGINES``
(default: all). An engine that cannot start is a failure, never a skip.
"""
