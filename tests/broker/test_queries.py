"""The counter's query answers through tdapi, and CTP's query flow control."""

from __future__ import annotations

import pytest

from ctpshim import tdapi
from ctpshim.broker import queries
from ctpshim.ctp.fields import default_values, member_names

from .test_counter import FRIDAY_MORNING, USER, _fresh_counters, front, traders  # noqa: F401 - fixtures


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_gate_allows_one_query_a_second_and_one_in_flight():
    clock = Clock()
    gate = queries.QueryGate(True, clock)
    assert gate.admit() == 0
    clock.now += 5
    assert gate.admit() == queries.TOO_MANY_IN_FLIGHT == -2  # the first has not been answered
    gate.answered()
    assert gate.admit() == 0
    gate.answered()
    clock.now += 0.999
    assert gate.admit() == queries.TOO_FREQUENT == -3
    clock.now += 0.001
    assert gate.admit() == 0
    off = queries.QueryGate(False, clock)
    assert [off.admit() for _ in range(3)] == [0, 0, 0]


def test_flow_control_through_the_api_returns_at_once_and_sends_nothing(traders, tmp_path):
    address = front(tmp_path / "t.sqlite").replace("&trader.flow_control=false", "")
    trader = traders(address)
    trader.login()
    assert trader.api.ReqQryTradingAccount(tdapi.CThostFtdcQryTradingAccountField(), 50) == 0
    assert trader.api.ReqQryInvestorPosition(tdapi.CThostFtdcQryInvestorPositionField(), 51) in (-2, -3)
    trader.spi.wait("OnRspQryTradingAccount")
    assert trader.api.ReqQryTradingAccount(tdapi.CThostFtdcQryTradingAccountField(), 52) == -3  # within a second
    assert trader.spi.all("OnRspQryInvestorPosition") == []
    assert [args[2] for args in trader.spi.all("OnRspQryTradingAccount")] == [50]


def test_flow_control_off_answers_every_query(traders, tmp_path):
    trader = traders(front(tmp_path / "t.sqlite"))
    trader.login()
    for request_id in range(60, 65):
        assert trader.api.ReqQryTradingAccount(tdapi.CThostFtdcQryTradingAccountField(), request_id) == 0
    trader.spi.wait("OnRspQryTradingAccount", 5)


def test_a_new_account_and_its_rates(traders, tmp_path):
    trader = traders(front(tmp_path / "t.sqlite", "trader.balance=250000"))
    trader.login()
    account = trader.query("TradingAccount")[0]
    assert (account.BrokerID, account.AccountID, account.TradingDay) == ("9999", USER, "20261120")
    assert account.PreBalance == account.Balance == account.Available == 250_000
    # Every double member reads as a float, as openctp's do (a new account's sums of nothing were int 0).
    doubles = [name for name, default in zip(member_names(type(account)), default_values(type(account)))
               if type(default) is float]
    assert [name for name in doubles if type(getattr(account, name)) is not float] == []
    margin = trader.query("InstrumentMarginRate", InstrumentID="rb2701", HedgeFlag="1")[0]
    assert (margin.InstrumentID, margin.LongMarginRatioByMoney, margin.ShortMarginRatioByMoney) == ("rb2701", 0.16, 0.16)
    # rb's fee is per product: CTP answers the product's ID (SIM_TRADING.md 3.1); SimNow's 1e-4 of turnover.
    fee = trader.query("InstrumentCommissionRate", InstrumentID="rb2701")[0]
    assert (fee.InstrumentID, fee.OpenRatioByMoney, fee.CloseRatioByMoney) == ("rb", 1e-4, 1e-4)
    dce = trader.query("InstrumentCommissionRate", InstrumentID="m2701")[0]
    assert (dce.InstrumentID, dce.OpenRatioByVolume, dce.CloseTodayRatioByVolume) == ("m", 0.2, 0.1)
    order_fee = trader.query("InstrumentOrderCommRate", InstrumentID="rb2701")[0]
    assert order_fee.OrderCommByVolume == 0 and order_fee.OrderActionCommByVolume == 0
    params = trader.query("BrokerTradingParams")[0]
    assert (params.MarginPriceType, params.Algorithm, params.AvailIncludeCloseProfit) == ("4", "2", "0")
    assert trader.query("InstrumentMarginRate", InstrumentID="zz9999") == [None]
    assert trader.query("InstrumentMarginRate") == [None]  # nothing held: no record
    assert trader.query("InvestorPositionCombineDetail") == [None]
    assert trader.query("InvestorPosition") == [None] and trader.query("Trade") == [None]


def test_products_exchanges_and_filters(traders, tmp_path):
    trader = traders(front(tmp_path / "t.sqlite"))
    trader.login()
    products = {p.ProductID: p for p in trader.query("Product")}
    assert set(products) == {"rb", "m"}
    rb, m = products["rb"], products["m"]
    assert (rb.ExchangeID, rb.VolumeMultiple, rb.PriceTick, rb.PositionDateType) == ("SHFE", 10, 1.0, "1")
    assert (m.ExchangeID, m.PositionDateType, m.ProductClass) == ("DCE", "2", "1")
    assert [p.ProductID for p in trader.query("Product", ProductID="m")] == ["m"]
    assert [e.ExchangeID for e in trader.query("Exchange", ExchangeID="DCE")] == ["DCE"]


def test_depth_market_data_max_volume_and_details_after_a_fill(traders, tmp_path):
    # One snapshot a minute in real time: the price holds still while the queries are answered.
    trader = traders(front(tmp_path / "t.sqlite", "trader.balance=100000", "interval=60", speed="1"))
    trader.login()
    trader.confirm()
    trader.order(3300.0, ref="1")  # crosses (below the upper limit 3317): fills at the ask
    trade = trader.spi.wait("OnRtnTrade")[0][0]
    ticks = trader.query("DepthMarketData", InstrumentID="rb2701")
    assert len(ticks) == 1 and ticks[0].InstrumentID == "rb2701" and ticks[0].LastPrice > 0
    detail = trader.query("InvestorPositionDetail", InstrumentID="rb2701")[0]
    assert (detail.TradeID, detail.OpenPrice, detail.Volume, detail.Direction) == (trade.TradeID, trade.Price, 1, "0")
    # One lot open costs its margin (last x 10 x 0.16) and fee; the answer is what Available pays for.
    query = dict(InstrumentID="rb2701", Direction="0", OffsetFlag="0", HedgeFlag="1")
    most = trader.query("MaxOrderVolume", **query)[0].MaxVolume
    last = ticks[0].LastPrice
    available = trader.query("TradingAccount")[0].Available
    per_lot = last * 10 * 0.16 + last * 10 * 1e-4
    assert most == int(available // per_lot) and most > 0
    closable = trader.query("MaxOrderVolume", InstrumentID="rb2701", Direction="1", OffsetFlag="3", HedgeFlag="1")
    assert closable[0].MaxVolume == 1  # today's lot, closed with close-today on SHFE
    # A login once the counter has seen ticks: LoginTime and the exchanges' times are the feed's
    # (what the ticks' UpdateTime says), not the machine's clock.
    later = traders(front(tmp_path / "t.sqlite", "trader.balance=100000", "interval=60", speed="1"), "b/")
    rsp = later.login()[0]
    assert rsp.LoginTime == rsp.SHFETime == rsp.DCETime == rsp.GFEXTime == ticks[0].UpdateTime
    # No InstrumentID: CTP answers the rates of the instruments held (one record each).
    held = trader.query("InstrumentMarginRate", HedgeFlag="1")
    assert [(r.InstrumentID, r.LongMarginRatioByMoney) for r in held] == [("rb2701", 0.16)]


def test_queries_before_the_login_are_refused(traders, tmp_path):
    trader = traders(front(tmp_path / "t.sqlite"))
    assert trader.api.ReqQryTradingAccount(tdapi.CThostFtdcQryTradingAccountField(), 70) == 0
    data, info, request_id, last = trader.spi.wait("OnRspQryTradingAccount")[0]
    assert (data, info.ErrorID, request_id, last) == (None, 6, 70, True)


@pytest.mark.parametrize("name", ["SettlementInfo", "SettlementInfoConfirm"])
def test_no_statement_and_no_confirmation_on_a_new_accounts_first_day(traders, tmp_path, name):
    trader = traders(front(tmp_path / "t.sqlite"))
    trader.login()
    assert trader.query(name) == [None]


def test_a_td_only_program_gets_the_first_tick_of_an_instrument_no_program_subscribes(traders, tmp_path):
    trader = traders(front(tmp_path / "t.sqlite"))
    trader.login()
    ticks = trader.query("DepthMarketData", InstrumentID="m2701")
    assert len(ticks) == 1 and ticks[0].InstrumentID == "m2701" and ticks[0].TradingDay == "20261120"
    assert "09:34" <= ticks[0].UpdateTime < "09:36" and ticks[0].AskPrice1 > ticks[0].BidPrice1 > 0


def test_a_contract_sim_does_not_list_can_be_queried(traders, tmp_path):
    # The front lists rb2701 and m2701 only; sim:// ticks any contract of a known product.
    trader = traders(front(tmp_path / "t.sqlite"))
    trader.login()
    (au,) = trader.query("Instrument", InstrumentID="au2612")
    assert (au.ExchangeID, au.ProductID, au.VolumeMultiple, au.PriceTick) == ("SHFE", "au", 1000, 0.02)
    assert trader.query("Instrument", InstrumentID="zz9999") == [None]
