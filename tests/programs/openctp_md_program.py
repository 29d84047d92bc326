"""A typical openctp-ctp market-data program (used, unedited, by the `ctpshim run` tests)."""

import sys
import threading

from openctp_ctp import mdapi

done = threading.Event()


class MdSpi(mdapi.CThostFtdcMdSpi):
    def __init__(self, api):
        super().__init__()
        self.api = api
        self.count = 0

    def OnFrontConnected(self):
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)

    def OnRspUserLogin(self, pRspUserLogin, pRspInfo, nRequestID, bIsLast):
        if pRspInfo is not None and pRspInfo.ErrorID != 0:
            print("login failed", pRspInfo.ErrorMsg)
            return
        print("trading day", pRspUserLogin.TradingDay)
        self.api.SubscribeMarketData([b"rb2701", b"TA701"], 2)

    def OnRtnDepthMarketData(self, pDepthMarketData):
        self.count += 1
        print("tick", pDepthMarketData.InstrumentID, pDepthMarketData.ExchangeID, pDepthMarketData.LastPrice)
        if self.count >= int(sys.argv[1]):
            done.set()


api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi()
spi = MdSpi(api)
api.RegisterSpi(spi)
api.RegisterFront("tcp://180.168.146.187:10131")
api.Init()
if not done.wait(30):
    print("no ticks")
    sys.exit(3)
api.Release()
print("done", spi.count)
