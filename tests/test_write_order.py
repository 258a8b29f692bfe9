"""Write order: the latest state is the row written last in the store's write order, never the
row with the newest writer clock. Two stores on one database act as two writers."""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import os
import threading
from collections.abc import Callable, Iterator

import pyarrow as pa
import pytest

import metaxy_sql as mx
from metaxy_sql.examples.seed import graph
from metaxy_sql.model import names

ROOT = "video/full"
_counter = itertools.count()

Opener = Callable[[], mx.Store]


@pytest.fixture
def open_store(engine: str) -> Iterator[Opener]:
    """Open any number of independent stores (own connection each) on one fresh database."""
    module = importlib.import_module(f"tests.engines.{engine}")
    url = module.fresh_url(f"wo{os.getpid()}_{next(_counter)}")
    opened: list[mx.Store] = []

    def opener() -> mx.Store:
        store = mx.connect(url, graph=graph)
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


def skew(store: mx.Store, seconds: float) -> mx.Store:
    """Make ``store``'s writer clock run ``seconds`` off real time (negative: behind)."""
    offset = dt.timedelta(seconds=seconds)

    def skewed() -> str:
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None) + offset
        return now.isoformat(sep=" ", timespec="microseconds")

    store._now = skewed  # type: ignore[method-assign]
    return store


def rows(ids: dict[str, str]) -> list[dict[str, object]]:
    """Root rows: id -> the audio provenance (frames fixed)."""
    return [{"sample_uid": uid, names.PROVENANCE_BY_FIELD: {"audio": audio, "frames": "f"}}
            for uid, audio in ids.items()]


def live(store: mx.Store) -> dict[str, str]:
    """Latest state: id -> audio provenance; fails on an id with more than one live row."""
    table = store.read(ROOT)
    uids = table.column("sample_uid").to_pylist()
    assert len(uids) == len(set(uids)), f"ids with more than one live row: {sorted(uids)}"
    if not uids:
        return {}
    audio = [dict(m)["audio"] for m in table.column(names.PROVENANCE_BY_FIELD).to_pylist()]
    return dict(zip(uids, audio, strict=True))


def history_of(store: mx.Store, uid: str) -> list[dict[str, object]]:
    """Every row of ``uid`` as the store returns it (its documented order: write order)."""
    return [r for r in store.read(ROOT, history=True).to_pylist() if r["sample_uid"] == uid]


@pytest.mark.parametrize("b_offset", [-2.0, +2.0, -3600.0])
def test_later_write_and_later_delete_win_whatever_the_clocks(
        open_store: Opener, b_offset: float) -> None:
    a, b = open_store(), skew(open_store(), b_offset)
    a.write(ROOT, rows({"v1": "from-a", "v2": "from-a"}))
    b.write(ROOT, rows({"v1": "from-b"}))
    assert live(a) == live(b) == {"v1": "from-b", "v2": "from-a"}

    b.delete(ROOT, [{"sample_uid": "v1"}])
    assert live(a) == live(b) == {"v2": "from-a"}

    b.write(ROOT, rows({"v2": "from-b"}))
    a.write(ROOT, rows({"v2": "from-a-again"}))
    assert live(a) == live(b) == {"v2": "from-a-again"}
    a.delete(ROOT, [{"sample_uid": "v2"}])
    b.write(ROOT, rows({"v2": "from-b-again"}))
    assert live(b) == {"v2": "from-b-again"}
    assert a.count(ROOT) == b.count(ROOT) == 1


def test_history_is_in_write_order_and_ends_with_the_live_row(open_store: Opener) -> None:
    ahead, behind = skew(open_store(), +3600.0), skew(open_store(), -3600.0)
    ahead.write(ROOT, rows({"v1": "first"}))
    behind.write(ROOT, rows({"v1": "second"}))
    ahead.write(ROOT, rows({"v1": "third"}))
    behind.delete(ROOT, [{"sample_uid": "v1"}])
    history = history_of(ahead, "v1")
    assert [r[names.DELETED] for r in history] == [False, False, False, True]
    audio = [dict(r[names.PROVENANCE_BY_FIELD])["audio"]  # type: ignore[call-overload]
             for r in history[:3]]
    assert audio == ["first", "second", "third"]
    positions = [r[names.WRITE_SEQ] for r in history]
    assert positions == sorted(positions) and len(set(positions)) == 4
    assert live(ahead) == {}


def test_concurrent_writers_of_the_same_new_ids_leave_one_live_row_the_last_written(
        open_store: Opener) -> None:
    big, small = open_store(), open_store()
    big.write(ROOT, rows({"seed": "x"}))  # the table exists: this is about new ids, not DDL
    for round_ in range(3):
        hot = f"hot{round_}"
        batch = pa.Table.from_pylist(
            rows({f"r{round_}_{i:06d}": "big" for i in range(100_000)} | {hot: "big"}))
        done = threading.Event()
        errors: list[BaseException] = []

        def write_big(data: pa.Table = batch, done: threading.Event = done,
                      errors: list[BaseException] = errors) -> None:
            try:
                big.write(ROOT, data)
            except BaseException as exc:  # reported below
                errors.append(exc)
            finally:
                done.set()

        thread = threading.Thread(target=write_big)
        thread.start()
        n = 0
        while not done.is_set() or n == 0:  # one-row writes of the same id meanwhile
            small.write(ROOT, rows({hot: f"small{n}"}))
            n += 1
        thread.join()
        assert not errors, [str(e) for e in errors]
        state = live(big)
        assert live(small) == state
        history = history_of(big, hot)
        assert len(history) == n + 1
        last = max(history, key=lambda r: r[names.WRITE_SEQ])  # type: ignore[arg-type,return-value]
        assert state[hot] == dict(last[names.PROVENANCE_BY_FIELD])["audio"]  # type: ignore[call-overload]
    assert big.count(ROOT) == 1 + 3 * 100_001


def test_concurrent_first_writes_of_a_feature_all_succeed(open_store: Opener) -> None:
    stores = [open_store() for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def run(i: int, store: mx.Store) -> None:
        try:
            barrier.wait()
            store.write(ROOT, rows({f"w{i}_{j}": f"w{i}" for j in range(50)} | {"shared": f"w{i}"}))
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i, s)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, [str(e) for e in errors]
    state = live(stores[0])
    assert len(state) == 4 * 50 + 1
    # The last row in write order (position, then insertion order where two concurrent
    # ClickHouse writes drew the same position): history lists rows in that order.
    last = history_of(stores[0], "shared")[-1]
    assert state["shared"] == dict(last[names.PROVENANCE_BY_FIELD])["audio"]  # type: ignore[call-overload]


def test_write_time_and_position_read_back_with_one_type_on_every_engine(
        open_store: Opener) -> None:
    store = open_store()
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    store.write(ROOT, rows({"v1": "a"}))
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for table in (store.read(ROOT), store.read(ROOT, history=True)):
        assert table.schema.field(names.CREATED_AT).type == pa.timestamp("us")
        created = table.column(names.CREATED_AT)[0].as_py()
        assert before <= created <= after  # naive, UTC
    history = store.read(ROOT, history=True)
    assert history.schema.field(names.WRITE_SEQ).type == pa.int64()
    assert names.WRITE_SEQ not in store.read(ROOT).column_names


def test_a_table_written_before_write_positions_gets_them_and_later_writes_win(
        open_store: Opener) -> None:
    from sqlglot import exp

    from metaxy_sql.compile.builder import table_ref

    old = skew(open_store(), +3600.0)  # its rows carry a clock far ahead
    old.write(ROOT, rows({"v1": "old", "v2": "old"}))
    d = old.executor.dialect
    old.executor.execute(d.render(exp.Alter(  # as written before positions existed
        this=table_ref(names.table(ROOT)), kind="TABLE",
        actions=[exp.Drop(tables=[exp.column(names.WRITE_SEQ, quoted=True)],
                          kind="COLUMN")])))
    new = open_store()
    new.write(ROOT, rows({"v1": "new"}))
    new.delete(ROOT, [{"sample_uid": "v2"}])
    assert live(old) == live(new) == {"v1": "new"}
    positions = [r[names.WRITE_SEQ] for r in history_of(new, "v1")]
    assert positions[0] == 0 and positions[1] > 0
