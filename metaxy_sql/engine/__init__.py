"""Stage 3, the engine side: executors (DuckDB, ClickHouse, Postgres; Arrow in and out), the
checks on rows a user writes, the store (resolve, read, write, delete), lazy increments and
the buffered writer."""
