"""DuckDB: a fresh database file per test."""

from __future__ import annotations

import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="metaxy-sql-duckdb-"))


def fresh_url(name: str) -> str:
    return f"duckdb:///{_ROOT / (name + '.db')}"
