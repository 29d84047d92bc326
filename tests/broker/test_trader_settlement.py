"""End of day through the public API (issue 15 item 4; SIM_TRADING.md 4.2-4.4).

A program with a real td and md API trades on ``sim://?speed=max&hours=real`` in the last
seconds of Friday 2026-11-20's day session: rb2701 (SHFE, with a night session) and jd2701 (DCE,
day session only).  The market runs on into Friday night, which is the first session of Monday
20261123's trading day; the md callback of the first night tick holds the program there (the
counter observes each tick before the program gets it, so the day end has happened by then and
nothing more is matched while the callback waits).  A second program, in new API objects on
the same database after the counters are forgotten (as a new process), starts near the end of
the night session and runs into Monday's day session; a third one closes the yesterday lot in
Monday's last seconds and runs into Tuesday's night.  Apart from that scenario: the day before
a holiday, and hand-made recordings whose close carries no SettlementPrice.

Golden figures are worked here by hand from the trades the program received, the closing
ticks it was given (their SettlementPrice) and the rates it queried, with the formulas of
SIM_TRADING.md 2.1-2.3 and 3.2 (fees to the cent per trade on the statement, as SimNow's).
"""

from __future__ import annotations

import math
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.broker import counter as counter_module
from tests.broker.spis import WaitingTraderSpi

BROKER, USER = "9999", "000001"
FRIDAY, MONDAY = "20261120", "20261123"
DAY_END = "2026-11-20T14:59:50"  # ten seconds before Friday's close
NIGHT_END = "2026-11-20T22:59:50"  # ten seconds before the night session of Monday's trading day ends
MONDAY_END = "2026-11-23T14:59:50"
TUESDAY = "20261124"
RB, JD = "rb2701", "jd2701"
WAIT = 10.0


def front(db: Path, start: str, *extra: str) -> str:
    settings = "&".join((f"start={start}", f"instruments={RB},{JD}", "speed=max", "hours=real", f"trader.db={db}",
                         "trader.flow_control=false", *extra))
    return f"sim://?{settings}"


# -- a program ----------------------------------------------------------------------------------


class Trader:
    """One td API object, connected; every request is answered within WAIT or the test fails."""

    def __init__(self, flow: Path, address: str, resume: int | None = None) -> None:
        flow.mkdir(parents=True, exist_ok=True)
        self.api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(flow) + os.sep)
        self.spi = WaitingTraderSpi()
        self.api.RegisterSpi(self.spi)
        if resume is not None:
            self.api.SubscribePrivateTopic(resume)
        self.api.RegisterFront(address)
        self.api.Init()
        self.spi.wait("OnFrontConnected")
        self.request = 0
        self.lock = threading.Lock()

    def next_id(self) -> int:
        with self.lock:
            self.request += 1
            return self.request

    def login(self) -> Any:
        field_ = tdapi.CThostFtdcReqUserLoginField()
        field_.BrokerID, field_.UserID = BROKER, USER
        assert self.api.ReqUserLogin(field_, self.next_id()) == 0
        return self.spi.wait("OnRspUserLogin")[-1]

    def confirm(self) -> Any:
        field_ = tdapi.CThostFtdcSettlementInfoConfirmField()
        field_.BrokerID, field_.InvestorID = BROKER, USER
        count = len(self.spi.all("OnRspSettlementInfoConfirm"))
        assert self.api.ReqSettlementInfoConfirm(field_, self.next_id()) == 0
        return self.spi.wait("OnRspSettlementInfoConfirm", count + 1)[-1]

    def order(self, instrument: str, price: float, volume: int = 1, direction: str = "0", offset: str = "0",
              ref: str = "") -> int:
        field_ = tdapi.CThostFtdcInputOrderField()
        field_.BrokerID, field_.InvestorID, field_.UserID = BROKER, USER, USER
        field_.InstrumentID, field_.ExchangeID = instrument, "SHFE" if instrument == RB else "DCE"
        field_.OrderRef, field_.OrderPriceType, field_.Direction = ref, "2", direction
        field_.CombOffsetFlag, field_.CombHedgeFlag = offset, "1"
        field_.LimitPrice, field_.VolumeTotalOriginal = price, volume
        field_.TimeCondition, field_.VolumeCondition, field_.ContingentCondition = "3", "1", "1"  # GFD
        field_.ForceCloseReason = "0"
        request_id = self.next_id()
        assert self.api.ReqOrderInsert(field_, request_id) == 0
        return request_id

    def cancel(self, order: Any) -> None:
        field_ = tdapi.CThostFtdcInputOrderActionField()
        field_.BrokerID, field_.InvestorID, field_.UserID = BROKER, USER, USER
        field_.InstrumentID, field_.ExchangeID = order.InstrumentID, order.ExchangeID
        field_.OrderSysID, field_.ActionFlag = order.OrderSysID, "0"
        assert self.api.ReqOrderAction(field_, self.next_id()) == 0

    def query(self, name: str, **members: Any) -> list[Any]:
        """The records of one ReqQry<name> (an empty answer is ``[None]``, as CTP sends it)."""
        query = getattr(tdapi, f"CThostFtdcQry{name}Field")()
        for member, value in members.items():
            setattr(query, member, value)
        callback = f"OnRspQry{name}"
        request_id = self.next_id()
        assert getattr(self.api, f"ReqQry{name}")(query, request_id) == 0
        self.spi.wait_for(lambda: any(e == callback and a[2] == request_id and a[3] for e, a in self.spi.events),
                          f"the last {callback} of request {request_id}")
        return [args[0] for args in self.spi.all(callback) if args[2] == request_id]

    def orders_of(self, ref: str) -> list[Any]:
        """The OnRtnOrder reports of OrderRef ``ref`` so far."""
        return [args[0] for args in self.spi.all("OnRtnOrder") if args[0].OrderRef.strip() == ref]


TICK_MEMBERS = ("InstrumentID", "TradingDay", "UpdateTime", "LastPrice", "SettlementPrice", "PreSettlementPrice",
                "Volume", "Turnover", "AskPrice1", "BidPrice1", "LowerLimitPrice")


class Program(mdapi.CThostFtdcMdSpi):
    """The md side: keeps the last tick of each (instrument, trading day), runs ``act(tick)`` on
    every tick, and holds the md thread in the first tick ``stop(tick)`` accepts until released."""

    def __init__(self, flow: Path, address: str, act: Callable[[dict[str, Any]], None],
                 stop: Callable[[dict[str, Any]], bool], instruments: tuple[str, ...] = (RB, JD)) -> None:
        super().__init__()
        self.act, self.stop, self.instruments = act, stop, instruments
        self.last: dict[tuple[str, str], dict[str, Any]] = {}
        self.held: dict[str, Any] | None = None
        self.holding, self.release = threading.Event(), threading.Event()
        flow.mkdir(parents=True, exist_ok=True)
        self.api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(str(flow) + os.sep)
        self.api.RegisterSpi(self)
        self.api.RegisterFront(address)
        self.api.Init()

    def OnFrontConnected(self) -> None:
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

    def OnRspUserLogin(self, *args: Any) -> None:
        self.api.SubscribeMarketData([i.encode() for i in self.instruments], 2)

    def OnRtnDepthMarketData(self, tick: Any) -> None:
        if self.holding.is_set():
            return
        values = {name: getattr(tick, name) for name in TICK_MEMBERS}
        self.last[(values["InstrumentID"], values["TradingDay"])] = values
        self.act(values)
        if self.stop(values):
            self.held = values
            self.holding.set()
            self.release.wait(4 * WAIT)

    def close(self) -> None:
        self.release.set()
        self.api.Release()


# -- the two runs ---------------------------------------------------------------------------------


@dataclass
class DayEnd:
    """What the program saw around Friday's day end, and what it asked once the night began."""

    friday: dict[str, Any] = field(default_factory=dict)  # Friday's last tick of each instrument
    night_tick: dict[str, Any] = field(default_factory=dict)  # the night tick the program was held at
    trades: list[Any] = field(default_factory=list)  # Friday's OnRtnTrade
    resting: list[Any] = field(default_factory=list)  # OnRtnOrder of the order left resting on Friday
    friday_account: Any = None
    multiplier: dict[str, float] = field(default_factory=dict)
    margin_ratio: dict[str, float] = field(default_factory=dict)
    fee_ratio: dict[str, tuple[float, float, float]] = field(default_factory=dict)  # open, close, close today
    orders: list[Any] = field(default_factory=list)  # ReqQryOrder of the new day
    positions: list[Any] = field(default_factory=list)
    details: list[Any] = field(default_factory=list)
    account: Any = None
    login_day: str = ""
    refused: Any = None  # the RspInfo of an order before confirming
    confirmation_before: list[Any] = field(default_factory=list)
    confirmation_after: list[Any] = field(default_factory=list)
    latest_pieces: list[Any] = field(default_factory=list)  # ReqQrySettlementInfo, TradingDay empty
    friday_pieces: list[Any] = field(default_factory=list)  # ReqQrySettlementInfo, TradingDay Friday
    night_order: list[Any] = field(default_factory=list)  # OnRtnOrder of the GFD order placed at night
    night_account: Any = None


def _friday_orders(trader: Trader) -> Callable[[dict[str, Any]], None]:
    """On Friday's first tick of each instrument: rb buy 2 and sell 1 back (close today), a buy
    left resting at the lower limit; jd buy 1.  Sent from the md callback: each meets that tick's book."""
    done: set[str] = set()

    def act(tick: dict[str, Any]) -> None:
        instrument = tick["InstrumentID"]
        if tick["TradingDay"] != FRIDAY or instrument in done:
            return
        done.add(instrument)
        if instrument == RB:
            trader.order(RB, tick["AskPrice1"] + 5, volume=2, ref="1")
            trader.order(RB, tick["BidPrice1"] - 5, volume=1, direction="1", offset="3", ref="2")
            trader.order(RB, tick["LowerLimitPrice"], ref="3")  # rests: a buy at the limit-down price
        else:
            trader.order(JD, tick["AskPrice1"] + 5, ref="4")
    return act


def run_day_end(root: Path, *extra: str) -> DayEnd:
    """Friday's last seconds, then the first tick of Friday night (Monday's trading day)."""
    address = front(root / "t.sqlite", DAY_END, *extra)
    seen = DayEnd()
    trader = Trader(root / "td", address)
    program = None
    try:
        seen.login_day = trader.login()[0].TradingDay
        trader.confirm()
        program = Program(root / "md", address, _friday_orders(trader),
                          lambda t: t["TradingDay"] == MONDAY and t["InstrumentID"] == RB
                          and t["UpdateTime"] >= "21:00:00")
        assert program.holding.wait(4 * WAIT), "the market never reached Friday night"
        seen.friday = {i: program.last[(i, FRIDAY)] for i in (RB, JD)}
        seen.night_tick = program.held or {}
        seen.trades = [args[0] for args in trader.spi.all("OnRtnTrade")]
        seen.orders = trader.query("Order")
        seen.positions = [p for p in trader.query("InvestorPosition") if p is not None]
        seen.details = [d for d in trader.query("InvestorPositionDetail") if d is not None]
        seen.account = trader.query("TradingAccount")[0]
        for instrument in (RB, JD):
            seen.multiplier[instrument] = trader.query("Instrument", InstrumentID=instrument)[0].VolumeMultiple
            margin = trader.query("InstrumentMarginRate", InstrumentID=instrument, HedgeFlag="1")[0]
            assert margin.LongMarginRatioByVolume == 0
            assert margin.LongMarginRatioByMoney == margin.ShortMarginRatioByMoney
            seen.margin_ratio[instrument] = margin.LongMarginRatioByMoney
            fee = trader.query("InstrumentCommissionRate", InstrumentID=instrument)[0]
            assert fee.OpenRatioByVolume == fee.CloseRatioByVolume == fee.CloseTodayRatioByVolume == 0
            seen.fee_ratio[instrument] = (fee.OpenRatioByMoney, fee.CloseRatioByMoney, fee.CloseTodayRatioByMoney)
        seen.confirmation_before = trader.query("SettlementInfoConfirm")
        trader.order(RB, seen.night_tick["LowerLimitPrice"], ref="5")
        seen.refused = trader.spi.wait("OnRspOrderInsert")[-1][1]
        seen.latest_pieces = trader.query("SettlementInfo")
        seen.friday_pieces = trader.query("SettlementInfo", TradingDay=FRIDAY)
        trader.confirm()
        # The confirmation's answer follows everything the day end posted: an expiry report would be in.
        seen.resting = trader.orders_of("3")
        seen.confirmation_after = trader.query("SettlementInfoConfirm")
        trader.order(RB, seen.night_tick["LowerLimitPrice"], ref="6")  # GFD, at night: Monday's
        trader.spi.wait_for(lambda: any(o.OrderStatus == "3" for o in trader.orders_of("6")), "order 6 resting")
        seen.night_order = trader.orders_of("6")
        seen.night_account = trader.query("TradingAccount")[0]
    finally:
        if program is not None:
            program.close()
        trader.api.Release()
    return seen


@dataclass
class Restart:
    """A new program on the same database, from the end of Friday night into Monday's day."""

    login: Any = None
    night: list[Any] = field(default_factory=list)  # ReqQryOrder in the night session
    positions: list[Any] = field(default_factory=list)
    account: Any = None
    confirmation: list[Any] = field(default_factory=list)
    statement: list[Any] = field(default_factory=list)
    day_tick: dict[str, Any] = field(default_factory=dict)  # Monday's tick the program was held at
    day: list[Any] = field(default_factory=list)  # ReqQryOrder in Monday's day session
    cancelled: list[Any] = field(default_factory=list)  # OnRtnOrder of the night order's cancel


def run_restart(root: Path) -> Restart:
    counter_module.forget_counters()  # everything comes from the file, as in a new process
    address = front(root / "t.sqlite", NIGHT_END)
    seen = Restart()
    trader = Trader(root / "td2", address, resume=tdapi.THOST_TERT_QUICK)
    program = None
    try:
        seen.login = trader.login()
        seen.night = [o for o in trader.query("Order") if o is not None]
        seen.positions = [p for p in trader.query("InvestorPosition") if p is not None]
        seen.account = trader.query("TradingAccount")[0]
        seen.confirmation = trader.query("SettlementInfoConfirm")
        seen.statement = trader.query("SettlementInfo", TradingDay=FRIDAY)
        program = Program(root / "md2", address, lambda t: None,
                          lambda t: t["InstrumentID"] == RB and "09:00:00" <= t["UpdateTime"] < "15:00:00")
        assert program.holding.wait(4 * WAIT), "the market never reached Monday's day session"
        seen.day_tick = program.held or {}
        seen.day = [o for o in trader.query("Order") if o is not None]
        night = [o for o in seen.day if o.OrderRef.strip() == "6"]
        if night:
            trader.cancel(night[0])  # no confirmation needed again: Monday's was made at night
            trader.spi.wait_for(lambda: any(o.OrderStatus == "5" for o in trader.orders_of("6")), "order 6 cancelled")
            seen.cancelled = trader.orders_of("6")
    finally:
        if program is not None:
            program.close()
        trader.api.Release()
    return seen


@dataclass
class SecondDay:
    """Monday's last seconds (a new program again): the yesterday rb lot is closed; then Tuesday."""

    monday: dict[str, Any] = field(default_factory=dict)  # Monday's last tick of each instrument
    trade: Any = None  # the close of the yesterday lot
    account: Any = None  # at Tuesday's first night tick
    positions: list[Any] = field(default_factory=list)
    details: list[Any] = field(default_factory=list)
    pieces: list[Any] = field(default_factory=list)  # Monday's statement


def run_second_day(root: Path) -> SecondDay:
    counter_module.forget_counters()
    address = front(root / "t.sqlite", MONDAY_END)
    seen = SecondDay()
    trader = Trader(root / "td3", address, resume=tdapi.THOST_TERT_QUICK)
    done: set[str] = set()

    def close_yesterdays(tick: dict[str, Any]) -> None:
        if tick["InstrumentID"] == RB and tick["TradingDay"] == MONDAY and not done:
            done.add(RB)
            trader.order(RB, tick["BidPrice1"] - 5, direction="1", offset="1", ref="10")  # SHFE: Close = yesterday

    program = None
    try:
        assert trader.login()[0].TradingDay == MONDAY
        program = Program(root / "md3", address, close_yesterdays,
                          lambda t: t["TradingDay"] == TUESDAY and t["InstrumentID"] == RB
                          and t["UpdateTime"] >= "21:00:00")
        assert program.holding.wait(4 * WAIT), "the market never reached Monday night"
        seen.monday = {i: program.last[(i, MONDAY)] for i in (RB, JD)}
        trades = trader.spi.all("OnRtnTrade")
        seen.trade = trades[0][0] if trades else None
        seen.account = trader.query("TradingAccount")[0]
        seen.positions = [p for p in trader.query("InvestorPosition") if p is not None]
        seen.details = [d for d in trader.query("InvestorPositionDetail") if d is not None]
        seen.pieces = trader.query("SettlementInfo", TradingDay=MONDAY)
    finally:
        if program is not None:
            program.close()
        trader.api.Release()
    return seen


@pytest.fixture(scope="module")
def day_end(tmp_path_factory) -> tuple[DayEnd, Restart, SecondDay]:
    root = tmp_path_factory.mktemp("day_end")
    try:
        first = run_day_end(root)
        second = run_restart(root)
        third = run_second_day(root)
    finally:
        counter_module.forget_counters()
    return first, second, third


# -- figures worked by hand ---------------------------------------------------------------------------


def cents(value: float) -> float:
    return math.floor(value * 100 + 0.5 + 1e-9) / 100


def trade_of(seen: DayEnd, instrument: str, offset: str) -> Any:
    found = [t for t in seen.trades if t.InstrumentID == instrument and t.OffsetFlag == offset]
    assert len(found) == 1, [(t.InstrumentID, t.OffsetFlag) for t in seen.trades]
    return found[0]


@dataclass
class Worked:
    settle: dict[str, float]
    fees: float
    close_profit: float
    mtm: float
    balance: float
    margin: dict[str, float]


def worked(seen: DayEnd) -> Worked:
    """Friday's figures from the trades, Friday's closing SettlementPrice and the queried rates."""
    m, r = seen.multiplier, seen.fee_ratio
    rb_open, rb_close, jd_open = trade_of(seen, RB, "0"), trade_of(seen, RB, "3"), trade_of(seen, JD, "0")
    settle = {i: seen.friday[i]["SettlementPrice"] for i in (RB, JD)}
    # Fees: volume x price x multiplier x the rate of what the fill did, each trade to the cent.
    fees = (cents(rb_open.Volume * rb_open.Price * m[RB] * r[RB][0])
            + cents(rb_close.Volume * rb_close.Price * m[RB] * r[RB][2])
            + cents(jd_open.Volume * jd_open.Price * m[JD] * r[JD][0]))
    # A today lot closed: its profit against its open price (SIM_TRADING.md 2.2).
    close_profit = (rb_close.Price - rb_open.Price) * rb_close.Volume * m[RB]
    # What is held is marked to the settlement price against today's open prices.
    held_rb = rb_open.Volume - rb_close.Volume
    mtm = (settle[RB] - rb_open.Price) * held_rb * m[RB] + (settle[JD] - jd_open.Price) * jd_open.Volume * m[JD]
    balance = 10_000_000 + close_profit + mtm - fees
    margin = {RB: held_rb * settle[RB] * m[RB] * seen.margin_ratio[RB],
              JD: jd_open.Volume * settle[JD] * m[JD] * seen.margin_ratio[JD]}
    return Worked(settle, fees, close_profit, mtm, balance, margin)


def statement_text(pieces: list[Any]) -> str:
    """The pieces' bytes joined in SequenceNo order, then decoded (a character may straddle two)."""
    assert pieces and None not in pieces
    ordered = sorted(pieces, key=lambda p: p.SequenceNo)
    assert [p.SequenceNo for p in ordered] == list(range(1, len(ordered) + 1))
    assert all(len(p.Content) <= 500 for p in ordered)
    return b"".join(p.Content for p in ordered).decode("gb18030")


def summary_value(text: str, label: str) -> float:
    """The number after ``label`` in the statement's account summary."""
    found = re.search(re.escape(label) + r"：?\s*(-?[\d.]+)", text)
    assert found, f"{label!r} not in the statement"
    return float(found.group(1))


def table_rows(text: str, title: str) -> list[list[str]]:
    """The cells of the data rows of the statement section ``title`` (before its total row)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == title)
    rows: list[list[str]] = []
    for line in lines[start + 5:]:  # title, rule, two header lines, rule
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


# -- Friday's day end -------------------------------------------------------------------------------


def test_the_program_traded_on_friday_and_the_closing_ticks_carry_the_settlement(day_end):
    seen, _, _ = day_end
    assert seen.login_day == FRIDAY
    assert sorted((t.InstrumentID, t.Direction, t.OffsetFlag, t.Volume) for t in seen.trades) == \
        [(JD, "0", "0", 1), (RB, "0", "0", 2), (RB, "1", "3", 1)]
    assert {t.TradingDay for t in seen.trades} == {FRIDAY}
    for instrument in (RB, JD):
        close = seen.friday[instrument]
        assert close["UpdateTime"] == "15:00:00" and 0 < close["SettlementPrice"] < 1e300
        # The commodity exchanges' rule (SIM_TRADING.md 4.1): the day's VWAP, cut to the tick (1 here).
        vwap = close["Turnover"] / close["Volume"] / seen.multiplier[instrument]
        assert close["SettlementPrice"] == math.floor(vwap)
    # The rates the figures below use are SimNow's for rb (SIM_TRADING.md 3.3).
    assert seen.multiplier[RB] == 10 and seen.margin_ratio[RB] == 0.16 and seen.fee_ratio[RB] == (1e-4,) * 3


def test_the_account_settles_at_the_settlement_prices_and_the_new_day_starts_from_its_balance(day_end):
    seen, _, _ = day_end
    w = worked(seen)
    a = seen.account
    assert a.TradingDay == MONDAY
    # SIM_TRADING.md 4.2 step 5: yesterday's Balance is today's PreBalance; PreMargin <- CurrMargin.
    assert a.PreBalance == pytest.approx(w.balance, abs=1e-6)
    assert a.PreMargin == pytest.approx(w.margin[RB] + w.margin[JD], abs=1e-6)
    assert (a.Deposit, a.Withdraw, a.CloseProfit, a.Commission, a.FrozenMargin, a.FrozenCommission) == (0,) * 6
    # At the night tick rb is marked against Friday's settlement; jd (no night session) stays at it.
    night = seen.night_tick
    assert night["PreSettlementPrice"] == w.settle[RB]  # the exchange agrees on Friday's settlement
    rb_held = 1
    assert a.PositionProfit == pytest.approx((night["LastPrice"] - w.settle[RB]) * rb_held * seen.multiplier[RB])
    assert a.Balance == pytest.approx(a.PreBalance + a.PositionProfit, abs=1e-6)
    assert a.CurrMargin == pytest.approx(w.margin[RB] + w.margin[JD], abs=1e-6)
    assert a.Available == pytest.approx(a.Balance - a.CurrMargin, abs=1e-6)


def test_todays_positions_become_yesterdays_at_the_settlement_price(day_end):
    seen, _, _ = day_end
    w = worked(seen)
    by_instrument = {p.InstrumentID: p for p in seen.positions}
    assert sorted(by_instrument) == [JD, RB] and len(seen.positions) == 2
    rb, jd = by_instrument[RB], by_instrument[JD]
    # SHFE: one history record ('2'); DCE: one record '1' holding a yesterday lot (SIM_TRADING.md 2.2).
    assert (rb.PosiDirection, rb.PositionDate, rb.Position, rb.YdPosition, rb.TodayPosition) == ("2", "2", 1, 1, 0)
    assert (jd.PosiDirection, jd.PositionDate, jd.Position, jd.YdPosition, jd.TodayPosition) == ("2", "1", 1, 1, 0)
    for p in (rb, jd):
        m = seen.multiplier[p.InstrumentID]
        assert p.TradingDay == MONDAY and p.PreSettlementPrice == w.settle[p.InstrumentID]
        assert p.PositionCost == pytest.approx(w.settle[p.InstrumentID] * p.Position * m)
        assert p.UseMargin == pytest.approx(w.margin[p.InstrumentID]) and p.PreMargin == pytest.approx(p.UseMargin)
        assert (p.OpenVolume, p.CloseVolume, p.CloseProfit, p.Commission) == (0, 0, 0, 0)
    assert jd.PositionProfit == 0  # no jd tick since the close
    # The open lots keep their open date and price; their base is now Friday's settlement.
    details = {d.InstrumentID: d for d in seen.details}
    assert sorted(details) == [JD, RB]
    for instrument, trade in ((RB, trade_of(seen, RB, "0")), (JD, trade_of(seen, JD, "0"))):
        d = details[instrument]
        assert (d.OpenDate, d.TradingDay, d.Volume, d.OpenPrice) == (FRIDAY, MONDAY, 1, trade.Price)
        assert d.LastSettlementPrice == w.settle[instrument]
        assert d.Margin == pytest.approx(w.margin[instrument])


def test_the_days_gfd_orders_are_gone_without_a_callback(day_end):
    seen, _, _ = day_end
    assert [(o.OrderStatus, o.TradingDay) for o in seen.resting] == [("a", FRIDAY), ("3", FRIDAY)]
    assert seen.orders == [None]  # nothing of Friday in ReqQryOrder of Monday (SIM_TRADING.md 4.3)
    # Its frozen margin went with it: only the positions' margin is held.
    assert seen.account.FrozenMargin == 0 and seen.account.FrozenCash == 0


def test_orders_are_refused_with_42_until_the_new_day_is_confirmed(day_end):
    seen, _, _ = day_end
    assert (seen.refused.ErrorID, seen.refused.ErrorMsg) == (42, "CTP:结算结果未确认")
    # ReqQrySettlementInfoConfirm tells: Friday's confirmation before, Monday's after.
    assert [c.ConfirmDate for c in seen.confirmation_before] == [FRIDAY]
    assert [c.ConfirmDate for c in seen.confirmation_after] == [MONDAY]
    assert seen.confirmation_after[0].InvestorID == USER and seen.confirmation_after[0].ConfirmTime


def test_the_statement_shows_the_figures_of_the_account_and_positions(day_end):
    seen, _, _ = day_end
    w = worked(seen)
    text = statement_text(seen.friday_pieces)
    assert text == statement_text(seen.latest_pieces)  # an empty TradingDay: the latest statement
    assert all(p.TradingDay == FRIDAY and p.InvestorID == USER for p in seen.friday_pieces + seen.latest_pieces)
    assert f"日期 Date：{FRIDAY}" in text
    assert summary_value(text, "期初结存 Balance b/f") == 10_000_000
    assert summary_value(text, "平仓盈亏 Realized P/L") == pytest.approx(w.close_profit)
    assert summary_value(text, "持仓盯市盈亏 MTM P/L") == pytest.approx(w.mtm)
    assert summary_value(text, "手 续 费 Commission") == pytest.approx(w.fees)
    assert summary_value(text, "期末结存 Balance c/f") == pytest.approx(cents(w.balance))
    assert summary_value(text, "期末结存 Balance c/f") == pytest.approx(cents(seen.account.PreBalance))
    margin = w.margin[RB] + w.margin[JD]
    assert summary_value(text, "保证金占用 Margin Occupied") == pytest.approx(cents(margin))
    assert summary_value(text, "可用资金 Fund Avail.") == pytest.approx(cents(w.balance - margin))
    assert summary_value(text, "风 险 度 Risk Degree") == pytest.approx(round(100 * margin / w.balance, 2))
    # One transaction row per trade, at its price and fee; the position summary at the settlement.
    trades = table_rows(text, "成交记录 Transaction Record")
    assert sorted((row[5], row[11], float(row[8]), int(row[9]), float(row[10])) for row in trades) == \
        sorted((t.InstrumentID, {"0": "开", "3": "平今"}[t.OffsetFlag], t.Price, t.Volume,
                t.Price * t.Volume * seen.multiplier[t.InstrumentID]) for t in seen.trades)
    assert sum(float(row[12]) for row in trades) == pytest.approx(w.fees)
    positions = {row[3]: row for row in table_rows(text, "持仓汇总 Positions")}
    assert sorted(positions) == [JD, RB]
    for instrument in (RB, JD):
        row = positions[instrument]
        assert (int(row[4]), int(row[6]), float(row[9])) == (1, 0, w.settle[instrument])
        assert float(row[11]) == pytest.approx(cents(w.margin[instrument]))
    assert sum(float(row[10]) for row in positions.values()) == pytest.approx(w.mtm)


def test_every_piece_of_the_statement_decodes_by_itself(day_end):
    seen, _, _ = day_end
    for piece in seen.friday_pieces:
        piece.Content.decode("gb18030")  # statement.pieces never splits a character


def test_a_gfd_order_placed_at_night_rests_in_the_new_day(day_end):
    seen, _, _ = day_end
    reports = seen.night_order
    assert [o.OrderStatus for o in reports] == ["a", "3"] and reports[-1].TradingDay == MONDAY
    # Its margin is frozen at its price (SIM_TRADING.md 3.2) on top of the positions' margin.
    price = seen.night_tick["LowerLimitPrice"]
    frozen = price * seen.multiplier[RB] * seen.margin_ratio[RB]
    assert seen.night_account.FrozenMargin == pytest.approx(frozen)
    assert seen.night_account.FrozenCommission == pytest.approx(price * seen.multiplier[RB] * seen.fee_ratio[RB][0])


# -- a new program on the same database --------------------------------------------------------------


def test_a_restart_after_settlement_sees_the_new_day(day_end):
    seen, again, _ = day_end
    login = again.login
    assert login[1].ErrorID == 0 and login[0].TradingDay == MONDAY
    assert [(o.OrderRef.strip(), o.OrderStatus) for o in again.night] == [("6", "3")]
    held = sorted((p.InstrumentID, p.PositionDate, p.Position, p.YdPosition, p.TodayPosition, p.PreSettlementPrice)
                  for p in again.positions)
    assert held == sorted((p.InstrumentID, p.PositionDate, p.Position, p.YdPosition, p.TodayPosition,
                           p.PreSettlementPrice) for p in seen.positions)
    assert again.account.TradingDay == MONDAY and again.account.PreBalance == seen.account.PreBalance
    assert again.account.FrozenMargin == pytest.approx(seen.night_account.FrozenMargin)
    assert [c.ConfirmDate for c in again.confirmation] == [MONDAY]
    assert statement_text(again.statement) == statement_text(seen.friday_pieces)


def test_a_night_order_is_still_alive_and_cancellable_in_the_day_session(day_end):
    _, again, _ = day_end
    assert again.day_tick["TradingDay"] == MONDAY and again.day_tick["UpdateTime"] >= "09:00:00"
    assert [(o.OrderRef.strip(), o.OrderStatus) for o in again.day] == [("6", "3")]
    assert [o.OrderStatus for o in again.cancelled][-1] == "5"
    assert again.cancelled[-1].StatusMsg == "已撤单" and again.cancelled[-1].TradingDay == MONDAY


# -- the second day: yesterday's lots ---------------------------------------------------------------


def test_the_second_day_settles_yesterdays_lots_against_yesterdays_settlement(day_end):
    seen, _, second = day_end
    friday, m = worked(seen), seen.multiplier
    settle = {i: second.monday[i]["SettlementPrice"] for i in (RB, JD)}
    assert all(second.monday[i]["UpdateTime"] == "15:00:00" and 0 < settle[i] < 1e300 for i in (RB, JD))
    trade = second.trade
    assert (trade.InstrumentID, trade.Direction, trade.OffsetFlag, trade.Volume, trade.TradingDay) == \
        (RB, "1", "1", 1, MONDAY)
    # A yesterday lot closes against yesterday's settlement, not its open price (SIM_TRADING.md 2.2),
    # at the close rate; the jd lot held is marked from Friday's settlement to Monday's.
    close_profit = (trade.Price - friday.settle[RB]) * m[RB]
    fee = cents(trade.Price * m[RB] * seen.fee_ratio[RB][1])
    mtm = (settle[JD] - friday.settle[JD]) * m[JD]
    balance = seen.account.PreBalance + close_profit + mtm - fee
    margin = settle[JD] * m[JD] * seen.margin_ratio[JD]
    text = statement_text(second.pieces)
    assert f"日期 Date：{MONDAY}" in text
    assert summary_value(text, "期初结存 Balance b/f") == pytest.approx(cents(seen.account.PreBalance))
    assert summary_value(text, "平仓盈亏 Realized P/L") == pytest.approx(close_profit)
    assert summary_value(text, "持仓盯市盈亏 MTM P/L") == pytest.approx(mtm)
    assert summary_value(text, "手 续 费 Commission") == pytest.approx(fee)
    assert summary_value(text, "期末结存 Balance c/f") == pytest.approx(cents(balance))
    assert summary_value(text, "保证金占用 Margin Occupied") == pytest.approx(cents(margin))
    closed = table_rows(text, "平仓明细 Position Closed")
    rb_open = trade_of(seen, RB, "0")
    assert [(r[5], r[6], int(r[9]), float(r[10]), float(r[11]), float(r[12]), float(r[13])) for r in closed] == \
        [(RB, FRIDAY, 1, rb_open.Price, friday.settle[RB], trade.Price, close_profit)]
    held = table_rows(text, "持仓明细 Positions Detail")
    jd_open = trade_of(seen, JD, "0")
    assert [(r[4], r[5], float(r[9]), float(r[10]), float(r[11]), float(r[12]), float(r[13])) for r in held] == \
        [(JD, FRIDAY, jd_open.Price, friday.settle[JD], settle[JD], (settle[JD] - jd_open.Price) * m[JD], mtm)]
    # Tuesday: the closed rb record is gone; jd's base is Monday's settlement; PreBalance is Monday's.
    a = second.account
    assert a.TradingDay == TUESDAY and a.PreBalance == pytest.approx(balance, abs=1e-6)
    assert a.PreMargin == pytest.approx(margin) and (a.CloseProfit, a.Commission) == (0, 0)
    assert [(p.InstrumentID, p.PositionDate, p.Position, p.YdPosition, p.PreSettlementPrice)
            for p in second.positions] == [(JD, "1", 1, 1, settle[JD])]
    assert [(d.InstrumentID, d.OpenDate, d.OpenPrice, d.LastSettlementPrice) for d in second.details] == \
        [(JD, FRIDAY, jd_open.Price, settle[JD])]


# -- trader.expire_report ------------------------------------------------------------------------------


def test_expire_report_tells_the_program_its_gfd_order_was_cancelled(tmp_path):
    try:
        seen = run_day_end(tmp_path, "trader.expire_report=true")
    finally:
        counter_module.forget_counters()
    statuses = [(o.OrderStatus, o.StatusMsg) for o in seen.resting]
    assert statuses == [("a", "报单已提交"), ("3", "未成交"), ("5", "已撤单")]
    assert seen.resting[-1].TradingDay == FRIDAY and seen.resting[-1].VolumeTotal == 1
    assert seen.orders == [None]


# -- a holiday ---------------------------------------------------------------------------------------


def test_before_a_holiday_the_next_trading_day_is_after_it_and_has_no_night_session(tmp_path):
    # National Day 2026: 1-7 October closed (the State Council's notice); no night session opens
    # the first day after a holiday, so Wednesday 30 September is followed by Thursday 8 October's
    # day session.
    address = front(tmp_path / "t.sqlite", "2026-09-30T14:59:50").replace(f"{RB},{JD}", RB)
    trader = Trader(tmp_path / "td", address)
    sent = threading.Event()

    def buy_once(tick: dict[str, Any]) -> None:
        if not sent.is_set():
            sent.set()
            trader.order(RB, tick["AskPrice1"] + 5, ref="1")

    program = None
    try:
        assert trader.login()[0].TradingDay == "20260930"
        trader.confirm()
        program = Program(tmp_path / "md", address, buy_once, lambda t: t["TradingDay"] != "20260930", (RB,))
        assert program.holding.wait(4 * WAIT), "the market never left 30 September"
        trade = trader.spi.wait("OnRtnTrade")[0][0]
        close = program.last[(RB, "20260930")]
        account = trader.query("TradingAccount")[0]
        position = [p for p in trader.query("InvestorPosition") if p is not None]
        pieces = trader.query("SettlementInfo")
    finally:
        if program is not None:
            program.close()
        trader.api.Release()
        counter_module.forget_counters()
    first = program.held or {}
    assert first["TradingDay"] == "20261008" and "08:59:00" <= first["UpdateTime"] <= "09:00:01"
    assert account.TradingDay == "20261008"
    assert [(p.PositionDate, p.YdPosition, p.PreSettlementPrice) for p in position] == \
        [("2", 1, close["SettlementPrice"])]
    fee = cents(trade.Price * 10 * 1e-4)
    assert account.PreBalance == pytest.approx(10_000_000 + (close["SettlementPrice"] - trade.Price) * 10 - fee)
    assert {p.TradingDay for p in pieces} == {"20260930"}
    assert "日期 Date：20260930" in statement_text(pieces)


# -- no SettlementPrice in the feed: the day's VWAP ---------------------------------------------------

DBL_MAX = 1.7976931348623157e308


def _tick(day: str, action_day: str, time: str, millis: int, last: float, volume: int, turnover: float,
          pre_settlement: float, **more: float) -> Any:
    tick = mdapi.CThostFtdcDepthMarketDataField()
    values: dict[str, Any] = dict(
        InstrumentID=RB, ExchangeID="SHFE", TradingDay=day, ActionDay=action_day, UpdateTime=time,
        UpdateMillisec=millis, LastPrice=last, Volume=volume, Turnover=turnover, OpenInterest=100_000.0,
        PreSettlementPrice=pre_settlement, PreClosePrice=pre_settlement, PreOpenInterest=100_000.0,
        OpenPrice=pre_settlement, HighestPrice=max(last, pre_settlement), LowestPrice=min(last, pre_settlement),
        UpperLimitPrice=pre_settlement + 300, LowerLimitPrice=pre_settlement - 300,
        BidPrice1=last - 1, BidVolume1=50, AskPrice1=last, AskVolume1=50,
        AveragePrice=turnover / volume, ClosePrice=DBL_MAX, SettlementPrice=DBL_MAX, **more)
    for name, value in values.items():
        setattr(tick, name, value)
    return tick


def _receive_time(day: str, time: str, millis: int) -> int:
    from datetime import datetime

    from ctpshim.ctp.clock import CHINA

    moment = datetime.strptime(f"{day} {time}", "%Y%m%d %H:%M:%S").replace(tzinfo=CHINA)
    return int(moment.timestamp()) * 10**9 + millis * 10**6


def test_without_a_settlement_price_in_the_feed_the_day_settles_at_its_vwap(tmp_path):
    from ctpshim.recording import table_from_ticks, write_archive

    # Friday's last three ticks (the close carries no SettlementPrice, as a live CTP feed at
    # 15:00), then Friday night's first tick of Monday's trading day.  Turnover counts the
    # multiplier (10): 1000 lots at 3161.4 on average, then 100 at 3158.
    rows = [(FRIDAY, FRIDAY, "14:59:58", 0, 3160.0, 1000, 31_614_000.0),
            (FRIDAY, FRIDAY, "14:59:59", 0, 3158.0, 1100, 34_772_000.0),
            (FRIDAY, FRIDAY, "15:00:00", 0, 3158.0, 1100, 34_772_000.0),
            (MONDAY, FRIDAY, "21:00:00", 500, 3165.0, 10, 316_500.0)]
    vwap = math.floor(34_772_000.0 / 1100 / 10)  # 3161.09 cut to the tick (SIM_TRADING.md 4.1)
    ticks = [_tick(*row[:7], pre_settlement=3150.0 if row[0] == FRIDAY else vwap) for row in rows]
    recording = tmp_path / "rb.parquet"
    write_archive(table_from_ticks(ticks, [_receive_time(r[1], r[2], r[3]) for r in rows]), recording)
    address = (f"replay://{recording}?speed=max&rebase=none&trader.db={tmp_path / 't.sqlite'}"
               "&trader.flow_control=false")
    trader = Trader(tmp_path / "td", address)
    sent = threading.Event()

    def buy_once(tick: dict[str, Any]) -> None:
        if not sent.is_set():
            sent.set()
            trader.order(RB, tick["AskPrice1"] + 10, ref="1")

    program = None
    try:
        assert trader.login()[1].ErrorID == 0
        trader.confirm()
        program = Program(tmp_path / "md", address, buy_once, lambda t: t["TradingDay"] == MONDAY, (RB,))
        assert program.holding.wait(4 * WAIT), "the replay never reached Friday night"
        trade = trader.spi.wait("OnRtnTrade")[0][0]
        position = [p for p in trader.query("InvestorPosition") if p is not None]
        account = trader.query("TradingAccount")[0]
        text = statement_text(trader.query("SettlementInfo", TradingDay=FRIDAY))
    finally:
        if program is not None:
            program.close()
        trader.api.Release()
        counter_module.forget_counters()
    assert (trade.Price, trade.TradeTime) == (3160.0, "14:59:58")  # the first tick's ask
    fee, mtm = cents(3160 * 10 * 1e-4), (vwap - 3160) * 10
    assert summary_value(text, "持仓盯市盈亏 MTM P/L") == mtm
    assert summary_value(text, "期末结存 Balance c/f") == pytest.approx(10_000_000 + mtm - fee)
    assert float(table_rows(text, "持仓汇总 Positions")[0][9]) == vwap
    assert [(p.PositionDate, p.YdPosition, p.PreSettlementPrice) for p in position] == [("2", 1, vwap)]
    assert account.PreBalance == pytest.approx(10_000_000 + mtm - fee)
    assert account.PositionProfit == pytest.approx((3165 - vwap) * 10)


def _replay(tmp_path: Path, name: str, rows: list[tuple[Any, ...]], pre: float) -> str:
    from ctpshim.recording import table_from_ticks, write_archive

    recording = tmp_path / f"{name}.parquet"
    ticks = [_tick(*row, pre_settlement=pre) for row in rows]
    write_archive(table_from_ticks(ticks, [_receive_time(r[1], r[2], r[3]) for r in rows]), recording)
    return (f"replay://{recording}?speed=max&rebase=none&trader.db={tmp_path / 't.sqlite'}"
            "&trader.flow_control=false")


@pytest.fixture(scope="module")
def restart_across(tmp_path_factory) -> tuple[str, Any]:
    """Run 1 stops before Friday's close; run 2 (a new process, same database) starts on Friday
    night, whose ticks carry the exchange's Friday settlement (3161) as PreSettlementPrice.
    Returns Friday's statement text and Monday's account as run 2 sees them at 21:00:01."""
    tmp_path = tmp_path_factory.mktemp("restart_across")
    friday = _replay(tmp_path, "friday", [(FRIDAY, FRIDAY, "14:59:58", 0, 3160.0, 1000, 31_614_000.0),
                                          (FRIDAY, FRIDAY, "14:59:59", 0, 3158.0, 1100, 34_772_000.0)], 3150.0)
    night = _replay(tmp_path, "night", [(MONDAY, FRIDAY, "21:00:00", 500, 3165.0, 10, 316_500.0),
                                        (MONDAY, FRIDAY, "21:00:01", 0, 3166.0, 20, 633_100.0)], 3161.0)
    trader = Trader(tmp_path / "td", friday)
    sent = threading.Event()

    def buy_once(tick: dict[str, Any]) -> None:
        if not sent.is_set():
            sent.set()
            trader.order(RB, tick["AskPrice1"] + 10, ref="1")

    program = None
    try:
        trader.login()
        trader.confirm()
        program = Program(tmp_path / "md", friday, buy_once, lambda t: t["UpdateTime"] == "14:59:59", (RB,))
        assert program.holding.wait(4 * WAIT)
        assert trader.spi.wait("OnRtnTrade")[0][0].Price == 3160.0
    finally:
        if program is not None:
            program.close()
        trader.api.Release()
        counter_module.forget_counters()
    trader = Trader(tmp_path / "td2", night, resume=tdapi.THOST_TERT_QUICK)
    program = None
    try:
        assert trader.login()[0].TradingDay == MONDAY
        program = Program(tmp_path / "md2", night, lambda t: None, lambda t: t["UpdateTime"] == "21:00:01", (RB,))
        assert program.holding.wait(4 * WAIT)
        text = statement_text(trader.query("SettlementInfo", TradingDay=FRIDAY))
        account = trader.query("TradingAccount")[0]
    finally:
        if program is not None:
            program.close()
        trader.api.Release()
        counter_module.forget_counters()
    return text, account


def test_a_restart_across_the_day_end_books_the_account_at_the_exchanges_settlement(restart_across):
    # Friday's settlement is the first night tick's PreSettlementPrice 3161, not the last price
    # seen (3158): bought 1 at 3160, 10 a point, fee 3160 x 10 x 1e-4 to the cent.
    _, account = restart_across
    assert account.PreBalance == pytest.approx(10_000_000 + (3161 - 3160) * 10 - cents(3160 * 10 * 1e-4))
    assert account.PositionProfit == pytest.approx((3166 - 3161) * 10)


def test_a_restart_across_the_day_end_states_the_exchanges_settlement(restart_across):
    # The counter settles when the new day's first tick comes: Friday's statement has 3161.
    text, _ = restart_across
    assert float(table_rows(text, "持仓汇总 Positions")[0][9]) == 3161.0
