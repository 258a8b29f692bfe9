"""Property: random user columns of every supported Arrow type round-trip exactly through
write/read, or are refused with a DataError; the rule (text holding NUL is refused, nothing
else) is the same on every engine, so the engines agree on which."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import metaxy_sql as mx
from tests.conftest import examples

_keys = itertools.count()
_text = st.text(alphabet=st.sampled_from(list("aZé🎧\x00|:,;\"'\\\n\t ")), max_size=6)
_utc = dt.UTC
_times = st.datetimes(min_value=dt.datetime(1970, 1, 1), max_value=dt.datetime(2099, 12, 31))
#: Arrow type -> strategy of its (non-null) Python values.
TYPES: list[tuple[pa.DataType, st.SearchStrategy[Any]]] = [
    (pa.int64(), st.integers(-2**63, 2**63 - 1)),
    (pa.float64(), st.floats(allow_nan=False, allow_infinity=False)),
    (pa.bool_(), st.booleans()),
    (pa.string(), _text),
    (pa.timestamp("us"), _times),
    (pa.timestamp("us", tz="UTC"), _times.map(lambda t: t.replace(tzinfo=_utc))),
    (pa.date32(), st.dates(min_value=dt.date(1970, 1, 1), max_value=dt.date(2099, 12, 31))),
    (pa.decimal128(18, 4), st.decimals(min_value=-10**13, max_value=10**13, places=4,
                                       allow_nan=False, allow_infinity=False)),
    (pa.null(), st.none()),
    (pa.list_(pa.int64()), st.lists(st.integers(-2**63, 2**63 - 1), max_size=3)),
    (pa.struct([("n", pa.int64()), ("s", pa.string())]),
     st.fixed_dictionaries({"n": st.integers(-2**31, 2**31), "s": _text})),
]


@st.composite
def columns(draw: st.DrawFn) -> tuple[pa.DataType, list[Any]]:
    t, values = draw(st.sampled_from(TYPES))
    return t, draw(st.lists(st.none() | values, min_size=1, max_size=3))


def refused(t: pa.DataType, values: list[Any]) -> bool:
    """The documented rule: text holding NUL, and NULL lists or structs, are refused; nothing
    else."""
    return any(_has_nul(v) for v in values) or (pa.types.is_nested(t) and None in values)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(v) for v in value.values())
    return False


@settings(max_examples=examples(25), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(columns())
def test_user_columns_round_trip_or_are_refused(make_store: Any,
                                                column: tuple[pa.DataType, list[Any]]) -> None:
    t, values = column
    key = f"prop{next(_keys)}"
    graph = mx.FeatureGraph([mx.FeatureSpec(key=key, id_columns=["id"],
                                            fields=[mx.FieldSpec(key="x")])])
    store = make_store(graph)
    ids = [f"r{i}" for i in range(len(values))]
    data = pa.table({"id": ids, "metaxy_provenance_by_field": [{"x": "p"}] * len(values),
                     "v": pa.array(values, t)})
    must_refuse = refused(t, values)
    try:
        store.write(key, data)
    except mx.DataError:
        assert must_refuse, "a value every engine can hold was refused"
        return
    assert not must_refuse, "a value the rule refuses was accepted"
    table = store.read(key).sort_by("id")
    if pa.types.is_null(t):  # type left open: no column yet
        assert "v" not in table.column_names
        return
    assert table.schema.field("v").type == t
    got = table.column("v").to_pylist()
    assert got == values, (got, values)
    assert all(type(a) is type(b) for a, b in zip(got, values, strict=True)
               if not isinstance(a, decimal.Decimal))
