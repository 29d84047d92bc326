"""A typical openctp-ctp trading program (used, unedited, by the `ctpshim run` tests).

Written the way people write them against SimNow: ``from openctp_ctp import tdapi``, a Spi class,
authenticate, log in, confirm the settlement, query the instrument, the account, the positions and
the latest price, then buy one lot at a price that crosses the book, place one buy that rests far
below it, cancel the resting one, and query the orders, the trades, the positions and the account
again.  Queries refused by flow control (-2, -3) are sent again a second later, as vnpy does.

Usage: ``python openctp_td_program.py INSTRUMENT``.  It prints what it got, one fact a line
(``key: values``), and exits 0 only when every answer is real and consistent with the others;
otherwise it prints ``FAIL: why`` and exits 1.
"""

import sys
import threading
import time

from openctp_ctp import tdapi

FRONT = "tcp://180.168.146.187:10130"  # SimNow's trading front
BROKER, USER, PASSWORD = "9999", "000001", "simnow-password"
APP_ID, AUTH_CODE = "simnow_client_test", "0000000000000000"
TIMEOUT = 15.0  # seconds any one answer may take
DBL_MAX = 1.7976931348623157e308


class Failure(Exception):
    pass


class Trader(tdapi.CThostFtdcTraderSpi):
    def __init__(self, api):
        tdapi.CThostFtdcTraderSpi.__init__(self)
        self.api = api
        self.lock = threading.Condition()
        self.answers = {}  # request id -> list of records (None dropped)
        self.finished = set()  # request ids whose bIsLast came
        self.errors = []
        self.orders = {}  # OrderRef -> list of OnRtnOrder snapshots (dicts)
        self.trades = []
        self.logged_in = threading.Event()
        self.confirmed = threading.Event()
        self.login = None

    # -- start-up ------------------------------------------------------------------------------

    def OnFrontConnected(self):
        print("connected")
        req = tdapi.CThostFtdcReqAuthenticateField()
        req.BrokerID, req.UserID, req.AppID, req.AuthCode = BROKER, USER, APP_ID, AUTH_CODE
        self.api.ReqAuthenticate(req, 1)

    def OnFrontDisconnected(self, nReason):
        print("disconnected", nReason)

    def OnRspAuthenticate(self, pRspAuthenticateField, pRspInfo, nRequestID, bIsLast):
        if pRspInfo is not None and pRspInfo.ErrorID != 0:
            self.fail(f"authenticate: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")
            return
        print("authenticated:", pRspAuthenticateField.AppID)
        req = tdapi.CThostFtdcReqUserLoginField()
        req.BrokerID, req.UserID, req.Password = BROKER, USER, PASSWORD
        self.api.ReqUserLogin(req, 2)

    def OnRspUserLogin(self, pRspUserLogin, pRspInfo, nRequestID, bIsLast):
        if pRspInfo is not None and pRspInfo.ErrorID != 0:
            self.fail(f"login: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")
            return
        self.login = {"TradingDay": pRspUserLogin.TradingDay, "FrontID": pRspUserLogin.FrontID,
                      "SessionID": pRspUserLogin.SessionID, "MaxOrderRef": pRspUserLogin.MaxOrderRef}
        print("login:", pRspUserLogin.TradingDay, pRspUserLogin.FrontID, pRspUserLogin.SessionID,
              repr(pRspUserLogin.MaxOrderRef))
        self.logged_in.set()
        req = tdapi.CThostFtdcSettlementInfoConfirmField()
        req.BrokerID, req.InvestorID = BROKER, USER
        self.api.ReqSettlementInfoConfirm(req, 3)

    def OnRspSettlementInfoConfirm(self, pSettlementInfoConfirm, pRspInfo, nRequestID, bIsLast):
        if pRspInfo is not None and pRspInfo.ErrorID != 0:
            self.fail(f"confirm: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")
            return
        print("confirmed:", pSettlementInfoConfirm.ConfirmDate)
        with self.lock:
            self.confirmed.set()
            self.lock.notify_all()

    def fail(self, why):
        with self.lock:
            self.errors.append(why)
            self.lock.notify_all()

    # -- answers -------------------------------------------------------------------------------

    def _answer(self, record, pRspInfo, nRequestID, bIsLast):
        with self.lock:
            if pRspInfo is not None and pRspInfo.ErrorID != 0:
                self.errors.append(f"request {nRequestID}: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")
            rows = self.answers.setdefault(nRequestID, [])
            if record is not None:
                rows.append({name: getattr(record, name) for name in dir(record)
                             if not name.startswith("_") and name not in ("this", "thisown")})
            if bIsLast:
                self.finished.add(nRequestID)
            self.lock.notify_all()

    def OnRspQryInstrument(self, pInstrument, pRspInfo, nRequestID, bIsLast):
        self._answer(pInstrument, pRspInfo, nRequestID, bIsLast)

    def OnRspQryTradingAccount(self, pTradingAccount, pRspInfo, nRequestID, bIsLast):
        self._answer(pTradingAccount, pRspInfo, nRequestID, bIsLast)

    def OnRspQryInvestorPosition(self, pInvestorPosition, pRspInfo, nRequestID, bIsLast):
        self._answer(pInvestorPosition, pRspInfo, nRequestID, bIsLast)

    def OnRspQryDepthMarketData(self, pDepthMarketData, pRspInfo, nRequestID, bIsLast):
        self._answer(pDepthMarketData, pRspInfo, nRequestID, bIsLast)

    def OnRspQryOrder(self, pOrder, pRspInfo, nRequestID, bIsLast):
        self._answer(pOrder, pRspInfo, nRequestID, bIsLast)

    def OnRspQryTrade(self, pTrade, pRspInfo, nRequestID, bIsLast):
        self._answer(pTrade, pRspInfo, nRequestID, bIsLast)

    def OnRspError(self, pRspInfo, nRequestID, bIsLast):
        self.fail(f"OnRspError {nRequestID}: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")

    def OnRspOrderInsert(self, pInputOrder, pRspInfo, nRequestID, bIsLast):
        self.fail(f"order {pInputOrder.OrderRef} refused: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")

    def OnErrRtnOrderInsert(self, pInputOrder, pRspInfo):
        self.fail(f"order {pInputOrder.OrderRef} refused: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")

    def OnRspOrderAction(self, pInputOrderAction, pRspInfo, nRequestID, bIsLast):
        self.fail(f"cancel refused: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")

    def OnErrRtnOrderAction(self, pOrderAction, pRspInfo):
        self.fail(f"cancel refused: {pRspInfo.ErrorID} {pRspInfo.ErrorMsg}")

    def OnRtnOrder(self, pOrder):
        print(f"order: {pOrder.OrderRef.strip()} status {pOrder.OrderStatus} submit {pOrder.OrderSubmitStatus} "
              f"traded {pOrder.VolumeTraded} left {pOrder.VolumeTotal} sys {pOrder.OrderSysID!r} msg {pOrder.StatusMsg}")
        with self.lock:
            self.orders.setdefault(pOrder.OrderRef.strip(), []).append({
                "OrderStatus": pOrder.OrderStatus, "OrderSysID": pOrder.OrderSysID, "ExchangeID": pOrder.ExchangeID,
                "VolumeTraded": pOrder.VolumeTraded, "VolumeTotal": pOrder.VolumeTotal,
                "FrontID": pOrder.FrontID, "SessionID": pOrder.SessionID, "OrderRef": pOrder.OrderRef})
            self.lock.notify_all()

    def OnRtnTrade(self, pTrade):
        print(f"trade: {pTrade.TradeID!r} {pTrade.OrderRef.strip()} {pTrade.Direction} {pTrade.OffsetFlag} "
              f"{pTrade.Price:.2f} {pTrade.Volume} {pTrade.TradeDate} {pTrade.TradeTime}")
        with self.lock:
            self.trades.append({"TradeID": pTrade.TradeID, "OrderRef": pTrade.OrderRef.strip(), "Price": pTrade.Price,
                                "Volume": pTrade.Volume, "OrderSysID": pTrade.OrderSysID})
            self.lock.notify_all()

    # -- helpers for the main thread -----------------------------------------------------------

    def wait(self, condition, what):
        deadline = time.monotonic() + TIMEOUT
        with self.lock:
            while not condition():
                if self.errors:
                    raise Failure("; ".join(self.errors))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure(f"no answer in {TIMEOUT:g} s: {what}")
                self.lock.wait(left)
            if self.errors:
                raise Failure("; ".join(self.errors))

    def query(self, method, field, request_id):
        """Send a query (again a second later while flow control refuses it) and wait for its last record."""
        for _ in range(20):
            rc = method(field, request_id)
            if rc == 0:
                break
            if rc not in (-2, -3):
                raise Failure(f"{method.__name__} returned {rc}")
            time.sleep(1)
        else:
            raise Failure(f"{method.__name__} still refused by flow control after 20 tries")
        self.wait(lambda: request_id in self.finished, method.__name__)
        return self.answers[request_id]

    def last_status(self, ref):
        return self.orders.get(ref, [{}])[-1].get("OrderStatus")


def check(condition, why):
    if not condition:
        raise Failure(why)


def new_order(instrument, exchange, ref, direction, price, volume):
    req = tdapi.CThostFtdcInputOrderField()
    req.BrokerID, req.InvestorID, req.UserID = BROKER, USER, USER
    req.InstrumentID, req.ExchangeID, req.OrderRef = instrument, exchange, ref
    req.Direction = direction
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
    req.IsAutoSuspend = 0
    req.UserForceClose = 0
    return req


def long_lots(positions, instrument):
    return sum(p["Position"] for p in positions
               if p["InstrumentID"] == instrument and p["PosiDirection"] == tdapi.THOST_FTDC_PD_Long)


def run(spi, api, instrument):
    spi.wait(lambda: spi.confirmed.is_set(), "login and settlement confirmation")
    login = spi.login
    check(len(login["TradingDay"]) == 8 and login["TradingDay"].isdigit(), f"trading day {login['TradingDay']!r}")
    check(api.GetTradingDay() == login["TradingDay"], f"GetTradingDay() {api.GetTradingDay()!r}")

    query = tdapi.CThostFtdcQryInstrumentField()
    query.InstrumentID = instrument
    found = spi.query(api.ReqQryInstrument, query, 10)
    check(len(found) == 1, f"ReqQryInstrument({instrument}) answered {len(found)} records")
    info = found[0]
    exchange, tick, size = info["ExchangeID"], info["PriceTick"], info["VolumeMultiple"]
    check(exchange and tick > 0 and size > 0, f"instrument {info}")
    print(f"instrument: {instrument} {exchange} tick {tick:g} multiple {size}")

    account = spi.query(api.ReqQryTradingAccount, tdapi.CThostFtdcQryTradingAccountField(), 11)
    check(len(account) == 1, f"ReqQryTradingAccount answered {len(account)} records")
    before = account[0]
    check(before["Balance"] > 0 and 0 < before["Available"] <= before["Balance"], f"account {before}")
    print(f"account before: balance {before['Balance']:.6f} available {before['Available']:.6f} "
          f"commission {before['Commission']:.6f}")

    positions = spi.query(api.ReqQryInvestorPosition, tdapi.CThostFtdcQryInvestorPositionField(), 12)
    held = long_lots(positions, instrument)
    print(f"positions before: {len(positions)} records, {held} long {instrument}")

    query = tdapi.CThostFtdcQryDepthMarketDataField()
    query.InstrumentID = instrument
    ticks = spi.query(api.ReqQryDepthMarketData, query, 13)
    check(len(ticks) == 1, f"ReqQryDepthMarketData({instrument}) answered {len(ticks)} records")
    quote = ticks[0]
    ask, bid, upper, lower = quote["AskPrice1"], quote["BidPrice1"], quote["UpperLimitPrice"], quote["LowerLimitPrice"]
    check(0 < bid < ask < DBL_MAX and 0 < lower < upper < DBL_MAX, f"quote bid {bid} ask {ask} limits {lower}..{upper}")
    print(f"quote: bid {bid:.2f} ask {ask:.2f} limits {lower:.2f} {upper:.2f} at {quote['UpdateTime']}")

    # The program's own references, after the highest the account used today (CTP_SEMANTICS 7.3).
    first = int(login["MaxOrderRef"] or 0) + 1
    cross_ref, rest_ref = str(first), str(first + 1)
    cross_price = upper  # SHFE takes no market orders: a buy at the upper limit fills at the asks
    rest_price = lower + tick  # far below the bid: rests
    rc = api.ReqOrderInsert(new_order(instrument, exchange, cross_ref, tdapi.THOST_FTDC_D_Buy, cross_price, 1), 20)
    check(rc == 0, f"ReqOrderInsert returned {rc}")
    spi.wait(lambda: spi.last_status(cross_ref) == tdapi.THOST_FTDC_OST_AllTraded
             and any(t["OrderRef"] == cross_ref for t in spi.trades), "the crossing order's fill")
    rc = api.ReqOrderInsert(new_order(instrument, exchange, rest_ref, tdapi.THOST_FTDC_D_Buy, rest_price, 1), 21)
    check(rc == 0, f"ReqOrderInsert returned {rc}")
    spi.wait(lambda: spi.last_status(rest_ref) == tdapi.THOST_FTDC_OST_NoTradeQueueing, "the resting order queued")
    resting = spi.orders[rest_ref][-1]
    check(resting["OrderSysID"].strip() != "", f"a queued order without an OrderSysID: {resting}")

    action = tdapi.CThostFtdcInputOrderActionField()
    action.BrokerID, action.InvestorID, action.UserID = BROKER, USER, USER
    action.InstrumentID, action.ExchangeID, action.OrderSysID = instrument, resting["ExchangeID"], resting["OrderSysID"]
    action.ActionFlag = tdapi.THOST_FTDC_AF_Delete
    rc = api.ReqOrderAction(action, 22)
    check(rc == 0, f"ReqOrderAction returned {rc}")
    spi.wait(lambda: spi.last_status(rest_ref) == tdapi.THOST_FTDC_OST_Canceled, "the cancel")

    trade = next(t for t in spi.trades if t["OrderRef"] == cross_ref)
    check(trade["Volume"] == 1 and lower < trade["Price"] < cross_price, f"trade {trade} within the limits {lower}..{upper}")
    check(trade["TradeID"].strip() != "" and trade["OrderSysID"] == spi.orders[cross_ref][-1]["OrderSysID"],
          f"trade {trade} and its order {spi.orders[cross_ref][-1]}")

    orders = spi.query(api.ReqQryOrder, tdapi.CThostFtdcQryOrderField(), 30)
    mine = {o["OrderRef"].strip(): o for o in orders if o["SessionID"] == login["SessionID"]}
    check(set(mine) == {cross_ref, rest_ref}, f"ReqQryOrder: this session's orders are {sorted(mine)}")
    check(mine[cross_ref]["OrderStatus"] == tdapi.THOST_FTDC_OST_AllTraded and mine[cross_ref]["VolumeTraded"] == 1,
          f"queried crossing order {mine[cross_ref]['OrderStatus']!r}")
    check(mine[rest_ref]["OrderStatus"] == tdapi.THOST_FTDC_OST_Canceled and mine[rest_ref]["VolumeTotal"] == 1,
          f"queried resting order {mine[rest_ref]['OrderStatus']!r}")
    print(f"orders: {len(orders)} today, this session's {cross_ref} {mine[cross_ref]['OrderStatus']} "
          f"{rest_ref} {mine[rest_ref]['OrderStatus']}")

    trades = spi.query(api.ReqQryTrade, tdapi.CThostFtdcQryTradeField(), 31)
    same = [t for t in trades if t["TradeID"] == trade["TradeID"]]
    check(len(same) == 1 and same[0]["Price"] == trade["Price"] and same[0]["Volume"] == 1,
          f"ReqQryTrade has {same} for the trade {trade}")
    print(f"trades: {len(trades)} today")

    positions = spi.query(api.ReqQryInvestorPosition, tdapi.CThostFtdcQryInvestorPositionField(), 32)
    check(long_lots(positions, instrument) == held + 1, f"long {instrument} {long_lots(positions, instrument)}, was {held}")
    today = sum(p["TodayPosition"] for p in positions
                if p["InstrumentID"] == instrument and p["PosiDirection"] == tdapi.THOST_FTDC_PD_Long)
    print(f"positions after: {long_lots(positions, instrument)} long {instrument}, {today} today")

    account = spi.query(api.ReqQryTradingAccount, tdapi.CThostFtdcQryTradingAccountField(), 33)
    after = account[0]
    # SIM_TRADING.md 2.1: Balance = PreBalance - Withdraw + Deposit + CloseProfit + PositionProfit - Commission
    expected = (after["PreBalance"] - after["Withdraw"] + after["Deposit"] + after["CloseProfit"]
                + after["PositionProfit"] - after["Commission"])
    check(abs(after["Balance"] - expected) < 0.01, f"Balance {after['Balance']} is not {expected}")
    check(after["Commission"] > before["Commission"], f"commission {after['Commission']} (was {before['Commission']})")
    check(after["CurrMargin"] > before["CurrMargin"], f"margin {after['CurrMargin']} (was {before['CurrMargin']})")
    check(after["FrozenMargin"] == 0 and after["FrozenCommission"] == 0,
          f"frozen {after['FrozenMargin']} {after['FrozenCommission']} after the cancel")
    check(after["Available"] <= after["Balance"] - after["CurrMargin"] + 0.01,
          f"available {after['Available']} above balance - margin")
    print(f"account after: balance {after['Balance']:.6f} available {after['Available']:.6f} "
          f"margin {after['CurrMargin']:.6f} commission {after['Commission']:.6f} "
          f"position profit {after['PositionProfit']:.6f} prebalance {after['PreBalance']:.2f}")


def main():
    instrument = sys.argv[1] if len(sys.argv) > 1 else "rb2701"
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi()
    spi = Trader(api)
    api.RegisterSpi(spi)
    api.SubscribePrivateTopic(tdapi.THOST_TERT_QUICK)
    api.SubscribePublicTopic(tdapi.THOST_TERT_QUICK)
    api.RegisterFront(FRONT)
    api.Init()
    try:
        run(spi, api, instrument)
    except Failure as exc:
        print("FAIL:", exc)
        api.Release()
        sys.exit(1)
    api.Release()
    print("ok")


if __name__ == "__main__":
    main()
