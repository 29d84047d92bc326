"""The simulated CTP counter: one per (database, book) per process, shared by every trader API on it.

A :class:`Counter` keeps the accounts of one book (a ``Ledger`` each, the day's orders and
trades, the private flow) and orchestrates the pieces: the checks (:mod:`.checks`), the order
life cycle (:mod:`.orders`), matching (:mod:`.matching`), the books (:mod:`.ledger`), the day end
(:mod:`.settlement`, :mod:`.statement`) and persistence (:mod:`.store`).

Threads.  Requests arrive on user threads (or a dispatcher thread, from a callback); observed
ticks on md APIs' dispatcher threads.  Both take the counter's one ``RLock``, change the state
synchronously and queue what changed with ``store.write(ops, after=post)``: the callbacks are
posted to the programs only in ``after``, once the store committed them, so nothing is
acknowledged before it is on disk.  CTP-layer rejects go the same way (with no ops) so every
callback of an account keeps its order.

The book an order meets is the latest tick the counter observed of its instrument
(``Market.observe``: just before an md API hands the tick to its program), never a later one.
A tick of an instrument with resting orders matches them (:func:`.matching.on_tick`); any other
tick is only kept (the per-tick cost of a backtest): positions are marked to the latest ticks
when their figures are read (queries, checks, settlement), and settlement prices are taken from
each instrument's last tick of the day (CFFEX's last-hour rule sees every tick).  A change of the
trading day (the ticks' ``TradingDay``; the market's own day for a quiet source before any tick;
days only move forward) settles every account first.  An order sent before any tick of its
instrument is met by the first tick as an arriving order.

A program with a td API only still gets its orders matched: for an instrument no program's md
API takes, the counter subscribes its own feed on the market (:class:`_Feed`: a sink and a
dispatcher whose Spi does nothing but be observed), and lets it go at the first tick a program's
md API hands on, following that program's ticks from then on.

Lockstep (``trader.lockstep``, by default at ``speed=max``): before a tick is matched the
observer waits, bounded, until the store has committed everything queued, every td API's
dispatcher on the counter is idle and nothing was written meanwhile, so whatever a program sent
in answer to the previous tick (also from ``OnRtnTrade``) is handled first; and when the tick
filled anything it waits again before the tick is delivered.  A backtest then gives the same
fills every run.  Nothing is waited for when nothing was written since the last quiet point.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

from ..ctp import clock, rates
from ..ctp.calendar import day_or_none, tick_moment
from ..errors import REASON_READ_FAILED
from ..messages import os_error_words
from ..ctp.error_codes import CtpError
from ..ctp.exchanges import FUTURES_EXCHANGES
from ..ctp.fields import default_values, from_values, member_index, member_names, values_of
from . import checks, matching, orders
from .orders import Order, OrderReport, Release, Trade, TradeReport
from .settings import MEMORY, TraderSettings
from .terms import Terms, parse_info, terms_for

log = logging.getLogger("ctpshim")

LOCKSTEP_WAIT = 10.0  # s: the longest the observer waits for the trader to catch up before a tick
LOCKSTEP_ROUNDS = 50
RESTART, RESUME, QUICK, NONE = 0, 1, 2, 3  # THOST_TERT_*
EXCHANGE_IDS = frozenset(FUTURES_EXCHANGES) | frozenset({"SSE", "SZSE"})
ORDER_CLASS = "CThostFtdcOrderField"
TRADE_CLASS = "CThostFtdcTradeField"
RESUME_FILE = "ctpshim-private.json"
RESUME_NOTE_EVERY = 0.5  # s: how often the RESUME file is rewritten while reports flow
FIRST_TICK_WAIT = 5.0  # s: how long an order or a depth query waits for its instrument's first tick  # under the API's flow path: the last private sequence it received

_counters: dict[tuple[str, str], "Counter"] = {}
_counters_lock = threading.Lock()


def counter_for(front_url: str, trader_settings: TraderSettings) -> "Counter":
    """The counter of ``trader_settings``' (database, book) in this process, made (and loaded
    from the store) on first use; raises ``StoreError`` when the database cannot be used."""
    key = trader_settings.counter_key
    with _counters_lock:
        counter = _counters.get(key)
        if counter is None:
            counter = _counters[key] = Counter(trader_settings)
        elif counter.settings != trader_settings:
            log.info("%s: the counter of %s book %s is shared; it keeps the settings it was made with",
                     front_url, key[0], key[1])
        return counter


def forget_counters() -> None:
    """Close and drop every counter of the process (tests; a program never needs it)."""
    with _counters_lock:
        counters = list(_counters.values())
        _counters.clear()
    for counter in counters:
        counter.close()


def values_of_field(obj: Any) -> dict[str, Any]:
    """A field object's members by name."""
    return dict(zip(member_names(type(obj)), values_of(obj)))


def make_field(module: Any, class_name: str, values: dict[str, Any]) -> Any:
    """A ``class_name`` field object of ``module`` with the members ``values`` names (others
    default); text for tdapi's raw-GBK members (read back as bytes) is encoded as CTP does, and
    a double member given a whole number reads as a float, as in openctp."""
    cls = getattr(module, class_name)
    made = []
    for name, default in zip(member_names(cls), default_values(cls)):
        value = values.get(name, default)
        if type(default) is bytes and type(value) is str:
            value = value.encode("gb18030")
        elif type(default) is float and type(value) is int:
            value = float(value)
        made.append(value)
    return from_values(cls, made)


def _tick_moment(tick: Any) -> datetime | None:
    try:
        return tick_moment(tick)
    except ValueError:
        return None


@dataclass(eq=False)
class TraderSession:
    """One trader API object logged in to the counter."""

    front: Any  # the SessionBackend: post(), front_id, session_id, dispatcher, flow_path
    module: Any
    resume: int = RESUME
    account: "Account | None" = None
    refs: checks.OrderRefs = field(default_factory=checks.OrderRefs)
    resume_key: str = ""
    market: Any = None  # the market it logged in on
    closed: bool = False  # its API was released: nothing more is posted or written for it
    noted: tuple[str, int] | None = None  # the last private sequence sent (RESUME)
    noted_at: float = -math.inf

    def post(self, callback: str, *args: Any) -> None:
        """Queue a callback for the API's program (nothing once the API was released)."""
        if not self.closed:
            self.front.post(callback, *args)

    @property
    def wants_private(self) -> bool:
        """Whether it takes the private flow (not THOST_TERT_NONE)."""
        return self.resume != NONE

    def received(self, trading_day: str, seq: int) -> None:
        """The last private sequence this API was sent (RESUME): noted in the flow path's file at
        most every ``RESUME_NOTE_EVERY`` seconds and when the API leaves (a killed program may
        then get the last few reports again, never miss one)."""
        if self.closed:
            return
        self.noted = (trading_day, seq)
        now = time.monotonic()
        if now - self.noted_at >= RESUME_NOTE_EVERY:
            self.noted_at = now
            self.write_note()

    def write_note(self) -> None:
        """Write the last noted sequence to the flow path's file now."""
        noted = self.noted
        path = _resume_path(self.front)
        if noted is None or not path or not self.resume_key:
            return
        trading_day, seq = noted
        try:
            known = _read_resume(path)
            known[self.resume_key] = {"trading_day": trading_day, "seq": seq}
            spare = f"{path}.{threading.get_ident()}.tmp"  # the store's thread or the API's own
            with open(spare, "w", encoding="utf-8") as out:
                json.dump(known, out)
            os.replace(spare, path)
        except OSError as exc:
            log.warning("%s: cannot note the private flow's position (RESUME replays from the last one noted): %s",
                        self.front.name, os_error_words(exc, path))


def _resume_path(front: Any) -> str:
    flow_path = getattr(front, "flow_path", None)
    return flow_path + RESUME_FILE if flow_path is not None else ""


def _read_resume(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as source:
            known = json.load(source)
        return known if isinstance(known, dict) else {}
    except (OSError, ValueError):
        return {}


@dataclass(eq=False)
class Account:
    """One BrokerID+InvestorID: its ledger, the day's orders, trades and private flow."""

    BrokerID: str
    InvestorID: str
    ledger: Any
    trading_day: str
    confirmed: str = ""  # the trading day last confirmed
    confirm_time: str = ""
    max_order_ref: int = 0
    orders: dict[int, Order] = field(default_factory=dict)
    index: dict[tuple, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    flow: list[tuple[int, str, dict[str, Any]]] = field(default_factory=list)
    sessions: list[TraderSession] = field(default_factory=list)
    statements: dict[str, str] = field(default_factory=dict)  # settled here: trading day -> text

    @property
    def key(self) -> tuple[str, str]:
        """(BrokerID, InvestorID)."""
        return (self.BrokerID, self.InvestorID)

    def state(self) -> dict[str, Any]:
        """The ``accounts`` row: the ledger's state and the counter's own members."""
        return {"ledger": self.ledger.to_state(), "trading_day": self.trading_day, "confirmed": self.confirmed,
                "confirm_time": self.confirm_time, "max_order_ref": self.max_order_ref}

    def state_json(self) -> str:
        """:meth:`state` as JSON text (the ledger's part serialised by the ledger, which does not
        serialise again the day's trades it serialised before)."""
        rest = json.dumps({"trading_day": self.trading_day, "confirmed": self.confirmed,
                           "confirm_time": self.confirm_time, "max_order_ref": self.max_order_ref},
                          ensure_ascii=False, separators=(",", ":"))
        return '{"ledger":' + self.ledger.to_json() + "," + rest[1:]

    def add_order(self, order: Order) -> None:
        """Keep a day's order, findable by the keys a cancel names it by."""
        self.orders[order.key] = order
        for key in checks.order_keys(order):
            self.index[key] = order


class Outbox:
    """What one operation changed: store ops, and callbacks to post after they are committed."""

    def __init__(self, counter: "Counter") -> None:
        self.counter = counter
        self.ops: list[Any] = []
        self.posts: list[tuple[list[TraderSession], str, tuple[Any, ...]]] = []
        self.private: dict[int, tuple[Account, list[tuple[int, str, dict[str, Any]]]]] = {}
        self.accounts: dict[int, Account] = {}

    def to(self, sessions: list[TraderSession], callback: str, *args: Any) -> None:
        """A callback for these sessions only (a CTP-layer answer to its requester)."""
        self.posts.append((list(sessions), callback, args))

    def report(self, account: Account, callback: str, values: dict[str, Any]) -> None:
        """A private-flow report (OnRtnOrder / OnRtnTrade) to every session of ``account``."""
        seq = (account.flow[-1][0] if account.flow else 0) + 1
        entry = (seq, callback, values)
        account.flow.append(entry)
        self.ops.append(self.counter.store_ops.flow((self.counter.book, *account.key), account.trading_day, seq,
                                                    callback, values))
        self.private.setdefault(id(account), (account, []))[1].append(entry)
        self.changed(account)

    def changed(self, account: Account) -> None:
        """The account's state is written with the rest."""
        self.accounts[id(account)] = account

    def equity(self, account: Account, moment: str, trading_day: str = "") -> None:
        """A point of the account's equity curve (the command line's report)."""
        self.counter.mark(account)
        values = account.ledger.account_values()
        self.ops.append(self.counter.store_ops.equity_point(
            (self.counter.book, *account.key), trading_day or account.trading_day, moment,
            float(values.get("Balance", 0.0)),
            {name: values.get(name, 0.0) for name in ("Available", "CurrMargin", "CloseProfit", "PositionProfit",
                                                        "Commission")}))

    def send(self) -> bool:
        """Queue the ops; post the callbacks once they are committed.  Whether there was any."""
        counter = self.counter
        for account in self.accounts.values():
            self.ops.append(counter.store_ops.put_json("accounts", (counter.book, *account.key),
                                                       account.state_json()))
        if self.accounts:
            self.ops.append(counter.put("ids", (), counter.ids.to_state()))
        posts, private = self.posts, list(self.private.values())
        if not self.ops and not posts and not private:
            return False
        deliveries = [(account, list(account.sessions), entries) for account, entries in private]

        def after() -> None:
            for sessions, callback, args in posts:
                for session in sessions:
                    session.post(callback, *args)
            for account, sessions, entries in deliveries:
                for session in sessions:
                    if not session.wants_private or session.account is not account:
                        continue
                    for _, callback, values in entries:
                        session.post(callback, make_field(session.module, _CLASS_OF[callback], values))
                    session.received(account.trading_day, entries[-1][0])

        try:
            self.counter.writes += 1
            self.counter.store.write(self.ops, after=after)
        except self.counter.store_ops.StoreError as exc:
            self.counter.failed(exc)
            return False
        return True


_CLASS_OF = {"OnRtnOrder": ORDER_CLASS, "OnRtnTrade": TRADE_CLASS}


class Counter:
    """The accounts of one book in one database (see the module docstring)."""

    def __init__(self, trader_settings: TraderSettings) -> None:
        from . import store as store_module

        self.settings = trader_settings
        self.book = trader_settings.book
        self.lock = threading.RLock()
        self.store_ops = store_module
        self.store = store_module.Store.open(None if trader_settings.db == MEMORY else trader_settings.db)
        self.rate_table = rates.load_table(trader_settings.rates)
        self.rules = matching.FillRules(partial=trader_settings.partial, queue=trader_settings.queue)
        self.ids = orders.Ids()
        self.accounts: dict[tuple[str, str], Account] = {}
        self.terms: dict[str, Terms | None] = {}
        # The latest observed tick per instrument (the book orders meet), and the Book made of it
        # with the lots already taken from it (made only when orders need it).
        self.ticks: dict[str, Any] = {}
        self.books: dict[str, tuple[Any, matching.Book, matching.TickUse]] = {}  # instrument -> (tick, book, use)
        self.resting: dict[str, dict[int, Order]] = {}  # instrument -> alive orders by key
        self.hourly: dict[str, bool] = {}  # instrument -> its settlement needs every tick (CFFEX)
        self.trading_day = ""
        self.latest: Any = None  # the latest observed tick of any instrument: the feed's time
        self.writes = 0  # store writes queued by the counter (lockstep's quiet point)
        self.quiet_at = -1
        self.sessions: list[TraderSession] = []
        self.markets: dict[int, tuple[Any, Any]] = {}  # id(market) -> (market, observation)
        self.feeds: dict[int, "_Feed"] = {}
        self.fed: dict[str, "_Feed"] = {}  # instrument -> the feed of the counter's that takes it
        self.feeding = False  # a feed started: its late ticks of a dropped instrument are ignored
        self.prices = _settlement_prices()
        self.failure: Exception | None = None
        self.store.on_failure = self.failed
        self.waiters: dict[str, list[_Waiter]] = {}  # instrument -> who waits for its first tick
        # Orders that arrived before any tick of their instrument: the first tick meets them as
        # arriving orders (level by level at the book's prices), not as resting ones.
        self.unpriced: dict[str, list[Order]] = {}
        self._load()

    # -- state ----------------------------------------------------------------------------------

    def _load(self) -> None:
        from .ledger import Ledger

        state = self.store.load(self.book)
        if state.ids:
            self.ids = orders.Ids.from_state(state.ids)
        for (broker, investor), saved in state.accounts().items():
            account = Account(broker, investor, Ledger.from_state(saved["ledger"]), saved.get("trading_day", ""),
                              saved.get("confirmed", ""), saved.get("confirm_time", ""),
                              int(saved.get("max_order_ref", 0)))
            self.accounts[account.key] = account
        for key, saved in state.tables["orders"].items():
            account = self.accounts.get((key[1], key[2]))
            if account is not None and saved.get("TradingDay") == account.trading_day:
                order = Order.from_state(saved)
                account.add_order(order)
                self._track(account, order)
        for key, saved in state.tables["trades"].items():
            account = self.accounts.get((key[1], key[2]))
            if account is not None and saved.get("TradingDay") == account.trading_day:
                account.trades.append(Trade.from_state(saved))
        for account in self.accounts.values():
            account.flow = [tuple(entry) for entry in  # type: ignore[misc]
                            state.flow.get(((self.book, *account.key), account.trading_day), [])]

    def put(self, table: str, key: tuple[Any, ...], state: dict[str, Any]) -> Any:
        """The store op writing ``state`` as row ``key`` (without the book) of ``table``."""
        return self.store_ops.put(table, (self.book, *key), state)

    def close(self) -> None:
        """Stop observing, let the feeds go, write what is queued and close the store."""
        with self.lock:
            for session in self.sessions:
                session.write_note()
            for market, observation in self.markets.values():
                observation.close()
            self.markets.clear()
            feeds, self.feeds = list(self.feeds.values()), {}
        for feed in feeds:
            feed.close()
        try:
            self.store.flush(LOCKSTEP_WAIT)
        except self.store_ops.StoreError as exc:
            self.failed(exc)
        finally:
            self.store.close()

    def failed(self, exc: Exception) -> None:
        """The store cannot write any more (any thread, once): from now on every request is
        refused as by a lost front (-1) and no tick is matched; each session is told with
        ``OnFrontDisconnected``, as when a front goes away."""
        if self.failure is not None:
            return
        self.failure = exc
        log.error("counter %s: %s; the trader's sessions are disconnected and nothing more is taken: stop the "
                  "programs, fix the database and start again", self.book, exc)
        for session in list(self.sessions):
            session.post("OnFrontDisconnected", REASON_READ_FAILED)

    def terms_of(self, instrument_id: str, market: Any = None) -> Terms | None:
        """The terms of ``instrument_id`` if the source lists it (or, when the source lists
        nothing, if ctpshim knows the ID); None for an unknown instrument."""
        found = self.terms.get(instrument_id, False)
        if found is not False:
            return found  # type: ignore[return-value]
        info = None
        listed = tuple(getattr(market, "instruments", ()) or ()) if market is not None else ()
        if listed:
            info = next((i for i in listed if i.instrument_id == instrument_id), None)
        recorded = market is not None and str(getattr(market, "url", "")).lower().startswith("replay:")
        if info is None and instrument_id and not recorded:
            # Any contract a live or simulated source can tick, as SimNow takes every listed one;
            # a recording has only what it recorded.
            info = parse_info(instrument_id)
        terms = terms_for(info, self.rate_table, self.settings.rate_level) if info is not None else None
        if terms is not None or listed:
            self.terms[instrument_id] = terms
        return terms

    def now(self) -> datetime:
        """Feed time: the latest observed tick's, else China time now."""
        latest = self.latest
        moment = _tick_moment(latest) if latest is not None else None
        return moment or clock.now()

    def book_of(self, instrument: str) -> tuple[matching.Book, matching.TickUse] | tuple[None, None]:
        """The Book of the instrument's latest tick and the lots orders took from it (None before a tick)."""
        tick = self.ticks.get(instrument)
        if tick is None:
            return None, None
        made = self.books.get(instrument)
        if made is None or made[0] is not tick:
            made = self.books[instrument] = (tick, matching.Book.from_tick(tick), matching.TickUse())
        return made[1], made[2]

    def mark(self, account: Account, also: str = "") -> None:
        """Mark the account's positions (and ``also``, an instrument about to be traded) to the
        latest ticks: done when the account's figures are read or change."""
        ledger = account.ledger
        instruments = ledger.instruments()
        if also and also not in instruments:
            instruments.append(also)
        for instrument in instruments:
            tick = self.ticks.get(instrument)
            if tick is None or tick.TradingDay != account.trading_day:
                continue  # an earlier day's tick: the settlement price marks the position now
            terms = self.terms_of(instrument)
            if terms is not None:
                ledger.mark(terms, tick.LastPrice, tick.PreSettlementPrice, trading_day=tick.TradingDay)

    def _track(self, account: Account, order: Order) -> None:
        """Keep the index of alive orders by instrument up to date."""
        alive = self.resting.setdefault(order.InstrumentID, {})
        if order.alive:
            alive[order.key] = order
        else:
            alive.pop(order.key, None)

    # -- sessions -------------------------------------------------------------------------------

    def login(self, session: TraderSession, broker_id: str, investor_id: str, trading_day: str,
              market: Any) -> tuple[Account, int]:
        """Log ``session`` in to the account (made with ``trader.balance`` if new); returns it and
        the MaxOrderRef to answer.  The private flow replay is posted by :meth:`replay`."""
        from .ledger import Ledger

        with self.lock:
            self._watch(market)
            if self.latest is None:
                self._change_day(trading_day)
            key = (broker_id, investor_id)
            account = self.accounts.get(key)
            box = Outbox(self)
            if account is None:
                ledger = Ledger(broker_id, investor_id, balance=self.settings.balance, trading_day=self.trading_day)
                account = self.accounts[key] = Account(broker_id, investor_id, ledger, self.trading_day)
                box.changed(account)
                box.equity(account, self.now().strftime("%H:%M:%S"))  # the curve starts at the balance
                log.info("counter %s: new account %s/%s with %.2f", self.settings.book, broker_id, investor_id,
                         self.settings.balance)
            elif account.trading_day < self.trading_day:
                held = account.ledger.instruments()
                if held and market is not None and not any(i in self.ticks for i in held):
                    self._settle_on_ticks(account, self.trading_day, held, market)
                else:
                    self._settle_account(account, self.trading_day, box)
            if session.account is not None and session in session.account.sessions:
                session.account.sessions.remove(session)
            session.account = account
            session.market = market
            session.refs = checks.OrderRefs()
            session.resume_key = f"{self.settings.counter_key[0]}|{self.settings.book}|{broker_id}|{investor_id}"
            account.sessions.append(session)
            if session not in self.sessions:
                self.sessions.append(session)
            box.send()
            return account, max(account.max_order_ref, 1), max(account.trading_day, self.trading_day)

    def replay(self, session: TraderSession) -> None:
        """Post the private flow of the day per the session's SubscribePrivateTopic mode (after
        the login reply it follows)."""
        with self.lock:
            account = session.account
            if account is None or session.resume in (QUICK, NONE):
                return
            start = 0
            if session.resume == RESUME:
                noted = _read_resume(_resume_path(session.front)).get(session.resume_key) or {}
                if noted.get("trading_day") == account.trading_day:
                    start = int(noted.get("seq", 0))
            entries = [entry for entry in account.flow if entry[0] > start]
            module = session.module

            def after() -> None:
                for _, callback, values in entries:
                    session.post(callback, make_field(module, _CLASS_OF[callback], values))
                if entries:
                    session.received(account.trading_day, entries[-1][0])

            self.after_commit(after)

    def leave(self, session: TraderSession, released: bool = False) -> None:
        """The API logged out, or (``released``) was released: then nothing more is posted to it
        or written under its flow path."""
        with self.lock:
            session.write_note()
            if released:
                session.closed = True
            account = session.account
            if account is not None and session in account.sessions:
                account.sessions.remove(session)
                if not account.sessions:
                    # Its last session: the stored state is marked to the latest ticks (what
                    # `ctpshim account show` reads).
                    self.mark(account)
                    box = Outbox(self)
                    box.changed(account)
                    box.send()
            session.account = None
            if session in self.sessions:
                self.sessions.remove(session)
            market, session.market = session.market, None
            if market is not None and not any(other.market is market for other in self.sessions):
                self._unwatch(market)
            if not self.sessions:
                # No program left: a later run on the market starts from its own ticks.
                self.books.clear()
                self.ticks.clear()
                self.unpriced.clear()
                self.latest = None

    def confirm(self, account: Account) -> tuple[str, str]:
        """ReqSettlementInfoConfirm: (ConfirmDate, ConfirmTime)."""
        with self.lock:
            # ConfirmDate is the trading day confirmed (what programs compare with GetTradingDay),
            # in the Rsp, the query and the store alike; the time is the feed's.
            account.confirmed = max(account.trading_day, self.trading_day)  # also while its day end waits
            account.confirm_time = self.now().strftime("%H:%M:%S")
            box = Outbox(self)
            box.changed(account)
            box.ops.append(self.put("confirmations", (*account.key, account.trading_day),
                                    {"ConfirmDate": account.confirmed, "ConfirmTime": account.confirm_time}))
            box.send()
            return account.confirmed, account.confirm_time

    def after_commit(self, post: Callable[[], None]) -> None:
        """Run ``post`` once everything queued so far is committed (answers that must follow the
        callbacks already on their way)."""
        try:
            self.writes += 1
            self.store.write([], after=post)
        except self.store_ops.StoreError as exc:
            self.failed(exc)

    # -- orders ---------------------------------------------------------------------------------

    def insert(self, session: TraderSession, values: dict[str, Any], echo: Callable[[], Any], request_id: int,
               rsp_info: Callable[[CtpError, str], Any], market: Any) -> None:
        """ReqOrderInsert of ``session`` (logged in) with the input order's ``values``.

        An order of an instrument no tick of which was seen yet (a td-only program's first) is
        taken when the first tick comes (the counter's feed brings it), as if it had travelled
        until then: its times, the session and price checks and its fills are that tick's.  Its
        OrderRef is reserved at once.  Without a tick within ``FIRST_TICK_WAIT`` it is taken
        without a book."""
        with self.lock:
            account = session.account
            assert account is not None
            self._watch(market)
            day = getattr(market, "trading_day", None)
            if day and self.latest is None:
                # A quiet source (no tick observed yet): its own day.  Once ticks come, theirs
                # alone: the source may run ahead of what the programs were given.
                self._change_day(day)
            instrument = values.get("InstrumentID", "")
            terms = self.terms_of(instrument, market)
            refs = session.refs
            if terms is not None and market is not None and instrument not in self.ticks:
                resolved = refs.resolve(values.get("OrderRef", "") or "")
                if resolved is not None:
                    refs.use(resolved)  # the session's next orders must be above it
                    account.max_order_ref = max(account.max_order_ref, int(resolved.strip()))
                    waiting_refs = checks.OrderRefs(highest=int(resolved.strip()) - 1)
                    held = dict(values, OrderRef=resolved)

                    def arrive() -> None:
                        self._insert(session, held, echo, request_id, rsp_info, market, waiting_refs)

                    if self.when_ticked(instrument, market, arrive, FIRST_TICK_WAIT):
                        return
                    refs = waiting_refs
                    values = held
            self._insert(session, values, echo, request_id, rsp_info, market, refs)

    def _insert(self, session: TraderSession, values: dict[str, Any], echo: Callable[[], Any], request_id: int,
                rsp_info: Callable[[CtpError, str], Any], market: Any, refs: checks.OrderRefs) -> None:
        with self.lock:
            account = session.account
            if account is None:
                log.info("counter: an order waiting for its first tick was dropped: its session logged out")
                return
            instrument = values.get("InstrumentID", "")
            terms = self.terms_of(instrument, market)
            if terms is not None:
                self._follow(market, instrument)
            book, consumed = self.book_of(instrument)
            self.mark(account, instrument if terms is not None else "")
            box = Outbox(self)
            reject = checks.check_insert(
                values, confirmed=account.confirmed == account.trading_day, session_refs=refs, terms=terms,
                ledger=account.ledger, exchange_ids=EXCHANGE_IDS, account=account.key, book=book,
                trading_day=day_or_none(account.trading_day) if self.settings.real_dates else None)
            if reject is not None:
                log.info("counter: order refused (%d %s): %s", reject.error.code, reject.error.name, reject.detail)
                info = rsp_info(reject.error, reject.message)
                box.to([session], "OnRspOrderInsert", echo(), info, request_id, True)
                box.to([session], "OnErrRtnOrderInsert", echo(), info)
                box.send()
                return
            assert terms is not None
            order_ref = refs.resolve(values.get("OrderRef", "") or "")
            assert order_ref is not None
            refs.use(order_ref)
            account.max_order_ref = max(account.max_order_ref, int(order_ref.strip()))
            # The order is the session's account's, whatever the input's members say (CTP_SEMANTICS 7.3).
            values = dict(values, RequestID=request_id, BrokerID=account.BrokerID, InvestorID=account.InvestorID)
            now = self.now()
            order = orders.new_order(values, front_id=session.front.front_id, session_id=session.front.session_id,
                                     order_ref=order_ref, trading_day=account.trading_day, now=now, terms=terms,
                                     ids=self.ids)
            account.ledger.freeze(order.key, terms, order.Direction, order.offset, order.hedge,
                                  checks.cost_price(values, book, terms), order.VolumeTotalOriginal)
            # Before the first tick the feed's time is unknown: the session is not checked then.
            events = matching.on_insert(order, book, terms, self.rules, self.ids, now,
                                        consumed if consumed is not None else matching.TickUse(),
                                        hours=self.settings.hours and self.latest is not None)
            account.add_order(order)
            if book is None and order.alive:
                self.unpriced.setdefault(instrument, []).append(order)
            self._apply(events, terms, box)
            box.send()

    def action(self, session: TraderSession, values: dict[str, Any], echo: Callable[[], Any],
               action_echo: Callable[[], Any], request_id: int, rsp_info: Callable[[CtpError, str], Any]) -> None:
        """ReqOrderAction of ``session`` (logged in)."""
        with self.lock:
            account = session.account
            assert account is not None
            key = checks.action_lookup(values, front_id=session.front.front_id, session_id=session.front.session_id)
            order = account.index.get(key)
            box = Outbox(self)
            reject = checks.check_action(values, order=order, account=account.key)
            if reject is not None:
                info = rsp_info(reject.error, reject.message)
                box.to([session], "OnRspOrderAction", echo(), info, request_id, True)
                box.to([session], "OnErrRtnOrderAction", action_echo(), info)
                box.send()
                return
            assert order is not None
            terms = self.terms_of(order.InstrumentID)
            self._apply(orders.cancel(order, self.now(), self.ids), terms, box)
            box.send()

    def _apply(self, events: Iterable[Any], terms: Terms | None, box: Outbox) -> None:
        """Book the events of orders (of any accounts), queue their reports and save the orders."""
        touched: dict[int, tuple[Account, Order]] = {}
        for event in events:
            if isinstance(event, OrderReport):
                values = event.values
                account = self.accounts[(values["BrokerID"], values["InvestorID"])]
                order = account.orders.get(values["BrokerOrderSeq"])
                box.report(account, "OnRtnOrder", values)
            else:
                order = event.order
                account = self.accounts[(order.BrokerID, order.InvestorID)]
                if isinstance(event, Release):
                    account.ledger.release(order.key, event.volume)
                elif isinstance(event, TradeReport):
                    trade = event.trade
                    account.ledger.fill(order.key, terms or self.terms_of(order.InstrumentID), trade)
                    account.trades.append(trade)
                    box.ops.append(self.put(
                        "trades", (trade.BrokerID, trade.InvestorID, trade.ExchangeID, trade.TradeID), trade.to_state()))
                    box.equity(account, trade.TradeTime)
                    box.report(account, "OnRtnTrade", trade.trade_values())
            if order is not None:
                touched[order.key] = (account, order)
        for account, order in touched.values():
            self._track(account, order)
            box.changed(account)
            if order.OrderSysID:
                account.index[("sys", order.ExchangeID, order.OrderSysID.strip())] = order
            box.ops.append(self.put("orders", (order.BrokerID, order.InvestorID, order.key), order.to_state()))

    # -- the market -----------------------------------------------------------------------------

    def _watch(self, market: Any) -> None:
        if market is None or id(market) in self.markets:
            return
        self.markets[id(market)] = (market, market.observe(self.observe))
        self.feeds[id(market)] = _Feed(market)
        # Ticks the programs were handed before the counter watched: the newest of each is the
        # book an order sent now meets (a program may have started its md API first).
        for dispatcher in market.delivering():
            dispatcher.post_mark(self._seed)

    def _seed(self, latest: dict[str, Any] | None) -> None:
        """On an md API's dispatcher: the newest ticks it had handed on when the counter began
        watching its market; kept where the counter has observed no tick since."""
        if not latest:
            return
        with self.lock:
            for instrument, tick in latest.items():
                if instrument not in self.ticks and tick.TradingDay >= self.trading_day:
                    self.ticks[instrument] = tick
                    if self.latest is None:
                        self.latest = tick

    def when_ticked(self, instrument: str, market: Any, callback: Callable[[], None], timeout: float) -> bool:
        """Call ``callback()`` (once) when the first tick of ``instrument`` is observed, or after
        ``timeout`` seconds; the counter's feed subscribes it if no program does.  False (and no
        call) when a tick is there already."""
        with self.lock:
            if instrument in self.ticks:
                return False
            self._watch(market)
            self._follow(market, instrument)
            waiter = _Waiter(callback)
            self.waiters.setdefault(instrument, []).append(waiter)
        timer = threading.Timer(timeout, waiter.fire)
        timer.daemon = True
        timer.start()
        return True

    def _unwatch(self, market: Any) -> None:
        watched = self.markets.pop(id(market), None)
        if watched is not None:
            watched[1].close()
        feed = self.feeds.pop(id(market), None)
        if feed is not None:
            feed.close()
            self.fed = {i: f for i, f in self.fed.items() if f is not feed}

    def _follow(self, market: Any, instrument: str) -> None:
        """Make sure the counter sees ``instrument``'s ticks on ``market``."""
        feed = self.feeds.get(id(market)) if market is not None else None
        if feed is not None:
            feed.want([instrument])
            if instrument in feed.ids:
                self.fed[instrument] = feed
                self.feeding = True

    def observe(self, tick: Any) -> None:
        """A tick an API object is about to hand its program (on that object's dispatcher thread).

        The counter's own feed is followed only for instruments no program's md API takes: the
        first tick of one from a program makes the feed let it go.

        In lockstep the reports of what this tick filled are handled by the programs (and what
        they sent in answer) before the tick itself is delivered: the two threads of a program
        then meet in the same order on every run."""
        if self.feeding:  # a feed of the counter's has started on some market
            instrument = tick.InstrumentID
            feed = self.fed.get(instrument)
            if feed is not None and feed.thread_id != threading.get_ident():
                feed.drop(instrument)
                self.fed.pop(instrument, None)
                with self.lock:  # the program's ticks from now on, even if behind the feed's
                    self.ticks.pop(instrument, None)
                    self.books.pop(instrument, None)
            elif feed is None and self._from_a_feed():
                return  # a feed's tick of an instrument a program's md API has now
        if self.settings.lockstep and self.failure is None:
            if self.writes != self.quiet_at:
                self._wait_quiet()
            if self._match(tick):
                self._wait_quiet()
        else:
            self._match(tick)

    def _from_a_feed(self) -> bool:
        ident = threading.get_ident()
        return any(feed.thread_id == ident for feed in list(self.feeds.values()))

    def _match(self, tick: Any) -> bool:
        """Take the tick as the instrument's latest, settle a new day, match the resting orders;
        whether anything was reported.  Cheap when the instrument has no resting order."""
        with self.lock:
            if self.failure is not None:
                return False
            instrument = tick.InstrumentID
            if self.feeding and instrument not in self.fed and self._from_a_feed():
                # The feed's tick was checked in observe() before a program's md API took the
                # instrument over: it may be ahead of the program's ticks, which would then be
                # ignored as older until they passed it.
                return False
            latest = self.ticks.get(instrument)
            if latest is tick:
                return False  # the same tick handed to a second program
            day = tick.TradingDay
            if latest is not None and day == latest.TradingDay:
                stamp, seen = _stamp(tick), _stamp(latest)
                if stamp < seen:
                    return False  # an API object behind another one hands on an older tick
                if stamp == seen:
                    # Nothing traded or moved since: not matched again (its lots were offered
                    # already), but kept: a closing snapshot adds the SettlementPrice.
                    self.ticks[instrument] = tick
                    made = self.books.get(instrument)
                    if made is not None and made[0] is latest:
                        self.books[instrument] = (tick, made[1], made[2])
                    return False
            if day and day > self.trading_day:
                self._change_day(day, tick)
            self.ticks[instrument] = tick
            self.latest = tick
            prices = self.prices
            if prices is not None:
                hourly = self.hourly.get(instrument)
                if hourly is None:
                    terms = self.terms_of(instrument)
                    hourly = self.hourly[instrument] = terms is not None and terms.settles_on_last_hour
                if hourly:
                    prices.observe(tick)
            resting = self.resting.get(instrument)
            waiting = list(resting.values()) if resting else []
            arrivals = False
            if self.waiters:
                for waiter in self.waiters.pop(instrument, ()):
                    arrivals = True
                    waiter.fire()  # orders and queries that waited for this first tick
            if not waiting:
                return arrivals
            terms = self.terms_of(instrument)
            if terms is None:
                return False
            previous = self.books.get(instrument)
            book, consumed = self.book_of(instrument)
            assert book is not None and consumed is not None
            box = Outbox(self)
            arrived = [o for o in self.unpriced.pop(instrument, ()) if o.alive]
            waiting = [o for o in waiting if o.alive and o not in arrived]
            if arrived:
                events = []
                for order in arrived:
                    for price, lots in matching.aggressive_fills(order, book, self.rules, consumed):
                        events.extend(orders.fill_events(order, price, lots, self.now(), terms, self.ids))
                self._apply(events, terms, box)
            if waiting:
                events = matching.on_tick(waiting, book, previous[1] if previous else None, terms, self.rules,
                                          self.ids, self.now(), consumed)
                self._apply(events, terms, box)
            return (box.send() and bool(box.private)) or arrivals

    def _wait_quiet(self) -> None:
        """Lockstep: wait until the store committed everything and every td API is idle."""
        deadline = time.monotonic() + LOCKSTEP_WAIT
        store = self.store
        for _ in range(LOCKSTEP_ROUNDS):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            written = self.writes
            try:
                store.flush(remaining)
            except self.store_ops.StoreError as exc:
                self.failed(exc)
                return
            busy = False
            for session in list(self.sessions):
                dispatcher = session.front.dispatcher
                if not dispatcher.wait_idle(0):
                    busy = True
                    dispatcher.wait_idle(max(deadline - time.monotonic(), 0))
            # A callback may have run (and sent an order) between the flush and the look: quiet
            # only when nothing was written since this round began either.
            if not busy and self.writes == written and not store.pending:
                self.quiet_at = written
                return
        log.warning("counter %s: the trader did not catch up within %.0f s (a slow callback?); the next tick "
                    "is matched anyway", self.settings.book, LOCKSTEP_WAIT)

    # -- the day end ----------------------------------------------------------------------------

    def _change_day(self, day: str, first: Any = None) -> None:
        """A new trading day of the market: settle every account (days only move forward);
        ``first`` is the new day's first tick, whose PreSettlementPrice is the exchange's figure."""
        if not day or day <= self.trading_day:
            return
        previous, self.trading_day = self.trading_day, day
        if not previous:
            return
        if self.prices is not None:
            # The day's cumulative Turnover and Volume are in each instrument's last tick of it.
            for instrument, tick in self.ticks.items():
                if not self.hourly.get(instrument):
                    self.prices.observe(tick)
            if first is not None:
                self.prices.observe(first)
        box = Outbox(self)
        for account in self.accounts.values():
            if account.trading_day != day:
                self._settle_account(account, day, box)
        box.send()
        if self.prices is not None:
            self.prices.reset(day)

    def _settle_on_ticks(self, account: Account, next_day: str, held: list[str], market: Any) -> None:
        """An account loaded on an earlier day than the market's, with no tick of what it holds
        yet (a restart across the day end): its day end waits (at most ``FIRST_TICK_WAIT``) for
        the new day's first tick of each instrument it holds, whose PreSettlementPrice is the
        exchange's settlement of the old day (SIM_TRADING.md 4.1)."""
        waiting = set(held)

        def settle() -> None:
            with self.lock:
                if account.trading_day >= next_day:
                    return
                tracker = _settlement_prices(account.trading_day)
                for instrument in held:
                    tick = self.ticks.get(instrument)
                    if tick is not None and tracker is not None:
                        tracker.observe(tick)
                prices = tracker.prices(held) if tracker is not None else {}
                box = Outbox(self)
                self._settle_account(account, next_day, box, prices)
                box.send()

        def one_more(instrument: str) -> Callable[[], None]:
            def arrived() -> None:
                waiting.discard(instrument)
                if not waiting:
                    settle()
            return arrived

        self._watch(market)
        for instrument in held:
            self._follow(market, instrument)
            self.waiters.setdefault(instrument, []).append(_Waiter(one_more(instrument)))
        timer = threading.Timer(FIRST_TICK_WAIT, settle)
        timer.daemon = True
        timer.start()

    def _settle_account(self, account: Account, next_day: str, box: Outbox,
                        prices: dict[str, float] | None = None) -> None:
        """End of ``account``'s trading day (SIM_TRADING.md 4.2): expire GFD orders, settle at
        the day's settlement prices (``prices``, else the day's tracker's), keep the statement,
        start ``next_day`` unconfirmed."""
        day = account.trading_day
        if next_day < day:
            log.warning("counter %s: the market's trading day %s is before account %s/%s's %s; the account is "
                        "not settled back in time (use another trader.book for an older recording)",
                        self.book, next_day, account.BrokerID, account.InvestorID, day)
            return
        now = self.now()
        for order in list(account.orders.values()):
            if order.alive:
                events = orders.expire(order, now, report_it=self.settings.expire_report, ids=self.ids)
                self._apply(events, self.terms_of(order.InstrumentID), box)
        self.mark(account)
        if prices is None:
            prices = self.prices.prices(account.ledger.instruments()) if self.prices is not None else {}
        summary = account.ledger.settle(prices, next_day, self.terms_of)
        text = _statement_text(summary)
        box.ops.append(self.put("statements", (account.BrokerID, account.InvestorID, day),
                                {"text": text, "summary": summary}))
        account.statements[day] = text
        account.trading_day = next_day
        box.equity(account, "15:00:00", day)  # the settled balance (marked at the settlement prices)
        for order in account.orders.values():
            self.resting.get(order.InstrumentID, {}).pop(order.key, None)
        account.orders.clear()
        account.index.clear()
        account.trades.clear()
        account.flow = []
        box.changed(account)

    def statement(self, account: Account, trading_day: str) -> str | None:
        """The statement text of ``trading_day`` (empty: the latest), or None."""
        found = self.statement_of(account, trading_day)
        return found[1] if found else None

    def statement_of(self, account: Account, trading_day: str) -> tuple[str, str] | None:
        """(its trading day, the text) of the statement of ``trading_day`` (empty: the latest)."""
        if trading_day in account.statements:
            return trading_day, account.statements[trading_day]
        if not trading_day and account.statements:
            latest = max(account.statements)
            return latest, account.statements[latest]
        rows = self.store.statements(self.book, account.BrokerID, account.InvestorID, trading_day or None)
        return (rows[-1][0], rows[-1][1]["text"]) if rows else None

    # -- reading for the queries ----------------------------------------------------------------

    def read(self, reader: Callable[[], Any]) -> Any:
        """``reader()`` under the counter's lock (a consistent view for a query)."""
        with self.lock:
            return reader()


class _Waiter:
    """A callback run once: on the awaited tick or at its timeout, whichever comes first."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self.callback = callback
        self._lock = threading.Lock()
        self._fired = False

    def fire(self) -> None:
        """Run the callback unless it ran already."""
        with self._lock:
            if self._fired:
                return
            self._fired = True
        try:
            self.callback()
        except Exception:  # noqa: BLE001 - an answer's fault must not stop the tick
            log.exception("counter: answering after the first tick failed")


class _QuietSpi:
    """The Spi of the counter's own feed: every callback does nothing (the counter observes the
    ticks through ``Market.observe`` before this is called)."""

    def OnRtnDepthMarketData(self, tick: Any) -> None:
        return None

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args: None


class _Feed:
    """The counter's own subscription on one market, for instruments it must see (resting
    orders, positions) that no program's md API subscribes: a sink and a dispatcher whose ticks
    the counter observes like a program's."""

    def __init__(self, market: Any) -> None:
        from ..runtime import io_loop
        from ..runtime.dispatcher import Dispatcher
        from ..runtime.sinks import BackpressureSink

        self.market = market
        self.ids: set[str] = set()
        self.dispatcher = Dispatcher("ctpshim-counter-feed", "CThostFtdcMdSpi")
        self.dispatcher.spi = _QuietSpi()
        self.dispatcher.tap = market
        self.sink = BackpressureSink("ctpshim-counter-feed", self.dispatcher)
        self._call = io_loop.call_soon
        self._started = False  # attached only when needed: a sink that wants ticks starts the source

    def _attach(self) -> None:
        try:
            self.market.attach(self.sink)
        except RuntimeError:  # the market closed meanwhile
            log.debug("counter feed: the market closed before it attached")

    @property
    def thread_id(self) -> int | None:
        """The ident of the feed's dispatcher thread (None before it starts)."""
        thread = self.dispatcher._thread
        return thread.ident if thread is not None else None

    def drop(self, instrument: str) -> None:
        """A program's md API takes ``instrument`` now: the feed lets it go (the counter then
        follows the program's ticks, never a feed running ahead of them)."""
        self.ids.discard(instrument)
        self.sink.mute([instrument])
        self._call(self.market.unsubscribe, self.sink, [instrument])

    def want(self, ids: Iterable[str]) -> None:
        """Subscribe these instruments (once each) unless a program's md API already does."""
        wanted = self.market.delivered_ids()
        new = [i for i in ids if i not in self.ids and i not in wanted]
        if new:
            if not self._started:
                self._started = True
                self.dispatcher.start()
                self._call(self._attach)
            self.ids.update(new)
            self._call(self.market.subscribe, self.sink, new)

    def close(self) -> None:
        """Leave the market."""
        if self._started:
            self._call(self.market.detach, self.sink)
            self.dispatcher.stop()


_STAMP_AT: dict[type, tuple[int, int, int, int]] = {}


def _stamp(tick: Any) -> tuple[Any, ...]:
    """(ActionDay, UpdateTime, UpdateMillisec, Volume): orders the ticks of an instrument (read by
    position: this runs for every observed tick)."""
    cls = type(tick)
    at = _STAMP_AT.get(cls)
    if at is None:
        try:
            index = member_index(cls)
            at = _STAMP_AT[cls] = (index["ActionDay"], index["UpdateTime"], index["UpdateMillisec"],
                                   index["Volume"])
        except (KeyError, TypeError, AttributeError):  # not a field class: by name
            return (tick.ActionDay, tick.UpdateTime, tick.UpdateMillisec, tick.Volume)
    values = values_of(tick)
    return (values[at[0]], values[at[1]], values[at[2]], values[at[3]])


def _settlement_prices(trading_day: str | None = None) -> Any:
    from .settlement import SettlementPrices

    return SettlementPrices(trading_day)


def _statement_text(summary: dict[str, Any]) -> str:
    try:
        from . import statement
    except ImportError:  # pragma: no cover - the statement module is part of the package
        log.error("the settlement statement module is missing; the day's statement is empty")
        return ""
    return statement.render(summary)
