"""A plain openctp-ctp trading program: every callback it receives, as JSON lines.

Written as people write them against SimNow: ``from openctp_ctp import tdapi``, a Spi subclass,
``SubscribePrivateTopic``/``SubscribePublicTopic``, ``RegisterFront``, ``Init``, then from the
callbacks: authenticate on ``OnFrontConnected``, log in on ``OnRspAuthenticate``, confirm the
settlement on ``OnRspUserLogin`` (after every reconnection). The main thread then works through
its session, waiting (bounded) for each answer.

Usage::

    python td_program.py FRONT [--mode session|positions|burst|login] [--instrument ID]
                         [--broker B] [--user U] [--logins L] [--out FILE] [--timeout S]

Modes:

* ``session``: query the instrument, the account, the positions and the latest price; buy one lot
  at the upper limit (fills), rest one buy at the lower limit and cancel it, send an order for an
  unknown instrument and one for more lots than the money covers (both refused), then query the
  positions and the account again.
* ``positions``: query the positions (and the account) once.
* ``burst``: send five queries back to back and note their return codes (flow control), then the
  same queries again, each retried a second later while the counter refuses it (as vn.py does).
* ``login``: wait for the L-th login, then query the account once.

Every callback is one JSON line ``{"event": "OnRtnOrder", "args": [{...all fields...}]}`` (structs
as dicts of all their members, ``null`` for a NULL pointer); every request one line
``{"event": "call", "method": ..., "rc": ..., "nRequestID": ...}``. Queries refused by flow control
(-2, -3) are sent again a second later. The last line is ``done`` (exit 0) or ``fail`` with the
reason (exit 1).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any, Callable

from openctp_ctp import tdapi

from program_output import Output, as_json, ctp_libraries

DBL_MAX = 1.7976931348623157e308


class Failure(Exception):
    pass


class Trader(tdapi.CThostFtdcTraderSpi):
    def __init__(self, api: Any, options: argparse.Namespace, out: Output) -> None:
        tdapi.CThostFtdcTraderSpi.__init__(self)
        self.api = api
        self.options = options
        self.out = out
        self.cond = threading.Condition()
        self.events: list[tuple[str, tuple[Any, ...]]] = []  # (name, args as JSON values)
        self.finished: dict[int, list[Any]] = {}  # request id -> its records, once bIsLast came
        self.pending: dict[int, list[Any]] = {}
        self.logins = 0
        self.login: dict[str, Any] | None = None
        self.confirmed = 0

    # -- recording ---------------------------------------------------------------------------

    def record(self, name: str, *args: Any) -> tuple[Any, ...]:
        values = tuple(as_json(a) for a in args)
        self.out.write({"event": name, "args": list(values)})
        with self.cond:
            self.events.append((name, values))
            self.cond.notify_all()
        return values

    def call(self, method: str, rc: int, request_id: int = 0, **details: Any) -> int:
        self.out.write({"event": "call", "method": method, "rc": rc, "nRequestID": request_id, **details})
        return rc

    def answer(self, name: str, record: Any, info: Any, request_id: int, last: bool) -> None:
        values = self.record(name, record, info, request_id, last)
        with self.cond:
            rows = self.pending.setdefault(request_id, [])
            if values[0] is not None:
                rows.append(values[0])
            if last:
                self.finished[request_id] = self.pending.pop(request_id)
            self.cond.notify_all()

    # -- start-up, after every connection ----------------------------------------------------

    def OnFrontConnected(self) -> None:
        self.record("OnFrontConnected")
        req = tdapi.CThostFtdcReqAuthenticateField()
        req.BrokerID, req.UserID = self.options.broker, self.options.user
        req.AppID, req.AuthCode = "simnow_client_test", "0000000000000000"
        self.call("ReqAuthenticate", self.api.ReqAuthenticate(req, 1), 1)

    def OnFrontDisconnected(self, nReason: int) -> None:
        self.record("OnFrontDisconnected", nReason)

    def OnHeartBeatWarning(self, nTimeLapse: int) -> None:
        self.record("OnHeartBeatWarning", nTimeLapse)

    def OnRspAuthenticate(self, pRspAuthenticateField: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.record("OnRspAuthenticate", pRspAuthenticateField, pRspInfo, nRequestID, bIsLast)
        if pRspInfo is not None and pRspInfo.ErrorID != 0:
            return
        req = tdapi.CThostFtdcReqUserLoginField()
        req.BrokerID, req.UserID, req.Password = self.options.broker, self.options.user, self.options.password
        self.call("ReqUserLogin", self.api.ReqUserLogin(req, 2), 2)

    def OnRspUserLogin(self, pRspUserLogin: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        values = self.record("OnRspUserLogin", pRspUserLogin, pRspInfo, nRequestID, bIsLast)
        if pRspInfo is not None and pRspInfo.ErrorID != 0:
            return
        self.out.write({"event": "GetTradingDay", "value": self.api.GetTradingDay()})
        with self.cond:
            self.logins += 1
            self.login = values[0]
            self.cond.notify_all()
        req = tdapi.CThostFtdcSettlementInfoConfirmField()
        req.BrokerID, req.InvestorID = self.options.broker, self.options.user
        self.call("ReqSettlementInfoConfirm", self.api.ReqSettlementInfoConfirm(req, 3), 3)

    def OnRspSettlementInfoConfirm(self, pSettlementInfoConfirm: Any, pRspInfo: Any, nRequestID: int,
                                   bIsLast: bool) -> None:
        self.record("OnRspSettlementInfoConfirm", pSettlementInfoConfirm, pRspInfo, nRequestID, bIsLast)
        with self.cond:
            if pRspInfo is None or pRspInfo.ErrorID == 0:
                self.confirmed += 1
            self.cond.notify_all()

    # -- answers ------------------------------------------------------------------------------

    def OnRspQryInstrument(self, pInstrument: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.answer("OnRspQryInstrument", pInstrument, pRspInfo, nRequestID, bIsLast)

    def OnRspQryTradingAccount(self, pTradingAccount: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.answer("OnRspQryTradingAccount", pTradingAccount, pRspInfo, nRequestID, bIsLast)

    def OnRspQryInvestorPosition(self, pInvestorPosition: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.answer("OnRspQryInvestorPosition", pInvestorPosition, pRspInfo, nRequestID, bIsLast)

    def OnRspQryDepthMarketData(self, pDepthMarketData: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.answer("OnRspQryDepthMarketData", pDepthMarketData, pRspInfo, nRequestID, bIsLast)

    def OnRspQryOrder(self, pOrder: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.answer("OnRspQryOrder", pOrder, pRspInfo, nRequestID, bIsLast)

    def OnRspQryTrade(self, pTrade: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.answer("OnRspQryTrade", pTrade, pRspInfo, nRequestID, bIsLast)

    def OnRspError(self, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.record("OnRspError", pRspInfo, nRequestID, bIsLast)

    def OnRspOrderInsert(self, pInputOrder: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.record("OnRspOrderInsert", pInputOrder, pRspInfo, nRequestID, bIsLast)

    def OnErrRtnOrderInsert(self, pInputOrder: Any, pRspInfo: Any) -> None:
        self.record("OnErrRtnOrderInsert", pInputOrder, pRspInfo)

    def OnRspOrderAction(self, pInputOrderAction: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.record("OnRspOrderAction", pInputOrderAction, pRspInfo, nRequestID, bIsLast)

    def OnErrRtnOrderAction(self, pOrderAction: Any, pRspInfo: Any) -> None:
        self.record("OnErrRtnOrderAction", pOrderAction, pRspInfo)

    def OnRtnOrder(self, pOrder: Any) -> None:
        self.record("OnRtnOrder", pOrder)

    def OnRtnTrade(self, pTrade: Any) -> None:
        self.record("OnRtnTrade", pTrade)

    def OnRtnInstrumentStatus(self, pInstrumentStatus: Any) -> None:
        self.record("OnRtnInstrumentStatus", pInstrumentStatus)

    # -- the main thread's helpers ------------------------------------------------------------

    def wait(self, condition: Callable[[], Any], what: str) -> Any:
        deadline = time.monotonic() + self.options.timeout
        with self.cond:
            while True:
                value = condition()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure(f"no answer in {self.options.timeout:g} s: {what}")
                self.cond.wait(left)

    def query(self, method: Callable[..., int], name: str, field: Any, request_id: int) -> list[dict[str, Any]]:
        """Send a query (again a second later while flow control refuses it); its records."""
        for _ in range(int(self.options.timeout) + 1):
            rc = self.call(name, method(field, request_id), request_id)
            if rc == 0:
                break
            if rc not in (-2, -3):
                raise Failure(f"{name} returned {rc}")
            time.sleep(1)
        else:
            raise Failure(f"{name} still refused by flow control")
        self.wait(lambda: request_id in self.finished, name)
        return self.finished[request_id]

    def order_status(self, ref: str) -> str | None:
        statuses = [args[0]["OrderStatus"] for name, args in self.events
                    if name == "OnRtnOrder" and args[0]["OrderRef"].strip() == ref]
        return statuses[-1] if statuses else None

    def refusal(self, ref: str) -> bool:
        return any(name in ("OnRspOrderInsert", "OnErrRtnOrderInsert") and args[0]["OrderRef"].strip() == ref
                   for name, args in self.events)


def new_order(options: argparse.Namespace, instrument: str, exchange: str, ref: str, price: float,
              volume: int) -> Any:
    req = tdapi.CThostFtdcInputOrderField()
    req.BrokerID, req.InvestorID, req.UserID = options.broker, options.user, options.user
    req.InstrumentID, req.ExchangeID, req.OrderRef = instrument, exchange, ref
    req.Direction = tdapi.THOST_FTDC_D_Buy
    req.CombOffsetFlag = tdapi.THOST_FTDC_OF_Open
    req.CombHedgeFlag = tdapi.THOST_FTDC_HF_Speculation
    req.OrderPriceType = tdapi.THOST_FTDC_OPT_LimitPrice
    req.LimitPrice = price
    req.VolumeTotalOriginal = volume
    req.TimeCondition = tdapi.THOST_FTDC_TC_GFD
    req.VolumeCondition = tdapi.THOST_FTDC_VC_AV
    req.MinVolume = 1
    req.ContingentCondition = tdapi.THOST_FTDC_CC_Immediately
    req.ForceCloseReason = tdapi.THOST_FTDC_FCC_NotForceClose
    return req


def session(spi: Trader, api: Any, options: argparse.Namespace) -> None:
    instrument = options.instrument
    query = tdapi.CThostFtdcQryInstrumentField()
    query.InstrumentID = instrument
    found = spi.query(api.ReqQryInstrument, "ReqQryInstrument", query, 10)
    if len(found) != 1:
        raise Failure(f"ReqQryInstrument({instrument}) answered {len(found)} records")
    exchange, tick = found[0]["ExchangeID"], found[0]["PriceTick"]
    spi.query(api.ReqQryTradingAccount, "ReqQryTradingAccount", tdapi.CThostFtdcQryTradingAccountField(), 11)
    spi.query(api.ReqQryInvestorPosition, "ReqQryInvestorPosition", tdapi.CThostFtdcQryInvestorPositionField(), 12)
    query = tdapi.CThostFtdcQryDepthMarketDataField()
    query.InstrumentID = instrument
    quotes = spi.query(api.ReqQryDepthMarketData, "ReqQryDepthMarketData", query, 13)
    if len(quotes) != 1 or not 0 < quotes[0]["LowerLimitPrice"] < quotes[0]["UpperLimitPrice"] < DBL_MAX:
        raise Failure(f"ReqQryDepthMarketData({instrument}) answered {quotes}")
    upper, lower = quotes[0]["UpperLimitPrice"], quotes[0]["LowerLimitPrice"]

    first = int((spi.login or {}).get("MaxOrderRef") or 0) + 1
    fill, rest, unknown, costly = (str(first + i) for i in range(4))
    spi.call("ReqOrderInsert", api.ReqOrderInsert(new_order(options, instrument, exchange, fill, upper, 1), 20), 20,
             OrderRef=fill)
    spi.wait(lambda: spi.order_status(fill) == tdapi.THOST_FTDC_OST_AllTraded
             and any(n == "OnRtnTrade" and a[0]["OrderRef"].strip() == fill for n, a in spi.events),
             "the crossing order's fill")

    spi.call("ReqOrderInsert", api.ReqOrderInsert(new_order(options, instrument, exchange, rest, lower, 1), 21), 21,
             OrderRef=rest)
    spi.wait(lambda: spi.order_status(rest) == tdapi.THOST_FTDC_OST_NoTradeQueueing, "the resting order queued")
    resting = [a[0] for n, a in spi.events if n == "OnRtnOrder" and a[0]["OrderRef"].strip() == rest][-1]
    action = tdapi.CThostFtdcInputOrderActionField()
    action.BrokerID, action.InvestorID, action.UserID = options.broker, options.user, options.user
    action.InstrumentID, action.ExchangeID, action.OrderSysID = instrument, resting["ExchangeID"], resting["OrderSysID"]
    action.ActionFlag = tdapi.THOST_FTDC_AF_Delete
    spi.call("ReqOrderAction", api.ReqOrderAction(action, 22), 22, OrderSysID=resting["OrderSysID"])
    spi.wait(lambda: spi.order_status(rest) == tdapi.THOST_FTDC_OST_Canceled, "the cancel")

    spi.call("ReqOrderInsert", api.ReqOrderInsert(new_order(options, "zz9999", exchange, unknown, upper, 1), 23), 23,
             OrderRef=unknown)
    spi.wait(lambda: spi.refusal(unknown), "the refusal of an unknown instrument")
    spi.call("ReqOrderInsert", api.ReqOrderInsert(
        new_order(options, instrument, exchange, costly, upper, options.costly_lots), 24), 24, OrderRef=costly)
    spi.wait(lambda: spi.refusal(costly) or spi.order_status(costly), "the answer to an order the money cannot cover")

    spi.query(api.ReqQryInvestorPosition, "ReqQryInvestorPosition", tdapi.CThostFtdcQryInvestorPositionField(), 30)
    spi.query(api.ReqQryTradingAccount, "ReqQryTradingAccount", tdapi.CThostFtdcQryTradingAccountField(), 31)


def positions(spi: Trader, api: Any, options: argparse.Namespace) -> None:
    spi.query(api.ReqQryInvestorPosition, "ReqQryInvestorPosition", tdapi.CThostFtdcQryInvestorPositionField(), 40)
    spi.query(api.ReqQryTradingAccount, "ReqQryTradingAccount", tdapi.CThostFtdcQryTradingAccountField(), 41)


def burst(spi: Trader, api: Any, options: argparse.Namespace) -> None:
    queries = [(api.ReqQryTradingAccount, "ReqQryTradingAccount", tdapi.CThostFtdcQryTradingAccountField),
               (api.ReqQryInvestorPosition, "ReqQryInvestorPosition", tdapi.CThostFtdcQryInvestorPositionField),
               (api.ReqQryTradingAccount, "ReqQryTradingAccount", tdapi.CThostFtdcQryTradingAccountField),
               (api.ReqQryInvestorPosition, "ReqQryInvestorPosition", tdapi.CThostFtdcQryInvestorPositionField),
               (api.ReqQryTradingAccount, "ReqQryTradingAccount", tdapi.CThostFtdcQryTradingAccountField)]
    for number, (method, name, field) in enumerate(queries):
        spi.call(name, method(field(), 50 + number), 50 + number, burst=True)
    for number, (method, name, field) in enumerate(queries[:2]):
        spi.query(method, name, field(), 60 + number)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("front", help="the trading front, e.g. tcp://127.0.0.1:7780")
    parser.add_argument("--mode", choices=("session", "positions", "burst", "login"), default="session")
    parser.add_argument("--instrument", default="ru1901")
    parser.add_argument("--broker", default="9999")
    parser.add_argument("--user", default="000001")
    parser.add_argument("--password", default="simnow-password")
    parser.add_argument("--logins", type=int, default=1, help="login: the logins to wait for")
    parser.add_argument("--costly-lots", type=int, default=100, help="session: lots of the order the money cannot cover")
    parser.add_argument("--out", default=None, help="a file for the JSON lines (default stdout)")
    parser.add_argument("--timeout", type=float, default=15.0, help="seconds any one answer may take")
    parser.add_argument("--flow", default="", help="the flow directory prefix")
    options = parser.parse_args()

    out = Output(options.out)
    out.write({"event": "start", "module": tdapi.__file__, "version": tdapi.CThostFtdcTraderApi.GetApiVersion(),
               "pid": os.getpid()})
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(options.flow)
    spi = Trader(api, options, out)
    api.RegisterSpi(spi)
    api.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
    api.SubscribePublicTopic(tdapi.THOST_TERT_QUICK)
    api.RegisterFront(options.front)
    api.Init()
    out.write({"event": "libraries", "paths": ctp_libraries()})
    code = 0
    try:
        spi.wait(lambda: spi.confirmed >= options.logins and spi.logins >= options.logins,
                 f"login {options.logins} and its settlement confirmation")
        if options.mode == "session":
            session(spi, api, options)
        elif options.mode == "positions":
            positions(spi, api, options)
        elif options.mode == "burst":
            burst(spi, api, options)
        else:
            spi.query(api.ReqQryTradingAccount, "ReqQryTradingAccount", tdapi.CThostFtdcQryTradingAccountField(), 70)
    except Failure as exc:
        out.write({"event": "fail", "why": str(exc)})
        code = 1
    api.Release()
    if code == 0:
        out.write({"event": "done", "logins": spi.logins})
    out.close()
    return code


if __name__ == "__main__":
    sys.exit(main())
