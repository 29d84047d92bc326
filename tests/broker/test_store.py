"""The counter's SQLite store: real files in tmp_path, a real second process for locks and kill -9."""

from __future__ import annotations

import logging
import os
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from ctpshim.broker import store as store_module
from ctpshim.broker.store import (SCHEMA_VERSION, Store, StoreError, delete, delete_account, equity_point, flow,
                                  put)
from tests.conftest import file_cannot_grow

WORKER = Path(__file__).with_name("store_worker.py")
ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = ("sim", "9999", "000001")
OTHER = ("sim", "9999", "000002")
DAY, NEXT_DAY = "20261120", "20261123"
DBL_MAX = sys.float_info.max


def order(seq: int, day: str = DAY, instrument: str = "rb2701") -> dict[str, Any]:
    return {"BrokerOrderSeq": seq, "TradingDay": day, "InstrumentID": instrument, "InsertTime": "09:01:02",
            "LimitPrice": 3501.0}


def trade(trade_id: str, day: str = DAY, price: float = 3501.0) -> dict[str, Any]:
    return {"TradeID": trade_id, "TradingDay": day, "InstrumentID": "rb2701", "TradeTime": "09:01:02", "Price": price}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "trader.sqlite"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    opened = Store.open(db)
    yield opened
    opened.close()


class Worker:
    """store_worker.py in a child process; its stdout lines are read on a thread."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.process = subprocess.Popen([sys.executable, str(WORKER), *args], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.strip())
        self.lines.put(None)

    def line(self, timeout: float = 20.0) -> str | None:
        """The next line, or None at the end of the output."""
        try:
            return self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line from the worker within {timeout} s") from None

    def rest(self, timeout: float = 20.0) -> list[str]:
        """Every line until the output ends."""
        lines = []
        while (line := self.line(timeout)) is not None:
            lines.append(line)
            assert len(lines) < 10_000_000
        return lines

    def end(self, timeout: float = 20.0) -> int:
        assert self.process.stdin is not None
        if not self.process.stdin.closed:
            self.process.stdin.close()
        code = self.process.wait(timeout)
        self.reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.end()


@pytest.fixture
def workers() -> Iterator[list[Worker]]:
    started: list[Worker] = []
    yield started
    for worker in started:
        worker.kill()


def hold_lock(workers: list[Worker], db: Path) -> Worker:
    """Another process holding the database's write lock until its end()."""
    holder = Worker(str(db), "hold")
    workers.append(holder)
    assert holder.line() == "locked"
    return holder


# -- what is written is what is read back -------------------------------------------------------------

def test_every_table_comes_back_from_a_reopened_file(db: Path) -> None:
    commission = 3501.0 * 10 * 0.0001 + 0.005  # six decimals and more: the ledger never rounds
    with Store.open(db) as first:
        first.write([
            put("accounts", ACCOUNT, {"Balance": 10_000_000.0 - commission, "positions": [["rb2701", "2", 1]]}),
            put("orders", (*ACCOUNT, 1), {**order(1), "StopPrice": DBL_MAX}),  # CTP's "no value"
            put("trades", (*ACCOUNT, "SHFE", "           1"), trade("           1")),
            put("ids", ("sim",), {"order_seq": 1, "trade": {"SHFE": 1}}),
            put("statements", (*ACCOUNT, DAY), {"text": "交易结算单(盯市)",
                                                 "summary": {"Balance": 9_999_996.49}}),
            put("confirmations", (*ACCOUNT, DAY), {"ConfirmDate": "20261120", "ConfirmTime": "20:00:01"}),
            flow(ACCOUNT, DAY, 1, "OnRtnOrder", {"OrderStatus": "3", "StatusMsg": "未成交"}),
            flow(ACCOUNT, DAY, 2, "OnRtnTrade", {"Price": 3501.0}),
            equity_point(ACCOUNT, DAY, "09:01:02", 10_000_000.0 - commission, {"PositionProfit": 0.0}),
        ])
        assert first.flush()
    with Store.open(db) as again:
        state = again.load("sim")
        assert state.accounts() == {("9999", "000001"): {"Balance": 10_000_000.0 - commission,
                                                         "positions": [["rb2701", "2", 1]]}}
        assert state.tables["orders"] == {(*ACCOUNT, 1): {**order(1), "StopPrice": DBL_MAX}}
        assert state.tables["trades"] == {(*ACCOUNT, "SHFE", "           1"): trade("           1")}
        assert state.ids == {"order_seq": 1, "trade": {"SHFE": 1}}
        assert state.tables["statements"][(*ACCOUNT, DAY)]["text"] == "交易结算单(盯市)"
        assert state.tables["confirmations"] == {(*ACCOUNT, DAY): {"ConfirmDate": "20261120",
                                                                   "ConfirmTime": "20:00:01"}}
        assert state.flow == {(ACCOUNT, DAY): [(1, "OnRtnOrder", {"OrderStatus": "3", "StatusMsg": "未成交"}),
                                               (2, "OnRtnTrade", {"Price": 3501.0})]}
        assert again.equity(*ACCOUNT) == [(DAY, "09:01:02", 10_000_000.0 - commission)]
        assert again.equity_values(*ACCOUNT)[0][3] == {"PositionProfit": 0.0}
        assert again.books() == ["sim"]
        assert again.load("replay").tables["accounts"] == {}


def test_a_day_loads_that_days_orders_trades_and_flow_and_every_account(store: Store) -> None:
    store.write([put("accounts", ACCOUNT, {"n": 1}), put("accounts", OTHER, {"n": 2}),
                 put("orders", (*ACCOUNT, 1), order(1, DAY)), put("orders", (*ACCOUNT, 2), order(2, NEXT_DAY)),
                 put("trades", (*ACCOUNT, "SHFE", "1"), trade("1", DAY)),
                 put("trades", (*ACCOUNT, "SHFE", "2"), trade("2", NEXT_DAY)),
                 flow(ACCOUNT, DAY, 1, "OnRtnOrder", {}), flow(ACCOUNT, NEXT_DAY, 1, "OnRtnOrder", {"day": 2})])
    assert store.flush()
    state = store.load("sim", NEXT_DAY)
    assert set(state.accounts()) == {("9999", "000001"), ("9999", "000002")}
    assert list(state.tables["orders"]) == [(*ACCOUNT, 2)]
    assert list(state.tables["trades"]) == [(*ACCOUNT, "SHFE", "2")]
    assert state.flow == {(ACCOUNT, NEXT_DAY): [(1, "OnRtnOrder", {"day": 2})]}
    store.write([flow(ACCOUNT, NEXT_DAY, 2, "OnRtnTrade", {}), flow(ACCOUNT, NEXT_DAY, 3, "OnRtnOrder", {})])
    assert store.flush()
    assert [seq for seq, _, _ in store.flow(*ACCOUNT, NEXT_DAY, since=1)] == [2, 3]
    assert [o["BrokerOrderSeq"] for o in store.orders(*ACCOUNT, DAY)] == [1]
    assert [o["BrokerOrderSeq"] for o in store.orders(*ACCOUNT)] == [1, 2]
    assert store.orders(*OTHER) == []


def test_a_put_replaces_its_row_and_trades_keep_the_order_they_were_first_written_in(store: Store) -> None:
    store.write([put("trades", (*ACCOUNT, "SHFE", "2"), trade("2", price=1.0)),
                 put("trades", (*ACCOUNT, "DCE", "1"), trade("1")),
                 put("orders", (*ACCOUNT, 5), order(5)), put("orders", (*ACCOUNT, 3), order(3))])
    store.write([put("trades", (*ACCOUNT, "SHFE", "2"), trade("2", price=2.0)),
                 put("orders", (*ACCOUNT, 5), {**order(5), "LimitPrice": 3502.0})])
    assert store.flush()
    assert [(t["TradeID"], t["Price"]) for t in store.trades(*ACCOUNT)] == [("2", 2.0), ("1", 3501.0)]
    assert [(o["BrokerOrderSeq"], o["LimitPrice"]) for o in store.orders(*ACCOUNT)] == [(3, 3501.0), (5, 3502.0)]


def test_the_state_is_taken_when_the_op_is_built(store: Store) -> None:
    state = {"Balance": 1.0, "positions": []}
    op = put("accounts", ACCOUNT, state)
    state["Balance"] = 2.0
    state["positions"].append("changed later")
    store.write([op])
    assert store.flush()
    assert store.account(*ACCOUNT) == {"Balance": 1.0, "positions": []}


def test_delete_and_delete_account_remove_only_what_they_name(store: Store) -> None:
    for who in (ACCOUNT, OTHER):
        store.write([put("accounts", who, {}), put("orders", (*who, 1), order(1)),
                     put("trades", (*who, "SHFE", "1"), trade("1")), put("statements", (*who, DAY), {"text": ""}),
                     put("confirmations", (*who, DAY), {}), flow(who, DAY, 1, "OnRtnOrder", {}),
                     equity_point(who, DAY, "09:00:00", 1.0)])
    store.write([put("ids", ("sim",), {"order_seq": 2}), delete_account(*ACCOUNT), delete("orders", (*OTHER, 1))])
    assert store.flush()
    assert store.account(*ACCOUNT) is None
    assert (store.orders(*ACCOUNT), store.trades(*ACCOUNT), store.statements(*ACCOUNT),
            store.confirmations(*ACCOUNT), store.flow(*ACCOUNT, DAY),
            store.equity(*ACCOUNT)) == ([], [], [], {}, [], [])
    assert store.account(*OTHER) == {} and store.orders(*OTHER) == []
    assert len(store.trades(*OTHER)) == len(store.statements(*OTHER)) == len(store.equity(*OTHER)) == 1
    assert store.ids("sim") == {"order_seq": 2}


def test_a_memory_store_writes_no_file_and_each_is_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Store.open("memory") as one, Store.open(None) as two:
        one.write([put("accounts", ACCOUNT, {"n": 1})])
        assert one.flush() and two.flush()
        assert one.account(*ACCOUNT) == {"n": 1}
        assert two.account(*ACCOUNT) is None
    assert list(tmp_path.iterdir()) == []


# -- the writer thread ----------------------------------------------------------------------------

def test_after_runs_once_its_ops_are_committed(db: Path, store: Store) -> None:
    seen: list[Any] = []

    def after() -> None:  # another connection sees only committed rows
        with sqlite3.connect(db) as other:
            seen.append(other.execute("SELECT COUNT(*) FROM orders").fetchone()[0])

    store.write([put("orders", (*ACCOUNT, 1), order(1)), put("orders", (*ACCOUNT, 2), order(2))], after=after)
    store.write([], after=after)
    assert store.flush()
    assert seen == [2, 2]


def test_after_callables_run_in_the_order_written_from_many_threads(store: Store) -> None:
    written: list[tuple[int, int]] = []
    ran: list[tuple[int, int]] = []
    lock = threading.Lock()

    def writer(thread: int) -> None:
        for number in range(100):
            with lock:  # the order of the write calls, as the counter's lock gives it
                written.append((thread, number))
                store.write([put("orders", (*ACCOUNT, thread * 1000 + number), order(number))],
                            after=lambda key=(thread, number): ran.append(key))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert store.flush()
    assert len(ran) == 400 and ran == written
    assert len(store.orders(*ACCOUNT)) == 400


def test_an_after_that_raises_is_logged_and_the_writer_goes_on(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    ran: list[int] = []

    def broken() -> None:
        raise RuntimeError("the program's dispatcher is gone")

    with caplog.at_level(logging.ERROR, logger="ctpshim.broker.store"):
        store.write([put("orders", (*ACCOUNT, 1), order(1))], after=broken)
        store.write([put("orders", (*ACCOUNT, 2), order(2))], after=lambda: ran.append(2))
        assert store.flush()
    assert ran == [2]
    assert len(store.orders(*ACCOUNT)) == 2
    assert "the program's dispatcher is gone" in caplog.text


def test_flush_from_an_after_callable_raises_instead_of_waiting_for_itself(store: Store) -> None:
    errors: list[Exception] = []

    def after() -> None:
        try:
            store.flush()
        except StoreError as exc:
            errors.append(exc)

    store.write([], after=after)
    assert store.flush()
    assert len(errors) == 1 and "own thread" in str(errors[0])


def test_close_commits_what_is_queued_runs_its_afters_and_refuses_more(db: Path) -> None:
    ran: list[int] = []
    opened = Store.open(db)
    for number in range(1, 301):
        opened.write([put("orders", (*ACCOUNT, number), order(number))], after=lambda n=number: ran.append(n))
    opened.close()
    opened.close()
    assert ran == list(range(1, 301))
    with pytest.raises(StoreError, match="closed"):
        opened.write([put("accounts", ACCOUNT, {})])
    with Store.open(db) as again:
        assert len(again.orders(*ACCOUNT)) == 300


def test_a_write_racing_close_is_either_refused_or_committed_and_acknowledged(db: Path) -> None:
    opened = Store.open(db)
    accepted: list[int] = []
    ran: list[int] = []
    refused: list[int] = []
    go, writing = threading.Event(), threading.Event()

    def writer(thread: int) -> None:
        go.wait(10)
        for number in range(thread * 100_000, thread * 100_000 + 50_000):
            if number % 100_000 == 100:
                writing.set()
            try:
                opened.write([put("orders", (*ACCOUNT, number), order(number))], after=lambda n=number: ran.append(n))
            except StoreError:
                refused.append(number)
                return
            accepted.append(number)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    go.set()
    assert writing.wait(10)
    opened.close()
    for thread in threads:
        thread.join(10)
    assert refused, "close came after every write: the race was not run"
    assert sorted(ran) == sorted(accepted)
    with Store.open(db) as again:
        assert sorted(o["BrokerOrderSeq"] for o in again.orders(*ACCOUNT)) == sorted(accepted)


def test_interpreter_exit_commits_what_is_queued(db: Path, workers: list[Worker]) -> None:
    worker = Worker(str(db), "exit", "200")
    workers.append(worker)
    printed = worker.rest()
    assert worker.end() == 0
    assert printed == [str(n) for n in range(1, 201)]
    with Store.open(db) as again:
        assert [o["BrokerOrderSeq"] for o in again.orders("kill", "9999", "000001")] == list(range(1, 201))


def test_kill_9_loses_nothing_that_was_acknowledged(db: Path, workers: list[Worker]) -> None:
    worker = Worker(str(db), "stream")
    workers.append(worker)
    printed = [worker.line() for _ in range(300)]
    assert printed == [str(n) for n in range(1, 301)]  # acknowledged while it is still writing
    worker.process.send_signal(signal.SIGKILL)
    printed += worker.rest()
    assert worker.end() == -signal.SIGKILL
    acknowledged = [int(line) for line in printed if line is not None]
    with Store.open(db) as again:
        stored = {o["BrokerOrderSeq"] for o in again.orders("kill", "9999", "000001")}
        flowed = {seq for seq, _, _ in again.flow("kill", "9999", "000001", "20261120")}
    assert set(acknowledged) <= stored
    assert set(acknowledged) <= flowed
    assert stored == flowed  # an order and its flow message went in one transaction


# -- locks and a second process ----------------------------------------------------------------

def test_a_second_process_commits_to_the_same_file_and_readers_see_it(db: Path, store: Store,
                                                                      workers: list[Worker]) -> None:
    store.write([put("orders", ("kill", "9999", "000001", 1), order(1))])
    assert store.flush()
    worker = Worker(str(db), "put", "2")
    workers.append(worker)
    assert worker.line() == "committed 2"
    assert worker.end() == 0
    assert [o["BrokerOrderSeq"] for o in store.orders("kill", "9999", "000001")] == [1, 2]


def test_while_another_process_holds_the_lock_writes_wait_and_readers_read(db: Path, workers: list[Worker]) -> None:
    with Store.open(db, timeout=20.0) as mine:
        mine.write([put("accounts", ACCOUNT, {"n": 1})])
        assert mine.flush()
        holder = hold_lock(workers, db)
        ran: list[int] = []
        mine.write([put("accounts", ACCOUNT, {"n": 2})], after=lambda: ran.append(2))  # returns at once
        assert mine.flush(timeout=0.3) is False
        assert ran == [] and mine.pending == 1
        assert mine.account(*ACCOUNT) == {"n": 1}
        with Store.open(db) as reader:
            assert reader.account(*ACCOUNT) == {"n": 1}
        assert holder.end() == 0
        assert mine.flush()
        assert ran == [2] and mine.account(*ACCOUNT) == {"n": 2} and mine.pending == 0


def test_a_lock_held_past_the_timeout_is_a_clear_error_and_nothing_is_acknowledged(
        db: Path, workers: list[Worker]) -> None:
    Store.open(db).close()
    holder = hold_lock(workers, db)
    ran: list[int] = []
    locked = Store.open(db, timeout=0.2)
    locked.write([put("accounts", ACCOUNT, {"n": 1})], after=lambda: ran.append(1))
    with pytest.raises(StoreError) as raised:
        locked.flush()
    assert str(db) in str(raised.value) and "locked by another process" in str(raised.value)
    with pytest.raises(StoreError, match="locked by another process"):
        locked.write([], after=lambda: ran.append(2))
    locked.close()
    assert ran == []
    assert holder.end() == 0
    with Store.open(db) as again:
        assert again.account(*ACCOUNT) is None


def test_opening_a_new_file_another_process_holds_is_a_clear_error_after_the_timeout(
        db: Path, workers: list[Worker]) -> None:
    hold_lock(workers, db)  # an empty database, locked before the tables could be made
    with pytest.raises(StoreError) as raised:
        Store.open(db, timeout=0.2)
    assert str(db) in str(raised.value) and "locked by another process" in str(raised.value)


# -- files it cannot use ----------------------------------------------------------------------

def _database_with_rows(db: Path) -> bytes:
    with Store.open(db) as made:
        made.write([put("orders", (*ACCOUNT, n), {**order(n), "pad": "x" * 300}) for n in range(200)])
        assert made.flush()
    return db.read_bytes()


def _not_sqlite(db: Path) -> None:
    db.write_text("BrokerID,InvestorID\n9999,000001\n" * 50)


def _pages_overwritten(db: Path) -> None:
    data = _database_with_rows(db)
    db.write_bytes(data[:3 * 4096] + b"\xff" * 2 * 4096 + data[5 * 4096:])


def _truncated(db: Path) -> None:
    data = _database_with_rows(db)
    db.write_bytes(data[:len(data) // 2])


def _another_program(db: Path) -> None:
    with sqlite3.connect(db) as other:
        other.execute("CREATE TABLE prices (day TEXT, close REAL)")


def _schema(version: str):
    def damage(db: Path) -> None:
        _database_with_rows(db)
        with sqlite3.connect(db) as other:
            other.execute("UPDATE meta SET value = ? WHERE name = 'schema'", (version,))
    return damage


def _table_dropped(db: Path) -> None:
    _database_with_rows(db)
    with sqlite3.connect(db) as other:
        other.execute("DROP TABLE trades")


@pytest.mark.parametrize("damage, words", [
    (_not_sqlite, "corrupt or not an SQLite database"),
    (_pages_overwritten, "corrupt"),
    (_truncated, "corrupt"),
    (_another_program, "another program"),
    (_schema(str(SCHEMA_VERSION + 1)), f"newer ctpshim (schema {SCHEMA_VERSION + 1}"),
    (_schema("x"), "schema version 'x' is not a version number"),
    (_table_dropped, "damaged (missing tables: trades)"),
], ids=["not-sqlite", "pages-overwritten", "truncated", "another-program", "newer-schema", "bad-schema",
        "table-dropped"])
def test_a_file_it_cannot_use_is_a_clear_error_and_is_left_as_it_was(db: Path, damage: Any, words: str) -> None:
    damage(db)
    before = db.read_bytes()
    with pytest.raises(StoreError) as raised:
        Store.open(db)
    assert str(db) in str(raised.value) and words in str(raised.value)
    assert db.read_bytes() == before


def test_missing_folders_are_created_and_a_path_that_cannot_be_one_is_an_error(tmp_path: Path) -> None:
    with Store.open(tmp_path / "a" / "b" / "trader.sqlite") as made:
        made.write([put("accounts", ACCOUNT, {})])
        assert made.flush()
    (tmp_path / "file").write_text("")
    with pytest.raises(StoreError, match=r"cannot create the database's folder: .*file/sub: not a directory"):
        Store.open(tmp_path / "file" / "sub" / "trader.sqlite")
    with pytest.raises(StoreError, match=r"is a folder; name a file inside it"):
        Store.open(tmp_path / "a")
    with pytest.raises(StoreError, match="no such database"):
        Store.open(tmp_path / "absent.sqlite", create=False)
    assert not (tmp_path / "absent.sqlite").exists()


def test_a_full_disk_stops_the_store_loudly_and_keeps_what_was_committed(db: Path) -> None:
    with Store.open(db) as first:
        first.write([put("accounts", ACCOUNT, {"n": 1})])
        assert first.flush()
    ran: list[int] = []
    failures: list[StoreError] = []
    full = Store.open(db)
    full.on_failure = failures.append
    with file_cannot_grow(db):
        full.write([put("statements", (*ACCOUNT, DAY), {"text": "x" * 400_000})], after=lambda: ran.append(1))
        with pytest.raises(StoreError) as raised:
            full.flush()
    full.close()
    assert str(db) in str(raised.value) and "cannot be written" in str(raised.value)
    assert ran == []
    assert failures == [raised.value]  # the counter is told once, on the writer thread
    with Store.open(db) as again:
        assert again.account(*ACCOUNT) == {"n": 1}
        assert again.statements(*ACCOUNT) == []


# -- bad ops are refused where they are built ------------------------------------------------------

@pytest.mark.parametrize("build, words", [
    (lambda: put("account", ACCOUNT, {}), "unknown table 'account'; tables: accounts, orders"),
    (lambda: put("accounts", ("9999", "000001"), {}), "expected a tuple (book, BrokerID, InvestorID)"),
    (lambda: put("orders", (*ACCOUNT, "1"), {}), "BrokerOrderSeq must be an int, not '1'"),
    (lambda: put("orders", (*ACCOUNT, True), {}), "BrokerOrderSeq must be an int, not True"),
    (lambda: put("accounts", ACCOUNT, [1]), "must be a dict, not list"),
    (lambda: put("accounts", ACCOUNT, {"when": {1, 2}}), "must be JSON-able"),
    (lambda: flow(("9999", "000001"), DAY, 1, "OnRtnOrder", {}), "expected a tuple (book, BrokerID, InvestorID)"),
    (lambda: flow(ACCOUNT, DAY, 1, "", {}), "bad callback ''"),
    (lambda: equity_point(ACCOUNT, DAY, "09:00:00", "1e7"), "balance '1e7' must be a number"),
    (lambda: delete("trades", (*ACCOUNT, "1")), "(book, BrokerID, InvestorID, ExchangeID, TradeID)"),
], ids=["table", "key-length", "key-type", "key-bool", "state-type", "not-json", "flow-account", "callback",
        "balance", "delete-key"])
def test_a_bad_op_is_refused_where_it_is_built(build: Any, words: str) -> None:
    with pytest.raises(ValueError) as raised:
        build()
    assert words in str(raised.value)


def test_write_refuses_what_is_not_an_op(store: Store) -> None:
    with pytest.raises(ValueError, match="not a store op: .*build ops with put"):
        store.write([("accounts", ACCOUNT, {})])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="after must be callable"):
        store.write([], after="post")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bad timeout 0"):
        Store.open("memory", timeout=0)


def test_a_large_file_skips_the_page_check_at_open_but_damage_is_still_a_clear_error(
        db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _pages_overwritten(db)
    monkeypatch.setattr(store_module, "QUICK_CHECK_LIMIT", 0)  # every file counts as large
    with pytest.raises(StoreError) as raised:
        with Store.open(db) as damaged:
            damaged.load(ACCOUNT[0])  # what a counter reads when it opens its book
    assert str(db) in str(raised.value) and "corrupt" in str(raised.value)
