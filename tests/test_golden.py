"""Golden SQL: the files under dialects/ are what render prints and what the store runs.

Regenerate after a deliberate change (then read the diff):
    metaxy-sql -e metaxy_sql.examples.seed render --golden dialects
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from metaxy_sql.compile.dialects import DIALECTS, get_dialect
from metaxy_sql.compile.render import resolve_sql
from metaxy_sql.examples import seed
from metaxy_sql.warehouse.golden import golden_path
from tests.pipeline import samples, step

ROOT = Path(__file__).resolve().parent.parent / "dialects"
BASE = {f"v{i}": {"audio": f"a{i}", "frames": f"f{i}"} for i in range(5)}


@pytest.mark.parametrize("dialect", sorted(DIALECTS))
@pytest.mark.parametrize("key", seed.graph.keys)
def test_golden_file_is_current(dialect: str, key: str) -> None:
    path = golden_path(ROOT, dialect, "seed", key)
    assert path.read_text() == resolve_sql(seed.graph, key, get_dialect(dialect))[0], (
        f"{path} is out of date: regenerate with "
        "`metaxy-sql -e metaxy_sql.examples.seed render --golden dialects` and review the diff")


def test_store_runs_the_golden_sql(make_store: Any, engine: str) -> None:
    """With every table present, the statement the store runs is the golden file, byte for
    byte, and running the file's text gives the increment's rows."""
    store = make_store(seed.graph)
    step(store, samples(BASE))
    changed = {**BASE, "v1": {"audio": "a1", "frames": "f1*"}}
    del changed["v2"]
    for key in seed.graph.keys:
        inc = store.resolve_update(key, samples=samples(changed) if key == "video/full" else None)
        golden = golden_path(ROOT, engine, "seed", key).read_text()
        assert inc.sql == golden
        from_file = store.executor.fetch(golden).sort_by([("sample_uid", "ascending")])
        from_inc = inc.to_arrow().sort_by([("sample_uid", "ascending")])
        assert from_file.to_pylist() == from_inc.to_pylist()
        if key == "video/full":
            assert inc.counts() == {"new": 0, "stale": 1, "orphaned": 1}
        store.write(key, inc.stale.to_arrow())
        store.delete(key, inc.orphaned.to_arrow())
