"""Matching: the book of a tick, aggressive fills level by level, FOK/MinVolume, market orders,
resting orders filled at their own price, the queue model.  Every expected fill is worked by hand
in the test from the book it is given."""

from __future__ import annotations

from datetime import datetime

from hypothesis import given, settings, strategies as st

from ctpshim.broker import orders as order_life
from ctpshim.broker.matching import QUEUE_UNSEEN, Book, FillRules, TickUse, on_insert, on_tick
from ctpshim.broker.orders import Ids, Release, TradeReport
from ctpshim.ctp import fields
from ctpshim.ctp.market_data import DBL_MAX, blank_values, make_tick, present_price, set_level

from .test_orders import NOW, book, compact, make_order, terms_of

RB = terms_of("rb2701")
LATER = datetime(2026, 12, 1, 10, 1, 0)


def trades(events) -> list[tuple[float, int]]:
    return [(e.trade.Price, e.trade.Volume) for e in events if isinstance(e, TradeReport)]


def insert(order, quote, ids, rules=FillRules(), consumed=None, terms=RB):
    return on_insert(order, quote, terms, rules, ids, NOW, TickUse() if consumed is None else consumed)


def test_a_ticks_book_skips_absent_levels_and_everything_after_them() -> None:
    values = blank_values("rb2701", "SHFE")
    set_level(values, "Bid", 1, 3000.0, 4)
    set_level(values, "Bid", 2, 2999.0, 0)  # no volume: absent
    set_level(values, "Bid", 3, 2998.0, 9)  # after an absent level: not used
    set_level(values, "Ask", 1, 3001.0, 2)
    set_level(values, "Ask", 2, 3002.0, 6)
    quote = Book.from_tick(make_tick(values))  # a real mdapi field object
    assert quote.bids == [(3000.0, 4)] and quote.asks == [(3001.0, 2), (3002.0, 6)]
    assert quote.last is None and quote.upper is None  # DBL_MAX is "absent"
    assert Book.from_tick({"InstrumentID": "x", "AskPrice1": DBL_MAX, "AskVolume1": 5}).asks == []


def test_an_absent_price_is_dbl_max_not_finite_not_positive_or_not_a_number() -> None:
    for absent in (DBL_MAX, 1e300, float("inf"), float("-inf"), float("nan"), 0.0, -3000.0, None, "3000", True):
        assert present_price(absent) is None, absent
    assert present_price(3000) == 3000.0 and present_price(0.2) == 0.2
    quote = Book.from_tick({"InstrumentID": "x", "LastPrice": float("nan"), "UpperLimitPrice": -1.0,
                            "LowerLimitPrice": 0.0, "PreSettlementPrice": 3000.0,
                            "BidPrice1": float("inf"), "BidVolume1": 5, "AskPrice1": 3001.0, "AskVolume1": 2})
    assert (quote.last, quote.upper, quote.lower, quote.pre_settlement) == (None, None, None, 3000.0)
    assert quote.bids == [] and quote.asks == [(3001.0, 2)]


def test_a_tick_object_a_dict_and_any_object_with_the_members_give_the_same_book() -> None:
    values = blank_values("rb2701", "SHFE")
    for level in range(1, 6):
        set_level(values, "Bid", level, 3000.0 - level, level)
        set_level(values, "Ask", level, 3000.0 + level, 10 * level)
    set_level(values, "Ask", 4, float("nan"), 3)  # not a price: levels 4 and 5 are absent
    tick_object = make_tick(values)
    as_dict = {name: getattr(tick_object, name) for name in fields.member_names(type(tick_object))}

    class Members:
        pass

    other = Members()
    other.__dict__.update(as_dict)
    books = [Book.from_tick(tick_object), Book.from_tick(as_dict), Book.from_tick(other)]
    assert books[0] == books[1] == books[2]
    assert books[0].bids[-1] == (2995.0, 5) and books[0].asks == [(3001.0, 10), (3002.0, 20), (3003.0, 30)]


def test_a_marketable_buy_takes_level_by_level_at_each_levels_price_up_to_its_limit() -> None:
    ids = Ids()
    order = make_order(ids, price=3002.0, volume=10)
    quote = book(bids=[(3000.0, 5)], asks=[(3001.0, 3), (3002.0, 4), (3003.0, 50)])
    events = insert(order, quote, ids)
    # 3 at 3001, 4 at 3002; 3003 is above the limit: 3 lots rest at 3002, first in its queue.
    assert trades(events) == [(3001.0, 3), (3002.0, 4)]
    assert (order.VolumeTraded, order.VolumeTotal, order.OrderStatus, order.queue_ahead) == (7, 3, "1", 0.0)


def test_a_marketable_sell_takes_the_bids_best_first() -> None:
    ids = Ids()
    order = make_order(ids, direction="1", price=2999.0, volume=6)
    events = insert(order, book(bids=[(3000.0, 2), (2999.0, 3), (2998.0, 9)], asks=[(3001.0, 1)]), ids)
    assert trades(events) == [(3000.0, 2), (2999.0, 3)] and order.VolumeTotal == 1


def test_without_partial_fills_the_whole_order_fills_at_the_best_opposite_price() -> None:
    ids = Ids()
    order = make_order(ids, price=3002.0, volume=10)
    events = insert(order, book(bids=[(3000.0, 5)], asks=[(3001.0, 3), (3002.0, 4)]), ids, FillRules(partial=False))
    assert trades(events) == [(3001.0, 10)] and order.OrderStatus == "0"


def test_fok_fills_all_or_nothing() -> None:
    quote = book(bids=[(3000.0, 5)], asks=[(3001.0, 3), (3002.0, 4)])
    ids = Ids()
    short = make_order(ids, price=3002.0, volume=8, time_condition="1", volume_condition="3")
    assert trades(insert(short, quote, ids)) == [] and short.OrderStatus == "5" and short.VolumeTotal == 8
    enough = make_order(ids, price=3002.0, volume=7, time_condition="1", volume_condition="3", ref="2")
    assert trades(insert(enough, quote, ids)) == [(3001.0, 3), (3002.0, 4)] and enough.OrderStatus == "0"


def test_min_volume_fills_at_least_min_volume_or_nothing() -> None:
    quote = book(bids=[(3000.0, 5)], asks=[(3001.0, 3)])
    ids = Ids()
    too_few = make_order(ids, price=3001.0, volume=6, time_condition="1", volume_condition="2", min_volume=4)
    assert trades(insert(too_few, quote, ids)) == [] and too_few.OrderStatus == "5"
    enough = make_order(ids, price=3001.0, volume=6, time_condition="1", volume_condition="2", min_volume=3, ref="2")
    events = insert(enough, quote, ids)
    assert trades(events) == [(3001.0, 3)] and enough.OrderStatus == "5" and ("release", 3) in compact(events)


def test_a_market_order_takes_every_level_and_the_rest_is_cancelled() -> None:
    dce = terms_of("m2705")
    ids = Ids()
    order = make_order(ids, "m2705", price_type="1", price=0.0, volume=10, time_condition="1")
    quote = book("m2705", bids=[(3000.0, 5)], asks=[(3001.0, 3), (3005.0, 4)], upper=3300.0, lower=2700.0)
    events = insert(order, quote, ids, terms=dce)
    assert trades(events) == [(3001.0, 3), (3005.0, 4)]
    assert (order.OrderStatus, order.VolumeTotal) == ("5", 3) and compact(events)[-2:] == [
        ("release", 3), ("order", "5", "3", "已撤单", 7)]


def test_a_locked_market_fills_nothing() -> None:
    ids = Ids()
    locked = book(bids=[(3200.0, 900)], upper=3200.0, lower=2800.0)  # limit-up: no one sells
    order = make_order(ids, price=3200.0, volume=1)
    assert trades(insert(order, locked, ids)) == [] and order.OrderStatus == "3"
    market = make_order(ids, "m2705", price_type="1", price=0.0, time_condition="1", ref="2")
    events = on_insert(market, book("m2705", bids=[(3000.0, 9)]), terms_of("m2705"), FillRules(), ids, NOW, TickUse())
    assert trades(events) == [] and market.OrderStatus == "5"


def test_two_orders_on_one_tick_never_take_the_same_lots() -> None:
    ids = Ids()
    quote = book(bids=[(3000.0, 5)], asks=[(3001.0, 3), (3002.0, 4)])
    consumed = TickUse()
    first = make_order(ids, price=3002.0, volume=5)
    second = make_order(ids, price=3002.0, volume=5, ref="2")
    assert trades(insert(first, quote, ids, consumed=consumed)) == [(3001.0, 3), (3002.0, 2)]
    assert trades(insert(second, quote, ids, consumed=consumed)) == [(3002.0, 2)]
    third = make_order(ids, price=3002.0, volume=5, ref="3")
    assert trades(insert(third, quote, ids, consumed=consumed)) == []  # the displayed 7 lots are gone


def test_an_aggressive_order_trades_at_the_median_of_its_limit_the_level_and_the_last_price() -> None:
    # SIM_TRADING.md 1.4: median(limit, level, last).  A buy at 3005 meets asks 3000 (2 lots) and
    # 3003 (5 lots) with the last trade at 3002: the first level prints median(3005, 3000, 3002)
    # = 3002, the next one its own 3003 (median(3005, 3003, 3002)).
    ids = Ids()
    quote = book(bids=[(2999.0, 5)], asks=[(3000.0, 2), (3003.0, 5)], last=3002.0)
    assert trades(insert(make_order(ids, price=3005.0, volume=4), quote, ids)) == [(3002.0, 2), (3003.0, 2)]
    # a last beyond the limit: the limit (median(3001, 3000, 3004) = 3001), never worse
    high_last = book(bids=[(2999.0, 5)], asks=[(3000.0, 9)], last=3004.0)
    assert trades(insert(make_order(ids, price=3001.0, volume=1, ref="2"), high_last, ids)) == [(3001.0, 1)]
    # a last on the near side of the level: the level's price (median(3005, 3000, 2998) = 3000)
    low_last = book(bids=[(2999.0, 5)], asks=[(3000.0, 9)], last=2998.0)
    assert trades(insert(make_order(ids, price=3005.0, volume=1, ref="3"), low_last, ids)) == [(3000.0, 1)]
    # a sell at 2995 against bids 3000 with last 2997: median(2995, 3000, 2997) = 2997
    sell_quote = book(bids=[(3000.0, 3)], asks=[(3001.0, 5)], last=2997.0)
    sell = make_order(ids, direction="1", price=2995.0, volume=1, ref="4")
    assert trades(insert(sell, sell_quote, ids)) == [(2997.0, 1)]
    # a market buy (no limit) on DCE: median(+inf, 3001, 3004) = 3004
    market = make_order(ids, "m2705", price_type="1", price=0.0, volume=1, time_condition="1", ref="5")
    m_quote = book("m2705", bids=[(3000.0, 5)], asks=[(3001.0, 3)], last=3004.0, upper=3300.0, lower=2700.0)
    assert trades(insert(market, m_quote, ids, terms=terms_of("m2705"))) == [(3004.0, 1)]


def test_resting_orders_at_different_prices_never_fill_more_than_traded() -> None:
    # 10 lots trade at 2999, through two resting buys at 3000 and 3001 (10 lots each): the buys
    # together get the 10 lots, the better price (3001) first.
    ids = Ids()
    quote = book(bids=[(2998.0, 5)], asks=[(3002.0, 6)], last=3000.0, volume=100)
    low = make_order(ids, price=3000.0, volume=10)
    high = make_order(ids, price=3001.0, volume=10, ref="2")
    insert(low, quote, ids)
    insert(high, quote, ids)
    tick2 = book(bids=[(2998.0, 5)], asks=[(3002.0, 6)], last=2999.0, volume=110)
    events = on_tick([low, high], tick2, quote, RB, FillRules(), ids, LATER, TickUse())
    assert [(e.order.key, e.trade.Price, e.trade.Volume) for e in events if isinstance(e, TradeReport)] == [
        (2, 3001.0, 10)]
    assert low.VolumeTraded == 0


def test_the_better_priced_resting_order_takes_the_displayed_lots_first() -> None:
    # A buy at 3000 (earlier) and one at 3001 (later) rest; then the ask drops to 3000 for 5 lots:
    # the 3001 buy takes all 5 (at its own price), the 3000 buy none.
    ids = Ids()
    quote = book(bids=[(2998.0, 5)], asks=[(3002.0, 6)], last=3000.0, volume=100)
    early = make_order(ids, price=3000.0, volume=5)
    late = make_order(ids, price=3001.0, volume=5, ref="2")
    insert(early, quote, ids)
    insert(late, quote, ids)
    tick2 = book(bids=[(2998.0, 5)], asks=[(3000.0, 5)], last=3000.0, volume=100)
    events = on_tick([early, late], tick2, quote, RB, FillRules(), ids, LATER, TickUse())
    assert [(e.order.key, e.trade.Price, e.trade.Volume) for e in events if isinstance(e, TradeReport)] == [
        (2, 3001.0, 5)]
    # sells likewise: the lower price first
    sells = [make_order(ids, direction="1", price=p, volume=3, ref=str(r)) for p, r in ((3006.0, 3), (3005.0, 4))]
    for order in sells:
        insert(order, quote, ids)
    tick3 = book(bids=[(3006.0, 3)], asks=[(3008.0, 6)], last=3004.0, volume=100)
    events = on_tick(sells, tick3, tick2, RB, FillRules(), ids, LATER, TickUse())
    assert [(e.trade.Price, e.trade.Volume) for e in events if isinstance(e, TradeReport)] == [(3005.0, 3)]


def test_an_order_with_no_book_yet_rests() -> None:
    ids = Ids()
    order = make_order(ids, price=3000.0)
    assert compact(insert(order, None, ids))[-1] == ("order", "3", "3", "未成交", 0)
    assert order.queue_ahead == QUEUE_UNSEEN


def rested(price: float = 3000.0, volume: int = 4, *, direction: str = "0", rules=FillRules(), quote=None):
    ids = Ids()
    order = make_order(ids, price=price, volume=volume, direction=direction)
    quote = quote or book(bids=[(3000.0, 5)], asks=[(3001.0, 6)], last=3000.0, volume=100)
    insert(order, quote, ids, rules)
    return order, ids, quote


def test_a_resting_order_crossed_by_a_later_book_fills_at_its_own_price() -> None:
    order, ids, previous = rested()
    crossing = book(bids=[(2997.0, 5)], asks=[(2998.0, 2), (2999.0, 1), (3001.0, 7)], last=2999.0, volume=100)
    events = on_tick([order], crossing, previous, RB, FillRules(), ids, LATER, TickUse())
    # asks at 2998 and 2999 cross the buy at 3000: 3 lots, all at 3000 (no price improvement).
    assert trades(events) == [(3000.0, 3)] and order.VolumeTotal == 1


def test_a_resting_sell_crossed_by_the_bid_fills_at_its_own_price_entirely_without_partials() -> None:
    rules = FillRules(partial=False)
    order, ids, previous = rested(3002.0, 5, direction="1", rules=rules,
                                  quote=book(bids=[(3000.0, 5)], asks=[(3002.0, 6)], volume=10))
    crossing = book(bids=[(3003.0, 1)], asks=[(3004.0, 1)], volume=10)
    events = on_tick([order], crossing, previous, RB, rules, ids, LATER, TickUse())
    assert trades(events) == [(3002.0, 5)] and order.OrderStatus == "0"


def test_the_queue_ahead_is_traded_away_before_the_order_fills() -> None:
    order, ids, previous = rested()  # joins behind the 5 lots bid at 3000
    assert order.queue_ahead == 5
    tick2 = book(bids=[(3000.0, 5)], asks=[(3001.0, 6)], last=3000.0, volume=103)
    assert trades(on_tick([order], tick2, previous, RB, FillRules(), ids, LATER, TickUse())) == []
    assert order.queue_ahead == 2  # 3 lots traded at 3000 took 3 of the 5 ahead
    tick3 = book(bids=[(3000.0, 5)], asks=[(3001.0, 6)], last=3000.0, volume=107)
    # 4 more: 2 finish the queue, 2 reach the order.
    assert trades(on_tick([order], tick3, tick2, RB, FillRules(), ids, LATER, TickUse())) == [(3000.0, 2)]
    assert (order.queue_ahead, order.VolumeTotal) == (0.0, 2)


def test_trades_at_another_price_do_not_move_the_queue() -> None:
    order, ids, previous = rested()
    tick2 = book(bids=[(3000.0, 5)], asks=[(3001.0, 6)], last=3001.0, volume=150)
    assert trades(on_tick([order], tick2, previous, RB, FillRules(), ids, LATER, TickUse())) == []
    assert order.queue_ahead == 5


def test_a_trade_through_the_price_fills_up_to_the_traded_volume_whatever_the_queue() -> None:
    order, ids, previous = rested()
    tick2 = book(bids=[(2998.0, 5)], asks=[(2999.0, 6)], last=2999.0, volume=103)
    # A buy at 3000 was crossed by trades at 2999: 3 lots traded, the ask 2999 also crosses it (6 lots):
    # the crossing book fills up to the 4 the order wants.
    assert trades(on_tick([order], tick2, previous, RB, FillRules(), ids, LATER, TickUse())) == [(3000.0, 4)]
    order, ids, previous = rested()
    tick2 = book(bids=[(2998.0, 5)], asks=[(3001.0, 6)], last=2999.0, volume=103)  # traded through, book not crossed
    assert trades(on_tick([order], tick2, previous, RB, FillRules(), ids, LATER, TickUse())) == [(3000.0, 3)]


def test_the_queue_shrinks_to_the_displayed_volume_when_orders_ahead_are_cancelled() -> None:
    order, ids, previous = rested()
    tick2 = book(bids=[(3000.0, 1)], asks=[(3001.0, 6)], last=3000.0, volume=100)
    on_tick([order], tick2, previous, RB, FillRules(), ids, LATER, TickUse())
    assert order.queue_ahead == 1
    tick3 = book(bids=[(3000.0, 1)], asks=[(3001.0, 6)], last=3000.0, volume=103)
    assert trades(on_tick([order], tick3, tick2, RB, FillRules(), ids, LATER, TickUse())) == [(3000.0, 2)]


def test_without_the_queue_the_first_trade_at_the_price_fills_the_order() -> None:
    rules = FillRules(queue=False)
    order, ids, previous = rested(rules=rules)
    assert order.queue_ahead == 0.0
    tick2 = book(bids=[(3000.0, 5)], asks=[(3001.0, 6)], last=3000.0, volume=103)
    assert trades(on_tick([order], tick2, previous, RB, rules, ids, LATER, TickUse())) == [(3000.0, 3)]


def test_an_order_behind_the_displayed_depth_waits_until_its_price_is_shown() -> None:
    quote = book(bids=[(3000.0, 5)], asks=[(3001.0, 6)], last=3000.0, volume=100)
    order, ids, previous = rested(2998.0, 2, quote=quote)  # level-1 feed: 2998's queue is unknown
    assert order.queue_ahead == QUEUE_UNSEEN
    tick2 = book(bids=[(2998.0, 7)], asks=[(2999.0, 6)], last=2998.0, volume=104)
    assert trades(on_tick([order], tick2, previous, RB, FillRules(), ids, LATER, TickUse())) == []
    assert order.queue_ahead == 7  # now displayed: behind the 7 lots shown
    tick3 = book(bids=[(2998.0, 7)], asks=[(2999.0, 6)], last=2998.0, volume=112)
    assert trades(on_tick([order], tick3, tick2, RB, FillRules(), ids, LATER, TickUse())) == [(2998.0, 1)]


def test_an_order_improving_the_best_price_has_no_queue() -> None:
    order, _ids, _quote = rested(3000.0, quote=book(bids=[(2999.0, 5)], asks=[(3001.0, 6)], volume=10))
    assert order.queue_ahead == 0.0


def test_two_resting_orders_at_one_price_share_the_traded_volume_earliest_first() -> None:
    ids = Ids()
    quote = book(bids=[(2999.0, 5)], asks=[(3001.0, 6)], last=3000.0, volume=100)
    first = make_order(ids, price=3000.0, volume=2)
    second = make_order(ids, price=3000.0, volume=2, ref="2")
    insert(first, quote, ids)
    insert(second, quote, ids)
    tick2 = book(bids=[(2999.0, 5)], asks=[(3001.0, 6)], last=3000.0, volume=103)
    events = on_tick([second, first], tick2, quote, RB, FillRules(), ids, LATER, TickUse())
    # 3 lots traded at 3000 and no queue ahead of either: 2 to the first, 1 to the second.
    assert [(e.order.key, e.trade.Volume) for e in events if isinstance(e, TradeReport)] == [(1, 2), (2, 1)]


def test_an_order_taken_in_the_opening_auction_fills_when_the_open_reaches_it() -> None:
    ids = Ids()
    auction, opening = datetime(2026, 11, 30, 20, 57), datetime(2026, 11, 30, 21, 0, 1)
    order = make_order(ids, price=3000.0, volume=2, now=auction)
    pre_open = book(bids=[(2990.0, 5)], asks=[(2995.0, 5)], last=2992.0, volume=0)  # yesterday's close book
    assert trades(on_insert(order, pre_open, RB, FillRules(), ids, auction, TickUse())) == []
    opened = book(bids=[(2999.0, 5)], asks=[(3000.0, 1)], last=3000.0, volume=0)
    assert trades(on_tick([order], opened, pre_open, RB, FillRules(), ids, opening, TickUse())) == [(3000.0, 1)]

prices = st.integers(min_value=2990, max_value=3010).map(float)
levels = st.lists(st.tuples(st.integers(0, 9), st.integers(1, 6)), max_size=5)


def _book_of(bid_steps, ask_steps, last, volume) -> Book:
    """Bids below 3000 and asks from 3001 upward, best first, steps apart."""
    bids, asks, bid, ask = [], [], 3000.0, 3001.0
    for step, size in bid_steps:
        bid -= step
        bids.append((bid, size))
        bid -= 1
    for step, size in ask_steps:
        ask += step
        asks.append((ask, size))
        ask += 1
    return book(bids=bids, asks=asks, last=last, volume=volume)


@settings(max_examples=60, deadline=None)
@given(direction=st.sampled_from("01"), price=prices, volume=st.integers(1, 12),
       kind=st.sampled_from(["GFD", "FAK", "FOK", "MV"]), partial=st.booleans(), queue=st.booleans(),
       books=st.lists(st.tuples(levels, levels, prices, st.integers(0, 8)), min_size=1, max_size=5))
def test_every_lot_is_traded_or_released_once_and_never_at_a_worse_price(
        direction, price, volume, kind, partial, queue, books) -> None:
    ids, rules = Ids(), FillRules(partial=partial, queue=queue)
    conditions = {"GFD": ("3", "1"), "FAK": ("1", "1"), "FOK": ("1", "3"), "MV": ("1", "2")}[kind]
    order = make_order(ids, direction=direction, price=price, volume=volume, time_condition=conditions[0],
                       volume_condition=conditions[1], min_volume=max(1, volume // 2))
    cumulative = 100
    quotes = []
    for bid_steps, ask_steps, last, traded in books:
        cumulative += traded
        quotes.append(_book_of(bid_steps, ask_steps, last, cumulative))
    events = on_insert(order, quotes[0], RB, rules, ids, NOW, TickUse())
    sign = 1 if direction == "0" else -1
    for event in events:  # on arrival: never worse than the limit
        if isinstance(event, TradeReport):
            assert sign * (price - event.trade.Price) >= 0
    for previous, quote in zip(quotes, quotes[1:]):
        consumed = TickUse()
        later = on_tick([order], quote, previous, RB, rules, ids, LATER, consumed)
        assert all(e.trade.Price == price for e in later if isinstance(e, TradeReport))  # its own price
        if partial:
            for (side, level_price), lots in consumed.displayed.items():
                shown = dict(quote.bids if side == "Bid" else quote.asks)
                assert lots <= shown[level_price]
        events += later
    if order.alive:
        events += order_life.cancel(order, LATER, ids)
    traded = sum(e.trade.Volume for e in events if isinstance(e, TradeReport))
    released = sum(e.volume for e in events if isinstance(e, Release))
    assert traded + released == volume and traded == order.VolumeTraded
    if kind == "FOK":
        assert traded in (0, volume)
    if kind == "MV":
        assert traded == 0 or traded >= max(1, volume // 2)
    assert not order.alive and order.OrderStatus in ("0", "5")


@settings(max_examples=60, deadline=None)
@given(direction=st.sampled_from("01"), limits=st.lists(prices, min_size=2, max_size=4),
       volumes=st.lists(st.integers(1, 8), min_size=4, max_size=4), partial=st.booleans(), queue=st.booleans(),
       books=st.lists(st.tuples(levels, levels, prices, st.integers(0, 12)), min_size=2, max_size=5))
def test_resting_orders_together_fill_at_most_the_traded_volume_better_prices_first(
        direction, limits, volumes, partial, queue, books) -> None:
    """Several resting orders at different prices: on each tick, the lots filled from trades are at
    most that tick's traded volume, and a worse-priced order never fills while a better one stays
    unfilled on the same tick."""
    ids, rules = Ids(), FillRules(partial=partial, queue=queue)
    quotes, cumulative = [], 100
    for bid_steps, ask_steps, last, traded in books:
        cumulative += traded
        quotes.append(_book_of(bid_steps, ask_steps, last, cumulative))
    resting = []
    for n, limit in enumerate(limits):
        order = make_order(ids, direction=direction, price=limit, volume=volumes[n], ref=str(n + 1))
        on_insert(order, quotes[0], RB, rules, ids, NOW, TickUse())
        resting.append(order)
    better = (lambda a, b: a > b) if direction == "0" else (lambda a, b: a < b)
    for previous, quote in zip(quotes, quotes[1:]):
        before = {o.key: (o.alive, o.VolumeTotal) for o in resting}
        use = TickUse()
        events = on_tick(resting, quote, previous, RB, rules, ids, LATER, use)
        filled = {}
        for e in events:
            if isinstance(e, TradeReport):
                filled[e.order.key] = filled.get(e.order.key, 0) + e.trade.Volume
        from_trades = sum(use.traded.values())
        if partial:
            assert from_trades <= quote.volume - previous.volume
        for worse in resting:
            if not filled.get(worse.key):
                continue
            for best in resting:
                if before[best.key][0] and better(best.LimitPrice, worse.LimitPrice):
                    assert best.VolumeTotal == 0 or filled.get(best.key, 0) > 0, (best.LimitPrice, worse.LimitPrice)
