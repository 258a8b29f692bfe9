"""Exact writes and deletes, on every engine: a ``metaxy_*`` value in written rows is stored
as the store records it or refused (never replaced), and a delete tombstones (and counts)
only the ids whose latest row is live. Expected hashes come from the oracle
(``metaxy_sql.model.hashing``); expected counts from the rows written.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import re
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from click.testing import CliRunner

import metaxy_sql as mx
from metaxy_sql.cli import cli
from metaxy_sql.model import hashing, names
from tests.conftest import StoreFactory

V, T = "video/full", "transcript/whisper"
video = mx.FeatureSpec(key=V, id_columns=["sample_uid"],
                       fields=[mx.FieldSpec(key="audio", code_version="1"),
                               mx.FieldSpec(key="frames", code_version="1")])
transcript = mx.FeatureSpec(key=T, id_columns=["sample_uid"], deps=[V], fields=[
    mx.FieldSpec(key="text", code_version="1", deps=[mx.FieldDep(feature=V, fields=["audio"])])])
GRAPH = mx.FeatureGraph([video, transcript])


def _sample(i: int) -> dict[str, Any]:
    return {"sample_uid": f"v{i}",
            names.PROVENANCE_BY_FIELD: {"audio": f"a{i}", "frames": f"f{i}"}}


def _store(make_store: StoreFactory, n: int = 2) -> mx.Store:
    store = make_store(GRAPH)
    store.write(V, store.resolve_update(V, samples=[_sample(i) for i in range(n)]).new)
    return store


def _refused(store: mx.Store, rows: Any, *words: str, feature: str = V) -> str:
    before = store.read(feature, history=True).num_rows
    with pytest.raises(mx.DataError) as info:
        store.write(feature, rows)
    message = str(info.value)
    for word in (repr(feature), *words):
        assert word in message, message
    assert store.read(feature, history=True).num_rows == before  # nothing appended
    return message


# -- writes: a system column is stored as the store records it, or refused ------------------
def test_row_written_as_deleted_is_refused(make_store: StoreFactory) -> None:
    store = _store(make_store)
    rows = [{**_sample(5), names.DELETED: False}, {**_sample(6), names.DELETED: True}]
    _refused(store, rows, repr(names.DELETED), "row 1", "'v6'", "delete(")
    assert store.count(V) == 2
    # false (a live row) is what a write records: accepted
    assert store.write(V, [{**_sample(5), names.DELETED: False}]) == 1
    assert store.count(V) == 3


def test_fake_provenance_is_refused(make_store: StoreFactory) -> None:
    store = _store(make_store)
    _refused(store, [{**_sample(7), names.PROVENANCE: "fake"}],
             repr(names.PROVENANCE), "row 0", "'v7'", "'fake'", "drop the column")
    _refused(store, [{**_sample(7), names.DATA_VERSION: "fake"}], repr(names.DATA_VERSION))
    right = hashing.sample_digest(_sample(7)[names.PROVENANCE_BY_FIELD])
    assert store.write(V, [{**_sample(7), names.PROVENANCE: right,
                            names.DATA_VERSION: right}]) == 1


def test_other_provenance_by_field_than_the_hash_is_refused(make_store: StoreFactory) -> None:
    """Rows whose map was edited after the hash was taken: the hash no longer matches."""
    store = _store(make_store)
    inc = store.resolve_update(V, samples=[_sample(0), _sample(1), _sample(8)])
    rows = inc.new.to_pylist()
    rows[0][names.PROVENANCE_BY_FIELD] = {"audio": "other", "frames": "f8"}
    _refused(store, rows, repr(names.PROVENANCE), "'v8'")


@pytest.mark.parametrize("column,value", [
    (names.CREATED_AT, dt.datetime(2020, 1, 1)),
    (names.WRITE_SEQ, 99),  # v0 was written at position 1
    (names.FEATURE_VERSION, "some-other-version"),
])
def test_write_columns_not_read_from_the_store_are_refused(
        make_store: StoreFactory, column: str, value: Any) -> None:
    store = _store(make_store)
    _refused(store, [{**_sample(0), column: value}], repr(column), "row 0", "'v0'")
    _refused(store, [{**_sample(9), column: value}], repr(column), "no live row")


def test_superseded_and_status_values_are_refused(make_store: StoreFactory) -> None:
    store = _store(make_store)
    _refused(store, [{**_sample(3), names.SUPERSEDED: False}], repr(names.SUPERSEDED))
    _refused(store, [{**_sample(3), names.STATUS: "deleted"}], repr(names.STATUS), "'deleted'")
    store.write(T, store.resolve_update(T).new.to_arrow().append_column(
        "text", pa.array(["x", "y"])))
    rows = [{"sample_uid": "v0", names.PROVENANCE_BY_FIELD: {"text": "p"},
             names.CHANGED_FIELDS: ["nope"], "text": "x"}]
    _refused(store, rows, repr(names.CHANGED_FIELDS), "'nope'", feature=T)


def _forms(part: mx.IncrementPart) -> list[Any]:
    table = part.to_arrow()
    return [table, part.to_pylist(), table.to_pandas(), pl.from_arrow(table), part.to_polars()]


def test_increment_rows_write_back_unchanged(make_store: StoreFactory) -> None:
    """README's loop: resolve, process, write; new and stale rows, whole increment, every form,
    carrying metaxy_provenance, metaxy_status and metaxy_changed_fields."""
    store = _store(make_store, 3)
    for form in _forms(store.resolve_update(T).new):
        table = form if not isinstance(form, list) else [dict(r, text="t") for r in form]
        if not isinstance(form, list):
            table = (form.append_column("text", pa.array(["t"] * 3)) if isinstance(form, pa.Table)
                     else form.with_columns(pl.lit("t").alias("text"))
                     if isinstance(form, pl.DataFrame) else form.assign(text="t"))
        assert store.write(T, table) == 3
    # change audio of v1: transcript/whisper v1 goes stale
    store.write(V, store.resolve_update(V, samples=[
        _sample(0), {**_sample(1), names.PROVENANCE_BY_FIELD: {"audio": "A1", "frames": "f1"}},
        _sample(2)]).stale)
    inc = store.resolve_update(T)
    whole = inc.to_arrow()  # metaxy_status on every row
    assert names.STATUS in whole.column_names
    stale = inc.stale.to_arrow()
    assert names.CHANGED_FIELDS in stale.column_names
    assert store.write(T, stale.append_column("text", pa.array(["t2"]))) == 1
    expected = hashing.field_provenance("text", "1", {(V, "audio"): "A1"})
    row = next(r for r in store.read(T).to_pylist() if r["sample_uid"] == "v1")
    assert dict(row[names.PROVENANCE_BY_FIELD]) == {"text": expected}
    assert row[names.PROVENANCE] == hashing.sample_digest({"text": expected})
    assert store.resolve_update(T).counts() == {"new": 0, "stale": 0, "orphaned": 0}


def test_read_rows_write_back_unchanged(make_store: StoreFactory) -> None:
    """The latest state (with metaxy_created_at, metaxy_feature_version, hashes) writes back
    as it is, in every read form; the new rows get their own time and position."""
    store = _store(make_store)
    before = store.read(V)
    forms = (store.read, store.read_pandas, store.read_polars,
             lambda key: pa.Table.from_batches(list(store.iter_batches(key))))
    for form in forms:
        assert store.write(V, form(V)) == 2
    after = store.read(V)
    assert after.column(names.PROVENANCE).to_pylist() == [
        hashing.sample_digest(_sample(i)[names.PROVENANCE_BY_FIELD]) for i in range(2)]
    assert after.column(names.CREATED_AT).to_pylist() > before.column(
        names.CREATED_AT).to_pylist()
    # a read from before the latest write describes a row that is no longer the latest
    _refused(store, before, repr(names.CREATED_AT), "row 0", "'v0'")
    # after a definition change, a read row keeps the older feature version: still accepted
    bumped = mx.FeatureGraph([mx.FeatureSpec(key=V, id_columns=["sample_uid"], fields=[
        mx.FieldSpec(key="audio", code_version="2"), mx.FieldSpec(key="frames", code_version="1")
    ]), transcript])
    other = store.with_graph(bumped)
    assert other.write(V, other.read(V)) == 2
    assert set(other.read(V).column(names.FEATURE_VERSION).to_pylist()) == {
        bumped.feature_version(V)}


# -- deletes: only ids whose latest row is live ----------------------------------------------
def _tombstones(store: mx.Store, uid: str) -> int:
    history = store.read(V, history=True).to_pylist()
    return sum(1 for r in history if r["sample_uid"] == uid and r[names.DELETED])


def test_delete_twice_tombstones_once(make_store: StoreFactory) -> None:
    store = _store(make_store)
    assert store.delete(V, [{"sample_uid": "v0"}]) == 1
    assert store.delete(V, [{"sample_uid": "v0"}]) == 0
    assert _tombstones(store, "v0") == 1
    assert store.read(V).column("sample_uid").to_pylist() == ["v1"]


def test_delete_of_never_written_id_appends_nothing(make_store: StoreFactory) -> None:
    store = _store(make_store)
    rows = store.read(V, history=True).num_rows
    assert store.delete(V, [{"sample_uid": "nope"}]) == 0
    assert store.delete(V, [{"sample_uid": "nope"}], hard=True) == 0
    assert store.read(V, history=True).num_rows == rows
    assert "nope" not in store.read(V, history=True).column("sample_uid").to_pylist()


def test_delete_mixed_list_counts_live_ids(make_store: StoreFactory) -> None:
    store = _store(make_store, 4)
    store.delete(V, [{"sample_uid": "v1"}])
    ids = [{"sample_uid": u} for u in ("v0", "v0", "v1", "v2", "never")]
    assert store.delete(V, ids) == 2  # v0 (listed twice) and v2; v1 already deleted
    assert [_tombstones(store, u) for u in ("v0", "v1", "v2", "v3")] == [1, 1, 1, 0]
    assert store.read(V).column("sample_uid").to_pylist() == ["v3"]
    # written again after its delete: live again, deletable again
    store.write(V, [_sample(1)])
    assert store.delete(V, [{"sample_uid": "v1"}, {"sample_uid": "v2"}]) == 1
    assert _tombstones(store, "v1") == 2
    # hard: the ids that had rows (v0, deleted, still has its history), not "never"
    assert store.delete(V, [{"sample_uid": "v0"}, {"sample_uid": "never"}], hard=True) == 1
    assert "v0" not in store.read(V, history=True).column("sample_uid").to_pylist()


def test_cli_delete_file_counts_live_ids(engine: str, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(f"tests.engines.{engine}")
    url = str(module.fresh_url(f"exact{os.getpid()}"))
    with mx.connect(url, graph=GRAPH) as store:
        store.write(V, [_sample(i) for i in range(3)])
    (tmp_path / "ids.jsonl").write_text('{"sample_uid": "v0"}\n{"sample_uid": "v9"}\n')
    runner = CliRunner()
    args = ["-e", "metaxy_sql.examples.seed", "--store", url, "delete", V, "ids.jsonl"]
    outputs = [runner.invoke(cli, args) for _ in range(2)]
    assert [o.exit_code for o in outputs] == [0, 0], [o.output for o in outputs]
    assert [re.sub(r"\s+", " ", o.output).strip() for o in outputs] == [
        f"deleted 1 samples of {V} (soft)", f"deleted 0 samples of {V} (soft)"]
    with mx.connect(url, graph=GRAPH, create=False) as store:
        assert _tombstones(store, "v0") == 1
        assert "v9" not in store.read(V, history=True).column("sample_uid").to_pylist()


# -- the forms of ids a delete takes -----------------------------------------------------------
U = "audio/utterance"
utterance = mx.FeatureSpec(key=U, id_columns=["speaker_id", "utterance_id"],
                           fields=[mx.FieldSpec(key="audio", code_version="1")])


def test_delete_takes_plain_id_values_for_one_id_column(make_store: StoreFactory) -> None:
    store = _store(make_store, 4)
    assert store.delete(V, ["v0", "v2", "never"]) == 2
    assert store.delete(V, ("v1",)) == 1  # any sequence of values
    assert store.delete(V, [("v3",)], hard=True) == 1  # a 1-tuple is the id too
    assert store.read(V).num_rows == 0
    assert [_tombstones(store, u) for u in ("v0", "v1", "v2")] == [1, 1, 1]
    assert "v3" not in store.read(V, history=True).column("sample_uid").to_pylist()


def test_delete_takes_tuples_in_id_column_order(make_store: StoreFactory) -> None:
    store = make_store(mx.FeatureGraph([utterance]))
    store.write(U, [{"speaker_id": s, "utterance_id": u,
                     names.PROVENANCE_BY_FIELD: {"audio": f"{s}{u}"}}
                    for s in ("s1", "s2") for u in (1, 2)])
    # (speaker_id, utterance_id): ("s1", 2) only, not ("s2", 1) nor a swapped pair
    assert store.delete(U, [("s1", 2), ("nobody", 1)]) == 1
    assert store.delete(U, [["s2", 1], {"speaker_id": "s2", "utterance_id": 2}]) == 2
    left = store.read(U).to_pylist()
    assert [(r["speaker_id"], r["utterance_id"]) for r in left] == [("s1", 1)]


@pytest.mark.parametrize(("ids", "message"), [
    ("v0", "got one id 'v0'; pass a list of ids, e.g. ['v0']"),
    ([("v0", "x")], "ids are values of its id columns ['sample_uid']: give a plain value"),
])
def test_delete_ids_that_do_not_fit_one_id_column(make_store: StoreFactory, ids: Any,
                                                  message: str) -> None:
    store = _store(make_store)
    with pytest.raises(mx.DataError, match=re.escape(message)):
        store.delete(V, ids)
    assert store.read(V).num_rows == 2


@pytest.mark.parametrize("ids", [["s1"], [("s1",)], [("s1", 1, "x")]])
def test_delete_ids_that_do_not_fit_two_id_columns(make_store: StoreFactory, ids: Any) -> None:
    store = make_store(mx.FeatureGraph([utterance]))
    store.write(U, [{"speaker_id": "s1", "utterance_id": 1,
                     names.PROVENANCE_BY_FIELD: {"audio": "a"}}])
    with pytest.raises(mx.DataError, match=re.escape(
            "ids are values of its id columns ['speaker_id', 'utterance_id']: give a tuple "
            "of 2 values per id, in that order")):
        store.delete(U, ids)
    assert store.read(U).num_rows == 1


def test_delete_where(make_store: StoreFactory) -> None:
    store = _store(make_store, 4)
    assert store.delete(V, where="sample_uid IN ('v0', 'v1')") == 2
    assert store.delete(V, where="sample_uid IN ('v0', 'v1')") == 0  # not live any more
    # hard: rows ever written match, tombstoned v0 included; its whole history goes
    assert store.delete(V, where="sample_uid = 'v0'", hard=True) == 1
    assert sorted(set(store.read(V, history=True).column("sample_uid").to_pylist())) == [
        "v1", "v2", "v3"]
    assert store.read(V).column("sample_uid").to_pylist() == ["v2", "v3"]
    with pytest.raises(mx.DataError, match=r"delete 'video/full': give ids or where="):
        store.delete(V, ["v2"], where="sample_uid = 'v2'")
    with pytest.raises(mx.DataError, match=r"delete 'video/full': give ids or where="):
        store.delete(V)


@pytest.mark.parametrize(("where", "problem"), [
    ("nope = 1", "reads unknown columns ['nope']"),
    ("sample_uid = 'v1'; DROP TABLE x", "does not parse"),
])
def test_delete_where_errors_name_delete(make_store: StoreFactory, where: str,
                                         problem: str) -> None:
    store = _store(make_store)
    for hard in (False, True):
        with pytest.raises(mx.DefinitionError) as caught:
            store.delete(V, where=where, hard=hard)
        assert str(caught.value).startswith(f"delete 'video/full': where= ({where!r})")
        assert problem in str(caught.value) and "read 'video" not in str(caught.value)
    assert store.read(V).num_rows == 2
