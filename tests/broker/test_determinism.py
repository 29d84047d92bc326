"""Deterministic backtests: one strategy (md and td in one program) run twice on a fresh database
gives the same trades (TradeID, price, volume, time) and the same final money, on replay:// and on
sim:// at speed=max; and so does a strategy that sends its next order from OnRtnTrade, which only
holds when md and td move in lockstep (the next tick waits for what the program sent).

The strategies go through the public API only (``from ctpshim import mdapi, tdapi``).  They end
flat, so the final Balance does not depend on the ticks that come after they stop, and it is
checked against the trades by hand: Balance = 10,000,000 + CloseProfit - Commission, CloseProfit
= the sells' turnover - the buys' turnover (every lot opened and closed the same day), Commission
= each trade's fee from the rate table (SIM_TRADING.md 2.1, 3.2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ctpshim import mdapi, tdapi
from ctpshim.ctp.rates import rates_for

ROOT = Path(__file__).parents[2]
BROKER, USER = "9999", "e2e"
TIMEOUT = 60.0
FINAL = {tdapi.THOST_FTDC_OST_AllTraded, tdapi.THOST_FTDC_OST_Canceled,
         tdapi.THOST_FTDC_OST_PartTradedNotQueueing, tdapi.THOST_FTDC_OST_NoTradeNotQueueing}


@dataclass
class Scenario:
    front: str  # without the trader.* settings
    instrument: str
    multiplier: int
    tick: float
    mode: str  # "periodic": an order every `every` ticks; "on_trade": the next order from OnRtnTrade
    every: int = 10
    last_tick: int = 300  # no new strategy order after this tick: cancel, then close what is held
    window: tuple[str, str] | None = None  # the UpdateTimes the replay plays


REPLAY = Scenario("replay://?speed=max&rebase=none&start=21:00&end=21:40", "ru1901", 10, 5.0, "periodic",
                  window=("21:00:00", "21:40:00"))
SIM = Scenario("sim://?speed=max&start=2026-11-20T09:35&seed=3&instruments=TA701", "TA701", 5, 2.0, "periodic")
ON_TRADE = Scenario("sim://?speed=max&start=2026-11-20T09:35&seed=7&instruments=rb2701", "rb2701", 10, 1.0,
                    "on_trade", last_tick=400)

SCENARIOS = {"replay": REPLAY, "sim": SIM, "on_trade": ON_TRADE}


@dataclass
class OrderState:
    direction: str
    offset: str
    volume: int
    resting: bool
    status: str | None = None  # None: sent, no report yet
    sys_id: str = ""
    exchange: str = ""
    seen: list[str] = field(default_factory=list)
    error: int = 0
    triggered: bool = False


class Strategy:
    """The program: a td Spi and an md Spi sharing this state (md and td callbacks run on two threads)."""

    def __init__(self, scenario: Scenario, front: str) -> None:
        self.s = scenario
        self.front = front
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.done = threading.Event()
        self.answered = threading.Event()
        self.problems: list[str] = []
        self.orders: dict[str, OrderState] = {}
        self.trades: list[tuple] = []
        self.long = self.short = 0
        self.ticks = 0
        self.next_ref = 0
        self.sent = 0
        self.finishing = False
        self.last_book: Any = None
        self.query_rows: list[dict[str, Any]] = []
        self.td: Any = None
        self.md: Any = None

    # -- decisions (under self.lock); the requests are sent outside it --------------------------

    def _price(self, direction: str, cross: bool, book: Any, offset_ticks: int = 2) -> float:
        tick = self.s.tick
        if direction == tdapi.THOST_FTDC_D_Buy:
            price = book.AskPrice1 + offset_ticks * tick if cross else book.BidPrice1 - tick
            return min(price, book.UpperLimitPrice)
        price = book.BidPrice1 - offset_ticks * tick if cross else book.AskPrice1 + tick
        return max(price, book.LowerLimitPrice)

    def _close_flag(self) -> str:
        # Every lot is today's: SHFE/INE need close-today; elsewhere Close closes today's too.
        return tdapi.THOST_FTDC_OF_CloseToday if self.s.instrument[:2].islower() else tdapi.THOST_FTDC_OF_Close

    def _new(self, direction: str, offset: str, volume: int, price: float, resting: bool) -> tuple:
        self.next_ref += 1
        ref = str(self.next_ref)
        self.orders[ref] = OrderState(direction, offset, volume, resting)
        self.sent += 1
        return ("insert", ref, direction, offset, volume, price)

    def _alive(self) -> list[str]:
        return [ref for ref, o in self.orders.items() if o.status not in FINAL and not o.error]

    def _cancel(self, ref: str) -> tuple:
        return ("cancel", ref)

    def on_tick(self, book: Any) -> None:
        with self.lock:
            self.ticks += 1
            self.last_book = book
            k, s = self.ticks, self.s
            actions: list[tuple] = []
            if k <= s.last_tick:
                if s.mode == "periodic" and k % s.every == 0:
                    j = self.sent
                    pair_buys = (j // 2) % 2 == 0
                    opening = j % 2 == 0
                    if opening:
                        direction = tdapi.THOST_FTDC_D_Buy if pair_buys else tdapi.THOST_FTDC_D_Sell
                        offset = tdapi.THOST_FTDC_OF_Open
                    else:
                        direction = tdapi.THOST_FTDC_D_Sell if pair_buys else tdapi.THOST_FTDC_D_Buy
                        offset = self._close_flag()
                    resting = j % 3 == 2
                    # every fifth order is larger than the book shows: filled level by level, the rest waits
                    volume = 150 if j % 5 == 4 else 2
                    actions.append(self._new(direction, offset, volume, self._price(direction, not resting, book),
                                             resting))
                if s.mode == "periodic" and k % (4 * s.every) == 2 * s.every:
                    alive = [ref for ref in self._alive() if self.orders[ref].sys_id]
                    if alive:
                        actions.append(self._cancel(alive[0]))
                if s.mode == "on_trade" and k == 5:
                    actions.append(self._new(tdapi.THOST_FTDC_D_Buy, tdapi.THOST_FTDC_OF_Open, 1,
                                             self._price(tdapi.THOST_FTDC_D_Buy, True, book), False))
            elif not self.finishing:
                self.finishing = True
                actions.extend(self._cancel(ref) for ref in self._alive() if self.orders[ref].sys_id)
            elif not self._alive():
                if self.long:
                    actions.append(self._new(tdapi.THOST_FTDC_D_Sell, self._close_flag(), self.long,
                                             self._price(tdapi.THOST_FTDC_D_Sell, True, book), False))
                elif self.short:
                    actions.append(self._new(tdapi.THOST_FTDC_D_Buy, self._close_flag(), self.short,
                                             self._price(tdapi.THOST_FTDC_D_Buy, True, book), False))
                else:
                    self.done.set()
            if k > s.last_tick + 500 and not self.done.is_set():
                self.problems.append(f"not flat {500} ticks after the last order: long {self.long} short "
                                     f"{self.short}, alive {self._alive()}")
                self.done.set()
        self._send(actions)

    def on_trade(self, trade: Any) -> None:
        actions: list[tuple] = []
        with self.lock:
            row = (trade.TradeID, trade.OrderRef.strip(), trade.Direction, trade.OffsetFlag, trade.Price,
                   trade.Volume, trade.TradeDate, trade.TradeTime, trade.TradingDay)
            self.trades.append(row)
            opening = trade.OffsetFlag == tdapi.THOST_FTDC_OF_Open
            if trade.Direction == tdapi.THOST_FTDC_D_Buy:
                if opening:
                    self.long += trade.Volume
                else:
                    self.short -= trade.Volume
            elif opening:
                self.short += trade.Volume
            else:
                self.long -= trade.Volume
            order = self.orders.get(trade.OrderRef.strip())
            if (self.s.mode == "on_trade" and not self.finishing and order is not None and not order.triggered
                    and self.sent < 24):
                order.triggered = True
                # Priced from the fill, not from a tick: whether it crosses depends on the book the
                # counter holds when it arrives, which lockstep fixes.
                buy_next = trade.Direction == tdapi.THOST_FTDC_D_Sell
                tick = self.s.tick
                if buy_next:
                    actions.append(self._new(tdapi.THOST_FTDC_D_Buy, self._close_flag() if self.short else
                                             tdapi.THOST_FTDC_OF_Open, 1, trade.Price + tick, False))
                else:
                    actions.append(self._new(tdapi.THOST_FTDC_D_Sell, self._close_flag() if self.long else
                                             tdapi.THOST_FTDC_OF_Open, 1, trade.Price - tick, False))
        self._send(actions)

    def _send(self, actions: list[tuple]) -> None:
        for action in actions:
            if action[0] == "insert":
                _, ref, direction, offset, volume, price = action
                req = tdapi.CThostFtdcInputOrderField()
                req.BrokerID, req.InvestorID, req.UserID = BROKER, USER, USER
                req.InstrumentID, req.ExchangeID = self.s.instrument, self.exchange
                req.OrderRef, req.Direction, req.CombOffsetFlag = ref, direction, offset
                req.CombHedgeFlag = tdapi.THOST_FTDC_HF_Speculation
                req.OrderPriceType, req.LimitPrice = tdapi.THOST_FTDC_OPT_LimitPrice, price
                req.VolumeTotalOriginal, req.MinVolume = volume, 1
                req.TimeCondition, req.VolumeCondition = tdapi.THOST_FTDC_TC_GFD, tdapi.THOST_FTDC_VC_AV
                req.ContingentCondition = tdapi.THOST_FTDC_CC_Immediately
                req.ForceCloseReason = tdapi.THOST_FTDC_FCC_NotForceClose
                rc = self.td.ReqOrderInsert(req, int(ref))
            else:
                order = self.orders[action[1]]
                req = tdapi.CThostFtdcInputOrderActionField()
                req.BrokerID, req.InvestorID, req.UserID = BROKER, USER, USER
                req.InstrumentID, req.ExchangeID, req.OrderSysID = self.s.instrument, order.exchange, order.sys_id
                req.ActionFlag = tdapi.THOST_FTDC_AF_Delete
                rc = self.td.ReqOrderAction(req, 0)
            if rc != 0:
                with self.lock:
                    self.problems.append(f"{action} returned {rc}")

    @property
    def exchange(self) -> str:
        return "SHFE" if self.s.instrument[:2].islower() else "CZCE"


class TdSpi(tdapi.CThostFtdcTraderSpi):
    def __init__(self, strategy: Strategy) -> None:
        super().__init__()
        self.st = strategy

    def OnFrontConnected(self) -> None:
        req = tdapi.CThostFtdcReqUserLoginField()
        req.BrokerID, req.UserID, req.Password = BROKER, USER, "pw"
        self.st.td.ReqUserLogin(req, 1)

    def OnRspUserLogin(self, pRspUserLogin: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        if pRspInfo is not None and pRspInfo.ErrorID:
            self.st.problems.append(f"login {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")
            self.st.done.set()
            return
        req = tdapi.CThostFtdcSettlementInfoConfirmField()
        req.BrokerID, req.InvestorID = BROKER, USER
        self.st.td.ReqSettlementInfoConfirm(req, 2)

    def OnRspSettlementInfoConfirm(self, *args: Any) -> None:
        self.st.ready.set()

    def OnRtnOrder(self, pOrder: Any) -> None:
        with self.st.lock:
            order = self.st.orders.get(pOrder.OrderRef.strip())
            if order is None:
                self.st.problems.append(f"OnRtnOrder for an order not sent: {pOrder.OrderRef!r}")
                return
            order.status = pOrder.OrderStatus
            order.seen.append(pOrder.OrderStatus + pOrder.OrderSubmitStatus)
            if pOrder.OrderSysID:
                order.sys_id, order.exchange = pOrder.OrderSysID, pOrder.ExchangeID

    def OnRtnTrade(self, pTrade: Any) -> None:
        self.st.on_trade(pTrade)

    def _refused(self, field: Any, info: Any) -> None:
        with self.st.lock:
            order = self.st.orders.get(field.OrderRef.strip())
            if order is not None:
                order.error = info.ErrorID

    def OnRspOrderInsert(self, pInputOrder: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self._refused(pInputOrder, pRspInfo)

    def OnErrRtnOrderInsert(self, pInputOrder: Any, pRspInfo: Any) -> None:
        self._refused(pInputOrder, pRspInfo)

    def OnRspOrderAction(self, pInputOrderAction: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        with self.st.lock:
            self.st.problems.append(f"cancel refused {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")

    def OnRspQryTradingAccount(self, pTradingAccount: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        if pTradingAccount is not None:
            self.st.query_rows.append({name: getattr(pTradingAccount, name) for name in
                                       ("Balance", "Available", "CloseProfit", "Commission", "CurrMargin",
                                        "PositionProfit", "FrozenMargin", "FrozenCommission", "PreBalance")})
        if bIsLast:
            self.st.answered.set()

    def OnRspQryTrade(self, pTrade: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        if pTrade is not None:
            self.st.query_rows.append({"TradeID": pTrade.TradeID, "Price": pTrade.Price, "Volume": pTrade.Volume})
        if bIsLast:
            self.st.answered.set()


class MdSpi(mdapi.CThostFtdcMdSpi):
    def __init__(self, strategy: Strategy) -> None:
        super().__init__()
        self.st = strategy

    def OnFrontConnected(self) -> None:
        self.st.md.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

    def OnRspUserLogin(self, *args: Any) -> None:
        self.st.md.SubscribeMarketData([self.st.s.instrument.encode()], 1)

    def OnRtnDepthMarketData(self, pDepthMarketData: Any) -> None:
        self.st.on_tick(pDepthMarketData)


def query(strategy: Strategy, method: str, field: Any) -> list[dict[str, Any]]:
    strategy.query_rows, strategy.answered = [], threading.Event()
    assert getattr(strategy.td, method)(field, 90) == 0
    assert strategy.answered.wait(TIMEOUT), f"no answer to {method}"
    return strategy.query_rows


def run(scenario: Scenario, db: Path, flow: Path) -> dict[str, Any]:
    """Run the strategy once on a fresh database; what it traded, what was refused, the final account."""
    front = f"{scenario.front}&trader.db={db}&trader.flow_control=false"
    strategy = Strategy(scenario, front)
    strategy.td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(flow) + "/td_")
    strategy.md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(str(flow) + "/md_")
    try:
        td_spi = TdSpi(strategy)
        strategy.td.RegisterSpi(td_spi)
        strategy.td.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
        strategy.td.SubscribePublicTopic(tdapi.THOST_TERT_QUICK)
        strategy.td.RegisterFront(front)
        strategy.td.Init()
        assert strategy.ready.wait(TIMEOUT), "td login and confirmation"
        md_spi = MdSpi(strategy)
        strategy.md.RegisterSpi(md_spi)
        strategy.md.RegisterFront(front)
        strategy.md.Init()
        assert strategy.done.wait(TIMEOUT), f"the strategy did not finish: {strategy.ticks} ticks, {strategy.problems}"
        assert not strategy.problems, strategy.problems
        account = query(strategy, "ReqQryTradingAccount", tdapi.CThostFtdcQryTradingAccountField())
        queried = query(strategy, "ReqQryTrade", tdapi.CThostFtdcQryTradeField())
    finally:
        strategy.md.Release()
        strategy.td.Release()
    with strategy.lock:
        return {
            "trades": list(strategy.trades),
            "queried": sorted([row["TradeID"], row["Price"], row["Volume"]] for row in queried),
            "orders": {ref: (o.status, o.error, tuple(o.seen)) for ref, o in strategy.orders.items()},
            "account": account[0] if account else None,
        }


def check_money(scenario: Scenario, result: dict[str, Any]) -> None:
    """The final account against the trades, worked by hand (see the module docstring)."""
    rates = rates_for(scenario.instrument)
    m = scenario.multiplier
    turnover = {"0": 0.0, "1": 0.0}
    fee = 0.0
    for _, _, direction, offset, price, volume, *_ in result["trades"]:
        turnover[direction] += price * volume * m
        by_money, by_volume = {
            "0": (rates.OpenRatioByMoney, rates.OpenRatioByVolume),
            "3": (rates.CloseTodayRatioByMoney, rates.CloseTodayRatioByVolume),
        }.get(offset, (rates.CloseRatioByMoney, rates.CloseRatioByVolume))
        fee += price * volume * m * by_money + volume * by_volume
    account = result["account"]
    assert account is not None
    assert account["CloseProfit"] == pytest.approx(turnover["1"] - turnover["0"], abs=1e-6)
    assert account["Commission"] == pytest.approx(fee, abs=1e-6)
    assert account["PositionProfit"] == 0 and account["CurrMargin"] == pytest.approx(0, abs=1e-6)
    assert account["FrozenMargin"] == 0 and account["FrozenCommission"] == 0
    assert account["Balance"] == pytest.approx(10_000_000 + account["CloseProfit"] - account["Commission"], abs=1e-6)


def run_in_a_process(name: str, folder: Path) -> dict[str, Any]:
    """One run of a scenario in a process of its own (as ``ctpshim run`` runs a backtest)."""
    folder.mkdir()
    environment = {k: v for k, v in os.environ.items() if k != "CTPSHIM_FRONT"}
    done = subprocess.run([sys.executable, "-m", "tests.broker.test_determinism", name, str(folder)],
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT), env=environment)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", list(SCENARIOS), ids=["replay", "sim", "next-order-from-OnRtnTrade"])
def test_the_same_strategy_twice_gives_the_same_trades_and_money(name, tmp_path):
    scenario = SCENARIOS[name]
    first, second = (run_in_a_process(name, tmp_path / run_name) for run_name in ("first", "second"))
    assert first["trades"] == second["trades"]
    assert first["orders"] == second["orders"]
    assert first["account"] == second["account"]
    # What the strategy exercised: fills, and for the periodic one a resting order and a cancel.
    trades = first["trades"]
    assert len(trades) >= 8, trades
    assert first["queried"] == sorted([t[0], t[4], t[5]] for t in trades)  # ReqQryTrade agrees with OnRtnTrade
    assert all(len(t[0]) == 12 for t in trades)  # TradeID right-aligned in 12 characters (SIM_TRADING.md 0.6)
    if scenario.mode == "periodic":
        statuses = [o[0] for o in first["orders"].values()]
        assert tdapi.THOST_FTDC_OST_Canceled in statuses
        assert any("33" in o[2] for o in first["orders"].values())  # queued unfilled at some point
        assert any(seen[0] == "1" for o in first["orders"].values() for seen in o[2])  # a partial fill
        # A close with nothing (today's) to close is refused with the exchange's own code
        # (SIM_TRADING.md 0.2): SHFE 50 for close-today, CZCE 30.
        refused = {o[1] for o in first["orders"].values()} - {0}
        assert refused <= ({50} if scenario.instrument == "ru1901" else {30}), refused
    if scenario.window:
        start, end = scenario.window
        assert all(start <= t[7] < end for t in trades)  # the recorded stamps: matched on the ticks played
        # SHFE: TradeDate the calendar day of the night session, TradingDay the next (SIM_TRADING.md 0.6)
        assert {(t[6], t[8]) for t in trades} == {("20181008", "20181009")}
    check_money(scenario, first)


if __name__ == "__main__":
    chosen, where = SCENARIOS[sys.argv[1]], Path(sys.argv[2])
    print(json.dumps(run(chosen, where / "trader.sqlite", where)))
