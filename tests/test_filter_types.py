"""A ``where=`` or dependency filter comparing a column with a literal of another type is
refused before any SQL runs (engines cast, refuse or compare such pairs each their own way);
the pairs every engine compares alike keep working and select the same rows everywhere.

Rules (``metaxy_sql.model.filter_types``): numbers with number columns (a decimal literal
against an int column only when it is an exact float64 below 2**53), quoted text with text
columns, TRUE/FALSE with bool columns, 'YYYY-MM-DD' with dates, ISO text without offset with
naive timestamps and with an offset for zoned ones, 'NaN'/'inf' text with float columns.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

import metaxy_sql as mx
from metaxy_sql.warehouse.copy import rows_to_copy
from tests.conftest import StoreFactory

V = "t/root"
C = "t/child"
ROWS = {
    "uid": ["a", "b", "c"],
    "score": pa.array([1.0, 2.0, 3.5]),
    "n": pa.array([1, 2, 3], pa.int64()),
    "name": ["1", "2", "x"],
    "flag": [True, False, True],
    "ts": pa.array([dt.datetime(2023, 1, 1), dt.datetime(2024, 1, 2), dt.datetime(2025, 1, 1)],
                   pa.timestamp("us")),
    "tz": pa.array([dt.datetime(2023, 1, 1), dt.datetime(2024, 1, 2), dt.datetime(2025, 1, 1)],
                   pa.timestamp("us", tz="UTC")),
    "d": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2), dt.date(2024, 1, 3)]),
    "b": pa.array([b"a", b"b", b"c"]),
    "dec": pa.array([Decimal("1.50"), Decimal("2.00"), Decimal("-0.01")], pa.decimal128(10, 2)),
}

#: where= -> ids selected, written out from the rows above
ALLOWED: dict[str, set[str]] = {
    "score > 1.5": {"b", "c"},
    "score > 1": {"b", "c"},                      # int literal, float column
    "n > 1.5": {"b", "c"},                        # exact float literal, int column
    "n = 2.0": {"b"},
    "n IN (1, 3)": {"a", "c"},
    "n BETWEEN 2 AND 3": {"b", "c"},
    "score < 'inf'": {"a", "b", "c"},             # documented: infinity as text
    "name = '1'": {"a"},
    "name IN ('1', 'x')": {"a", "c"},
    "flag = TRUE": {"a", "c"},
    "flag AND n > 1": {"c"},
    "d = '2024-01-02'": {"b"},
    "ts > '2024-01-01'": {"b", "c"},
    "ts >= '2024-01-02 00:00:00'": {"b", "c"},
    "tz > '2024-01-02 01:00:00+02:00'": {"b", "c"},  # 2024-01-01 23:00 UTC
    "tz > '2024-01-02T00:00:00Z'": {"c"},
    "n = score": {"a", "b"},                      # numbers with numbers
    "name IS NULL OR b IS NOT NULL": {"a", "b", "c"},
    # ClickHouse converts an IN set strictly (a zoned text literal failed): IN is = OR =
    "tz IN ('2024-01-02 00:00:00Z')": {"b"},
    "tz IN ('2024-01-02 05:30:00+05:30', '2023-01-01T00:00:00Z')": {"a", "b"},
    "tz NOT IN ('2024-01-02 00:00:00+00:00')": {"a", "c"},
    "NOT (tz NOT IN ('2024-01-02 00:00:00Z'))": {"b"},
    "name NOT IN ('1', 'x')": {"b"},
    "d IN ('2024-01-01', '2024-01-03')": {"a", "c"},
    "flag": {"a", "c"},                           # a bare bool column is a condition
    "(flag)": {"a", "c"},
    "NOT flag": {"b"},
    "flag OR n = 2": {"a", "b", "c"},
    "dec >= 1.5": {"a", "b"},
    "dec > -1": {"a", "b", "c"},
    "dec < 999999999999999999999999999999999999": {"a", "b", "c"},  # 36 digits: 38 - scale 2
    "dec > -999999999999999999999999999999999999.99": {"a", "b", "c"},
    "score > 1e-320": {"a", "b", "c"},            # subnormal, still a float64
    "name LIKE '_'": {"a", "b", "c"},
}

#: where= -> the column and literal its error must name
REFUSED: dict[str, tuple[str, str]] = {
    "score > '1.5'": ("score", "'1.5'"),          # text vs float
    "name = 1": ("name", "1"),                    # number vs text
    "name IN ('x', 2)": ("name", "2"),
    "n BETWEEN '1' AND 3": ("n", "'1'"),
    "n = TRUE": ("n", "TRUE"),                    # bool vs int
    "flag = 1": ("flag", "1"),                    # number vs bool
    "flag = 'yes'": ("flag", "'yes'"),
    "ts > 1": ("ts", "1"),
    "ts > '20240101'": ("ts", "'20240101'"),     # not ISO: DuckDB refuses, others read it
    "ts > '2024-01-02 00:00:00+02'": ("ts", "+02"),  # offset on a naive column
    "tz > '2024-01-02 00:00:00'": ("tz", "'2024-01-02 00:00:00'"),  # session time zone
    "d = '2024-01-02 00:00:00'": ("d", "'2024-01-02 00:00:00'"),  # ClickHouse refuses
    "d = '2024-02-30'": ("d", "'2024-02-30'"),
    "n = 9007199254740993.0": ("n", "9007199254740993.0"),  # ClickHouse: Float64
    "score = 9007199254740993": ("score", "9007199254740993"),
    "b = 'a'": ("b", "'a'"),
    "n LIKE '1%'": ("n", "LIKE"),
    "n AND flag": ("n", "condition"),
    "name = n": ("name", "int64"),
    "n": ("'n' is int64, not bool", '"n <> 0"'),  # a bare column must be bool
    "(name)": ("'name' is string, not bool", "\"name <> ''\""),
    "ts AND flag": ("'ts' is timestamp[us], not bool", "ts IS NOT NULL"),
    # more integer digits than DECIMAL(38, 2) holds: DuckDB fails casting it, others answer
    "dec > 99999999999999999999999999999999999999": ("dec", "38 integer digits"),
    "dec < -9999999999999999999999999999999999999": ("decimal128(10, 2)", "(36:"),
}

#: where= -> what the DefinitionError must say (refused whatever the column types)
REFUSED_ANY_TYPES: dict[str, str] = {
    "score = 1e-400": "1e-400 is too small for a float64",  # 0 on two engines, error on pg
    "score IN (score)": "IN takes literals only, not columns",  # chdb: NaN differs
    "n IN (1, n)": "IN takes literals only, not columns",
    "name LIKE 'y\\%'": "a backslash in the LIKE pattern",  # DuckDB: no default escape
    "name NOT ILIKE '%\\_'": "a backslash in the LIKE pattern",
    "name LIKE 'y!%' ESCAPE '!'": "LIKE ... ESCAPE is refused",
    "n = 1 OR name LIKE 'y!%' ESCAPE '!'": "LIKE ... ESCAPE is refused",
}


def _graph() -> mx.FeatureGraph:
    root = mx.FeatureSpec(key=V, id_columns=["uid"], fields=[mx.FieldSpec(key="f")])
    child = mx.FeatureSpec(key=C, id_columns=["uid"], fields=[mx.FieldSpec(key="f")],
                           deps=[mx.FeatureDep(feature=V, filters=["score > '1.5'"])])
    return mx.FeatureGraph([root, child])


@pytest.fixture
def store(make_store: StoreFactory) -> mx.Store:
    s = make_store(_graph())
    s.write(V, pa.table({**ROWS, "metaxy_provenance_by_field": [{"f": u} for u in ROWS["uid"]]}))
    return s


def test_where_mismatched_literals_refused_alike(store: mx.Store) -> None:
    for where, (column, literal) in REFUSED.items():
        with pytest.raises(mx.DataError) as e:
            store.read(V, where=where)
        message = str(e.value)
        assert repr(where) in message and column in message and literal in message, where


def test_where_matching_literals_select_the_same_rows(store: mx.Store) -> None:
    for where, expected in ALLOWED.items():
        got = set(store.read(V, where=where).column("uid").to_pylist())
        assert got == expected, where


def test_where_refused_whatever_the_types(store: mx.Store) -> None:
    for where, fragment in REFUSED_ANY_TYPES.items():
        with pytest.raises(mx.DefinitionError) as e:
            store.read(V, where=where)
        assert fragment in str(e.value) and repr(where) in str(e.value), where


def test_bare_bool_column_excludes_null(make_store: StoreFactory) -> None:
    s = make_store(_graph())
    s.write(V, pa.table({"uid": ["t", "f", "n"], "flag": pa.array([True, False, None]),
                         "metaxy_provenance_by_field": [{"f": u} for u in "tfn"]}))
    assert s.read(V, where="flag").column("uid").to_pylist() == ["t"]
    assert s.read(V, where="NOT flag").column("uid").to_pylist() == ["f"]


def _tz_graph(filters: list[str]) -> mx.FeatureGraph:
    root = mx.FeatureSpec(key=V, id_columns=["uid"], fields=[mx.FieldSpec(key="f")])
    child = mx.FeatureSpec(key=C, id_columns=["uid"], fields=[mx.FieldSpec(key="f")],
                           deps=[mx.FeatureDep(feature=V, filters=filters)])
    return mx.FeatureGraph([root, child])


def test_dependency_filter_zoned_in_list_and_bare_bool(make_store: StoreFactory) -> None:
    s = make_store(_tz_graph(["tz IN ('2024-01-02 00:00:00Z', '2025-01-01 01:00:00+01:00')",
                              "flag"]))
    s.write(V, pa.table({**ROWS, "metaxy_provenance_by_field": [{"f": u} for u in ROWS["uid"]]}))
    # tz in {b, c}; flag in {a, c}
    assert set(s.resolve_update(C).new.to_arrow().column("uid").to_pylist()) == {"c"}


def test_delete_where_zoned_not_in_list(store: mx.Store) -> None:
    assert store.delete(V, where="tz NOT IN ('2024-01-02 00:00:00Z')") == 2
    assert store.read(V).column("uid").to_pylist() == ["b"]


def test_iter_batches_where_refused(store: mx.Store) -> None:
    with pytest.raises(mx.DataError, match="'score' is double"):
        list(store.iter_batches(V, where="score > '1.5'"))
    assert store.count(V) == 3


def test_resolve_where_on_text_id_refuses_a_number(store: mx.Store) -> None:
    with pytest.raises(mx.DataError, match=r"'uid' is string but 1 is number.*quote"):
        store.resolve_update(V, samples=[{"uid": "a", "metaxy_provenance_by_field": {"f": "a"}}],
                             where="uid = 1")
    with pytest.raises(mx.DataError, match="'uid' is string"):
        rows_to_copy(store, [V], where="uid IN (1, 2)")


def test_filter_mismatch_is_a_definition_error_once_types_are_known(store: mx.Store) -> None:
    with pytest.raises(mx.DefinitionError) as e:
        store.resolve_update(C)
    message = str(e.value)
    assert "dependency 't/root'" in message and "'score' is double" in message
    assert "'1.5'" in message and "write the literal as a number" in message
    with pytest.raises(mx.DefinitionError, match="'score' is double"):
        store.render(C)


def test_filter_mismatch_declared_type_refused_at_definition() -> None:
    class Root(mx.BaseFeature, spec=mx.FeatureSpec(
            key="k/root", id_columns=["uid"], fields=[mx.FieldSpec(key="f")])):
        uid: str
        score: float

    child = mx.FeatureSpec(key="k/child", id_columns=["uid"], fields=[mx.FieldSpec(key="f")],
                           deps=[mx.FeatureDep(feature="k/root", filters=["uid = 7"])])
    with pytest.raises(mx.DefinitionError, match=r"'uid' is str but 7 is number.*quote"):
        mx.FeatureGraph([Root, child])


# -- samples= of a root: metaxy_* columns ---------------------------------------------------
def _sample(extra: dict[str, object]) -> list[dict[str, object]]:
    return [{"uid": "a", "metaxy_provenance_by_field": {"f": "p"}, **extra}]


def test_samples_misspelled_system_column_names_it_and_the_known_ones(store: mx.Store) -> None:
    with pytest.raises(mx.DataError) as e:
        store.resolve_update(V, samples=_sample({"metaxy_provenence_by_field": {"f": "q"}}))
    message = str(e.value)
    assert "'metaxy_provenence_by_field'" in message
    assert "did you mean 'metaxy_provenance_by_field'" in message
    assert "metaxy_data_version_by_field" in message  # the known ones are listed
    with pytest.raises(mx.DataError, match=r"'metaxy_superseded'.*never written"):
        store.resolve_update(V, samples=_sample({"metaxy_superseded": False}))


def test_samples_data_version_by_field_is_not_carried(store: mx.Store) -> None:
    # README: "A metaxy_data_version_by_field in samples= is not carried: give it when writing"
    inc = store.resolve_update(V, samples=_sample({"metaxy_data_version_by_field": {"f": "z"}}))
    assert "metaxy_data_version_by_field" not in inc.stale.to_arrow().column_names
    assert inc.stale.to_arrow().column("uid").to_pylist() == ["a"]  # provenance p, stored a
