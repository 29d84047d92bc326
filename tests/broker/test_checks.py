"""The counter's checks: each CTP-layer code and text, the order they fire in, the OrderRef rules,
the exchange-layer rejects as OnRtnOrder, and finding the order a cancel names.

Codes and texts are the reference's (SIM_TRADING.md 2.4, CTP 6.7.8's error table)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest

from ctpshim.broker import checks, orders
from ctpshim.broker.checks import OrderRefs, check_insert
from ctpshim.broker.matching import FillRules, TickUse, on_insert
from ctpshim.broker.orders import Ids
from ctpshim.broker.terms import Terms

from .test_orders import NOW, book, compact, make_order, order_input, terms_of

EXCHANGES = {"SHFE", "INE", "DCE", "CZCE", "CFFEX", "GFEX"}


class FakeLedger:
    """A stand-in for the ledger's LedgerView: fixed closable lots per offset and a flat cost
    (10 % margin, 1 yuan a lot), so each test states the money it means."""

    def __init__(self, available: float = 1e7, closable: dict[str, int] | None = None) -> None:
        self._available = available
        self._closable = closable or {}
        self.asked: list[tuple] = []
        self.costed: list[tuple] = []

    def closable(self, terms: Terms, direction: str, offset: str, hedge: str) -> int:
        self.asked.append((direction, offset, hedge))
        return self._closable.get(offset, 0)

    def order_cost(self, terms: Terms, direction: str, offset: str, price: float, volume: int,
                   hedge: str = "1") -> tuple[float, float]:
        self.costed.append((direction, offset, hedge))
        margin = price * terms.VolumeMultiple * volume * 0.1 if offset == "0" else 0.0
        return margin, 1.0 * volume

    def available(self) -> float:
        return self._available


ACCOUNT = ("9999", "000001")  # the session's login (order_input's BrokerID, InvestorID)


def run(values: dict[str, Any], *, confirmed: bool = True, refs: OrderRefs | None = None,
        ledger: FakeLedger | None = None, known: bool = True, quote=None, account: tuple[str, str] | None = ACCOUNT):
    terms = terms_of(values["InstrumentID"]) if known else None
    return check_insert(values, confirmed=confirmed, session_refs=refs or OrderRefs(), terms=terms,
                        ledger=ledger or FakeLedger(), exchange_ids=EXCHANGES, book=quote, account=account)


def code_and_text(reject: checks.Reject | None) -> tuple[int, str] | None:
    return None if reject is None else (reject.error.code, reject.message)


BAD_FIELD = (15, "CTP:报单字段有误")


def test_a_plain_limit_order_passes() -> None:
    assert run(order_input()) is None


@pytest.mark.parametrize("change, named", [
    ({"Direction": "2"}, "Direction"),
    ({"CombOffsetFlag": "9"}, "CombOffsetFlag"),
    ({"CombOffsetFlag": ""}, "CombOffsetFlag"),
    ({"CombHedgeFlag": "x"}, "CombHedgeFlag"),
    ({"OrderPriceType": "4"}, "OrderPriceType"),
    ({"TimeCondition": "9"}, "TimeCondition"),
    ({"VolumeCondition": "0"}, "VolumeCondition"),
    ({"VolumeTotalOriginal": 0}, "VolumeTotalOriginal"),
    ({"VolumeTotalOriginal": -3}, "VolumeTotalOriginal"),
    ({"LimitPrice": float("nan")}, "LimitPrice"),
    ({"LimitPrice": float("inf")}, "LimitPrice"),
    ({"LimitPrice": 0.0}, "LimitPrice"),
    ({"VolumeCondition": "2", "MinVolume": 0}, "MinVolume"),
    ({"VolumeCondition": "2", "MinVolume": 5, "VolumeTotalOriginal": 4}, "MinVolume"),
    ({"ContingentCondition": "5"}, "ContingentCondition"),
])
def test_bad_fields_are_15_naming_the_member(change: dict[str, Any], named: str) -> None:
    reject = run({**order_input(), **change})
    assert code_and_text(reject) == BAD_FIELD
    assert named in reject.detail


def test_a_bad_direction_detail_lists_the_valid_values() -> None:
    reject = run({**order_input(), "Direction": "2"})
    assert "'0' buy" in reject.detail and "'1' sell" in reject.detail and "'2'" in reject.detail


def test_exchange_id_missing_147_invalid_148_wrong_150() -> None:
    assert code_and_text(run(order_input(exchange_id=""))) == (147, "CTP:缺少ExchangeID字段，请填入ExchangeID")
    assert code_and_text(run(order_input(exchange_id="NYMEX"))) == (
        148, "CTP:无效的ExchangeID字段，请填入正确的ExchangeID")
    wrong = run(order_input("rb2701", exchange_id="DCE"))
    assert code_and_text(wrong) == (150, "CTP:交易所代码错误") and "SHFE" in wrong.detail


def test_unknown_instrument_is_16() -> None:
    reject = run(order_input("rb2701"), known=False)
    assert code_and_text(reject) == (16, "CTP:找不到合约") and "rb2701" in reject.detail


def test_market_orders_are_refused_on_shfe_and_ine_with_15_and_taken_on_dce() -> None:
    for instrument in ("rb2701", "sc2702"):
        reject = run(order_input(instrument, price_type="1", price=0.0, time_condition="1"))
        assert code_and_text(reject) == BAD_FIELD and "market" in reject.detail
    assert run(order_input("m2705", price_type="1", price=0.0, time_condition="1"),
               quote=book("m2705", last=3100.0)) is None


def test_more_lots_than_the_instrument_allows_is_15() -> None:
    terms = terms_of("rb2701")
    assert run(order_input("rb2701", volume=terms.MaxLimitOrderVolume)) is None
    reject = run(order_input("rb2701", volume=terms.MaxLimitOrderVolume + 1))
    assert code_and_text(reject) == BAD_FIELD and "MaxLimitOrderVolume" in reject.detail
    market = terms_of("m2705").MaxMarketOrderVolume
    reject = run(order_input("m2705", price_type="1", price=0.0, time_condition="1", volume=market + 1))
    assert code_and_text(reject) == BAD_FIELD and "MaxMarketOrderVolume" in reject.detail


def test_settlement_not_confirmed_is_42() -> None:
    assert code_and_text(run(order_input(), confirmed=False)) == (42, "CTP:结算结果未确认")


def test_order_refs_must_increase_within_a_session_and_a_blank_one_is_assigned() -> None:
    refs = OrderRefs()
    assert refs.resolve("") == "           1"
    refs.use(refs.resolve("5"))
    assert refs.resolve("5") is None and refs.resolve("3") is None and refs.resolve("abc") is None
    assert refs.resolve("6") == "6"  # a ref the program set comes back unchanged
    assert refs.resolve("  ") == "           6"
    refs.use("           6")
    assert refs.resolve("") == "           7"
    assert OrderRefs.from_state(refs.to_state()).resolve("6") is None


def test_a_duplicate_or_lower_order_ref_is_22() -> None:
    refs = OrderRefs()
    refs.use("8")
    for ref in ("8", "7", "x1"):
        reject = run(order_input(ref=ref), refs=refs)
        assert code_and_text(reject) == (22, "CTP:报单错误：不允许重复报单") and "8" in reject.detail
    assert run(order_input(ref="9"), refs=refs) is None


def test_an_order_ref_of_digits_that_are_not_ascii_is_22_not_a_crash() -> None:
    refs = OrderRefs()
    for ref in ("²", "１", "٣", "1²"):  # str.isdigit() takes them all; int() refuses '²', reads '１' as 1
        assert refs.resolve(ref) is None, ref
        reject = run(order_input(ref=ref), refs=refs)
        assert code_and_text(reject) == (22, "CTP:报单错误：不允许重复报单") and repr(ref) in reject.detail
    assert refs.highest == 0 and run(order_input(ref="1"), refs=refs) is None


def test_a_blank_investor_id_is_146_and_another_account_is_3() -> None:
    blank = {**order_input(), "InvestorID": ""}
    reject = run(blank)
    assert code_and_text(reject) == (146, "CTP:缺少InvestorID字段，请填入InvestorID") and "000001" in reject.detail
    assert run({**order_input(), "InvestorID": "   "}).error.code == 146
    for other in ({"InvestorID": "someone_else"}, {"BrokerID": "8888"}, {"BrokerID": ""}):
        reject = run({**order_input(), **other})
        assert code_and_text(reject) == (3, "CTP:不合法的登录"), other
        assert "9999" in reject.detail and "000001" in reject.detail
    # before any other check: even a bad field answers the account first
    assert run({**order_input(), "InvestorID": "x", "Direction": "7"}, confirmed=False).error.code == 3
    assert run(order_input()) is None


def test_a_cancel_of_another_account_is_3_and_a_blank_investor_146() -> None:
    order = make_order(Ids())
    action = {"BrokerID": "9999", "InvestorID": "000001", "ActionFlag": "0", "OrderRef": "1"}
    assert checks.check_action(action, order=order, account=ACCOUNT) is None
    assert checks.check_action({**action, "InvestorID": ""}, order=order, account=ACCOUNT).error.code == 146
    assert checks.check_action({**action, "InvestorID": "000002"}, order=order, account=ACCOUNT).error.code == 3
    assert checks.check_action({**action, "BrokerID": "1"}, order=None, account=ACCOUNT).error.code == 3  # before 25


def test_closing_more_than_held_is_30_off_shfe_and_50_or_51_on_shfe_and_ine() -> None:
    held = FakeLedger(closable={"1": 2, "3": 1, "4": 2})
    for instrument in ("m2705", "MA705", "lc2705", "IF2612"):
        for offset in ("1", "3", "4"):
            reject = run(order_input(instrument, direction="1", offset=offset, volume=3,
                                     price=terms_of(instrument).PriceTick * 1000), ledger=held)
            assert code_and_text(reject) == (30, "CTP:平仓量超过持仓量"), (instrument, offset)
    for instrument in ("rb2701", "sc2702"):
        price = terms_of(instrument).PriceTick * 1000
        today = run(order_input(instrument, direction="1", offset="3", volume=2, price=price), ledger=held)
        assert code_and_text(today) == (50, "CTP:平今仓位不足")
        for offset in ("1", "4"):
            reject = run(order_input(instrument, direction="1", offset=offset, volume=3, price=price), ledger=held)
            assert code_and_text(reject) == (51, "CTP:平昨仓位不足")
    assert run(order_input("rb2701", direction="1", offset="1", volume=2), ledger=held) is None
    assert ("1", "1", "1") in held.asked  # the ledger is asked with the closing order's direction and offset


def test_insufficient_money_is_31_for_open_margin_and_commission_and_for_a_close_fee() -> None:
    # 1 lot rb at 3000: margin 3000 x 10 x 10 % = 3000, commission 1 -> 3001 needed.
    assert run(order_input(price=3000.0), ledger=FakeLedger(available=3001.0)) is None
    reject = run(order_input(price=3000.0), ledger=FakeLedger(available=3000.99))
    assert code_and_text(reject) == (31, "CTP:资金不足") and "3001.00" in reject.detail
    closing = FakeLedger(available=0.5, closable={"1": 1})
    assert code_and_text(run(order_input(direction="1", offset="1"), ledger=closing)) == (31, "CTP:资金不足")


def test_a_market_order_is_costed_at_its_sides_limit_else_the_band_else_last_else_pre_settlement() -> None:
    buy = order_input("m2705", price_type="1", price=0.0, time_condition="1")
    sell = {**buy, "Direction": "1"}
    m = terms_of("m2705")
    quoted = book("m2705", last=3010.0, upper=3300.0, lower=2700.0, pre_settlement=3000.0)
    assert checks.cost_price(buy, quoted, m) == 3300.0 and checks.cost_price(sell, quoted, m) == 2700.0
    # no limits on the tick: m's 7 % band around 3001: floor(3211.07) = 3211, ceil(2790.93) = 2791
    banded = book("m2705", last=3010.0, pre_settlement=3001.0)
    assert checks.cost_price(buy, banded, m) == 3211.0 and checks.cost_price(sell, banded, m) == 2791.0
    assert checks.cost_price(buy, banded) == 3010.0  # without terms: no band, the last price
    assert checks.cost_price(buy, book("m2705", pre_settlement=3001.0)) == 3001.0
    assert checks.cost_price(buy, book("m2705"), m) == 0.0 and checks.cost_price(buy, None, m) == 0.0
    assert checks.cost_price(order_input("m2705", price=3005.0), quoted, m) == 3005.0  # a limit order: its price
    # the check costs the order at that price: margin 3300 x 10 x 10 % + 1 commission = 3301
    assert run(buy, ledger=FakeLedger(available=3301.0), quote=quoted) is None
    assert run(buy, ledger=FakeLedger(available=3300.5), quote=quoted).error.code == 31


def test_a_close_order_is_costed_on_its_own_hedge_flag() -> None:
    held = FakeLedger(closable={"1": 2, "3": 2})
    for hedge in ("1", "2", "3"):
        values = {**order_input("m2705", direction="1", offset="1"), "CombHedgeFlag": hedge}
        assert run(values, ledger=held) is None
    assert held.costed == [("1", "1", "1"), ("1", "1", "2"), ("1", "1", "3")]
    assert [hedge for *_, hedge in held.asked] == ["1", "2", "3"]  # the same record the close volume is checked on


def test_the_first_failing_check_answers_in_the_documented_order() -> None:
    bad = {**order_input("rb2701", exchange_id=""), "Direction": "7"}
    assert run(bad, confirmed=False).error.code == 15  # fields before ExchangeID
    assert run(order_input("rb2701", exchange_id=""), known=False).error.code == 147  # ExchangeID before instrument
    assert run(order_input("rb2701"), known=False, confirmed=False).error.code == 16  # instrument before 42
    refs = OrderRefs()
    refs.use("4")
    assert run(order_input(ref="4"), confirmed=False, refs=refs).error.code == 42  # 42 before 22
    poor = FakeLedger(available=0.0)
    assert run(order_input(ref="4", direction="1", offset="1"), refs=refs, ledger=poor).error.code == 22  # 22 before close
    assert run(order_input(direction="1", offset="1"), ledger=poor).error.code == 51  # close volume before money


# -- the exchange layer ---------------------------------------------------------------------------


def exchange_events(instrument: str = "rb2701", *, now: datetime = NOW, hours: bool = True, tick_book=None,
                    **kwargs: Any):
    ids = Ids()
    order = make_order(ids, instrument, now=now, **kwargs)
    quote = tick_book if tick_book is not None else book(instrument, bids=[(2999.0, 5)], asks=[(3001.0, 5)],
                                                         upper=3200.0, lower=2800.0)
    return order, on_insert(order, quote, terms_of(instrument), FillRules(), ids, now, TickUse(), hours=hours)


def rejected(message: str, volume: int = 1) -> list[tuple]:
    return [("order", "a", "0", "报单已提交", 0), ("release", volume), ("order", "5", "4", message, 0)]


def test_outside_trading_hours_is_exchange_26_with_no_error_id() -> None:
    in_break = datetime(2026, 12, 1, 10, 20)  # SHFE's 10:15-10:30 break
    order, events = exchange_events(now=in_break, volume=2)
    assert compact(events) == rejected("26:已撤单报单被拒绝SHFE:当前状态禁止此项操作", 2)
    assert "ErrorID" not in events[-1].values and order.OrderSysID == "" and not order.alive


def test_hours_off_takes_orders_at_any_time() -> None:
    _order, events = exchange_events(now=datetime(2026, 12, 1, 10, 20), hours=False)
    assert compact(events)[-1] == ("order", "3", "3", "未成交", 0)


@pytest.mark.parametrize("time_condition, volume_condition", [("3", "3"), ("5", "1"), ("4", "1"), ("2", "1"), ("6", "1")])
def test_gfd_with_complete_volume_and_gtc_gtd_gfs_gfa_are_exchange_79(time_condition: str, volume_condition: str) -> None:
    _order, events = exchange_events(time_condition=time_condition, volume_condition=volume_condition)
    assert compact(events) == rejected("79:已撤单报单被拒绝SHFE:不被支持的报单类型")


def test_a_price_off_the_tick_is_exchange_48() -> None:
    _order, events = exchange_events("au2702", price=600.01, tick_book=book("au2702", bids=[(600.0, 1)],
                                                                            asks=[(600.04, 1)]))
    assert compact(events) == rejected("48:已撤单报单被拒绝SHFE:报单价格不是最小变动价位的整数倍")
    _order, events = exchange_events("au2702", price=600.02, tick_book=book("au2702", bids=[(600.0, 1)],
                                                                            asks=[(600.04, 1)]))
    assert compact(events)[-1] == ("order", "3", "3", "未成交", 0)  # 600.02 is 30001 ticks of 0.02


def test_prices_outside_the_ticks_limits_are_exchange_49_and_50() -> None:
    _order, events = exchange_events(price=3201.0)
    assert compact(events) == rejected("49:已撤单报单被拒绝SHFE:价格超出涨停板")
    _order, events = exchange_events(direction="1", price=2799.0)
    assert compact(events) == rejected("50:已撤单报单被拒绝SHFE:价格跌破跌停板")
    _order, events = exchange_events(price=3200.0)  # at the limit is allowed: it buys the offer at 3001
    assert compact(events)[-1] == ("trade", 3001.0, 1)


def test_without_limits_in_the_tick_the_band_comes_from_pre_settlement() -> None:
    band = terms_of("rb2701").info.product.limit
    upper = int(3000 * (1 + band))  # rb's tick is 1: round down to it
    quote = book("rb2701", bids=[(2999.0, 5)], asks=[(3001.0, 5)], pre_settlement=3000.0)
    _order, events = exchange_events(price=float(upper + 1), tick_book=quote)
    assert compact(events)[-1][3].startswith("49:")
    _order, events = exchange_events(price=float(upper), tick_book=quote)
    assert compact(events)[-1] == ("trade", 3001.0, 1)


def test_session_before_type_before_tick_before_limits() -> None:
    in_break = datetime(2026, 12, 1, 10, 20)
    assert compact(exchange_events(now=in_break, price=3300.5, time_condition="5")[1])[-1][3].startswith("26:")
    assert compact(exchange_events(price=3300.5, time_condition="5")[1])[-1][3].startswith("79:")
    assert compact(exchange_events(price=3300.5)[1])[-1][3].startswith("48:")


def test_other_exchanges_name_themselves_in_the_reject() -> None:
    quote = book("m2705", bids=[(2999.0, 5)], asks=[(3001.0, 5)], upper=3200.0, lower=2800.0)
    _order, events = exchange_events("m2705", price=3300.0, tick_book=quote)
    assert compact(events)[-1][3] == "49:已撤单报单被拒绝DCE:价格超出涨停板"


# -- cancels --------------------------------------------------------------------------------------


def test_a_cancel_finds_its_order_by_front_session_ref_or_by_exchange_and_sys_id() -> None:
    order, _events = exchange_events()
    index = {key: order for key in checks.order_keys(order)}
    by_ref = checks.action_lookup({"FrontID": 1, "SessionID": -5, "OrderRef": "1"}, front_id=9, session_id=9)
    by_sys = checks.action_lookup({"ExchangeID": "SHFE", "OrderSysID": "           1"}, front_id=9, session_id=9)
    by_sys_unpadded = checks.action_lookup({"ExchangeID": "SHFE", "OrderSysID": "1"}, front_id=9, session_id=9)
    own_session = checks.action_lookup({"OrderRef": "1"}, front_id=1, session_id=-5)
    for key in (by_ref, by_sys, by_sys_unpadded, own_session):
        assert index.get(key) is order, key
    other_session = checks.action_lookup({"FrontID": 1, "SessionID": 6, "OrderRef": "1"}, front_id=1, session_id=6)
    assert other_session not in index


def test_only_delete_is_taken_as_an_action() -> None:
    order, _events = exchange_events()
    reject = checks.check_action({"ActionFlag": "3"}, order=order)
    assert code_and_text(reject) == BAD_FIELD and "ActionFlag" in reject.detail
    assert checks.check_action({"ActionFlag": "0"}, order=order) is None


def test_a_filled_order_cannot_be_cancelled() -> None:
    order, _events = exchange_events(price=3001.0)
    assert order.OrderStatus == "0"
    assert code_and_text(checks.check_action({"ActionFlag": "0"}, order=order))[0] == 26
    assert orders.ALL_TRADED == order.OrderStatus


@pytest.mark.parametrize("instrument, moment, taken", [
    ("rb2701", datetime(2026, 11, 30, 20, 57), True),  # before the 21:00 night open: the day's first session
    ("rb2701", datetime(2026, 11, 30, 20, 59, 30), False),  # the auction's matching minute
    ("rb2701", datetime(2026, 11, 30, 20, 54), False),  # before the auction
    ("rb2701", datetime(2026, 12, 1, 8, 57), False),  # 09:00 is not rb's first session of the day
    ("lc2705", datetime(2026, 12, 1, 8, 57), True),  # no night session: the day open has the auction
    ("IF2612", datetime(2026, 12, 1, 9, 27), True),
    ("IF2612", datetime(2026, 12, 1, 8, 57), False),
])
def test_gfd_limit_orders_are_taken_in_the_opening_auction_and_wait_for_the_open(
        instrument: str, moment: datetime, taken: bool) -> None:
    price = terms_of(instrument).PriceTick * 1000
    crossing = book(instrument, bids=[(price - 10 * terms_of(instrument).PriceTick, 5)], asks=[(price, 5)])
    order, events = exchange_events(instrument, now=moment, price=price, tick_book=crossing)
    last = compact(events)[-1]
    if taken:  # rests without matching the pre-open book
        assert last == ("order", "3", "3", "未成交", 0) and order.alive
    else:
        assert last[1:3] == ("5", "4") and last[3].startswith("26:")


def test_only_gfd_limit_orders_are_taken_in_the_auction() -> None:
    moment = datetime(2026, 11, 30, 20, 57)
    _order, events = exchange_events(now=moment, time_condition="1")
    assert compact(events)[-1][3] == "26:已撤单报单被拒绝SHFE:当前状态禁止此项操作"


def test_a_contract_past_its_last_trading_day_is_17_when_the_trading_day_is_given() -> None:
    values = order_input("rb2612")
    last = terms_of("rb2612").info.expire_date  # SHFE: the 15th of the delivery month, or the next trading day
    terms = terms_of("rb2612")
    common = dict(confirmed=True, session_refs=OrderRefs(), terms=terms, ledger=FakeLedger(), exchange_ids=EXCHANGES)
    assert check_insert(values, trading_day=last, **common) is None
    reject = check_insert(values, trading_day=date(2026, 12, 16), **common)
    assert code_and_text(reject) == (17, "CTP:合约不能交易") and "20261215" in reject.detail
    assert check_insert(values, **common) is None  # no trading day: not checked
