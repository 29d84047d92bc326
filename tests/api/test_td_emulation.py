"""The trader API on a ctpshim front: the start-up sequence succeeds, instruments can be queried
with the counter's terms, and what the simulated counter does not do (quotes, exercise,
transfers ...) is refused through CTP's error callbacks; orders are tests/broker/test_counter.py's."""

from __future__ import annotations

import threading

import pytest

from ctpshim import tdapi

from ..conftest import FRIDAY_MORNING, wait_for

FRONT = f"sim://?start={FRIDAY_MORNING}&instruments=rb2701,TA701,IF2612&trader.db=memory&trader.flow_control=false"


class RecordingTraderSpi(tdapi.CThostFtdcTraderSpi):
    def __init__(self):
        super().__init__()
        self.api = None
        self.events = []
        self.lock = threading.Lock()

    def __getattribute__(self, name):
        if name.startswith(("OnRsp", "OnErrRtn", "OnRtn", "OnFront")):
            def record(*args):
                with object.__getattribute__(self, "lock"):
                    object.__getattribute__(self, "events").append((name, args))
            return record
        return object.__getattribute__(self, name)

    def get(self, name):
        with self.lock:
            return [args for event, args in self.events if event == name]


@pytest.fixture
def trader(make_td):
    spi = RecordingTraderSpi()
    api = make_td(spi, FRONT)
    wait_for(lambda: spi.get("OnFrontConnected"))
    return api, spi


def test_authenticate_login_and_confirm_settlement(trader):
    api, spi = trader
    auth = tdapi.CThostFtdcReqAuthenticateField()
    auth.BrokerID, auth.UserID, auth.AppID, auth.AuthCode = "9999", "000001", "simnow_client_test", "0000000000000000"
    assert api.ReqAuthenticate(auth, 1) == 0
    login = tdapi.CThostFtdcReqUserLoginField()
    login.BrokerID, login.UserID, login.Password = "9999", "000001", "secret"
    assert api.ReqUserLogin(login, 2) == 0
    confirm = tdapi.CThostFtdcSettlementInfoConfirmField()
    confirm.BrokerID, confirm.InvestorID = "9999", "000001"
    assert api.ReqSettlementInfoConfirm(confirm, 3) == 0
    wait_for(lambda: spi.get("OnRspSettlementInfoConfirm"))
    names = [e[0] for e in spi.events]
    assert names == ["OnFrontConnected", "OnRspAuthenticate", "OnRspUserLogin", "OnRspSettlementInfoConfirm"]
    rsp_auth, info, request_id, last = spi.get("OnRspAuthenticate")[0]
    assert (rsp_auth.UserID, rsp_auth.AppID, info.ErrorID, request_id, last) == ("000001", "simnow_client_test", 0, 1, True)
    rsp_login = spi.get("OnRspUserLogin")[0][0]
    assert rsp_login.TradingDay == "20261120" == api.GetTradingDay()
    assert rsp_login.BrokerID == "9999" and rsp_login.UserID == "000001" and rsp_login.MaxOrderRef == "1"
    rsp_confirm = spi.get("OnRspSettlementInfoConfirm")[0][0]
    assert rsp_confirm.InvestorID == "000001" and len(rsp_confirm.ConfirmDate) == 8
    assert api.ReqQrySettlementInfoConfirm(tdapi.CThostFtdcQrySettlementInfoConfirmField(), 4) == 0
    wait_for(lambda: spi.get("OnRspQrySettlementInfoConfirm"))
    assert spi.get("OnRspQrySettlementInfoConfirm")[0][0].InvestorID == "000001"


def test_query_instruments_answers_what_the_source_knows(trader):
    api, spi = trader
    assert api.ReqQryInstrument(tdapi.CThostFtdcQryInstrumentField(), 5) == 0
    wait_for(lambda: len(spi.get("OnRspQryInstrument")) == 3)
    answers = spi.get("OnRspQryInstrument")
    assert [a[3] for a in answers] == [False, False, True] and all(a[2] == 5 and a[1] is None for a in answers)
    by_id = {a[0].InstrumentID: a[0] for a in answers}
    rb, ta, index = by_id["rb2701"], by_id["TA701"], by_id["IF2612"]
    assert (rb.ExchangeID, rb.ProductID, rb.PriceTick, rb.VolumeMultiple) == ("SHFE", "rb", 1.0, 10)
    assert (ta.ExchangeID, ta.ProductID, ta.PriceTick, ta.VolumeMultiple) == ("CZCE", "TA", 2.0, 5)
    assert (index.ExchangeID, index.PriceTick, index.VolumeMultiple) == ("CFFEX", 0.2, 300)
    assert rb.ProductClass == tdapi.THOST_FTDC_PC_Futures and rb.InstrumentName == "螺纹钢2701"
    assert (rb.DeliveryYear, rb.DeliveryMonth) == (2027, 1)
    # The exchanges' last-trading-day rules: SHFE the 15th (a Friday in January 2027), CFFEX index
    # futures the third Friday of the month; delivery starts the next trading day.
    assert (rb.ExpireDate, rb.StartDelivDate) == ("20270115", "20270118")
    assert (index.ExpireDate, index.StartDelivDate) == ("20261218", "20261221")
    assert rb.CreateDate < rb.OpenDate <= "20261120" and index.OpenDate <= "20261120"


def test_query_filters_like_ctp(trader):
    api, spi = trader
    query = tdapi.CThostFtdcQryInstrumentField()
    query.ExchangeID = "CZCE"
    api.ReqQryInstrument(query, 6)
    missing = tdapi.CThostFtdcQryInstrumentField()
    missing.InstrumentID = "cu2699"  # no such contract
    api.ReqQryInstrument(missing, 7)
    wait_for(lambda: len(spi.get("OnRspQryInstrument")) == 2)
    first, second = spi.get("OnRspQryInstrument")
    assert first[0].InstrumentID == "TA701" and first[3] is True
    assert second == (None, None, 7, True)  # no records: one call with data None


def test_queries_the_counter_does_not_answer_give_no_records_and_exchanges_are_listed(trader):
    api, spi = trader
    assert api.ReqQryInvestorPositionCombineDetail(tdapi.CThostFtdcQryInvestorPositionCombineDetailField(), 8) == 0
    assert api.ReqQryExchange(tdapi.CThostFtdcQryExchangeField(), 9) == 0
    wait_for(lambda: len(spi.get("OnRspQryExchange")) == 6)
    assert spi.get("OnRspQryInvestorPositionCombineDetail") == [(None, None, 8, True)]
    assert {e[0].ExchangeID for e in spi.get("OnRspQryExchange")} == {"SHFE", "INE", "DCE", "CZCE", "CFFEX", "GFEX"}


def test_instruments_carry_the_counters_terms(trader):
    api, spi = trader
    query = tdapi.CThostFtdcQryInstrumentField()
    query.InstrumentID = "rb2701"
    api.ReqQryInstrument(query, 5)
    wait_for(lambda: spi.get("OnRspQryInstrument"))
    rb = spi.get("OnRspQryInstrument")[0][0]
    # SimNow's rb margin 0.16 and SHFE's split positions (SIM_TRADING.md 3.3).
    assert (rb.LongMarginRatio, rb.ShortMarginRatio) == (0.16, 0.16)
    assert (rb.PositionDateType, rb.MaxMarginSideAlgorithm, rb.MaxLimitOrderVolume) == ("1", "1", 500)


def test_orders_before_the_login_are_refused_with_not_logged_in(trader):
    api, spi = trader
    order = tdapi.CThostFtdcInputOrderField()
    order.InstrumentID, order.OrderRef, order.Direction = "rb2701", "1", tdapi.THOST_FTDC_D_Buy
    assert api.ReqOrderInsert(order, 10) == 0
    wait_for(lambda: spi.get("OnRspOrderInsert"))
    rsp, info, request_id, last = spi.get("OnRspOrderInsert")[0]
    assert (rsp.InstrumentID, rsp.OrderRef, request_id, last) == ("rb2701", "1", 10, True)
    assert (info.ErrorID, info.ErrorMsg) == (6, "CTP:还没有登录")
    assert spi.get("OnRtnOrder") == []


def test_what_the_counter_does_not_do_is_refused_with_27(trader):
    api, spi = trader
    quote = tdapi.CThostFtdcInputQuoteField()
    quote.InstrumentID, quote.QuoteRef = "rb2701", "1"
    assert api.ReqQuoteInsert(quote, 12) == 0
    exercise = tdapi.CThostFtdcInputExecOrderField()
    exercise.InstrumentID = "rb2701"
    assert api.ReqExecOrderInsert(exercise, 13) == 0
    wait_for(lambda: spi.get("OnErrRtnExecOrderInsert"))
    rsp, info, request_id, last = spi.get("OnRspQuoteInsert")[0]
    assert (rsp.InstrumentID, rsp.QuoteRef, request_id, last) == ("rb2701", "1", 12, True)
    assert info.ErrorID == 27 and info.ErrorMsg.startswith("CTP:不支持的功能")
    assert "simulated counter does not do this" in info.ErrorMsg
    err_quote, err_info = spi.get("OnErrRtnQuoteInsert")[0]
    assert type(err_quote) is tdapi.CThostFtdcInputQuoteField and err_info.ErrorID == 27
    assert spi.get("OnRspExecOrderInsert")[0][1].ErrorID == 27


def test_front_info_after_connecting(trader):
    api, spi = trader
    info = tdapi.CThostFtdcFrontInfoField()
    api.GetFrontInfo(info)
    assert info.FrontAddr.startswith("sim://")
