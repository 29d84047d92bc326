"""A plain openctp-ctp market-data program: what it receives, as JSON lines.

Written as people write them against SimNow: ``from openctp_ctp import mdapi``, a Spi subclass,
``RegisterFront``, ``Init``, the login sent from ``OnFrontConnected`` and the subscription from
``OnRspUserLogin`` (after every reconnection, as CTP requires).

Usage::

    python md_program.py FRONT INSTRUMENT[,INSTRUMENT...] [--ticks N] [--logins L]
                         [--unsubscribe ID --after K] [--out FILE] [--timeout S]

Every callback is one JSON line (``{"event": "OnRtnDepthMarketData", "args": [{...48 fields...}]}``;
structs as dicts of all their members, ``null`` for a NULL pointer), and so is every request's
return code (``{"event": "call", "method": ..., "rc": ...}``). The first line names the loaded
module and the CTP libraries mapped into the process; the last is ``done`` (exit 0) or
``timeout`` (exit 3). The program ends after N ticks received since its L-th login (default 1).
With ``--unsubscribe ID --after K`` it unsubscribes ID after its K-th tick and goes on.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import Any

from openctp_ctp import mdapi

from program_output import Output, as_json, ctp_libraries


class MdSpi(mdapi.CThostFtdcMdSpi):
    def __init__(self, api: Any, options: argparse.Namespace, out: Output) -> None:
        super().__init__()
        self.api = api
        self.options = options
        self.out = out
        self.instruments = [i.encode() for i in options.instruments.split(",") if i]
        self.logins = 0
        self.ticks = 0  # since the last login
        self.total = 0
        self.unsubscribed = False
        self.done = threading.Event()

    def emit(self, event: str, *args: Any) -> None:
        self.out.write({"event": event, "args": [as_json(a) for a in args]})

    def call(self, method: str, rc: int, **details: Any) -> None:
        self.out.write({"event": "call", "method": method, "rc": rc, **details})

    def OnFrontConnected(self) -> None:
        self.emit("OnFrontConnected")
        req = mdapi.CThostFtdcReqUserLoginField()
        req.BrokerID, req.UserID, req.Password = self.options.broker, self.options.user, self.options.password
        self.call("ReqUserLogin", self.api.ReqUserLogin(req, self.logins + 1))

    def OnFrontDisconnected(self, nReason: int) -> None:
        self.emit("OnFrontDisconnected", nReason)

    def OnHeartBeatWarning(self, nTimeLapse: int) -> None:
        self.emit("OnHeartBeatWarning", nTimeLapse)

    def OnRspUserLogin(self, pRspUserLogin: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.emit("OnRspUserLogin", pRspUserLogin, pRspInfo, nRequestID, bIsLast)
        if pRspInfo is not None and pRspInfo.ErrorID != 0:
            return
        self.logins += 1
        self.ticks = 0
        self.out.write({"event": "GetTradingDay", "value": self.api.GetTradingDay()})
        wanted = [i for i in self.instruments
                  if not (self.unsubscribed and i.decode() == self.options.unsubscribe)]
        self.call("SubscribeMarketData", self.api.SubscribeMarketData(wanted, len(wanted)),
                  ids=[i.decode() for i in wanted])

    def OnRspUserLogout(self, pUserLogout: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.emit("OnRspUserLogout", pUserLogout, pRspInfo, nRequestID, bIsLast)

    def OnRspError(self, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.emit("OnRspError", pRspInfo, nRequestID, bIsLast)

    def OnRspSubMarketData(self, pSpecificInstrument: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.emit("OnRspSubMarketData", pSpecificInstrument, pRspInfo, nRequestID, bIsLast)

    def OnRspUnSubMarketData(self, pSpecificInstrument: Any, pRspInfo: Any, nRequestID: int, bIsLast: bool) -> None:
        self.emit("OnRspUnSubMarketData", pSpecificInstrument, pRspInfo, nRequestID, bIsLast)

    def OnRtnDepthMarketData(self, pDepthMarketData: Any) -> None:
        self.emit("OnRtnDepthMarketData", pDepthMarketData)
        self.total += 1
        if self.logins < self.options.logins:
            return
        self.ticks += 1
        if self.options.unsubscribe and not self.unsubscribed and self.ticks >= self.options.after:
            self.unsubscribed = True
            ids = [self.options.unsubscribe.encode()]
            self.call("UnSubscribeMarketData", self.api.UnSubscribeMarketData(ids, 1), ids=[self.options.unsubscribe])
        if self.ticks >= self.options.ticks:
            self.done.set()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("front", help="the md front, e.g. tcp://127.0.0.1:7780")
    parser.add_argument("instruments", help="comma-separated instrument IDs")
    parser.add_argument("--ticks", type=int, default=10, help="ticks to receive after the last login")
    parser.add_argument("--logins", type=int, default=1, help="logins (connections) before counting ticks")
    parser.add_argument("--unsubscribe", default="", help="an instrument to unsubscribe after --after ticks")
    parser.add_argument("--after", type=int, default=1)
    parser.add_argument("--broker", default="9999")
    parser.add_argument("--user", default="000001")
    parser.add_argument("--password", default="simnow-password")
    parser.add_argument("--out", default=None, help="a file for the JSON lines (default stdout)")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds before giving up")
    parser.add_argument("--flow", default="", help="the flow directory prefix")
    options = parser.parse_args()

    out = Output(options.out)
    out.write({"event": "start", "module": mdapi.__file__, "version": mdapi.CThostFtdcMdApi.GetApiVersion(),
               "pid": os.getpid()})
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(options.flow)
    spi = MdSpi(api, options, out)
    api.RegisterSpi(spi)
    api.RegisterFront(options.front)
    api.Init()
    out.write({"event": "libraries", "paths": ctp_libraries()})
    started = time.monotonic()
    finished = spi.done.wait(options.timeout)
    api.Release()
    out.write({"event": "done" if finished else "timeout", "ticks": spi.ticks, "total": spi.total,
               "logins": spi.logins, "seconds": round(time.monotonic() - started, 3)})
    out.close()
    return 0 if finished else 3


if __name__ == "__main__":
    sys.exit(main())
