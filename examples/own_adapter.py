"""A source of your own behind the CTP API: register an adapter, then use it like any front.

The adapter here is ctpshim's template (adapters/_template.py, a small deterministic market);
copy that file to write one for your own source.  Run with

    python examples/own_adapter.py [ticks]
"""

import sys
import threading

from ctpshim import mdapi
from ctpshim.adapters._template import TemplateAdapter
from ctpshim.fronts import registry

registry.register_adapter("template", TemplateAdapter)


class Spi(mdapi.CThostFtdcMdSpi):
    def __init__(self, api, wanted):
        super().__init__()
        self.api, self.wanted, self.count, self.done = api, wanted, 0, threading.Event()

    def OnFrontConnected(self):
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)

    def OnRspUserLogin(self, pRspUserLogin, pRspInfo, nRequestID, bIsLast):
        print("trading day", pRspUserLogin.TradingDay)
        self.api.SubscribeMarketData([b"rb2701", b"au2612"], 2)

    def OnRtnDepthMarketData(self, pDepthMarketData):
        tick = pDepthMarketData
        print(tick.InstrumentID, tick.ExchangeID, tick.TradingDay, tick.UpdateTime, tick.LastPrice, tick.Volume)
        self.count += 1
        if self.count >= self.wanted:
            self.done.set()


def main() -> None:
    wanted = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi()
    spi = Spi(api, wanted)
    api.RegisterSpi(spi)
    api.RegisterFront("template://?instruments=rb2701,au2612&speed=20")
    api.Init()
    spi.done.wait(30)
    api.Release()


if __name__ == "__main__":
    main()
