"""Orders and trades: ids and their padding, the fields an accepted order carries, cancel, expiry,
and the state the store keeps.  The helpers at the top are shared by the other order-side tests."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from ctpshim.broker import orders
from ctpshim.broker.matching import Book, FillRules, TickUse, on_insert, on_tick
from ctpshim.broker.orders import Ids, Order, OrderReport, Release, Trade, TradeReport
from ctpshim.broker.terms import Terms, parse_info, terms_for
from ctpshim.ctp import fields
from ctpshim.ctp.market_data import DBL_MAX

# Tuesday 1 December 2026, a trading day; every exchange's day session runs at 10:00.
NOW = datetime(2026, 12, 1, 10, 0, 0)
TRADING_DAY = "20261201"


def terms_of(instrument_id: str) -> Terms:
    info = parse_info(instrument_id)
    assert info is not None, instrument_id
    return terms_for(info)


def order_input(instrument_id: str = "rb2701", *, direction: str = "0", offset: str = "0", price: float = 3000.0,
                volume: int = 1, time_condition: str = "3", volume_condition: str = "1", min_volume: int = 1,
                price_type: str = "2", ref: str = "1", exchange_id: str | None = None) -> dict[str, Any]:
    """A CThostFtdcInputOrderField's values, as a program fills them for a plain limit GFD order."""
    return {
        "BrokerID": "9999", "InvestorID": "000001", "UserID": "000001", "InstrumentID": instrument_id,
        "ExchangeID": terms_of(instrument_id).ExchangeID if exchange_id is None else exchange_id,
        "OrderRef": ref, "OrderPriceType": price_type, "Direction": direction, "CombOffsetFlag": offset,
        "CombHedgeFlag": "1", "LimitPrice": price, "VolumeTotalOriginal": volume, "TimeCondition": time_condition,
        "VolumeCondition": volume_condition, "MinVolume": min_volume, "ContingentCondition": "1", "StopPrice": 0.0,
        "ForceCloseReason": "0", "IsAutoSuspend": 0, "UserForceClose": 0, "RequestID": 7,
    }


def make_order(ids: Ids, instrument_id: str = "rb2701", now: datetime = NOW, trading_day: str = TRADING_DAY,
               **kwargs: Any) -> Order:
    values = order_input(instrument_id, **kwargs)
    return orders.new_order(values, front_id=1, session_id=-5, order_ref=values["OrderRef"], trading_day=trading_day,
                            now=now, terms=terms_of(instrument_id), ids=ids)


def tick(instrument_id: str = "rb2701", *, bids: list[tuple[float, int]] = (), asks: list[tuple[float, int]] = (),
         last: float = DBL_MAX, volume: int = 0, upper: float = DBL_MAX, lower: float = DBL_MAX,
         pre_settlement: float = DBL_MAX) -> dict[str, Any]:
    """A tick's members as the md API delivers them: absent prices DBL_MAX, absent volumes 0."""
    values: dict[str, Any] = {"InstrumentID": instrument_id, "LastPrice": last, "Volume": volume,
                              "UpperLimitPrice": upper, "LowerLimitPrice": lower,
                              "PreSettlementPrice": pre_settlement}
    for side, levels in (("Bid", bids), ("Ask", asks)):
        for level in range(1, 6):
            price, size = levels[level - 1] if level <= len(levels) else (DBL_MAX, 0)
            values[f"{side}Price{level}"] = price
            values[f"{side}Volume{level}"] = size
    return values


def book(instrument_id: str = "rb2701", **kwargs: Any) -> Book:
    return Book.from_tick(tick(instrument_id, **kwargs))


def compact(events: list[Any]) -> list[tuple]:
    """Events as (kind, ...) tuples: ("order", OrderStatus, OrderSubmitStatus, StatusMsg, VolumeTraded),
    ("trade", Price, Volume), ("release", volume)."""
    shown: list[tuple] = []
    for event in events:
        if isinstance(event, OrderReport):
            v = event.values
            shown.append(("order", v["OrderStatus"], v["OrderSubmitStatus"], v["StatusMsg"], v["VolumeTraded"]))
        elif isinstance(event, TradeReport):
            shown.append(("trade", event.trade.Price, event.trade.Volume))
        else:
            assert isinstance(event, Release)
            shown.append(("release", event.volume))
    return shown


# ----------------------------------------------------------------------------------------------


def test_ids_are_right_aligned_in_twelve_characters() -> None:
    ids = Ids()
    assert ids.next_sys_id("SHFE") == "           1"
    assert ids.next_sys_id("SHFE") == "           2"
    assert ids.next_trade_id("SHFE") == "           1"
    assert len(ids.next_local_id("CZCE")) == 12
    assert [ids.next_order_seq() for _ in range(3)] == [1, 2, 3]
    assert [ids.next_sequence_no("SHFE"), ids.next_sequence_no("SHFE"), ids.next_sequence_no("INE")] == [1, 2, 1]


def test_order_sys_ids_and_trade_ids_never_repeat_across_exchanges() -> None:
    # vn.py maps OnRtnTrade to its order by OrderSysID alone (sysid_orderid_map) and drops a trade
    # whose TradeID it has seen (vt_tradeid): an SHFE and a DCE order both numbered 1 would mix up.
    ids = Ids()
    shfe = [ids.next_sys_id("SHFE"), ids.next_sys_id("SHFE")]
    dce = ids.next_sys_id("DCE")
    assert dce not in shfe and dce == "           3"
    trades = {ids.next_trade_id("SHFE"), ids.next_trade_id("DCE"), ids.next_trade_id("CZCE")}
    assert len(trades) == 3
    # A state stored by per-exchange counting goes on above every exchange's number.
    old = Ids.from_state({"order_seq": 9, "sys": {"SHFE": 7, "DCE": 4}, "local": {}, "trade": {"SHFE": 5, "DCE": 8},
                          "seq": {}})
    assert old.next_sys_id("DCE") == "           8"
    assert old.next_trade_id("SHFE") == "           9"


def test_ids_continue_after_a_restart_from_their_state() -> None:
    ids = Ids()
    for _ in range(3549):
        ids.next_sys_id("SHFE")
    ids.next_order_seq()
    again = Ids.from_state(json.loads(json.dumps(ids.to_state())))
    assert again.next_sys_id("SHFE") == "        3550"  # SimNow's '        3549' shape (SIM_TRADING.md 0.6)
    assert again.next_order_seq() == 2
    assert again.next_sys_id("DCE") == "        3551"


def test_a_new_order_carries_the_request_and_the_counters_stamps() -> None:
    ids = Ids()
    order = make_order(ids, "rb2701", price=3001.0, volume=4, ref="17")
    assert order.OrderStatus == "a" and order.OrderSubmitStatus == "0" and order.StatusMsg == "报单已提交"
    assert order.OrderSysID == ""  # set when the exchange accepts it
    assert order.OrderLocalID == "           1" and order.BrokerOrderSeq == 1 and order.key == 1
    assert (order.VolumeTotalOriginal, order.VolumeTotal, order.VolumeTraded) == (4, 4, 0)
    assert (order.FrontID, order.SessionID, order.OrderRef, order.RequestID) == (1, -5, "17", 7)
    assert (order.offset, order.hedge, order.ExchangeID) == ("0", "1", "SHFE")
    assert (order.TradingDay, order.InsertDate, order.InsertTime) == ("20261201", "20261201", "10:00:00")
    assert order.alive


def test_night_orders_carry_the_calendar_date_on_shfe_and_the_trading_day_on_dce() -> None:
    # Monday 30 November 2026 21:30 belongs to trading day Tuesday 1 December (SIM_TRADING.md 0.6, 6.20).
    night = datetime(2026, 11, 30, 21, 30)
    ids = Ids()
    shfe = make_order(ids, "rb2701", now=night, trading_day="20261201")
    dce = make_order(ids, "m2705", now=night, trading_day="20261201", price=3000.0)
    assert (shfe.InsertDate, shfe.TradingDay) == ("20261130", "20261201")
    assert (dce.InsertDate, dce.TradingDay) == ("20261201", "20261201")
    rules = FillRules()
    crossing = {"asks": [(3000.0, 5)], "bids": [(2999.0, 5)]}
    dce_events = on_insert(dce, book("m2705", **crossing), terms_of("m2705"), rules, ids, night, TickUse())
    shfe_events = on_insert(shfe, book("rb2701", **crossing), terms_of("rb2701"), rules, ids, night, TickUse())
    dce_trade = next(event.trade for event in dce_events if isinstance(event, TradeReport))
    shfe_trade = next(event.trade for event in shfe_events if isinstance(event, TradeReport))
    assert (shfe_trade.TradeDate, shfe_trade.TradingDay, shfe_trade.TradeTime) == ("20261130", "20261201", "21:30:00")
    assert (dce_trade.TradeDate, dce_trade.TradingDay) == ("20261201", "20261201")


def test_order_values_are_members_of_the_ctp_order_field() -> None:
    order = make_order(Ids())
    members = set(fields.member_names(fields.field_class("tdapi", "CThostFtdcOrderField")))
    values = order.order_values()
    assert set(values) <= members
    built = fields.field_class("tdapi", "CThostFtdcOrderField")()
    for name, value in values.items():
        setattr(built, name, value)  # every value has the member's type (openctp's checks)
    assert built.OrderStatus == "a" and built.ExchangeInstID == "rb2701"


def test_trade_values_are_members_of_the_ctp_trade_field() -> None:
    ids = Ids()
    order = make_order(ids, price=3001.0)
    trade = orders.new_trade(order, 3001.0, 1, NOW, terms_of("rb2701"), ids)
    members = fields.member_names(fields.field_class("tdapi", "CThostFtdcTradeField"))
    assert set(orders.TRADE_MEMBERS) == set(trade.trade_values()) and set(orders.TRADE_MEMBERS) <= set(members)
    built = fields.field_class("tdapi", "CThostFtdcTradeField")()
    for name, value in trade.trade_values().items():
        setattr(built, name, value)
    assert built.TradeID == "           1" and built.OffsetFlag == "0" and built.HedgeFlag == "1"


def test_order_and_trade_state_round_trips_through_json() -> None:
    ids = Ids()
    order = make_order(ids, price=3001.0, volume=3)
    on_insert(order, book(asks=[(3001.0, 1)], bids=[(3000.0, 1)]), terms_of("rb2701"), FillRules(), ids, NOW, TickUse())
    again = Order.from_state(json.loads(json.dumps(order.to_state())))
    assert again == order and again.VolumeTraded == 1 and again.alive
    trade = orders.new_trade(order, 3001.0, 1, NOW, terms_of("rb2701"), ids)
    assert Trade.from_state(json.loads(json.dumps(trade.to_state()))) == trade


def test_a_state_with_unknown_members_is_refused_by_name() -> None:
    state = make_order(Ids()).to_state()
    state["Colour"] = "red"
    with pytest.raises(ValueError, match="Colour"):
        Order.from_state(state)
    ids = Ids()
    trade = orders.new_trade(make_order(ids), 3001.0, 1, NOW, terms_of("rb2701"), ids).to_state()
    with pytest.raises(ValueError, match="a trade's state has unknown members \\['Shape'\\]"):
        Trade.from_state({**trade, "Shape": "round"})


def test_cancel_repeats_the_state_as_cancel_submitted_then_cancels_and_releases_the_rest() -> None:
    ids = Ids()
    terms = terms_of("rb2701")
    order = make_order(ids, price=3000.0, volume=10)
    on_insert(order, book(asks=[(3001.0, 5)], bids=[(3000.0, 5)]), terms, FillRules(), ids, NOW, TickUse())
    on_tick([order], book(asks=[(3000.0, 4)], bids=[(2999.0, 5)]), None, terms, FillRules(), ids, NOW, TickUse())
    later = datetime(2026, 12, 1, 10, 5, 0)
    events = orders.cancel(order, later, ids)
    assert compact(events) == [("order", "1", "1", "部分成交", 4), ("release", 6), ("order", "5", "3", "已撤单", 4)]
    assert (order.VolumeTotal, order.CancelTime, order.alive) == (6, "10:05:00", False)  # CTP_SEMANTICS 7.3


def test_expiry_at_settlement_cancels_without_a_callback_unless_asked() -> None:
    ids = Ids()
    quiet, told = make_order(ids, volume=2), make_order(ids, volume=3, ref="2")
    for order in (quiet, told):
        on_insert(order, book(asks=[(3001.0, 5)], bids=[(3000.0, 5)]), terms_of("rb2701"), FillRules(), ids, NOW, TickUse())
    close = datetime(2026, 12, 1, 15, 0, 0)
    assert compact(orders.expire(quiet, close)) == [("release", 2)]
    assert compact(orders.expire(told, close, report_it=True, ids=ids)) == [("release", 3), ("order", "5", "3", "已撤单", 0)]
    assert not quiet.alive and quiet.OrderStatus == "5"
