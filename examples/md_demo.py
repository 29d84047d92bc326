"""A market-data program written for openctp-ctp, in the style of openctp's md_demo.py.

It knows nothing of ctpshim: it imports openctp_ctp and registers a SimNow front.  Run it on
the bundled real day (SHFE ru1901's night session of 2018-10-08, as recorded) with

    python -m ctpshim run --front 'replay://?rebase=none' examples/md_demo.py 10 ru1901

or on ctpshim's simulated market (by default a few contracts listed today) with

    python -m ctpshim run examples/md_demo.py [seconds] [instrument ...]
"""

import datetime
import sys
import threading

from openctp_ctp import mdapi

FRONT = "tcp://180.168.146.187:10131"  # SimNow market data, 7x24 environment


class MdImpl(mdapi.CThostFtdcMdSpi):
    def __init__(self, front, instruments):
        mdapi.CThostFtdcMdSpi.__init__(self)
        self.instruments = instruments
        self.ticks = 0
        self.first = {}  # instrument -> its first tick (LastPrice, Volume, OpenInterest)
        self.last = {}
        self.api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi()
        self.api.RegisterFront(front)
        self.api.RegisterSpi(self)
        self.api.Init()

    def OnFrontConnected(self):
        print("OnFrontConnected")
        req = mdapi.CThostFtdcReqUserLoginField()  # the md front does not check credentials
        print("ReqUserLogin:", self.api.ReqUserLogin(req, 0))

    def OnFrontDisconnected(self, nReason):
        print("OnFrontDisconnected:", nReason)

    def OnRspUserLogin(self, pRspUserLogin, pRspInfo, nRequestID, bIsLast):
        if pRspInfo is not None and pRspInfo.ErrorID != 0:
            print("login failed:", pRspInfo.ErrorID, pRspInfo.ErrorMsg)
            return
        print("OnRspUserLogin: TradingDay", pRspUserLogin.TradingDay)
        ids = [i.encode("utf-8") for i in self.instruments]
        print("SubscribeMarketData:", self.api.SubscribeMarketData(ids, len(ids)))

    def OnRspSubMarketData(self, pSpecificInstrument, pRspInfo, nRequestID, bIsLast):
        print("OnRspSubMarketData:", pSpecificInstrument.InstrumentID, pRspInfo.ErrorMsg, "last" if bIsLast else "")

    def OnRtnDepthMarketData(self, pDepthMarketData):
        self.ticks += 1
        d = pDepthMarketData
        print(f"{d.InstrumentID:<8} {d.ExchangeID:<6} {d.ActionDay} {d.UpdateTime}.{d.UpdateMillisec:03d} "
              f"last {d.LastPrice:<10g} bid {d.BidPrice1:<10g} ask {d.AskPrice1:<10g} "
              f"vol {d.Volume:<8} oi {d.OpenInterest:g}")
        self.first.setdefault(d.InstrumentID, (d.LastPrice, d.Volume, d.OpenInterest))
        self.last[d.InstrumentID] = (d.LastPrice, d.Volume, d.OpenInterest)

    def summary(self):
        for instrument, (price, volume, interest) in self.first.items():
            last_price, last_volume, last_interest = self.last[instrument]
            print(f"{instrument}: last {price:g} -> {last_price:g}, volume {volume} -> {last_volume} "
                  f"(+{last_volume - volume}), open interest {interest:g} -> {last_interest:g}")


def listed_contracts():
    """A few contracts listed whatever the date: rebar, PTA and crude three months out (they list
    every month for a year), the CSI 300 future of next month."""
    today = datetime.date.today()

    def ahead(months):
        index = today.year * 12 + today.month - 1 + months
        return index // 12, index % 12 + 1

    year, month = ahead(3)
    next_year, next_month = ahead(1)
    return [f"rb{year % 100:02d}{month:02d}", f"TA{year % 10}{month:02d}", f"sc{year % 100:02d}{month:02d}",
            f"IF{next_year % 100:02d}{next_month:02d}"]


if __name__ == "__main__":
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    instruments = sys.argv[2:] or listed_contracts()
    md = MdImpl(FRONT, instruments)
    threading.Event().wait(seconds)
    md.api.Release()
    print(f"{md.ticks} ticks in {seconds:g} s")
    md.summary()
