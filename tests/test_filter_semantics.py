"""One predicate semantics on every engine (``metaxy_sql.model.filters``): a sample gets the
same status on DuckDB, ClickHouse and Postgres, NaN, infinities, signed zeros and NULL included.

The semantics: SQL three-valued logic (a NULL predicate selects nothing); floats in the SQL
total order, NaN equal to itself and greater than every other value (+inf included), -0.0 equal
to 0.0; ``x IN (a, b)`` is ``x = a OR x = b``; ``x BETWEEN a AND b`` is ``x >= a AND x <= b``.
Arithmetic is refused at definition time. Every expected set below is written out from these
rules, value by value.
"""

from __future__ import annotations

import importlib
import itertools
import os
import re
from typing import Any

import pyarrow as pa
import pytest

import metaxy_sql as mx
from metaxy_sql.model import names
from tests.conftest import ENGINES

V = "video/full"
_COPIES = itertools.count()

#: sample id -> duration (None: NULL)
DURATIONS: dict[str, float | None] = {
    "nan": float("nan"), "pinf": float("inf"), "ninf": float("-inf"), "null": None,
    "zero": 0.0, "negzero": -0.0, "one": 1.0, "two5": 2.5,
}
ALL_BUT_NULL = {k for k, v in DURATIONS.items() if v is not None}

#: predicate -> the samples it selects under the semantics above
EXPECTED: dict[str, set[str]] = {
    # NaN and +inf are above 1.0; NULL > 1.0 is NULL
    "duration > 1.0": {"nan", "pinf", "two5"},
    # NaN equals itself; NULL = NULL is NULL
    "duration = duration": ALL_BUT_NULL,
    # everything but 1.0 and NULL
    "duration <> 1.0": {"nan", "pinf", "ninf", "zero", "negzero", "two5"},
    # -0.0 >= 0; NaN <= 3 is false; inf > 3
    "duration BETWEEN 0 AND 3": {"zero", "negzero", "one", "two5"},
    # NOT of a NULL is NULL
    "NOT (duration > 1.0)": {"ninf", "zero", "negzero", "one"},
    "duration IN (1.0, 2.5)": {"one", "two5"},
    # beyond the six the brief lists: signed zeros and NaN literals (written as text)
    "duration IN (0.0, 'NaN')": {"nan", "zero", "negzero"},
    "NOT (duration IN (0.0))": ALL_BUT_NULL - {"zero", "negzero"},
    "duration = 'NaN'": {"nan"},
    "duration <> duration": set(),
    "duration >= 'inf'": {"pinf", "nan"},
    "duration < 'inf'": {"ninf", "zero", "negzero", "one", "two5"},
    "duration <= -0.0": {"ninf", "zero", "negzero"},
    "'inf' < duration": {"nan"},
    "NOT (duration BETWEEN 0 AND 3)": {"nan", "pinf", "ninf"},
    "duration IS NULL OR duration < 0": {"null", "ninf"},
    "(duration > 1.0) = TRUE": {"nan", "pinf", "two5"},
}
PREDICATES = list(EXPECTED)


def _child(i: int, text: str) -> mx.FeatureSpec:
    return mx.FeatureSpec(key=f"filtered/c{i}", id_columns=["sample_uid"],
                          deps=[mx.FeatureDep(feature=V, filters=[text])],
                          fields=[mx.FieldSpec(key="frames")])


def _graph() -> mx.FeatureGraph:
    root = mx.FeatureSpec(key=V, id_columns=["sample_uid"], fields=[mx.FieldSpec(key="frames")])
    return mx.FeatureGraph([root, *[_child(i, t) for i, t in enumerate(PREDICATES)]])


def _write_root(store: mx.Store) -> None:
    uids = list(DURATIONS)
    store.write(V, pa.table({
        "sample_uid": pa.array(uids, pa.string()),
        "duration": pa.array([DURATIONS[u] for u in uids], pa.float64()),
        names.PROVENANCE_BY_FIELD: pa.array(
            [[("frames", f"f-{u}")] for u in uids], pa.map_(pa.string(), pa.string())),
    }))


@pytest.fixture
def store(make_store: Any) -> mx.Store:
    s: mx.Store = make_store(_graph())
    _write_root(s)
    return s


def _uids(table: Any) -> set[str]:
    return {r["sample_uid"] for r in table.to_pylist()}


def test_root_holds_every_special_value(store: mx.Store) -> None:
    got = {r["sample_uid"]: r["duration"] for r in store.read(V).to_pylist()}
    assert got["nan"] != got["nan"] and got["null"] is None
    assert got["pinf"] == float("inf") and got["ninf"] == float("-inf")
    assert str(got["negzero"]) == "-0.0"


def test_dependency_filters_select_the_same_samples(store: mx.Store) -> None:
    got = {text: _uids(store.resolve_update(f"filtered/c{i}").new)
           for i, text in enumerate(PREDICATES)}
    assert got == EXPECTED


@pytest.mark.parametrize("text", PREDICATES)
def test_read_where_selects_the_same_samples(store: mx.Store, text: str) -> None:
    assert _uids(store.read(V, where=text)) == EXPECTED[text]
    history = store.read(V, history=True, where=text)
    assert _uids(history) == EXPECTED[text]


def test_partial_resolution_of_a_filtered_child(store: mx.Store) -> None:
    """``resolve_update(where=)`` reads id columns only (ids are never floats): it narrows the
    filtered increment to the subset, and a predicate over ``duration`` is refused."""
    i = PREDICATES.index("duration > 1.0")
    inc = store.resolve_update(f"filtered/c{i}", where="sample_uid IN ('nan', 'one', 'two5')")
    assert _uids(inc.new) == {"nan", "two5"}
    with pytest.raises(mx.DefinitionError, match=r"where=.*unknown columns \['duration'\]"):
        store.resolve_update(f"filtered/c{i}", where="duration > 1.0")


ARITHMETIC = [
    ("duration / 0 > 1", "Div"),
    ("a * b > 0", "Mul"),
    ("7 / 2 = 3", "Div"),
    ("duration + 1 > 2", "Add"),
    ("duration - 1 > 2", "Sub"),
    ("-duration < 0", "Neg"),
    ("duration % 2 = 1", "Mod"),
]


@pytest.mark.parametrize(("text", "node"), ARITHMETIC, ids=[a[0] for a in ARITHMETIC])
def test_arithmetic_is_refused_at_definition(text: str, node: str) -> None:
    match = (rf"dependency 'video/full'.*{re.escape(text)}.*arithmetic \({node}\) is refused.*"
             r"store the computed value as a column")
    with pytest.raises(mx.DefinitionError, match=match):
        mx.FeatureDep(feature=V, filters=[text])


@pytest.mark.parametrize(("text", "node"), ARITHMETIC[:3], ids=[a[0] for a in ARITHMETIC[:3]])
def test_arithmetic_is_refused_in_where(store: mx.Store, text: str, node: str) -> None:
    with pytest.raises(mx.DefinitionError, match=rf"read 'video/full': where=.*\({node}\) is "
                                                  "refused"):
        store.read(V, where=text)
    with pytest.raises(mx.DefinitionError, match=rf"'filtered/c0': where=.*\({node}\)"):
        store.resolve_update("filtered/c0", where=text)


@pytest.mark.parametrize(("text", "match"), [
    ("duration < 1e400", r"1e400 is beyond the float range"),
    ("duration IN (1.0, NULL)", r"NULL inside IN \(\.\.\.\) is refused"),
    ("NOT (duration IN (1.0, NULL))", r"x IS NULL OR x IN"),
])
def test_literals_engines_disagree_on_are_refused(text: str, match: str) -> None:
    with pytest.raises(mx.DefinitionError, match=match):
        mx.FeatureDep(feature=V, filters=[text])


def test_negative_number_literals_stay_allowed(store: mx.Store) -> None:
    assert _uids(store.read(V, where="duration > -1.5 AND duration < 1")) == {"zero", "negzero"}


def test_copy_between_engines_keeps_every_status(store: mx.Store, engine: str) -> None:
    """A root copied from this engine to each other engine: every filtered child's increment
    holds the same samples there as here (and as the semantics say)."""
    for other in [e for e in ENGINES if e != engine]:
        module = importlib.import_module(f"tests.engines.{other}")
        url = module.fresh_url(f"t{os.getpid()}_copy_{engine}_{next(_COPIES)}")
        with mx.connect(url, graph=_graph()) as target:
            mx.copy(store, target, [V])
            got = {text: _uids(target.resolve_update(f"filtered/c{i}").new)
                   for i, text in enumerate(PREDICATES)}
            assert got == EXPECTED, other
