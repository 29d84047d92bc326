"""The simulated counter through the real tdapi (and mdapi): orders against the feed the program
is given, cancels, CTP-layer rejects to the requester only, private reports to every session of
an account, restart from the SQLite file with the topic resume modes, login replies."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import zlib
from pathlib import Path
from typing import Any

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.broker import counter as counter_module
from ctpshim.runtime.dispatcher import Dispatcher
from tests.broker.spis import WaitingTraderSpi

FRIDAY_MORNING = "2026-11-20T09:35"
BROKER, USER = "9999", "000001"
WAIT = 10.0


def front(db: Path, *extra: str, speed: str = "max") -> str:
    """A sim:// front (rb starts at 3100: its limits are 2883 and 3317).  A td-only program at
    speed=max lets the counter's feed run the market as fast as it goes (days pass in a blink):
    tests that wait on a td-only program use real time."""
    # Its own seed per database: a test never meets a market a previous test left behind.
    seed = zlib.crc32(str(db.parent).encode())
    settings = "&".join((f"start={FRIDAY_MORNING}", "instruments=rb2701,m2701", "price=rb2701:3100",
                         f"speed={speed}", f"seed={seed}", f"trader.db={db}", "trader.flow_control=false", *extra))
    return f"sim://?{settings}"


@pytest.fixture(autouse=True)
def _fresh_counters():
    yield
    counter_module.forget_counters()


class Trader:
    """One tdapi object: created, logged in and (optionally) confirmed; released by the fixture."""

    def __init__(self, flow: str, address: str, resume: int | None = None) -> None:
        os.makedirs(os.path.dirname(flow), exist_ok=True)
        self.api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow)
        self.spi = WaitingTraderSpi()
        self.api.RegisterSpi(self.spi)
        if resume is not None:
            self.api.SubscribePrivateTopic(resume)
        self.api.RegisterFront(address)
        self.api.Init()
        self.spi.wait("OnFrontConnected")
        self.request = 0

    def next_id(self) -> int:
        self.request += 1
        return self.request

    def login(self) -> Any:
        field = tdapi.CThostFtdcReqUserLoginField()
        field.BrokerID, field.UserID = BROKER, USER
        assert self.api.ReqUserLogin(field, self.next_id()) == 0
        return self.spi.wait("OnRspUserLogin")[-1]

    def confirm(self) -> None:
        field = tdapi.CThostFtdcSettlementInfoConfirmField()
        field.BrokerID, field.InvestorID = BROKER, USER
        count = len(self.spi.all("OnRspSettlementInfoConfirm"))
        assert self.api.ReqSettlementInfoConfirm(field, self.next_id()) == 0
        self.spi.wait("OnRspSettlementInfoConfirm", count + 1)

    def order(self, price: float, volume: int = 1, direction: str = "0", offset: str = "0", ref: str = "",
              instrument: str = "rb2701", exchange: str = "SHFE", **extra: Any) -> int:
        field = tdapi.CThostFtdcInputOrderField()
        field.BrokerID, field.InvestorID, field.UserID = BROKER, USER, USER
        field.InstrumentID, field.ExchangeID, field.OrderRef = instrument, exchange, ref
        field.OrderPriceType, field.Direction, field.CombOffsetFlag, field.CombHedgeFlag = "2", direction, offset, "1"
        field.LimitPrice, field.VolumeTotalOriginal = price, volume
        field.TimeCondition, field.VolumeCondition, field.ContingentCondition = "3", "1", "1"
        field.ForceCloseReason = "0"
        for name, value in extra.items():
            setattr(field, name, value)
        request_id = self.next_id()
        assert self.api.ReqOrderInsert(field, request_id) == 0
        return request_id

    def cancel(self, order_ref: str, front_id: int = 0, session_id: int = 0) -> None:
        field = tdapi.CThostFtdcInputOrderActionField()
        field.BrokerID, field.InvestorID, field.UserID = BROKER, USER, USER
        field.InstrumentID, field.ExchangeID, field.OrderRef = "rb2701", "SHFE", order_ref
        field.FrontID, field.SessionID, field.ActionFlag = front_id, session_id, "0"
        assert self.api.ReqOrderAction(field, self.next_id()) == 0

    def query(self, name: str, **members: Any) -> list[Any]:
        field = getattr(tdapi, f"CThostFtdcQry{name}Field")()
        for member, value in members.items():
            setattr(field, member, value)
        callback = f"OnRspQry{name}"
        before = len(self.spi.all(callback))
        request_id = self.next_id()
        assert getattr(self.api, f"ReqQry{name}")(field, request_id) == 0
        with self.spi.cond:
            assert self.spi.cond.wait_for(
                lambda: any(e == callback and a[2] == request_id and a[3] for e, a in self.spi.events), WAIT)
        return [args[0] for args in self.spi.all(callback)[before:] if args[2] == request_id]


@pytest.fixture
def traders(tmp_path):
    made: list[Trader] = []

    def make(address: str, flow: str = "a/", resume: int | None = None) -> Trader:
        trader = Trader(str(tmp_path / "flow" / flow), address, resume)
        made.append(trader)
        return trader

    yield make
    for trader in made:
        trader.api.Release()


def statuses(spi: WaitingTraderSpi) -> list[tuple[str, str]]:
    return [(o[0].OrderStatus, o[0].StatusMsg) for o in spi.all("OnRtnOrder")]


# -- orders -------------------------------------------------------------------------------------


def test_an_order_before_confirming_is_refused_with_42_to_the_requester_only(traders, tmp_path):
    address = front(tmp_path / "t.sqlite")
    first, second = traders(address, "a/"), traders(address, "b/")
    first.login()
    second.login()
    request_id = first.order(2900.0, ref="1")
    rsp, info, got_id, last = first.spi.wait("OnRspOrderInsert")[0]
    assert (info.ErrorID, info.ErrorMsg, got_id, last) == (42, "CTP:结算结果未确认", request_id, True)
    assert rsp.OrderRef == "1" and rsp.LimitPrice == 2900.0
    assert first.spi.wait("OnErrRtnOrderInsert")[0][1].ErrorID == 42
    # CTP-layer rejects are the requester's alone; the other session hears nothing of it.
    second.confirm()
    assert "OnRspOrderInsert" not in second.spi.names() and "OnErrRtnOrderInsert" not in second.spi.names()
    assert first.spi.all("OnRtnOrder") == []


def test_a_resting_order_then_a_cancel_reach_every_session_of_the_account(traders, tmp_path):
    address = front(tmp_path / "t.sqlite", speed="1")
    first, second = traders(address, "a/"), traders(address, "b/")
    login = first.login()
    second.login()
    first.confirm()
    first.order(2900.0, ref="7")  # far below the market: rests (SHFE: answered after matching)
    first.spi.wait("OnRtnOrder", 2)
    assert statuses(first.spi) == [("a", "报单已提交"), ("3", "未成交")]
    resting = first.spi.all("OnRtnOrder")[-1][0]
    assert resting.OrderRef == "7" and len(resting.OrderSysID) == 12 and resting.OrderSysID.strip()
    assert (resting.FrontID, resting.SessionID) == (login[0].FrontID, login[0].SessionID)
    # SFIT's "accepted then cancelled": the state repeated with OrderSubmitStatus 1, then 已撤单.
    first.cancel("7")
    first.spi.wait("OnRtnOrder", 4)
    reports = [o[0] for o in first.spi.all("OnRtnOrder")]
    assert [(o.OrderStatus, o.OrderSubmitStatus) for o in reports[2:]] == [("3", "1"), ("5", "3")]
    assert reports[3].StatusMsg == "已撤单" and reports[3].VolumeTotal == 1
    # The other session of the account gets the same private reports, in the same order.
    second.spi.wait("OnRtnOrder", 4)
    assert statuses(second.spi) == statuses(first.spi)
    # Cancelling it again: 26, through OnRspOrderAction and OnErrRtnOrderAction.
    first.cancel("7")
    info = first.spi.wait("OnRspOrderAction")[0][1]
    assert (info.ErrorID, info.ErrorMsg) == (26, "CTP:报单已全成交或已撤销，不能再撤")
    assert first.spi.wait("OnErrRtnOrderAction")[0][0].OrderRef == "7"
    # The frozen money came back.
    account = first.query("TradingAccount")[0]
    assert account.FrozenMargin == 0 and account.FrozenCommission == 0 and account.Available == 10_000_000


def test_an_unknown_order_cannot_be_cancelled(traders, tmp_path):
    trader = traders(front(tmp_path / "t.sqlite"))
    trader.login()
    trader.confirm()
    trader.cancel("99")
    info = trader.spi.wait("OnRspOrderAction")[0][1]
    assert (info.ErrorID, info.ErrorMsg) == (25, "CTP:撤单找不到相应报单")


class Strategy(mdapi.CThostFtdcMdSpi):
    """md side of a program: on the first tick after ``armed`` it buys at 10 ticks above the ask."""

    def __init__(self, trader: Trader) -> None:
        super().__init__()
        self.trader = trader
        self.api: Any = None
        self.armed = threading.Event()
        self.sent = threading.Event()
        self.tick: Any = None

    def OnFrontConnected(self) -> None:
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

    def OnRspUserLogin(self, *args: Any) -> None:
        self.api.SubscribeMarketData([b"rb2701"], 1)

    def OnRtnDepthMarketData(self, tick: Any) -> None:
        if self.armed.is_set() and not self.sent.is_set() and tick.AskVolume1 >= 2:
            self.tick = {name: getattr(tick, name) for name in
                         ("AskPrice1", "AskVolume1", "UpdateTime", "TradingDay", "ActionDay")}
            self.trader.order(tick.AskPrice1 + 10, volume=2, ref="1")
            self.sent.set()


def test_a_crossing_order_fills_at_the_ask_of_the_tick_the_program_was_given(traders, tmp_path, flow_dir):
    address = front(tmp_path / "t.sqlite")
    trader = traders(address)
    trader.login()
    trader.confirm()
    strategy = Strategy(trader)
    md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + "md_")
    strategy.api = md
    md.RegisterSpi(strategy)
    md.RegisterFront(address)
    md.Init()
    try:
        strategy.armed.set()
        assert strategy.sent.wait(WAIT)
        trade = trader.spi.wait("OnRtnTrade")[0][0]
        # No look-ahead: the price is that tick's best ask (2 lots fit in its displayed volume).
        assert (trade.Price, trade.Volume, trade.Direction, trade.OffsetFlag) == (strategy.tick["AskPrice1"], 2, "0", "0")
        assert trade.TradeTime == strategy.tick["UpdateTime"] and trade.TradingDay == "20261120"
        assert len(trade.TradeID) == 12 and trade.OrderRef == "1"
        # SHFE immediate full fill: Unknown, Unknown, 全部成交报单已提交 (still submit status 0), then the trade.
        assert statuses(trader.spi) == [("a", "报单已提交"), ("a", "报单已提交"), ("0", "全部成交报单已提交")]
        names = [n for n in trader.spi.names() if n in ("OnRtnOrder", "OnRtnTrade")]
        assert names == ["OnRtnOrder", "OnRtnOrder", "OnRtnOrder", "OnRtnTrade"]
        positions = trader.query("InvestorPosition", InstrumentID="rb2701")
        long = [p for p in positions if p.PosiDirection == "2"]
        assert sum(p.Position for p in long) == 2 and sum(p.TodayPosition for p in long) == 2
        # Margin at the open price: 2 lots x price x 10 x 0.16 (SimNow's rb rate, SIM_TRADING.md 3.3).
        assert sum(p.UseMargin for p in long) == pytest.approx(2 * trade.Price * 10 * 0.16)
        account = trader.query("TradingAccount")[0]
        assert account.CurrMargin == pytest.approx(2 * trade.Price * 10 * 0.16)
        assert account.Commission == pytest.approx(2 * trade.Price * 10 * 1e-4, rel=1e-6)
        orders = trader.query("Order")
        assert [(o.OrderStatus, o.VolumeTraded) for o in orders] == [("0", 2)]
        assert [t.TradeID for t in trader.query("Trade")] == [trade.TradeID]
    finally:
        md.Release()


# -- restart, topic modes, login ------------------------------------------------------------------


def _rest_one_and_cancel(trader: Trader, ref: str) -> None:
    count = len(trader.spi.all("OnRtnOrder"))
    trader.order(2900.0, ref=ref)
    trader.spi.wait("OnRtnOrder", count + 2)
    trader.cancel(ref)
    trader.spi.wait("OnRtnOrder", count + 4)


def test_a_new_api_finds_the_days_orders_and_the_topic_modes_replay_as_ctp(traders, tmp_path):
    address = front(tmp_path / "t.sqlite", "interval=60", speed="1")  # a market that holds still
    first = traders(address, "a/")
    first.login()
    first.confirm()
    _rest_one_and_cancel(first, "5")
    first.api.Release()
    counter_module.forget_counters()  # as a new process would: everything comes from the file

    restart = traders(address, "r/", resume=tdapi.THOST_TERT_RESTART)
    login = restart.login()
    assert login[0].MaxOrderRef == "5" and login[1].ErrorID == 0
    restart.spi.wait("OnRtnOrder", 4)
    assert statuses(restart.spi) == statuses(first.spi)
    assert [o.OrderStatus for o in restart.query("Order")] == ["5"]

    quick = traders(address, "q/", resume=tdapi.THOST_TERT_QUICK)
    quick.login()
    quick.confirm()  # confirmed before: harmless; and nothing of the past was replayed before it answered
    assert quick.spi.all("OnRtnOrder") == []

    # RESUME (the default) from the flow path "a/": it was sent all 4 reports, so nothing again...
    resumed = traders(address, "a/")
    resumed.login()
    resumed.confirm()
    assert resumed.spi.all("OnRtnOrder") == []
    # ... and a new report reaches it live; from a fresh flow path RESUME replays everything.
    _rest_one_and_cancel(resumed, "6")
    fresh = traders(address, "f/")
    fresh.login()
    fresh.spi.wait("OnRtnOrder", 8)
    assert [o[0].OrderRef.strip() for o in fresh.spi.all("OnRtnOrder")] == ["5"] * 4 + ["6"] * 4


def test_order_refs_must_increase_within_a_session(traders, tmp_path):
    trader = traders(front(tmp_path / "t.sqlite", speed="1"))
    trader.login()
    trader.confirm()
    _rest_one_and_cancel(trader, "10")
    trader.order(2900.0, ref="10")
    info = trader.spi.wait("OnRspOrderInsert")[0][1]
    assert (info.ErrorID, info.ErrorMsg) == (22, "CTP:报单错误：不允许重复报单")
    trader.order(2900.0, ref="")  # blank: assigned, right-aligned in 12 characters
    trader.spi.wait("OnRtnOrder", 6)
    assert trader.spi.all("OnRtnOrder")[-1][0].OrderRef == "          11"


RESTARTED = """
import sys, threading
from ctpshim import tdapi
spi_class = type("Spi", (tdapi.CThostFtdcTraderSpi,), {})
done = threading.Event()
def connected(self):
    field = tdapi.CThostFtdcReqUserLoginField(); field.BrokerID, field.UserID = "9999", "000001"
    api.ReqUserLogin(field, 1)
def logged_in(self, rsp, info, request_id, last):
    print("login", info.ErrorID, rsp.MaxOrderRef, flush=True)
    api.ReqQryOrder(tdapi.CThostFtdcQryOrderField(), 2)
def order(self, order, info, request_id, last):
    print("order", order.OrderRef.strip() if order else None, order.OrderStatus if order else None, flush=True)
    if last: done.set()
spi_class.OnFrontConnected, spi_class.OnRspUserLogin, spi_class.OnRspQryOrder = connected, logged_in, order
api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(sys.argv[2])
spi = spi_class(); api.RegisterSpi(spi); api.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
api.RegisterFront(sys.argv[1]); api.Init()
print("done" if done.wait(20) else "timeout", flush=True)
api.Release()
"""


def test_a_new_process_finds_the_days_orders(traders, tmp_path):
    address = front(tmp_path / "t.sqlite", speed="1")
    trader = traders(address)
    trader.login()
    trader.confirm()
    _rest_one_and_cancel(trader, "3")
    trader.api.Release()
    counter_module.forget_counters()  # the store is flushed and closed
    script = tmp_path / "restarted.py"
    script.write_text(RESTARTED, encoding="utf-8")
    flow = tmp_path / "flow" / "p"
    flow.mkdir(parents=True)
    run = subprocess.run([sys.executable, str(script), address, str(flow) + os.sep], capture_output=True, text=True,
                         timeout=60)
    assert run.stdout.splitlines() == ["login 0 3", "order 3 5", "done"], run.stderr


def test_an_unusable_database_is_refused_at_registerfront_naming_the_file(tmp_path, flow_dir):
    bad = tmp_path / "t.sqlite"
    bad.write_bytes(b"this is not a SQLite database, and must not be reset" * 100)
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir)
    try:
        with pytest.raises(ValueError, match=f"{bad}: the file is corrupt or not an SQLite database"):
            api.RegisterFront(front(bad))
    finally:
        api.Release()
    assert bad.read_bytes().startswith(b"this is not a SQLite database")


def test_a_database_spoilt_after_registerfront_fails_the_login_with_89(tmp_path, flow_dir, caplog):
    bad = tmp_path / "t.sqlite"
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(flow_dir)
    spi = WaitingTraderSpi()
    api.RegisterSpi(spi)
    try:
        api.RegisterFront(front(bad))  # no file yet: fine
        bad.write_bytes(b"this is not a SQLite database, and must not be reset" * 100)
        api.Init()
        spi.wait("OnFrontConnected")
        field = tdapi.CThostFtdcReqUserLoginField()
        field.BrokerID, field.UserID = BROKER, USER
        api.ReqUserLogin(field, 1)
        info = spi.wait("OnRspUserLogin")[0][1]
        assert (info.ErrorID, info.ErrorMsg) == (89, "CTP:打开文件失败")
        assert any(str(bad) in record.getMessage() for record in caplog.records)
    finally:
        api.Release()
    assert bad.read_bytes().startswith(b"this is not a SQLite database")


# -- the dispatcher's idleness (lockstep) -----------------------------------------------------------


class _Slow:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.done = threading.Event()

    def OnSlow(self) -> None:
        self.started.set()
        self.release.wait(WAIT)
        self.done.set()


def test_wait_idle_returns_once_the_running_callback_and_the_queue_are_done():
    dispatcher = Dispatcher("test-idle", "CThostFtdcTraderSpi")
    spi = _Slow()
    dispatcher.spi = spi
    dispatcher.start()
    try:
        assert dispatcher.wait_idle(1.0)
        dispatcher.post("OnSlow")
        assert spi.started.wait(WAIT)
        assert dispatcher.wait_idle(0.05) is False  # a callback is running
        spi.release.set()
        assert dispatcher.wait_idle(WAIT) and spi.done.is_set()
    finally:
        dispatcher.stop()
        dispatcher.join(WAIT)


# -- the day end ------------------------------------------------------------------------------------


class DayWatcher(mdapi.CThostFtdcMdSpi):
    """md side: on the first tick buys 1 lot that crosses and rests one far below the bid; then
    tells when a tick of ``day`` arrives (the counter has settled by then: it observes each tick
    just before the program gets it)."""

    def __init__(self, trader: Trader, day: str) -> None:
        super().__init__()
        self.trader = trader
        self.api: Any = None
        self.day = day
        self.arrived = threading.Event()
        self.sent = False

    def OnFrontConnected(self) -> None:
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

    def OnRspUserLogin(self, *args: Any) -> None:
        self.api.SubscribeMarketData([b"rb2701"], 1)

    def OnRtnDepthMarketData(self, tick: Any) -> None:
        if not self.sent:
            self.sent = True
            self.trader.order(tick.AskPrice1 + 10, ref="1")
            self.trader.order(tick.BidPrice1 - 30, ref="2")
        if tick.TradingDay == self.day:
            self.arrived.set()


@pytest.mark.parametrize("report", [False, True], ids=["silent-expiry", "expire_report"])
def test_the_day_end_settles_expires_gfd_orders_and_asks_for_a_new_confirmation(traders, tmp_path, flow_dir, report):
    # Friday 14:59:30: the day session's last half minute, then the night session of Monday 20261123.
    extra = ("trader.expire_report=true",) if report else ()
    address = front(tmp_path / "t.sqlite", *extra).replace(FRIDAY_MORNING, "2026-11-20T14:59:30")
    trader = traders(address)
    trader.login()
    trader.confirm()
    watcher = DayWatcher(trader, "20261123")
    md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + "md_")
    watcher.api = md
    md.RegisterSpi(watcher)
    md.RegisterFront(address)
    md.Init()
    try:
        assert watcher.arrived.wait(30)
        assert trader.spi.wait("OnRtnTrade")[0][0].OrderRef.strip() == "1"
        first_day = [o[0] for o in trader.spi.all("OnRtnOrder") if o[0].TradingDay == "20261120"]
        assert [o.StatusMsg for o in first_day if o.OrderRef.strip() == "2"][:2] == ["报单已提交", "未成交"]
        reports = 5  # order 1: Unknown, Unknown, 全部成交报单已提交; order 2: Unknown, 未成交
        assert trader.query("Order") == [None]  # the new day has no orders yet
        if report:  # SIM_TRADING.md 4.3: optionally told, as 已撤单 of the old day
            expired = trader.spi.wait("OnRtnOrder", reports + 1)[reports][0]
            assert (expired.OrderRef.strip(), expired.OrderStatus, expired.StatusMsg) == ("2", "5", "已撤单")
            assert expired.TradingDay == "20261120"
            reports += 1
        assert len(trader.spi.all("OnRtnOrder")) == reports  # by default the GFD order expires without a callback
        held = [p for p in trader.query("InvestorPosition") if p is not None and p.Position]
        assert [(p.PosiDirection, p.PositionDate, p.Position, p.YdPosition, p.TodayPosition) for p in held] == \
            [("2", "2", 1, 1, 0)]  # SHFE: yesterday's record
        trader.order(2900.0, ref="3")
        assert trader.spi.wait("OnRspOrderInsert")[-1][1].ErrorID == 42
        pieces = trader.query("SettlementInfo", TradingDay="20261120")
        assert pieces and [p.SequenceNo for p in pieces] == list(range(1, len(pieces) + 1))
        text = b"".join(p.Content for p in pieces).decode("gb18030")
        assert "20261120" in text and "rb2701" in text
        trader.confirm()
        trader.order(2900.0, ref="4")
        trader.spi.wait("OnRtnOrder", reports + 2)
        assert trader.spi.all("OnRtnOrder")[-1][0].TradingDay == "20261123"
    finally:
        md.Release()


def test_a_second_run_in_the_same_process_starts_from_its_own_market(traders, tmp_path):
    times = []
    for run in ("first", "second"):
        trader = traders(front(tmp_path / f"{run}.sqlite"), f"{run}/")
        trader.login()
        trader.confirm()
        trader.order(3300.0, ref="1")  # td only: taken at the first tick the counter's feed brings
        trade = trader.spi.wait("OnRtnTrade")[0][0]
        # Sent before any tick: taken at the first tick, at its ask (not at 3300).
        assert 2883 <= trade.Price < 3300
        times.append(trade.TradeTime)
        trader.api.Release()
    assert times[0] == times[1] and "09:34:59" <= times[0] < "09:35:10"  # the start, not where run 1 left off


class FirstTick(mdapi.CThostFtdcMdSpi):
    def __init__(self) -> None:
        super().__init__()
        self.api: Any = None
        self.ticks: list[Any] = []
        self.first = threading.Event()

    def OnFrontConnected(self) -> None:
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

    def OnRspUserLogin(self, *args: Any) -> None:
        self.api.SubscribeMarketData([b"rb2701"], 1)

    def OnRtnDepthMarketData(self, tick: Any) -> None:
        self.ticks.append({name: getattr(tick, name) for name in ("AskPrice1", "AskVolume1", "UpdateTime")})
        if tick.UpdateTime >= "09:35:00":  # the snapshot before the start, then the start's tick
            self.first.set()


def test_an_order_meets_the_tick_the_program_was_given_before_the_trader_logged_in(traders, tmp_path, flow_dir):
    # One snapshot a minute in real time: the next tick is far away, so the order must meet the
    # one the md API handed on before the counter was watching the market.
    address = front(tmp_path / "t.sqlite", "interval=60", speed="1")
    watcher = FirstTick()
    md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(flow_dir + "md_")
    watcher.api = md
    md.RegisterSpi(watcher)
    md.RegisterFront(address)
    md.Init()
    try:
        assert watcher.first.wait(WAIT)
        trader = traders(address)
        trader.login()
        trader.confirm()
        given = watcher.ticks[-1]
        trader.order(given["AskPrice1"] + 5, ref="1")
        trade = trader.spi.wait("OnRtnTrade")[0][0]
        assert watcher.ticks[-1] is given  # no later tick came meanwhile
        assert (trade.Price, trade.TradeTime) == (given["AskPrice1"], given["UpdateTime"])
    finally:
        md.Release()


def test_a_database_that_cannot_be_written_disconnects_the_sessions_and_refuses_requests(traders, tmp_path):
    from ..conftest import file_cannot_grow

    db = tmp_path / "t.sqlite"
    trader = traders(front(db, speed="1"))
    trader.login()
    trader.confirm()
    wal = Path(str(db) + "-wal")
    with file_cannot_grow(wal):  # the next commit fails (EFBIG, as a full disk)
        trader.order(2900.0, ref="1")
        trader.spi.wait("OnFrontDisconnected")
    assert trader.spi.all("OnRtnOrder") == []  # nothing of what was not committed is told
    assert trader.api.ReqOrderInsert(tdapi.CThostFtdcInputOrderField(), 99) == -1
    assert trader.api.ReqQryTradingAccount(tdapi.CThostFtdcQryTradingAccountField(), 100) == -1
