"""ClickHouse through chdb: one data directory per test process, a fresh database per test.

chdb opens one data path per process at a time, so every test store shares this path and gets
its own database (``?database=``), created on connect.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

_ROOT = Path(tempfile.mkdtemp(prefix="metaxy-sql-chdb-"))


def fresh_url(name: str) -> str:
    return f"chdb://{_ROOT}?database={name}"
