"""A stand-in for openctp-ctp's ``mdapi``/``tdapi`` modules, for the pass-through's data path.

No real front is reachable from the tests, so this plays one: its field classes are the real
openctp-ctp classes (SWIG objects, as a real front's callbacks carry), and its API answers
requests from its own thread, as the CTP library does.  Every call it receives is recorded.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class StandIn:
    """Looks like ``openctp_ctp.mdapi`` (or ``tdapi``) to the bridge."""

    def __init__(self, real: Any, flavour: str) -> None:
        self.real = real
        self.flavour = flavour
        self.calls: list[tuple[Any, ...]] = []
        self.apis: list[Any] = []
        stand_in = self

        class Spi:
            def __init__(self) -> None:
                pass

        class Api(_ScriptedApi):
            owner = stand_in

        if flavour == "mdapi":
            self.CThostFtdcMdSpi = Spi
            self.CThostFtdcMdApi = Api
        else:
            self.CThostFtdcTraderSpi = Spi
            self.CThostFtdcTraderApi = Api

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)  # the real field classes and constants


class _ScriptedApi:
    owner: StandIn

    @classmethod
    def CreateFtdcMdApi(cls, *args: Any) -> Any:
        return cls._make("CreateFtdcMdApi", args)

    @classmethod
    def CreateFtdcTraderApi(cls, *args: Any) -> Any:
        return cls._make("CreateFtdcTraderApi", args)

    @classmethod
    def _make(cls, factory: str, args: tuple[Any, ...]) -> Any:
        api = cls()
        api.spi = None
        api.jobs: queue.Queue[Callable[[], None] | None] = queue.Queue()
        api.thread = threading.Thread(target=api._run, name="stand-in-openctp", daemon=True)
        cls.owner.calls.append((factory, *args))
        cls.owner.apis.append(api)
        return api

    def _run(self) -> None:
        while True:
            job = self.jobs.get(timeout=30)
            if job is None:
                return
            job()

    def _later(self, callback: str, *args: Any) -> None:
        self.jobs.put(lambda: getattr(self.spi, callback)(*args) if self.spi is not None else None)

    def _field(self, name: str, **values: Any) -> Any:
        obj = getattr(self.owner.real, name)()
        for key, value in values.items():
            setattr(obj, key, value)
        return obj

    def __getattr__(self, name: str) -> Any:
        # Anything not scripted below is recorded and answered with 0, as a sent request is.
        def record(*args: Any) -> int:
            self.owner.calls.append((name, *args))
            return 0

        return record

    def RegisterSpi(self, spi: Any) -> None:
        self.owner.calls.append(("RegisterSpi", spi))
        self.spi = spi

    def Init(self) -> None:
        self.owner.calls.append(("Init",))
        self.thread.start()
        self._later("OnFrontConnected")

    def Release(self) -> None:
        self.owner.calls.append(("Release",))
        self.jobs.put(None)

    def GetTradingDay(self) -> str:
        return "20261120"

    def drop(self, reason: int) -> None:
        """The link breaks and comes back, as the CTP library reports it."""
        self._later("OnFrontDisconnected", reason)
        self._later("OnFrontConnected")

    def burst(self, instrument: str, count: int) -> None:
        """``count`` ticks as fast as the thread can send them, Volume numbering them 1..count."""
        def send() -> None:
            for number in range(1, count + 1):
                tick = make_real_tick(self.owner.real, instrument)
                tick.Volume = number
                if self.spi is not None:
                    self.spi.OnRtnDepthMarketData(tick)

        self.jobs.put(send)

    def ReqUserLogin(self, request: Any, request_id: int) -> int:
        self.owner.calls.append(("ReqUserLogin", request, request_id))
        response = self._field("CThostFtdcRspUserLoginField", TradingDay="20261120", BrokerID=request.BrokerID,
                               UserID=request.UserID, SystemName="TradingHosting", FrontID=3, SessionID=-12345,
                               MaxOrderRef="100")
        info = self._field("CThostFtdcRspInfoField", ErrorID=0, ErrorMsg="CTP:OK")
        self._later("OnRspUserLogin", response, info, request_id, True)
        return 0

    def SubscribeMarketData(self, ids: list[Any], count: int) -> int:
        self.owner.calls.append(("SubscribeMarketData", list(ids), count))
        for index, instrument in enumerate(ids[:count]):
            name = instrument.decode()
            specific = self._field("CThostFtdcSpecificInstrumentField", InstrumentID=name)
            info = self._field("CThostFtdcRspInfoField", ErrorID=0, ErrorMsg="CTP:No Error")
            self._later("OnRspSubMarketData", specific, info, 0, index == count - 1)
        for instrument in ids[:count]:
            self._later("OnRtnDepthMarketData", make_real_tick(self.owner.real, instrument.decode()))
        return 0

    def ReqOrderInsert(self, order: Any, request_id: int) -> int:
        self.owner.calls.append(("ReqOrderInsert", order, request_id))
        echoed = self._field("CThostFtdcOrderField", InstrumentID=order.InstrumentID, OrderRef=order.OrderRef,
                             Direction=order.Direction, LimitPrice=order.LimitPrice,
                             VolumeTotalOriginal=order.VolumeTotalOriginal, OrderStatus="3",
                             StatusMsg="Not traded", FrontID=3, SessionID=-12345)
        self._later("OnRtnOrder", echoed)
        return 0

    def ReqQryInvestorPosition(self, query: Any, request_id: int) -> int:
        self.owner.calls.append(("ReqQryInvestorPosition", query, request_id))
        self._later("OnRspQryInvestorPosition", None, None, request_id, True)  # no records: NULL pointers
        return 0


def make_real_tick(real: Any, instrument: str) -> Any:
    """An openctp depth-market-data object with a value in (nearly) every member."""
    tick = real.CThostFtdcDepthMarketDataField()
    values = {
        "TradingDay": "20261120", "InstrumentID": instrument, "ExchangeID": "SHFE", "ExchangeInstID": instrument,
        "LastPrice": 3123.0, "PreSettlementPrice": 3100.0, "PreClosePrice": 3101.0, "PreOpenInterest": 1000.0,
        "OpenPrice": 3110.0, "HighestPrice": 3130.0, "LowestPrice": 3099.0, "Volume": 4567,
        "Turnover": 142_000_000.0, "OpenInterest": 1234.0, "ClosePrice": 1.7976931348623157e308,
        "SettlementPrice": 1.7976931348623157e308, "UpperLimitPrice": 3348.0, "LowerLimitPrice": 2852.0,
        "UpdateTime": "09:35:01", "UpdateMillisec": 500, "BidPrice1": 3122.0, "BidVolume1": 12,
        "AskPrice1": 3124.0, "AskVolume1": 7, "AveragePrice": 31095.2, "ActionDay": "20261120",
        "BandingUpperPrice": 0.0, "BandingLowerPrice": 0.0,
    }
    for name, value in values.items():
        setattr(tick, name, value)
    return tick
