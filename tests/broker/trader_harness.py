"""A program for the order tests: one td and one md API on one front, as a user writes it.

:class:`Program` logs the td API in (and confirms, unless told not to), subscribes the md API,
records every tick it is given and every td callback in the order the program received them,
and lets a test send orders from ``OnRtnDepthMarketData`` (:meth:`Program.on_tick`), so the
order meets the book of the tick the program was looking at.  Every wait has a timeout.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ctpshim import mdapi, tdapi

BROKER, USER = "9999", "orders2"
WAIT = 10.0
MAX_TICKS = 20_000  # ticks kept per program (the market runs on at speed=max until released)
TICK_MEMBERS = ("InstrumentID", "TradingDay", "ActionDay", "UpdateTime", "UpdateMillisec", "LastPrice", "Volume",
                "UpperLimitPrice", "LowerLimitPrice", "BidPrice1", "BidVolume1", "AskPrice1", "AskVolume1",
                "BidPrice2", "BidVolume2", "AskPrice2", "AskVolume2")
RECORDED = ("OnFrontConnected", "OnRspUserLogin", "OnRspSettlementInfoConfirm", "OnRtnOrder", "OnRtnTrade",
            "OnRspOrderInsert", "OnErrRtnOrderInsert", "OnRspOrderAction", "OnErrRtnOrderAction",
            "OnRspQryTradingAccount")


@dataclass
class Tick:
    """What the program saw of one tick (a copy: the field object is not kept)."""

    index: int  # 0-based, per instrument, in the order the program was given them
    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["values"][name]
        except KeyError:
            raise AttributeError(name) from None


class _TdSpi(tdapi.CThostFtdcTraderSpi):
    def __init__(self, program: "Program") -> None:
        super().__init__()
        self.program = program

    def __getattribute__(self, name: str) -> Any:
        if name in RECORDED:
            program = object.__getattribute__(self, "program")
            return lambda *args: program._record(name, args)
        return object.__getattribute__(self, name)


class _MdSpi(mdapi.CThostFtdcMdSpi):
    def __init__(self, program: "Program") -> None:
        super().__init__()
        self.program = program

    def OnFrontConnected(self) -> None:
        self.program.md.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)

    def OnRspUserLogin(self, *args: Any) -> None:
        ids = [i.encode() for i in self.program.instruments]
        self.program.md.SubscribeMarketData(ids, len(ids))

    def OnRtnDepthMarketData(self, tick: Any) -> None:
        self.program._tick(tick)


class Program:
    """One md+td program on ``front`` (see the module docstring).  Use as a context manager."""

    def __init__(self, folder: Path, front: str, instruments: tuple[str, ...], *, confirm: bool = True,
                 md: bool = True) -> None:
        self.front = front
        self.instruments = instruments
        self.cond = threading.Condition()
        self.events: list[tuple[str, tuple[Any, ...]]] = []
        self.ticks: dict[str, list[Tick]] = {i: [] for i in instruments}
        self.trade_seen_at: dict[str, int] = {}  # TradeID -> ticks of its instrument delivered when it arrived
        self.hook: Callable[[Tick], None] | None = None
        self.trade_hook: Callable[[Any], None] | None = None  # run in OnRtnTrade, after recording it
        self.hook_errors: list[BaseException] = []
        self.next_ref = 0
        self.request = 10
        self._md_started = False
        folder.mkdir(parents=True, exist_ok=True)
        self.td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(str(folder / "td_"))
        self.md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(str(folder / "md_")) if md else None
        self.td.RegisterSpi(_TdSpi(self))
        self.td.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
        self.td.RegisterFront(front)
        self.td.Init()
        self.wait_for(lambda: self.count("OnFrontConnected"), "OnFrontConnected")
        login = tdapi.CThostFtdcReqUserLoginField()
        login.BrokerID, login.UserID = BROKER, USER
        assert self.td.ReqUserLogin(login, 1) == 0
        rsp, info = self.wait_for(lambda: self.all("OnRspUserLogin"), "OnRspUserLogin")[0][:2]
        assert info is None or info.ErrorID == 0, info.ErrorMsg
        self.trading_day = rsp.TradingDay
        if confirm:
            self.confirm()

    # -- set-up ------------------------------------------------------------------------------------

    def confirm(self) -> None:
        field = tdapi.CThostFtdcSettlementInfoConfirmField()
        field.BrokerID, field.InvestorID = BROKER, USER
        before = self.count("OnRspSettlementInfoConfirm")
        assert self.td.ReqSettlementInfoConfirm(field, 2) == 0
        self.wait_for(lambda: self.count("OnRspSettlementInfoConfirm") > before, "OnRspSettlementInfoConfirm")

    def on_tick(self, hook: Callable[[Tick], None]) -> None:
        """Run ``hook(tick)`` in OnRtnDepthMarketData for every tick from now on (and start the md
        API if it is not running yet)."""
        self.hook = hook
        if self.md is not None and not self._md_started:
            self._md_started = True
            self.md.RegisterSpi(_MdSpi(self))
            self.md.RegisterFront(self.front)
            self.md.Init()

    def close(self) -> None:
        if self.md is not None:
            self.md.Release()
        self.td.Release()

    def __enter__(self) -> "Program":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ----------------------------------------------------------------------------------

    def order(self, instrument: str, exchange: str, price: float, volume: int = 1, *, direction: str = "0",
              offset: str = "0", ref: str | None = None, price_type: str = "2", time_condition: str = "3",
              volume_condition: str = "1", min_volume: int = 1, broker: str = BROKER, investor: str = USER) -> str:
        """ReqOrderInsert (by default a GFD limit buy to open, speculation, of the login's
        account); returns its OrderRef."""
        with self.cond:
            if ref is None:
                self.next_ref += 1
                ref = str(self.next_ref)
            self.request += 1
            request_id = self.request
        field = tdapi.CThostFtdcInputOrderField()
        field.BrokerID, field.InvestorID, field.UserID = broker, investor, USER
        field.InstrumentID, field.ExchangeID, field.OrderRef = instrument, exchange, ref
        field.OrderPriceType, field.Direction, field.CombOffsetFlag = price_type, direction, offset
        field.CombHedgeFlag, field.LimitPrice, field.VolumeTotalOriginal = "1", price, volume
        field.TimeCondition, field.VolumeCondition, field.MinVolume = time_condition, volume_condition, min_volume
        field.ContingentCondition, field.ForceCloseReason = "1", "0"
        assert self.td.ReqOrderInsert(field, request_id) == 0
        return ref

    def cancel(self, instrument: str, exchange: str, ref: str) -> None:
        """ReqOrderAction by this session's OrderRef."""
        field = tdapi.CThostFtdcInputOrderActionField()
        field.BrokerID, field.InvestorID, field.UserID = BROKER, USER, USER
        field.InstrumentID, field.ExchangeID, field.OrderRef, field.ActionFlag = instrument, exchange, ref, "0"
        with self.cond:
            self.request += 1
            request_id = self.request
        assert self.td.ReqOrderAction(field, request_id) == 0

    def account(self) -> Any:
        """ReqQryTradingAccount's record."""
        before = self.count("OnRspQryTradingAccount")
        with self.cond:
            self.request += 1
            request_id = self.request
        assert self.td.ReqQryTradingAccount(tdapi.CThostFtdcQryTradingAccountField(), request_id) == 0
        self.wait_for(lambda: self.count("OnRspQryTradingAccount") > before, "the account")
        return self.all("OnRspQryTradingAccount")[-1][0]

    # -- what the program received -------------------------------------------------------------------

    def _record(self, name: str, args: tuple[Any, ...]) -> None:
        with self.cond:
            self.events.append((name, args))
            if name == "OnRtnTrade":
                self.trade_seen_at[args[0].TradeID] = len(self.ticks.get(args[0].InstrumentID, ()))
            self.cond.notify_all()
        if name == "OnRtnTrade" and self.trade_hook is not None:
            self._run(self.trade_hook, args[0])

    def _tick(self, tick: Any) -> None:
        with self.cond:
            seen = self.ticks.setdefault(tick.InstrumentID, [])
            if len(seen) >= MAX_TICKS:
                return
            copy = Tick(len(seen), {name: getattr(tick, name) for name in TICK_MEMBERS})
            seen.append(copy)
            self.cond.notify_all()
        hook = self.hook
        if hook is not None:
            self._run(hook, copy)

    def _run(self, hook: Callable[[Any], None], arg: Any) -> None:
        try:
            hook(arg)
        except BaseException as exc:  # a failed assertion in a hook must fail the test, not vanish
            with self.cond:
                self.hook_errors.append(exc)
                self.cond.notify_all()

    def count(self, name: str) -> int:
        with self.cond:
            return sum(event == name for event, _ in self.events)

    def all(self, name: str) -> list[tuple[Any, ...]]:
        with self.cond:
            return [args for event, args in self.events if event == name]

    def wait_for(self, condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        """Wait (on the condition, bounded) until ``condition()`` is truthy; returns its value."""
        result: list[Any] = []

        def check() -> bool:
            if self.hook_errors:
                raise self.hook_errors[0]
            value = condition()
            result[:] = [value]
            return bool(value)

        with self.cond:
            if not self.cond.wait_for(check, timeout):
                raise AssertionError(f"timed out after {timeout} s waiting for {what}; td callbacks: "
                                     f"{[(e, _brief(a)) for e, a in self.events][-30:]}")
        return result[0]

    def story(self, ref: str) -> list[tuple[Any, ...]]:
        """What the program heard of order ``ref``, in order: ("order", OrderStatus,
        OrderSubmitStatus, StatusMsg, VolumeTraded), ("trade", Price, Volume), ("rsp", ErrorID),
        ("err", ErrorID)."""
        told: list[tuple[Any, ...]] = []
        with self.cond:
            for name, args in self.events:
                field = args[0] if args else None
                if field is None or getattr(field, "OrderRef", "").strip() != ref:
                    continue
                if name == "OnRtnOrder":
                    told.append(("order", field.OrderStatus, field.OrderSubmitStatus, field.StatusMsg,
                                 field.VolumeTraded))
                elif name == "OnRtnTrade":
                    told.append(("trade", field.Price, field.Volume))
                elif name in ("OnRspOrderInsert", "OnErrRtnOrderInsert"):
                    info = args[1]
                    told.append(("rsp" if name == "OnRspOrderInsert" else "err", info.ErrorID if info else 0))
        return told

    def reports(self, ref: str) -> list[Any]:
        """The OnRtnOrder fields of order ``ref``."""
        return [args[0] for args in self.all("OnRtnOrder") if args[0].OrderRef.strip() == ref]

    def trades(self, ref: str) -> list[Any]:
        """The OnRtnTrade fields of order ``ref``."""
        return [args[0] for args in self.all("OnRtnTrade") if args[0].OrderRef.strip() == ref]

    def finished(self, ref: str) -> bool:
        """Order ``ref`` reached a final state (and every trade it reported arrived)."""
        reports = self.reports(ref)
        if not reports or reports[-1].OrderStatus not in ("0", "2", "4", "5"):
            return False
        return sum(t.Volume for t in self.trades(ref)) == reports[-1].VolumeTraded


def _brief(args: tuple[Any, ...]) -> Any:
    field = args[0] if args else None
    if field is None:
        return None
    return {name: getattr(field, name) for name in ("OrderRef", "OrderStatus", "StatusMsg", "Price", "Volume")
            if hasattr(field, name)}
