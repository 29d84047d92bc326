"""A trading program written for openctp-ctp: market data and orders, in the style of openctp's demos.

It knows nothing of ctpshim: it imports openctp_ctp and registers SimNow's fronts.  Run it on
the bundled real day (SHFE ru1901's night session of 2018-10-08) against ctpshim's simulated
counter, as fast as the program keeps up, with a fresh account kept in memory:

    python -m ctpshim run --front 'replay://?rebase=none&speed=max&trader.db=memory' examples/td_demo.py ru1901 20

It logs in to both APIs, confirms the settlement, buys one lot at the ask every N ticks and sells
it back N ticks later, then prints its trades, its position and its account.
"""

import sys
import threading

from openctp_ctp import mdapi, tdapi

MD_FRONT = "tcp://180.168.146.187:10131"  # SimNow 7x24
TD_FRONT = "tcp://180.168.146.187:10130"
BROKER, USER = "9999", "000001"


class Trader(tdapi.CThostFtdcTraderSpi):
    def __init__(self):
        tdapi.CThostFtdcTraderSpi.__init__(self)
        self.ready = threading.Event()
        self.done = threading.Event()
        self.trades = []
        self.order_ref = 0
        self.api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi()
        self.api.RegisterSpi(self)
        self.api.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
        self.api.SubscribePublicTopic(tdapi.THOST_TERT_QUICK)
        self.api.RegisterFront(TD_FRONT)
        self.api.Init()

    def OnFrontConnected(self):
        req = tdapi.CThostFtdcReqUserLoginField()
        req.BrokerID, req.UserID, req.Password = BROKER, USER, "secret"
        self.api.ReqUserLogin(req, 1)

    def OnRspUserLogin(self, pRspUserLogin, pRspInfo, nRequestID, bIsLast):
        print("td login:", pRspInfo.ErrorID, "trading day", pRspUserLogin.TradingDay)
        self.front, self.session = pRspUserLogin.FrontID, pRspUserLogin.SessionID
        self.order_ref = int(pRspUserLogin.MaxOrderRef or 0)
        req = tdapi.CThostFtdcSettlementInfoConfirmField()
        req.BrokerID, req.InvestorID = BROKER, USER
        self.api.ReqSettlementInfoConfirm(req, 2)

    def OnRspSettlementInfoConfirm(self, pSettlementInfoConfirm, pRspInfo, nRequestID, bIsLast):
        print("settlement confirmed:", pRspInfo.ErrorID)
        self.ready.set()

    def send(self, instrument, exchange, direction, offset, price):
        self.order_ref += 1
        req = tdapi.CThostFtdcInputOrderField()
        req.BrokerID, req.InvestorID, req.UserID = BROKER, USER, USER
        req.InstrumentID, req.ExchangeID = instrument, exchange
        req.OrderRef = str(self.order_ref)
        req.Direction, req.CombOffsetFlag, req.CombHedgeFlag = direction, offset, tdapi.THOST_FTDC_HF_Speculation
        req.OrderPriceType, req.LimitPrice = tdapi.THOST_FTDC_OPT_LimitPrice, price
        req.VolumeTotalOriginal, req.MinVolume = 1, 1
        req.TimeCondition, req.VolumeCondition = tdapi.THOST_FTDC_TC_GFD, tdapi.THOST_FTDC_VC_AV
        req.ContingentCondition, req.ForceCloseReason = tdapi.THOST_FTDC_CC_Immediately, tdapi.THOST_FTDC_FCC_NotForceClose
        return self.api.ReqOrderInsert(req, self.order_ref)

    def OnRspOrderInsert(self, pInputOrder, pRspInfo, nRequestID, bIsLast):
        print("order refused:", pRspInfo.ErrorID, pRspInfo.ErrorMsg)

    def OnRtnOrder(self, pOrder):
        if pOrder.OrderStatus == tdapi.THOST_FTDC_OST_Canceled:
            print(f"order {pOrder.OrderRef} cancelled: {pOrder.StatusMsg}")

    def OnRtnTrade(self, pTrade):
        side = "buy " if pTrade.Direction == tdapi.THOST_FTDC_D_Buy else "sell"
        print(f"trade {pTrade.TradeID.strip():>4} {pTrade.TradeTime} {side} {pTrade.Volume} "
              f"{pTrade.InstrumentID} at {pTrade.Price:g}")
        self.trades.append(pTrade)

    def OnRspQryInvestorPosition(self, pInvestorPosition, pRspInfo, nRequestID, bIsLast):
        if pInvestorPosition is not None:
            p = pInvestorPosition
            print(f"position {p.InstrumentID} {'long' if p.PosiDirection == '2' else 'short'} {p.Position} "
                  f"(today {p.TodayPosition}) close profit {p.CloseProfit:.2f} commission {p.Commission:.2f}")
        if bIsLast:
            req = tdapi.CThostFtdcQryTradingAccountField()
            req.BrokerID, req.InvestorID = BROKER, USER
            threading.Timer(1.0, self.api.ReqQryTradingAccount, (req, 4)).start()  # CTP: one query a second

    def OnRspQryTradingAccount(self, pTradingAccount, pRspInfo, nRequestID, bIsLast):
        a = pTradingAccount
        print(f"account: balance {a.Balance:.2f} available {a.Available:.2f} margin {a.CurrMargin:.2f} "
              f"close profit {a.CloseProfit:.2f} commission {a.Commission:.2f}")
        self.done.set()


class Strategy(mdapi.CThostFtdcMdSpi):
    def __init__(self, trader, instrument, every):
        mdapi.CThostFtdcMdSpi.__init__(self)
        self.trader, self.instrument, self.every = trader, instrument, every
        self.ticks, self.long = 0, False
        self.finished = threading.Event()
        self.api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi()
        self.api.RegisterSpi(self)
        self.api.RegisterFront(MD_FRONT)
        self.api.Init()

    def OnFrontConnected(self):
        self.api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 0)

    def OnRspUserLogin(self, pRspUserLogin, pRspInfo, nRequestID, bIsLast):
        self.api.SubscribeMarketData([self.instrument.encode()], 1)

    def OnRtnDepthMarketData(self, pDepthMarketData):
        d = pDepthMarketData
        self.ticks += 1
        if self.ticks % self.every == 0 and len(self.trader.trades) < 10:
            if self.long:  # SHFE and INE close today's lots with CloseToday; Close means yesterday's there
                close = tdapi.THOST_FTDC_OF_CloseToday if d.ExchangeID in ("SHFE", "INE") else tdapi.THOST_FTDC_OF_Close
                self.trader.send(d.InstrumentID, d.ExchangeID, tdapi.THOST_FTDC_D_Sell, close, d.BidPrice1)
            else:
                self.trader.send(d.InstrumentID, d.ExchangeID, tdapi.THOST_FTDC_D_Buy, tdapi.THOST_FTDC_OF_Open, d.AskPrice1)
            self.long = not self.long
        elif len(self.trader.trades) >= 10:
            self.finished.set()


def main():
    instrument = sys.argv[1] if len(sys.argv) > 1 else "ru1901"
    every = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    trader = Trader()
    if not trader.ready.wait(10):
        sys.exit("the trader did not log in")
    strategy = Strategy(trader, instrument, every)
    if not strategy.finished.wait(60):
        print(f"the day ended after {strategy.ticks} ticks")
    strategy.api.Release()
    req = tdapi.CThostFtdcQryInvestorPositionField()
    req.BrokerID, req.InvestorID = BROKER, USER
    trader.api.ReqQryInvestorPosition(req, 3)
    trader.done.wait(10)
    trader.api.Release()


if __name__ == "__main__":
    main()
