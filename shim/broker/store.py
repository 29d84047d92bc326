"""SQLite persistence of the simulated counter: one file holds any number of *books* (sets of
accounts), each account's state, orders, trades, private flow, statements, confirmations and
equity points, and each book's id sequences.

Writes are asynchronous and ordered.  :meth:`Store.write` queues a list of ops with an optional
``after`` callable and returns at once; one writer thread (the only one writing to the file)
commits what is queued in one transaction, then runs each ``after`` in the order written.  The
counter posts its callbacks in ``after``, so nothing is acknowledged to a program before it is
committed.  The file is in WAL mode with ``synchronous=NORMAL``: a killed process loses no
committed transaction (a power cut may lose the last ones), readers never block the writer, and a
second process writing the same file waits up to ``timeout`` seconds for the lock
(SIM_TRADING.md §6.22).

Ops are built by :func:`put` (or :func:`put_json`), :func:`delete`, :func:`flow`, :func:`equity_point` and
:func:`delete_account`, in the caller's thread: a bad table, key or a state that is not JSON is a
``ValueError`` there, and the state is copied (serialised) at that moment, so the caller may change
its objects afterwards.  A put replaces the row with the same key.

Every key starts with the book.  The tables and their keys (:data:`TABLES`):

========================  ==================================================================
``accounts``              (book, BrokerID, InvestorID)
``orders``                (book, BrokerID, InvestorID, BrokerOrderSeq); the state's
                          TradingDay, InstrumentID and InsertTime are kept as columns to filter on
``trades``                (book, BrokerID, InvestorID, ExchangeID, TradeID); TradingDay,
                          InstrumentID and TradeTime as columns; listed in the order first put
``ids``                   (book,): the counter's sequences
``statements``            (book, BrokerID, InvestorID, TradingDay)
``confirmations``         (book, BrokerID, InvestorID, TradingDay)
========================  ==================================================================

plus the private flow, (book, BrokerID, InvestorID, TradingDay, seq) -> (callback, values), and the
equity points (book, BrokerID, InvestorID) -> [(TradingDay, time, Balance, values)] in the order
written.

A file that is not SQLite, is corrupt, was written by a newer version, is another program's
database, is locked past the timeout, or cannot be created or written is a :class:`StoreError`
naming the file, what is wrong and what to do; the store never starts over silently.  After a
failed commit the store refuses further writes (:meth:`Store.write` and :meth:`Store.flush` raise
the error) and runs none of the failed batch's ``after`` callables.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import sqlite3
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Union

from ..messages import os_error_words

log = logging.getLogger("ctpshim.broker.store")

SCHEMA_VERSION = 1
APPLICATION = "ctpshim trader"
MEMORY = "memory"
DEFAULT_TIMEOUT = 10.0
MAX_BATCH = 512  # queued writes committed in one transaction at most
CHECKPOINT_EVERY = 32  # commits between two checkpoints of the WAL (on the checkpointer's thread)

# table -> its key columns, the book first (INTEGER_KEYS are ints, the others str)
TABLES: dict[str, tuple[str, ...]] = {
    "accounts": ("book", "BrokerID", "InvestorID"),
    "orders": ("book", "BrokerID", "InvestorID", "BrokerOrderSeq"),
    "trades": ("book", "BrokerID", "InvestorID", "ExchangeID", "TradeID"),
    "ids": ("book",),
    "statements": ("book", "BrokerID", "InvestorID", "TradingDay"),
    "confirmations": ("book", "BrokerID", "InvestorID", "TradingDay"),
}
INTEGER_KEYS = frozenset({"BrokerOrderSeq", "seq"})
# state members copied into columns the command line filters on
INDEXED: dict[str, tuple[str, ...]] = {
    "orders": ("TradingDay", "InstrumentID", "InsertTime"),
    "trades": ("TradingDay", "InstrumentID", "TradeTime"),
}
ACCOUNT_TABLES = ("accounts", "orders", "trades", "statements", "confirmations", "flow", "equity")

_SCHEMA = """
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE accounts (book TEXT NOT NULL, BrokerID TEXT NOT NULL, InvestorID TEXT NOT NULL, state TEXT NOT NULL,
    UNIQUE (book, BrokerID, InvestorID));
CREATE TABLE orders (book TEXT NOT NULL, BrokerID TEXT NOT NULL, InvestorID TEXT NOT NULL,
    BrokerOrderSeq INTEGER NOT NULL, TradingDay TEXT NOT NULL, InstrumentID TEXT NOT NULL, InsertTime TEXT NOT NULL,
    state TEXT NOT NULL, UNIQUE (book, BrokerID, InvestorID, BrokerOrderSeq));
CREATE INDEX orders_by_day ON orders (book, BrokerID, InvestorID, TradingDay);
CREATE TABLE trades (book TEXT NOT NULL, BrokerID TEXT NOT NULL, InvestorID TEXT NOT NULL,
    ExchangeID TEXT NOT NULL, TradeID TEXT NOT NULL, TradingDay TEXT NOT NULL, InstrumentID TEXT NOT NULL,
    TradeTime TEXT NOT NULL, state TEXT NOT NULL, UNIQUE (book, BrokerID, InvestorID, ExchangeID, TradeID));
CREATE INDEX trades_by_day ON trades (book, BrokerID, InvestorID, TradingDay);
CREATE TABLE ids (book TEXT NOT NULL UNIQUE, state TEXT NOT NULL);
CREATE TABLE statements (book TEXT NOT NULL, BrokerID TEXT NOT NULL, InvestorID TEXT NOT NULL,
    TradingDay TEXT NOT NULL, state TEXT NOT NULL, UNIQUE (book, BrokerID, InvestorID, TradingDay));
CREATE TABLE confirmations (book TEXT NOT NULL, BrokerID TEXT NOT NULL, InvestorID TEXT NOT NULL,
    TradingDay TEXT NOT NULL, state TEXT NOT NULL, UNIQUE (book, BrokerID, InvestorID, TradingDay));
CREATE TABLE flow (book TEXT NOT NULL, BrokerID TEXT NOT NULL, InvestorID TEXT NOT NULL, TradingDay TEXT NOT NULL,
    seq INTEGER NOT NULL, callback TEXT NOT NULL, "values" TEXT NOT NULL,
    UNIQUE (book, BrokerID, InvestorID, TradingDay, seq));
CREATE TABLE equity (book TEXT NOT NULL, BrokerID TEXT NOT NULL, InvestorID TEXT NOT NULL, TradingDay TEXT NOT NULL,
    time TEXT NOT NULL, Balance REAL NOT NULL, "values" TEXT NOT NULL);
CREATE INDEX equity_by_account ON equity (book, BrokerID, InvestorID);
"""


class StoreError(Exception):
    """The database cannot be used: the message names the file, what is wrong and what to do."""


Key = tuple[Any, ...]
Account = tuple[str, str, str]  # (book, BrokerID, InvestorID)


@dataclass(frozen=True, slots=True)
class Put:
    """Insert or replace one row of ``table`` (build it with :func:`put`)."""

    table: str
    key: Key
    state: str  # JSON
    indexed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete one row of ``table`` (build it with :func:`delete`)."""

    table: str
    key: Key


@dataclass(frozen=True, slots=True)
class Flow:
    """One message of an account's private flow (build it with :func:`flow`)."""

    account: Account
    trading_day: str
    seq: int
    callback: str
    values: str  # JSON


@dataclass(frozen=True, slots=True)
class EquityPoint:
    """One point of an account's equity curve (build it with :func:`equity_point`)."""

    account: Account
    trading_day: str
    time: str
    balance: float
    values: str  # JSON


@dataclass(frozen=True, slots=True)
class DeleteAccount:
    """Every row of one account in every table (build it with :func:`delete_account`)."""

    account: Account


Op = Union[Put, Delete, Flow, EquityPoint, DeleteAccount]


def _json(value: Any, what: str) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what} cannot be stored: it must be JSON-able (dicts with str keys, lists, str, "
                         f"numbers, bool, None): {exc}") from None


def _key(table: str, key: Any) -> Key:
    columns = TABLES.get(table)
    if columns is None:
        raise ValueError(f"unknown table {table!r}; tables: {', '.join(TABLES)}")
    if not isinstance(key, tuple) or len(key) != len(columns):
        raise ValueError(f"bad key {key!r} for table {table!r}: expected a tuple ({', '.join(columns)})")
    for column, value in zip(columns, key):
        _check_column(table, key, column, value)
    return key


def _check_column(table: str, key: Any, column: str, value: Any) -> None:
    if column in INTEGER_KEYS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"bad key {key!r} for {table!r}: {column} must be an int, not {value!r}")
    elif not isinstance(value, str):
        raise ValueError(f"bad key {key!r} for {table!r}: {column} must be a str, not {value!r}")


def _account(account: Any) -> Account:
    if (not isinstance(account, tuple) or len(account) != 3
            or not all(isinstance(part, str) for part in account)):
        raise ValueError(f"bad account {account!r}: expected a tuple (book, BrokerID, InvestorID) of str")
    return account


def put(table: str, key: Key, state: dict[str, Any]) -> Put:
    """Write ``state`` as the row ``key`` of ``table`` (replacing it).  ``state`` is copied now."""
    key = _key(table, key)
    if not isinstance(state, dict):
        raise ValueError(f"the state of {table} {key!r} must be a dict, not {type(state).__name__}")
    indexed = tuple(str(state.get(member, "")) for member in INDEXED.get(table, ()))
    return Put(table, key, _json(state, f"the state of {table} {key!r}"), indexed)


def put_json(table: str, key: Key, text: str) -> Put:
    """:func:`put` of a state already serialised as the JSON text of a dict (checked to be one
    only by its braces: the caller serialised it), for a table without indexed columns."""
    key = _key(table, key)
    if table in INDEXED:
        raise ValueError(f"{table} has indexed columns ({', '.join(INDEXED[table])}): write its states with put")
    if not isinstance(text, str) or not text.startswith("{") or not text.endswith("}"):
        raise ValueError(f"the state of {table} {key!r} must be the JSON text of a dict, not {text!r:.80}")
    return Put(table, key, text)


def delete(table: str, key: Key) -> Delete:
    """Delete the row ``key`` of ``table`` (nothing happens when there is none)."""
    return Delete(table, _key(table, key))


def flow(account: Account, trading_day: str, seq: int, callback: str, values: dict[str, Any]) -> Flow:
    """Append message ``seq`` (``callback`` with field ``values``) to ``account``'s private flow of
    ``trading_day``; a second message with the same ``seq`` replaces the first."""
    account = _account(account)
    key = (*account, trading_day, seq)
    _check_column("flow", key, "TradingDay", trading_day)
    _check_column("flow", key, "seq", seq)
    if not isinstance(callback, str) or not callback:
        raise ValueError(f"bad callback {callback!r} for the flow of {account!r}: expected a callback name")
    return Flow(account, trading_day, seq, callback, _json(values, f"flow message {key!r}"))


def equity_point(account: Account, trading_day: str, time: str, balance: float,
                 values: dict[str, Any] | None = None) -> EquityPoint:
    """Add a point (``Balance`` at ``time`` of ``trading_day``, with any other ``values``) to
    ``account``'s equity curve."""
    account = _account(account)
    if not isinstance(trading_day, str) or not isinstance(time, str):
        raise ValueError(f"bad equity point of {account!r}: trading day {trading_day!r} and time {time!r} "
                         "must be str")
    if isinstance(balance, bool) or not isinstance(balance, (int, float)):
        raise ValueError(f"bad equity point of {account!r}: balance {balance!r} must be a number")
    return EquityPoint(account, trading_day, time, float(balance),
                       _json(values or {}, f"equity point of {account!r}"))


def delete_account(book: str, BrokerID: str, InvestorID: str) -> DeleteAccount:
    """Delete one account's rows from every table: state, orders, trades, statements,
    confirmations, private flow and equity points (the book's ids stay)."""
    return DeleteAccount(_account((book, BrokerID, InvestorID)))


@dataclass
class BookState:
    """Everything stored for one book (what :meth:`Store.load` returns).

    ``tables[table][key] = state`` for every table of :data:`TABLES` (the keys as :func:`put` took
    them, the book first; JSON gives lists where the state had tuples); ``flow[(account,
    trading_day)]`` is that day's private flow as ``[(seq, callback, values)]`` in seq order.
    """

    book: str
    tables: dict[str, dict[Key, dict[str, Any]]] = field(default_factory=dict)
    flow: dict[tuple[Account, str], list[tuple[int, str, dict[str, Any]]]] = field(default_factory=dict)

    def accounts(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(BrokerID, InvestorID) -> the account's state."""
        return {(key[1], key[2]): state for key, state in self.tables["accounts"].items()}

    @property
    def ids(self) -> dict[str, Any] | None:
        """The book's id sequences, or None when none were stored."""
        return self.tables["ids"].get((self.book,))


@dataclass
class _Write:
    ops: list[Op]
    after: Callable[[], None] | None


@dataclass
class _Mark:
    done: threading.Event = field(default_factory=threading.Event)


_STOP = object()


def _describe(exc: sqlite3.Error, path: str) -> StoreError:
    """A StoreError for an SQLite error on ``path``, saying what to do."""
    text = str(exc)
    lowered = text.lower()
    if "locked" in lowered or "busy" in lowered:
        return StoreError(f"{path}: the database is locked by another process (is another program trading on "
                          "it?); stop it, or give this one another trader.db")
    if "not a database" in lowered or "malformed" in lowered or "corrupt" in lowered:
        return StoreError(f"{path}: the file is corrupt or not an SQLite database ({text}); nothing was changed. "
                          "Move it aside (the counter then starts a new database) or restore it from a copy")
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(f"{path}: the database cannot be written ({text}); check the permissions of the file, "
                          "its folder and its -wal and -shm files, or give another trader.db")
    if "disk is full" in lowered or "disk i/o" in lowered or "too large" in lowered:
        return StoreError(f"{path}: the database cannot be written: {text}; free some space and restart")
    if "unable to open" in lowered:
        return StoreError(f"{path}: the database cannot be opened or created ({text}); check that its folder "
                          "exists and can be written, or give another trader.db")
    return StoreError(f"{path}: {text}")


_open_stores: "weakref.WeakSet[Store]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for store in list(_open_stores):
        store.close()


# Files up to this size are checked page by page at open (quick_check reads the whole file: about
# a second for 256 MB); larger ones only by their header, schema and the reads that follow.
QUICK_CHECK_LIMIT = 256 * 1024 * 1024


class Store:
    """The counter's SQLite database (see the module docstring).  Build it with :meth:`open`."""

    def __init__(self, path: str, connection: sqlite3.Connection, reader: sqlite3.Connection,
                 timeout: float, checkpointer: sqlite3.Connection | None = None) -> None:
        self.path = path
        self.timeout = timeout
        self._conn = connection
        self._reader = reader
        self._memory = reader is connection
        self._write_lock = threading.Lock()
        self._read_lock = self._write_lock if self._memory else threading.Lock()
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._failure: StoreError | None = None
        # Called once, on the writer thread, with the StoreError of the first failed commit (the
        # counter stops taking requests and tells its sessions); set it right after open().
        self.on_failure: Callable[[StoreError], None] | None = None
        self._closed = False
        self._close_lock = threading.Lock()  # guards _closed, _pending and the order of what is queued
        self._pending = 0  # writes queued whose after has not run yet
        self._thread = threading.Thread(target=self._run, name=f"ctpshim-store {os.path.basename(path)}",
                                        daemon=True)
        # The WAL is copied into the file by a thread of its own (the copy syncs the file: a
        # commit does not wait for it); the writer only says when.
        self._checkpoint_due = threading.Event()
        self._checkpointing = checkpointer is not None
        self._commits = 0
        self._checkpointer: threading.Thread | None = None
        if checkpointer is not None:
            connection.execute("PRAGMA wal_autocheckpoint = 0")
            self._checkpointer = threading.Thread(
                target=self._checkpoint, args=(checkpointer,), daemon=True,
                name=f"ctpshim-store checkpoint {os.path.basename(path)}")
            self._checkpointer.start()
        self._thread.start()
        _open_stores.add(self)

    # -- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: "str | os.PathLike[str] | None", *, create: bool = True,
             timeout: float = DEFAULT_TIMEOUT) -> Store:
        """The store at ``path`` (``None`` or ``"memory"``: a new in-memory one).

        A missing file is created with its folders, unless ``create`` is false (then it is a
        :class:`StoreError`).  ``timeout`` is how long a write waits for another process's lock.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
            raise ValueError(f"bad timeout {timeout!r}: expected seconds, above 0 and at most 3600")
        if path is None or (isinstance(path, str) and path.strip().lower() == MEMORY):
            connection = cls._connect(":memory:", MEMORY, timeout)
            cls._prepare(connection, MEMORY)
            return cls(MEMORY, connection, connection, timeout)
        path = os.path.expanduser(os.fspath(path))
        if not path.strip():
            raise ValueError("bad database path '': expected a file path or 'memory'")
        if os.path.isdir(path):
            raise StoreError(f"{path}: is a folder; name a file inside it, e.g. {os.path.join(path, 'trader.sqlite')}")
        if not os.path.exists(path):
            if not create:
                raise StoreError(f"{path}: no such database (the counter creates it at a program's first login)")
            folder = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(folder, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the database's folder: {os_error_words(exc, folder)}; "
                                 "give another trader.db") from None
        connection = cls._connect(path, path, timeout)
        try:
            cls._prepare(connection, path)
            reader = cls._connect(path, path, timeout)
        except BaseException:
            connection.close()
            raise
        try:
            checkpointer = cls._connect(path, path, timeout)
        except BaseException:
            connection.close()
            reader.close()
            raise
        return cls(path, connection, reader, timeout, checkpointer)

    @staticmethod
    def _connect(target: str, path: str, timeout: float) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(target, timeout=timeout, isolation_level=None, check_same_thread=False)
            connection.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        except sqlite3.Error as exc:
            raise _describe(exc, path) from None
        return connection

    @staticmethod
    def _prepare(connection: sqlite3.Connection, path: str) -> None:
        """Check the file is ours and readable, set WAL, create the tables of a new file."""
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if tables:
                Store._check(connection, path, tables)
            if path != MEMORY:
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StoreError(f"{path}: cannot switch the database to WAL mode (it stays {mode!r}); "
                                     "put trader.db on a local disk")
            connection.execute("PRAGMA synchronous = NORMAL")
            if not tables:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'meta'").fetchone():
                        for statement in _SCHEMA.split(";"):
                            if statement.strip():
                                connection.execute(statement)
                        connection.executemany("INSERT INTO meta VALUES (?, ?)",
                                               [("application", APPLICATION), ("schema", str(SCHEMA_VERSION))])
                    connection.execute("COMMIT")
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise _describe(exc, path) from None

    @staticmethod
    def _check(connection: sqlite3.Connection, path: str, tables: set[str]) -> None:
        """An existing file: ours, of a schema this version reads, and not corrupt (read only)."""
        try:
            meta = dict(connection.execute("SELECT name, value FROM meta").fetchall()) if "meta" in tables else {}
            if meta.get("application") != APPLICATION:
                raise StoreError(f"{path}: an SQLite database of another program (no ctpshim trader tables); "
                                 "give trader.db a file of its own")
            try:
                version = int(meta.get("schema", ""))
                if version < 1:
                    raise ValueError(version)
            except ValueError:
                raise StoreError(f"{path}: the schema version {meta.get('schema')!r} is not a version number; "
                                 "the file is damaged: move it aside or restore it from a copy") from None
            if version > SCHEMA_VERSION:
                raise StoreError(f"{path}: written by a newer ctpshim (schema {version}; this version reads up to "
                                 f"{SCHEMA_VERSION}); upgrade ctpshim, or give another trader.db")
            missing = sorted({*TABLES, "flow", "equity"} - tables)
            if missing:
                raise StoreError(f"{path}: the database is damaged (missing tables: {', '.join(missing)}); "
                                 "move it aside (the counter then starts a new database) or restore it from a copy")
            if path != MEMORY and os.path.getsize(path) > QUICK_CHECK_LIMIT:
                return  # damage in a large file shows at the first read that meets it, as a StoreError
            check = connection.execute("PRAGMA quick_check(1)").fetchone()[0]
            if check != "ok":
                check = " ".join(str(check).replace("*** in database main ***", "").split())
                raise StoreError(f"{path}: the database is corrupt ({check}); nothing was changed. Move it aside "
                                 "(the counter then starts a new database) or restore it from a copy")
        except sqlite3.Error as exc:
            raise _describe(exc, path) from None

    # -- writing ---------------------------------------------------------------------------------

    def write(self, ops: Iterable[Op], after: Callable[[], None] | None = None) -> None:
        """Queue ``ops`` to be committed (in one transaction with whatever else is queued), then
        ``after`` to run on the writer thread; returns at once.  ``[]`` with an ``after`` runs it
        once everything written before is committed.  Raises :class:`StoreError` once the store
        has failed or is closed."""
        ops = list(ops)
        for op in ops:
            if not isinstance(op, (Put, Delete, Flow, EquityPoint, DeleteAccount)):
                raise ValueError(f"not a store op: {op!r}; build ops with put, delete, flow, equity_point "
                                 "or delete_account")
        if after is not None and not callable(after):
            raise ValueError(f"after must be callable or None, not {after!r}")
        with self._close_lock:  # nothing is queued behind the writer's stop
            self._check_usable()
            self._pending += 1
            self._queue.put(_Write(ops, after))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything written before this call is committed and its ``after`` has run:
        True, or False after ``timeout`` seconds.  Raises :class:`StoreError` if a commit failed."""
        if threading.current_thread() is self._thread:
            raise StoreError(f"{self.path}: flush called from the store's own thread (an after callable) "
                             "would wait for itself")
        if self._failure is not None:
            raise self._failure
        with self._close_lock:
            if not self._pending:
                return True
            closed = self._closed
            if not closed:
                mark = _Mark()
                self._queue.put(mark)
        if closed:  # the writer commits everything queued before its stop, then ends
            self._thread.join(timeout)
            finished = not self._thread.is_alive()
        else:
            finished = mark.done.wait(timeout)
        if not finished:
            return False
        if self._failure is not None:
            raise self._failure
        return True

    def close(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Commit what is queued, run its ``after`` callables, stop the writer and close the file.
        Idempotent; called at interpreter exit for every store still open."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("%s: the store's writer did not finish within %s s; what it had not committed is lost",
                          self.path, timeout)
        _open_stores.discard(self)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pending(self) -> int:
        """How many writes are queued whose ``after`` has not run yet (0: :meth:`flush` returns at once)."""
        return self._pending

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise StoreError(f"{self.path}: the store is closed")

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            writes = [item for item in batch if isinstance(item, _Write)]
            stopping = any(item is _STOP for item in batch)
            if writes and self._failure is None:
                self._commit(writes)
                self._commits += 1
                if self._checkpointing and self._commits % CHECKPOINT_EVERY == 0:
                    self._checkpoint_due.set()
            if self._failure is None:
                for item in writes:
                    if item.after is not None:
                        try:
                            item.after()
                        except BaseException:  # also SystemExit: the writer outlives any callable
                            log.exception("%s: a callable run after a commit raised", self.path)
            with self._close_lock:
                self._pending -= len(writes)
            for item in batch:
                if isinstance(item, _Mark):
                    item.done.set()
        if self._checkpointer is not None:
            self._checkpointing = False
            self._checkpoint_due.set()
            self._checkpointer.join(self.timeout)
        try:
            with self._write_lock:
                self._conn.close()
            if not self._memory:
                with self._read_lock:
                    self._reader.close()
        except sqlite3.Error:
            log.exception("%s: closing the database failed", self.path)

    def _checkpoint(self, connection: sqlite3.Connection) -> None:
        """The checkpointer's thread: a passive checkpoint whenever the writer asks (it never
        blocks the writer or readers; a failed one loses nothing, the WAL keeps the commits)."""
        try:
            while True:
                self._checkpoint_due.wait()
                self._checkpoint_due.clear()
                if not self._checkpointing:
                    return
                try:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:
                    log.warning("%s: a checkpoint of the WAL failed (the commits stay in the WAL): %s",
                                self.path, exc)
        finally:
            connection.close()

    def _commit(self, writes: list[_Write]) -> None:
        with self._write_lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    for item in writes:
                        for op in item.ops:
                            self._apply(op)
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            except Exception as exc:
                self._failure = (_describe(exc, self.path) if isinstance(exc, sqlite3.Error)
                                 else StoreError(f"{self.path}: writing failed: {type(exc).__name__}: {exc}"))
                log.error("%s; %d queued writes were not committed and the store accepts no more",
                          self._failure, len(writes))
                if self.on_failure is not None:
                    try:
                        self.on_failure(self._failure)
                    except BaseException:  # the writer must still stop cleanly
                        log.exception("%s: the failure callback raised", self.path)

    def _apply(self, op: Op) -> None:
        execute = self._conn.execute
        if isinstance(op, Put):
            columns = TABLES[op.table] + INDEXED.get(op.table, ()) + ("state",)
            keys = ", ".join(TABLES[op.table])
            updates = ", ".join(f"{column} = excluded.{column}" for column in columns[len(TABLES[op.table]):])
            execute(f"INSERT INTO {op.table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))}) "
                    f"ON CONFLICT ({keys}) DO UPDATE SET {updates}", (*op.key, *op.indexed, op.state))
        elif isinstance(op, Delete):
            where = " AND ".join(f"{column} = ?" for column in TABLES[op.table])
            execute(f"DELETE FROM {op.table} WHERE {where}", op.key)
        elif isinstance(op, Flow):
            execute('INSERT OR REPLACE INTO flow (book, BrokerID, InvestorID, TradingDay, seq, callback, "values") '
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (*op.account, op.trading_day, op.seq, op.callback, op.values))
        elif isinstance(op, EquityPoint):
            execute('INSERT INTO equity (book, BrokerID, InvestorID, TradingDay, time, Balance, "values") '
                    "VALUES (?, ?, ?, ?, ?, ?, ?)", (*op.account, op.trading_day, op.time, op.balance, op.values))
        else:
            for table in ACCOUNT_TABLES:
                execute(f"DELETE FROM {table} WHERE book = ? AND BrokerID = ? AND InvestorID = ?", op.account)

    # -- reading ---------------------------------------------------------------------------------

    def _rows(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """What is committed (never what is only queued: flush first to read your own writes)."""
        with self._read_lock:
            if self._closed and not self._thread.is_alive():
                raise StoreError(f"{self.path}: the store is closed")
            try:
                return self._reader.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise _describe(exc, self.path) from None

    def _state(self, text: str, where: str) -> Any:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise StoreError(f"{self.path}: the stored {where} is damaged ({exc}); "
                             "restore the file from a copy") from None

    def load(self, book: str, trading_day: str | None = None) -> BookState:
        """Everything stored for ``book`` (a book never written is empty).  With ``trading_day``,
        the orders, trades, private flow, statements and confirmations of that day only."""
        state = BookState(book)
        day = " AND TradingDay = ?" if trading_day is not None else ""
        extra: tuple[Any, ...] = (trading_day,) if trading_day is not None else ()
        for table, columns in TABLES.items():
            filtered = day if "TradingDay" in columns or table in INDEXED else ""
            order = " ORDER BY rowid"
            rows = self._rows(f"SELECT {', '.join(columns)}, state FROM {table} WHERE book = ?{filtered}{order}",
                              (book, *(extra if filtered else ())))
            state.tables[table] = {tuple(row[:-1]): self._state(row[-1], f"{table} {tuple(row[:-1])!r}")
                                   for row in rows}
        for *account_day, seq, callback, values in self._rows(
                f'SELECT BrokerID, InvestorID, TradingDay, seq, callback, "values" FROM flow WHERE book = ?{day} '
                "ORDER BY BrokerID, InvestorID, TradingDay, seq", (book, *extra)):
            broker, investor, flow_day = account_day
            state.flow.setdefault(((book, broker, investor), flow_day), []).append(
                (seq, callback, self._state(values, f"flow message {seq}")))
        return state

    def books(self) -> list[str]:
        """The books that have accounts or ids, sorted."""
        return [row[0] for row in self._rows("SELECT book FROM accounts UNION SELECT book FROM ids ORDER BY 1")]

    def accounts(self, book: str) -> list[dict[str, Any]]:
        """The accounts of ``book``: ``{"book", "BrokerID", "InvestorID", "state"}`` each, sorted."""
        return [{"book": book, "BrokerID": broker, "InvestorID": investor,
                 "state": self._state(text, f"account {broker}/{investor}")}
                for broker, investor, text in self._rows(
                    "SELECT BrokerID, InvestorID, state FROM accounts WHERE book = ? ORDER BY BrokerID, InvestorID",
                    (book,))]

    def account(self, book: str, BrokerID: str, InvestorID: str) -> dict[str, Any] | None:
        """One account's state, or None."""
        rows = self._rows("SELECT state FROM accounts WHERE book = ? AND BrokerID = ? AND InvestorID = ?",
                          (book, BrokerID, InvestorID))
        return self._state(rows[0][0], f"account {BrokerID}/{InvestorID}") if rows else None

    def _account_rows(self, table: str, columns: str, order: str, book: str, BrokerID: str, InvestorID: str,
                      trading_day: str | None) -> list[tuple[Any, ...]]:
        day = " AND TradingDay = ?" if trading_day is not None else ""
        extra = (trading_day,) if trading_day is not None else ()
        return self._rows(f"SELECT {columns} FROM {table} WHERE book = ? AND BrokerID = ? AND InvestorID = ?{day} "
                          f"ORDER BY {order}", (book, BrokerID, InvestorID, *extra))

    def orders(self, book: str, BrokerID: str, InvestorID: str, trading_day: str | None = None) -> list[dict[str, Any]]:
        """The account's order states (of ``trading_day``, else all), in BrokerOrderSeq order."""
        return [self._state(text, f"order {seq}") for seq, text in
                self._account_rows("orders", "BrokerOrderSeq, state", "BrokerOrderSeq", book, BrokerID, InvestorID,
                                   trading_day)]

    def trades(self, book: str, BrokerID: str, InvestorID: str, trading_day: str | None = None) -> list[dict[str, Any]]:
        """The account's trade states (of ``trading_day``, else all), in the order first written."""
        return [self._state(text, f"trade {trade_id}") for trade_id, text in
                self._account_rows("trades", "TradeID, state", "rowid", book, BrokerID, InvestorID, trading_day)]

    def flow(self, book: str, BrokerID: str, InvestorID: str, trading_day: str,
             since: int = 0) -> list[tuple[int, str, dict[str, Any]]]:
        """The account's private flow of ``trading_day`` after message ``since`` (RESUME replays from
        where a session stopped): ``[(seq, callback, values)]`` in seq order."""
        return [(seq, callback, self._state(values, f"flow message {seq}")) for seq, callback, values in
                self._account_rows("flow", 'seq, callback, "values"', "seq", book, BrokerID, InvestorID, trading_day)
                if seq > since]

    def statements(self, book: str, BrokerID: str, InvestorID: str,
                   trading_day: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """The account's settlement statements: ``[(TradingDay, state)]`` by day (of ``trading_day`` only
        when given)."""
        return [(day, self._state(text, f"statement of {day}")) for day, text in
                self._account_rows("statements", "TradingDay, state", "TradingDay", book, BrokerID, InvestorID,
                                   trading_day)]

    def confirmations(self, book: str, BrokerID: str, InvestorID: str) -> dict[str, dict[str, Any]]:
        """The account's settlement confirmations: TradingDay -> state."""
        return {day: self._state(text, f"confirmation of {day}") for day, text in
                self._account_rows("confirmations", "TradingDay, state", "TradingDay", book, BrokerID, InvestorID,
                                   None)}

    def equity(self, book: str, BrokerID: str, InvestorID: str) -> list[tuple[str, str, float]]:
        """The account's equity points ``[(TradingDay, time, Balance)]`` in the order written."""
        return [(day, moment, balance) for day, moment, balance in
                self._account_rows("equity", "TradingDay, time, Balance", "rowid", book, BrokerID, InvestorID, None)]

    def equity_values(self, book: str, BrokerID: str, InvestorID: str) -> list[tuple[str, str, float, dict[str, Any]]]:
        """The account's equity points with the other values stored with each."""
        return [(day, moment, balance, self._state(values, "equity point")) for day, moment, balance, values in
                self._account_rows("equity", 'TradingDay, time, Balance, "values"', "rowid", book, BrokerID,
                                   InvestorID, None)]

    def ids(self, book: str) -> dict[str, Any] | None:
        """The book's id sequences, or None."""
        rows = self._rows("SELECT state FROM ids WHERE book = ?", (book,))
        return self._state(rows[0][0], f"ids of book {book!r}") if rows else None

    def __repr__(self) -> str:
        return f"Store({self.path!r})"
