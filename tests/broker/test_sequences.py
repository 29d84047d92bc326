"""The callbacks of an order per exchange, scenario by scenario, as SFIT's "报单回调规则" lists them
(SIM_TRADING.md 1.4; the ag1207 examples for SHFE, the c1911 ones for DCE).

Each expected sequence is written from that table: ("order", OrderStatus, OrderSubmitStatus,
StatusMsg, VolumeTraded) for an OnRtnOrder, ("trade", Price, Volume) for an OnRtnTrade,
("release", lots) for the frozen lots the ledger gives back.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from ctpshim.broker import checks, orders
from ctpshim.broker.matching import FillRules, TickUse, on_insert, on_tick
from ctpshim.broker.orders import Ids, OrderReport, TradeReport

from .test_orders import NOW, book, compact, make_order, terms_of

UNKNOWN = ("order", "a", "0", "报单已提交", 0)
NO_TRADE = ("order", "3", "3", "未成交", 0)
LATER = datetime(2026, 12, 1, 10, 1, 0)

# One instrument per exchange, a price on its tick, and a price on its tick one step above.
INSTRUMENTS = {"SHFE": ("ag2702", 5000.0), "INE": ("sc2702", 500.0), "CFFEX": ("IF2612", 4000.0),
               "DCE": ("m2705", 3000.0), "GFEX": ("lc2705", 80000.0), "CZCE": ("MA705", 2500.0)}
AFTER_MATCH = ("SHFE", "INE", "CFFEX")


def resting_buy(exchange: str, volume: int):
    """A GFD buy that rests on arrival (the ask is one tick above it)."""
    instrument, price = INSTRUMENTS[exchange]
    terms = terms_of(instrument)
    ids = Ids()
    order = make_order(ids, instrument, price=price, volume=volume)
    events = on_insert(order, book(instrument, bids=[(price, 2)], asks=[(price + terms.PriceTick, 5)]), terms,
                       FillRules(), ids, NOW, TickUse())
    return order, ids, terms, events


def offer_at(exchange: str, lots: int):
    instrument, price = INSTRUMENTS[exchange]
    terms = terms_of(instrument)
    return book(instrument, bids=[(price - terms.PriceTick, 5)], asks=[(price, lots)])


@pytest.mark.parametrize("exchange", sorted(INSTRUMENTS))
def test_accepted_then_filled_repeats_no_trade_before_all_traded(exchange: str) -> None:
    order, ids, terms, events = resting_buy(exchange, 1)
    assert compact(events) == [UNKNOWN, NO_TRADE]
    fill = compact(on_tick([order], offer_at(exchange, 3), None, terms, FillRules(), ids, LATER, TickUse()))
    price = INSTRUMENTS[exchange][1]
    if exchange in ("DCE", "GFEX"):  # CTP synthesises the all-traded report, no repeat
        assert fill == [("order", "0", "3", "全部成交", 1), ("trade", price, 1)]
    else:
        assert fill == [NO_TRADE, ("order", "0", "3", "全部成交", 1), ("trade", price, 1)]


@pytest.mark.parametrize("exchange", AFTER_MATCH)
def test_immediate_full_fill_on_shfe_repeats_unknown_then_all_traded_submitted(exchange: str) -> None:
    instrument, price = INSTRUMENTS[exchange]
    terms = terms_of(instrument)
    ids = Ids()
    order = make_order(ids, instrument, price=price, volume=1)
    events = on_insert(order, offer_at(exchange, 5), terms, FillRules(), ids, NOW, TickUse())
    assert compact(events) == [UNKNOWN, UNKNOWN, ("order", "0", "0", "全部成交报单已提交", 1), ("trade", price, 1)]
    assert events[0].values["OrderSysID"] == "" and events[2].values["OrderSysID"] == "           1"
    assert events[3].trade.SequenceNo > events[2].values["SequenceNo"]  # the exchange sends the trade after


@pytest.mark.parametrize("exchange", ("DCE", "GFEX", "CZCE"))
def test_dce_gfex_czce_report_no_trade_first_even_for_an_immediate_fill(exchange: str) -> None:
    instrument, price = INSTRUMENTS[exchange]
    terms = terms_of(instrument)
    ids = Ids()
    order = make_order(ids, instrument, price=price, volume=1)
    events = compact(on_insert(order, offer_at(exchange, 5), terms, FillRules(), ids, NOW, TickUse()))
    if exchange == "CZCE":
        assert events == [UNKNOWN, NO_TRADE, NO_TRADE, ("order", "0", "3", "全部成交", 1), ("trade", price, 1)]
    else:
        assert events == [UNKNOWN, NO_TRADE, ("order", "0", "3", "全部成交", 1), ("trade", price, 1)]


@pytest.mark.parametrize("exchange", sorted(INSTRUMENTS))
def test_accepted_then_cancelled(exchange: str) -> None:
    order, ids, _terms, events = resting_buy(exchange, 1)
    assert compact(events) == [UNKNOWN, NO_TRADE]
    assert compact(orders.cancel(order, LATER, ids)) == [
        ("order", "3", "1", "未成交", 0), ("release", 1), ("order", "5", "3", "已撤单", 0)]


def test_ten_lots_three_then_seven() -> None:
    order, ids, terms, events = resting_buy("SHFE", 10)
    price = INSTRUMENTS["SHFE"][1]
    assert compact(events) == [UNKNOWN, NO_TRADE]
    assert compact(on_tick([order], offer_at("SHFE", 3), None, terms, FillRules(), ids, LATER, TickUse())) == [
        NO_TRADE, ("order", "1", "3", "部分成交", 3), ("trade", price, 3)]
    assert compact(on_tick([order], offer_at("SHFE", 20), None, terms, FillRules(), ids, LATER, TickUse())) == [
        ("order", "1", "3", "部分成交", 3), ("order", "0", "3", "全部成交", 10), ("trade", price, 7)]
    assert not order.alive


def test_ten_lots_four_then_cancel() -> None:
    order, ids, terms, events = resting_buy("SHFE", 10)
    price = INSTRUMENTS["SHFE"][1]
    assert compact(on_tick([order], offer_at("SHFE", 4), None, terms, FillRules(), ids, LATER, TickUse())) == [
        NO_TRADE, ("order", "1", "3", "部分成交", 4), ("trade", price, 4)]
    assert compact(orders.cancel(order, LATER, ids)) == [
        ("order", "1", "1", "部分成交", 4), ("release", 6), ("order", "5", "3", "已撤单", 4)]
    assert order.VolumeTotal == 6


def test_cancelling_a_cancelled_order_is_26_and_an_unknown_order_25() -> None:
    order, ids, _terms, _events = resting_buy("SHFE", 1)
    orders.cancel(order, LATER, ids)
    again = checks.check_action({"ActionFlag": "0"}, order=order)
    assert again is not None and (again.error.code, again.message) == (26, "CTP:报单已全成交或已撤销，不能再撤")
    missing = checks.check_action({"ActionFlag": "0"}, order=None)
    assert missing is not None and (missing.error.code, missing.message) == (25, "CTP:撤单找不到相应报单")


def fak_partial(exchange: str):
    """A FAK (IOC + any volume) for 5 lots against 2 offered at its price."""
    instrument, price = INSTRUMENTS[exchange]
    terms = terms_of(instrument)
    ids = Ids()
    order = make_order(ids, instrument, price=price, volume=5, time_condition="1")
    return order, on_insert(order, offer_at(exchange, 2), terms, FillRules(), ids, NOW, TickUse()), price


@pytest.mark.parametrize("exchange", AFTER_MATCH)
def test_shfe_ine_cffex_fak_partial_reports_cancelled_before_the_trade(exchange: str) -> None:
    order, events, price = fak_partial(exchange)
    assert compact(events) == [UNKNOWN, ("release", 3), ("order", "5", "3", "已撤单", 2),
                               ("order", "5", "3", "已撤单", 2), ("trade", price, 2)]
    assert order.VolumeTotal == 3 and not order.alive


@pytest.mark.parametrize("exchange", ("DCE", "GFEX"))
def test_dce_gfex_fak_partial_no_trade_then_part_traded_and_trade_then_cancelled(exchange: str) -> None:
    _order, events, price = fak_partial(exchange)
    assert compact(events) == [UNKNOWN, NO_TRADE, ("order", "1", "3", "部分成交", 2), ("trade", price, 2),
                               ("release", 3), ("order", "5", "3", "已撤单", 2)]


def test_czce_fak_partial_repeats_no_trade_before_part_traded() -> None:
    _order, events, price = fak_partial("CZCE")
    assert compact(events) == [UNKNOWN, NO_TRADE, NO_TRADE, ("order", "1", "3", "部分成交", 2), ("trade", price, 2),
                               ("release", 3), ("order", "5", "3", "已撤单", 2)]


@pytest.mark.parametrize("exchange", sorted(INSTRUMENTS))
def test_fak_with_nothing_to_take_is_cancelled_at_once(exchange: str) -> None:
    instrument, price = INSTRUMENTS[exchange]
    terms = terms_of(instrument)
    ids = Ids()
    order = make_order(ids, instrument, price=price - terms.PriceTick, volume=2, time_condition="1")
    events = compact(on_insert(order, offer_at(exchange, 9), terms, FillRules(), ids, NOW, TickUse()))
    cancelled = [("release", 2), ("order", "5", "3", "已撤单", 0)]
    assert events == ([UNKNOWN] if exchange in AFTER_MATCH else [UNKNOWN, NO_TRADE]) + cancelled


def test_reports_and_trades_carry_increasing_sequence_numbers_and_the_orders_ids() -> None:
    order, ids, terms, events = resting_buy("SHFE", 2)
    fills = on_tick([order], offer_at("SHFE", 9), None, terms, FillRules(), ids, LATER, TickUse())
    reports = [e.values for e in events + fills if isinstance(e, OrderReport)]
    trade = next(e.trade for e in fills if isinstance(e, TradeReport))
    exchange_numbers = [v["SequenceNo"] for v in reports if v["OrderSysID"]]
    assert exchange_numbers == sorted(exchange_numbers) and trade.SequenceNo > exchange_numbers[0]
    assert (trade.OrderSysID, trade.OrderRef, trade.BrokerOrderSeq) == (order.OrderSysID, "1", order.BrokerOrderSeq)
    assert trade.TradeID == "           1" and trade.OrderLocalID == order.OrderLocalID
