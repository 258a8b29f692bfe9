"""Property: for random provenance strings, every engine's hashes equal the oracle's."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from metaxy_sql.examples import seed
from tests.conftest import examples
from tests.pipeline import check_oracle, samples, step

value = st.text(alphabet=st.sampled_from(list(":|~0123456789aZ é🎧\\'\"\n,%_")), max_size=8)
sample_sets = st.dictionaries(
    st.text(alphabet="abcxyz019é", min_size=1, max_size=4),
    st.fixed_dictionaries({"audio": value, "frames": value}),
    min_size=1, max_size=6,
)


@settings(max_examples=examples(12), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sample_sets)
def test_engine_hashes_equal_oracle(make_store: Any, root: dict[str, dict[str, str]]) -> None:
    store = make_store(seed.graph)
    for key in seed.graph.keys:
        store.drop(key)
    report = step(store, samples(root))
    assert all(r["new"] == len(root) for r in report.values())
    assert check_oracle(store) == 4 * len(root)
